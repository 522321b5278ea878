//! The API over HTTP, as Lambda sees it: each HTTP request becomes an API Gateway v2 event, read
//! by lambda_http as in Lambda, and goes through the functions' own `lambda::serve`. A path
//! `/lambda-url/<binary>/...` (how `cargo lambda watch` exposes a function, and where the local
//! gateway sends requests) is served by that function's routes only; any other path by all.

use std::convert::Infallible;
use std::net::SocketAddr;

use base64::Engine;
use calsync::app::App;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::json;

/// An HTTP request as API Gateway hands it to a function (payload format 2.0).
async fn gateway_event(req: hyper::Request<Incoming>, source: SocketAddr) -> String {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let mut query = serde_json::Map::new();
    for (name, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        // API Gateway joins repeated parameters with commas.
        let joined = match query.get(name.as_ref()).and_then(|v| v.as_str()) {
            Some(earlier) => format!("{earlier},{value}"),
            None => value.into_owned(),
        };
        query.insert(name.into_owned(), json!(joined));
    }
    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()));
            continue;
        }
        let joined = match headers.get(name.as_str()).and_then(|v| v.as_str()) {
            Some(earlier) => format!("{earlier},{value}"),
            None => value.to_owned(),
        };
        headers.insert(name.as_str().to_owned(), json!(joined));
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "local", "apiId": "local", "domainName": "127.0.0.1",
            "domainPrefix": "127", "requestId": calsync::ids::new_id(),
            "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0,
            "http": {
                "method": parts.method.as_str(), "path": path, "protocol": "HTTP/1.1",
                "sourceIp": source.ip().to_string(), "userAgent": ""
            }
        },
        "isBase64Encoded": true,
        "body": base64::engine::general_purpose::STANDARD.encode(&body),
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    event.to_string()
}

/// The function a request is addressed to, and the request as that function receives it.
fn function_of(
    mut req: hyper::Request<Incoming>,
) -> (&'static calsync::api::Service, hyper::Request<Incoming>) {
    use calsync::api::service::{
        ACCOUNTS, ALL, CALENDARS, CHANGES, CONNECTIONS, EVENTS, OAUTH_CALLBACK, PUSH,
    };
    let Some(rest) = req.uri().path().strip_prefix("/lambda-url/") else {
        return (&ALL, req);
    };
    let (binary, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let service = match binary {
        "accounts-api" => &ACCOUNTS,
        "calendars-api" => &CALENDARS,
        "events-api" => &EVENTS,
        "connections-api" => &CONNECTIONS,
        "oauth-callback" => &OAUTH_CALLBACK,
        "changes-api" => &CHANGES,
        "push-receiver" => &PUSH,
        other => panic!("no function {other}"),
    };
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    *req.uri_mut() = path_and_query.parse().expect("a path");
    (service, req)
}

async fn answer(
    app: &App,
    req: hyper::Request<Incoming>,
    source: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let (service, req) = function_of(req);
    let event = gateway_event(req, source).await;
    let Ok(request) = lambda_http::request::from_str(&event) else {
        // API Gateway itself refuses what it cannot represent.
        let mut refused = hyper::Response::new(Full::new(Bytes::from_static(
            b"{\"message\":\"Bad Request\"}",
        )));
        *refused.status_mut() = hyper::StatusCode::BAD_REQUEST;
        return refused;
    };
    let response = calsync::lambda::serve(app, service, request).await;
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(text) => Bytes::from(text),
        lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

/// Serves `app` over HTTP on a free loopback port until the test ends; returns its base URL.
pub(crate) async fn serve_http(app: App) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    serve_on(listener, app);
    format!("http://{address}")
}

/// Serves `app` on a bound listener (bound first when the app's configuration needs its URL).
pub(crate) fn serve_on(listener: tokio::net::TcpListener, app: App) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, source)) = listener.accept().await else {
                return;
            };
            let app = app.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(answer(&app, req, source).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
