//! What the sync engine needs of the store: events by key in bulk, a connection's stored keys for
//! reconciliation, the sync lease and cursor, and the scheduler's due list.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::KeysAndAttributes;
use chrono::{DateTime, Utc};

use super::connections::{conn_sk, user_pk};
use super::{from_item, n, s, Store, StoreError, StoreResult};
use crate::model::{Connection, Event};
use crate::time::key_format;

/// BatchGetItem's limit per request.
const BATCH_GET_MAX: usize = 100;

/// A stored event as reconciliation sees it.
#[derive(Clone, Debug)]
pub struct StoredKey {
    pub event_key: String,
    pub live: bool,
    /// In the time index: live and not a series its provider expands (see `Event::is_listed`).
    pub listed: bool,
    pub pending: bool,
    pub start_time: Option<DateTime<Utc>>,
    /// For an occurrence override or a cancelled occurrence: its series and original start.
    pub parent: Option<String>,
    pub original_start: Option<DateTime<Utc>>,
    /// The original start of the occurrence of its series this event replaces (indexed in
    /// `byOriginalStart`): a live exception, or a cancelled occurrence.
    pub replaces: Option<DateTime<Utc>>,
}

/// A held sync lease on a connection: only its owner stores the cursor.
pub struct SyncLease {
    pub owner: String,
    pub connection: Connection,
    /// The last sync's lease was still on the calendar: that sync died (a timeout, a crash)
    /// without finishing or failing, perhaps between writing a page and counting it.
    pub abandoned: bool,
}

/// The calendar attribute that says a sync was asked for and has not started yet.
const SYNC_REQUESTED: &str = "syncRequestedAt";
/// After this, a request mark whose message never led to a sync stops holding others back.
pub const SYNC_REQUEST_STALE: chrono::Duration = chrono::Duration::minutes(2);

impl Store {
    /// The stored events of a connection among `keys` (missing keys are absent from the map).
    pub async fn events_by_keys(
        &self,
        connection_id: &str,
        keys: &[String],
    ) -> StoreResult<HashMap<String, Event>> {
        let mut found = HashMap::new();
        let mut unique: Vec<&String> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let mut request = KeysAndAttributes::builder().consistent_read(true);
            for key in chunk {
                request = request.keys(HashMap::from([
                    ("pk".to_owned(), s(format!("CONN#{connection_id}"))),
                    ("sk".to_owned(), s(format!("EVT#{key}"))),
                ]));
            }
            let mut pending = Some(
                request
                    .build()
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            );
            let mut attempt = 0u32;
            while let Some(request) = pending.take() {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6)))
                        .await;
                }
                attempt += 1;
                let out = self
                    .ddb
                    .batch_get_item()
                    .request_items(&self.events, request)
                    .send()
                    .await
                    .map_err(StoreError::from_sdk)?;
                let items = out
                    .responses
                    .and_then(|mut r| r.remove(&self.events))
                    .unwrap_or_default();
                self.stats.read(items.len() as u64);
                for item in items {
                    let event: Event = from_item(item)?;
                    found.insert(event.event_key.clone(), event);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.events))
                    .filter(|k| !k.keys().is_empty());
                if attempt > 8 && pending.is_some() {
                    return Err(StoreError::Throttled(
                        "BatchGetItem keys still unprocessed".into(),
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Every stored event key of a connection (optionally only those starting with `prefix`),
    /// with whether it is live: a Query on the base key, never a scan.
    pub async fn stored_keys(
        &self,
        connection_id: &str,
        prefix: &str,
    ) -> StoreResult<Vec<StoredKey>> {
        let query = self
            .partition_query(
                &self.events,
                format!("CONN#{connection_id}"),
                Some(&format!("EVT#{prefix}")),
            )
            .projection_expression("eventKey, deletedAt, pendingChange, startTime, parentEventId, originalStartTime, originSk, timePk");
        let mut out = Vec::new();
        for item in self.query_all(query).await? {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let instant = |name: &str| {
                text(name)
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc))
            };
            let Some(event_key) = text("eventKey") else {
                continue;
            };
            out.push(StoredKey {
                event_key,
                live: !item.contains_key("deletedAt"),
                listed: item.contains_key("timePk"),
                pending: item.contains_key("pendingChange"),
                start_time: instant("startTime"),
                parent: text("parentEventId"),
                original_start: instant("originalStartTime"),
                replaces: text("originSk").and_then(|k| crate::stream::cursor_start(&k)),
            });
        }
        Ok(out)
    }

    /// Takes the connection's sync lease unless another worker holds an unexpired one.
    /// Marks the calendar as waiting for a sync; true when it was not already waiting, so the
    /// caller is the one to queue it. A burst of requests (notifications, local writes) before
    /// the sync starts costs one sync; one after it starts queues the next. A mark older than
    /// [`SYNC_REQUEST_STALE`] (its message lost) no longer holds requests back. A calendar of
    /// no provider account (one kept only here) has nothing to sync with and is never marked.
    pub async fn request_sync(
        &self,
        user_id: &str,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let update = self
            .calendar_update(user_id, connection_id)
            .condition_expression(format!(
                "attribute_exists(accountId) AND attribute_not_exists(deletedAt) AND \
                 (attribute_not_exists({SYNC_REQUESTED}) OR {SYNC_REQUESTED} < :stale)"
            ))
            .update_expression(format!("SET {SYNC_REQUESTED} = :now"))
            .expression_attribute_values(":now", s(key_format(now)))
            .expression_attribute_values(":stale", s(key_format(now - SYNC_REQUEST_STALE)));
        self.applied(update).await
    }

    pub async fn lease_sync(
        &self,
        user_id: &str,
        connection_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<SyncLease>> {
        let spec = super::connections::LeaseSpec {
            sk: conn_sk(connection_id),
            until_attribute: "syncLeaseUntil",
            owner_attribute: "syncLeaseOwner",
            condition: "attribute_not_exists(deletedAt) AND isConnected = :true",
            // A sync asked for before this one starts is served by it (`request_sync`).
            clears: Some(SYNC_REQUESTED),
        };
        self.take_lease(user_id, &spec, now, until)
            .await?
            .map(|taken| {
                from_item(taken.item).map(|connection| SyncLease {
                    owner: taken.owner,
                    connection,
                    abandoned: taken.abandoned,
                })
            })
            .transpose()
    }

    /// Ends a sync: stores the cursor (only after every page before it was written), the next
    /// sync time and the polling interval it came from, and, after a full listing, the exact
    /// event count; releases the lease.
    pub async fn finish_sync(
        &self,
        lease: &SyncLease,
        cursor: Option<&str>,
        now: DateTime<Utc>,
        next: (DateTime<Utc>, chrono::Duration),
        exact_count: Option<i64>,
    ) -> StoreResult<()> {
        let conn = &lease.connection;
        let (next_sync_at, interval) = next;
        let mut set = vec![
            "lastSyncedAt = :now",
            "nextSyncAt = :next",
            "pollIntervalSeconds = :interval",
            "#status = :active",
            "syncFailures = :zero",
        ];
        let mut remove = vec!["syncLeaseUntil", "syncLeaseOwner", "lastError"];
        let mut update = self
            .ddb
            .update_item()
            .table_name(&self.connections)
            .key("pk", s(user_pk(&conn.user_id)))
            .key("sk", s(conn_sk(&conn.id)))
            .condition_expression("syncLeaseOwner = :owner AND attribute_not_exists(deletedAt)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(lease.owner.clone()))
            .expression_attribute_values(":now", s(key_format(now)))
            .expression_attribute_values(":next", s(key_format(next_sync_at)))
            .expression_attribute_values(":interval", n(interval.num_seconds()))
            .expression_attribute_values(
                ":active",
                s(crate::model::ConnectionStatus::Active.as_str()),
            )
            .expression_attribute_values(":zero", n(0));
        match cursor {
            Some(cursor) => {
                set.push("syncToken = :cursor");
                update = update.expression_attribute_values(":cursor", s(cursor));
            }
            None => remove.push("syncToken"),
        }
        if let Some(count) = exact_count {
            set.push("eventCount = :count");
            update = update.expression_attribute_values(":count", n(count));
        }
        self.stats.write();
        update
            .update_expression(format!(
                "SET {} REMOVE {}",
                set.join(", "),
                remove.join(", ")
            ))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Ends a failed sync: records the error, backs off, releases the lease; the cursor stays.
    pub async fn fail_sync(
        &self,
        lease: &SyncLease,
        error: &str,
        status: crate::model::ConnectionStatus,
        next_sync_at: DateTime<Utc>,
        audit: &crate::model::AuditEntry,
    ) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        let conn = &lease.connection;
        let update = Update::builder()
            .table_name(&self.connections)
            .key("pk", s(user_pk(&conn.user_id)))
            .key("sk", s(conn_sk(&conn.id)))
            .condition_expression("syncLeaseOwner = :owner")
            .update_expression(
                "SET lastError = :error, #status = :status, nextSyncAt = :next, \
                 syncFailures = if_not_exists(syncFailures, :zero) + :one \
                 REMOVE syncLeaseUntil, syncLeaseOwner",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(lease.owner.clone()))
            .expression_attribute_values(":error", s(error))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":next", s(key_format(next_sync_at)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.transact(vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(audit)?,
        ])
        .await
    }

    /// Connections of `shard` due for a sync (user id, connection id).
    pub async fn due_connections(
        &self,
        shard: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, String)>> {
        let due = super::connections::DueIndex {
            index: "bySyncDue",
            shard_attribute: "syncShard",
            time_attribute: "nextSyncAt",
            item_prefix: "CONN#",
        };
        self.due_in_shard(&due, shard, now).await
    }

    /// Moves a due connection's next sync forward, if it is still due; false when another
    /// scheduler tick claimed it first.
    pub async fn claim_due(
        &self,
        user_id: &str,
        connection_id: &str,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let update = self
            .calendar_update(user_id, connection_id)
            .condition_expression("nextSyncAt <= :now")
            .update_expression("SET nextSyncAt = :next")
            .expression_attribute_values(":now", s(key_format(now)))
            .expression_attribute_values(":next", s(key_format(next)));
        self.applied(update).await
    }
}
