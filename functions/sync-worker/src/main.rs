//! sync-worker: syncs one calendar per SQS message, reporting partial batch failures.
//! The engine lives in `calsync::sync`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_queue_consumer(&calsync::lambda::SYNC_WORKER).await
}
