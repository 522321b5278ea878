//! The change log (Changes table): every write that changes a user's events appends a commit
//! under `USER#<id>`, sort key its sequence number. `GET /v1/changes` and the outbound webhooks
//! read it forward from a cursor. The head item (`#HEAD`) holds the last sequence number handed
//! out and the user's enabled webhooks, so a writer learns whom to notify from the one update
//! that reserves its numbers.
//!
//! Order without a global clock: numbers come from one atomic `ADD` on the head, so they are
//! dense per user. A commit is written before (or with) the events it describes, so no applied
//! change goes unrecorded; a retried write may record it twice. A reader returns the commits
//! after its cursor up to the first hole: a hole is a commit still being written, or one whose
//! writer died. Holes older than [`HOLE_GRACE`] are skipped, and a failed transaction fills its
//! hole at once with an empty commit.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, WriteRequest};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{from_item, n, s, to_item, Store, StoreError, StoreResult};
use crate::model::Event;

/// How long a commit is kept; a cursor older than this is refused (`cursor_expired`).
pub const CHANGE_RETENTION_DAYS: i64 = 30;
/// A hole this old in the sequence is a writer that died, not one still writing.
pub const HOLE_GRACE: Duration = Duration::seconds(10);
/// Entries per commit item (an entry is ~100 bytes; items hold 400 KB).
const ENTRIES_PER_COMMIT: usize = 1000;
const HEAD: &str = "#HEAD";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

impl ChangeKind {
    /// What writing `event` means for a reader: version 1 is its first write.
    pub fn of(event: &Event) -> Self {
        if event.is_deleted() {
            Self::Deleted
        } else if event.version <= 1 {
            Self::Created
        } else {
            Self::Updated
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Created, Self::Updated, Self::Deleted]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// One event's change within a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    #[serde(rename = "k")]
    pub kind: ChangeKind,
    #[serde(rename = "c")]
    pub connection_id: String,
    #[serde(rename = "e")]
    pub event_key: String,
}

impl ChangeEntry {
    pub fn of(event: &Event) -> Self {
        Self {
            kind: ChangeKind::of(event),
            connection_id: event.connection_id.clone(),
            event_key: event.event_key.clone(),
        }
    }
}

/// The changes one write made, with its place in the user's sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Commit {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub entries: Vec<ChangeEntry>,
    /// Epoch seconds; the table's TTL attribute.
    pub expires_at: i64,
}

/// A position in a user's change log: commit `seq` is read next, from its entry `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The next commit to read.
    pub seq: u64,
    /// Entries of that commit already read.
    pub offset: usize,
}

impl Position {
    pub const START: Self = Self { seq: 1, offset: 0 };

    pub fn after_commit(seq: u64) -> Self {
        Self {
            seq: seq + 1,
            offset: 0,
        }
    }
}

/// Sequence numbers reserved for one write, and who is to hear of it.
#[derive(Clone, Debug)]
pub struct Reservation {
    pub user_id: String,
    pub first: u64,
    pub count: u64,
    /// The user's enabled webhooks when the numbers were handed out.
    pub webhooks: Vec<String>,
}

/// What a read of the log found.
#[derive(Clone, Debug, Default)]
pub struct LogRead {
    /// Complete commits in order, the first possibly read from an offset.
    pub commits: Vec<Commit>,
    /// Where the next read starts.
    pub next: Option<Position>,
    /// True when the read stopped at a hole still being written.
    pub waiting: bool,
}

fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}

fn seq_sk(seq: u64) -> String {
    format!("{seq:016}")
}

impl Store {
    /// Hands out `count` consecutive sequence numbers (one atomic update of the head).
    pub async fn reserve_changes(&self, user_id: &str, count: u64) -> StoreResult<Reservation> {
        self.stats.write();
        let out = self
            .ddb
            .update_item()
            .table_name(&self.changes)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(HEAD))
            .update_expression("ADD seq :n")
            .expression_attribute_values(":n", n(count))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        let attributes = out.attributes.unwrap_or_default();
        let last: u64 = attributes
            .get("seq")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("change log head without seq".into()))?;
        let webhooks = match attributes.get("webhooks") {
            Some(AttributeValue::Ss(ids)) => ids.clone(),
            _ => Vec::new(),
        };
        Ok(Reservation {
            user_id: user_id.to_owned(),
            first: last + 1 - count,
            count,
            webhooks,
        })
    }

    fn commit_item(
        &self,
        user_id: &str,
        seq: u64,
        entries: Vec<ChangeEntry>,
    ) -> StoreResult<super::Item> {
        let at = Utc::now();
        let commit = Commit {
            seq,
            at,
            entries,
            expires_at: (at + Duration::days(CHANGE_RETENTION_DAYS)).timestamp(),
        };
        to_item(&commit, &[("pk", user_pk(user_id)), ("sk", seq_sk(seq))])
    }

    /// The commit of a one-number reservation, as an item of the write's transaction.
    pub(crate) fn commit_put(
        &self,
        reservation: &Reservation,
        entries: Vec<ChangeEntry>,
    ) -> StoreResult<TransactWriteItem> {
        let item = self.commit_item(&reservation.user_id, reservation.first, entries)?;
        self.put_new(&self.changes, item)
    }

    /// Fills the hole a failed transaction left, so readers need not wait it out.
    pub(crate) async fn void_commit(&self, reservation: &Reservation) {
        for seq in reservation.first..reservation.first + reservation.count {
            let result = match self.commit_item(&reservation.user_id, seq, Vec::new()) {
                Ok(item) => {
                    self.stats.write();
                    self.ddb
                        .put_item()
                        .table_name(&self.changes)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .send()
                        .await
                        .map(drop)
                        .map_err(StoreError::from_sdk)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, seq, "change log hole left to its grace period");
            }
        }
    }

    /// Records the changes of `events` (grouped by user) before they are written; returns the
    /// reservations, whose webhooks are to be told once the events are stored.
    pub(crate) async fn record_changes(&self, events: &[Event]) -> StoreResult<Vec<Reservation>> {
        let mut by_user: BTreeMap<&str, Vec<ChangeEntry>> = BTreeMap::new();
        for event in events {
            by_user
                .entry(event.user_id.as_str())
                .or_default()
                .push(ChangeEntry::of(event));
        }
        let mut reservations = Vec::new();
        for (user_id, entries) in by_user {
            let chunks: Vec<Vec<ChangeEntry>> = entries
                .chunks(ENTRIES_PER_COMMIT)
                .map(<[ChangeEntry]>::to_vec)
                .collect();
            let reservation = self.reserve_changes(user_id, chunks.len() as u64).await?;
            let requests = chunks
                .into_iter()
                .zip(reservation.first..)
                .map(|(chunk, seq)| {
                    let item = self.commit_item(user_id, seq, chunk)?;
                    let put = aws_sdk_dynamodb::types::PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| StoreError::Backend(e.to_string()))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<StoreResult<Vec<_>>>()?;
            self.write_batch(&self.changes, requests).await?;
            reservations.push(reservation);
        }
        Ok(reservations)
    }

    /// The last sequence number handed out for this user (0: none yet).
    pub async fn change_head(&self, user_id: &str) -> StoreResult<u64> {
        Ok(self
            .get(&self.changes, user_pk(user_id), HEAD.into())
            .await?
            .and_then(|item| item.get("seq")?.as_n().ok()?.parse().ok())
            .unwrap_or(0))
    }

    /// The user's enabled webhooks, as the head lists them for writers.
    pub async fn set_webhook_listed(
        &self,
        user_id: &str,
        webhook_id: &str,
        listed: bool,
    ) -> StoreResult<()> {
        self.stats.write();
        let op = if listed { "ADD" } else { "DELETE" };
        self.ddb
            .update_item()
            .table_name(&self.changes)
            .key("pk", s(user_pk(user_id)))
            .key("sk", s(HEAD))
            .update_expression(format!("{op} webhooks :id"))
            .expression_attribute_values(":id", AttributeValue::Ss(vec![webhook_id.to_owned()]))
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(())
    }

    /// Commits from `from` on, holding at most about `max_entries` entries, in order, stopping
    /// at a hole younger than [`HOLE_GRACE`].
    pub async fn read_changes(
        &self,
        user_id: &str,
        from: Position,
        max_entries: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<LogRead> {
        let mut read = LogRead::default();
        let mut expected = from.seq;
        let mut offset = from.offset;
        let mut entries = 0usize;
        let mut start = None;
        'pages: loop {
            let page = self
                .ddb
                .query()
                .table_name(&self.changes)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(user_pk(user_id)))
                .expression_attribute_values(":from", s(seq_sk(expected)))
                .expression_attribute_values(":to", s(seq_sk(u64::MAX / 2)))
                .consistent_read(true)
                .limit(25)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            self.stats
                .read(u64::try_from(page.scanned_count).unwrap_or(0));
            for item in page.items.unwrap_or_default() {
                let mut commit: Commit = from_item(item)?;
                if commit.seq != expected {
                    // A hole: wait for it unless the commit after it is old enough to prove
                    // the hole's writer gone.
                    if now - commit.at < HOLE_GRACE {
                        read.waiting = true;
                        break 'pages;
                    }
                    offset = 0;
                }
                let room = max_entries - entries;
                if room == 0 {
                    break 'pages;
                }
                let unread: Vec<ChangeEntry> = commit.entries.drain(..).skip(offset).collect();
                let taken = unread.len().min(room);
                read.next = Some(if taken == unread.len() {
                    Position::after_commit(commit.seq)
                } else {
                    Position {
                        seq: commit.seq,
                        offset: offset + taken,
                    }
                });
                entries += taken;
                expected = commit.seq + 1;
                offset = 0;
                commit.entries = unread;
                commit.entries.truncate(taken);
                read.commits.push(commit);
                if entries >= max_entries {
                    break 'pages;
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(read)
    }
}
