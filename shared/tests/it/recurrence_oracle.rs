//! Our recurrence expansion agrees with `recurring-ical-events` (Python, the reference) on a
//! corpus of real-world recurring events: daily / weekly BYDAY / monthly BYSETPOS / yearly,
//! COUNT and UNTIL, all-day, DST edges in several zones, EXDATE / RDATE, moved and cancelled
//! instances; and the real-world test calendars of `icalendar` and `recurring-ical-events` (one
//! resource per file and UID), each over its own window (the years of its events). Each resource
//! goes through the same parser the CalDAV sync uses.

use std::collections::BTreeMap;

use calsync::time::{key_format, TimeRange};

#[test]
fn expansion_agrees_with_recurring_ical_events_on_the_corpus() {
    use calsync_devstack::recurrence_corpus::{resources, window};
    let resources: BTreeMap<String, String> = resources().into_iter().collect();
    assert!(
        resources.len() >= 300,
        "the corpus has {} resources (are the venv's recurring-ical-events test calendars there?)",
        resources.len()
    );
    let windows: BTreeMap<&String, TimeRange> = resources
        .iter()
        .map(|(name, text)| {
            let (start, end) = window(text);
            (name, TimeRange { start, end })
        })
        .collect();
    let request = serde_json::json!({
        "start": "2026-01-01T00:00:00Z", "end": "2033-01-01T00:00:00Z", "resources": resources,
        "windows": windows.iter().map(|(name, w)| {
            ((*name).clone(), [key_format(w.start), key_format(w.end)])
        }).collect::<BTreeMap<_, _>>(),
    });
    let output = calsync_devstack::recurrence_corpus::run_oracle(&request)
        .expect("python with recurring-ical-events (make venv)");
    let reference: BTreeMap<String, Vec<String>> =
        serde_json::from_value(output["occurrences"].clone()).unwrap();

    let mut disagreements = Vec::new();
    let mut occurrences = 0;
    for (name, text) in &resources {
        let ours: Vec<String> =
            match calsync::recurrence::expand_resource(name, text, windows[name]) {
                Ok(starts) => starts.into_iter().map(key_format).collect(),
                Err(e) => vec![format!("error: {e}")],
            };
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
        "recurrence agreement: {} resources, {occurrences} occurrences, all equal",
        resources.len()
    );
}
