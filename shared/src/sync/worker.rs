//! The sync worker (SQS, batch of up to 10, ReportBatchItemFailures): one message = one calendar.
//! A failure worth retrying is reported for that message only; the rest of the batch succeeds.

use super::engine::{sync_connection, SyncOutcome};
use crate::app::App;
use crate::queue::SyncRequest;
pub use crate::queue::{BatchItemFailure, BatchResponse, SqsEvent, SqsRecord};

/// Syncs each message's calendar, one after the other (one FIFO group per calendar, so a
/// batch holds different calendars).
pub async fn handle(app: &App, event: SqsEvent) -> BatchResponse {
    let mut response = BatchResponse::default();
    for record in event.records {
        let request: SyncRequest = match serde_json::from_str(&record.body) {
            Ok(request) => request,
            Err(e) => {
                // Retrying cannot fix a malformed message; the DLQ would only collect it.
                tracing::error!(message = %record.message_id, error = %e, "unreadable sync request dropped");
                continue;
            }
        };
        match sync_connection(app, &request.user_id, &request.connection_id).await {
            Ok(SyncOutcome::Synced(_) | SyncOutcome::Gone | SyncOutcome::Busy) => {}
            Err(e) if e.is_retryable() => {
                tracing::warn!(message = %record.message_id, error = %e, "sync will be retried");
                response.batch_item_failures.push(BatchItemFailure {
                    item_identifier: record.message_id,
                });
            }
            // Recorded on the calendar (status, audit) and retried by the scheduler's back-off.
            Err(e) => {
                tracing::warn!(message = %record.message_id, error = %e, "sync failed; not retried")
            }
        }
    }
    response
}
