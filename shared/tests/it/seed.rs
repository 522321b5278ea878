//! `make seed` is idempotent (issue 11, item 6): running it again changes no id, count or order,
//! and keeps what the user added in between.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::demo_seed::seed;
use crate::support::*;

/// (id, name, eventCount, createdAt) of each calendar, in the API's order.
async fn calendars(app: &calsync::app::App, token: &str) -> Vec<(String, String, i64, String)> {
    let (status, body) = call(app, get("/v1/calendars", token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["calendars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["name"].as_str().unwrap().to_owned(),
                c["eventCount"].as_i64().unwrap(),
                c["createdAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn event_ids(app: &calsync::app::App, token: &str, monday: chrono::NaiveDate) -> Vec<String> {
    let req = query(
        get("/v1/events", token),
        &[
            ("start", &monday.to_string()),
            ("end", &(monday + chrono::Duration::days(14)).to_string()),
        ],
    );
    let (status, body) = call(app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut ids: Vec<String> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn seeding_twice_changes_no_id_count_or_order_and_keeps_the_users_events() {
    let app = isolated_app("seed", &[]).await;
    let (seeded, monday) = seed(&app).await.unwrap();
    let (status, session) = call(
        &app,
        calsync::api::ApiRequest::new(Method::POST, "/v1/auth/login")
            .with_json(&json!({"email": "demo@calsync.dev", "password": "demo-password"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();
    let first = calendars(&app, &token).await;
    let first_events = event_ids(&app, &token, monday).await;
    assert_eq!(first.iter().map(|c| c.2).sum::<i64>(), seeded as i64);
    assert_eq!(first_events.len(), seeded);

    let (again, _) = seed(&app).await.unwrap();
    assert_eq!(again, seeded);
    assert_eq!(calendars(&app, &token).await, first);
    assert_eq!(event_ids(&app, &token, monday).await, first_events);

    // The user adds an event and deletes a seeded one; seeding again restores the seeded one and
    // keeps the added one in the count.
    let work = &first[0].0;
    let (status, created) = call(
        &app,
        send(
            Method::POST,
            "/v1/events",
            &token,
            &json!({"calendarId": work, "title": "Mine",
                    "start": {"dateTime": format!("{monday}T11:00:00Z")},
                    "end": {"dateTime": format!("{monday}T11:30:00Z")}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let removed = first_events[0].clone();
    let (status, _) = call(
        &app,
        calsync::api::ApiRequest::new(Method::DELETE, &format!("/v1/events/{removed}"))
            .with_bearer(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    seed(&app).await.unwrap();
    let after: Vec<(String, String, i64, String)> = calendars(&app, &token).await;
    let expected: Vec<(String, String, i64, String)> = first
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if &c.0 == work {
                c.2 += 1;
            }
            c
        })
        .collect();
    assert_eq!(after, expected);
    let mut with_mine = first_events.clone();
    with_mine.push(created["id"].as_str().unwrap().to_owned());
    with_mine.sort();
    assert_eq!(event_ids(&app, &token, monday).await, with_mine);
    let _: Value = created;
}
