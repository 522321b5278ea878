//! The user's calendars (seed pattern 8) and isolation between users.

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn calendars_list_primary_first_then_by_creation_with_exact_counts() {
    let app = app().await;
    let user = register(&app, "cals").await;
    let older = connect(&app, &user, "Older", false).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let primary = connect(&app, &user, "Primary", true).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = connect(&app, &user, "Newer", false).await;
    for (cal, n) in [(&older, 2), (&primary, 1)] {
        for i in 0..n {
            create_event(
                &app,
                &user,
                &cal.id,
                &format!("e{i}"),
                "2026-03-02T10:00:00Z",
                "2026-03-02T11:00:00Z",
            )
            .await;
        }
    }
    let (status, body) = call(&app, get("/v1/calendars", &user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<(String, i64)> = body["calendars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["eventCount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (primary.id.clone(), 1),
            (older.id.clone(), 2),
            (newer.id.clone(), 0)
        ]
    );
    assert_eq!(body["calendars"][0]["status"], "active");
    assert_eq!(body["calendars"][0]["provider"], "GOOGLE");
}

#[tokio::test]
async fn a_calendar_can_be_renamed_recoloured_reset_and_removed() {
    let app = app().await;
    let user = register(&app, "patch").await;
    let cal = connect(&app, &user, "Work", true).await;
    let path = format!("/v1/calendars/{}", cal.id);
    let (status, body) = call(
        &app,
        send(
            Method::PATCH,
            &path,
            &user.token,
            &json!({"name": "Job", "color": "#AA00FF"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["name"].as_str(),
            body["providerName"].as_str(),
            body["color"].as_str()
        ),
        (Some("Job"), Some("Work"), Some("#aa00ff"))
    );
    let (_, body) = call(
        &app,
        send(Method::PATCH, &path, &user.token, &json!({"name": null})),
    )
    .await;
    assert_eq!(body["name"], "Work");

    for (patch, code) in [
        (json!({"color": "red"}), "invalid_color"),
        (json!({"name": ""}), "invalid_field"),
        (json!({"owner": "me"}), "invalid_field"),
    ] {
        let (status, body) = call(&app, send(Method::PATCH, &path, &user.token, &patch)).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, code),
            "{patch}"
        );
    }

    let delete = || {
        call(
            &app,
            ApiRequest::new(Method::DELETE, &path).with_bearer(&user.token),
        )
    };
    assert_eq!(delete().await.0, StatusCode::NO_CONTENT);
    assert_eq!(delete().await.0, StatusCode::NOT_FOUND);
    let (_, body) = call(&app, get("/v1/calendars", &user.token)).await;
    assert_eq!(body["calendars"], json!([]));
    let (status, _) = call(
        &app,
        send(Method::PATCH, &path, &user.token, &json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let actions: Vec<String> = call(&app, get("/v1/audit-log", &user.token)).await.1["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions.starts_with(&["CALENDAR_DELETED".into(), "CALENDAR_UPDATED".into()]),
        "{actions:?}"
    );
}

use calsync::api::ApiRequest;

#[tokio::test]
async fn unknown_and_malformed_calendar_ids_are_404() {
    let app = app().await;
    let user = register(&app, "unknowncal").await;
    for id in [
        "0123456789abcdef0123456789abcdef",
        "not-an-id",
        &"f".repeat(3000),
    ] {
        let path = format!("/v1/calendars/{id}");
        let (status, body) = call(
            &app,
            send(Method::PATCH, &path, &user.token, &json!({"name": "x"})),
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::NOT_FOUND, "not_found")
        );
        let (status, _) = call(
            &app,
            ApiRequest::new(Method::DELETE, &path).with_bearer(&user.token),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn two_users_cannot_see_or_touch_each_others_data() {
    let app = app().await;
    let alice = register(&app, "alice").await;
    let bob = register(&app, "bob").await;
    let alice_cal = connect(&app, &alice, "Alice", true).await;
    let bob_cal = connect(&app, &bob, "Bob", true).await;
    let alice_event = create_event(
        &app,
        &alice,
        &alice_cal.id,
        "Alice's secret",
        "2026-05-05T09:00:00Z",
        "2026-05-05T10:00:00Z",
    )
    .await;
    create_event(
        &app,
        &bob,
        &bob_cal.id,
        "Bob's",
        "2026-05-05T09:00:00Z",
        "2026-05-05T10:00:00Z",
    )
    .await;

    // Bob's calendars, events and audit log hold nothing of Alice's.
    let (_, cals) = call(&app, get("/v1/calendars", &bob.token)).await;
    assert_eq!(cals["calendars"].as_array().unwrap().len(), 1);
    assert_eq!(cals["calendars"][0]["id"], bob_cal.id.as_str());
    assert_eq!(
        titles_in_range(&app, &bob, "2026-05-05", "2026-05-06").await,
        ["Bob's"]
    );
    let (_, audit) = call(&app, get("/v1/audit-log", &bob.token)).await;
    assert!(!audit.to_string().contains(&alice.id));

    // Every way of naming Alice's objects is a 404 for Bob, and changes nothing.
    let alice_cal_path = format!("/v1/calendars/{}", alice_cal.id);
    let alice_event_path = format!("/v1/events/{alice_event}");
    let attempts = [
        get(&alice_event_path, &bob.token),
        send(
            Method::PATCH,
            &alice_event_path,
            &bob.token,
            &json!({"title": "pwned"}),
        ),
        ApiRequest::new(Method::DELETE, &alice_event_path).with_bearer(&bob.token),
        send(
            Method::PATCH,
            &alice_cal_path,
            &bob.token,
            &json!({"name": "pwned"}),
        ),
        ApiRequest::new(Method::DELETE, &alice_cal_path).with_bearer(&bob.token),
        send(
            Method::POST,
            "/v1/events",
            &bob.token,
            &json!({"calendarId": alice_cal.id, "title": "spam",
            "start": {"dateTime": "2026-05-05T09:00:00Z"}, "end": {"dateTime": "2026-05-05T10:00:00Z"}}),
        ),
        query(
            get("/v1/events", &bob.token),
            &[
                ("start", "2026-05-05"),
                ("end", "2026-05-06"),
                ("calendarIds", &alice_cal.id),
            ],
        ),
    ];
    for req in attempts {
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(!body.to_string().contains("secret"));
    }
    let (status, event) = call(&app, get(&alice_event_path, &alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["title"], "Alice's secret");
    let (_, cals) = call(&app, get("/v1/calendars", &alice.token)).await;
    assert_eq!(cals["calendars"][0]["name"], "Alice");
    assert_eq!(cals["calendars"][0]["eventCount"], 1);
}
