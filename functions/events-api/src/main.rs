//! events-api: events across all calendars - range queries, create, move, delete.
//! Routes and behaviour live in `calsync::api`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_api(&calsync::api::service::EVENTS).await
}
