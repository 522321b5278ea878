//! Push channels in the Connections table: the channel record `PUSH#<channel id>` / `PUSH`,
//! which a notification names, points to its calendar and holds the hash of the channel's secret;
//! the calendar item holds the channel (`push`), which renewal and stopping read. Both are
//! written and removed together.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::connections::{conn_sk, user_pk};
use super::{from_item, s, to_item, Store, StoreError, StoreResult};
use crate::model::{Provider, PushChannel};

const PUSH: &str = "PUSH";

fn channel_pk(channel_id: &str) -> String {
    format!("PUSH#{channel_id}")
}

/// What a notification is checked against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelRecord {
    pub channel_id: String,
    pub provider: Provider,
    pub user_id: String,
    pub connection_id: String,
    /// SHA-256 of the channel token (Google) or `clientState` (Graph).
    pub secret_hash: String,
    pub expires_at: DateTime<Utc>,
}

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> StoreResult<T> {
    result.map_err(|e| StoreError::Backend(e.to_string()))
}

impl Store {
    /// Records a new channel of a calendar, replacing (and forgetting) the one it had.
    pub async fn put_push_channel(
        &self,
        record: &ChannelRecord,
        channel: &PushChannel,
        replaced: Option<&str>,
    ) -> StoreResult<()> {
        let mut items = vec![TransactWriteItem::builder()
            .put(built(
                Put::builder()
                    .table_name(&self.connections)
                    .set_item(Some(to_item(
                        record,
                        &[("pk", channel_pk(&record.channel_id)), ("sk", PUSH.into())],
                    )?))
                    .build(),
            )?)
            .build()];
        items.push(
            TransactWriteItem::builder()
                .update(built(
                    Update::builder()
                        .table_name(&self.connections)
                        .key("pk", s(user_pk(&record.user_id)))
                        .key("sk", s(conn_sk(&record.connection_id)))
                        .update_expression("SET push = :push")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(
                            ":push",
                            aws_sdk_dynamodb::types::AttributeValue::M(to_item(channel, &[])?),
                        )
                        .build(),
                )?)
                .build(),
        );
        if let Some(old) = replaced.filter(|old| *old != record.channel_id) {
            items.push(self.channel_delete(old)?);
        }
        self.transact(items).await
    }

    /// Stores a renewed channel (same id, later expiry) on its calendar and its record.
    pub async fn set_push_channel(
        &self,
        conn: &crate::model::Connection,
        channel: &PushChannel,
    ) -> StoreResult<()> {
        let calendar = Update::builder()
            .table_name(&self.connections)
            .key("pk", s(user_pk(&conn.user_id)))
            .key("sk", s(conn_sk(&conn.id)))
            .update_expression("SET push = :push")
            .condition_expression("push.id = :id")
            .expression_attribute_values(
                ":push",
                aws_sdk_dynamodb::types::AttributeValue::M(to_item(channel, &[])?),
            )
            .expression_attribute_values(":id", s(&channel.id))
            .build();
        let record = Update::builder()
            .table_name(&self.connections)
            .key("pk", s(channel_pk(&channel.id)))
            .key("sk", s(PUSH))
            .update_expression("SET expiresAt = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":at",
                s(channel
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            )
            .build();
        self.transact(vec![
            TransactWriteItem::builder()
                .update(built(calendar)?)
                .build(),
            TransactWriteItem::builder().update(built(record)?).build(),
        ])
        .await
    }

    fn channel_delete(&self, channel_id: &str) -> StoreResult<TransactWriteItem> {
        Ok(TransactWriteItem::builder()
            .delete(built(
                Delete::builder()
                    .table_name(&self.connections)
                    .key("pk", s(channel_pk(channel_id)))
                    .key("sk", s(PUSH))
                    .build(),
            )?)
            .build())
    }

    pub async fn push_channel(&self, channel_id: &str) -> StoreResult<Option<ChannelRecord>> {
        self.get(&self.connections, channel_pk(channel_id), PUSH.into())
            .await?
            .map(from_item)
            .transpose()
    }

    /// Forgets a calendar's channel (stopped, or removed by its provider): notifications naming
    /// it are refused from now on.
    pub async fn drop_push_channel(
        &self,
        user_id: &str,
        connection_id: &str,
        channel_id: &str,
    ) -> StoreResult<()> {
        let calendar = Update::builder()
            .table_name(&self.connections)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(conn_sk(connection_id)))
            .update_expression("REMOVE push")
            .condition_expression("push.id = :id")
            .expression_attribute_values(":id", s(channel_id))
            .build();
        let result = self
            .transact(vec![
                self.channel_delete(channel_id)?,
                TransactWriteItem::builder()
                    .update(built(calendar)?)
                    .build(),
            ])
            .await;
        match result {
            // The calendar has another channel (or none) already: only the record goes.
            Err(e) if e.failed_condition_at(1) => {
                self.transact(vec![self.channel_delete(channel_id)?]).await
            }
            other => other,
        }
    }

    /// Marks a calendar's channel as to be renewed by its next sync (a no-op if the calendar
    /// has another channel by now).
    pub async fn request_push_renewal(
        &self,
        user_id: &str,
        connection_id: &str,
        channel_id: &str,
    ) -> StoreResult<()> {
        let update = self
            .calendar_update(user_id, connection_id)
            .update_expression("SET push.renew = :true")
            .condition_expression("push.id = :id")
            .expression_attribute_values(":id", s(channel_id))
            .expression_attribute_values(
                ":true",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            );
        self.applied(update).await.map(drop)
    }

    /// Forgets the sync cursor, so the next sync lists in full and reconciles (Graph `missed`).
    pub async fn forget_sync_cursor(&self, user_id: &str, connection_id: &str) -> StoreResult<()> {
        let update = self
            .calendar_update(user_id, connection_id)
            .update_expression("REMOVE syncToken")
            .condition_expression("attribute_exists(pk)");
        self.applied(update).await.map(drop)
    }
}
