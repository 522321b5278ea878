//! webhook-dispatcher: delivers a webhook's pending changes per SQS message, signed; failed
//! deliveries are retried with back-off, then dead-lettered.
//! Delivery lives in `calsync::api::delivery`; this binary only starts the Lambda runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    calsync::lambda::run_queue_consumer(&calsync::lambda::WEBHOOK_DISPATCHER).await
}
