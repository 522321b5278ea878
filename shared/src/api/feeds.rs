//! Secret ICS feed URLs of a user's merged calendar (RFC 5545), revocable.

use chrono::{DateTime, Duration, Utc};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::events::live_calendars;
use super::instant::Instant;
use super::{ApiRequest, ApiResponse, App};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use std::collections::{HashMap, HashSet};

use crate::store::{EventFilter, Feed, RangeContents, RangeQuery, Store, StoreError};
use crate::time::TimeRange;

/// What a feed covers: the recent past and the coming year.
const PAST_DAYS: i64 = 30;
const FUTURE_DAYS: i64 = 365;
/// The most events and series one feed carries.
const MAX_FEED_EVENTS: usize = 50_000;

/// The feed of a user's live calendars over `range`: iCalendar text.
pub async fn render(app: &App, user_id: &str, name: &str, range: TimeRange) -> ApiResult<String> {
    let live = live_calendars(app, user_id).await?;
    let calendars = live.keys().cloned().collect();
    let contents = app
        .store
        .range_contents(&RangeQuery {
            user_id,
            range,
            connections: &calendars,
            filter: &EventFilter::default(),
            limit: MAX_FEED_EVENTS,
            after: None,
        })
        .await?;
    if contents.events.len() + contents.series.len() > MAX_FEED_EVENTS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "feed_too_large",
            format!("more than {MAX_FEED_EVENTS} events and series in the feed's window"),
        ));
    }
    Ok(crate::ics::calendar(
        name,
        &feed_entries(contents),
        range.start,
        range.end,
    ))
}

/// The feed's VEVENTs: each series with an EXDATE for every occurrence its exceptions replace
/// but that no exception in the feed stands for (cancelled, or moved out of the window), then
/// the events and exceptions. Subscribers then see what `/v1/events` lists.
fn feed_entries(contents: RangeContents) -> Vec<crate::ics::FeedEvent> {
    let shown: HashSet<(&str, &str, DateTime<Utc>)> = contents
        .events
        .iter()
        .filter_map(|e| {
            Some((
                e.connection_id.as_str(),
                e.parent_event_id.as_deref()?,
                e.replaced_occurrence()?,
            ))
        })
        .collect();
    // Whether each series in the feed is all-day: its exceptions' RECURRENCE-ID takes that form.
    let series_all_day: HashMap<(&str, &str), bool> = contents
        .series
        .iter()
        .map(|s| {
            let m = &s.master;
            (
                (m.connection_id.as_str(), m.event_key.as_str()),
                m.is_all_day,
            )
        })
        .collect();
    let mut entries: Vec<crate::ics::FeedEvent> = Vec::new();
    for series in &contents.series {
        let master = &series.master;
        let mut exdates: Vec<DateTime<Utc>> = series
            .replaced
            .iter()
            .copied()
            .filter(|start| {
                let key = (
                    master.connection_id.as_str(),
                    master.event_key.as_str(),
                    *start,
                );
                !shown.contains(&key)
            })
            .collect();
        exdates.sort();
        let mut entry = crate::ics::FeedEvent::plain(master.clone());
        entry.exdates = exdates;
        entries.push(entry);
    }
    for event in &contents.events {
        let mut entry = crate::ics::FeedEvent::plain(event.clone());
        if let Some(parent) = event.parent_event_id.as_deref() {
            // A series outside the window: the exception's own form is the best guess.
            if let Some(all_day) = series_all_day.get(&(event.connection_id.as_str(), parent)) {
                entry.series_all_day = *all_day;
            }
        }
        entries.push(entry);
    }
    entries
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedDto {
    /// For `DELETE /v1/feeds/{id}`.
    pub id: String,
    /// Subscribe to this URL. It is the credential: share it only with who may read the calendar.
    pub url: String,
    pub created_at: Instant,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedSummaryDto {
    /// For `DELETE /v1/feeds/{id}`.
    pub id: String,
    pub name: String,
    pub created_at: Instant,
}

impl From<crate::store::FeedEntry> for FeedSummaryDto {
    fn from(f: crate::store::FeedEntry) -> Self {
        Self {
            id: f.id,
            name: f.name,
            created_at: f.created_at.into(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedListDto {
    /// Oldest first. The URLs are not here: they hold the credential, which is shown once.
    pub feeds: Vec<FeedSummaryDto>,
}

/// `GET /v1/feeds`.
pub async fn list(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let feeds = app
        .store
        .feeds(&user_id)
        .await?
        .into_iter()
        .map(FeedSummaryDto::from)
        .collect();
    ApiResponse::ok(&FeedListDto { feeds })
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
            created_at: feed.created_at.into(),
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
    let text = render(app, &feed.user_id, &feed.name, range).await?;
    Ok(ApiResponse {
        status: StatusCode::OK,
        headers: vec![("cache-control".into(), "private, max-age=300".into())],
        body: None,
        raw: Some(("text/calendar; charset=utf-8".into(), text)),
    })
}
