//! The sync queue (SQS FIFO): one message asks for one sync of one calendar. The message group is
//! the calendar, so two syncs of one calendar are never delivered at once; the deduplication id
//! makes a repeated request within SQS's five-minute window a no-op.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    pub user_id: String,
    pub connection_id: String,
    /// Why: `connected`, `scheduled`, `manual`.
    pub reason: String,
}

fn deduplication_id(request: &SyncRequest) -> String {
    let minute = chrono::Utc::now().timestamp() / 60;
    format!("{}:{}:{minute}", request.connection_id, request.reason)
}

impl App {
    /// Asks for a sync of one calendar now (a local write to push, a provider's notification):
    /// queued unless one is already waiting to start, which will serve this request too
    /// (`Store::request_sync`). Returns whether a message was sent.
    pub async fn request_sync(
        &self,
        user_id: &str,
        connection_id: &str,
        reason: &str,
    ) -> Result<bool, ApiError> {
        let now = chrono::Utc::now();
        if !self.store.request_sync(user_id, connection_id, now).await? {
            return Ok(false);
        }
        let request = SyncRequest {
            user_id: user_id.to_owned(),
            connection_id: connection_id.to_owned(),
            reason: reason.to_owned(),
        };
        // Each request that won the mark is a sync of its own: never deduplicated by SQS.
        let id = format!("{connection_id}:{reason}:{}", now.timestamp_micros());
        self.send_sync(&request, &id).await?;
        Ok(true)
    }
}

impl App {
    /// Queues up to 10 syncs in one SendMessageBatch; returns how many were accepted.
    pub async fn enqueue_syncs(&self, requests: &[SyncRequest]) -> Result<usize, ApiError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let Some(queue) = &self.config.sync_queue_url else {
            tracing::warn!("SYNC_QUEUE_URL not set; syncs not queued");
            return Ok(0);
        };
        let entries = requests
            .iter()
            .enumerate()
            .map(|(i, request)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_group_id(&request.connection_id)
                    .message_deduplication_id(deduplication_id(request))
                    .message_body(serde_json::to_string(request).map_err(ApiError::internal)?)
                    .build()
                    .map_err(ApiError::internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .sqs()
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| ApiError::internal(aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        for failed in out.failed() {
            tracing::warn!(
                id = failed.id(),
                code = failed.code(),
                "sync request not queued"
            );
        }
        Ok(out.successful().len())
    }

    /// Queues a sync; a no-op (logged) where no queue is configured.
    pub async fn enqueue_sync(&self, request: &SyncRequest) -> Result<(), ApiError> {
        self.send_sync(request, &deduplication_id(request)).await
    }

    async fn send_sync(
        &self,
        request: &SyncRequest,
        deduplication_id: &str,
    ) -> Result<(), ApiError> {
        let Some(queue) = &self.config.sync_queue_url else {
            tracing::warn!(connection = %request.connection_id, "SYNC_QUEUE_URL not set; sync not queued");
            return Ok(());
        };
        self.sqs()
            .send_message()
            .queue_url(queue)
            .message_group_id(&request.connection_id)
            .message_deduplication_id(deduplication_id)
            .message_body(serde_json::to_string(request).map_err(ApiError::internal)?)
            .send()
            .await
            .map_err(|e| ApiError::internal(aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}

/// The parts of Lambda's SQS event the queue consumers read.
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    pub message_id: String,
    #[serde(default)]
    pub body: String,
    /// For changing the message's visibility (a retry's back-off).
    #[serde(default)]
    pub receipt_handle: String,
    /// SQS's system attributes; `ApproximateReceiveCount` counts the attempts.
    #[serde(default)]
    pub attributes: std::collections::HashMap<String, String>,
}

impl SqsRecord {
    /// How many times SQS has handed this message out, this time included.
    pub fn receive_count(&self) -> u32 {
        self.attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }
}

/// Lambda's partial batch response.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: String,
}
