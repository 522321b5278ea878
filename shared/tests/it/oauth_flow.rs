//! The whole OAuth connection flow against the Google and Microsoft emulators: start, consent,
//! callback, stored accounts and calendars, queued first syncs, state rejections, the browser
//! binding, disconnect.

use std::collections::HashMap;

use calsync::api::ApiRequest;
use calsync::app::App;
use calsync::crypto::SecretContext;
use calsync::ids;
use calsync::model::{OAuthState, Provider};
use calsync_provider_emulator::EmulatorHandle;
use chrono::{Duration, Utc};
use http::{Method, StatusCode};
use serde_json::Value;

use crate::support::*;

const API: &str = "http://127.0.0.1:3000";
const APP_URL: &str = "https://app.calsync.test/connected";

pub(crate) fn oauth_config(emulator: &EmulatorHandle) -> Vec<(&'static str, String)> {
    let base = &emulator.base_url;
    vec![
        ("OAUTH_CALLBACK_BASE", API.into()),
        ("APP_REDIRECT_URL", APP_URL.into()),
        ("GOOGLE_CLIENT_ID", "calsync-google".into()),
        ("GOOGLE_CLIENT_SECRET", "google-client-secret-value".into()),
        ("GOOGLE_AUTH_URL", format!("{base}/google/o/oauth2/v2/auth")),
        ("GOOGLE_TOKEN_URL", format!("{base}/google/token")),
        ("GOOGLE_REVOKE_URL", format!("{base}/google/revoke")),
        ("GOOGLE_API_BASE", format!("{base}/google/calendar/v3")),
        ("MICROSOFT_CLIENT_ID", "calsync-microsoft".into()),
        (
            "MICROSOFT_CLIENT_SECRET",
            "microsoft-client-secret-value".into(),
        ),
        (
            "MICROSOFT_AUTH_URL",
            format!("{base}/microsoft/common/oauth2/v2.0/authorize"),
        ),
        (
            "MICROSOFT_TOKEN_URL",
            format!("{base}/microsoft/common/oauth2/v2.0/token"),
        ),
        ("MICROSOFT_API_BASE", format!("{base}/microsoft/v1.0")),
    ]
}

pub(crate) async fn setup(tag: &str) -> (EmulatorHandle, App, TestUser) {
    setup_with(tag, &[]).await
}

/// [`setup`] with more configuration on top.
pub(crate) async fn setup_with(
    tag: &str,
    extra: &[(&'static str, String)],
) -> (EmulatorHandle, App, TestUser) {
    let emulator = calsync_provider_emulator::spawn().expect("provider emulator");
    let mut config = oauth_config(&emulator);
    config.extend(extra.iter().cloned());
    let app = app_with(&config).await;
    let user = register(&app, tag).await;
    (emulator, app, user)
}

/// A flow as the user's browser holds it after the provider's consent: the callback's query
/// (state, code) and the cookie our start route set.
#[derive(Clone)]
pub(crate) struct Flow {
    pub query: HashMap<String, String>,
    pub cookie: Option<String>,
}

impl Flow {
    /// The same flow arriving from another browser (no cookie).
    fn elsewhere(&self) -> Self {
        Self {
            query: self.query.clone(),
            cookie: None,
        }
    }

    fn with_state(&self, state: &str) -> Self {
        let mut flow = self.clone();
        flow.query.insert("state".into(), state.into());
        flow
    }
}

/// Asks for an authorization URL; returns it.
async fn authorization_url(app: &App, user: &TestUser, provider: &str) -> url::Url {
    let (status, body) = call(
        app,
        send(
            Method::POST,
            &format!("/v1/connections/{provider}"),
            &user.token,
            &Value::Null,
        )
        .with_json(&serde_json::json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = url::Url::parse(body["authorizationUrl"].as_str().unwrap()).unwrap();
    assert_eq!(
        url.as_str().split('?').next().unwrap(),
        format!("{API}/oauth/{provider}/start"),
        "the link is our start route"
    );
    url
}

/// A browser opening our start link; returns our answer.
async fn open_start_link(app: &App, link: &url::Url) -> calsync::api::ApiResponse {
    let mut req = ApiRequest::new(Method::GET, link.path());
    for (k, v) in link.query_pairs() {
        req = req.with_query(&k, &v);
    }
    app.handle(&calsync::api::service::ALL, req).await
}

fn header<'r>(response: &'r calsync::api::ApiResponse, name: &str) -> Option<&'r str> {
    response
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The provider's consent screen (automatic in the emulator); returns the callback's query.
async fn consent_at_provider(provider: &str, consent_url: &str) -> HashMap<String, String> {
    assert!(
        consent_url.contains("code_challenge_method=S256") && consent_url.contains("state="),
        "{consent_url}"
    );
    assert!(
        consent_url.contains(&format!(
            "redirect_uri={}",
            urlencode(&format!("{API}/oauth/{provider}/callback"))
        )),
        "{consent_url}"
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser.get(consent_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{API}/oauth/{provider}/callback")),
        "{location}"
    );
    location.query_pairs().into_owned().collect()
}

/// Starts a connection, opens its link in a browser and lets the emulator consent.
pub(crate) async fn consent(app: &App, user: &TestUser, provider: &str) -> Flow {
    let link = authorization_url(app, user, provider).await;
    let started = open_start_link(app, &link).await;
    assert_eq!(started.status, StatusCode::FOUND, "{:?}", started.body);
    let set_cookie = header(&started, "set-cookie").expect("the start route sets a cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let query = consent_at_provider(provider, header(&started, "location").unwrap()).await;
    Flow {
        query,
        cookie: Some(cookie),
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The browser arriving at our callback; returns where we send it next.
pub(crate) async fn callback(app: &App, provider: &str, flow: &Flow) -> String {
    let mut req = ApiRequest::new(Method::GET, &format!("/oauth/{provider}/callback"));
    for (k, v) in &flow.query {
        req = req.with_query(k, v);
    }
    if let Some(cookie) = &flow.cookie {
        req = req.with_header("cookie", &format!("theme=dark; {cookie}"));
    }
    let response = app.handle(&calsync::api::service::ALL, req).await;
    assert_eq!(response.status, StatusCode::FOUND, "{:?}", response.body);
    let location = header(&response, "location").unwrap().to_owned();
    assert!(location.starts_with(APP_URL), "{location}");
    location
}

async fn stats(emulator: &EmulatorHandle) -> Value {
    reqwest::get(format!("{}/admin/stats", emulator.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn google_accounts_connect_by_oauth_and_disconnect_with_revocation() {
    let (emulator, app, user) = setup("google").await;
    let query = consent(&app, &user, "google").await;
    let landed = callback(&app, "google", &query).await;
    assert_eq!(
        landed,
        format!("{APP_URL}?status=connected&provider=google&calendars=3")
    );
    assert!(!landed.contains(&query.query["code"]) && !landed.contains(&query.query["state"]));

    let (_, listed) = call(&app, get("/v1/calendars", &user.token)).await;
    let calendars = listed["calendars"].as_array().unwrap();
    let names: Vec<_> = calendars
        .iter()
        .map(|c| c["providerName"].as_str().unwrap())
        .collect();
    assert_eq!(calendars.len(), 3, "{listed}");
    assert_eq!(names[0], "alice@gmail.test", "primary first");
    assert!(calendars
        .iter()
        .all(|c| c["provider"] == "GOOGLE" && c["status"] == "active"));

    // Tokens are stored sealed: no item holds the plaintext.
    let connection = app.store.connections(&user.id).await.unwrap().remove(0);
    let account_id = connection.account_id.clone().unwrap();
    let account = app
        .store
        .account(&user.id, &account_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.account_email, "alice@gmail.test");
    let cipher = app.cipher().unwrap();
    let ctx = |field| SecretContext {
        user_id: &user.id,
        account_id: &account_id,
        field,
    };
    let access = cipher
        .open(account.access_token.as_ref().unwrap(), ctx("access_token"))
        .await
        .unwrap();
    let refresh = cipher
        .open(
            account.refresh_token.as_ref().unwrap(),
            ctx("refresh_token"),
        )
        .await
        .unwrap();
    let account_item = raw_item(
        "CONNECTIONS_TABLE",
        &format!("USER#{}", user.id),
        &format!("ACCT#{account_id}"),
    )
    .await
    .unwrap();
    let dump = format!("{account_item:?}");
    assert!(!dump.contains(access.expose()) && !dump.contains(refresh.expose()));
    assert!(account.token_expires_at.unwrap() > Utc::now() + Duration::minutes(50));

    // Each calendar's first sync is queued.
    let queued = drain_sync_queue(&user.id).await;
    let mut expected: Vec<String> = calendars
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    expected.sort();
    assert_eq!(queued, expected);

    // Connecting the same account again updates; nothing is duplicated.
    let again = consent(&app, &user, "google").await;
    callback(&app, "google", &again).await;
    let (_, relisted) = call(&app, get("/v1/calendars", &user.token)).await;
    assert_eq!(relisted["calendars"].as_array().unwrap().len(), 3);

    // Removing the account's last calendar revokes the grant and forgets the tokens.
    for calendar in calendars {
        let path = format!("/v1/calendars/{}", calendar["id"].as_str().unwrap());
        let (status, _) = call(
            &app,
            ApiRequest::new(Method::DELETE, &path).with_bearer(&user.token),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    assert_eq!(stats(&emulator).await["google"]["revocations"], 1);
    let account = app
        .store
        .account(&user.id, &account_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        account.access_token.is_none() && account.refresh_token.is_none() && !account.is_connected
    );
    let (_, audit) = call(&app, get("/v1/audit-log", &user.token)).await;
    assert_eq!(audit["entries"][0]["action"], "ACCOUNT_DISCONNECTED");
    assert_eq!(audit["entries"][0]["metadata"]["revoked"], true);
}

/// Sync requests of this user on the queue, by connection id (consumed).
async fn drain_sync_queue(user_id: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let queue = &stack().environment["SYNC_QUEUE_URL"];
    let mut found = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            if body["userId"] == user_id {
                found.push(body["connectionId"].as_str().unwrap().to_owned());
                assert_eq!(body["reason"], "connected");
            }
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn microsoft_accounts_connect_by_oauth() {
    let (_emulator, app, user) = setup("microsoft").await;
    let query = consent(&app, &user, "microsoft").await;
    let landed = callback(&app, "microsoft", &query).await;
    assert_eq!(
        landed,
        format!("{APP_URL}?status=connected&provider=microsoft&calendars=2")
    );
    let (_, listed) = call(&app, get("/v1/calendars", &user.token)).await;
    assert_eq!(listed["calendars"][0]["providerName"], "Calendar");
    assert_eq!(listed["calendars"][0]["isPrimary"], true);
    assert_eq!(listed["calendars"][0]["provider"], "MICROSOFT");
}

#[tokio::test]
async fn twenty_concurrent_callbacks_with_one_state_connect_once() {
    let (emulator, app, user) = setup("race").await;
    let query = consent(&app, &user, "google").await;
    let callbacks = (0..20).map(|_| {
        let (app, query) = (app.clone(), query.clone());
        tokio::spawn(async move { callback(&app, "google", &query).await })
    });
    let mut landed: Vec<String> = Vec::new();
    for c in callbacks {
        landed.push(c.await.unwrap());
    }
    let connected = landed
        .iter()
        .filter(|l| l.contains("status=connected"))
        .count();
    let refused = landed
        .iter()
        .filter(|l| l.ends_with("error=state_used"))
        .count();
    assert_eq!((connected, refused), (1, 19), "{landed:?}");
    assert_eq!(
        stats(&emulator).await["google"]["authorizationCodeGrants"],
        1,
        "the code was exchanged once"
    );
    assert_eq!(app.store.connections(&user.id).await.unwrap().len(), 3);
}

#[tokio::test]
async fn unknown_forged_expired_used_and_cross_provider_states_are_refused_and_audited() {
    let (emulator, app, user) = setup("states").await;
    let query = consent(&app, &user, "google").await;
    let with_state = |state: &str| query.with_state(state);
    // Unknown, and forged from a real one.
    let forged = format!("{}x", query.query["state"]);
    for state in [ids::new_secret_token(), forged] {
        assert!(callback(&app, "google", &with_state(&state))
            .await
            .ends_with("error=state_unknown"));
    }
    // A state issued for Microsoft, presented to the Google callback.
    let microsoft = consent(&app, &user, "microsoft").await;
    assert!(callback(&app, "google", &microsoft)
        .await
        .ends_with("error=state_invalid"));
    // Expired.
    let expired = ids::new_secret_token();
    let record = OAuthState {
        user_id: user.id.clone(),
        provider: Provider::Google,
        launch_by: (Utc::now() - Duration::minutes(11)).timestamp(),
        browser_hash: Some(ids::sha256_hex("binding")),
        expires_at: (Utc::now() - Duration::minutes(1)).timestamp(),
        consumed: false,
        created_at: Utc::now() - Duration::minutes(16),
    };
    app.store
        .create_oauth_state(&ids::sha256_hex(&expired), &record)
        .await
        .unwrap();
    assert!(callback(&app, "google", &with_state(&expired))
        .await
        .ends_with("error=state_expired"));
    // Used: the real one works once.
    assert!(callback(&app, "google", &query)
        .await
        .contains("status=connected"));
    assert!(callback(&app, "google", &query)
        .await
        .ends_with("error=state_used"));
    // Missing state, and a user who said no.
    let mut no_state = query.clone();
    no_state.query.remove("state");
    assert!(callback(&app, "google", &no_state)
        .await
        .ends_with("error=state_missing"));
    let mut denied = consent(&app, &user, "google").await;
    denied.query.retain(|k, _| k == "state");
    denied.query.insert("error".into(), "access_denied".into());
    assert!(callback(&app, "google", &denied)
        .await
        .ends_with("error=access_denied"));
    // Unknown provider paths are a 404, not a redirect.
    let response = app
        .handle(
            &calsync::api::service::ALL,
            ApiRequest::new(Method::GET, "/oauth/yahoo/callback"),
        )
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);

    let (_, audit) = call(&app, query_req(&user.token)).await;
    let rejected: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "OAUTH_CALLBACK_REJECTED" || e["action"] == "CALENDAR_CONNECT_FAILED"
        })
        .map(|e| e["errorMessage"].as_str().unwrap())
        .collect();
    assert_eq!(
        rejected,
        [
            "access_denied",
            "state_used",
            "state_expired",
            "state_invalid"
        ]
    );
    assert_eq!(
        stats(&emulator).await["google"]["authorizationCodeGrants"],
        1
    );
}

#[tokio::test]
async fn a_flow_finished_in_another_browser_connects_nothing() {
    let (emulator, app, user) = setup("csrf").await;
    // The user's browser opens the start link; the provider's consent URL it is sent to is then
    // handed to someone else, who consents in their own browser (no cookie).
    let link = authorization_url(&app, &user, "google").await;
    let started = open_start_link(&app, &link).await;
    assert_eq!(started.status, StatusCode::FOUND);
    assert_eq!(header(&started, "cache-control"), Some("no-store"));
    let cookie = header(&started, "set-cookie").unwrap();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/oauth/",
        "Max-Age=900",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let consent_url = header(&started, "location").unwrap();
    let flow = Flow {
        query: consent_at_provider("google", consent_url).await,
        cookie: Some(cookie.split(';').next().unwrap().to_owned()),
    };
    assert!(callback(&app, "google", &flow.elsewhere())
        .await
        .ends_with("error=browser_mismatch"));
    assert!(app.store.connections(&user.id).await.unwrap().is_empty());
    assert_eq!(
        stats(&emulator).await["google"]["authorizationCodeGrants"],
        0,
        "no code was exchanged"
    );
    // The refused callback spent the state: the right browser cannot resume it either.
    assert!(callback(&app, "google", &flow)
        .await
        .ends_with("error=state_used"));

    // Another flow's cookie does not fit.
    let first = consent(&app, &user, "google").await;
    let second = consent(&app, &user, "google").await;
    let crossed = Flow {
        query: second.query.clone(),
        cookie: first.cookie.clone(),
    };
    assert!(callback(&app, "google", &crossed)
        .await
        .ends_with("error=browser_mismatch"));

    // A start link opens once: opened again (say, forwarded afterwards) it binds nothing.
    let link = authorization_url(&app, &user, "microsoft").await;
    assert_eq!(open_start_link(&app, &link).await.status, StatusCode::FOUND);
    let again = open_start_link(&app, &link).await;
    assert!(header(&again, "set-cookie").is_none());
    assert!(header(&again, "location")
        .unwrap()
        .ends_with("error=state_used"));

    // A start link not opened within its window is refused.
    let late = ids::new_secret_token();
    let record = OAuthState {
        user_id: user.id.clone(),
        provider: Provider::Google,
        launch_by: (Utc::now() - Duration::seconds(1)).timestamp(),
        browser_hash: None,
        expires_at: (Utc::now() + Duration::minutes(10)).timestamp(),
        consumed: false,
        created_at: Utc::now() - Duration::minutes(5),
    };
    app.store
        .create_oauth_state(&ids::sha256_hex(&late), &record)
        .await
        .unwrap();
    let mut late_link = link.clone();
    late_link.set_path("/oauth/google/start");
    late_link
        .query_pairs_mut()
        .clear()
        .append_pair("state", &late);
    let refused = open_start_link(&app, &late_link).await;
    assert!(header(&refused, "location")
        .unwrap()
        .ends_with("error=state_expired"));

    // The stored state holds hashes only: no PKCE verifier, no binding.
    let binding = first.cookie.as_ref().unwrap().split_once('=').unwrap().1;
    let item = raw_item(
        "USERS_TABLE",
        &format!("OAUTH#{}", ids::sha256_hex(&first.query["state"])),
        "OAUTH",
    )
    .await
    .expect("the state item");
    let dump = format!("{item:?}");
    let verifier = calsync::providers::oauth::Pkce::derived_from(binding).verifier;
    assert!(
        !dump.contains(&verifier) && !dump.contains(binding),
        "{dump}"
    );
    assert!(dump.contains(&ids::sha256_hex(binding)));

    // Only the flow whose cookie arrived connected; every refusal is in the audit log.
    assert!(callback(&app, "google", &first)
        .await
        .contains("status=connected"));
    let (_, audit) = call(&app, query_req(&user.token)).await;
    let refusals: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("OAUTH_"))
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["errorMessage"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refusals,
        [
            ("OAUTH_START_REJECTED", "state_expired"),
            ("OAUTH_START_REJECTED", "state_used"),
            ("OAUTH_CALLBACK_REJECTED", "browser_mismatch"),
            ("OAUTH_CALLBACK_REJECTED", "state_used"),
            ("OAUTH_CALLBACK_REJECTED", "browser_mismatch"),
        ]
    );
}

#[tokio::test]
async fn connections_are_listed_and_disconnected_with_revocation() {
    let (emulator, app, user) = setup("connections").await;
    for provider in ["google", "microsoft"] {
        let flow = consent(&app, &user, provider).await;
        assert!(callback(&app, provider, &flow)
            .await
            .contains("status=connected"));
    }
    let (status, listed) = call(&app, get("/v1/connections", &user.token)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let connections = listed["connections"].as_array().unwrap();
    let summary: Vec<(&str, &str, usize)> = connections
        .iter()
        .map(|c| {
            (
                c["provider"].as_str().unwrap(),
                c["email"].as_str().unwrap(),
                c["calendars"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GOOGLE", "alice@gmail.test", 3),
            ("MICROSOFT", "bob@outlook.test", 2)
        ]
    );
    assert!(connections
        .iter()
        .all(|c| c["status"] == "active" && c["tokensRefreshedAt"].is_string()));
    assert!(!listed.to_string().contains("Token\":"), "{listed}");
    let google = connections[0]["id"].as_str().unwrap().to_owned();

    // Another user's id, an unknown id: the same 404.
    let stranger = register(&app, "stranger").await;
    for (token, id) in [
        (&stranger.token, google.as_str()),
        (&user.token, "f".repeat(32).as_str()),
    ] {
        let (status, body) = call(
            &app,
            ApiRequest::new(Method::DELETE, &format!("/v1/connections/{id}")).with_bearer(token),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }

    let (status, _) = call(
        &app,
        ApiRequest::new(Method::DELETE, &format!("/v1/connections/{google}"))
            .with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stats(&emulator).await["google"]["revocations"], 1);
    let account = app.store.account(&user.id, &google).await.unwrap().unwrap();
    assert!(account.access_token.is_none() && account.refresh_token.is_none());
    // Its calendars are gone from every list and from the sync schedule.
    let (_, listed) = call(&app, get("/v1/connections", &user.token)).await;
    assert_eq!(listed["connections"].as_array().unwrap().len(), 1);
    let (_, calendars) = call(&app, get("/v1/calendars", &user.token)).await;
    assert!(calendars["calendars"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["provider"] == "MICROSOFT"));
    for calendar in app.store.connections(&user.id).await.unwrap() {
        if calendar.account_id.as_deref() == Some(google.as_str()) {
            assert!(calendar.deleted_at.is_some());
            let item = raw_item(
                "CONNECTIONS_TABLE",
                &format!("USER#{}", user.id),
                &format!("CONN#{}", calendar.id),
            )
            .await
            .unwrap();
            assert!(!item.contains_key("syncShard"), "still scheduled: {item:?}");
        }
    }
    let (_, audit) = call(&app, query_req(&user.token)).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "ACCOUNT_DISCONNECTED");
    assert_eq!(audit["entries"][0]["metadata"]["revoked"], true);
    assert_eq!(actions[1..4], ["CALENDAR_DELETED"; 3]);
    // Disconnected once: a second time is a 404.
    let (status, _) = call(
        &app,
        ApiRequest::new(Method::DELETE, &format!("/v1/connections/{google}"))
            .with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Connecting the account again brings its calendars back.
    let flow = consent(&app, &user, "google").await;
    callback(&app, "google", &flow).await;
    let (_, listed) = call(&app, get("/v1/connections", &user.token)).await;
    let google = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == "GOOGLE")
        .expect("google connected again");
    assert_eq!(google["calendars"].as_array().unwrap().len(), 3);
}

/// Items of partition `pk` in the table of `table_var`.
async fn partition(table_var: &str, pk: &str) -> usize {
    let ddb = aws_sdk_dynamodb::Client::new(&sdk().await);
    ddb.query()
        .table_name(&stack().environment[table_var])
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .send()
        .await
        .unwrap()
        .count as usize
}

#[tokio::test]
async fn an_account_is_exported_whole_then_erased_from_every_table() {
    let (emulator, app, user) = setup("erasure").await;
    let flow = consent(&app, &user, "google").await;
    callback(&app, "google", &flow).await;
    let calendars = app.store.connections(&user.id).await.unwrap();
    let calendar = &calendars.iter().find(|c| c.is_primary).unwrap().id;
    let (status, event) = call(
        &app,
        send(Method::POST, "/v1/events", &user.token, &serde_json::json!({
            "calendarId": calendar, "title": "Mine",
            "start": {"dateTime": "2026-07-06T09:00:00Z"}, "end": {"dateTime": "2026-07-06T10:00:00Z"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let (_, feed) = call(
        &app,
        send(
            Method::POST,
            "/v1/feeds",
            &user.token,
            &serde_json::json!({}),
        ),
    )
    .await;

    let (status, export) = call(&app, get("/v1/me/export", &user.token)).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["user"]["email"], user.email.as_str());
    assert_eq!(
        export["connections"][0]["calendars"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(export["calendars"].as_array().unwrap().len(), 3);
    assert!(export["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == event["id"]));
    assert_eq!(export["feeds"][0]["id"], feed["id"]);
    assert!(export["auditLog"].as_array().unwrap().len() >= 3);
    // No secret in it: not the tokens, not the password hash, not the feed URL's token.
    let account = app.store.accounts(&user.id).await.unwrap().remove(0);
    let access = app
        .cipher()
        .unwrap()
        .open(
            account.access_token.as_ref().unwrap(),
            SecretContext {
                user_id: &user.id,
                account_id: &account.id,
                field: "access_token",
            },
        )
        .await
        .unwrap();
    let text = export.to_string();
    let feed_token = feed["url"].as_str().unwrap().rsplit('/').nth(1).unwrap();
    for secret in [access.expose(), "$argon2", feed_token, user.token.as_str()] {
        assert!(!text.contains(secret), "the export holds a secret");
    }

    // A connection started before the erasure and finished after it.
    let late = consent(&app, &user, "microsoft").await;

    // Erasure: the password confirms it.
    let erase = |password: &str| {
        send(
            Method::DELETE,
            "/v1/me",
            &user.token,
            &serde_json::json!({"password": password}),
        )
    };
    let (status, body) = call(&app, erase("not the password")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("wrong_password"))
    );
    let (status, body) = call(&app, erase("a long enough password")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        stats(&emulator).await["google"]["revocations"],
        1,
        "the grant was revoked"
    );
    assert_eq!(
        call(&app, get("/v1/me", &user.token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(callback(&app, "microsoft", &late)
        .await
        .ends_with("error=state_unknown"));
    let user_pk = format!("USER#{}", user.id);
    for table in [
        "USERS_TABLE",
        "CONNECTIONS_TABLE",
        "AUDIT_TABLE",
        "CHANGES_TABLE",
    ] {
        assert_eq!(
            partition(table, &user_pk).await,
            0,
            "{table} keeps items of the user"
        );
    }
    for calendar in &calendars {
        assert_eq!(
            partition("EVENTS_TABLE", &format!("CONN#{}", calendar.id)).await,
            0
        );
    }
    let feed_id = feed["id"].as_str().unwrap();
    assert_eq!(
        partition("USERS_TABLE", &format!("FEED#{feed_id}")).await,
        0
    );
    assert_eq!(
        partition(
            "USERS_TABLE",
            &format!("SESSION#{}", ids::sha256_hex(&user.token))
        )
        .await,
        0
    );
    // The e-mail is free again; only an anonymised record of the erasure is kept.
    let (status, _) = call(
        &app,
        ApiRequest::new(Method::POST, "/v1/auth/register").with_json(&serde_json::json!({
            "email": user.email, "password": "a long enough password", "firstName": "A", "lastName": "B"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let hash = ids::sha256_hex(&user.id);
    assert!(
        partition(
            "AUDIT_TABLE",
            &format!("USER#~deleted-users#{}", &hash[..1])
        )
        .await
            >= 1
    );
}

/// At every part size the export is whole and in order, each event and audit entry once: parts
/// end inside a calendar, at its end, across an empty one, and inside the audit log.
#[tokio::test]
async fn the_export_is_whole_at_every_part_size() {
    let app = app().await;
    for limit in (1..=14).chain([25]) {
        // A user per size: a new export counts against 5 an hour.
        let user = register(&app, &format!("export-size-{limit}")).await;
        for (name, count) in [("sizes-0", 7), ("sizes-1", 0), ("sizes-2", 5)] {
            let conn = connect(&app, &user, name, false).await;
            let first = t("2026-03-02T09:00:00Z");
            let events = filler_events(&user.id, &conn.id, count, first, Duration::hours(1));
            app.store.put_events(&events).await.unwrap();
        }
        for _ in 0..6 {
            let entry = calsync::model::AuditEntry::new(&user.id, "TEST_ENTRY", "USER", None);
            app.store.append_audit(&entry).await.unwrap();
        }
        let (mut events, mut audit, mut parts) = (Vec::new(), Vec::new(), 0);
        let mut cursor: Option<String> = None;
        loop {
            let limit = limit.to_string();
            let mut params = vec![("limit", limit.as_str())];
            if let Some(cursor) = &cursor {
                params.push(("cursor", cursor));
            }
            let (status, part) =
                call(&app, query(get("/v1/me/export", &user.token), &params)).await;
            assert_eq!(status, StatusCode::OK, "{part}");
            let (part_events, part_audit) = (
                part["events"].as_array().unwrap(),
                part["auditLog"].as_array().unwrap(),
            );
            assert!(part_events.len() + part_audit.len() <= limit.parse().unwrap());
            events.extend(part_events.iter().map(|e| {
                (
                    e["calendar"]["id"].as_str().unwrap().to_owned(),
                    e["title"].as_str().unwrap().to_owned(),
                )
            }));
            audit.extend(
                part_audit
                    .iter()
                    .map(|e| e["id"].as_str().unwrap().to_owned()),
            );
            parts += 1;
            assert!(parts <= 40, "the export ends");
            cursor = part["nextCursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        let mut expected = Vec::new();
        for calendar in app.store.connections(&user.id).await.unwrap() {
            let (stored, _) = app
                .store
                .calendar_events(&calendar.id, None, 100)
                .await
                .unwrap();
            expected.extend(
                stored
                    .iter()
                    .map(|e| (calendar.id.clone(), e.title.clone())),
            );
        }
        assert_eq!(events, expected, "limit {limit}");
        let logged: Vec<String> = app
            .store
            .audit_entries(&user.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(audit, logged, "limit {limit}");
        let total = expected.len() + logged.len();
        assert!(
            parts <= total.div_ceil(limit) + 1,
            "limit {limit}: {parts} parts for {total}"
        );
    }
}

/// A big account exports whole, in parts that each fit a Lambda response, across calendars, each
/// event once; reading stops at each part's size; a part's cursor is its owner's only. An account
/// that big is erased by the cleanup job once its request ran out of time.
#[tokio::test]
async fn a_big_account_exports_whole_in_parts_and_is_erased_by_the_cleanup_job() {
    // Loading thousands of events into the shared emulator would slow every other test.
    let (_aws, app) = app_on_own_emulator("export", &[("ERASURE_IN_REQUEST_MS", "1".into())]).await;
    let user = register(&app, "big-export").await;
    let part = calsync::api::EXPORT_PART_ITEMS;
    for (name, count) in [("export-0", 2_500), ("export-1", 2_500), ("export-2", 1)] {
        let conn = connect(&app, &user, name, false).await;
        let events = filler_events(
            &user.id,
            &conn.id,
            count,
            t("2026-01-05T09:00:00Z"),
            Duration::hours(1),
        );
        app.store.put_events(&events).await.unwrap();
    }
    let mut parts = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = get("/v1/me/export", &user.token);
        if let Some(cursor) = &cursor {
            req = query(req, &[("cursor", cursor)]);
        }
        let before = app.store.stats();
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let read = app.store.stats().items_read - before.items_read;
        assert!(read <= (part + 1000) as u64, "one part read {read} items");
        let items =
            body["events"].as_array().unwrap().len() + body["auditLog"].as_array().unwrap().len();
        assert!(items <= part, "{items} items in one part");
        cursor = body["nextCursor"].as_str().map(str::to_owned);
        parts.push(body);
        if cursor.is_none() {
            break;
        }
        assert!(parts.len() < 10, "the export ends");
    }
    assert_eq!(parts.len(), 3);
    let ids: Vec<&str> = parts
        .iter()
        .flat_map(|p| p["events"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!((ids.len(), unique.len()), (5_001, 5_001), "each event once");
    assert_eq!(parts[0]["calendars"].as_array().unwrap().len(), 3);
    assert!(parts[1]["calendars"].as_array().unwrap().is_empty());
    let audit = parts[2]["auditLog"].as_array().unwrap();
    assert!(
        audit.iter().any(|e| e["action"] == "USER_DATA_EXPORTED"),
        "{audit:?}"
    );
    // Another user cannot follow this user's cursor into their calendars.
    let other = register(&app, "big-export-other").await;
    let first_cursor = parts[0]["nextCursor"].as_str().unwrap();
    let (status, body) = call(
        &app,
        query(
            get("/v1/me/export", &other.token),
            &[("cursor", first_cursor)],
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_cursor"))
    );

    // Erasure: the request has no time for 5,001 events (1 ms here, 5 s in AWS) and answers
    // 202; the account is unusable at once and its address free; the cleanup job finishes.
    let (status, body) = call(
        &app,
        send(
            Method::DELETE,
            "/v1/me",
            &user.token,
            &serde_json::json!({"password": "a long enough password"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "erasing");
    assert_eq!(
        call(&app, get("/v1/me", &user.token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let login = ApiRequest::new(Method::POST, "/v1/auth/login")
        .with_json(&serde_json::json!({"email": user.email, "password": "a long enough password"}));
    assert_eq!(call(&app, login).await.0, StatusCode::UNAUTHORIZED);
    let again = ApiRequest::new(Method::POST, "/v1/auth/register").with_json(&serde_json::json!({
        "email": user.email, "password": "another long password", "firstName": "New", "lastName": "Owner"}));
    assert_eq!(call(&app, again).await.0, StatusCode::CREATED);
    assert!(
        !app.store.connections(&user.id).await.unwrap().is_empty(),
        "not done yet"
    );

    let report = calsync::jobs::cleanup::run(&app, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.erasures.finished, 1, "{report:?}");
    assert!(app.store.connections(&user.id).await.unwrap().is_empty());
    assert!(app.store.user(&user.id).await.unwrap().is_none());
    assert!(app.store.audit_entries(&user.id).await.unwrap().is_empty());
    let again = calsync::jobs::cleanup::run(&app, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(again.erasures, calsync::erasure::ErasureReport::default());
    // The address's new owner is untouched by the old account's erasure.
    let login = ApiRequest::new(Method::POST, "/v1/auth/login")
        .with_json(&serde_json::json!({"email": user.email, "password": "another long password"}));
    assert_eq!(call(&app, login).await.0, StatusCode::OK);
}

fn query_req(token: &str) -> ApiRequest {
    query(get("/v1/audit-log", token), &[("limit", "50")])
}

#[tokio::test]
async fn a_provider_that_fails_the_exchange_leaves_no_half_connection() {
    let (emulator, app, user) = setup("exchange-fails").await;
    let query = consent(&app, &user, "google").await;
    let fault = serde_json::json!({"pathPrefix": "/google/token", "status": 503, "times": 1});
    reqwest::Client::new()
        .post(format!("{}/admin/faults", emulator.base_url))
        .json(&fault)
        .send()
        .await
        .unwrap();
    let landed = callback(&app, "google", &query).await;
    assert!(landed.ends_with("error=provider_unavailable"), "{landed}");
    assert!(app.store.connections(&user.id).await.unwrap().is_empty());
    // A Google answer without a primary calendar is refused whole, too.
    let other = consent(&app, &user, "google").await;
    let malformed = serde_json::json!({"pathPrefix": "/google/calendar/v3/users/me/calendarList", "malformed": true, "times": 1});
    reqwest::Client::new()
        .post(format!("{}/admin/faults", emulator.base_url))
        .json(&malformed)
        .send()
        .await
        .unwrap();
    assert!(callback(&app, "google", &other)
        .await
        .ends_with("error=provider_unavailable"));
    assert!(app.store.connections(&user.id).await.unwrap().is_empty());
}
