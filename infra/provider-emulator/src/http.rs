//! Request parsing and response building shared by the Google, Microsoft and admin handlers.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

pub(crate) type Resp = Response<Full<Bytes>>;

/// A fully read request: everything the handlers look at, owned.
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Set by a `malformedItem` fault: the next events page carries one unparseable event.
    pub malformed_item: bool,
}

impl Req {
    pub fn new(method: Method, uri: &hyper::Uri, headers: HeaderMap, body: Bytes) -> Self {
        let query = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Req {
            method,
            path: uri.path().to_owned(),
            query,
            headers,
            body,
            malformed_item: false,
        }
    }

    /// First value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        param(&self.query, name)
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Authorization: Bearer <token>`: `None` when the header is absent, `Some("")` when it is
    /// present but carries no bearer token.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            Some(rest.trim())
        } else {
            Some("")
        }
    }
}

/// Percent-decodes one path segment (`+` stays a plus, as in paths).
pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// First value of `name` among `pairs`; an empty value counts as absent, as the providers treat it.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Client credentials from HTTP Basic (RFC 6749 §2.3.1: each part form-url-encoded) or the body.
/// Returns the client id; `Err` carries a human-readable reason.
pub(crate) fn client_auth(req: &Req, form: &[(String, String)]) -> Result<String, &'static str> {
    let form_id = param(form, "client_id");
    let form_secret = param(form, "client_secret");
    if let Some(value) = req.header("authorization") {
        if let Some((scheme, encoded)) = value.split_once(' ') {
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| "malformed Basic credentials")?;
                let decoded =
                    String::from_utf8(decoded).map_err(|_| "malformed Basic credentials")?;
                let (id, secret) = decoded
                    .split_once(':')
                    .ok_or("malformed Basic credentials")?;
                let id = form_decode(id);
                let secret = form_decode(secret);
                if id.is_empty() || secret.is_empty() {
                    return Err("client_id and client_secret are required");
                }
                if form_id.is_some_and(|f| f != id) {
                    return Err("client_id in the body differs from the Basic credentials");
                }
                return Ok(id);
            }
        }
    }
    match (form_id, form_secret) {
        (Some(id), Some(_)) => Ok(id.to_owned()),
        (None, _) => Err("client_id is missing"),
        (Some(_), None) => Err("client_secret is missing"),
    }
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub(crate) fn response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set_header(&mut resp, "content-type", content_type);
    resp
}

pub(crate) fn json(status: u16, value: &serde_json::Value) -> Resp {
    response(status, "application/json; charset=utf-8", value.to_string())
}

pub(crate) fn set_header(resp: &mut Resp, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, value);
    }
}

pub(crate) fn with_header(mut resp: Resp, name: &'static str, value: &str) -> Resp {
    set_header(&mut resp, name, value);
    resp
}

/// A 302 to `location`, as the authorization endpoints answer after consent.
pub(crate) fn redirect(location: &str) -> Resp {
    let mut resp = response(302, "text/html; charset=UTF-8", "");
    set_header(&mut resp, "location", location);
    set_header(
        &mut resp,
        "cache-control",
        "no-cache, no-store, max-age=0, must-revalidate",
    );
    resp
}

/// Token responses must not be cached (RFC 6749 §5.1).
pub(crate) fn no_store(mut resp: Resp) -> Resp {
    set_header(
        &mut resp,
        "cache-control",
        "no-cache, no-store, max-age=0, must-revalidate",
    );
    set_header(&mut resp, "pragma", "no-cache");
    resp
}

/// `n` random bytes, base64url without padding.
pub(crate) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random GUID in the 8-4-4-4-12 form Microsoft uses for trace and correlation ids.
pub(crate) fn guid() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(crate) fn sha256(data: &str) -> [u8; 32] {
    Sha256::digest(data.as_bytes()).into()
}

/// RFC 7636 S256: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    URL_SAFE_NO_PAD.encode(sha256(verifier)) == challenge
}

/// RFC 7636 §4.2: a challenge (or verifier) is 43 to 128 unreserved characters.
pub(crate) fn valid_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `redirect_uri` with `pairs` appended to its query, as an authorization response.
pub(crate) fn redirect_with(redirect_uri: &url::Url, pairs: &[(&str, &str)]) -> Resp {
    let mut target = redirect_uri.clone();
    {
        let mut query = target.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    redirect(target.as_str())
}
