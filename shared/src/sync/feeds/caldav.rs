//! CalDAV: `sync-collection` (RFC 6578) lists what changed since our token (all members on an
//! empty token), removed members as 404; `calendar-multiget` fetches the changed resources in
//! batches. An invalid token (403 / 409 / 412 with `valid-sync-token`) means the cursor is lost.
//!
//! A server without sync-collection gets the older way: the collection's `getctag` is the cursor;
//! when it changes, a full listing of members' ETags fetches only the resources whose ETag
//! differs from the one stored, and reconciles the rest.

use reqwest::Method;

use super::{ical, read_body, FeedError};
use crate::crypto::Secret;
use crate::providers::caldav::{parse_xml, UrlPolicy, CALDAV, DAV};
use crate::providers::{transport_error, ProviderError};
use crate::store::Store;
use crate::sync::{Change, Page};

/// Resources per calendar-multiget.
const MULTIGET_BATCH: usize = 50;
/// Marks a cursor that is a ctag (fallback mode) rather than a sync token.
const CTAG_CURSOR: &str = "ctag:";
const CALENDARSERVER: &str = "http://calendarserver.org/ns/";

pub struct CalDavFeed {
    pub http: reqwest::Client,
    /// The collection URL (the calendar's id).
    pub collection: String,
    pub username: String,
    pub password: Secret,
    pub policy: UrlPolicy,
    /// For the ETag comparison of the fallback listing.
    pub store: Store,
    pub connection_id: String,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl CalDavFeed {
    async fn report(
        &self,
        depth: &str,
        body: String,
        gone: &[u16],
    ) -> Result<crate::providers::caldav::Element, FeedError> {
        self.request(b"REPORT", depth, body, gone).await
    }

    async fn request(
        &self,
        method: &[u8],
        depth: &str,
        body: String,
        gone: &[u16],
    ) -> Result<crate::providers::caldav::Element, FeedError> {
        let url = self.policy.check(&self.collection)?;
        let response = self
            .http
            .request(Method::from_bytes(method).expect("valid method"), url)
            .basic_auth(&self.username, Some(self.password.expose()))
            .header("Depth", depth)
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if method == b"REPORT"
            && depth == "0"
            && matches!(status, 400 | 403 | 405 | 501)
            && !gone.contains(&status)
        {
            let text = response.text().await.unwrap_or_default();
            if status != 403 || text.contains("supported-report") {
                return Err(FeedError::Unsupported);
            }
            return Err(ProviderError::Unauthorized.into());
        }
        if gone.contains(&status) {
            let text = response.text().await.unwrap_or_default();
            // 403 is also "forbidden"; only with the valid-sync-token precondition is it the token.
            if status != 403 || text.contains("valid-sync-token") {
                return Err(FeedError::CursorLost);
            }
            return Err(ProviderError::Unauthorized.into());
        }
        let text = read_body(response, &[]).await?;
        Ok(parse_xml(&text)?)
    }

    pub async fn fetch(&self, cursor: Option<&str>, page: Option<&str>) -> Result<Page, FeedError> {
        if let Some(ctag) = cursor.and_then(|c| c.strip_prefix(CTAG_CURSOR)) {
            // Fallback mode: an unchanged ctag means nothing changed; a changed one needs a full
            // ETag listing, which the engine runs as a lost cursor (a full, reconciling listing).
            let (current, _) = self.etags().await?;
            if current.as_deref() == Some(ctag) {
                return Ok(Page {
                    cursor: cursor.map(str::to_owned),
                    ..Page::default()
                });
            }
            return Err(FeedError::CursorLost);
        }
        match self.sync_collection(page.or(cursor).unwrap_or("")).await {
            Err(FeedError::Unsupported) if cursor.is_none() => self.etag_listing().await,
            other => other,
        }
    }

    /// The collection's ctag and its members' (href, ETag), by PROPFIND Depth 1.
    async fn etags(&self) -> Result<(Option<String>, Vec<(String, String)>), FeedError> {
        let body = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop><d:resourcetype/><d:getetag/><cs:getctag/></d:prop></d:propfind>"#;
        let listing = self.request(b"PROPFIND", "1", body.to_owned(), &[]).await?;
        let collection_path = url::Url::parse(&self.collection)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let mut ctag = None;
        let mut members = Vec::new();
        for response in listing
            .path(&[(DAV, "multistatus")])
            .into_iter()
            .flat_map(|m| m.children(DAV, "response"))
        {
            let Some(href) = response.child(DAV, "href").map(|h| h.text.clone()) else {
                continue;
            };
            let Some(prop) = response
                .children(DAV, "propstat")
                .filter(|ps| {
                    ps.child(DAV, "status")
                        .is_none_or(|s| s.text.contains(" 200 "))
                })
                .find_map(|ps| ps.child(DAV, "prop"))
            else {
                continue;
            };
            if href.trim_end_matches('/') == collection_path.trim_end_matches('/') {
                ctag = prop
                    .child(CALENDARSERVER, "getctag")
                    .map(|c| c.text.clone());
            } else if let Some(etag) = prop.child(DAV, "getetag") {
                members.push((href, etag.text.clone()));
            }
        }
        Ok((ctag, members))
    }

    /// A full listing by ETags: only resources whose ETag changed are fetched; the others are
    /// present and current.
    async fn etag_listing(&self) -> Result<Page, FeedError> {
        let (ctag, members) = self.etags().await?;
        let hrefs: Vec<String> = members.iter().map(|(h, _)| h.clone()).collect();
        let stored = self
            .store
            .events_by_keys(&self.connection_id, &hrefs)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("store: {e}")))?;
        let (changed, present): (Vec<_>, Vec<_>) = members.into_iter().partition(|(href, etag)| {
            stored.get(href).and_then(|e| e.provider_etag.as_deref()) != Some(etag.as_str())
        });
        let mut changes = Vec::new();
        for batch in changed
            .iter()
            .map(|(h, _)| h.clone())
            .collect::<Vec<_>>()
            .chunks(MULTIGET_BATCH)
        {
            changes.extend(self.multiget(batch).await?);
        }
        Ok(Page {
            changes,
            next_page: None,
            cursor: ctag.map(|c| format!("{CTAG_CURSOR}{c}")),
            present: present.into_iter().map(|(h, _)| h).collect(),
        })
    }

    async fn sync_collection(&self, token: &str) -> Result<Page, FeedError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#,
            escape(token)
        );
        let gone: &[u16] = if token.is_empty() {
            &[]
        } else {
            &[403, 409, 412]
        };
        let multistatus = self.report("0", body, gone).await?;
        let root = multistatus.path(&[(DAV, "multistatus")]).ok_or_else(|| {
            ProviderError::Protocol("sync-collection answered without multistatus".into())
        })?;
        let new_token = root
            .child(DAV, "sync-token")
            .map(|t| t.text.clone())
            .ok_or_else(|| {
                ProviderError::Protocol("sync-collection answered without sync-token".into())
            })?;
        let collection_path = url::Url::parse(&self.collection)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let mut removed = Vec::new();
        let mut changed = Vec::new();
        let mut truncated = false;
        for response in root.children(DAV, "response") {
            let Some(href) = response.child(DAV, "href").map(|h| h.text.clone()) else {
                continue;
            };
            let status = response
                .child(DAV, "status")
                .map(|s| s.text.clone())
                .unwrap_or_default();
            if href.trim_end_matches('/') == collection_path.trim_end_matches('/') {
                // RFC 6578 §3.6: a 507 on the collection itself means more changes follow.
                truncated |= status.contains(" 507 ");
                continue;
            }
            if status.contains(" 404 ") {
                removed.push(href);
            } else {
                changed.push(href);
            }
        }
        let mut changes: Vec<Change> = removed
            .into_iter()
            .map(|prefix| Change::Prune {
                prefix,
                keep: Vec::new(),
            })
            .collect();
        for batch in changed.chunks(MULTIGET_BATCH) {
            changes.extend(self.multiget(batch).await?);
        }
        Ok(Page {
            changes,
            next_page: truncated.then(|| new_token.clone()),
            cursor: (!truncated).then_some(new_token),
            present: Vec::new(),
        })
    }

    /// Fetches resources' iCalendar data; a resource gone meanwhile is skipped.
    async fn multiget(&self, hrefs: &[String]) -> Result<Vec<Change>, FeedError> {
        let hrefs_xml: String = hrefs
            .iter()
            .map(|h| format!("<d:href>{}</d:href>", escape(h)))
            .collect();
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>{hrefs_xml}</c:calendar-multiget>"#
        );
        let multistatus = self.report("1", body, &[]).await?;
        let mut changes = Vec::new();
        for response in multistatus
            .path(&[(DAV, "multistatus")])
            .into_iter()
            .flat_map(|m| m.children(DAV, "response"))
        {
            let Some(href) = response.child(DAV, "href").map(|h| h.text.clone()) else {
                continue;
            };
            let prop = response
                .children(DAV, "propstat")
                .filter(|ps| {
                    ps.child(DAV, "status")
                        .is_none_or(|s| s.text.contains(" 200 "))
                })
                .find_map(|ps| ps.child(DAV, "prop"));
            let Some(data) = prop.and_then(|p| p.child(CALDAV, "calendar-data")) else {
                continue;
            };
            let etag = prop
                .and_then(|p| p.child(DAV, "getetag"))
                .map(|e| e.text.clone());
            let mut events = ical::parse_calendar_resource(&href, &data.text);
            let unreadable = events.iter().any(|c| matches!(c, Change::Malformed { .. }));
            let keep: Vec<String> = events
                .iter()
                .filter_map(|c| match c {
                    Change::Upsert(e) => Some(e.event_key.clone()),
                    _ => None,
                })
                .collect();
            for change in &mut events {
                if let Change::Upsert(event) = change {
                    event.provider_etag = etag.clone();
                }
            }
            changes.extend(events);
            // Overrides the resource no longer has go; an unreadable resource keeps what we had.
            if !unreadable {
                changes.push(Change::Prune { prefix: href, keep });
            }
        }
        Ok(changes)
    }
}
