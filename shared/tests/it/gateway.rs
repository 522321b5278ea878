//! The local gateway as a browser app meets it (issue 11, items 1 and 2): CORS preflights and
//! credentialed requests answered as template.yaml's `CorsConfiguration` says, and every path
//! and method no route takes answered by our code (the `$default` route) in the API's error
//! shape; and the dev stack's `/connected` page. Gateway in front, functions behind it as
//! function URLs, as in `make dev`.

use std::sync::Arc;

use calsync_devstack::gateway::{serve, Gateway};
use calsync_devstack::template::Template;
use serde_json::Value;

use crate::http_api::serve_http;
use crate::support::*;

const APP_ORIGIN: &str = "http://localhost:5173";

async fn gateway() -> (String, TestUser) {
    let app = app().await;
    let user = register(&app, "browser").await;
    let functions = serve_http(app).await;
    let template =
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml").as_ref()).unwrap();
    let gateway = Arc::new(Gateway::new(&template, &functions).unwrap().with_app_page());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, gateway));
    (base, user)
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_browser_app_passes_the_preflight_and_reads_a_credentialed_answer() {
    let (base, user) = gateway().await;
    let http = reqwest::Client::new();
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/events"))
        .header("origin", APP_ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        Some(APP_ORIGIN)
    );
    assert_eq!(
        header(&preflight, "access-control-allow-credentials"),
        Some("true")
    );
    let methods = header(&preflight, "access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("PATCH"),
        "{methods}"
    );
    let headers = header(&preflight, "access-control-allow-headers").unwrap();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    assert_eq!(header(&preflight, "access-control-max-age"), Some("600"));

    // A credentialed request: the exact origin comes back (never `*`), with credentials allowed
    // and Retry-After readable by the app.
    let me = http
        .get(format!("{base}/v1/me"))
        .header("origin", APP_ORIGIN)
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(header(&me, "access-control-allow-origin"), Some(APP_ORIGIN));
    assert_eq!(
        header(&me, "access-control-allow-credentials"),
        Some("true")
    );
    assert!(header(&me, "access-control-expose-headers")
        .unwrap()
        .contains("retry-after"));
    assert_eq!(me.json::<Value>().await.unwrap()["email"], user.email);

    // Another site gets no CORS headers: the browser keeps the answer from it.
    let elsewhere = http
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/events"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 204);
    assert!(header(&elsewhere, "access-control-allow-origin").is_none());
    let read = http
        .get(format!("{base}/v1/me"))
        .header("origin", "https://evil.example")
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert!(header(&read, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_the_api_error_shape() {
    let (base, user) = gateway().await;
    let http = reqwest::Client::new();
    let unknown = http
        .get(format!("{base}/v1/nothing-here"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found", "{body}");

    let wrong = http
        .put(format!("{base}/v1/events"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(header(&wrong, "allow"), Some("GET, POST"));
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    // A feed URL with a wrong method: 405, and the message does not repeat the path's token.
    let feed = http
        .post(format!("{base}/v1/feeds/secret-token-value/calendar.ics"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 405);
    let body: Value = feed.json().await.unwrap();
    assert!(!body.to_string().contains("secret-token-value"), "{body}");
}

#[tokio::test]
async fn the_dev_stacks_connected_page_tells_how_a_connection_ended() {
    let (base, _) = gateway().await;
    let page = reqwest::get(format!(
        "{base}/connected?status=error&error=browser_mismatch"
    ))
    .await
    .unwrap();
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-type")
        .unwrap()
        .starts_with("text/html"));
    let text = page.text().await.unwrap();
    assert!(
        text.contains("Not connected") && text.contains("another browser"),
        "{text}"
    );
    let page = reqwest::get(format!(
        "{base}/connected?status=connected&provider=google&calendars=3"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("google account is connected: 3 calendar"),
        "{page}"
    );
}
