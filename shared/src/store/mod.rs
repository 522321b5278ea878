//! DynamoDB persistence. Each module owns one table's access patterns (docs/data-model.md); no
//! module ever scans. Multi-item changes are transactions, so nothing is ever half-written.

mod accounts;
mod audit;
mod changes;
mod connections;
mod events;
mod expiry;
mod feeds;
mod footprint;
mod oauth_states;
mod push;
mod reset_tokens;
mod sync_state;
mod throttle;
mod users;
mod webhooks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, WriteRequest};
use aws_sdk_dynamodb::Client;
use serde::{de::DeserializeOwned, Serialize};

pub use accounts::Lease;
pub use audit::AuditPage;
pub use changes::{
    ChangeEntry, ChangeKind, Commit, LogRead, Position, Reservation, CHANGE_RETENTION_DAYS,
    HOLE_GRACE,
};
pub use connections::{CalendarChanges, SYNC_SHARDS};
pub use events::{
    time_sort_key, EventFilter, EventPage, Expect, RangeContents, RangeQuery, SeriesOverrides,
};
pub use feeds::{Feed, FeedEntry};
pub use footprint::Erased;
pub use oauth_states::{Rejected, StateRejection};
pub use push::ChannelRecord;

pub use sync_state::{StoredKey, SyncLease};
pub use throttle::{Admission, Limit};
pub use users::{KnownDevice, Registration};
pub use webhooks::{Delivered, Webhook, MAX_WEBHOOKS};

use crate::config::Config;

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write's condition did not hold.
    #[error("condition failed")]
    ConditionFailed,
    /// A transaction was cancelled; one reason code (or none) per item, in order.
    #[error("transaction cancelled: {0:?}")]
    TransactionCancelled(Vec<Option<String>>),
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("dynamodb: {0}")]
    Backend(String),
    #[error("corrupt item: {0}")]
    Corrupt(String),
}

impl StoreError {
    fn from_sdk<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match err.code() {
            Some("ConditionalCheckFailedException") => Self::ConditionFailed,
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded",
            ) => Self::Throttled(err.message().unwrap_or_default().to_owned()),
            _ => Self::Backend(aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string()),
        }
    }

    fn from_transaction<R: std::fmt::Debug>(err: SdkError<TransactWriteItemsError, R>) -> Self {
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        {
            let reasons = cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                .collect();
            return Self::TransactionCancelled(reasons);
        }
        Self::from_sdk(err)
    }

    /// True when the transaction failed because item `index`'s condition did not hold.
    pub fn failed_condition_at(&self, index: usize) -> bool {
        matches!(self, Self::TransactionCancelled(reasons)
            if reasons.get(index).and_then(Option::as_deref) == Some("ConditionalCheckFailed"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Counts of what the store asked of DynamoDB, for benchmarks and request logs.
#[derive(Debug, Default)]
pub struct StoreStats {
    requests: AtomicU64,
    items_read: AtomicU64,
    write_requests: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub items_read: u64,
    pub write_requests: u64,
}

impl StoreStats {
    fn read(&self, items: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.items_read.fetch_add(items, Ordering::Relaxed);
    }

    fn write(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.write_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            items_read: self.items_read.load(Ordering::Relaxed),
            write_requests: self.write_requests.load(Ordering::Relaxed),
        }
    }
}

/// The handle every function holds: one DynamoDB client and the table names.
#[derive(Clone)]
pub struct Store {
    ddb: Client,
    users: String,
    connections: String,
    events: String,
    audit: String,
    changes: String,
    stats: Arc<StoreStats>,
}

impl Store {
    pub fn new(ddb: Client, config: &Config) -> Self {
        Self {
            ddb,
            users: config.users_table.clone(),
            connections: config.connections_table.clone(),
            events: config.events_table.clone(),
            audit: config.audit_table.clone(),
            changes: config.changes_table.clone(),
            stats: Arc::default(),
        }
    }

    /// "Now" at the precision instants are stored with (whole seconds), so a value written and
    /// read back compares equal.
    pub fn now() -> chrono::DateTime<chrono::Utc> {
        use chrono::SubsecRound;
        chrono::Utc::now().trunc_subsecs(0)
    }

    /// A transaction item creating `item` in `table`, which fails if its key exists.
    pub(crate) fn put_new(&self, table: &str, item: Item) -> StoreResult<TransactWriteItem> {
        aws_sdk_dynamodb::types::Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map(|put| TransactWriteItem::builder().put(put).build())
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// A consistent Query on partition `pk` of `table`: every item, or those whose sort key
    /// begins with `sk_prefix`.
    fn partition_query(
        &self,
        table: &str,
        pk: impl Into<String>,
        sk_prefix: Option<&str>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let query = self
            .ddb
            .query()
            .table_name(table)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true);
        match sk_prefix {
            Some(prefix) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
            None => query.key_condition_expression("pk = :pk"),
        }
    }

    /// The items of a partition (under a sort-key prefix), read as `T`.
    async fn partition_items<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        pk: impl Into<String>,
        sk_prefix: Option<&str>,
    ) -> StoreResult<Vec<T>> {
        self.query_all(self.partition_query(table, pk, sk_prefix))
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// Every item a Query matches, following its pages (each page counted in the stats).
    async fn query_all(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> StoreResult<Vec<Item>> {
        Ok(self.query_up_to(query, usize::MAX).await?.0)
    }

    /// The items a Query matches (from its exclusive start key, if it has one), following its
    /// pages until more than `max` are read; says whether there were more than `max` (then only
    /// `max` are returned).
    async fn query_up_to(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        max: usize,
    ) -> StoreResult<(Vec<Item>, bool)> {
        let mut items = Vec::new();
        let mut start = query.get_exclusive_start_key().clone();
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            self.stats
                .read(u64::try_from(page.scanned_count).unwrap_or(0));
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if items.len() > max {
                items.truncate(max);
                return Ok((items, true));
            }
            if start.is_none() {
                return Ok((items, false));
            }
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    async fn get(&self, table: &str, pk: String, sk: String) -> StoreResult<Option<Item>> {
        let out = self
            .ddb
            .get_item()
            .table_name(table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        self.stats.read(u64::from(out.item.is_some()));
        Ok(out.item)
    }

    /// BatchWriteItem in requests of 25, retrying unprocessed items with capped backoff.
    async fn write_batch(&self, table: &str, requests: Vec<WriteRequest>) -> StoreResult<()> {
        const BATCH_WRITE_MAX: usize = 25;
        const RETRIES: u32 = 8;
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > RETRIES {
                    return Err(StoreError::Throttled(format!(
                        "{} writes still unprocessed after {RETRIES} retries",
                        pending.len()
                    )));
                }
                if attempt > 0 {
                    let backoff = 25u64 << attempt.min(6);
                    tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
                }
                self.stats.write();
                let out = self
                    .ddb
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .map_err(StoreError::from_sdk)?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                attempt += 1;
            }
        }
        Ok(())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(StoreError::from_transaction)?;
        Ok(())
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A domain value as an item, with its keys added.
pub(crate) fn to_item<T: Serialize>(value: &T, keys: &[(&str, String)]) -> StoreResult<Item> {
    let mut item: Item =
        serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    for (name, key) in keys {
        item.insert((*name).to_owned(), s(key.clone()));
    }
    Ok(item)
}

pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> StoreResult<T> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}
