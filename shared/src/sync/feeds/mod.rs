//! Provider feeds behind one interface: fetch a page of changes, given the stored cursor (or
//! none, for a full listing) and the page token of the listing in progress.

pub(crate) mod caldav;
pub(crate) mod google;
mod ical;
pub(crate) mod microsoft;
pub(crate) mod zones;

use chrono::{Duration, Utc};

use super::Page;
use crate::app::App;
use crate::crypto::{Secret, SecretContext};
use crate::model::{Connection, Provider, ProviderAccount};
use crate::providers::ProviderError;
use crate::time::TimeRange;

pub use ical::parse_calendar_resource;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The provider no longer knows our cursor (Google 410, Graph 410, CalDAV valid-sync-token).
    #[error("the provider forgot our sync cursor")]
    CursorLost,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The server does not support the request (CalDAV sync-collection): use the fallback.
    #[error("not supported by the server")]
    Unsupported,
}

/// A calendar's feed, with the credentials to read it.
pub enum Feed {
    Google(google::GoogleFeed),
    Microsoft(microsoft::GraphFeed),
    CalDav(caldav::CalDavFeed),
}

/// The window a Graph calendarView delta covers: Graph lists instances within a window only.
pub fn graph_window() -> TimeRange {
    let now = Utc::now();
    TimeRange {
        start: now - Duration::days(90),
        end: now + Duration::days(400),
    }
}

impl Feed {
    pub async fn open(app: &App, conn: &Connection) -> Result<Self, super::engine::SyncError> {
        use super::engine::SyncError;
        let account_id = conn
            .account_id
            .as_deref()
            .ok_or_else(|| SyncError::Internal("calendar without account".into()))?;
        let account: ProviderAccount = app
            .store
            .account(&conn.user_id, account_id)
            .await?
            .filter(|a| a.is_connected)
            .ok_or(ProviderError::InvalidGrant)?;
        let sealed = account
            .access_token
            .as_ref()
            .ok_or(ProviderError::InvalidGrant)?;
        let context = SecretContext {
            user_id: &conn.user_id,
            account_id,
            field: "access_token",
        };
        let secret: Secret = app
            .cipher()?
            .open(sealed, context)
            .await
            .map_err(|e| SyncError::Internal(e.to_string()))?;
        let api_base = |provider: Provider| {
            app.config
                .oauth(provider)
                .map(|s| s.api_base.clone())
                .ok_or_else(|| {
                    SyncError::Internal(format!("{} is not configured", provider.slug()))
                })
        };
        Ok(match conn.provider {
            Provider::Google => Self::Google(google::GoogleFeed {
                http: app.http().clone(),
                api_base: api_base(Provider::Google)?,
                calendar_id: conn.calendar_id.clone(),
                token: secret,
            }),
            Provider::Microsoft => Self::Microsoft(microsoft::GraphFeed {
                http: app.http().clone(),
                api_base: api_base(Provider::Microsoft)?,
                calendar_id: conn.calendar_id.clone(),
                token: secret,
                window: graph_window(),
            }),
            Provider::Apple => {
                let location = account
                    .caldav
                    .clone()
                    .ok_or_else(|| SyncError::Internal("CalDAV account without location".into()))?;
                Self::CalDav(caldav::CalDavFeed {
                    http: app.http().clone(),
                    collection: conn.calendar_id.clone(),
                    username: location.username,
                    password: secret,
                    policy: app.config.caldav_policy.clone(),
                    store: app.store.clone(),
                    connection_id: conn.id.clone(),
                })
            }
        })
    }

    /// The window a full listing covers (`None`: the whole calendar).
    pub fn window(&self) -> Option<TimeRange> {
        match self {
            Self::Microsoft(feed) => Some(feed.window),
            _ => None,
        }
    }

    pub async fn fetch(&self, cursor: Option<&str>, page: Option<&str>) -> Result<Page, FeedError> {
        match self {
            Self::Google(feed) => feed.fetch(cursor, page).await,
            Self::Microsoft(feed) => feed.fetch(cursor, page).await,
            Self::CalDav(feed) => feed.fetch(cursor, page).await,
        }
    }
}

/// Reads a response body, classifying failures; `gone` statuses mean a lost cursor.
pub(crate) async fn read_body(
    response: reqwest::Response,
    gone: &[u16],
) -> Result<String, FeedError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(crate::providers::transport_error)?;
    if gone.contains(&status.as_u16()) {
        return Err(FeedError::CursorLost);
    }
    if !status.is_success() {
        return Err(crate::providers::status_error(status, &headers, &body).into());
    }
    Ok(body)
}

/// Where a JSON listing (Google's events.list, Graph's delta) keeps its parts.
pub(crate) struct JsonListing {
    /// Named in errors, e.g. `events.list`.
    pub what: &'static str,
    pub items: &'static str,
    pub next_page: &'static str,
    pub cursor: &'static str,
}

impl JsonListing {
    /// One page: a listing must point at its next page or end with a cursor; one that does
    /// neither cannot be continued, so it is a protocol error rather than an empty success.
    pub(crate) fn page(
        &self,
        body: &str,
        to_change: fn(&serde_json::Value) -> super::Change,
    ) -> Result<Page, FeedError> {
        let listing: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| ProviderError::Protocol(format!("{}: {e}", self.what)))?;
        let text = |field: &str| {
            listing
                .get(field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let (next_page, cursor) = (text(self.next_page), text(self.cursor));
        if next_page.is_none() && cursor.is_none() {
            return Err(ProviderError::Protocol(format!(
                "{} ended without {} or {}",
                self.what, self.next_page, self.cursor
            ))
            .into());
        }
        let changes = match listing.get(self.items).and_then(|v| v.as_array()) {
            Some(items) => items.iter().map(to_change).collect(),
            None => Vec::new(),
        };
        Ok(Page {
            changes,
            next_page,
            cursor,
            present: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: JsonListing = JsonListing {
        what: "events.list",
        items: "items",
        next_page: "nextPageToken",
        cursor: "nextSyncToken",
    };

    #[test]
    fn a_listing_without_next_page_or_cursor_is_a_protocol_error() {
        let err = LISTING
            .page(r#"{"items": []}"#, google::to_change)
            .unwrap_err();
        assert!(
            matches!(&err, FeedError::Provider(ProviderError::Protocol(m)) if m.contains("nextSyncToken")),
            "{err:?}"
        );
        assert!(LISTING.page("not json", google::to_change).is_err());
    }

    #[test]
    fn a_last_page_carries_its_items_and_cursor() {
        let page = LISTING
            .page(
                r#"{"items": [{"id": "a", "status": "cancelled"}], "nextSyncToken": "s1"}"#,
                google::to_change,
            )
            .unwrap();
        assert_eq!(page.cursor.as_deref(), Some("s1"));
        assert_eq!(page.next_page, None);
        assert_eq!(page.changes.len(), 1);
    }
}
