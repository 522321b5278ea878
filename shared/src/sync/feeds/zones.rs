//! Zone names to IANA zones: IANA names; Windows time-zone names (Microsoft Graph's
//! `originalStartTimeZone`, Outlook's TZIDs), after CLDR's windowsZones.xml (territory 001), the
//! common zones; "globally unique" TZIDs that end in an IANA name
//! (`/freeassociation.sourceforge.net/Tzfile/Europe/Berlin`, `/mozilla.org/20070129_1/...`).
//! And iCalendar VTIMEZONE components read by their own rules ([`Custom`]), for TZIDs that are
//! none of these (`MyTimezone`, `(UTC-03:00) Brasília`, `custom_America/New_York`).

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

const WINDOWS_TO_IANA: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("Coordinated Universal Time", "UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("India Standard Time", "Asia/Calcutta"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central Standard Time", "America/Chicago"),
    ("Eastern Standard Time", "America/New_York"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
];

/// An IANA zone for a zone name that is IANA, Windows, or a globally unique TZID ending in an
/// IANA name.
pub fn resolve(name: &str) -> Option<Tz> {
    let name = name.trim().trim_start_matches('/');
    iana(name)
        .or_else(|| {
            WINDOWS_TO_IANA
                .iter()
                .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
                .and_then(|(_, iana)| iana.parse().ok())
        })
        .or_else(|| {
            // A vendor prefix: the longest tail of '/'-separated parts that is an IANA name.
            let parts: Vec<&str> = name.split('/').collect();
            (1..parts.len()).find_map(|skip| iana(&parts[skip..].join("/")))
        })
}

/// An exact IANA name (the case of the name as written).
pub fn iana(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// One STANDARD or DAYLIGHT observance of a VTIMEZONE.
#[derive(Clone, Debug)]
struct Observance {
    /// DTSTART, local time before the onset (in `from`).
    start: NaiveDateTime,
    from: i32,
    to: i32,
    rule: Option<String>,
    dates: Vec<NaiveDateTime>,
}

/// A VTIMEZONE read by its own rules (RFC 5545 §3.6.5): its observances' onsets, expanded.
#[derive(Clone, Debug, Default)]
pub struct Custom {
    observances: Vec<Observance>,
    onsets: std::sync::OnceLock<Vec<(NaiveDateTime, i32)>>,
}

/// `+0100`, `-0530`, `+013000` in seconds east of UTC.
fn utc_offset(text: &str) -> Option<i32> {
    let text = text.trim();
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let number = |range: std::ops::Range<usize>| -> Option<i32> {
        digits.get(range).map_or(Some(0), |d| d.parse().ok())
    };
    if digits.len() < 4 {
        return None;
    }
    Some(sign * (number(0..2)? * 3600 + number(2..4)? * 60 + number(4..6)?))
}

fn local_time(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim().trim_end_matches('Z');
    NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y%m%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

impl Custom {
    /// Adds an observance from its properties (name, value): DTSTART, TZOFFSETFROM, TZOFFSETTO,
    /// RRULE, RDATE. One without DTSTART or TZOFFSETTO is ignored.
    pub fn add_observance<'a>(&mut self, properties: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let (mut start, mut from, mut to, mut rule, mut dates) = (None, None, None, None, vec![]);
        for (name, value) in properties {
            match name.to_ascii_uppercase().as_str() {
                "DTSTART" => start = local_time(value),
                "TZOFFSETFROM" => from = utc_offset(value),
                "TZOFFSETTO" => to = utc_offset(value),
                "RRULE" => rule = Some(value.trim().to_owned()),
                "RDATE" => dates.extend(value.split(',').filter_map(local_time)),
                _ => {}
            }
        }
        if let (Some(start), Some(to)) = (start, to) {
            self.observances.push(Observance {
                start,
                from: from.unwrap_or(to),
                to,
                rule,
                dates,
            });
            self.onsets = Default::default();
        }
    }

    /// The onsets (UTC, offset after) until 2100, in order; expanded once.
    fn onsets(&self) -> &[(NaiveDateTime, i32)] {
        self.onsets.get_or_init(|| {
            let until = chrono::NaiveDate::from_ymd_opt(2100, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("a date");
            self.expand(until)
        })
    }

    fn expand(&self, until: NaiveDateTime) -> Vec<(NaiveDateTime, i32)> {
        let mut onsets = Vec::new();
        for o in &self.observances {
            let utc = |local: NaiveDateTime| local - Duration::seconds(i64::from(o.from));
            onsets.push((utc(o.start), o.to));
            onsets.extend(o.dates.iter().map(|d| (utc(*d), o.to)));
            let Some(rule) = &o.rule else { continue };
            // Expanded on local times; UNTIL (UTC) becomes local time like DTSTART.
            let rule: String = rule
                .split(';')
                .map(|part| match part.split_once('=') {
                    Some((k, v)) if k.eq_ignore_ascii_case("UNTIL") && v.ends_with('Z') => {
                        local_time(v).map_or(part.to_owned(), |t| {
                            let local = t + Duration::seconds(i64::from(o.from));
                            format!("UNTIL={}", local.format("%Y%m%dT%H%M%SZ"))
                        })
                    }
                    _ => part.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(";");
            let start = rrule::Tz::UTC.from_utc_datetime(&o.start);
            let rule = crate::ical_rule::rule(&rule)
                .and_then(|r| r.validate(start).map_err(|e| e.to_string()));
            let Ok(rule) = rule else { continue };
            let set = rrule::RRuleSet::new(start).rrule(rule);
            let before = Utc.from_utc_datetime(&until).with_timezone(&rrule::Tz::UTC);
            for local in set.before(before).all(2000).dates {
                onsets.push((utc(local.naive_utc()), o.to));
            }
        }
        onsets.sort_by_key(|(at, _)| *at);
        onsets
    }

    /// The UTC offset (seconds east) in force at `at`, given the onsets.
    fn offset_in(onsets: &[(NaiveDateTime, i32)], first_from: i32, at: NaiveDateTime) -> i32 {
        onsets
            .iter()
            .take_while(|(onset, _)| *onset <= at)
            .last()
            .map_or(first_from, |(_, to)| *to)
    }

    fn first_from(&self) -> i32 {
        self.observances
            .iter()
            .min_by_key(|o| o.start)
            .map_or(0, |o| o.from)
    }

    /// The instant of a local time in this zone. A time in a gap or an overlap reads with the
    /// offset before the change, as Python's zoneinfo reads it (fold=0).
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut offset = self.first_from();
        for (onset, to) in self.onsets() {
            let at = |offset: i32| local - Duration::seconds(i64::from(offset));
            if at(offset) < *onset || at(*to) < *onset {
                break;
            }
            offset = *to;
        }
        Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(offset))))
    }

    /// An IANA zone that keeps the same offsets as this VTIMEZONE from `from` for ten years (at
    /// every onset and mid-January and mid-July of each year), preferring one named in `tzid`,
    /// then a fixed `Etc/` zone. None when no IANA zone follows these rules.
    pub fn iana_equivalent(&self, tzid: &str, from: NaiveDateTime) -> Option<Tz> {
        use chrono::Datelike;
        let start = from - Duration::days(370);
        let end = from + Duration::days(3660);
        let onsets = self.onsets();
        let first_from = self.first_from();
        let mut samples: Vec<NaiveDateTime> = Vec::new();
        for (onset, _) in onsets.iter().filter(|(o, _)| *o >= start && *o <= end) {
            samples.push(*onset - Duration::seconds(1));
            samples.push(*onset + Duration::seconds(1));
        }
        for year in start.year()..=end.year() {
            for month in [1, 7] {
                samples.extend(
                    chrono::NaiveDate::from_ymd_opt(year, month, 15)
                        .and_then(|d| d.and_hms_opt(12, 0, 0)),
                );
            }
        }
        let expected: Vec<i32> = samples
            .iter()
            .map(|at| Self::offset_in(onsets, first_from, *at))
            .collect();
        let agrees = |tz: &Tz| {
            samples.iter().zip(&expected).all(|(at, offset)| {
                tz.offset_from_utc_datetime(at).fix().local_minus_utc() == *offset
            })
        };
        let named = chrono_tz::TZ_VARIANTS
            .iter()
            .filter(|tz| tz.name().contains('/') && tzid.contains(tz.name()));
        let fixed = chrono_tz::TZ_VARIANTS
            .iter()
            .filter(|tz| tz.name().starts_with("Etc/"));
        named
            .chain(fixed)
            .chain(chrono_tz::TZ_VARIANTS.iter())
            .find(|tz| agrees(tz))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_and_iana_names_resolve() {
        assert_eq!(
            super::resolve("Pacific Standard Time").unwrap().name(),
            "America/Los_Angeles"
        );
        assert_eq!(
            super::resolve("Europe/Paris").unwrap().name(),
            "Europe/Paris"
        );
        assert!(super::resolve("Mars Standard Time").is_none());
        assert_eq!(
            super::resolve(
                "/freeassociation.sourceforge.net/Tzfile/America/Argentina/Buenos_Aires"
            )
            .unwrap()
            .name(),
            "America/Argentina/Buenos_Aires"
        );
    }
}
