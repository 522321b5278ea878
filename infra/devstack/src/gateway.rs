//! A local API Gateway (HTTP API): routes each method and path to the function template.yaml's
//! HttpApi events name, the `$default` route taking what no other route matches, through
//! function URLs (`<upstream>/lambda-url/<binary><path>`, as `cargo lambda watch` serves them),
//! and answers CORS as the HttpApi's `CorsConfiguration` says, so local URLs behave as deployed.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::app_page;
use crate::http_relay::relay;
use crate::template::{path_matches, Cors, HttpRoute, Template, TemplateError};

/// API Gateway's own payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The path of the catch-all route in template.yaml.
pub const DEFAULT_ROUTE: &str = "$default";

pub struct Gateway {
    routes: Vec<HttpRoute>,
    /// The binary behind `$default`, if the template has one.
    fallback: Option<String>,
    cors: Option<Cors>,
    upstream: String,
    client: reqwest::Client,
    /// Serve the stand-in app page at [`app_page::PATH`] (the dev stack's `AppRedirectUrl`).
    app_page: bool,
    /// Where [`WEBHOOK_SINK_PATH`] keeps what it receives (the dev stack's stand-in webhook).
    webhook_sink: Option<std::path::PathBuf>,
}

/// A stand-in app endpoint for webhooks in the dev stack: each POST is kept as a file.
pub const WEBHOOK_SINK_PATH: &str = "/dev/webhook-sink";

/// API Gateway's own answers (when no route or function answers), in its own shape.
fn gateway_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

impl Gateway {
    pub fn new(template: &Template, upstream: &str) -> Result<Self, TemplateError> {
        let (fallback, routes): (Vec<HttpRoute>, Vec<HttpRoute>) = template
            .http_routes()?
            .into_iter()
            .partition(|r| r.path == DEFAULT_ROUTE);
        Ok(Self {
            routes,
            fallback: fallback.into_iter().next().map(|r| r.binary),
            cors: template.cors()?,
            upstream: upstream.trim_end_matches('/').to_owned(),
            // Redirects go back to the browser, as API Gateway passes them.
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| TemplateError::Invalid(format!("HTTP client: {e}")))?,
            app_page: false,
            webhook_sink: None,
        })
    }

    /// Also serves the page the OAuth callback redirects to in the dev stack.
    pub fn with_app_page(mut self) -> Self {
        self.app_page = true;
        self
    }

    /// Also keeps every POST to [`WEBHOOK_SINK_PATH`] as `<dir>/<n>.json` (signature and body),
    /// so webhooks can be tried without a server of one's own.
    pub fn with_webhook_sink(mut self, dir: std::path::PathBuf) -> Self {
        self.webhook_sink = Some(dir);
        self
    }

    async fn keep_delivery(dir: &std::path::Path, req: Request<Incoming>) -> Response<Full<Bytes>> {
        use http_body_util::BodyExt;
        let signature = req
            .headers()
            .get("calsync-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
            return gateway_response(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let kept = serde_json::json!({"signature": signature, "body": body});
        let name = format!("{}.json", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f"));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join(name), format!("{kept:#}\n")));
        match written {
            Ok(()) => {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }
            Err(_) => gateway_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the sink could not write",
            ),
        }
    }

    pub fn route_count(&self) -> usize {
        self.routes.len() + usize::from(self.fallback.is_some())
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if self.app_page && req.method() == Method::GET && req.uri().path() == app_page::PATH {
            let query = url_query(req.uri().query().unwrap_or_default());
            let mut page = Response::new(Full::new(Bytes::from(app_page::render(&query))));
            page.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return page;
        }
        if let Some(dir) = &self.webhook_sink {
            if req.method() == Method::POST && req.uri().path() == WEBHOOK_SINK_PATH {
                return Self::keep_delivery(dir, req).await;
            }
        }
        let origin = req.headers().get("origin").cloned();
        // A preflight is answered by the gateway itself when CORS is configured, as API Gateway does.
        if let (Some(cors), true) = (&self.cors, is_preflight(&req)) {
            return cors.preflight(origin.as_ref());
        }
        let mut response = self.forward(req).await;
        if let Some(cors) = &self.cors {
            // API Gateway's CORS headers replace a function's (cargo lambda's function URLs add
            // permissive ones of their own, which a deployed API never sends).
            let headers = response.headers_mut();
            let upstream: Vec<_> = headers
                .keys()
                .filter(|k| k.as_str().starts_with("access-control-") || k.as_str() == "vary")
                .cloned()
                .collect();
            for name in upstream {
                headers.remove(name);
            }
            cors.decorate(origin.as_ref(), headers);
        }
        response
    }

    async fn forward(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let method = req.method().as_str().to_owned();
        let binary = self
            .routes
            .iter()
            .find(|r| (r.method == method || r.method == "ANY") && path_matches(&r.path, &path))
            .map(|r| &r.binary)
            .or(self.fallback.as_ref());
        let Some(binary) = binary else {
            return gateway_response(StatusCode::NOT_FOUND, "Not Found");
        };
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let url = format!("{}/lambda-url/{binary}{path}{query}", self.upstream);
        let (parts, body) = req.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return gateway_response(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
            }
        };
        match relay(&self.client, parts.method, &url, &parts.headers, body).await {
            Ok(response) => response,
            Err(e) => {
                eprintln!("gateway: {method} {path} -> {url}: {e}");
                gateway_response(
                    StatusCode::BAD_GATEWAY,
                    "function unreachable (is cargo lambda watch running?)",
                )
            }
        }
    }
}

fn url_query(query: &str) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn is_preflight(req: &Request<Incoming>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key("origin")
        && req.headers().contains_key("access-control-request-method")
}

/// Serves `gateway` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
