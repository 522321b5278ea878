//! RFC 5545 output: a user's merged calendar as iCalendar text. Lines end in CRLF and are folded
//! at 75 octets; TEXT values are escaped; every zone used gets a VTIMEZONE whose observances are
//! the zone's actual transitions (from the tz database) over the years the feed covers; series
//! keep their RRULE / EXDATE / RDATE lines, and exceptions carry RECURRENCE-ID.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::model::Event;

/// RFC 5545 §3.3.11 TEXT escaping.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
}

/// Appends one content line, folded at 75 octets (never inside a UTF-8 sequence), with CRLF.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for ch in content.chars() {
        let len = ch.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += len;
    }
    out.push_str("\r\n");
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    format!("{sign}{:02}{:02}", s / 3600, (s % 3600) / 60)
}

/// A VTIMEZONE for `zone` with one observance per transition between `from` and `to` (and the
/// offset in force at `from`), found by stepping through the zone's offsets.
fn vtimezone(out: &mut String, zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) {
    let offset_at = |t: DateTime<Utc>| {
        zone.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc()
    };
    line(out, "BEGIN:VTIMEZONE");
    line(out, &format!("TZID:{}", zone.name()));
    let mut observances = Vec::new();
    let mut previous = offset_at(from - Duration::days(1));
    observances.push((from, previous, previous));
    let mut t = from;
    while t < to {
        let next = t + Duration::hours(1);
        let offset = offset_at(next);
        if offset != previous {
            observances.push((next, previous, offset));
            previous = offset;
        }
        t = next;
    }
    let standard_offset = observances
        .iter()
        .map(|(_, _, o)| *o)
        .min()
        .unwrap_or(previous);
    for (at, from_offset, to_offset) in observances {
        let kind = if to_offset > standard_offset {
            "DAYLIGHT"
        } else {
            "STANDARD"
        };
        // DTSTART of an observance is local time in the offset before it.
        let local: NaiveDateTime = at.naive_utc() + Duration::seconds(i64::from(from_offset));
        line(out, &format!("BEGIN:{kind}"));
        line(out, &format!("DTSTART:{}", local.format("%Y%m%dT%H%M%S")));
        line(out, &format!("TZOFFSETFROM:{}", offset_text(from_offset)));
        line(out, &format!("TZOFFSETTO:{}", offset_text(to_offset)));
        line(out, &format!("END:{kind}"));
    }
    line(out, "END:VTIMEZONE");
}

fn time_property(
    out: &mut String,
    name: &str,
    event: &Event,
    instant: DateTime<Utc>,
    date: Option<chrono::NaiveDate>,
    zone: Option<Tz>,
) {
    match (event.is_all_day, date, zone) {
        (true, Some(date), _) => line(out, &format!("{name};VALUE=DATE:{}", date.format("%Y%m%d"))),
        (_, _, Some(zone)) => line(
            out,
            &format!(
                "{name};TZID={}:{}",
                zone.name(),
                instant.with_timezone(&zone).format("%Y%m%dT%H%M%S")
            ),
        ),
        _ => line(out, &format!("{name}:{}", utc_stamp(instant))),
    }
}

/// The UID of an event in the feed: stable, and shared by a series and its exceptions.
pub fn uid(event: &Event) -> String {
    let series = event.parent_event_id.as_deref().unwrap_or(&event.event_key);
    format!(
        "{}-{}@calsync",
        event.connection_id,
        crate::ids::sha256_hex(series)[..24].to_owned()
    )
}

/// One VEVENT of a feed: an event, or a series with the occurrences it leaves out.
pub struct FeedEvent {
    pub event: Event,
    /// Original starts of occurrences the series does not have (cancelled, or replaced by an
    /// exception outside the feed).
    pub exdates: Vec<DateTime<Utc>>,
    /// For an exception: its RECURRENCE-ID is a DATE (the series is all-day), whatever the
    /// exception itself has become; readers match it against the series' own starts.
    pub series_all_day: bool,
    /// The UID to write instead of ours: a CalDAV resource keeps the UID its series has there.
    pub uid: Option<String>,
}

impl FeedEvent {
    /// An event with nothing to add.
    pub fn plain(event: Event) -> Self {
        let series_all_day = event.is_all_day;
        Self {
            event,
            exdates: Vec::new(),
            series_all_day,
            uid: None,
        }
    }
}

/// One VEVENT.
fn vevent(out: &mut String, entry: &FeedEvent, stamp: DateTime<Utc>) {
    let event = &entry.event;
    let zone = event.timezone.as_deref().and_then(|z| z.parse::<Tz>().ok());
    line(out, "BEGIN:VEVENT");
    let uid = entry.uid.clone().unwrap_or_else(|| uid(event));
    line(out, &format!("UID:{uid}"));
    line(out, &format!("DTSTAMP:{}", utc_stamp(stamp)));
    time_property(
        out,
        "DTSTART",
        event,
        event.start_time,
        event.start_date,
        zone,
    );
    time_property(out, "DTEND", event, event.end_time, event.end_date, zone);
    if let Some(original) = event
        .original_start_time
        .filter(|_| event.parent_event_id.is_some())
    {
        match (entry.series_all_day, zone) {
            (true, _) => line(
                out,
                &format!("RECURRENCE-ID;VALUE=DATE:{}", original.format("%Y%m%d")),
            ),
            (false, Some(zone)) => line(
                out,
                &format!(
                    "RECURRENCE-ID;TZID={}:{}",
                    zone.name(),
                    original.with_timezone(&zone).format("%Y%m%dT%H%M%S")
                ),
            ),
            (false, None) => line(out, &format!("RECURRENCE-ID:{}", utc_stamp(original))),
        }
    }
    line(out, &format!("SUMMARY:{}", escape(&event.title)));
    if let Some(description) = &event.description {
        line(out, &format!("DESCRIPTION:{}", escape(description)));
    }
    if let Some(location) = &event.location {
        line(out, &format!("LOCATION:{}", escape(location)));
    }
    if let Some(rule) = event
        .recurrence_rule
        .as_deref()
        .filter(|_| event.is_recurring)
    {
        for rule_line in rule.lines().map(str::trim).filter(|l| !l.is_empty()) {
            line(out, rule_line);
        }
        for start in &entry.exdates {
            let date = event.is_all_day.then(|| start.date_naive());
            time_property(out, "EXDATE", event, *start, date, zone);
        }
    }
    if event.transparent {
        line(out, "TRANSP:TRANSPARENT");
    }
    for attendee in &event.attendees {
        let name = attendee
            .name
            .as_deref()
            .map(|n| format!(";CN=\"{}\"", n.replace('"', "'")))
            .unwrap_or_default();
        line(out, &format!("ATTENDEE{name}:mailto:{}", attendee.email));
    }
    line(
        out,
        &format!("LAST-MODIFIED:{}", utc_stamp(event.updated_at)),
    );
    line(out, "END:VEVENT");
}

/// A whole calendar: the events given (series as masters, not expanded), with a VTIMEZONE for
/// every zone they use, covering `[from, to)`. The VTIMEZONEs cover whole years, so the same
/// events give the same text from one request to the next.
pub fn calendar(
    name: &str,
    entries: &[FeedEvent],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let events: Vec<&Event> = entries.iter().map(|e| &e.event).collect();
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//calsync//calsync feed//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, &format!("X-WR-CALNAME:{}", escape(name)));
    let zones: BTreeSet<&str> = events
        .iter()
        .filter(|e| !e.is_all_day)
        .filter_map(|e| e.timezone.as_deref())
        .filter(|z| z.parse::<Tz>().is_ok())
        .collect();
    let earliest = events
        .iter()
        .map(|e| e.start_time)
        .min()
        .unwrap_or(from)
        .min(from);
    let year_start = |year: i32| {
        Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(earliest)
    };
    for zone in zones {
        vtimezone(
            &mut out,
            zone.parse().expect("checked above"),
            year_start(earliest.year() - 1),
            year_start(to.year() + 1),
        );
    }
    let stamp = Utc::now();
    for entry in entries {
        vevent(&mut out, entry, stamp);
    }
    line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let mut out = String::new();
        line(&mut out, &format!("SUMMARY:{}", "é".repeat(60)));
        for physical in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(physical.len() <= 75, "{} octets", physical.len());
        }
        assert_eq!(escape("a,b;c\nd\\"), "a\\,b\\;c\\nd\\\\");
    }
}
