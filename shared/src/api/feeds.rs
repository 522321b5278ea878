//! Secret ICS feed URLs of a user's merged calendar (RFC 5545), revocable.

use chrono::{DateTime, Duration, Utc};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::events::live_calendars;
use super::{ApiRequest, ApiResponse, App};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::store::{EventFilter, Feed, RangeQuery, Store, StoreError};
use crate::time::TimeRange;

/// What a feed covers: the recent past and the coming year.
const PAST_DAYS: i64 = 30;
const FUTURE_DAYS: i64 = 365;

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedDto {
    /// For `DELETE /v1/feeds/{id}`.
    pub id: String,
    /// Subscribe to this URL. It is the credential: share it only with who may read the calendar.
    pub url: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/feeds`.
pub async fn create(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let token = ids::new_secret_token();
    let hash = ids::sha256_hex(&token);
    let feed = Feed {
        user_id,
        name: "calsync".into(),
        created_at: Store::now(),
    };
    app.store.create_feed(&hash, &feed).await?;
    let base = app.config.oauth_callback_base.clone().unwrap_or_default();
    ApiResponse::json(
        StatusCode::CREATED,
        &FeedDto {
            id: hash,
            url: format!("{base}/v1/feeds/{token}/calendar.ics"),
            created_at: feed.created_at,
        },
    )
}

/// `DELETE /v1/feeds/{id}`.
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::not_found("feed"));
    }
    match app.store.delete_feed(&user_id, id).await {
        Ok(()) => Ok(ApiResponse::no_content()),
        Err(StoreError::ConditionFailed) => Err(ApiError::not_found("feed")),
        Err(e) => Err(e.into()),
    }
}

/// `GET /v1/feeds/{token}/calendar.ics`: no session; the token in the URL is the credential.
pub async fn read(app: &App, _req: &ApiRequest, token: &str) -> ApiResult<ApiResponse> {
    if token.len() > 128 {
        return Err(ApiError::not_found("feed"));
    }
    let feed = app
        .store
        .feed(&ids::sha256_hex(token))
        .await?
        .ok_or_else(|| ApiError::not_found("feed"))?;
    let now = Utc::now();
    let range = TimeRange {
        start: now - Duration::days(PAST_DAYS),
        end: now + Duration::days(FUTURE_DAYS),
    };
    let live = live_calendars(app, &feed.user_id).await?;
    let calendars = live.keys().cloned().collect();
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .store
            .events_in_range(&RangeQuery {
                user_id: &feed.user_id,
                range,
                connections: &calendars,
                filter: &EventFilter::default(),
                limit: 1000,
                after: after.as_deref(),
                expand: false,
            })
            .await?;
        events.extend(page.events);
        match page.next {
            Some(next) if events.len() < 50_000 => after = Some(next),
            _ => break,
        }
    }
    let text = crate::ics::calendar(&feed.name, &events, range.start, range.end);
    Ok(ApiResponse {
        status: StatusCode::OK,
        headers: vec![("cache-control".into(), "private, max-age=300".into())],
        body: None,
        raw: Some(("text/calendar; charset=utf-8".into(), text)),
    })
}
