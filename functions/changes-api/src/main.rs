//! changes-api: the change log (`GET /v1/changes`) and the outbound webhooks that follow it.
//! Routes and behaviour live in `calsync::api`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_api(&calsync::api::service::CHANGES).await
}
