//! Provider adapters: OAuth (Google, Microsoft), calendar discovery, CalDAV (Apple).

pub mod caldav;
pub mod google;
pub mod graph_recurrence;
pub mod microsoft;
pub mod net;
pub mod oauth;

use std::time::Duration;

/// A calendar found at a provider when an account connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredCalendar {
    /// The provider's id (CalDAV: the collection URL).
    pub id: String,
    pub name: String,
    /// `#rrggbb`, when the provider has one.
    pub color: Option<String>,
    pub primary: bool,
}

/// Who the account is at the provider, and its calendars.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredAccount {
    pub email: String,
    pub calendars: Vec<DiscoveredCalendar>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The grant is gone (revoked, expired, rotated away): the user must authorise again.
    #[error("the provider refused the grant: reauthorization required")]
    InvalidGrant,
    /// Wrong credentials or an expired access token.
    #[error("the provider refused our credentials")]
    Unauthorized,
    #[error("rate limited by the provider (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// An answer we cannot use: malformed, unexpected, or not what the protocol says.
    #[error("unexpected answer from the provider: {0}")]
    Protocol(String),
    /// A URL the user gave that we will not call.
    #[error("{0}")]
    Refused(String),
}

impl ProviderError {
    /// Worth retrying later with the same credentials.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable(_))
    }
}

/// The HTTP client for provider calls: bounded timeouts, no redirects (OAuth token endpoints must
/// not be redirected; CalDAV redirects are followed explicitly).
pub fn http_client() -> reqwest::Client {
    http_client_with_timeout(Duration::from_secs(20))
}

/// [`http_client`] with another per-request timeout (configuration `PROVIDER_TIMEOUT_MS`).
pub fn http_client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(net::PublicOnlyResolver))
        .user_agent(concat!("calsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("static HTTP client configuration")
}

/// Classifies a non-success HTTP status from a provider API.
pub(crate) fn status_error(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> ProviderError {
    match status.as_u16() {
        401 => ProviderError::Unauthorized,
        429 | 503 => ProviderError::RateLimited {
            retry_after: headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        500..=599 => ProviderError::Unavailable(format!("HTTP {status}")),
        _ => ProviderError::Protocol(format!("HTTP {status}: {}", truncate(body, 200))),
    }
}

/// Sends a provider request and reads its answer whole: status, headers, body.
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, String), ProviderError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(transport_error)?;
    Ok((status, headers, body))
}

pub(crate) fn transport_error(err: reqwest::Error) -> ProviderError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<net::NonPublicAddress>() {
            return ProviderError::Refused(format!("the server's host: {refused}"));
        }
        source = cause.source();
    }
    // reqwest's message never includes headers or bodies, so no secret leaks through it.
    ProviderError::Unavailable(err.without_url().to_string())
}

pub(crate) fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// A colour as `#rrggbb` if it is one.
pub(crate) fn normalize_color(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    let hex = raw.strip_prefix('#').unwrap_or(raw);
    let hex = &hex[..hex.len().min(6)];
    (hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("#{}", hex.to_ascii_lowercase()))
}
