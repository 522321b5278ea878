//! Google sync against the emulator: full listing over short and empty pages, incremental with
//! tombstones, a lost sync token, an expired access token, and a seeded convergence run under
//! faults (429 with Retry-After, 500, a malformed event, 410, duplicate and concurrent workers).

use std::collections::BTreeMap;

use calsync::sync::engine::sync_connection;
use chrono::DateTime;
use serde_json::{json, Value};

use crate::emulated::EmulatedCalendar;
use crate::support::*;
use crate::sync_caldav::{seed, Rng};

struct GoogleFixture(EmulatedCalendar);

impl std::ops::Deref for GoogleFixture {
    type Target = EmulatedCalendar;
    fn deref(&self) -> &EmulatedCalendar {
        &self.0
    }
}

impl GoogleFixture {
    async fn new(tag: &str) -> Self {
        Self::with(tag, &[]).await
    }

    async fn with(tag: &str, extra: &[(&'static str, String)]) -> Self {
        Self(EmulatedCalendar::connect(tag, "google", extra).await)
    }

    async fn put(&self, id: &str, event: Value) {
        self.put_at(&format!("/events/{id}"), event).await;
    }

    async fn invalidate_cursor(&self) {
        self.http
            .post(self.admin("/invalidate-sync-tokens"))
            .send()
            .await
            .unwrap();
    }

    /// The provider's events: id -> (title, start UTC).
    async fn provider(&self) -> BTreeMap<String, (String, String)> {
        self.provider_listing("/events").await["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let start = match e["start"]["dateTime"].as_str() {
                    Some(t) => {
                        calsync::time::key_format(DateTime::parse_from_rfc3339(t).unwrap().to_utc())
                    }
                    None => format!("{}T00:00:00Z", e["start"]["date"].as_str().unwrap()),
                };
                let title = e["summary"].as_str().unwrap_or("(no title)").to_owned();
                (e["id"].as_str().unwrap().to_owned(), (title, start))
            })
            .collect()
    }
}

fn timed(title: &str, start: &str, minutes: i64, zone: &str) -> Value {
    let start = DateTime::parse_from_rfc3339(start).unwrap();
    let end = start + chrono::Duration::minutes(minutes);
    json!({"summary": title, "start": {"dateTime": start.to_rfc3339(), "timeZone": zone},
           "end": {"dateTime": end.to_rfc3339(), "timeZone": zone}})
}

#[tokio::test]
async fn google_sync_lists_in_full_then_follows_changes_and_survives_a_lost_token() {
    let fx = GoogleFixture::new("google-sync").await;
    fx.settings(json!({"shortPages": true})).await;
    let first = fx.sync().await;
    assert!(
        first.full && first.pages > 1,
        "short and empty pages are followed: {first:?}"
    );
    assert_eq!(fx.stored().await, fx.provider().await);
    assert!(
        !fx.provider().await.is_empty(),
        "the emulator has sample events"
    );
    assert_eq!(fx.event_count().await as usize, fx.provider().await.len());

    let idle = fx.sync().await;
    assert!(!idle.full && idle.written == 0, "{idle:?}");

    let victim = fx.provider().await.into_keys().next().unwrap();
    fx.put(
        "added01",
        timed("Added", "2026-12-01T10:00:00+01:00", 30, "Europe/Berlin"),
    )
    .await;
    fx.delete(&victim).await;
    let changed = fx.sync().await;

    assert!(
        !changed.full && changed.written == 1 && changed.deleted >= 1,
        "{changed:?}"
    );
    assert_eq!(fx.stored().await, fx.provider().await);

    fx.invalidate_cursor().await;
    fx.put(
        "added02",
        timed(
            "Added later",
            "2026-12-02T10:00:00+01:00",
            30,
            "Europe/Berlin",
        ),
    )
    .await;
    let recovered = fx.sync().await;
    assert!(recovered.cursor_lost && recovered.full, "{recovered:?}");
    assert_eq!(fx.stored().await, fx.provider().await);
    assert_eq!(fx.event_count().await as usize, fx.provider().await.len());
}

/// A sync that died between storing a page and counting it, or that failed, can leave the
/// calendar's count wrong: the next sync to succeed counts the calendar again. Otherwise an
/// incremental sync trusts the count it keeps.
#[tokio::test]
async fn a_count_left_wrong_by_a_sync_that_died_or_failed_is_counted_again() {
    use chrono::{Duration, Utc};
    let fx = GoogleFixture::new("google-recount").await;
    fx.sync().await;
    let right = fx.event_count().await;
    assert_eq!(right as usize, fx.stored().await.len());
    let (user, calendar) = (&fx.user.id, &fx.connection_id);
    let miscount = || fx.app.store.add_event_count(user, calendar, -5);

    // The dead sync: the count is off, and its lapsed lease is still on the calendar.
    miscount().await.unwrap();
    let then = Utc::now() - Duration::minutes(30);
    let lease = fx
        .app
        .store
        .lease_sync(user, calendar, then, then + Duration::minutes(10));
    assert!(lease.await.unwrap().is_some());
    assert!(!fx.sync().await.full, "an incremental sync");
    assert_eq!(fx.event_count().await, right, "recounted after a dead sync");

    // No reason to doubt the count: it is kept as it is.
    miscount().await.unwrap();
    fx.sync().await;
    assert_eq!(
        fx.event_count().await,
        right - 5,
        "no recount without a reason"
    );

    // A failed sync: the next one that succeeds counts again.
    fx.fault(json!({"pathPrefix": "/google/calendar/v3/calendars", "status": 400, "times": 1}))
        .await;
    assert!(sync_connection(&fx.app, user, calendar).await.is_err());
    fx.sync().await;
    assert_eq!(fx.event_count().await, right, "recounted after a failure");
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_sync_retried() {
    let fx = GoogleFixture::new("google-expired").await;
    fx.settings(json!({"accessTokenTtlSeconds": 1})).await;
    // The token issued at connect time lived an hour; make the provider refuse it now.
    fx.fault(json!({"pathPrefix": "/google/calendar/v3/calendars", "status": 401, "times": 1}))
        .await;
    let report = fx.sync().await;
    assert!(report.full);
    let stats: Value = reqwest::get(format!("{}/admin/stats", fx.emulator.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["google"]["refreshTokenGrants"], 1, "{stats}");
    assert_eq!(fx.stored().await, fx.provider().await);

    // A dead grant: the refresh is refused with invalid_grant -> reauthorization required.
    fx.fault(json!([
        {"pathPrefix": "/google/calendar/v3/calendars", "status": 401, "times": 1},
        {"pathPrefix": "/google/token", "status": 400, "times": 1,
         "body": "{\"error\":\"invalid_grant\",\"error_description\":\"Token has been expired or revoked.\"}"}
    ]))
    .await;
    let failed = sync_connection(&fx.app, &fx.user.id, &fx.connection_id).await;
    assert!(failed.is_err(), "{failed:?}");
    let (_, listed) = call(&fx.app, get("/v1/calendars", &fx.user.token)).await;
    assert!(
        listed["calendars"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "reauthorization_required"),
        "{listed}"
    );
}

#[tokio::test]
async fn google_converges_under_faults_seeded() {
    let seed = seed();
    const STEPS: usize = 50;
    println!("google convergence: seed={seed} steps={STEPS} (replay with CALSYNC_SEED={seed})");
    // Provider calls time out after 1.5 s, so a delayed answer is a real timeout.
    let fx =
        GoogleFixture::with("google-converge", &[("PROVIDER_TIMEOUT_MS", "1500".into())]).await;
    let mut rng = Rng(seed);
    let mut ids: Vec<String> = fx.provider().await.into_keys().collect();
    let zones = ["Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo"];
    let start_of = |rng: &mut Rng| {
        format!(
            "2026-12-{:02}T{:02}:{:02}:00Z",
            1 + rng.below(27),
            7 + rng.below(11),
            15 * rng.below(4)
        )
    };
    let mut faults = 0;
    for step in 0..STEPS {
        let pick = |rng: &mut Rng, ids: &Vec<String>| {
            ids.get(rng.below(ids.len().max(1) as u64) as usize)
                .cloned()
        };
        match rng.below(9) {
            0 | 1 => {
                let id = format!("conv{step:03}");
                let zone = zones[rng.below(4) as usize];
                fx.put(
                    &id,
                    timed(
                        &format!("Event {step}"),
                        &start_of(&mut rng),
                        15 * (1 + rng.below(6) as i64),
                        zone,
                    ),
                )
                .await;
                ids.push(id);
            }
            2 => {
                if let Some(id) = pick(&mut rng, &ids) {
                    fx.put(
                        &id,
                        timed(
                            &format!("Moved {step}"),
                            &start_of(&mut rng),
                            45,
                            zones[rng.below(4) as usize],
                        ),
                    )
                    .await;
                }
            }
            3 => {
                if let Some(id) = pick(&mut rng, &ids) {
                    fx.put(
                        &id,
                        timed(&format!("Edited {step}"), &start_of(&mut rng), 30, "UTC"),
                    )
                    .await;
                }
            }
            4 => {
                if let Some(id) = pick(&mut rng, &ids) {
                    fx.delete(&id).await;
                    ids.retain(|i| *i != id);
                }
            }
            5 => {
                // A weekly series with one moved instance.
                let master = format!("series{step:03}");
                let start = "2026-12-07T09:00:00+01:00";
                let mut event = timed(&format!("Series {step}"), start, 30, "Europe/Berlin");
                event["recurrence"] = json!(["RRULE:FREQ=WEEKLY;COUNT=4"]);
                fx.put(&master, event).await;
                let mut moved = timed(
                    &format!("Series {step} (moved)"),
                    "2026-12-14T11:00:00+01:00",
                    30,
                    "Europe/Berlin",
                );
                moved["recurringEventId"] = json!(master);
                moved["originalStartTime"] =
                    json!({"dateTime": "2026-12-14T09:00:00+01:00", "timeZone": "Europe/Berlin"});
                let instance = format!("{master}_20261214T080000Z");

                fx.put(&instance, moved).await;
                ids.push(master);
                ids.push(instance);
            }
            _ => {
                faults += 1;
                match rng.below(5) {
                    0 => fx.fault(json!({"pathPrefix": "/google/calendar/v3/calendars", "status": 429, "retryAfter": 1, "times": 1})).await,
                    1 => fx.fault(json!({"pathPrefix": "/google/calendar/v3/calendars", "status": 500, "times": 1})).await,
                    2 => fx.fault(json!({"pathPrefix": "/google/calendar/v3/calendars", "malformedItem": true, "times": 1})).await,
                    3 => fx.invalidate_cursor().await,
                    _ => fx.fault(json!({"pathPrefix": "/google/calendar/v3/calendars", "delayMs": 2500, "times": 1})).await,
                }
                sync_concurrently(&fx.app, &fx.user.id, &fx.connection_id, step).await;
            }
        }
    }
    // A duplicate delivery of the same request through the worker changes nothing.
    deliver_twice(&fx.app, &fx.user.id, &fx.connection_id).await;
    fx.sync().await;

    let (want, have) = (fx.provider().await, fx.stored().await);
    assert_eq!(have, want, "seed={seed}: the store must equal the provider");
    assert_eq!(
        fx.event_count().await as usize,
        want.len(),
        "seed={seed}: exact count"
    );
    println!(
        "google convergence: {} events, {faults} fault rounds",
        want.len()
    );
}

#[tokio::test]
async fn failed_partial_and_empty_listings_delete_nothing() {
    let fx = GoogleFixture::new("google-partial").await;
    fx.settings(json!({"shortPages": true})).await;
    fx.sync().await;
    let before = fx.stored().await;
    assert!(!before.is_empty());
    // Everything goes at the provider, but we forget our cursor: the next listing is a full one.
    for id in before.keys() {
        fx.delete(id).await;
    }
    let forget = |fx: &GoogleFixture| {
        let (app, user, conn) = (fx.app.clone(), fx.user.id.clone(), fx.connection_id.clone());
        async move {
            let mut c = app.store.connection(&user, &conn).await.unwrap().unwrap();
            c.sync_token = None;
            app.store.put_connection(&c).await.unwrap();
        }
    };
    forget(&fx).await;
    // Partial: the first page arrives, the second fails on every attempt.
    fx.fault(json!([
        {"pathPrefix": "/google/calendar/v3/calendars", "delayMs": 1, "times": 1},
        {"pathPrefix": "/google/calendar/v3/calendars", "status": 500, "times": 4}
    ]))
    .await;
    assert!(sync_connection(&fx.app, &fx.user.id, &fx.connection_id)
        .await
        .is_err());
    assert_eq!(
        fx.stored().await,
        before,
        "a partial listing deleted something"
    );
    let conn = fx
        .app
        .store
        .connection(&fx.user.id, &fx.connection_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        conn.sync_token.is_none(),
        "no cursor after a failed listing"
    );
    // Failed outright.
    fx.fault(json!({"pathPrefix": "/google/calendar/v3/calendars", "status": 503, "times": 4}))
        .await;
    assert!(sync_connection(&fx.app, &fx.user.id, &fx.connection_id)
        .await
        .is_err());
    assert_eq!(fx.stored().await, before);
    // Empty: the provider answers a complete but empty listing while we hold events.
    fx.fault(
        json!({"pathPrefix": "/google/calendar/v3/calendars", "status": 200, "times": 1,
        "body": "{\"kind\":\"calendar#events\",\"items\":[],\"nextSyncToken\":\"empty-listing\"}"}),
    )
    .await;
    let empty = fx.sync().await;
    assert!(empty.full && empty.suspicious_empty, "{empty:?}");
    assert_eq!(fx.stored().await, before);
}

#[tokio::test]
async fn rate_limits_and_unavailability_are_waited_out() {
    let fx = GoogleFixture::new("google-429").await;
    fx.fault(json!([
        {"pathPrefix": "/google/calendar/v3/calendars", "status": 429, "retryAfter": 2, "times": 1},
        {"pathPrefix": "/google/calendar/v3/calendars", "status": 503, "retryAfter": 1, "times": 1},
        {"pathPrefix": "/google/calendar/v3/calendars", "status": 500, "times": 1}
    ]))
    .await;
    let started = std::time::Instant::now();
    let report = fx.sync().await;
    let waited = started.elapsed();
    assert_eq!(report.retries, 3, "{report:?}");
    assert!(
        waited >= std::time::Duration::from_secs(3),
        "Retry-After honoured: waited {waited:?}"
    );
    assert_eq!(fx.stored().await, fx.provider().await);
}

#[tokio::test]
async fn synced_series_expand_without_their_cancelled_and_moved_occurrences() {
    let fx = GoogleFixture::new("google-series").await;
    let mut series = timed("Weekly", "2026-12-07T09:00:00+01:00", 30, "Europe/Berlin");
    series["recurrence"] = json!(["RRULE:FREQ=WEEKLY;COUNT=4"]);
    fx.put("series01", series).await;
    let mut moved = timed(
        "Weekly (moved)",
        "2026-12-14T11:00:00+01:00",
        30,
        "Europe/Berlin",
    );
    moved["recurringEventId"] = json!("series01");
    moved["originalStartTime"] =
        json!({"dateTime": "2026-12-14T09:00:00+01:00", "timeZone": "Europe/Berlin"});
    fx.put("series01_20261214T080000Z", moved).await;
    let mut cancelled = timed("Weekly", "2026-12-21T09:00:00+01:00", 30, "Europe/Berlin");
    cancelled["status"] = json!("cancelled");
    cancelled["recurringEventId"] = json!("series01");
    cancelled["originalStartTime"] =
        json!({"dateTime": "2026-12-21T09:00:00+01:00", "timeZone": "Europe/Berlin"});
    fx.put("series01_20261221T080000Z", cancelled).await;
    fx.sync().await;

    let (status, listed) = call(
        &fx.app,
        query(
            get("/v1/events", &fx.user.token),
            &[
                ("start", "2026-12-01"),
                ("end", "2027-01-01"),
                ("calendarIds", &fx.connection_id),
            ],
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK);
    let weekly = |listed: &Value| -> Vec<(String, String)> {
        listed["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| matches!(e["title"].as_str().unwrap(), "Weekly" | "Weekly (moved)"))
            .map(|e| (e["title"].as_str().unwrap().to_owned(), zoned(&e["start"])))
            .collect()
    };
    let expected = [
        ("Weekly".to_owned(), "2026-12-07T09:00:00+01:00".to_owned()),
        (
            "Weekly (moved)".to_owned(),
            "2026-12-14T11:00:00+01:00".to_owned(),
        ),
        ("Weekly".to_owned(), "2026-12-28T09:00:00+01:00".to_owned()),
    ];
    assert_eq!(weekly(&listed), expected, "{listed}");

    // The series' own instances: the same three, the override among them.
    let series_id = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["title"] == "Weekly")
        .find_map(|e| e["recurringEventId"].as_str())
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    let (status, instances) = call(
        &fx.app,
        query(
            get(&format!("/v1/events/{series_id}/instances"), &fx.user.token),
            &[("start", "2026-12-01"), ("end", "2027-01-01")],
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK, "{instances}");
    assert_eq!(weekly(&instances), expected, "{instances}");
    assert_eq!(instances["events"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn local_changes_are_written_back_once_and_a_provider_change_wins() {
    let fx = GoogleFixture::new("google-write-back").await;
    fx.sync().await;
    let create = json!({"calendarId": fx.connection_id, "title": "Written here",
        "start": {"dateTime": "2026-12-10T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-12-10T11:00:00", "timeZone": "Europe/Berlin"},
        "attendees": [{"email": "grace@example.com"}]});
    let (status, created) = call(
        &fx.app,
        send(http::Method::POST, "/v1/events", &fx.user.token, &create),
    )
    .await;
    assert_eq!(status, http::StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, key) = calsync::ids::decode_event_id(&id).unwrap();

    let pushed = fx.sync().await;
    assert_eq!(pushed.write_back.pushed, 1, "{pushed:?}");
    let provider = fx.provider().await;
    assert_eq!(
        provider.get(&key).map(|(t, s)| (t.as_str(), s.as_str())),
        Some(("Written here", "2026-12-10T09:00:00Z"))
    );
    let stored = fx
        .app
        .store
        .event(&fx.connection_id, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.sync_status, stored.pending_change),
        (calsync::model::SyncStatus::Synced, None)
    );
    // The next sync recognises our own write: still one event with that id, no duplicate.
    fx.sync().await;
    assert_eq!(fx.stored().await, fx.provider().await);

    // A retried create (the earlier push landed, its record did not): 409, no second event.
    let mut again = fx
        .app
        .store
        .event(&fx.connection_id, &key)
        .await
        .unwrap()
        .unwrap();
    again.pending_change = Some(calsync::model::PendingChange::Create);
    fx.app.store.put_events(&[again]).await.unwrap();
    assert_eq!(fx.sync().await.write_back.pushed, 1);
    assert_eq!(fx.provider().await.keys().filter(|k| **k == key).count(), 1);

    // The provider is down: the change stays pending, FAILED with the reason, and goes out
    // with a later sync.
    let path = format!("/v1/events/{id}");
    let (status, _) = call(
        &fx.app,
        send(
            http::Method::PATCH,
            &path,
            &fx.user.token,
            &json!({"location": "Room 1"}),
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK);
    fx.fault(json!({"method": "PATCH", "pathPrefix": "/google/calendar/v3/calendars", "status": 500, "times": 1})).await;
    assert_eq!(fx.sync().await.write_back.failed, 1);
    let (_, shown) = call(&fx.app, get(&path, &fx.user.token)).await;
    assert_eq!(shown["syncStatus"], "FAILED");
    assert!(
        shown["syncError"].as_str().unwrap().contains("unavailable"),
        "{shown}"
    );
    assert_eq!(fx.sync().await.write_back.pushed, 1);
    let (_, shown) = call(&fx.app, get(&path, &fx.user.token)).await;
    assert_eq!(shown["syncStatus"], "SYNCED");
    assert!(shown.get("syncError").is_none());

    // A move through the API reaches the provider.
    let (status, _) = call(
        &fx.app,
        send(
            http::Method::PATCH,
            &path,
            &fx.user.token,
            &json!({"title": "Moved here",
        "start": {"dateTime": "2026-12-11T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-12-11T11:00:00", "timeZone": "Europe/Berlin"}}),
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK);
    fx.sync().await;
    assert_eq!(
        fx.provider().await[&key],
        ("Moved here".to_owned(), "2026-12-11T09:00:00Z".to_owned())
    );

    // Changed at the provider meanwhile: the provider's version wins (seen by the sync before
    // write-back; a change landing between the two fails our PATCH's If-Match instead).
    fx.put(
        &key,
        timed(
            "Changed there",
            "2026-12-12T10:00:00+01:00",
            60,
            "Europe/Berlin",
        ),
    )
    .await;
    let (status, _) = call(
        &fx.app,
        send(
            http::Method::PATCH,
            &path,
            &fx.user.token,
            &json!({"title": "Changed here"}),
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK);
    let conflicted = fx.sync().await;
    assert_eq!(
        conflicted.superseded + conflicted.write_back.superseded,
        1,
        "{conflicted:?}"
    );
    fx.sync().await;
    assert_eq!(fx.provider().await[&key].0, "Changed there");
    assert_eq!(fx.stored().await, fx.provider().await);

    // A deletion reaches the provider too.
    let (status, _) = call(
        &fx.app,
        calsync::api::ApiRequest::new(http::Method::DELETE, &path).with_bearer(&fx.user.token),
    )
    .await;
    assert_eq!(status, http::StatusCode::NO_CONTENT);
    assert_eq!(fx.sync().await.write_back.pushed, 1);
    assert!(!fx.provider().await.contains_key(&key));
    assert_eq!(fx.stored().await, fx.provider().await);
}

#[tokio::test]
async fn a_provider_change_between_the_sync_and_the_push_fails_if_match_and_wins() {
    let fx = GoogleFixture::new("google-if-match").await;
    fx.put(
        "ifmatch01",
        timed(
            "Theirs first",
            "2026-12-14T10:00:00+01:00",
            60,
            "Europe/Berlin",
        ),
    )
    .await;
    fx.sync().await;
    let id = calsync::ids::encode_event_id(&fx.connection_id, "ifmatch01");
    let path = format!("/v1/events/{id}");
    let (status, _) = call(
        &fx.app,
        send(
            http::Method::PATCH,
            &path,
            &fx.user.token,
            &json!({"title": "Ours"}),
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK);
    // The provider changes it after our last fetch: only the write-back's If-Match can tell.
    fx.put(
        "ifmatch01",
        timed(
            "Theirs again",
            "2026-12-14T10:00:00+01:00",
            60,
            "Europe/Berlin",
        ),
    )
    .await;
    let conn = fx
        .app
        .store
        .connection(&fx.user.id, &fx.connection_id)
        .await
        .unwrap()
        .unwrap();
    let feed = calsync::sync::feeds::Feed::open(&fx.app, &conn)
        .await
        .unwrap();
    let report = calsync::sync::writeback::push_pending(&fx.app, &conn, &feed)
        .await
        .unwrap();
    assert_eq!((report.superseded, report.pushed), (1, 0), "{report:?}");
    assert_eq!(fx.provider().await["ifmatch01"].0, "Theirs again");
    let (_, shown) = call(&fx.app, get(&path, &fx.user.token)).await;
    assert_eq!(
        (shown["title"].as_str(), shown["syncStatus"].as_str()),
        (Some("Theirs again"), Some("SYNCED"))
    );
    let (_, audit) = call(&fx.app, get("/v1/audit-log", &fx.user.token)).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "EVENT_WRITE_BACK_SUPERSEDED"),
        "{audit}"
    );
}
