//! Microsoft Graph: the signed-in user (`/me`) and their calendars (`/me/calendars`).

use serde::Deserialize;

use super::{
    normalize_color, status_error, transport_error, DiscoveredAccount, DiscoveredCalendar,
    ProviderError,
};
use crate::crypto::Secret;

const MAX_PAGES: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    mail: Option<String>,
    user_principal_name: Option<String>,
}

#[derive(Deserialize)]
struct CalendarPage {
    #[serde(default)]
    value: Vec<GraphCalendar>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphCalendar {
    id: String,
    #[serde(default)]
    name: String,
    hex_color: Option<String>,
    #[serde(default)]
    is_default_calendar: bool,
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    access_token: &Secret,
) -> Result<T, ProviderError> {
    let response = http
        .get(url)
        .bearer_auth(access_token.expose())
        .header("Prefer", "odata.maxpagesize=50")
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(transport_error)?;
    if !status.is_success() {
        return Err(status_error(status, &headers, &body));
    }
    serde_json::from_str(&body).map_err(|e| ProviderError::Protocol(format!("{url}: {e}")))
}

/// The bearer token goes only to Graph itself: a nextLink elsewhere is refused.
fn same_origin(base: &str, link: &str) -> bool {
    match (url::Url::parse(base), url::Url::parse(link)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

pub async fn discover(
    http: &reqwest::Client,
    api_base: &str,
    access_token: &Secret,
) -> Result<DiscoveredAccount, ProviderError> {
    let me: Me = get_json(http, &format!("{api_base}/me"), access_token).await?;
    let email = me.mail.or(me.user_principal_name).ok_or_else(|| {
        ProviderError::Protocol("/me has neither mail nor userPrincipalName".into())
    })?;
    let mut calendars = Vec::new();
    let mut url = format!("{api_base}/me/calendars");
    for _ in 0..MAX_PAGES {
        let page: CalendarPage = get_json(http, &url, access_token).await?;
        calendars.extend(page.value.into_iter().map(|c| DiscoveredCalendar {
            id: c.id,
            name: c.name,
            color: normalize_color(c.hex_color.as_deref()),
            primary: c.is_default_calendar,
        }));
        match page.next_link {
            Some(next) if same_origin(api_base, &next) => url = next,
            Some(_) => {
                return Err(ProviderError::Protocol(
                    "nextLink points outside Graph".into(),
                ))
            }
            None => return Ok(DiscoveredAccount { email, calendars }),
        }
    }
    Err(ProviderError::Protocol(format!(
        "calendars did not end after {MAX_PAGES} pages"
    )))
}
