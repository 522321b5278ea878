//! RFC 5545 recurrence lines (RRULE, RDATE, EXDATE) read into the `rrule` crate's typed values.
//!
//! The crate's own text parser pulls a regular-expression engine into every function that
//! expands recurrences (about 0.16 MB of a 3 MB package, decisions 57); the grammar is small
//! enough to read by hand. What it accepts and how it reads it follows the crate's parser, so a
//! rule means the same either way (a unit test compares the two).

use chrono::{DateTime, Month, NaiveDate, NaiveDateTime, TimeZone, Weekday};
use rrule::{Frequency, NWeekday, RRule, Tz, Unvalidated};

/// One recurrence line.
#[derive(Debug, PartialEq)]
pub enum Line {
    RRule(Box<RRule<Unvalidated>>),
    RDate(Vec<DateTime<Tz>>),
    ExDate(Vec<DateTime<Tz>>),
}

/// Reads one `RRULE:`, `RDATE[;params]:` or `EXDATE[;params]:` line.
pub fn line(line: &str) -> Result<Line, String> {
    let (head, value) = line
        .split_once(':')
        .ok_or_else(|| format!("{line:?} is not a NAME:VALUE line"))?;
    let (name, params) = head.split_once(';').unwrap_or((head, ""));
    match name.to_ascii_uppercase().as_str() {
        "RRULE" if params.is_empty() => rule(value).map(|r| Line::RRule(Box::new(r))),
        "RRULE" => Err(format!("RRULE takes no parameters, got {params:?}")),
        "RDATE" => dates(name, params, value).map(Line::RDate),
        "EXDATE" => dates(name, params, value).map(Line::ExDate),
        _ => Err(format!(
            "unsupported recurrence line {line:?}; use RRULE, RDATE or EXDATE"
        )),
    }
}

/// Reads an RRULE's value (`FREQ=WEEKLY;BYDAY=MO,WE;...`). UNTIL without `Z` is read as UTC.
pub fn rule(value: &str) -> Result<RRule<Unvalidated>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut freq = None;
    let mut parts = Vec::new();
    for part in value.split(';').filter(|p| !p.is_empty()) {
        let (key, val) = part
            .split_once('=')
            .ok_or_else(|| format!("rule part {part:?} is not KEY=VALUE"))?;
        let key = key.to_ascii_uppercase();
        let key = if key == "BYWEEKDAY" {
            "BYDAY".into()
        } else {
            key
        };
        if !seen.insert(key.clone()) {
            return Err(format!("{key} is given twice"));
        }
        if key == "FREQ" {
            freq = Some(frequency(val)?);
        } else {
            parts.push((key, val));
        }
    }
    let freq = freq.ok_or("the rule has no FREQ")?;
    parts
        .into_iter()
        .try_fold(RRule::new(freq), |rule, (key, val)| apply(rule, &key, val))
}

fn apply(rule: RRule<Unvalidated>, key: &str, val: &str) -> Result<RRule<Unvalidated>, String> {
    Ok(match key {
        "INTERVAL" => rule.interval(number(key, val)?),
        "COUNT" => rule.count(number(key, val)?),
        "UNTIL" => rule.until(date_time(val, None).map_err(|e| format!("UNTIL: {e}"))?),
        "WKST" => rule.week_start(weekday(val).ok_or_else(|| format!("WKST={val}"))?),
        "BYSETPOS" => rule.by_set_pos(list(key, val, |_: i32| true)?),
        "BYMONTH" => {
            let months: Vec<u8> = list(key, val, |m| (1..=12).contains(&m))?;
            let months: Vec<Month> = months
                .into_iter()
                .filter_map(|m| Month::try_from(m).ok())
                .collect();
            rule.by_month(&months)
        }
        "BYMONTHDAY" => rule.by_month_day(list(key, val, |d: i8| (-31..=31).contains(&d))?),
        "BYYEARDAY" => rule.by_year_day(list(key, val, |d: i16| (-366..=366).contains(&d))?),
        "BYWEEKNO" => rule.by_week_no(list(key, val, |w: i8| (-53..=53).contains(&w))?),
        "BYDAY" => rule.by_weekday(
            val.split(',')
                .map(|day| nth_weekday(day).ok_or_else(|| format!("BYDAY value {day:?}")))
                .collect::<Result<_, _>>()?,
        ),
        "BYHOUR" => rule.by_hour(list(key, val, |h: u8| h < 24)?),
        "BYMINUTE" => rule.by_minute(list(key, val, |m: u8| m < 60)?),
        "BYSECOND" => rule.by_second(list(key, val, |s: u8| s < 60)?),
        other => return Err(format!("unknown rule part {other}")),
    })
}

fn frequency(val: &str) -> Result<Frequency, String> {
    Ok(match val.to_ascii_uppercase().as_str() {
        "YEARLY" => Frequency::Yearly,
        "MONTHLY" => Frequency::Monthly,
        "WEEKLY" => Frequency::Weekly,
        "DAILY" => Frequency::Daily,
        "HOURLY" => Frequency::Hourly,
        "MINUTELY" => Frequency::Minutely,
        "SECONDLY" => Frequency::Secondly,
        _ => return Err(format!("FREQ={val} is not a frequency")),
    })
}

fn number<T: std::str::FromStr>(key: &str, val: &str) -> Result<T, String> {
    val.parse()
        .map_err(|_| format!("{key}={val} is not a number in range"))
}

/// A comma-separated list, each value within `accept`; sorted, without repeats.
fn list<T: std::str::FromStr + Ord + Copy>(
    key: &str,
    val: &str,
    accept: impl Fn(T) -> bool,
) -> Result<Vec<T>, String> {
    if val.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = val
        .split(',')
        .map(|v| match v.parse() {
            Ok(n) if accept(n) => Ok(n),
            _ => Err(format!("{key} value {v:?} is out of range")),
        })
        .collect::<Result<Vec<T>, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

/// `MO`, `2TU`, `-1FR`, `+3WE`.
fn nth_weekday(day: &str) -> Option<NWeekday> {
    let split = day.len().checked_sub(2)?;
    let (nth, code) = (day.get(..split)?, day.get(split..)?);
    let day = weekday(code)?;
    Some(match nth {
        "" => NWeekday::Every(day),
        nth => match nth.parse::<i16>().ok()? {
            0 => NWeekday::Every(day),
            n => NWeekday::Nth(n, day),
        },
    })
}

/// RDATE / EXDATE values: comma-separated dates or date-times, in the TZID parameter's zone when
/// it has one; VALUE=DATE and VALUE=PERIOD are read as date-times, as the crate does.
fn dates(name: &str, params: &str, value: &str) -> Result<Vec<DateTime<Tz>>, String> {
    let mut zone = None;
    for param in params.split(';').filter(|p| !p.is_empty()) {
        let (key, val) = param
            .split_once('=')
            .ok_or_else(|| format!("{name} parameter {param:?} is not KEY=VALUE"))?;
        match key.to_ascii_uppercase().as_str() {
            "TZID" => {
                let tz: chrono_tz::Tz = val
                    .parse()
                    .map_err(|_| format!("{name}: unknown time zone {val:?}"))?;
                zone = Some(Tz::Tz(tz));
            }
            "VALUE" => {}
            other => return Err(format!("{name}: unknown parameter {other}")),
        }
    }
    value
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| date_time(v, zone).map_err(|e| format!("{name}: {e}")))
        .collect()
}

/// `YYYYMMDD`, `YYYYMMDDTHHMMSS` or `...Z`: UTC with `Z`, else in `zone` (UTC without one).
fn date_time(text: &str, zone: Option<Tz>) -> Result<DateTime<Tz>, String> {
    let invalid = || format!("{text:?} is not a date or date-time");
    let (text_local, utc) = match text.strip_suffix('Z') {
        Some(rest) => (rest, true),
        None => (text, false),
    };
    let digits = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let part = text_local.get(range).ok_or_else(invalid)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().map_err(|_| invalid())
        } else {
            Err(invalid())
        }
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(0..4)?).map_err(|_| invalid())?,
        digits(4..6)?,
        digits(6..8)?,
    )
    .ok_or_else(invalid)?;
    let local: NaiveDateTime = match text_local.len() {
        8 if !utc => date.and_hms_opt(0, 0, 0).ok_or_else(invalid)?,
        15 if text_local.as_bytes()[8] == b'T' => date
            .and_hms_opt(digits(9..11)?, digits(11..13)?, digits(13..15)?)
            .ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    let zone = if utc {
        Tz::UTC
    } else {
        zone.unwrap_or(Tz::UTC)
    };
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) => Ok(at),
        chrono::LocalResult::Ambiguous(..) => Err(format!(
            "{text:?} happens twice in that time zone (the clocks go back)"
        )),
        chrono::LocalResult::None => Err(format!(
            "{text:?} does not happen in that time zone (the clocks go forward)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ours and the crate's parser read every rule the same (the crate's is linked in tests only).
    #[test]
    fn rules_read_as_the_rrule_crate_reads_them() {
        let start = "DTSTART;TZID=Europe/Paris:20260105T090000";
        let dt_start = Tz::Tz(chrono_tz::Europe::Paris)
            .with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
            .unwrap();
        for rule in [
            "FREQ=DAILY",
            "FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=30",
            "freq=weekly;byday=tu,th;interval=2;wkst=su",
            "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20271231T230000Z",
            "FREQ=MONTHLY;BYDAY=+2TU,3WE",
            "FREQ=MONTHLY;BYMONTHDAY=31,-1,15,15",
            "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
            "FREQ=YEARLY;BYMONTH=3,1;BYMONTHDAY=1",
            "FREQ=YEARLY;BYYEARDAY=1,100,-1",
            "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            "FREQ=DAILY;BYHOUR=9,17;BYMINUTE=0,30",
            "FREQ=HOURLY;INTERVAL=3;BYSECOND=0",
            "FREQ=DAILY;COUNT=5;",
        ] {
            let text = format!("{start}\nRRULE:{rule}");
            let theirs: rrule::RRuleSet = text.parse().expect(rule);
            let ours = super::rule(rule)
                .and_then(|r| r.validate(dt_start).map_err(|e| e.to_string()))
                .expect(rule);
            assert_eq!(theirs.get_rrule(), &vec![ours], "{rule}");
        }
    }

    /// Thousands of generated rules, valid and not, in any order and case: both readers accept
    /// the same ones and read them the same.
    #[test]
    fn generated_rules_read_as_the_crate_reads_them() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let pick = |next: &mut dyn FnMut(u64) -> u64, options: &[&str]| {
            options[next(options.len() as u64) as usize].to_owned()
        };
        let starts = [
            ("DTSTART:20260105T090000Z", Tz::UTC),
            (
                "DTSTART;TZID=America/New_York:20260105T090000",
                Tz::Tz(chrono_tz::America::New_York),
            ),
        ];
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..3000 {
            let mut parts: Vec<String> = Vec::new();
            if next(20) != 0 {
                let freq = [
                    "DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY", "weekly", "NEVER",
                ];
                parts.push(format!("FREQ={}", pick(&mut next, &freq)));
            }
            let list = |next: &mut dyn FnMut(u64) -> u64, key: &str, lo: i64, hi: i64| {
                let n = 1 + next(3);
                let values: Vec<String> = (0..n)
                    .map(|_| (lo + next((hi - lo + 1) as u64) as i64).to_string())
                    .collect();
                format!("{key}={}", values.join(","))
            };
            for _ in 0..next(4) {
                let part = match next(11) {
                    0 => format!("INTERVAL={}", next(4)),
                    1 => format!("COUNT={}", next(40) as i64 - 2),
                    2 => pick(
                        &mut next,
                        &[
                            "UNTIL=20261231T235959Z",
                            "UNTIL=20261231",
                            "UNTIL=2026",
                            "UNTIL=20260101T000000Z",
                        ],
                    ),
                    3 => {
                        let days = [
                            "MO", "TU", "we", "TH", "FR", "SA", "SU", "1MO", "-1FR", "+2TU", "0SU",
                            "6TH", "XX",
                        ];
                        let n = 1 + next(3);
                        let chosen: Vec<String> = (0..n).map(|_| pick(&mut next, &days)).collect();
                        format!("BYDAY={}", chosen.join(","))
                    }
                    4 => list(&mut next, "BYMONTHDAY", -32, 32),
                    5 => list(&mut next, "BYMONTH", 0, 13),
                    6 => list(&mut next, "BYHOUR", 0, 24),
                    7 => list(&mut next, "BYMINUTE", 0, 60),
                    8 => list(&mut next, "BYSETPOS", -3, 3),
                    9 => pick(&mut next, &["WKST=SU", "WKST=mo", "WKST=XX"]),
                    _ => list(&mut next, "BYYEARDAY", -367, 367),
                };
                parts.push(part);
            }
            // The one difference we mean: UNTIL without `Z` is read as UTC (`Rule::parse` writes
            // the `Z` first); the crate reads the machine's zone, then refuses it beside DTSTART.
            let floating_until = parts
                .iter()
                .any(|p| p.starts_with("UNTIL=") && !p.ends_with('Z'));
            let rule = parts.join(";");
            let (start, dt_start) = starts[next(2) as usize];
            let theirs = format!("{start}\nRRULE:{rule}").parse::<rrule::RRuleSet>();
            let ours = super::rule(&rule).and_then(|r| {
                r.validate(dt_start.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap())
                    .map_err(|e| e.to_string())
            });
            match (theirs, ours) {
                (Ok(theirs), Ok(ours)) => {
                    accepted += 1;
                    assert_eq!(theirs.get_rrule(), &vec![ours], "{rule}");
                }
                (Err(_), Err(_)) => refused += 1,
                (Err(_), Ok(_)) if floating_until => {}
                (theirs, ours) => panic!("{rule}: the crate {theirs:?}, ours {ours:?}"),
            }
        }
        eprintln!("{accepted} generated rules accepted, {refused} refused, by both readers");
        assert!(
            accepted > 300 && refused > 300,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn what_the_crate_refuses_is_refused_with_the_part_named() {
        for (rule, named) in [
            ("BYDAY=MO", "FREQ"),
            ("FREQ=FORTNIGHTLY", "FREQ"),
            ("FREQ=DAILY;INTERVAL=x", "INTERVAL"),
            ("FREQ=DAILY;COUNT=-3", "COUNT"),
            ("FREQ=DAILY;UNTIL=2026", "UNTIL"),
            ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY"),
            ("FREQ=YEARLY;BYMONTH=13", "BYMONTH"),
            ("FREQ=WEEKLY;BYDAY=XX", "BYDAY"),
            ("FREQ=DAILY;BYHOUR=24", "BYHOUR"),
            ("FREQ=DAILY;COUNT=1;COUNT=2", "COUNT"),
            ("FREQ=DAILY;COLOR=red", "COLOR"),
            ("FREQ=DAILY;WKST=XY", "WKST"),
        ] {
            let theirs =
                format!("DTSTART:20260105T090000Z\nRRULE:{rule}").parse::<rrule::RRuleSet>();
            assert!(theirs.is_err(), "the crate accepts {rule}");
            let err = super::rule(rule).expect_err(rule);
            assert!(err.contains(named), "{rule}: {err}");
        }
    }

    #[test]
    fn dates_read_in_their_zone() {
        let paris = Tz::Tz(chrono_tz::Europe::Paris);
        let Line::ExDate(dates) =
            line("EXDATE;TZID=Europe/Paris:20260106T090000,20260107T090000").unwrap()
        else {
            panic!("an EXDATE")
        };
        assert_eq!(
            dates,
            [
                paris.with_ymd_and_hms(2026, 1, 6, 9, 0, 0).unwrap(),
                paris.with_ymd_and_hms(2026, 1, 7, 9, 0, 0).unwrap()
            ]
        );
        let Line::RDate(dates) = line("RDATE:20260110T120000Z,20260111").unwrap() else {
            panic!("an RDATE")
        };
        assert_eq!(
            dates,
            [
                Tz::UTC.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap(),
                Tz::UTC.with_ymd_and_hms(2026, 1, 11, 0, 0, 0).unwrap()
            ]
        );
        for bad in [
            "EXDATE;TZID=Mars/Olympus:20260106T090000",
            "EXDATE:2026-01-06",
            "EXDATE:20260230",
            "EXDATE;TZID=Europe/Paris:20260329T023000",
            "RRULE;TZID=Europe/Paris:FREQ=DAILY",
            "DTSTART:20260106T090000Z",
            "no colon",
        ] {
            assert!(line(bad).is_err(), "{bad}");
        }
    }
}
