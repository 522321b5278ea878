//! The app context every function runs on: configuration, the store, and the clients of other
//! services. It sits below `api`, `sync` and `jobs`, which all take it.
//!
//! Only the store is built at init. The KMS cipher, the SQS client and the provider HTTP client
//! are built on first use: a function pays at init, and carries in its binary, only what it uses
//! (docs/decisions.md 36).

use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;

use crate::config::Config;
use crate::crypto::TokenCipher;
use crate::error::{ApiError, ApiResult};
use crate::store::Store;

#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub config: Config,
    sdk: SdkConfig,
    /// Shared by clones, so one container keeps one data-key cache and one connection pool.
    lazy: Arc<Clients>,
}

#[derive(Default)]
struct Clients {
    cipher: OnceLock<Option<TokenCipher>>,
    sqs: OnceLock<aws_sdk_sqs::Client>,
    http: OnceLock<reqwest::Client>,
    mailer: OnceLock<Option<crate::mail::Mailer>>,
    /// When this container last recorded each user's activity (epoch seconds).
    activity: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// A user's activity is recorded at most this often per container.
const ACTIVITY_EVERY_SECONDS: i64 = 600;

impl App {
    pub fn new(sdk: &SdkConfig, config: Config) -> Self {
        Self {
            store: Store::new(aws_sdk_dynamodb::Client::new(sdk), &config),
            config,
            sdk: sdk.clone(),
            lazy: Arc::default(),
        }
    }

    /// Seals and opens provider secrets; an error where no KMS key is configured.
    pub fn cipher(&self) -> ApiResult<&TokenCipher> {
        self.lazy
            .cipher
            .get_or_init(|| {
                let key = self.config.token_key_id.clone()?;
                Some(TokenCipher::new(aws_sdk_kms::Client::new(&self.sdk), key))
            })
            .as_ref()
            .ok_or_else(|| ApiError::internal("TOKEN_KEY_ID is not configured"))
    }

    /// Records that `user_id` is using the API: one write per user per container every ten
    /// minutes at most, never failing the request.
    pub async fn note_activity(&self, user_id: &str) {
        let now = chrono::Utc::now();
        {
            let Ok(mut seen) = self.lazy.activity.lock() else {
                return;
            };
            match seen.get(user_id) {
                Some(at) if now.timestamp() - at < ACTIVITY_EVERY_SECONDS => return,
                _ => {
                    if seen.len() > 10_000 {
                        seen.clear();
                    }
                    seen.insert(user_id.to_owned(), now.timestamp());
                }
            }
        }
        if let Err(e) = self.store.note_user_active(user_id, now).await {
            tracing::warn!(error = %e, "activity not recorded");
        }
    }

    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.lazy
            .sqs
            .get_or_init(|| aws_sdk_sqs::Client::new(&self.sdk))
    }

    /// Where mail to users goes; an error where none is configured.
    pub fn mailer(&self) -> ApiResult<&crate::mail::Mailer> {
        use crate::mail::Mailer;
        self.lazy
            .mailer
            .get_or_init(
                || match (&self.config.mail_outbox_dir, &self.config.mail_from) {
                    (Some(dir), _) => Some(Mailer::Outbox(dir.into())),
                    (None, Some(from)) => Some(Mailer::Ses {
                        client: aws_sdk_sesv2::Client::new(&self.sdk),
                        from: from.clone(),
                    }),
                    (None, None) => None,
                },
            )
            .as_ref()
            .ok_or_else(|| {
                ApiError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "mail_not_configured",
                    "this server sends no mail (MAIL_FROM is not set)",
                )
            })
    }

    /// The client for provider calls (OAuth, calendar APIs, CalDAV).
    pub fn http(&self) -> &reqwest::Client {
        self.lazy.http.get_or_init(|| {
            crate::providers::http_client_with_timeout(self.config.provider_timeout)
        })
    }
}
