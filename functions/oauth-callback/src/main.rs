//! oauth-callback: the OAuth callback - consumes the state, exchanges the code, discovers calendars.
//! Routes and behaviour live in `calsync::api`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_api(&calsync::api::service::OAUTH_CALLBACK).await
}
