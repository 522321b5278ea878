//! Microsoft Graph `calendarView/delta`: instances within a window; `@odata.nextLink` pages to an
//! `@odata.deltaLink` (the cursor); `@removed` entries are tombstones (deleted, or moved out of the
//! window); 410 means the delta token is lost. Times arrive in UTC; the event's own zone is in
//! `originalStartTimeZone` as a Windows name.

use chrono::{NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::{read_body, zones, FeedError, JsonListing};
use crate::crypto::Secret;
use crate::model::{Attendee, Event, Reminder, ReminderMethod, ResponseStatus};
use crate::providers::{transport_error, ProviderError};
use crate::sync::{Change, Page};
use crate::time::{key_format, TimeRange};

/// Events per page we ask Graph for.
const PAGE_SIZE: u32 = 200;

pub struct GraphFeed {
    pub http: reqwest::Client,
    pub api_base: String,
    pub calendar_id: String,
    pub token: Secret,
    pub window: TimeRange,
}

impl GraphFeed {
    /// Links from Graph are followed only to Graph itself: the token must not go elsewhere.
    fn checked(&self, link: &str) -> Result<String, FeedError> {
        let same = match (url::Url::parse(&self.api_base), url::Url::parse(link)) {
            (Ok(a), Ok(b)) => a.origin() == b.origin(),
            _ => false,
        };
        if same {
            Ok(link.to_owned())
        } else {
            Err(ProviderError::Protocol("a Graph link points outside Graph".into()).into())
        }
    }

    pub async fn fetch(&self, cursor: Option<&str>, page: Option<&str>) -> Result<Page, FeedError> {
        let request = match page.or(cursor) {
            Some(link) => self.http.get(self.checked(link)?),
            None => {
                let calendar: String =
                    url::form_urlencoded::byte_serialize(self.calendar_id.as_bytes()).collect();
                self.http
                    .get(format!(
                        "{}/me/calendars/{calendar}/calendarView/delta",
                        self.api_base
                    ))
                    .query(&[
                        ("startDateTime", key_format(self.window.start)),
                        ("endDateTime", key_format(self.window.end)),
                    ])
            }
        };
        let response = request
            .bearer_auth(self.token.expose())
            .header("Prefer", format!("odata.maxpagesize={PAGE_SIZE}"))
            .send()
            .await
            .map_err(transport_error)?;
        let body = read_body(response, &[410]).await?;
        const LISTING: JsonListing = JsonListing {
            what: "calendarView/delta",
            items: "value",
            next_page: "@odata.nextLink",
            cursor: "@odata.deltaLink",
        };
        LISTING.page(&body, to_change)
    }
}

impl GraphFeed {
    /// A series master by Graph's id, with its pattern as an RRULE; `None` if Graph no longer
    /// has it.
    pub async fn series_master(&self, id: &str) -> Result<Option<Event>, FeedError> {
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let response = self
            .http
            .get(format!("{}/me/events/{id}", self.api_base))
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = read_body(response, &[]).await?;
        let item: Value = serde_json::from_str(&body)
            .map_err(|e| ProviderError::Protocol(format!("series master: {e}")))?;
        match to_change(&item) {
            Change::Upsert(event) if event.is_recurring => Ok(Some(*event)),
            _ => Ok(None),
        }
    }
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Graph's `{dateTime, timeZone}`: a local time without offset in the named zone.
fn instant(value: Option<&Value>) -> Result<chrono::DateTime<Utc>, String> {
    let value = value.ok_or("missing time")?;
    let local = value
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or("no dateTime")?;
    let parsed = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| format!("bad dateTime {local:?}"))?;
    let zone: Tz = value
        .get("timeZone")
        .and_then(Value::as_str)
        .and_then(zones::resolve)
        .unwrap_or(Tz::UTC);
    zone.from_local_datetime(&parsed)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{local} does not exist in {}", zone.name()))
}

pub(crate) fn to_change(item: &Value) -> Change {
    let Some(id) = text(item, "/id") else {
        return Change::Malformed {
            key: "(no id)".into(),
            reason: "event without id".into(),
        };
    };
    if item.get("@removed").is_some()
        || item.get("isCancelled").and_then(Value::as_bool) == Some(true)
    {
        return Change::Delete { key: id };
    }
    match to_event(&id, item) {
        Ok(event) => Change::Upsert(Box::new(event)),
        Err(reason) => Change::Malformed { key: id, reason },
    }
}

fn to_event(id: &str, item: &Value) -> Result<Event, String> {
    let start = instant(item.get("start"))?;
    let end = instant(item.get("end"))?;
    if end < start {
        return Err("end before start".into());
    }
    let zone = text(item, "/originalStartTimeZone")
        .as_deref()
        .and_then(zones::resolve);
    let title = text(item, "/subject").unwrap_or_else(|| "(no title)".into());
    let mut event = Event::new("", "", id, &title, (start, end), Utc::now());
    event.provider_event_id = Some(id.to_owned());
    event.description = text(item, "/body/content").filter(|b| !b.is_empty());
    event.location = text(item, "/location/displayName").filter(|l| !l.is_empty());
    event.timezone = zone.map(|z| z.name().to_owned());
    if item.get("isAllDay").and_then(Value::as_bool) == Some(true) {
        let local =
            |t: chrono::DateTime<Utc>| t.with_timezone(&zone.unwrap_or(Tz::UTC)).date_naive();
        event.is_all_day = true;
        event.start_date = Some(local(start));
        event.end_date = Some(local(end));
    }
    if text(item, "/type").as_deref() == Some("seriesMaster") {
        // Graph lists its occurrences; the master is kept for editing the series as a whole.
        let lines = item
            .get("recurrence")
            .and_then(|r| crate::providers::graph_recurrence::from_graph(r, zone))
            .ok_or("a series master without a pattern we can read")?;
        crate::series_edit::set_recurrence(&mut event, &[lines]);
        event.provider_expanded = true;
    }
    if matches!(
        text(item, "/type").as_deref(),
        Some("occurrence" | "exception")
    ) {
        event.parent_event_id = text(item, "/seriesMasterId");
        event.provider_expanded = true;
        event.original_start_time = text(item, "/originalStart")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
    }
    event.attendees = item
        .get("attendees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some(Attendee {
                email: text(a, "/emailAddress/address")?.to_lowercase(),
                name: text(a, "/emailAddress/name"),
                response_status: match text(a, "/status/response").as_deref() {
                    Some("accepted" | "organizer") => Some(ResponseStatus::Accepted),
                    Some("declined") => Some(ResponseStatus::Declined),
                    Some("tentativelyAccepted") => Some(ResponseStatus::Tentative),
                    Some("none" | "notResponded") => Some(ResponseStatus::NeedsAction),
                    _ => None,
                },
                optional: text(a, "/type").as_deref() == Some("optional"),
            })
        })
        .collect();
    if item.get("isReminderOn").and_then(Value::as_bool) == Some(true) {
        if let Some(minutes) = item
            .get("reminderMinutesBeforeStart")
            .and_then(Value::as_u64)
        {
            event.reminders = vec![Reminder {
                method: ReminderMethod::Popup,
                minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
            }];
        }
    }
    if let Some(join) =
        text(item, "/onlineMeeting/joinUrl").or_else(|| text(item, "/onlineMeetingUrl"))
    {
        event.has_conference = true;
        event.provider_metadata = Some(serde_json::json!({ "onlineMeeting": { "joinUrl": join } }));
    }
    // Graph's exceptions differ from their series; a change of the series' pattern drops them at
    // Exchange, and calsync writes them again (docs/decisions.md 34).
    if text(item, "/type").as_deref() == Some("exception") {
        let mut metadata = event
            .provider_metadata
            .take()
            .unwrap_or_else(|| serde_json::json!({}));
        metadata["seriesType"] = serde_json::json!("exception");
        event.provider_metadata = Some(metadata);
    }
    event.transparent = text(item, "/showAs").as_deref() == Some("free");
    event.provider_etag = text(item, "/@odata.etag").or_else(|| text(item, "/changeKey"));
    Ok(event)
}
