//! calendars-api: the user's calendars - list, rename or recolour, remove.
//! Routes and behaviour live in `calsync::api`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_api(&calsync::api::service::CALENDARS).await
}
