//! Connecting calendars: sealed secrets, OAuth against a real authorization server
//! (oidc-provider), CalDAV discovery against Radicale and Xandikos, token refresh, cleanup.

use calsync::api::ApiRequest;
use calsync::crypto::{CryptoError, Secret, SecretContext, TokenCipher};
use calsync::ids;
use calsync::jobs::token_refresh::{self, Outcome};
use calsync::model::{
    Connection, ConnectionStatus, OAuthState, Provider, ProviderAccount, Session,
};
use calsync::providers::oauth::{self, OAuthSettings, Pkce, TokenSet};
use calsync::providers::ProviderError;
use calsync::store::Store;
use calsync_devstack::peer::{self, Peer};
use chrono::{Duration, Utc};
use http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

const CLIENT_SECRET: &str = "calsync-secret";
const REDIRECT: &str = "http://127.0.0.1:9/oauth/microsoft/callback";

fn ctx<'a>(user: &'a str, account: &'a str, field: &'a str) -> SecretContext<'a> {
    SecretContext {
        user_id: user,
        account_id: account,
        field,
    }
}

#[tokio::test]
async fn sealed_secrets_open_only_in_their_own_row_and_field() {
    let app = app().await;
    let cipher = app.cipher().expect("TOKEN_KEY_ID from template.yaml");
    let secret = Secret::new("ya29.a0-very-secret-token");
    let sealed = cipher
        .seal(&secret, ctx("u1", "a1", "access_token"))
        .await
        .unwrap();
    let stored = serde_json::to_string(&sealed).unwrap();
    assert!(!stored.contains("very-secret"), "{stored}");
    assert_eq!(
        cipher
            .open(&sealed, ctx("u1", "a1", "access_token"))
            .await
            .unwrap(),
        secret
    );
    for wrong in [
        ctx("u2", "a1", "access_token"),
        ctx("u1", "a2", "access_token"),
        ctx("u1", "a1", "refresh_token"),
    ] {
        assert!(
            matches!(
                cipher.open(&sealed, wrong).await,
                Err(CryptoError::Undecryptable)
            ),
            "{wrong:?}"
        );
    }
    let mut tampered = stored.trim_matches('"').to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let tampered: calsync::crypto::Sealed = serde_json::from_value(json!(tampered)).unwrap();
    assert!(cipher
        .open(&tampered, ctx("u1", "a1", "access_token"))
        .await
        .is_err());
    assert_eq!(format!("{secret:?}"), "Secret([redacted])");
}

#[tokio::test]
async fn decrypting_a_thousand_secrets_costs_one_kms_call() {
    let app = app().await;
    let key = app.config.token_key_id.clone().unwrap();
    let kms = aws_sdk_kms::Client::new(&sdk().await);
    let sealer = TokenCipher::new(kms.clone(), key.clone());
    let mut sealed = Vec::new();
    for i in 0..1000 {
        let account = format!("acct{i}");
        sealed.push((
            account.clone(),
            sealer
                .seal(
                    &Secret::new(format!("token-{i}")),
                    ctx("u", &account, "access_token"),
                )
                .await
                .unwrap(),
        ));
    }
    assert_eq!(sealer.kms_calls(), 1, "one data key for every encryption");
    let fresh = TokenCipher::new(kms, key);
    for (i, (account, s)) in sealed.iter().enumerate() {
        assert_eq!(
            fresh
                .open(s, ctx("u", account, "access_token"))
                .await
                .unwrap()
                .expose(),
            format!("token-{i}")
        );
    }
    assert_eq!(
        fresh.kms_calls(),
        1,
        "one Decrypt for the data key, then the cache"
    );
}

fn oidc_settings(peer: &Peer) -> OAuthSettings {
    let issuer = &peer.base_url;
    OAuthSettings {
        provider: Provider::Microsoft,
        client_id: "calsync".into(),
        client_secret: Secret::new(CLIENT_SECRET),
        auth_url: format!("{issuer}/auth"),
        token_url: format!("{issuer}/token"),
        revoke_url: Some(format!("{issuer}/token/revocation")),
        scopes: vec!["openid".into(), "offline_access".into(), "email".into()],
        extra_params: vec![("prompt".into(), "consent".into())],
        secret_in_body: false,
        api_base: String::new(),
    }
}

/// Plays the user's browser through oidc-provider's login and consent pages; returns the
/// `code` from the redirect to our callback.
async fn consent_headlessly(authorization_url: &str, expected_state: &str) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = url::Url::parse(authorization_url).unwrap();
    let mut logged_in = false;
    for _ in 0..12 {
        let response = if url.path().starts_with("/interaction/") {
            let prompt = if logged_in {
                vec![("prompt", "consent")]
            } else {
                vec![("prompt", "login"), ("login", "alice"), ("password", "x")]
            };
            logged_in = true;
            browser
                .post(url.clone())
                .form(&prompt)
                .send()
                .await
                .unwrap()
        } else {
            browser.get(url.clone()).send().await.unwrap()
        };
        let location = response
            .headers()
            .get("location")
            .unwrap_or_else(|| panic!("no redirect from {url}: {}", response.status()));
        url = url.join(location.to_str().unwrap()).unwrap();
        if url.as_str().starts_with(REDIRECT) {
            let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
            assert_eq!(query.get("state").map(String::as_str), Some(expected_state));
            return query["code"].clone();
        }
    }
    panic!("the authorization flow did not reach the callback");
}

async fn grant(settings: &OAuthSettings, http: &reqwest::Client) -> TokenSet {
    let pkce = Pkce::new();
    let state = ids::new_secret_token();
    let url = oauth::authorization_url(settings, REDIRECT, &state, &pkce).unwrap();
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let code = consent_headlessly(&url, &state).await;
    let wrong = oauth::exchange_code(http, settings, REDIRECT, &code, &Pkce::new().verifier).await;
    assert!(
        matches!(wrong, Err(ProviderError::InvalidGrant)),
        "a wrong PKCE verifier is refused: {wrong:?}"
    );
    oauth::exchange_code(http, settings, REDIRECT, &code, &pkce.verifier)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_oauth_client_completes_code_pkce_and_rotating_refresh_against_oidc_provider() {
    let peer = peer::oidc_provider(REDIRECT, 3600).expect("oidc-provider (make test runs npm ci)");
    let settings = oidc_settings(&peer);
    let http = calsync::providers::http_client();
    let tokens = grant(&settings, &http).await;
    let first_refresh = tokens
        .refresh_token
        .expect("offline_access gives a refresh token");
    assert!(tokens.expires_at.unwrap() > Utc::now() + Duration::minutes(59));

    let refreshed = oauth::refresh(&http, &settings, &first_refresh)
        .await
        .unwrap();
    let rotated = refreshed
        .refresh_token
        .expect("rotation returns a new refresh token");
    assert_ne!(rotated, first_refresh);
    // Reusing a rotated-away refresh token is invalid_grant: reauthorization, not a retry.
    let reuse = oauth::refresh(&http, &settings, &first_refresh).await;
    assert!(
        matches!(reuse, Err(ProviderError::InvalidGrant)),
        "{reuse:?}"
    );
}

/// A connected Microsoft account whose tokens came from `tokens`, with two calendars.
async fn connected_account(
    app: &calsync::app::App,
    user: &TestUser,
    tokens: &TokenSet,
    expires_in: Duration,
) -> (ProviderAccount, Vec<Connection>) {
    let cipher = app.cipher().unwrap();
    let mut account =
        ProviderAccount::new(&user.id, Provider::Microsoft, &user.email, Store::now());
    account.access_token = Some(
        cipher
            .seal(
                &tokens.access_token,
                ctx(&user.id, &account.id, "access_token"),
            )
            .await
            .unwrap(),
    );
    if let Some(refresh) = &tokens.refresh_token {
        account.refresh_token = Some(
            cipher
                .seal(refresh, ctx(&user.id, &account.id, "refresh_token"))
                .await
                .unwrap(),
        );
    }
    account.token_expires_at = Some(Utc::now() + expires_in);
    app.store.put_account(&account).await.unwrap();
    let mut calendars = Vec::new();
    for (i, name) in ["Calendar", "Birthdays"].into_iter().enumerate() {
        let mut calendar = Connection::new(
            &user.id,
            Provider::Microsoft,
            &format!("AAMk-{name}"),
            name,
            "#0078d4",
            Store::now(),
        );
        calendar.account_id = Some(account.id.clone());
        calendar.is_primary = i == 0;
        calendars.push(app.store.upsert_calendar(&calendar).await.unwrap());
    }
    (account, calendars)
}

async fn refresh_token_of(app: &calsync::app::App, account: &ProviderAccount) -> Secret {
    let stored = app
        .store
        .account(&account.user_id, &account.id)
        .await
        .unwrap()
        .unwrap();
    app.cipher()
        .unwrap()
        .open(
            stored.refresh_token.as_ref().unwrap(),
            ctx(&account.user_id, &account.id, "refresh_token"),
        )
        .await
        .unwrap()
}

fn microsoft_via(peer: &Peer) -> Vec<(&'static str, String)> {
    vec![
        ("MICROSOFT_CLIENT_ID", "calsync".into()),
        ("MICROSOFT_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("MICROSOFT_AUTH_URL", format!("{}/auth", peer.base_url)),
        ("MICROSOFT_TOKEN_URL", format!("{}/token", peer.base_url)),
    ]
}

#[tokio::test]
async fn token_refresh_stores_the_rotated_token_once_and_a_dead_grant_requires_reauthorization() {
    // Two-hour tokens: not due for refresh until an hour from now.
    let peer = peer::oidc_provider(REDIRECT, 7200).expect("oidc-provider");
    let app = isolated_app("refresh", &microsoft_via(&peer)).await;
    let http = calsync::providers::http_client();
    let tokens = grant(&oidc_settings(&peer), &http).await;
    let user = register(&app, "refresh").await;
    let (account, _) = connected_account(&app, &user, &tokens, Duration::minutes(5)).await;
    let original = tokens.refresh_token.clone().unwrap();

    // Two refreshers at once: one rotates, the other sees the lease and stays away.
    let now = Utc::now();
    let (a, b) = tokio::join!(
        token_refresh::refresh_account(&app, &user.id, &account.id, now),
        token_refresh::refresh_account(&app, &user.id, &account.id, now),
    );
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Outcome::Refreshed, Outcome::Skipped]);
    let rotated = refresh_token_of(&app, &account).await;
    assert_ne!(rotated, original, "the rotated refresh token is stored");
    let stored = app
        .store
        .account(&user.id, &account.id)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.token_expires_at.unwrap() > Utc::now() + Duration::minutes(110));
    assert_eq!(stored.failed_refresh_count, 0);

    // The scheduled job finds due accounts through the index (none due now: just refreshed).
    let before = app
        .store
        .account(&user.id, &account.id)
        .await
        .unwrap()
        .unwrap()
        .token_expires_at;
    token_refresh::run(&app, Utc::now()).await.unwrap();
    assert_eq!(
        app.store
            .account(&user.id, &account.id)
            .await
            .unwrap()
            .unwrap()
            .token_expires_at,
        before
    );
    // Seventy minutes on it is due, and the job refreshes it.
    token_refresh::run(&app, Utc::now() + Duration::minutes(70))
        .await
        .unwrap();
    assert_ne!(refresh_token_of(&app, &account).await, rotated);

    // Put the rotated-away token back: the provider answers invalid_grant -> reauthorization.
    let mut stale = app
        .store
        .account(&user.id, &account.id)
        .await
        .unwrap()
        .unwrap();
    stale.refresh_token = Some(
        app.cipher()
            .unwrap()
            .seal(&original, ctx(&user.id, &account.id, "refresh_token"))
            .await
            .unwrap(),
    );
    app.store.put_account(&stale).await.unwrap();
    let outcome = token_refresh::refresh_account(&app, &user.id, &account.id, Utc::now())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::ReauthorizationRequired);
    let stored = app
        .store
        .account(&user.id, &account.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.is_connected);
    assert_eq!(stored.status, ConnectionStatus::ReauthorizationRequired);
    let (_, calendars) = call(&app, get("/v1/calendars", &user.token)).await;
    for calendar in calendars["calendars"].as_array().unwrap() {
        assert_eq!(calendar["status"], "reauthorization_required", "{calendar}");
        assert_eq!(calendar["isConnected"], false);
    }
    let (_, audit) = call(&app, get("/v1/audit-log", &user.token)).await;
    assert_eq!(audit["entries"][0]["action"], "TOKEN_REFRESH_FAILED");
    assert_eq!(
        audit["entries"][0]["metadata"]["reauthorizationRequired"],
        true
    );
}

#[tokio::test]
async fn three_failed_refreshes_in_a_row_require_reauthorization() {
    // A token endpoint nobody listens on: every attempt fails as "unavailable".
    let dead = format!("http://127.0.0.1:{}/token", peer::free_port().unwrap());
    let app = app_with(&[
        ("MICROSOFT_CLIENT_ID", "calsync".into()),
        ("MICROSOFT_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("MICROSOFT_TOKEN_URL", dead),
    ])
    .await;
    let user = register(&app, "failing").await;
    let tokens = TokenSet {
        access_token: Secret::new("at"),
        refresh_token: Some(Secret::new("rt")),
        expires_at: None,
    };
    let (account, _) = connected_account(&app, &user, &tokens, Duration::days(3)).await;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(
            token_refresh::refresh_account(&app, &user.id, &account.id, Utc::now())
                .await
                .unwrap(),
        );
        let stored = app
            .store
            .account(&user.id, &account.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.failed_refresh_count as usize, outcomes.len());
    }
    assert_eq!(
        outcomes,
        [
            Outcome::Failed,
            Outcome::Failed,
            Outcome::ReauthorizationRequired
        ]
    );
    // A disconnected account is not refreshed again.
    assert_eq!(
        token_refresh::refresh_account(&app, &user.id, &account.id, Utc::now())
            .await
            .unwrap(),
        Outcome::Skipped
    );
}

async fn mkcalendar(
    base: &str,
    path: &str,
    user: &str,
    password: &str,
    name: &str,
    component: &str,
) {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop><D:displayname>{name}</D:displayname><A:calendar-color>#FF2968FF</A:calendar-color><C:supported-calendar-component-set><C:comp name="{component}"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#
    );
    let response = reqwest::Client::new()
        .request(
            Method::from_bytes(b"MKCALENDAR").unwrap(),
            format!("{base}{path}"),
        )
        .basic_auth(user, Some(password))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "MKCALENDAR {path}: {}",
        response.status()
    );
}

fn apple(body: serde_json::Value, token: &str) -> ApiRequest {
    send(Method::POST, "/v1/connections/apple", token, &body)
}

#[tokio::test]
async fn apple_accounts_connect_through_caldav_discovery_on_radicale() {
    let radicale = peer::radicale(&[("alice", "alice-app-password"), ("mallory", "mallory-pw")])
        .expect("radicale (make venv)");
    let base = radicale.base_url.clone();
    mkcalendar(
        &base,
        "/alice/work/",
        "alice",
        "alice-app-password",
        "Work",
        "VEVENT",
    )
    .await;
    mkcalendar(
        &base,
        "/alice/todo/",
        "alice",
        "alice-app-password",
        "Chores",
        "VTODO",
    )
    .await;
    let app = app_with(&[http_loopback(&[&base])]).await;
    let user = register(&app, "apple").await;

    let body = json!({"username": "alice", "appPassword": "alice-app-password", "serverUrl": base});
    let (status, connected) = call(&app, apple(body.clone(), &user.token)).await;
    assert_eq!(status, StatusCode::CREATED, "{connected}");
    let calendars = connected["calendars"].as_array().unwrap();
    assert_eq!(
        calendars.len(),
        1,
        "only the calendar that holds events: {connected}"
    );
    assert_eq!(calendars[0]["name"], "Work");
    assert_eq!(calendars[0]["color"], "#ff2968");
    assert_eq!(calendars[0]["provider"], "APPLE");
    assert_eq!(calendars[0]["isPrimary"], true);

    // Connecting again updates the same calendar rather than adding one.
    let (status, again) = call(&app, apple(body, &user.token)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["calendars"][0]["id"], calendars[0]["id"]);
    let (_, listed) = call(&app, get("/v1/calendars", &user.token)).await;
    assert_eq!(listed["calendars"].as_array().unwrap().len(), 1);

    // The app password is stored sealed only.
    let account_id = connected["account"]["id"].as_str().unwrap();
    let item = raw_item(
        "CONNECTIONS_TABLE",
        &format!("USER#{}", user.id),
        &format!("ACCT#{account_id}"),
    )
    .await
    .unwrap();
    assert!(!format!("{item:?}").contains("alice-app-password"));

    let cases = [
        (
            json!({"username": "alice", "appPassword": "wrong", "serverUrl": base}),
            "invalid_credentials",
        ),
        (
            json!({"username": "mallory", "appPassword": "alice-app-password", "serverUrl": base}),
            "invalid_credentials",
        ),
        (
            json!({"username": "alice", "appPassword": "x", "serverUrl": "http://10.1.2.3/"}),
            "invalid_server_url",
        ),
        (
            json!({"username": "alice", "appPassword": "x", "serverUrl": "https://169.254.169.254/"}),
            "invalid_server_url",
        ),
        // Loopback by another spelling, and a name that resolves to loopback: refused before
        // any connection (without the resolver's check, these were attempted: a 502).
        (
            json!({"username": "alice", "appPassword": "x", "serverUrl": "https://[::ffff:127.0.0.1]:1/"}),
            "invalid_server_url",
        ),
        (
            json!({"username": "alice", "appPassword": "x", "serverUrl": "https://localhost:1/"}),
            "invalid_server_url",
        ),
        (
            json!({"username": "alice", "appPassword": "x", "serverUrl": "https://100.64.0.1/"}),
            "invalid_server_url",
        ),
        (
            json!({"username": "alice", "appPassword": ""}),
            "invalid_field",
        ),
        (json!({"username": "alice"}), "invalid_field"),
    ];
    for (body, code) in cases {
        let (status, answer) = call(&app, apple(body.clone(), &user.token)).await;
        assert_eq!(
            (status, error_code(&answer)),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
        assert!(!answer.to_string().contains("alice-app-password"));
    }
}

/// A CalDAV server that redirects discovery to another origin: the password is not sent there.
#[tokio::test]
async fn the_app_password_never_follows_a_redirect_to_another_origin() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// Answers every request on `listener` with `response`; sends each request's head on.
    async fn serve(
        listener: tokio::net::TcpListener,
        response: String,
        heads: tokio::sync::mpsc::UnboundedSender<String>,
    ) {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let _ = heads.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = stream.write_all(response.as_bytes()).await;
        }
    }
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_url = format!("http://{}/dav/", elsewhere.local_addr().unwrap());
    let named = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let named_url = format!("http://{}/", named.local_addr().unwrap());
    let (named_tx, mut named_heads) = tokio::sync::mpsc::unbounded_channel();
    let (elsewhere_tx, mut elsewhere_heads) = tokio::sync::mpsc::unbounded_channel();
    let redirect = format!(
        "HTTP/1.1 301 Moved Permanently\r\nLocation: {elsewhere_url}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let unauthorized =
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    tokio::spawn(serve(named, redirect, named_tx));
    tokio::spawn(serve(elsewhere, unauthorized.into(), elsewhere_tx));

    let app = app_with(&[http_loopback(&[&named_url, &elsewhere_url])]).await;
    let user = register(&app, "redirected").await;
    let body =
        json!({"username": "alice", "appPassword": "alice-app-password", "serverUrl": named_url});
    let (status, answer) = call(&app, apple(body, &user.token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(error_code(&answer), "invalid_credentials");
    let named_head = named_heads.try_recv().expect("the named server was asked");
    assert!(named_head
        .to_ascii_lowercase()
        .contains("authorization: basic"));
    let elsewhere_head = elsewhere_heads
        .try_recv()
        .expect("the redirect was followed");
    assert!(
        !elsewhere_head
            .to_ascii_lowercase()
            .contains("authorization"),
        "credentials went to another origin:\n{elsewhere_head}"
    );
}

#[tokio::test]
async fn xandikos_discovery_follows_its_own_paths() {
    let xandikos = peer::xandikos().expect("xandikos (make venv)");
    let app = app_with(&[http_loopback(&[&xandikos.base_url])]).await;
    let user = register(&app, "xandikos").await;
    let body = json!({"username": "user", "appPassword": "unused", "serverUrl": xandikos.base_url});
    let (status, connected) = call(&app, apple(body, &user.token)).await;
    assert_eq!(status, StatusCode::CREATED, "{connected}");
    let names: Vec<_> = connected["calendars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(
        names.len(),
        1,
        "the default calendar, not the address book: {connected}"
    );
}

#[tokio::test]
async fn cleanup_deletes_expired_sessions_and_expired_or_consumed_states_only() {
    let app = app().await;
    let user = register(&app, "cleanup").await;
    let now = Utc::now();
    let audit = calsync::model::AuditEntry::new(&user.id, "USER_LOGIN", "SESSION", None);
    let expired = ids::sha256_hex(&ids::new_secret_token());
    let session = Session {
        user_id: user.id.clone(),
        created_at: now,
        expires_at: now.timestamp() - 10,
    };
    let device = calsync::store::KnownDevice {
        token_hash: ids::sha256_hex(&ids::new_secret_token()),
        expires_at: session.expires_at,
    };
    app.store
        .create_session(&expired, &session, &device, &audit)
        .await
        .unwrap();
    let state = |minutes: i64| OAuthState {
        user_id: user.id.clone(),
        provider: Provider::Google,
        launch_by: (now + Duration::minutes(minutes)).timestamp(),
        browser_hash: None,
        expires_at: (now + Duration::minutes(minutes)).timestamp(),
        consumed: false,
        created_at: now,
    };
    let (old, used, live) = (ids::new_id(), ids::new_id(), ids::new_id());
    app.store
        .create_oauth_state(&old, &state(-1))
        .await
        .unwrap();
    app.store
        .create_oauth_state(&used, &state(10))
        .await
        .unwrap();
    app.store
        .create_oauth_state(&live, &state(10))
        .await
        .unwrap();
    assert!(app
        .store
        .consume_oauth_state(&used, Provider::Google, now.timestamp())
        .await
        .unwrap()
        .is_ok());

    let report = calsync::jobs::cleanup::run(&app, now + Duration::seconds(1))
        .await
        .unwrap();
    assert!(
        report.sessions >= 1 && report.oauth_states >= 2,
        "{report:?}"
    );
    assert!(
        raw_item("USERS_TABLE", &format!("SESSION#{expired}"), "SESSION")
            .await
            .is_none()
    );
    assert!(raw_item("USERS_TABLE", &format!("OAUTH#{old}"), "OAUTH")
        .await
        .is_none());
    assert!(raw_item("USERS_TABLE", &format!("OAUTH#{used}"), "OAUTH")
        .await
        .is_none());
    assert!(raw_item("USERS_TABLE", &format!("OAUTH#{live}"), "OAUTH")
        .await
        .is_some());
    // The user's own live session is untouched.
    assert_eq!(
        call(&app, get("/v1/me", &user.token)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn cleanup_purges_events_deleted_over_thirty_days_ago_and_keeps_counts() {
    let app = isolated_app("purge", &[]).await;
    let user = register(&app, "purge").await;
    let cal = connect(&app, &user, "Cal", true).await;
    let keep = create_event(
        &app,
        &user,
        &cal.id,
        "keep",
        "2026-01-01T10:00:00Z",
        "2026-01-01T11:00:00Z",
    )
    .await;
    let gone = create_event(
        &app,
        &user,
        &cal.id,
        "gone",
        "2026-01-02T10:00:00Z",
        "2026-01-02T11:00:00Z",
    )
    .await;
    // Pushed to the provider first (a never-pushed create would need no push at all).
    let (conn, key) = ids::decode_event_id(&gone).unwrap();
    let mut stored = app.store.event(&conn, &key).await.unwrap().unwrap();
    stored.pending_change = None;
    stored.sync_status = calsync::model::SyncStatus::Synced;
    app.store.put_events(&[stored]).await.unwrap();
    let (status, _) = call(
        &app,
        ApiRequest::new(Method::DELETE, &format!("/v1/events/{gone}")).with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // While the deletion still has to reach the provider, it is not purged.
    let pending = calsync::jobs::cleanup::run(&app, Utc::now() + Duration::days(31))
        .await
        .unwrap();
    assert_eq!(pending.purged_events, 0);
    // The deletion was written back (what the sync worker will do).
    let mut deleted = app.store.event(&conn, &key).await.unwrap().unwrap();
    deleted.pending_change = None;
    app.store.put_events(&[deleted]).await.unwrap();

    let soon = calsync::jobs::cleanup::run(&app, Utc::now() + Duration::days(29))
        .await
        .unwrap();
    assert_eq!(soon.purged_events, 0, "not yet thirty days");
    assert!(app.store.event(&conn, &key).await.unwrap().is_some());
    let later = calsync::jobs::cleanup::run(&app, Utc::now() + Duration::days(31))
        .await
        .unwrap();
    assert_eq!(later.purged_events, 1);
    assert!(
        app.store.event(&conn, &key).await.unwrap().is_none(),
        "hard-deleted"
    );
    let (keep_conn, keep_key) = ids::decode_event_id(&keep).unwrap();
    assert!(app
        .store
        .event(&keep_conn, &keep_key)
        .await
        .unwrap()
        .is_some());
    // (Thirty-one days on, the user's session is gone too; read the count from the store.)
    let calendar = app
        .store
        .connection(&user.id, &cal.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(calendar.event_count, 1);
}
