//! Edits of recurring series as calendar apps make them (docs/decisions.md 34): one occurrence
//! (an override or a cancellation, stored as a child of the series), this and following (the
//! series ends before an occurrence and a new series starts there), or the whole series.
//!
//! This module decides what to store; the API stores it and write-back carries it to the
//! provider. A child is keyed as its provider names it, so the next sync finds the same item:
//! Google's instance id `<series id>_<original start>`, a CalDAV override `<href>#<start>`.

use chrono::{DateTime, Duration, Utc};

use crate::model::{Event, Provider};
use crate::recurrence::Rule;
use crate::time::key_format;

/// How far an edit of a recurring event reaches (`?scope=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One occurrence: it becomes an override (or is cancelled).
    Instance,
    /// The occurrence and every later one: the series is split there.
    Following,
    /// The whole series.
    Series,
}

impl Scope {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "instance" => Ok(Self::Instance),
            "following" => Ok(Self::Following),
            "series" => Ok(Self::Series),
            other => Err(format!(
                "scope {other:?} is not one of instance, following, series"
            )),
        }
    }
}

/// The key of the child that overrides or cancels the occurrence of `master` starting at
/// `original`, in the form the master's provider gives it. Graph lists the occurrences of its
/// series itself, each a stored event with Graph's own id (`None` here); a Microsoft series made
/// here and not yet listed by Graph keeps overrides under `<series>@<original start>` until it
/// is, and write-back finds Graph's occurrence by its original start.
pub fn exception_key(
    provider: Provider,
    master: &Event,
    original: DateTime<Utc>,
) -> Option<String> {
    match provider {
        Provider::Microsoft if !master.provider_expanded => {
            Some(format!("{}@{}", master.event_key, key_format(original)))
        }
        Provider::Google => {
            let suffix = if master.is_all_day {
                original.format("%Y%m%d").to_string()
            } else {
                original.format("%Y%m%dT%H%M%SZ").to_string()
            };
            Some(format!("{}_{suffix}", master.event_key))
        }
        Provider::Apple => Some(format!("{}#{}", master.event_key, key_format(original))),
        Provider::Microsoft => None,
    }
}

/// A stored child standing for one occurrence (or a copy of an override, re-keyed): no rule, no
/// provider bookkeeping of its own yet. Also the start of a new series (a split), which is then
/// given a rule of its own.
pub fn child_of(occurrence: &Event, key: String, parent: &str, now: DateTime<Utc>) -> Event {
    let mut child = occurrence.clone();
    child.event_key = key;
    child.parent_event_id = Some(parent.to_owned());
    child.is_occurrence = false;
    child.provider_event_id = None;
    child.provider_etag = None;
    child.fingerprint = None;
    child.sync_error = None;
    child.pending_change = None;
    child.sync_status = crate::model::SyncStatus::Pending;
    child.deleted_at = None;
    child.purge_at = None;
    child.cancels_instance = false;
    child.provider_expanded = false;
    clear_recurrence(&mut child);
    child.created_at = now;
    child.updated_at = now;
    child.version = 1;
    child
}

/// Whether two versions of a series have the same pattern and start, differing at most in how
/// they end (COUNT, UNTIL): Exchange keeps a series' exceptions through such a change only.
pub fn same_pattern(before: &Event, after: &Event) -> bool {
    let pattern = |event: &Event| -> Vec<String> {
        event
            .recurrence_rule
            .as_deref()
            .unwrap_or("")
            .lines()
            .map(|line| {
                line.split(';')
                    .filter(|p| {
                        let key = p.split('=').next().unwrap_or("").to_ascii_uppercase();
                        key != "COUNT" && key != "UNTIL"
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .collect()
    };
    pattern(before) == pattern(after)
        && before.start_time == after.start_time
        && before.timezone == after.timezone
        && before.is_all_day == after.is_all_day
}

pub fn clear_recurrence(event: &mut Event) {
    event.is_recurring = false;
    event.recurrence_rule = None;
    event.recurrence_frequency = None;
    event.recurrence_interval = None;
    event.recurrence_end_date = None;
}

/// Replaces a series' recurrence lines (and the summary fields derived from them).
pub fn set_recurrence(event: &mut Event, lines: &[String]) {
    clear_recurrence(event);
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    crate::recurrence::apply_recurrence(event, &lines);
}

/// How a rule's RRULE lines end after an edit.
enum RuleEnd {
    Until(String),
    Count(u32),
    /// As it was (UNTIL kept; COUNT, if any, kept).
    Unchanged,
}

fn rrule_with(line: &str, end: &RuleEnd) -> String {
    let body = &line[line.find(':').map_or(0, |i| i + 1)..];
    let mut parts: Vec<String> = body
        .split(';')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or("").to_ascii_uppercase();
            match end {
                RuleEnd::Unchanged => true,
                RuleEnd::Until(_) => key != "UNTIL" && key != "COUNT",
                RuleEnd::Count(_) => key != "COUNT",
            }
        })
        .map(str::to_owned)
        .collect();
    match end {
        RuleEnd::Until(until) => parts.push(format!("UNTIL={until}")),
        RuleEnd::Count(count) => parts.push(format!("COUNT={count}")),
        RuleEnd::Unchanged => {}
    }
    format!("RRULE:{}", parts.join(";"))
}

fn date_line(name: &str, all_day: bool, t: DateTime<Utc>) -> String {
    if all_day {
        format!("{name};VALUE=DATE:{}", t.format("%Y%m%d"))
    } else {
        format!("{name}:{}", t.format("%Y%m%dT%H%M%SZ"))
    }
}

/// A series split at the occurrence starting at `at`: the lines of the part that ends before it,
/// and of the part that starts with it. RDATEs and EXDATEs go to the part they fall in; a COUNT
/// is shared out, so the two parts together have exactly the occurrences the series had.
pub struct Split {
    pub before: Vec<String>,
    pub from: Vec<String>,
}

pub fn split(master: &Event, rule: &Rule, at: DateTime<Utc>) -> Result<Split, String> {
    let lines: Vec<&str> = master
        .recurrence_rule
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let all_day = master.is_all_day;
    let until = if all_day {
        (at - Duration::days(1)).format("%Y%m%d").to_string()
    } else {
        (at - Duration::seconds(1))
            .format("%Y%m%dT%H%M%SZ")
            .to_string()
    };
    let counted = lines.iter().any(|l| {
        l.to_ascii_uppercase().starts_with("RRULE:") && l.to_ascii_uppercase().contains("COUNT=")
    });
    let remaining = if counted {
        let before = rule
            .count_before(at)
            .ok_or("the series is too long to split by its COUNT")?;
        let total: u32 = lines
            .iter()
            .filter(|l| l.to_ascii_uppercase().starts_with("RRULE:"))
            .flat_map(|l| l.split([';', ':']))
            .find_map(|p| p.to_ascii_uppercase().strip_prefix("COUNT=")?.parse().ok())
            .unwrap_or(0);
        RuleEnd::Count(total.saturating_sub(before).max(1))
    } else {
        RuleEnd::Unchanged
    };
    let rrules = |end: &RuleEnd| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.to_ascii_uppercase().starts_with("RRULE:"))
            .map(|l| rrule_with(l, end))
            .collect()
    };
    let (rdates, exdates) = rule.extra_dates();
    let dated = |name: &str, dates: &[DateTime<Utc>], keep: &dyn Fn(DateTime<Utc>) -> bool| {
        dates
            .iter()
            .filter(|d| keep(**d))
            .map(|d| date_line(name, all_day, *d))
            .collect::<Vec<_>>()
    };
    let before_at = |d: DateTime<Utc>| d < at;
    let from_at = |d: DateTime<Utc>| d >= at;
    let mut before = rrules(&RuleEnd::Until(until));
    before.extend(dated("RDATE", &rdates, &before_at));
    before.extend(dated("EXDATE", &exdates, &before_at));
    let mut from = rrules(&remaining);
    from.extend(dated("RDATE", &rdates, &from_at));
    from.extend(dated("EXDATE", &exdates, &from_at));
    Ok(Split { before, from })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn series(start: DateTime<Utc>, zone: &str, lines: &str) -> (Event, Rule) {
        let mut master = Event::new(
            "u",
            "c",
            "s1",
            "Standup",
            (start, start + Duration::minutes(30)),
            start,
        );
        master.timezone = Some(zone.into());
        master.is_recurring = true;
        master.recurrence_rule = Some(lines.into());
        let rule = Rule::parse(start, zone.parse().ok(), None, lines).unwrap();
        (master, rule)
    }

    fn starts(master: &Event, lines: &[String], start: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let rule = Rule::parse(
            start,
            master.timezone.as_deref().and_then(|z| z.parse().ok()),
            None,
            &lines.join("\n"),
        )
        .unwrap();
        rule.starts_between(start, start + Duration::days(800)).0
    }

    #[test]
    fn a_split_shares_out_every_occurrence_count_exdate_and_rdate() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
        let lines = "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=20\nEXDATE:20260304T080000Z,20260422T070000Z\nRDATE:20260530T070000Z";
        let (master, rule) = series(start, "Europe/Berlin", lines);
        let all = rule.starts_between(start, start + Duration::days(800)).0;
        let at = all[7];
        let parts = split(&master, &rule, at).unwrap();
        let before = starts(&master, &parts.before, start);
        let from = starts(&master, &parts.from, at);
        assert!(before.iter().all(|t| *t < at) && from.iter().all(|t| *t >= at));
        assert_eq!(
            [before, from].concat(),
            all,
            "{parts:?}",
            parts = (&parts.before, &parts.from)
        );
        assert!(parts.from[0].contains("COUNT=12"), "{:?}", parts.from);
    }

    #[test]
    fn an_open_series_ends_the_second_before_and_continues_unchanged() {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 14, 0, 0).unwrap();
        let (master, rule) = series(start, "America/New_York", "RRULE:FREQ=DAILY;INTERVAL=2");
        let at = Utc.with_ymd_and_hms(2026, 4, 13, 13, 0, 0).unwrap();
        assert!(rule.occurs_at(at));
        let parts = split(&master, &rule, at).unwrap();
        assert_eq!(
            parts.before,
            ["RRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20260413T125959Z"]
        );
        assert_eq!(parts.from, ["RRULE:FREQ=DAILY;INTERVAL=2"]);
    }

    #[test]
    fn children_are_keyed_as_their_provider_names_them() {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 14, 0, 0).unwrap();
        let (mut master, _) = series(start, "UTC", "RRULE:FREQ=DAILY");
        assert_eq!(
            exception_key(Provider::Google, &master, start).unwrap(),
            "s1_20260105T140000Z"
        );
        master.event_key = "/cal/a.ics".into();
        assert_eq!(
            exception_key(Provider::Apple, &master, start).unwrap(),
            "/cal/a.ics#2026-01-05T14:00:00Z"
        );
        assert_eq!(
            exception_key(Provider::Microsoft, &master, start).unwrap(),
            "/cal/a.ics@2026-01-05T14:00:00Z"
        );
        master.provider_expanded = true;
        assert_eq!(exception_key(Provider::Microsoft, &master, start), None);
    }
}
