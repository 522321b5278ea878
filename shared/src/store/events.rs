//! Events table: `CONN#<connectionId>` / `EVT#<eventKey>`.
//!
//! Date-range reads use the sparse `byUserTime` index (live events only). An event overlaps
//! `[A, B)` when `start < B` and `end > A`; an index sorted by start can only bound the start, so
//! events are split into duration tiers ([`TIERS`]), each its own partition `USER#<id><suffix>`:
//! a tier whose events last at most `D` is read with `start` in `[A - D, B)`; the last tier
//! (longer events, recurring masters) is read up to `B`. Every read filters on `end > A` in
//! DynamoDB, the tiers are read concurrently, and the exact overlap rule is applied again here.
//! docs/data-model.md explains the choice; docs/benchmarks.md has the measured read ratio.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::{AttributeValue, Put, PutRequest, TransactWriteItem, WriteRequest};
use chrono::{Duration, Utc};

use super::connections::user_pk;
use super::{from_item, s, to_item, Item, Store, StoreError, StoreResult, StoredKey};
use crate::model::{AuditEntry, Event};
use crate::time::{key_format, TimeRange};

/// Duration tiers of the byUserTime index: partition suffix and longest event kept there (`None`:
/// unbounded). Most events are meetings of a few hours, so the first tier reads almost nothing
/// outside the range; all-day events (23-25 h with DST) fit the second, multi-day the third.
pub const TIERS: [(&str, Option<Duration>); 4] = [
    ("", Some(Duration::hours(4))),
    ("#DAY", Some(Duration::hours(26))),
    ("#WEEK", Some(Duration::days(8))),
    ("#SPAN", None),
];

fn conn_pk(connection_id: &str) -> String {
    format!("CONN#{connection_id}")
}

fn event_sk(event_key: &str) -> String {
    format!("EVT#{event_key}")
}

/// The byUserTime sort key: start instant, then the event key to make it unique.
pub fn time_sort_key(event: &Event) -> String {
    format!("{}#{}", key_format(event.start_time), event.event_key)
}

/// The byUserTime partition of a live event: its duration tier.
fn time_partition(event: &Event) -> String {
    let length = event.end_time - event.start_time;
    let suffix = TIERS
        .iter()
        .find(|(_, max)| !event.is_recurring && max.is_some_and(|max| length <= max))
        .map_or("#SPAN", |(suffix, _)| suffix);
    format!("{}{suffix}", user_pk(&event.user_id))
}

/// Optional narrowing of a range query, applied inside DynamoDB.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Lower-cased e-mail that must be among the attendees.
    pub attendee: Option<String>,
    pub has_conference: Option<bool>,
}

pub struct RangeQuery<'a> {
    pub user_id: &'a str,
    pub range: TimeRange,
    /// Only events of these calendars are returned (the caller passes the live ones it allows).
    pub connections: &'a HashSet<String>,
    pub filter: &'a EventFilter,
    pub limit: usize,
    /// Continue after this byUserTime sort key.
    pub after: Option<&'a str>,
    /// Series as their occurrences (true), or as the stored masters (false, for the ICS feed).
    pub expand: bool,
}

pub struct EventPage {
    pub events: Vec<Event>,
    /// The sort key to continue after, when more events match.
    pub next: Option<String>,
}

impl Store {
    fn event_item(&self, event: &Event) -> StoreResult<Item> {
        let mut keys = vec![
            ("pk", conn_pk(&event.connection_id)),
            ("sk", event_sk(&event.event_key)),
        ];
        if !event.is_deleted() {
            keys.push(("timePk", time_partition(event)));
            keys.push(("timeSk", time_sort_key(event)));
        }
        // Purged once its deletion no longer needs writing back.
        if event.is_deleted() && event.pending_change.is_none() && event.purge_at.is_some() {
            keys.push((
                "purgePk",
                super::expiry::expiry_key("PURGE", &crate::ids::sha256_hex(&event.event_key)),
            ));
        }
        if let Some(provider_id) = event
            .provider_event_id
            .as_ref()
            .filter(|p| **p != event.event_key)
        {
            keys.push(("aliasPk", conn_pk(&event.connection_id)));
            keys.push(("aliasSk", provider_id.clone()));
        }
        if event.pending_change.is_some() {
            keys.push(("syncPk", conn_pk(&event.connection_id)));
            keys.push((
                "syncSk",
                format!("{}#{}", key_format(event.created_at), event.event_key),
            ));
        }
        let mut item = to_item(event, &keys)?;
        // Derived here, so no writer can let the attendee filter disagree with the attendees.
        let emails = event
            .attendees
            .iter()
            .map(|a| AttributeValue::S(a.email.to_lowercase()))
            .collect();
        item.insert("attendeeEmails".into(), AttributeValue::L(emails));
        Ok(item)
    }

    pub async fn event(&self, connection_id: &str, event_key: &str) -> StoreResult<Option<Event>> {
        self.get(&self.events, conn_pk(connection_id), event_sk(event_key))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Creates a new event on a live calendar, counting it, with its audit entry.
    /// `TransactionCancelled` with a failed condition at index 1 means the calendar is not live.
    pub async fn create_event(&self, event: &Event, audit: &AuditEntry) -> StoreResult<()> {
        let put = self.event_put(event, None)?;
        let count = self.live_connection_check(&event.user_id, &event.connection_id, 1)?;
        self.transact(vec![put, count, self.audit_put(audit)?])
            .await
    }

    /// Replaces an event if it still has `expected_version` (optimistic concurrency). A deletion
    /// (the new state carries `deletedAt`) also takes it off its calendar's count.
    pub async fn replace_event(
        &self,
        event: &Event,
        expected_version: u64,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let put = self.event_put(event, Some(expected_version))?;
        let delta = if event.is_deleted() { -1 } else { 0 };
        let check = self.live_connection_check(&event.user_id, &event.connection_id, delta)?;
        self.transact(vec![put, check, self.audit_put(audit)?])
            .await
    }

    /// Writes the outcome of a write-back, if nobody changed the event since it was read.
    pub async fn replace_pushed(&self, event: &Event, expected_version: u64) -> StoreResult<()> {
        self.stats.write();
        self.ddb
            .put_item()
            .table_name(&self.events)
            .set_item(Some(self.event_item(event)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(expected_version.to_string()))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    fn event_put(
        &self,
        event: &Event,
        expected_version: Option<u64>,
    ) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.events)
            .set_item(Some(self.event_item(event)?));
        let put = match expected_version {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("version = :v AND attribute_not_exists(deletedAt)")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        let put = put
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes many events with BatchWriteItem (25 a request), retrying unprocessed items with
    /// backoff. Idempotent: the key is (connection, event key). Counts are the caller's to adjust.
    pub async fn put_events(&self, events: &[Event]) -> StoreResult<()> {
        let requests = events
            .iter()
            .map(|e| {
                let put = PutRequest::builder()
                    .set_item(Some(self.event_item(e)?))
                    .build()
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.write_batch(&self.events, requests).await
    }

    /// Provider id -> our key, for the connection's events whose provider assigned its own id.
    pub async fn aliases(
        &self,
        connection_id: &str,
    ) -> StoreResult<std::collections::HashMap<String, String>> {
        let mut out = std::collections::HashMap::new();
        let mut start = None;
        loop {
            let page = self
                .ddb
                .query()
                .table_name(&self.events)
                .index_name("byProviderId")
                .key_condition_expression("aliasPk = :pk")
                .expression_attribute_values(":pk", s(conn_pk(connection_id)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            self.stats
                .read(u64::try_from(page.scanned_count).unwrap_or(0));
            for item in page.items.unwrap_or_default() {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                if let (Some(alias), Some(key)) = (text("aliasSk"), text("eventKey")) {
                    out.insert(alias, key);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// Events of a connection waiting to be written back, oldest first (seed pattern 5).
    pub async fn pending_events(&self, connection_id: &str, limit: i32) -> StoreResult<Vec<Event>> {
        let out = self
            .ddb
            .query()
            .table_name(&self.events)
            .index_name("bySyncStatus")
            .key_condition_expression("syncPk = :pk")
            .expression_attribute_values(":pk", s(conn_pk(connection_id)))
            .limit(limit)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        self.stats
            .read(u64::try_from(out.scanned_count).unwrap_or(0));
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// The live events of the user's chosen calendars that overlap the range, by start.
    pub async fn events_in_range(&self, q: &RangeQuery<'_>) -> StoreResult<EventPage> {
        let hi = key_format(q.range.end);
        // "\u{1}" sorts right after the cursor key and before any key it is a prefix of.
        let after = q.after.map(|a| format!("{a}\u{1}"));
        let wanted = q.limit + 1;
        let tier = |(suffix, max): (&str, Option<Duration>)| {
            let lower = max.map(|max| key_format(q.range.start - max));
            let lo = match (&after, lower) {
                (Some(a), Some(l)) => Some(if *a > l { a.clone() } else { l }),
                (a, l) => a.clone().or(l),
            };
            let partition = format!("{}{suffix}", user_pk(q.user_id));
            self.query_time_partition(q, partition, lo, &hi, max.map(|_| wanted))
        };
        let (t0, t1, t2, t3) = tokio::try_join!(
            tier(TIERS[0]),
            tier(TIERS[1]),
            tier(TIERS[2]),
            tier(TIERS[3])
        )?;
        let mut events: Vec<(String, Event)> = Vec::new();
        for event in [t0, t1, t2, t3].into_iter().flatten() {
            if event.is_recurring && q.expand {
                let occurrences = self.occurrences(&event, q.range).await?;
                events.extend(occurrences.into_iter().map(|o| (time_sort_key(&o), o)));
            } else {
                events.push((time_sort_key(&event), event));
            }
        }
        // Occurrences come from whole series: keep only those after the cursor.
        if let Some(after) = q.after {
            events.retain(|(key, _)| key.as_str() > after);
        }
        events.sort_by(|a, b| a.0.cmp(&b.0));
        let next = (events.len() > q.limit).then(|| events[q.limit - 1].0.clone());
        events.truncate(q.limit);
        Ok(EventPage {
            events: events.into_iter().map(|(_, e)| e).collect(),
            next,
        })
    }

    /// Reads one byUserTime partition between `lo` and `hi`, keeping matching events, stopping
    /// once `wanted` are found.
    async fn query_time_partition(
        &self,
        q: &RangeQuery<'_>,
        partition: String,
        lo: Option<String>,
        hi: &str,
        wanted: Option<usize>,
    ) -> StoreResult<Vec<Event>> {
        // Recurring masters pass: their occurrences are computed after the read.
        let mut filter = vec!["(endTime > :a OR startTime >= :a OR isRecurring = :recurring)"];
        let mut values = vec![
            (":pk", s(partition)),
            (":hi", s(hi)),
            (":a", s(key_format(q.range.start))),
            (":recurring", AttributeValue::Bool(true)),
        ];
        if let Some(attendee) = &q.filter.attendee {
            filter.push("contains(attendeeEmails, :attendee)");
            values.push((":attendee", s(attendee.clone())));
        }
        if let Some(has) = q.filter.has_conference {
            filter.push("hasConference = :conf");
            values.push((":conf", AttributeValue::Bool(has)));
        }
        let key_condition = match lo {
            Some(lo) => {
                values.push((":lo", s(lo)));
                "timePk = :pk AND timeSk BETWEEN :lo AND :hi"
            }
            None => "timePk = :pk AND timeSk <= :hi",
        };
        let mut found = Vec::new();
        let mut start_key = None;
        loop {
            // Ask for about what is still wanted: a filter drops few items, so this reads little
            // past the page, and the loop continues when it drops more.
            let page_limit = wanted.map(|w| {
                let remaining = w.saturating_sub(found.len()).max(1);
                i32::try_from(remaining + remaining / 8 + 1).unwrap_or(i32::MAX)
            });
            let mut query = self
                .ddb
                .query()
                .table_name(&self.events)
                .index_name("byUserTime")
                .key_condition_expression(key_condition)
                .filter_expression(filter.join(" AND "))
                .set_limit(page_limit)
                .set_exclusive_start_key(start_key);
            for (name, value) in &values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let out = query.send().await.map_err(StoreError::from_sdk)?;
            self.stats
                .read(u64::try_from(out.scanned_count).unwrap_or(0));
            for item in out.items.unwrap_or_default() {
                let event: Event = from_item(item)?;
                if q.connections.contains(&event.connection_id)
                    && (event.is_recurring || q.range.overlaps(event.start_time, event.end_time))
                {
                    found.push(event);
                }
            }
            start_key = out.last_evaluated_key;
            let satisfied = wanted.is_some_and(|w| found.len() >= w);
            if start_key.is_none() || satisfied {
                return Ok(found);
            }
        }
    }

    /// The occurrences of a recurring master that overlap `range`, without those its overrides
    /// replace or cancel (stored children of the series).
    pub async fn occurrences(&self, master: &Event, range: TimeRange) -> StoreResult<Vec<Event>> {
        let children = self.series_children(master).await?;
        Ok(occurrences_besides(master, &children, range))
    }

    /// The stored children of a series: its overrides and cancelled occurrences.
    pub async fn series_children(&self, master: &Event) -> StoreResult<Vec<StoredKey>> {
        let mut keys = self
            .stored_keys(&master.connection_id, &master.event_key)
            .await?;
        keys.retain(|k| k.parent.as_deref() == Some(master.event_key.as_str()));
        Ok(keys)
    }
}

/// The occurrences of `master` overlapping `range` that none of its `children` replaces.
pub fn occurrences_besides(master: &Event, children: &[StoredKey], range: TimeRange) -> Vec<Event> {
    let replaced: HashSet<chrono::DateTime<Utc>> =
        children.iter().filter_map(|k| k.original_start).collect();
    crate::recurrence::occurrences(master, &replaced, range)
}
