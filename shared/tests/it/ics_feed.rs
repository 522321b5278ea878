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
            None,
            ApiRequest::new(Method::GET, &format!("/v1/feeds/{token}/calendar.ics")),
        )
    };
    let response = read().await;
    assert_eq!(response.status, StatusCode::OK);
    let (content_type, text) = response.raw.clone().unwrap();
    assert!(content_type.starts_with("text/calendar"));
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
