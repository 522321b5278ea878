//! Runtime configuration, read once per container from the environment template.yaml sets.

use std::env;

use crate::model::Provider;
use crate::providers::caldav::UrlPolicy;
use crate::providers::oauth::OAuthSettings;

/// Physical names of the resources a function uses, and its tunables.
#[derive(Clone, Debug)]
pub struct Config {
    pub users_table: String,
    pub connections_table: String,
    pub events_table: String,
    pub audit_table: String,
    /// The change log (`GET /v1/changes`, outbound webhooks).
    pub changes_table: String,
    pub session_ttl_days: i64,
    /// KMS key that encrypts provider secrets.
    pub token_key_id: Option<String>,
    pub sync_queue_url: Option<String>,
    /// Public base URL of the API; OAuth redirect URIs are `<base>/oauth/<provider>/callback`,
    /// start links `<base>/oauth/<provider>/start`.
    pub oauth_callback_base: Option<String>,
    /// Where the OAuth callback sends the browser afterwards, with only a status or error code.
    pub app_redirect_url: Option<String>,
    pub google: Option<OAuthSettings>,
    pub microsoft: Option<OAuthSettings>,
    pub caldav_default_server: String,
    pub caldav_policy: UrlPolicy,
    /// Which webhook URLs we deliver to: https and public, plus loopback `ip:port`s in
    /// `WEBHOOK_ALLOW_HTTP_LOOPBACK` (the dev stack, tests).
    pub webhook_policy: UrlPolicy,
    /// The webhook delivery queue (SQS FIFO, one group per webhook) and its dead letters.
    pub webhook_queue_url: Option<String>,
    pub webhook_dead_letter_url: Option<String>,
    /// Delivery attempts before a delivery is dead-lettered, and the first retry's delay
    /// (doubling after each attempt).
    pub webhook_max_attempts: u32,
    pub webhook_retry_base: std::time::Duration,
    /// How long `DELETE /v1/me` erases before leaving the rest to the cleanup job
    /// (`ERASURE_IN_REQUEST_MS`, default 5 s).
    pub erasure_in_request: std::time::Duration,
    /// Per-request timeout of provider calls.
    pub provider_timeout: std::time::Duration,
    /// Mail: a local outbox directory (dev stack, tests), else SES from this address.
    pub mail_outbox_dir: Option<String>,
    pub mail_from: Option<String>,
    /// The app's page that takes a password-reset token (`?token=…` is appended).
    pub password_reset_url: Option<String>,
    /// Public base URL providers send push notifications to (`/push/google`,
    /// `/push/microsoft`); unset: no channels, calendars are polled.
    pub push_notification_base: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Builds the configuration from any name → value lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError(format!("{name} is not set")))
        };
        let session_ttl_days = match lookup("SESSION_TTL_DAYS") {
            None => 30,
            Some(v) => v
                .parse()
                .ok()
                .filter(|d| (1..=365).contains(d))
                .ok_or_else(|| ConfigError(format!("SESSION_TTL_DAYS={v} is not 1..=365")))?,
        };
        let optional = |name: &str| lookup(name).filter(|v| !v.is_empty());
        Ok(Self {
            users_table: required("USERS_TABLE")?,
            connections_table: required("CONNECTIONS_TABLE")?,
            events_table: required("EVENTS_TABLE")?,
            audit_table: required("AUDIT_TABLE")?,
            changes_table: required("CHANGES_TABLE")?,
            session_ttl_days,
            token_key_id: optional("TOKEN_KEY_ID"),
            sync_queue_url: optional("SYNC_QUEUE_URL"),
            push_notification_base: optional("PUSH_NOTIFICATION_BASE")
                .map(|b| b.trim_end_matches('/').to_owned()),
            oauth_callback_base: optional("OAUTH_CALLBACK_BASE")
                .map(|b| b.trim_end_matches('/').to_owned()),
            app_redirect_url: optional("APP_REDIRECT_URL"),
            google: OAuthSettings::from_lookup(Provider::Google, &lookup),
            microsoft: OAuthSettings::from_lookup(Provider::Microsoft, &lookup),
            caldav_default_server: optional("CALDAV_DEFAULT_SERVER")
                .unwrap_or_else(|| "https://caldav.icloud.com".into()),
            provider_timeout: std::time::Duration::from_millis(
                optional("PROVIDER_TIMEOUT_MS")
                    .and_then(|v| v.parse().ok())
                    .filter(|ms| (100..=120_000).contains(ms))
                    .unwrap_or(20_000),
            ),
            mail_outbox_dir: optional("MAIL_OUTBOX_DIR"),
            mail_from: optional("MAIL_FROM"),
            password_reset_url: optional("PASSWORD_RESET_URL"),
            caldav_policy: UrlPolicy::allowing_http_loopback(
                optional("CALDAV_ALLOW_HTTP_LOOPBACK").as_deref(),
            )
            .map_err(|e| ConfigError(format!("CALDAV_ALLOW_HTTP_LOOPBACK: {e}")))?,
            webhook_policy: UrlPolicy::allowing_http_loopback(
                optional("WEBHOOK_ALLOW_HTTP_LOOPBACK").as_deref(),
            )
            .map_err(|e| ConfigError(format!("WEBHOOK_ALLOW_HTTP_LOOPBACK: {e}")))?,
            webhook_queue_url: optional("WEBHOOK_QUEUE_URL"),
            webhook_dead_letter_url: optional("WEBHOOK_DEAD_LETTER_URL"),
            webhook_max_attempts: optional("WEBHOOK_MAX_ATTEMPTS")
                .and_then(|v| v.parse().ok())
                .filter(|n| (1..=20).contains(n))
                .unwrap_or(8),
            erasure_in_request: std::time::Duration::from_millis(
                optional("ERASURE_IN_REQUEST_MS")
                    .and_then(|v| v.parse().ok())
                    .filter(|ms| (1..=8_000).contains(ms))
                    .unwrap_or(5_000),
            ),
            webhook_retry_base: std::time::Duration::from_secs(
                optional("WEBHOOK_RETRY_BASE_SECONDS")
                    .and_then(|v| v.parse().ok())
                    .filter(|s| (1..=3600).contains(s))
                    .unwrap_or(60),
            ),
        })
    }

    pub fn oauth(&self, provider: Provider) -> Option<&OAuthSettings> {
        match provider {
            Provider::Google => self.google.as_ref(),
            Provider::Microsoft => self.microsoft.as_ref(),
            Provider::Apple => None,
        }
    }

    /// Our own start route for `provider`'s consent: it binds the flow to the browser, then
    /// redirects to the provider.
    pub fn start_uri(&self, provider: Provider) -> Option<String> {
        let base = self.oauth_callback_base.as_ref()?;
        Some(format!("{base}/oauth/{}/start", provider.slug()))
    }

    /// The fixed redirect URI registered with `provider`.
    pub fn redirect_uri(&self, provider: Provider) -> Option<String> {
        let base = self.oauth_callback_base.as_ref()?;
        Some(format!("{base}/oauth/{}/callback", provider.slug()))
    }
}
