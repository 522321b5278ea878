//! The emulator's OAuth and calendar-list flows, driven over HTTP as a client would.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use calsync_provider_emulator::{spawn, EmulatorHandle};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://127.0.0.1:1/oauth/callback";
const GOOGLE_SCOPE: &str = "openid email https://www.googleapis.com/auth/calendar.readonly";
const MS_SCOPE: &str = "offline_access User.Read Calendars.Read";

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce(seed: &str) -> Pkce {
    let verifier = format!("{seed}-{}", "v".repeat(50));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn query_of(location: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(location).expect("absolute Location");
    url.query_pairs().into_owned().collect()
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Runs the authorize step; returns the redirect's query parameters.
async fn authorize(
    em: &EmulatorHandle,
    path: &str,
    extra: &[(&str, &str)],
    challenge: Option<&str>,
) -> Vec<(String, String)> {
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", "test-client"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", "st-123"),
    ];
    if let Some(challenge) = challenge {
        params.push(("code_challenge", challenge));
        params.push(("code_challenge_method", "S256"));
    }
    params.extend_from_slice(extra);
    let resp = client()
        .get(format!("{}{path}", em.base_url))
        .query(&params)
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND, "authorize must redirect");
    let location = resp.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    query_of(&location)
}

async fn google_code(em: &EmulatorHandle, pkce: &Pkce, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("scope", GOOGLE_SCOPE), ("access_type", "offline")];
    params.extend_from_slice(extra);
    let q = authorize(
        em,
        "/google/o/oauth2/v2/auth",
        &params,
        Some(&pkce.challenge),
    )
    .await;
    assert_eq!(get(&q, "state"), Some("st-123"));
    assert_eq!(get(&q, "scope"), Some(GOOGLE_SCOPE));
    get(&q, "code").expect("code").to_owned()
}

async fn post_form(em: &EmulatorHandle, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = client()
        .post(format!("{}{path}", em.base_url))
        .form(form)
        .send()
        .await
        .expect("post");
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn google_exchange(em: &EmulatorHandle, code: &str, verifier: &str) -> (StatusCode, Value) {
    post_form(
        em,
        "/google/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "test-client"),
            ("client_secret", "shh"),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn google_token(em: &EmulatorHandle) -> Value {
    let p = pkce("google");
    let code = google_code(em, &p, &[]).await;
    let (status, body) = google_exchange(em, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn bearer_get(em: &EmulatorHandle, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", em.base_url))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
}

async fn admin(em: &EmulatorHandle, method: reqwest::Method, path: &str, body: Value) -> Value {
    let resp = client()
        .request(method, format!("{}{path}", em.base_url))
        .json(&body)
        .send()
        .await
        .expect("admin");
    assert!(
        resp.status().is_success(),
        "admin {path}: {}",
        resp.status()
    );
    resp.json().await.expect("admin json")
}

async fn microsoft_tokens(em: &EmulatorHandle) -> Value {
    let p = pkce("microsoft");
    let q = authorize(
        em,
        "/microsoft/common/oauth2/v2.0/authorize",
        &[("scope", MS_SCOPE)],
        Some(&p.challenge),
    )
    .await;
    assert_eq!(get(&q, "state"), Some("st-123"));
    let code = get(&q, "code").expect("code");
    let (status, body) = post_form(
        em,
        "/microsoft/common/oauth2/v2.0/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "test-client"),
            ("client_secret", "shh"),
            ("code_verifier", &p.verifier),
            ("scope", MS_SCOPE),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn google_code_pkce_flow_then_refresh_without_rotation() {
    let em = spawn().expect("spawn");
    let token = google_token(&em).await;
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    assert_eq!(token["scope"], GOOGLE_SCOPE);
    let access = token["access_token"].as_str().expect("access_token");
    let refresh = token["refresh_token"]
        .as_str()
        .expect("refresh_token (access_type=offline)");

    let resp = bearer_get(&em, "/google/calendar/v3/users/me/calendarList", access).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let list: Value = resp.json().await.expect("json");
    assert_eq!(list["kind"], "calendar#calendarList");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], "alice@gmail.test");
    assert_eq!(items[0]["summary"], "alice@gmail.test");
    assert_eq!(items[0]["primary"], true);
    assert_eq!(items[1]["id"], "team@group.calendar.google.test");
    assert!(
        items[1].get("primary").is_none(),
        "only the primary carries `primary`"
    );
    assert_eq!(items[2]["summary"], "Holidays");
    assert!(list.get("nextSyncToken").is_some() && list.get("nextPageToken").is_none());

    for _ in 0..2 {
        let (status, body) = post_form(
            &em,
            "/google/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", "test-client"),
                ("client_secret", "shh"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body.get("refresh_token").is_none(),
            "Google does not rotate: {body}"
        );
        assert_ne!(body["access_token"], token["access_token"]);
    }

    // Without access_type=offline there is no refresh token.
    let p = pkce("online");
    let q = authorize(
        &em,
        "/google/o/oauth2/v2/auth",
        &[("scope", GOOGLE_SCOPE)],
        Some(&p.challenge),
    )
    .await;
    let (status, body) = google_exchange(&em, get(&q, "code").expect("code"), &p.verifier).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("refresh_token").is_none());

    let stats = admin(&em, reqwest::Method::GET, "/admin/stats", Value::Null).await;
    assert_eq!(stats["google"]["authorizationCodeGrants"], 2);
    assert_eq!(stats["google"]["refreshTokenGrants"], 2);
    assert_eq!(stats["requests"]["/google/token"], 4);
    assert_eq!(
        stats["requestsByMethod"]["GET /google/calendar/v3/users/me/calendarList"],
        1
    );
}

#[tokio::test]
async fn google_wrong_verifier_is_invalid_grant() {
    let em = spawn().expect("spawn");
    let p = pkce("right");
    let code = google_code(&em, &p, &[]).await;
    let (status, body) = google_exchange(&em, &code, &pkce("wrong").verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Bad Request"})
    );
}

#[tokio::test]
async fn google_code_reuse_is_invalid_grant() {
    let em = spawn().expect("spawn");
    let p = pkce("reuse");
    let code = google_code(&em, &p, &[]).await;
    let (status, _) = google_exchange(&em, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = google_exchange(&em, &code, &p.verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn google_authorize_errors_and_client_auth() {
    let em = spawn().expect("spawn");
    // No PKCE: redirected back with invalid_request.
    let q = authorize(
        &em,
        "/google/o/oauth2/v2/auth",
        &[("scope", GOOGLE_SCOPE)],
        None,
    )
    .await;
    assert_eq!(get(&q, "error"), Some("invalid_request"));
    assert_eq!(get(&q, "state"), Some("st-123"));

    // A configured account that denies consent.
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/accounts",
        json!({"provider": "google", "email": "carol@gmail.test", "deny": true,
               "calendars": [{"name": "carol@gmail.test", "primary": true}]}),
    )
    .await;
    let p = pkce("deny");
    let q = authorize(
        &em,
        "/google/o/oauth2/v2/auth",
        &[("scope", GOOGLE_SCOPE), ("login_hint", "carol@gmail.test")],
        Some(&p.challenge),
    )
    .await;
    assert_eq!(get(&q, "error"), Some("access_denied"));
    assert!(get(&q, "code").is_none());

    // A token request without a client secret, and one with HTTP Basic.
    let code = google_code(&em, &p, &[]).await;
    let (status, body) = post_form(
        &em,
        "/google/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "test-client"),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let resp = client()
        .post(format!("{}/google/token", em.base_url))
        .basic_auth("test-client", Some("shh"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", p.verifier.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn microsoft_refresh_tokens_rotate() {
    let em = spawn().expect("spawn");
    let tokens = microsoft_tokens(&em).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(
        tokens["scope"],
        "https://graph.microsoft.com/User.Read https://graph.microsoft.com/Calendars.Read"
    );
    assert!(tokens["ext_expires_in"].is_u64());
    let first = tokens["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();

    let refresh = |token: String| {
        let em = em.clone();
        async move {
            post_form(
                &em,
                "/microsoft/common/oauth2/v2.0/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", "test-client"),
                    ("client_secret", "shh"),
                ],
            )
            .await
        }
    };
    let (status, second) = refresh(first.clone()).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_token = second["refresh_token"]
        .as_str()
        .expect("rotated refresh_token");
    assert_ne!(second_token, first);

    let (status, error) = refresh(first.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant");
    assert_eq!(error["error_codes"], json!([70000]));
    assert!(error["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS70000: ")));
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(error[field].is_string(), "{field} in {error}");
    }

    let (status, third) = refresh(second_token.to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    let me: Value = bearer_get(
        &em,
        "/microsoft/v1.0/me",
        third["access_token"].as_str().expect("at"),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(me["mail"], "bob@outlook.test");
    assert_eq!(me["userPrincipalName"], "bob@outlook.test");
    assert_eq!(
        me["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users/$entity"
    );
}

#[tokio::test]
async fn calendar_list_max_results_one_walks_every_page() {
    let em = spawn().expect("spawn");
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/accounts",
        json!({"provider": "google", "email": "dave@gmail.test", "calendars": [
            {"name": "dave@gmail.test", "primary": true},
            {"name": "Work", "color": "#4986e7"},
            {"name": "Gym", "color": "3"},
            {"id": "family@group.calendar.google.test", "name": "Family"},
            {"name": "Travel"}
        ]}),
    )
    .await;
    let p = pkce("dave");
    let code = google_code(&em, &p, &[("login_hint", "dave@gmail.test")]).await;
    let (_, token) = google_exchange(&em, &code, &p.verifier).await;
    let access = token["access_token"].as_str().expect("access_token");

    let mut ids = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        let mut path = "/google/calendar/v3/users/me/calendarList?maxResults=1".to_owned();
        if let Some(t) = &page_token {
            path.push_str(&format!("&pageToken={t}"));
        }
        let page: Value = bearer_get(&em, &path, access)
            .await
            .json()
            .await
            .expect("json");
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        ids.push(items[0]["id"].as_str().expect("id").to_owned());
        match page["nextPageToken"].as_str() {
            Some(t) => {
                assert!(page.get("nextSyncToken").is_none());
                page_token = Some(t.to_owned());
            }
            None => {
                assert!(
                    page["nextSyncToken"].is_string(),
                    "last page has nextSyncToken"
                );
                break;
            }
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(ids[0], "dave@gmail.test");
    assert_eq!(ids[3], "family@group.calendar.google.test");
    assert!(ids[1].ends_with("@group.calendar.google.test"));

    let all: Value = bearer_get(&em, "/google/calendar/v3/users/me/calendarList", access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["items"][1]["backgroundColor"], "#4986e7");
    assert_eq!(all["items"][1]["colorId"], "16");
    assert_eq!(all["items"][2]["colorId"], "3");
}

#[tokio::test]
async fn graph_calendars_follow_next_link() {
    let em = spawn().expect("spawn");
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/accounts",
        json!({"provider": "microsoft", "email": "bob@outlook.test", "calendars": [
            {"name": "Calendar", "primary": true, "color": "lightGreen"},
            {"name": "Birthdays"}, {"name": "Project X"}, {"name": "Holidays", "color": "#ff0000"}
        ]}),
    )
    .await;
    let tokens = microsoft_tokens(&em).await;
    let access = tokens["access_token"].as_str().expect("access_token");

    let mut names = Vec::new();
    let mut url = format!("{}/microsoft/v1.0/me/calendars", em.base_url);
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "paging does not end");
        let resp = client()
            .get(&url)
            .bearer_auth(access)
            .header("Prefer", "odata.maxpagesize=3")
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["preference-applied"], "odata.maxpagesize=3");
        let page: Value = resp.json().await.expect("json");
        for c in page["value"].as_array().expect("value") {
            assert_eq!(c["owner"]["address"], "bob@outlook.test");
            names.push(c["name"].as_str().expect("name").to_owned());
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&format!("{}/microsoft/v1.0/me/calendars?", em.base_url)));
                assert!(next.contains("$skiptoken="), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(names, ["Calendar", "Birthdays", "Project X", "Holidays"]);

    // $top pages too, and keeps $top in the nextLink; the default page size (10) holds all.
    let page: Value = bearer_get(&em, "/microsoft/v1.0/me/calendars?$top=1", access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["value"][0]["isDefaultCalendar"], true);
    assert_eq!(page["value"][0]["color"], "lightGreen");
    assert!(page["@odata.nextLink"]
        .as_str()
        .is_some_and(|l| l.contains("$top=1")));
    let all: Value = bearer_get(&em, "/microsoft/v1.0/me/calendars", access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["value"].as_array().map(Vec::len), Some(4));
    assert!(all.get("@odata.nextLink").is_none());
    assert_eq!(all["value"][3]["hexColor"], "#ff0000");

    // No token / bad token: Graph's 401.
    let resp = client()
        .get(format!("{}/microsoft/v1.0/me/calendars", em.base_url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn fault_429_with_retry_after_then_normal_answers() {
    let em = spawn().expect("spawn");
    let token = google_token(&em).await;
    let access = token["access_token"].as_str().expect("access_token");
    admin(
        &em,
        reqwest::Method::POST,
        "/admin/faults",
        json!({"method": "GET", "pathPrefix": "/google/calendar/", "status": 429, "retryAfter": 2, "times": 2}),
    )
    .await;
    for _ in 0..2 {
        let resp = bearer_get(&em, "/google/calendar/v3/users/me/calendarList", access).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "2");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"]["code"], 429);
        assert_eq!(body["error"]["errors"][0]["reason"], "rateLimitExceeded");
    }
    let resp = bearer_get(&em, "/google/calendar/v3/users/me/calendarList", access).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // A malformed body on the token endpoint, then a cleared queue.
    admin(
        &em,
        reqwest::Method::POST,
        "/admin/faults",
        json!([{"pathPrefix": "/google/token", "malformed": true},
               {"pathPrefix": "/google/token", "status": 503, "times": 5}]),
    )
    .await;
    let resp = client()
        .post(format!("{}/google/token", em.base_url))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("text");
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "malformed: {text}"
    );
    let cleared = admin(&em, reqwest::Method::DELETE, "/admin/faults", Value::Null).await;
    assert_eq!(cleared["cleared"], 1);
    let stats = admin(&em, reqwest::Method::GET, "/admin/stats", Value::Null).await;
    assert_eq!(stats["faultsServed"], 3);
}

#[tokio::test]
async fn revoke_kills_refresh_and_access_tokens() {
    let em = spawn().expect("spawn");
    let token = google_token(&em).await;
    let access = token["access_token"].as_str().expect("access_token");
    let refresh = token["refresh_token"].as_str().expect("refresh_token");

    let (status, body) = post_form(&em, "/google/revoke", &[("token", refresh)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({}));

    let resp = bearer_get(&em, "/google/calendar/v3/users/me/calendarList", access).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["code"], 401);

    let (status, body) = post_form(
        &em,
        "/google/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "test-client"),
            ("client_secret", "shh"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let (status, body) = post_form(&em, "/google/revoke", &[("token", refresh)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_token");
    let stats = admin(&em, reqwest::Method::GET, "/admin/stats", Value::Null).await;
    assert_eq!(stats["google"]["revocations"], 1);
}

#[tokio::test]
async fn expired_access_tokens_are_refused_and_reset_restores_defaults() {
    let em = spawn().expect("spawn");
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/settings",
        json!({"accessTokenTtlSeconds": 0}),
    )
    .await;
    let token = google_token(&em).await;
    assert_eq!(token["expires_in"], 0);
    let resp = bearer_get(
        &em,
        "/google/calendar/v3/users/me/calendarList",
        token["access_token"].as_str().expect("at"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .is_ok_and(|v| v.contains("invalid_token")));

    admin(&em, reqwest::Method::POST, "/admin/reset", Value::Null).await;
    let settings = admin(&em, reqwest::Method::GET, "/admin/settings", Value::Null).await;
    assert_eq!(settings["accessTokenTtlSeconds"], 3600);
    let token = google_token(&em).await;
    let resp = bearer_get(
        &em,
        "/google/calendar/v3/users/me/calendarList",
        token["access_token"].as_str().expect("at"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Events

const GOOGLE_RW: &str = "https://www.googleapis.com/auth/calendar";
const MS_RW: &str = "offline_access Calendars.ReadWrite";

/// An access token for the default Google account with `scope`.
async fn google_access(em: &EmulatorHandle, scope: &str) -> String {
    let p = pkce("events");
    let q = authorize(
        em,
        "/google/o/oauth2/v2/auth",
        &[("scope", scope)],
        Some(&p.challenge),
    )
    .await;
    let (status, body) = google_exchange(em, get(&q, "code").expect("code"), &p.verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// An access token for the default Microsoft account with `scope`.
async fn microsoft_access(em: &EmulatorHandle, scope: &str) -> String {
    let p = pkce("ms-events");
    let q = authorize(
        em,
        "/microsoft/common/oauth2/v2.0/authorize",
        &[("scope", scope)],
        Some(&p.challenge),
    )
    .await;
    let (status, body) = post_form(
        em,
        "/microsoft/common/oauth2/v2.0/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", get(&q, "code").expect("code")),
            ("redirect_uri", REDIRECT),
            ("client_id", "test-client"),
            ("client_secret", "shh"),
            ("code_verifier", &p.verifier),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A request with a bearer token and optional JSON body / extra headers; (status, body).
async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut rb = client().request(method, url).bearer_auth(token);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An admin call that may fail; (status, body).
async fn admin_raw(
    em: &EmulatorHandle,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let resp = client()
        .request(method, format!("{}{path}", em.base_url))
        .json(&body)
        .send()
        .await
        .expect("admin");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn gtimed(summary: &str, start: &str, end: &str) -> Value {
    json!({
        "summary": summary,
        "start": {"dateTime": start, "timeZone": "Europe/London"},
        "end": {"dateTime": end, "timeZone": "Europe/London"},
    })
}

/// One events.list walk to the end: every page, and the sync token of the last one.
struct GoogleWalk {
    pages: Vec<Value>,
    items: Vec<Value>,
    sync_token: String,
}

async fn google_walk(em: &EmulatorHandle, token: &str, query: &[(&str, &str)]) -> GoogleWalk {
    let url = format!(
        "{}/google/calendar/v3/calendars/primary/events",
        em.base_url
    );
    let mut pages = Vec::new();
    let mut items = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        assert!(pages.len() < 100, "paging does not end");
        let mut q: Vec<(&str, &str)> = query.to_vec();
        if let Some(t) = &page_token {
            q.push(("pageToken", t));
        }
        let resp = client()
            .get(&url)
            .query(&q)
            .bearer_auth(token)
            .send()
            .await
            .expect("list");
        assert_eq!(resp.status(), StatusCode::OK);
        let page: Value = resp.json().await.expect("json");
        assert_eq!(page["kind"], "calendar#events");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        pages.push(page.clone());
        match page["nextPageToken"].as_str() {
            Some(t) => {
                assert!(
                    page.get("nextSyncToken").is_none(),
                    "nextSyncToken only on the last page"
                );
                page_token = Some(t.to_owned());
            }
            None => {
                let sync = page["nextSyncToken"]
                    .as_str()
                    .expect("last page has nextSyncToken");
                return GoogleWalk {
                    pages,
                    items,
                    sync_token: sync.to_owned(),
                };
            }
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn google_full_sync_over_short_pages_then_incremental_with_cancellations() {
    let em = spawn().expect("spawn");
    let token = google_access(&em, GOOGLE_RW).await;
    for i in 0..6 {
        admin(
            &em,
            reqwest::Method::PUT,
            &format!("/admin/google/calendars/primary/events/added{i:02}"),
            gtimed(
                &format!("Extra {i}"),
                &format!("2030-01-0{}T09:00:00Z", i + 1),
                &format!("2030-01-0{}T10:00:00Z", i + 1),
            ),
        )
        .await;
    }
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/settings",
        json!({"shortPages": true}),
    )
    .await;

    let full = google_walk(&em, &token, &[("maxResults", "4")]).await;
    let truth = admin(
        &em,
        reqwest::Method::GET,
        "/admin/google/calendars/primary/events",
        Value::Null,
    )
    .await;
    let mut expected: Vec<Value> = truth["items"].as_array().expect("items").clone();
    expected.extend(
        truth["cancelledInstances"]
            .as_array()
            .expect("cancelled")
            .iter()
            .cloned(),
    );
    assert_eq!(
        ids(&full.items),
        ids(&expected),
        "the full sync is the provider's truth"
    );
    assert!(full.pages.len() > 3);
    let sizes: Vec<usize> = full
        .pages
        .iter()
        .map(|p| p["items"].as_array().map_or(0, Vec::len))
        .collect();
    assert!(
        full.pages
            .iter()
            .any(|p| p["items"].as_array().is_some_and(Vec::is_empty)
                && p.get("nextPageToken").is_some()),
        "an empty page that is not the end: {sizes:?}"
    );
    assert!(
        full.pages.iter().any(|p| {
            let n = p["items"].as_array().map_or(0, Vec::len);
            n > 0 && n < 4 && p.get("nextPageToken").is_some()
        }),
        "a short page that is not the end: {sizes:?}"
    );
    // The full sync carries the cancelled instance of the weekly series, but no deleted events.
    let cancelled: Vec<&Value> = full
        .items
        .iter()
        .filter(|i| i["status"] == "cancelled")
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["recurringEventId"], "seed0oneonone");
    assert!(cancelled[0]["originalStartTime"]["dateTime"].is_string());
    let master = full
        .items
        .iter()
        .find(|i| i["id"] == "seed0oneonone")
        .expect("master");
    assert_eq!(master["recurrence"], json!(["RRULE:FREQ=WEEKLY;BYDAY=TU"]));
    let planning = full
        .items
        .iter()
        .find(|i| i["id"] == "seed0planning")
        .expect("planning");
    assert_eq!(
        planning["hangoutLink"],
        "https://meet.google.com/abc-defg-hij"
    );
    assert_eq!(planning["attendees"][0]["self"], true);
    assert_eq!(planning["organizer"]["self"], true);
    assert!(
        full.items.iter().any(|i| i["start"]["date"].is_string()),
        "an all-day event"
    );

    // Provider-side changes: a replacement, a deletion, a new event, a deleted instance.
    let before = full
        .items
        .iter()
        .find(|i| i["id"] == "added01")
        .expect("added01")
        .clone();
    let replaced = admin(
        &em,
        reqwest::Method::PUT,
        "/admin/google/calendars/primary/events/added01",
        gtimed(
            "Extra 1 moved",
            "2030-01-02T11:00:00Z",
            "2030-01-02T12:00:00Z",
        ),
    )
    .await;
    assert_ne!(replaced["etag"], before["etag"]);
    assert_ne!(replaced["updated"], before["updated"]);
    assert_eq!(replaced["sequence"], 1);
    admin(
        &em,
        reqwest::Method::DELETE,
        "/admin/google/calendars/primary/events/added02",
        Value::Null,
    )
    .await;
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/google/calendars/primary/events/added99",
        gtimed("New", "2030-02-01T09:00:00Z", "2030-02-01T09:30:00Z"),
    )
    .await;
    let instance = master["start"]["dateTime"].as_str().expect("master start");
    let instance = chrono::DateTime::parse_from_rfc3339(instance)
        .expect("rfc3339")
        .with_timezone(&chrono::Utc)
        + chrono::Duration::weeks(2);
    let instance_id = format!("seed0oneonone_{}", instance.format("%Y%m%dT%H%M%SZ"));
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!(
            "{}/google/calendar/v3/calendars/primary/events/{instance_id}",
            em.base_url
        ),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let incremental = google_walk(
        &em,
        &token,
        &[("maxResults", "4"), ("syncToken", &full.sync_token)],
    )
    .await;
    assert_eq!(
        ids(&incremental.items),
        ["added01", "added02", "added99", instance_id.as_str()]
    );
    let deleted = incremental
        .items
        .iter()
        .find(|i| i["id"] == "added02")
        .expect("deleted");
    let mut keys: Vec<&str> = deleted
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["etag", "id", "kind", "status"]);
    assert_eq!(deleted["status"], "cancelled");
    let gone = incremental
        .items
        .iter()
        .find(|i| i["id"] == instance_id)
        .expect("instance");
    assert_eq!(gone["status"], "cancelled");
    assert_eq!(gone["recurringEventId"], "seed0oneonone");
    assert!(gone["originalStartTime"]["dateTime"].is_string());
    let moved = incremental
        .items
        .iter()
        .find(|i| i["id"] == "added01")
        .expect("moved");
    assert_eq!(moved["summary"], "Extra 1 moved");

    // Nothing new since: an empty answer with a fresh token; showDeleted=true gives details.
    let again = google_walk(&em, &token, &[("syncToken", &incremental.sync_token)]).await;
    assert!(again.items.is_empty());
    let detailed = google_walk(
        &em,
        &token,
        &[("syncToken", &full.sync_token), ("showDeleted", "true")],
    )
    .await;
    let deleted = detailed
        .items
        .iter()
        .find(|i| i["id"] == "added02")
        .expect("deleted");
    assert_eq!(deleted["summary"], "Extra 2");
    // A full sync with showDeleted lists the deleted event; a window narrows the listing.
    let with_deleted = google_walk(&em, &token, &[("showDeleted", "true")]).await;
    assert!(with_deleted.items.iter().any(|i| i["id"] == "added02"));
    let windowed = google_walk(
        &em,
        &token,
        &[
            ("timeMin", "2030-01-01T00:00:00Z"),
            ("timeMax", "2030-01-04T00:00:00Z"),
        ],
    )
    .await;
    let got = ids(&windowed.items);
    assert!(got.contains(&"added00".to_owned()) && got.contains(&"added01".to_owned()));
    assert!(!got.contains(&"added03".to_owned()) && !got.contains(&"added99".to_owned()));
    assert!(
        got.contains(&"seed0oneonone".to_owned()),
        "an endless weekly series overlaps any window"
    );

    // syncToken with a window is refused; singleEvents=true is not emulated.
    let url = format!(
        "{}/google/calendar/v3/calendars/primary/events",
        em.base_url
    );
    let (status, body) = call(
        reqwest::Method::GET,
        &format!(
            "{url}?syncToken={}&timeMin=2030-01-01T00:00:00Z",
            urlenc(&full.sync_token)
        ),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["errors"][0]["location"], "timeMin");
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("{url}?singleEvents=true"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn google_sync_tokens_answer_410_after_invalidation() {
    let em = spawn().expect("spawn");
    let token = google_access(&em, "https://www.googleapis.com/auth/calendar.readonly").await;
    let full = google_walk(&em, &token, &[]).await;
    let url = format!(
        "{}/google/calendar/v3/calendars/primary/events",
        em.base_url
    );
    let gone = json!({"error": {
        "code": 410,
        "message": "Sync token is no longer valid, a full sync is required.",
        "errors": [{"domain": "global", "reason": "fullSyncRequired", "message": "Sync token is no longer valid, a full sync is required."}],
        "status": "GONE",
    }});
    for bad in ["not-a-token", "CPDAlvWDx70CEPDAlvWDx70CGAU="] {
        let (status, body) = call(
            reqwest::Method::GET,
            &format!("{url}?syncToken={}", urlenc(bad)),
            &token,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::GONE);
        assert_eq!(body, gone);
    }
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("{url}?syncToken={}", urlenc(&full.sync_token)),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    admin(
        &em,
        reqwest::Method::POST,
        "/admin/google/calendars/primary/invalidate-sync-tokens",
        Value::Null,
    )
    .await;
    let (status, body) = call(
        reqwest::Method::GET,
        &format!("{url}?syncToken={}", urlenc(&full.sync_token)),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body, gone);
    // A new full sync gets a token that works.
    let fresh = google_walk(&em, &token, &[]).await;
    assert_eq!(ids(&fresh.items), ids(&full.items));
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("{url}?syncToken={}", urlenc(&fresh.sync_token)),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Unknown calendars are 404; a read-only token cannot write.
    let (status, body) = call(
        reqwest::Method::GET,
        &format!(
            "{}/google/calendar/v3/calendars/nobody%40group.calendar.google.test/events",
            em.base_url
        ),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    let (status, body) = call(
        reqwest::Method::POST,
        &url,
        &token,
        Some(gtimed("x", "2030-01-01T09:00:00Z", "2030-01-01T10:00:00Z")),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );
    // The holidays calendar is read-only for its reader.
    let rw = google_access(&em, GOOGLE_RW).await;
    let (status, body) = call(
        reqwest::Method::POST,
        &format!(
            "{}/google/calendar/v3/calendars/{}/events",
            em.base_url,
            urlenc("en.usa#holiday@group.v.calendar.google.test")
        ),
        &rw,
        Some(gtimed("x", "2030-01-01T09:00:00Z", "2030-01-01T10:00:00Z")),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["errors"][0]["reason"], "requiredAccessLevel");
}

#[tokio::test]
async fn google_writes_duplicate_409_if_match_412_and_deleted_410() {
    let em = spawn().expect("spawn");
    let token = google_access(&em, GOOGLE_RW).await;
    let full = google_walk(&em, &token, &[]).await;
    let url = format!(
        "{}/google/calendar/v3/calendars/primary/events",
        em.base_url
    );
    let mut body = gtimed(
        "Written by calsync",
        "2030-03-01T09:00:00Z",
        "2030-03-01T10:00:00Z",
    );
    body["id"] = json!("cs0000000001");
    let (status, created) =
        call(reqwest::Method::POST, &url, &token, Some(body.clone()), &[]).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["id"], "cs0000000001");
    assert_eq!(created["sequence"], 0);
    assert_eq!(created["created"], created["updated"]);
    let (status, dup) = call(reqwest::Method::POST, &url, &token, Some(body.clone()), &[]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(dup["error"]["code"], 409);
    assert_eq!(
        dup["error"]["message"],
        "The requested identifier already exists."
    );
    assert_eq!(dup["error"]["errors"][0]["reason"], "duplicate");
    assert_eq!(dup["error"]["errors"][0]["domain"], "global");
    body["id"] = json!("Not_Base32hex");
    let (status, _) = call(reqwest::Method::POST, &url, &token, Some(body), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, bad) = call(
        reqwest::Method::POST,
        &url,
        &token,
        Some(gtimed(
            "Backwards",
            "2030-03-01T10:00:00Z",
            "2030-03-01T09:00:00Z",
        )),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"]["errors"][0]["reason"], "timeRangeEmpty");

    let event_url = format!("{url}/cs0000000001");
    let etag = created["etag"].as_str().expect("etag");
    let (status, body) = call(
        reqwest::Method::PATCH,
        &event_url,
        &token,
        Some(json!({"summary": "stale"})),
        &[("If-Match", "\"1234\"")],
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body["error"]["errors"][0]["reason"], "conditionNotMet");
    let (status, patched) = call(
        reqwest::Method::PATCH,
        &event_url,
        &token,
        Some(json!({"summary": "Renamed"})),
        &[("If-Match", etag)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["summary"], "Renamed");
    assert_eq!(patched["sequence"], 0, "no time change");
    assert_ne!(patched["etag"], created["etag"]);
    let (status, moved) = call(
        reqwest::Method::PATCH,
        &event_url,
        &token,
        Some(json!({"start": {"dateTime": "2030-03-01T11:00:00Z"}, "end": {"dateTime": "2030-03-01T12:00:00Z"}})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(moved["sequence"], 1);
    // The old etag no longer deletes.
    let (status, _) = call(
        reqwest::Method::DELETE,
        &event_url,
        &token,
        None,
        &[("If-Match", etag)],
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, _) = call(reqwest::Method::DELETE, &event_url, &token, None, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(reqwest::Method::DELETE, &event_url, &token, None, &[]).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["error"]["errors"][0]["reason"], "deleted");
    let (status, body) = call(
        reqwest::Method::DELETE,
        &format!("{url}/nosuchevent0"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    // get still answers for the deleted event; the sync sees the create-then-delete as cancelled.
    let (status, got) = call(reqwest::Method::GET, &event_url, &token, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["status"], "cancelled");
    let incremental = google_walk(&em, &token, &[("syncToken", &full.sync_token)]).await;
    assert_eq!(ids(&incremental.items), ["cs0000000001"]);
    assert_eq!(incremental.items[0]["status"], "cancelled");
}

/// One calendarView delta round: every page, and the deltaLink of the last one.
struct GraphRound {
    pages: Vec<Value>,
    items: Vec<Value>,
    delta_link: String,
}

async fn graph_round(token: &str, first: &str, page_size: usize) -> GraphRound {
    let mut pages = Vec::new();
    let mut items = Vec::new();
    let mut url = first.to_owned();
    loop {
        assert!(pages.len() < 100, "paging does not end");
        let (status, page) = call(
            reqwest::Method::GET,
            &url,
            token,
            None,
            &[("Prefer", &format!("odata.maxpagesize={page_size}"))],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let value = page["value"].as_array().expect("value");
        let real = value
            .iter()
            .filter(|v| v["start"]["dateTime"] != "not-a-date")
            .count();
        assert!(real <= page_size);
        items.extend(value.iter().cloned());
        pages.push(page.clone());
        if let Some(next) = page["@odata.nextLink"].as_str() {
            assert!(page.get("@odata.deltaLink").is_none());
            assert!(!next.contains("startDateTime"), "{next}");
            assert!(next.contains("$skiptoken="), "{next}");
            url = next.to_owned();
        } else {
            let delta = page["@odata.deltaLink"]
                .as_str()
                .expect("the last page has a deltaLink");
            assert!(delta.contains("$deltatoken="), "{delta}");
            return GraphRound {
                pages,
                items,
                delta_link: delta.to_owned(),
            };
        }
    }
}

fn graph_single(subject: &str, start: &str, end: &str) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": start, "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": end, "timeZone": "Pacific Standard Time"},
    })
}

/// Removes the sample series (it recurs forever, so it shows in every window).
async fn drop_sample_series(em: &EmulatorHandle) {
    let cal = "/admin/microsoft/calendars/default/events";
    let truth = admin(em, reqwest::Method::GET, cal, Value::Null).await;
    for master in truth["seriesMasters"].as_array().expect("masters") {
        let id = urlenc(master["id"].as_str().expect("id"));
        admin(
            em,
            reqwest::Method::DELETE,
            &format!("{cal}/{id}"),
            Value::Null,
        )
        .await;
    }
}

#[tokio::test]
async fn graph_delta_pages_then_removed_entries_then_410() {
    let em = spawn().expect("spawn");
    drop_sample_series(&em).await;
    let token = microsoft_access(&em, MS_SCOPE).await;
    let cal = "/admin/microsoft/calendars/default/events";
    for i in 0..5 {
        admin(
            &em,
            reqwest::Method::PUT,
            &format!("{cal}/AAMkAGItest{i}AAA="),
            graph_single(
                &format!("Meeting {i}"),
                &format!("2030-01-0{}T09:00:00", i + 1),
                &format!("2030-01-0{}T10:00:00", i + 1),
            ),
        )
        .await;
    }
    let series = admin(
        &em,
        reqwest::Method::PUT,
        &format!("{cal}/AAMkAGIseriesAAA="),
        json!({
            "subject": "Daily standup",
            "start": {"dateTime": "2030-01-01T08:00:00", "timeZone": "GMT Standard Time"},
            "end": {"dateTime": "2030-01-01T08:15:00", "timeZone": "GMT Standard Time"},
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2030-01-01", "numberOfOccurrences": 5},
            },
        }),
    )
    .await;
    assert_eq!(series["type"], "seriesMaster");
    assert_eq!(series["recurrence"]["range"]["numberOfOccurrences"], 5);
    admin(
        &em,
        reqwest::Method::PUT,
        &format!("{cal}/AAMkAGIseriesAAA=/occurrences/2030-01-02T08:00:00Z"),
        json!({"subject": "Standup (moved)", "start": {"dateTime": "2030-01-02T09:00:00", "timeZone": "GMT Standard Time"},
               "end": {"dateTime": "2030-01-02T09:15:00", "timeZone": "GMT Standard Time"}}),
    )
    .await;

    // Missing window on the first call.
    let base = format!("{}/microsoft/v1.0/me/calendarView/delta", em.base_url);
    let (status, body) = call(reqwest::Method::GET, &base, &token, None, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "ErrorInvalidParameter");

    let first =
        format!("{base}?startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-01-31T00:00:00Z");
    let round = graph_round(&token, &first, 3).await;
    let truth = admin(
        &em,
        reqwest::Method::GET,
        &format!("{cal}?startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-01-31T00:00:00Z"),
        Value::Null,
    )
    .await;
    assert_eq!(
        ids(&round.items),
        ids(truth["value"].as_array().expect("value"))
    );
    assert_eq!(
        round.items.len(),
        10,
        "5 singles, 4 occurrences, 1 exception"
    );
    assert!(round.pages.len() >= 4);
    let kinds: Vec<&str> = round
        .items
        .iter()
        .map(|i| i["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "occurrence").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "exception").count(), 1);
    assert!(
        !kinds.contains(&"seriesMaster"),
        "calendarView has no masters"
    );
    let exception = round
        .items
        .iter()
        .find(|i| i["type"] == "exception")
        .expect("exception");
    assert_eq!(exception["seriesMasterId"], "AAMkAGIseriesAAA=");
    assert_eq!(exception["originalStart"], "2030-01-02T08:00:00Z");
    let single = round
        .items
        .iter()
        .find(|i| i["id"] == "AAMkAGItest0AAA=")
        .expect("single");
    assert_eq!(
        single["start"],
        json!({"dateTime": "2030-01-01T17:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(single["originalStartTimeZone"], "Pacific Standard Time");
    assert_eq!(
        single["@odata.etag"],
        format!("W/\"{}\"", single["changeKey"].as_str().expect("ck"))
    );
    let occurrence_ids: Vec<String> = round
        .items
        .iter()
        .filter(|i| i["type"] == "occurrence")
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();

    // Nothing changed: an empty round with a new deltaLink.
    let quiet = graph_round(&token, &round.delta_link, 3).await;
    assert!(quiet.items.is_empty());

    // Changes: delete one, move one out of the window, update one, add one, cancel an occurrence.
    admin(
        &em,
        reqwest::Method::DELETE,
        &format!("{cal}/AAMkAGItest0AAA="),
        Value::Null,
    )
    .await;
    admin(
        &em,
        reqwest::Method::PUT,
        &format!("{cal}/AAMkAGItest1AAA="),
        graph_single(
            "Meeting 1 (next month)",
            "2030-02-10T09:00:00",
            "2030-02-10T10:00:00",
        ),
    )
    .await;
    admin(
        &em,
        reqwest::Method::PUT,
        &format!("{cal}/AAMkAGItest2AAA="),
        graph_single(
            "Meeting 2 renamed",
            "2030-01-03T09:00:00",
            "2030-01-03T10:00:00",
        ),
    )
    .await;
    admin(
        &em,
        reqwest::Method::PUT,
        &format!("{cal}/AAMkAGInewAAA="),
        graph_single("New meeting", "2030-01-20T09:00:00", "2030-01-20T10:00:00"),
    )
    .await;
    admin(
        &em,
        reqwest::Method::DELETE,
        &format!("{cal}/AAMkAGIseriesAAA=/occurrences/2030-01-03T08:00:00Z"),
        Value::Null,
    )
    .await;
    // The client's own write: an occurrence deleted through the API.
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!(
            "{}/microsoft/v1.0/me/events/{}",
            em.base_url, occurrence_ids[3]
        ),
        &microsoft_access(&em, MS_RW).await,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let changes = graph_round(&token, &quiet.delta_link, 2).await;
    let removed: Vec<&str> = changes
        .items
        .iter()
        .filter(|i| i.get("@removed").is_some())
        .map(|i| i["id"].as_str().expect("id"))
        .collect();
    let mut removed = removed;
    removed.sort();
    let mut expected = vec![
        "AAMkAGItest0AAA=",
        "AAMkAGItest1AAA=",
        occurrence_ids[1].as_str(),
        occurrence_ids[3].as_str(),
    ];
    expected.sort();
    assert_eq!(removed, expected, "{:#?}", changes.items);
    for r in changes.items.iter().filter(|i| i.get("@removed").is_some()) {
        assert_eq!(r["@removed"], json!({"reason": "deleted"}));
        assert_eq!(r["@odata.type"], "#microsoft.graph.event");
    }
    let mut updated: Vec<&str> = changes
        .items
        .iter()
        .filter(|i| i.get("@removed").is_none())
        .map(|i| i["id"].as_str().expect("id"))
        .collect();
    updated.sort();
    assert_eq!(updated, ["AAMkAGInewAAA=", "AAMkAGItest2AAA="]);

    // The same deltaLink can be replayed; after invalidation it answers 410.
    let replay = graph_round(&token, &quiet.delta_link, 50).await;
    assert_eq!(replay.items.len(), changes.items.len());
    admin(
        &em,
        reqwest::Method::POST,
        "/admin/microsoft/calendars/default/invalidate-delta-tokens",
        Value::Null,
    )
    .await;
    for link in [&changes.delta_link, &round.delta_link] {
        let (status, body) = call(reqwest::Method::GET, link, &token, None, &[]).await;
        assert_eq!(status, StatusCode::GONE);
        assert_eq!(body["error"]["code"], "syncStateNotFound");
        assert_eq!(
            body["error"]["message"],
            "The sync state generation is not found."
        );
    }
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("{base}?$deltatoken=garbage"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::GONE);
    // A new first sync works again, also through the calendar-specific path.
    let calendars: Value = bearer_get(&em, "/microsoft/v1.0/me/calendars", &token)
        .await
        .json()
        .await
        .expect("json");
    let id = calendars["value"][0]["id"].as_str().expect("id");
    let specific = format!(
        "{}/microsoft/v1.0/me/calendars/{id}/calendarView/delta()?startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-01-31T00:00:00Z",
        em.base_url
    );
    let again = graph_round(&token, &specific, 100).await;
    assert_eq!(again.items.len(), 7);
    assert!(again
        .delta_link
        .contains(&format!("/me/calendars/{id}/calendarView/delta?")));
}

#[tokio::test]
async fn graph_writes_transaction_id_if_match_and_not_found() {
    let em = spawn().expect("spawn");
    drop_sample_series(&em).await;
    let token = microsoft_access(&em, MS_RW).await;
    let url = format!("{}/microsoft/v1.0/me/events", em.base_url);
    let mut body = graph_single(
        "Booked by calsync",
        "2030-05-01T09:00:00",
        "2030-05-01T09:30:00",
    );
    body["transactionId"] = json!("7E163156-7762-4BEB-A1C6-729EA81755A7");
    let (status, first) = call(reqwest::Method::POST, &url, &token, Some(body.clone()), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        first["start"],
        json!({"dateTime": "2030-05-01T09:00:00.0000000", "timeZone": "Pacific Standard Time"})
    );
    assert!(first["@odata.context"]
        .as_str()
        .is_some_and(|c| c.ends_with("/events/$entity")));
    let (status, second) = call(reqwest::Method::POST, &url, &token, Some(body), &[]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        second["id"], first["id"],
        "the same transactionId does not create a duplicate"
    );
    let truth = admin(
        &em,
        reqwest::Method::GET,
        "/admin/microsoft/calendars/default/events?startDateTime=2030-05-01T00:00:00Z&endDateTime=2030-05-02T00:00:00Z",
        Value::Null,
    )
    .await;
    assert_eq!(truth["value"].as_array().map(Vec::len), Some(1));

    let id = first["id"].as_str().expect("id");
    let event_url = format!("{url}/{}", urlenc(id));
    let (status, body) = call(
        reqwest::Method::PATCH,
        &event_url,
        &token,
        Some(json!({"subject": "stale"})),
        &[("If-Match", "W/\"AAAAAAAA\"")],
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(body["error"]["code"], "ErrorIrresolvableConflict");
    let etag = first["@odata.etag"].as_str().expect("etag");
    let (status, patched) = call(
        reqwest::Method::PATCH,
        &event_url,
        &token,
        Some(json!({"subject": "Renamed"})),
        &[
            ("If-Match", etag),
            ("Prefer", "outlook.timezone=\"Europe/Paris\""),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["subject"], "Renamed");
    assert_ne!(patched["changeKey"], first["changeKey"]);
    assert_eq!(
        patched["start"],
        json!({"dateTime": "2030-05-01T18:00:00.0000000", "timeZone": "Europe/Paris"})
    );
    let (status, _) = call(reqwest::Method::DELETE, &event_url, &token, None, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(reqwest::Method::DELETE, &event_url, &token, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "ErrorItemNotFound");
    // Writes need Calendars.ReadWrite.
    let read_only = microsoft_access(&em, MS_SCOPE).await;
    let (status, body) = call(
        reqwest::Method::POST,
        &url,
        &read_only,
        Some(graph_single(
            "x",
            "2030-05-01T09:00:00",
            "2030-05-01T09:30:00",
        )),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "ErrorAccessDenied");
    // A series through the API; patching an occurrence makes an exception with the same id.
    let (status, master) = call(
        reqwest::Method::POST,
        &url,
        &token,
        Some(json!({
            "subject": "Gym",
            "start": {"dateTime": "2030-06-03T07:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2030-06-03T08:00:00", "timeZone": "W. Europe Standard Time"},
            "recurrence": {"pattern": {"type": "weekly", "daysOfWeek": ["monday", "thursday"]},
                           "range": {"type": "endDate", "startDate": "2030-06-03", "endDate": "2030-06-30"}},
        })),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{master}");
    assert_eq!(master["type"], "seriesMaster");
    let round = graph_round(
        &token,
        &format!("{}/microsoft/v1.0/me/calendarView/delta?startDateTime=2030-06-01T00:00:00Z&endDateTime=2030-07-01T00:00:00Z", em.base_url),
        20,
    )
    .await;
    assert_eq!(round.items.len(), 8);
    let occurrence = &round.items[1];
    assert_eq!(
        occurrence["start"]["dateTime"],
        "2030-06-06T05:00:00.0000000"
    );
    let occurrence_url = format!("{url}/{}", urlenc(occurrence["id"].as_str().expect("id")));
    let (status, exception) = call(
        reqwest::Method::PATCH,
        &occurrence_url,
        &token,
        Some(json!({"subject": "Gym (late)"})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{exception}");
    assert_eq!(exception["type"], "exception");
    assert_eq!(exception["id"], occurrence["id"]);
    let changes = graph_round(&token, &round.delta_link, 20).await;
    assert_eq!(changes.items.len(), 1);
    assert_eq!(changes.items[0]["type"], "exception");
}

#[tokio::test]
async fn faults_apply_to_event_paths_and_malformed_items_do_not_stop_paging() {
    let em = spawn().expect("spawn");
    let token = google_access(&em, GOOGLE_RW).await;
    let url = format!(
        "{}/google/calendar/v3/calendars/primary/events",
        em.base_url
    );
    admin(
        &em,
        reqwest::Method::POST,
        "/admin/faults",
        json!([{"pathPrefix": "/google/calendar/v3/calendars/", "status": 429, "retryAfter": 1},
               {"pathPrefix": "/google/calendar/v3/calendars/", "malformedItem": true}]),
    )
    .await;
    let resp = client()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    let walk = google_walk(&em, &token, &[("maxResults", "2")]).await;
    let bad: Vec<&Value> = walk
        .items
        .iter()
        .filter(|i| i["start"]["dateTime"] == "not-a-date")
        .collect();
    assert_eq!(bad.len(), 1, "exactly one malformed event");
    assert!(
        walk.pages.len() > 2,
        "paging went on past the malformed item"
    );
    let clean = google_walk(&em, &token, &[]).await;
    assert_eq!(walk.items.len(), clean.items.len() + 1);

    let ms = microsoft_access(&em, MS_SCOPE).await;
    admin(
        &em,
        reqwest::Method::POST,
        "/admin/faults",
        json!([{"pathPrefix": "/microsoft/v1.0/me/calendarView/delta", "status": 503},
               {"pathPrefix": "/microsoft/v1.0/me/calendarView/delta", "malformedItem": true}]),
    )
    .await;
    let now = chrono::Utc::now();
    let first = format!(
        "{}/microsoft/v1.0/me/calendarView/delta?startDateTime={}&endDateTime={}",
        em.base_url,
        (now - chrono::Duration::days(14)).format("%Y-%m-%dT00:00:00Z"),
        (now + chrono::Duration::days(14)).format("%Y-%m-%dT00:00:00Z"),
    );
    let (status, body) = call(reqwest::Method::GET, &first, &ms, None, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    let round = graph_round(&ms, &first, 2).await;
    assert_eq!(
        round
            .items
            .iter()
            .filter(|i| i["start"]["dateTime"] == "not-a-date")
            .count(),
        1
    );

    // Reset restores the sample events and default settings.
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/settings",
        json!({"shortPages": true}),
    )
    .await;
    admin(
        &em,
        reqwest::Method::DELETE,
        "/admin/google/calendars/primary/events/seed0planning",
        Value::Null,
    )
    .await;
    admin(&em, reqwest::Method::POST, "/admin/reset", Value::Null).await;
    let settings = admin(&em, reqwest::Method::GET, "/admin/settings", Value::Null).await;
    assert_eq!(
        settings,
        json!({"accessTokenTtlSeconds": 3600, "shortPages": false})
    );
    let google = admin(
        &em,
        reqwest::Method::GET,
        "/admin/google/calendars/primary/events",
        Value::Null,
    )
    .await;
    assert_eq!(google["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        google["cancelledInstances"].as_array().map(Vec::len),
        Some(1)
    );
    let microsoft = admin(
        &em,
        reqwest::Method::GET,
        "/admin/microsoft/calendars/default/events",
        Value::Null,
    )
    .await;
    let subjects: Vec<&str> = microsoft["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    for s in [
        "Project sync",
        "Design review (Seattle)",
        "Company holiday",
        "Weekly planning",
    ] {
        assert!(subjects.contains(&s), "{s} in {subjects:?}");
    }
    let teams = microsoft["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|e| e["subject"] == "Project sync")
        .expect("teams");
    assert!(teams["onlineMeeting"]["joinUrl"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://teams.microsoft.com/")));
    let (status, _) = admin_raw(
        &em,
        reqwest::Method::PUT,
        "/admin/google/calendars/primary/events/seed0bad",
        json!({"summary": "no times"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin_raw(
        &em,
        reqwest::Method::PUT,
        "/admin/microsoft/calendars/default/events/x",
        json!({"nonsense": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Every page of a Google events.instances listing; (pages, items).
async fn google_instances(
    em: &EmulatorHandle,
    token: &str,
    event: &str,
    query: &[(&str, &str)],
) -> (Vec<Value>, Vec<Value>) {
    let url = format!(
        "{}/google/calendar/v3/calendars/primary/events/{event}/instances",
        em.base_url
    );
    let (mut pages, mut items) = (Vec::new(), Vec::new());
    let mut page_token: Option<String> = None;
    loop {
        assert!(pages.len() < 50, "paging does not end");
        let mut q: Vec<(&str, &str)> = query.to_vec();
        if let Some(t) = &page_token {
            q.push(("pageToken", t));
        }
        let resp = client()
            .get(&url)
            .query(&q)
            .bearer_auth(token)
            .send()
            .await
            .expect("instances");
        assert_eq!(resp.status(), StatusCode::OK);
        let page: Value = resp.json().await.expect("json");
        assert_eq!(page["kind"], "calendar#events");
        assert!(page.get("nextSyncToken").is_none(), "{page}");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        page_token = page["nextPageToken"].as_str().map(str::to_owned);
        pages.push(page);
        if page_token.is_none() {
            return (pages, items);
        }
    }
}

fn summaries(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["id"].as_str().unwrap_or("?"),
                i["summary"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

#[tokio::test]
async fn google_instances_page_filter_and_drop_exceptions_a_new_rule_no_longer_makes() {
    let em = spawn().expect("spawn");
    let token = google_access(&em, GOOGLE_RW).await;
    let base = format!(
        "{}/google/calendar/v3/calendars/primary/events",
        em.base_url
    );
    // Six Mondays, 09:00 London (= UTC in January).
    let mut series = gtimed("Standup", "2030-01-07T09:00:00", "2030-01-07T09:15:00");
    series["id"] = json!("standup0001");
    series["recurrence"] = json!(["RRULE:FREQ=WEEKLY;COUNT=6"]);
    let (status, _) = call(reqwest::Method::POST, &base, &token, Some(series), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let id = |day: u32| format!("standup0001_203001{day:02}T090000Z");
    let (status, moved) = call(
        reqwest::Method::PATCH,
        &format!("{base}/{}", id(14)),
        &token,
        Some(json!({"summary": "Moved", "start": {"dateTime": "2030-01-14T10:00:00Z"}, "end": {"dateTime": "2030-01-14T10:15:00Z"}})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("{base}/{}", id(21)),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Cancelled instances only with showDeleted=true; exceptions with their own content.
    let (_, items) = google_instances(&em, &token, "standup0001", &[]).await;
    let expected: Vec<String> = ["20300107", "20300114", "20300128", "20300204", "20300211"]
        .iter()
        .map(|d| {
            let what = if *d == "20300114" { "Moved" } else { "Standup" };
            format!("standup0001_{d}T090000Z {what}")
        })
        .collect();
    assert_eq!(summaries(&items), expected);
    for item in &items {
        assert_eq!(item["recurringEventId"], "standup0001");
        assert!(item.get("recurrence").is_none());
        assert_eq!(item["iCalUID"], "standup0001@google.com");
    }
    assert_eq!(
        items[1]["originalStartTime"]["dateTime"],
        "2030-01-14T09:00:00Z"
    );
    assert_eq!(items[1]["start"]["dateTime"], "2030-01-14T10:00:00Z");
    let (_, all) = google_instances(&em, &token, "standup0001", &[("showDeleted", "true")]).await;
    assert_eq!(all.len(), 6);
    assert_eq!(all[2]["id"], id(21));
    assert_eq!(all[2]["status"], "cancelled");

    // Pages of two, each with a token but the last; the same instances in the same order.
    let (pages, paged) = google_instances(
        &em,
        &token,
        "standup0001",
        &[("maxResults", "2"), ("showDeleted", "true")],
    )
    .await;
    assert_eq!(pages.len(), 3);
    assert_eq!(ids(&paged), ids(&all));

    // timeMin bounds the end, timeMax the start; originalStart picks one instance.
    let (_, window) = google_instances(
        &em,
        &token,
        "standup0001",
        &[
            ("timeMin", "2030-01-14T10:15:00Z"),
            ("timeMax", "2030-01-28T09:00:00Z"),
        ],
    )
    .await;
    assert_eq!(ids(&window), [id(14)]);
    let (_, one) = google_instances(
        &em,
        &token,
        "standup0001",
        &[("originalStart", "2030-01-14T09:00:00Z")],
    )
    .await;
    assert_eq!(ids(&one), [id(14)]);
    assert_eq!(one[0]["summary"], "Moved");

    // timeZone renders the times in that zone.
    let (pages, zoned) = google_instances(
        &em,
        &token,
        "standup0001",
        &[("timeZone", "America/New_York")],
    )
    .await;
    assert_eq!(pages[0]["timeZone"], "America/New_York");
    assert_eq!(zoned[0]["start"]["dateTime"], "2030-01-07T04:00:00-05:00");

    let (status, body) = call(
        reqwest::Method::GET,
        &format!("{base}/nosuchevent/instances"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    let (status, body) = call(
        reqwest::Method::GET,
        &format!("{base}/standup0001/instances?pageToken=garbage"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // An exception on the 28th, then the series ends after the 14th: the exceptions of the
    // 21st and 28th are no instances of it any more; the 14th stays.
    let (status, _) = call(
        reqwest::Method::PATCH,
        &format!("{base}/{}", id(28)),
        &token,
        Some(json!({"summary": "Retro"})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, master) = call(
        reqwest::Method::PATCH,
        &format!("{base}/standup0001"),
        &token,
        Some(json!({"recurrence": ["RRULE:FREQ=WEEKLY;UNTIL=20300120T000000Z"]})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{master}");
    let (_, left) = google_instances(&em, &token, "standup0001", &[("showDeleted", "true")]).await;
    assert_eq!(
        summaries(&left),
        [format!("{} Standup", id(7)), format!("{} Moved", id(14))]
    );
    let (_, gone) = google_instances(
        &em,
        &token,
        "standup0001",
        &[("originalStart", "2030-01-28T09:00:00Z")],
    )
    .await;
    assert!(gone.is_empty(), "{gone:?}");
}

/// Every page of a Graph instances listing, following `@odata.nextLink`; (pages, items).
async fn graph_instances(token: &str, first: &str, page_size: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut pages, mut items) = (Vec::new(), Vec::new());
    let mut url = first.to_owned();
    loop {
        assert!(pages.len() < 50, "paging does not end");
        let prefer = format!("odata.maxpagesize={page_size}");
        let (status, page) = call(
            reqwest::Method::GET,
            &url,
            token,
            None,
            &[("Prefer", &prefer)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let value = page["value"].as_array().expect("value");
        assert!(value.len() <= page_size);
        items.extend(value.iter().cloned());
        let next = page["@odata.nextLink"].as_str().map(str::to_owned);
        pages.push(page);
        match next {
            Some(next) => url = next,
            None => return (pages, items),
        }
    }
}

#[tokio::test]
async fn graph_instances_exceptions_cancelled_occurrences_and_a_new_pattern() {
    let em = spawn().expect("spawn");
    let token = microsoft_access(&em, MS_RW).await;
    let me = format!("{}/microsoft/v1.0/me", em.base_url);
    let weekly = |count: u32| {
        json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": count},
        })
    };
    let mut body = graph_single("Standup", "2030-01-07T09:00:00", "2030-01-07T09:30:00");
    body["recurrence"] = weekly(6);
    let (status, master) = call(
        reqwest::Method::POST,
        &format!("{me}/events"),
        &token,
        Some(body),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{master}");
    let master_id = master["id"].as_str().expect("id").to_owned();
    let events = format!("{me}/events/{}", urlenc(&master_id));
    let window = "startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-03-01T00:00:00Z";

    // Both bounds are required.
    for query in ["", "?startDateTime=2030-01-01T00:00:00Z"] {
        let (status, body) = call(
            reqwest::Method::GET,
            &format!("{events}/instances{query}"),
            &token,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "ErrorInvalidParameter");
    }
    let (pages, occurrences) =
        graph_instances(&token, &format!("{events}/instances?{window}"), 4).await;
    assert_eq!(pages.len(), 2);
    assert_eq!(occurrences.len(), 6);
    for o in &occurrences {
        assert_eq!(o["type"], "occurrence");
        assert_eq!(o["seriesMasterId"], master_id.as_str());
        assert_eq!(o["start"]["timeZone"], "UTC");
    }

    // PATCH of an occurrence makes an exception; DELETE cancels one.
    let second = occurrences[1]["id"].as_str().expect("id").to_owned();
    let third = occurrences[2]["id"].as_str().expect("id").to_owned();
    let (status, exception) = call(
        reqwest::Method::PATCH,
        &format!("{me}/events/{}", urlenc(&second)),
        &token,
        Some(json!({"subject": "Moved"})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{exception}");
    assert_eq!(exception["type"], "exception");
    assert_eq!(exception["id"], second.as_str());
    assert_eq!(exception["seriesMasterId"], master_id.as_str());
    assert_eq!(exception["originalStart"], occurrences[1]["originalStart"]);
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("{me}/events/{}", urlenc(&third)),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The other calendar path lists the same: five instances, the exception with its subject.
    let (_, cals) = call(
        reqwest::Method::GET,
        &format!("{me}/calendars"),
        &token,
        None,
        &[],
    )
    .await;
    let default = cals["value"]
        .as_array()
        .expect("calendars")
        .iter()
        .find(|c| c["isDefaultCalendar"] == true)
        .expect("default calendar");
    let by_calendar = format!(
        "{me}/calendars/{}/events/{}/instances?{window}&$select=subject,type",
        urlenc(default["id"].as_str().expect("id")),
        urlenc(&master_id)
    );
    let (_, now) = graph_instances(&token, &by_calendar, 10).await;
    let got: Vec<(String, String)> = now
        .iter()
        .map(|i| {
            (
                i["subject"].as_str().unwrap_or("").to_owned(),
                i["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(got.len(), 5);
    assert_eq!(got[1], ("Moved".to_owned(), "exception".to_owned()));
    assert!(now.iter().all(|i| i["id"] != third.as_str()));
    assert!(
        now[0].get("start").is_none(),
        "$select keeps only what it names: {}",
        now[0]
    );

    // The master: cancelledOccurrences only when selected, exceptionOccurrences when expanded.
    let (_, plain) = call(reqwest::Method::GET, &events, &token, None, &[]).await;
    assert!(plain.get("cancelledOccurrences").is_none());
    assert!(plain.get("exceptionOccurrences").is_none());
    let (status, detail) = call(
        reqwest::Method::GET,
        &format!("{events}?$select=subject,cancelledOccurrences,exceptionOccurrences&$expand=exceptionOccurrences"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(
        detail["cancelledOccurrences"],
        json!([format!("OID.{master_id}.2030-01-21")])
    );
    let expanded = detail["exceptionOccurrences"]
        .as_array()
        .expect("exceptionOccurrences");
    assert_eq!(expanded.len(), 1);
    assert_eq!(expanded[0]["id"], second.as_str());
    assert_eq!(expanded[0]["subject"], "Moved");
    assert!(detail.get("start").is_none() && expanded[0].get("start").is_none());
    let (status, body) = call(
        reqwest::Method::GET,
        &format!("{events}?$select=nonsense"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A shorter range keeps the exception and the cancellation its occurrences still have.
    let (status, updated) = call(
        reqwest::Method::PATCH,
        &events,
        &token,
        Some(json!({"recurrence": weekly(4)})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, after) = graph_instances(&token, &format!("{events}/instances?{window}"), 10).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(after.iter().filter(|i| i["type"] == "exception").count(), 1);

    // A new pattern drops the exceptions and cancellations (MS-OXOCAL 3.1.4.7.3.5).
    let mut twice_a_week = weekly(4);
    twice_a_week["pattern"]["daysOfWeek"] = json!(["monday", "wednesday"]);
    let (status, updated) = call(
        reqwest::Method::PATCH,
        &events,
        &token,
        Some(json!({ "recurrence": twice_a_week })),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, after) = graph_instances(&token, &format!("{events}/instances?{window}"), 10).await;
    assert_eq!(after.len(), 4);
    assert!(after
        .iter()
        .all(|i| i["type"] == "occurrence" && i["subject"] == "Standup"));
    let (_, detail) = call(
        reqwest::Method::GET,
        &format!("{events}?$select=cancelledOccurrences"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(detail["cancelledOccurrences"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// Push notifications: Google channels and Graph subscriptions, delivered to a local receiver

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    query: Vec<(String, String)>,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
    at: std::time::Instant,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON notification body")
    }
}

/// A webhook receiver on 127.0.0.1: it records every request and answers Graph's validation
/// requests by the path: `.../wrong...` echoes a wrong token, `.../json...` the right token as
/// JSON, `.../fail...` answers 500; anything else echoes the decoded token as text/plain.
/// Notifications get 202.
struct Receiver {
    base: String,
    hits: std::sync::Arc<std::sync::Mutex<Vec<Hit>>>,
}

async fn receiver() -> Receiver {
    use http_body_util::BodyExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let shared = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let query: Vec<(String, String)> = parts
                                .uri
                                .query()
                                .map(|q| {
                                    url::form_urlencoded::parse(q.as_bytes())
                                        .into_owned()
                                        .collect()
                                })
                                .unwrap_or_default();
                            let path = parts.uri.path().to_owned();
                            let token = get(&query, "validationToken").map(str::to_owned);
                            shared.lock().unwrap().push(Hit {
                                path: path.clone(),
                                query,
                                headers: parts.headers,
                                body,
                                at: std::time::Instant::now(),
                            });
                            let answer = |status: u16, content_type: &str, text: String| {
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", content_type)
                                    .body(http_body_util::Full::new(hyper::body::Bytes::from(text)))
                                    .expect("response")
                            };
                            let resp = match token {
                                Some(_) if path.contains("wrong") => {
                                    answer(200, "text/plain", "not-the-token".into())
                                }
                                Some(t) if path.contains("json") => {
                                    answer(200, "application/json", t)
                                }
                                Some(_) if path.contains("fail") => {
                                    answer(500, "text/plain", String::new())
                                }
                                Some(t) => answer(200, "text/plain; charset=utf-8", t),
                                None => answer(202, "text/plain", String::new()),
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Receiver { base, hits }
}

impl Receiver {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn at(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    /// Waits (up to 5 s) until `path` has had at least `n` requests.
    async fn wait(&self, path: &str, n: usize) -> Vec<Hit> {
        for _ in 0..250 {
            let hits = self.at(path);
            if hits.len() >= n {
                return hits;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{path}: expected {n} requests, got {:?}", self.at(path));
    }

    /// After a pause, `path` has had exactly `n` requests.
    async fn still(&self, path: &str, n: usize) {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(self.at(path).len(), n, "{path}: {:?}", self.at(path));
    }
}

/// The push delivery log once nothing is pending.
async fn push_log(em: &EmulatorHandle) -> Vec<Value> {
    for _ in 0..250 {
        let log = admin(em, reqwest::Method::GET, "/admin/push/log", Value::Null).await;
        let entries = log["deliveries"].as_array().cloned().unwrap_or_default();
        if entries.iter().all(|e| e["pending"] == false) {
            return entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("push deliveries still pending");
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn google_watch_sync_exists_stop_and_expiry() {
    let em = spawn().expect("spawn");
    let rx = receiver().await;
    let token = google_access(&em, GOOGLE_RW).await;
    let v3 = format!("{}/google/calendar/v3", em.base_url);
    let watch = format!("{v3}/calendars/primary/events/watch");
    let hook = rx.url("/google/hook?x=1");

    let (status, channel) = call(
        reqwest::Method::POST,
        &watch,
        &token,
        Some(
            json!({"id": "chan-1", "type": "web_hook", "address": hook, "token": "target=calsync"}),
        ),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{channel}");
    assert_eq!(channel["kind"], "api#channel");
    assert_eq!(channel["id"], "chan-1");
    assert_eq!(channel["token"], "target=calsync");
    let resource_id = channel["resourceId"]
        .as_str()
        .expect("resourceId")
        .to_owned();
    let resource_uri = channel["resourceUri"]
        .as_str()
        .expect("resourceUri")
        .to_owned();
    assert!(
        resource_uri.contains("/calendars/primary/events"),
        "{resource_uri}"
    );
    let expiration: i64 = channel["expiration"]
        .as_str()
        .expect("expiration is an int64 string")
        .parse()
        .expect("ms");
    let week = 7 * 24 * 3600 * 1000;
    assert!(
        (expiration - (now_ms() + week)).abs() < 60_000,
        "{expiration}"
    );

    // The sync message.
    let hits = rx.wait("/google/hook", 1).await;
    let sync = &hits[0];
    assert_eq!(
        get(&sync.query, "x"),
        Some("1"),
        "the address keeps its query"
    );
    assert_eq!(sync.header("x-goog-channel-id"), Some("chan-1"));
    assert_eq!(sync.header("x-goog-channel-token"), Some("target=calsync"));
    assert_eq!(sync.header("x-goog-resource-state"), Some("sync"));
    assert_eq!(sync.header("x-goog-message-number"), Some("1"));
    assert_eq!(
        sync.header("x-goog-resource-id"),
        Some(resource_id.as_str())
    );
    assert_eq!(
        sync.header("x-goog-resource-uri"),
        Some(resource_uri.as_str())
    );
    let header_expiry = chrono::DateTime::parse_from_rfc2822(
        sync.header("x-goog-channel-expiration")
            .expect("expiration header"),
    )
    .expect("RFC 1123 date");
    assert_eq!(header_expiry.timestamp(), expiration / 1000);
    assert!(sync.body.is_empty());

    // An id in use, and malformed watch requests.
    for (body, reason) in [
        (
            json!({"id": "chan-1", "type": "web_hook", "address": hook}),
            "channelIdNotUnique",
        ),
        (json!({"type": "web_hook", "address": hook}), "required"),
        (json!({"id": "x", "address": hook}), "required"),
        (
            json!({"id": "x", "type": "email", "address": hook}),
            "invalid",
        ),
        (
            json!({"id": "x", "type": "web_hook"}),
            "push.webhookUrlNotHttps",
        ),
        (
            json!({"id": "x", "type": "web_hook", "address": "ftp://127.0.0.1/x"}),
            "push.webhookUrlNotHttps",
        ),
        (
            json!({"id": "x", "type": "web_hook", "address": "https://example.com/hook"}),
            "push.webhookUrlUnauthorized",
        ),
        (
            json!({"id": "x", "type": "web_hook", "address": hook, "expiration": now_ms() - 1000}),
            "invalid",
        ),
    ] {
        let (status, err) = call(
            reqwest::Method::POST,
            &watch,
            &token,
            Some(body.clone()),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"]["errors"][0]["reason"], reason, "{body}: {err}");
    }

    // Changes through the API and the admin endpoints: one `exists` message each.
    let events = format!("{v3}/calendars/primary/events");
    let (status, created) = call(
        reqwest::Method::POST,
        &events,
        &token,
        Some(gtimed(
            "Push me",
            "2030-01-07T09:00:00Z",
            "2030-01-07T10:00:00Z",
        )),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    rx.wait("/google/hook", 2).await;
    let (status, _) = call(
        reqwest::Method::PATCH,
        &format!("{events}/{id}"),
        &token,
        Some(json!({"summary": "Pushed"})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    rx.wait("/google/hook", 3).await;
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/google/calendars/primary/events/push0admin1",
        gtimed("Admin", "2030-01-08T09:00:00Z", "2030-01-08T10:00:00Z"),
    )
    .await;
    rx.wait("/google/hook", 4).await;
    // Deleting a series master cancels its exceptions too: still one message for the request.
    admin(
        &em,
        reqwest::Method::DELETE,
        "/admin/google/calendars/primary/events/seed0oneonone",
        Value::Null,
    )
    .await;
    let hits = rx.wait("/google/hook", 5).await;
    rx.still("/google/hook", 5).await;
    for (i, hit) in hits.iter().enumerate().skip(1) {
        assert_eq!(hit.header("x-goog-resource-state"), Some("exists"));
        assert_eq!(hit.header("x-goog-channel-id"), Some("chan-1"));
        assert_eq!(
            hit.header("x-goog-message-number"),
            Some((i + 1).to_string().as_str())
        );
    }
    // A change to another calendar is not this channel's business.
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/google/calendars/team@group.calendar.google.test/events/push0team1",
        gtimed("Team", "2030-01-08T09:00:00Z", "2030-01-08T10:00:00Z"),
    )
    .await;
    rx.still("/google/hook", 5).await;

    // Requested expirations: kept when within the week, capped beyond it.
    let in_an_hour = now_ms() + 3_600_000;
    let (_, short) = call(
        reqwest::Method::POST,
        &format!("{v3}/calendars/team%40group.calendar.google.test/events/watch"),
        &token,
        Some(json!({"id": "chan-team", "type": "webhook", "address": rx.url("/google/team"), "expiration": in_an_hour.to_string()})),
        &[],
    )
    .await;
    assert_eq!(short["expiration"], in_an_hour.to_string());
    assert_ne!(
        short["resourceId"],
        resource_id.as_str(),
        "another calendar, another resource"
    );
    let (_, long) = call(
        reqwest::Method::POST,
        &watch,
        &token,
        Some(json!({"id": "chan-long", "type": "web_hook", "address": rx.url("/google/long"), "expiration": now_ms() + 30 * 24 * 3_600_000_i64})),
        &[],
    )
    .await;
    let capped: i64 = long["expiration"]
        .as_str()
        .expect("expiration")
        .parse()
        .expect("ms");
    assert!((capped - (now_ms() + week)).abs() < 60_000, "{long}");
    assert_eq!(
        long["resourceId"],
        resource_id.as_str(),
        "resourceId is stable per calendar"
    );
    assert!(
        long.get("token").is_none(),
        "no token, no token field: {long}"
    );
    rx.wait("/google/long", 1).await;
    let (_, ttl) = call(
        reqwest::Method::POST,
        &watch,
        &token,
        Some(json!({"id": "chan-ttl", "type": "web_hook", "address": rx.url("/google/ttl"), "params": {"ttl": "120"}})),
        &[],
    )
    .await;
    let ttl_expiry: i64 = ttl["expiration"]
        .as_str()
        .expect("expiration")
        .parse()
        .expect("ms");
    assert!((ttl_expiry - (now_ms() + 120_000)).abs() < 10_000, "{ttl}");

    // channels.stop: the resourceId must match; then the channel is silent.
    let stop = format!("{v3}/channels/stop");
    let (status, _) = call(
        reqwest::Method::POST,
        &stop,
        &token,
        Some(json!({"id": "chan-1", "resourceId": "not-it"})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        reqwest::Method::POST,
        &stop,
        &token,
        Some(json!({"id": "nope", "resourceId": resource_id})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let resp = client()
        .post(&stop)
        .bearer_auth(&token)
        .json(&json!({"id": "chan-1", "resourceId": resource_id}))
        .send()
        .await
        .expect("stop");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.expect("body").is_empty());
    let (status, _) = call(
        reqwest::Method::POST,
        &stop,
        &token,
        Some(json!({"id": "chan-1", "resourceId": resource_id})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "stopped already");

    // An expired channel (made so by the admin API) is silent too.
    admin(
        &em,
        reqwest::Method::POST,
        "/admin/google/channels/chan-ttl/expire",
        Value::Null,
    )
    .await;
    rx.wait("/google/ttl", 1).await;
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/google/calendars/primary/events/push0admin2",
        gtimed("After stop", "2030-01-09T09:00:00Z", "2030-01-09T10:00:00Z"),
    )
    .await;
    rx.wait("/google/long", 2).await;
    rx.still("/google/hook", 5).await;
    rx.still("/google/ttl", 1).await;

    // A new channel may reuse a stopped channel's id.
    let (status, again) = call(
        reqwest::Method::POST,
        &watch,
        &token,
        Some(json!({"id": "chan-1", "type": "web_hook", "address": rx.url("/google/again")})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");

    let channels = admin(
        &em,
        reqwest::Method::GET,
        "/admin/google/channels",
        Value::Null,
    )
    .await;
    let states: Vec<(String, String)> = channels["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("chan-1", "stopped"),
            ("chan-team", "live"),
            ("chan-long", "live"),
            ("chan-ttl", "expired"),
            ("chan-1", "live"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    let log = push_log(&em).await;
    let first: Vec<&Value> = log.iter().filter(|e| e["channelId"] == "chan-1").collect();
    assert_eq!(first[0]["kind"], "sync");
    assert_eq!(first[0]["provider"], "google");
    assert_eq!(first[0]["status"], 202);
    assert_eq!(first[1]["kind"], "exists");
    assert_eq!(first[1]["messageNumber"], 2);
}

fn graph_expiry(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()
}

fn parse_graph_time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("date-time"))
        .expect("ISO 8601")
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn graph_subscription_validation_notifications_renewal_and_delete() {
    let em = spawn().expect("spawn");
    let rx = receiver().await;
    let token = microsoft_access(&em, MS_RW).await;
    let graph = format!("{}/microsoft/v1.0", em.base_url);

    let (status, sub) = call(
        reqwest::Method::POST,
        &format!("{graph}/subscriptions"),
        &token,
        Some(json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": rx.url("/graph/notify"),
            "lifecycleNotificationUrl": rx.url("/graph/lifecycle"),
            "resource": "/me/events",
            "expirationDateTime": graph_expiry(2 * 24 * 60),
            "clientState": "secret-state",
        })),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert_eq!(
        sub["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity"
    );
    let sub_id = sub["id"].as_str().expect("id").to_owned();
    assert_eq!(sub_id.len(), 36, "a GUID: {sub_id}");
    assert_eq!(sub["resource"], "/me/events");
    assert_eq!(sub["changeType"], "created,updated,deleted");
    assert_eq!(sub["clientState"], "secret-state");
    assert_eq!(sub["applicationId"], "test-client");
    assert_eq!(sub["includeResourceData"], false);
    assert_eq!(sub["latestSupportedTlsVersion"], "v1_2");
    assert_eq!(sub["notificationUrl"], rx.url("/graph/notify"));
    assert_eq!(sub["lifecycleNotificationUrl"], rx.url("/graph/lifecycle"));
    let user_id = sub["creatorId"].as_str().expect("creatorId").to_owned();
    assert!(!user_id.is_empty());

    // Both URLs were validated before the answer: POST ?validationToken=..., text/plain.
    for path in ["/graph/notify", "/graph/lifecycle"] {
        let hits = rx.at(path);
        assert_eq!(hits.len(), 1, "{path}: {hits:?}");
        let token = get(&hits[0].query, "validationToken").expect("validationToken");
        assert!(token.contains(' '), "the token needs URL decoding: {token}");
        assert!(hits[0]
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain"));
        assert!(hits[0].body.is_empty());
    }

    // Changes through the API: created, updated, deleted.
    let events = format!("{graph}/me/events");
    let (status, ev) = call(
        reqwest::Method::POST,
        &events,
        &token,
        Some(graph_single(
            "Push",
            "2030-01-07T09:00:00",
            "2030-01-07T10:00:00",
        )),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ev}");
    let ev_id = ev["id"].as_str().expect("id").to_owned();
    let hits = rx.wait("/graph/notify", 2).await;
    let created = &hits[1];
    assert!(created
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let body = created.json();
    let n = &body["value"][0];
    assert_eq!(body["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(n["subscriptionId"], sub_id.as_str());
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["clientState"], "secret-state");
    assert_eq!(n["tenantId"], "9188040d-6c67-4c5b-b112-36a304b66dad");
    let resource = format!("Users/{user_id}/Events/{ev_id}");
    assert_eq!(n["resource"], resource.as_str());
    assert_eq!(n["resourceData"]["@odata.type"], "#Microsoft.Graph.Event");
    assert_eq!(n["resourceData"]["@odata.id"], resource.as_str());
    assert_eq!(n["resourceData"]["id"], ev_id.as_str());
    assert_eq!(n["resourceData"]["@odata.etag"], ev["@odata.etag"]);
    assert_eq!(
        parse_graph_time(&n["subscriptionExpirationDateTime"]),
        parse_graph_time(&sub["expirationDateTime"])
    );
    let (status, _) = call(
        reqwest::Method::PATCH,
        &format!("{events}/{ev_id}"),
        &token,
        Some(json!({"subject": "Pushed"})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let hits = rx.wait("/graph/notify", 3).await;
    assert_eq!(hits[2].json()["value"][0]["changeType"], "updated");
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("{events}/{ev_id}"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let hits = rx.wait("/graph/notify", 4).await;
    assert_eq!(hits[3].json()["value"][0]["changeType"], "deleted");
    assert_eq!(
        hits[3].json()["value"][0]["resourceData"]["id"],
        ev_id.as_str()
    );

    // Admin writes notify too; a second subscription asks for deletions only.
    let default_cal = admin(&em, reqwest::Method::GET, "/admin/accounts", Value::Null).await
        ["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "bob@outlook.test")
        .unwrap()["calendars"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, deletions) = call(
        reqwest::Method::POST,
        &format!("{graph}/subscriptions"),
        &token,
        Some(json!({
            "changeType": "deleted",
            "notificationUrl": rx.url("/graph/deletions"),
            "resource": format!("me/calendars/{default_cal}/events"),
            "expirationDateTime": graph_expiry(60),
        })),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{deletions}");
    assert_eq!(deletions["clientState"], Value::Null);
    assert_eq!(deletions["lifecycleNotificationUrl"], Value::Null);
    let admin_event = "/admin/microsoft/calendars/default/events/AAMkAGIpush1AAA=";
    admin(
        &em,
        reqwest::Method::PUT,
        admin_event,
        graph_single("Admin", "2030-01-08T09:00:00", "2030-01-08T10:00:00"),
    )
    .await;
    let hits = rx.wait("/graph/notify", 5).await;
    assert_eq!(hits[4].json()["value"][0]["changeType"], "created");
    assert_eq!(
        hits[4].json()["value"][0]["resourceData"]["id"],
        "AAMkAGIpush1AAA="
    );
    rx.still("/graph/deletions", 1).await; // its validation only
    admin(&em, reqwest::Method::DELETE, admin_event, Value::Null).await;
    rx.wait("/graph/notify", 6).await;
    let hits = rx.wait("/graph/deletions", 2).await;
    assert_eq!(hits[1].json()["value"][0]["changeType"], "deleted");
    assert_eq!(hits[1].json()["value"][0]["clientState"], Value::Null);

    // Get, list, renew.
    let one = format!("{graph}/subscriptions/{sub_id}");
    let (status, got) = call(reqwest::Method::GET, &one, &token, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["id"], sub_id.as_str());
    let (_, list) = call(
        reqwest::Method::GET,
        &format!("{graph}/subscriptions"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(list["value"].as_array().map(Vec::len), Some(2), "{list}");
    let renewal = graph_expiry(3 * 24 * 60);
    let (status, renewed) = call(
        reqwest::Method::PATCH,
        &one,
        &token,
        Some(json!({"expirationDateTime": renewal})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert!(
        (parse_graph_time(&renewed["expirationDateTime"]) - parse_graph_time(&json!(renewal)))
            .num_seconds()
            .abs()
            < 1
    );
    let (status, err) = call(
        reqwest::Method::PATCH,
        &one,
        &token,
        Some(json!({"expirationDateTime": graph_expiry(10_081)})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "ExtensionError", "{err}");

    // Expiration rules on create: past and too far refused, under 45 minutes raised to 45.
    let create = |expiry: String, extra: Value| {
        let mut body = json!({
            "changeType": "created",
            "notificationUrl": rx.url("/graph/other"),
            "resource": "me/events",
            "expirationDateTime": expiry,
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        body
    };
    for (body, code) in [
        (create(graph_expiry(-5), json!({})), "InvalidRequest"),
        (create(graph_expiry(10_090), json!({})), "ExtensionError"),
        (
            create(graph_expiry(60), json!({"clientState": "x".repeat(129)})),
            "InvalidRequest",
        ),
        (
            create(graph_expiry(60), json!({"changeType": "created,moved"})),
            "InvalidRequest",
        ),
        (
            create(
                graph_expiry(60),
                json!({"notificationUrl": "https://example.com/hook"}),
            ),
            "InvalidRequest",
        ),
        (
            json!({"changeType": "created", "notificationUrl": rx.url("/graph/other"), "resource": "me/events"}),
            "InvalidRequest",
        ),
    ] {
        let (status, err) = call(
            reqwest::Method::POST,
            &format!("{graph}/subscriptions"),
            &token,
            Some(body.clone()),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"]["code"], code, "{body}: {err}");
    }
    let (status, soon) = call(
        reqwest::Method::POST,
        &format!("{graph}/subscriptions"),
        &token,
        Some(create(graph_expiry(10), json!({}))),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{soon}");
    let minutes =
        (parse_graph_time(&soon["expirationDateTime"]) - chrono::Utc::now()).num_minutes();
    assert!((44..=45).contains(&minutes), "{soon}");
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("{graph}/subscriptions"),
        &token,
        Some(create(
            graph_expiry(60),
            json!({"resource": "me/calendars/AAMkAnope/events"}),
        )),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete: 204, then 404 everywhere, and no more notifications.
    let resp = client()
        .delete(&one)
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let (status, err) = call(method, &one, &token, None, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(err["error"]["code"], "ResourceNotFound");
    }
    let (status, _) = call(
        reqwest::Method::PATCH,
        &one,
        &token,
        Some(json!({"expirationDateTime": graph_expiry(60)})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    admin(
        &em,
        reqwest::Method::PUT,
        admin_event,
        graph_single("Again", "2030-01-08T09:00:00", "2030-01-08T10:00:00"),
    )
    .await;
    rx.wait("/graph/other", 2).await; // the 45-minute subscription: validation + created
    rx.still("/graph/notify", 6).await;

    // An expired subscription is gone for the API and silent.
    let soon_id = soon["id"].as_str().unwrap();
    admin(
        &em,
        reqwest::Method::POST,
        &format!("/admin/microsoft/subscriptions/{soon_id}/expire"),
        Value::Null,
    )
    .await;
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/microsoft/calendars/default/events/AAMkAGIpush3AAA=",
        graph_single("Late", "2030-01-09T09:00:00", "2030-01-09T10:00:00"),
    )
    .await;
    rx.still("/graph/other", 2).await;
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("{graph}/subscriptions/{soon_id}"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let subs = admin(
        &em,
        reqwest::Method::GET,
        "/admin/microsoft/subscriptions",
        Value::Null,
    )
    .await;
    let states: Vec<&str> = subs["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["deleted", "live", "expired"]);
}

#[tokio::test]
async fn graph_validation_failures_refuse_the_subscription() {
    let em = spawn().expect("spawn");
    let rx = receiver().await;
    let token = microsoft_access(&em, MS_RW).await;
    let url = format!("{}/microsoft/v1.0/subscriptions", em.base_url);
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("http://127.0.0.1:{port}/hook")
    };
    for (notify, lifecycle, why) in [
        (
            rx.url("/wrong"),
            None,
            "Response must exactly match validationToken query parameter.",
        ),
        (
            rx.url("/json"),
            None,
            "Response must have Content-Type text/plain.",
        ),
        (
            rx.url("/fail"),
            None,
            "Notification endpoint must respond with 200 OK to validation request.",
        ),
        (
            closed.clone(),
            None,
            "Notification endpoint must respond with 200 OK to validation request.",
        ),
        (
            rx.url("/fine"),
            Some(rx.url("/wrong-lifecycle")),
            "Response must exactly match validationToken query parameter.",
        ),
    ] {
        let mut body = json!({
            "changeType": "updated",
            "notificationUrl": notify,
            "resource": "me/events",
            "expirationDateTime": graph_expiry(120),
        });
        if let Some(l) = &lifecycle {
            body["lifecycleNotificationUrl"] = json!(l);
        }
        let (status, err) = call(reqwest::Method::POST, &url, &token, Some(body), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{notify}: {err}");
        assert_eq!(err["error"]["code"], "InvalidRequest");
        assert_eq!(
            err["error"]["message"],
            format!("Subscription validation request failed. {why}"),
            "{notify}"
        );
    }
    let subs = admin(
        &em,
        reqwest::Method::GET,
        "/admin/microsoft/subscriptions",
        Value::Null,
    )
    .await;
    assert_eq!(subs["subscriptions"], json!([]));
    let log = push_log(&em).await;
    assert!(log.iter().all(|e| e["kind"] == "validation"), "{log:?}");
    assert_eq!(log.len(), 6);
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[2]["status"], 500);
    assert_eq!(log[3]["status"], Value::Null);
    assert!(log[3]["error"].as_str().is_some());
    // Nothing was created: a change notifies nobody.
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/microsoft/calendars/default/events/AAMkAGIpush2AAA=",
        graph_single("Nobody", "2030-01-08T09:00:00", "2030-01-08T10:00:00"),
    )
    .await;
    rx.still("/fine", 1).await;
}

#[tokio::test]
async fn graph_lifecycle_notifications() {
    let em = spawn().expect("spawn");
    let rx = receiver().await;
    let token = microsoft_access(&em, MS_RW).await;
    let graph = format!("{}/microsoft/v1.0", em.base_url);
    let subscribe = |lifecycle: Option<String>| {
        let mut body = json!({
            "changeType": "created",
            "notificationUrl": rx.url("/graph/notify"),
            "resource": "me/events",
            "expirationDateTime": graph_expiry(24 * 60),
            "clientState": "c-state",
        });
        if let Some(l) = lifecycle {
            body["lifecycleNotificationUrl"] = json!(l);
        }
        body
    };
    let (status, sub) = call(
        reqwest::Method::POST,
        &format!("{graph}/subscriptions"),
        &token,
        Some(subscribe(Some(rx.url("/graph/lifecycle")))),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let id = sub["id"].as_str().unwrap().to_owned();
    let lifecycle = format!("/admin/microsoft/subscriptions/{id}/lifecycle");

    for (i, event) in ["reauthorizationRequired", "missed"].iter().enumerate() {
        admin(
            &em,
            reqwest::Method::POST,
            &lifecycle,
            json!({"event": event}),
        )
        .await;
        let hits = rx.wait("/graph/lifecycle", i + 2).await;
        let body = hits[i + 1].json();
        let n = &body["value"][0];
        assert_eq!(n["lifecycleEvent"], *event);
        assert_eq!(n["subscriptionId"], id.as_str());
        assert_eq!(n["clientState"], "c-state");
        assert_eq!(n["tenantId"], "9188040d-6c67-4c5b-b112-36a304b66dad");
        assert_eq!(
            parse_graph_time(&n["subscriptionExpirationDateTime"]),
            parse_graph_time(&sub["expirationDateTime"])
        );
        let mut keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "clientState",
                "lifecycleEvent",
                "subscriptionExpirationDateTime",
                "subscriptionId",
                "tenantId"
            ]
        );
    }
    // reauthorize answers 204 and changes nothing.
    let resp = client()
        .post(format!("{graph}/subscriptions/{id}/reauthorize"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("reauthorize");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let (status, err) = admin_raw(
        &em,
        reqwest::Method::POST,
        &lifecycle,
        json!({"event": "exploded"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");

    // subscriptionRemoved: notified, and the subscription is gone.
    admin(
        &em,
        reqwest::Method::POST,
        &lifecycle,
        json!({"event": "subscriptionRemoved"}),
    )
    .await;
    let hits = rx.wait("/graph/lifecycle", 4).await;
    assert_eq!(
        hits[3].json()["value"][0]["lifecycleEvent"],
        "subscriptionRemoved"
    );
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("{graph}/subscriptions/{id}"),
        &token,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let subs = admin(
        &em,
        reqwest::Method::GET,
        "/admin/microsoft/subscriptions",
        Value::Null,
    )
    .await;
    assert_eq!(subs["subscriptions"][0]["state"], "removed");
    let (status, _) = admin_raw(
        &em,
        reqwest::Method::POST,
        &lifecycle,
        json!({"event": "missed"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Without a lifecycleNotificationUrl there is nowhere to send one.
    let (_, plain) = call(
        reqwest::Method::POST,
        &format!("{graph}/subscriptions"),
        &token,
        Some(subscribe(None)),
        &[],
    )
    .await;
    let (status, err) = admin_raw(
        &em,
        reqwest::Method::POST,
        &format!(
            "/admin/microsoft/subscriptions/{}/lifecycle",
            plain["id"].as_str().unwrap()
        ),
        json!({"event": "missed"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
}

#[tokio::test]
async fn push_faults_drop_duplicate_delay_and_reset() {
    let em = spawn().expect("spawn");
    let rx = receiver().await;
    let g_token = google_access(&em, GOOGLE_RW).await;
    let m_token = microsoft_access(&em, MS_RW).await;
    let settings = admin(&em, reqwest::Method::GET, "/admin/push", Value::Null).await;
    assert_eq!(
        settings,
        json!({"dropNext": 0, "duplicateNext": 0, "delayMs": 0})
    );

    // A dropped notification never leaves; sync messages are never dropped.
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/push",
        json!({"dropNext": 1}),
    )
    .await;
    let (status, _) = call(
        reqwest::Method::POST,
        &format!(
            "{}/google/calendar/v3/calendars/primary/events/watch",
            em.base_url
        ),
        &g_token,
        Some(json!({"id": "faulty", "type": "web_hook", "address": rx.url("/g")})),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    rx.wait("/g", 1).await;
    let put = |n: u32| {
        let em = em.clone();
        async move {
            admin(
                &em,
                reqwest::Method::PUT,
                &format!("/admin/google/calendars/primary/events/fault0{n}"),
                gtimed("Fault", "2030-01-08T09:00:00Z", "2030-01-08T10:00:00Z"),
            )
            .await;
        }
    };
    put(1).await; // dropped (message 2)
    rx.still("/g", 1).await;
    let settings = admin(&em, reqwest::Method::GET, "/admin/push", Value::Null).await;
    assert_eq!(settings["dropNext"], 0);

    // A duplicated one comes twice with the same message number.
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/push",
        json!({"duplicateNext": 1}),
    )
    .await;
    put(2).await; // message 3, twice
    let hits = rx.wait("/g", 3).await;
    assert_eq!(hits[1].header("x-goog-message-number"), Some("3"));
    assert_eq!(hits[2].header("x-goog-message-number"), Some("3"));
    put(3).await; // message 4, once
    let hits = rx.wait("/g", 4).await;
    assert_eq!(hits[3].header("x-goog-message-number"), Some("4"));
    rx.still("/g", 4).await;

    // Graph notifications obey the same faults.
    let (status, sub) = call(
        reqwest::Method::POST,
        &format!("{}/microsoft/v1.0/subscriptions", em.base_url),
        &m_token,
        Some(json!({
            "changeType": "created,updated",
            "notificationUrl": rx.url("/m"),
            "resource": "me/events",
            "expirationDateTime": graph_expiry(120),
        })),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/push",
        json!({"dropNext": 1}),
    )
    .await;
    let m_event = "/admin/microsoft/calendars/default/events/AAMkAGIfault1AAA=";
    admin(
        &em,
        reqwest::Method::PUT,
        m_event,
        graph_single("One", "2030-01-08T09:00:00", "2030-01-08T10:00:00"),
    )
    .await;
    rx.still("/m", 1).await; // validation only
    admin(
        &em,
        reqwest::Method::PUT,
        m_event,
        graph_single("Two", "2030-01-08T09:00:00", "2030-01-08T10:00:00"),
    )
    .await;
    let hits = rx.wait("/m", 2).await;
    assert_eq!(hits[1].json()["value"][0]["changeType"], "updated");

    // Every delivery waits delayMs.
    admin(
        &em,
        reqwest::Method::PUT,
        "/admin/push",
        json!({"delayMs": 400}),
    )
    .await;
    let started = std::time::Instant::now();
    put(4).await;
    let hits = rx.wait("/g", 5).await;
    assert!(
        hits[4].at.duration_since(started) >= std::time::Duration::from_millis(400),
        "{:?}",
        hits[4].at.duration_since(started)
    );
    let settings = admin(&em, reqwest::Method::GET, "/admin/push", Value::Null).await;
    assert_eq!(
        settings,
        json!({"dropNext": 0, "duplicateNext": 0, "delayMs": 400})
    );

    let log = push_log(&em).await;
    let google: Vec<&Value> = log.iter().filter(|e| e["provider"] == "google").collect();
    let flags: Vec<(String, bool, bool, Value)> = google
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["dropped"].as_bool().unwrap(),
                e["duplicated"].as_bool().unwrap(),
                e["messageNumber"].clone(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        vec![
            ("sync".to_owned(), false, false, json!(1)),
            ("exists".to_owned(), true, false, json!(2)),
            ("exists".to_owned(), false, false, json!(3)),
            ("exists".to_owned(), false, true, json!(3)),
            ("exists".to_owned(), false, false, json!(4)),
            ("exists".to_owned(), false, false, json!(5)),
        ]
    );
    assert_eq!(google[1]["status"], Value::Null);
    assert!(google
        .iter()
        .filter(|e| e["dropped"] == false)
        .all(|e| e["status"] == 202));
    let graph: Vec<(&str, bool)> = log
        .iter()
        .filter(|e| e["provider"] == "microsoft")
        .map(|e| (e["kind"].as_str().unwrap(), e["dropped"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        graph,
        [("validation", false), ("created", true), ("updated", false)]
    );

    // A reset forgets channels, subscriptions, faults and the log; queued deliveries are not sent.
    put(5).await; // queued with a 400 ms delay
    admin(&em, reqwest::Method::POST, "/admin/reset", Value::Null).await;
    rx.still("/g", 5).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.at("/g").len(), 5);
    let settings = admin(&em, reqwest::Method::GET, "/admin/push", Value::Null).await;
    assert_eq!(
        settings,
        json!({"dropNext": 0, "duplicateNext": 0, "delayMs": 0})
    );
    let channels = admin(
        &em,
        reqwest::Method::GET,
        "/admin/google/channels",
        Value::Null,
    )
    .await;
    assert_eq!(channels["channels"], json!([]));
    let subs = admin(
        &em,
        reqwest::Method::GET,
        "/admin/microsoft/subscriptions",
        Value::Null,
    )
    .await;
    assert_eq!(subs["subscriptions"], json!([]));
    let log = admin(&em, reqwest::Method::GET, "/admin/push/log", Value::Null).await;
    assert_eq!(log["deliveries"], json!([]));
}
