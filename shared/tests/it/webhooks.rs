//! Outbound webhooks: registration rules, signed deliveries through the webhook queue (as the
//! SQS event source hands them to the dispatcher), retries with back-off, dead letters, the
//! webhook disabled with its reason, secret rotation, and re-enabling.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use calsync::api::delivery::verify;
use calsync::app::App;
use calsync::queue::{SqsEvent, SqsRecord};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::support::*;

/// A webhook endpoint on loopback: records what it receives, answers `status`.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub url: String,
    pub status: Arc<AtomicU16>,
    pub received: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = Self {
            url: format!("http://{address}/hook"),
            status: Arc::new(AtomicU16::new(200)),
            received: Arc::default(),
        };
        let shared = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let shared = shared.clone();
                            async move {
                                let signature = req
                                    .headers()
                                    .get("calsync-signature")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                shared
                                    .received
                                    .lock()
                                    .unwrap()
                                    .push((signature, String::from_utf8_lossy(&body).into_owned()));
                                let mut response = hyper::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() = hyper::StatusCode::from_u16(
                                    shared.status.load(Ordering::SeqCst),
                                )
                                .unwrap();
                                Ok::<_, Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    pub(crate) fn allowance(&self) -> (&'static str, String) {
        let url = url::Url::parse(&self.url).unwrap();
        (
            "WEBHOOK_ALLOW_HTTP_LOOPBACK",
            format!("{}:{}", url.host_str().unwrap(), url.port().unwrap()),
        )
    }

    pub(crate) fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

/// Plays the SQS event source of one queue for one consumer until the queue is empty (messages
/// waiting out a back-off included): receives batches with their receive counts, hands them to
/// `handle`, deletes what succeeded.
pub(crate) async fn pump<F, Fut>(app: &App, queue: &str, handle: F)
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = calsync::queue::BatchResponse>,
{
    // The app's own client: its queue may live on an AWS emulator of its own.
    let sqs = app.sqs().clone();
    for _ in 0..400 {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(queue)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap_or_default();
            let waiting: u64 = [
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ]
            .iter()
            .filter_map(|name| attributes.get(name)?.parse::<u64>().ok())
            .sum();
            if waiting == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            continue;
        }
        let records: Vec<SqsRecord> = messages
            .iter()
            .map(|m| {
                serde_json::from_value(json!({
                    "messageId": m.message_id().unwrap(),
                    "body": m.body().unwrap(),
                    "receiptHandle": m.receipt_handle().unwrap(),
                    "attributes": m.attributes().map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect::<std::collections::HashMap<_, _>>()).unwrap_or_default(),
                }))
                .unwrap()
            })
            .collect();
        let response = handle(SqsEvent { records }).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in &messages {
            if !failed.contains(&m.message_id().unwrap()) {
                sqs.delete_message()
                    .queue_url(queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    panic!("{queue} never emptied");
}

/// Registers a webhook through the API; its id and its signing secret.
pub(crate) async fn create_webhook(app: &App, user: &TestUser, body: Value) -> (String, String) {
    let (status, created) = call(app, send(Method::POST, "/v1/webhooks", &user.token, &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn deliver(app: &App) {
    let queue = app.config.webhook_queue_url.clone().unwrap();
    pump(app, &queue, |event| {
        calsync::api::delivery::handle(app, event)
    })
    .await;
}

/// The changes of deliveries, each checked against `secrets` (every one must sign it).
fn verified(deliveries: &[(String, String)], secrets: &[&str]) -> Vec<Value> {
    let now = chrono::Utc::now().timestamp();
    deliveries
        .iter()
        .flat_map(|(signature, body)| {
            for secret in secrets {
                verify(signature, secret, body, now)
                    .unwrap_or_else(|e| panic!("{e}: {signature} over {body}"));
            }
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["type"], "events.changed");
            body["data"]["changes"].as_array().unwrap().clone()
        })
        .collect()
}

fn kinds(changes: &[Value]) -> Vec<(String, String)> {
    changes
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["eventId"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn registration_refuses_private_and_plain_urls_and_unknown_types() {
    let app = app().await;
    let user = register(&app, "webhook-rules").await;
    for (url, why) in [
        ("http://example.com/hook", "https"),
        ("https://127.0.0.1/hook", "public"),
        ("https://10.1.2.3/hook", "public"),
        ("https://[::ffff:127.0.0.1]/hook", "public"),
        ("not a url", "URL"),
    ] {
        let (status, body) = call(
            &app,
            send(
                Method::POST,
                "/v1/webhooks",
                &user.token,
                &json!({"url": url}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(error_code(&body), "invalid_url");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{body}"
        );
    }
    let (status, body) = call(
        &app,
        send(
            Method::POST,
            "/v1/webhooks",
            &user.token,
            &json!({"url": "https://hooks.example.com/x", "events": ["event.exploded"]}),
        ),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_events")
    );
    let (status, created) = call(
        &app,
        send(
            Method::POST,
            "/v1/webhooks",
            &user.token,
            &json!({"url": "https://hooks.example.com/x"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(
        created["events"],
        json!(["event.created", "event.updated", "event.deleted"])
    );
    // Listed without its secret; another user sees none of it.
    let (_, listed) = call(&app, get("/v1/webhooks", &user.token)).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    assert!(listed["webhooks"][0].get("secret").is_none());
    let other = register(&app, "webhook-other").await;
    let id = created["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        send(
            Method::DELETE,
            &format!("/v1/webhooks/{id}"),
            &other.token,
            &json!({}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for _ in 1..calsync::store::MAX_WEBHOOKS {
        let (status, _) = call(
            &app,
            send(
                Method::POST,
                "/v1/webhooks",
                &user.token,
                &json!({"url": "https://hooks.example.com/x"}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body) = call(
        &app,
        send(
            Method::POST,
            "/v1/webhooks",
            &user.token,
            &json!({"url": "https://hooks.example.com/x"}),
        ),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "too_many_webhooks")
    );
}

#[tokio::test]
async fn deliveries_are_signed_filtered_retried_dead_lettered_and_a_failing_webhook_is_disabled() {
    let receiver = Receiver::start().await;
    let app = isolated_app(
        "webhooks",
        &[
            receiver.allowance(),
            ("WEBHOOK_RETRY_BASE_SECONDS", "1".into()),
            ("WEBHOOK_MAX_ATTEMPTS", "2".into()),
        ],
    )
    .await;
    let user = register(&app, "webhooks").await;
    let calendar = connect(&app, &user, "work", true).await;
    let (hook_id, secret) = create_webhook(
        &app,
        &user,
        json!({"url": receiver.url, "events": ["event.created", "event.deleted"]}),
    )
    .await;

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
    delete_event(&app, &user, &a).await;
    deliver(&app).await;
    let delivered = verified(&receiver.take(), &[&secret]);
    assert_eq!(
        kinds(&delivered),
        vec![
            ("created".to_owned(), a.clone()),
            ("deleted".to_owned(), a.clone())
        ],
        "in order, each once, without the update it did not ask for"
    );
    // A signature by another secret, or an old one, is refused by the receiver's check.
    let probe = signature_probe(&secret);
    assert!(verify(
        &probe.0,
        "whsec_other",
        &probe.1,
        chrono::Utc::now().timestamp()
    )
    .is_err());
    assert!(verify(
        &probe.0,
        &secret,
        &probe.1,
        chrono::Utc::now().timestamp() + 3600
    )
    .is_err());

    // Rotation: both secrets sign during the overlap.
    let (status, rotated) = call(
        &app,
        send(
            Method::POST,
            &format!("/v1/webhooks/{hook_id}/rotate-secret"),
            &user.token,
            &json!({"overlapHours": 1}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let b = create_event(
        &app,
        &user,
        &calendar.id,
        "B",
        "2026-12-11T09:00:00Z",
        "2026-12-11T10:00:00Z",
    )
    .await;
    deliver(&app).await;
    let delivered = verified(&receiver.take(), &[&secret, &new_secret]);
    assert_eq!(kinds(&delivered), vec![("created".to_owned(), b.clone())]);
    assert_eq!(delivered[0]["event"]["title"], "B");

    // The endpoint fails: two attempts each, then the dead-letter queue; the third such
    // delivery in a row disables the webhook, which says why.
    receiver.status.store(500, Ordering::SeqCst);
    for i in 0..3 {
        create_event(
            &app,
            &user,
            &calendar.id,
            &format!("F{i}"),
            "2026-12-12T09:00:00Z",
            "2026-12-12T10:00:00Z",
        )
        .await;
        deliver(&app).await;
        assert_eq!(
            receiver.take().len(),
            2,
            "attempt and retry of delivery {i}"
        );
    }
    let (_, listed) = call(&app, get("/v1/webhooks", &user.token)).await;
    let hook = &listed["webhooks"][0];
    assert_eq!(hook["enabled"], false, "{hook}");
    assert!(
        hook["disabledReason"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{hook}"
    );
    let dead = dead_letters(&app).await;
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0]["webhookId"], json!(hook_id));
    assert_eq!(
        dead[0]["delivery"]["data"]["changes"][0]["event"]["title"],
        "F0"
    );

    // Disabled: nothing goes out. Enabled again: what came meanwhile does.
    let late = create_event(
        &app,
        &user,
        &calendar.id,
        "Late",
        "2026-12-13T09:00:00Z",
        "2026-12-13T10:00:00Z",
    )
    .await;
    deliver(&app).await;
    assert!(receiver.take().is_empty());
    receiver.status.store(204, Ordering::SeqCst);
    let (status, body) = call(
        &app,
        send(
            Method::PATCH,
            &format!("/v1/webhooks/{hook_id}"),
            &user.token,
            &json!({"enabled": true}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    deliver(&app).await;
    let delivered = verified(&receiver.take(), &[&new_secret]);
    assert_eq!(kinds(&delivered), vec![("created".to_owned(), late)]);
}

/// A body and a signature of it, for checking `verify` against wrong secrets and old times.
fn signature_probe(secret: &str) -> (String, String) {
    let body = "{\"probe\":true}".to_owned();
    let header =
        calsync::api::delivery::signature_header(&[secret], chrono::Utc::now().timestamp(), &body);
    (header, body)
}

async fn dead_letters(app: &App) -> Vec<Value> {
    drain_queue(&app.config.webhook_dead_letter_url.clone().unwrap()).await
}

#[tokio::test]
async fn a_webhook_off_for_longer_than_changes_are_kept_resumes_from_the_present_and_says_so() {
    let receiver = Receiver::start().await;
    let app = isolated_app("webhooks-retention", &[receiver.allowance()]).await;
    let user = register(&app, "webhooks-retention").await;
    let calendar = connect(&app, &user, "work", true).await;
    let (id, secret) = create_webhook(&app, &user, json!({"url": receiver.url})).await;
    let path = format!("/v1/webhooks/{id}");
    let (status, _) = call(
        &app,
        send(
            Method::PATCH,
            &path,
            &user.token,
            &json!({"enabled": false}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    create_event(
        &app,
        &user,
        &calendar.id,
        "While off",
        "2026-12-10T09:00:00Z",
        "2026-12-10T10:00:00Z",
    )
    .await;
    // Turned off 31 days ago: what happened meanwhile is (as far as the webhook knows) expired.
    let mut hook = app.store.webhook(&user.id, &id).await.unwrap().unwrap();
    let version = hook.version;
    hook.disabled_at = Some(chrono::Utc::now() - chrono::Duration::days(31));
    hook.version += 1;
    app.store.save_webhook(&hook, version).await.unwrap();

    let (status, enabled) = call(
        &app,
        send(Method::PATCH, &path, &user.token, &json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert!(
        enabled["lastError"]
            .as_str()
            .unwrap()
            .contains("resumed from the present"),
        "{enabled}"
    );
    create_event(
        &app,
        &user,
        &calendar.id,
        "After",
        "2026-12-11T09:00:00Z",
        "2026-12-11T10:00:00Z",
    )
    .await;
    deliver(&app).await;
    let titles: Vec<Value> = verified(&receiver.take(), &[&secret])
        .iter()
        .map(|c| c["event"]["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("After")]);
}

/// A sync of thousands of events, followed by a webhook: every change arrives once, in order,
/// 100 a delivery, across more deliveries than one queue message makes (the rest is handed on).
#[tokio::test]
async fn thousands_of_synced_changes_reach_a_webhook_whole_and_in_order() {
    const EVENTS: usize = 2_150;
    let receiver = Receiver::start().await;
    let (_aws, app) = app_on_own_emulator("webhooks-scale", &[receiver.allowance()]).await;
    let user = register(&app, "webhooks-scale").await;
    let calendar = connect(&app, &user, "big", true).await;
    let (_, secret) = create_webhook(&app, &user, json!({"url": receiver.url})).await;
    let base = t("2021-01-01T09:00:00Z");
    let events = filler_events(
        &user.id,
        &calendar.id,
        EVENTS,
        base,
        chrono::Duration::hours(5),
    );
    // As the sync engine writes a page: recorded, stored, then announced.
    let recorded = app.store.put_events(&events).await.unwrap();
    app.announce(&recorded).await;
    deliver(&app).await;
    let deliveries = receiver.take();
    assert!(
        deliveries.len() >= EVENTS / 100,
        "{} deliveries",
        deliveries.len()
    );
    let titles: Vec<String> = verified(&deliveries, &[&secret])
        .iter()
        .map(|c| c["event"]["title"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..EVENTS).map(|i| format!("Bulk {i}")).collect();
    assert_eq!(titles, expected);
}
