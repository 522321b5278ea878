//! changes-api: how other apps follow a user's calendars: the change log (`GET /v1/changes`),
//! signed webhooks, secret ICS feeds.
//! Routes and behaviour live in `calsync::api`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_api(&calsync::api::service::CHANGES).await
}
