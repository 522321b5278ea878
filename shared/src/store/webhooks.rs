//! Outbound webhooks in the Users table: `USER#<id>` / `WEBHOOK#<id>`, with their sealed
//! signing secrets and their delivery cursor in the user's change log. An enabled webhook is
//! also listed on the change log's head, so writers know whom to tell (`store::changes`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::changes::{ChangeKind, Position};
use super::{from_item, n, s, to_item, Store, StoreError, StoreResult};
use crate::crypto::Sealed;

/// At most this many webhooks per user.
pub const MAX_WEBHOOKS: usize = 10;

fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}

fn webhook_sk(id: &str) -> String {
    format!("WEBHOOK#{id}")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub user_id: String,
    pub url: String,
    /// The change kinds delivered.
    pub kinds: Vec<ChangeKind>,
    pub secret: Sealed,
    /// The secret before the last rotation, still signing until `previous_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    /// Why it was disabled (deliveries kept failing), for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<DateTime<Utc>>,
    /// The next change to deliver.
    pub cursor_seq: u64,
    #[serde(default)]
    pub cursor_offset: usize,
    /// Deliveries given up on (dead-lettered) in a row; reset by a success.
    #[serde(default)]
    pub failed_deliveries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Bumped by every change of the webhook; writes are conditional on it.
    pub version: u64,
}

impl Webhook {
    pub fn cursor(&self) -> Position {
        Position {
            seq: self.cursor_seq,
            offset: self.cursor_offset,
        }
    }
}

impl Store {
    pub async fn webhooks(&self, user_id: &str) -> StoreResult<Vec<Webhook>> {
        let mut hooks: Vec<Webhook> = self
            .partition_items(&self.users, user_pk(user_id), Some("WEBHOOK#"))
            .await?;
        hooks.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(hooks)
    }

    pub async fn webhook(&self, user_id: &str, id: &str) -> StoreResult<Option<Webhook>> {
        self.get(&self.users, user_pk(user_id), webhook_sk(id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Creates a webhook (at most [`MAX_WEBHOOKS`] per user, checked by the caller) and lists it
    /// on the change log's head.
    pub async fn create_webhook(&self, hook: &Webhook) -> StoreResult<()> {
        let item = to_item(
            hook,
            &[("pk", user_pk(&hook.user_id)), ("sk", webhook_sk(&hook.id))],
        )?;
        self.transact(vec![self.put_new(&self.users, item)?])
            .await?;
        self.set_webhook_listed(&hook.user_id, &hook.id, hook.enabled)
            .await
    }

    /// Replaces a webhook if nobody changed it since `expected_version` was read, and keeps the
    /// head's list in step with whether it is enabled.
    pub async fn save_webhook(&self, hook: &Webhook, expected_version: u64) -> StoreResult<()> {
        self.stats.write();
        let item = to_item(
            hook,
            &[("pk", user_pk(&hook.user_id)), ("sk", webhook_sk(&hook.id))],
        )?;
        self.ddb
            .put_item()
            .table_name(&self.users)
            .set_item(Some(item))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(expected_version))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        self.set_webhook_listed(&hook.user_id, &hook.id, hook.enabled)
            .await
    }

    /// Moves a webhook's cursor after a delivery (or a dead-lettered one), if it still is where
    /// the dispatcher read it.
    pub async fn advance_webhook(
        &self,
        hook: &Webhook,
        next: Position,
        outcome: Delivered,
    ) -> StoreResult<()> {
        self.stats.write();
        let mut update = self
            .ddb
            .update_item()
            .table_name(&self.users)
            .key("pk", s(user_pk(&hook.user_id)))
            .key("sk", s(webhook_sk(&hook.id)))
            .condition_expression("cursorSeq = :seq AND cursorOffset = :offset")
            .expression_attribute_values(":seq", n(hook.cursor_seq))
            .expression_attribute_values(":offset", n(hook.cursor_offset))
            .expression_attribute_values(":next_seq", n(next.seq))
            .expression_attribute_values(":next_offset", n(next.offset))
            .expression_attribute_values(":one", n(1));
        update = match outcome {
            Delivered::Ok(at) => update
                .update_expression("SET cursorSeq = :next_seq, cursorOffset = :next_offset, failedDeliveries = :zero, lastDeliveryAt = :at, version = version + :one REMOVE lastError")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":at", s(at.to_rfc3339())),
            Delivered::Nothing => update.update_expression(
                "SET cursorSeq = :next_seq, cursorOffset = :next_offset, version = version + :one",
            ),
            Delivered::DeadLettered(error) => update
                .update_expression("SET cursorSeq = :next_seq, cursorOffset = :next_offset, lastError = :error, version = version + :one ADD failedDeliveries :one")
                .expression_attribute_values(":error", s(error)),
        };
        update.send().await.map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Records a failed attempt that will be retried.
    pub async fn note_webhook_error(&self, hook: &Webhook, error: &str) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .update_item()
            .table_name(&self.users)
            .key("pk", s(user_pk(&hook.user_id)))
            .key("sk", s(webhook_sk(&hook.id)))
            .update_expression("SET lastError = :error")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":error", s(error))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    pub async fn delete_webhook(&self, user_id: &str, id: &str) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .delete_item()
            .table_name(&self.users)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(webhook_sk(id)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        self.set_webhook_listed(user_id, id, false).await
    }
}

/// What became of the changes a dispatcher read.
#[derive(Debug)]
pub enum Delivered {
    /// Delivered (2xx) at this time.
    Ok(DateTime<Utc>),
    /// None of them was of a kind the webhook takes.
    Nothing,
    /// Given up after the last attempt (sent to the dead-letter queue), with the last error.
    DeadLettered(String),
}
