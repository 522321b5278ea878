//! Scheduled jobs (EventBridge): token refresh and cleanup.

pub mod cleanup;
pub mod token_refresh;
