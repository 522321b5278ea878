//! Registration, login, logout, the profile and the audit log.

use chrono::{Duration, Utc};
use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::input::{self, json_body, query_number};
use super::instant::Instant;
use super::throttling;
use super::{ApiRequest, ApiResponse, App};
use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::model::{AuditEntry, AuditStatus, Session, User};
use crate::store::{Admission, KnownDevice, Registration, Store};

const MIN_PASSWORD: usize = 10;
/// Argon2 accepts any length, but hashing megabytes on request would be a denial of service.
const MAX_PASSWORD: usize = 1024;

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    #[schemars(email, length(max = 254))]
    pub email: String,
    /// At least 10 characters, at most 1024 bytes (UTF-8).
    #[schemars(length(min = 10, max = 1024))]
    pub password: String,
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub first_name: String,
    #[schemars(length(min = 1, max = 100), regex(pattern = r"\S"))]
    pub last_name: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The `deviceToken` an earlier sign-in on this device returned. Sign-ins from a known
    /// device have a limit of their own, so others' wrong guesses never lock its owner out.
    #[serde(default)]
    pub device_token: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// At least 10 characters, at most 1024 bytes (UTF-8).
    #[schemars(length(min = 10, max = 1024))]
    pub new_password: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRequest {
    #[schemars(email, length(max = 254))]
    pub email: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetConfirmRequest {
    /// The token from the e-mail's link.
    pub token: String,
    /// At least 10 characters, at most 1024 bytes (UTF-8).
    #[schemars(length(min = 10, max = 1024))]
    pub new_password: String,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetAcceptedDto {
    /// The same whether or not an account has the address.
    pub message: String,
}

/// How long a reset link works.
const RESET_TTL_MINUTES: i64 = 30;

/// Reset e-mails per address per hour (a mailbox cannot be flooded through us).
const RESETS_PER_ACCOUNT: crate::store::Limit = crate::store::Limit {
    kind: "reset-account",
    max: 3,
    window_seconds: 60 * 60,
};

/// Reset requests per source address per hour.
const RESETS_PER_SOURCE: crate::store::Limit = crate::store::Limit {
    kind: "reset-source",
    max: 20,
    window_seconds: 60 * 60,
};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's password, to confirm.
    pub password: String,
}

/// Everything calsync holds of the user, tokens and password hashes excepted, in parts: the
/// first part holds the profile, connections, calendars and feeds; every part holds the next
/// events (calendar by calendar), then the audit log; `nextCursor` asks for the next part.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportDto {
    pub exported_at: Instant,
    pub user: UserDto,
    /// In the first part only (empty in the others), as are `calendars` and `feeds`.
    pub connections: Vec<super::connections::ConnectionDto>,
    /// Every calendar, removed ones included (with their events) until they are purged.
    pub calendars: Vec<super::calendars::CalendarDto>,
    /// Stored events: single events, series as their rule (not expanded), exceptions;
    /// soft-deleted ones until they are purged.
    pub events: Vec<super::events::EventDto>,
    pub feeds: Vec<super::feeds::FeedSummaryDto>,
    /// Oldest first, after every event.
    pub audit_log: Vec<AuditEntryDto>,
    /// The next part: absent when this part is the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Events and audit entries in one part of an export, at most (the default and the largest
/// `limit`): a part must fit a Lambda response (6 MB).
pub const EXPORT_PART_ITEMS: usize = 2_000;

/// Where the next part of an export starts: in a calendar's events after a key, or in the audit
/// log after a key.
#[derive(Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "camelCase")]
enum ExportPosition {
    Events {
        calendar: String,
        after: Option<String>,
    },
    Audit {
        after: Option<String>,
    },
}

/// Exports per user per hour: each reads everything the user has.
const EXPORTS_PER_USER: crate::store::Limit = crate::store::Limit {
    kind: "export",
    max: 5,
    window_seconds: 60 * 60,
};

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub created_at: Instant,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            created_at: u.created_at.into(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDto {
    /// Send as `Authorization: Bearer <token>`. Shown once; only its hash is stored.
    pub token: String,
    pub expires_at: Instant,
    /// This device's token: send it as `deviceToken` with the next sign-in here. Valid for 90
    /// days from its last use; shown once, only its hash is stored.
    pub device_token: String,
    pub user: UserDto,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryDto {
    pub id: String,
    pub action: String,
    pub resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    pub status: AuditStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    pub created_at: Instant,
}

impl From<AuditEntry> for AuditEntryDto {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            status: e.status,
            error_message: e.error_message,
            metadata: e.metadata,
            created_at: e.created_at.into(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPageDto {
    pub entries: Vec<AuditEntryDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn password(raw: &str) -> ApiResult<&str> {
    let len = raw.chars().count();
    if len < MIN_PASSWORD {
        return Err(ApiError::bad_request(
            "weak_password",
            format!("password must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if raw.len() > MAX_PASSWORD {
        return Err(ApiError::bad_request(
            "field_too_long",
            format!("password may be at most {MAX_PASSWORD} bytes"),
        ));
    }
    Ok(raw)
}

pub async fn register(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let body: RegisterRequest = json_body(req)?;
    let email = input::email(&body.email, "email")?;
    let password = password(&body.password)?;
    let first_name = input::required_text(&body.first_name, "firstName", 100)?;
    let last_name = input::required_text(&body.last_name, "lastName", 100)?;
    // Counted once the input is valid: only attempts that would create an account use it up.
    if let Some(source) = throttling::source_subject(req) {
        let now = Utc::now().timestamp();
        let admission = app
            .store
            .count_attempt(&throttling::REGISTER_PER_SOURCE, &source, now)
            .await?;
        if matches!(admission, Admission::Refused { first: true, .. }) {
            tracing::warn!(source = %source, "registrations throttled");
        }
        throttling::refusal(admission, "registrations from this address")?;
    }
    let user = User {
        id: ids::new_id(),
        email,
        password_hash: auth::hash_password(password)?,
        first_name,
        last_name,
        created_at: Store::now(),
    };
    let audit = AuditEntry::new(&user.id, "USER_REGISTERED", "USER", Some(&user.id));
    match app.store.create_user(&user, &audit).await? {
        Registration::Created => {}
        Registration::EmailTaken => {
            return Err(ApiError::conflict(
                "email_taken",
                "an account with this e-mail already exists",
            ))
        }
    }
    let session = start_session(app, &user, None).await?;
    ApiResponse::json(StatusCode::CREATED, &session)
}

/// Failed sign-ins for e-mail addresses without an account are audited too, in a few shared
/// partitions (no user to file them under): the write costs what a wrong password's audit
/// costs, and operators see credential stuffing.
fn unknown_email_audit(email: &str) -> AuditEntry {
    let hash = ids::sha256_hex(email);
    let shard = &hash[..1];
    AuditEntry::new(
        &format!("~unknown-email#{shard}"),
        "USER_LOGIN_FAILED",
        "USER",
        None,
    )
    .failed("unknown e-mail")
    .with_metadata(serde_json::json!({ "emailHash": &hash[..16] }))
}

pub async fn login(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let body: LoginRequest = json_body(req)?;
    let invalid = || ApiError::unauthorized("e-mail or password is wrong");
    let Ok(email) = input::email(&body.email, "email") else {
        return Err(invalid());
    };
    if body.password.len() > MAX_PASSWORD {
        return Err(invalid());
    }
    let now = Utc::now().timestamp();
    let account = ids::sha256_hex(&email);
    let source = throttling::source_subject(req);
    let store = &app.store;
    let count_source = async {
        match &source {
            Some(source) => store
                .count_attempt(&throttling::LOGIN_PER_SOURCE, source, now)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let device = body
        .device_token
        .as_deref()
        .filter(|t| !t.is_empty() && t.len() <= 128);
    let count_account = async {
        let Some(token) = device else {
            let (user, admission) = tokio::try_join!(
                store.login_candidate(&email),
                store.count_attempt(&throttling::LOGIN_PER_ACCOUNT, &account, now),
            )?;
            return Ok((user, None, admission));
        };
        // Which limit applies depends on whose device it is: read the user, then the device.
        let user = store.login_candidate(&email).await?;
        let hash = ids::sha256_hex(token);
        let user_id = user.as_ref().map(|u| u.id.as_str());
        let known = store
            .known_device(user_id, &hash, now)
            .await?
            .then_some(hash);
        let (limit, subject) = throttling::login_limit(known.as_deref(), &account);
        let admission = store.count_attempt(limit, subject, now).await?;
        Ok::<_, crate::store::StoreError>((user, known, admission))
    };
    let ((user, known_device, by_account), by_source) =
        tokio::try_join!(count_account, count_source)?;
    let (limit, subject) = throttling::login_limit(known_device.as_deref(), &account);
    if let Admission::Refused { first, .. } = by_account {
        if let (true, Some(user)) = (first, &user) {
            let audit = AuditEntry::new(&user.id, "USER_LOGIN_THROTTLED", "USER", Some(&user.id))
                .failed("too many sign-in attempts")
                .with_metadata(serde_json::json!({ "limit": limit.kind }));
            store.append_audit(&audit).await?;
        }
        let whose = match known_device {
            Some(_) => "sign-in attempts from this device",
            None => "sign-in attempts for this account",
        };
        throttling::refusal(by_account, whose)?;
    }
    if let Some(by_source) = by_source {
        if matches!(by_source, Admission::Refused { first: true, .. }) {
            tracing::warn!(
                source = source.as_deref().unwrap_or_default(),
                "sign-ins throttled"
            );
        }
        throttling::refusal(by_source, "sign-in attempts from this address")?;
    }
    let verified = match &user {
        Some(user) => auth::verify_password(&body.password, &user.password_hash),
        None => {
            auth::burn_verification_time(&body.password);
            false
        }
    };
    let user = match (user, verified) {
        (Some(user), true) => user,
        (user, _) => {
            let audit = match &user {
                Some(user) => {
                    AuditEntry::new(&user.id, "USER_LOGIN_FAILED", "USER", Some(&user.id))
                        .failed("wrong password")
                }
                None => unknown_email_audit(&email),
            };
            store.append_audit(&audit).await?;
            return Err(invalid());
        }
    };
    // The owner's own sign-in never counts toward a lock.
    let refund_source = async {
        match &source {
            Some(source) => {
                store
                    .refund_attempt(&throttling::LOGIN_PER_SOURCE, source, now)
                    .await
            }
            None => Ok(()),
        }
    };
    tokio::try_join!(store.refund_attempt(limit, subject, now), refund_source)?;
    let device = known_device.and(device).map(str::to_owned);
    ApiResponse::ok(&start_session(app, &user, device).await?)
}

/// How long a device stays known after its last sign-in.
const KNOWN_DEVICE_DAYS: i64 = 90;

/// Starts a session on a device: `device` is the token of a known one (renewed), else the
/// device is new and gets a token.
async fn start_session(app: &App, user: &User, device: Option<String>) -> ApiResult<SessionDto> {
    let token = ids::new_secret_token();
    let device_token = device.unwrap_or_else(ids::new_secret_token);
    let now = Store::now();
    let expires_at = now + Duration::days(app.config.session_ttl_days);
    let device = KnownDevice {
        token_hash: ids::sha256_hex(&device_token),
        expires_at: (now + Duration::days(KNOWN_DEVICE_DAYS)).timestamp(),
    };
    let session = Session {
        user_id: user.id.clone(),
        created_at: now,
        expires_at: expires_at.timestamp(),
    };
    let audit = AuditEntry::new(&user.id, "USER_LOGIN", "SESSION", None);
    app.store
        .create_session(&ids::sha256_hex(&token), &session, &device, &audit)
        .await?;
    Ok(SessionDto {
        token,
        expires_at: expires_at.into(),
        device_token,
        user: user.into(),
    })
}

pub async fn logout(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let token = auth::bearer_token(req.header("authorization"))?;
    let audit = AuditEntry::new(&user_id, "USER_LOGOUT", "SESSION", None);
    match app
        .store
        .delete_session(&ids::sha256_hex(token), &audit)
        .await
    {
        // A concurrent logout of the same session already ended it.
        Ok(()) | Err(crate::store::StoreError::ConditionFailed) => Ok(ApiResponse::no_content()),
        Err(e) => Err(e.into()),
    }
}

/// `POST /v1/me/password`: the current password is required (counted like a sign-in, so a stolen
/// session cannot guess it); every other session of the user ends.
pub async fn change_password(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user = signed_in_user(app, req).await?;
    let body: ChangePasswordRequest = json_body(req)?;
    let new_password = password(&body.new_password)?;
    confirm_password(app, &user, &body.current_password, "PASSWORD_CHANGE_FAILED").await?;
    let token = auth::bearer_token(req.header("authorization"))?;
    let current_session = ids::sha256_hex(token);
    let ended = app
        .store
        .end_sessions(&user.id, Some(&current_session))
        .await?;
    let audit = AuditEntry::new(&user.id, "PASSWORD_CHANGED", "USER", Some(&user.id))
        .with_metadata(serde_json::json!({ "sessionsEnded": ended }));
    app.store
        .set_password_hash(&user.id, &auth::hash_password(new_password)?, &audit)
        .await?;
    Ok(ApiResponse::no_content())
}

/// `POST /v1/auth/password-reset`: mails a single-use link (30 minutes) when an account has the
/// address. The answer is the same either way, and so is the work (decisions 48).
pub async fn request_reset(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let body: ResetRequest = json_body(req)?;
    let email = input::email(&body.email, "email")?;
    let mailer = app.mailer()?;
    let now = Utc::now();
    let by_account = app
        .store
        .count_attempt(
            &RESETS_PER_ACCOUNT,
            &ids::sha256_hex(&email),
            now.timestamp(),
        )
        .await?;
    throttling::refusal(by_account, "reset requests for this address")?;
    if let Some(source) = throttling::source_subject(req) {
        let by_source = app
            .store
            .count_attempt(&RESETS_PER_SOURCE, &source, now.timestamp())
            .await?;
        throttling::refusal(by_source, "reset requests from this address")?;
    }
    match app.store.login_candidate(&email).await? {
        Some(user) => {
            let token = ids::new_secret_token();
            let expires = now + Duration::minutes(RESET_TTL_MINUTES);
            app.store
                .create_reset_token(&ids::sha256_hex(&token), &user.id, expires.timestamp())
                .await?;
            let base = app.config.password_reset_url.as_deref().unwrap_or_default();
            let separator = if base.contains('?') { '&' } else { '?' };
            let message = crate::mail::Message {
                to: user.email.clone(),
                subject: "Reset your calsync password".into(),
                text: format!(
                    "Someone asked to reset the password of your calsync account.\n\n\
                     To choose a new one, open this link within {RESET_TTL_MINUTES} minutes:\n\
                     {base}{separator}token={token}\n\n\
                     If it was not you, ignore this message: your password stays as it is."
                ),
            };
            if let Err(e) = mailer.send(&message).await {
                tracing::error!(error = %e, "reset mail not sent");
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "mail_unavailable",
                    "the e-mail could not be sent; try again later",
                ));
            }
            let audit =
                AuditEntry::new(&user.id, "PASSWORD_RESET_REQUESTED", "USER", Some(&user.id));
            app.store.append_audit(&audit).await?;
        }
        None => {
            let audit = unknown_email_audit(&email);
            app.store.append_audit(&audit).await?;
        }
    }
    ApiResponse::json(
        StatusCode::ACCEPTED,
        &ResetAcceptedDto {
            message: "if an account has this address, a reset link is on its way".into(),
        },
    )
}

/// `POST /v1/auth/password-reset/confirm`: a token from the e-mail sets a new password, once;
/// every session of the account ends, and a new one starts on this device.
pub async fn confirm_reset(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let body: ResetConfirmRequest = json_body(req)?;
    let new_password = password(&body.new_password)?;
    let invalid = || {
        ApiError::bad_request(
            "invalid_token",
            "the reset link is unknown, used or expired; ask for a new one",
        )
    };
    if body.token.is_empty() || body.token.len() > 128 {
        return Err(invalid());
    }
    let hash = ids::sha256_hex(&body.token);
    let Some(user_id) = app
        .store
        .consume_reset_token(&hash, Utc::now().timestamp())
        .await?
    else {
        return Err(invalid());
    };
    let ended = app.store.end_sessions(&user_id, None).await?;
    let audit = AuditEntry::new(&user_id, "PASSWORD_RESET", "USER", Some(&user_id))
        .with_metadata(serde_json::json!({ "sessionsEnded": ended }));
    match app
        .store
        .set_password_hash(&user_id, &auth::hash_password(new_password)?, &audit)
        .await
    {
        Ok(()) => {}
        // The account was erased after the link was sent.
        Err(crate::store::StoreError::ConditionFailed) => return Err(invalid()),
        Err(e) => return Err(e.into()),
    }
    // Signed in on a device it now knows: the mailbox proved the owner, whose sign-ins others
    // may be holding back (decisions 56).
    let user = app.store.user(&user_id).await?.ok_or_else(invalid)?;
    ApiResponse::ok(&start_session(app, &user, None).await?)
}

/// Checks a password the request gives for an action on the account, counted per user (so a
/// stolen session cannot guess it, and others' sign-in attempts cannot block it), and audits a
/// wrong one as `failed_action`.
async fn confirm_password(
    app: &App,
    user: &User,
    given: &str,
    failed_action: &str,
) -> ApiResult<()> {
    let now = Utc::now().timestamp();
    let limit = &throttling::PASSWORD_CONFIRM_PER_USER;
    let admission = app.store.count_attempt(limit, &user.id, now).await?;
    throttling::refusal(admission, "password attempts for this account")?;
    if given.len() > MAX_PASSWORD || !auth::verify_password(given, &user.password_hash) {
        let audit = AuditEntry::new(&user.id, failed_action, "USER", Some(&user.id))
            .failed("wrong password");
        app.store.append_audit(&audit).await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the password given is not the account's password",
        ));
    }
    app.store.refund_attempt(limit, &user.id, now).await?;
    Ok(())
}

async fn signed_in_user(app: &App, req: &ApiRequest) -> ApiResult<User> {
    let user_id = app.authenticate(req).await?;
    app.store
        .user(&user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("session is invalid or expired"))
}

/// `DELETE /v1/me`: erases the account (decisions 47). Every grant is revoked first, then every
/// item of the user in every table is deleted, sessions last. What remains is one anonymised
/// entry (a hash of the user id and the counts) in a partition no user reads.
pub async fn delete_account(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user = signed_in_user(app, req).await?;
    let body: DeleteAccountRequest = json_body(req)?;
    confirm_password(app, &user, &body.password, "USER_DELETE_FAILED").await?;
    for account in app.store.accounts(&user.id).await? {
        if account.is_connected {
            super::connections::disconnect_account(app, &user.id, &account.id).await?;
        }
    }
    // Marked before the first deletion: whatever this request cannot finish, cleanup does.
    app.store
        .mark_erasure(&user.id, Utc::now().timestamp())
        .await?;
    let deadline = std::time::Instant::now() + app.config.erasure_in_request;
    let erased = crate::erasure::erase(app, &user, deadline, "request").await?;
    if erased.done {
        return Ok(ApiResponse::no_content());
    }
    ApiResponse::json(
        StatusCode::ACCEPTED,
        &ErasureAcceptedDto {
            status: "erasing",
            message: "the account can no longer be used; the rest of its data is being deleted and will be gone within the hour",
        },
    )
}

/// `DELETE /v1/me` on an account too big to erase within one request.
#[derive(Serialize, JsonSchema)]
pub struct ErasureAcceptedDto {
    pub status: &'static str,
    pub message: &'static str,
}

/// `GET /v1/me/export`: all of the user's data as JSON (never tokens or password hashes), in
/// parts of at most [`EXPORT_PART_ITEMS`] events and audit entries, each part read afresh.
pub async fn export(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user = signed_in_user(app, req).await?;
    let now = Utc::now();
    let invalid_cursor = || ApiError::bad_request("invalid_cursor", "cursor is not one we issued");
    let part_size = query_number(req, "limit", EXPORT_PART_ITEMS, 1..=EXPORT_PART_ITEMS)?;
    let resumed = match req.query.get("cursor") {
        Some(cursor) => Some(
            ids::decode_cursor(cursor)
                .and_then(|v| serde_json::from_value::<ExportPosition>(v).ok())
                .ok_or_else(invalid_cursor)?,
        ),
        None => None,
    };
    if resumed.is_none() {
        let admission = app
            .store
            .count_attempt(&EXPORTS_PER_USER, &user.id, now.timestamp())
            .await?;
        throttling::refusal(admission, "exports of this account")?;
    }
    let calendars = app.store.connections(&user.id).await?;
    let mut export = ExportDto {
        exported_at: now.into(),
        user: UserDto::from(&user),
        connections: Vec::new(),
        calendars: Vec::new(),
        events: Vec::new(),
        feeds: Vec::new(),
        audit_log: Vec::new(),
        next_cursor: None,
    };
    let mut position = match resumed {
        Some(position) => position,
        None => {
            let (accounts, feeds) =
                tokio::try_join!(app.store.accounts(&user.id), app.store.feeds(&user.id))?;
            export.connections = super::connections::connection_dtos(accounts, &calendars);
            export.calendars = calendars
                .iter()
                .map(super::calendars::CalendarDto::from)
                .collect();
            export.feeds = feeds
                .into_iter()
                .map(super::feeds::FeedSummaryDto::from)
                .collect();
            let audit = AuditEntry::new(&user.id, "USER_DATA_EXPORTED", "USER", Some(&user.id));
            app.store.append_audit(&audit).await?;
            events_from(&calendars, 0)
        }
    };
    loop {
        let room = part_size - export.events.len() - export.audit_log.len();
        if room == 0 {
            let position = serde_json::to_value(&position).map_err(ApiError::internal)?;
            export.next_cursor = Some(ids::encode_cursor(&position));
            break;
        }
        position = match position {
            ExportPosition::Events { calendar, after } => {
                // A calendar id from the cursor must be one of this user's.
                let index = calendars
                    .iter()
                    .position(|c| c.id == calendar)
                    .ok_or_else(invalid_cursor)?;
                let (stored, resume) = app
                    .store
                    .calendar_events(&calendar, after.as_deref(), room)
                    .await?;
                let dto = |e: &crate::model::Event| super::events::dto(e, &calendars[index]);
                export.events.extend(stored.iter().map(dto));
                match resume {
                    Some(after) => ExportPosition::Events {
                        calendar,
                        after: Some(after),
                    },
                    None => events_from(&calendars, index + 1),
                }
            }
            ExportPosition::Audit { after } => {
                let (entries, resume) = app
                    .store
                    .audit_entries_after(&user.id, after.as_deref(), room)
                    .await?;
                export
                    .audit_log
                    .extend(entries.into_iter().map(AuditEntryDto::from));
                match resume {
                    Some(after) => ExportPosition::Audit { after: Some(after) },
                    None => break,
                }
            }
        };
    }
    ApiResponse::ok(&export)
}

/// The export's position at the start of the `index`th calendar, or the audit log after the last.
fn events_from(calendars: &[crate::model::Connection], index: usize) -> ExportPosition {
    match calendars.get(index) {
        Some(calendar) => ExportPosition::Events {
            calendar: calendar.id.clone(),
            after: None,
        },
        None => ExportPosition::Audit { after: None },
    }
}

pub async fn me(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let user = app
        .store
        .user(&user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("session is invalid or expired"))?;
    ApiResponse::ok(&UserDto::from(&user))
}

pub async fn audit_log(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let limit = query_number(req, "limit", 50, 1..=200)?;
    let after = match req.query.get("cursor") {
        None => None,
        Some(cursor) => Some(
            ids::decode_cursor(cursor)
                .and_then(|v| v.get("a").and_then(|a| a.as_str()).map(str::to_owned))
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_cursor", "cursor is not one we issued")
                })?,
        ),
    };
    let page = app
        .store
        .audit_log(
            &user_id,
            i32::try_from(limit).unwrap_or(50),
            after.as_deref(),
        )
        .await?;
    let entries = page.entries.into_iter().map(AuditEntryDto::from).collect();
    let next_cursor = page
        .next
        .map(|sk| ids::encode_cursor(&serde_json::json!({ "a": sk })));
    ApiResponse::ok(&AuditPageDto {
        entries,
        next_cursor,
    })
}
