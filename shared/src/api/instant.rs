//! How the API writes an instant: RFC 3339 in UTC with `Z`, always to the millisecond
//! (`2026-12-03T18:10:25.000Z`), as Google's and Microsoft's APIs do. One type for every instant
//! the API returns, so no field can choose another form (issue 11, decisions 46).

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Serialize, Serializer};

use crate::time::EventTime;

/// The pattern every instant the API returns matches.
pub const PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Instant {
    fn from(value: DateTime<Utc>) -> Self {
        Self(value)
    }
}

impl Instant {
    pub fn text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

impl JsonSchema for Instant {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Instant".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "pattern": PATTERN,
            "description": "An instant: RFC 3339 in UTC with Z, to the millisecond."
        })
    }
}

/// The start or end of an event as the API returns it: `{"date"}` for all-day events; for timed
/// events the instant, and beside it, where the event has a zone, the wall-clock time there and
/// the zone's IANA name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTimeView {
    /// All-day events: `YYYY-MM-DD`. The end date is exclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Timed events: the instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_time: Option<Instant>,
    /// Timed events with a zone: the wall-clock time in it, `YYYY-MM-DDTHH:MM:SS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_date_time: Option<String>,
    /// The event's IANA zone, for example `America/New_York`, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl EventTimeView {
    pub fn of(time: EventTime, zone: Option<Tz>) -> Self {
        match time {
            EventTime::Date(d) => Self {
                date: Some(d.format("%Y-%m-%d").to_string()),
                date_time: None,
                local_date_time: None,
                time_zone: None,
            },
            EventTime::Instant(t) => Self {
                date: None,
                date_time: Some(Instant(t)),
                local_date_time: zone.map(|z| {
                    t.with_timezone(&z)
                        .naive_local()
                        .format("%Y-%m-%dT%H:%M:%S")
                        .to_string()
                }),
                time_zone: zone.map(|z| z.name().to_owned()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn instants_are_utc_z_to_the_millisecond() {
        let t = Utc.timestamp_opt(1_764_785_425, 123_456_789).unwrap();
        assert_eq!(Instant(t).text(), "2025-12-03T18:10:25.123Z");
        let whole = Utc.timestamp_opt(1_764_785_425, 0).unwrap();
        assert_eq!(
            serde_json::to_value(Instant(whole)).unwrap(),
            "2025-12-03T18:10:25.000Z"
        );
    }

    #[test]
    fn a_zoned_time_gives_the_instant_and_the_wall_clock_beside_it() {
        let t = Utc.with_ymd_and_hms(2026, 7, 6, 13, 0, 0).unwrap();
        let zone: Tz = "America/New_York".parse().unwrap();
        let view =
            serde_json::to_value(EventTimeView::of(EventTime::Instant(t), Some(zone))).unwrap();
        assert_eq!(
            view,
            serde_json::json!({"dateTime": "2026-07-06T13:00:00.000Z",
                "localDateTime": "2026-07-06T09:00:00", "timeZone": "America/New_York"})
        );
        let bare = serde_json::to_value(EventTimeView::of(EventTime::Instant(t), None)).unwrap();
        assert_eq!(
            bare,
            serde_json::json!({"dateTime": "2026-07-06T13:00:00.000Z"})
        );
    }
}
