//! AWS SDK configuration for the functions, read from the environment Lambda gives them.
//!
//! The SDK talks HTTP through the same reqwest client as the providers (one HTTP stack, one
//! TLS stack, roots bundled from webpki-roots: no certificate files read, no HTTP/2 code), and
//! the configuration is built from the environment directly rather than by aws-config's loader,
//! whose profile files, SSO and STS providers a Lambda function never uses (docs/decisions.md 36).
//!
//! - Region: `AWS_REGION`. Credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, as Lambda sets them.
//! - `AWS_ENDPOINT_URL` points every client at the local emulator in development; in Lambda it
//!   is unset and the real endpoints are used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{SharedCredentialsProvider, StalledStreamProtectionConfig};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::BodyExt;

/// What aws-config's defaults use: a connect timeout of 3.1 s, no overall limit (the SDK's
/// retries and the function's own timeout bound a call).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The SDK configuration of a function, from its environment.
pub fn sdk_config_from_env() -> SdkConfig {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    sdk_config(
        env("AWS_REGION"),
        env("AWS_ENDPOINT_URL"),
        SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
    )
}

/// The same configuration for the local AWS emulator at `endpoint` (tests, `make seed`,
/// `make bench`), with its dummy credentials.
pub fn emulator_sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config(
        Some("us-east-1".into()),
        Some(endpoint.to_owned()),
        SharedCredentialsProvider::new(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "emulator",
        )),
    )
}

/// The SDK configuration every function and test uses: the given region, endpoint (`None`:
/// AWS's own) and credentials, over [`ReqwestHttpClient`].
pub fn sdk_config(
    region: Option<String>,
    endpoint: Option<String>,
    credentials: SharedCredentialsProvider,
) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.map(Region::new))
        .credentials_provider(credentials)
        .http_client(ReqwestHttpClient::default())
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        )
        .stalled_stream_protection(StalledStreamProtectionConfig::enabled().build())
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new());
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    builder.build()
}

/// The SDK's HTTP client over reqwest: one reqwest client per timeout setting, kept for the
/// container's life so connections are pooled across requests.
#[derive(Debug, Default)]
pub struct ReqwestHttpClient {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

/// Connect and read timeouts, as the SDK asks for them.
type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        connectors
            .entry(key)
            .or_insert_with(|| {
                let mut builder = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .pool_idle_timeout(Duration::from_secs(60));
                if let Some(connect) = key.0 {
                    builder = builder.connect_timeout(connect);
                }
                if let Some(read) = key.1 {
                    builder = builder.read_timeout(read);
                }
                SharedHttpConnector::new(ReqwestConnector(
                    builder.build().expect("static HTTP client configuration"),
                ))
            })
            .clone()
    }
}

#[derive(Debug)]
struct ReqwestConnector(reqwest::Client);

impl HttpConnector for ReqwestConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            // The body is read by polling it, not taken as bytes: the SDK's stalled-upload check
            // counts what is polled, and a body never polled looks stalled once a slow answer
            // outlasts its grace period (20 s).
            let body = request
                .take_body()
                .collect()
                .await
                .map_err(ConnectorError::user)?
                .to_bytes();
            let request = to_reqwest(&client, request, body)?;
            let response = client.execute(request).await.map_err(connector_error)?;
            from_reqwest(response).await
        })
    }
}

fn to_reqwest(
    client: &reqwest::Client,
    request: HttpRequest,
    body: bytes::Bytes,
) -> Result<reqwest::Request, ConnectorError> {
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| ConnectorError::user(e.into()))?;
    let mut builder = client.request(method, request.uri());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    builder
        .body(body)
        .build()
        .map_err(|e| ConnectorError::user(e.into()))
}

async fn from_reqwest(response: reqwest::Response) -> Result<HttpResponse, ConnectorError> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(connector_error)?;
    let mut converted = HttpResponse::new(
        status
            .try_into()
            .map_err(|e: aws_smithy_runtime_api::http::HttpError| {
                ConnectorError::other(e.into(), None)
            })?,
        SdkBody::from(body),
    );
    for (name, value) in &headers {
        if let Ok(value) = value.to_str() {
            converted
                .headers_mut()
                .append(name.as_str().to_owned(), value.to_owned());
        }
    }
    Ok(converted)
}

fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else {
        ConnectorError::io(e.into())
    }
}
