//! Recurrence rules: RFC 5545 `RRULE`s (Google) and Graph `patternedRecurrence`s, expanded into
//! occurrence start times.
//!
//! Supported: FREQ=DAILY/WEEKLY/MONTHLY/YEARLY with INTERVAL, COUNT, UNTIL, BYDAY (with ordinals
//! in monthly/yearly rules), BYMONTHDAY, BYMONTH and WKST; EXDATE. Not supported (rejected):
//! BYSETPOS, BYWEEKNO, BYYEARDAY, BYHOUR/BYMINUTE/BYSECOND and sub-daily frequencies; RDATE lines
//! are accepted and ignored.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::tz;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Until {
    /// Inclusive last date (all-day rules, Graph's `endDate`).
    Date(NaiveDate),
    /// Inclusive last start instant (`UNTIL=...Z`).
    Instant(DateTime<Utc>),
    /// Inclusive last start in the series' own time zone (`UNTIL` without `Z`).
    Local(NaiveDateTime),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    pub freq: Freq,
    pub interval: u32,
    pub count: Option<u32>,
    pub until: Option<Until>,
    /// (ordinal, weekday); ordinal 0 = every such weekday of the period.
    pub by_day: Vec<(i32, Weekday)>,
    pub by_month_day: Vec<i32>,
    pub by_month: Vec<u32>,
    pub wkst: Weekday,
}

/// Never expand more periods than this (a daily rule over ~270 years).
const MAX_PERIODS: i64 = 100_000;

fn weekday_ical(s: &str) -> Option<Weekday> {
    Some(match s {
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

fn weekday_graph(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// An iCalendar DATE or DATE-TIME value: `20261124`, `20261124T110000`, `20261124T110000Z`.
pub(crate) enum IcalTime {
    Date(NaiveDate),
    Local(NaiveDateTime),
    Utc(DateTime<Utc>),
}

pub(crate) fn parse_ical_time(s: &str) -> Option<IcalTime> {
    let s = s.trim();
    if let Some(utc) = s.strip_suffix('Z') {
        return NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
            .ok()
            .map(|t| IcalTime::Utc(t.and_utc()));
    }
    if s.contains('T') {
        return NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S")
            .ok()
            .map(IcalTime::Local);
    }
    NaiveDate::parse_from_str(s, "%Y%m%d")
        .ok()
        .map(IcalTime::Date)
}

/// Parses one `RRULE:` line (the `RRULE:` prefix is optional).
pub(crate) fn parse_rrule(line: &str) -> Result<Rule, String> {
    let body = line.trim();
    let body = body.strip_prefix("RRULE:").unwrap_or(body);
    let mut freq = None;
    let mut rule = Rule {
        freq: Freq::Daily,
        interval: 1,
        count: None,
        until: None,
        by_day: Vec::new(),
        by_month_day: Vec::new(),
        by_month: Vec::new(),
        wkst: Weekday::Mon,
    };
    for part in body.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("malformed rule part {part:?}"))?;
        match key.to_ascii_uppercase().as_str() {
            "FREQ" => {
                freq = Some(match value.to_ascii_uppercase().as_str() {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    "MONTHLY" => Freq::Monthly,
                    "YEARLY" => Freq::Yearly,
                    other => return Err(format!("unsupported FREQ {other}")),
                })
            }
            "INTERVAL" => {
                rule.interval = value
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("bad INTERVAL")?
            }
            "COUNT" => {
                rule.count = Some(value.parse().ok().filter(|&n| n >= 1).ok_or("bad COUNT")?)
            }
            "UNTIL" => {
                rule.until = Some(match parse_ical_time(value).ok_or("bad UNTIL")? {
                    IcalTime::Date(d) => Until::Date(d),
                    IcalTime::Local(t) => Until::Local(t),
                    IcalTime::Utc(t) => Until::Instant(t),
                })
            }
            "BYDAY" => {
                for item in value.split(',') {
                    let item = item.trim().to_ascii_uppercase();
                    if item.len() < 2 {
                        return Err(format!("bad BYDAY {item}"));
                    }
                    let (n, day) = item.split_at(item.len() - 2);
                    let day = weekday_ical(day).ok_or_else(|| format!("bad BYDAY {item}"))?;
                    let n = if n.is_empty() {
                        0
                    } else {
                        n.trim_start_matches('+')
                            .parse::<i32>()
                            .ok()
                            .filter(|n| *n != 0 && n.abs() <= 53)
                            .ok_or_else(|| format!("bad BYDAY {item}"))?
                    };
                    rule.by_day.push((n, day));
                }
            }
            "BYMONTHDAY" => {
                for item in value.split(',') {
                    rule.by_month_day.push(
                        item.trim()
                            .parse::<i32>()
                            .ok()
                            .filter(|n| *n != 0 && n.abs() <= 31)
                            .ok_or_else(|| format!("bad BYMONTHDAY {item}"))?,
                    );
                }
            }
            "BYMONTH" => {
                for item in value.split(',') {
                    rule.by_month.push(
                        item.trim()
                            .parse::<u32>()
                            .ok()
                            .filter(|n| (1..=12).contains(n))
                            .ok_or_else(|| format!("bad BYMONTH {item}"))?,
                    );
                }
            }
            "WKST" => {
                rule.wkst = weekday_ical(&value.to_ascii_uppercase()).ok_or("bad WKST")?;
            }
            other => return Err(format!("{other} is not supported by the emulator")),
        }
    }
    rule.freq = freq.ok_or("FREQ is required")?;
    if rule.count.is_some() && rule.until.is_some() {
        return Err("COUNT and UNTIL must not both be given".into());
    }
    Ok(rule)
}

/// A Google `recurrence` array: its one RRULE and its EXDATE values (as UTC instants, or dates for
/// all-day series). RDATE lines are ignored; EXRULE is refused.
pub(crate) struct GoogleRecurrence {
    pub rule: Rule,
    pub exdates: Vec<IcalTime>,
}

pub(crate) fn parse_google_recurrence(lines: &[Value]) -> Result<GoogleRecurrence, String> {
    let mut rule = None;
    let mut exdates = Vec::new();
    for line in lines {
        let line = line.as_str().ok_or("recurrence lines must be strings")?;
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("RRULE:") {
            if rule.is_some() {
                return Err("only one RRULE is supported".into());
            }
            rule = Some(parse_rrule(line)?);
        } else if upper.starts_with("EXDATE") {
            let (params, values) = line.split_once(':').ok_or("malformed EXDATE")?;
            let tzid = params
                .split(';')
                .find_map(|p| p.strip_prefix("TZID="))
                .and_then(tz::zone);
            for value in values.split(',') {
                let t = parse_ical_time(value).ok_or("malformed EXDATE value")?;
                exdates.push(match (t, tzid) {
                    (IcalTime::Local(l), Some(z)) => IcalTime::Utc(tz::to_utc(l, z)),
                    (t, _) => t,
                });
            }
        } else if upper.starts_with("RDATE") {
        } else {
            return Err(format!("unsupported recurrence line {line:?}"));
        }
    }
    Ok(GoogleRecurrence {
        rule: rule.ok_or("a recurrence needs an RRULE")?,
        exdates,
    })
}

/// A Graph `patternedRecurrence` as a rule plus its series start date.
pub(crate) fn parse_graph_recurrence(v: &Value) -> Result<(Rule, NaiveDate), String> {
    let pattern = v.get("pattern").ok_or("recurrence.pattern is required")?;
    let range = v.get("range").ok_or("recurrence.range is required")?;
    let interval = match pattern.get("interval") {
        None | Some(Value::Null) => 1,
        Some(n) => n
            .as_u64()
            .filter(|&n| n >= 1)
            .ok_or("pattern.interval must be a positive integer")? as u32,
    };
    let days = |required: bool| -> Result<Vec<Weekday>, String> {
        let list = pattern
            .get("daysOfWeek")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let days = list
            .iter()
            .map(|d| d.as_str().and_then(weekday_graph))
            .collect::<Option<Vec<_>>>()
            .ok_or("pattern.daysOfWeek has an unknown day")?;
        if required && days.is_empty() {
            return Err("pattern.daysOfWeek is required for this pattern type".into());
        }
        Ok(days)
    };
    let index = || -> Result<i32, String> {
        Ok(
            match pattern
                .get("index")
                .and_then(Value::as_str)
                .unwrap_or("first")
            {
                "first" => 1,
                "second" => 2,
                "third" => 3,
                "fourth" => 4,
                "last" => -1,
                other => return Err(format!("unknown pattern.index {other}")),
            },
        )
    };
    let day_of_month = || -> Result<i32, String> {
        pattern
            .get("dayOfMonth")
            .and_then(Value::as_i64)
            .filter(|n| (1..=31).contains(n))
            .map(|n| n as i32)
            .ok_or_else(|| "pattern.dayOfMonth must be 1..31".into())
    };
    let month = || -> Result<u32, String> {
        pattern
            .get("month")
            .and_then(Value::as_u64)
            .filter(|n| (1..=12).contains(n))
            .map(|n| n as u32)
            .ok_or_else(|| "pattern.month must be 1..12".into())
    };
    let wkst = pattern
        .get("firstDayOfWeek")
        .and_then(Value::as_str)
        .map(|d| weekday_graph(d).ok_or("unknown pattern.firstDayOfWeek"))
        .transpose()?
        .unwrap_or(Weekday::Sun);
    let mut rule = Rule {
        freq: Freq::Daily,
        interval,
        count: None,
        until: None,
        by_day: Vec::new(),
        by_month_day: Vec::new(),
        by_month: Vec::new(),
        wkst,
    };
    match pattern.get("type").and_then(Value::as_str).unwrap_or("") {
        "daily" => {}
        "weekly" => {
            rule.freq = Freq::Weekly;
            rule.by_day = days(true)?.into_iter().map(|d| (0, d)).collect();
        }
        "absoluteMonthly" => {
            rule.freq = Freq::Monthly;
            rule.by_month_day = vec![day_of_month()?];
        }
        "relativeMonthly" => {
            rule.freq = Freq::Monthly;
            let n = index()?;
            rule.by_day = days(true)?.into_iter().map(|d| (n, d)).collect();
        }
        "absoluteYearly" => {
            rule.freq = Freq::Yearly;
            rule.by_month = vec![month()?];
            rule.by_month_day = vec![day_of_month()?];
        }
        "relativeYearly" => {
            rule.freq = Freq::Yearly;
            rule.by_month = vec![month()?];
            let n = index()?;
            rule.by_day = days(true)?.into_iter().map(|d| (n, d)).collect();
        }
        other => return Err(format!("unknown pattern.type {other:?}")),
    }
    let date = |key: &str| -> Option<NaiveDate> {
        range
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    };
    let start = date("startDate").ok_or("range.startDate (YYYY-MM-DD) is required")?;
    match range.get("type").and_then(Value::as_str).unwrap_or("") {
        "noEnd" => {}
        "endDate" => {
            let end = date("endDate").ok_or("range.endDate is required for type endDate")?;
            if end < start {
                return Err("range.endDate is before range.startDate".into());
            }
            rule.until = Some(Until::Date(end));
        }
        "numbered" => {
            rule.count = Some(
                range
                    .get("numberOfOccurrences")
                    .and_then(Value::as_u64)
                    .filter(|&n| n >= 1)
                    .ok_or("range.numberOfOccurrences must be positive for type numbered")?
                    as u32,
            )
        }
        other => return Err(format!("unknown range.type {other:?}")),
    }
    Ok((rule, start))
}

/// The full Graph `patternedRecurrence` shape (every property present, Graph's defaults).
pub(crate) fn normalize_graph_recurrence(v: &Value, time_zone: &str) -> Value {
    let pattern = v.get("pattern").cloned().unwrap_or(Value::Null);
    let range = v.get("range").cloned().unwrap_or(Value::Null);
    let get =
        |o: &Value, k: &str, d: Value| o.get(k).filter(|x| !x.is_null()).cloned().unwrap_or(d);
    json!({
        "pattern": {
            "type": get(&pattern, "type", json!("daily")),
            "interval": get(&pattern, "interval", json!(1)),
            "month": get(&pattern, "month", json!(0)),
            "dayOfMonth": get(&pattern, "dayOfMonth", json!(0)),
            "daysOfWeek": get(&pattern, "daysOfWeek", json!([])),
            "firstDayOfWeek": get(&pattern, "firstDayOfWeek", json!("sunday")),
            "index": get(&pattern, "index", json!("first")),
        },
        "range": {
            "type": get(&range, "type", json!("noEnd")),
            "startDate": get(&range, "startDate", json!("0001-01-01")),
            "endDate": get(&range, "endDate", json!("0001-01-01")),
            "recurrenceTimeZone": get(&range, "recurrenceTimeZone", json!(time_zone)),
            "numberOfOccurrences": get(&range, "numberOfOccurrences", json!(0)),
        },
    })
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

fn month_dates(rule: &Rule, y: i32, m: u32, anchor: NaiveDate) -> Vec<NaiveDate> {
    let dim = days_in_month(y, m);
    let resolve = |md: i32| -> Option<u32> {
        let d = if md > 0 { md } else { dim as i32 + 1 + md };
        (d >= 1 && d <= dim as i32).then_some(d as u32)
    };
    let mut out: Vec<NaiveDate> = Vec::new();
    if !rule.by_day.is_empty() {
        for &(n, wd) in &rule.by_day {
            let all: Vec<NaiveDate> = (1..=dim)
                .filter_map(|d| NaiveDate::from_ymd_opt(y, m, d))
                .filter(|d| d.weekday() == wd)
                .collect();
            match n {
                0 => out.extend(all),
                n if n > 0 => out.extend(all.get(n as usize - 1)),
                n => out.extend(
                    all.len()
                        .checked_sub(n.unsigned_abs() as usize)
                        .and_then(|i| all.get(i)),
                ),
            }
        }
        if !rule.by_month_day.is_empty() {
            let days: Vec<u32> = rule
                .by_month_day
                .iter()
                .filter_map(|&md| resolve(md))
                .collect();
            out.retain(|d| days.contains(&d.day()));
        }
    } else if !rule.by_month_day.is_empty() {
        out.extend(
            rule.by_month_day
                .iter()
                .filter_map(|&md| resolve(md))
                .filter_map(|d| NaiveDate::from_ymd_opt(y, m, d)),
        );
    } else {
        out.extend(NaiveDate::from_ymd_opt(y, m, anchor.day()));
    }
    out
}

fn period_dates(rule: &Rule, k: i64, anchor: NaiveDate) -> Vec<NaiveDate> {
    let step = k * rule.interval as i64;
    let mut out = match rule.freq {
        Freq::Daily => {
            let d = anchor + Duration::days(step);
            let ok = (rule.by_day.is_empty() || rule.by_day.iter().any(|(_, w)| *w == d.weekday()))
                && (rule.by_month_day.is_empty()
                    || rule.by_month_day.iter().any(|&md| {
                        let dim = days_in_month(d.year(), d.month()) as i32;
                        (if md > 0 { md } else { dim + 1 + md }) == d.day() as i32
                    }));
            if ok {
                vec![d]
            } else {
                vec![]
            }
        }
        Freq::Weekly => {
            let back = (7 + anchor.weekday().num_days_from_monday() as i64
                - rule.wkst.num_days_from_monday() as i64)
                % 7;
            let week_start = anchor - Duration::days(back) + Duration::weeks(step);
            let days: Vec<Weekday> = if rule.by_day.is_empty() {
                vec![anchor.weekday()]
            } else {
                rule.by_day.iter().map(|(_, d)| *d).collect()
            };
            (0..7)
                .map(|i| week_start + Duration::days(i))
                .filter(|d| days.contains(&d.weekday()))
                .collect()
        }
        Freq::Monthly => {
            let months = anchor.year() as i64 * 12 + anchor.month0() as i64 + step;
            let (y, m) = (
                months.div_euclid(12) as i32,
                months.rem_euclid(12) as u32 + 1,
            );
            month_dates(rule, y, m, anchor)
        }
        Freq::Yearly => {
            let y = anchor.year() + step as i32;
            let months = if rule.by_month.is_empty() {
                vec![anchor.month()]
            } else {
                rule.by_month.clone()
            };
            months
                .into_iter()
                .flat_map(|m| month_dates(rule, y, m, anchor))
                .collect()
        }
    };
    if !rule.by_month.is_empty() && rule.freq != Freq::Yearly {
        out.retain(|d| rule.by_month.contains(&d.month()));
    }
    out.sort();
    out.dedup();
    out
}

/// Occurrence starts of `rule` anchored at `start` (local wall-clock time in `zone`), in order,
/// as (local start, instant), stopping after `COUNT`/`UNTIL`, or at the first start after
/// `horizon`.
pub(crate) fn expand(
    rule: &Rule,
    start: NaiveDateTime,
    zone: Tz,
    horizon: DateTime<Utc>,
) -> Vec<(NaiveDateTime, DateTime<Utc>)> {
    let mut out = Vec::new();
    let anchor = start.date();
    let mut emitted = 0u32;
    for k in 0..MAX_PERIODS {
        for d in period_dates(rule, k, anchor) {
            if d < anchor {
                continue;
            }
            let local = d.and_time(start.time());
            let instant = tz::to_utc(local, zone);
            let within = match &rule.until {
                None => true,
                Some(Until::Date(u)) => d <= *u,
                Some(Until::Instant(u)) => instant <= *u,
                Some(Until::Local(u)) => local <= *u,
            };
            if !within || instant > horizon {
                return out;
            }
            out.push((local, instant));
            emitted += 1;
            if rule.count.is_some_and(|c| emitted >= c) {
                return out;
            }
        }
    }
    out
}

/// Whether the series ends (COUNT or UNTIL).
pub(crate) fn is_bounded(rule: &Rule) -> bool {
    rule.count.is_some() || rule.until.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn local(y: i32, m: u32, d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    fn far() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()
    }

    /// The local dates of a rule's occurrences from `start` on.
    fn dates(rule: &Rule, start: NaiveDateTime, zone: Tz) -> Vec<String> {
        expand(rule, start, zone, far())
            .into_iter()
            .map(|(l, _)| l.date().to_string())
            .collect()
    }

    #[test]
    fn weekly_byday_count() {
        let rule = parse_rrule("RRULE:FREQ=WEEKLY;BYDAY=TU,TH;COUNT=5").unwrap();
        let got = dates(&rule, local(2026, 11, 3, 11), chrono_tz::Europe::London);
        assert_eq!(
            got,
            [
                "2026-11-03",
                "2026-11-05",
                "2026-11-10",
                "2026-11-12",
                "2026-11-17"
            ]
        );
    }

    #[test]
    fn monthly_last_friday_and_until() {
        let rule = parse_rrule("RRULE:FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20270301T000000Z").unwrap();
        let got = dates(&rule, local(2026, 11, 27, 9), chrono_tz::Etc::UTC);
        assert_eq!(
            got,
            ["2026-11-27", "2026-12-25", "2027-01-29", "2027-02-26"]
        );
    }

    #[test]
    fn graph_patterns() {
        let (rule, start) = parse_graph_recurrence(&json!({
            "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
            "range": {"type": "numbered", "startDate": "2026-11-02", "numberOfOccurrences": 3}
        }))
        .unwrap();
        let got = dates(
            &rule,
            start.and_hms_opt(9, 0, 0).unwrap(),
            chrono_tz::Etc::UTC,
        );
        assert_eq!(got, ["2026-11-02", "2026-11-16", "2026-11-30"]);
        let (rule, start) = parse_graph_recurrence(&json!({
            "pattern": {"type": "absoluteMonthly", "dayOfMonth": 31},
            "range": {"type": "endDate", "startDate": "2026-10-31", "endDate": "2027-03-31"}
        }))
        .unwrap();
        let got = dates(
            &rule,
            start.and_hms_opt(9, 0, 0).unwrap(),
            chrono_tz::Etc::UTC,
        );
        assert_eq!(
            got,
            ["2026-10-31", "2026-12-31", "2027-01-31", "2027-03-31"]
        );
    }

    #[test]
    fn dst_keeps_wall_clock_time() {
        let rule = parse_rrule("RRULE:FREQ=WEEKLY;COUNT=2").unwrap();
        let got = expand(
            &rule,
            local(2026, 10, 20, 9),
            chrono_tz::Europe::London,
            far(),
        );
        assert_eq!(
            got[0].1,
            Utc.with_ymd_and_hms(2026, 10, 20, 8, 0, 0).unwrap()
        );
        assert_eq!(
            got[1].1,
            Utc.with_ymd_and_hms(2026, 10, 27, 9, 0, 0).unwrap()
        );
    }
}
