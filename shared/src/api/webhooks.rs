//! `/v1/webhooks`: an app registers a URL and the change kinds it wants; calsync then POSTs
//! the user's changes there, signed (`api::delivery`). The signing secret is shown once, at
//! creation and at rotation, and stored sealed like provider tokens.

use chrono::{Duration, Utc};
use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::input::{json_body, nullable};
use super::instant::Instant;
use super::{ApiRequest, ApiResponse};
use crate::app::App;
use crate::crypto::{Secret, SecretContext};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::model::AuditEntry;
use crate::notify::DeliveryReason;
use crate::store::{
    ChangeKind, Position, StoreError, Webhook, CHANGE_RETENTION_DAYS, MAX_WEBHOOKS,
};

/// How long the secret before a rotation keeps signing, by default and at most.
const ROTATION_OVERLAP_HOURS: i64 = 24;
const MAX_ROTATION_OVERLAP_HOURS: i64 = 7 * 24;
const MAX_URL: usize = 2048;

/// Event type names as deliveries and registrations spell them.
pub(crate) fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Created => "event.created",
        ChangeKind::Updated => "event.updated",
        ChangeKind::Deleted => "event.deleted",
    }
}

const ALL_KINDS: [ChangeKind; 3] = [
    ChangeKind::Created,
    ChangeKind::Updated,
    ChangeKind::Deleted,
];

fn parse_kinds(names: &[String]) -> ApiResult<Vec<ChangeKind>> {
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_events",
            "events must name at least one of event.created, event.updated, event.deleted",
        ));
    }
    let mut kinds = Vec::new();
    for name in names {
        let kind = ALL_KINDS
            .into_iter()
            .find(|k| kind_name(*k) == name)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_events",
                    format!("unknown event type {name:?}; use event.created, event.updated or event.deleted"),
                )
            })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

fn checked_url(app: &App, raw: &str) -> ApiResult<String> {
    if raw.len() > MAX_URL {
        return Err(ApiError::bad_request(
            "invalid_url",
            format!("url is longer than {MAX_URL} characters"),
        ));
    }
    app.config
        .webhook_policy
        .check_field(raw, "url")
        .map(|u| u.to_string())
        .map_err(|e| ApiError::bad_request("invalid_url", e.to_string()))
}

/// What a webhook's sealed secrets are bound to: its user, itself, and which secret.
pub(crate) fn secret_context<'a>(
    user_id: &'a str,
    id: &'a str,
    field: &'a str,
) -> SecretContext<'a> {
    SecretContext {
        user_id,
        account_id: id,
        field,
    }
}

pub(crate) const SECRET: &str = "webhook_secret";
pub(crate) const PREVIOUS_SECRET: &str = "webhook_previous_secret";

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where deliveries are POSTed: https, a public host.
    pub url: String,
    /// `event.created`, `event.updated`, `event.deleted`; all three when absent.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// `true` re-enables a webhook that was disabled (deliveries resume where they stopped).
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// Hours the current secret keeps signing beside the new one (0-168, default 24).
    #[serde(default, deserialize_with = "nullable")]
    pub overlap_hours: Option<Option<i64>>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDto {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why deliveries stopped, when they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivery_at: Option<Instant>,
    /// The last failed attempt's error (cleared by a success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: Instant,
}

impl From<&Webhook> for WebhookDto {
    fn from(hook: &Webhook) -> Self {
        Self {
            id: hook.id.clone(),
            url: hook.url.clone(),
            events: hook
                .kinds
                .iter()
                .map(|k| kind_name(*k).to_owned())
                .collect(),
            enabled: hook.enabled,
            disabled_reason: hook.disabled_reason.clone(),
            last_delivery_at: hook.last_delivery_at.map(Into::into),
            last_error: hook.last_error.clone(),
            created_at: hook.created_at.into(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCreatedDto {
    #[serde(flatten)]
    pub webhook: WebhookDto,
    /// The signing secret (`whsec_…`): shown this once.
    pub secret: String,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookListDto {
    pub webhooks: Vec<WebhookDto>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecretDto {
    /// The new signing secret: shown this once.
    pub secret: String,
    /// Until when deliveries also carry a signature by the previous secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<Instant>,
}

fn new_secret() -> Secret {
    Secret::new(format!("whsec_{}", ids::new_secret_token()))
}

/// `POST /v1/webhooks`.
pub async fn create(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let body: CreateWebhookRequest = json_body(req)?;
    let url = checked_url(app, &body.url)?;
    let kinds = match &body.events {
        Some(names) => parse_kinds(names)?,
        None => ALL_KINDS.to_vec(),
    };
    if app.store.webhooks(&user_id).await?.len() >= MAX_WEBHOOKS {
        return Err(ApiError::conflict(
            "too_many_webhooks",
            format!("at most {MAX_WEBHOOKS} webhooks per account; delete one first"),
        ));
    }
    let secret = new_secret();
    let head = app.store.change_head(&user_id).await?;
    let id = ids::new_id();
    let sealed = app
        .cipher()?
        .seal(&secret, secret_context(&user_id, &id, SECRET))
        .await
        .map_err(ApiError::internal)?;
    let hook = Webhook {
        id,
        user_id: user_id.clone(),
        url,
        kinds,
        secret: sealed,
        previous_secret: None,
        previous_until: None,
        enabled: true,
        disabled_reason: None,
        disabled_at: None,
        cursor_seq: Position::after_commit(head).seq,
        cursor_offset: 0,
        failed_deliveries: 0,
        last_delivery_at: None,
        last_error: None,
        created_at: crate::store::Store::now(),
        version: 1,
    };
    app.store.create_webhook(&hook).await?;
    audit(app, &hook, "WEBHOOK_CREATED").await;
    ApiResponse::json(
        StatusCode::CREATED,
        &WebhookCreatedDto {
            webhook: WebhookDto::from(&hook),
            secret: secret.expose().to_owned(),
        },
    )
}

/// `GET /v1/webhooks`.
pub async fn list(app: &App, req: &ApiRequest) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let webhooks = app.store.webhooks(&user_id).await?;
    ApiResponse::ok(&WebhookListDto {
        webhooks: webhooks.iter().map(WebhookDto::from).collect(),
    })
}

async fn own(app: &App, user_id: &str, id: &str) -> ApiResult<Webhook> {
    if !ids::is_id(id) {
        return Err(ApiError::not_found("webhook"));
    }
    app.store
        .webhook(user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

async fn save(app: &App, hook: &mut Webhook, action: &str) -> ApiResult<()> {
    let expected = hook.version;
    hook.version += 1;
    match app.store.save_webhook(hook, expected).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => {
            return Err(ApiError::conflict(
                "concurrent_modification",
                "the webhook changed meanwhile; read it again and retry",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    audit(app, hook, action).await;
    Ok(())
}

/// `PATCH /v1/webhooks/{id}`: its URL, its event types, or `enabled: true` after it was
/// disabled.
pub async fn update(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let body: UpdateWebhookRequest = json_body(req)?;
    let mut hook = own(app, &user_id, id).await?;
    if let Some(url) = &body.url {
        hook.url = checked_url(app, url)?;
    }
    if let Some(names) = &body.events {
        hook.kinds = parse_kinds(names)?;
    }
    match body.enabled {
        Some(true) if !hook.enabled => {
            hook.enabled = true;
            hook.disabled_reason = None;
            hook.failed_deliveries = 0;
            // Changes are kept 30 days: a webhook off for longer resumes from the present, and
            // says so, rather than skip silently over what expired.
            let off_since = hook.disabled_at.take().unwrap_or(hook.created_at);
            if Utc::now() - off_since > Duration::days(CHANGE_RETENTION_DAYS - 1) {
                let head = app.store.change_head(&user_id).await?;
                hook.cursor_seq = Position::after_commit(head).seq;
                hook.cursor_offset = 0;
                hook.last_error = Some(format!(
                    "off for more than {CHANGE_RETENTION_DAYS} days, longer than changes are kept: \
                     deliveries resumed from the present; list the events again"
                ));
            }
        }
        Some(false) if hook.enabled => {
            hook.enabled = false;
            hook.disabled_reason = Some("disabled by its owner".into());
            hook.disabled_at = Some(Utc::now());
        }
        _ => {}
    }
    save(app, &mut hook, "WEBHOOK_UPDATED").await?;
    if hook.enabled {
        // What piled up while it was disabled goes out now.
        app.announce_to(&hook.user_id, &hook.id, DeliveryReason::Resume)
            .await;
    }
    ApiResponse::ok(&WebhookDto::from(&hook))
}

/// `DELETE /v1/webhooks/{id}`.
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let hook = own(app, &user_id, id).await?;
    match app.store.delete_webhook(&user_id, id).await {
        Ok(()) | Err(StoreError::ConditionFailed) => {}
        Err(e) => return Err(e.into()),
    }
    audit(app, &hook, "WEBHOOK_DELETED").await;
    Ok(ApiResponse::no_content())
}

/// `POST /v1/webhooks/{id}/rotate-secret`: a new secret signs from now on; the current one
/// also signs for `overlapHours`, so receivers can switch without losing a delivery.
pub async fn rotate_secret(app: &App, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let user_id = app.authenticate(req).await?;
    let body: RotateSecretRequest = if req.body.is_empty() {
        RotateSecretRequest {
            overlap_hours: None,
        }
    } else {
        json_body(req)?
    };
    let overlap = body
        .overlap_hours
        .flatten()
        .unwrap_or(ROTATION_OVERLAP_HOURS);
    if !(0..=MAX_ROTATION_OVERLAP_HOURS).contains(&overlap) {
        return Err(ApiError::bad_request(
            "invalid_overlap",
            format!("overlapHours must be 0 to {MAX_ROTATION_OVERLAP_HOURS}"),
        ));
    }
    let mut hook = own(app, &user_id, id).await?;
    let cipher = app.cipher()?;
    let current = cipher
        .open(
            &hook.secret,
            secret_context(&hook.user_id, &hook.id, SECRET),
        )
        .await
        .map_err(ApiError::internal)?;
    let secret = new_secret();
    let (previous, until) = if overlap > 0 {
        let sealed = cipher
            .seal(
                &current,
                secret_context(&hook.user_id, &hook.id, PREVIOUS_SECRET),
            )
            .await
            .map_err(ApiError::internal)?;
        (Some(sealed), Some(Utc::now() + Duration::hours(overlap)))
    } else {
        (None, None)
    };
    hook.secret = cipher
        .seal(&secret, secret_context(&hook.user_id, &hook.id, SECRET))
        .await
        .map_err(ApiError::internal)?;
    hook.previous_secret = previous;
    hook.previous_until = until;
    save(app, &mut hook, "WEBHOOK_SECRET_ROTATED").await?;
    ApiResponse::ok(&RotatedSecretDto {
        secret: secret.expose().to_owned(),
        previous_valid_until: until.map(Into::into),
    })
}

pub(crate) async fn audit(app: &App, hook: &Webhook, action: &str) {
    let entry = AuditEntry::new(&hook.user_id, action, "WEBHOOK", Some(&hook.id))
        .with_metadata(serde_json::json!({ "url": hook.url, "enabled": hook.enabled, "reason": hook.disabled_reason }));
    if let Err(e) = app.store.append_audit(&entry).await {
        tracing::warn!(error = %e, action, "audit entry not written");
    }
}
