//! Every log line of a request is JSON and carries its request id; no secret is ever logged.

use std::io::Write;
use std::sync::{Arc, Mutex};

use calsync::api::RouteGroup;
use calsync::lambda::serve;
use lambda_http::{Body, RequestExt};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

use crate::support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn request(method: &str, path: &str, body: &str, request_id: &str) -> lambda_http::Request {
    let mut context = lambda_http::Context::default();
    context.request_id = request_id.into();
    lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"))
        .header("content-type", "application/json")
        .body(Body::Text(body.into()))
        .unwrap()
        .with_lambda_context(context)
}

#[tokio::test]
async fn request_logs_are_json_with_the_request_id_and_no_secrets() {
    let app = app().await;
    let user = register(&app, "logs").await;
    let captured = Captured::default();
    let writer = captured.clone();
    let _guard = tracing::subscriber::set_default(calsync::telemetry::subscriber(
        move || writer.clone(),
        EnvFilter::new("debug"),
    ));
    let password = "a long enough password";
    let login = format!(r#"{{"email":"{}","password":"{password}"}}"#, user.email);
    let response = serve(
        &app,
        RouteGroup::Accounts,
        request("POST", "/v1/auth/login", &login, "req-login-1"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let token = match response.body() {
        Body::Text(text) => serde_json::from_str::<Value>(text).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned(),
        other => panic!("unexpected body {other:?}"),
    };
    let refused = serve(
        &app,
        RouteGroup::Accounts,
        request("POST", "/v1/auth/login", "{oops", "req-bad-2"),
    )
    .await;
    assert_eq!(refused.status(), 400);
    // A route of another function is not served by this one.
    let elsewhere = serve(
        &app,
        RouteGroup::Accounts,
        request("GET", "/v1/calendars", "", "req-other-3"),
    )
    .await;
    assert_eq!(elsewhere.status(), 404);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(lines.len() >= 6, "{text}");
    for line in &lines {
        let ids: Vec<&str> = line["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["request_id"].as_str())
            .collect();
        assert!(
            matches!(ids.as_slice(), [id] if id.starts_with("req-")),
            "line without request id: {line}"
        );
    }
    assert!(lines
        .iter()
        .any(|l| l["spans"][0]["request_id"] == "req-bad-2" && l["code"] == "invalid_json"));
    for secret in [password, token.as_str(), user.token.as_str()] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}
