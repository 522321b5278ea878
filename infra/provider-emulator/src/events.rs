//! The events of every calendar, for both providers, and the server-side state of listings in
//! progress (Google page cursors, Graph delta rounds and delta states).
//!
//! Events are keyed by calendar id (not by account): two accounts that list the same calendar id
//! share its events, as a shared Google calendar does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Map, Value};

use crate::http::random_token;

/// Hands out strictly increasing change numbers and modification times (at least 1 ms apart, so
/// that Google's millisecond `updated` and every etag differ between two changes).
pub(crate) struct Clock {
    last: DateTime<Utc>,
    seq: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            last: DateTime::<Utc>::MIN_UTC,
            seq: 0,
        }
    }
}

impl Clock {
    pub fn tick(&mut self) -> (u64, DateTime<Utc>) {
        let now = Utc::now()
            .duration_trunc(Duration::milliseconds(1))
            .unwrap_or_else(|_| Utc::now());
        self.last = if now > self.last {
            now
        } else {
            self.last + Duration::milliseconds(1)
        };
        self.seq += 1;
        (self.seq, self.last)
    }

    /// The number of the last change.
    pub fn current(&self) -> u64 {
        self.seq
    }
}

/// A Google event as stored: the client-visible fields in `fields` (Calendar v3 names, `start`
/// / `end` as given), the server-managed ones beside them.
#[derive(Clone, Debug)]
pub(crate) struct GEvent {
    pub id: String,
    /// Creation order: the "unspecified, stable order" of events.list.
    pub order: u64,
    /// Change number of the last change (sync tokens compare against it).
    pub seq: u64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub sequence: i64,
    pub fields: Map<String, Value>,
}

impl GEvent {
    pub fn status(&self) -> &str {
        self.fields
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("confirmed")
    }

    pub fn cancelled(&self) -> bool {
        self.status() == "cancelled"
    }

    pub fn recurring_event_id(&self) -> Option<&str> {
        self.fields.get("recurringEventId").and_then(Value::as_str)
    }
}

#[derive(Default)]
pub(crate) struct GCalendarEvents {
    pub events: BTreeMap<String, GEvent>,
    /// Bumped by `invalidate-sync-tokens`: tokens of an older generation answer 410.
    pub generation: u64,
    /// Last change to any event of the calendar (the list's `updated`).
    pub changed: Option<DateTime<Utc>>,
}

/// Where a paged events.list stands; page tokens name one of these.
#[derive(Clone, Debug)]
pub(crate) struct GCursor {
    pub account: String,
    pub calendar: String,
    pub generation: u64,
    /// `Some(n)`: an incremental listing of changes after change `n`.
    pub since: Option<u64>,
    /// The change number when the listing began: the final page's `nextSyncToken`.
    pub snapshot: u64,
    pub show_deleted: bool,
    pub time_min: Option<DateTime<Utc>>,
    pub time_max: Option<DateTime<Utc>>,
    pub updated_min: Option<DateTime<Utc>>,
    pub q: Option<String>,
    pub ical_uid: Option<String>,
    pub order_by_updated: bool,
    /// Sort key of the last event served.
    pub after: Option<u64>,
    /// Pages served so far (drives `shortPages`).
    pub page: u32,
    pub max_results: usize,
    /// A `shortPages` listing ends with one empty page, so the previous page carried a token.
    pub drained: bool,
    /// When the token was issued (eviction order).
    pub stamp: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MKind {
    SingleInstance,
    SeriesMaster,
    Exception,
}

/// A Graph event as stored: single instances, series masters and exceptions. Occurrences are
/// generated from their master; deleted events are gone (delta finds them by comparing
/// snapshots).
#[derive(Clone, Debug)]
pub(crate) struct MEvent {
    pub id: String,
    pub order: u64,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub change_key: String,
    pub kind: MKind,
    pub series_master_id: Option<String>,
    pub original_start: Option<DateTime<Utc>>,
    /// Masters: original starts of cancelled (deleted) occurrences.
    pub cancelled: BTreeSet<DateTime<Utc>>,
    /// Client-visible fields with Graph names (`subject`, `start`, `end`, `recurrence`, ...).
    pub fields: Map<String, Value>,
}

#[derive(Default)]
pub(crate) struct MCalendarEvents {
    pub events: BTreeMap<String, MEvent>,
    /// Bumped by `invalidate-delta-tokens`.
    pub generation: u64,
}

/// One round of calendarView delta (a first sync, or the changes since a delta token) in
/// progress: what is left to send, and the snapshot the round's delta token will stand for.
#[derive(Clone, Debug)]
pub(crate) struct DeltaRound {
    pub account: String,
    pub calendar: String,
    pub generation: u64,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// Instance ids to send, in order (changed or added ones, then removed ones).
    pub entries: Vec<String>,
    /// Instance id -> changeKey as the client will know it after this round.
    pub baseline: BTreeMap<String, String>,
    pub page_size: usize,
    /// The delta token issued when the last page was served (a retried last page reuses it).
    pub issued: Option<String>,
    pub stamp: u64,
}

/// What a delta token stands for: the instances the client knows, with their changeKeys.
#[derive(Clone, Debug)]
pub(crate) struct DeltaState {
    pub account: String,
    pub calendar: String,
    pub generation: u64,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub baseline: BTreeMap<String, String>,
    pub page_size: usize,
    pub stamp: u64,
}

/// Server-side page cursors, delta rounds and delta states kept per kind; beyond this the oldest
/// are forgotten (Outlook's delta tokens live in a bounded cache too).
pub(crate) const MAX_TOKENS: usize = 4096;

/// Forgets the oldest entries of `map` once it holds more than `MAX_TOKENS`.
pub(crate) fn evict_oldest<T>(map: &mut HashMap<String, T>, stamp: impl Fn(&T) -> u64) {
    if map.len() <= MAX_TOKENS {
        return;
    }
    let mut stamps: Vec<u64> = map.values().map(&stamp).collect();
    stamps.sort_unstable();
    let cutoff = stamps[map.len() - MAX_TOKENS * 3 / 4];
    map.retain(|_, v| stamp(v) >= cutoff);
}

/// What a change notification reports: a change to a Google calendar's events, or to one Graph
/// event. Recorded by every write (API or admin) and turned into push notifications once the
/// request is answered (`push::collect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Google {
        calendar: String,
    },
    Microsoft {
        calendar: String,
        id: String,
        /// `created`, `updated` or `deleted`.
        kind: &'static str,
        change_key: String,
    },
}

#[derive(Default)]
pub(crate) struct Events {
    pub google: HashMap<String, GCalendarEvents>,
    pub microsoft: HashMap<String, MCalendarEvents>,
    pub google_cursors: HashMap<String, GCursor>,
    pub delta_rounds: HashMap<String, DeltaRound>,
    pub delta_states: HashMap<String, DeltaState>,
    /// Generated occurrence ids -> (calendar, master id, original start).
    pub occurrences: HashMap<String, (String, String, DateTime<Utc>)>,
    /// Changes not yet turned into push notifications.
    pub changes: Vec<Change>,
    pub clock: Clock,
    next_order: u64,
}

impl Events {
    pub fn next_order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    /// A new opaque server-side token.
    pub fn token() -> String {
        random_token(33)
    }
}
