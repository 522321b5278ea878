//! Recurring events: range queries expand series in the event's own zone, skip cancelled and
//! moved occurrences, and a bad rule written through the API is a 400.

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_weekly_series_stays_at_nine_new_york_time_across_dst() {
    let app = app().await;
    let user = register(&app, "series").await;
    let cal = connect(&app, &user, "Cal", true).await;
    let (status, series) = call(&app, send(Method::POST, "/v1/events", &user.token, &json!({
        "calendarId": cal.id, "title": "Standup",
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-03-02T09:15:00", "timeZone": "America/New_York"},
        "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4", "EXDATE;TZID=America/New_York:20260316T090000"]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{series}");
    assert_eq!(series["isRecurring"], true);

    let (_, listed) = call(
        &app,
        query(
            get("/v1/events", &user.token),
            &[("start", "2026-03-01"), ("end", "2026-04-01")],
        ),
    )
    .await;
    let starts: Vec<String> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| zoned(&e["start"]))
        .collect();
    assert_eq!(
        starts,
        [
            "2026-03-02T09:00:00-05:00",
            "2026-03-09T09:00:00-04:00",
            "2026-03-23T09:00:00-04:00"
        ],
        "{listed}"
    );
    let occurrence = &listed["events"][1];
    assert_eq!(occurrence["recurringEventId"], series["id"]);
    assert_eq!(occurrence["originalStartTime"], "2026-03-09T13:00:00.000Z");

    // A later range sees only what overlaps it; an occurrence can be read by its id.
    let (_, later) = call(
        &app,
        query(
            get("/v1/events", &user.token),
            &[("start", "2026-03-20"), ("end", "2026-03-30")],
        ),
    )
    .await;
    assert_eq!(later["events"].as_array().unwrap().len(), 1);
    let id = occurrence["id"].as_str().unwrap();
    let (status, one) = call(&app, get(&format!("/v1/events/{id}"), &user.token)).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(zoned(&one["start"]), "2026-03-09T09:00:00-04:00");

    // One occurrence changed on its own becomes an override of the series; its id keeps
    // answering, and /instances takes it as well as the series' id.
    let (status, body) = call(
        &app,
        send(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            &user.token,
            &json!({"title": "x"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["recurringEventId"], series["id"]);
    let instances = |of: String| {
        let app = &app;
        let token = user.token.clone();
        async move {
            let (status, listed) = call(
                app,
                query(
                    get(&format!("/v1/events/{of}/instances"), &token),
                    &[("start", "2026-03-01"), ("end", "2026-03-10")],
                ),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{listed}");
            listed["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let series_id = series["id"].as_str().unwrap().to_owned();
    assert_eq!(instances(series_id.clone()).await.len(), 2);
    assert!(instances(series_id.clone()).await.contains(&"x".to_owned()));
    assert_eq!(
        instances(id.to_owned()).await,
        instances(series_id.clone()).await
    );

    // Deleting it cancels that occurrence only.
    let (status, _) = call(
        &app,
        calsync::api::ApiRequest::new(Method::DELETE, &format!("/v1/events/{id}"))
            .with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(instances(series_id).await.len(), 1);
    let (status, body) = call(&app, get(&format!("/v1/events/{id}"), &user.token)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "occurrence_cancelled")
    );
}

#[tokio::test]
async fn invalid_rules_are_refused_with_a_reason() {
    let app = app().await;
    let user = register(&app, "badrule").await;
    let cal = connect(&app, &user, "Cal", true).await;
    for (rule, mention) in [
        (json!(["RRULE:FREQ=SOMETIMES"]), "invalid recurrence"),
        (json!(["RRULE:FREQ=MINUTELY"]), "more frequent than daily"),
        (json!(["SUMMARY:hello"]), "unsupported recurrence line"),
        (json!(["RRULE:FREQ=WEEKLY;BYDAY=XX"]), "invalid recurrence"),
        (json!([dense_rule()]), "86400 occurrences a day"),
        (
            json!(["RRULE:FREQ=DAILY;COUNT=100000"]),
            "COUNT may be at most",
        ),
    ] {
        let (status, body) = call(&app, send(Method::POST, "/v1/events", &user.token, &json!({
            "calendarId": cal.id, "title": "x", "recurrence": rule,
            "start": {"dateTime": "2026-03-02T09:00:00Z"}, "end": {"dateTime": "2026-03-02T10:00:00Z"}}))).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_recurrence"),
            "{rule}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(mention),
            "{body}"
        );
    }
    let (_, cals) = call(&app, get("/v1/calendars", &user.token)).await;
    assert_eq!(
        cals["calendars"][0]["eventCount"], 0,
        "nothing half-written"
    );
}

/// Every second of every day: the densest rule a provider can send.
fn dense_rule() -> String {
    let all = |n: u32| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    format!(
        "RRULE:FREQ=DAILY;BYHOUR={};BYMINUTE={};BYSECOND={}",
        all(24),
        all(60),
        all(60)
    )
}

/// The same rule, arriving by CalDAV sync (a shared calendar another client wrote), is kept
/// and counted, and every read route answers within the function's timeout with the series
/// capped and said so; another user's reads are unaffected meanwhile.
#[tokio::test]
async fn a_dense_rule_arriving_by_sync_is_kept_capped_and_slows_no_one() {
    use crate::sync_caldav::{ics, CalDavFixture};
    // template.yaml's Globals: the API functions' timeout.
    const FUNCTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    let fx = CalDavFixture::radicale("dense").await;
    let year_ago = (chrono::Utc::now() - chrono::Duration::days(365))
        .format("%Y%m%dT000000")
        .to_string();
    fx.put(
        "dense",
        &ics(
            "dense@test",
            "Every second",
            &year_ago,
            0,
            &format!("{}\r\n", dense_rule()),
        ),
    )
    .await;
    fx.put(
        "secondly",
        &ics(
            "secondly@test",
            "Secondly",
            &year_ago,
            0,
            "RRULE:FREQ=SECONDLY\r\n",
        ),
    )
    .await;
    let report = fx.sync().await;
    assert_eq!(report.malformed, 0, "{report:?}");
    assert_eq!(fx.event_count().await, 2, "kept");

    let other = register(&fx.app, "dense-neighbour").await;
    let other_cal = connect(&fx.app, &other, "Own", true).await;
    let today = chrono::Utc::now().date_naive();
    let (start, end) = (
        today.to_string(),
        (today + chrono::Duration::days(7)).to_string(),
    );
    create_event(
        &fx.app,
        &other,
        &other_cal.id,
        "Neighbour",
        &format!("{start}T09:00:00Z"),
        &format!("{start}T10:00:00Z"),
    )
    .await;

    let app = &fx.app;
    let token = fx.user.token.clone();
    let range = [("start", start.as_str()), ("end", end.as_str())];
    let timed = |req: calsync::api::ApiRequest| async move {
        let began = std::time::Instant::now();
        let (status, body) = call(app, req).await;
        (status, body, began.elapsed())
    };
    let (status, events, took) = timed(query(get("/v1/events", &token), &range)).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(took < FUNCTION_TIMEOUT, "/events took {took:?}");
    assert_eq!(
        events["events"].as_array().unwrap().len(),
        250,
        "a full page"
    );
    let series_id = events["events"][0]["recurringEventId"]
        .as_str()
        .unwrap()
        .to_owned();
    let occurrence_id = events["events"][0]["id"].as_str().unwrap().to_owned();

    // Every read route, while the neighbour reads its own week.
    let feed_url = {
        let (status, feed) = call(app, send(Method::POST, "/v1/feeds", &token, &json!({}))).await;
        assert_eq!(status, StatusCode::CREATED, "{feed}");
        let url = feed["url"].as_str().unwrap();
        url[url.find("/v1/").unwrap()..].to_owned()
    };
    let availability = json!({"start": format!("{start}T00:00:00Z"), "end": format!("{end}T00:00:00Z"),
        "durationMinutes": 30, "timeZone": "Europe/Paris",
        "workingHoursStart": "09:00", "workingHoursEnd": "17:00"});
    let routes = vec![
        ("events", query(get("/v1/events", &token), &range)),
        ("series", get(&format!("/v1/events/{series_id}"), &token)),
        (
            "occurrence",
            get(&format!("/v1/events/{occurrence_id}"), &token),
        ),
        (
            "instances",
            query(
                get(&format!("/v1/events/{series_id}/instances"), &token),
                &range,
            ),
        ),
        ("conflicts", query(get("/v1/conflicts", &token), &range)),
        ("freebusy", query(get("/v1/freebusy", &token), &range)),
        (
            "availability",
            send(Method::POST, "/v1/availability", &token, &availability),
        ),
        (
            "feed",
            calsync::api::ApiRequest::new(Method::GET, &feed_url),
        ),
    ];
    let neighbour = async {
        let mut slowest = std::time::Duration::ZERO;
        for _ in 0..5 {
            let began = std::time::Instant::now();
            let titles = titles_in_range(app, &other, &start, &end).await;
            slowest = slowest.max(began.elapsed());
            assert_eq!(titles, ["Neighbour"]);
        }
        slowest
    };
    let dense_reads =
        futures_util::future::join_all(routes.into_iter().map(|(name, req)| async move {
            let (status, body, took) = timed(req).await;
            (name, status, body, took)
        }));
    let (answers, neighbour_slowest) = tokio::join!(dense_reads, neighbour);
    for (name, status, body, took) in &answers {
        let text = body.to_string();
        assert_eq!(
            *status,
            StatusCode::OK,
            "{name}: {}",
            &text[..text.len().min(300)]
        );
        assert!(took < &FUNCTION_TIMEOUT, "{name} took {took:?}");
        if [
            "events",
            "instances",
            "conflicts",
            "freebusy",
            "availability",
        ]
        .contains(name)
        {
            let capped = body["cappedSeries"].as_array().map_or(0, Vec::len);
            let text = body.to_string();
            assert!(
                capped >= 1,
                "{name} must say the series was cut: {}",
                &text[..text.len().min(300)]
            );
        }
    }
    assert!(
        neighbour_slowest < FUNCTION_TIMEOUT,
        "{neighbour_slowest:?}"
    );
    println!(
        "dense rule: {}; neighbour's slowest read {neighbour_slowest:?}",
        answers
            .iter()
            .map(|(name, _, _, took)| format!("{name} {took:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
