//! Deletes expired sessions, expired or consumed OAuth states, and events soft-deleted more than
//! 30 days ago (seed pattern 7), and finishes account erasures too big for their request. DynamoDB TTL does this in AWS eventually; this job makes it
//! prompt, and is the only cleaner on the local emulator.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::App;
use crate::error::ApiError;

/// At most this many items of each kind per run; the next run continues.
const BATCH: usize = 5_000;

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    pub sessions: usize,
    pub oauth_states: usize,
    pub purged_events: usize,
    /// Account erasures a request could not finish, continued.
    pub erasures: crate::erasure::ErasureReport,
}

pub async fn run(app: &App, now: DateTime<Utc>) -> Result<CleanupReport, ApiError> {
    let report = CleanupReport {
        sessions: app
            .store
            .delete_expired("SESSION", now.timestamp(), BATCH)
            .await?,
        oauth_states: app
            .store
            .delete_expired("OAUTH", now.timestamp(), BATCH)
            .await?,
        purged_events: app
            .store
            .purge_deleted_events(now.timestamp(), BATCH)
            .await?,
        erasures: crate::erasure::continue_due(app, now.timestamp()).await?,
    };

    tracing::info!(?report, "cleanup done");
    Ok(report)
}
