//! The sync scheduler and the SQS worker around the engine.

use calsync::model::{Connection, Provider};
use calsync::store::Store;
use calsync::sync::worker::{handle, SqsEvent};
use chrono::{Duration, Utc};
use http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_scheduler_queues_due_calendars_once_in_batches() {
    let app = isolated_app("scheduler", &[]).await;
    let user = register(&app, "scheduler").await;
    let long_ago = Utc::now() - Duration::hours(2);
    for i in 0..12 {
        let mut conn = Connection::new(
            &user.id,
            Provider::Google,
            &format!("cal{i}"),
            "C",
            "#123456",
            long_ago,
        );
        conn.account_id = Some("acct".into());
        app.store.put_connection(&conn).await.unwrap();
    }
    let mut not_due = Connection::new(
        &user.id,
        Provider::Google,
        "later",
        "Later",
        "#123456",
        long_ago,
    );
    not_due.last_synced_at = Some(Utc::now() + Duration::minutes(10));
    app.store.put_connection(&not_due).await.unwrap();

    let report = calsync::sync::scheduler::run(&app, Utc::now())
        .await
        .unwrap();
    assert_eq!((report.due, report.queued), (12, 12), "{report:?}");
    // Claimed: the next tick sends nothing again.
    let again = calsync::sync::scheduler::run(&app, Utc::now())
        .await
        .unwrap();
    assert_eq!((again.due, again.queued), (0, 0));

    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let queue = app.config.sync_queue_url.clone().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(body["reason"], "scheduled");
            seen.insert(body["connectionId"].as_str().unwrap().to_owned());
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(seen.len(), 12);
    assert!(!seen.contains(&not_due.id));
}

#[tokio::test]
async fn the_worker_reports_only_retryable_failures_and_the_calendar_shows_the_error() {
    // A CalDAV calendar whose server is gone: the sync fails as unavailable (retryable).
    let dead = format!(
        "http://127.0.0.1:{}/alice/work/",
        calsync_devstack::peer::free_port().unwrap()
    );
    let app = app_with(&[http_loopback(&[&dead])]).await;
    let user = register(&app, "worker").await;
    let cipher = app.cipher().unwrap();
    let mut account =
        calsync::model::ProviderAccount::new(&user.id, Provider::Apple, "alice", Store::now());
    let context = calsync::crypto::SecretContext {
        user_id: &user.id,
        account_id: &account.id,
        field: "access_token",
    };
    account.access_token = Some(
        cipher
            .seal(&calsync::crypto::Secret::new("pw"), context)
            .await
            .unwrap(),
    );
    account.caldav = Some(calsync::model::CalDavLocation {
        server_url: dead.clone(),
        principal_url: dead.clone(),
        home_url: dead.clone(),
        username: "alice".into(),
    });
    app.store.put_account(&account).await.unwrap();
    let mut calendar = Connection::new(
        &user.id,
        Provider::Apple,
        &dead,
        "Work",
        "#123456",
        Store::now(),
    );
    calendar.account_id = Some(account.id.clone());
    let calendar = app.store.upsert_calendar(&calendar).await.unwrap();

    let body = |conn: &str| {
        json!({"userId": user.id, "connectionId": conn, "reason": "scheduled"}).to_string()
    };
    let event: SqsEvent = serde_json::from_value(json!({"Records": [
        {"messageId": "fails", "body": body(&calendar.id)},
        {"messageId": "unknown-calendar", "body": body("0123456789abcdef0123456789abcdef")},
        {"messageId": "garbage", "body": "{not json"},
    ]}))
    .unwrap();
    let response = handle(&app, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["fails"]);

    let (_, listed) = call(&app, get("/v1/calendars", &user.token)).await;
    let shown = &listed["calendars"][0];
    assert_eq!(shown["status"], "error", "{listed}");
    assert!(
        shown["lastError"].as_str().unwrap().contains("unavailable"),
        "{shown}"
    );
    let (_, audit) = call(&app, get("/v1/audit-log", &user.token)).await;
    assert_eq!(audit["entries"][0]["action"], "EVENT_SYNC_FAILED");
    assert_eq!(audit["entries"][0]["metadata"]["provider"], "apple");
    // Backed off: not due again right away.
    let stored = raw_item(
        "CONNECTIONS_TABLE",
        &format!("USER#{}", user.id),
        &format!("CONN#{}", calendar.id),
    )
    .await
    .unwrap();
    let next = stored["nextSyncAt"].as_s().unwrap();
    assert!(
        next.as_str() > calsync::time::key_format(Utc::now() + Duration::minutes(5)).as_str(),
        "{next}"
    );

    // Sync now: queued, 202; an unknown calendar is a 404.
    let path = format!("/v1/calendars/{}/sync", calendar.id);
    let (status, _) = call(
        &app,
        send(http::Method::POST, &path, &user.token, &json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = call(
        &app,
        send(
            http::Method::POST,
            "/v1/calendars/0123456789abcdef0123456789abcdef/sync",
            &user.token,
            &json!({}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The sync requests waiting in the app's queue (received and deleted).
async fn queued_syncs(app: &calsync::app::App) -> Vec<serde_json::Value> {
    drain_queue(&app.config.sync_queue_url.clone().unwrap()).await
}

#[tokio::test]
async fn local_writes_queue_their_write_back_at_once_and_a_burst_costs_one_sync() {
    let app = isolated_app("write-now", &[]).await;
    let user = register(&app, "write-now").await;
    // A calendar kept only here (no provider account) has nothing to push.
    let local_only = connect(&app, &user, "local", false).await;
    create_event(
        &app,
        &user,
        &local_only.id,
        "Local",
        "2026-12-10T09:00:00Z",
        "2026-12-10T10:00:00Z",
    )
    .await;
    assert!(queued_syncs(&app).await.is_empty());
    let mut calendar = connect(&app, &user, "work", true).await;
    calendar.account_id = Some("acct".into());
    app.store.put_connection(&calendar).await.unwrap();
    let id = create_event(
        &app,
        &user,
        &calendar.id,
        "Now",
        "2026-12-10T09:00:00Z",
        "2026-12-10T10:00:00Z",
    )
    .await;
    let first = queued_syncs(&app).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["connectionId"], json!(calendar.id));
    assert_eq!(first[0]["reason"], "local_change");

    // More writes before that sync starts ride on it.
    for title in ["Moved", "Moved again"] {
        let (status, _) = call(
            &app,
            send(
                http::Method::PATCH,
                &format!("/v1/events/{id}"),
                &user.token,
                &json!({"title": title}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(queued_syncs(&app).await.is_empty());

    // Once it starts, the next write asks for the next one.
    let now = Utc::now();
    let lease = app
        .store
        .lease_sync(&user.id, &calendar.id, now, now + Duration::minutes(1))
        .await
        .unwrap();
    assert!(lease.is_some());
    patch_event(&app, &user, &id, json!({"title": "After the start"})).await;
    assert_eq!(queued_syncs(&app).await.len(), 1);
}
