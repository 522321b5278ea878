//! Microsoft Graph's `patternedRecurrence` and RFC 5545 rules, both ways. Graph expresses a subset
//! of RRULE: one pattern (daily, weekly on some days, monthly or yearly on a day of the month or
//! the n-th / last weekday) and one range (an end date, a number of occurrences, or none). A rule
//! outside that subset is refused with the reason, before it is stored for a Microsoft calendar.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::{json, Value};

const DAYS: [(Weekday, &str, &str); 7] = [
    (Weekday::Mon, "MO", "monday"),
    (Weekday::Tue, "TU", "tuesday"),
    (Weekday::Wed, "WE", "wednesday"),
    (Weekday::Thu, "TH", "thursday"),
    (Weekday::Fri, "FR", "friday"),
    (Weekday::Sat, "SA", "saturday"),
    (Weekday::Sun, "SU", "sunday"),
];
const INDEXES: [(i32, &str); 5] = [
    (1, "first"),
    (2, "second"),
    (3, "third"),
    (4, "fourth"),
    (-1, "last"),
];

fn graph_day(ical: &str) -> Option<&'static str> {
    DAYS.iter().find(|(_, i, _)| *i == ical).map(|(_, _, g)| *g)
}

fn ical_day(graph: &str) -> Option<&'static str> {
    DAYS.iter()
        .find(|(_, _, g)| g.eq_ignore_ascii_case(graph))
        .map(|(_, i, _)| *i)
}

fn weekday_name(day: Weekday) -> &'static str {
    DAYS.iter()
        .find(|(d, _, _)| *d == day)
        .map_or("monday", |(_, _, g)| g)
}

/// A `BYDAY` entry: an optional ordinal and a weekday (`2TU`, `-1FR`, `MO`).
fn by_day(entry: &str) -> Result<(Option<i32>, &'static str), String> {
    let split = entry.len().saturating_sub(2);
    let (ordinal, day) = entry.split_at(split);
    let day = graph_day(day).ok_or_else(|| format!("BYDAY value {entry:?}"))?;
    let ordinal = match ordinal {
        "" => None,
        n => Some(
            n.trim_start_matches('+')
                .parse::<i32>()
                .map_err(|_| format!("BYDAY value {entry:?}"))?,
        ),
    };
    Ok((ordinal, day))
}

fn index_name(ordinal: i32) -> Result<&'static str, String> {
    INDEXES
        .iter()
        .find(|(n, _)| *n == ordinal)
        .map(|(_, name)| *name)
        .ok_or_else(|| {
            format!("the {ordinal}. weekday of a month (Graph has first to fourth and last)")
        })
}

/// The `patternedRecurrence` for a series starting at `start` in `zone` with these recurrence
/// lines, or why Graph cannot express them.
pub fn to_graph(lines: &str, start: DateTime<Utc>, zone: Option<Tz>) -> Result<Value, String> {
    let zone = zone.unwrap_or(Tz::UTC);
    let local = start.with_timezone(&zone);
    let mut rrule = None;
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let upper = line.to_ascii_uppercase();
        if let Some(rule) = upper.strip_prefix("RRULE:") {
            if rrule.replace(rule.to_owned()).is_some() {
                return Err("Microsoft calendars take one RRULE".into());
            }
        } else {
            return Err(format!(
                "Microsoft calendars take an RRULE only, not {:?}; cancel or move single occurrences after creating the series",
                line.split([':', ';']).next().unwrap_or(line)
            ));
        }
    }
    let rule = rrule.ok_or("a Microsoft series needs an RRULE")?;
    let (mut freq, mut interval, mut count, mut until) = (None, 1u32, None, None);
    let (mut days, mut month_days, mut months, mut set_pos, mut wkst) =
        (Vec::new(), Vec::new(), Vec::new(), None, None);
    for part in rule.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("RRULE part {part:?}"))?;
        match key {
            "FREQ" => freq = Some(value.to_owned()),
            "INTERVAL" => interval = value.parse().map_err(|_| format!("INTERVAL={value}"))?,
            "COUNT" => count = Some(value.parse::<u32>().map_err(|_| format!("COUNT={value}"))?),
            "UNTIL" => until = Some(value.to_owned()),
            "BYDAY" => days = value.split(',').map(by_day).collect::<Result<_, _>>()?,
            "BYMONTHDAY" => month_days = value.split(',').map(str::to_owned).collect(),
            "BYMONTH" => months = value.split(',').map(str::to_owned).collect(),
            "BYSETPOS" => {
                set_pos = Some(
                    value
                        .parse::<i32>()
                        .map_err(|_| format!("BYSETPOS={value}"))?,
                )
            }
            "WKST" => wkst = graph_day(value),
            other => {
                return Err(format!(
                    "Microsoft calendars cannot express {other} in a rule"
                ))
            }
        }
    }
    let day_of_month = |list: &[String]| -> Result<u32, String> {
        match list {
            [] => Ok(local.day()),
            [one] => one
                .parse()
                .ok()
                .filter(|d| (1..=31).contains(d))
                .ok_or_else(|| format!("BYMONTHDAY={one} (Graph takes one day, 1 to 31)")),
            _ => Err("Microsoft calendars take one day of the month".into()),
        }
    };
    let month = |list: &[String]| -> Result<u32, String> {
        match list {
            [] => Ok(local.month()),
            [one] => one
                .parse()
                .ok()
                .filter(|m| (1..=12).contains(m))
                .ok_or_else(|| format!("BYMONTH={one}")),
            _ => Err("Microsoft calendars take one month a year".into()),
        }
    };
    // The n-th weekday: BYDAY=2TU, or BYDAY=TU;BYSETPOS=2.
    let relative = || -> Result<Option<Value>, String> {
        let ordinals: Vec<Option<i32>> = days.iter().map(|(o, _)| *o).collect();
        let ordinal = match (set_pos, ordinals.as_slice()) {
            (Some(pos), _) if ordinals.iter().all(Option::is_none) && !days.is_empty() => pos,
            (None, [Some(n)]) => *n,
            (None, _) if ordinals.iter().all(Option::is_none) => return Ok(None),
            _ => return Err("Microsoft calendars take one ordinal weekday (BYDAY=2TU)".into()),
        };
        let names: Vec<&str> = days.iter().map(|(_, d)| *d).collect();
        Ok(Some(
            json!({ "index": index_name(ordinal)?, "daysOfWeek": names }),
        ))
    };
    let interval = interval.max(1);
    let mut pattern = match freq.as_deref() {
        Some("DAILY") if days.is_empty() && month_days.is_empty() && months.is_empty() => {
            json!({ "type": "daily", "interval": interval })
        }
        Some("WEEKLY") if month_days.is_empty() && months.is_empty() && set_pos.is_none() => {
            if days.iter().any(|(o, _)| o.is_some()) {
                return Err("a weekly rule's BYDAY takes no ordinal".into());
            }
            let names: Vec<&str> = if days.is_empty() {
                vec![weekday_name(local.weekday())]
            } else {
                days.iter().map(|(_, d)| *d).collect()
            };
            json!({ "type": "weekly", "interval": interval, "daysOfWeek": names,
                    "firstDayOfWeek": wkst.unwrap_or("monday") })
        }
        Some("MONTHLY") if months.is_empty() => match relative()? {
            Some(mut rel) if month_days.is_empty() => {
                rel["type"] = json!("relativeMonthly");
                rel["interval"] = json!(interval);
                rel
            }
            None => {
                json!({ "type": "absoluteMonthly", "interval": interval, "dayOfMonth": day_of_month(&month_days)? })
            }
            Some(_) => return Err("BYMONTHDAY with BYDAY".into()),
        },
        Some("YEARLY") => match relative()? {
            Some(mut rel) if month_days.is_empty() => {
                rel["type"] = json!("relativeYearly");
                rel["interval"] = json!(interval);
                rel["month"] = json!(month(&months)?);
                rel
            }
            None => json!({ "type": "absoluteYearly", "interval": interval,
                            "dayOfMonth": day_of_month(&month_days)?, "month": month(&months)? }),
            Some(_) => return Err("BYMONTHDAY with BYDAY".into()),
        },
        Some(f) => {
            return Err(format!(
                "Microsoft calendars cannot express this FREQ={f} rule"
            ))
        }
        None => return Err("an RRULE needs FREQ".into()),
    };
    if pattern.get("firstDayOfWeek").is_none() && pattern["type"] == "weekly" {
        pattern["firstDayOfWeek"] = json!("monday");
    }
    let start_date = local.date_naive().format("%Y-%m-%d").to_string();
    let range = match (count, until) {
        (Some(_), Some(_)) => return Err("COUNT and UNTIL together".into()),
        (Some(n), None) => {
            json!({ "type": "numbered", "startDate": start_date, "numberOfOccurrences": n })
        }
        (None, Some(until)) => {
            // Graph ends on a date: the date of the last start the UNTIL allows.
            let limit = until_instant(&until, zone).ok_or_else(|| format!("UNTIL={until}"))?;
            let rule = crate::recurrence::Rule::parse(start, Some(zone), None, lines)?;
            let from = start.max(limit - chrono::Duration::days(3660));
            let end = rule
                .starts_from(from)
                .take_while(|t| *t <= limit)
                .last()
                .unwrap_or(start)
                .with_timezone(&zone)
                .date_naive();
            json!({ "type": "endDate", "startDate": start_date, "endDate": end.format("%Y-%m-%d").to_string() })
        }
        (None, None) => json!({ "type": "noEnd", "startDate": start_date }),
    };
    let mut range = range;
    range["recurrenceTimeZone"] = json!(zone.name());
    Ok(json!({ "pattern": pattern, "range": range }))
}

/// The instant an `UNTIL` stands for: UTC with `Z`, else local time in the series' zone; a DATE
/// allows that whole day.
fn until_instant(until: &str, zone: Tz) -> Option<DateTime<Utc>> {
    let local = match until.len() {
        8 => NaiveDate::parse_from_str(until, "%Y%m%d")
            .ok()?
            .and_hms_opt(23, 59, 59)?,
        _ => chrono::NaiveDateTime::parse_from_str(until.trim_end_matches('Z'), "%Y%m%dT%H%M%S")
            .ok()?,
    };
    if until.ends_with('Z') {
        Some(local.and_utc())
    } else {
        zone.from_local_datetime(&local)
            .latest()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// The RRULE line for a Graph `patternedRecurrence` of a series in `zone`; `None` if it is not
/// one we can read.
pub fn from_graph(recurrence: &Value, zone: Option<Tz>) -> Option<String> {
    let pattern = recurrence.get("pattern")?;
    let range = recurrence.get("range")?;
    let interval = pattern
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    let days = || -> Option<String> {
        let days: Vec<&str> = pattern
            .get("daysOfWeek")?
            .as_array()?
            .iter()
            .filter_map(|d| ical_day(d.as_str()?))
            .collect();
        (!days.is_empty()).then(|| days.join(","))
    };
    let ordinal = || -> Option<i32> {
        let name = pattern
            .get("index")
            .and_then(Value::as_str)
            .unwrap_or("first");
        INDEXES.iter().find(|(_, n)| *n == name).map(|(i, _)| *i)
    };
    let number = |key: &str| pattern.get(key).and_then(Value::as_u64);
    let mut rule = match pattern.get("type")?.as_str()? {
        "daily" => format!("FREQ=DAILY;INTERVAL={interval}"),
        "weekly" => {
            let wkst = pattern
                .get("firstDayOfWeek")
                .and_then(Value::as_str)
                .and_then(ical_day)
                .unwrap_or("SU");
            format!(
                "FREQ=WEEKLY;INTERVAL={interval};BYDAY={};WKST={wkst}",
                days()?
            )
        }
        "absoluteMonthly" => format!(
            "FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY={}",
            number("dayOfMonth")?
        ),
        "relativeMonthly" => format!(
            "FREQ=MONTHLY;INTERVAL={interval};BYDAY={};BYSETPOS={}",
            days()?,
            ordinal()?
        ),
        "absoluteYearly" => format!(
            "FREQ=YEARLY;INTERVAL={interval};BYMONTH={};BYMONTHDAY={}",
            number("month")?,
            number("dayOfMonth")?
        ),
        "relativeYearly" => format!(
            "FREQ=YEARLY;INTERVAL={interval};BYMONTH={};BYDAY={};BYSETPOS={}",
            number("month")?,
            days()?,
            ordinal()?
        ),
        _ => return None,
    };
    match range.get("type")?.as_str()? {
        "numbered" => rule.push_str(&format!(
            ";COUNT={}",
            range.get("numberOfOccurrences")?.as_u64()?
        )),
        "endDate" => {
            let end =
                NaiveDate::parse_from_str(range.get("endDate")?.as_str()?, "%Y-%m-%d").ok()?;
            // Inclusive end date: anything starting that day, in the series' own zone.
            let last = end.and_hms_opt(23, 59, 59)?;
            let last = zone
                .unwrap_or(Tz::UTC)
                .from_local_datetime(&last)
                .latest()?;
            rule.push_str(&format!(
                ";UNTIL={}",
                last.with_timezone(&Utc).format("%Y%m%dT%H%M%SZ")
            ));
        }
        _ => {}
    }
    Some(format!("RRULE:{rule}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_graph_can_express_go_there_and_back() {
        let start = Utc.with_ymd_and_hms(2027, 1, 4, 8, 0, 0).unwrap();
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        for (lines, kind) in [
            ("RRULE:FREQ=WEEKLY;COUNT=8", "weekly"),
            (
                "RRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20270301T000000Z",
                "daily",
            ),
            ("RRULE:FREQ=MONTHLY;BYDAY=-1FR", "relativeMonthly"),
            (
                "RRULE:FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2;COUNT=4",
                "relativeMonthly",
            ),
            (
                "RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=15",
                "absoluteYearly",
            ),
        ] {
            let graph = to_graph(lines, start, Some(zone)).unwrap();
            assert_eq!(graph["pattern"]["type"], kind, "{lines}: {graph}");
            let back = from_graph(&graph, Some(zone)).unwrap();
            // Same occurrences both ways, over two years.
            let starts = |l: &str| {
                let rule = crate::recurrence::Rule::parse(start, Some(zone), None, l).unwrap();
                rule.starts_between(start, start + chrono::Duration::days(730))
                    .0
            };
            assert_eq!(starts(lines), starts(&back), "{lines} -> {graph} -> {back}");
        }
        // Graph ends on the date of the last start UNTIL allows (1 March 09:00 is after it).
        assert_eq!(
            to_graph(
                "RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20270301T000000Z",
                start,
                Some(zone)
            )
            .unwrap()["range"]["endDate"],
            "2027-02-15"
        );
    }

    #[test]
    fn what_graph_cannot_say_is_refused_with_the_reason() {
        let start = Utc.with_ymd_and_hms(2027, 1, 4, 8, 0, 0).unwrap();
        for (lines, says) in [
            ("RRULE:FREQ=DAILY;BYHOUR=9,17", "BYHOUR"),
            ("RRULE:FREQ=WEEKLY\nEXDATE:20270111T080000Z", "EXDATE"),
            ("RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15", "one day of the month"),
            ("RRULE:FREQ=MONTHLY;BYDAY=3FR,1MO", "one ordinal"),
        ] {
            let err = to_graph(lines, start, None).unwrap_err();
            assert!(err.contains(says), "{lines}: {err}");
        }
    }
}
