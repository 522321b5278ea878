//! Google Calendar v3 `events.list`: a full listing, then `syncToken`; `nextPageToken` until the
//! last page, which alone carries `nextSyncToken` (a short or empty page is not the end);
//! `status: cancelled` is a tombstone; 410 means the token is lost.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::{read_body, zones, FeedError, JsonListing};
use crate::crypto::Secret;
use crate::model::{Attendee, Event, Reminder, ReminderMethod, ResponseStatus};
use crate::providers::transport_error;
use crate::sync::{Change, Page};
use crate::time::EventTime;

/// Google's maximum page size.
const PAGE_SIZE: &str = "2500";

pub struct GoogleFeed {
    pub http: reqwest::Client,
    pub api_base: String,
    pub calendar_id: String,
    pub token: Secret,
}

impl GoogleFeed {
    pub async fn fetch(&self, cursor: Option<&str>, page: Option<&str>) -> Result<Page, FeedError> {
        let calendar: String =
            url::form_urlencoded::byte_serialize(self.calendar_id.as_bytes()).collect();
        let mut request = self
            .http
            .get(format!("{}/calendars/{calendar}/events", self.api_base))
            .bearer_auth(self.token.expose())
            .query(&[("maxResults", PAGE_SIZE)]);
        request = match cursor {
            Some(token) => request.query(&[("syncToken", token)]),
            // A full listing: deleted events are not needed (absence proves deletion).
            None => request.query(&[("showDeleted", "false"), ("singleEvents", "false")]),
        };
        if let Some(page) = page {
            request = request.query(&[("pageToken", page)]);
        }
        let response = request.send().await.map_err(transport_error)?;
        let body = read_body(response, &[410]).await?;
        const LISTING: JsonListing = JsonListing {
            what: "events.list",
            items: "items",
            next_page: "nextPageToken",
            cursor: "nextSyncToken",
        };
        LISTING.page(&body, to_change)
    }
}

fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// Google's `{date}` or `{dateTime, timeZone}`.
fn time(value: Option<&Value>) -> Result<(EventTime, Option<chrono_tz::Tz>), String> {
    let value = value.ok_or("missing time")?;
    let zone = value
        .get("timeZone")
        .and_then(Value::as_str)
        .and_then(zones::resolve);
    if let Some(date) = value.get("date").and_then(Value::as_str) {
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|_| format!("bad date {date:?}"))?;
        return Ok((EventTime::Date(date), zone));
    }
    let text = value
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or("no date or dateTime")?;
    let instant =
        DateTime::parse_from_rfc3339(text).map_err(|_| format!("bad dateTime {text:?}"))?;
    Ok((EventTime::Instant(instant.with_timezone(&Utc)), zone))
}

pub(crate) fn to_change(item: &Value) -> Change {
    let Some(id) = text(item, "id") else {
        return Change::Malformed {
            key: "(no id)".into(),
            reason: "event without id".into(),
        };
    };
    if text(item, "status").as_deref() == Some("cancelled") {
        // A cancelled occurrence of a series is remembered, so the series skips it.
        let original = time(item.get("originalStartTime"))
            .ok()
            .map(|(t, z)| t.to_instant(z));
        return match (text(item, "recurringEventId"), original) {
            (Some(parent), Some(original_start)) => Change::CancelInstance {
                key: id,
                parent,
                original_start,
            },
            _ => Change::Delete { key: id },
        };
    }
    match to_event(&id, item) {
        Ok(event) => Change::Upsert(Box::new(event)),
        Err(reason) => Change::Malformed { key: id, reason },
    }
}

fn to_event(id: &str, item: &Value) -> Result<Event, String> {
    let (start, start_zone) = time(item.get("start"))?;
    let (end, end_zone) = time(item.get("end"))?;
    let zone = start_zone.or(end_zone);
    let (start_time, end_time) = (start.to_instant(zone), end.to_instant(zone));
    if end_time < start_time {
        return Err("end before start".into());
    }
    let title = text(item, "summary").unwrap_or_else(|| "(no title)".into());
    let mut event = Event::new("", "", id, &title, (start_time, end_time), Utc::now());
    event.provider_event_id = Some(id.to_owned());
    event.description = text(item, "description");
    event.location = text(item, "location");
    event.timezone = zone.map(|z| z.name().to_owned());
    if let (EventTime::Date(s), EventTime::Date(e)) = (start, end) {
        event.is_all_day = true;
        event.start_date = Some(s);
        event.end_date = Some(e);
    }
    if let Some(lines) = item.get("recurrence").and_then(Value::as_array) {
        let lines: Vec<&str> = lines.iter().filter_map(Value::as_str).collect();
        crate::recurrence::apply_recurrence(&mut event, &lines);
    }
    event.parent_event_id = text(item, "recurringEventId");
    if event.parent_event_id.is_some() {
        event.original_start_time = time(item.get("originalStartTime"))
            .ok()
            .map(|(t, z)| t.to_instant(z.or(zone)));
    }
    event.attendees = item
        .get("attendees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some(Attendee {
                email: text(a, "email")?.to_lowercase(),
                name: text(a, "displayName"),
                response_status: match text(a, "responseStatus").as_deref() {
                    Some("accepted") => Some(ResponseStatus::Accepted),
                    Some("declined") => Some(ResponseStatus::Declined),
                    Some("tentative") => Some(ResponseStatus::Tentative),
                    Some("needsAction") => Some(ResponseStatus::NeedsAction),
                    _ => None,
                },
                optional: a.get("optional").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    event.reminders = item
        .pointer("/reminders/overrides")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(Reminder {
                method: if text(r, "method").as_deref() == Some("email") {
                    ReminderMethod::Email
                } else {
                    ReminderMethod::Popup
                },
                minutes: u32::try_from(r.get("minutes")?.as_u64()?).ok()?,
            })
        })
        .collect();
    let hangout = item.get("hangoutLink").cloned();
    let conference = item.get("conferenceData").cloned();
    if hangout.is_some() || conference.is_some() {
        event.has_conference = true;
        event.provider_metadata =
            Some(serde_json::json!({ "hangoutLink": hangout, "conferenceData": conference }));
    }
    event.transparent = text(item, "transparency").as_deref() == Some("transparent");
    event.provider_etag = text(item, "etag");
    Ok(event)
}
