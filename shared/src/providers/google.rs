//! Google Calendar v3: the account's calendars (`calendarList.list`).

use serde::Deserialize;

use super::{
    normalize_color, status_error, transport_error, DiscoveredAccount, DiscoveredCalendar,
    ProviderError,
};
use crate::crypto::Secret;

/// Google's documented maximum page size for calendarList.list.
const PAGE_SIZE: &str = "250";
/// More pages than any real account has; a guard against a provider that never ends a listing.
const MAX_PAGES: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalendarList {
    #[serde(default)]
    items: Vec<CalendarListEntry>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalendarListEntry {
    id: String,
    #[serde(default)]
    summary: String,
    summary_override: Option<String>,
    background_color: Option<String>,
    #[serde(default)]
    primary: bool,
}

/// Lists every calendar of the account behind `access_token`; the primary calendar's id is the
/// account's e-mail.
pub async fn discover(
    http: &reqwest::Client,
    api_base: &str,
    access_token: &Secret,
) -> Result<DiscoveredAccount, ProviderError> {
    let mut calendars = Vec::new();
    let mut page_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut request = http
            .get(format!("{api_base}/users/me/calendarList"))
            .bearer_auth(access_token.expose())
            .query(&[("maxResults", PAGE_SIZE)]);
        if let Some(token) = &page_token {
            request = request.query(&[("pageToken", token)]);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(status_error(status, &headers, &body));
        }
        let page: CalendarList = serde_json::from_str(&body)
            .map_err(|e| ProviderError::Protocol(format!("calendarList: {e}")))?;
        calendars.extend(page.items.into_iter().map(|entry| DiscoveredCalendar {
            name: entry.summary_override.unwrap_or(entry.summary),
            color: normalize_color(entry.background_color.as_deref()),
            primary: entry.primary,
            id: entry.id,
        }));
        page_token = page.next_page_token;
        if page_token.is_none() {
            let email = calendars
                .iter()
                .find(|c| c.primary)
                .map(|c| c.id.clone())
                .ok_or_else(|| {
                    ProviderError::Protocol("calendarList has no primary calendar".into())
                })?;
            return Ok(DiscoveredAccount { email, calendars });
        }
    }
    Err(ProviderError::Protocol(format!(
        "calendarList did not end after {MAX_PAGES} pages"
    )))
}
