//! token-refresh: refreshes provider tokens that expire within the hour (EventBridge, hourly).
//! The job lives in `calsync::jobs`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_job(&calsync::lambda::TOKEN_REFRESH).await
}
