//! `make bench`, push: the time from a change at the emulated Google to the signed webhook's
//! delivery at an app, over real HTTP (the provider's notification into the push receiver, the
//! delivery out to the app) and real SQS and DynamoDB (moto), with the sync worker and the
//! webhook dispatcher fed by their queues as Lambda's event source mapping feeds them.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use calsync::api::ApiRequest;
use calsync::app::App;
use calsync::config::Config;
use calsync::queue::{SqsEvent, SqsRecord};
use calsync_devstack::provision::provision;
use calsync_devstack::template::Template;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const CHANGES: usize = 60;

type Handler = Arc<
    dyn Fn(
            hyper::Request<hyper::body::Incoming>,
        ) -> futures_util::future::BoxFuture<'static, hyper::Response<Full<Bytes>>>
        + Send
        + Sync,
>;

/// Serves `handler` on a bound loopback listener.
fn serve(listener: tokio::net::TcpListener, handler: Handler) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn loopback() -> Result<(tokio::net::TcpListener, String), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    Ok((listener, base))
}

/// The push receiver function, behind a minimal gateway.
fn push_receiver(app: App, notifications: Arc<AtomicU64>) -> Handler {
    Arc::new(move |req: hyper::Request<hyper::body::Incoming>| {
        let (app, notifications) = (app.clone(), notifications.clone());
        Box::pin(async move {
            notifications.fetch_add(1, Ordering::Relaxed);
            let (parts, body) = req.into_parts();
            let mut request = ApiRequest::new(parts.method.clone(), parts.uri.path());
            for (name, value) in &parts.headers {
                request = request.with_header(name.as_str(), value.to_str().unwrap_or_default());
            }
            for (k, v) in
                url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            {
                request = request.with_query(&k, &v);
            }
            request.body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            let response = app.handle(&calsync::api::service::PUSH, request).await;
            let text = match (response.raw, response.body) {
                (Some((_, text)), _) => text,
                (None, Some(json)) => json.to_string(),
                (None, None) => String::new(),
            };
            let mut out = hyper::Response::new(Full::new(Bytes::from(text)));
            *out.status_mut() = response.status;
            out
        })
    })
}

/// The app's webhook endpoint: keeps each delivery's arrival time and body, signature checked.
fn webhook_endpoint(
    secret: Arc<Mutex<String>>,
    arrivals: Arc<Mutex<Vec<(Instant, serde_json::Value)>>>,
) -> Handler {
    Arc::new(move |req: hyper::Request<hyper::body::Incoming>| {
        let (secret, arrivals) = (secret.clone(), arrivals.clone());
        Box::pin(async move {
            let at = Instant::now();
            let signature = req
                .headers()
                .get("calsync-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body).into_owned();
            let secret = secret.lock().unwrap().clone();
            let status = match calsync::api::delivery::verify(
                &signature,
                &secret,
                &text,
                chrono::Utc::now().timestamp(),
            ) {
                Ok(()) => {
                    arrivals
                        .lock()
                        .unwrap()
                        .push((at, serde_json::from_str(&text).unwrap_or_default()));
                    hyper::StatusCode::NO_CONTENT
                }
                Err(_) => hyper::StatusCode::UNAUTHORIZED,
            };
            let mut out = hyper::Response::new(Full::new(Bytes::new()));
            *out.status_mut() = status;
            out
        })
    })
}

/// Lambda's SQS event source for one queue and one consumer: long-polls, hands over batches
/// with their receive counts, deletes what succeeded. Counts the messages it handed over.
fn event_source<F, Fut>(sqs: aws_sdk_sqs::Client, queue: String, handled: Arc<AtomicU64>, handle: F)
where
    F: Fn(SqsEvent) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = calsync::queue::BatchResponse> + Send,
{
    tokio::spawn(async move {
        loop {
            let Ok(out) = sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                )
                .send()
                .await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                continue;
            }
            handled.fetch_add(messages.len() as u64, Ordering::Relaxed);
            let records = messages
                .iter()
                .map(|m| SqsRecord {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    attributes: m
                        .attributes()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect(),
                })
                .collect();
            let response = handle(SqsEvent { records }).await;
            for m in &messages {
                let failed = response
                    .batch_item_failures
                    .iter()
                    .any(|f| Some(f.item_identifier.as_str()) == m.message_id());
                if !failed {
                    let _ = sqs
                        .delete_message()
                        .queue_url(&queue)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send()
                        .await;
                }
            }
        }
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub async fn push_latency(
    sdk: &aws_config::SdkConfig,
    template: &Template,
) -> Result<(), Box<dyn std::error::Error>> {
    let emulator = calsync_provider_emulator::spawn()?;
    let provider = emulator.base_url.clone();
    let notifications = Arc::new(AtomicU64::new(0));
    let secret = Arc::new(Mutex::new(String::new()));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let (endpoint_listener, endpoint) = loopback().await?;
    serve(
        endpoint_listener,
        webhook_endpoint(secret.clone(), arrivals.clone()),
    );
    let endpoint_port = url::Url::parse(&endpoint)?.port().ok_or("no port")?;

    // The push receiver needs its URL in the configuration: an app of its own (its DynamoDB
    // requests are the notifications' cost), served once the app exists.
    let (push_listener, push_base) = loopback().await?;
    let mut env = provision(sdk, template, "bench-push-").await?.environment;
    for (k, v) in [
        ("OAUTH_CALLBACK_BASE", "http://127.0.0.1:3000".to_owned()),
        ("GOOGLE_CLIENT_ID", "bench".into()),
        ("GOOGLE_CLIENT_SECRET", "bench-secret".into()),
        (
            "GOOGLE_AUTH_URL",
            format!("{provider}/google/o/oauth2/v2/auth"),
        ),
        ("GOOGLE_TOKEN_URL", format!("{provider}/google/token")),
        ("GOOGLE_API_BASE", format!("{provider}/google/calendar/v3")),
        ("PUSH_NOTIFICATION_BASE", push_base.clone()),
        (
            "WEBHOOK_ALLOW_HTTP_LOOPBACK",
            format!("127.0.0.1:{endpoint_port}"),
        ),
    ] {
        env.insert(k.to_owned(), v);
    }
    let config = Config::from_lookup(|k| env.get(k).cloned())?;
    let app = App::new(sdk, config.clone());
    let receiver_app = App::new(sdk, config);
    serve(
        push_listener,
        push_receiver(receiver_app.clone(), notifications.clone()),
    );

    let sqs = aws_sdk_sqs::Client::new(sdk);
    let syncs = Arc::new(AtomicU64::new(0));
    let deliveries = Arc::new(AtomicU64::new(0));
    let worker_app = app.clone();
    event_source(
        sqs.clone(),
        app.config.sync_queue_url.clone().ok_or("no sync queue")?,
        syncs.clone(),
        move |event| {
            let app = worker_app.clone();
            async move { calsync::sync::worker::handle(&app, event).await }
        },
    );
    let dispatcher_app = app.clone();
    event_source(
        sqs,
        app.config
            .webhook_queue_url
            .clone()
            .ok_or("no webhook queue")?,
        deliveries.clone(),
        move |event| {
            let app = dispatcher_app.clone();
            async move { calsync::api::delivery::handle(&app, event).await }
        },
    );

    let (token, user_id, primary) = super::connect_google(&app, "push-bench@example.com").await?;
    let created = app
        .handle(
            &calsync::api::service::ALL,
            ApiRequest::new(Method::POST, "/v1/webhooks")
                .with_bearer(&token)
                .with_json(&serde_json::json!({ "url": format!("{endpoint}/hook") })),
        )
        .await
        .body
        .ok_or("no webhook")?;
    *secret.lock().unwrap() = created["secret"].as_str().ok_or("no secret")?.to_owned();
    // The connection's first syncs open the channels.
    let opened = Instant::now();
    loop {
        let calendar = app
            .store
            .connection(&user_id, &primary.id)
            .await?
            .ok_or("no calendar")?;
        if calendar.push.is_some() {
            break;
        }
        if opened.elapsed() > Duration::from_secs(60) {
            return Err("no channel opened".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    arrivals.lock().unwrap().clear();
    let (notified_before, syncs_before) = (
        notifications.load(Ordering::Relaxed),
        syncs.load(Ordering::Relaxed),
    );
    let receiver_before = receiver_app.store.stats();

    let http = reqwest::Client::new();
    let calendar_path: String =
        url::form_urlencoded::byte_serialize(primary.calendar_id.as_bytes()).collect();
    let mut latencies = Vec::new();
    for i in 0..CHANGES {
        let title = format!("Pushed {i}");
        let body = serde_json::json!({
            "summary": title,
            "start": {"dateTime": format!("2026-12-{:02}T10:00:00Z", 1 + i % 28), "timeZone": "UTC"},
            "end": {"dateTime": format!("2026-12-{:02}T11:00:00Z", 1 + i % 28), "timeZone": "UTC"},
        });
        let changed = Instant::now();
        http.put(format!(
            "{provider}/admin/google/calendars/{calendar_path}/events/pushbench{i:03}"
        ))
        .json(&body)
        .send()
        .await?;
        let arrived = loop {
            let found = arrivals.lock().unwrap().iter().find_map(|(at, delivery)| {
                delivery["data"]["changes"]
                    .as_array()?
                    .iter()
                    .any(|c| c["event"]["title"] == title.as_str())
                    .then_some(*at)
            });
            if let Some(at) = found {
                break at;
            }
            if changed.elapsed() > Duration::from_secs(30) {
                return Err(format!("change {i} never reached the webhook").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        latencies.push(arrived.saturating_duration_since(changed));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let notified = notifications.load(Ordering::Relaxed) - notified_before;
    let synced = syncs.load(Ordering::Relaxed) - syncs_before;
    let receiver_requests = receiver_app.store.stats().requests - receiver_before.requests;
    let mut sorted = latencies.clone();
    sorted.sort();
    println!(
        "push, change at Google -> signed webhook delivered, {CHANGES} changes: median {:.0} ms, p95 {:.0} ms, max {:.0} ms (target p95 <= 2,000 ms; polling alone: up to 5 minutes)",
        percentile(&sorted, 50.0).as_secs_f64() * 1000.0,
        percentile(&sorted, 95.0).as_secs_f64() * 1000.0,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    println!(
        "push, per notification: {:.2} DynamoDB requests and {:.2} SQS SendMessage in the push receiver ({notified} notifications, {synced} syncs queued)",
        receiver_requests as f64 / notified.max(1) as f64,
        synced as f64 / notified.max(1) as f64,
    );
    Ok(())
}
