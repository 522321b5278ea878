//! The change feed (`GET /v1/changes`): every write through the API and every sync appears once,
//! in order, paged and resumable; holes left by failed or dead writers never block it for long;
//! a sync of thousands of events pages through whole.

use calsync::model::Event;
use calsync::store::{Position, HOLE_GRACE};
use http::Method;
use serde_json::{json, Value};

use crate::emulated::EmulatedCalendar;
use crate::support::*;

/// Every change from `cursor` on, following `nextCursor` in pages of `limit`; the last cursor.
pub(crate) async fn drain(
    app: &calsync::app::App,
    token: &str,
    cursor: Option<&str>,
    limit: usize,
) -> (Vec<Value>, String) {
    let mut cursor = cursor.map(str::to_owned);
    let mut changes = Vec::new();
    for _ in 0..1000 {
        let mut req = query(get("/v1/changes", token), &[("limit", &limit.to_string())]);
        if let Some(c) = &cursor {
            req = req.with_query("cursor", c);
        }
        let (status, page) = call(app, req).await;
        assert_eq!(status, http::StatusCode::OK, "{page}");
        let batch = page["changes"].as_array().unwrap();
        assert!(batch.len() <= limit);
        changes.extend(batch.iter().cloned());
        cursor = Some(page["nextCursor"].as_str().unwrap().to_owned());
        if !page["hasMore"].as_bool().unwrap() {
            return (changes, cursor.unwrap());
        }
    }
    panic!("the feed never ended");
}

fn summary(changes: &[Value]) -> Vec<(String, String, Option<String>)> {
    changes
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["eventId"].as_str().unwrap().to_owned(),
                c["event"]["title"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[tokio::test]
async fn api_writes_appear_once_in_order_paged_and_resumable() {
    let app = app().await;
    let user = register(&app, "changes-api").await;
    let calendar = connect(&app, &user, "work", true).await;
    let (_, now_page) = call(
        &app,
        query(get("/v1/changes", &user.token), &[("cursor", "now")]),
    )
    .await;
    assert_eq!(now_page["changes"], json!([]));
    let start = now_page["nextCursor"].as_str().unwrap().to_owned();

    let a = create_event(
        &app,
        &user,
        &calendar.id,
        "A",
        "2026-12-10T09:00:00Z",
        "2026-12-10T10:00:00Z",
    )
    .await;
    patch_event(&app, &user, &a, json!({"title": "A2"})).await;
    let b = create_event(
        &app,
        &user,
        &calendar.id,
        "B",
        "2026-12-11T09:00:00Z",
        "2026-12-11T10:00:00Z",
    )
    .await;
    // A refused write (another user's calendar) leaves no change behind.
    let other = register(&app, "changes-other").await;
    let (status, _) = call(
        &app,
        send(
            Method::PATCH,
            &format!("/v1/events/{a}"),
            &other.token,
            &json!({"title": "stolen"}),
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::NOT_FOUND);
    delete_event(&app, &user, &a).await;

    let expected = vec![
        ("created".to_owned(), a.clone(), None),
        ("updated".to_owned(), a.clone(), None),
        ("created".to_owned(), b.clone(), Some("B".to_owned())),
        ("deleted".to_owned(), a.clone(), None),
    ];
    let (all, end) = drain(&app, &user.token, Some(&start), 100).await;
    assert_eq!(
        summary(&all),
        expected,
        "A is deleted now, so no change carries its body"
    );
    assert_eq!(all[2]["calendarId"], json!(calendar.id));
    assert!(all[2]["at"].as_str().unwrap().ends_with('Z'));
    // The same from the oldest change kept, one at a time; and nothing after the end.
    let (one_by_one, _) = drain(&app, &user.token, None, 1).await;
    assert_eq!(summary(&one_by_one), expected);
    let (after, _) = drain(&app, &user.token, Some(&end), 10).await;
    assert!(after.is_empty());
    // Nobody else sees them.
    let (theirs, _) = drain(&app, &other.token, None, 10).await;
    assert!(theirs.is_empty());

    for (cursor, status) in [("garbage", 400), ("YzEuMC4wLjA", 400)] {
        let (got, body) = call(
            &app,
            query(get("/v1/changes", &user.token), &[("cursor", cursor)]),
        )
        .await;
        assert_eq!(got.as_u16(), status, "{body}");
        assert_eq!(error_code(&body), "invalid_cursor");
    }
    let (got, body) = call(
        &app,
        query(get("/v1/changes", &user.token), &[("limit", "0")]),
    )
    .await;
    assert_eq!(got.as_u16(), 400, "{body}");
}

#[tokio::test]
async fn holes_wait_for_their_writer_then_are_skipped_and_failed_writes_fill_theirs() {
    let app = app().await;
    let user = register(&app, "changes-holes").await;
    let calendar = connect(&app, &user, "work", true).await;
    let a = create_event(
        &app,
        &user,
        &calendar.id,
        "A",
        "2026-12-10T09:00:00Z",
        "2026-12-10T10:00:00Z",
    )
    .await;
    // A writer that reserved a number and died before writing its commit.
    let dead = app.store.reserve_changes(&user.id, 1).await.unwrap();
    let b = create_event(
        &app,
        &user,
        &calendar.id,
        "B",
        "2026-12-11T09:00:00Z",
        "2026-12-11T10:00:00Z",
    )
    .await;
    let now = chrono::Utc::now();
    let early = app
        .store
        .read_changes(&user.id, Position::START, 100, now)
        .await
        .unwrap();
    assert!(early.waiting);
    assert_eq!(early.commits.len(), 1, "read up to the hole only");
    assert_eq!(early.next, Some(Position::after_commit(dead.first - 1)));
    let late = app
        .store
        .read_changes(
            &user.id,
            Position::START,
            100,
            now + HOLE_GRACE + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    assert!(!late.waiting);
    assert_eq!(late.commits.len(), 2, "the dead writer's hole is skipped");

    // A write that fails (a stale version: 409) fills its own number at once.
    let stale = calsync::ids::decode_event_id(&a).unwrap();
    let stored: Event = app.store.event(&stale.0, &stale.1).await.unwrap().unwrap();
    let mut edited = stored.clone();
    edited.title = "lost race".into();
    edited.version += 1;
    let audit = calsync::model::AuditEntry::new(&user.id, "EVENT_UPDATED", "EVENT", Some(&a));
    assert!(app
        .store
        .replace_event(&edited, stored.version + 7, &audit)
        .await
        .is_err());
    let c = create_event(
        &app,
        &user,
        &calendar.id,
        "C",
        "2026-12-12T09:00:00Z",
        "2026-12-12T10:00:00Z",
    )
    .await;
    let after = app
        .store
        .read_changes(
            &user.id,
            Position::after_commit(dead.first),
            100,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert!(
        !after.waiting,
        "the failed write's number is filled: {after:?}"
    );
    let keys: Vec<String> = after
        .commits
        .iter()
        .flat_map(|c| {
            c.entries
                .iter()
                .map(|e| calsync::ids::encode_event_id(&e.connection_id, &e.event_key))
        })
        .collect();
    assert_eq!(
        keys,
        vec![b, c],
        "B after the dead hole, then C; the failed write added nothing"
    );
}

#[tokio::test]
async fn a_sync_records_what_the_provider_changed() {
    let fx = EmulatedCalendar::connect("changes-sync", "google", &[]).await;
    let (_, start) = call(
        &fx.app,
        query(get("/v1/changes", &fx.user.token), &[("cursor", "now")]),
    )
    .await;
    let start = start["nextCursor"].as_str().unwrap().to_owned();
    fx.sync().await;
    let (first, cursor) = drain(&fx.app, &fx.user.token, Some(&start), 100).await;
    let stored = fx.stored().await;
    let changed: std::collections::HashSet<String> = first
        .iter()
        .map(|c| {
            calsync::ids::decode_event_id(c["eventId"].as_str().unwrap())
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(
        changed.len(),
        first.len(),
        "each stored item once: {first:?}"
    );
    assert!(
        stored.keys().all(|k| changed.contains(k)),
        "every listed event is in the feed"
    );
    // Cancelled occurrences of the emulator's sample series are tombstones: deletions.
    let kinds: Vec<&str> = first.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.iter().all(|k| *k == "created" || *k == "deleted") && kinds.contains(&"created"),
        "{kinds:?}"
    );

    fx.put_at(
        "/events/changes01",
        json!({"summary": "Added", "start": {"dateTime": "2026-12-01T10:00:00Z"}, "end": {"dateTime": "2026-12-01T11:00:00Z"}}),
    )
    .await;
    let victim = stored.keys().next().unwrap().clone();
    fx.delete(&victim).await;
    fx.sync().await;
    let idle_sync = fx.sync().await;
    assert_eq!(idle_sync.written, 0);
    let (second, _) = drain(&fx.app, &fx.user.token, Some(&cursor), 100).await;
    let mut kinds: Vec<(String, Option<String>)> = second
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["event"]["title"].as_str().map(str::to_owned),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("created".into(), Some("Added".into())),
            ("deleted".into(), None)
        ],
        "an unchanged sync records nothing"
    );
}

/// A calendar of thousands of events, written as a sync writes them: the feed pages through
/// every one of them, across commits split at their size limit.
#[tokio::test]
async fn thousands_of_synced_events_page_through_whole() {
    const EVENTS: usize = 2_500;
    let (_aws, app) = app_on_own_emulator("changes-scale", &[]).await;
    let user = register(&app, "changes-scale").await;
    let calendar = connect(&app, &user, "big", true).await;
    let base = t("2020-01-01T09:00:00Z");
    let events = filler_events(
        &user.id,
        &calendar.id,
        EVENTS,
        base,
        chrono::Duration::hours(7),
    );
    let reservations = app.store.put_events(&events).await.unwrap();
    assert_eq!(
        reservations.iter().map(|r| r.count).sum::<u64>(),
        3,
        "1,000 entries a commit"
    );
    let (all, _) = drain(&app, &user.token, None, 1000).await;
    assert_eq!(all.len(), EVENTS);
    let titles: Vec<&str> = all
        .iter()
        .map(|c| c["event"]["title"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..EVENTS).map(|i| format!("Bulk {i}")).collect();
    assert_eq!(titles, expected, "in the order written, each once");
    // Pages that end inside a commit resume inside it.
    let (odd, _) = drain(&app, &user.token, None, 333).await;
    assert_eq!(odd.len(), EVENTS);
    assert_eq!(odd[1_500]["event"]["title"], json!("Bulk 1500"));
}
