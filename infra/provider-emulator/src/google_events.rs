//! Google Calendar API v3 `events`: `list` (full and incremental sync), `get`, `insert`, `patch`,
//! `update` and `delete`, under `/google/calendar/v3/calendars/{calendarId}/events`; and the
//! provider-side changes the admin API makes.
//!
//! Recurring series are stored as Google stores them: a master with `recurrence`, plus exception
//! events (`recurringEventId` + `originalStartTime`), some of them cancelled. Instances that are
//! not exceptions are not stored; their ids (`{masterId}_{YYYYMMDDTHHMMSSZ}`, or `_{YYYYMMDD}`
//! for all-day series) still resolve for get/patch/update/delete, which turn them into
//! exceptions.

// Handlers fail with the finished HTTP answer; it is built once per request, so its size does
// not matter and boxing every early return would only add noise.
#![allow(clippy::result_large_err)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::collections::HashMap;

use chrono_tz::Tz;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Map, Value};

use crate::events::{evict_oldest, Change, Events, GCalendarEvents, GCursor, GEvent};
use crate::google::{api_error, insufficient_scopes, invalid_value, unauthenticated};
use crate::http::{json, percent_decode, response, sha256, Req, Resp};
use crate::recurrence::{self, IcalTime};
use crate::state::{Account, Calendar, Provider, State, TokenProblem, DEFAULT_GOOGLE_ACCOUNT};
use crate::tz;
use crate::Emulator;

const READ_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.readonly",
    "https://www.googleapis.com/auth/calendar.events.owned",
    "https://www.googleapis.com/auth/calendar.events.owned.readonly",
];
const WRITE_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.owned",
];

/// Fields a client may write through insert / patch / update.
const API_WRITABLE: &[&str] = &[
    "summary",
    "description",
    "location",
    "colorId",
    "start",
    "end",
    "endTimeUnspecified",
    "recurrence",
    "transparency",
    "visibility",
    "attendees",
    "reminders",
    "status",
    "extendedProperties",
    "guestsCanInviteOthers",
    "guestsCanModify",
    "guestsCanSeeOtherGuests",
    "anyoneCanAddSelf",
    "conferenceData",
    "source",
    "iCalUID",
    "sequence",
];

/// What the admin API may set besides: provider-side facts a client cannot write.
const ADMIN_ONLY: &[&str] = &[
    "recurringEventId",
    "originalStartTime",
    "hangoutLink",
    "creator",
    "organizer",
    "eventType",
    "privateCopy",
    "locked",
    "attendeesOmitted",
];

/// Parameters incompatible with `syncToken` (events.list reference).
const NOT_WITH_SYNC_TOKEN: &[&str] = &[
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
];

/// The calendar a request addresses, with what event JSON needs of it.
#[derive(Clone, Debug)]
pub(crate) struct Cal {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub primary: bool,
    pub owner: String,
    pub access_role: String,
    pub time_zone: String,
    pub tz: Tz,
    pub updated_micros: i64,
    /// The `timeZone` request parameter: zone (and name) `dateTime` values are rendered in.
    pub render: Option<(Tz, String)>,
}

impl Cal {
    fn new(account: &Account, calendar: &Calendar) -> Self {
        Cal {
            id: calendar.id.clone(),
            name: calendar.name.clone(),
            description: calendar.description.clone(),
            primary: calendar.primary,
            owner: account.email.clone(),
            access_role: calendar.access_role.clone(),
            time_zone: calendar.time_zone.clone(),
            tz: tz::zone(&calendar.time_zone).unwrap_or(chrono_tz::Etc::UTC),
            updated_micros: calendar.updated_micros,
            render: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

fn api_error_at(
    code: u16,
    message: &str,
    reason: &str,
    domain: &str,
    status: &str,
    location: &str,
    location_type: &str,
) -> Resp {
    json(
        code,
        &json!({
            "error": {
                "code": code,
                "message": message,
                "errors": [{
                    "message": message,
                    "domain": domain,
                    "reason": reason,
                    "location": location,
                    "locationType": location_type,
                }],
                "status": status,
            }
        }),
    )
}

fn bad_request(message: &str, reason: &str, location: &str) -> Resp {
    api_error_at(
        400,
        message,
        reason,
        "global",
        "INVALID_ARGUMENT",
        location,
        "parameter",
    )
}

fn not_found() -> Resp {
    api_error(404, "Not Found", "notFound", "global", "NOT_FOUND")
}

fn gone_deleted() -> Resp {
    api_error(
        410,
        "Resource has been deleted",
        "deleted",
        "global",
        "GONE",
    )
}

fn full_sync_required() -> Resp {
    api_error(
        410,
        "Sync token is no longer valid, a full sync is required.",
        "fullSyncRequired",
        "global",
        "GONE",
    )
}

fn precondition_failed() -> Resp {
    api_error_at(
        412,
        "Precondition Failed",
        "conditionNotMet",
        "global",
        "FAILED_PRECONDITION",
        "If-Match",
        "header",
    )
}

fn duplicate() -> Resp {
    api_error(
        409,
        "The requested identifier already exists.",
        "duplicate",
        "global",
        "ALREADY_EXISTS",
    )
}

fn parse_error() -> Resp {
    api_error(
        400,
        "Parse Error",
        "parseError",
        "global",
        "INVALID_ARGUMENT",
    )
}

// ---------------------------------------------------------------------------------------------
// Times

/// A stored `start` / `end` / `originalStartTime`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum GTime {
    Date(NaiveDate),
    At {
        instant: DateTime<Utc>,
        zone: Option<String>,
    },
}

impl GTime {
    fn parse(v: &Value) -> Result<GTime, &'static str> {
        let o = v.as_object().ok_or("invalid")?;
        let text = |k: &str| o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let zone = text("timeZone");
        let tz = match zone {
            Some(z) => Some(tz::zone(z).ok_or("zone")?),
            None => None,
        };
        match (text("date"), text("dateTime")) {
            (Some(d), None) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map(GTime::Date)
                .map_err(|_| "invalid"),
            (None, Some(s)) => {
                let instant = match tz::parse_rfc3339(s) {
                    Some(t) => t,
                    None => {
                        let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                            .map_err(|_| "invalid")?;
                        tz::to_utc(local, tz.ok_or("offset")?)
                    }
                };
                Ok(GTime::At {
                    instant,
                    zone: zone.map(str::to_owned),
                })
            }
            _ => Err("invalid"),
        }
    }

    fn instant(&self, cal_tz: Tz) -> DateTime<Utc> {
        match self {
            GTime::Date(d) => tz::midnight(*d, cal_tz),
            GTime::At { instant, .. } => *instant,
        }
    }

    fn zone(&self, cal_tz: Tz) -> Tz {
        match self {
            GTime::At { zone: Some(z), .. } => tz::zone(z).unwrap_or(cal_tz),
            _ => cal_tz,
        }
    }

    /// The JSON Google answers with: `dateTime` in `cal`'s response zone if one was asked for,
    /// else in the event's own zone, else the calendar's.
    fn to_json(&self, cal: &Cal) -> Value {
        match self {
            GTime::Date(d) => json!({ "date": d.format("%Y-%m-%d").to_string() }),
            GTime::At { instant, zone } => {
                let render = cal
                    .render
                    .as_ref()
                    .map_or_else(|| self.zone(cal.tz), |(z, _)| *z);
                let mut o = json!({ "dateTime": tz::google_date_time(*instant, render) });
                if let Some(z) = zone {
                    o["timeZone"] = Value::from(z.as_str());
                }
                o
            }
        }
    }
}

fn field_time(ev: &GEvent, key: &str) -> Option<GTime> {
    ev.fields.get(key).and_then(|v| GTime::parse(v).ok())
}

/// Start and end instants of a stored event.
fn span(ev: &GEvent, cal_tz: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = field_time(ev, "start")?.instant(cal_tz);
    let end = field_time(ev, "end")?.instant(cal_tz);
    Some((start, end))
}

/// Instance id suffix of an occurrence starting at `t`.
fn instance_suffix(t: &GTime) -> String {
    match t {
        GTime::Date(d) => d.format("%Y%m%d").to_string(),
        GTime::At { instant, .. } => instant.format("%Y%m%dT%H%M%SZ").to_string(),
    }
}

/// Occurrence starts of a master (as `GTime`s like its `start`), up to `horizon`.
fn occurrences(master: &GEvent, cal_tz: Tz, horizon: DateTime<Utc>) -> Option<Vec<GTime>> {
    let lines = master.fields.get("recurrence")?.as_array()?;
    let rec = recurrence::parse_google_recurrence(lines).ok()?;
    let start = field_time(master, "start")?;
    let zone = start.zone(cal_tz);
    let (local, all_day) = match &start {
        GTime::Date(d) => (d.and_hms_opt(0, 0, 0)?, true),
        GTime::At { instant, .. } => (instant.with_timezone(&zone).naive_local(), false),
    };
    let excluded = |l: &NaiveDateTime, t: &DateTime<Utc>| {
        rec.exdates.iter().any(|x| match x {
            IcalTime::Date(d) => *d == l.date(),
            IcalTime::Local(x) => x == l,
            IcalTime::Utc(x) => x == t,
        })
    };
    let zone_name = match &start {
        GTime::At { zone, .. } => zone.clone(),
        GTime::Date(_) => None,
    };
    Some(
        recurrence::expand(&rec.rule, local, zone, horizon)
            .into_iter()
            .filter(|(l, t)| !excluded(l, t))
            .map(|(l, t)| {
                if all_day {
                    GTime::Date(l.date())
                } else {
                    GTime::At {
                        instant: t,
                        zone: zone_name.clone(),
                    }
                }
            })
            .collect(),
    )
}

/// Whether a master's rule ends (COUNT or UNTIL).
fn is_bounded(master: &GEvent) -> bool {
    master
        .fields
        .get("recurrence")
        .and_then(Value::as_array)
        .and_then(|l| recurrence::parse_google_recurrence(l).ok())
        .is_some_and(|r| recurrence::is_bounded(&r.rule))
}

/// Expansion horizon of a bounded series (the rule ends before it).
fn far_future() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap()
}

/// Whether any instance of a recurring master overlaps [min, max).
fn series_overlaps(
    master: &GEvent,
    cal_tz: Tz,
    min: Option<DateTime<Utc>>,
    max: Option<DateTime<Utc>>,
) -> bool {
    let Some((start, end)) = span(master, cal_tz) else {
        return false;
    };
    if max.is_some_and(|max| start >= max) {
        return false;
    }
    let Some(min) = min else { return true };
    let duration = end - start;
    let horizon = match max {
        Some(max) => max,
        None if !is_bounded(master) => return true,
        None => far_future(),
    };
    occurrences(master, cal_tz, horizon)
        .unwrap_or_default()
        .iter()
        .any(|t| t.instant(cal_tz) + duration > min)
}

// ---------------------------------------------------------------------------------------------
// Event JSON

fn etag(ev: &GEvent) -> String {
    format!("\"{}\"", ev.updated.timestamp_micros() * 2)
}

fn html_link(cal: &Cal, id: &str) -> String {
    format!(
        "https://www.google.com/calendar/event?eid={}",
        URL_SAFE_NO_PAD.encode(format!("{id} {}", cal.id))
    )
}

fn with_self(person: &Value, owner: &str) -> Value {
    let mut person = person.clone();
    let is_self = person
        .get("email")
        .and_then(Value::as_str)
        .is_some_and(|e| e.eq_ignore_ascii_case(owner));
    if let Some(o) = person.as_object_mut() {
        if is_self {
            o.insert("self".into(), Value::Bool(true));
        } else {
            o.remove("self");
        }
    }
    person
}

/// An event as events.list / get / insert answer with it. `minimal`: the form of cancelled
/// events that Google guarantees (`id`, `status`, and for instances `recurringEventId` and
/// `originalStartTime`).
pub(crate) fn event_json(cal: &Cal, ev: &GEvent, minimal: bool) -> Value {
    let f = &ev.fields;
    let mut o = Map::new();
    o.insert("kind".into(), json!("calendar#event"));
    o.insert("etag".into(), json!(etag(ev)));
    o.insert("id".into(), json!(ev.id));
    o.insert("status".into(), json!(ev.status()));
    let original = field_time(ev, "originalStartTime").map(|t| t.to_json(cal));
    if minimal {
        if let (Some(master), Some(original)) = (f.get("recurringEventId"), original) {
            o.insert("recurringEventId".into(), master.clone());
            o.insert("originalStartTime".into(), original);
        }
        return Value::Object(o);
    }
    o.insert("htmlLink".into(), json!(html_link(cal, &ev.id)));
    o.insert("created".into(), json!(tz::google_timestamp(ev.created)));
    o.insert("updated".into(), json!(tz::google_timestamp(ev.updated)));
    for key in ["summary", "description", "location", "colorId"] {
        if let Some(v) = f.get(key) {
            o.insert(key.into(), v.clone());
        }
    }
    let creator = f
        .get("creator")
        .cloned()
        .unwrap_or_else(|| json!({ "email": cal.owner }));
    o.insert("creator".into(), with_self(&creator, &cal.owner));
    let organizer = f.get("organizer").cloned().unwrap_or_else(|| {
        if cal.primary {
            json!({ "email": cal.owner })
        } else {
            json!({ "email": cal.id, "displayName": cal.name })
        }
    });
    let mut organizer = with_self(&organizer, &cal.owner);
    if f.get("organizer").is_none() {
        organizer["self"] = Value::Bool(true);
    }
    o.insert("organizer".into(), organizer);
    for key in ["start", "end"] {
        if let Some(t) = field_time(ev, key) {
            o.insert(key.into(), t.to_json(cal));
        }
    }
    for key in ["endTimeUnspecified", "recurrence", "recurringEventId"] {
        if let Some(v) = f.get(key) {
            o.insert(key.into(), v.clone());
        }
    }
    if let Some(original) = original {
        o.insert("originalStartTime".into(), original);
    }
    for key in ["transparency", "visibility"] {
        if let Some(v) = f.get(key) {
            o.insert(key.into(), v.clone());
        }
    }
    let base_id = ev.recurring_event_id().unwrap_or(&ev.id);
    o.insert(
        "iCalUID".into(),
        f.get("iCalUID")
            .cloned()
            .unwrap_or_else(|| json!(format!("{base_id}@google.com"))),
    );
    o.insert("sequence".into(), json!(ev.sequence));
    if let Some(Value::Array(attendees)) = f.get("attendees") {
        let list: Vec<Value> = attendees
            .iter()
            .map(|a| {
                let mut a = with_self(a, &cal.owner);
                if a.get("responseStatus").is_none() {
                    a["responseStatus"] = json!("needsAction");
                }
                a
            })
            .collect();
        o.insert("attendees".into(), Value::Array(list));
    }
    for key in [
        "attendeesOmitted",
        "anyoneCanAddSelf",
        "guestsCanInviteOthers",
        "guestsCanModify",
        "guestsCanSeeOtherGuests",
        "privateCopy",
        "locked",
        "hangoutLink",
        "conferenceData",
        "extendedProperties",
        "source",
    ] {
        if let Some(v) = f.get(key) {
            o.insert(key.into(), v.clone());
        }
    }
    o.insert(
        "reminders".into(),
        f.get("reminders")
            .cloned()
            .unwrap_or_else(|| json!({ "useDefault": true })),
    );
    o.insert(
        "eventType".into(),
        f.get("eventType").cloned().unwrap_or(json!("default")),
    );
    Value::Object(o)
}

/// The event a `malformedItem` fault slips into a page: its start cannot be parsed.
fn malformed_event(cal: &Cal) -> Value {
    let id = random_id();
    json!({
        "kind": "calendar#event",
        "etag": "\"3500000000000000\"",
        "id": id,
        "status": "confirmed",
        "htmlLink": html_link(cal, &id),
        "created": "2026-01-01T00:00:00.000Z",
        "updated": "2026-01-01T00:00:00.000Z",
        "summary": "Malformed event (injected fault)",
        "creator": { "email": cal.owner, "self": true },
        "organizer": { "email": cal.owner, "self": true },
        "start": { "dateTime": "not-a-date" },
        "end": { "dateTime": "not-a-date" },
        "iCalUID": format!("{id}@google.com"),
        "sequence": 0,
        "reminders": { "useDefault": true },
        "eventType": "default",
    })
}

// ---------------------------------------------------------------------------------------------
// Validation of written events

/// A random event id as Google makes them: 26 base32hex characters.
fn random_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut bytes = [0u8; 26];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[(*b % 32) as usize] as char)
        .collect()
}

/// Client-supplied ids: base32hex (`0-9a-v`), 5 to 1024 characters.
fn valid_client_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'v'))
}

/// Ids the provider itself makes: base32hex, or an instance id `{base}_{YYYYMMDD}` /
/// `{base}_{YYYYMMDD}T{HHMMSS}Z`.
fn valid_provider_id(id: &str) -> bool {
    let (base, suffix) = match id.split_once('_') {
        Some((base, suffix)) => (base, Some(suffix)),
        None => (id, None),
    };
    let suffix_ok = suffix.is_none_or(|s| {
        NaiveDate::parse_from_str(s, "%Y%m%d").is_ok()
            || NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").is_ok()
    });
    valid_client_id(base) && suffix_ok
}

fn time_error(which: &str, problem: &str) -> Resp {
    match problem {
        "zone" => bad_request(
            &format!("Invalid time zone definition for {which} time."),
            "invalid",
            which,
        ),
        "offset" => bad_request(
            &format!("Missing time zone definition for {which} time."),
            "required",
            which,
        ),
        _ => bad_request(&format!("Invalid {which} time."), "invalid", which),
    }
}

/// Checks the fields of an event to be stored; fills in defaults.
fn validate(fields: &mut Map<String, Value>) -> Result<(), Resp> {
    let start = match fields.get("start") {
        None | Some(Value::Null) => {
            return Err(bad_request("Missing start time.", "required", "start"))
        }
        Some(v) => GTime::parse(v).map_err(|p| time_error("start", p))?,
    };
    let end = match fields.get("end") {
        None | Some(Value::Null) => {
            return Err(bad_request("Missing end time.", "required", "end"))
        }
        Some(v) => GTime::parse(v).map_err(|p| time_error("end", p))?,
    };
    let empty = || {
        api_error_at(
            400,
            "The specified time range is empty.",
            "timeRangeEmpty",
            "calendar",
            "INVALID_ARGUMENT",
            "end",
            "parameter",
        )
    };
    match (&start, &end) {
        (GTime::Date(s), GTime::Date(e)) if e <= s => return Err(empty()),
        (GTime::At { instant: s, .. }, GTime::At { instant: e, .. }) if e < s => {
            return Err(empty())
        }
        (GTime::Date(_), GTime::At { .. }) | (GTime::At { .. }, GTime::Date(_)) => {
            return Err(bad_request("Invalid end time.", "invalid", "end"))
        }
        _ => {}
    }
    if let Some(rec) = fields.get("recurrence").filter(|v| !v.is_null()) {
        let lines = rec
            .as_array()
            .ok_or_else(|| bad_request("Invalid recurrence rule.", "invalid", "recurrence"))?;
        recurrence::parse_google_recurrence(lines)
            .map_err(|_| bad_request("Invalid recurrence rule.", "invalid", "recurrence"))?;
        if matches!(start, GTime::At { zone: None, .. }) {
            return Err(bad_request(
                "Missing time zone definition for start time.",
                "required",
                "start",
            ));
        }
        if fields.contains_key("recurringEventId") {
            return Err(bad_request(
                "An instance of a recurring event cannot itself recur.",
                "invalid",
                "recurrence",
            ));
        }
    }
    if fields.contains_key("recurringEventId") {
        match fields.get("originalStartTime") {
            Some(v) => {
                GTime::parse(v).map_err(|p| time_error("originalStart", p))?;
            }
            None => {
                return Err(bad_request(
                    "Missing originalStartTime.",
                    "required",
                    "originalStartTime",
                ))
            }
        }
    }
    if let Some(status) = fields.get("status") {
        if !matches!(
            status.as_str(),
            Some("confirmed" | "tentative" | "cancelled")
        ) {
            return Err(bad_request(
                "Invalid value for: status",
                "invalid",
                "status",
            ));
        }
    }
    for (key, allowed) in [
        ("transparency", &["opaque", "transparent"][..]),
        (
            "visibility",
            &["default", "public", "private", "confidential"][..],
        ),
    ] {
        if let Some(v) = fields.get(key) {
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                return Err(bad_request(
                    &format!("Invalid value for: {key}"),
                    "invalid",
                    key,
                ));
            }
        }
    }
    if let Some(attendees) = fields.get_mut("attendees") {
        let list = attendees
            .as_array_mut()
            .ok_or_else(|| bad_request("Invalid attendees.", "invalid", "attendees"))?;
        for a in list.iter_mut() {
            if !a.get("email").is_some_and(Value::is_string) {
                return Err(bad_request(
                    "Missing attendee email.",
                    "required",
                    "attendees.email",
                ));
            }
            if a.get("responseStatus").is_none() {
                a["responseStatus"] = json!("needsAction");
            }
        }
    }
    Ok(())
}

fn times_of(fields: &Map<String, Value>) -> (Option<&Value>, Option<&Value>, Option<&Value>) {
    (
        fields.get("start"),
        fields.get("end"),
        fields.get("recurrence"),
    )
}

/// Stamps a change on `ev` (change number, `updated`; `created` too for a new event, one whose
/// change number is still 0) and stores it.
fn commit(events: &mut Events, calendar: &str, mut ev: GEvent) -> GEvent {
    let (seq, t) = events.clock.tick();
    if ev.seq == 0 {
        ev.created = t;
    }
    ev.seq = seq;
    ev.updated = t;
    let cal = events.google.entry(calendar.to_owned()).or_default();
    cal.changed = Some(t);
    cal.events.insert(ev.id.clone(), ev.clone());
    events.changes.push(Change::Google {
        calendar: calendar.to_owned(),
    });
    ev
}

/// Cancels an event (a tombstone for sync tokens); a master's exceptions go with it.
fn cancel(events: &mut Events, calendar: &str, id: &str) {
    let Some(cal) = events.google.get(calendar) else {
        return;
    };
    let mut victims: Vec<GEvent> = cal
        .events
        .values()
        .filter(|e| e.id == id || (e.recurring_event_id() == Some(id) && !e.cancelled()))
        .cloned()
        .collect();
    victims.sort_by_key(|e| e.id != id);
    for mut ev in victims {
        ev.fields.insert("status".into(), json!("cancelled"));
        commit(events, calendar, ev);
    }
}

/// An instance of a recurring master that is not stored (not an exception yet), by its id.
fn virtual_instance(cal: &GCalendarEvents, cal_tz: Tz, id: &str) -> Option<GEvent> {
    let (master_id, suffix) = id.rsplit_once('_')?;
    let master = cal.events.get(master_id)?;
    if master.cancelled() || !master.fields.contains_key("recurrence") {
        return None;
    }
    let target: GTime = if let Ok(t) = NaiveDateTime::parse_from_str(suffix, "%Y%m%dT%H%M%SZ") {
        GTime::At {
            instant: t.and_utc(),
            zone: None,
        }
    } else {
        GTime::Date(NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()?)
    };
    let horizon = target.instant(cal_tz);
    let original = occurrences(master, cal_tz, horizon)?
        .into_iter()
        .find(|t| instance_suffix(t) == suffix)?;
    instance_at(master, &original, id)
}

/// The instance of `master` that starts at `original`, as the master's fields make it.
fn instance_at(master: &GEvent, original: &GTime, id: &str) -> Option<GEvent> {
    let (start, end) = (field_time(master, "start")?, field_time(master, "end")?);
    let end = match (original, &start, &end) {
        (GTime::Date(o), GTime::Date(s), GTime::Date(e)) => GTime::Date(*o + (*e - *s)),
        (
            GTime::At { instant, zone },
            GTime::At { instant: s, .. },
            GTime::At {
                instant: e,
                zone: ez,
            },
        ) => GTime::At {
            instant: *instant + (*e - *s),
            zone: ez.clone().or_else(|| zone.clone()),
        },
        _ => return None,
    };
    let mut fields = master.fields.clone();
    fields.remove("recurrence");
    fields.insert("start".into(), gtime_stored(original));
    fields.insert("end".into(), gtime_stored(&end));
    fields.insert("recurringEventId".into(), json!(master.id));
    fields.insert("originalStartTime".into(), gtime_stored(original));
    Some(GEvent {
        id: id.to_owned(),
        order: master.order,
        seq: master.seq,
        created: master.created,
        updated: master.updated,
        sequence: master.sequence,
        fields,
    })
}

/// A `GTime` as stored (UTC instant plus zone name).
fn gtime_stored(t: &GTime) -> Value {
    match t {
        GTime::Date(d) => json!({ "date": d.format("%Y-%m-%d").to_string() }),
        GTime::At { instant, zone } => {
            let mut o = json!({ "dateTime": instant.format("%Y-%m-%dT%H:%M:%SZ").to_string() });
            if let Some(z) = zone {
                o["timeZone"] = json!(z);
            }
            o
        }
    }
}

/// A stored event, or a not-yet-stored instance of a stored master.
fn find(events: &Events, cal: &Cal, id: &str) -> Option<(GEvent, bool)> {
    let store = events.google.get(&cal.id)?;
    if let Some(ev) = store.events.get(id) {
        return Some((ev.clone(), true));
    }
    virtual_instance(store, cal.tz, id).map(|ev| (ev, false))
}

fn if_match_ok(req: &Req, etag: &str) -> bool {
    match req.header("if-match") {
        None => true,
        Some(value) => value.split(',').any(|t| {
            let t = t.trim();
            let t = t.strip_prefix("W/").unwrap_or(t);
            t == "*" || t.trim_matches('"') == etag.trim_matches('"')
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Routing and authorization

pub(crate) fn route(em: &Emulator, req: &Req) -> Option<Resp> {
    let rest = req.path.strip_prefix("/google/calendar/v3/calendars/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    Some(match (req.method.as_str(), segments.as_slice()) {
        ("GET", [cid, "events"]) => list(em, req, cid),
        ("POST", [cid, "events"]) => insert(em, req, cid),
        ("POST", [cid, "events", "watch"]) => crate::push::google_watch(em, req, cid),
        ("GET", [cid, "events", eid]) => get(em, req, cid, eid),
        ("GET", [cid, "events", eid, "instances"]) => instances(em, req, cid, eid),
        ("PATCH", [cid, "events", eid]) => modify(em, req, cid, eid, false),
        ("PUT", [cid, "events", eid]) => modify(em, req, cid, eid, true),
        ("DELETE", [cid, "events", eid]) => delete(em, req, cid, eid),
        _ => return None,
    })
}

pub(crate) fn resolve(
    st: &State,
    req: &Req,
    cid: &str,
    write: bool,
    method: &str,
) -> Result<Cal, Box<Resp>> {
    let grant = match st.check_bearer(Provider::Google, req.bearer()) {
        Ok(grant) => grant,
        Err(TokenProblem::Missing) => return Err(Box::new(unauthenticated(true))),
        Err(_) => return Err(Box::new(unauthenticated(false))),
    };
    let allowed = if write { WRITE_SCOPES } else { READ_SCOPES };
    if !grant.scopes.iter().any(|s| allowed.contains(&s.as_str())) {
        return Err(Box::new(insufficient_scopes(method)));
    }
    let account = st
        .account(Provider::Google, &grant.account)
        .ok_or_else(|| Box::new(unauthenticated(false)))?;
    let cid = percent_decode(cid);
    let calendar = account
        .calendars
        .iter()
        .find(|c| {
            if cid == "primary" {
                c.primary
            } else {
                c.id == cid
            }
        })
        .ok_or_else(|| Box::new(not_found()))?;
    if write && !matches!(calendar.access_role.as_str(), "owner" | "writer") {
        return Err(Box::new(api_error(
            403,
            "You need to have writer access to this calendar.",
            "requiredAccessLevel",
            "calendar",
            "PERMISSION_DENIED",
        )));
    }
    Ok(Cal::new(account, calendar))
}

fn ok_json(body: &Value) -> Resp {
    response(200, "application/json; charset=UTF-8", body.to_string())
}

// ---------------------------------------------------------------------------------------------
// events.list

fn encode_sync(calendar: &str, generation: u64, seq: u64) -> String {
    STANDARD.encode(format!("\u{8}{calendar}\u{1a}{generation}\u{12}{seq}"))
}

fn decode_sync(token: &str) -> Option<(String, u64, u64)> {
    let raw = String::from_utf8(STANDARD.decode(token.trim()).ok()?).ok()?;
    let raw = raw.strip_prefix('\u{8}')?;
    let (calendar, rest) = raw.split_once('\u{1a}')?;
    let (generation, seq) = rest.split_once('\u{12}')?;
    Some((
        calendar.to_owned(),
        generation.parse().ok()?,
        seq.parse().ok()?,
    ))
}

fn q_matches(ev: &GEvent, q: &str) -> bool {
    let q = q.to_lowercase();
    let mut hay = String::new();
    for key in ["summary", "description", "location"] {
        if let Some(s) = ev.fields.get(key).and_then(Value::as_str) {
            hay.push_str(s);
            hay.push('\n');
        }
    }
    for list in ["attendees"] {
        for a in ev
            .fields
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for k in ["email", "displayName"] {
                if let Some(s) = a.get(k).and_then(Value::as_str) {
                    hay.push_str(s);
                    hay.push('\n');
                }
            }
        }
    }
    let hay = hay.to_lowercase();
    q.split_whitespace().all(|term| hay.contains(term))
}

/// Whether a full-sync listing shows `ev`.
fn full_sync_shows(store: &GCalendarEvents, cal_tz: Tz, c: &GCursor, ev: &GEvent) -> bool {
    let deleted_since = c.updated_min.is_some_and(|m| ev.updated >= m);
    if c.updated_min.is_some_and(|m| ev.updated < m) {
        return false;
    }
    if ev.cancelled() && !c.show_deleted && !deleted_since {
        match ev.recurring_event_id() {
            // A cancelled instance of a live series is listed (it hides the instance).
            Some(master) => {
                if store.events.get(master).is_none_or(GEvent::cancelled) {
                    return false;
                }
            }
            None => return false,
        }
    }
    if let Some(uid) = &c.ical_uid {
        let base = ev.recurring_event_id().unwrap_or(&ev.id);
        let own = ev
            .fields
            .get("iCalUID")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{base}@google.com"));
        if &own != uid {
            return false;
        }
    }
    if let Some(q) = &c.q {
        if !q_matches(ev, q) {
            return false;
        }
    }
    if c.time_min.is_none() && c.time_max.is_none() {
        return true;
    }
    if ev.fields.contains_key("recurrence") {
        return series_overlaps(ev, cal_tz, c.time_min, c.time_max);
    }
    let range = span(ev, cal_tz).or_else(|| {
        // A minimal cancelled instance: its original slot, with the master's duration.
        let original = field_time(ev, "originalStartTime")?.instant(cal_tz);
        let master = store.events.get(ev.recurring_event_id()?)?;
        let (s, e) = span(master, cal_tz)?;
        Some((original, original + (e - s)))
    });
    let Some((start, end)) = range else {
        return false;
    };
    c.time_max.is_none_or(|max| start < max)
        && c.time_min
            .is_none_or(|min| end > min || (start == end && start >= min))
}

/// A boolean query parameter.
fn flag(req: &Req, name: &str) -> Result<Option<bool>, Resp> {
    match req.query(name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(invalid_value(name, v)),
    }
}

/// `maxResults`: "The page size can never be larger than 2500 events."
fn max_results(req: &Req) -> Result<Option<usize>, Resp> {
    match req.query("maxResults") {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(n.min(2500) as usize)),
            _ => Err(invalid_value("maxResults", raw)),
        },
    }
}

/// An RFC 3339 query parameter.
fn instant_param(req: &Req, name: &str) -> Result<Option<DateTime<Utc>>, Resp> {
    match req.query(name) {
        None => Ok(None),
        Some(raw) => tz::parse_rfc3339(raw)
            .map(Some)
            .ok_or_else(|| invalid_value(name, raw)),
    }
}

/// Optional lower and upper bounds of a listing.
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `timeMin` / `timeMax`; an empty range is refused.
fn time_bounds(req: &Req) -> Result<Bounds, Resp> {
    let (min, max) = (
        instant_param(req, "timeMin")?,
        instant_param(req, "timeMax")?,
    );
    if let (Some(min), Some(max)) = (min, max) {
        if min >= max {
            return Err(api_error_at(
                400,
                "The specified time range is empty.",
                "timeRangeEmpty",
                "calendar",
                "INVALID_ARGUMENT",
                "timeMax",
                "parameter",
            ));
        }
    }
    Ok((min, max))
}

/// `timeZone`: "Time zone used in the response"; `dateTime` values are rendered in it.
fn response_zone(req: &Req, cal: &mut Cal) -> Result<(), Resp> {
    if let Some(name) = req.query("timeZone") {
        let zone = tz::zone(name).ok_or_else(|| invalid_value("timeZone", name))?;
        cal.render = Some((zone, name.to_owned()));
    }
    Ok(())
}

/// The fields of an events.list / events.instances page before its items and tokens; the etag
/// is derived from `etag_seed`.
fn page_head(cal: &Cal, store: &GCalendarEvents, etag_seed: &str) -> Value {
    let changed = store.changed.unwrap_or_else(|| {
        Utc.timestamp_micros(cal.updated_micros)
            .single()
            .unwrap_or_default()
    });
    let digest = sha256(etag_seed);
    let list_etag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut body = json!({
        "kind": "calendar#events",
        "etag": format!("\"p{list_etag}\""),
        "summary": cal.name,
    });
    if let Some(description) = &cal.description {
        body["description"] = json!(description);
    }
    body["updated"] = json!(tz::google_timestamp(changed));
    body["timeZone"] = json!(cal.render.as_ref().map_or(&cal.time_zone, |(_, n)| n));
    body["accessRole"] = json!(cal.access_role);
    body["defaultReminders"] = json!([]);
    body
}

fn list(em: &Emulator, req: &Req, cid: &str) -> Resp {
    let mut st = em.lock();
    let cal = match resolve(&st, req, cid, false, "calendar.v1.EventsService.List") {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let mut cal = cal;
    if let Err(resp) = response_zone(req, &mut cal) {
        return resp;
    }
    let max_results = match max_results(req) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let show_deleted = match flag(req, "showDeleted") {
        Ok(v) => v.unwrap_or(false),
        Err(resp) => return resp,
    };
    match flag(req, "singleEvents") {
        Ok(Some(true)) => {
            return bad_request(
                "singleEvents=true is not supported by the provider emulator; list with singleEvents=false.",
                "invalid",
                "singleEvents",
            )
        }
        Ok(_) => {}
        Err(resp) => return resp,
    }
    let sync_token = req.query("syncToken");
    if sync_token.is_some() {
        if let Some(p) = NOT_WITH_SYNC_TOKEN.iter().find(|p| req.query(p).is_some()) {
            return bad_request(
                &format!("The parameter {p} cannot be used together with syncToken."),
                "invalid",
                p,
            );
        }
    }
    let generation = st.events.google.get(&cal.id).map_or(0, |c| c.generation);
    let current = st.events.clock.current();
    let cursor = if let Some(page_token) = req.query("pageToken") {
        match st.events.google_cursors.get(page_token) {
            Some(c) if c.account == cal.owner && c.calendar == cal.id => c.clone(),
            _ => return invalid_value("pageToken", page_token),
        }
    } else {
        let mut cursor = GCursor {
            account: cal.owner.clone(),
            calendar: cal.id.clone(),
            generation,
            since: None,
            snapshot: current,
            show_deleted,
            time_min: None,
            time_max: None,
            updated_min: None,
            q: None,
            ical_uid: None,
            order_by_updated: false,
            after: None,
            page: 0,
            max_results: max_results.unwrap_or(250),
            drained: false,
            stamp: 0,
        };
        if let Some(token) = sync_token {
            match decode_sync(token) {
                Some((c, g, seq)) if c == cal.id && g == generation && seq <= current => {
                    cursor.since = Some(seq)
                }
                _ => return full_sync_required(),
            }
        } else {
            match time_bounds(req) {
                Ok((min, max)) => (cursor.time_min, cursor.time_max) = (min, max),
                Err(resp) => return resp,
            }
            match instant_param(req, "updatedMin") {
                Ok(t) => cursor.updated_min = t,
                Err(resp) => return resp,
            }
            match req.query("orderBy") {
                None => {}
                Some("updated") => cursor.order_by_updated = true,
                Some("startTime") => {
                    return bad_request(
                        "The requested ordering is not available for the particular query.",
                        "badRequest",
                        "orderBy",
                    )
                }
                Some(other) => return invalid_value("orderBy", other),
            }
            cursor.q = req.query("q").map(str::to_owned);
            cursor.ical_uid = req.query("iCalUID").map(str::to_owned);
        }
        cursor
    };
    if cursor.since.is_some() && cursor.generation != generation {
        return full_sync_required();
    }
    let max = max_results.unwrap_or(cursor.max_results);
    let short = st.short_pages;
    let empty = crate::events::GCalendarEvents::default();
    let store = st.events.google.get(&cal.id).unwrap_or(&empty);
    let key = |ev: &GEvent| {
        if cursor.order_by_updated {
            ev.seq
        } else {
            ev.order
        }
    };
    let mut candidates: Vec<&GEvent> = store
        .events
        .values()
        .filter(|ev| cursor.after.is_none_or(|a| key(ev) > a))
        .filter(|ev| match cursor.since {
            Some(since) => ev.seq > since,
            None => full_sync_shows(store, cal.tz, &cursor, ev),
        })
        .collect();
    candidates.sort_by_key(|ev| key(ev));
    let page_size = if short {
        if cursor.page % 3 == 1 {
            0
        } else {
            (max / 2).max(1)
        }
    } else {
        max
    };
    let taken = candidates.len().min(page_size);
    let more = candidates.len() > taken;
    let mut items: Vec<Value> = candidates[..taken]
        .iter()
        .map(|ev| event_json(&cal, ev, ev.cancelled() && !cursor.show_deleted))
        .collect();
    if req.malformed_item {
        items.insert(items.len().min(1), malformed_event(&cal));
    }
    let last_key = candidates[..taken]
        .last()
        .map(|ev| key(ev))
        .or(cursor.after);
    let mut body = page_head(
        &cal,
        store,
        &format!("{}:{}:{}", cal.id, cursor.snapshot, generation),
    );
    if more || (short && !cursor.drained) {
        let mut next = cursor.clone();
        next.after = last_key;
        next.page += 1;
        next.max_results = max;
        next.drained = !more;
        next.stamp = st.events.next_order();
        let token = Events::token();
        st.events.google_cursors.insert(token.clone(), next);
        evict_oldest(&mut st.events.google_cursors, |c| c.stamp);
        body["nextPageToken"] = json!(token);
    } else {
        body["nextSyncToken"] = json!(encode_sync(&cal.id, cursor.generation, cursor.snapshot));
    }
    body["items"] = Value::Array(items);
    ok_json(&body)
}

// ---------------------------------------------------------------------------------------------
// events.instances

/// Without `timeMax`, an endless series is expanded this many years past now (or past its
/// start, if later); Google documents no limit.
const ENDLESS_YEARS: i64 = 5;

/// The instances of a live recurring master, by original start: its exceptions (cancelled ones
/// too) with their own content, the other occurrences up to `horizon` built from the master. An
/// exception whose original start the rule no longer produces (the master's `recurrence` changed)
/// is no instance of the series and is left out.
fn series_instances(
    store: &GCalendarEvents,
    cal_tz: Tz,
    master: &GEvent,
    horizon: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, GEvent)> {
    if master.cancelled() || !master.fields.contains_key("recurrence") {
        return vec![];
    }
    let exceptions: HashMap<String, &GEvent> = store
        .events
        .values()
        .filter(|e| e.recurring_event_id() == Some(master.id.as_str()))
        .filter_map(|e| Some((instance_suffix(&field_time(e, "originalStartTime")?), e)))
        .collect();
    // A moved exception may start inside the window from an original slot past the horizon.
    let horizon = exceptions
        .values()
        .filter_map(|e| field_time(e, "originalStartTime"))
        .map(|t| t.instant(cal_tz))
        .fold(horizon, DateTime::max);
    occurrences(master, cal_tz, horizon)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|original| {
            let suffix = instance_suffix(&original);
            let ev = match exceptions.get(&suffix) {
                Some(e) => (*e).clone(),
                None => instance_at(master, &original, &format!("{}_{suffix}", master.id))?,
            };
            Some((original.instant(cal_tz), ev))
        })
        .collect()
}

/// `originalStart`: an RFC 3339 date-time, or a date for all-day series.
fn original_start_param(req: &Req) -> Result<Option<GTime>, Resp> {
    let Some(raw) = req.query("originalStart") else {
        return Ok(None);
    };
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(Some(GTime::Date(d)));
    }
    tz::parse_rfc3339(raw)
        .map(|instant| {
            Some(GTime::At {
                instant,
                zone: None,
            })
        })
        .ok_or_else(|| invalid_value("originalStart", raw))
}

/// Page tokens of events.instances are self-contained: the calendar, the master and the original
/// start (µs) of the last instance served. The other parameters are sent again with the token,
/// as Google's client libraries do.
fn encode_instances_token(calendar: &str, master: &str, after: DateTime<Utc>) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{calendar}\u{1f}{master}\u{1f}{}",
        after.timestamp_micros()
    ))
}

fn decode_instances_token(token: &str, calendar: &str, master: &str) -> Option<DateTime<Utc>> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let mut parts = raw.split('\u{1f}');
    let ok = parts.next()? == calendar && parts.next()? == master;
    let after = Utc.timestamp_micros(parts.next()?.parse().ok()?).single()?;
    ok.then_some(after)
}

fn instances(em: &Emulator, req: &Req, cid: &str, eid: &str) -> Resp {
    let st = em.lock();
    let cal = match resolve(&st, req, cid, false, "calendar.v1.EventsService.Instances") {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    instances_page(&st, req, cal, &percent_decode(eid)).unwrap_or_else(|resp| resp)
}

fn instances_page(st: &State, req: &Req, mut cal: Cal, eid: &str) -> Result<Resp, Resp> {
    let empty = GCalendarEvents::default();
    let store = st.events.google.get(&cal.id).unwrap_or(&empty);
    let master = store.events.get(eid).ok_or_else(not_found)?;
    response_zone(req, &mut cal)?;
    let max = max_results(req)?.unwrap_or(250);
    let show_deleted = flag(req, "showDeleted")?.unwrap_or(false);
    let (time_min, time_max) = time_bounds(req)?;
    let original_start = original_start_param(req)?;
    let after = match req.query("pageToken") {
        None => None,
        Some(token) => Some(
            decode_instances_token(token, &cal.id, &master.id)
                .ok_or_else(|| invalid_value("pageToken", token))?,
        ),
    };
    let horizon = match time_max {
        Some(max) => max,
        None if is_bounded(master) => far_future(),
        None => {
            let start = span(master, cal.tz).map_or_else(Utc::now, |(s, _)| s);
            start.max(Utc::now()) + Duration::days(365 * ENDLESS_YEARS)
        }
    };
    let horizon = original_start
        .as_ref()
        .map_or(horizon, |t| horizon.max(t.instant(cal.tz)));
    let wanted = original_start.as_ref().map(instance_suffix);
    let matching: Vec<(DateTime<Utc>, GEvent)> = series_instances(store, cal.tz, master, horizon)
        .into_iter()
        .filter(|(original, _)| after.is_none_or(|a| *original > a))
        .filter(|(_, ev)| show_deleted || !ev.cancelled())
        .filter(|(_, ev)| {
            wanted.as_ref().is_none_or(|w| {
                field_time(ev, "originalStartTime").is_some_and(|t| instance_suffix(&t) == *w)
            })
        })
        .filter(|(_, ev)| {
            // timeMin bounds the end (inclusive), timeMax the start (exclusive).
            span(ev, cal.tz).is_some_and(|(start, end)| {
                time_max.is_none_or(|max| start < max) && time_min.is_none_or(|min| end >= min)
            })
        })
        .collect();
    let page = &matching[..matching.len().min(max)];
    let mut body = page_head(
        &cal,
        store,
        &format!(
            "instances:{}:{}:{}",
            cal.id,
            master.id,
            st.events.clock.current()
        ),
    );
    if let (Some((last, _)), true) = (page.last(), matching.len() > page.len()) {
        body["nextPageToken"] = json!(encode_instances_token(&cal.id, &master.id, *last));
    }
    body["items"] = page
        .iter()
        .map(|(_, ev)| event_json(&cal, ev, false))
        .collect();
    Ok(ok_json(&body))
}

// ---------------------------------------------------------------------------------------------
// get / insert / patch / update / delete

fn get(em: &Emulator, req: &Req, cid: &str, eid: &str) -> Resp {
    let st = em.lock();
    let cal = match resolve(&st, req, cid, false, "calendar.v1.EventsService.Get") {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    match find(&st.events, &cal, &percent_decode(eid)) {
        Some((ev, _)) => ok_json(&event_json(&cal, &ev, false)),
        None => not_found(),
    }
}

fn body_object(req: &Req) -> Result<Map<String, Value>, Resp> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(parse_error()),
    }
}

/// The writable part of a client's event body.
fn writable(body: &Map<String, Value>, req: &Req) -> Map<String, Value> {
    let conference = req.query("conferenceDataVersion") == Some("1");
    body.iter()
        .filter(|(k, _)| API_WRITABLE.contains(&k.as_str()))
        .filter(|(k, _)| conference || k.as_str() != "conferenceData")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn insert(em: &Emulator, req: &Req, cid: &str) -> Resp {
    let mut st = em.lock();
    let cal = match resolve(&st, req, cid, true, "calendar.v1.EventsService.Insert") {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let body = match body_object(req) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let id = match body.get("id") {
        None | Some(Value::Null) => random_id(),
        Some(Value::String(id)) if valid_client_id(id) => id.clone(),
        Some(_) => return bad_request("Invalid resource id value.", "invalid", "id"),
    };
    if find(&st.events, &cal, &id).is_some() {
        return duplicate();
    }
    let mut fields = writable(&body, req);
    fields.remove("sequence");
    if fields.get("status").and_then(Value::as_str) == Some("cancelled") {
        fields.remove("status");
    }
    if let Err(resp) = validate(&mut fields) {
        return resp;
    }
    let order = st.events.next_order();
    let now = Utc::now();
    let ev = commit(
        &mut st.events,
        &cal.id,
        GEvent {
            id,
            order,
            seq: 0,
            created: now,
            updated: now,
            sequence: 0,
            fields,
        },
    );
    ok_json(&event_json(&cal, &ev, false))
}

fn modify(em: &Emulator, req: &Req, cid: &str, eid: &str, replace: bool) -> Resp {
    let mut st = em.lock();
    let method = if replace {
        "calendar.v1.EventsService.Update"
    } else {
        "calendar.v1.EventsService.Patch"
    };
    let cal = match resolve(&st, req, cid, true, method) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let body = match body_object(req) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let eid = percent_decode(eid);
    let Some((mut ev, stored)) = find(&st.events, &cal, &eid) else {
        return not_found();
    };
    if !if_match_ok(req, &etag(&ev)) {
        return precondition_failed();
    }
    let before = times_of(&ev.fields);
    let before = (before.0.cloned(), before.1.cloned(), before.2.cloned());
    let changes = writable(&body, req);
    let mut fields = if replace {
        // update: the writable fields are replaced; provider-side ones stay.
        let mut kept: Map<String, Value> = ev
            .fields
            .iter()
            .filter(|(k, _)| ADMIN_ONLY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        kept.extend(changes);
        kept
    } else {
        let mut merged = ev.fields.clone();
        for (k, v) in changes {
            if v.is_null() {
                merged.remove(&k);
            } else {
                merged.insert(k, v);
            }
        }
        merged
    };
    fields.remove("sequence");
    if !fields.contains_key("status") {
        fields.insert("status".into(), json!(ev.status()));
    }
    if let Err(resp) = validate(&mut fields) {
        return resp;
    }
    let after = times_of(&fields);
    if (after.0.cloned(), after.1.cloned(), after.2.cloned()) != before {
        ev.sequence += 1;
    }
    ev.fields = fields;
    if !stored {
        ev.order = st.events.next_order();
    }
    let ev = commit(&mut st.events, &cal.id, ev);
    ok_json(&event_json(&cal, &ev, false))
}

fn delete(em: &Emulator, req: &Req, cid: &str, eid: &str) -> Resp {
    let mut st = em.lock();
    let cal = match resolve(&st, req, cid, true, "calendar.v1.EventsService.Delete") {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let eid = percent_decode(eid);
    let Some((ev, stored)) = find(&st.events, &cal, &eid) else {
        return not_found();
    };
    if ev.cancelled() {
        return gone_deleted();
    }
    if !if_match_ok(req, &etag(&ev)) {
        return precondition_failed();
    }
    delete_event(&mut st.events, &cal.id, ev, stored);
    response(204, "text/html", "")
}

fn delete_event(events: &mut Events, calendar: &str, ev: GEvent, stored: bool) {
    if stored {
        cancel(events, calendar, &ev.id);
    } else {
        // Deleting an instance stores a cancelled exception.
        let mut ev = ev;
        ev.order = events.next_order();
        ev.fields.insert("status".into(), json!("cancelled"));
        commit(events, calendar, ev);
    }
}

// ---------------------------------------------------------------------------------------------
// Admin

/// The calendar an admin path names: an id, or `primary` (of `account`, else the default
/// Google account).
pub(crate) fn admin_calendar(st: &State, cid: &str, account: Option<&str>) -> Option<Cal> {
    let cid = percent_decode(cid);
    if cid == "primary" {
        let account = st.account(Provider::Google, account.unwrap_or(DEFAULT_GOOGLE_ACCOUNT))?;
        let calendar = account.calendars.iter().find(|c| c.primary)?;
        return Some(Cal::new(account, calendar));
    }
    let mut accounts: Vec<&Account> = st
        .accounts
        .values()
        .filter(|a| a.provider == Provider::Google)
        .filter(|a| account.is_none_or(|e| a.email.eq_ignore_ascii_case(e)))
        .collect();
    // The calendar's owner first: the account whose primary it is, else any.
    accounts.sort_by_key(|a| (a.email != cid, a.email.clone()));
    accounts.iter().find_map(|a| {
        a.calendars
            .iter()
            .find(|c| c.id == cid)
            .map(|c| Cal::new(a, c))
    })
}

fn admin_error(status: u16, message: impl std::fmt::Display) -> Resp {
    json(status, &json!({ "error": message.to_string() }))
}

/// Creates or replaces an event with provider-side authority.
pub(crate) fn put_event(st: &mut State, cal: &Cal, id: &str, body: &Value) -> Result<Value, Resp> {
    let Some(body) = body.as_object() else {
        return Err(admin_error(
            400,
            "the body must be a JSON object (Google event fields)",
        ));
    };
    if !valid_provider_id(id) {
        return Err(admin_error(
            400,
            "event ids are base32hex (0-9, a-v), 5 to 1024 characters; instance ids add _YYYYMMDD or _YYYYMMDDTHHMMSSZ",
        ));
    }
    let mut fields = Map::new();
    for (k, v) in body {
        if k == "id" || k == "kind" {
            continue;
        }
        if !API_WRITABLE.contains(&k.as_str()) && !ADMIN_ONLY.contains(&k.as_str()) {
            return Err(admin_error(
                400,
                format!("{k:?} is not a Google event field the admin API sets"),
            ));
        }
        if !v.is_null() {
            fields.insert(k.clone(), v.clone());
        }
    }
    let sequence_override = fields.remove("sequence").and_then(|v| v.as_i64());
    validate(&mut fields)?;
    if let Some(master) = fields.get("recurringEventId").and_then(Value::as_str) {
        let ok = st
            .events
            .google
            .get(&cal.id)
            .and_then(|c| c.events.get(master))
            .is_some_and(|m| m.fields.contains_key("recurrence"));
        if !ok {
            return Err(admin_error(
                400,
                format!("recurringEventId {master:?} is not a recurring event of this calendar"),
            ));
        }
    }
    let existing = find(&st.events, cal, id);
    let ev = match existing {
        Some((mut ev, stored)) => {
            let before = times_of(&ev.fields);
            let before = (before.0.cloned(), before.1.cloned(), before.2.cloned());
            let after = times_of(&fields);
            if (after.0.cloned(), after.1.cloned(), after.2.cloned()) != before {
                ev.sequence += 1;
            }
            if !stored {
                ev.order = st.events.next_order();
            }
            ev.fields = fields;
            ev
        }
        None => {
            let order = st.events.next_order();
            GEvent {
                id: id.to_owned(),
                order,
                seq: 0,
                created: Utc::now(),
                updated: Utc::now(),
                sequence: 0,
                fields,
            }
        }
    };
    let mut ev = ev;
    if let Some(n) = sequence_override {
        ev.sequence = n;
    }
    let ev = commit(&mut st.events, &cal.id, ev);
    Ok(event_json(cal, &ev, false))
}

pub(crate) fn admin(st: &mut State, req: &Req, rest: &[&str]) -> Option<Resp> {
    let account = req.query("account");
    let method = req.method.as_str();
    let cal = |st: &State, cid: &str| {
        admin_calendar(st, cid, account)
            .ok_or_else(|| admin_error(404, format!("no Google calendar {cid:?}")))
    };
    Some(match (method, rest) {
        ("PUT", [cid, "events", eid]) => {
            let cal = match cal(st, cid) {
                Ok(c) => c,
                Err(resp) => return Some(resp),
            };
            let body = match serde_json::from_slice::<Value>(&req.body) {
                Ok(b) => b,
                Err(e) => return Some(admin_error(400, e)),
            };
            match put_event(st, &cal, &percent_decode(eid), &body) {
                Ok(v) => json(200, &v),
                Err(resp) => resp,
            }
        }
        ("DELETE", [cid, "events", eid]) => {
            let cal = match cal(st, cid) {
                Ok(c) => c,
                Err(resp) => return Some(resp),
            };
            let eid = percent_decode(eid);
            match find(&st.events, &cal, &eid) {
                None => admin_error(404, format!("no event {eid:?} in {}", cal.id)),
                Some((ev, _)) if ev.cancelled() => {
                    json(200, &json!({ "deleted": eid, "alreadyCancelled": true }))
                }
                Some((ev, stored)) => {
                    delete_event(&mut st.events, &cal.id, ev, stored);
                    json(200, &json!({ "deleted": eid }))
                }
            }
        }
        ("GET", [cid, "events"]) => {
            let cal = match cal(st, cid) {
                Ok(c) => c,
                Err(resp) => return Some(resp),
            };
            let mut events: Vec<&GEvent> = st
                .events
                .google
                .get(&cal.id)
                .map(|c| c.events.values().collect())
                .unwrap_or_default();
            events.sort_by_key(|e| e.order);
            let items: Vec<Value> = events
                .iter()
                .filter(|e| !e.cancelled())
                .map(|e| event_json(&cal, e, false))
                .collect();
            let cancelled: Vec<Value> = events
                .iter()
                .filter(|e| e.cancelled() && e.recurring_event_id().is_some())
                .map(|e| event_json(&cal, e, true))
                .collect();
            json(
                200,
                &json!({ "calendarId": cal.id, "items": items, "cancelledInstances": cancelled }),
            )
        }
        // What the provider's own `events.instances` says, for tests checking what reached it.
        ("GET", [cid, "events", eid, "instances"]) => {
            let cal = match cal(st, cid) {
                Ok(c) => c,
                Err(resp) => return Some(resp),
            };
            instances_page(st, req, cal, &percent_decode(eid)).unwrap_or_else(|resp| resp)
        }
        ("POST", [cid, "invalidate-sync-tokens"]) => {
            let cal = match cal(st, cid) {
                Ok(c) => c,
                Err(resp) => return Some(resp),
            };
            let store = st.events.google.entry(cal.id.clone()).or_default();
            store.generation += 1;
            let generation = store.generation;
            st.events
                .google_cursors
                .retain(|_, c| c.calendar != cal.id || c.since.is_none());
            json(
                200,
                &json!({ "calendarId": cal.id, "invalidated": true, "generation": generation }),
            )
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Sample events

/// The default account's primary calendar starts with a few events this week (calendar time
/// zone Europe/London): three timed ones (one with Meet and attendees), an all-day one, and a
/// weekly series with one cancelled instance.
pub(crate) fn seed(st: &mut State) {
    let Some(cal) = admin_calendar(st, "primary", None) else {
        return;
    };
    let zone = cal.time_zone.clone();
    let today = Utc::now().with_timezone(&cal.tz).date_naive();
    let monday =
        today - Duration::days(chrono::Datelike::weekday(&today).num_days_from_monday() as i64);
    let at = |day: i64, h: u32, m: u32| -> String {
        let local = (monday + Duration::days(day))
            .and_hms_opt(h, m, 0)
            .unwrap_or_default();
        tz::google_date_time(tz::to_utc(local, cal.tz), cal.tz)
    };
    let date = |day: i64| {
        (monday + Duration::days(day))
            .format("%Y-%m-%d")
            .to_string()
    };
    let owner = cal.owner.clone();
    let samples = [
        (
            "seed0planning",
            json!({
                "summary": "Sprint planning",
                "description": "Agenda: review the board, pick the sprint goal.",
                "start": { "dateTime": at(0, 9, 30), "timeZone": zone },
                "end": { "dateTime": at(0, 10, 30), "timeZone": zone },
                "attendees": [
                    { "email": owner, "organizer": true, "responseStatus": "accepted" },
                    { "email": "bob@example.test", "displayName": "Bob", "responseStatus": "accepted" },
                    { "email": "carol@example.test", "displayName": "Carol", "optional": true, "responseStatus": "needsAction" },
                ],
                "hangoutLink": "https://meet.google.com/abc-defg-hij",
                "conferenceData": {
                    "entryPoints": [{
                        "entryPointType": "video",
                        "uri": "https://meet.google.com/abc-defg-hij",
                        "label": "meet.google.com/abc-defg-hij",
                    }],
                    "conferenceSolution": {
                        "key": { "type": "hangoutsMeet" },
                        "name": "Google Meet",
                        "iconUri": "https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/logo_meet_2020q4_color_2x_web_512dp.png",
                    },
                    "conferenceId": "abc-defg-hij",
                },
            }),
        ),
        (
            "seed0dentist",
            json!({
                "summary": "Dentist",
                "location": "12 High Street, London",
                "start": { "dateTime": at(2, 14, 0), "timeZone": zone },
                "end": { "dateTime": at(2, 15, 0), "timeZone": zone },
                "reminders": { "useDefault": false, "overrides": [{ "method": "popup", "minutes": 60 }] },
            }),
        ),
        (
            "seed0lunch",
            json!({
                "summary": "Lunch with Sam",
                "status": "tentative",
                "transparency": "transparent",
                "start": { "dateTime": at(3, 12, 30), "timeZone": zone },
                "end": { "dateTime": at(3, 13, 30), "timeZone": zone },
            }),
        ),
        (
            "seed0offsite",
            json!({
                "summary": "Team offsite",
                "start": { "date": date(4) },
                "end": { "date": date(5) },
            }),
        ),
        (
            "seed0oneonone",
            json!({
                "summary": "Weekly 1:1",
                "start": { "dateTime": at(-6, 11, 0), "timeZone": zone },
                "end": { "dateTime": at(-6, 11, 30), "timeZone": zone },
                "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=TU"],
            }),
        ),
    ];
    for (id, body) in samples {
        let _ = put_event(st, &cal, id, &body);
    }
    // This week's 1:1 is cancelled.
    let tuesday = tz::to_utc(
        (monday + Duration::days(1))
            .and_hms_opt(11, 0, 0)
            .unwrap_or_default(),
        cal.tz,
    );
    let instance = format!("seed0oneonone_{}", tuesday.format("%Y%m%dT%H%M%SZ"));
    if let Some((ev, stored)) = find(&st.events, &cal, &instance) {
        delete_event(&mut st.events, &cal.id, ev, stored);
    }
}
