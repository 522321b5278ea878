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
