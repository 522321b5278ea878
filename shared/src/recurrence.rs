//! Recurring events: a master's rule (RRULE / RDATE / EXDATE lines, RFC 5545) expanded with the
//! `rrule` crate, in the event's own time zone, so 09:00 New York stays 09:00 across DST. A rule
//! must be validated ([`Rule::parse`]) before it can be expanded; expansion stops at a budget.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rrule::RRuleSet;

use crate::model::Event;
use crate::time::{key_format, TimeRange};

/// The most occurrences one master may produce for one query (a daily rule over a year is 366).
pub const OCCURRENCE_BUDGET: u16 = 2000;

/// A validated recurrence rule anchored at its first start.
#[derive(Clone, Debug)]
pub struct Rule {
    set: RRuleSet,
}

fn dtstart(start: DateTime<Utc>, zone: Option<Tz>, all_day: Option<NaiveDate>) -> String {
    match (all_day, zone) {
        (Some(date), _) => format!("DTSTART:{}T000000Z", date.format("%Y%m%d")),
        (None, Some(zone)) => format!(
            "DTSTART;TZID={}:{}",
            zone.name(),
            start.with_timezone(&zone).format("%Y%m%dT%H%M%S")
        ),
        (None, None) => format!("DTSTART:{}", start.format("%Y%m%dT%H%M%SZ")),
    }
}

/// RFC 5545 wants UNTIL in UTC when DTSTART has a zone, and as a DATE for all-day series; many
/// producers write a DATE or a local time anyway. The set is anchored in UTC, so UNTIL becomes
/// UTC: a DATE means the end of that day (midnight, for all-day series, which start then).
fn normalize_until(line: &str, all_day: bool) -> String {
    if !line.to_ascii_uppercase().starts_with("RRULE:") {
        return line.to_owned();
    }
    line.split(';')
        .map(|part| match part.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case("UNTIL") => {
                let fixed = match value.len() {
                    8 if all_day => format!("{value}T000000Z"),
                    8 => format!("{value}T235959Z"),
                    15 => format!("{value}Z"),
                    _ => value.to_owned(),
                };
                format!("{key}={fixed}")
            }
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

impl Rule {
    /// Validates `lines` (RRULE / RDATE / EXDATE, one per line) for an event starting at `start`.
    pub fn parse(
        start: DateTime<Utc>,
        zone: Option<Tz>,
        all_day: Option<NaiveDate>,
        lines: &str,
    ) -> Result<Self, String> {
        let mut text = dtstart(start, zone, all_day);
        let mut has_rule = false;
        for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("RRULE:") {
                has_rule = true;
                let freq = upper
                    .split(';')
                    .find_map(|p| p.split_once("FREQ=").map(|(_, f)| f.to_owned()));
                if matches!(
                    freq.as_deref().map(|f| f.trim_start_matches("RRULE:")),
                    Some("SECONDLY" | "MINUTELY" | "HOURLY")
                ) {
                    return Err("recurrence more frequent than daily is not supported".into());
                }
            } else if !(upper.starts_with("RDATE") || upper.starts_with("EXDATE")) {
                return Err(format!(
                    "unsupported recurrence line {line:?}; use RRULE, RDATE or EXDATE"
                ));
            }
            text.push('\n');
            // All-day series list dates; the set is anchored at UTC midnights, so they match.
            let line = line
                .replace(";VALUE=DATE:", ":")
                .replace(";VALUE=DATE-TIME", "");
            text.push_str(&normalize_until(&line, all_day.is_some()));
        }
        if !has_rule && !lines.to_ascii_uppercase().contains("RDATE") {
            return Err("a recurrence needs an RRULE or RDATE line".into());
        }
        // DTSTART is always the first occurrence (RFC 5545 §3.8.5.3), even when the rule would
        // not produce it; as an RDATE it joins the set (and an EXDATE can still remove it).
        text.push_str(&format!("\nRDATE:{}", start.format("%Y%m%dT%H%M%SZ")));
        let set: RRuleSet = text
            .parse()
            .map_err(|e: rrule::RRuleError| format!("invalid recurrence: {e}"))?;
        Ok(Self { set })
    }

    /// Starts of the occurrences beginning in `[from, to)`, and whether the budget cut them short.
    pub fn starts_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> (Vec<DateTime<Utc>>, bool) {
        let bound = |t: DateTime<Utc>| t.with_timezone(&rrule::Tz::UTC);
        let result = self
            .set
            .clone()
            .after(bound(from - Duration::seconds(1)))
            .before(bound(to))
            .all(OCCURRENCE_BUDGET);
        let mut starts = result
            .dates
            .into_iter()
            .map(|d| d.with_timezone(&Utc))
            .filter(|d| *d >= from && *d < to)
            .collect::<Vec<_>>();
        // DTSTART joins as an RDATE and may repeat the rule's first date.
        starts.sort();

        starts.dedup();
        (starts, result.limited)
    }
}

/// Keeps a series' recurrence lines (RRULE, RDATE, EXDATE) and the seed's summary fields.
pub fn apply_recurrence(event: &mut crate::model::Event, lines: &[&str]) {
    let lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            ["RRULE", "RDATE", "EXDATE", "EXRULE"]
                .iter()
                .any(|p| l.to_ascii_uppercase().starts_with(p))
        })
        .collect();
    if lines.is_empty() {
        return;
    }
    event.is_recurring = true;
    event.recurrence_rule = Some(lines.join("\n"));
    if let Some(rule) = lines
        .iter()
        .find(|l| l.to_ascii_uppercase().starts_with("RRULE:"))
    {
        for part in rule[6..].split(';') {
            match part.split_once('=') {
                Some(("FREQ", f)) => event.recurrence_frequency = Some(f.to_owned()),
                Some(("INTERVAL", i)) => event.recurrence_interval = i.parse().ok(),
                Some(("UNTIL", u)) => {
                    event.recurrence_end_date =
                        NaiveDateTime::parse_from_str(u.trim_end_matches('Z'), "%Y%m%dT%H%M%S")
                            .map(|t| Utc.from_utc_datetime(&t))
                            .or_else(|_| {
                                NaiveDate::parse_from_str(u, "%Y%m%d").map(|d| {
                                    Utc.from_utc_datetime(
                                        &d.and_hms_opt(0, 0, 0).expect("midnight"),
                                    )
                                })
                            })
                            .ok()
                }
                _ => {}
            }
        }
    }
}

/// The occurrences of a recurring `master` that overlap `range`, in its own zone, without the
/// original starts in `replaced` (moved or cancelled instances). A rule that cannot be expanded
/// yields the master alone, where it overlaps.
pub fn occurrences(
    master: &Event,
    replaced: &HashSet<DateTime<Utc>>,
    range: TimeRange,
) -> Vec<Event> {
    let zone = master
        .timezone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok());
    let all_day = master.is_all_day.then_some(master.start_date).flatten();
    let rule = master
        .recurrence_rule
        .as_deref()
        .ok_or_else(|| "no rule".to_owned())
        .and_then(|lines| Rule::parse(master.start_time, zone, all_day, lines));
    let Ok(rule) = rule else {
        let overlaps = range.overlaps(master.start_time, master.end_time);
        return if overlaps {
            vec![master.clone()]
        } else {
            Vec::new()
        };
    };
    let length = master.end_time - master.start_time;
    let (starts, _) = rule.starts_between(range.start - length, range.end);
    starts
        .into_iter()
        .filter(|start| !replaced.contains(start) && range.overlaps(*start, *start + length))
        .map(|start| {
            let mut occurrence = master.clone();
            occurrence.event_key = format!("{}@{}", master.event_key, key_format(start));
            occurrence.parent_event_id = Some(master.event_key.clone());
            occurrence.is_occurrence = true;
            occurrence.original_start_time = Some(start);
            occurrence.start_time = start;
            occurrence.end_time = start + length;
            if occurrence.is_all_day {
                let offset = start.date_naive() - master.start_time.date_naive();
                occurrence.start_date = master.start_date.map(|d| d + offset);
                occurrence.end_date = master.end_date.map(|d| d + offset);
            }
            occurrence
        })
        .collect()
}

/// The occurrence starts of one iCalendar resource (a series with its overrides, or a single
/// event) that overlap `range`: parsed as the CalDAV sync parses it, expanded as range queries
/// expand it.
pub fn expand_resource(
    href: &str,
    text: &str,
    range: TimeRange,
) -> Result<Vec<DateTime<Utc>>, String> {
    use crate::sync::Change;
    let mut master = None;
    let mut overrides = Vec::new();
    let mut replaced = HashSet::new();
    for change in crate::sync::feeds::parse_calendar_resource(href, text) {
        match change {
            Change::Upsert(event) if event.event_key == href => master = Some(*event),
            Change::Upsert(event) => {
                replaced.extend(event.original_start_time);
                overrides.push(*event);
            }
            Change::CancelInstance { original_start, .. } => {
                replaced.insert(original_start);
            }
            Change::Malformed { reason, .. } => return Err(reason),
            _ => {}
        }
    }
    // The sync stores one event per key: an override written twice is one event (the last).
    let mut seen = HashSet::new();
    overrides.reverse();
    overrides.retain(|o| seen.insert(o.event_key.clone()));
    // A resource may hold only overrides (the master was not shared): they are the events.
    let mut starts: Vec<DateTime<Utc>> = match master {
        Some(master) if master.is_recurring => occurrences(&master, &replaced, range)
            .iter()
            .map(|o| o.start_time)
            .collect(),
        Some(master) if range.overlaps(master.start_time, master.end_time) => {
            vec![master.start_time]
        }
        Some(_) => Vec::new(),
        None if overrides.is_empty() => return Err("no event in the resource".into()),
        None => Vec::new(),
    };
    starts.extend(
        overrides
            .iter()
            .filter(|o| range.overlaps(o.start_time, o.end_time))
            .map(|o| o.start_time),
    );
    starts.sort();
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn nine_in_new_york_stays_nine_across_dst() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let start = ny
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let rule =
            Rule::parse(start, Some(ny), None, "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3").unwrap();
        let (starts, limited) =
            rule.starts_between(utc("2026-03-01T00:00:00Z"), utc("2026-04-01T00:00:00Z"));
        assert!(!limited);
        let local: Vec<String> = starts
            .iter()
            .map(|s| s.with_timezone(&ny).format("%m-%d %H:%M").to_string())
            .collect();
        assert_eq!(local, ["03-02 09:00", "03-09 09:00", "03-16 09:00"]);
        assert_eq!(starts[0], utc("2026-03-02T14:00:00Z"));
        assert_eq!(
            starts[1],
            utc("2026-03-09T13:00:00Z"),
            "after the DST change"
        );
    }

    #[test]
    fn exdates_rdates_and_bad_rules() {
        let start = utc("2026-06-01T10:00:00Z");
        let rule = Rule::parse(
            start,
            None,
            None,
            "RRULE:FREQ=DAILY;COUNT=4\nEXDATE:20260602T100000Z\nRDATE:20260610T100000Z",
        )
        .unwrap();
        let (starts, _) =
            rule.starts_between(utc("2026-06-01T00:00:00Z"), utc("2026-07-01T00:00:00Z"));
        assert_eq!(starts.len(), 4, "{starts:?}");
        assert!(!starts.contains(&utc("2026-06-02T10:00:00Z")));
        assert!(starts.contains(&utc("2026-06-10T10:00:00Z")));
        for bad in [
            "RRULE:FREQ=SOMETIMES",
            "RRULE:FREQ=MINUTELY",
            "SUMMARY:x",
            "",
            "RRULE:FREQ=WEEKLY;BYDAY=XX",
        ] {
            assert!(Rule::parse(start, None, None, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_runaway_rule_stops_at_the_budget() {
        let rule =
            Rule::parse(utc("2000-01-01T00:00:00Z"), None, None, "RRULE:FREQ=DAILY").unwrap();
        let (starts, limited) =
            rule.starts_between(utc("2000-01-01T00:00:00Z"), utc("2030-01-01T00:00:00Z"));
        assert!(starts.len() <= usize::from(OCCURRENCE_BUDGET));
        assert!(limited, "a cut-short expansion must say so");
    }
}
