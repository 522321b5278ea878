//! Runs one sync of one calendar: lease, pages, writes, reconciliation, cursor.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::feeds::{Feed, FeedError};
use super::{Change, Listing, Page};
use crate::app::App;
use crate::error::ApiError;
use crate::jobs::token_refresh::{self, Outcome};
use crate::model::{AuditEntry, Connection, ConnectionStatus, Event, PendingChange, SyncStatus};
use crate::providers::ProviderError;
use crate::store::StoreError;

/// How often a healthy calendar syncs.
pub const SYNC_INTERVAL: Duration = Duration::minutes(5);
/// The longest back-off of a failing calendar.
const MAX_BACKOFF: Duration = Duration::hours(6);
/// A sync must finish within the worker's timeout; the lease outlives it.
const LEASE: Duration = Duration::minutes(10);
/// Attempts per page on 429 / 5xx, and the longest wait we honour from Retry-After.
const PAGE_ATTEMPTS: u32 = 4;
const MAX_RETRY_WAIT: StdDuration = StdDuration::from_secs(20);

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub pages: usize,
    pub written: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub malformed: usize,
    /// Events with a local change not yet written back: the provider's version waits.
    pub kept_local: usize,
    /// Local changes given up because the provider changed the same event meanwhile (the
    /// provider's version wins; see also `write_back.superseded`).
    pub superseded: usize,
    pub full: bool,
    /// The provider had forgotten our cursor: a full listing reconciled instead.
    pub cursor_lost: bool,
    pub retries: usize,
    /// Local changes written back to the provider after the listing.
    pub write_back: super::writeback::PushReport,
    /// A full listing came back empty although events were stored: nothing was deleted.
    pub suspicious_empty: bool,
    /// Series whose rule we cannot expand: kept as they are (shown at their first start).
    pub invalid_rules: usize,
    /// The calendar has a live push channel: it is polled less often.
    pub pushed: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    Synced(SyncReport),
    /// Another worker holds this calendar's lease: nothing to do.
    Busy,
    /// The calendar is deleted or disconnected: nothing to do.
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<ApiError> for SyncError {
    fn from(e: ApiError) -> Self {
        Self::Internal(e.message)
    }
}

impl SyncError {
    /// Worth another delivery of the message soon.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Provider(e) => e.is_transient(),
            Self::Store(StoreError::Throttled(_) | StoreError::Backend(_)) => true,
            _ => false,
        }
    }
}

fn jitter(connection_id: &str) -> Duration {
    let spread = connection_id
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(131).wrapping_add(u64::from(b)));
    Duration::seconds((spread % 60) as i64)
}

/// Syncs one calendar now.
pub async fn sync_connection(
    app: &App,
    user_id: &str,
    connection_id: &str,
) -> Result<SyncOutcome, SyncError> {
    let now = Utc::now();
    let Some(lease) = app
        .store
        .lease_sync(user_id, connection_id, now, now + LEASE)
        .await?
    else {
        let connection = app.store.connection(user_id, connection_id).await?;
        return Ok(match connection {
            Some(c) if c.is_live() => SyncOutcome::Busy,
            Some(gone) => {
                // A channel that outlived its calendar (its stop failed) is stopped now.
                super::push::retire(app, &gone).await;
                SyncOutcome::Gone
            }
            None => SyncOutcome::Gone,
        });
    };
    // Boxed: the sync is a large future, and callers may poll it on a small stack.
    match Box::pin(run(app, &lease.connection)).await {
        Ok((report, cursor, exact_count)) => {
            // A sync that died or failed may have stored a page without counting it: the next
            // one to succeed counts the calendar again (decisions 61).
            let exact_count = match exact_count {
                None if lease.abandoned || lease.connection.last_error.is_some() => {
                    recount(app, &lease.connection).await
                }
                counted => counted,
            };
            let interval = super::polling::next_interval(app, &lease.connection, &report).await;
            let next = Utc::now() + interval + jitter(connection_id);
            match app
                .store
                .finish_sync(
                    &lease,
                    cursor.as_deref(),
                    Utc::now(),
                    (next, interval),
                    exact_count,
                )
                .await
            {
                Ok(()) => {}
                // Deleted meanwhile, or the lease lapsed to another worker: its result stands.
                Err(StoreError::ConditionFailed) => tracing::warn!(
                    connection = connection_id,
                    "sync finished without its lease"
                ),
                Err(e) => return Err(e.into()),
            }
            tracing::info!(connection = connection_id, ?report, "sync done");
            Ok(SyncOutcome::Synced(report))
        }
        Err(err) => {
            let failures = lease.connection.last_error.is_some() as i32 + 1;
            let backoff = (SYNC_INTERVAL * 2i32.pow(failures.min(8) as u32)).min(MAX_BACKOFF);
            tracing::warn!(connection = connection_id, error = %err, "sync failed");
            let audit = AuditEntry::new(
                user_id,
                "EVENT_SYNC_FAILED",
                "CALENDAR",
                Some(connection_id),
            )
            .failed(err.to_string())
            .with_metadata(serde_json::json!({ "provider": lease.connection.provider.slug() }));
            // A dead grant is the user's to fix; anything else is ours or the provider's.
            let status = match err {
                SyncError::Provider(ProviderError::InvalidGrant) => {
                    ConnectionStatus::ReauthorizationRequired
                }
                _ => ConnectionStatus::Error,
            };
            if let Err(e) = app
                .store
                .fail_sync(
                    &lease,
                    &err.to_string(),
                    status,
                    Utc::now() + backoff,
                    &audit,
                )
                .await
            {
                tracing::warn!(error = %e, "could not record the sync failure");
            }
            Err(err)
        }
    }
}

/// The calendar's live events as the API lists them, counted from the store; `None` (logged)
/// when they cannot be read, and the count stays as it is.
async fn recount(app: &App, conn: &Connection) -> Option<i64> {
    match app.store.stored_keys(&conn.id, "").await {
        Ok(stored) => Some(listed_count(&stored)),
        Err(e) => {
            tracing::warn!(connection = %conn.id, error = %e, "events not recounted");
            None
        }
    }
}

/// Stored events counted as the API lists them: a Graph series master is stored, not listed.
fn listed_count(stored: &[crate::store::StoredKey]) -> i64 {
    stored.iter().filter(|k| k.listed).count() as i64
}

/// Lists and applies; returns the report, the new cursor and, after a full listing, the exact
/// number of live events.
async fn run(
    app: &App,
    conn: &Connection,
) -> Result<(SyncReport, Option<String>, Option<i64>), SyncError> {
    let mut feed = Feed::open(app, conn).await?;
    // Events we created where the provider chose the id are stored under our key.
    let aliases = if conn.provider == crate::model::Provider::Microsoft {
        app.store.aliases(&conn.id).await?
    } else {
        std::collections::HashMap::new()
    };
    let mut report = SyncReport::default();
    let mut cursor = conn.sync_token.clone();
    let mut refreshed = false;
    'listing: loop {
        let mut listing = cursor.is_none().then(|| Listing::new(feed.window()));
        report.full = listing.is_some();
        let mut page_token: Option<String> = None;
        loop {
            let page = match fetch(&feed, cursor.as_deref(), page_token.as_deref(), &mut report)
                .await
            {
                Ok(page) => page,
                Err(FeedError::CursorLost) if cursor.is_some() => {
                    tracing::warn!(connection = %conn.id, "cursor lost; full listing to reconcile");
                    report.cursor_lost = true;
                    cursor = None;
                    continue 'listing;
                }
                Err(FeedError::Provider(ProviderError::Unauthorized))
                    if !refreshed && conn.provider.uses_oauth() =>
                {
                    refreshed = true;
                    refresh_credentials(app, conn).await?;
                    feed = Feed::open(app, conn).await?;
                    continue;
                }
                Err(FeedError::Provider(e)) => return Err(e.into()),
                Err(FeedError::Unsupported) => {
                    return Err(ProviderError::Protocol(
                        "the server refused an incremental listing".into(),
                    )
                    .into())
                }
                Err(FeedError::CursorLost) => {
                    return Err(ProviderError::Protocol(
                        "a full listing was refused as a lost cursor".into(),
                    )
                    .into())
                }
            };
            report.pages += 1;
            let mut page = page;
            to_our_keys(&mut page, &aliases);
            if let Some(listing) = listing.as_mut() {
                listing.saw(&page);
            }
            let Page {
                changes,
                next_page,
                cursor: new_cursor,
                ..
            } = page;
            let series: Vec<String> = changes
                .iter()
                .filter_map(|c| match c {
                    Change::Upsert(e) if e.provider_expanded => e.parent_event_id.clone(),
                    _ => None,
                })
                .collect();
            apply(app, conn, changes, &mut report).await?;
            if let Feed::Microsoft(graph) = &feed {
                adopt_series(app, conn, graph, series).await?;
            }
            match next_page {
                Some(next) => page_token = Some(next),
                None => {
                    let exact = match listing {
                        Some(listing) => Some(reconcile(app, conn, listing, &mut report).await?),
                        None => None,
                    };
                    // A malformed event in an incremental listing was skipped, and the provider
                    // will not send it again until it changes: the next sync lists in full, so a
                    // passing malformation heals. A full listing keeps its cursor either way.
                    let heal = report.malformed > 0 && !report.full;
                    // Local changes go out after the provider's came in, under the same lease.
                    report.write_back =
                        Box::pin(super::writeback::push_pending(app, conn, &feed)).await?;
                    report.pushed = super::push::ensure(app, conn, &feed).await;
                    return Ok((report, new_cursor.filter(|_| !heal), exact));
                }
            }
        }
    }
}

/// The series masters of Graph instances (Graph lists instances only), stored for editing a
/// series as a whole: fetched once each; a series created here stops being expanded by us as
/// soon as Graph lists its instances, and the overrides we kept for it until then are
/// superseded by Graph's own instances.
async fn adopt_series(
    app: &App,
    conn: &Connection,
    graph: &super::feeds::microsoft::GraphFeed,
    mut series: Vec<String>,
) -> Result<(), SyncError> {
    series.sort();
    series.dedup();
    let stored = app.store.events_by_keys(&conn.id, &series).await?;
    let now = Utc::now();
    let mut writes = Vec::new();
    let mut unlisted = 0i64;
    for key in series {
        match stored.get(&key) {
            // A series changed here is adopted only once the change has reached Graph.
            Some(master)
                if master.provider_expanded
                    || master.is_deleted()
                    || master.pending_change.is_some() => {}
            Some(master) => {
                // The series leaves the listing; Graph's instances stand for it.
                unlisted += 1;
                let mut adopted = master.clone();
                adopted.provider_expanded = true;
                adopted.version += 1;
                adopted.updated_at = now;
                writes.push(adopted);
                for child in app.store.series_children(master).await? {
                    if let Some(mut gone) = app.store.event(&conn.id, &child.event_key).await? {
                        if !gone.is_deleted() || gone.pending_change.is_some() {
                            unlisted += i64::from(!gone.is_deleted());
                            gone.deleted_at = Some(now);
                            gone.pending_change = None;
                            gone.cancels_instance = false;
                            gone.purge_at = Some(
                                (now + Duration::days(crate::model::PURGE_AFTER_DAYS)).timestamp(),
                            );
                            gone.version += 1;
                            writes.push(gone);
                        }
                    }
                }
            }
            None => match graph.series_master(&key).await {
                Ok(Some(mut master)) => {
                    master.user_id = conn.user_id.clone();
                    master.connection_id = conn.id.clone();
                    master.sync_status = SyncStatus::Synced;
                    master.last_synced_at = Some(now);
                    writes.push(master);
                }
                Ok(None) => {}
                // Only series edits need the master; the next sync tries again.
                Err(e) => {
                    tracing::warn!(connection = %conn.id, series = %key, error = %e, "series master not fetched")
                }
            },
        }
    }
    let recorded = app.store.put_events(&writes).await?;
    app.announce(&recorded).await;
    if unlisted != 0 {
        app.store
            .add_event_count(&conn.user_id, &conn.id, -unlisted)
            .await?;
    }
    Ok(())
}

/// One page, honouring Retry-After (capped) on 429 / 503 and backing off on other 5xx.
async fn fetch(
    feed: &Feed,
    cursor: Option<&str>,
    page: Option<&str>,
    report: &mut SyncReport,
) -> Result<Page, FeedError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match feed.fetch(cursor, page).await {
            Err(FeedError::Provider(e)) if e.is_transient() && attempt < PAGE_ATTEMPTS => {
                let wait = retry_wait(&e, attempt);
                tracing::info!(error = %e, wait_ms = wait.as_millis() as u64, "provider asked us to wait");
                report.retries += 1;
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// How long to wait before attempt `attempt + 1`: the provider's Retry-After, capped, on 429 /
/// 503; exponential back-off (0.5 s, 1 s, 2 s, ...) on other transient failures.
pub fn retry_wait(error: &ProviderError, attempt: u32) -> StdDuration {
    match error {
        ProviderError::RateLimited {
            retry_after: Some(after),
        } => (*after).min(MAX_RETRY_WAIT),
        _ => StdDuration::from_millis(250u64 << attempt.min(8)),
    }
}

/// Rewrites provider ids that stand for events we created to our keys.
fn to_our_keys(page: &mut Page, aliases: &std::collections::HashMap<String, String>) {
    if aliases.is_empty() {
        return;
    }
    for change in &mut page.changes {
        match change {
            Change::Upsert(event) => {
                if let Some(ours) = aliases.get(&event.event_key) {
                    event.provider_event_id =
                        Some(std::mem::replace(&mut event.event_key, ours.clone()));
                }
                // An instance of a series we created names it by the provider's id.
                if let Some(ours) = event.parent_event_id.as_ref().and_then(|p| aliases.get(p)) {
                    event.parent_event_id = Some(ours.clone());
                }
            }
            Change::Delete { key } | Change::Malformed { key, .. } => {
                if let Some(ours) = aliases.get(key) {
                    *key = ours.clone();
                }
            }
            _ => {}
        }
    }
}

/// An access token the provider refused: refresh once (under the refresh lease).
async fn refresh_credentials(app: &App, conn: &Connection) -> Result<(), SyncError> {
    let account_id = conn
        .account_id
        .as_deref()
        .ok_or_else(|| SyncError::Internal("calendar without account".into()))?;
    for _ in 0..3 {
        match token_refresh::refresh_account(app, &conn.user_id, account_id, Utc::now()).await? {
            Outcome::Refreshed => return Ok(()),
            Outcome::ReauthorizationRequired => return Err(ProviderError::InvalidGrant.into()),
            Outcome::Failed => {
                return Err(ProviderError::Unavailable("token refresh failed".into()).into())
            }
            // Another refresher is at it: its result will be there in a moment.
            Outcome::Skipped => tokio::time::sleep(StdDuration::from_millis(500)).await,
        }
    }
    Ok(())
}

/// Whether a series' rule can be expanded (a provider may send one we cannot read).
fn rule_expands(event: &Event) -> bool {
    let zone = event.timezone.as_deref().and_then(|z| z.parse().ok());
    let all_day = event.is_all_day.then_some(event.start_date).flatten();
    event.recurrence_rule.as_deref().is_some_and(|lines| {
        crate::recurrence::Rule::parse(event.start_time, zone, all_day, lines).is_ok()
    })
}

/// A stable hash of what the provider said, so an unchanged event costs no write.
fn fingerprint(event: &Event) -> String {
    let mut content = event.clone();
    content.created_at = DateTime::<Utc>::MIN_UTC;
    content.updated_at = DateTime::<Utc>::MIN_UTC;
    content.last_synced_at = None;
    content.version = 0;
    content.fingerprint = None;
    crate::ids::sha256_hex(&serde_json::to_string(&content).unwrap_or_default())[..32].to_owned()
}

/// Whether a local change waiting for write-back gives way to what the provider now sends: it
/// does when the provider's version is not the one the change was made over (another ETag: a
/// concurrent edit there), and the provider's version wins, as a failed `If-Match` would decide
/// at write-back. This also decides where write-back could not: a new override of one
/// occurrence has no ETag of its own, and the parts of a CalDAV resource share the resource's
/// (the resource is the unit of the precondition, as its `If-Match` is). A cancellation from the
/// provider (`incoming` `None`) always wins. Creates never give way: the provider can only be
/// sending back what we wrote.
fn loses_to_provider(local: &Event, incoming: Option<&Event>) -> bool {
    matches!(
        local.pending_change,
        Some(PendingChange::Update | PendingChange::Delete)
    ) && incoming.is_none_or(|theirs| theirs.provider_etag != local.provider_etag)
}

fn tombstone(mut event: Event, now: DateTime<Utc>) -> Event {
    event.deleted_at = Some(now);
    event.purge_at = Some((now + Duration::days(crate::model::PURGE_AFTER_DAYS)).timestamp());
    event.sync_status = SyncStatus::Deleted;
    event.updated_at = now;
    event.version += 1;
    event
}

/// A cancelled occurrence: a tombstone child that is never purged (TTL or job), since its
/// series would show the occurrence again without it.
fn cancellation(
    event: Event,
    parent: String,
    original_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Event {
    let mut gone = tombstone(event, now);
    gone.parent_event_id = Some(parent);
    gone.original_start_time = Some(original_start);
    gone.cancels_instance = true;
    gone.purge_at = None;
    gone
}

/// Writes one page: upserts that changed, tombstones; counts exactly.
async fn apply(
    app: &App,
    conn: &Connection,
    changes: Vec<Change>,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let now = crate::store::Store::now();
    let mut keys: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(e) => Some(e.event_key.clone()),
            Change::Delete { key } | Change::CancelInstance { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect();
    for change in &changes {
        if let Change::Prune { prefix, .. } = change {
            keys.extend(
                app.store
                    .stored_keys(&conn.id, prefix)
                    .await?
                    .into_iter()
                    .filter(|k| {
                        k.event_key == *prefix || k.event_key.starts_with(&format!("{prefix}#"))
                    })
                    .map(|k| k.event_key),
            );
        }
    }
    let stored = app.store.events_by_keys(&conn.id, &keys).await?;
    let mut writes = Vec::new();
    let mut superseded = Vec::new();
    let mut count_delta = 0i64;
    for change in changes {
        match change {
            Change::Upsert(event) => {
                let mut event = *event;
                event.user_id = conn.user_id.clone();
                event.connection_id = conn.id.clone();
                if event.is_recurring && !rule_expands(&event) {
                    report.invalid_rules += 1;
                    tracing::warn!(connection = %conn.id, event = %event.event_key, "recurrence rule kept but not expandable");
                }
                let print = fingerprint(&event);
                match stored.get(&event.event_key) {
                    Some(old)
                        if old.pending_change.is_some()
                            && !loses_to_provider(old, Some(&event)) =>
                    {
                        report.kept_local += 1;
                        continue;
                    }
                    Some(old) if old.pending_change.is_some() => {
                        superseded.push(old.public_id());
                        report.superseded += 1;
                        event.created_at = old.created_at;
                        event.version = old.version + 1;
                        if old.is_deleted() {
                            count_delta += 1;
                        }
                    }
                    Some(old)
                        if !old.is_deleted()
                            && old.fingerprint.as_deref() == Some(print.as_str()) =>
                    {
                        report.unchanged += 1;
                        continue;
                    }
                    Some(old) => {
                        event.created_at = old.created_at;
                        event.version = old.version + 1;
                        if old.is_deleted() {
                            count_delta += 1;
                        }
                    }
                    None => {
                        event.created_at = now;
                        count_delta += 1;
                    }
                }
                event.fingerprint = Some(print);
                event.sync_status = SyncStatus::Synced;
                event.last_synced_at = Some(now);
                event.updated_at = now;
                writes.push(event);
                report.written += 1;
            }
            Change::Delete { key } => {
                count_delta += delete(stored.get(&key), now, &mut writes, report)
            }
            Change::Prune { prefix, keep } => {
                let matching: Vec<String> = stored
                    .keys()
                    .filter(|k| **k == prefix || k.starts_with(&format!("{prefix}#")))
                    .filter(|k| !keep.contains(k))
                    .cloned()
                    .collect();
                for key in matching {
                    count_delta += delete(stored.get(&key), now, &mut writes, report);
                }
            }
            Change::CancelInstance {
                key,
                parent,
                original_start,
            } => match stored.get(&key) {
                Some(old) if old.pending_change.is_some() && !loses_to_provider(old, None) => {
                    report.kept_local += 1
                }
                Some(old) if !old.is_deleted() => {
                    writes.push(cancellation(old.clone(), parent, original_start, now));
                    report.deleted += 1;
                    count_delta -= 1;
                }
                Some(old) if !old.cancels_instance => {
                    writes.push(cancellation(old.clone(), parent, original_start, now));
                    report.written += 1;
                }
                Some(_) => report.unchanged += 1,
                None => {
                    let gone = Event::new(
                        &conn.user_id,
                        &conn.id,
                        &key,
                        "(cancelled)",
                        (original_start, original_start),
                        now,
                    );
                    writes.push(cancellation(gone, parent, original_start, now));
                    report.written += 1;
                }
            },
            Change::Malformed { key, reason } => {
                report.malformed += 1;
                tracing::warn!(connection = %conn.id, event = %key, reason = %reason, "malformed event skipped");
            }
        }
    }
    // The same event twice in one page (a provider may repeat): the last word wins.
    let mut seen = std::collections::HashSet::new();
    writes.reverse();
    writes.retain(|e| seen.insert(e.event_key.clone()));
    let recorded = app.store.put_events(&writes).await?;
    app.announce(&recorded).await;
    for id in superseded {
        let audit = crate::model::AuditEntry::new(
            &conn.user_id,
            "EVENT_WRITE_BACK_SUPERSEDED",
            "EVENT",
            Some(&id),
        )
        .failed("the occurrence changed at the provider before our change reached it; the provider's version was kept");
        app.store.append_audit(&audit).await?;
    }
    if count_delta != 0 {
        app.store
            .add_event_count(&conn.user_id, &conn.id, count_delta)
            .await?;
    }
    Ok(())
}

/// A provider tombstone for a stored event: soft delete, unless a local change waits to be
/// written back. Returns the change to the live count.
fn delete(
    stored: Option<&Event>,
    now: DateTime<Utc>,
    writes: &mut Vec<Event>,
    report: &mut SyncReport,
) -> i64 {
    match stored {
        Some(old) if old.pending_change.is_some() => {
            report.kept_local += 1;
            0
        }
        Some(old) if !old.is_deleted() => {
            writes.push(tombstone(old.clone(), now));
            report.deleted += 1;
            -1
        }
        _ => 0,
    }
}

/// After a complete full listing: what is stored but no longer at the provider is deleted.
/// Returns the exact number of live events.
async fn reconcile(
    app: &App,
    conn: &Connection,
    listing: Listing,
    report: &mut SyncReport,
) -> Result<i64, SyncError> {
    let complete = listing.finish();
    let stored = app.store.stored_keys(&conn.id, "").await?;
    let live_before = listed_count(&stored);
    // An empty full listing of a calendar we hold events for is more likely a provider fault
    // than an emptied calendar: it deletes nothing. Deletions still arrive as tombstones.
    if complete.is_empty() && live_before > 0 {
        tracing::warn!(connection = %conn.id, stored = live_before, "empty full listing; nothing deleted");
        report.suspicious_empty = true;
        return Ok(live_before);
    }
    let gone: Vec<String> = stored
        .iter()
        .filter(|k| k.live && !k.pending && complete.proves_absent(&k.event_key, k.start_time))
        .map(|k| k.event_key.clone())
        .collect();
    let removed = gone.len() as i64;
    for chunk in gone.chunks(500) {
        let deletions = chunk
            .iter()
            .map(|key| Change::Delete { key: key.clone() })
            .collect();
        apply(app, conn, deletions, report).await?;
    }
    Ok(live_before - removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_but_capped_and_other_failures_back_off() {
        let limited = |secs| ProviderError::RateLimited {
            retry_after: Some(StdDuration::from_secs(secs)),
        };
        assert_eq!(retry_wait(&limited(3), 1), StdDuration::from_secs(3));
        assert_eq!(retry_wait(&limited(3600), 1), MAX_RETRY_WAIT);
        let unavailable = ProviderError::Unavailable("HTTP 500".into());
        let mut series = Event::new("u", "c", "k", "t", (Utc::now(), Utc::now()), Utc::now());
        series.is_recurring = true;
        series.recurrence_rule = Some("RRULE:FREQ=WEEKLY;BYDAY=MO".into());
        assert!(rule_expands(&series));
        series.recurrence_rule = Some("RRULE:FREQ=WEEKLY;BYDAY=XX".into());
        assert!(!rule_expands(&series), "kept, but counted as invalid");
        assert_eq!(retry_wait(&unavailable, 1), StdDuration::from_millis(500));
        assert_eq!(retry_wait(&unavailable, 3), StdDuration::from_secs(2));
    }
}
