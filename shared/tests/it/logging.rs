//! Every log line of a request is JSON and carries its request id; no secret is ever logged.

use std::io::Write;
use std::sync::{Arc, Mutex};

use calsync::api::service::{ACCOUNTS, CHANGES, OAUTH_CALLBACK};
use calsync::lambda::serve;
use lambda_http::{Body, RequestExt};
use serde_json::Value;
use tracing_subscriber::filter::Targets;

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
    crate::support::logs_reach_test_subscribers();
    let _guard = tracing::subscriber::set_default(calsync::telemetry::subscriber(
        move || writer.clone(),
        "debug".parse::<Targets>().unwrap(),
    ));
    let password = "a long enough password";
    let login = format!(r#"{{"email":"{}","password":"{password}"}}"#, user.email);
    let response = serve(
        &app,
        &ACCOUNTS,
        request("POST", "/v1/auth/login", &login, "req-login-1"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let session = match response.body() {
        Body::Text(text) => serde_json::from_str::<Value>(text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    let token = session["token"].as_str().unwrap().to_owned();
    let device_token = session["deviceToken"].as_str().unwrap().to_owned();
    let on_device = format!(
        r#"{{"email":"{}","password":"{password}","deviceToken":"{device_token}"}}"#,
        user.email
    );
    let response = serve(
        &app,
        &ACCOUNTS,
        request("POST", "/v1/auth/login", &on_device, "req-login-device"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let refused = serve(
        &app,
        &ACCOUNTS,
        request("POST", "/v1/auth/login", "{oops", "req-bad-2"),
    )
    .await;
    assert_eq!(refused.status(), 400);
    // A route of another function is not served by this one.
    let elsewhere = serve(
        &app,
        &ACCOUNTS,
        request("GET", "/v1/calendars", "", "req-other-3"),
    )
    .await;
    assert_eq!(elsewhere.status(), 404);

    // A feed's URL is its credential; OAuth states and codes are too.
    let mut create = request("POST", "/v1/feeds", "{}", "req-feed-4");
    create.headers_mut().insert(
        "authorization",
        format!("Bearer {}", user.token).parse().unwrap(),
    );
    let created = serve(&app, &CHANGES, create).await;
    assert_eq!(created.status(), 201);
    let feed_url = match created.body() {
        Body::Text(text) => serde_json::from_str::<Value>(text).unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned(),
        other => panic!("unexpected body {other:?}"),
    };
    let feed_token = feed_url.rsplit('/').nth(1).unwrap().to_owned();
    let feed_path = format!("/v1/feeds/{feed_token}/calendar.ics");
    let read = serve(&app, &CHANGES, request("GET", &feed_path, "", "req-feed-5")).await;
    assert_eq!(read.status(), 200);
    let (state, code) = ("state-secret-0123456789", "code-secret-0123456789");
    let callback = request("GET", "/oauth/google/callback", "", "req-callback-6")
        .with_query_string_parameters(std::collections::HashMap::from([
            ("state".to_owned(), state.to_owned()),
            ("code".to_owned(), code.to_owned()),
        ]));
    serve(&app, &OAUTH_CALLBACK, callback).await;

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
    assert!(lines
        .iter()
        .any(|l| l["route"] == "/v1/feeds/{token}/calendar.ics"));
    for secret in [
        password,
        token.as_str(),
        device_token.as_str(),
        user.token.as_str(),
        feed_token.as_str(),
        state,
        code,
    ] {
        assert!(!text.contains(secret), "a secret reached the log: {secret}");
    }
}

#[tokio::test]
async fn a_connect_refresh_and_failure_run_logs_no_secret() {
    use calsync::crypto::SecretContext;
    use calsync::jobs::token_refresh::{self, Outcome};

    let captured = Captured::default();
    let writer = captured.clone();
    crate::support::logs_reach_test_subscribers();
    let _guard = tracing::subscriber::set_default(calsync::telemetry::subscriber(
        move || writer.clone(),
        "trace".parse::<Targets>().unwrap(),
    ));
    let (emulator, app, user) = crate::oauth_flow::setup("secret-logs").await;
    let query = crate::oauth_flow::consent(&app, &user, "google").await;
    assert!(crate::oauth_flow::callback(&app, "google", &query)
        .await
        .contains("status=connected"));
    let account_id = app.store.connections(&user.id).await.unwrap()[0]
        .account_id
        .clone()
        .unwrap();
    let cipher = app.cipher().unwrap();
    let ctx = |field| SecretContext {
        user_id: &user.id,
        account_id: &account_id,
        field,
    };
    let mut secrets = vec![
        query.query["state"].clone(),
        query.query["code"].clone(),
        query
            .cookie
            .as_ref()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned(),
        user.token.clone(),
        "google-client-secret-value".to_owned(),
        "a long enough password".to_owned(),
    ];
    let account = app
        .store
        .account(&user.id, &account_id)
        .await
        .unwrap()
        .unwrap();
    secrets.push(
        cipher
            .open(account.access_token.as_ref().unwrap(), ctx("access_token"))
            .await
            .unwrap()
            .expose()
            .to_owned(),
    );
    secrets.push(
        cipher
            .open(
                account.refresh_token.as_ref().unwrap(),
                ctx("refresh_token"),
            )
            .await
            .unwrap()
            .expose()
            .to_owned(),
    );

    let outcome = token_refresh::refresh_account(&app, &user.id, &account_id, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Refreshed);
    let account = app
        .store
        .account(&user.id, &account_id)
        .await
        .unwrap()
        .unwrap();
    secrets.push(
        cipher
            .open(account.access_token.as_ref().unwrap(), ctx("access_token"))
            .await
            .unwrap()
            .expose()
            .to_owned(),
    );

    // The grant dies at the provider: the next refresh fails with invalid_grant.
    let fault = serde_json::json!({"pathPrefix": "/google/token", "status": 400,
        "body": "{\"error\":\"invalid_grant\",\"error_description\":\"Token has been expired or revoked.\"}", "times": 1});
    reqwest::Client::new()
        .post(format!("{}/admin/faults", emulator.base_url))
        .json(&fault)
        .send()
        .await
        .unwrap();
    let outcome = token_refresh::refresh_account(&app, &user.id, &account_id, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::ReauthorizationRequired);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().count() > 20,
        "the run was logged at trace level:\n{text}"
    );
    assert!(text.contains("token refresh failed"));
    for secret in &secrets {
        assert!(
            secret.len() >= 8 && !text.contains(secret.as_str()),
            "a secret reached the log: {}...",
            &secret[..4]
        );
    }
}
