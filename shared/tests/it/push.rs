//! Changes in seconds, end to end, per provider: an event changes at the emulated provider, the
//! provider's notification reaches the push receiver over HTTP, the sync it queues runs, and the
//! change arrives at an app's webhook (signed) and in the change feed; with notifications lost,
//! duplicated and late, forged ones refused, and channels stopped with their calendar.

use std::time::{Duration, Instant};

use calsync::app::App;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::emulated::EmulatedCalendar;
use crate::http_api::serve_on;
use crate::support::*;
use crate::webhooks::{pump, Receiver};

/// FIFO queues of the test's own (sync, webhooks, webhook dead letters), so that draining them
/// never runs another test's work.
async fn own_queues(tag: &str) -> Vec<(&'static str, String)> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let mut urls = Vec::new();
    for (var, name) in [
        ("SYNC_QUEUE_URL", "sync"),
        ("WEBHOOK_QUEUE_URL", "hooks"),
        ("WEBHOOK_DEAD_LETTER_URL", "hooks-dlq"),
    ] {
        let out = sqs
            .create_queue()
            .queue_name(format!(
                "{tag}-{name}-{}.fifo",
                &calsync::ids::new_id()[..8]
            ))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .unwrap();
        urls.push((var, out.queue_url.unwrap()));
    }
    urls
}

struct PushFixture {
    provider: &'static str,
    fx: EmulatedCalendar,
    receiver: Receiver,
    secret: String,
}

impl PushFixture {
    /// The pushed calendar as stored now.
    async fn calendar(&self) -> calsync::model::Connection {
        let (user, id) = (&self.fx.user.id, &self.fx.connection_id);
        self.app()
            .store
            .connection(user, id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn new(tag: &str, provider: &'static str) -> Self {
        let receiver = Receiver::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut extra = own_queues(tag).await;
        extra.extend([
            ("PUSH_NOTIFICATION_BASE", base),
            receiver.allowance(),
            ("WEBHOOK_RETRY_BASE_SECONDS", "1".to_owned()),
        ]);
        let fx = EmulatedCalendar::connect(tag, provider, &extra).await;
        serve_on(listener, fx.app.clone());
        let (_, secret) =
            crate::webhooks::create_webhook(&fx.app, &fx.user, json!({"url": receiver.url})).await;
        let fixture = Self {
            provider,
            fx,
            receiver,
            secret,
        };
        // The first syncs (queued by the connection) open the channels.
        fixture.run_queues().await;
        fixture.delivered().await;
        fixture
    }

    fn app(&self) -> &App {
        &self.fx.app
    }

    /// What AWS runs around the functions: the sync queue into the worker, the webhook queue
    /// into the dispatcher, until both are empty.
    async fn run_queues(&self) {
        let app = self.app();
        let sync = app.config.sync_queue_url.clone().unwrap();
        let hooks = app.config.webhook_queue_url.clone().unwrap();
        pump(app, &sync, |event| {
            calsync::sync::worker::handle(app, event)
        })
        .await;
        pump(app, &hooks, |event| {
            calsync::api::delivery::handle(app, event)
        })
        .await;
    }

    /// The changes delivered to the app's webhook so far (signatures checked), by title.
    async fn delivered(&self) -> Vec<(String, String)> {
        let now = chrono::Utc::now().timestamp();
        self.receiver
            .take()
            .iter()
            .flat_map(|(signature, body)| {
                calsync::api::delivery::verify(signature, &self.secret, body, now).unwrap();
                let body: Value = serde_json::from_str(body).unwrap();
                body["data"]["changes"].as_array().unwrap().clone()
            })
            .map(|c| {
                (
                    c["kind"].as_str().unwrap().to_owned(),
                    c["event"]["title"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Waits, running the queues, until the webhook received a change titled `title`; returns
    /// how long that took and everything delivered meanwhile. `None` after `patience`.
    async fn await_delivery(
        &self,
        title: &str,
        patience: Duration,
    ) -> Option<(Duration, Vec<(String, String)>)> {
        let start = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < patience {
            self.run_queues().await;
            seen.extend(self.delivered().await);
            if seen.iter().any(|(_, t)| t == title) {
                return Some((start.elapsed(), seen));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    async fn faults(&self, faults: Value) {
        let response = self
            .fx
            .http
            .put(format!("{}/admin/push", self.fx.emulator.base_url))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    async fn admin_list(&self, path: &str) -> Value {
        self.fx
            .http
            .get(format!("{}{path}", self.fx.emulator.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn change(&self, id: &str, title: &str) {
        let event = if self.provider == "google" {
            json!({"summary": title,
                "start": {"dateTime": "2026-12-20T10:00:00Z", "timeZone": "UTC"},
                "end": {"dateTime": "2026-12-20T11:00:00Z", "timeZone": "UTC"}})
        } else {
            json!({"subject": title,
                "start": {"dateTime": "2026-12-20T10:00:00.0000000", "timeZone": "UTC"},
                "end": {"dateTime": "2026-12-20T11:00:00.0000000", "timeZone": "UTC"}})
        };
        self.fx.put_at(&format!("/events/{id}"), event).await;
    }
}

fn count(delivered: &[(String, String)], title: &str) -> usize {
    delivered.iter().filter(|(_, t)| t == title).count()
}

/// The shared script: a change seen through, then duplicated, late and lost notifications.
async fn changes_reach_the_app_through_push(p: &PushFixture) -> Vec<Duration> {
    let (_, start) = call(
        p.app(),
        query(get("/v1/changes", &p.fx.user.token), &[("cursor", "now")]),
    )
    .await;
    let cursor = start["nextCursor"].as_str().unwrap().to_owned();
    let mut latencies = Vec::new();

    p.change("pushed01", "Pushed").await;
    let (took, seen) = p
        .await_delivery("Pushed", Duration::from_secs(20))
        .await
        .expect("delivered by push");
    assert_eq!(count(&seen, "Pushed"), 1, "{seen:?}");
    latencies.push(took);

    // Duplicated: the second notification costs at most a sync that finds nothing new.
    p.faults(json!({"duplicateNext": 1})).await;
    p.change("pushed02", "Duplicated").await;
    let (took, seen) = p
        .await_delivery("Duplicated", Duration::from_secs(20))
        .await
        .expect("delivered");
    latencies.push(took);
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.run_queues().await;
    let later = p.delivered().await;
    assert_eq!(
        count(&seen, "Duplicated") + count(&later, "Duplicated"),
        1,
        "{seen:?} {later:?}"
    );

    // Late: delivered when it comes.
    p.faults(json!({"delayMs": 1500})).await;
    p.change("pushed03", "Late").await;
    let (took, _) = p
        .await_delivery("Late", Duration::from_secs(20))
        .await
        .expect("a late notification still arrives");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    p.faults(json!({"delayMs": 0})).await;

    // Lost: nothing comes; the calendar's safety poll brings the change.
    p.faults(json!({"dropNext": 1})).await;
    p.change("pushed04", "Lost").await;
    assert!(
        p.await_delivery("Lost", Duration::from_secs(2))
            .await
            .is_none(),
        "the notification was dropped"
    );
    // The sync that followed the last notification set the next poll within the pushed
    // interval; the scheduler (tested on its own in sync_jobs) queues it when due.
    let item = raw_item(
        "CONNECTIONS_TABLE",
        &format!("USER#{}", p.fx.user.id),
        &format!("CONN#{}", p.fx.connection_id),
    )
    .await
    .unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(item["nextSyncAt"].as_s().unwrap()).unwrap();
    let bound = chrono::Utc::now()
        + calsync::sync::push::PUSHED_SYNC_INTERVAL
        + chrono::Duration::minutes(1);
    assert!(next <= bound, "next poll {next} after {bound}");
    p.app()
        .enqueue_sync(&calsync::queue::SyncRequest {
            user_id: p.fx.user.id.clone(),
            connection_id: p.fx.connection_id.clone(),
            reason: "scheduled".into(),
        })
        .await
        .unwrap();
    p.await_delivery("Lost", Duration::from_secs(20))
        .await
        .expect("the poll brings it");

    // The change feed says the same, in order.
    let (feed, _) = crate::changes::drain(p.app(), &p.fx.user.token, Some(&cursor), 100).await;
    let titles: Vec<&str> = feed
        .iter()
        .filter_map(|c| c["event"]["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        vec!["Pushed", "Duplicated", "Late", "Lost"],
        "{feed:?}"
    );
    latencies
}

/// A forged or unknown notification is refused and queues nothing.
async fn forged_notifications_are_refused(p: &PushFixture, channel_id: &str) {
    let sync_queue = p.app().config.sync_queue_url.clone().unwrap();
    let google = calsync::api::ApiRequest::new(Method::POST, "/push/google")
        .with_header("x-goog-channel-id", channel_id)
        .with_header("x-goog-channel-token", "guessed")
        .with_header("x-goog-resource-state", "exists");
    let (status, _) = call(p.app(), google).await;
    assert!(status == StatusCode::NOT_FOUND, "{status}");
    let graph = calsync::api::ApiRequest::new(Method::POST, "/push/microsoft").with_json(
        &json!({"value": [{"subscriptionId": channel_id, "clientState": "guessed", "changeType": "updated"}]}),
    );
    let (status, body) = call(p.app(), graph).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["accepted"], 0, "{body}");
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let waiting = sqs
        .receive_message()
        .queue_url(&sync_queue)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(waiting.is_empty(), "a refused notification queued a sync");
}

/// The emulator's state of a Google channel (`live`, `stopped`, `expired`).
async fn channel_state(p: &PushFixture, id: &str) -> Value {
    let channels = p.admin_list("/admin/google/channels").await;
    channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == json!(id))
        .map(|c| c["state"].clone())
        .unwrap_or(Value::Null)
}

/// The Google channel is stopped at the emulator, and our record of it is gone.
async fn assert_stopped_and_forgotten(p: &PushFixture, id: &str) {
    assert_eq!(channel_state(p, id).await, json!("stopped"));
    let record = p.app().store.push_channel(id).await.unwrap();
    assert!(record.is_none(), "the channel's record is kept");
}

async fn channel_of(
    app: &App,
    user: &TestUser,
    connection_id: &str,
) -> calsync::model::PushChannel {
    app.store
        .connection(&user.id, connection_id)
        .await
        .unwrap()
        .unwrap()
        .push
        .expect("the sync opened a channel")
}

#[tokio::test]
async fn google_changes_reach_the_app_in_seconds_through_watch_channels() {
    let p = PushFixture::new("push-google", "google").await;
    let channel = channel_of(p.app(), &p.fx.user, &p.fx.connection_id).await;
    assert!(channel.resource_id.is_some());
    let latencies = changes_reach_the_app_through_push(&p).await;
    eprintln!("google: change to webhook delivery {latencies:?}");
    forged_notifications_are_refused(&p, &channel.id).await;

    // A channel within a day of its end is replaced by the next sync (Google channels cannot be
    // extended), the old one stopped, and changes keep coming through the new one.
    let calendar = p.calendar().await;
    let ending = calsync::model::PushChannel {
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        ..channel.clone()
    };
    p.app()
        .store
        .set_push_channel(&calendar, &ending)
        .await
        .unwrap();
    p.fx.sync().await;
    let renewed = channel_of(p.app(), &p.fx.user, &p.fx.connection_id).await;
    assert_ne!(renewed.id, channel.id);
    assert!(renewed.expires_at > chrono::Utc::now() + chrono::Duration::days(6));
    assert_stopped_and_forgotten(&p, &channel.id).await;
    p.change("pushed06", "After renewal").await;
    p.await_delivery("After renewal", Duration::from_secs(20))
        .await
        .expect("the new channel delivers");
    let channel = renewed;

    // Deleting the calendar stops its channel at Google.
    let (status, _) = call(
        p.app(),
        send(
            Method::DELETE,
            &format!("/v1/calendars/{}", p.fx.connection_id),
            &p.fx.user.token,
            &json!({}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_stopped_and_forgotten(&p, &channel.id).await;
}

#[tokio::test]
async fn graph_changes_reach_the_app_in_seconds_through_subscriptions_and_lifecycle_events() {
    let p = PushFixture::new("push-graph", "microsoft").await;
    let first = channel_of(p.app(), &p.fx.user, &p.fx.connection_id).await;
    let latencies = changes_reach_the_app_through_push(&p).await;
    eprintln!("graph: change to webhook delivery {latencies:?}");
    forged_notifications_are_refused(&p, &first.id).await;

    let lifecycle = |id: String, event: &'static str| {
        let p = &p;
        async move {
            let response =
                p.fx.http
                    .post(format!(
                        "{}/admin/microsoft/subscriptions/{id}/lifecycle",
                        p.fx.emulator.base_url
                    ))
                    .json(&json!({ "event": event }))
                    .send()
                    .await
                    .unwrap();
            assert!(
                response.status().is_success(),
                "{event}: {}",
                response.status()
            );
            // The notification reaches the receiver (the emulator logs its answer); then the
            // sync it asked for runs.
            let sent = Instant::now();
            loop {
                let log = p.admin_list("/admin/push/log").await;
                let answered = log["deliveries"].as_array().unwrap().iter().any(|d| {
                    d["kind"] == event && d["subscriptionId"] == json!(id) && d["pending"] == false
                });
                if answered {
                    break;
                }
                assert!(
                    sent.elapsed() < Duration::from_secs(20),
                    "{event} never delivered: {log}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            p.run_queues().await;
        }
    };
    // reauthorizationRequired: the subscription is renewed (same id, later expiry).
    lifecycle(first.id.clone(), "reauthorizationRequired").await;
    let renewed = channel_of(p.app(), &p.fx.user, &p.fx.connection_id).await;
    assert_eq!(renewed.id, first.id);
    assert!(!renewed.renew);
    assert!(
        renewed.expires_at >= first.expires_at,
        "{renewed:?} {first:?}"
    );
    // subscriptionRemoved: a new subscription replaces it, and changes still come through.
    lifecycle(first.id.clone(), "subscriptionRemoved").await;
    let second = channel_of(p.app(), &p.fx.user, &p.fx.connection_id).await;
    assert_ne!(second.id, first.id);
    p.change("pushed05", "After removal").await;
    p.await_delivery("After removal", Duration::from_secs(20))
        .await
        .expect("the new subscription delivers");
    // missed: the next sync lists in full (and finds nothing new).
    lifecycle(second.id.clone(), "missed").await;
    let calendar = p.calendar().await;
    assert!(
        calendar.sync_token.is_some(),
        "the full listing stored a new cursor"
    );
    assert!(
        p.delivered().await.is_empty(),
        "a full listing of unchanged events announces nothing"
    );

    // Disconnecting the account deletes its subscriptions at Graph.
    let account = calendar.account_id.clone().unwrap();
    let (status, _) = call(
        p.app(),
        send(
            Method::DELETE,
            &format!("/v1/connections/{account}"),
            &p.fx.user.token,
            &json!({}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let subscriptions = p.admin_list("/admin/microsoft/subscriptions").await;
    let live: Vec<&Value> = subscriptions
        .as_array()
        .or_else(|| subscriptions["subscriptions"].as_array())
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "live")
        .collect();
    assert!(live.is_empty(), "{subscriptions}");
}
