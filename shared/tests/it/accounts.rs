//! Registration, login, sessions, the audit log, and what bad input gets.

use calsync::api::{ApiRequest, MAX_BODY_BYTES};
use calsync::ids;
use calsync::model::{AuditEntry, Session};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

fn post(path: &str, body: &Value) -> ApiRequest {
    ApiRequest::new(Method::POST, path).with_json(body)
}

async fn audit_actions(app: &calsync::app::App, token: &str) -> Vec<String> {
    let (status, body) = call(app, query(get("/v1/audit-log", token), &[("limit", "200")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn register_login_me_logout_round_trip_with_audit() {
    let app = app().await;
    let user = register(&app, "round").await;
    let (status, me) = call(&app, get("/v1/me", &user.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], user.email);
    assert!(me.get("passwordHash").is_none(), "{me}");

    let (status, login) = call(
        &app,
        post(
            "/v1/auth/login",
            &json!({"email": user.email.to_uppercase(), "password": "a long enough password"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let second = login["token"].as_str().unwrap().to_owned();
    assert_ne!(second, user.token);

    let (status, _) = call(
        &app,
        ApiRequest::new(Method::POST, "/v1/auth/logout").with_bearer(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&app, get("/v1/me", &user.token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthorized");
    // The other session is untouched.
    assert_eq!(call(&app, get("/v1/me", &second)).await.0, StatusCode::OK);

    let actions = audit_actions(&app, &second).await;
    assert_eq!(
        actions,
        ["USER_LOGOUT", "USER_LOGIN", "USER_LOGIN", "USER_REGISTERED"]
    );
}

#[tokio::test]
async fn the_session_token_is_stored_only_as_its_hash() {
    let app = app().await;
    let user = register(&app, "hash").await;
    let now = chrono::Utc::now().timestamp();
    let by_hash = app
        .store
        .session(&ids::sha256_hex(&user.token), now)
        .await
        .unwrap();
    assert_eq!(by_hash.map(|s| s.user_id), Some(user.id.clone()));
    assert!(app.store.session(&user.token, now).await.unwrap().is_none());
}

#[tokio::test]
async fn wrong_passwords_and_unknown_emails_get_the_same_401_and_failures_are_audited() {
    let app = app().await;
    let user = register(&app, "wrongpw").await;
    let wrong = call(
        &app,
        post(
            "/v1/auth/login",
            &json!({"email": user.email, "password": "not the password"}),
        ),
    )
    .await;
    let unknown = call(
        &app,
        post(
            "/v1/auth/login",
            &json!({"email": unique_email("nobody"), "password": "not the password"}),
        ),
    )
    .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    let actions = audit_actions(&app, &user.token).await;
    assert!(
        actions.contains(&"USER_LOGIN_FAILED".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn an_email_is_registered_once_even_under_concurrency() {
    let app = app().await;
    let email = unique_email("race");
    let attempts = (0..8).map(|i| {
        let app = app.clone();
        let email = if i % 2 == 0 {
            email.clone()
        } else {
            email.to_uppercase()
        };
        tokio::spawn(async move {
            call(
                &app,
                post(
                    "/v1/auth/register",
                    &json!({"email": email, "password": "a long enough password",
                    "firstName": "A", "lastName": "B"}),
                ),
            )
            .await
        })
    });
    let mut created = 0;
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => assert_eq!(error_code(&body), "email_taken"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn bad_registration_input_gets_a_4xx_naming_the_problem() {
    let app = app().await;
    let valid = json!({"email": unique_email("bad"), "password": "a long enough password",
                       "firstName": "A", "lastName": "B"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let cases: Vec<(ApiRequest, StatusCode, &str, &str)> = vec![
        (
            ApiRequest {
                body: b"{not json".to_vec(),
                ..ApiRequest::new(Method::POST, "/v1/auth/register")
            },
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "key must be a string",
        ),
        (
            ApiRequest::new(Method::POST, "/v1/auth/register"),
            StatusCode::BAD_REQUEST,
            "missing_body",
            "required",
        ),
        (
            post("/v1/auth/register", &json!({"email": "a@b.co"})),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "password",
        ),
        (
            post("/v1/auth/register", &with("admin", json!(true))),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "unknown field `admin`",
        ),
        (
            post("/v1/auth/register", &with("email", json!("no-at-sign"))),
            StatusCode::BAD_REQUEST,
            "invalid_email",
            "email",
        ),
        (
            post("/v1/auth/register", &with("password", json!("short"))),
            StatusCode::BAD_REQUEST,
            "weak_password",
            "10",
        ),
        (
            post("/v1/auth/register", &with("firstName", json!("  "))),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "firstName",
        ),
        (
            post("/v1/auth/register", &with("email", json!(42))),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "email",
        ),
        (
            ApiRequest {
                body: vec![b' '; MAX_BODY_BYTES + 1],
                ..post("/v1/auth/register", &valid)
            },
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "bytes",
        ),
        (
            post("/v1/auth/register", &valid).with_header("content-type", "text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "text/plain",
        ),
        (
            ApiRequest::new(Method::GET, "/v1/auth/register"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "POST",
        ),
        (
            // The method, not the path: a path can carry a credential, and messages are logged.
            ApiRequest::new(Method::GET, "/v1/nothing-here"),
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no route for GET",
        ),
    ];
    for (req, status, code, mention) in cases {
        let (got, body) = call(&app, req).await;
        assert_eq!((got, error_code(&body)), (status, code), "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(mention),
            "{message:?} should mention {mention:?}"
        );
    }
}

#[tokio::test]
async fn missing_malformed_and_expired_tokens_get_401() {
    let app = app().await;
    let user = register(&app, "expired").await;
    let expired_token = ids::new_secret_token();
    let session = Session {
        user_id: user.id.clone(),
        created_at: chrono::Utc::now(),
        expires_at: chrono::Utc::now().timestamp() - 1,
    };
    let audit = AuditEntry::new(&user.id, "USER_LOGIN", "SESSION", None);
    let device = calsync::store::KnownDevice {
        token_hash: ids::sha256_hex(&ids::new_secret_token()),
        expires_at: session.expires_at,
    };
    app.store
        .create_session(&ids::sha256_hex(&expired_token), &session, &device, &audit)
        .await
        .unwrap();
    for req in [
        ApiRequest::new(Method::GET, "/v1/me"),
        ApiRequest::new(Method::GET, "/v1/me").with_header("authorization", "Basic dXNlcjpwdw=="),
        get("/v1/me", "not-a-session"),
        get("/v1/me", &"x".repeat(5000)),
        get("/v1/me", &expired_token),
    ] {
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(error_code(&body), "unauthorized");
    }
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_and_rejects_foreign_cursors() {
    let app = app().await;
    let user = register(&app, "pages").await;
    for _ in 0..4 {
        let (status, _) = call(
            &app,
            post(
                "/v1/auth/login",
                &json!({"email": user.email, "password": "a long enough password"}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    // 1 registration + 5 logins.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = query(get("/v1/audit-log", &user.token), &[("limit", "2")]);
        if let Some(c) = &cursor {
            req = req.with_query("cursor", c);
        }
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for e in body["entries"].as_array().unwrap() {
            seen.push((
                e["id"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            ));
        }
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen.last().unwrap().1, "USER_REGISTERED");
    let ids: Vec<_> = seen.iter().map(|(id, _)| id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");

    let (status, body) = call(
        &app,
        query(get("/v1/audit-log", &user.token), &[("cursor", "garbage!")]),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_cursor")
    );
    let (status, body) = call(
        &app,
        query(get("/v1/audit-log", &user.token), &[("limit", "0")]),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_parameter")
    );
}

/// An address no other test uses, so counters of one test never throttle another: a random
/// IPv6 /64 (counters are per /64) in the documentation prefix.
fn fresh_source() -> std::net::IpAddr {
    let random = ids::sha256_hex(&ids::new_secret_token());
    let segment = |i: usize| u16::from_str_radix(&random[i * 4..i * 4 + 4], 16).unwrap();
    std::net::IpAddr::from([0x2001, 0xdb8, segment(0), segment(1), 0, 0, 0, 1])
}

/// Waits, if need be, until the counters' windows (15 minutes, an hour) are more than 30 s from
/// their end, so a test's attempts all fall in one window.
async fn away_from_window_edges() {
    let now = chrono::Utc::now().timestamp();
    let left = 900 - now.rem_euclid(900);
    if left < 30 {
        tokio::time::sleep(std::time::Duration::from_secs(left as u64 + 1)).await;
    }
}

fn login_from(source: std::net::IpAddr, email: &str, password: &str) -> ApiRequest {
    post(
        "/v1/auth/login",
        &json!({"email": email, "password": password}),
    )
    .with_source_ip(source)
}

fn login_on_device(email: &str, password: &str, device_token: &str) -> ApiRequest {
    post(
        "/v1/auth/login",
        &json!({"email": email, "password": password, "deviceToken": device_token}),
    )
    .with_source_ip(fresh_source())
}

/// Status, code and Retry-After of one request.
async fn answer(app: &calsync::app::App, req: ApiRequest) -> (u16, String, Option<u64>) {
    let response = app.handle(&calsync::api::service::ALL, req).await;
    let retry_after = response
        .headers
        .iter()
        .find(|(k, _)| k == "retry-after")
        .map(|(_, v)| v.parse().unwrap());
    let code = response
        .body
        .as_ref()
        .and_then(|b| b["error"]["code"].as_str())
        .unwrap_or_default()
        .to_owned();
    (response.status.as_u16(), code, retry_after)
}

#[tokio::test]
async fn sign_ins_are_throttled_per_account_even_when_attempts_race() {
    away_from_window_edges().await;
    let app = app().await;
    let user = register(&app, "throttled").await;
    let password = "a long enough password";
    // Nine failures, then the owner signs in: a success is refunded, so one more failure is
    // still a 401, and the one after that the first 429.
    let source = fresh_source();
    for _ in 0..9 {
        let (status, ..) = answer(&app, login_from(source, &user.email, "wrong password!")).await;
        assert_eq!(status, 401);
    }
    let (status, ..) = answer(&app, login_from(source, &user.email, password)).await;
    assert_eq!(status, 200, "the owner's sign-in is not counted");
    let (status, ..) = answer(&app, login_from(fresh_source(), &user.email, "wrong")).await;
    assert_eq!(status, 401);
    let (status, code, retry_after) =
        answer(&app, login_from(fresh_source(), &user.email, password)).await;
    assert_eq!((status, code.as_str()), (429, "too_many_attempts"));
    let retry_after = retry_after.expect("Retry-After");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    // Locked for this window from every address, right password included, and audited once.
    for _ in 0..3 {
        let (status, ..) = answer(&app, login_from(fresh_source(), &user.email, password)).await;
        assert_eq!(status, 429);
    }
    let actions = audit_actions(&app, &user.token).await;
    let throttled = actions
        .iter()
        .filter(|a| *a == "USER_LOGIN_THROTTLED")
        .count();
    assert_eq!(throttled, 1, "{actions:?}");

    // 30 wrong passwords at once for a fresh account: exactly 10 are checked, 20 refused.
    let other = register(&app, "raced").await;
    let attempts = (0..30).map(|_| {
        let (app, email) = (app.clone(), other.email.clone());
        tokio::spawn(async move { answer(&app, login_from(fresh_source(), &email, "nope")).await })
    });
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap().0);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [[401; 10].as_slice(), &[429; 20]].concat());

    // An e-mail without an account is limited the same way: a 429 tells nothing about existence.
    let nobody = unique_email("nobody");
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(
            answer(&app, login_from(fresh_source(), &nobody, "nope"))
                .await
                .0,
        );
    }
    assert_eq!(statuses, [[401; 10].as_slice(), &[429]].concat());
}

/// Others' wrong guesses lock the account, not its owner: a device that signed in before has a
/// limit of its own, a signed-in owner can still confirm the password, and a reset by e-mail
/// signs in on a device that is then known.
#[tokio::test]
async fn a_locked_account_still_lets_its_owner_in_from_known_devices() {
    away_from_window_edges().await;
    let dir = std::env::temp_dir().join(format!("calsync-outbox-{}", ids::new_id()));
    let app = app_with(&[("MAIL_OUTBOX_DIR", dir.display().to_string())]).await;
    let password = "a long enough password";
    let user = register(&app, "known-device").await;
    let (status, first) = call(&app, login_from(fresh_source(), &user.email, password)).await;
    assert_eq!(status, StatusCode::OK);
    let laptop = first["deviceToken"].as_str().unwrap().to_owned();
    assert_ne!(laptop, first["token"].as_str().unwrap());

    // Someone else guesses until the account is locked.
    for _ in 0..10 {
        let (status, ..) = answer(&app, login_from(fresh_source(), &user.email, "guess!")).await;
        assert_eq!(status, 401);
    }
    let (status, ..) = answer(&app, login_from(fresh_source(), &user.email, password)).await;
    assert_eq!(
        status, 429,
        "the account is locked for devices it does not know"
    );
    let (status, ..) = answer(&app, login_on_device(&user.email, password, "made-up")).await;
    assert_eq!(status, 429, "a made-up device token is no device");
    let stranger = register(&app, "known-device-stranger").await;
    let (_, theirs) = call(&app, login_from(fresh_source(), &stranger.email, password)).await;
    let theirs = theirs["deviceToken"].as_str().unwrap();
    let (status, ..) = answer(&app, login_on_device(&user.email, password, theirs)).await;
    assert_eq!(status, 429, "another user's device is not this user's");

    // The owner's laptop signs in, and keeps its token.
    let (status, again) = call(&app, login_on_device(&user.email, password, &laptop)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["deviceToken"], laptop.as_str());
    // The signed-in owner can still confirm the password (here: change it back and forth).
    let change = |from: &str, to: &str| {
        post(
            "/v1/me/password",
            &json!({"currentPassword": from, "newPassword": to}),
        )
        .with_bearer(again["token"].as_str().unwrap())
    };
    assert_eq!(
        call(&app, change(password, "a changed password here"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, change("a changed password here", password))
            .await
            .0,
        StatusCode::NO_CONTENT
    );

    // A known device has a limit too: ten wrong guesses with it, and it waits as well.
    for _ in 0..10 {
        let (status, ..) = answer(&app, login_on_device(&user.email, "guess!", &laptop)).await;
        assert_eq!(status, 401);
    }
    let (status, ..) = answer(&app, login_on_device(&user.email, password, &laptop)).await;
    assert_eq!(status, 429);

    // A reset by e-mail signs in, on a device that is known from then on.
    let ask = post("/v1/auth/password-reset", &json!({"email": user.email}));
    assert_eq!(call(&app, ask).await.0, StatusCode::ACCEPTED);
    let token = newest_reset_token(&dir);
    let confirm = post(
        "/v1/auth/password-reset/confirm",
        &json!({"token": token, "newPassword": "the owner's new password"}),
    );
    let (status, reset) = call(&app, confirm).await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    let phone = reset["deviceToken"].as_str().unwrap();
    let (status, ..) = answer(
        &app,
        login_on_device(&user.email, "the owner's new password", phone),
    )
    .await;
    assert_eq!(status, 200, "the device of the reset is known");

    let (_, log) = call(&app, get("/v1/audit-log", reset["token"].as_str().unwrap())).await;
    let limits: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "USER_LOGIN_THROTTLED")
        .filter_map(|e| e["metadata"]["limit"].as_str())
        .collect();
    assert_eq!(limits.len(), 2, "{log}");
    assert!(limits.contains(&"login-account") && limits.contains(&"login-device"));
    assert!(
        !log.to_string().contains(&laptop),
        "device tokens are not logged"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sign_ins_and_registrations_are_throttled_per_source_address() {
    away_from_window_edges().await;
    let app = app().await;
    let user = register(&app, "sprayed").await;
    // Password spraying: one address, a different e-mail each time.
    let source = fresh_source();
    for i in 0..50 {
        let email = format!("spray-{i}-{}", unique_email("x"));
        let (status, ..) = answer(&app, login_from(source, &email, "Summer2026!")).await;
        assert_eq!(status, 401, "attempt {i}");
    }
    let (status, code, retry_after) = answer(
        &app,
        login_from(source, &user.email, "a long enough password"),
    )
    .await;
    assert_eq!((status, code.as_str()), (429, "too_many_attempts"));
    assert!(retry_after.is_some());
    // Another address (another /64 for IPv6) is not affected.
    let (status, ..) = answer(
        &app,
        login_from(fresh_source(), &user.email, "a long enough password"),
    )
    .await;
    assert_eq!(status, 200);

    // Registrations: ten an hour from one address.
    let source = fresh_source();
    let register_from = |email: String| {
        post(
            "/v1/auth/register",
            &json!({"email": email, "password": "a long enough password",
                    "firstName": "R", "lastName": "L"}),
        )
        .with_source_ip(source)
    };
    for _ in 0..10 {
        let (status, ..) = answer(&app, register_from(unique_email("reg"))).await;
        assert_eq!(status, 201);
    }
    let email = unique_email("reg");
    let (status, code, retry_after) = answer(&app, register_from(email.clone())).await;
    assert_eq!((status, code.as_str()), (429, "too_many_attempts"));
    assert!((1..=3600).contains(&retry_after.unwrap()));
    let (status, ..) = answer(
        &app,
        post(
            "/v1/auth/login",
            &json!({"email": email, "password": "a long enough password"}),
        ),
    )
    .await;
    assert_eq!(status, 401, "the refused registration created nothing");
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_ends_every_other_session() {
    let app = app().await;
    let user = register(&app, "change-pw").await;
    let login = |password: &str| {
        post(
            "/v1/auth/login",
            &json!({"email": user.email, "password": password}),
        )
    };
    let (status, other) = call(&app, login("a long enough password")).await;
    assert_eq!(status, StatusCode::OK);
    let other = other["token"].as_str().unwrap().to_owned();
    let change = |current: &str, new: &str| {
        send(
            Method::POST,
            "/v1/me/password",
            &user.token,
            &json!({"currentPassword": current, "newPassword": new}),
        )
    };
    let (status, body) = call(&app, change("not it at all", "a brand new password")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "wrong_password")
    );
    let (status, body) = call(&app, change("a long enough password", "short")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "weak_password")
    );
    let (status, _) = call(
        &app,
        change("a long enough password", "a brand new password"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // This session goes on; the other one ended; only the new password signs in.
    assert_eq!(
        call(&app, get("/v1/me", &user.token)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, get("/v1/me", &other)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, login("a long enough password")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, login("a brand new password")).await.0,
        StatusCode::OK
    );
    let actions = audit_actions(&app, &user.token).await;
    assert!(
        actions.contains(&"PASSWORD_CHANGED".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"PASSWORD_CHANGE_FAILED".to_owned()),
        "{actions:?}"
    );
}

/// The messages in a local outbox, oldest first.
fn outbox(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

/// The token of the newest reset link in a local outbox.
pub fn newest_reset_token(dir: &std::path::Path) -> String {
    outbox(dir)
        .last()
        .and_then(|mail| mail.split("token=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a reset link in the outbox")
        .to_owned()
}

#[tokio::test]
async fn a_password_is_reset_by_an_emailed_single_use_link() {
    let dir = std::env::temp_dir().join(format!("calsync-outbox-{}", ids::new_id()));
    let app = app_with(&[("MAIL_OUTBOX_DIR", dir.display().to_string())]).await;
    let user = register(&app, "reset").await;
    let ask = |email: &str| post("/v1/auth/password-reset", &json!({"email": email}));
    let (status, known) = call(&app, ask(&user.email)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{known}");
    let (status, unknown) = call(&app, ask(&unique_email("nobody"))).await;
    assert_eq!(
        (status, &unknown),
        (StatusCode::ACCEPTED, &known),
        "no account is revealed"
    );
    let (status, body) = call(&app, ask("not an address")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_email")
    );
    let mail = outbox(&dir);
    assert_eq!(mail.len(), 1, "one mail, to the account that exists");
    assert!(mail[0].contains(&format!("To: {}", user.email)));
    let token = newest_reset_token(&dir);
    let (stored, _) = call(&app, get("/v1/audit-log", &user.token)).await;
    assert!(!stored.to_string().contains(&token));

    let confirm = |token: &str, password: &str| {
        post(
            "/v1/auth/password-reset/confirm",
            &json!({"token": token, "newPassword": password}),
        )
    };
    let (status, body) = call(&app, confirm("made-up-token", "a fresh password here")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_token")
    );
    let (status, signed_in) = call(&app, confirm(&token, "a fresh password here")).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let new_session = signed_in["token"].as_str().unwrap();
    assert_eq!(
        call(&app, get("/v1/me", new_session)).await.0,
        StatusCode::OK
    );
    assert!(signed_in["deviceToken"]
        .as_str()
        .is_some_and(|t| t.len() >= 40));
    // Once only; every other session ended; the new password signs in.
    let (status, body) = call(&app, confirm(&token, "another password again")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_token")
    );
    assert_eq!(
        call(&app, get("/v1/me", &user.token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let login = |password: &str| {
        post(
            "/v1/auth/login",
            &json!({"email": user.email, "password": password}),
        )
    };
    assert_eq!(
        call(&app, login("a long enough password")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, session) = call(&app, login("a fresh password here")).await;
    assert_eq!(status, StatusCode::OK);
    let actions = audit_actions(&app, session["token"].as_str().unwrap()).await;
    for action in ["PASSWORD_RESET_REQUESTED", "PASSWORD_RESET"] {
        assert!(actions.contains(&action.to_owned()), "{actions:?}");
    }
    // Three requests an hour per address: the fourth is refused, and sends nothing.
    for _ in 0..2 {
        assert_eq!(call(&app, ask(&user.email)).await.0, StatusCode::ACCEPTED);
    }
    let (status, body) = call(&app, ask(&user.email)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    assert_eq!(outbox(&dir).len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}
