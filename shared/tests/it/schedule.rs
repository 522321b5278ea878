//! Conflicts, free/busy and availability across calendars of different providers.

use calsync::model::{Attendee, Connection, Event, Provider, ResponseStatus};
use calsync::store::Store;
use http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

async fn calendar(
    app: &calsync::app::App,
    user: &TestUser,
    provider: Provider,
    name: &str,
) -> Connection {
    let mut conn = Connection::new(&user.id, provider, name, name, "#336699", Store::now());
    conn.is_primary = provider == Provider::Google;
    app.store.put_connection(&conn).await.unwrap();
    conn
}

fn event(user: &TestUser, conn: &Connection, key: &str, start: &str, end: &str) -> Event {
    Event::new(
        &user.id,
        &conn.id,
        key,
        key,
        (t(start), t(end)),
        Store::now(),
    )
}

#[tokio::test]
async fn conflicts_free_busy_and_availability_span_google_and_icloud() {
    let app = app().await;
    let user = register(&app, "schedule").await;
    let google = calendar(&app, &user, Provider::Google, "Work").await;
    let icloud = calendar(&app, &user, Provider::Apple, "Family").await;
    let mut declined = event(
        &user,
        &google,
        "declined",
        "2026-03-02T09:00:00Z",
        "2026-03-02T10:00:00Z",
    );
    declined.attendees = vec![Attendee {
        email: user.email.clone(),
        name: None,
        response_status: Some(ResponseStatus::Declined),
        optional: false,
    }];
    let mut free = event(
        &user,
        &icloud,
        "shown-free",
        "2026-03-02T09:00:00Z",
        "2026-03-02T10:00:00Z",
    );
    free.transparent = true;
    let mut holiday = event(
        &user,
        &google,
        "holiday",
        "2026-03-02T00:00:00Z",
        "2026-03-03T00:00:00Z",
    );
    holiday.is_all_day = true;
    let mut school = event(
        &user,
        &icloud,
        "school-trip",
        "2026-03-02T00:00:00Z",
        "2026-03-04T00:00:00Z",
    );
    school.is_all_day = true;
    app.store
        .put_events(&[
            event(
                &user,
                &google,
                "standup",
                "2026-03-02T08:00:00Z",
                "2026-03-02T08:30:00Z",
            ),
            event(
                &user,
                &icloud,
                "dentist",
                "2026-03-02T08:15:00Z",
                "2026-03-02T09:00:00Z",
            ),
            event(
                &user,
                &google,
                "touching",
                "2026-03-02T09:00:00Z",
                "2026-03-02T09:30:00Z",
            ),
            event(
                &user,
                &google,
                "review",
                "2026-03-02T13:00:00Z",
                "2026-03-02T14:00:00Z",
            ),
            declined,
            free,
            holiday,
            school,
        ])
        .await
        .unwrap();
    let window = [
        ("start", "2026-03-02T00:00:00Z"),
        ("end", "2026-03-03T00:00:00Z"),
    ];

    let (status, body) = call(&app, query(get("/v1/conflicts", &user.token), &window)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let titles = |group: &serde_json::Value| -> Vec<String> {
        group["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let conflicts = body["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{body}");
    assert_eq!(
        titles(&conflicts[0]),
        ["standup", "dentist"],
        "across providers; touching, declined and free events do not clash"
    );
    assert_eq!(conflicts[0]["start"], "2026-03-02T08:00:00.000Z");
    assert_eq!(conflicts[0]["end"], "2026-03-02T09:00:00.000Z");
    assert_eq!(
        titles(&body["allDayConflicts"][0]),
        ["holiday", "school-trip"]
    );

    let timed_only = [
        ("start", "2026-03-02T06:00:00Z"),
        ("end", "2026-03-02T18:00:00Z"),
        ("calendarIds", google.id.as_str()),
    ];
    let (_, busy) = call(&app, query(get("/v1/freebusy", &user.token), &window)).await;
    let merged: Vec<(String, String)> = busy["busy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().to_owned(),
                b["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        merged,
        [(
            "2026-03-02T00:00:00.000Z".to_owned(),
            "2026-03-03T00:00:00.000Z".to_owned()
        )],
        "all-day events are busy"
    );
    let (_, google_only) = call(&app, query(get("/v1/freebusy", &user.token), &timed_only)).await;
    // Only the calendar asked for, with its own busy time clipped to the window: the all-day
    // holiday covers it whole, the iCloud school trip is not there.
    assert_eq!(
        google_only["calendars"],
        json!([{"calendarId": google.id, "busy": [
            {"start": "2026-03-02T06:00:00.000Z", "end": "2026-03-02T18:00:00.000Z"}]}]),
        "{google_only}"
    );

    // The all-day events are busy (not shown as free), so no slot is left that day.
    let (status, slots) = call(&app, send(Method::POST, "/v1/availability", &user.token, &json!({
        "start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z", "durationMinutes": 45,
        "bufferMinutes": 15, "timeZone": "Europe/Paris", "workingHoursStart": "09:00", "workingHoursEnd": "15:00",
        "calendarIds": [google.id, icloud.id]}))).await;
    assert_eq!(status, StatusCode::OK, "{slots}");
    let starts: Vec<&str> = slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    assert!(
        starts.is_empty(),
        "the all-day events block the whole day: {slots}"
    );

    for (body, code) in [
        (
            json!({"start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z", "durationMinutes": 0, "timeZone": "UTC",
                "workingHoursStart": "09:00", "workingHoursEnd": "17:00"}),
            "invalid_field",
        ),
        (
            json!({"start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z", "durationMinutes": 30, "timeZone": "Moon/Base",
                "workingHoursStart": "09:00", "workingHoursEnd": "17:00"}),
            "invalid_time_zone",
        ),
        (
            json!({"start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z", "durationMinutes": 30, "timeZone": "UTC",
                "workingHoursStart": "17:00", "workingHoursEnd": "09:00"}),
            "invalid_range",
        ),
        (
            json!({"start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z", "durationMinutes": 30, "timeZone": "UTC",
                "workingHoursStart": "09:00", "workingHoursEnd": "17:00", "workingDays": ["XX"]}),
            "invalid_field",
        ),
    ] {
        let (status, answer) = call(
            &app,
            send(Method::POST, "/v1/availability", &user.token, &body),
        )
        .await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
    }
}

#[tokio::test]
async fn availability_finds_slots_between_busy_events_in_working_hours() {
    let app = app().await;
    let user = register(&app, "slots").await;
    let work = calendar(&app, &user, Provider::Microsoft, "Work").await;
    let family = calendar(&app, &user, Provider::Apple, "Family").await;
    app.store
        .put_events(&[
            event(
                &user,
                &work,
                "sync",
                "2026-03-03T09:00:00Z",
                "2026-03-03T10:00:00Z",
            ),
            event(
                &user,
                &family,
                "pickup",
                "2026-03-03T11:30:00Z",
                "2026-03-03T12:00:00Z",
            ),
        ])
        .await
        .unwrap();
    let (status, slots) = call(
        &app,
        send(
            Method::POST,
            "/v1/availability",
            &user.token,
            &json!({
        "start": "2026-03-03T00:00:00Z", "end": "2026-03-04T00:00:00Z", "durationMinutes": 60,
        "bufferMinutes": 0, "stepMinutes": 30, "timeZone": "Europe/Paris",
        "workingHoursStart": "09:00", "workingHoursEnd": "14:00"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{slots}");
    let found: Vec<(&str, &str)> = slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["start"].as_str().unwrap(), s["end"].as_str().unwrap()))
        .collect();
    // Working 08:00-13:00 UTC; busy 09:00-10:00 and 11:30-12:00; touching a busy event is fine.
    assert_eq!(
        found,
        [
            ("2026-03-03T08:00:00.000Z", "2026-03-03T09:00:00.000Z"),
            ("2026-03-03T10:00:00.000Z", "2026-03-03T11:00:00.000Z"),
            ("2026-03-03T10:30:00.000Z", "2026-03-03T11:30:00.000Z"),
            ("2026-03-03T12:00:00.000Z", "2026-03-03T13:00:00.000Z"),
        ]
    );
}
