//! What every HTTP function binary runs: build the app once per container, then serve.

use std::convert::Infallible;

use lambda_http::{service_fn, Body, Request, RequestExt, Response};
use tracing::Instrument;

use futures_util::future::BoxFuture;

use crate::api::{ApiRequest, Service};
use crate::app::App;
use crate::config::Config;
use crate::queue::{BatchResponse, SqsEvent};

/// Builds the app from the environment; shared by every function.
pub async fn app_from_env() -> Result<App, lambda_http::Error> {
    crate::telemetry::init();
    let config = Config::from_env()?;
    let sdk = crate::aws::sdk_config_from_env();
    Ok(App::new(&sdk, config))
}

/// Runs an API function that serves the routes of `service`.
pub async fn run_api(service: &'static Service) -> Result<(), lambda_http::Error> {
    let app = app_from_env().await?;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(serve(app, service, req).await)
    }))
    .await
}

/// One API Gateway request through the app, inside a span naming its request id.
pub async fn serve(app: &App, service: &Service, req: Request) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %request_id);
    async move {
        // The route, not the raw path, is logged (by `App::handle`): a path can carry a feed token.
        let api_request = to_api_request(&req);
        let response = app.handle(service, api_request).await;
        tracing::info!(status = response.status.as_u16(), "response");
        let mut builder = Response::builder().status(response.status);
        for (name, value) in &response.headers {
            builder = builder.header(name, value);
        }
        let body = match (response.body, response.raw) {
            (_, Some((content_type, text))) => {
                builder = builder.header("content-type", content_type);
                Body::Text(text)
            }
            (Some(json), None) => {
                builder = builder.header("content-type", "application/json");
                Body::Text(json.to_string())
            }
            (None, None) => Body::Empty,
        };
        builder
            .body(body)
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
    .instrument(span)
    .await
}

fn to_api_request(req: &Request) -> ApiRequest {
    let mut query = std::collections::HashMap::new();
    for (name, value) in req
        .query_string_parameters_ref()
        .into_iter()
        .flat_map(|q| q.iter())
    {
        query
            .entry(name.to_owned())
            .or_insert_with(|| value.to_owned());
    }
    let headers = req
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let source_ip = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok()),
        _ => None,
    };
    ApiRequest {
        source_ip,
        method: req.method().clone(),
        path: match req.raw_http_path() {
            "" => req.uri().path().to_owned(),
            raw => raw.to_owned(),
        },
        query,
        headers,
        body: req.body().to_vec(),
    }
}

type JobResult = Result<serde_json::Value, lambda_http::Error>;

/// A scheduled job. Each job binary names one, so it links that job only.
pub struct Job {
    name: &'static str,
    run: for<'a> fn(&'a App, chrono::DateTime<chrono::Utc>) -> BoxFuture<'a, JobResult>,
}

fn report<T: serde::Serialize, E: Into<lambda_http::Error>>(outcome: Result<T, E>) -> JobResult {
    Ok(serde_json::to_value(outcome.map_err(Into::into)?)?)
}

pub static TOKEN_REFRESH: Job = Job {
    name: "token-refresh",
    run: |app, now| {
        Box::pin(async move { report(crate::jobs::token_refresh::run(app, now).await) })
    },
};
pub static CLEANUP: Job = Job {
    name: "cleanup",
    run: |app, now| Box::pin(async move { report(crate::jobs::cleanup::run(app, now).await) }),
};
pub static SYNC_SCHEDULER: Job = Job {
    name: "sync-scheduler",
    run: |app, now| Box::pin(async move { report(crate::sync::scheduler::run(app, now).await) }),
};

/// Runs a scheduled job function: each EventBridge event runs the job once, at the event's time.
pub async fn run_job(job: &'static Job) -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent};
    let app = app_from_env().await?;
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let span =
                tracing::info_span!("job", request_id = %event.context.request_id, job = job.name);
            async move {
                // The clock, not the event's `time`: a delayed or replayed event must not act on
                // a stale idea of what has expired.
                let now = chrono::Utc::now();
                tracing::info!(scheduled = ?event.payload.get("time"), "job started");
                (job.run)(app, now).await
            }
            .instrument(span)
            .await
        },
    ))
    .await
}

/// An SQS-fed function: its handler answers a batch with its partial failures.
pub struct QueueConsumer {
    name: &'static str,
    handle: for<'a> fn(&'a App, SqsEvent) -> BoxFuture<'a, BatchResponse>,
}

pub static SYNC_WORKER: QueueConsumer = QueueConsumer {
    name: "sync",
    handle: |app, event| Box::pin(crate::sync::worker::handle(app, event)),
};
pub static WEBHOOK_DISPATCHER: QueueConsumer = QueueConsumer {
    name: "deliver",
    handle: |app, event| Box::pin(crate::api::delivery::handle(app, event)),
};

/// Runs an SQS-fed function, reporting partial batch failures.
pub async fn run_queue_consumer(
    consumer: &'static QueueConsumer,
) -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent};
    let app = app_from_env().await?;
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| async move {
            let span = tracing::info_span!("batch", request_id = %event.context.request_id, consumer = consumer.name);
            let response = (consumer.handle)(app, event.payload).instrument(span).await;
            Ok::<_, lambda_http::Error>(response)
        },
    ))
    .await
}
