//! Events: overlap queries (seed pattern 1), create / move / delete, the write-back index
//! (pattern 5), soft delete (pattern 7), filters, paging, and what bad input gets.

use calsync::api::ApiRequest;
use calsync::model::{Attendee, Event, PendingChange, SyncStatus};
use calsync::store::{Store, StoreError};
use http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn range_queries_use_overlap_semantics() {
    let app = app().await;
    let user = register(&app, "overlap").await;
    let cal = connect(&app, &user, "Main", true).await;
    let mk = |title: &'static str, start: &'static str, end: &'static str| (title, start, end);
    for (title, start, end) in [
        mk(
            "spans range start",
            "2026-06-10T09:00:00Z",
            "2026-06-10T11:00:00Z",
        ),
        mk("inside", "2026-06-10T10:15:00Z", "2026-06-10T10:45:00Z"),
        // Duration-tier edges: exactly 4 h, and three weeks long (the unbounded tier).
        mk(
            "exactly four hours",
            "2026-06-10T07:00:00Z",
            "2026-06-10T11:00:00Z",
        ),
        mk(
            "three weeks",
            "2026-05-25T00:00:00Z",
            "2026-06-15T00:00:00Z",
        ),
        mk(
            "three weeks, ended",
            "2026-05-01T00:00:00Z",
            "2026-05-22T00:00:00Z",
        ),
        mk(
            "spans range end",
            "2026-06-10T11:30:00Z",
            "2026-06-10T13:00:00Z",
        ),
        mk(
            "covers whole range, multi-day",
            "2026-06-08T00:00:00Z",
            "2026-06-12T00:00:00Z",
        ),
        mk(
            "long before, ends inside",
            "2026-06-09T12:00:00Z",
            "2026-06-10T10:30:00Z",
        ),
        mk(
            "touches range start",
            "2026-06-10T08:00:00Z",
            "2026-06-10T10:00:00Z",
        ),
        mk(
            "touches range end",
            "2026-06-10T12:00:00Z",
            "2026-06-10T13:00:00Z",
        ),
        mk("day before", "2026-06-09T10:00:00Z", "2026-06-09T11:00:00Z"),
        mk(
            "month later, multi-day",
            "2026-07-01T00:00:00Z",
            "2026-07-05T00:00:00Z",
        ),
    ] {
        create_event(&app, &user, &cal.id, title, start, end).await;
    }
    let (status, _) = call(
        &app,
        send(
            Method::POST,
            "/v1/events",
            &user.token,
            &json!({
        "calendarId": cal.id, "title": "all-day that day",
        "start": {"date": "2026-06-10"}, "end": {"date": "2026-06-11"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let titles = titles_in_range(&app, &user, "2026-06-10T10:00:00Z", "2026-06-10T12:00:00Z").await;
    assert_eq!(
        titles,
        [
            "three weeks",
            "covers whole range, multi-day",
            "long before, ends inside",
            "all-day that day",
            "exactly four hours",
            "spans range start",
            "inside",
            "spans range end",
        ]
    );
    // The all-day event is a date, not a midnight.
    let (_, body) = call(
        &app,
        query(
            get("/v1/events", &user.token),
            &[("start", "2026-06-10"), ("end", "2026-06-11")],
        ),
    )
    .await;
    let all_day = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "all-day that day")
        .unwrap();
    assert_eq!(all_day["start"], json!({"date": "2026-06-10"}));
    assert_eq!(all_day["end"], json!({"date": "2026-06-11"}));
    assert_eq!(all_day["isAllDay"], true);
    assert_eq!(all_day["calendar"]["name"], "Main");
    assert_eq!(all_day["calendar"]["provider"], "GOOGLE");
}

#[tokio::test]
async fn events_are_created_moved_and_soft_deleted_with_write_back_queued() {
    let app = app().await;
    let user = register(&app, "crud").await;
    let cal = connect(&app, &user, "Work", true).await;
    let (status, created) = call(
        &app,
        send(
            Method::POST,
            "/v1/events",
            &user.token,
            &json!({
        "calendarId": cal.id, "title": "Planning", "description": "Q3",
        "start": {"dateTime": "2026-03-27T09:00:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-03-27T10:00:00", "timeZone": "America/New_York"},
        "attendees": [{"email": "Ann@Example.com", "name": "Ann"}],
        "reminders": [{"method": "popup", "minutes": 10}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(zoned(&created["start"]), "2026-03-27T09:00:00-04:00");
    assert_eq!(created["start"]["dateTime"], "2026-03-27T13:00:00.000Z");
    assert_eq!(created["start"]["timeZone"], "America/New_York");
    assert_eq!(created["attendees"][0]["email"], "ann@example.com");
    assert_eq!(created["syncStatus"], "PENDING");

    let pending = app.store.pending_events(&cal.id, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].pending_change, Some(PendingChange::Create));

    // Move it by a day; it leaves the old day and appears on the new one.
    let path = format!("/v1/events/{id}");
    let (status, moved) = call(&app, send(Method::PATCH, &path, &user.token, &json!({
        "start": {"dateTime": "2026-03-28T09:00:00-04:00"}, "end": {"dateTime": "2026-03-28T10:30:00-04:00"},
        "description": null}))).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert!(moved.get("description").is_none());
    assert_eq!(moved["title"], "Planning");
    assert!(titles_in_range(&app, &user, "2026-03-27", "2026-03-28")
        .await
        .is_empty());
    assert_eq!(
        titles_in_range(&app, &user, "2026-03-28", "2026-03-29").await,
        ["Planning"]
    );
    // Never pushed yet, so still a create for the provider.
    assert_eq!(
        app.store.pending_events(&cal.id, 10).await.unwrap()[0].pending_change,
        Some(PendingChange::Create)
    );

    let (status, _) = call(
        &app,
        ApiRequest::new(Method::DELETE, &path).with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, get(&path, &user.token)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &app,
            ApiRequest::new(Method::DELETE, &path).with_bearer(&user.token)
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert!(titles_in_range(&app, &user, "2026-03-28", "2026-03-29")
        .await
        .is_empty());
    let (_, cals) = call(&app, get("/v1/calendars", &user.token)).await;
    assert_eq!(cals["calendars"][0]["eventCount"], 0);

    // The soft-deleted item stays, marked, with its purge time 30 days on.
    let (conn, key) = calsync::ids::decode_event_id(&id).unwrap();
    let stored = app.store.event(&conn, &key).await.unwrap().unwrap();
    assert_eq!(stored.sync_status, SyncStatus::Deleted);
    let deleted_at = stored.deleted_at.unwrap();
    assert_eq!(
        stored.purge_at,
        Some((deleted_at + chrono::Duration::days(30)).timestamp())
    );
    // A create that never reached the provider needs no push.
    assert!(app
        .store
        .pending_events(&cal.id, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Provider-style events written in bulk, as the sync worker will.
fn imported(user: &TestUser, conn: &str, key: &str, start: &str, end: &str) -> Event {
    let mut event = Event::new(&user.id, conn, key, key, (t(start), t(end)), Store::now());
    event.provider_event_id = Some(key.to_owned());
    event
}

#[tokio::test]
async fn deleted_and_disconnected_calendars_leave_every_query() {
    let app = app().await;
    let user = register(&app, "excluded").await;
    let live = connect(&app, &user, "Live", true).await;
    let removed = connect(&app, &user, "Removed", false).await;
    let mut disconnected = connect(&app, &user, "Disconnected", false).await;
    for cal in [&live, &removed, &disconnected] {
        create_event(
            &app,
            &user,
            &cal.id,
            &cal.calendar_name,
            "2026-08-01T10:00:00Z",
            "2026-08-01T11:00:00Z",
        )
        .await;
    }
    assert_eq!(
        titles_in_range(&app, &user, "2026-08-01", "2026-08-02")
            .await
            .len(),
        3
    );
    let (status, _) = call(
        &app,
        ApiRequest::new(Method::DELETE, &format!("/v1/calendars/{}", removed.id))
            .with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    disconnected.is_connected = false;
    disconnected.status = calsync::model::ConnectionStatus::ReauthorizationRequired;
    app.store.put_connection(&disconnected).await.unwrap();
    assert_eq!(
        titles_in_range(&app, &user, "2026-08-01", "2026-08-02").await,
        ["Live"]
    );
    // Their events cannot be read, changed or added to either.
    let (status, body) = call(&app, send(Method::POST, "/v1/events", &user.token, &json!({"calendarId": removed.id,
        "title": "x", "start": {"dateTime": "2026-08-01T10:00:00Z"}, "end": {"dateTime": "2026-08-01T11:00:00Z"}}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, cals) = call(&app, get("/v1/calendars", &user.token)).await;
    let statuses: Vec<_> = cals["calendars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!("active"), json!("reauthorization_required")]
    );
}

#[tokio::test]
async fn filters_narrow_by_calendar_attendee_and_conference() {
    let app = app().await;
    let user = register(&app, "filters").await;
    let a = connect(&app, &user, "A", true).await;
    let b = connect(&app, &user, "B", false).await;
    let mut with_ann = imported(
        &user,
        &a.id,
        "with-ann",
        "2026-09-01T10:00:00Z",
        "2026-09-01T11:00:00Z",
    );
    with_ann.attendees = vec![Attendee {
        email: "ann@example.com".into(),
        name: None,
        response_status: None,
        optional: false,
    }];
    with_ann.attendees.push(Attendee {
        email: "Bob@Example.com".into(),
        name: None,
        response_status: None,
        optional: true,
    });
    let mut meet = imported(
        &user,
        &b.id,
        "meet",
        "2026-09-01T12:00:00Z",
        "2026-09-01T13:00:00Z",
    );
    meet.has_conference = true;
    meet.provider_metadata = Some(json!({"hangoutLink": "https://meet.google.com/abc-defg-hij"}));
    let plain = imported(
        &user,
        &b.id,
        "plain",
        "2026-09-01T14:00:00Z",
        "2026-09-01T15:00:00Z",
    );
    app.store
        .put_events(&[with_ann, meet, plain])
        .await
        .unwrap();

    let run = |params: Vec<(&'static str, String)>| {
        let app = app.clone();
        let token = user.token.clone();
        async move {
            let mut req = query(
                get("/v1/events", &token),
                &[("start", "2026-09-01"), ("end", "2026-09-02")],
            );
            for (k, v) in &params {
                req = req.with_query(k, v);
            }
            let (status, body) = call(&app, req).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(run(vec![]).await, ["with-ann", "meet", "plain"]);
    assert_eq!(
        run(vec![("calendarIds", b.id.clone())]).await,
        ["meet", "plain"]
    );
    assert_eq!(
        run(vec![("calendarIds", format!("{},{}", a.id, b.id))]).await,
        ["with-ann", "meet", "plain"]
    );
    assert_eq!(
        run(vec![("attendee", "ANN@example.com".into())]).await,
        ["with-ann"]
    );
    // Attendee e-mails as a provider gave them (mixed case) still match.
    assert_eq!(
        run(vec![("attendee", "bob@example.com".into())]).await,
        ["with-ann"]
    );
    assert_eq!(run(vec![("hasConference", "true".into())]).await, ["meet"]);
    assert_eq!(
        run(vec![
            ("hasConference", "false".into()),
            ("calendarIds", b.id.clone())
        ])
        .await,
        ["plain"]
    );
}

#[tokio::test]
async fn pages_follow_cursors_without_gaps_or_repeats() {
    let app = app().await;
    let user = register(&app, "paging").await;
    let cal = connect(&app, &user, "Busy", true).await;
    let mut events = Vec::new();
    for i in 0..40 {
        // Ten long events among thirty short ones, all in one week.
        let (start, end) = if i % 4 == 0 {
            (
                format!("2026-10-0{}T00:00:00Z", 1 + i / 10),
                format!("2026-10-0{}T12:00:00Z", 3 + i / 10),
            )
        } else {
            (
                format!("2026-10-0{}T{:02}:00:00Z", 1 + i % 7, 8 + i / 7),
                format!("2026-10-0{}T{:02}:30:00Z", 1 + i % 7, 8 + i / 7),
            )
        };
        events.push(imported(&user, &cal.id, &format!("e{i:02}"), &start, &end));
    }
    app.store.put_events(&events).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = query(
            get("/v1/events", &user.token),
            &[
                ("start", "2026-10-01"),
                ("end", "2026-10-08"),
                ("limit", "7"),
            ],
        );
        if let Some(c) = &cursor {
            req = req.with_query("cursor", c);
        }
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages += 1;
        let page = body["events"].as_array().unwrap();
        assert!(page.len() <= 7);
        seen.extend(page.iter().map(|e| {
            (
                e["start"]["dateTime"].as_str().unwrap().to_owned(),
                e["title"].as_str().unwrap().to_owned(),
            )
        }));
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 40, "{seen:?}");
    assert_eq!(pages, 6);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by start");
    // A cursor only continues the query that made it.
    let (status, body) = call(
        &app,
        query(
            get("/v1/events", &user.token),
            &[
                ("start", "2026-10-02"),
                ("end", "2026-10-08"),
                ("cursor", cursor.as_deref().unwrap_or("x")),
            ],
        ),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_cursor")
    );
}

#[tokio::test]
async fn bad_event_input_gets_a_4xx_naming_the_problem() {
    let app = app().await;
    let user = register(&app, "badevents").await;
    let cal = connect(&app, &user, "Cal", true).await;
    let range = |start: &str, end: &str| {
        query(
            get("/v1/events", &user.token),
            &[("start", start), ("end", end)],
        )
    };
    let range_cases = [
        (range("2026-01-02", "2026-01-01"), "invalid_range", "after"),
        (range("2026-01-01", "2027-06-01"), "range_too_large", "366"),
        (range("soon", "2026-01-01"), "invalid_time", "soon"),
        (
            range("2026-13-01", "2026-01-01"),
            "invalid_time",
            "2026-13-01",
        ),
        (get("/v1/events", &user.token), "missing_parameter", "start"),
        (
            query(range("2026-01-01", "2026-01-02"), &[("limit", "5000")]),
            "invalid_parameter",
            "limit",
        ),
        (
            query(
                range("2026-01-01", "2026-01-02"),
                &[("hasConference", "yes")],
            ),
            "invalid_parameter",
            "hasConference",
        ),
        (
            query(range("2026-01-01", "2026-01-02"), &[("attendee", "nobody")]),
            "invalid_email",
            "attendee",
        ),
    ];
    for (req, code, mention) in range_cases {
        let (status, body) = call(&app, req).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(mention),
            "{body}"
        );
    }
    let valid = json!({"calendarId": cal.id, "title": "ok",
        "start": {"dateTime": "2026-01-01T10:00:00Z"}, "end": {"dateTime": "2026-01-01T11:00:00Z"}});
    let with = |field: &str, value: serde_json::Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let create_cases = [
        (
            with("end", json!({"dateTime": "2026-01-01T09:00:00Z"})),
            StatusCode::BAD_REQUEST,
            "invalid_range",
        ),
        (
            with(
                "start",
                json!({"dateTime": "2026-01-01T10:00:00", "timeZone": "Mars/Base"}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_time_zone",
        ),
        (
            with("start", json!({"dateTime": "2026-01-01T10:00:00"})),
            StatusCode::BAD_REQUEST,
            "invalid_time",
        ),
        (
            with("start", json!({"date": "2026-01-01"})),
            StatusCode::BAD_REQUEST,
            "invalid_time",
        ),
        (
            with(
                "start",
                json!({"dateTime": "2026-01-01T10:00:00Z", "date": "2026-01-01"}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_time",
        ),
        (
            with("end", json!({"dateTime": "2028-01-01T11:00:00Z"})),
            StatusCode::BAD_REQUEST,
            "event_too_long",
        ),
        (
            with("title", json!("")),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            with("title", json!("x".repeat(2000))),
            StatusCode::BAD_REQUEST,
            "field_too_long",
        ),
        (
            with("recurrence", json!("RRULE:FREQ=DAILY")),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            with("attendees", json!([{"email": "not-an-email"}])),
            StatusCode::BAD_REQUEST,
            "invalid_email",
        ),
        (
            with("reminders", json!([{"method": "popup", "minutes": 99999}])),
            StatusCode::BAD_REQUEST,
            "invalid_reminder",
        ),
        (
            with("reminders", json!([{"method": "pigeon", "minutes": 5}])),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            with("calendarId", json!("0123456789abcdef0123456789abcdef")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            with("calendarId", json!("../../etc")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (body, status, code) in create_cases {
        let (got, answer) = call(&app, send(Method::POST, "/v1/events", &user.token, &body)).await;
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "{body} -> {answer}"
        );
    }
    let id = create_event(
        &app,
        &user,
        &cal.id,
        "target",
        "2026-01-01T10:00:00Z",
        "2026-01-01T11:00:00Z",
    )
    .await;
    let path = format!("/v1/events/{id}");
    let (status, body) = call(
        &app,
        send(
            Method::PATCH,
            &path,
            &user.token,
            &json!({"end": {"dateTime": "2026-01-01T09:00:00Z"}}),
        ),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_range")
    );
    let (status, body) = call(
        &app,
        send(
            Method::PATCH,
            &path,
            &user.token,
            &json!({"start": {"date": "2026-01-01"}}),
        ),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_time")
    );
    for bad in [
        "nope",
        "%%%",
        &"A".repeat(5000),
        &calsync::ids::encode_event_id(&cal.id, "missing"),
    ] {
        let (status, body) = call(&app, get(&format!("/v1/events/{bad}"), &user.token)).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{bad}"
        );
    }
    // Bodies that are not a JSON object, or not UTF-8: a 400, and nothing audited.
    let audited = || async {
        let (_, log) = call(
            &app,
            query(get("/v1/audit-log", &user.token), &[("limit", "200")]),
        )
        .await;
        log["entries"].as_array().unwrap().len()
    };
    let before = audited().await;
    let raw_bodies: [&[u8]; 6] = [
        b"[]",
        b"[1]",
        b"null",
        b"42",
        b"\"x\"",
        b"{\"title\": \"\xff\xfe\"}",
    ];
    for raw in raw_bodies {
        let mut req = send(Method::PATCH, &path, &user.token, &json!({}));
        req.body = raw.to_vec();
        let (status, body) = call(&app, req).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_json"),
            "{}: {body}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(audited().await, before);
    // Nothing above was half-written: exactly one event exists.
    let (_, cals) = call(&app, get("/v1/calendars", &user.token)).await;
    assert_eq!(cals["calendars"][0]["eventCount"], 1);
}

#[tokio::test]
async fn a_stale_write_is_refused_not_lost() {
    let app = app().await;
    let user = register(&app, "stale").await;
    let cal = connect(&app, &user, "Cal", true).await;
    let id = create_event(
        &app,
        &user,
        &cal.id,
        "v1",
        "2026-02-01T10:00:00Z",
        "2026-02-01T11:00:00Z",
    )
    .await;
    let (conn, key) = calsync::ids::decode_event_id(&id).unwrap();
    let read = app.store.event(&conn, &key).await.unwrap().unwrap();
    let (status, _) = call(
        &app,
        send(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            &user.token,
            &json!({"title": "v2"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut stale = read.clone();
    stale.title = "stale".into();
    stale.version += 1;
    let audit = calsync::model::AuditEntry::new(&user.id, "EVENT_UPDATED", "EVENT", None);
    let err = app
        .store
        .replace_event(&stale, read.version, &audit)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TransactionCancelled(_)) && err.failed_condition_at(0),
        "{err}"
    );
    assert_eq!(
        app.store.event(&conn, &key).await.unwrap().unwrap().title,
        "v2"
    );
}
