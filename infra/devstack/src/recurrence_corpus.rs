//! A corpus of real-world recurring events (iCalendar resources) shared by the recurrence
//! agreement test and the benchmark, and the bridge to the Python reference
//! (`infra/recurrence-oracle/expand.py`, `recurring-ical-events`).

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

/// Every resource of the corpus: (name, iCalendar text).
pub fn resources() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = CORPUS
        .iter()
        .map(|(name, zone, start, duration, rule, extra)| {
            ((*name).to_owned(), ics(zone, start, duration, rule, extra))
        })
        .collect();
    all.extend(with_overrides());
    all
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
