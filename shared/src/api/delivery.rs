//! Webhook deliveries (the `webhook-dispatcher` function, fed by the FIFO webhook queue, one
//! message group per webhook): each message means "deliver what this webhook has not had".
//! The dispatcher reads the user's change log from the webhook's cursor, POSTs up to
//! [`BATCH`] changes signed as Stripe signs (`Calsync-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">`, one `v1` per valid secret), and moves the cursor on a 2xx. A failed attempt
//! is retried by SQS after a doubling back-off; after the last attempt the delivery goes to the
//! dead-letter queue, the cursor moves past it, and [`DISABLE_AFTER`] such deliveries in a row
//! disable the webhook, which says why.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::changes::{change_dtos, ChangeDto};
use super::webhooks::{audit, secret_context, PREVIOUS_SECRET, SECRET};
use crate::app::App;
use crate::crypto::Secret;
use crate::notify::{DeliveryReason, DeliveryRequest};
use crate::queue::{BatchItemFailure, BatchResponse, SqsEvent, SqsRecord};
use crate::store::{Commit, Delivered, Position, Webhook};

/// Changes per delivery.
pub const BATCH: usize = 100;
/// Dead-lettered deliveries in a row that disable a webhook.
pub const DISABLE_AFTER: u32 = 3;
/// Deliveries one message may make before it hands the rest to a fresh message.
const DELIVERIES_PER_MESSAGE: usize = 20;
/// How long a receiver has to answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Receivers should refuse signatures older than this (and we document it).
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;

/// The body of a delivery.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryBody {
    /// Stable across retries of the same delivery: receivers deduplicate by it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub webhook_id: String,
    pub created_at: super::instant::Instant,
    pub data: DeliveryData,
}

#[derive(Serialize)]
pub struct DeliveryData {
    pub changes: Vec<ChangeDto>,
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `"<timestamp>.<body>"`, hex.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    crate::ids::hex(&mac.finalize().into_bytes())
}

/// The `Calsync-Signature` header: the time and one `v1` per secret.
pub fn signature_header(secrets: &[&str], timestamp: i64, body: &str) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&sign(secret, timestamp, body));
    }
    header
}

/// How a receiver checks a delivery: some `v1` matches `secret`, and `t` is within the
/// tolerance of `now` (a replayed old delivery is refused).
pub fn verify(header: &str, secret: &str, body: &str, now: i64) -> Result<(), &'static str> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("no timestamp")?;
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECONDS {
        return Err("timestamp outside the tolerance");
    }
    let expected = sign(secret, timestamp, body);
    if signatures
        .iter()
        .any(|s| crate::crypto::constant_time_eq(s.as_bytes(), expected.as_bytes()))
    {
        Ok(())
    } else {
        Err("no matching signature")
    }
}

/// The back-off before attempt `attempt + 1`: the base, doubling, at most 12 hours (SQS's
/// longest visibility timeout).
fn backoff(app: &App, attempt: u32) -> Duration {
    let doubled =
        app.config.webhook_retry_base * 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    doubled.min(Duration::from_secs(12 * 3600))
}

pub async fn handle(app: &App, event: SqsEvent) -> BatchResponse {
    let mut response = BatchResponse::default();
    for record in event.records {
        let request: DeliveryRequest = match serde_json::from_str(&record.body) {
            Ok(request) => request,
            Err(e) => {
                tracing::error!(message = %record.message_id, error = %e, "unreadable delivery request dropped");
                continue;
            }
        };
        if !deliver_pending(app, &request, &record).await {
            response.batch_item_failures.push(BatchItemFailure {
                item_identifier: record.message_id,
            });
        }
    }
    response
}

/// Delivers the webhook's pending changes; false when the message is to be retried.
async fn deliver_pending(app: &App, request: &DeliveryRequest, record: &SqsRecord) -> bool {
    let attempt = record.receive_count();
    for delivered in 0..DELIVERIES_PER_MESSAGE {
        let hook = match app
            .store
            .webhook(&request.user_id, &request.webhook_id)
            .await
        {
            Ok(Some(hook)) if hook.enabled => hook,
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(webhook = %request.webhook_id, error = %e, "webhook not read; retried");
                return false;
            }
        };
        let step = match next_delivery(app, &hook).await {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(webhook = %hook.id, error = %e, "changes not read; retried");
                return false;
            }
        };
        let Some((next, body)) = step else {
            return true;
        };
        let Some(body) = body else {
            // Nothing of the kinds it takes: skip ahead.
            if let Err(e) = app
                .store
                .advance_webhook(&hook, next, Delivered::Nothing)
                .await
            {
                tracing::warn!(webhook = %hook.id, error = %e, "cursor not moved");
                return false;
            }
            continue;
        };
        match post(app, &hook, &body).await {
            Ok(()) => {
                if let Err(e) = app
                    .store
                    .advance_webhook(&hook, next, Delivered::Ok(Utc::now()))
                    .await
                {
                    tracing::warn!(webhook = %hook.id, error = %e, "delivered, cursor not moved; the delivery may repeat");
                    return false;
                }
            }
            Err(error) if delivered > 0 => {
                // This message's receive count belongs to the deliveries before: the failing
                // one starts its own count in a fresh message.
                let _ = app.store.note_webhook_error(&hook, &error).await;
                app.announce_to(&hook.user_id, &hook.id, DeliveryReason::Retry)
                    .await;
                return true;
            }
            Err(error) if attempt < app.config.webhook_max_attempts => {
                tracing::info!(webhook = %hook.id, attempt, error = %error, "delivery failed; retried");
                let _ = app.store.note_webhook_error(&hook, &error).await;
                retry_later(app, record, backoff(app, attempt)).await;
                return false;
            }
            Err(error) => {
                give_up(app, &hook, next, &body, &error, attempt).await;
                return true;
            }
        }
    }
    app.announce_to(&request.user_id, &request.webhook_id, DeliveryReason::More)
        .await;
    true
}

/// The next delivery from the webhook's cursor: where the cursor goes after it, and its body
/// (`None` when none of the changes is of a kind the webhook takes). `None` when caught up.
async fn next_delivery(
    app: &App,
    hook: &Webhook,
) -> Result<Option<(Position, Option<String>)>, crate::error::ApiError> {
    let read = app
        .store
        .read_changes(&hook.user_id, hook.cursor(), BATCH, Utc::now())
        .await?;
    let Some(next) = read.next else {
        return Ok(None);
    };
    let commits: Vec<Commit> = read
        .commits
        .into_iter()
        .map(|mut commit| {
            commit.entries.retain(|e| hook.kinds.contains(&e.kind));
            commit
        })
        .collect();
    if commits.iter().all(|c| c.entries.is_empty()) {
        return Ok(Some((next, None)));
    }
    let changes = change_dtos(app, &hook.user_id, &commits).await?;
    let position = hook.cursor();
    let body = DeliveryBody {
        id: format!("dlv_{}_{}_{}", hook.id, position.seq, position.offset),
        kind: "events.changed",
        webhook_id: hook.id.clone(),
        created_at: Utc::now().into(),
        data: DeliveryData { changes },
    };
    let text = serde_json::to_string(&body).map_err(crate::error::ApiError::internal)?;
    Ok(Some((next, Some(text))))
}

/// One POST of a delivery; the error says what went wrong, for the webhook's `lastError`.
async fn post(app: &App, hook: &Webhook, body: &str) -> Result<(), String> {
    let url = app
        .config
        .webhook_policy
        .check_field(&hook.url, "url")
        .map_err(|e| e.to_string())?;
    let secrets = signing_secrets(app, hook).await?;
    let exposed: Vec<&str> = secrets.iter().map(Secret::expose).collect();
    let timestamp = Utc::now().timestamp();
    let response = app
        .http()
        .post(url)
        .timeout(DELIVERY_TIMEOUT)
        .header("content-type", "application/json")
        .header("user-agent", "calsync-webhooks/1")
        .header(
            "calsync-signature",
            signature_header(&exposed, timestamp, body),
        )
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| crate::providers::transport_error(e).to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the endpoint answered HTTP {}", status.as_u16()))
    }
}

async fn signing_secrets(app: &App, hook: &Webhook) -> Result<Vec<Secret>, String> {
    let cipher = app.cipher().map_err(|e| e.message)?;
    let mut secrets = vec![cipher
        .open(
            &hook.secret,
            secret_context(&hook.user_id, &hook.id, SECRET),
        )
        .await
        .map_err(|e| e.to_string())?];
    if let (Some(previous), Some(until)) = (&hook.previous_secret, hook.previous_until) {
        if until > Utc::now() {
            secrets.push(
                cipher
                    .open(
                        previous,
                        secret_context(&hook.user_id, &hook.id, PREVIOUS_SECRET),
                    )
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    Ok(secrets)
}

async fn retry_later(app: &App, record: &SqsRecord, wait: Duration) {
    let Some(queue) = &app.config.webhook_queue_url else {
        return;
    };
    if record.receipt_handle.is_empty() {
        return;
    }
    let seconds = i32::try_from(wait.as_secs())
        .unwrap_or(43_200)
        .clamp(1, 43_200);
    if let Err(e) = app
        .sqs()
        .change_message_visibility()
        .queue_url(queue)
        .receipt_handle(&record.receipt_handle)
        .visibility_timeout(seconds)
        .send()
        .await
    {
        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "back-off not set; the queue's visibility timeout applies");
    }
}

/// After the last attempt: the delivery goes to the dead-letter queue, the cursor past it, and
/// a webhook that keeps failing is disabled with the reason.
async fn give_up(
    app: &App,
    hook: &Webhook,
    next: Position,
    body: &str,
    error: &str,
    attempts: u32,
) {
    tracing::warn!(webhook = %hook.id, attempts, error, "delivery dead-lettered");
    if let Some(queue) = &app.config.webhook_dead_letter_url {
        let letter = serde_json::json!({
            "webhookId": hook.id, "userId": hook.user_id, "url": hook.url,
            "attempts": attempts, "error": error,
            "delivery": serde_json::from_str::<serde_json::Value>(body).unwrap_or_default(),
        });
        let sent = app
            .sqs()
            .send_message()
            .queue_url(queue)
            .message_group_id(&hook.id)
            .message_deduplication_id(format!(
                "{}:{}:{}",
                hook.id, hook.cursor_seq, hook.cursor_offset
            ))
            .message_body(letter.to_string())
            .send()
            .await;
        if let Err(e) = sent {
            tracing::error!(webhook = %hook.id, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "dead letter not stored");
        }
    }
    if let Err(e) = app
        .store
        .advance_webhook(hook, next, Delivered::DeadLettered(error.to_owned()))
        .await
    {
        tracing::warn!(webhook = %hook.id, error = %e, "cursor not moved past the dead letter");
        return;
    }
    if hook.failed_deliveries + 1 >= DISABLE_AFTER {
        disable(app, hook, error).await;
    }
}

async fn disable(app: &App, hook: &Webhook, error: &str) {
    let Ok(Some(mut current)) = app.store.webhook(&hook.user_id, &hook.id).await else {
        return;
    };
    let expected = current.version;
    current.version += 1;
    current.enabled = false;
    current.disabled_at = Some(Utc::now());
    current.disabled_reason = Some(format!(
        "{DISABLE_AFTER} deliveries in a row failed after {} attempts each; the last: {error}",
        app.config.webhook_max_attempts
    ));
    match app.store.save_webhook(&current, expected).await {
        Ok(()) => audit(app, &current, "WEBHOOK_DISABLED").await,
        Err(e) => tracing::warn!(webhook = %hook.id, error = %e, "webhook not disabled"),
    }
}
