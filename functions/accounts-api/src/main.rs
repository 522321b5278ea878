//! accounts-api: registration, login, logout, profile, audit log and the OpenAPI document.
//! Routes and behaviour live in `calsync::api`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_api(&calsync::api::service::ACCOUNTS).await
}
