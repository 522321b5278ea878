//! connections-api: connecting Google and Microsoft accounts (OAuth start) and Apple accounts (CalDAV).
//! Routes and behaviour live in `calsync::api`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_api(&calsync::api::service::CONNECTIONS).await
}
