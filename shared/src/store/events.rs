//! Events table: `CONN#<connectionId>` / `EVT#<eventKey>`.
//!
//! Date-range reads use the sparse `byUserTime` index (live events only). Every indexed item
//! covers an interval: an event from its start to its end, a series from its first start to the
//! end of its last occurrence (open when the rule has no end). An interval overlaps `[A, B)` when
//! `start < B` and `end > A`; an index sorted by start can only bound the start, so items are
//! split into length tiers ([`TIERS`]), each its own partition `USER#<id><suffix>`: a tier whose
//! items last at most `D` is read with `start` in `[A - D, B)`, the last (open) tier up to `B`.
//! Series that ended before a range or begin after it are therefore never read.
//!
//! Exceptions of series (moved, changed and cancelled occurrences) are also indexed by their
//! original start (`byOriginalStart`), so one Query finds every occurrence a range read must
//! leave out of the expansion. docs/data-model.md and docs/decisions.md explain the choice;
//! docs/benchmarks.md has the measured read ratios.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, Put, PutRequest, TransactWriteItem, WriteRequest};
use chrono::{DateTime, Duration, Utc};

use super::changes::{ChangeEntry, Reservation};
use super::connections::user_pk;
use super::{from_item, s, to_item, Item, Store, StoreError, StoreResult, StoredKey};
use crate::model::{AuditEntry, Event};
use crate::recurrence::Series;
use crate::stream;
use crate::time::{key_format, TimeRange};

/// Length tiers of the byUserTime index: partition suffix and longest interval kept there
/// (`None`: unbounded). Most events are meetings of a few hours, so the first tier reads almost
/// nothing outside the range; all-day events (23-25 h with DST) fit the second, multi-day the
/// third; series that end within about a year the fourth; open series the last.
pub const TIERS: [(&str, Option<Duration>); 5] = [
    ("", Some(Duration::hours(4))),
    ("#DAY", Some(Duration::hours(26))),
    ("#WEEK", Some(Duration::days(8))),
    ("#YEAR", Some(Duration::days(400))),
    ("#SPAN", None),
];

/// The first tiers hold only single events and are read page by page from the cursor; the
/// others (series, and events longer than a week) are read whole for the range.
const PAGED_TIERS: usize = 3;

/// Exceptions are looked up by original start from this long before the range: occurrences of a
/// series lasting longer start earlier and have their exceptions read with their series.
pub const EXCEPTION_LOOKBACK: Duration = Duration::days(8);

/// `spanEnd` of a series without end.
const OPEN_END: &str = "9999-12-31T23:59:59Z";

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

/// The interval a live item covers in the index: `(start, end)`, `end` `None` for an open series.
fn indexed_interval(event: &Event) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    if event.is_recurring {
        let end = crate::recurrence::series_end(event).map(|end| end.max(event.end_time));
        (event.start_time, end)
    } else {
        (event.start_time, Some(event.end_time))
    }
}

/// The byUserTime partition suffix of an item covering `(start, end)`: the first tier it fits.
/// Series never go to the paged tiers: their occurrences are not ordered by the series' start.
fn tier_of(event: &Event, (start, end): (DateTime<Utc>, Option<DateTime<Utc>>)) -> &'static str {
    let first = if event.is_recurring { PAGED_TIERS } else { 0 };
    TIERS[first..]
        .iter()
        .find(|(_, max)| matches!((max, end), (Some(max), Some(end)) if end - start <= *max))
        .map_or("#SPAN", |(suffix, _)| suffix)
}

/// What a transactional event write expects to find under its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: a new event.
    Absent,
    /// The live event at this version.
    Version(u64),
    /// The deleted event at this version (an override made again where one was dropped).
    Deleted(u64),
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
}

pub struct EventPage {
    /// Events and occurrences of series, by start (then key).
    pub events: Vec<Event>,
    /// The sort key to continue after, when more events match.
    pub next: Option<String>,
    /// Series with more occurrences in the range than one read lists (`recurrence::SERIES_CAP`):
    /// (connection, series key).
    pub capped: Vec<(String, String)>,
}

/// See [`Store::series_overrides`].
#[derive(Default)]
pub struct SeriesOverrides {
    pub overrides: Vec<Event>,
    pub cancelled: Vec<chrono::DateTime<chrono::Utc>>,
}

/// What is stored for a range, unexpanded (the ICS feed): series with the occurrences their
/// exceptions replace, and events (exceptions included) overlapping the range.
pub struct RangeContents {
    pub series: Vec<Series>,
    pub events: Vec<Event>,
}

/// A read of one byUserTime partition.
struct TierRead<'a> {
    partition: String,
    lo: Option<String>,
    hi: String,
    /// Stop once this many matching items are found.
    wanted: Option<usize>,
    /// Filter on the series' span end (span tiers) or the event's end (paged tiers).
    end_attribute: &'a str,
}

impl Store {
    fn event_item(&self, event: &Event) -> StoreResult<Item> {
        let mut keys = vec![
            ("pk", conn_pk(&event.connection_id)),
            ("sk", event_sk(&event.event_key)),
        ];
        if event.is_listed() {
            let interval = indexed_interval(event);
            keys.push((
                "timePk",
                format!("{}{}", user_pk(&event.user_id), tier_of(event, interval)),
            ));
            keys.push(("timeSk", time_sort_key(event)));
            keys.push(("spanEnd", interval.1.map_or(OPEN_END.into(), key_format)));
        }
        if let Some(original) = event.replaced_occurrence() {
            keys.push(("originPk", user_pk(&event.user_id)));
            keys.push((
                "originSk",
                format!("{}#{}", key_format(original), event.event_key),
            ));
        }
        // Purged once its deletion no longer needs writing back.
        if event.is_deleted()
            && event.pending_change.is_none()
            && event.purge_at.is_some()
            && !event.cancels_instance
        {
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

    /// Creates a new event on a live calendar, counting it, with its audit entry and its change
    /// commit. `TransactionCancelled` with a failed condition at index 1 means the calendar is
    /// not live.
    pub async fn create_event(
        &self,
        event: &Event,
        audit: &AuditEntry,
    ) -> StoreResult<Reservation> {
        let put = self.event_put(event, Expect::Absent)?;
        let count = self.live_connection_check(&event.user_id, &event.connection_id, 1)?;
        self.transact_recorded(
            &event.user_id,
            vec![put, count, self.audit_put(audit)?],
            vec![ChangeEntry::of(event)],
        )
        .await
    }

    /// Replaces an event if it still has `expected_version` (optimistic concurrency). A deletion
    /// (the new state carries `deletedAt`) also takes it off its calendar's count.
    pub async fn replace_event(
        &self,
        event: &Event,
        expected_version: u64,
        audit: &AuditEntry,
    ) -> StoreResult<Reservation> {
        let put = self.event_put(event, Expect::Version(expected_version))?;
        let delta = if event.is_deleted() { -1 } else { 0 };
        let check = self.live_connection_check(&event.user_id, &event.connection_id, delta)?;
        self.transact_recorded(
            &event.user_id,
            vec![put, check, self.audit_put(audit)?],
            vec![ChangeEntry::of(event)],
        )
        .await
    }

    /// Runs a transaction with the commit of its changes as its last item. A failed transaction
    /// fills its number with an empty commit, so readers of the log need not wait for it.
    async fn transact_recorded(
        &self,
        user_id: &str,
        mut items: Vec<TransactWriteItem>,
        entries: Vec<ChangeEntry>,
    ) -> StoreResult<Reservation> {
        let reservation = self.reserve_changes(user_id, 1).await?;
        items.push(self.commit_put(&reservation, entries)?);
        match self.transact(items).await {
            Ok(()) => Ok(reservation),
            Err(e) => {
                self.void_commit(&reservation).await;
                Err(e)
            }
        }
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

    /// Writes events of one calendar in one transaction, each on its precondition, with the
    /// calendar's count and an audit entry: an edit of a series (its master, a new series, moved
    /// overrides) lands whole or not at all. Past what one transaction holds, the rest of the
    /// writes (overrides of a heavily edited series) follow as a batch.
    pub async fn write_events(
        &self,
        writes: &[(Event, Expect)],
        count_delta: i64,
        audit: &AuditEntry,
    ) -> StoreResult<Vec<Reservation>> {
        const IN_TRANSACTION: usize = 90;
        let Some((first, _)) = writes.first() else {
            return Ok(Vec::new());
        };
        let (now, later) = writes.split_at(writes.len().min(IN_TRANSACTION));
        // The calendar first: a failed condition at index 0 means it is gone, elsewhere that an
        // event changed meanwhile.
        let mut items = vec![
            self.live_connection_check(&first.user_id, &first.connection_id, count_delta)?,
            self.audit_put(audit)?,
        ];
        for (event, expect) in now {
            items.push(self.event_put(event, *expect)?);
        }
        let entries = now.iter().map(|(e, _)| ChangeEntry::of(e)).collect();
        let mut reservations = vec![
            self.transact_recorded(&first.user_id, items, entries)
                .await?,
        ];
        let rest: Vec<Event> = later.iter().map(|(e, _)| e.clone()).collect();
        reservations.extend(self.put_events(&rest).await?);
        Ok(reservations)
    }

    fn event_put(&self, event: &Event, expect: Expect) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.events)
            .set_item(Some(self.event_item(event)?));
        let put = match expect {
            Expect::Absent => put.condition_expression("attribute_not_exists(pk)"),
            Expect::Version(v) => put
                .condition_expression("version = :v AND attribute_not_exists(deletedAt)")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
            Expect::Deleted(v) => put
                .condition_expression("version = :v AND attribute_exists(deletedAt)")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        let put = put
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes many events with BatchWriteItem (25 a request), retrying unprocessed items with
    /// backoff, after recording their changes. Idempotent: the key is (connection, event key).
    /// Counts are the caller's to adjust.
    pub async fn put_events(&self, events: &[Event]) -> StoreResult<Vec<Reservation>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let reservations = self.record_changes(events).await?;
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
        self.write_batch(&self.events, requests).await?;
        Ok(reservations)
    }

    /// Provider id -> our key, for the connection's events whose provider assigned its own id.
    pub async fn aliases(
        &self,
        connection_id: &str,
    ) -> StoreResult<std::collections::HashMap<String, String>> {
        let query = self
            .ddb
            .query()
            .table_name(&self.events)
            .index_name("byProviderId")
            .key_condition_expression("aliasPk = :pk")
            .expression_attribute_values(":pk", s(conn_pk(connection_id)));
        let mut out = std::collections::HashMap::new();
        for item in self.query_all(query).await? {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            if let (Some(alias), Some(key)) = (text("aliasSk"), text("eventKey")) {
                out.insert(alias, key);
            }
        }
        Ok(out)
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

    /// One page of the occurrence stream of a range: the live events of the chosen calendars
    /// and the occurrences of their series that overlap it, by start then key, after the cursor.
    ///
    /// The series tiers and the exceptions are read first (one Query each, concurrently); the
    /// series' first `limit + 1` occurrences after the cursor bound the page, so the paged tiers
    /// read only up to that bound: a page dense with occurrences reads few single events it would
    /// not return. Meetings come next, and bound the all-day and multi-day tiers in turn.
    pub async fn events_in_range(&self, q: &RangeQuery<'_>) -> StoreResult<EventPage> {
        let from = q.after.and_then(stream::cursor_start);
        let (long, series) = self.series_in_range(q, from).await?;
        let head = stream::series_head(&series, q.range, q.after, q.limit);
        // The page ends at or before the (limit + 1)-th item known so far: each read narrows
        // the next. Meetings (tier 0) first, then the sparse all-day and multi-day tiers.
        let mut known: Vec<String> = head.occurrences.iter().map(|(k, _)| k.clone()).collect();
        let after_cursor = |e: &&Event| q.after.is_none_or(|a| time_sort_key(e).as_str() > a);
        known.extend(long.iter().filter(after_cursor).map(time_sort_key));
        let mut bound = |more: &[Event]| {
            known.extend(more.iter().filter(after_cursor).map(time_sort_key));
            known.sort_unstable();
            known.truncate(q.limit + 1);
            known
                .get(q.limit)
                .cloned()
                .unwrap_or_else(|| key_format(q.range.end))
        };
        let wanted = Some(q.limit + 1);
        let hi = bound(&[]);
        let t0 = self.read_tier(q, 0, q.after, &hi, wanted).await?;
        let hi = bound(&t0);
        let (t1, t2) = tokio::try_join!(
            self.read_tier(q, 1, q.after, &hi, wanted),
            self.read_tier(q, 2, q.after, &hi, wanted)
        )?;
        let singles = [t0, t1, t2, long].into_iter().flatten();
        let (events, next) = stream::page(head.occurrences, singles, q.after, q.limit);
        Ok(EventPage {
            events,
            next,
            capped: head.capped,
        })
    }

    /// Everything stored for a range, unexpanded (see [`RangeContents`]).
    pub async fn range_contents(&self, q: &RangeQuery<'_>) -> StoreResult<RangeContents> {
        let (long, series) = self.series_in_range(q, None).await?;
        let hi = key_format(q.range.end);
        let tier = |index| self.read_tier(q, index, None, &hi, None);
        let (t0, t1, t2) = tokio::try_join!(tier(0), tier(1), tier(2))?;
        let mut events: Vec<Event> = [t0, t1, t2, long].into_iter().flatten().collect();
        events.sort_by_cached_key(time_sort_key);
        Ok(RangeContents { series, events })
    }

    /// The long tiers (whole) and the exceptions of the range (from the cursor's start on, if
    /// any): the events longer than a week, and the series with the occurrences their
    /// exceptions replace. Occurrences overlapping the range may start before it, so without a
    /// cursor the exceptions are read from the look-back on.
    async fn series_in_range(
        &self,
        q: &RangeQuery<'_>,
        cursor_start: Option<DateTime<Utc>>,
    ) -> StoreResult<(Vec<Event>, Vec<Series>)> {
        let hi = key_format(q.range.end);
        let tier = |index| self.read_tier(q, index, None, &hi, None);
        let lookback = q.range.start - EXCEPTION_LOOKBACK;
        let exceptions_from = cursor_start.map_or(lookback, |c| c.max(lookback));
        let (t3, t4, mut replaced) = tokio::try_join!(
            tier(3),
            tier(4),
            self.replaced_occurrences(q.user_id, exceptions_from, q.range.end)
        )?;
        let (masters, long): (Vec<Event>, Vec<Event>) =
            t3.into_iter().chain(t4).partition(|e| e.is_recurring);
        // Occurrences longer than the look-back may begin before it: their series' own
        // exceptions are read whole (rare: multi-week recurring events).
        let lasting = masters
            .iter()
            .filter(|m| m.end_time - m.start_time > EXCEPTION_LOOKBACK);
        let children = futures_util::future::try_join_all(lasting.map(|m| async move {
            let keys = self.series_children(m).await?;
            Ok::<_, StoreError>((m.connection_id.clone(), m.event_key.clone(), keys))
        }))
        .await?;
        for (connection, series, keys) in children {
            replaced
                .entry((connection, series))
                .or_default()
                .extend(keys.iter().filter_map(|k| k.replaces));
        }
        let series = masters
            .into_iter()
            .map(|m| {
                let starts = replaced
                    .remove(&(m.connection_id.clone(), m.event_key.clone()))
                    .unwrap_or_default();
                Series::new(m, starts)
            })
            .collect();
        Ok((long, series))
    }

    /// Reads tier `index` of the range from `max(A - the tier's longest, after the cursor)` to
    /// `hi`, stopping once `wanted` matching items are found.
    async fn read_tier(
        &self,
        q: &RangeQuery<'_>,
        index: usize,
        after: Option<&str>,
        hi: &str,
        wanted: Option<usize>,
    ) -> StoreResult<Vec<Event>> {
        let (suffix, max) = TIERS[index];
        let lower = max.map(|max| key_format(q.range.start - max));
        // "\u{1}" sorts right after the cursor key and before any key it is a prefix of.
        let after = after.map(|a| format!("{a}\u{1}"));
        let lo = match (after, lower) {
            (Some(a), Some(l)) => Some(a.max(l)),
            (a, l) => a.or(l),
        };
        let read = TierRead {
            partition: format!("{}{suffix}", user_pk(q.user_id)),
            lo,
            hi: hi.to_owned(),
            wanted,
            end_attribute: if index < PAGED_TIERS {
                "endTime"
            } else {
                "spanEnd"
            },
        };
        self.query_time_partition(q, read).await
    }

    /// The original starts of the user's series occurrences that exceptions replace, with an
    /// original start in `[from, to)`, by (connection, series key).
    async fn replaced_occurrences(
        &self,
        user_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<HashMap<(String, String), HashSet<DateTime<Utc>>>> {
        let query = self
            .ddb
            .query()
            .table_name(&self.events)
            .index_name("byOriginalStart")
            .key_condition_expression("originPk = :pk AND originSk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(user_pk(user_id)))
            .expression_attribute_values(":lo", s(key_format(from)))
            .expression_attribute_values(":hi", s(key_format(to)));
        let mut out: HashMap<(String, String), HashSet<DateTime<Utc>>> = HashMap::new();
        for item in self.query_all(query).await? {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
            let original = text("originSk").and_then(|k| stream::cursor_start(k));
            if let (Some(connection), Some(parent), Some(original)) =
                (text("connectionId"), text("parentEventId"), original)
            {
                out.entry((connection.clone(), parent.clone()))
                    .or_default()
                    .insert(original);
            }
        }
        Ok(out)
    }

    /// Reads one byUserTime partition between `lo` and `hi`, keeping matching events, stopping
    /// once `wanted` are found.
    async fn query_time_partition(
        &self,
        q: &RangeQuery<'_>,
        read: TierRead<'_>,
    ) -> StoreResult<Vec<Event>> {
        let end_clause = format!("({} > :a OR startTime >= :a)", read.end_attribute);
        let mut filter = vec![end_clause.as_str()];
        let mut values = vec![
            (":pk", s(read.partition)),
            (":hi", s(read.hi)),
            (":a", s(key_format(q.range.start))),
        ];
        if let Some(attendee) = &q.filter.attendee {
            filter.push("contains(attendeeEmails, :attendee)");
            values.push((":attendee", s(attendee.clone())));
        }
        if let Some(has) = q.filter.has_conference {
            filter.push("hasConference = :conf");
            values.push((":conf", AttributeValue::Bool(has)));
        }
        let key_condition = match read.lo {
            Some(lo) => {
                values.push((":lo", s(lo)));
                "timePk = :pk AND timeSk BETWEEN :lo AND :hi"
            }
            None => "timePk = :pk AND timeSk <= :hi",
        };
        let wanted = read.wanted;
        let mut found = Vec::new();
        let mut start_key = None;
        loop {
            // Ask for about what is still wanted: a filter drops few items, so this reads little
            // past the page, and the loop continues when it drops more.
            let filtered = q.filter.attendee.is_some() || q.filter.has_conference.is_some();
            let page_limit = wanted.map(|w| {
                let remaining = w.saturating_sub(found.len()).max(1);
                let slack = if filtered { remaining / 8 } else { 0 };
                i32::try_from(remaining + slack).unwrap_or(i32::MAX)
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

    /// One series ready to expand, with every occurrence its exceptions replace.
    pub async fn series(&self, master: Event) -> StoreResult<Series> {
        let children = self.series_children(&master).await?;
        let replaced = children.iter().filter_map(|k| k.replaces).collect();
        Ok(Series::new(master, replaced))
    }

    /// A series' stored children read in full: its live overrides, by original start, and the
    /// original starts of its cancelled occurrences.
    pub async fn series_overrides(&self, master: &Event) -> StoreResult<SeriesOverrides> {
        let children = self.series_children(master).await?;
        let mut cancelled: Vec<_> = children
            .iter()
            .filter(|k| !k.live)
            .filter_map(|k| k.replaces)
            .collect();
        cancelled.sort();
        let live: Vec<String> = children
            .into_iter()
            .filter(|k| k.live)
            .map(|k| k.event_key)
            .collect();
        let mut overrides: Vec<Event> = self
            .events_by_keys(&master.connection_id, &live)
            .await?
            .into_values()
            .collect();
        overrides.sort_by_key(|e| e.original_start_time);
        Ok(SeriesOverrides {
            overrides,
            cancelled,
        })
    }

    /// The stored children of a series: its exceptions (live, or cancelling an occurrence).
    pub async fn series_children(&self, master: &Event) -> StoreResult<Vec<StoredKey>> {
        let mut keys = self
            .stored_keys(&master.connection_id, &master.event_key)
            .await?;
        keys.retain(|k| k.parent.as_deref() == Some(master.event_key.as_str()));
        Ok(keys)
    }
}
