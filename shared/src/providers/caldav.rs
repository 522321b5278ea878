//! CalDAV (RFC 4791) account discovery, for iCloud and any standard server:
//! `/.well-known/caldav` → `current-user-principal` → `calendar-home-set` → the calendars there
//! that hold events.

use std::net::IpAddr;

use quick_xml::events::Event as XmlEvent;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use reqwest::{Method, StatusCode};

use super::{normalize_color, transport_error, DiscoveredCalendar, ProviderError};
use crate::crypto::Secret;
use crate::model::CalDavLocation;

pub(crate) const DAV: &str = "DAV:";
pub(crate) const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
const APPLE: &str = "http://apple.com/ns/ical/";
const MAX_REDIRECTS: usize = 5;
/// A multistatus larger than this is not a calendar home we can use.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Which server URLs we are willing to call with a user's password. Users name the server, so
/// without this a request could be aimed at internal addresses.
#[derive(Clone, Debug, Default)]
pub struct UrlPolicy {
    /// Loopback servers that may be called over plain `http://` (the dev stack's Radicale, a
    /// test's servers); nothing else on loopback, and nothing over http elsewhere.
    http_loopback: std::sync::Arc<[std::net::SocketAddr]>,
}

impl UrlPolicy {
    /// The policy for a list of comma-separated loopback `ip:port` pairs
    /// (`CALDAV_ALLOW_HTTP_LOOPBACK`, `WEBHOOK_ALLOW_HTTP_LOOPBACK`).
    pub fn allowing_http_loopback(list: Option<&str>) -> Result<Self, String> {
        let allowed = list
            .into_iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<std::net::SocketAddr>()
                    .ok()
                    .filter(|addr| addr.ip().is_loopback())
                    .ok_or_else(|| format!("{entry:?} is not a loopback ip:port"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            http_loopback: allowed.into(),
        })
    }

    fn allows_http(&self, url: &url::Url, ip: Option<IpAddr>) -> bool {
        match (ip, url.port_or_known_default()) {
            (Some(ip), Some(port)) => self
                .http_loopback
                .contains(&std::net::SocketAddr::new(ip, port)),
            _ => false,
        }
    }

    pub fn check(&self, raw: &str) -> Result<url::Url, ProviderError> {
        self.check_field(raw, "serverUrl")
    }

    /// [`Self::check`], naming the URL `field` in its refusals.
    pub fn check_field(&self, raw: &str, field: &str) -> Result<url::Url, ProviderError> {
        let url = url::Url::parse(raw)
            .map_err(|_| ProviderError::Refused(format!("{field} {raw:?} is not a URL")))?;
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        let ip = host.parse::<IpAddr>().ok();
        let loopback = ip.is_some_and(|ip| ip.is_loopback());
        match url.scheme() {
            "http" if loopback && self.allows_http(&url, ip) => return Ok(url),
            "https" => {}
            _ => {
                return Err(ProviderError::Refused(format!(
                    "{field} must be an https:// URL"
                )))
            }
        }
        // Names are checked when they resolve (net::PublicOnlyResolver); literals here.
        let private = loopback || ip.is_some_and(|ip| !super::net::is_public(ip));
        if private {
            return Err(ProviderError::Refused(format!(
                "{field} must name a public host"
            )));
        }
        Ok(url)
    }
}

/// A parsed XML element: namespace, local name, text and children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    ns: String,
    name: String,
    attrs: Vec<(String, String)>,
    pub(crate) text: String,
    children: Vec<Element>,
}

impl Element {
    pub(crate) fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    pub(crate) fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub(crate) fn children<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// The first descendant along a path of (namespace, name) steps.
    pub(crate) fn path(&self, steps: &[(&str, &str)]) -> Option<&Element> {
        steps
            .iter()
            .try_fold(self, |el, (ns, name)| el.child(ns, name))
    }
}

pub(crate) fn parse_xml(body: &str) -> Result<Element, ProviderError> {
    let bad = |e: String| ProviderError::Protocol(format!("malformed multistatus: {e}"));
    let mut reader = NsReader::from_str(body);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| bad(e.to_string()))?;
        let ns = match resolved {
            ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
            _ => String::new(),
        };
        let is_empty = matches!(event, XmlEvent::Empty(_));
        match event {
            XmlEvent::Start(start) | XmlEvent::Empty(start) => {
                let element = Element {
                    ns,
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    attrs: start
                        .attributes()
                        .filter_map(Result::ok)
                        .map(|a| {
                            (
                                String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                                a.unescape_value()
                                    .map(|v| v.into_owned())
                                    .unwrap_or_default(),
                            )
                        })
                        .collect(),
                    ..Default::default()
                };
                if is_empty {
                    stack.last_mut().expect("root").children.push(element);
                } else {
                    stack.push(element);
                }
            }
            XmlEvent::End(_) => {
                let done = stack
                    .pop()
                    .filter(|_| !stack.is_empty())
                    .ok_or_else(|| bad("unbalanced".into()))?;
                stack.last_mut().expect("root").children.push(done);
            }
            XmlEvent::Text(text) => {
                let text = text.unescape().map_err(|e| bad(e.to_string()))?;
                stack.last_mut().expect("root").text.push_str(text.trim());
            }
            XmlEvent::CData(data) => {
                stack
                    .last_mut()
                    .expect("root")
                    .text
                    .push_str(&String::from_utf8_lossy(&data));
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    match stack.pop() {
        Some(root) if stack.is_empty() => Ok(root),
        _ => Err(bad("unclosed element".into())),
    }
}

/// One CalDAV account's connection: credentials and where requests go.
pub struct CalDavClient<'a> {
    pub http: &'a reqwest::Client,
    pub username: &'a str,
    pub password: &'a Secret,
    pub policy: UrlPolicy,
}

impl CalDavClient<'_> {
    /// PROPFIND `url`, following redirects the policy allows; returns the final URL and the
    /// parsed multistatus.
    async fn propfind(
        &self,
        url: url::Url,
        depth: &str,
        body: &str,
    ) -> Result<(url::Url, Element), ProviderError> {
        let mut url = url;
        // The password goes only to the origin the user named (scheme, host and port); a
        // redirect elsewhere is followed without it, and answers 401 if it needs it.
        let origin = url.origin();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.http.request(
                Method::from_bytes(b"PROPFIND").expect("valid method"),
                url.clone(),
            );
            if url.origin() == origin {
                request = request.basic_auth(self.username, Some(self.password.expose()));
            }
            let response = request
                .header("Depth", depth)
                .header("Content-Type", "application/xml; charset=utf-8")
                .body(body.to_owned())
                .send()
                .await
                .map_err(transport_error)?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| ProviderError::Protocol("redirect without Location".into()))?;
                let next = url
                    .join(location)
                    .map_err(|_| ProviderError::Protocol("bad redirect".into()))?;
                url = self.policy.check(next.as_str())?;
                continue;
            }
            match status {
                StatusCode::MULTI_STATUS => {}
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(ProviderError::Unauthorized)
                }
                s => {
                    return Err(super::status_error(s, &response.headers().clone(), ""));
                }
            }
            let bytes = response.bytes().await.map_err(transport_error)?;
            if bytes.len() > MAX_BODY {
                return Err(ProviderError::Protocol("multistatus too large".into()));
            }
            let text = String::from_utf8_lossy(&bytes);
            return Ok((url, parse_xml(&text)?));
        }
        Err(ProviderError::Protocol("too many redirects".into()))
    }

    /// The first `href` found at `path` inside any propstat of the multistatus.
    fn href_in(multistatus: &Element, property: (&str, &str)) -> Option<String> {
        multistatus
            .path(&[(DAV, "multistatus")])?
            .children(DAV, "response")
            .flat_map(|r| r.children(DAV, "propstat"))
            .find_map(|ps| ps.path(&[(DAV, "prop"), property, (DAV, "href")]))
            .map(|h| h.text.clone())
            .filter(|h| !h.is_empty())
    }

    /// Finds the principal, the calendar home and the event calendars of the account.
    pub async fn discover(
        &self,
        server_url: &str,
    ) -> Result<(CalDavLocation, Vec<DiscoveredCalendar>), ProviderError> {
        let server = self.policy.check(server_url)?;
        const PRINCIPAL: &str = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>"#;
        let well_known = server
            .join("/.well-known/caldav")
            .map_err(|_| ProviderError::Protocol("bad server URL".into()))?;
        let (base, found) = match self.propfind(well_known, "0", PRINCIPAL).await {
            Ok(found) => found,
            Err(ProviderError::Protocol(_)) => {
                self.propfind(server.clone(), "0", PRINCIPAL).await?
            }
            Err(e) => return Err(e),
        };
        let principal_href = Self::href_in(&found, (DAV, "current-user-principal"))
            .ok_or_else(|| ProviderError::Protocol("no current-user-principal".into()))?;
        let principal = base
            .join(&principal_href)
            .map_err(|_| ProviderError::Protocol("bad principal href".into()))?;
        let principal = self.policy.check(principal.as_str())?;

        const HOME: &str = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-home-set/></d:prop></d:propfind>"#;
        let (principal, found) = self.propfind(principal, "0", HOME).await?;
        let home_href = Self::href_in(&found, (CALDAV, "calendar-home-set"))
            .ok_or_else(|| ProviderError::Protocol("no calendar-home-set".into()))?;
        let home = principal
            .join(&home_href)
            .map_err(|_| ProviderError::Protocol("bad home href".into()))?;
        let home = self.policy.check(home.as_str())?;

        const CALENDARS: &str = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:a="http://apple.com/ns/ical/"><d:prop><d:resourcetype/><d:displayname/><c:supported-calendar-component-set/><a:calendar-color/></d:prop></d:propfind>"#;
        let (home, listing) = self.propfind(home, "1", CALENDARS).await?;
        let mut calendars = Vec::new();
        for response in listing
            .path(&[(DAV, "multistatus")])
            .into_iter()
            .flat_map(|m| m.children(DAV, "response"))
        {
            let Some(href) = response.child(DAV, "href").map(|h| h.text.clone()) else {
                continue;
            };
            let props: Vec<&Element> = response
                .children(DAV, "propstat")
                .filter(|ps| {
                    ps.child(DAV, "status")
                        .is_none_or(|s| s.text.contains(" 200 "))
                })
                .filter_map(|ps| ps.child(DAV, "prop"))
                .collect();
            let prop = |ns: &str, name: &str| props.iter().find_map(|p| p.child(ns, name));
            let is_calendar =
                prop(DAV, "resourcetype").is_some_and(|rt| rt.child(CALDAV, "calendar").is_some());
            // Without a component set a calendar may hold anything, events included.
            let holds_events = prop(CALDAV, "supported-calendar-component-set").is_none_or(|set| {
                set.children(CALDAV, "comp").any(|c| {
                    c.attrs
                        .iter()
                        .any(|(k, v)| k == "name" && v.eq_ignore_ascii_case("VEVENT"))
                })
            });
            if !is_calendar || !holds_events {
                continue;
            }
            let url = home
                .join(&href)
                .map_err(|_| ProviderError::Protocol("bad calendar href".into()))?;
            let name = prop(DAV, "displayname")
                .map(|d| d.text.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| {
                    href.trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or("Calendar")
                        .to_owned()
                });
            calendars.push(DiscoveredCalendar {
                id: url.to_string(),
                name,
                color: normalize_color(prop(APPLE, "calendar-color").map(|c| c.text.as_str())),
                primary: calendars.is_empty(),
            });
        }
        let location = CalDavLocation {
            server_url: server.to_string(),
            principal_url: principal.to_string(),
            home_url: home.to_string(),
            username: self.username.to_owned(),
        };
        Ok((location, calendars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_servers_are_called() {
        let strict = UrlPolicy::default();
        assert!(strict.check("https://caldav.icloud.com").is_ok());
        for refused in [
            "http://caldav.icloud.com",
            "https://127.0.0.1/",
            "https://10.0.0.5/",
            "https://169.254.169.254/latest",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]:8443/",
            "https://100.64.0.1/",
            "https://[fec0::1]/",
            "https://224.0.0.1/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(strict.check(refused).is_err(), "{refused}");
        }
        let dev = UrlPolicy::allowing_http_loopback(Some("127.0.0.1:5232")).unwrap();
        assert!(dev.check("http://127.0.0.1:5232/").is_ok());
        // Only that server: not another port, not another loopback address.
        assert!(dev.check("http://127.0.0.1:5233/").is_err());
        assert!(dev.check("http://127.0.0.2:5232/").is_err());
        assert!(UrlPolicy::allowing_http_loopback(Some("true")).is_err());
        assert!(UrlPolicy::allowing_http_loopback(Some("10.0.0.5:80")).is_err());
        assert!(dev.check("http://10.0.0.5/").is_err());
        // Names are judged by what they resolve to, when the client connects (net.rs).
        assert!(dev.check("http://localhost:5232/").is_err());
    }

    #[test]
    fn multistatus_is_read_by_namespace_not_prefix() {
        let xml = r#"<?xml version="1.0"?><x:multistatus xmlns:x="DAV:"><x:response><x:href>/p/</x:href>
            <x:propstat><x:prop><x:current-user-principal><x:href>/alice/</x:href></x:current-user-principal></x:prop>
            <x:status>HTTP/1.1 200 OK</x:status></x:propstat></x:response></x:multistatus>"#;
        let root = parse_xml(xml).unwrap();
        assert_eq!(
            CalDavClient::href_in(&root, (DAV, "current-user-principal")).as_deref(),
            Some("/alice/")
        );
        assert!(parse_xml("<a><b></a>").is_err());
    }
}
