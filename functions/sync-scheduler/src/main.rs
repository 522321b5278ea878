//! sync-scheduler: queues the calendars whose next sync is due (EventBridge, every minute).
//! The job lives in `calsync::sync::scheduler`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_job(&calsync::lambda::SYNC_SCHEDULER).await
}
