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
        let Some(queue) = &self.config.sync_queue_url else {
            tracing::warn!(connection = %request.connection_id, "SYNC_QUEUE_URL not set; sync not queued");
            return Ok(());
        };
        self.sqs()
            .send_message()
            .queue_url(queue)
            .message_group_id(&request.connection_id)
            .message_deduplication_id(deduplication_id(request))
            .message_body(serde_json::to_string(request).map_err(ApiError::internal)?)
            .send()
            .await
            .map_err(|e| ApiError::internal(aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}
