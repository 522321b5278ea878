//! `gateway --listen 127.0.0.1:3000 --upstream http://127.0.0.1:9000 [--template template.yaml]`
//! A local API Gateway: routes each method and path to the function template.yaml's HttpApi
//! events name, through `cargo lambda watch`'s function URLs, so local URLs are deployed URLs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use calsync_devstack::http_relay::{arg, relay};
use calsync_devstack::template::{path_matches, HttpRoute, Template};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// API Gateway's own payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;

struct Gateway {
    routes: Vec<HttpRoute>,
    upstream: String,
    client: reqwest::Client,
}

fn json_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    response
}

impl Gateway {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let method = req.method().as_str().to_owned();
        let Some(route) = self
            .routes
            .iter()
            .find(|r| r.method == method && path_matches(&r.path, &path))
        else {
            return json_response(StatusCode::NOT_FOUND, "Not Found");
        };
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let url = format!("{}/lambda-url/{}{path}{query}", self.upstream, route.binary);
        let (parts, body) = req.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return json_response(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
            }
        };
        match relay(&self.client, parts.method, &url, &parts.headers, body).await {
            Ok(response) => response,
            Err(e) => {
                eprintln!("gateway: {method} {path} -> {url}: {e}");
                json_response(
                    StatusCode::BAD_GATEWAY,
                    "function unreachable (is cargo lambda watch running?)",
                )
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = arg(&args, "--listen")
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .parse()?;
    if !listen.ip().is_loopback() {
        return Err("the local gateway listens on loopback only".into());
    }
    let upstream = arg(&args, "--upstream").unwrap_or_else(|| "http://127.0.0.1:9000".into());
    let template =
        PathBuf::from(arg(&args, "--template").unwrap_or_else(|| "template.yaml".into()));
    let routes = Template::load(&template)?.http_routes()?;
    let gateway = Arc::new(Gateway {
        routes,
        upstream,
        // Redirects go back to the browser, as API Gateway passes them.
        client: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "calsync API: http://{listen}/v1  ({} routes from template.yaml)",
        gateway.routes.len()
    );
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
