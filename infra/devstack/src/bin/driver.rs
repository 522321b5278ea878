//! `driver --endpoint URL --queue-url URL [--webhook-queue-url URL] [--lambda http://127.0.0.1:9000]`
//! Plays, for `make dev`, what AWS does around the functions: EventBridge schedules (sync-scheduler
//! every minute, cleanup every 15 minutes, token-refresh hourly; each also once at start) and the
//! SQS event-source mappings of the sync worker and the webhook dispatcher (each long-polls its
//! queue, invokes its function with batches of up to 10, deletes what succeeded, leaves reported
//! failures for redelivery).

use std::time::{Duration, Instant};

use calsync_devstack::http_relay::arg;
use calsync_devstack::local_sdk_config;
use serde_json::{json, Value};

struct Schedule {
    function: &'static str,
    every: Duration,
    next: Instant,
}

async fn invoke(
    http: &reqwest::Client,
    lambda: &str,
    function: &str,
    payload: &Value,
) -> Result<Value, String> {
    let url = format!("{lambda}/2015-03-31/functions/{function}/invocations");
    let response = http
        .post(&url)
        .json(payload)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{function}: HTTP {status}: {body}"));
    }
    serde_json::from_str(&body).or(Ok(Value::Null))
}

fn scheduled_event(function: &str) -> Value {
    json!({
        "version": "0", "id": calsync_devstack::peer::free_port().map(|p| p.to_string()).unwrap_or_default(),
        "detail-type": "Scheduled Event", "source": "aws.events", "account": "000000000000",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "region": "us-east-1",
        "resources": [format!("arn:aws:events:us-east-1:000000000000:rule/{function}")], "detail": {}
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = arg(&args, "--endpoint").ok_or("--endpoint URL is required")?;
    let queue = arg(&args, "--queue-url").ok_or("--queue-url URL is required")?;
    let webhook_queue = arg(&args, "--webhook-queue-url");
    let lambda = arg(&args, "--lambda").unwrap_or_else(|| "http://127.0.0.1:9000".into());
    let sqs = aws_sdk_sqs::Client::new(&local_sdk_config(&endpoint).await);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()?;
    let now = Instant::now();
    let mut schedules = [
        Schedule {
            function: "sync-scheduler",
            every: Duration::from_secs(60),
            next: now,
        },
        Schedule {
            function: "cleanup",
            every: Duration::from_secs(900),
            next: now,
        },
        Schedule {
            function: "token-refresh",
            every: Duration::from_secs(3600),
            next: now,
        },
    ];
    tokio::spawn(consume(
        sqs.clone(),
        http.clone(),
        lambda.clone(),
        queue,
        "sync-worker",
    ));
    if let Some(webhook_queue) = webhook_queue {
        tokio::spawn(consume(
            sqs.clone(),
            http.clone(),
            lambda.clone(),
            webhook_queue,
            "webhook-dispatcher",
        ));
    }
    println!("driver: schedules and the queues' event-source mappings are running");
    loop {
        for schedule in schedules.iter_mut().filter(|s| s.next <= Instant::now()) {
            schedule.next = Instant::now() + schedule.every;
            match invoke(
                &http,
                &lambda,
                schedule.function,
                &scheduled_event(schedule.function),
            )
            .await
            {
                Ok(report) => println!("driver: {} -> {report}", schedule.function),
                Err(e) => eprintln!("driver: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The SQS event-source mapping of one queue: long-polls it, invokes `function` with batches of
/// up to 10 (with their receive counts, as Lambda passes them), deletes what succeeded, and
/// leaves reported failures for redelivery.
async fn consume(
    sqs: aws_sdk_sqs::Client,
    http: reqwest::Client,
    lambda: String,
    queue: String,
    function: &'static str,
) {
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                eprintln!(
                    "driver: receive: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                    .collect();
                json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": attributes, "messageAttributes": {}, "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs", "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{function}"), "awsRegion": "us-east-1"
                })
            })
            .collect();
        let failed: Vec<String> =
            match invoke(&http, &lambda, function, &json!({ "Records": records })).await {
                Ok(response) => response["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect(),
                Err(e) => {
                    eprintln!("driver: {e}");
                    // The whole batch failed: every message comes back after its visibility timeout.
                    messages
                        .iter()
                        .filter_map(|m| m.message_id().map(str::to_owned))
                        .collect()
                }
            };
        println!(
            "driver: {function} took {} message(s), {} to retry",
            messages.len(),
            failed.len()
        );
        for m in messages
            .iter()
            .filter(|m| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
        {
            if let Some(handle) = m.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(&queue)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
    }
}
