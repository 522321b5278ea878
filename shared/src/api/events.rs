//! Events across all of the user's calendars: range queries (seed pattern 1, with overlap
//! semantics), and create / change / delete on the user's own calendars, queued for write-back.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::calendars::visible;
use super::input::{self, json_body, query_bool, query_number};
use super::instant::{EventTimeView, Instant};
use super::{ApiRequest, ApiResponse, App};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::model::{
    Attendee, AuditEntry, Connection, Event, PendingChange, Provider, Reminder, SyncStatus,
    PURGE_AFTER_DAYS,
};
use crate::store::{EventFilter, RangeQuery, Store, StoreError};
use crate::time::{key_format, EventTime, EventTimeDto, TimeRange, MAX_EVENT_DAYS};

const MAX_ATTENDEES: usize = 300;
const MAX_REMINDERS: usize = 5;
const MAX_REMINDER_MINUTES: u32 = 40_320;
const MAX_CALENDAR_FILTER: usize = 50;

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarRefDto {
    pub id: String,
    pub name: String,
    pub color: String,
    pub provider: Provider,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDto {
    pub id: String,
    pub calendar: CalendarRefDto,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub start: EventTimeView,
    pub end: EventTimeView,
    pub is_all_day: bool,
    pub attendees: Vec<Attendee>,
    pub reminders: Vec<Reminder>,
    pub has_conference: bool,
    /// Meet / Teams links and other provider extras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<serde_json::Value>,
    pub sync_status: SyncStatus,
    /// Why writing this event back to its provider failed; retried with every sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,
    pub is_recurring: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrence_rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_event_id: Option<String>,
    /// For an occurrence or an exception of a series: the series' id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurring_event_id: Option<String>,
    /// For an occurrence or an exception: the start the series' rule gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_start_time: Option<Instant>,
    pub created_at: Instant,
    pub updated_at: Instant,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventListDto {
    pub events: Vec<EventDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Series with more occurrences in the range than one read lists (2,000): their later
    /// occurrences are left out. Only rules that arrived by sync can be that dense.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped_series: Vec<CappedSeriesDto>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CappedSeriesDto {
    /// The series' id.
    pub id: String,
    /// Occurrences of it listed for the range, at most.
    pub listed: usize,
}

/// The series a read cut short, as the API names them.
pub(crate) fn capped_dto(capped: &[(String, String)]) -> Vec<CappedSeriesDto> {
    capped
        .iter()
        .map(|(connection, key)| CappedSeriesDto {
            id: ids::encode_event_id(connection, key),
            listed: crate::recurrence::SERIES_CAP,
        })
        .collect()
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateEventRequest {
    pub calendar_id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    pub start: EventTimeDto,
    pub end: EventTimeDto,
    #[serde(default)]
    pub attendees: Vec<Attendee>,
    #[serde(default)]
    pub reminders: Vec<Reminder>,
    /// A recurring event: RFC 5545 lines, e.g. `["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10"]`, with
    /// optional `EXDATE` / `RDATE` lines. Expanded in the event's time zone.
    #[serde(default)]
    pub recurrence: Option<Vec<String>>,
}

/// Absent fields stay as they are; `null` clears description and location.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateEventRequest {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "input::nullable")]
    #[schemars(with = "Option<String>")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "input::nullable")]
    #[schemars(with = "Option<String>")]
    pub location: Option<Option<String>>,
    #[serde(default)]
    pub start: Option<EventTimeDto>,
    #[serde(default)]
    pub end: Option<EventTimeDto>,
    #[serde(default)]
    pub attendees: Option<Vec<Attendee>>,
    #[serde(default)]
    pub reminders: Option<Vec<Reminder>>,
    /// A series' new rule (RFC 5545 lines, as on create). Only on a series (`scope=series`, the
    /// default for a series id) or from a split (`scope=following`); overrides are kept where
    /// their original start still occurs (docs/decisions.md 34).
    #[serde(default)]
    pub recurrence: Option<Vec<String>>,
}

/// Validated start and end of an event.
pub(super) struct Schedule {
    start: EventTime,
    end: EventTime,
    zone: Option<Tz>,
}

impl Schedule {
    fn parse(start: &EventTimeDto, end: &EventTimeDto) -> ApiResult<Self> {
        let (start, start_zone) = EventTime::parse(start, "start")?;
        let (end, end_zone) = EventTime::parse(end, "end")?;
        let zone = start_zone.or(end_zone);
        let schedule = Self { start, end, zone };
        let (s, e) = (schedule.start_time(), schedule.end_time());
        match (start, end) {
            (EventTime::Date(_), EventTime::Date(_))
            | (EventTime::Instant(_), EventTime::Instant(_)) => {}
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_time",
                    "start and end must both be dates (all-day) or both date-times",
                ))
            }
        }
        if e <= s {
            return Err(ApiError::bad_request(
                "invalid_range",
                "end must be after start",
            ));
        }
        if e - s > Duration::days(MAX_EVENT_DAYS) {
            return Err(ApiError::bad_request(
                "event_too_long",
                format!("an event may last at most {MAX_EVENT_DAYS} days"),
            ));
        }
        Ok(schedule)
    }

    pub(super) fn of(event: &Event) -> Self {
        let zone = event.timezone.as_deref().and_then(|z| z.parse::<Tz>().ok());
        let (start, end) = match (event.start_date, event.end_date) {
            (Some(s), Some(e)) if event.is_all_day => (EventTime::Date(s), EventTime::Date(e)),
            _ => (
                EventTime::Instant(event.start_time),
                EventTime::Instant(event.end_time),
            ),
        };
        Self { start, end, zone }
    }

    fn start_time(&self) -> DateTime<Utc> {
        self.start.to_instant(self.zone)
    }

    fn end_time(&self) -> DateTime<Utc> {
        self.end.to_instant(self.zone)
    }

    fn apply(&self, event: &mut Event) {
        event.start_time = self.start_time();
        event.end_time = self.end_time();
        event.timezone = self.zone.map(|z| z.name().to_owned());
        (event.is_all_day, event.start_date, event.end_date) = match (self.start, self.end) {
            (EventTime::Date(s), EventTime::Date(e)) => (true, Some(s), Some(e)),
            _ => (false, None, None),
        };
    }
}

/// Recurrence lines the API accepts for `event` as it is scheduled (see `Rule::check_accepted`)
/// on a calendar of `provider` (Microsoft calendars take what Graph's patterns can express).
pub(super) fn accepted_recurrence(
    lines: &[String],
    event: &Event,
    provider: Provider,
) -> ApiResult<Vec<String>> {
    if lines.is_empty() || lines.len() > 20 || lines.iter().any(|l| l.len() > 1000) {
        return Err(ApiError::bad_request(
            "invalid_recurrence",
            "recurrence takes 1 to 20 lines of at most 1,000 characters",
        ));
    }
    let schedule = Schedule::of(event);
    let all_day = match schedule.start {
        EventTime::Date(d) => Some(d),
        EventTime::Instant(_) => None,
    };
    crate::recurrence::Rule::parse(
        schedule.start_time(),
        schedule.zone,
        all_day,
        &lines.join("\n"),
    )
    .and_then(|rule| rule.check_accepted())
    .map_err(|e| ApiError::bad_request("invalid_recurrence", e))?;
    if provider == Provider::Microsoft {
        crate::providers::graph_recurrence::to_graph(
            &lines.join("\n"),
            schedule.start_time(),
            schedule.zone,
        )
        .map_err(|e| ApiError::bad_request("invalid_recurrence", e))?;
    }
    Ok(lines.to_vec())
}

fn attendees(list: Vec<Attendee>) -> ApiResult<Vec<Attendee>> {
    if list.len() > MAX_ATTENDEES {
        return Err(ApiError::bad_request(
            "too_many_attendees",
            format!("at most {MAX_ATTENDEES} attendees"),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, mut a) in list.into_iter().enumerate() {
        a.email = input::email(&a.email, &format!("attendees[{i}].email"))?;
        if let Some(name) = &a.name {
            a.name = Some(input::optional_text(
                name,
                &format!("attendees[{i}].name"),
                200,
            )?);
        }
        if seen.insert(a.email.clone()) {
            out.push(a);
        }
    }
    Ok(out)
}

fn reminders(list: Vec<Reminder>) -> ApiResult<Vec<Reminder>> {
    if list.len() > MAX_REMINDERS {
        return Err(ApiError::bad_request(
            "too_many_reminders",
            format!("at most {MAX_REMINDERS} reminders"),
        ));
    }
    if let Some(r) = list.iter().find(|r| r.minutes > MAX_REMINDER_MINUTES) {
        return Err(ApiError::bad_request(
            "invalid_reminder",
            format!(
                "reminder minutes {} exceed {MAX_REMINDER_MINUTES} (four weeks)",
                r.minutes
            ),
        ));
    }
    Ok(list)
}

fn text(value: Option<String>, field: &str, max: usize) -> ApiResult<Option<String>> {
    value
        .map(|v| input::optional_text(&v, field, max))
        .transpose()
        .map(|v| v.filter(|t| !t.is_empty()))
}

pub(super) fn dto(event: &Event, calendar: &Connection) -> EventDto {
    let schedule = Schedule::of(event);
    EventDto {
        id: event.public_id(),
        calendar: CalendarRefDto {
            id: calendar.id.clone(),
            name: calendar.display_name().to_owned(),
            color: calendar.calendar_color.clone(),
            provider: calendar.provider,
        },
        title: event.title.clone(),
        description: event.description.clone(),
        location: event.location.clone(),
        start: EventTimeView::of(schedule.start, schedule.zone),
        end: EventTimeView::of(schedule.end, schedule.zone),
        is_all_day: event.is_all_day,
        attendees: event.attendees.clone(),
        reminders: event.reminders.clone(),
        has_conference: event.has_conference,
        provider_metadata: event.provider_metadata.clone(),
        sync_status: event.sync_status,
        sync_error: event.sync_error.clone(),
        is_recurring: event.is_recurring,
        recurrence_rule: event.recurrence_rule.clone(),
        parent_event_id: event.parent_event_id.clone(),
        recurring_event_id: event
            .parent_event_id
            .as_deref()
            .map(|parent| ids::encode_event_id(&event.connection_id, parent)),
        original_start_time: event.original_start_time.map(Into::into),
        created_at: event.created_at.into(),
        updated_at: event.updated_at.into(),
    }
}

/// The calendars a range query covers: the live ones, narrowed by `calendarIds`.
pub(crate) fn queried_calendars(
    filter: Option<&str>,
    live: &HashMap<String, Connection>,
) -> ApiResult<HashSet<String>> {
    let Some(raw) = filter else {
        return Ok(live.keys().cloned().collect());
    };
    let ids: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() || ids.len() > MAX_CALENDAR_FILTER {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("calendarIds must name 1 to {MAX_CALENDAR_FILTER} calendars"),
        ));
    }
    ids.into_iter()
        .map(|id| {
            live.contains_key(id).then(|| id.to_owned()).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("calendar {id:?} not found"),
                )
            })
        })
        .collect()
}

pub async fn list(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let range = TimeRange::parse(
        req.query.get("start").map(String::as_str),
        req.query.get("end").map(String::as_str),
    )?;
    let filter = EventFilter {
        attendee: req
            .query
            .get("attendee")
            .map(|a| input::email(a, "attendee"))
            .transpose()?,
        has_conference: query_bool(req, "hasConference")?,
    };
    let limit = query_number(req, "limit", 250, 1..=1000)?;
    let live = live_calendars(app, &user_id).await?;
    let calendars = queried_calendars(req.query.get("calendarIds").map(String::as_str), &live)?;
    // A cursor is valid only for the query that issued it.
    let query_hash = ids::sha256_hex(&format!(
        "{}|{}|{:?}|{:?}|{:?}",
        range.start,
        range.end,
        req.query.get("calendarIds"),
        filter.attendee,
        filter.has_conference
    ))[..16]
        .to_owned();
    let after = match req.query.get("cursor") {
        None => None,
        Some(cursor) => {
            let value = ids::decode_cursor(cursor).ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "cursor is not one we issued")
            })?;
            if value.get("q").and_then(|q| q.as_str()) != Some(&query_hash) {
                return Err(ApiError::bad_request(
                    "invalid_cursor",
                    "cursor belongs to a query with another range or filters",
                ));
            }
            Some(
                value
                    .get("k")
                    .and_then(|k| k.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ApiError::bad_request("invalid_cursor", "cursor is not one we issued")
                    })?,
            )
        }
    };
    let page = app
        .store
        .events_in_range(&RangeQuery {
            user_id: &user_id,
            range,
            connections: &calendars,
            filter: &filter,
            limit,
            after: after.as_deref(),
        })
        .await?;
    let events = page
        .events
        .iter()
        .filter_map(|e| live.get(&e.connection_id).map(|c| dto(e, c)))
        .collect();
    let next_cursor = page
        .next
        .map(|k| ids::encode_cursor(&serde_json::json!({ "k": k, "q": query_hash })));
    ApiResponse::ok(&EventListDto {
        events,
        next_cursor,
        capped_series: capped_dto(&page.capped),
    })
}

/// The user's live calendars by id.
pub(crate) async fn live_calendars(
    app: &App,
    user_id: &str,
) -> ApiResult<HashMap<String, Connection>> {
    Ok(visible(app.store.connections(user_id).await?)
        .into_iter()
        .filter(Connection::is_live)
        .map(|c| (c.id.clone(), c))
        .collect())
}

/// The caller's live calendar with this id.
async fn live_calendar(app: &App, user_id: &str, id: &str) -> ApiResult<Connection> {
    if !ids::is_id(id) {
        return Err(ApiError::not_found("calendar"));
    }
    app.store
        .connection(user_id, id)
        .await?
        .filter(Connection::is_live)
        .ok_or_else(|| ApiError::not_found("calendar"))
}

/// The caller's live event with this public id, and its calendar.
pub(super) async fn own_event(
    app: &App,
    user_id: &str,
    public_id: &str,
) -> ApiResult<(Event, Connection)> {
    let (connection_id, key) =
        ids::decode_event_id(public_id).ok_or_else(|| ApiError::not_found("event"))?;
    let stored = app.store.event(&connection_id, &key).await?;
    let event = match stored {
        Some(event) => Some(event),
        None => occurrence(app, &connection_id, &key).await?,
    }
    .filter(|e| e.user_id == user_id && !e.is_deleted())
    .ok_or_else(|| ApiError::not_found("event"))?;
    let calendar = live_calendar(app, user_id, &connection_id)
        .await
        .map_err(|_| ApiError::not_found("event"))?;
    Ok((event, calendar))
}

/// An occurrence of a series by its id (`<series key>@<original start>`): computed from the
/// series, or the stored override that now stands for it, so an occurrence id stays usable after
/// the occurrence is moved. A start the series does not have is a bad request, naming it.
async fn occurrence(app: &App, connection_id: &str, key: &str) -> ApiResult<Option<Event>> {
    let Some((series, start)) = key.rsplit_once('@') else {
        return Ok(None);
    };
    let Ok(start) = DateTime::parse_from_rfc3339(start).map(|t| t.with_timezone(&Utc)) else {
        return Ok(None);
    };
    let Some(master) = app
        .store
        .event(connection_id, series)
        .await?
        .filter(|m| m.is_recurring && !m.is_deleted())
    else {
        return Ok(None);
    };
    let children = app.store.series_children(&master).await?;
    if let Some(child) = children.iter().find(|k| k.replaces == Some(start)) {
        if !child.live {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "occurrence_cancelled",
                format!(
                    "the occurrence starting {} was cancelled",
                    key_format(start)
                ),
            ));
        }
        return Ok(app.store.event(connection_id, &child.event_key).await?);
    }
    let length = master.end_time - master.start_time;
    let window = TimeRange {
        start,
        end: start + length.max(Duration::seconds(1)),
    };
    let series = crate::recurrence::Series::new(
        master,
        children.iter().filter_map(|k| k.replaces).collect(),
    );
    let found = series
        .occurrences(window, start)
        .find(|o| o.start_time == start);
    found.map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "unknown_occurrence",
            format!(
                "the series has no occurrence starting {}",
                key_format(start)
            ),
        )
    })
}

/// `GET /v1/events/{id}/instances?start&end`: a series' occurrences and exceptions in a range,
/// from the same occurrence stream as `/v1/events`.
pub async fn instances(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let range = TimeRange::parse(
        req.query.get("start").map(String::as_str),
        req.query.get("end").map(String::as_str),
    )?;
    let (event, calendar) = own_event(app, &user_id, id).await?;
    // A series' id, or the id of any of its occurrences or overrides.
    let master = match event.parent_event_id.as_deref() {
        Some(parent) => app
            .store
            .event(&event.connection_id, parent)
            .await?
            .filter(|m| m.is_recurring && !m.is_deleted())
            .ok_or_else(|| ApiError::not_found("series"))?,
        _ => event,
    };
    if !master.is_recurring || master.parent_event_id.is_some() {
        return Err(ApiError::bad_request(
            "not_recurring",
            "this event is not recurring: neither a series nor one of its occurrences",
        ));
    }
    // A series Graph lists: its occurrences are stored as Graph gave them.
    if master.provider_expanded {
        let mut found: Vec<Event> = super::recurring::graph_occurrences(app, &master)
            .await?
            .into_iter()
            .filter(|e| range.overlaps(e.start_time, e.end_time))
            .collect();
        found.sort_by_key(|e| (e.start_time, e.event_key.clone()));
        let events = found.iter().map(|e| dto(e, &calendar)).collect();
        return ApiResponse::ok(&EventListDto {
            events,
            next_cursor: None,
            capped_series: Vec::new(),
        });
    }
    // One read of the series' children serves both the occurrences they replace and the
    // exceptions to show.
    let children = app.store.series_overrides(&master).await?;
    let replaced = children
        .overrides
        .iter()
        .filter_map(Event::replaced_occurrence)
        .chain(children.cancelled.iter().copied())
        .collect();
    let series = crate::recurrence::Series::new(master, replaced);
    let exceptions = children
        .overrides
        .into_iter()
        .filter(|e| range.overlaps(e.start_time, e.end_time));
    // One series in a range of at most 366 days: its cap bounds the answer, so no paging.
    let whole = usize::MAX - 1;
    let head = crate::stream::series_head(std::slice::from_ref(&series), range, None, whole);
    let (found, _) = crate::stream::page(head.occurrences, exceptions, None, whole);
    let events = found.iter().map(|e| dto(e, &calendar)).collect();
    ApiResponse::ok(&EventListDto {
        events,
        next_cursor: None,
        capped_series: capped_dto(&head.capped),
    })
}

/// Maps a failed event transaction (event put, calendar check, audit) to what the client did wrong.
pub(super) fn write_error(err: StoreError) -> ApiError {
    if err.failed_condition_at(0) {
        ApiError::conflict(
            "concurrent_modification",
            "the event changed meanwhile; read it again and retry",
        )
    } else if err.failed_condition_at(1) {
        ApiError::not_found("calendar")
    } else {
        err.into()
    }
}

/// The key of a new event of `calendar`: our own id, usable as a Google event id; for CalDAV the
/// href of the resource write-back will create.
pub(super) fn new_event_key(calendar: &Connection) -> String {
    match calendar.provider {
        Provider::Apple => {
            let path = url::Url::parse(&calendar.calendar_id)
                .map(|u| u.path().to_owned())
                .unwrap_or_default();
            format!("{}/{}.ics", path.trim_end_matches('/'), ids::new_id())
        }
        _ => ids::new_id(),
    }
}

pub async fn create(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let body: CreateEventRequest = json_body(req)?;
    let schedule = Schedule::parse(&body.start, &body.end)?;
    let title = input::required_text(&body.title, "title", 1024)?;
    let description = text(body.description, "description", 65_536)?;
    let location = text(body.location, "location", 1024)?;
    let attendees = attendees(body.attendees)?;
    let reminders = reminders(body.reminders)?;
    let calendar = live_calendar(app, &user_id, &body.calendar_id).await?;
    let now = Store::now();
    let key = new_event_key(&calendar);
    let mut event = Event::new(&user_id, &calendar.id, &key, &title, (now, now), now);
    event.description = description;
    event.location = location;
    event.attendees = attendees;
    event.reminders = reminders;
    event.sync_status = SyncStatus::Pending;
    event.pending_change = Some(PendingChange::Create);
    schedule.apply(&mut event);
    if let Some(lines) = body.recurrence.filter(|l| !l.is_empty()) {
        let lines = accepted_recurrence(&lines, &event, calendar.provider)?;
        crate::series_edit::set_recurrence(&mut event, &lines);
    }
    let audit = AuditEntry::new(&user_id, "EVENT_CREATED", "EVENT", Some(&event.public_id()))
        .with_metadata(serde_json::json!({ "calendarId": calendar.id }));
    let reservation = app
        .store
        .create_event(&event, &audit)
        .await
        .map_err(write_error)?;
    app.after_local_write(&[&event], &[reservation]).await;
    ApiResponse::json(StatusCode::CREATED, &dto(&event, &calendar))
}

pub async fn get(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let (event, calendar) = own_event(app, &user_id, id).await?;
    ApiResponse::ok(&dto(&event, &calendar))
}

/// Moves an event to the start and end the body gives (either may be absent).
pub(super) fn apply_times(event: &mut Event, body: &UpdateEventRequest) -> ApiResult<()> {
    if body.start.is_some() || body.end.is_some() {
        let current = Schedule::of(event);
        let start = body
            .start
            .clone()
            .unwrap_or_else(|| current.start.to_dto(current.zone));
        let end = body
            .end
            .clone()
            .unwrap_or_else(|| current.end.to_dto(current.zone));
        Schedule::parse(&start, &end)?.apply(event);
    }
    Ok(())
}

/// Applies the body's fields other than times and recurrence.
pub(super) fn apply_fields(event: &mut Event, body: &UpdateEventRequest) -> ApiResult<()> {
    if let Some(title) = &body.title {
        event.title = input::required_text(title, "title", 1024)?;
    }
    if let Some(description) = &body.description {
        event.description = text(description.clone(), "description", 65_536)?;
    }
    if let Some(location) = &body.location {
        event.location = text(location.clone(), "location", 1024)?;
    }
    if let Some(list) = &body.attendees {
        event.attendees = attendees(list.clone())?;
    }
    if let Some(list) = &body.reminders {
        event.reminders = reminders(list.clone())?;
    }
    Ok(())
}

/// A local change waiting for write-back; an event never written to its provider is still a
/// create there.
pub(super) fn mark_changed(event: &mut Event, now: DateTime<Utc>) {
    if event.pending_change != Some(PendingChange::Create) {
        event.pending_change = Some(PendingChange::Update);
    }
    event.sync_status = SyncStatus::Pending;
    event.updated_at = now;
    event.version += 1;
}

pub async fn update(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let body: UpdateEventRequest = json_body(req)?;
    let scope = super::recurring::scope(req)?;
    let (mut event, calendar) = own_event(app, &user_id, id).await?;
    if super::recurring::handles(&event, scope) {
        return super::recurring::update(app, &user_id, event, &calendar, &body, scope).await;
    }
    if scope.is_some() || body.recurrence.is_some() {
        return Err(ApiError::bad_request(
            "not_recurring",
            "this event is not recurring: it has no rule to change and no occurrences to scope",
        ));
    }
    let expected_version = event.version;
    apply_times(&mut event, &body)?;
    apply_fields(&mut event, &body)?;
    mark_changed(&mut event, Store::now());
    let audit = AuditEntry::new(&user_id, "EVENT_UPDATED", "EVENT", Some(id))
        .with_metadata(serde_json::json!({ "calendarId": calendar.id }));
    let reservation = app
        .store
        .replace_event(&event, expected_version, &audit)
        .await
        .map_err(write_error)?;
    app.after_local_write(&[&event], &[reservation]).await;
    ApiResponse::ok(&dto(&event, &calendar))
}

/// A local deletion, written back unless the event never reached its provider. A cancelled
/// occurrence is a tombstone that stays (unpurged), or its series would show it again.
pub(super) fn mark_deleted(event: &mut Event, now: DateTime<Utc>, cancels_instance: bool) {
    event.pending_change = match event.pending_change {
        Some(PendingChange::Create) => None,
        _ => Some(PendingChange::Delete),
    };
    event.sync_status = SyncStatus::Deleted;
    event.deleted_at = Some(now);
    event.cancels_instance = cancels_instance;
    event.purge_at =
        (!cancels_instance).then(|| (now + Duration::days(PURGE_AFTER_DAYS)).timestamp());
    event.updated_at = now;
    event.version += 1;
}

pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let scope = super::recurring::scope(req)?;
    let (mut event, calendar) = own_event(app, &user_id, id).await?;
    if super::recurring::handles(&event, scope) {
        return super::recurring::delete(app, &user_id, event, &calendar, scope).await;
    }
    if scope.is_some() {
        return Err(ApiError::bad_request(
            "not_recurring",
            "this event is not recurring: there are no occurrences to scope",
        ));
    }
    let expected_version = event.version;
    mark_deleted(&mut event, Store::now(), false);
    let audit = AuditEntry::new(&user_id, "EVENT_DELETED", "EVENT", Some(id))
        .with_metadata(serde_json::json!({ "calendarId": calendar.id }));
    let reservation = app
        .store
        .replace_event(&event, expected_version, &audit)
        .await
        .map_err(write_error)?;
    app.after_local_write(&[&event], &[reservation]).await;
    Ok(ApiResponse::no_content())
}
