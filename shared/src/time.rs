//! Time rules: instants are stored in UTC with the event's IANA zone beside them; all-day events are
//! dates (end exclusive), not midnights; query ranges are half-open `[start, end)`.

use chrono::{
    DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, SubsecRound as _, TimeZone, Utc,
};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The longest range one query may ask for.
pub const MAX_QUERY_RANGE_DAYS: i64 = 366;
/// The longest single (non-recurring) event we accept through the API.
pub const MAX_EVENT_DAYS: i64 = 366;
/// Years outside this window are almost certainly typos and would only bloat indexes.
const MIN_YEAR: i32 = 1900;
const MAX_YEAR: i32 = 2200;

/// The sortable UTC form used in keys: fixed width, so string order is time order.
pub fn key_format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn parse_zone(name: &str) -> Result<Tz, ApiError> {
    name.parse::<Tz>().map_err(|_| {
        ApiError::bad_request(
            "invalid_time_zone",
            format!("unknown time zone {name:?}; use an IANA name such as \"Europe/Paris\""),
        )
    })
}

fn check_year(year: i32, field: &str) -> Result<(), ApiError> {
    if (MIN_YEAR..=MAX_YEAR).contains(&year) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_time",
            format!("{field}: year {year} is outside {MIN_YEAR}..={MAX_YEAR}"),
        ))
    }
}

/// The start or end of an event as the API shows it (Google's shape): `{"date": ...}` for all-day
/// events, `{"dateTime": ..., "timeZone": ...}` otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTimeDto {
    /// All-day events: a calendar date, `YYYY-MM-DD`. The end date is exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Timed events: RFC 3339 with an offset, or a local time when `timeZone` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    /// IANA zone name, for example `America/New_York`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The wall-clock time in `timeZone`, as the API returns it beside `dateTime`. Sent back with
    /// `dateTime` it is ignored; alone (with `timeZone`) it is the local time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_date_time: Option<String>,
}

/// A validated event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventTime {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

impl EventTime {
    /// Validates a DTO; returns the time and the zone it named, if any.
    pub fn parse(dto: &EventTimeDto, field: &str) -> Result<(Self, Option<Tz>), ApiError> {
        let zone = dto.time_zone.as_deref().map(parse_zone).transpose()?;
        let date_time = match (&dto.date_time, &dto.local_date_time) {
            (Some(instant), _) => Some(instant),
            (None, Some(local)) if zone.is_some() => Some(local),
            (None, Some(_)) => {
                return Err(ApiError::bad_request(
                    "invalid_time",
                    format!("{field}.localDateTime needs {field}.timeZone"),
                ))
            }
            (None, None) => None,
        };
        match (&dto.date, date_time) {
            (Some(date), None) => {
                let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                    ApiError::bad_request(
                        "invalid_time",
                        format!("{field}.date {date:?} is not a YYYY-MM-DD date"),
                    )
                })?;
                check_year(chrono::Datelike::year(&d), field)?;
                Ok((Self::Date(d), zone))
            }
            (None, Some(text)) => {
                let instant =
                    parse_instant(text, zone, &format!("{field}.dateTime"))?.trunc_subsecs(0);
                check_year(chrono::Datelike::year(&instant), field)?;
                Ok((Self::Instant(instant), zone))
            }
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "invalid_time",
                format!("{field}: give either date or dateTime, not both"),
            )),
            (None, None) => Err(ApiError::bad_request(
                "invalid_time",
                format!("{field}: date or dateTime is required"),
            )),
        }
    }

    /// The instant this time stands for: all-day dates begin at midnight in `zone` (UTC if none).
    pub fn to_instant(self, zone: Option<Tz>) -> DateTime<Utc> {
        match self {
            Self::Instant(t) => t,
            Self::Date(d) => midnight(d, zone),
        }
    }

    pub fn to_dto(self, zone: Option<Tz>) -> EventTimeDto {
        match self {
            Self::Date(d) => EventTimeDto {
                date: Some(d.format("%Y-%m-%d").to_string()),
                ..Default::default()
            },
            Self::Instant(t) => EventTimeDto {
                date_time: Some(match zone {
                    Some(z) => t
                        .with_timezone(&z)
                        .to_rfc3339_opts(SecondsFormat::Secs, false),
                    None => key_format(t),
                }),
                time_zone: Some(zone.map_or("UTC".to_owned(), |z| z.name().to_owned())),
                ..Default::default()
            },
        }
    }
}

fn midnight(d: NaiveDate, zone: Option<Tz>) -> DateTime<Utc> {
    let local = d.and_hms_opt(0, 0, 0).expect("midnight exists");
    match zone {
        None => Utc.from_utc_datetime(&local),
        // Some zones skip midnight on DST days; the earliest valid instant of the day is then used.
        Some(z) => z
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                z.from_local_datetime(&(local + Duration::hours(1)))
                    .earliest()
            })
            .map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc)),
    }
}

/// RFC 3339 with an offset, or a local date-time read in `zone`.
fn parse_instant(text: &str, zone: Option<Tz>, field: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let invalid = || {
        ApiError::bad_request(
            "invalid_time",
            format!("{field} {text:?} is not an RFC 3339 date-time such as 2026-11-25T09:00:00Z"),
        )
    };
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .map_err(|_| invalid())?;
    let zone = zone.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_time",
            format!("{field} {text:?} has no offset; add one or give timeZone"),
        )
    })?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_time",
                format!(
                    "{field} {text:?} does not exist in {} (a DST gap)",
                    zone.name()
                ),
            )
        })
}

/// A validated half-open query range `[start, end)` no longer than [`MAX_QUERY_RANGE_DAYS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl TimeRange {
    /// Parses query parameters: RFC 3339 instants, or dates meaning midnight UTC.
    pub fn parse(start: Option<&str>, end: Option<&str>) -> Result<Self, ApiError> {
        let field = |name: &str, value: Option<&str>| -> Result<DateTime<Utc>, ApiError> {
            let value = value.ok_or_else(|| {
                ApiError::bad_request(
                    "missing_parameter",
                    format!("query parameter {name} is required"),
                )
            })?;
            let t = DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    NaiveDate::parse_from_str(value, "%Y-%m-%d").map(|d| midnight(d, None))
                })
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_time",
                        format!(
                            "{name}={value:?} is not an RFC 3339 date-time or a YYYY-MM-DD date"
                        ),
                    )
                })?;
            check_year(chrono::Datelike::year(&t), name)?;
            Ok(t)
        };
        Self::new(field("start", start)?, field("end", end)?)
    }

    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, ApiError> {
        if end <= start {
            return Err(ApiError::bad_request(
                "invalid_range",
                "end must be after start",
            ));
        }
        if end - start > Duration::days(MAX_QUERY_RANGE_DAYS) {
            return Err(ApiError::bad_request(
                "range_too_large",
                format!("the range may span at most {MAX_QUERY_RANGE_DAYS} days"),
            ));
        }
        Ok(Self { start, end })
    }

    /// Overlap with an event `[start, end)`. A zero-length event counts when its instant is inside.
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        if start == end {
            return self.start <= start && start < self.end;
        }
        start < self.end && end > self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn overlap_is_half_open() {
        let r = TimeRange::new(t("2026-01-01T10:00:00Z"), t("2026-01-01T12:00:00Z")).unwrap();
        assert!(r.overlaps(t("2026-01-01T09:00:00Z"), t("2026-01-01T11:00:00Z")));
        assert!(!r.overlaps(t("2026-01-01T09:00:00Z"), t("2026-01-01T10:00:00Z")));
        assert!(!r.overlaps(t("2026-01-01T12:00:00Z"), t("2026-01-01T13:00:00Z")));
        assert!(r.overlaps(t("2026-01-01T10:00:00Z"), t("2026-01-01T10:00:00Z")));
        assert!(r.overlaps(t("2025-12-01T00:00:00Z"), t("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn ranges_are_validated() {
        assert_eq!(
            TimeRange::parse(Some("2026-01-02"), Some("2026-01-01"))
                .unwrap_err()
                .code,
            "invalid_range"
        );
        assert_eq!(
            TimeRange::parse(Some("2026-01-01"), Some("2028-01-01"))
                .unwrap_err()
                .code,
            "range_too_large"
        );
        assert_eq!(
            TimeRange::parse(Some("yesterday"), Some("2026-01-01"))
                .unwrap_err()
                .code,
            "invalid_time"
        );
        assert_eq!(
            TimeRange::parse(None, Some("2026-01-01")).unwrap_err().code,
            "missing_parameter"
        );
    }

    #[test]
    fn local_times_follow_the_zone_across_dst() {
        let dto = |dt: &str| EventTimeDto {
            date_time: Some(dt.into()),
            time_zone: Some("America/New_York".into()),
            ..Default::default()
        };
        let (winter, _) = EventTime::parse(&dto("2026-01-15T09:00:00"), "start").unwrap();
        let (summer, _) = EventTime::parse(&dto("2026-07-15T09:00:00"), "start").unwrap();
        assert_eq!(winter, EventTime::Instant(t("2026-01-15T14:00:00Z")));
        assert_eq!(summer, EventTime::Instant(t("2026-07-15T13:00:00Z")));
        let gap = EventTime::parse(&dto("2026-03-08T02:30:00"), "start").unwrap_err();
        assert!(gap.message.contains("DST gap"), "{}", gap.message);
        let bad = EventTime::parse(
            &EventTimeDto {
                time_zone: Some("Mars/Olympus".into()),
                ..dto("2026-01-15T09:00:00")
            },
            "start",
        )
        .unwrap_err();
        assert_eq!(bad.code, "invalid_time_zone");
    }
}

/// Serde for instants stored in [`key_format`], so stored strings compare in time order.
pub mod key_serde {
    use chrono::{DateTime, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::key_format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(D::Error::custom)
    }
}

/// [`key_serde`] for optional instants.
pub mod key_serde_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::key_serde::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::key_serde")] DateTime<Utc>);
        Option::<Wrapped>::deserialize(d).map(|w| w.map(|Wrapped(t)| t))
    }
}
