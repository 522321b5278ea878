//! A corpus of recurring events (iCalendar resources) shared by the recurrence agreement test and
//! the benchmark, and the bridge to the Python reference (`infra/recurrence-oracle/expand.py`,
//! `recurring-ical-events`): synthetic series, and the real-world test calendars of the
//! `icalendar` and `recurring-ical-events` packages (see `infra/devstack/corpus/README.md`), one
//! resource per file and UID.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

/// (name, zone or "" for UTC `Z` or "floating", DTSTART local, DURATION, RRULE, extra lines).
const CORPUS: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("daily-count", "America/New_York", "20260105T090000", "PT30M", "FREQ=DAILY;COUNT=10", ""),
    ("daily-interval", "Europe/Berlin", "20260105T180000", "PT1H", "FREQ=DAILY;INTERVAL=2;COUNT=8", ""),
    ("daily-until-across-us-dst", "America/New_York", "20260301T090000", "PT15M", "FREQ=DAILY;UNTIL=20260315T000000Z", ""),
    ("weekly-mwf", "America/Los_Angeles", "20260105T080000", "PT45M", "FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=12", ""),
    ("biweekly-tuesday-until", "Europe/London", "20260106T100000", "PT1H", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20260630T000000Z", ""),
    ("weekly-sydney-dst-end", "Australia/Sydney", "20260301T093000", "PT1H", "FREQ=WEEKLY;BYDAY=SU;COUNT=8", ""),
    ("monthly-15th", "Asia/Kolkata", "20260115T140000", "PT1H", "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=6", ""),
    ("monthly-first-monday", "America/Chicago", "20260105T110000", "PT1H", "FREQ=MONTHLY;BYDAY=1MO;COUNT=6", ""),
    ("monthly-last-friday", "Europe/Paris", "20260130T160000", "PT2H", "FREQ=MONTHLY;BYDAY=-1FR;COUNT=6", ""),
    ("monthly-last-weekday", "America/New_York", "20260130T170000", "PT30M", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6", ""),
    ("monthly-first-weekday", "Europe/Berlin", "20260101T090000", "PT30M", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1;COUNT=6", ""),
    ("monthly-third-tue-or-thu", "America/Los_Angeles", "20260101T120000", "PT1H", "FREQ=MONTHLY;BYDAY=TU,TH;BYSETPOS=3;COUNT=5", ""),
    ("yearly-second-sunday-march", "America/New_York", "20260308T120000", "PT1H", "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU;COUNT=3", ""),
    ("yearly-leap-day", "", "20280229T120000", "PT1H", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=2", ""),
    ("yearly-day-100", "Europe/London", "20260410T090000", "PT1H", "FREQ=YEARLY;BYYEARDAY=100;COUNT=3", ""),
    ("quarterly-second-thursday", "Asia/Tokyo", "20260108T100000", "PT1H", "FREQ=MONTHLY;INTERVAL=3;BYDAY=2TH;COUNT=4", ""),
    ("monthly-31st-skips-short-months", "Europe/Madrid", "20260131T090000", "PT1H", "FREQ=MONTHLY;BYMONTHDAY=31;COUNT=5", ""),
    ("monthly-last-day", "America/Denver", "20260131T090000", "PT1H", "FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=6", ""),
    ("daily-twice-byhour", "Europe/Berlin", "20260105T090000", "PT15M", "FREQ=DAILY;BYHOUR=9,15;COUNT=6", ""),
    ("weekly-wkst-sunday", "America/New_York", "20260104T100000", "PT1H", "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=SU,MO;COUNT=8", ""),
    ("weekly-wkst-monday", "America/New_York", "20260104T100000", "PT1H", "FREQ=WEEKLY;INTERVAL=2;WKST=MO;BYDAY=SU,MO;COUNT=8", ""),
    ("utc-daily", "", "20260201T070000", "PT20M", "FREQ=DAILY;COUNT=5", ""),
    ("floating-weekly", "floating", "20260202T083000", "PT1H", "FREQ=WEEKLY;COUNT=4", ""),
    ("berlin-across-spring-dst", "Europe/Berlin", "20260323T090000", "PT1H", "FREQ=DAILY;COUNT=10", ""),
    ("berlin-across-autumn-dst", "Europe/Berlin", "20261020T090000", "PT1H", "FREQ=DAILY;COUNT=10", ""),
    ("london-weekly-bst", "Europe/London", "20260316T083000", "PT30M", "FREQ=WEEKLY;COUNT=4", ""),
    ("sydney-daily-dst-start", "Australia/Sydney", "20261001T070000", "PT1H", "FREQ=DAILY;COUNT=6", ""),
    ("ny-fall-back-ambiguous", "America/New_York", "20261030T013000", "PT30M", "FREQ=DAILY;COUNT=4", ""),
    ("exdate-two", "America/New_York", "20260105T090000", "PT30M", "FREQ=DAILY;COUNT=7",
     "EXDATE;TZID=America/New_York:20260107T090000\r\nEXDATE;TZID=America/New_York:20260109T090000"),
    ("exdate-list", "Europe/Berlin", "20260105T090000", "PT30M", "FREQ=WEEKLY;BYDAY=MO;COUNT=5",
     "EXDATE;TZID=Europe/Berlin:20260112T090000,20260126T090000"),
    ("exdate-utc", "America/Los_Angeles", "20260105T090000", "PT30M", "FREQ=DAILY;COUNT=4", "EXDATE:20260106T170000Z"),
    ("rdate-extra", "Europe/London", "20260105T090000", "PT30M", "FREQ=WEEKLY;COUNT=3", "RDATE;TZID=Europe/London:20260110T150000"),
    ("all-day-weekly", "date", "20260103", "P1D", "FREQ=WEEKLY;BYDAY=SA;COUNT=5", ""),
    ("all-day-birthday", "date", "20260214", "P1D", "FREQ=YEARLY;COUNT=3", ""),
    ("all-day-until-date", "date", "20260105", "P1D", "FREQ=DAILY;UNTIL=20260109", ""),
    ("all-day-multi-day-monthly", "date", "20260110", "P2D", "FREQ=MONTHLY;COUNT=4", ""),
    ("all-day-exdate", "date", "20260105", "P1D", "FREQ=DAILY;COUNT=5", "EXDATE;VALUE=DATE:20260107"),
    ("weekly-two-day-event", "Europe/Paris", "20260105T090000", "P2DT8H", "FREQ=WEEKLY;COUNT=3", ""),
    ("single-no-rule", "Asia/Kolkata", "20260301T100000", "PT1H", "", ""),
    ("kolkata-daily", "Asia/Kolkata", "20260105T093000", "PT1H", "FREQ=DAILY;COUNT=5", ""),
    ("sao-paulo-weekly", "America/Sao_Paulo", "20260105T090000", "PT1H", "FREQ=WEEKLY;COUNT=4", ""),
    ("auckland-monthly", "Pacific/Auckland", "20260101T090000", "PT1H", "FREQ=MONTHLY;COUNT=6", ""),
];

/// Resources with overrides: (name, ics).
fn with_overrides() -> Vec<(String, String)> {
    let moved = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//corpus//EN\r\n\
BEGIN:VEVENT\r\nUID:moved@corpus\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=America/New_York:20260105T090000\r\nDURATION:PT30M\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:moved@corpus\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=America/New_York:20260112T090000\r\nDTSTART;TZID=America/New_York:20260113T140000\r\nDURATION:PT45M\r\nSUMMARY:Weekly (moved)\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    let cancelled = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//corpus//EN\r\n\
BEGIN:VEVENT\r\nUID:cancel@corpus\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260105T100000\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:Daily\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:cancel@corpus\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260107T100000\r\nDTSTART;TZID=Europe/Berlin:20260107T100000\r\nDURATION:PT1H\r\nSTATUS:CANCELLED\r\nSUMMARY:Daily\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    let all_day_moved = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//corpus//EN\r\n\
BEGIN:VEVENT\r\nUID:adm@corpus\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260106\r\nDTEND;VALUE=DATE:20260107\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Bins\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:adm@corpus\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;VALUE=DATE:20260113\r\nDTSTART;VALUE=DATE:20260114\r\nDTEND;VALUE=DATE:20260115\r\nSUMMARY:Bins (late)\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    vec![
        ("override-moved".into(), moved.into()),
        ("override-cancelled".into(), cancelled.into()),
        ("override-all-day".into(), all_day_moved.into()),
    ]
}

fn ics(zone: &str, start: &str, duration: &str, rule: &str, extra: &str) -> String {
    let dtstart = match zone {
        "" => format!("DTSTART:{start}Z"),
        "floating" => format!("DTSTART:{start}"),
        "date" => format!("DTSTART;VALUE=DATE:{start}"),
        zone => format!("DTSTART;TZID={zone}:{start}"),
    };
    let rule = if rule.is_empty() {
        String::new()
    } else {
        format!("RRULE:{rule}\r\n")
    };
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra}\r\n")
    };
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//corpus//EN\r\nBEGIN:VEVENT\r\nUID:corpus@test\r\nDTSTAMP:20260101T000000Z\r\n\
         {dtstart}\r\nDURATION:{duration}\r\n{rule}{extra}SUMMARY:corpus\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Every resource of the corpus: (name, iCalendar text). The real-world files are named
/// `icalendar/<folder>/<file>` (vendored) and `recurring-ical-events/<file>` (read from the
/// project venv, `$CALSYNC_VENV`), with `~<n>` for the n-th UID of a file holding several.
pub fn resources() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = CORPUS
        .iter()
        .map(|(name, zone, start, duration, rule, extra)| {
            ((*name).to_owned(), ics(zone, start, duration, rule, extra))
        })
        .collect();
    all.extend(with_overrides());
    all.extend(real_world());
    all
}

/// Test calendars of the packages that the reference itself cannot read, or that are not about
/// VEVENT expansion even though they hold VEVENTs; the README says why.
pub const SKIPPED: &[(&str, &str)] = &[
    (
        "recurring-ical-events/bad_rrule_missing_until_event.ics",
        "the reference rejects its RRULE (UNTL=, a misspelt UNTIL)",
    ),
    // Broken syntax: the `icalendar` crate rejects the resource (the sync reports it Malformed),
    // the reference's parser tolerates it.
    (
        "icalendar/calendars/issue_168_input.ics",
        "syntax: no BEGIN:VCALENDAR",
    ),
    (
        "icalendar/calendars/timezone_rdate.ics",
        "syntax: a VTIMEZONE is not closed before BEGIN:VEVENT",
    ),
    (
        "icalendar/calendars/issue_350.ics",
        "syntax: properties after END:VCALENDAR",
    ),
    (
        "icalendar/calendars/issue_351_whitespace_in_property_and_params.ics",
        "syntax: whitespace inside property and parameter names",
    ),
    (
        "icalendar/calendars/timezone_same_start_and_offset.ics",
        "syntax: END:VCALENDARD",
    ),
    (
        "recurring-ical-events/issue_201_test_matrix.ics",
        "syntax: END:VTOOD closes a VTODO (each of its 15 events is rejected with it)",
    ),
    (
        "icalendar/calendars/issue_178_custom_component_contains_other.ics",
        "its VEVENT is nested in an X- component; the sync reads only top-level VEVENTs",
    ),
    // Several VEVENTs of one UID without RECURRENCE-ID (RFC 5545 allows one): the sync keeps one
    // event per resource, the reference lists each.
    (
        "recurring-ical-events/duration.ics",
        "three VEVENTs of one UID, none with RECURRENCE-ID",
    ),
    (
        "recurring-ical-events/issue_15_duplicated_events.ics",
        "three VEVENTs of one UID, none with RECURRENCE-ID",
    ),
    (
        "recurring-ical-events/rdate.ics",
        "three VEVENTs of one UID, none with RECURRENCE-ID",
    ),
    // Overrides that carry their own RRULE and win by SEQUENCE (a client's "this and following"
    // edit written as a new series): calsync reads an override as one moved occurrence.
    (
        "recurring-ical-events/issue_148_edge_case_1.ics",
        "overrides with their own RRULE, ordered by SEQUENCE",
    ),
    (
        "recurring-ical-events/issue_163_deleted_modification.ics",
        "overrides with their own RRULE, ordered by SEQUENCE",
    ),
    (
        "recurring-ical-events/issue_253_additional_recurrence_id.ics",
        "overrides with their own RRULE, ordered by SEQUENCE",
    ),
    (
        "recurring-ical-events/issue_75_range_parameter.ics",
        "RECURRENCE-ID;RANGE=THISANDFUTURE (calsync moves only the one occurrence)",
    ),
    (
        "recurring-ical-events/issue_117_until_before_dtstart.ics",
        "UNTIL before DTSTART: calsync keeps DTSTART as the first occurrence (RFC 5545 \u{a7}3.8.5.3), the reference drops it",
    ),
];

/// The vendored test calendars of `icalendar` (BSD-2-Clause).
fn vendored_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/icalendar")
}

/// The test calendars shipped in the `recurring-ical-events` wheel (LGPL-3.0-or-later, so read
/// in place from the project venv rather than copied into this repository).
pub fn recurring_ical_events_dir() -> Option<PathBuf> {
    let venv = std::env::var("CALSYNC_VENV")
        .ok()
        .filter(|v| !v.is_empty())?;
    let lib = Path::new(&venv).join("lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| {
            entry
                .path()
                .join("site-packages/recurring_ical_events/test/calendars")
        })
        .find(|dir| dir.is_dir())
}

fn ics_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "ics"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn real_world() -> Vec<(String, String)> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for folder in ["calendars", "events"] {
        for path in ics_files(&vendored_dir().join(folder)) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((format!("icalendar/{folder}/{name}"), path));
        }
    }
    if let Some(dir) = recurring_ical_events_dir() {
        for path in ics_files(&dir) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((format!("recurring-ical-events/{name}"), path));
        }
    }
    let mut out = Vec::new();
    for (name, path) in files {
        if SKIPPED.iter().any(|(skipped, _)| *skipped == name) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = String::from_utf8_lossy(&bytes);
        let parts = split_by_uid(&text);
        let several = parts.len() > 1;
        for (n, part) in parts.into_iter().enumerate() {
            let name = if several {
                format!("{name}~{n:03}")
            } else {
                name.clone()
            };
            out.push((name, part));
        }
    }
    out
}

/// One calendar per UID (a series with its overrides, as a CalDAV resource holds it): each keeps
/// everything outside the VEVENTs (calendar properties, VTIMEZONEs) and its own VEVENTs. A file
/// without a VEVENT yields nothing.
pub fn split_by_uid(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut outside: Vec<&str> = Vec::new();
    let mut first_event_at = None;
    let mut blocks: Vec<(String, Vec<&str>)> = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in lines {
        let bare = line.trim_end();
        if current.is_none() && bare.eq_ignore_ascii_case("BEGIN:VEVENT") {
            first_event_at.get_or_insert(outside.len());
            current = Some(vec![line]);
            continue;
        }
        if let Some(block) = current.as_mut() {
            block.push(line);
            if bare.eq_ignore_ascii_case("END:VEVENT") {
                let block = current.take().unwrap();
                let uid = uid_of(&block);
                match blocks.iter_mut().find(|(u, _)| *u == uid) {
                    Some((_, lines)) => lines.extend(block),
                    None => blocks.push((uid, block)),
                }
            }
            continue;
        }
        outside.push(line);
    }
    let at = first_event_at.unwrap_or(outside.len());
    blocks
        .into_iter()
        .map(|(_, block)| {
            let mut text = String::new();
            outside[..at].iter().for_each(|l| text.push_str(l));
            block.iter().for_each(|l| text.push_str(l));
            outside[at..].iter().for_each(|l| text.push_str(l));
            text
        })
        .collect()
}

fn starts_with_ignore_case(line: &str, prefix: &str) -> bool {
    line.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// A VEVENT's UID (unfolded), or "" without one.
fn uid_of(block: &[&str]) -> String {
    let mut uid: Option<String> = None;
    for line in block {
        match uid.as_mut() {
            Some(value) if line.starts_with([' ', '\t']) => value.push_str(line[1..].trim_end()),
            Some(_) => break,
            None => {
                if starts_with_ignore_case(line, "UID:") {
                    uid = Some(line[4..].trim_end().to_owned());
                }
            }
        }
    }
    uid.unwrap_or_default()
}

/// The window a resource is compared over: from January 1st of its first event's DTSTART year
/// for five years, and at least to the end of its last DTSTART's year. Real-world files span
/// 1996..2025; an endless daily rule stays well under calsync's per-query occurrence budget.
pub fn window(text: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let mut in_event = false;
    let mut years: Vec<i32> = Vec::new();
    for line in text.lines() {
        let bare = line.trim_end();
        if bare.eq_ignore_ascii_case("BEGIN:VEVENT") {
            in_event = true;
        } else if bare.eq_ignore_ascii_case("END:VEVENT") {
            in_event = false;
        } else if in_event && starts_with_ignore_case(bare, "DTSTART") {
            let value = bare.rsplit(':').next().unwrap_or_default();
            if let Some(year) = value.get(..4).and_then(|y| y.parse().ok()) {
                years.push(year);
            }
        }
    }
    let first = years.iter().copied().min().unwrap_or(2026);
    let last = years.iter().copied().max().unwrap_or(2026);
    let january = |year: i32| {
        NaiveDate::from_ymd_opt(year, 1, 1)
            .expect("a year")
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
    };
    (january(first), january((first + 5).max(last + 1)))
}

/// Runs the reference on `request` (`{start, end, resources, repeat?}`); returns its JSON answer
/// (`{occurrences: {name: [starts]}, seconds, count}`).
pub fn run_oracle(request: &serde_json::Value) -> std::io::Result<serde_json::Value> {
    use std::io::Write;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../recurrence-oracle/expand.py"
    );
    let mut oracle = std::process::Command::new(crate::peer::venv_tool("python"))
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    oracle
        .stdin
        .take()
        .expect("piped")
        .write_all(request.to_string().as_bytes())?;
    let output = oracle.wait_with_output()?;
    if !output.status.success() {
        return Err(std::io::Error::other("the recurrence oracle failed"));
    }
    serde_json::from_slice(&output.stdout).map_err(std::io::Error::other)
}
