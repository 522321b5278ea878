//! Microsoft Graph v1.0 events: `calendarView/delta` (default calendar or a given one) and event
//! create / get / update / delete; and the admin-side changes.
//!
//! Series are stored as Exchange stores them: a `seriesMaster` with a `patternedRecurrence`,
//! `exception`s, and the original starts of cancelled occurrences. Occurrences are generated
//! from the master for the window asked; their ids are stable (derived from the master id and
//! the original start) and keep working after they turn into exceptions.
//!
//! Delta works on snapshots: a delta token stands for the instances (id, changeKey) the client
//! holds after its round; the next round sends what was added or changed since, and
//! `@removed` for what left the window (deleted, cancelled, or moved out).

// Handlers fail with the finished HTTP answer; it is built once per request, so its size does
// not matter and boxing every early return would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Map, Value};

use crate::events::{
    evict_oldest, Change, DeltaRound, DeltaState, Events, MCalendarEvents, MEvent, MKind,
};
use crate::http::{json, percent_decode, response, sha256, with_header, Req, Resp};
use crate::microsoft::{graph_account, graph_error, max_page_size, CALENDAR_SCOPES, ODATA_JSON};
use crate::recurrence;
use crate::state::{Account, Calendar, Provider, State, DEFAULT_MICROSOFT_ACCOUNT};
use crate::tz;
use crate::Emulator;

const WRITE_SCOPES: &[&str] = &[
    "calendars.readwrite",
    "calendars.readwrite.shared",
    ".default",
];

/// Fields a client may write.
const API_WRITABLE: &[&str] = &[
    "subject",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "attendees",
    "isAllDay",
    "showAs",
    "importance",
    "sensitivity",
    "categories",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "recurrence",
    "transactionId",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "hideAttendees",
    "allowNewTimeProposals",
];

/// Provider-side facts only the admin API sets.
const ADMIN_ONLY: &[&str] = &[
    "organizer",
    "isCancelled",
    "onlineMeeting",
    "responseStatus",
];

const DEFAULT_PAGE_SIZE: usize = 10;
const DELTA_CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata#Collection(event)";

/// The calendar a request or admin call addresses.
#[derive(Clone, Debug)]
pub(crate) struct MCal {
    pub id: String,
    pub owner: String,
    pub owner_name: String,
    pub user_id: String,
}

impl MCal {
    fn new(account: &Account, calendar: &Calendar) -> Self {
        MCal {
            id: calendar.id.clone(),
            owner: account.email.clone(),
            owner_name: account.display_name.clone(),
            user_id: account.user_id(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Times

/// A stored `start` / `end`: wall-clock time in a zone (Windows or IANA name).
#[derive(Clone, Debug)]
struct MTime {
    local: NaiveDateTime,
    zone: Tz,
    zone_name: String,
}

impl MTime {
    fn parse(v: &Value) -> Result<MTime, String> {
        let dt = v
            .get("dateTime")
            .and_then(Value::as_str)
            .ok_or("dateTime is required")?;
        let zone_name = v
            .get("timeZone")
            .and_then(Value::as_str)
            .filter(|z| !z.is_empty())
            .unwrap_or("UTC");
        let zone = tz::zone(zone_name).ok_or_else(|| format!("zone:{zone_name}"))?;
        let local = tz::parse_graph_local(dt).ok_or_else(|| {
            format!("Cannot convert the literal '{dt}' to the expected type 'Edm.DateTime'.")
        })?;
        Ok(MTime {
            local,
            zone,
            zone_name: zone_name.to_owned(),
        })
    }

    fn instant(&self) -> DateTime<Utc> {
        tz::to_utc(self.local, self.zone)
    }

    fn stored(&self) -> Value {
        json!({ "dateTime": tz::graph_local(self.local), "timeZone": self.zone_name })
    }
}

fn stored_time(ev: &MEvent, key: &str) -> Option<MTime> {
    ev.fields.get(key).and_then(|v| MTime::parse(v).ok())
}

fn is_all_day(fields: &Map<String, Value>) -> bool {
    fields
        .get("isAllDay")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The zone answers are rendered in: `Prefer: outlook.timezone="..."`, when valid.
fn preferred_zone(req: &Req) -> Option<(Tz, String)> {
    req.headers.get_all("prefer").iter().find_map(|value| {
        value.to_str().ok()?.split(',').find_map(|pref| {
            let (key, value) = pref.trim().split_once('=')?;
            if !key.trim().eq_ignore_ascii_case("outlook.timezone") {
                return None;
            }
            let name = value.trim().trim_matches('"');
            tz::zone(name).map(|z| (z, name.to_owned()))
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Instances

/// One event of a calendar view: a single instance, an occurrence or an exception.
#[derive(Clone, Debug)]
struct Inst {
    id: String,
    change_key: String,
    kind: &'static str,
    /// The stored event: itself, or for an occurrence its master.
    ev: MEvent,
    start: MTime,
    end: MTime,
    original_start: Option<DateTime<Utc>>,
}

impl Inst {
    fn span(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.start.instant(), self.end.instant())
    }
}

fn overlaps(span: (DateTime<Utc>, DateTime<Utc>), window: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    let ((s, e), (ws, we)) = (span, window);
    (s < we && e > ws) || (s == e && s >= ws && s < we)
}

fn occurrence_id(master: &str, original: DateTime<Utc>) -> String {
    let h = sha256(&format!("occurrence:{master}:{}", original.timestamp()));
    format!("AAMkAGI{}ABEGAAA=", URL_SAFE_NO_PAD.encode(&h[..30]))
}

fn derived_change_key(master_key: &str, original: DateTime<Utc>) -> String {
    STANDARD.encode(&sha256(&format!("{master_key}:{}", original.timestamp()))[..16])
}

/// Occurrences of a master starting up to `horizon`: (original start, start, end).
fn series(master: &MEvent, horizon: DateTime<Utc>) -> Vec<(DateTime<Utc>, MTime, MTime)> {
    let (Some(start), Some(end)) = (stored_time(master, "start"), stored_time(master, "end"))
    else {
        return vec![];
    };
    let Some(Ok((rule, first))) = master
        .fields
        .get("recurrence")
        .map(recurrence::parse_graph_recurrence)
    else {
        return vec![];
    };
    let duration = end.instant() - start.instant();
    let local_duration = end.local - start.local;
    let all_day = is_all_day(&master.fields);
    recurrence::expand(
        &rule,
        first.and_time(start.local.time()),
        start.zone,
        horizon,
    )
    .into_iter()
    .map(|(local, instant)| {
        let s = MTime {
            local,
            ..start.clone()
        };
        let e = if all_day {
            MTime {
                local: local + local_duration,
                ..end.clone()
            }
        } else {
            let t = (instant + duration).with_timezone(&end.zone).naive_local();
            MTime {
                local: t,
                ..end.clone()
            }
        };
        (instant, s, e)
    })
    .collect()
}

/// Every instance of the calendar overlapping `window`, by start.
fn instances(store: &MCalendarEvents, window: (DateTime<Utc>, DateTime<Utc>)) -> Vec<Inst> {
    let mut out = Vec::new();
    let exceptions: BTreeSet<(String, DateTime<Utc>)> = store
        .events
        .values()
        .filter(|e| e.kind == MKind::Exception)
        .filter_map(|e| Some((e.series_master_id.clone()?, e.original_start?)))
        .collect();
    for ev in store.events.values() {
        match ev.kind {
            MKind::SingleInstance | MKind::Exception => {
                let (Some(start), Some(end)) = (stored_time(ev, "start"), stored_time(ev, "end"))
                else {
                    continue;
                };
                let inst = Inst {
                    id: ev.id.clone(),
                    change_key: ev.change_key.clone(),
                    kind: if ev.kind == MKind::Exception {
                        "exception"
                    } else {
                        "singleInstance"
                    },
                    ev: ev.clone(),
                    start,
                    end,
                    original_start: ev.original_start,
                };
                if overlaps(inst.span(), window) {
                    out.push(inst);
                }
            }
            MKind::SeriesMaster => {
                for (original, start, end) in series(ev, window.1) {
                    if ev.cancelled.contains(&original)
                        || exceptions.contains(&(ev.id.clone(), original))
                    {
                        continue;
                    }
                    let inst = Inst {
                        id: occurrence_id(&ev.id, original),
                        change_key: derived_change_key(&ev.change_key, original),
                        kind: "occurrence",
                        ev: ev.clone(),
                        start,
                        end,
                        original_start: Some(original),
                    };
                    if overlaps(inst.span(), window) {
                        out.push(inst);
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| (a.span().0, &a.id).cmp(&(b.span().0, &b.id)));
    out
}

/// Computes the instances of a calendar in a window and remembers the occurrence ids handed out.
fn view(events: &mut Events, calendar: &str, window: (DateTime<Utc>, DateTime<Utc>)) -> Vec<Inst> {
    let list = events
        .microsoft
        .get(calendar)
        .map(|s| instances(s, window))
        .unwrap_or_default();
    for inst in list.iter().filter(|i| i.kind == "occurrence") {
        if let Some(original) = inst.original_start {
            events.occurrences.insert(
                inst.id.clone(),
                (calendar.to_owned(), inst.ev.id.clone(), original),
            );
        }
    }
    list
}

/// A generated occurrence (not an exception, not cancelled) by id.
fn occurrence(events: &Events, calendar: &str, id: &str) -> Option<Inst> {
    let (cal, master_id, original) = events.occurrences.get(id)?;
    if cal != calendar {
        return None;
    }
    let store = events.microsoft.get(calendar)?;
    if store.events.contains_key(id) {
        return None;
    }
    let master = store.events.get(master_id)?;
    if master.kind != MKind::SeriesMaster || master.cancelled.contains(original) {
        return None;
    }
    let (_, start, end) = series(master, *original)
        .into_iter()
        .find(|(o, _, _)| o == original)?;
    Some(Inst {
        id: id.to_owned(),
        change_key: derived_change_key(&master.change_key, *original),
        kind: "occurrence",
        ev: master.clone(),
        start,
        end,
        original_start: Some(*original),
    })
}

// ---------------------------------------------------------------------------------------------
// Event JSON

fn strip_html(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let text = out
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ical_uid(id: &str, instance: Option<DateTime<Utc>>) -> String {
    let date = instance
        .map(|t| {
            let d = t.date_naive();
            format!(
                "{:04X}{:02X}{:02X}",
                chrono::Datelike::year(&d),
                chrono::Datelike::month(&d),
                chrono::Datelike::day(&d)
            )
        })
        .unwrap_or_else(|| "00000000".into());
    let h: String = sha256(&format!("uid:{id}"))[..16]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("040000008200E00074C5B7101A82E008{date}0000000000000000000000000000000010000000{h}")
}

fn web_link(id: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("https://outlook.live.com/owa/?itemid={encoded}&exvsurl=1&path=/calendar/item")
}

fn location_json(v: Option<&Value>) -> Value {
    let name = v
        .and_then(|l| l.get("displayName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = json!({
        "displayName": name,
        "locationType": "default",
        "uniqueIdType": "unknown",
        "address": {},
        "coordinates": {},
    });
    if let Some(Value::Object(given)) = v {
        for (k, val) in given {
            out[k.as_str()] = val.clone();
        }
    }
    if !name.is_empty() && out.get("uniqueId").is_none() {
        out["uniqueId"] = json!(name);
        out["uniqueIdType"] = json!("private");
    }
    out
}

fn time_json(t: &MTime, all_day: bool, out: Option<&(Tz, String)>) -> Value {
    match out {
        None => t.stored(),
        Some((zone, name)) => {
            let local = if all_day {
                t.local
            } else {
                t.instant().with_timezone(zone).naive_local()
            };
            json!({ "dateTime": tz::graph_local(local), "timeZone": name })
        }
    }
}

/// An event as Graph answers with it. `out`: the zone of start/end (`None`: the event's own).
fn event_json(cal: &MCal, inst: &Inst, out: Option<&(Tz, String)>) -> Value {
    let ev = &inst.ev;
    let f = &ev.fields;
    let get = |k: &str, d: Value| f.get(k).filter(|v| !v.is_null()).cloned().unwrap_or(d);
    let all_day = is_all_day(f);
    let body = get("body", json!({ "contentType": "html", "content": "" }));
    let preview: String = strip_html(body.get("content").and_then(Value::as_str).unwrap_or(""))
        .chars()
        .take(255)
        .collect();
    let organizer = get(
        "organizer",
        json!({ "emailAddress": { "name": cal.owner_name, "address": cal.owner } }),
    );
    let is_organizer = organizer
        .pointer("/emailAddress/address")
        .and_then(Value::as_str)
        .is_some_and(|a| a.eq_ignore_ascii_case(&cal.owner));
    let response_status = get(
        "responseStatus",
        if is_organizer {
            json!({ "response": "organizer", "time": "0001-01-01T00:00:00Z" })
        } else {
            json!({ "response": "notResponded", "time": "0001-01-01T00:00:00Z" })
        },
    );
    let attendees: Vec<Value> = f
        .get("attendees")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut a| {
            if a.get("type").is_none() {
                a["type"] = json!("required");
            }
            if a.get("status").is_none() {
                a["status"] = json!({ "response": "none", "time": "0001-01-01T00:00:00Z" });
            }
            a
        })
        .collect();
    let location = location_json(f.get("location"));
    let locations = match f.get("locations") {
        Some(Value::Array(l)) => Value::Array(l.iter().map(|x| location_json(Some(x))).collect()),
        _ if !location["displayName"].as_str().unwrap_or("").is_empty() => json!([location]),
        _ => json!([]),
    };
    let online_meeting = f.get("onlineMeeting").filter(|v| !v.is_null()).cloned();
    let is_online = get("isOnlineMeeting", json!(online_meeting.is_some()));
    let provider = get(
        "onlineMeetingProvider",
        json!(if online_meeting.is_some() {
            "teamsForBusiness"
        } else {
            "unknown"
        }),
    );
    let series_master = match inst.kind {
        "occurrence" => json!(ev.id),
        "exception" => json!(ev.series_master_id),
        _ => Value::Null,
    };
    let recurrence = if inst.kind == "seriesMaster" {
        f.get("recurrence")
            .map(|r| recurrence::normalize_graph_recurrence(r, &inst.start.zone_name))
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let uid_instance = inst.original_start;
    let mut o = json!({
        "@odata.etag": format!("W/\"{}\"", inst.change_key),
        "id": inst.id,
        "createdDateTime": tz::graph_timestamp(ev.created),
        "lastModifiedDateTime": tz::graph_timestamp(ev.modified),
        "changeKey": inst.change_key,
        "categories": get("categories", json!([])),
        "transactionId": get("transactionId", Value::Null),
        "originalStartTimeZone": inst.start.zone_name,
        "originalEndTimeZone": inst.end.zone_name,
        "iCalUId": ical_uid(ev.series_master_id.as_deref().unwrap_or(&ev.id), uid_instance),
        "reminderMinutesBeforeStart": get("reminderMinutesBeforeStart", json!(15)),
        "isReminderOn": get("isReminderOn", json!(true)),
        "hasAttachments": false,
        "subject": get("subject", json!("")),
        "bodyPreview": preview,
        "importance": get("importance", json!("normal")),
        "sensitivity": get("sensitivity", json!("normal")),
        "isAllDay": all_day,
        "isCancelled": get("isCancelled", json!(false)),
        "isOrganizer": is_organizer,
        "responseRequested": get("responseRequested", json!(true)),
        "seriesMasterId": series_master,
        "showAs": get("showAs", json!("busy")),
        "type": inst.kind,
        "webLink": web_link(&inst.id),
        "onlineMeetingUrl": Value::Null,
        "isOnlineMeeting": is_online,
        "onlineMeetingProvider": provider,
        "allowNewTimeProposals": get("allowNewTimeProposals", json!(true)),
        "isDraft": false,
        "hideAttendees": get("hideAttendees", json!(false)),
        "responseStatus": response_status,
        "body": body,
        "start": time_json(&inst.start, all_day, out),
        "end": time_json(&inst.end, all_day, out),
        "location": location,
        "locations": locations,
        "recurrence": recurrence,
        "attendees": attendees,
        "organizer": organizer,
        "onlineMeeting": online_meeting.unwrap_or(Value::Null),
    });
    if let Some(original) = inst.original_start {
        o["originalStart"] = json!(original.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    o
}

/// A stored event (single instance, master or exception) as an `Inst`.
fn stored_inst(ev: &MEvent) -> Option<Inst> {
    Some(Inst {
        id: ev.id.clone(),
        change_key: ev.change_key.clone(),
        kind: match ev.kind {
            MKind::SingleInstance => "singleInstance",
            MKind::SeriesMaster => "seriesMaster",
            MKind::Exception => "exception",
        },
        ev: ev.clone(),
        start: stored_time(ev, "start")?,
        end: stored_time(ev, "end")?,
        original_start: ev.original_start,
    })
}

fn removed(id: &str) -> Value {
    json!({ "@odata.type": "#microsoft.graph.event", "id": id, "@removed": { "reason": "deleted" } })
}

fn malformed_event() -> Value {
    let mut b = [0u8; 30];
    OsRng.fill_bytes(&mut b);
    let id = format!("AAMkAGI{}AAA=", URL_SAFE_NO_PAD.encode(b));
    json!({
        "@odata.etag": "W/\"DwAAABYAAAAAAAAAAAAAAAAAAAAA\"",
        "id": id,
        "createdDateTime": "2026-01-01T00:00:00.0000000Z",
        "lastModifiedDateTime": "2026-01-01T00:00:00.0000000Z",
        "changeKey": "DwAAABYAAAAAAAAAAAAAAAAAAAAA",
        "subject": "Malformed event (injected fault)",
        "type": "singleInstance",
        "isAllDay": false,
        "isCancelled": false,
        "start": { "dateTime": "not-a-date", "timeZone": "UTC" },
        "end": { "dateTime": "not-a-date", "timeZone": "UTC" },
    })
}

// ---------------------------------------------------------------------------------------------
// Validation and storage

fn bad(req: &Req, code: &str, message: &str) -> Resp {
    graph_error(req, 400, code, message)
}

fn not_found(req: &Req) -> Resp {
    graph_error(
        req,
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn validate(req: &Req, fields: &mut Map<String, Value>) -> Result<MKind, Resp> {
    let mut times = Vec::new();
    for key in ["start", "end"] {
        let v = fields.get(key).filter(|v| !v.is_null()).ok_or_else(|| {
            bad(
                req,
                "ErrorInvalidRequest",
                &format!("Your request can't be completed. The event's {key} time is required."),
            )
        })?;
        let t = MTime::parse(v).map_err(|e| match e.strip_prefix("zone:") {
            Some(z) => bad(
                req,
                "TimeZoneNotSupportedException",
                &format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{z}'."),
            ),
            None => bad(req, "BadRequest", &e),
        })?;
        fields.insert(key.into(), t.stored());
        times.push(t);
    }
    if times[1].instant() < times[0].instant() {
        return Err(bad(
            req,
            "ErrorInvalidRequest",
            "Your request can't be completed. The end time must be on or after the start time.",
        ));
    }
    if is_all_day(fields) {
        let midnight = |t: &MTime| t.local.time() == chrono::NaiveTime::MIN;
        if !midnight(&times[0]) || !midnight(&times[1]) || times[1].local <= times[0].local {
            return Err(bad(
                req,
                "ErrorPropertyValidationFailure",
                "At least one property failed validation. An all-day event starts and ends at midnight.",
            ));
        }
    }
    for (key, allowed) in [
        (
            "showAs",
            &[
                "free",
                "tentative",
                "busy",
                "oof",
                "workingElsewhere",
                "unknown",
            ][..],
        ),
        ("importance", &["low", "normal", "high"][..]),
        (
            "sensitivity",
            &["normal", "personal", "private", "confidential"][..],
        ),
        (
            "onlineMeetingProvider",
            &[
                "unknown",
                "skypeForBusiness",
                "skypeForConsumer",
                "teamsForBusiness",
            ][..],
        ),
    ] {
        if let Some(v) = fields.get(key).filter(|v| !v.is_null()) {
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                return Err(bad(
                    req,
                    "RequestBodyRead",
                    &format!(
                        "Requested value '{}' was not found.",
                        v.as_str().unwrap_or("")
                    ),
                ));
            }
        }
    }
    if let Some(attendees) = fields.get("attendees").filter(|v| !v.is_null()) {
        let ok = attendees.as_array().is_some_and(|l| {
            l.iter().all(|a| {
                a.pointer("/emailAddress/address")
                    .is_some_and(Value::is_string)
            })
        });
        if !ok {
            return Err(bad(
                req,
                "ErrorInvalidRecipients",
                "At least one recipient isn't valid.",
            ));
        }
    }
    match fields.get("recurrence").filter(|v| !v.is_null()) {
        None => Ok(MKind::SingleInstance),
        Some(r) => {
            recurrence::parse_graph_recurrence(r).map_err(|e| {
                bad(
                    req,
                    "ErrorPropertyValidationFailure",
                    &format!("At least one property failed validation. Recurrence: {e}"),
                )
            })?;
            let normalized = recurrence::normalize_graph_recurrence(r, &times[0].zone_name);
            fields.insert("recurrence".into(), normalized);
            Ok(MKind::SeriesMaster)
        }
    }
}

fn random_id() -> String {
    let mut b = [0u8; 30];
    OsRng.fill_bytes(&mut b);
    format!("AAMkAGI{}AAA=", URL_SAFE_NO_PAD.encode(b))
}

/// Stamps a change (modification time, changeKey; creation time too for a new event) and
/// stores the event.
fn commit(events: &mut Events, calendar: &str, mut ev: MEvent, new: bool) -> MEvent {
    let (seq, t) = events.clock.tick();
    // Graph keeps 100 ns ticks: make the fraction visible.
    let t = t + Duration::nanoseconds((seq % 10_000) as i64 * 100 % 1_000_000);
    if new {
        ev.created = t;
    }
    ev.modified = t;
    ev.change_key = STANDARD.encode(&sha256(&format!("ck:{}:{seq}", ev.id))[..16]);
    events
        .microsoft
        .entry(calendar.to_owned())
        .or_default()
        .events
        .insert(ev.id.clone(), ev.clone());
    events.changes.push(Change::Microsoft {
        calendar: calendar.to_owned(),
        id: ev.id.clone(),
        kind: if new { "created" } else { "updated" },
        change_key: ev.change_key.clone(),
    });
    ev
}

fn teams_link() -> Value {
    let mut b = [0u8; 24];
    OsRng.fill_bytes(&mut b);
    let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    json!({ "joinUrl": format!("https://teams.microsoft.com/l/meetup-join/19%3ameeting_{id}%40thread.v2/0") })
}

/// Deletes an event or occurrence: a master takes its exceptions along; an exception or an
/// occurrence becomes a cancelled occurrence of its master.
fn remove(events: &mut Events, calendar: &str, id: &str) -> bool {
    if let Some(inst) = occurrence(events, calendar, id) {
        if let (Some(store), Some(original)) =
            (events.microsoft.get_mut(calendar), inst.original_start)
        {
            if let Some(master) = store.events.get_mut(&inst.ev.id) {
                master.cancelled.insert(original);
                // Exchange keeps a series' cancellations on the master item: its subscribers
                // hear of an update to the master.
                let change = Change::Microsoft {
                    calendar: calendar.to_owned(),
                    id: master.id.clone(),
                    kind: "updated",
                    change_key: master.change_key.clone(),
                };
                events.changes.push(change);
                return true;
            }
        }
        return false;
    }
    let Some(store) = events.microsoft.get_mut(calendar) else {
        return false;
    };
    let Some(ev) = store.events.remove(id) else {
        return false;
    };
    events.changes.push(Change::Microsoft {
        calendar: calendar.to_owned(),
        id: ev.id.clone(),
        kind: "deleted",
        change_key: ev.change_key.clone(),
    });
    let Some(store) = events.microsoft.get_mut(calendar) else {
        return true;
    };
    match ev.kind {
        MKind::SeriesMaster => store
            .events
            .retain(|_, e| e.series_master_id.as_deref() != Some(id)),
        MKind::Exception => {
            if let (Some(master), Some(original)) = (
                ev.series_master_id
                    .as_ref()
                    .and_then(|m| store.events.get_mut(m)),
                ev.original_start,
            ) {
                master.cancelled.insert(original);
            }
        }
        MKind::SingleInstance => {}
    }
    true
}

/// Applies `changes` to an event or an occurrence (which becomes an exception). `replace`: the
/// admin API's full replacement instead of PATCH's merge.
fn update(
    events: &mut Events,
    req: &Req,
    calendar: &str,
    id: &str,
    changes: Map<String, Value>,
    replace: bool,
) -> Result<Option<MEvent>, Resp> {
    let (mut ev, new) = match occurrence(events, calendar, id) {
        Some(inst) => {
            let mut fields = inst.ev.fields.clone();
            fields.remove("recurrence");
            fields.insert("start".into(), inst.start.stored());
            fields.insert("end".into(), inst.end.stored());
            let order = events.next_order();
            (
                MEvent {
                    id: id.to_owned(),
                    order,
                    created: inst.ev.created,
                    modified: inst.ev.modified,
                    change_key: inst.change_key.clone(),
                    kind: MKind::Exception,
                    series_master_id: Some(inst.ev.id.clone()),
                    original_start: inst.original_start,
                    cancelled: BTreeSet::new(),
                    fields,
                },
                false,
            )
        }
        None => match events
            .microsoft
            .get(calendar)
            .and_then(|s| s.events.get(id))
        {
            Some(ev) => (ev.clone(), false),
            None => return Ok(None),
        },
    };
    if let Some(v) = req.header("if-match") {
        let etag = format!("W/\"{}\"", ev.change_key);
        let ok = v.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t == etag || t.trim_matches('"') == ev.change_key
        });
        if !ok {
            return Err(graph_error(
                req,
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
            ));
        }
    }
    let mut fields = if replace {
        Map::new()
    } else {
        ev.fields.clone()
    };
    for (k, v) in changes {
        if v.is_null() {
            fields.remove(&k);
        } else {
            fields.insert(k, v);
        }
    }
    if ev.kind == MKind::Exception {
        fields.remove("recurrence");
    }
    let kind = validate(req, &mut fields)?;
    if ev.kind != MKind::Exception {
        if ev.kind == MKind::SeriesMaster && kind == MKind::SingleInstance {
            return Err(bad(
                req,
                "ErrorInvalidRequest",
                "Your request can't be completed. A series master keeps its recurrence.",
            ));
        }
        let pattern =
            |f: &Map<String, Value>| f.get("recurrence").map(|r| r.get("pattern").cloned());
        if ev.kind == MKind::SeriesMaster
            && (pattern(&fields) != pattern(&ev.fields)
                || fields.get("start") != ev.fields.get("start"))
        {
            // A new pattern (or series start) drops the series' exceptions and cancellations,
            // as Exchange does (MS-OXOCAL 3.1.4.7.3.5).
            ev.cancelled.clear();
            let master = ev.id.clone();
            if let Some(store) = events.microsoft.get_mut(calendar) {
                store
                    .events
                    .retain(|_, e| e.series_master_id.as_deref() != Some(master.as_str()));
            }
        } else if ev.kind == MKind::SeriesMaster
            && fields.get("recurrence") != ev.fields.get("recurrence")
        {
            // Only the range changed (the series ends earlier or later): exceptions and
            // cancellations stay where their occurrence still is.
            let mut changed = ev.clone();
            changed.fields = fields.clone();
            let horizon = Utc::now() + chrono::Duration::days(3650);
            let starts: BTreeSet<DateTime<Utc>> = series(&changed, horizon)
                .into_iter()
                .map(|(t, _, _)| t)
                .collect();
            ev.cancelled.retain(|t| starts.contains(t));
            let master = ev.id.clone();
            if let Some(store) = events.microsoft.get_mut(calendar) {
                store.events.retain(|_, e| {
                    e.series_master_id.as_deref() != Some(master.as_str())
                        || e.original_start.is_some_and(|t| starts.contains(&t))
                });
            }
        }
        ev.kind = kind;
    }
    if fields.get("isOnlineMeeting") == Some(&json!(true)) && !fields.contains_key("onlineMeeting")
    {
        fields.insert("onlineMeeting".into(), teams_link());
        fields
            .entry("onlineMeetingProvider")
            .or_insert(json!("teamsForBusiness"));
    }
    ev.fields = fields;
    Ok(Some(commit(events, calendar, ev, new)))
}

fn create(
    events: &mut Events,
    req: &Req,
    calendar: &str,
    id: Option<String>,
    mut fields: Map<String, Value>,
) -> Result<MEvent, Resp> {
    let kind = validate(req, &mut fields)?;
    if fields.get("isOnlineMeeting") == Some(&json!(true)) && !fields.contains_key("onlineMeeting")
    {
        fields.insert("onlineMeeting".into(), teams_link());
        fields
            .entry("onlineMeetingProvider")
            .or_insert(json!("teamsForBusiness"));
    }
    let order = events.next_order();
    let now = Utc::now();
    Ok(commit(
        events,
        calendar,
        MEvent {
            id: id.unwrap_or_else(random_id),
            order,
            created: now,
            modified: now,
            change_key: String::new(),
            kind,
            series_master_id: None,
            original_start: None,
            cancelled: BTreeSet::new(),
            fields,
        },
        true,
    ))
}

// ---------------------------------------------------------------------------------------------
// Routing

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn is_delta(segment: &str) -> bool {
    eq(segment, "delta") || eq(segment, "delta()") || eq(segment, "microsoft.graph.delta()")
}

/// Whether `rest` (the path after `/microsoft/v1.0/me/`) is an events path.
pub(crate) fn handles(rest: &[&str]) -> bool {
    match rest {
        [events] => eq(events, "events"),
        [first, second] => (eq(first, "calendarView") && is_delta(second)) || eq(first, "events"),
        [first, _, third] => {
            (eq(first, "calendars") && eq(third, "events"))
                || (eq(first, "events") && eq(third, "instances"))
        }
        [cals, _, third, fourth] => {
            eq(cals, "calendars")
                && ((eq(third, "calendarView") && is_delta(fourth)) || eq(third, "events"))
        }
        [cals, _, events, _, instances] => {
            eq(cals, "calendars") && eq(events, "events") && eq(instances, "instances")
        }
        _ => false,
    }
}

pub(crate) fn route(em: &Emulator, req: &Req, rest: &[&str]) -> Resp {
    let method = req.method.as_str();
    match (method, rest) {
        ("GET", [view, _]) if eq(view, "calendarView") => delta(em, req, None),
        ("GET", [_, cid, view, _]) if eq(view, "calendarView") => delta(em, req, Some(cid)),
        ("GET", [events, id, _]) if eq(events, "events") => list_instances(em, req, None, id),
        ("GET", [_, cid, _, id, _]) => list_instances(em, req, Some(cid), id),
        ("POST", [_]) => post(em, req, None),
        ("POST", [_, cid, _]) => post(em, req, Some(cid)),
        ("GET" | "PATCH" | "DELETE", [_, id]) => one(em, req, None, id),
        ("GET" | "PATCH" | "DELETE", [_, cid, _, id]) => one(em, req, Some(cid), id),
        _ => graph_error(
            req,
            501,
            "NotImplemented",
            &format!(
                "The provider emulator does not emulate {method} {}.",
                req.path
            ),
        ),
    }
}

/// The signed-in account and the calendar a path names (`None`: the default calendar).
fn resolve(st: &State, req: &Req, cid: Option<&str>, write: bool) -> Result<MCal, Box<Resp>> {
    let account = graph_account(st, req, if write { WRITE_SCOPES } else { CALENDAR_SCOPES })?;
    let calendar = match cid {
        None => account.calendars.iter().find(|c| c.primary),
        Some(cid) => {
            let cid = percent_decode(cid);
            account.calendars.iter().find(|c| c.id == cid)
        }
    };
    let calendar = calendar.ok_or_else(|| Box::new(not_found(req)))?;
    if write && !calendar.can_edit {
        return Err(Box::new(graph_error(
            req,
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )));
    }
    Ok(MCal::new(account, calendar))
}

pub(crate) fn graph_resp(req: &Req, status: u16, body: &Value) -> Resp {
    let resp = response(status, ODATA_JSON, body.to_string());
    let request_id = crate::http::guid();
    let client_request_id = req
        .header("client-request-id")
        .map(str::to_owned)
        .unwrap_or_else(|| request_id.clone());
    let resp = with_header(resp, "request-id", &request_id);
    with_header(resp, "client-request-id", &client_request_id)
}

fn entity_context(cal: &MCal) -> String {
    format!(
        "https://graph.microsoft.com/v1.0/$metadata#users('{}')/calendars('{}')/events/$entity",
        cal.user_id, cal.id
    )
}

// ---------------------------------------------------------------------------------------------
// calendarView/delta

fn sync_state_not_found(req: &Req) -> Resp {
    graph_error(
        req,
        410,
        "syncStateNotFound",
        "The sync state generation is not found.",
    )
}

fn encode_skip(round: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{round}.{offset}"))
}

fn decode_skip(token: &str) -> Option<(String, usize)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (round, offset) = raw.rsplit_once('.')?;
    Some((round.to_owned(), offset.parse().ok()?))
}

fn delta(em: &Emulator, req: &Req, cid: Option<&str>) -> Resp {
    let mut st = em.lock();
    let cal = match resolve(&st, req, cid, false) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let prefer = match page_size_preference(req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let out_zone = preferred_zone(req);
    let generation = st.events.microsoft.get(&cal.id).map_or(0, |s| s.generation);
    let valid = |account: &str, calendar: &str, g: u64| {
        account == cal.owner && calendar == cal.id && g == generation
    };
    let (round_id, offset) = if let Some(token) = req.query("$skiptoken") {
        match decode_skip(token) {
            Some((round, offset))
                if st
                    .events
                    .delta_rounds
                    .get(&round)
                    .is_some_and(|r| valid(&r.account, &r.calendar, r.generation)) =>
            {
                (round, offset)
            }
            _ => return sync_state_not_found(req),
        }
    } else {
        let (window, baseline, page_size) = if let Some(token) = req.query("$deltatoken") {
            match st.events.delta_states.get(token) {
                Some(s) if valid(&s.account, &s.calendar, s.generation) => {
                    (s.window, s.baseline.clone(), s.page_size)
                }
                _ => return sync_state_not_found(req),
            }
        } else {
            match window_param(req) {
                Ok(window) => (window, BTreeMap::new(), DEFAULT_PAGE_SIZE),
                Err(resp) => return resp,
            }
        };
        // A new round: what changed against the baseline, then what is gone.
        let current = view(&mut st.events, &cal.id, window);
        let ids: BTreeSet<&str> = current.iter().map(|i| i.id.as_str()).collect();
        let mut entries: Vec<String> = current
            .iter()
            .filter(|i| baseline.get(&i.id) != Some(&i.change_key))
            .map(|i| i.id.clone())
            .collect();
        entries.extend(
            baseline
                .keys()
                .filter(|id| !ids.contains(id.as_str()))
                .cloned(),
        );
        let kept: BTreeMap<String, String> = baseline
            .into_iter()
            .filter(|(id, ck)| current.iter().any(|i| &i.id == id && &i.change_key == ck))
            .collect();
        let round = DeltaRound {
            account: cal.owner.clone(),
            calendar: cal.id.clone(),
            generation,
            window,
            entries,
            baseline: kept,
            page_size: prefer.unwrap_or(page_size),
            issued: None,
            stamp: st.events.next_order(),
        };
        let id = Events::token();
        st.events.delta_rounds.insert(id.clone(), round);
        evict_oldest(&mut st.events.delta_rounds, |r| r.stamp);
        (id, 0)
    };
    let Some(round) = st.events.delta_rounds.get(&round_id).cloned() else {
        return sync_state_not_found(req);
    };
    let size = prefer.unwrap_or(round.page_size);
    let end = (offset + size).min(round.entries.len());
    let slice = &round.entries[offset.min(end)..end];
    let current: HashMap<String, Inst> = view(&mut st.events, &cal.id, round.window)
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
    let mut baseline = round.baseline.clone();
    let mut value: Vec<Value> = Vec::new();
    let zone = out_zone
        .clone()
        .unwrap_or((chrono_tz::Etc::UTC, "UTC".to_owned()));
    for id in slice {
        match current.get(id) {
            Some(inst) => {
                value.push(event_json(&cal, inst, Some(&zone)));
                baseline.insert(id.clone(), inst.change_key.clone());
            }
            None => {
                value.push(removed(id));
                baseline.remove(id);
            }
        }
    }
    if req.malformed_item {
        value.insert(value.len().min(1), malformed_event());
    }
    let base_path = match cid {
        None => format!("{}/microsoft/v1.0/me/calendarView/delta", em.base_url),
        Some(cid) => format!(
            "{}/microsoft/v1.0/me/calendars/{cid}/calendarView/delta",
            em.base_url
        ),
    };
    let mut body = json!({ "@odata.context": DELTA_CONTEXT });
    let more = end < round.entries.len();
    if let Some(r) = st.events.delta_rounds.get_mut(&round_id) {
        r.baseline = baseline.clone();
    }
    if more {
        body["@odata.nextLink"] = json!(format!(
            "{base_path}?$skiptoken={}",
            encode_skip(&round_id, end)
        ));
    } else {
        let token = match round.issued {
            Some(t) => t,
            None => {
                let token = Events::token();
                let stamp = st.events.next_order();
                st.events.delta_states.insert(
                    token.clone(),
                    DeltaState {
                        account: round.account.clone(),
                        calendar: round.calendar.clone(),
                        generation: round.generation,
                        window: round.window,
                        baseline,
                        page_size: round.page_size,
                        stamp,
                    },
                );
                evict_oldest(&mut st.events.delta_states, |s| s.stamp);
                if let Some(r) = st.events.delta_rounds.get_mut(&round_id) {
                    r.issued = Some(token.clone());
                }
                token
            }
        };
        body["@odata.deltaLink"] = json!(format!("{base_path}?$deltatoken={token}"));
    }
    body["value"] = Value::Array(value);
    with_preferences(
        graph_resp(req, 200, &body),
        Some("odata.track-changes"),
        prefer,
        &out_zone,
    )
}

/// `Prefer: odata.maxpagesize=N` (N ≥ 1).
fn page_size_preference(req: &Req) -> Result<Option<usize>, Resp> {
    match max_page_size(req) {
        None => Ok(None),
        Some(Ok(n)) if n >= 1 => Ok(Some(n)),
        Some(Ok(n)) => Err(bad(
            req,
            "BadRequest",
            &format!("Invalid odata.maxpagesize value '{n}'."),
        )),
        Some(Err(v)) => Err(bad(
            req,
            "BadRequest",
            &format!("Invalid odata.maxpagesize value '{v}'."),
        )),
    }
}

/// The required `startDateTime` / `endDateTime` window of calendarView and instances.
fn window_param(req: &Req) -> Result<(DateTime<Utc>, DateTime<Utc>), Resp> {
    let (Some(start), Some(end)) = (req.query("startDateTime"), req.query("endDateTime")) else {
        return Err(bad(
            req,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        ));
    };
    let (Some(start), Some(end)) = (tz::parse_graph_instant(start), tz::parse_graph_instant(end))
    else {
        return Err(bad(
            req,
            "ErrorInvalidParameter",
            "The value of the parameter 'StartDateTime' or 'EndDateTime' is invalid.",
        ));
    };
    if end <= start {
        return Err(bad(
            req,
            "ErrorInvalidParameter",
            "The parameter 'EndDateTime' must be after 'StartDateTime'.",
        ));
    }
    Ok((start, end))
}

/// Adds `Preference-Applied` for the preferences honoured (`first`, then page size and zone).
fn with_preferences(
    resp: Resp,
    first: Option<&str>,
    page_size: Option<usize>,
    zone: &Option<(Tz, String)>,
) -> Resp {
    let mut applied: Vec<String> = first.map(str::to_owned).into_iter().collect();
    if let Some(n) = page_size {
        applied.push(format!("odata.maxpagesize={n}"));
    }
    if let Some((_, name)) = zone {
        applied.push(format!("outlook.timezone=\"{name}\""));
    }
    if applied.is_empty() {
        resp
    } else {
        with_header(resp, "preference-applied", &applied.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Create / get / update / delete

fn body_object(req: &Req) -> Result<Map<String, Value>, Resp> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(bad(
            req,
            "BadRequest",
            "Empty Payload. JSON content expected.",
        )),
        Err(_) => Err(bad(
            req,
            "RequestBodyRead",
            "Invalid JSON. A token was not recognized in the JSON content.",
        )),
    }
}

fn writable(body: &Map<String, Value>) -> Map<String, Value> {
    body.iter()
        .filter(|(k, _)| API_WRITABLE.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn post(em: &Emulator, req: &Req, cid: Option<&str>) -> Resp {
    let mut st = em.lock();
    let cal = match resolve(&st, req, cid, true) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let body = match body_object(req) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let out_zone = preferred_zone(req);
    // transactionId: a retried create answers with the event it made the first time.
    if let Some(tx) = body.get("transactionId").and_then(Value::as_str) {
        let existing = st.events.microsoft.get(&cal.id).and_then(|s| {
            s.events
                .values()
                .find(|e| e.fields.get("transactionId").and_then(Value::as_str) == Some(tx))
                .cloned()
        });
        if let Some(ev) = existing.as_ref().and_then(stored_inst) {
            let mut v = event_json(&cal, &ev, out_zone.as_ref());
            v["@odata.context"] = json!(entity_context(&cal));
            return graph_resp(req, 201, &v);
        }
    }
    match create(&mut st.events, req, &cal.id, None, writable(&body)) {
        Ok(ev) => match stored_inst(&ev) {
            Some(inst) => {
                let mut v = event_json(&cal, &inst, out_zone.as_ref());
                v["@odata.context"] = json!(entity_context(&cal));
                graph_resp(req, 201, &v)
            }
            None => not_found(req),
        },
        Err(resp) => resp,
    }
}

/// The calendar (among the account's, or the one named) holding event `id`.
fn locate(
    st: &State,
    req: &Req,
    cid: Option<&str>,
    id: &str,
    write: bool,
) -> Result<MCal, Box<Resp>> {
    if cid.is_some() {
        return resolve(st, req, cid, write);
    }
    let account = graph_account(st, req, if write { WRITE_SCOPES } else { CALENDAR_SCOPES })?;
    let holder = account.calendars.iter().find(|c| {
        st.events
            .microsoft
            .get(&c.id)
            .is_some_and(|s| s.events.contains_key(id))
            || st
                .events
                .occurrences
                .get(id)
                .is_some_and(|(cal, _, _)| cal == &c.id)
    });
    match holder {
        Some(c) => {
            if write && !c.can_edit {
                return Err(Box::new(graph_error(
                    req,
                    403,
                    "ErrorAccessDenied",
                    "Access is denied. Check credentials and try again.",
                )));
            }
            Ok(MCal::new(account, c))
        }
        None => Err(Box::new(not_found(req))),
    }
}

fn one(em: &Emulator, req: &Req, cid: Option<&str>, id: &str) -> Resp {
    let mut st = em.lock();
    let id = percent_decode(id);
    let write = req.method != hyper::Method::GET;
    let cal = match locate(&st, req, cid, &id, write) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let out_zone = preferred_zone(req);
    match req.method.as_str() {
        "GET" => {
            let shape = match Shape::of(req) {
                Ok(s) => s,
                Err(resp) => return resp,
            };
            let inst = occurrence(&st.events, &cal.id, &id).or_else(|| {
                st.events
                    .microsoft
                    .get(&cal.id)
                    .and_then(|s| s.events.get(&id))
                    .and_then(stored_inst)
            });
            let Some(inst) = inst else {
                return not_found(req);
            };
            let zone = out_zone.unwrap_or((chrono_tz::Etc::UTC, "UTC".into()));
            let mut v = event_json(&cal, &inst, Some(&zone));
            let master = (inst.kind == "seriesMaster").then_some(&inst.ev);
            // Only a GET of a series master by its id carries these (event resource, v1.0).
            if shape.selects("cancelledOccurrences") {
                v["cancelledOccurrences"] =
                    master.map_or(Value::Null, |m| json!(cancelled_occurrences(m)));
            }
            if shape.expand_exceptions {
                let exceptions = master
                    .map(|m| exception_occurrences(&st.events, &cal, m, &zone))
                    .unwrap_or_default();
                v["exceptionOccurrences"] =
                    exceptions.into_iter().map(|e| shape.apply(e)).collect();
            }
            let mut v = shape.apply(v);
            v["@odata.context"] = json!(shape.context(&entity_context(&cal)));
            graph_resp(req, 200, &v)
        }
        "PATCH" => {
            let body = match body_object(req) {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            match update(&mut st.events, req, &cal.id, &id, writable(&body), false) {
                Ok(Some(ev)) => match stored_inst(&ev) {
                    Some(inst) => {
                        let mut v = event_json(&cal, &inst, out_zone.as_ref());
                        v["@odata.context"] = json!(entity_context(&cal));
                        graph_resp(req, 200, &v)
                    }
                    None => not_found(req),
                },
                Ok(None) => not_found(req),
                Err(resp) => resp,
            }
        }
        _ => {
            if let Some(v) = req.header("if-match") {
                let current = occurrence(&st.events, &cal.id, &id)
                    .map(|i| i.change_key)
                    .or_else(|| {
                        st.events
                            .microsoft
                            .get(&cal.id)
                            .and_then(|s| s.events.get(&id))
                            .map(|e| e.change_key.clone())
                    });
                if let Some(ck) = current {
                    let etag = format!("W/\"{ck}\"");
                    if !v.split(',').any(|t| {
                        let t = t.trim();
                        t == "*" || t == etag || t.trim_matches('"') == ck
                    }) {
                        return graph_error(
                            req,
                            412,
                            "ErrorIrresolvableConflict",
                            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                        );
                    }
                }
            }
            if remove(&mut st.events, &cal.id, &id) {
                let resp = response(204, "text/plain", "");
                let request_id = crate::http::guid();
                with_header(resp, "request-id", &request_id)
            } else {
                not_found(req)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// $select / $expand, series details, instances

/// Properties and navigation properties of the v1.0 event resource, as `$select` names them.
const EVENT_PROPERTIES: &[&str] = &[
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "cancelledOccurrences",
    "categories",
    "changeKey",
    "createdDateTime",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "id",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "lastModifiedDateTime",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
    "attachments",
    "calendar",
    "exceptionOccurrences",
    "extensions",
    "instances",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

/// What `$select` and `$expand` ask of an event answer.
struct Shape {
    /// Canonical property names; `None`: every default property.
    select: Option<Vec<&'static str>>,
    expand_exceptions: bool,
}

impl Shape {
    fn of(req: &Req) -> Result<Shape, Resp> {
        let names = |raw: &str| -> Vec<String> {
            raw.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let select = match req.query("$select") {
            None => None,
            Some(raw) => Some(
                names(raw)
                    .iter()
                    .map(|n| {
                        // Property names in query options are matched without regard to case.
                        EVENT_PROPERTIES
                            .iter()
                            .find(|p| eq(p, n))
                            .copied()
                            .ok_or_else(|| {
                                bad(
                                    req,
                                    "RequestBroker--ParseUri",
                                    &format!("Could not find a property named '{n}' on type 'microsoft.graph.event'."),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let mut expand_exceptions = false;
        for name in names(req.query("$expand").unwrap_or("")) {
            if eq(&name, "exceptionOccurrences") {
                expand_exceptions = true;
            } else {
                return Err(graph_error(
                    req,
                    501,
                    "NotImplemented",
                    &format!("The provider emulator does not expand {name:?}; it expands exceptionOccurrences."),
                ));
            }
        }
        Ok(Shape {
            select,
            expand_exceptions,
        })
    }

    fn selects(&self, name: &str) -> bool {
        self.select.as_ref().is_some_and(|s| s.contains(&name))
    }

    /// Keeps the annotations, `id`, the selected properties and expanded ones.
    fn apply(&self, v: Value) -> Value {
        let (Some(select), Value::Object(o)) = (&self.select, &v) else {
            return v;
        };
        let kept: Map<String, Value> = o
            .iter()
            .filter(|(k, _)| {
                k.starts_with("@odata.")
                    || k.as_str() == "id"
                    || select.contains(&k.as_str())
                    || (self.expand_exceptions && k.as_str() == "exceptionOccurrences")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Value::Object(kept)
    }

    /// An entity `@odata.context` with the selection named, as Graph writes it.
    fn context(&self, entity: &str) -> String {
        match &self.select {
            Some(select) => entity.replace(
                "/events/$entity",
                &format!("/events({})/$entity", select.join(",")),
            ),
            None => entity.to_owned(),
        }
    }
}

/// `cancelledOccurrences` of a master: `OID.{masterId}.{date}` per cancelled occurrence, the
/// date of its original start in the series' time zone (as in Graph's documented example).
fn cancelled_occurrences(master: &MEvent) -> Vec<String> {
    let zone = stored_time(master, "start").map_or(chrono_tz::Etc::UTC, |t| t.zone);
    master
        .cancelled
        .iter()
        .map(|t| {
            format!(
                "OID.{}.{}",
                master.id,
                t.with_timezone(&zone).date_naive().format("%Y-%m-%d")
            )
        })
        .collect()
}

/// The exceptions of a master (not its cancelled occurrences), by original start.
fn exception_occurrences(
    events: &Events,
    cal: &MCal,
    master: &MEvent,
    zone: &(Tz, String),
) -> Vec<Value> {
    let mut exceptions: Vec<&MEvent> = events
        .microsoft
        .get(&cal.id)
        .map(|s| {
            s.events
                .values()
                .filter(|e| e.series_master_id.as_deref() == Some(master.id.as_str()))
                .collect()
        })
        .unwrap_or_default();
    exceptions.sort_by_key(|e| e.original_start);
    exceptions
        .into_iter()
        .filter_map(stored_inst)
        .map(|i| event_json(cal, &i, Some(zone)))
        .collect()
}

fn count_param(req: &Req, name: &str) -> Result<Option<usize>, Resp> {
    match req.query(name) {
        None => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|_| bad(req, "BadRequest", &format!("Invalid {name} value '{raw}'."))),
    }
}

/// `GET .../events/{id}/instances`: a master's occurrences and exceptions in the window (an event
/// that is no master: itself, if it overlaps), by start, paged with `$skip` links.
fn list_instances(em: &Emulator, req: &Req, cid: Option<&str>, id: &str) -> Resp {
    let mut st = em.lock();
    let id = percent_decode(id);
    let cal = match locate(&st, req, cid, &id, false) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let params = (|| {
        Ok::<_, Resp>((
            window_param(req)?,
            page_size_preference(req)?,
            count_param(req, "$top")?,
            count_param(req, "$skip")?.unwrap_or(0),
            Shape::of(req)?,
        ))
    })();
    let (window, prefer, top, skip, shape) = match params {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let stored_kind = st
        .events
        .microsoft
        .get(&cal.id)
        .and_then(|s| s.events.get(&id))
        .map(|e| e.kind);
    if stored_kind.is_none() && occurrence(&st.events, &cal.id, &id).is_none() {
        return not_found(req);
    }
    let all: Vec<Inst> = view(&mut st.events, &cal.id, window)
        .into_iter()
        .filter(|i| match stored_kind {
            Some(MKind::SeriesMaster) => match i.kind {
                "occurrence" => i.ev.id == id,
                "exception" => i.ev.series_master_id.as_deref() == Some(id.as_str()),
                _ => false,
            },
            _ => i.id == id,
        })
        .collect();
    let out_zone = preferred_zone(req);
    let zone = out_zone
        .clone()
        .unwrap_or((chrono_tz::Etc::UTC, "UTC".to_owned()));
    let size = prefer.or(top).unwrap_or(DEFAULT_PAGE_SIZE);
    let value: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(size)
        .map(|i| shape.apply(event_json(&cal, i, Some(&zone))))
        .collect();
    let mut body = json!({
        "@odata.context": format!(
            "https://graph.microsoft.com/v1.0/$metadata#users('{}')/events('{}')/instances",
            cal.user_id, id
        ),
        "value": value,
    });
    if skip + size < all.len() {
        // The next page repeats the request's own parameters with the offset moved on.
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in req.query.iter().filter(|(k, _)| k != "$skip") {
            query.append_pair(k, v);
        }
        query.append_pair("$skip", &(skip + size).to_string());
        body["@odata.nextLink"] = json!(format!("{}{}?{}", em.base_url, req.path, query.finish()));
    }
    with_preferences(graph_resp(req, 200, &body), None, prefer, &out_zone)
}

// ---------------------------------------------------------------------------------------------
// Admin

/// The calendar an admin path names: an id, or `default` / `primary` (of `account`, else the
/// default Microsoft account).
pub(crate) fn admin_calendar(st: &State, cid: &str, account: Option<&str>) -> Option<MCal> {
    let cid = percent_decode(cid);
    if cid == "default" || cid == "primary" {
        let account = st.account(
            Provider::Microsoft,
            account.unwrap_or(DEFAULT_MICROSOFT_ACCOUNT),
        )?;
        let calendar = account.calendars.iter().find(|c| c.primary)?;
        return Some(MCal::new(account, calendar));
    }
    let mut accounts: Vec<&Account> = st
        .accounts
        .values()
        .filter(|a| a.provider == Provider::Microsoft)
        .filter(|a| account.is_none_or(|e| a.email.eq_ignore_ascii_case(e)))
        .collect();
    accounts.sort_by_key(|a| a.email.clone());
    accounts.iter().find_map(|a| {
        a.calendars
            .iter()
            .find(|c| c.id == cid)
            .map(|c| MCal::new(a, c))
    })
}

fn admin_error(status: u16, message: impl std::fmt::Display) -> Resp {
    json(status, &json!({ "error": message.to_string() }))
}

/// Admin body fields: Graph event fields (client-writable plus provider-side ones), `type`
/// ignored beyond a sanity check.
fn admin_fields(body: &Value) -> Result<Map<String, Value>, Resp> {
    let Some(o) = body.as_object() else {
        return Err(admin_error(
            400,
            "the body must be a JSON object (Graph event fields)",
        ));
    };
    let mut fields = Map::new();
    for (k, v) in o {
        match k.as_str() {
            "id" | "@odata.type" | "type" => continue,
            k if API_WRITABLE.contains(&k) || ADMIN_ONLY.contains(&k) => {
                fields.insert(k.to_owned(), v.clone());
            }
            other => {
                return Err(admin_error(
                    400,
                    format!("{other:?} is not a Graph event field the admin API sets"),
                ))
            }
        }
    }
    if let Some(t) = o.get("type").and_then(Value::as_str) {
        let has_recurrence = o.get("recurrence").is_some_and(|r| !r.is_null());
        match (t, has_recurrence) {
            ("singleInstance", false) | ("seriesMaster", true) | ("exception", _) => {}
            ("seriesMaster", false) => return Err(admin_error(400, "a seriesMaster needs a recurrence")),
            (other, _) => {
                return Err(admin_error(
                    400,
                    format!("type {other:?}: create singleInstance or seriesMaster events; exceptions through PUT .../events/{{masterId}}/occurrences/{{originalStart}} or PUT to an occurrence id"),
                ))
            }
        }
    }
    Ok(fields)
}

/// Creates or replaces an event with provider-side authority (the same validation as the API).
pub(crate) fn put_event(
    st: &mut State,
    req: &Req,
    cal: &MCal,
    id: &str,
    body: &Value,
) -> Result<Value, Resp> {
    let fields = admin_fields(body)?;
    let exists = occurrence(&st.events, &cal.id, id).is_some()
        || st
            .events
            .microsoft
            .get(&cal.id)
            .is_some_and(|s| s.events.contains_key(id));
    let ev = if exists {
        let is_occurrence = occurrence(&st.events, &cal.id, id).is_some();
        // An occurrence becomes an exception with these fields laid over its master's.
        match update(&mut st.events, req, &cal.id, id, fields, !is_occurrence)? {
            Some(ev) => ev,
            None => return Err(admin_error(404, format!("no event {id:?}"))),
        }
    } else {
        create(&mut st.events, req, &cal.id, Some(id.to_owned()), fields)?
    };
    stored_inst(&ev)
        .map(|i| event_json(cal, &i, None))
        .ok_or_else(|| admin_error(500, "stored event has no times"))
}

fn window_of(req: &Req) -> Result<(DateTime<Utc>, DateTime<Utc>), Resp> {
    let now = Utc::now();
    let parse = |name: &str, default: DateTime<Utc>| match req.query(name) {
        None => Ok(default),
        Some(raw) => tz::parse_graph_instant(raw)
            .ok_or_else(|| admin_error(400, format!("{name} must be an ISO 8601 date-time"))),
    };
    Ok((
        parse("startDateTime", now - Duration::days(30))?,
        parse("endDateTime", now + Duration::days(180))?,
    ))
}

/// The occurrence of `master` that starts at `original`, listing the series up to it.
fn occurrence_at(st: &mut State, cal: &MCal, master: &str, original: &str) -> Result<String, Resp> {
    let original = tz::parse_graph_instant(&percent_decode(original)).ok_or_else(|| {
        admin_error(
            400,
            "the occurrence's original start must be an ISO 8601 date-time",
        )
    })?;
    let master_ev = st
        .events
        .microsoft
        .get(&cal.id)
        .and_then(|s| s.events.get(master))
        .filter(|m| m.kind == MKind::SeriesMaster)
        .ok_or_else(|| admin_error(404, format!("no series master {master:?}")))?;
    if !series(master_ev, original)
        .iter()
        .any(|(o, _, _)| *o == original)
    {
        return Err(admin_error(
            404,
            format!("the series has no occurrence starting {original}"),
        ));
    }
    let id = occurrence_id(master, original);
    st.events
        .occurrences
        .insert(id.clone(), (cal.id.clone(), master.to_owned(), original));
    Ok(id)
}

pub(crate) fn admin(st: &mut State, req: &Req, rest: &[&str]) -> Option<Resp> {
    let routed = match (req.method.as_str(), rest) {
        ("PUT", [cid, "events", eid]) => admin_put(st, req, cid, eid, None),
        ("PUT", [cid, "events", master, "occurrences", original]) => {
            admin_put(st, req, cid, master, Some(original))
        }
        ("DELETE", [cid, "events", eid]) => admin_delete(st, req, cid, eid, None),
        ("DELETE", [cid, "events", master, "occurrences", original]) => {
            admin_delete(st, req, cid, master, Some(original))
        }
        ("GET", [cid, "events"]) => admin_list(st, req, cid),
        ("POST", [cid, "invalidate-delta-tokens"]) => admin_calendar_of(st, req, cid).map(|cal| {
            let store = st.events.microsoft.entry(cal.id.clone()).or_default();
            store.generation += 1;
            json(
                200,
                &json!({ "calendarId": cal.id, "invalidated": true, "generation": store.generation }),
            )
        }),
        _ => return None,
    };
    Some(routed.unwrap_or_else(|resp| resp))
}

fn admin_calendar_of(st: &State, req: &Req, cid: &str) -> Result<MCal, Resp> {
    admin_calendar(st, cid, req.query("account"))
        .ok_or_else(|| admin_error(404, format!("no Microsoft calendar {cid:?}")))
}

fn admin_body(req: &Req) -> Result<Value, Resp> {
    serde_json::from_slice::<Value>(&req.body).map_err(|e| admin_error(400, e))
}

fn admin_put(
    st: &mut State,
    req: &Req,
    cid: &str,
    eid: &str,
    original: Option<&str>,
) -> Result<Resp, Resp> {
    let cal = admin_calendar_of(st, req, cid)?;
    let id = match original {
        Some(original) => occurrence_at(st, &cal, &percent_decode(eid), original)?,
        None => percent_decode(eid),
    };
    let v = put_event(st, req, &cal, &id, &admin_body(req)?)?;
    Ok(json(200, &v))
}

fn admin_delete(
    st: &mut State,
    req: &Req,
    cid: &str,
    eid: &str,
    original: Option<&str>,
) -> Result<Resp, Resp> {
    let cal = admin_calendar_of(st, req, cid)?;
    let id = match original {
        Some(original) => occurrence_at(st, &cal, &percent_decode(eid), original)?,
        None => percent_decode(eid),
    };
    if remove(&mut st.events, &cal.id, &id) {
        Ok(json(200, &json!({ "deleted": id })))
    } else {
        Err(admin_error(
            404,
            format!("no event {id:?} (or the occurrence is already cancelled)"),
        ))
    }
}

fn admin_list(st: &mut State, req: &Req, cid: &str) -> Result<Resp, Resp> {
    let cal = admin_calendar_of(st, req, cid)?;
    let window = window_of(req)?;
    let zone = (chrono_tz::Etc::UTC, "UTC".to_owned());
    let value: Vec<Value> = view(&mut st.events, &cal.id, window)
        .iter()
        .map(|i| event_json(&cal, i, Some(&zone)))
        .collect();
    let mut masters: Vec<&MEvent> = st
        .events
        .microsoft
        .get(&cal.id)
        .map(|s| {
            s.events
                .values()
                .filter(|e| e.kind == MKind::SeriesMaster)
                .collect()
        })
        .unwrap_or_default();
    masters.sort_by_key(|m| m.order);
    let masters: Vec<Value> = masters
        .into_iter()
        .filter_map(stored_inst)
        .map(|i| event_json(&cal, &i, None))
        .collect();
    Ok(json(
        200,
        &json!({
            "calendarId": cal.id,
            "startDateTime": window.0.to_rfc3339(),
            "endDateTime": window.1.to_rfc3339(),
            "value": value,
            "seriesMasters": masters,
        }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Sample events

/// The default account's default calendar starts with three events this week in Windows time
/// zones (one a Teams meeting, one all-day) and a weekly series with one cancelled occurrence.
pub(crate) fn seed(st: &mut State) {
    let Some(cal) = admin_calendar(st, "default", None) else {
        return;
    };
    let london = chrono_tz::Europe::London;
    let today = Utc::now().with_timezone(&london).date_naive();
    let monday =
        today - Duration::days(chrono::Datelike::weekday(&today).num_days_from_monday() as i64);
    let local = |day: i64, h: u32, m: u32| {
        tz::graph_local(
            (monday + Duration::days(day))
                .and_hms_opt(h, m, 0)
                .unwrap_or_default(),
        )
    };
    let day = |d: i64| (monday + Duration::days(d)).format("%Y-%m-%d").to_string();
    let req = Req::new(
        hyper::Method::PUT,
        &hyper::Uri::from_static("/admin/seed"),
        hyper::HeaderMap::new(),
        hyper::body::Bytes::new(),
    );
    let samples = [
        json!({
            "subject": "Project sync",
            "body": { "contentType": "html", "content": "<html><body><p>Weekly status of Project X.</p></body></html>" },
            "start": { "dateTime": local(0, 16, 0), "timeZone": "GMT Standard Time" },
            "end": { "dateTime": local(0, 16, 30), "timeZone": "GMT Standard Time" },
            "attendees": [
                { "type": "required", "status": { "response": "accepted", "time": "2026-01-05T10:00:00Z" },
                  "emailAddress": { "name": "Alice", "address": "alice@example.test" } },
                { "type": "optional", "emailAddress": { "name": "Dan", "address": "dan@example.test" } },
            ],
            "isOnlineMeeting": true,
            "onlineMeetingProvider": "teamsForBusiness",
            "onlineMeeting": { "joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjA4ZWNkNjQtZmE1Mi00ZGM2%40thread.v2/0" },
        }),
        json!({
            "subject": "Design review (Seattle)",
            "start": { "dateTime": local(2, 9, 0), "timeZone": "Pacific Standard Time" },
            "end": { "dateTime": local(2, 10, 0), "timeZone": "Pacific Standard Time" },
            "location": { "displayName": "Building 92, Room 2042" },
            "showAs": "tentative",
        }),
        json!({
            "subject": "Company holiday",
            "isAllDay": true,
            "start": { "dateTime": local(4, 0, 0), "timeZone": "GMT Standard Time" },
            "end": { "dateTime": local(5, 0, 0), "timeZone": "GMT Standard Time" },
            "showAs": "oof",
        }),
        json!({
            "subject": "Weekly planning",
            "start": { "dateTime": local(-6, 10, 0), "timeZone": "GMT Standard Time" },
            "end": { "dateTime": local(-6, 10, 30), "timeZone": "GMT Standard Time" },
            "recurrence": {
                "pattern": { "type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"], "firstDayOfWeek": "monday" },
                "range": { "type": "noEnd", "startDate": day(-6), "recurrenceTimeZone": "GMT Standard Time" },
            },
        }),
    ];
    let mut ids = Vec::new();
    for (i, body) in samples.iter().enumerate() {
        let h = sha256(&format!("seed:{}:{i}", cal.id));
        let id = format!("AAMkAGI{}AAA=", URL_SAFE_NO_PAD.encode(&h[..30]));
        if put_event(st, &req, &cal, &id, body).is_ok() {
            ids.push(id);
        }
    }
    // This week's planning is cancelled.
    if let Some(master) = ids.get(3) {
        let tuesday = tz::to_utc(
            (monday + Duration::days(1))
                .and_hms_opt(10, 0, 0)
                .unwrap_or_default(),
            london,
        );
        if let Ok(id) = occurrence_at(st, &cal, master, &tuesday.to_rfc3339()) {
            remove(&mut st.events, &cal.id, &id);
        }
    }
}
