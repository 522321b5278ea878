//! What follows a stored change of events: its write-back is queued at once (not at the next
//! scheduled sync), and the user's webhooks hear of it through their delivery queue.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::model::Event;
use crate::store::Reservation;

/// A message of the webhook queue: deliver what this webhook has not had yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRequest {
    pub user_id: String,
    pub webhook_id: String,
}

/// Why a delivery run is queued, which decides how SQS deduplicates it.
#[derive(Clone, Copy, Debug)]
pub enum DeliveryReason {
    /// Changes were recorded in the commit numbered so: a retried write that tells of the same
    /// commit twice queues one run.
    Commit(u64),
    /// The webhook was enabled again.
    Resume,
    /// A delivery failed and waits for its next attempt.
    Retry,
    /// A run ended with changes left for the next one.
    More,
}

impl DeliveryReason {
    fn deduplication_id(self, webhook_id: &str) -> String {
        let once = |what: &str| {
            let now = chrono::Utc::now().timestamp_micros();
            format!("{webhook_id}:{what}:{now}")
        };
        match self {
            Self::Commit(first) => format!("{webhook_id}:commit{first}"),
            Self::Resume => once("resume"),
            Self::Retry => once("retry"),
            Self::More => once("more"),
        }
    }
}

impl App {
    /// After a local write of `events` (one calendar): queues their write-back when any has a
    /// change for the provider, and tells the webhooks. The write is stored either way; a
    /// failure here is logged, and the scheduled sync pushes the change.
    pub async fn after_local_write(&self, events: &[&Event], reservations: &[Reservation]) {
        if let Some(event) = events.iter().find(|e| e.pending_change.is_some()) {
            if let Err(e) = self
                .request_sync(&event.user_id, &event.connection_id, "local_change")
                .await
            {
                tracing::warn!(connection = %event.connection_id, error = %e, "write-back not queued; the scheduled sync will push it");
            }
        }
        self.announce(reservations).await;
    }

    /// Tells the webhooks listed on each reservation that changes were recorded: one message
    /// per webhook and commit, deduplicated by SQS if a retried write tells twice.
    pub async fn announce(&self, reservations: &[Reservation]) {
        for reservation in reservations {
            let reason = DeliveryReason::Commit(reservation.first);
            for webhook_id in &reservation.webhooks {
                self.announce_to(&reservation.user_id, webhook_id, reason)
                    .await;
            }
        }
    }

    /// Queues a delivery run for one webhook (best effort: the next change queues another).
    pub async fn announce_to(&self, user_id: &str, webhook_id: &str, reason: DeliveryReason) {
        let Some(queue) = &self.config.webhook_queue_url else {
            return;
        };
        let request = DeliveryRequest {
            user_id: user_id.to_owned(),
            webhook_id: webhook_id.to_owned(),
        };
        let body = match serde_json::to_string(&request) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "delivery request not serialised");
                return;
            }
        };
        let sent = self
            .sqs()
            .send_message()
            .queue_url(queue)
            .message_group_id(webhook_id)
            .message_deduplication_id(reason.deduplication_id(webhook_id))
            .message_body(body)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::warn!(webhook = webhook_id, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "webhook delivery not queued; the next change will queue it");
        }
    }
}
