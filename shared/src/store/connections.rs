//! Connections table: `USER#<userId>` / `CONN#<connectionId>`. One Query lists a user's calendars;
//! the sparse `bySyncDue` and `byTokenExpiry` indexes serve the scheduled jobs.

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::{from_item, n, s, to_item, Item, Store, StoreError, StoreResult};
use crate::model::{AuditEntry, Connection};
use crate::time::key_format;

/// Shards of the scheduling indexes, so one hot partition never holds every due connection.
pub const SYNC_SHARDS: u32 = 8;

pub(crate) fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}

pub(crate) fn conn_sk(connection_id: &str) -> String {
    format!("CONN#{connection_id}")
}

pub(crate) fn shard_of(connection_id: &str) -> String {
    let sum = connection_id.bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    (sum % SYNC_SHARDS).to_string()
}

/// A sharded, time-sorted index of the Connections table (sync schedule, token expiry).
pub(crate) struct DueIndex {
    pub index: &'static str,
    pub shard_attribute: &'static str,
    pub time_attribute: &'static str,
    /// The sort-key prefix of the items it holds (`CONN#`, `ACCT#`).
    pub item_prefix: &'static str,
}

/// A lease on one item of the user's partition (a sync, a token refresh): taken with a
/// conditional update, so of two takers only one holds it; it lapses at `until`.
/// A lease just taken: its owner id, the item as it was before, and whether the last holder's
/// lease was still on it (it died or timed out without finishing or failing).
pub(crate) struct TakenLease {
    pub owner: String,
    pub item: Item,
    pub abandoned: bool,
}

pub(crate) struct LeaseSpec {
    pub sk: String,
    pub until_attribute: &'static str,
    pub owner_attribute: &'static str,
    /// What else must hold (uses `:true`).
    pub condition: &'static str,
    /// An attribute taking the lease removes (a request the lease now serves).
    pub clears: Option<&'static str>,
}

/// What a PATCH of a calendar may change.
#[derive(Debug, Default)]
pub struct CalendarChanges {
    /// `Some(None)` clears the override and shows the provider's name again.
    pub name_override: Option<Option<String>>,
    pub color: Option<String>,
}

impl Store {
    fn connection_item(&self, conn: &Connection) -> StoreResult<Item> {
        let mut keys = vec![("pk", user_pk(&conn.user_id)), ("sk", conn_sk(&conn.id))];
        // Sparse: only calendars with an account to sync them through are scheduled.
        if conn.is_live() && conn.account_id.is_some() {
            keys.push(("syncShard", shard_of(&conn.id)));

            keys.push((
                "nextSyncAt",
                key_format(conn.last_synced_at.unwrap_or(conn.created_at)),
            ));
        }
        to_item(conn, &keys)
    }

    /// Writes a connection whole (used when a calendar is connected or re-connected).
    pub async fn put_connection(&self, conn: &Connection) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .put_item()
            .table_name(&self.connections)
            .set_item(Some(self.connection_item(conn)?))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Every connection of a user, deleted ones included (callers decide what to show).
    pub async fn connections(&self, user_id: &str) -> StoreResult<Vec<Connection>> {
        self.partition_items(&self.connections, user_pk(user_id), Some("CONN#"))
            .await
    }

    pub async fn connection(&self, user_id: &str, id: &str) -> StoreResult<Option<Connection>> {
        self.get(&self.connections, user_pk(user_id), conn_sk(id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Renames or recolours a calendar that is not deleted. `ConditionFailed` when it is gone.
    pub async fn update_calendar(
        &self,
        user_id: &str,
        id: &str,
        changes: &CalendarChanges,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.connections)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(conn_sk(id)))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deletedAt)");
        match &changes.name_override {
            Some(Some(name)) => {
                set.push("nameOverride = :name");
                update = update.expression_attribute_values(":name", s(name.clone()));
            }
            Some(None) => remove.push("nameOverride"),
            None => {}
        }
        if let Some(color) = &changes.color {
            set.push("calendarColor = :color");
            update = update.expression_attribute_values(":color", s(color.clone()));
        }
        let mut expression = String::new();
        if !set.is_empty() {
            expression = format!("SET {}", set.join(", "));
        }
        if !remove.is_empty() {
            expression = format!("{expression} REMOVE {}", remove.join(", "));
        }
        if expression.is_empty() {
            return Ok(());
        }
        let update = update
            .update_expression(expression.trim())
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.transact_on_connection(update, audit).await
    }

    /// Soft-deletes a calendar: it leaves the scheduling indexes and every query at once.
    pub async fn soft_delete_connection(
        &self,
        user_id: &str,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let update = Update::builder()
            .table_name(&self.connections)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(conn_sk(id)))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deletedAt)")
            .update_expression(
                "SET deletedAt = :now, isConnected = :false \
                 REMOVE syncShard, nextSyncAt, syncToken",
            )
            .expression_attribute_values(":now", s(key_format(now)))
            .expression_attribute_values(
                ":false",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.transact_on_connection(update, audit).await
    }

    async fn transact_on_connection(&self, update: Update, audit: &AuditEntry) -> StoreResult<()> {
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(audit)?,
        ];
        match self.transact(items).await {
            Err(e) if e.failed_condition_at(0) => Err(StoreError::ConditionFailed),
            other => other,
        }
    }

    /// A transaction item that holds only while the calendar is live (connected, not deleted),
    /// optionally adjusting its event count.
    pub(crate) fn live_connection_check(
        &self,
        user_id: &str,
        id: &str,
        count_delta: i64,
    ) -> StoreResult<TransactWriteItem> {
        const LIVE: &str =
            "attribute_exists(pk) AND attribute_not_exists(deletedAt) AND isConnected = :true";
        let truthy = aws_sdk_dynamodb::types::AttributeValue::Bool(true);
        if count_delta == 0 {
            let check = ConditionCheck::builder()
                .table_name(&self.connections)
                .key("pk", s(user_pk(user_id)))
                .key("sk", s(conn_sk(id)))
                .condition_expression(LIVE)
                .expression_attribute_values(":true", truthy)
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            return Ok(TransactWriteItem::builder().condition_check(check).build());
        }
        let update = Update::builder()
            .table_name(&self.connections)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(conn_sk(id)))
            .condition_expression(LIVE)
            .update_expression("ADD eventCount :delta")
            .expression_attribute_values(":true", truthy)
            .expression_attribute_values(":delta", n(count_delta))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// An update of one calendar item, to which the caller adds its expressions.
    pub(crate) fn calendar_update(
        &self,
        user_id: &str,
        connection_id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.ddb
            .update_item()
            .table_name(&self.connections)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(conn_sk(connection_id)))
    }

    /// Sends a conditional update: `Ok(false)` when its condition did not hold.
    pub(crate) async fn applied(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> StoreResult<bool> {
        self.stats.write();
        match update.send().await.map_err(StoreError::from_sdk) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adjusts a calendar's event count after a bulk import.
    pub async fn add_event_count(&self, user_id: &str, id: &str, delta: i64) -> StoreResult<()> {
        let update = self
            .calendar_update(user_id, id)
            .condition_expression("attribute_exists(pk)")
            .update_expression("ADD eventCount :delta")
            .expression_attribute_values(":delta", n(delta));
        if self.applied(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    /// Items of one shard of `due` whose time is at or before `before` (user id, item id).
    pub(crate) async fn due_in_shard(
        &self,
        due: &DueIndex,
        shard: u32,
        before: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, String)>> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .ddb
                .query()
                .table_name(&self.connections)
                .index_name(due.index)
                .key_condition_expression(format!(
                    "{} = :shard AND {} <= :before",
                    due.shard_attribute, due.time_attribute
                ))
                .expression_attribute_values(":shard", s(shard.to_string()))
                .expression_attribute_values(":before", s(key_format(before)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            self.stats
                .read(u64::try_from(page.scanned_count).unwrap_or(0));
            for item in page.items.unwrap_or_default() {
                let key = |name: &str, prefix: &str| {
                    item.get(name)
                        .and_then(|v| v.as_s().ok())
                        .and_then(|v| v.strip_prefix(prefix))
                        .map(str::to_owned)
                };
                if let (Some(user), Some(id)) = (key("pk", "USER#"), key("sk", due.item_prefix)) {
                    found.push((user, id));
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }

    /// Takes the lease unless another holder's has not lapsed; returns the owner id and the item.
    pub(crate) async fn take_lease(
        &self,
        user_id: &str,
        spec: &LeaseSpec,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<TakenLease>> {
        let owner = crate::ids::new_id();
        self.stats.write();
        let result = self
            .ddb
            .update_item()
            .table_name(&self.connections)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(spec.sk.clone()))
            .condition_expression(format!(
                "attribute_exists(pk) AND {} AND (attribute_not_exists({until}) OR {until} < :now)",
                spec.condition,
                until = spec.until_attribute
            ))
            .update_expression(format!(
                "SET {} = :until, {} = :owner{}",
                spec.until_attribute,
                spec.owner_attribute,
                spec.clears
                    .map(|a| format!(" REMOVE {a}"))
                    .unwrap_or_default()
            ))
            .expression_attribute_values(
                ":true",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .expression_attribute_values(":now", s(key_format(now)))
            .expression_attribute_values(":until", s(key_format(until)))
            .expression_attribute_values(":owner", s(owner.clone()))
            // As it was: a lease still on it says the last holder never let go.
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match result.map_err(StoreError::from_sdk) {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                let abandoned = item.contains_key(spec.until_attribute);
                Ok(Some(TakenLease {
                    owner,
                    item,
                    abandoned,
                }))
            }
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
