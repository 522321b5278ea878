//! Microsoft Graph sync against the emulator: calendarView delta paging to a deltaLink,
//! `@removed` (deleted, and moved out of the window), Windows zone names, a lost delta token, and
//! a seeded convergence run under faults.

use std::collections::BTreeMap;

use calsync::sync::feeds::graph_window;
use calsync::time::key_format;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};

use crate::emulated::EmulatedCalendar;
use crate::support::*;
use crate::sync_caldav::{seed, Rng};

struct GraphFixture(EmulatedCalendar);

impl std::ops::Deref for GraphFixture {
    type Target = EmulatedCalendar;
    fn deref(&self) -> &EmulatedCalendar {
        &self.0
    }
}

impl GraphFixture {
    async fn new(tag: &str) -> Self {
        // Provider calls time out after 1.5 s, so a delayed answer is a real timeout.
        let extra = [("PROVIDER_TIMEOUT_MS", "1500".into())];
        Self(EmulatedCalendar::connect(tag, "microsoft", &extra).await)
    }

    /// The provider's instances in our window: id -> (subject, start UTC).
    async fn provider(&self) -> BTreeMap<String, (String, String)> {
        let window = graph_window();
        let listing = self
            .provider_listing(&format!(
                "/events?startDateTime={}&endDateTime={}",
                key_format(window.start),
                key_format(window.end)
            ))
            .await;
        listing["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let local = NaiveDateTime::parse_from_str(
                    e["start"]["dateTime"].as_str().unwrap(),
                    "%Y-%m-%dT%H:%M:%S%.f",
                )
                .unwrap();
                let start = key_format(DateTime::<Utc>::from_naive_utc_and_offset(local, Utc));
                (
                    e["id"].as_str().unwrap().to_owned(),
                    (
                        e["subject"].as_str().unwrap_or("(no title)").to_owned(),
                        start,
                    ),
                )
            })
            .collect()
    }
}

fn local_event(subject: &str, start: &str, end: &str, zone: &str) -> Value {
    json!({"subject": subject, "start": {"dateTime": start, "timeZone": zone}, "end": {"dateTime": end, "timeZone": zone}})
}

#[tokio::test]
async fn graph_delta_sync_follows_removals_windows_zones_and_a_lost_token() {
    let fx = GraphFixture::new("graph-sync").await;
    fx.put_at(
        "/events/pst01",
        local_event(
            "Pacific",
            "2026-12-03T09:00:00",
            "2026-12-03T10:00:00",
            "Pacific Standard Time",
        ),
    )
    .await;
    let first = fx.sync().await;
    assert!(first.full, "{first:?}");
    assert_eq!(fx.stored().await, fx.provider().await);
    let stored = fx
        .app
        .store
        .event(&fx.connection_id, "pst01")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.timezone.as_deref(),
        Some("America/Los_Angeles"),
        "Windows zone mapped to IANA"
    );
    assert_eq!(key_format(stored.start_time), "2026-12-03T17:00:00Z");

    // Deleted, and moved out of the window: both arrive as @removed.
    let victim = fx
        .provider()
        .await
        .into_keys()
        .find(|k| k != "pst01")
        .unwrap();
    fx.delete(&victim).await;
    fx.put_at(
        "/events/pst01",
        local_event(
            "Pacific",
            "2029-12-03T09:00:00",
            "2029-12-03T10:00:00",
            "Pacific Standard Time",
        ),
    )
    .await;
    let changed = fx.sync().await;
    assert!(!changed.full && changed.deleted >= 2, "{changed:?}");
    assert_eq!(fx.stored().await, fx.provider().await);

    fx.http
        .post(fx.admin("/invalidate-delta-tokens"))
        .send()
        .await
        .unwrap();
    fx.put_at(
        "/events/late01",
        local_event("Late", "2026-12-04T09:00:00", "2026-12-04T09:30:00", "UTC"),
    )
    .await;
    let recovered = fx.sync().await;
    assert!(recovered.cursor_lost && recovered.full, "{recovered:?}");
    assert_eq!(fx.stored().await, fx.provider().await);
}

#[tokio::test]
async fn graph_converges_under_faults_seeded() {
    let seed = seed();
    const STEPS: usize = 50;
    println!("graph convergence: seed={seed} steps={STEPS} (replay with CALSYNC_SEED={seed})");
    let fx = GraphFixture::new("graph-converge").await;
    let mut rng = Rng(seed);
    let mut ids: Vec<String> = Vec::new();
    let zones = [
        "Pacific Standard Time",
        "W. Europe Standard Time",
        "UTC",
        "Tokyo Standard Time",
    ];
    let slot = |rng: &mut Rng| {
        let (day, hour) = (1 + rng.below(27), 7 + rng.below(11));
        (
            format!("2026-12-{day:02}T{hour:02}:00:00"),
            format!("2026-12-{day:02}T{hour:02}:45:00"),
        )
    };
    let mut faults = 0;
    for step in 0..STEPS {
        let pick = |rng: &mut Rng, ids: &Vec<String>| {
            ids.get(rng.below(ids.len().max(1) as u64) as usize)
                .cloned()
        };
        match rng.below(8) {
            0 | 1 => {
                let id = format!("conv{step:03}");
                let (start, end) = slot(&mut rng);
                fx.put_at(
                    &format!("/events/{id}"),
                    local_event(
                        &format!("Event {step}"),
                        &start,
                        &end,
                        zones[rng.below(4) as usize],
                    ),
                )
                .await;
                ids.push(id);
            }
            2 | 3 => {
                if let Some(id) = pick(&mut rng, &ids) {
                    let (start, end) = slot(&mut rng);
                    fx.put_at(
                        &format!("/events/{id}"),
                        local_event(
                            &format!("Changed {step}"),
                            &start,
                            &end,
                            zones[rng.below(4) as usize],
                        ),
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
            _ => {
                faults += 1;
                match rng.below(5) {
                    0 => fx.fault(json!({"pathPrefix": "/microsoft/v1.0/me", "status": 429, "retryAfter": 1, "times": 1})).await,
                    1 => fx.fault(json!({"pathPrefix": "/microsoft/v1.0/me", "status": 503, "times": 1})).await,
                    2 => fx.fault(json!({"pathPrefix": "/microsoft/v1.0/me", "malformedItem": true, "times": 1})).await,
                    3 => {
                        fx.http.post(fx.admin("/invalidate-delta-tokens")).send().await.unwrap();
                    }
                    _ => fx.fault(json!({"pathPrefix": "/microsoft/v1.0/me", "delayMs": 2500, "times": 1})).await,
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
        "graph convergence
: {} events, {faults} fault rounds",
        want.len()
    );
}

#[tokio::test]
async fn local_changes_are_written_back_to_graph_and_recognised_by_the_next_delta() {
    let fx = GraphFixture::new("graph-write-back").await;
    fx.sync().await;
    let (status, created) = call(&fx.app, send(http::Method::POST, "/v1/events", &fx.user.token, &json!({
        "calendarId": fx.connection_id, "title": "Written here",
        "start": {"dateTime": "2026-12-10T10:00:00Z"}, "end": {"dateTime": "2026-12-10T11:00:00Z"}}))).await;
    assert_eq!(status, http::StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, key) = calsync::ids::decode_event_id(&id).unwrap();

    let pushed = fx.sync().await;
    assert_eq!(pushed.write_back.pushed, 1, "{pushed:?}");
    let stored = fx
        .app
        .store
        .event(&fx.connection_id, &key)
        .await
        .unwrap()
        .unwrap();
    let graph_id = stored.provider_event_id.clone().unwrap();
    assert_ne!(graph_id, key, "Graph chose its own id");
    assert_eq!(
        fx.provider().await[&graph_id],
        ("Written here".to_owned(), "2026-12-10T10:00:00Z".to_owned())
    );

    // The next delta lists the event under Graph's id: it is recognised, not imported twice.
    fx.sync().await;
    let mine: Vec<String> = fx
        .stored()
        .await
        .into_iter()
        .filter(|(_, (title, _))| title.starts_with("Written") || title.starts_with("Renamed"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(mine, std::slice::from_ref(&key));

    let path = format!("/v1/events/{id}");
    let (status, _) = call(
        &fx.app,
        send(
            http::Method::PATCH,
            &path,
            &fx.user.token,
            &json!({"title": "Renamed here"}),
        ),
    )
    .await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(fx.sync().await.write_back.pushed, 1);
    assert_eq!(fx.provider().await[&graph_id].0, "Renamed here");

    let (status, _) = call(
        &fx.app,
        calsync::api::ApiRequest::new(http::Method::DELETE, &path).with_bearer(&fx.user.token),
    )
    .await;
    assert_eq!(status, http::StatusCode::NO_CONTENT);
    assert_eq!(fx.sync().await.write_back.pushed, 1);
    assert!(!fx.provider().await.contains_key(&graph_id));
    // Its @removed arrives under Graph's id and finds our event (already deleted): no strays.
    fx.sync().await;
    assert!(!fx.stored().await.contains_key(&graph_id) && !fx.stored().await.contains_key(&key));
}
