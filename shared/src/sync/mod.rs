//! Incremental, fault-proof sync of one calendar (docs/decisions.md, DESIGN §4):
//!
//! - a listing that failed or stopped part-way deletes nothing: deletions come from tombstones, or
//!   from absence in a [`CompleteListing`], which only a full listing that reached its last page
//!   can produce;
//! - one malformed event is counted and skipped; the feed and the cursor go on;
//! - the cursor is stored only after every page before it was written; a lost cursor means a full
//!   listing that reconciles, never a wipe;
//! - writes are idempotent (SQS delivers at least once) and a lease keeps two workers apart.

pub mod engine;
pub mod feeds;
pub mod polling;
pub mod push;
pub mod scheduler;
pub mod worker;
pub mod writeback;

use std::collections::HashSet;

use crate::model::Event;
use crate::time::TimeRange;

/// What a provider said about one event.
#[derive(Debug)]
pub enum Change {
    /// The event as it now is (its content fields; the engine fills the bookkeeping).
    Upsert(Box<Event>),
    /// A tombstone: the event is gone at the provider.
    Delete { key: String },
    /// Every stored event under a resource's key (the key itself and `key#...`) goes, except
    /// `keep`: a CalDAV resource holds a series and its overrides, so a removed resource prunes
    /// all of them (`keep` empty) and a changed one prunes the overrides it no longer has.
    Prune { prefix: String, keep: Vec<String> },
    /// One occurrence of a recurring series is cancelled: kept as a tombstone child of the
    /// series, so expansion skips that occurrence.
    CancelInstance {
        key: String,
        parent: String,
        original_start: chrono::DateTime<chrono::Utc>,
    },
    /// The provider sent something we cannot read. The stored version, if any, is kept.
    Malformed { key: String, reason: String },
}

impl Change {
    fn key(&self) -> &str {
        match self {
            Self::Upsert(e) => &e.event_key,
            Self::Delete { key }
            | Self::Malformed { key, .. }
            | Self::CancelInstance { key, .. } => key,
            Self::Prune { prefix, .. } => prefix,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Page {
    pub changes: Vec<Change>,
    /// The token of the next page; `None` on the last page.
    pub next_page: Option<String>,
    /// On the last page: the cursor for the next incremental listing.
    pub cursor: Option<String>,

    /// Keys that exist at the provider although this page does not carry their content (CalDAV:
    /// unchanged resources whose stored copies are current). Counted as seen by a full listing.
    pub present: Vec<String>,
}

/// Proof that a full listing read every page: the only thing that may delete by absence.
/// It cannot be built outside this module, and only [`Listing::finish`] builds it.
pub struct CompleteListing {
    seen: HashSet<String>,
    /// The window the listing covered; `None` = the whole calendar.
    window: Option<TimeRange>,
}

impl CompleteListing {
    /// The listing saw no event at all.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether a stored event missing from the listing may be deleted.
    pub fn proves_absent(&self, key: &str, start: Option<chrono::DateTime<chrono::Utc>>) -> bool {
        // `resource#instance` keys (CalDAV overrides) are present when their resource is.
        let resource = key.split_once('#').map_or(key, |(r, _)| r);
        if self.seen.contains(key) || self.seen.contains(resource) {
            return false;
        }
        match (&self.window, start) {
            (None, _) => true,
            (Some(window), Some(start)) => window.start <= start && start < window.end,
            (Some(_), None) => false,
        }
    }
}

/// A full listing in progress: collects the keys it has seen, page by page.
pub struct Listing {
    seen: HashSet<String>,
    window: Option<TimeRange>,
}

impl Listing {
    pub fn new(window: Option<TimeRange>) -> Self {
        Self {
            seen: HashSet::new(),
            window,
        }
    }

    pub fn saw(&mut self, page: &Page) {
        for change in &page.changes {
            if !matches!(
                change,
                Change::Delete { .. } | Change::Prune { .. } | Change::CancelInstance { .. }
            ) {
                self.seen.insert(change.key().to_owned());
            }
            // The series of a listed instance is there too (Graph lists instances only).
            if let Change::Upsert(event) = change {
                self.seen.extend(event.parent_event_id.iter().cloned());
            }
        }
        self.seen.extend(page.present.iter().cloned());
    }

    /// Called after the last page only.
    pub fn finish(self) -> CompleteListing {
        CompleteListing {
            seen: self.seen,
            window: self.window,
        }
    }
}
