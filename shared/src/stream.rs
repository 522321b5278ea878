//! The occurrence stream: every read of a range (`/events`, `/instances`, `/conflicts`,
//! `/freebusy`, `/availability`) is pages of this one stream, so they cannot disagree. Items are
//! single events and occurrences of series, ordered by their sort key (start, then key); a page
//! is the first `limit` items after a cursor, so following cursors gives exactly the unpaged
//! answer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::Event;
use crate::recurrence::{Occurrences, Series};
use crate::store::time_sort_key;
use crate::time::TimeRange;

/// The first occurrences of a set of series after a cursor.
pub struct SeriesHead {
    /// Up to `limit + 1` occurrences, by sort key.
    pub occurrences: Vec<(String, Event)>,
    /// Series cut at `recurrence::SERIES_CAP` on the way: (connection, series key).
    pub capped: Vec<(String, String)>,
}

/// The first `limit + 1` occurrences of `series` overlapping `range` after the cursor `after`,
/// merged lazily: each series is expanded only as far as the page needs.
pub fn series_head(
    series: &[Series],
    range: TimeRange,
    after: Option<&str>,
    limit: usize,
) -> SeriesHead {
    let from = after
        .and_then(cursor_start)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let mut streams: Vec<Occurrences<'_>> =
        series.iter().map(|s| s.occurrences(range, from)).collect();
    let next_after = |stream: &mut Occurrences<'_>| {
        stream
            .map(|o| (time_sort_key(&o), o))
            .find(|(key, _)| after.is_none_or(|a| key.as_str() > a))
    };
    // The next occurrence of each series after the cursor, and a heap of their keys.
    let mut pending: Vec<Option<Event>> = Vec::with_capacity(streams.len());
    let mut heap = BinaryHeap::new();
    for (index, stream) in streams.iter_mut().enumerate() {
        pending.push(next_after(stream).map(|(key, occurrence)| {
            heap.push(Reverse((key, index)));
            occurrence
        }));
    }
    let mut occurrences = Vec::new();
    while occurrences.len() <= limit {
        let Some(Reverse((key, index))) = heap.pop() else {
            break;
        };
        if let Some(occurrence) = pending[index].take() {
            occurrences.push((key, occurrence));
        }
        if let Some((key, occurrence)) = next_after(&mut streams[index]) {
            heap.push(Reverse((key, index)));
            pending[index] = Some(occurrence);
        }
    }
    let capped = streams
        .iter()
        .zip(series)
        .filter(|(stream, _)| stream.capped)
        .map(|(_, s)| (s.master.connection_id.clone(), s.master.event_key.clone()))
        .collect();
    SeriesHead {
        occurrences,
        capped,
    }
}

/// The start instant of a cursor (a sort key).
pub fn cursor_start(key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let (start, _) = key.split_once('#')?;
    chrono::DateTime::parse_from_rfc3339(start)
        .ok()
        .map(|t| t.to_utc())
}

/// One page: the series' head and the single events merged by sort key, the first `limit`
/// after the cursor, and the cursor of the next page if more follow.
pub fn page(
    head: Vec<(String, Event)>,
    singles: impl IntoIterator<Item = Event>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<Event>, Option<String>) {
    let mut items = head;
    items.extend(
        singles
            .into_iter()
            .map(|e| (time_sort_key(&e), e))
            .filter(|(key, _)| after.is_none_or(|a| key.as_str() > a)),
    );
    items.sort_by(|a, b| a.0.cmp(&b.0));
    // A single event can be read twice (two tiers cannot hold it, but a retried read can).
    items.dedup_by(|a, b| a.0 == b.0);
    let next = (items.len() > limit).then(|| items[limit - 1].0.clone());
    items.truncate(limit);
    (items.into_iter().map(|(_, e)| e).collect(), next)
}
