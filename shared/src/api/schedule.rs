//! Across all of a user's calendars (Google, Microsoft and iCloud alike): where events clash,
//! when the user is busy, and which slots are free within working hours.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveTime, Weekday};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::events::{capped_dto, live_calendars, queried_calendars, CappedSeriesDto};
use super::input::json_body;
use super::instant::Instant;
use super::{ApiRequest, ApiResponse, App};
use crate::error::{ApiError, ApiResult};
use crate::model::{Connection, Event, ResponseStatus};
use crate::schedule::{clash_groups, free_slots, merge, Interval, Span, WorkingHours};
use crate::store::{EventFilter, RangeQuery};
use crate::time::{parse_zone, TimeRange};

/// A query reads at most this many events; a busier range must be split.
const MAX_EVENTS: usize = 20_000;
const MAX_SLOTS: usize = 200;

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRefDto {
    pub id: String,
    pub title: String,
    pub calendar_id: String,
    pub calendar_name: String,
    pub start: Instant,
    pub end: Instant,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictDto {
    /// From the first start to the last end of the group.
    pub start: Instant,
    pub end: Instant,
    /// Two or more events that overlap one another (transitively).
    pub events: Vec<EventRefDto>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictsDto {
    /// Clashes between timed, busy events.
    pub conflicts: Vec<ConflictDto>,
    /// Clashes between all-day events, reported apart: they rarely block a timed meeting.
    pub all_day_conflicts: Vec<ConflictDto>,
    /// Series cut at the per-read cap: their later occurrences were not taken into account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped_series: Vec<CappedSeriesDto>,
}

#[derive(Serialize, JsonSchema)]
pub struct IntervalDto {
    pub start: Instant,
    pub end: Instant,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarBusyDto {
    pub calendar_id: String,
    pub busy: Vec<IntervalDto>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreeBusyDto {
    /// Merged busy time across the calendars.
    pub busy: Vec<IntervalDto>,
    pub calendars: Vec<CalendarBusyDto>,
    /// Series cut at the per-read cap: their later occurrences were not taken into account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped_series: Vec<CappedSeriesDto>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilityRequest {
    /// RFC 3339.
    pub start: String,
    pub end: String,
    /// Length of the slot wanted, 5 to 480 minutes.
    pub duration_minutes: i64,
    /// Kept free before and after every busy event, 0 to 120 minutes.
    #[serde(default)]
    pub buffer_minutes: i64,
    /// Slots start on this grid, 5 to 120 minutes (default 15).
    #[serde(default)]
    pub step_minutes: Option<i64>,
    /// IANA zone of the working hours.
    pub time_zone: String,
    /// `HH:MM`, in `timeZone`.
    pub working_hours_start: String,
    pub working_hours_end: String,
    /// Two-letter days (`MO`..`SU`); default Monday to Friday.
    #[serde(default)]
    pub working_days: Option<Vec<String>>,
    #[serde(default)]
    pub calendar_ids: Option<Vec<String>>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityDto {
    pub slots: Vec<IntervalDto>,
    /// Series cut at the per-read cap: their later occurrences were not taken into account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped_series: Vec<CappedSeriesDto>,
}

/// Every event of the chosen live calendars overlapping the range, series expanded: all pages
/// of the same occurrence stream `/v1/events` serves.
struct RangeEvents {
    events: Vec<Event>,
    calendars: HashMap<String, Connection>,
    /// Series cut at the per-read cap (their later occurrences are not counted).
    capped: Vec<(String, String)>,
}

async fn events_in(
    app: &App,
    user_id: &str,
    range: TimeRange,
    filter: Option<&str>,
) -> ApiResult<RangeEvents> {
    let live = live_calendars(app, user_id).await?;
    let calendars = queried_calendars(filter, &live)?;
    let mut events = Vec::new();
    let mut capped = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .store
            .events_in_range(&RangeQuery {
                user_id,
                range,
                connections: &calendars,
                filter: &EventFilter::default(),
                limit: 1000,
                after: after.as_deref(),
            })
            .await?;
        events.extend(page.events);
        capped.extend(page.capped);
        if events.len() > MAX_EVENTS {
            return Err(ApiError::bad_request(
                "range_too_busy",
                format!("more than {MAX_EVENTS} events in this range; ask for a shorter one"),
            ));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => {
                capped.sort();
                capped.dedup();
                return Ok(RangeEvents {
                    events,
                    calendars: live,
                    capped,
                });
            }
        }
    }
}

/// The addresses that are the user: their login and their connected accounts.
async fn own_addresses(
    app: &App,
    user_id: &str,
    calendars: &HashMap<String, Connection>,
) -> ApiResult<HashSet<String>> {
    let mut addresses = HashSet::new();
    if let Some(user) = app.store.user(user_id).await? {
        addresses.insert(user.email.to_lowercase());
    }
    let accounts: HashSet<&str> = calendars
        .values()
        .filter_map(|c| c.account_id.as_deref())
        .collect();
    for account in accounts {
        if let Some(account) = app.store.account(user_id, account).await? {
            addresses.insert(account.account_email.to_lowercase());
        }
    }
    Ok(addresses)
}

/// Busy: not shown as free, and not declined by the user.
fn is_busy(event: &Event, me: &HashSet<String>) -> bool {
    !event.transparent
        && !event
            .attendees
            .iter()
            .any(|a| me.contains(&a.email) && a.response_status == Some(ResponseStatus::Declined))
}

fn range_of(req: &ApiRequest) -> ApiResult<TimeRange> {
    TimeRange::parse(
        req.query.get("start").map(String::as_str),
        req.query.get("end").map(String::as_str),
    )
}

fn group_dto(
    group: Vec<Interval>,
    events: &[Event],
    calendars: &HashMap<String, Connection>,
) -> ConflictDto {
    let refs: Vec<EventRefDto> = group
        .iter()
        .map(|i| {
            let e = &events[i.item];
            EventRefDto {
                id: e.public_id(),
                title: e.title.clone(),
                calendar_id: e.connection_id.clone(),
                calendar_name: calendars
                    .get(&e.connection_id)
                    .map(|c| c.display_name().to_owned())
                    .unwrap_or_default(),
                start: e.start_time.into(),
                end: e.end_time.into(),
            }
        })
        .collect();
    ConflictDto {
        start: group
            .iter()
            .map(|i| i.start)
            .min()
            .unwrap_or_default()
            .into(),
        end: group.iter().map(|i| i.end).max().unwrap_or_default().into(),
        events: refs,
    }
}

/// `GET /v1/conflicts?start&end[&calendarIds]`.
pub async fn conflicts(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let range = range_of(req)?;
    let RangeEvents {
        events,
        calendars,
        capped,
    } = events_in(
        app,
        &user_id,
        range,
        req.query.get("calendarIds").map(String::as_str),
    )
    .await?;
    let me = own_addresses(app, &user_id, &calendars).await?;
    let interval = |(item, e): (usize, &Event)| Interval {
        start: e.start_time,
        end: e.end_time,
        item,
    };
    let busy = |all_day: bool| -> Vec<Interval> {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_all_day == all_day && is_busy(e, &me))
            .map(interval)
            .collect()
    };
    let to_dtos = |groups: Vec<Vec<Interval>>| {
        groups
            .into_iter()
            .map(|g| group_dto(g, &events, &calendars))
            .collect()
    };
    ApiResponse::ok(&ConflictsDto {
        conflicts: to_dtos(clash_groups(busy(false))),
        all_day_conflicts: to_dtos(clash_groups(busy(true))),
        capped_series: capped_dto(&capped),
    })
}

fn intervals(list: Vec<Span>) -> Vec<IntervalDto> {
    list.into_iter()
        .map(|(start, end)| IntervalDto {
            start: start.into(),
            end: end.into(),
        })
        .collect()
}

/// `GET /v1/freebusy?start&end[&calendarIds]`.
pub async fn freebusy(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let range = range_of(req)?;
    let RangeEvents {
        events,
        calendars,
        capped,
    } = events_in(
        app,
        &user_id,
        range,
        req.query.get("calendarIds").map(String::as_str),
    )
    .await?;
    let me = own_addresses(app, &user_id, &calendars).await?;
    let clip = |e: &Event| (e.start_time.max(range.start), e.end_time.min(range.end));
    let busy: Vec<&Event> = events.iter().filter(|e| is_busy(e, &me)).collect();
    let mut per_calendar: HashMap<&str, Vec<Span>> = HashMap::new();
    for e in &busy {
        per_calendar
            .entry(e.connection_id.as_str())
            .or_default()
            .push(clip(e));
    }
    let mut calendars_dto: Vec<CalendarBusyDto> = per_calendar
        .into_iter()
        .map(|(id, list)| CalendarBusyDto {
            calendar_id: id.to_owned(),
            busy: intervals(merge(list)),
        })
        .collect();
    calendars_dto.sort_by(|a, b| a.calendar_id.cmp(&b.calendar_id));
    ApiResponse::ok(&FreeBusyDto {
        busy: intervals(merge(busy.iter().map(|e| clip(e)).collect())),
        calendars: calendars_dto,
        capped_series: capped_dto(&capped),
    })
}

fn minutes(value: i64, field: &str, range: std::ops::RangeInclusive<i64>) -> ApiResult<Duration> {
    if range.contains(&value) {
        Ok(Duration::minutes(value))
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "{field} must be {} to {} minutes",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn clock(text: &str, field: &str) -> ApiResult<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
        ApiError::bad_request("invalid_field", format!("{field} {text:?} is not HH:MM"))
    })
}

/// `POST /v1/availability`: free slots of a length within working hours, across calendars.
pub async fn availability(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let body: AvailabilityRequest = json_body(req)?;
    let range = TimeRange::parse(Some(&body.start), Some(&body.end))?;
    let length = minutes(body.duration_minutes, "durationMinutes", 5..=480)?;
    let buffer = minutes(body.buffer_minutes, "bufferMinutes", 0..=120)?;
    let step = minutes(body.step_minutes.unwrap_or(15), "stepMinutes", 5..=120)?;
    let days = match &body.working_days {
        None => vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        Some(days) => days
            .iter()
            .map(|d| match d.to_ascii_uppercase().as_str() {
                "MO" => Ok(Weekday::Mon),
                "TU" => Ok(Weekday::Tue),
                "WE" => Ok(Weekday::Wed),
                "TH" => Ok(Weekday::Thu),
                "FR" => Ok(Weekday::Fri),
                "SA" => Ok(Weekday::Sat),
                "SU" => Ok(Weekday::Sun),
                other => Err(ApiError::bad_request(
                    "invalid_field",
                    format!("workingDays: {other:?} is not MO..SU"),
                )),
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let hours = WorkingHours {
        zone: parse_zone(&body.time_zone)?,
        days,
        from: clock(&body.working_hours_start, "workingHoursStart")?,
        to: clock(&body.working_hours_end, "workingHoursEnd")?,
    };
    if hours.to <= hours.from {
        return Err(ApiError::bad_request(
            "invalid_range",
            "workingHoursEnd must be after workingHoursStart",
        ));
    }
    let filter = body.calendar_ids.as_ref().map(|ids| ids.join(","));
    // Events just outside the range still block slots at its edges through the buffer.
    let widened = TimeRange {
        start: range.start - buffer,
        end: range.end + buffer,
    };
    let RangeEvents {
        events,
        calendars,
        capped,
    } = events_in(app, &user_id, widened, filter.as_deref()).await?;
    let me = own_addresses(app, &user_id, &calendars).await?;
    let busy: Vec<Span> = events
        .iter()
        .filter(|e| is_busy(e, &me))
        .map(|e| (e.start_time, e.end_time))
        .collect();
    let slots = free_slots(
        &hours.windows(range.start, range.end),
        &busy,
        length,
        buffer,
        step,
        MAX_SLOTS,
    );
    ApiResponse::ok(&AvailabilityDto {
        slots: intervals(slots),
        capped_series: capped_dto(&capped),
    })
}
