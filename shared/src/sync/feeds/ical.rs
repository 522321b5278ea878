//! iCalendar (RFC 5545) resources from CalDAV servers, parsed with the `icalendar` crate: one
//! resource holds an event, or a recurring series with its overrides (RECURRENCE-ID). DTSTART /
//! DTEND in UTC, with a TZID, as DATE values (all-day), or floating; DURATION instead of DTEND;
//! RRULE / RDATE / EXDATE kept as the master's rule (RDATE / EXDATE values in UTC).
//!
//! Real-world calendars are read as their authors meant them, as common readers
//! (`recurring-ical-events`) read them (docs/decisions.md, "Real-world iCalendar"):
//! - a TZID is an IANA name; else the resource's own VTIMEZONE of that TZID, by its rules (and
//!   series expand in an IANA zone with the same offsets, if there is one); else a Windows name
//!   or a globally unique TZID ending in an IANA name; else the time is floating;
//! - floating times are UTC, or in the calendar's X-WR-TIMEZONE, which also becomes the zone
//!   of a series whose DTSTART is in UTC (it expands in local time there);
//! - DTEND before DTSTART: the two are swapped.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use icalendar::parser::{read_calendar, unfold, Component, Property};

use super::zones;
use crate::model::{Attendee, Event, ResponseStatus};
use crate::sync::Change;
use crate::time::EventTime;

fn prop<'a>(component: &'a Component<'a>, name: &str) -> Option<&'a Property<'a>> {
    component
        .properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn param<'a>(property: &'a Property<'a>, name: &str) -> Option<&'a str> {
    property
        .params
        .iter()
        .find(|p| p.key.as_str().eq_ignore_ascii_case(name))
        .and_then(|p| p.val.as_ref())
        .map(|v| v.as_str().trim_matches('"'))
}

/// RFC 5545 TEXT unescaping.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How a resource's times are read: its own VTIMEZONEs (by TZID) and its X-WR-TIMEZONE.
#[derive(Default)]
struct Zones {
    custom: Vec<(String, zones::Custom)>,
    calendar: Option<Tz>,
}

impl Zones {
    fn of(calendar: &icalendar::parser::Calendar<'_>) -> Self {
        let custom = calendar
            .components
            .iter()
            .filter(|c| c.name.as_str().eq_ignore_ascii_case("VTIMEZONE"))
            .filter_map(|c| {
                let tzid = prop(c, "TZID")?.val.as_str().trim().to_owned();
                let mut zone = zones::Custom::default();
                for observance in &c.components {
                    zone.add_observance(
                        observance
                            .properties
                            .iter()
                            .map(|p| (p.name.as_str(), p.val.as_str())),
                    );
                }
                Some((tzid, zone))
            })
            .collect();
        // X-WR-TIMEZONE is read as recurring-ical-events reads it (the x_wr_timezone package):
        // an IANA name, or ignored.
        let calendar_zone = calendar
            .properties
            .iter()
            .find(|p| p.name.as_str().eq_ignore_ascii_case("X-WR-TIMEZONE"))
            .and_then(|p| zones::iana(p.val.as_str().trim()));
        Self {
            custom,
            calendar: calendar_zone,
        }
    }

    fn custom(&self, tzid: &str) -> Option<&zones::Custom> {
        self.custom
            .iter()
            .find(|(name, _)| name == tzid)
            .map(|(_, zone)| zone)
    }
}

/// A local time in an IANA zone; a time in a DST gap reads with the offset before the change.
fn in_zone(tz: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{local} does not exist in {}", tz.name()))
}

/// A DATE or DATE-TIME value (`text`) with the TZID it names, and the zone a series anchored
/// there expands in.
fn time_value(
    text: &str,
    tzid: Option<&str>,
    date: bool,
    zones: &Zones,
) -> Result<(EventTime, Option<Tz>), String> {
    let value = text.trim();
    let custom = tzid
        .filter(|name| zones::iana(name.trim()).is_none())
        .and_then(|name| zones.custom(name).map(|zone| (name, zone)));
    let named = match custom {
        Some(_) => None,
        None => tzid.and_then(zones::resolve),
    };
    if date || value.len() == 8 {
        let date = NaiveDate::parse_from_str(value, "%Y%m%d")
            .map_err(|_| format!("bad DATE {value:?}"))?;
        return Ok((EventTime::Date(date), named));
    }
    if let Some(utc) = value.strip_suffix('Z') {
        let t = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
            .map_err(|_| format!("bad DATE-TIME {value:?}"))?;
        // X-WR-TIMEZONE: a series starting in UTC expands in the calendar's zone.
        return Ok((
            EventTime::Instant(Utc.from_utc_datetime(&t)),
            named.or(zones.calendar),
        ));
    }
    let local = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S")
        .map_err(|_| format!("bad DATE-TIME {value:?}"))?;
    if let Some((name, zone)) = custom {
        return Ok((
            EventTime::Instant(zone.to_utc(local)),
            zone.iana_equivalent(name, local),
        ));
    }
    // Floating times (or an unknown TZID without a VTIMEZONE) have no zone of their own: the
    // calendar's X-WR-TIMEZONE, else UTC.
    let zone = named.or(zones.calendar);
    Ok((
        EventTime::Instant(in_zone(zone.unwrap_or(Tz::UTC), local)?),
        zone,
    ))
}

/// A DATE or DATE-TIME property value with its zone.
fn time(property: &Property<'_>, zones: &Zones) -> Result<(EventTime, Option<Tz>), String> {
    let date = param(property, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    time_value(property.val.as_str(), param(property, "TZID"), date, zones)
}

/// An RFC 5545 DURATION such as `PT1H30M`, `P1D`, `-PT15M`, `P2W`.
fn duration(text: &str) -> Option<Duration> {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let rest = rest.strip_prefix('P')?;
    let mut total = Duration::zero();
    let mut number = String::new();
    let mut in_time = false;
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => number.push(c),
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                total += match (unit, in_time) {
                    ('W', false) => Duration::weeks(n),
                    ('D', false) => Duration::days(n),
                    ('H', true) => Duration::hours(n),
                    ('M', true) => Duration::minutes(n),
                    ('S', true) => Duration::seconds(n),
                    _ => return None,
                };
            }
        }
    }
    number.is_empty().then_some(total * sign)
}

fn event_of(
    key: &str,
    component: &Component<'_>,
    raw_lines: &[String],
    zones: &Zones,
) -> Result<Event, String> {
    let start_prop = prop(component, "DTSTART").ok_or("VEVENT without DTSTART")?;
    let (start, zone) = time(start_prop, zones)?;
    let end = match (prop(component, "DTEND"), prop(component, "DURATION")) {
        (Some(end), _) => time(end, zones)?.0,
        (None, Some(d)) => {
            let d = duration(d.val.as_str()).ok_or("bad DURATION")?;
            match start {
                EventTime::Date(s) => EventTime::Date(s + Duration::days(d.num_days().max(1))),
                EventTime::Instant(s) => EventTime::Instant(s + d),
            }
        }
        (None, None) => match start {
            EventTime::Date(s) => EventTime::Date(s + Duration::days(1)),
            instant => instant,
        },
    };
    let (mut start_time, mut end_time) = (start.to_instant(zone), end.to_instant(zone));
    let (mut start, mut end) = (start, end);
    // DTEND before DTSTART: common readers (recurring-ical-events) swap the two.
    if end_time < start_time {
        std::mem::swap(&mut start_time, &mut end_time);
        std::mem::swap(&mut start, &mut end);
    }
    let text = |name: &str| {
        prop(component, name)
            .map(|p| unescape(p.val.as_str()))
            .filter(|t| !t.is_empty())
    };
    let title = text("SUMMARY").unwrap_or_else(|| "(no title)".into());
    let mut event = Event::new("", "", key, &title, (start_time, end_time), Utc::now());
    event.provider_event_id = text("UID");
    event.description = text("DESCRIPTION");
    event.location = text("LOCATION");
    event.timezone = zone.map(|z| z.name().to_owned());
    if let (EventTime::Date(s), EventTime::Date(e)) = (start, end) {
        event.is_all_day = true;
        event.start_date = Some(s);
        event.end_date = Some(e);
    }
    let recurrence: Vec<&str> = raw_lines.iter().map(String::as_str).collect();
    crate::recurrence::apply_recurrence(&mut event, &recurrence);
    event.transparent = text("TRANSP").is_some_and(|t| t.eq_ignore_ascii_case("TRANSPARENT"));
    event.attendees = component
        .properties
        .iter()
        .filter(|p| p.name.as_str().eq_ignore_ascii_case("ATTENDEE"))
        .filter_map(|p| {
            let email = p
                .val
                .as_str()
                .trim()
                .strip_prefix("mailto:")
                .or_else(|| p.val.as_str().trim().strip_prefix("MAILTO:"))?;
            Some(Attendee {
                email: email.to_lowercase(),
                name: param(p, "CN").map(str::to_owned),
                response_status: match param(p, "PARTSTAT").map(str::to_ascii_uppercase).as_deref()
                {
                    Some("ACCEPTED") => Some(ResponseStatus::Accepted),
                    Some("DECLINED") => Some(ResponseStatus::Declined),
                    Some("TENTATIVE") => Some(ResponseStatus::Tentative),
                    Some("NEEDS-ACTION") => Some(ResponseStatus::NeedsAction),
                    _ => None,
                },
                optional: param(p, "ROLE")
                    .is_some_and(|r| r.eq_ignore_ascii_case("OPT-PARTICIPANT")),
            })
        })
        .collect();
    Ok(event)
}

/// The recurrence property lines of a VEVENT for the master's rule: RRULE as written; RDATE
/// and EXDATE values of a timed series as UTC instants (whatever their TZID, a PERIOD by its
/// start, a DATE as midnight in its zone), those of an all-day series as DATEs.
fn recurrence_lines(component: &Component<'_>, zones: &Zones, all_day: bool) -> Vec<String> {
    component
        .properties
        .iter()
        .filter(|p| {
            ["RRULE", "RDATE", "EXDATE"]
                .iter()
                .any(|n| p.name.as_str().eq_ignore_ascii_case(n))
        })
        .map(|p| {
            let name = p.name.as_str().to_ascii_uppercase();
            if name == "RRULE" {
                // A COUNT that is not a positive number (`COUNT=-1`, written by some servers
                // for "no count") is dropped, as recurring-ical-events drops it.
                let parts: Vec<&str> = p
                    .val
                    .as_str()
                    .trim()
                    .split(';')
                    .filter(|part| match part.split_once('=') {
                        Some((k, v)) if k.eq_ignore_ascii_case("COUNT") => {
                            v.parse::<u32>().is_ok_and(|n| n > 0)
                        }
                        _ => true,
                    })
                    .collect();
                return format!("RRULE:{}", parts.join(";"));
            }
            let tzid = param(p, "TZID");
            let date = param(p, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
            let values: Vec<String> = p
                .val
                .as_str()
                .split(',')
                .map(|v| v.split('/').next().unwrap_or_default().trim())
                .filter(|v| !v.is_empty())
                .filter_map(|v| match time_value(v, tzid, date, zones).ok()? {
                    (EventTime::Date(d), _) if all_day => Some(d.format("%Y%m%d").to_string()),
                    (time, zone) => {
                        Some(time.to_instant(zone).format("%Y%m%dT%H%M%SZ").to_string())
                    }
                })
                .collect();
            if all_day && values.iter().all(|v| v.len() == 8) {
                format!("{name};VALUE=DATE:{}", values.join(","))
            } else {
                format!("{name}:{}", values.join(","))
            }
        })
        .filter(|line| !line.ends_with(':'))
        .collect()
}

/// A RECURRENCE-ID read as the master's DTSTART is: an override of an all-day series may name
/// its date as a DATE-TIME in some zone (Outlook writes `RECURRENCE-ID;TZID=GMT Standard
/// Time:20200416T000000`), which means that date; one of a timed series may name a DATE, which
/// means the master's time of day on that date.
fn recurrence_id(
    id: (EventTime, Option<Tz>),
    master: Option<(EventTime, Option<Tz>)>,
) -> (EventTime, Option<Tz>) {
    match (id, master) {
        ((EventTime::Instant(t), zone), Some((EventTime::Date(_), master_zone))) => {
            let local = t.with_timezone(&zone.unwrap_or(Tz::UTC)).date_naive();
            (EventTime::Date(local), master_zone)
        }
        ((EventTime::Date(d), _), Some((EventTime::Instant(start), Some(zone)))) => {
            let time_of_day = start.with_timezone(&zone).time();
            match in_zone(zone, d.and_time(time_of_day)) {
                Ok(t) => (EventTime::Instant(t), Some(zone)),
                Err(_) => (EventTime::Date(d), Some(zone)),
            }
        }
        ((EventTime::Date(d), _), Some((EventTime::Instant(start), None))) => (
            EventTime::Instant(Utc.from_utc_datetime(&d.and_time(start.time()))),
            None,
        ),
        (id, _) => id,
    }
}

/// The events in one CalDAV resource (`href`): the master keyed by the href, each override by
/// `href#<RECURRENCE-ID in UTC>`. A resource we cannot read is one malformed change.
pub fn parse_calendar_resource(href: &str, text: &str) -> Vec<Change> {
    let unfolded = unfold(text);
    let calendar = match read_calendar(&unfolded) {
        Ok(calendar) => calendar,
        Err(e) => {
            return vec![Change::Malformed {
                key: href.to_owned(),
                reason: format!(
                    "unparseable iCalendar: {}",
                    crate::providers::truncate(&e, 120)
                ),
            }]
        }
    };
    let zones = Zones::of(&calendar);
    let events: Vec<&Component<'_>> = calendar
        .components
        .iter()
        .filter(|c| c.name.as_str().eq_ignore_ascii_case("VEVENT"))
        .collect();
    if events.is_empty() {
        return vec![Change::Malformed {
            key: href.to_owned(),
            reason: "no VEVENT in the resource".into(),
        }];
    }
    let master = events.iter().find(|c| prop(c, "RECURRENCE-ID").is_none());
    let master_uid = master
        .and_then(|c| prop(c, "UID"))
        .map(|p| p.val.as_str().to_owned());
    let master_start = master
        .and_then(|c| prop(c, "DTSTART"))
        .and_then(|p| time(p, &zones).ok());
    events
        .into_iter()
        .map(|component| {
            let override_of = prop(component, "RECURRENCE-ID")
                .map(|p| time(p, &zones).map(|id| recurrence_id(id, master_start)));
            let key = match &override_of {
                Some(Ok((t, zone))) => {
                    format!("{href}#{}", crate::time::key_format(t.to_instant(*zone)))
                }
                Some(Err(e)) => {
                    return Change::Malformed {
                        key: href.to_owned(),
                        reason: format!("RECURRENCE-ID: {e}"),
                    }
                }
                None => href.to_owned(),
            };
            let cancelled = prop(component, "STATUS")
                .is_some_and(|s| s.val.as_str().eq_ignore_ascii_case("CANCELLED"));
            if cancelled {
                return match override_of {
                    Some(Ok((t, zone))) => Change::CancelInstance {
                        key,
                        parent: href.to_owned(),
                        original_start: t.to_instant(zone),
                    },
                    _ => Change::Delete { key },
                };
            }
            let all_day = prop(component, "DTSTART")
                .is_some_and(|p| matches!(time(p, &zones), Ok((EventTime::Date(_), _))));
            let lines = recurrence_lines(component, &zones, all_day);
            match event_of(&key, component, &lines, &zones) {
                Ok(mut event) => {
                    if let Some(Ok((t, zone))) = override_of {
                        event.parent_event_id = master_uid.clone().map(|_| href.to_owned());
                        event.original_start_time = Some(t.to_instant(zone));
                        // An override is one occurrence; an RRULE some clients copy onto it is
                        // not a series of its own (readers ignore it too).
                        event.is_recurring = false;
                        event.recurrence_rule = None;
                        event.recurrence_frequency = None;
                        event.recurrence_interval = None;
                        event.recurrence_end_date = None;
                    }
                    Change::Upsert(Box::new(event))
                }
                Err(reason) => Change::Malformed { key, reason },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:standup@example.com\r\nDTSTAMP:20261101T000000Z\r\n\
DTSTART;TZID=America/New_York:20261102T090000\r\nDURATION:PT15M\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20261231T000000Z\r\nEXDATE;TZID=America/New_York:20261104T090000\r\n\
SUMMARY:Stand\\, up\r\nATTENDEE;CN=Ann;PARTSTAT=ACCEPTED:mailto:Ann@Example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:standup@example.com\r\nDTSTAMP:20261101T000000Z\r\n\
RECURRENCE-ID;TZID=America/New_York:20261109T090000\r\nDTSTART;TZID=America/New_York:20261109T100000\r\n\
DTEND;TZID=America/New_York:20261109T101500\r\nSUMMARY:Stand-up (moved)\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:standup@example.com\r\nRECURRENCE-ID;TZID=America/New_York:20261111T090000\r\n\
DTSTART;TZID=America/New_York:20261111T090000\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn a_series_with_overrides_becomes_a_master_and_children() {
        let changes = parse_calendar_resource("/cal/standup.ics", SERIES);
        assert_eq!(changes.len(), 3, "{changes:?}");
        let Change::Upsert(master) = &changes[0] else {
            panic!("{:?}", changes[0])
        };
        assert_eq!(master.event_key, "/cal/standup.ics");
        assert_eq!(master.title, "Stand, up");
        assert_eq!(
            crate::time::key_format(master.start_time),
            "2026-11-02T14:00:00Z"
        );
        assert_eq!(master.end_time - master.start_time, Duration::minutes(15));
        assert!(master.is_recurring);
        assert_eq!(master.recurrence_frequency.as_deref(), Some("WEEKLY"));
        assert!(master
            .recurrence_rule
            .as_deref()
            .unwrap()
            .contains("EXDATE:20261104T140000Z"));
        assert_eq!(master.attendees[0].email, "ann@example.com");
        let Change::Upsert(moved) = &changes[1] else {
            panic!()
        };
        assert_eq!(moved.event_key, "/cal/standup.ics#2026-11-09T14:00:00Z");
        assert_eq!(moved.parent_event_id.as_deref(), Some("/cal/standup.ics"));
        assert!(
            matches!(&changes[2], Change::CancelInstance { key, parent, .. }
            if key == "/cal/standup.ics#2026-11-11T14:00:00Z" && parent == "/cal/standup.ics")
        );
    }

    #[test]
    fn all_day_floating_and_broken_resources() {
        let all_day = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART;VALUE=DATE:20261224\r\nSUMMARY:Eve\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let Change::Upsert(e) = &parse_calendar_resource("/a.ics", all_day)[0] else {
            panic!()
        };
        assert!(e.is_all_day);
        assert_eq!(e.end_date, NaiveDate::from_ymd_opt(2026, 12, 25));
        let broken = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:tomorrow\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert!(matches!(
            &parse_calendar_resource("/b.ics", broken)[0],
            Change::Malformed { .. }
        ));
        assert!(matches!(
            &parse_calendar_resource("/c.ics", "not ical")[0],
            Change::Malformed { .. }
        ));
        assert_eq!(duration("PT1H30M"), Some(Duration::minutes(90)));
        assert_eq!(duration("-P1W"), Some(-Duration::weeks(1)));
    }

    fn calendar(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n")
    }

    fn upserts(href: &str, body: &str) -> Vec<Event> {
        parse_calendar_resource(href, &calendar(body))
            .into_iter()
            .map(|c| match c {
                Change::Upsert(e) => *e,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn key(t: chrono::DateTime<Utc>) -> String {
        crate::time::key_format(t)
    }

    #[test]
    fn dtend_before_dtstart_is_swapped_not_malformed() {
        let e = &upserts(
            "/s.ics",
            "BEGIN:VEVENT\r\nUID:s\r\nDTSTART;TZID=Europe/Paris:20231218T234500\r\n\
             DTEND;TZID=Europe/Paris:20231218T233000\r\nEND:VEVENT\r\n",
        )[0];
        assert_eq!(key(e.start_time), "2023-12-18T22:30:00Z");
        assert_eq!(key(e.end_time), "2023-12-18T22:45:00Z");
    }

    const EU_RULES: &str = "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n\
DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n\
BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n";

    #[test]
    fn a_custom_vtimezone_is_read_by_its_own_rules() {
        let body = format!(
            "BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time (custom)\r\n{EU_RULES}END:VTIMEZONE\r\n\
             BEGIN:VEVENT\r\nUID:c\r\nDTSTART;TZID=\"W. Europe Standard Time (custom)\":20260701T090000\r\n\
             DURATION:PT1H\r\nRRULE:FREQ=MONTHLY;COUNT=8\r\n\
             EXDATE;TZID=\"W. Europe Standard Time (custom)\":20260801T090000\r\nEND:VEVENT\r\n"
        );
        let e = &upserts("/c.ics", &body)[0];
        assert_eq!(key(e.start_time), "2026-07-01T07:00:00Z", "CEST, not UTC");
        // The series expands in an IANA zone with the same offsets: 09:00 stays 09:00 in winter.
        let tz: Tz = e.timezone.as_deref().unwrap().parse().unwrap();
        assert_eq!(
            tz.offset_from_utc_datetime(&e.start_time.naive_utc())
                .to_string(),
            "CEST"
        );
        assert!(e
            .recurrence_rule
            .as_deref()
            .unwrap()
            .contains("EXDATE:20260801T070000Z"));
        let window = crate::time::TimeRange {
            start: e.start_time,
            end: e.start_time + Duration::days(400),
        };
        let starts =
            crate::recurrence::expand_resource("/c.ics", &calendar(&body), window).unwrap();
        let starts: Vec<String> = starts.into_iter().map(key).collect();
        assert_eq!(starts.len(), 7, "{starts:?}");
        assert_eq!(starts[1], "2026-09-01T07:00:00Z");
        assert_eq!(starts[3], "2026-11-01T08:00:00Z", "CET in November");
    }

    #[test]
    fn a_vtimezone_without_an_iana_twin_still_gives_exact_instants() {
        // +10 until 2024-01-01, +12 until 2024-05-05 08:00, then +10 (no IANA zone does this).
        let zone = "BEGIN:VTIMEZONE\r\nTZID:MyTimezone\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+1000\r\n\
TZOFFSETTO:+1200\r\nDTSTART:20240101T000000\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n\
TZOFFSETFROM:+1200\r\nTZOFFSETTO:+1000\r\nDTSTART:20240505T080000\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
        for (local, utc) in [
            ("20240303T080000", "2024-03-02T20:00:00Z"),
            ("20240505T070001", "2024-05-04T19:00:01Z"),
            ("20240505T080001", "2024-05-04T22:00:01Z"),
        ] {
            let body = format!(
                "{zone}BEGIN:VEVENT\r\nUID:m\r\nDTSTART;TZID=MyTimezone:{local}\r\nEND:VEVENT\r\n"
            );
            let e = &upserts("/m.ics", &body)[0];
            assert_eq!(key(e.start_time), utc, "{local}");
            assert_eq!(e.timezone, None);
        }
    }

    #[test]
    fn globally_unique_tzids_name_their_iana_zone() {
        let e = &upserts(
            "/g.ics",
            "BEGIN:VEVENT\r\nUID:g\r\n\
             DTSTART;TZID=/freeassociation.sourceforge.net/Europe/Berlin:20200426T140000\r\nEND:VEVENT\r\n",
        )[0];
        assert_eq!(key(e.start_time), "2020-04-26T12:00:00Z");
        assert_eq!(e.timezone.as_deref(), Some("Europe/Berlin"));
    }

    #[test]
    fn x_wr_timezone_places_floating_and_utc_series() {
        let body = "X-WR-TIMEZONE:Europe/Brussels\r\n\
            BEGIN:VEVENT\r\nUID:f\r\nDTSTART:20210916T210000\r\nDTEND:20210916T224500\r\nEND:VEVENT\r\n";
        let e = &upserts("/f.ics", body)[0];
        assert_eq!(
            key(e.start_time),
            "2021-09-16T19:00:00Z",
            "floating in Brussels"
        );
        let body = "X-WR-TIMEZONE:Europe/Brussels\r\n\
            BEGIN:VEVENT\r\nUID:u\r\nDTSTART:20210916T190000Z\r\nRRULE:FREQ=MONTHLY;COUNT=3\r\nEND:VEVENT\r\n";
        let e = &upserts("/u.ics", body)[0];
        assert_eq!(key(e.start_time), "2021-09-16T19:00:00Z");
        assert_eq!(
            e.timezone.as_deref(),
            Some("Europe/Brussels"),
            "expands at 21:00 local"
        );
    }

    #[test]
    fn an_all_day_override_named_by_a_zoned_recurrence_id_replaces_its_date() {
        let body =
            "BEGIN:VEVENT\r\nUID:o\r\nDTSTART;VALUE=DATE:20200402\r\nDTEND;VALUE=DATE:20200403\r\n\
            RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TH;COUNT=3\r\nEND:VEVENT\r\n\
            BEGIN:VEVENT\r\nUID:o\r\nRECURRENCE-ID;TZID=GMT Standard Time:20200416T000000\r\n\
            DTSTART;VALUE=DATE:20200417\r\nDTEND;VALUE=DATE:20200418\r\nEND:VEVENT\r\n";
        let events = upserts("/o.ics", body);
        assert_eq!(events[1].event_key, "/o.ics#2020-04-16T00:00:00Z");
        let window = crate::time::TimeRange {
            start: events[0].start_time,
            end: events[0].start_time + Duration::days(60),
        };
        let starts: Vec<String> =
            crate::recurrence::expand_resource("/o.ics", &calendar(body), window)
                .unwrap()
                .into_iter()
                .map(key)
                .collect();
        assert_eq!(
            starts,
            [
                "2020-04-02T00:00:00Z",
                "2020-04-17T00:00:00Z",
                "2020-04-30T00:00:00Z"
            ],
            "the moved occurrence once"
        );
    }

    #[test]
    fn rdate_periods_and_zoned_values_become_utc_and_bad_counts_go() {
        let e = &upserts(
            "/r.ics",
            "BEGIN:VEVENT\r\nUID:r\r\nDTSTART;TZID=Europe/Berlin:20230920T210000\r\n\
             RRULE:FREQ=MONTHLY;COUNT=-1;UNTIL=20231231T000000Z\r\n\
             RDATE;VALUE=PERIOD;TZID=America/New_York:20231001T090000/20231001T100000,20231002T090000/PT1H\r\n\
             END:VEVENT\r\n",
        )[0];
        let rule = e.recurrence_rule.as_deref().unwrap();
        assert!(
            rule.contains("RDATE:20231001T130000Z,20231002T130000Z"),
            "{rule}"
        );
        assert!(!rule.contains("COUNT"), "{rule}");
    }

    #[test]
    fn a_resource_of_overrides_only_expands_to_them_once() {
        let override_ = "BEGIN:VEVENT\r\nUID:x\r\nRECURRENCE-ID:20250428T160000Z\r\n\
            DTSTART:20250428T160500Z\r\nDURATION:PT1H\r\nEND:VEVENT\r\n";
        let window = crate::time::TimeRange {
            start: "2025-01-01T00:00:00Z".parse().unwrap(),
            end: "2026-01-01T00:00:00Z".parse().unwrap(),
        };
        let text = calendar(&format!("{override_}{override_}"));
        let starts = crate::recurrence::expand_resource("/x.ics", &text, window).unwrap();
        assert_eq!(
            starts.into_iter().map(key).collect::<Vec<_>>(),
            ["2025-04-28T16:05:00Z"]
        );
    }
}
