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
    let starts: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["start"]["dateTime"].as_str().unwrap())
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
    assert_eq!(occurrence["originalStartTime"], "2026-03-09T13:00:00Z");

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
    assert_eq!(one["start"]["dateTime"], "2026-03-09T09:00:00-04:00");

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
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "occurrence_not_editable")
    );
    let (status, body) = call(
        &app,
        calsync::api::ApiRequest::new(Method::DELETE, &format!("/v1/events/{id}"))
            .with_bearer(&user.token),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "occurrence_not_editable")
    );

    let path = format!("/v1/events/{}/instances", series["id"].as_str().unwrap());
    let (status, instances) = call(
        &app,
        query(
            get(&path, &user.token),
            &[("start", "2026-03-01"), ("end", "2026-03-10")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{instances}");
    assert_eq!(instances["events"].as_array().unwrap().len(), 2);
    let (status, body) = call(
        &app,
        query(
            get(&format!("/v1/events/{id}/instances"), &user.token),
            &[("start", "2026-03-01"), ("end", "2026-03-10")],
        ),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "not_recurring")
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
