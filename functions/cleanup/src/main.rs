//! cleanup: deletes expired sessions and expired or consumed OAuth states (EventBridge, every 15 minutes).
//! The job lives in `calsync::jobs`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_job(&calsync::lambda::CLEANUP).await
}
