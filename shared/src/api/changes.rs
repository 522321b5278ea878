//! `GET /v1/changes`: the user's change log (`store::changes`) read forward from a cursor, for
//! apps without a public URL. Every created, changed and deleted event, in the order the writes
//! happened, paged and resumable; each change carries the event as it is now (not for
//! deletions, nor for events deleted since).

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::events::{dto, EventDto};
use super::input::query_number;
use super::instant::Instant;
use super::{ApiRequest, ApiResponse};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::model::Connection;
use crate::store::{ChangeKind, Commit, Position, CHANGE_RETENTION_DAYS};

/// Page sizes of `GET /v1/changes`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// A cursor older than this may point at commits already expired (retention less a margin).
const CURSOR_LIFETIME_DAYS: i64 = CHANGE_RETENTION_DAYS - 1;

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeDto {
    /// `created`, `updated` or `deleted`.
    #[schemars(with = "String")]
    pub kind: ChangeKind,
    /// When the change was recorded.
    pub at: Instant,
    pub event_id: String,
    pub calendar_id: String,
    /// The event as it is now; absent for deletions and for events deleted since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventDto>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePageDto {
    pub changes: Vec<ChangeDto>,
    /// Where to continue: pass it as `cursor` next time (also when `changes` is empty).
    pub next_cursor: String,
    /// True when more changes are ready now; false when the app is up to date.
    pub has_more: bool,
}

/// A cursor: the position and when it was issued (its age bounds what retention still holds).
pub(crate) fn encode_cursor(position: Position, issued: DateTime<Utc>) -> String {
    let raw = format!(
        "c1.{}.{}.{}",
        position.seq,
        position.offset,
        issued.timestamp()
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_cursor(text: &str, now: DateTime<Utc>) -> ApiResult<Position> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_cursor",
            "cursor is not a nextCursor this API returned",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let mut parts = raw.split('.');
    if parts.next() != Some("c1") {
        return Err(invalid());
    }
    let mut number = || parts.next().and_then(|p| p.parse::<u64>().ok());
    let (Some(seq), Some(offset), Some(issued)) = (number(), number(), number()) else {
        return Err(invalid());
    };
    let issued = DateTime::<Utc>::from_timestamp(i64::try_from(issued).map_err(|_| invalid())?, 0)
        .ok_or_else(invalid)?;
    if seq == 0 || issued > now + Duration::minutes(5) {
        return Err(invalid());
    }
    if now - issued > Duration::days(CURSOR_LIFETIME_DAYS) {
        return Err(ApiError::new(
            StatusCode::GONE,
            "cursor_expired",
            format!(
                "changes are kept {CHANGE_RETENTION_DAYS} days; list the events again, then \
                 start from GET /v1/changes?cursor=now"
            ),
        ));
    }
    Ok(Position {
        seq,
        offset: usize::try_from(offset).map_err(|_| invalid())?,
    })
}

/// `GET /v1/changes?cursor=&limit=`: no cursor reads from the oldest change kept; `now` answers
/// no changes and a cursor at the present, for an app that has just listed the events.
pub async fn list(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let limit = query_number(req, "limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?;
    let now = Utc::now();
    let from = match req.query.get("cursor").map(String::as_str) {
        None | Some("") => Position::START,
        Some("now") => Position::after_commit(app.store.change_head(&user_id).await?),
        Some(text) => decode_cursor(text, now)?,
    };
    let read = app.store.read_changes(&user_id, from, limit, now).await?;
    let entries: usize = read.commits.iter().map(|c| c.entries.len()).sum();
    let changes = change_dtos(app, &user_id, &read.commits).await?;
    let next = read.next.unwrap_or(from);
    ApiResponse::ok(&ChangePageDto {
        changes,
        next_cursor: encode_cursor(next, now),
        has_more: entries >= limit,
    })
}

/// The commits' entries as changes, each with its event as it is now.
pub(crate) async fn change_dtos(
    app: &App,
    user_id: &str,
    commits: &[Commit],
) -> ApiResult<Vec<ChangeDto>> {
    let mut wanted: HashMap<&str, Vec<String>> = HashMap::new();
    for entry in commits.iter().flat_map(|c| &c.entries) {
        if entry.kind != ChangeKind::Deleted {
            wanted
                .entry(entry.connection_id.as_str())
                .or_default()
                .push(entry.event_key.clone());
        }
    }
    let calendars: HashMap<String, Connection> = if wanted.is_empty() {
        HashMap::new()
    } else {
        app.store
            .connections(user_id)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect()
    };
    let mut current = HashMap::new();
    for (connection_id, keys) in wanted {
        if calendars.contains_key(connection_id) {
            for (key, event) in app.store.events_by_keys(connection_id, &keys).await? {
                current.insert((connection_id.to_owned(), key), event);
            }
        }
    }
    Ok(commits
        .iter()
        .flat_map(|commit| commit.entries.iter().map(move |e| (commit.at, e)))
        .map(|(at, entry)| {
            let key = (entry.connection_id.clone(), entry.event_key.clone());
            let event = current
                .get(&key)
                .filter(|e| !e.is_deleted())
                .zip(calendars.get(&entry.connection_id))
                .map(|(event, calendar)| dto(event, calendar));
            ChangeDto {
                kind: entry.kind,
                at: at.into(),
                event_id: ids::encode_event_id(&entry.connection_id, &entry.event_key),
                calendar_id: entry.connection_id.clone(),
                event,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_expire() {
        let now = Utc::now();
        let position = Position { seq: 42, offset: 7 };
        assert_eq!(
            decode_cursor(&encode_cursor(position, now), now).unwrap(),
            position
        );
        let old = encode_cursor(position, now - Duration::days(CHANGE_RETENTION_DAYS));
        assert_eq!(
            decode_cursor(&old, now).unwrap_err().status,
            StatusCode::GONE
        );
        for bad in ["", "x", "YzEuMC4wLjA", "YzIuMS4wLjA"] {
            assert_eq!(
                decode_cursor(bad, now).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
