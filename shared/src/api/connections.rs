//! Connecting calendars: OAuth (Google, Microsoft) with state + PKCE, and CalDAV (Apple) with an
//! app-specific password. Tokens and passwords are sealed under KMS before they are stored.

use chrono::{Duration, Utc};
use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::browser_binding;
use super::calendars::CalendarDto;
use super::input::{self, json_body};
use super::instant::Instant;
use super::{ApiRequest, ApiResponse, App};
use crate::crypto::{Secret, SecretContext};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::model::{
    AuditEntry, CalDavLocation, Connection, ConnectionStatus, OAuthState, Provider, ProviderAccount,
};
use crate::providers::caldav::CalDavClient;
use crate::providers::oauth::{self, Pkce, TokenSet};
use crate::providers::{google, microsoft, DiscoveredAccount, ProviderError};
use crate::queue::SyncRequest;
use crate::store::{StateRejection, Store};

/// How long a user has to finish the provider's consent screen.
const STATE_TTL_MINUTES: i64 = 15;
/// How long the start link stays openable: short, since a link forwarded before it is opened is
/// the one way left to hand a flow to another browser (docs/security.md).
const LAUNCH_TTL_MINUTES: i64 = 5;
const DEFAULT_COLOR: &str = "#3366cc";

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationDto {
    /// Open this in the user's browser (once, within 5 minutes): our start route binds the flow
    /// to that browser, sends it to the provider's consent screen, and the provider sends it
    /// back to our callback, which only that browser can complete.
    pub authorization_url: String,
    /// When the start link stops working.
    pub expires_at: Instant,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppleConnectRequest {
    /// The Apple ID (or CalDAV user name).
    pub username: String,
    /// An app-specific password (appleid.apple.com → Sign-In and Security).
    pub app_password: String,
    /// Defaults to https://caldav.icloud.com.
    #[serde(default)]
    pub server_url: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDto {
    pub id: String,
    pub provider: Provider,
    pub email: String,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedDto {
    pub account: AccountDto,
    pub calendars: Vec<CalendarDto>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDto {
    /// For `DELETE /v1/connections/{id}`.
    pub id: String,
    pub provider: Provider,
    /// The account's login at the provider (e-mail, or the CalDAV user name).
    pub email: String,
    /// `active`, or `reauthorization_required` / `error` with `lastError`.
    pub status: ConnectionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the provider last gave us tokens: the grant, or the latest refresh (OAuth only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_refreshed_at: Option<Instant>,
    pub connected_at: Instant,
    /// Its calendars that are not removed.
    pub calendars: Vec<CalendarDto>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionListDto {
    /// Oldest first.
    pub connections: Vec<ConnectionDto>,
}

/// `GET /v1/connections`: the connected accounts, each with its live calendars.
pub async fn list(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let (accounts, calendars) = tokio::try_join!(
        app.store.accounts(&user_id),
        app.store.connections(&user_id)
    )?;
    let connections = connection_dtos(accounts, &calendars);
    ApiResponse::ok(&ConnectionListDto { connections })
}

/// The connected accounts, oldest first (same second: by provider, then e-mail), each with its
/// live calendars.
pub(super) fn connection_dtos(
    accounts: Vec<ProviderAccount>,
    calendars: &[Connection],
) -> Vec<ConnectionDto> {
    let calendars = super::calendars::visible(calendars.to_vec());
    let mut connections: Vec<ConnectionDto> = accounts
        .into_iter()
        .filter(|a| a.is_connected)
        .map(|account| ConnectionDto {
            calendars: calendars
                .iter()
                .filter(|c| c.account_id.as_deref() == Some(account.id.as_str()))
                .map(CalendarDto::from)
                .collect(),
            id: account.id,
            provider: account.provider,
            email: account.account_email,
            status: account.status,
            last_error: account.last_error,
            tokens_refreshed_at: account.tokens_refreshed_at.map(Into::into),
            connected_at: account.created_at.into(),
        })
        .collect();
    // Connection times are whole seconds: two accounts connected within one second keep a
    // stable, readable order (provider, then e-mail) instead of their ids' arbitrary one.
    connections.sort_by(|a, b| {
        (a.connected_at, a.provider.as_str(), &a.email, &a.id).cmp(&(
            b.connected_at,
            b.provider.as_str(),
            &b.email,
            &b.id,
        ))
    });
    connections
}

/// `DELETE /v1/connections/{id}`: the account's calendars are removed as `DELETE
/// /v1/calendars/{id}` removes one (their events leave every query, syncs stop; connecting the
/// account again brings them back), then the grant is revoked and the tokens erased.
pub async fn disconnect(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    if !ids::is_id(id) {
        return Err(ApiError::not_found("connection"));
    }
    let account = match app.store.account(&user_id, id).await? {
        Some(account) if account.is_connected => account,
        _ => return Err(ApiError::not_found("connection")),
    };
    let now = Store::now();
    for calendar in app.store.connections(&user_id).await? {
        if calendar.account_id.as_deref() != Some(account.id.as_str())
            || calendar.deleted_at.is_some()
        {
            continue;
        }
        let audit = AuditEntry::new(&user_id, "CALENDAR_DELETED", "CALENDAR", Some(&calendar.id))
            .with_metadata(serde_json::json!({ "reason": "account disconnected" }));
        match app
            .store
            .soft_delete_connection(&user_id, &calendar.id, now, &audit)
            .await
        {
            // Removed meanwhile by a concurrent request: the outcome is the same.
            Ok(()) | Err(crate::store::StoreError::ConditionFailed) => {}
            Err(e) => return Err(e.into()),
        }
    }
    disconnect_account(app, &user_id, &account.id).await?;
    Ok(ApiResponse::no_content())
}

/// An OAuth provider named in a path (`apple` connects by `POST /v1/connections/apple`).
fn provider_param(slug: &str) -> ApiResult<Provider> {
    Provider::from_slug(slug)
        .filter(|p| *p != Provider::Apple)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_provider",
                format!("unknown OAuth provider {slug:?}; use google or microsoft"),
            )
        })
}

/// `POST /v1/connections/{provider}`.
pub async fn start(app: &App, req: &ApiRequest, slug: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let provider = provider_param(slug)?;
    let (Some(_), Some(start_uri)) = (app.config.oauth(provider), app.config.start_uri(provider))
    else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider_not_configured",
            format!("{} is not configured on this server", provider.slug()),
        ));
    };
    let state = ids::new_secret_token();
    let now = Store::now();
    let launch_by = now + Duration::minutes(LAUNCH_TTL_MINUTES);
    let record = OAuthState {
        user_id: user_id.clone(),
        provider,
        launch_by: launch_by.timestamp(),
        browser_hash: None,
        expires_at: (now + Duration::minutes(STATE_TTL_MINUTES)).timestamp(),
        consumed: false,
        created_at: now,
    };
    app.store
        .create_oauth_state(&ids::sha256_hex(&state), &record)
        .await?;
    let mut authorization_url = url::Url::parse(&start_uri).map_err(ApiError::internal)?;
    authorization_url
        .query_pairs_mut()
        .append_pair("state", &state);
    ApiResponse::json(
        StatusCode::CREATED,
        &AuthorizationDto {
            authorization_url: authorization_url.into(),
            expires_at: launch_by.into(),
        },
    )
}

/// Where the browser goes after the start route or the callback: the configured app URL with a
/// code, nothing more.
fn finish(app: &App, outcome: Result<(Provider, usize), &'static str>) -> ApiResult<ApiResponse> {
    let query = match outcome {
        Ok((provider, n)) => format!(
            "status=connected&provider={}&calendars={n}",
            provider.slug()
        ),
        Err(code) => format!("status=error&error={code}"),
    };
    match &app.config.app_redirect_url {
        Some(target) => {
            let separator = if target.contains('?') { '&' } else { '?' };
            Ok(ApiResponse {
                status: StatusCode::FOUND,
                headers: vec![("location".into(), format!("{target}{separator}{query}"))],
                body: None,
                raw: None,
            })
        }
        None => ApiResponse::ok(&serde_json::json!({ "result": query })),
    }
}

/// The `state` query parameter of a browser route, if it is plausible.
fn state_param(req: &ApiRequest) -> Option<&str> {
    req.query
        .get("state")
        .map(String::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 128)
}

fn rejection_code(reason: StateRejection) -> &'static str {
    match reason {
        StateRejection::Unknown => "state_unknown",
        StateRejection::Expired => "state_expired",
        StateRejection::Used => "state_used",
        StateRejection::WrongProvider => "state_invalid",
    }
}

/// Logs and audits a refused browser step, then sends the browser to the app with the code.
async fn refuse(
    app: &App,
    provider: Provider,
    user_id: Option<&str>,
    action: &str,
    code: &'static str,
) -> ApiResult<ApiResponse> {
    tracing::warn!(
        reason = code,
        provider = provider.slug(),
        action,
        "OAuth step refused"
    );
    if let Some(user_id) = user_id {
        let audit = AuditEntry::new(user_id, action, "OAUTH_STATE", None)
            .failed(code)
            .with_metadata(serde_json::json!({ "provider": provider.slug() }));
        app.store.append_audit(&audit).await?;
    }
    finish(app, Err(code))
}

/// `GET /oauth/{provider}/start?state`, the `authorizationUrl` opened in the user's browser:
/// binds the flow to this browser (a cookie) and redirects to the provider's consent screen
/// with a PKCE challenge derived from the binding. A start link opens once.
pub async fn launch(app: &App, req: &ApiRequest, slug: &str) -> ApiResult<ApiResponse> {
    let provider = provider_param(slug)?;
    let (Some(settings), Some(redirect_uri)) = (
        app.config.oauth(provider),
        app.config.redirect_uri(provider),
    ) else {
        return finish(app, Err("provider_not_configured"));
    };
    let Some(state) = state_param(req) else {
        return finish(app, Err("state_missing"));
    };
    let (binding, cookie) = browser_binding::issue(state);
    let launched = app
        .store
        .launch_oauth_state(
            &ids::sha256_hex(state),
            provider,
            &ids::sha256_hex(&binding),
            Utc::now().timestamp(),
        )
        .await?;
    if let Err(rejected) = launched {
        let code = rejection_code(rejected.reason);
        let user = rejected.user_id.as_deref();
        return refuse(app, provider, user, "OAUTH_START_REJECTED", code).await;
    }
    let pkce = Pkce::derived_from(&binding);
    let consent_url = oauth::authorization_url(settings, &redirect_uri, state, &pkce)
        .map_err(ApiError::internal)?;
    Ok(ApiResponse {
        status: StatusCode::FOUND,
        headers: vec![
            ("location".into(), consent_url),
            ("set-cookie".into(), cookie),
            ("cache-control".into(), "no-store".into()),
            ("referrer-policy".into(), "no-referrer".into()),
        ],
        body: None,
        raw: None,
    })
}

/// `GET /oauth/{provider}/callback?state&code` (or `&error`), from the user's browser.
pub async fn callback(app: &App, req: &ApiRequest, slug: &str) -> ApiResult<ApiResponse> {
    let provider = provider_param(slug)?;
    let Some(state) = state_param(req) else {
        return finish(app, Err("state_missing"));
    };
    let mut response = complete(app, req, provider, state).await?;
    response
        .headers
        .push(("set-cookie".into(), browser_binding::clear(state)));
    Ok(response)
}

async fn complete(
    app: &App,
    req: &ApiRequest,
    provider: Provider,
    state: &str,
) -> ApiResult<ApiResponse> {
    let (Some(settings), Some(redirect_uri)) = (
        app.config.oauth(provider),
        app.config.redirect_uri(provider),
    ) else {
        return finish(app, Err("provider_not_configured"));
    };
    let consumed = app
        .store
        .consume_oauth_state(&ids::sha256_hex(state), provider, Utc::now().timestamp())
        .await?;
    let record = match consumed {
        Ok(record) => record,
        Err(rejected) => {
            let code = rejection_code(rejected.reason);
            let user = rejected.user_id.as_deref();
            return refuse(app, provider, user, "OAUTH_CALLBACK_REJECTED", code).await;
        }
    };
    // A flow outlives its account only if the account was erased meanwhile: connecting it then
    // would write tokens and calendars for a user that no longer exists, which nothing erases.
    if app.store.user(&record.user_id).await?.is_none() {
        return refuse(
            app,
            provider,
            None,
            "OAUTH_CALLBACK_REJECTED",
            "state_unknown",
        )
        .await;
    }
    // The state is spent either way: a callback from another browser burns it.
    let binding = browser_binding::read(req, state);
    if !browser_binding::matches(binding, record.browser_hash.as_deref()) {
        let user = Some(record.user_id.as_str());
        return refuse(
            app,
            provider,
            user,
            "OAUTH_CALLBACK_REJECTED",
            "browser_mismatch",
        )
        .await;
    }
    let pkce = Pkce::derived_from(binding.unwrap_or_default());
    let audit_failure = |code: &'static str| {
        AuditEntry::new(&record.user_id, "CALENDAR_CONNECT_FAILED", "ACCOUNT", None)
            .failed(code)
            .with_metadata(serde_json::json!({ "provider": provider.slug() }))
    };
    if let Some(error) = req.query.get("error") {
        let code = if error == "access_denied" {
            "access_denied"
        } else {
            "provider_error"
        };
        app.store.append_audit(&audit_failure(code)).await?;
        return finish(app, Err(code));
    }
    let Some(code) = req
        .query
        .get("code")
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        app.store
            .append_audit(&audit_failure("code_missing"))
            .await?;
        return finish(app, Err("code_missing"));
    };
    let result = async {
        let tokens =
            oauth::exchange_code(app.http(), settings, &redirect_uri, code, &pkce.verifier).await?;
        let discovered = match provider {
            Provider::Google => {
                google::discover(app.http(), &settings.api_base, &tokens.access_token).await?
            }
            _ => microsoft::discover(app.http(), &settings.api_base, &tokens.access_token).await?,
        };
        Ok::<_, ProviderError>((tokens, discovered))
    }
    .await;
    let (tokens, discovered) = match result {
        Ok(found) => found,
        Err(err) => {
            let code = match err {
                ProviderError::InvalidGrant => "invalid_grant",
                _ => "provider_unavailable",
            };
            tracing::warn!(error = %err, provider = provider.slug(), "OAuth exchange failed");
            app.store.append_audit(&audit_failure(code)).await?;
            return finish(app, Err(code));
        }
    };
    let (_, calendars) = save_account(
        app,
        &record.user_id,
        provider,
        discovered,
        Credentials::OAuth(tokens),
    )
    .await?;
    finish(app, Ok((provider, calendars.len())))
}

/// What reaches an account's calendars.
enum Credentials {
    OAuth(TokenSet),
    CalDav {
        location: CalDavLocation,
        password: Secret,
    },
}

/// Stores (or refreshes) the account with its sealed secrets and its calendars, queues their
/// first sync and records the connection. Idempotent: connecting again updates, never duplicates.
async fn save_account(
    app: &App,
    user_id: &str,
    provider: Provider,
    discovered: DiscoveredAccount,
    credentials: Credentials,
) -> ApiResult<(ProviderAccount, Vec<Connection>)> {
    let now = Store::now();
    let mut account = ProviderAccount::new(user_id, provider, &discovered.email, now);
    if let Some(existing) = app.store.account(user_id, &account.id).await? {
        account.created_at = existing.created_at;
    }
    let cipher = app.cipher()?;
    let context = |field| SecretContext {
        user_id,
        account_id: &account.id,
        field,
    };
    let (access, refresh, expires_at, caldav) = match credentials {
        Credentials::OAuth(tokens) => (
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at,
            None,
        ),
        Credentials::CalDav { location, password } => (password, None, None, Some(location)),
    };
    let sealed_access = cipher
        .seal(&access, context("access_token"))
        .await
        .map_err(ApiError::internal)?;
    let sealed_refresh = match &refresh {
        Some(token) => Some(
            cipher
                .seal(token, context("refresh_token"))
                .await
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    account.access_token = Some(sealed_access);
    account.refresh_token = sealed_refresh;
    account.token_expires_at = expires_at;
    account.tokens_refreshed_at = Some(now);
    account.caldav = caldav;
    app.store.put_account(&account).await?;

    let mut calendars = Vec::with_capacity(discovered.calendars.len());
    for found in discovered.calendars {
        let color = found.color.as_deref().unwrap_or(DEFAULT_COLOR);
        let mut calendar = Connection::new(user_id, provider, &found.id, &found.name, color, now);
        calendar.account_id = Some(account.id.clone());
        calendar.is_primary = found.primary;
        calendars.push(app.store.upsert_calendar(&calendar).await?);
    }
    for calendar in &calendars {
        app.enqueue_sync(&SyncRequest {
            user_id: user_id.to_owned(),
            connection_id: calendar.id.clone(),
            reason: "connected".into(),
        })
        .await?;
    }
    let audit = AuditEntry::new(user_id, "CALENDAR_CONNECTED", "ACCOUNT", Some(&account.id))
        .with_metadata(
            serde_json::json!({ "provider": provider.slug(), "calendars": calendars.len() }),
        );
    app.store.append_audit(&audit).await?;
    Ok((account, calendars))
}

/// `POST /v1/connections/apple`: CalDAV discovery with the user's app-specific password.
pub async fn connect_caldav(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = &app.authenticate(req).await?;
    let body: AppleConnectRequest = json_body(req)?;
    let username = input::required_text(&body.username, "username", 320)?;
    if body.app_password.is_empty() || body.app_password.len() > 256 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "appPassword must be 1 to 256 characters",
        ));
    }
    let password = Secret::new(body.app_password);
    let server = body
        .server_url
        .unwrap_or_else(|| app.config.caldav_default_server.clone());
    let client = CalDavClient {
        http: app.http(),
        username: &username,
        password: &password,
        policy: app.config.caldav_policy.clone(),
    };
    let (location, calendars) = client.discover(&server).await.map_err(|err| match err {
        ProviderError::Unauthorized => ApiError::bad_request(
            "invalid_credentials",
            "the CalDAV server rejected the user name or app-specific password",
        ),
        ProviderError::Refused(why) => ApiError::bad_request("invalid_server_url", why),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            format!("CalDAV discovery failed: {other}"),
        ),
    })?;
    let discovered = DiscoveredAccount {
        email: username,
        calendars,
    };
    let (account, calendars) = save_account(
        app,
        user_id,
        Provider::Apple,
        discovered,
        Credentials::CalDav { location, password },
    )
    .await?;
    ApiResponse::json(
        StatusCode::CREATED,
        &ConnectedDto {
            account: AccountDto {
                id: account.id,
                provider: account.provider,
                email: account.account_email,
            },
            calendars: calendars.iter().map(CalendarDto::from).collect(),
        },
    )
}

/// The account's last calendar is gone: revoke the grant where the provider allows it (best
/// effort: the grant is useless to us either way), then forget the credentials.
pub(super) async fn disconnect_account(
    app: &App,
    user_id: &str,
    account_id: &str,
) -> ApiResult<()> {
    let Some(account) = app.store.account(user_id, account_id).await? else {
        return Ok(());
    };
    // Channels first: stopping them needs the grant that is about to be revoked.
    for calendar in app.store.connections(user_id).await? {
        if calendar.account_id.as_deref() == Some(account_id) {
            crate::sync::push::retire(app, &calendar).await;
        }
    }
    let mut revoked = false;
    if let (Some(settings), Some(sealed)) = (
        app.config.oauth(account.provider),
        account
            .refresh_token
            .as_ref()
            .or(account.access_token.as_ref()),
    ) {
        let field = if account.refresh_token.is_some() {
            "refresh_token"
        } else {
            "access_token"
        };
        let context = SecretContext {
            user_id,
            account_id,
            field,
        };
        match app.cipher()?.open(sealed, context).await {
            Ok(token) => match oauth::revoke(app.http(), settings, &token).await {
                Ok(()) => revoked = settings.revoke_url.is_some(),
                Err(e) => tracing::warn!(error = %e, "revocation at the provider failed"),
            },
            Err(e) => tracing::warn!(error = %e, "could not open the token to revoke it"),
        }
    }
    let audit = AuditEntry::new(user_id, "ACCOUNT_DISCONNECTED", "ACCOUNT", Some(account_id))
        .with_metadata(
            serde_json::json!({ "provider": account.provider.slug(), "revoked": revoked }),
        );
    app.store
        .erase_credentials(user_id, account_id, &audit)
        .await?;
    Ok(())
}
