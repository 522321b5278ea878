//! Refreshes access tokens that expire within the hour, found through the sparse
//! `byTokenExpiry` index. A lease keeps two refreshers from rotating one token; the rotated
//! refresh token is always stored; `invalid_grant`, or the third consecutive failure, marks the
//! account and its calendars "reauthorization required".

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::app::App;
use crate::crypto::SecretContext;
use crate::error::ApiError;
use crate::model::{AuditEntry, ConnectionStatus, ProviderAccount};
use crate::providers::{oauth, ProviderError};
use crate::store::{Lease, SYNC_SHARDS};

/// Consecutive failures after which a connection needs the user again.
pub const MAX_REFRESH_FAILURES: u32 = 3;
/// How far ahead of expiry tokens are refreshed (the job runs hourly).
pub const REFRESH_WINDOW: Duration = Duration::hours(1);
/// Longer than one refresh can take; a crashed refresher's lease lapses after it.
const LEASE: Duration = Duration::minutes(2);

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReport {
    pub due: usize,
    pub refreshed: usize,
    /// Held by another refresher right now.
    pub skipped: usize,
    pub failed: usize,
    pub reauthorization_required: usize,
}

/// What happened to one account.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Refreshed,
    Skipped,
    Failed,
    ReauthorizationRequired,
}

pub async fn run(app: &App, now: DateTime<Utc>) -> Result<RefreshReport, ApiError> {
    let mut report = RefreshReport::default();
    for shard in 0..SYNC_SHARDS {
        for (user_id, account_id) in app
            .store
            .accounts_expiring(shard, now + REFRESH_WINDOW)
            .await?
        {
            report.due += 1;
            match refresh_account(app, &user_id, &account_id, now).await? {
                Outcome::Refreshed => report.refreshed += 1,
                Outcome::Skipped => report.skipped += 1,
                Outcome::Failed => report.failed += 1,
                Outcome::ReauthorizationRequired => report.reauthorization_required += 1,
            }
        }
    }
    tracing::info!(?report, "token refresh done");
    Ok(report)
}

/// Refreshes one account's tokens under a lease.
pub async fn refresh_account(
    app: &App,
    user_id: &str,
    account_id: &str,
    now: DateTime<Utc>,
) -> Result<Outcome, ApiError> {
    let Some(lease) = app
        .store
        .lease_account(user_id, account_id, now, now + LEASE)
        .await?
    else {
        return Ok(Outcome::Skipped);
    };
    let account = &lease.account;
    let cipher = app.cipher()?;
    let context = |field| SecretContext {
        user_id,
        account_id,
        field,
    };
    let attempt = async {
        let settings = app.config.oauth(account.provider).ok_or_else(|| {
            ProviderError::Protocol(format!("{} is not configured", account.provider.slug()))
        })?;
        let sealed = account
            .refresh_token
            .as_ref()
            .ok_or(ProviderError::InvalidGrant)?;
        let refresh_token = cipher
            .open(sealed, context("refresh_token"))
            .await
            .map_err(|e| ProviderError::Protocol(e.to_string()))?;
        oauth::refresh(app.http(), settings, &refresh_token).await
    }
    .await;
    let mut updated = account.clone();
    updated.updated_at = now;
    match attempt {
        Ok(tokens) => {
            updated.access_token = Some(
                cipher
                    .seal(&tokens.access_token, context("access_token"))
                    .await
                    .map_err(ApiError::internal)?,
            );
            // Providers that rotate (Microsoft) invalidate the old token: the new one must be kept.
            if let Some(rotated) = &tokens.refresh_token {
                updated.refresh_token = Some(
                    cipher
                        .seal(rotated, context("refresh_token"))
                        .await
                        .map_err(ApiError::internal)?,
                );
            }
            updated.token_expires_at = tokens.expires_at;
            updated.tokens_refreshed_at = Some(Utc::now());
            updated.failed_refresh_count = 0;
            updated.last_error = None;
            updated.status = ConnectionStatus::Active;
            release(app, &lease, &updated, None).await?;
            Ok(Outcome::Refreshed)
        }
        Err(err) => {
            updated.failed_refresh_count += 1;
            updated.last_error = Some(err.to_string());
            let reauth = matches!(err, ProviderError::InvalidGrant)
                || updated.failed_refresh_count >= MAX_REFRESH_FAILURES;
            tracing::warn!(error = %err, failures = updated.failed_refresh_count, reauth, "token refresh failed");
            let audit =
                AuditEntry::new(user_id, "TOKEN_REFRESH_FAILED", "ACCOUNT", Some(account_id))
                    .failed(err.to_string())
                    .with_metadata(serde_json::json!({
                        "provider": account.provider.slug(),
                        "failures": updated.failed_refresh_count,
                        "reauthorizationRequired": reauth,
                    }));
            if reauth {
                updated.is_connected = false;
                updated.status = ConnectionStatus::ReauthorizationRequired;
            }
            release(app, &lease, &updated, Some(&audit)).await?;
            Ok(if reauth {
                Outcome::ReauthorizationRequired
            } else {
                Outcome::Failed
            })
        }
    }
}

async fn release(
    app: &App,
    lease: &Lease,
    account: &ProviderAccount,
    audit: Option<&AuditEntry>,
) -> Result<(), ApiError> {
    let calendars: Vec<_> = if account.is_connected {
        Vec::new()
    } else {
        app.store
            .connections(&account.user_id)
            .await?
            .into_iter()
            .filter(|c| c.account_id.as_deref() == Some(account.id.as_str()))
            .collect()
    };
    match app
        .store
        .release_account(lease, account, &calendars, audit)
        .await
    {
        Err(crate::store::StoreError::ConditionFailed) => {
            // The lease lapsed and another refresher took over; its result stands.
            tracing::warn!(account = %account.id, "refresh lease lost; result discarded");
            Ok(())
        }
        other => Ok(other?),
    }
}
