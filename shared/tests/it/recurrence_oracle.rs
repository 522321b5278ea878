//! Our recurrence expansion agrees with `recurring-ical-events` (Python, the reference) on a
//! corpus of real-world recurring events: daily / weekly BYDAY / monthly BYSETPOS / yearly,
//! COUNT and UNTIL, all-day, DST edges in several zones, EXDATE / RDATE, moved and cancelled
//! instances. Each resource goes through the same parser the CalDAV sync uses.

use std::collections::BTreeMap;

use calsync::time::{key_format, TimeRange};
use chrono::DateTime;

#[test]
fn expansion_agrees_with_recurring_ical_events_on_the_corpus() {
    let window = TimeRange {
        start: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc(),
        end: DateTime::parse_from_rfc3339("2033-01-01T00:00:00Z")
            .unwrap()
            .to_utc(),
    };
    let resources: BTreeMap<String, String> = calsync_devstack::recurrence_corpus::resources()
        .into_iter()
        .collect();
    assert!(
        resources.len() >= 40,
        "the corpus has {} events",
        resources.len()
    );

    let request = serde_json::json!({
        "start": key_format(window.start), "end": key_format(window.end), "resources": resources,
    });
    let output = calsync_devstack::recurrence_corpus::run_oracle(&request)
        .expect("python with recurring-ical-events (make venv)");
    let reference: BTreeMap<String, Vec<String>> =
        serde_json::from_value(output["occurrences"].clone()).unwrap();

    let mut disagreements = Vec::new();
    let mut occurrences = 0;
    for (name, text) in &resources {
        let ours: Vec<String> = calsync::recurrence::expand_resource(name, text, window)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .into_iter()
            .map(key_format)
            .collect();
        occurrences += ours.len();
        if ours != reference[name] {
            disagreements.push(format!(
                "{name}:\n  calsync   {ours:?}\n  reference {:?}",
                reference[name]
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} events disagree:\n{}",
        disagreements.len(),
        resources.len(),
        disagreements.join("\n")
    );
    println!(
        "recurrence agreement: {} events, {occurrences} occurrences, all equal",
        resources.len()
    );
}
