//! The ICS feed: RFC 5545 text that the Python `icalendar` parser reads without errors and
//! Radicale accepts event by event; revocable.

use calsync::api::ApiRequest;
use calsync::model::{Attendee, Event};
use calsync::store::Store;
use calsync_devstack::peer;
use http::{Method, StatusCode};

use crate::support::*;

#[tokio::test]
async fn the_feed_is_valid_icalendar_that_parsers_and_radicale_accept_and_it_can_be_revoked() {
    let app = app().await;
    let user = register(&app, "feed").await;
    let cal = connect(&app, &user, "Work", true).await;
    let now = chrono::Utc::now();
    let day = |d: i64, h: u32| {
        let date = (now + chrono::Duration::days(d)).date_naive();
        chrono::TimeZone::from_utc_datetime(&chrono::Utc, &date.and_hms_opt(h, 0, 0).unwrap())
    };
    let mut timed = Event::new(
        &user.id,
        &cal.id,
        "timed",
        &format!("Planning, review; and a very long title {}", "x".repeat(80)),
        (day(3, 9), day(3, 10)),
        Store::now(),
    );
    timed.timezone = Some("Europe/Berlin".into());
    timed.description = Some("Line one\nLine two, with comma".into());
    timed.attendees = vec![Attendee {
        email: "ann@example.com".into(),
        name: Some("Ann \"A\" Lee".into()),
        response_status: None,
        optional: false,
    }];
    let mut all_day = Event::new(
        &user.id,
        &cal.id,
        "allday",
        "Offsite",
        (day(5, 0), day(6, 0)),
        Store::now(),
    );
    all_day.is_all_day = true;
    all_day.start_date = Some(day(5, 0).date_naive());
    all_day.end_date = Some(day(6, 0).date_naive());
    let mut series = Event::new(
        &user.id,
        &cal.id,
        "series",
        "Standup",
        (day(1, 8), day(1, 8) + chrono::Duration::minutes(15)),
        Store::now(),
    );
    series.timezone = Some("America/New_York".into());
    series.is_recurring = true;
    series.recurrence_rule = Some("RRULE:FREQ=DAILY;COUNT=5".into());
    let mut moved = Event::new(
        &user.id,
        &cal.id,
        "series_moved",
        "Standup (moved)",
        (day(2, 10), day(2, 10) + chrono::Duration::minutes(15)),
        Store::now(),
    );
    moved.timezone = Some("America/New_York".into());
    moved.parent_event_id = Some("series".into());
    moved.original_start_time = Some(day(2, 8));
    app.store
        .put_events(&[timed, all_day, series, moved])
        .await
        .unwrap();

    let (status, feed) = call(
        &app,
        ApiRequest::new(Method::POST, "/v1/feeds").with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{feed}");
    let url = feed["url"].as_str().unwrap();
    let token = url.rsplit('/').nth(1).unwrap();
    let read = || {
        app.handle(
            &calsync::api::service::ALL,
            ApiRequest::new(Method::GET, &format!("/v1/feeds/{token}/calendar.ics")),
        )
    };
    let response = read().await;
    assert_eq!(response.status, StatusCode::OK);
    let (content_type, text) = response.raw.clone().unwrap();
    assert!(content_type.starts_with("text/calendar"));
    // The time zones are the same from one request to the next (they carried the current
    // minute and second once); only DTSTAMP may change.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = read().await.raw.unwrap().1;
    let without_stamps = |t: &str| {
        t.split("\r\n")
            .filter(|l| !l.starts_with("DTSTAMP:"))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    assert_eq!(
        without_stamps(&text),
        without_stamps(&again),
        "the feed is stable"
    );
    let mut in_zone = false;
    for l in text.split("\r\n") {
        in_zone = (in_zone || l == "BEGIN:VTIMEZONE") && l != "END:VTIMEZONE";
        if in_zone && l.starts_with("DTSTART:") {
            assert!(
                l.ends_with("00"),
                "an observance starts on a whole minute: {l}"
            );
        }
    }
    assert!(text.ends_with("END:VCALENDAR\r\n"));
    for physical in text.split("\r\n") {
        assert!(
            physical.len() <= 75,
            "unfolded line of {} octets: {physical}",
            physical.len()
        );
        assert!(!physical.contains('\n'), "bare LF");
    }
    for expected in [
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin",
        "TZID:America/New_York",
        "RRULE:FREQ=DAILY;COUNT=5",
        "RECURRENCE-ID;TZID=America/New_York:",
        "DTSTART;VALUE=DATE:",
        "Planning\\, review\\; and",
    ] {
        assert!(text.contains(expected), "missing {expected:?}");
    }

    // The Python icalendar parser reads it, strictly.
    let script = "import sys, icalendar\ncal = icalendar.Calendar.from_ical(sys.stdin.read())\nevents = [c for c in cal.walk('VEVENT')]\nassert len(events) == 4, len(events)\nfor e in events:\n    e.decoded('DTSTART'); e.decoded('DTEND')\nprint('ok', len(events), len(list(cal.walk('VTIMEZONE'))))\n";
    let mut python = std::process::Command::new(peer::venv_tool("python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success(), "icalendar refused the feed");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok 4 2");

    // Mozilla's ical.js (as calendar clients use it) reads it too.
    let checker = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/ical-check/check.mjs");
    let mut node = std::process::Command::new("node")
        .arg(checker)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    node.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = node.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "ical.js refused the feed (make test runs npm ci)"
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok 4 2");

    // Radicale accepts every event of it (one resource per UID, with the time zones).
    let radicale = peer::radicale(&[("feed", "feed-pw")]).unwrap();
    let http = reqwest::Client::new();
    let collection = format!("{}/feed/cal/", radicale.base_url);
    let made = http
        .request(Method::from_bytes(b"MKCALENDAR").unwrap(), &collection)
        .basic_auth("feed", Some("feed-pw"))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success());
    let body = text.split("BEGIN:VEVENT").next().unwrap().to_owned();
    let timezones: String = body
        .split("BEGIN:VTIMEZONE")
        .skip(1)
        .map(|t| {
            format!(
                "BEGIN:VTIMEZONE{}",
                t.split("END:VTIMEZONE").next().unwrap()
            ) + "END:VTIMEZONE\r\n"
        })
        .collect();
    let mut by_uid: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for chunk in text.split("BEGIN:VEVENT").skip(1) {
        let event = format!(
            "BEGIN:VEVENT{}END:VEVENT\r\n",
            chunk.split("END:VEVENT").next().unwrap()
        );
        let uid = event
            .lines()
            .find_map(|l| l.strip_prefix("UID:"))
            .unwrap()
            .trim()
            .to_owned();
        by_uid.entry(uid).or_default().push_str(&event);
    }
    assert_eq!(by_uid.len(), 3, "the series and its exception share a UID");
    for (i, events) in by_uid.values().enumerate() {
        let resource = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//feed check//EN\r\n{timezones}{events}END:VCALENDAR\r\n");
        let put = http
            .put(format!("{collection}e{i}.ics"))
            .basic_auth("feed", Some("feed-pw"))
            .header("content-type", "text/calendar")
            .body(resource)
            .send()
            .await
            .unwrap();
        assert!(
            put.status().is_success(),
            "Radicale refused event {i}: {}",
            put.status()
        );
    }

    // Revoked: the URL stops working; another user cannot revoke it.
    let id = feed["id"].as_str().unwrap();
    let other = register(&app, "feed-other").await;
    let (status, _) = call(
        &app,
        ApiRequest::new(Method::DELETE, &format!("/v1/feeds/{id}")).with_bearer(&other.token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        ApiRequest::new(Method::DELETE, &format!("/v1/feeds/{id}")).with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(read().await.status, StatusCode::NOT_FOUND);
}

/// The feed says what `/v1/events` says: the whole recurrence corpus (synthetic and real-world
/// calendars, moved and cancelled occurrences included) is stored, and over each resource's
/// window the occurrences an independent reader (`recurring-ical-events`) finds in the feed equal
/// those the occurrence stream lists, resource by resource. Resources sharing a window share a
/// user, so each feed holds just them.
#[tokio::test]
async fn the_feed_and_the_occurrence_stream_agree_on_the_recurrence_corpus() {
    use calsync_devstack::recurrence_corpus::{resources, window, SKIPPED};
    use std::collections::{BTreeMap, HashSet};

    let app = app().await;
    let skipped: HashSet<&str> = SKIPPED.iter().map(|(name, _)| *name).collect();
    // Resources (index, name, text) by window (start, end in epoch seconds).
    type Group = Vec<(usize, String, String)>;
    let mut groups: BTreeMap<(i64, i64), Group> = BTreeMap::new();
    for (n, (name, text)) in resources().into_iter().enumerate() {
        if !skipped.contains(name.as_str()) {
            let (start, end) = window(&text);
            groups
                .entry((start.timestamp(), end.timestamp()))
                .or_default()
                .push((n, name, text));
        }
    }
    let (mut compared, mut occurrences, mut disagreements) = (0, 0, Vec::new());
    for ((start, end), group) in groups {
        let range = calsync::time::TimeRange {
            start: chrono::DateTime::from_timestamp(start, 0).unwrap(),
            end: chrono::DateTime::from_timestamp(end, 0).unwrap(),
        };
        let outcome = compare_feed_and_stream(&app, range, &group).await;
        compared += outcome.0;
        occurrences += outcome.1;
        disagreements.extend(outcome.2);
    }
    assert!(compared >= 300, "only {compared} resources compared");
    assert!(
        disagreements.is_empty(),
        "{} of {compared} resources disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    println!("feed agreement: {compared} resources, {occurrences} occurrences, all equal");
}

/// Stores `resources` (index, name, text) for a new user and compares, over `range`, the
/// occurrence stream with what the reference reads in the feed: (resources compared,
/// occurrences, disagreements).
async fn compare_feed_and_stream(
    app: &calsync::app::App,
    range: calsync::time::TimeRange,
    resources: &[(usize, String, String)],
) -> (usize, usize, Vec<String>) {
    use calsync::store::{EventFilter, RangeQuery};
    use calsync::sync::Change;
    use calsync::time::key_format;
    use calsync_devstack::recurrence_corpus::run_oracle;
    use std::collections::{BTreeMap, HashSet};

    let user = register(app, "feed-corpus").await;
    let cal = connect(app, &user, "Corpus", true).await;
    // Each resource under its own href; what the sync would store, stored.
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    let mut stored = Vec::new();
    for (n, name, text) in resources {
        let href = format!("/corpus/{n}.ics");
        let changes = calsync::sync::feeds::parse_calendar_resource(&href, text);
        if changes
            .iter()
            .any(|c| matches!(c, Change::Malformed { .. }))
        {
            continue;
        }
        for change in changes {
            match change {
                Change::Upsert(mut event) => {
                    event.user_id = user.id.clone();
                    event.connection_id = cal.id.clone();
                    stored.push(*event);
                }
                Change::CancelInstance {
                    key,
                    parent,
                    original_start,
                } => {
                    let at = (original_start, original_start);
                    let mut gone = Event::new(&user.id, &cal.id, &key, "-", at, Store::now());
                    gone.parent_event_id = Some(parent);
                    gone.original_start_time = Some(original_start);
                    gone.deleted_at = Some(Store::now());
                    gone.cancels_instance = true;
                    stored.push(gone);
                }
                _ => {}
            }
        }
        names.insert(href, name);
    }
    app.store.put_events(&stored).await.unwrap();
    // An event's resource: the href its key starts with; the feed's UID names its series key.
    let resource_of = |e: &Event| e.event_key.split(['#', '@']).next().unwrap().to_owned();
    let resource_by_uid: BTreeMap<String, String> = stored
        .iter()
        .map(|e| {
            let series = e.parent_event_id.as_deref().unwrap_or(&e.event_key);
            let uid = format!(
                "{}-{}@calsync",
                cal.id,
                &calsync::ids::sha256_hex(series)[..24]
            );
            (uid, resource_of(e))
        })
        .collect();

    // The stream, page by page, by resource.
    let calendars: HashSet<String> = [cal.id.clone()].into();
    let mut ours: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .store
            .events_in_range(&RangeQuery {
                user_id: &user.id,
                range,
                connections: &calendars,
                filter: &EventFilter::default(),
                limit: 1000,
                after: after.as_deref(),
            })
            .await
            .unwrap();
        for e in &page.events {
            let start = match e.start_date.filter(|_| e.is_all_day) {
                Some(date) => format!("{date}T00:00:00Z"),
                None => key_format(e.start_time),
            };
            ours.entry(resource_of(e)).or_default().push(start);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    // The feed over the same window, read by the reference.
    let feed = calsync::api::render_feed(app, &user.id, "corpus", range)
        .await
        .unwrap();
    let request = serde_json::json!({
        "start": key_format(range.start), "end": key_format(range.end),
        "resources": {"feed": feed}, "by_uid": true,
    });
    let output = run_oracle(&request).expect("python with recurring-ical-events (make venv)");
    let by_uid: BTreeMap<String, Vec<String>> =
        serde_json::from_value(output["occurrences"]["feed"].clone()).unwrap();
    let mut theirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (uid, starts) in by_uid {
        let href = resource_by_uid.get(&uid).cloned().unwrap_or(uid);
        theirs.entry(href).or_default().extend(starts);
    }
    let (mut occurrences, mut disagreements) = (0, Vec::new());
    for (href, name) in &names {
        let mut mine = ours.remove(href).unwrap_or_default();
        let mut reference = theirs.remove(href).unwrap_or_default();
        mine.sort();
        reference.sort();
        occurrences += mine.len();
        if mine != reference {
            disagreements.push(format!(
                "{name}:\n  stream {mine:?}\n  feed   {reference:?}"
            ));
        }
    }
    (names.len(), occurrences, disagreements)
}

#[tokio::test]
async fn feeds_are_listed_without_their_urls_and_only_to_their_owner() {
    let app = app().await;
    let user = register(&app, "feeds-list").await;
    let other = register(&app, "feeds-other").await;
    let mut created = Vec::new();
    for _ in 0..2 {
        let (status, body) = call(
            &app,
            send(
                Method::POST,
                "/v1/feeds",
                &user.token,
                &serde_json::json!({}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        created.push(body);
    }
    let (status, listed) = call(&app, get("/v1/feeds", &user.token)).await;
    assert_eq!(status, StatusCode::OK);
    let mut ids: Vec<&str> = listed["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    // Oldest first; two made within one second come in id order.
    ids.sort_unstable();
    let mut expected = [
        created[0]["id"].as_str().unwrap(),
        created[1]["id"].as_str().unwrap(),
    ];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    for feed in &created {
        let url = feed["url"].as_str().unwrap();
        let token = url.rsplit('/').nth(1).unwrap();
        assert!(
            !listed.to_string().contains(token),
            "a token is listed: {listed}"
        );
    }
    let (_, theirs) = call(&app, get("/v1/feeds", &other.token)).await;
    assert_eq!(theirs["feeds"], serde_json::json!([]));
    // Revoked feeds leave the list.
    let path = format!("/v1/feeds/{}", ids[0]);
    let (status, _) = call(
        &app,
        ApiRequest::new(Method::DELETE, &path).with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = call(&app, get("/v1/feeds", &user.token)).await;
    assert_eq!(listed["feeds"].as_array().unwrap().len(), 1);
    assert_eq!(listed["feeds"][0]["id"], ids[1]);
}
