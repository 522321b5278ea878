//! Time zones and timestamp formats shared by the Google and Graph event emulators.
//!
//! Google names zones with IANA ids; Outlook/Graph with Windows zone names ("Pacific Standard
//! Time") but accepts IANA ids too. Both are mapped to `chrono_tz::Tz` here.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Windows zone names and their CLDR "001" IANA zones (the common subset).
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("UTC", "Etc/UTC"),
    ("Coordinated Universal Time", "Etc/UTC"),
    ("tzone://Microsoft/Utc", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("India Standard Time", "Asia/Calcutta"),
    ("Nepal Standard Time", "Asia/Katmandu"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central Standard Time", "America/Chicago"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Eastern Standard Time", "America/New_York"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
];

/// A zone by IANA id or Windows name.
pub(crate) fn zone(name: &str) -> Option<Tz> {
    let name = name.trim();
    if let Some((_, iana)) = WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(name))
    {
        return iana.parse().ok();
    }
    name.parse().ok()
}

/// A local wall-clock time in `tz` as an instant: the earlier one when the clocks go back, the
/// time an hour later when it falls into a spring-forward gap.
pub(crate) fn to_utc(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => {
            let later = local + chrono::Duration::hours(1);
            match tz.from_local_datetime(&later) {
                LocalResult::Single(t) => t.with_timezone(&Utc),
                LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
                LocalResult::None => Utc.from_utc_datetime(&local),
            }
        }
    }
}

/// Midnight of `date` in `tz`.
pub(crate) fn midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    to_utc(date.and_hms_opt(0, 0, 0).unwrap_or_default(), tz)
}

/// Google's `updated` / `created`: RFC 3339 UTC with milliseconds, `2026-11-25T09:00:00.123Z`.
pub(crate) fn google_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Google's `start.dateTime`: RFC 3339 in `tz` with its offset (`Z` for a zero offset).
pub(crate) fn google_date_time(t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    let offset = local.format("%:z").to_string();
    let offset = if offset == "+00:00" {
        "Z".to_owned()
    } else {
        offset
    };
    format!("{}{offset}", local.format("%Y-%m-%dT%H:%M:%S"))
}

/// Graph's `Edm.DateTimeOffset`: UTC with seven fractional digits, `2026-11-25T09:00:00.1234567Z`.
pub(crate) fn graph_timestamp(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.nanosecond() / 100
    )
}

/// Graph's `dateTimeTimeZone.dateTime`: local wall-clock time, seven fractional digits, no offset.
pub(crate) fn graph_local(t: NaiveDateTime) -> String {
    format!(
        "{}.{:07}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.nanosecond() / 100
    )
}

/// Parses a Graph `dateTime` (`2026-11-25T09:00:00`, optional fraction; an offset or `Z` is
/// tolerated and dropped, as Graph reads the value as wall-clock time in `timeZone`).
pub(crate) fn parse_graph_local(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t);
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M") {
        return Some(t);
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.naive_local())
}

/// An RFC 3339 instant with a mandatory offset (Google's `timeMin`, `timeMax`, `updatedMin`).
pub(crate) fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Graph's `startDateTime` / `endDateTime`: ISO 8601, with an offset or read as UTC without one.
pub(crate) fn parse_graph_instant(s: &str) -> Option<DateTime<Utc>> {
    parse_rfc3339(s).or_else(|| parse_graph_local(s).map(|t| Utc.from_utc_datetime(&t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_iana_names() {
        assert_eq!(
            zone("Pacific Standard Time"),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(zone("Europe/Paris"), Some(chrono_tz::Europe::Paris));
        assert_eq!(zone("UTC"), Some(chrono_tz::Etc::UTC));
        assert!(zone("Mars/Olympus").is_none());
    }

    #[test]
    fn formats() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        assert_eq!(graph_timestamp(t), "2026-11-25T09:00:00.0000000Z");
        assert_eq!(google_timestamp(t), "2026-11-25T09:00:00.000Z");
        assert_eq!(
            google_date_time(t, chrono_tz::Europe::Paris),
            "2026-11-25T10:00:00+01:00"
        );
        assert_eq!(
            google_date_time(t, chrono_tz::Europe::London),
            "2026-11-25T09:00:00Z"
        );
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(
            to_utc(gap, chrono_tz::Europe::London),
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap()
        );
    }
}
