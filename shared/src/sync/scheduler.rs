//! The sync scheduler (EventBridge, every minute): finds calendars whose `nextSyncAt` has passed
//! through the sharded `bySyncDue` index (shards read concurrently), claims each by moving its
//! `nextSyncAt` forward, and sends them to the sync queue in batches of 10.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::engine::SYNC_INTERVAL;
use crate::app::App;
use crate::error::ApiError;
use crate::queue::SyncRequest;
use crate::store::SYNC_SHARDS;

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleReport {
    pub due: usize,
    pub queued: usize,
}

pub async fn run(app: &App, now: DateTime<Utc>) -> Result<ScheduleReport, ApiError> {
    let mut shards = tokio::task::JoinSet::new();
    for shard in 0..SYNC_SHARDS {
        let store = app.store.clone();
        shards.spawn(async move { store.due_connections(shard, now).await });
    }
    let mut due = Vec::new();
    while let Some(found) = shards.join_next().await {
        due.extend(found.map_err(ApiError::internal)??);
    }
    let mut report = ScheduleReport {
        due: due.len(),
        ..Default::default()
    };
    let mut batch = Vec::new();
    for (user_id, connection_id) in due {
        // Claimed first, so the next tick does not send it again even if this one is slow.
        if app
            .store
            .claim_due(&user_id, &connection_id, now, now + SYNC_INTERVAL)
            .await?
        {
            batch.push(SyncRequest {
                user_id,
                connection_id,
                reason: "scheduled".into(),
            });
        }
        if batch.len() == 10 {
            report.queued += app.enqueue_syncs(&std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        report.queued += app.enqueue_syncs(&batch).await?;
    }
    tracing::info!(?report, "sync scheduler done");
    Ok(report)
}
