//! `PATCH` and `DELETE` of recurring events: one occurrence, this and following, or the whole
//! series (`?scope=instance|following|series`; docs/decisions.md 34). What to store is decided in
//! [`crate::series_edit`]; here it is validated, stored in one transaction, and audited.

use chrono::{DateTime, Duration, Utc};
use http::StatusCode;

use super::events::{
    accepted_recurrence, apply_fields, apply_times, dto, mark_changed, mark_deleted, new_event_key,
    UpdateEventRequest,
};
use super::{ApiRequest, ApiResponse, App};
use crate::error::{ApiError, ApiResult};
use crate::model::{AuditEntry, Connection, Event, PendingChange, Provider, SyncStatus};
use crate::recurrence::{rule_of, Rule};
use crate::series_edit::{self, exception_key, Scope};
use crate::store::{Expect, SeriesOverrides, Store, StoreError};
use crate::time::key_format;

/// The `scope` query parameter, if given.
pub(super) fn scope(req: &ApiRequest) -> ApiResult<Option<Scope>> {
    req.query
        .get("scope")
        .map(|raw| Scope::parse(raw).map_err(|e| ApiError::bad_request("invalid_scope", e)))
        .transpose()
}

/// Whether an edit is one of a recurring event: of a series, one of its computed occurrences,
/// or one of its stored overrides (a Graph occurrence is one: a stored event of its own).
pub(super) fn handles(event: &Event, _scope: Option<Scope>) -> bool {
    event.is_occurrence || event.is_recurring || event.parent_event_id.is_some()
}

/// Stores one edit (`Store::write_events`), its failures mapped by [`edit_error`].
async fn save(
    app: &App,
    writes: &[(Event, Expect)],
    count: i64,
    entry: &AuditEntry,
) -> ApiResult<()> {
    let reservations = app
        .store
        .write_events(writes, count, entry)
        .await
        .map_err(edit_error)?;
    let events: Vec<&Event> = writes.iter().map(|(e, _)| e).collect();
    app.after_local_write(&events, &reservations).await;
    Ok(())
}

/// Maps a failed edit transaction (`Store::write_events`: the calendar, the audit entry, then the
/// events) to what the client can do about it.
fn edit_error(err: StoreError) -> ApiError {
    if err.failed_condition_at(0) {
        return ApiError::not_found("calendar");
    }
    match &err {
        StoreError::TransactionCancelled(reasons)
            if reasons
                .iter()
                .flatten()
                .any(|r| r == "ConditionalCheckFailed") =>
        {
            ApiError::conflict(
                "concurrent_modification",
                "the series changed meanwhile; read it again and retry",
            )
        }
        _ => err.into(),
    }
}

/// What an edit of `event` reaches: the scope asked for (else the id's own: the series for a
/// series id, one occurrence otherwise), and whether `event` is the series itself.
fn reach(event: &Event, scope: Option<Scope>) -> (Scope, bool) {
    let master = is_master(event);
    let default = if master {
        Scope::Series
    } else {
        Scope::Instance
    };
    (scope.unwrap_or(default), master)
}

fn instance_of_series() -> ApiError {
    ApiError::bad_request(
        "invalid_scope",
        "this is the series itself; scope=instance needs the id of one of its occurrences",
    )
}

/// The event is a series (not an occurrence or override of one).
fn is_master(event: &Event) -> bool {
    event.is_recurring && event.parent_event_id.is_none() && !event.is_occurrence
}

/// The series of an occurrence or override.
async fn master_of(app: &App, event: &Event) -> ApiResult<Event> {
    let parent = event
        .parent_event_id
        .as_deref()
        .ok_or_else(|| ApiError::not_found("series"))?;
    match app.store.event(&event.connection_id, parent).await? {
        Some(master) if master.is_recurring && !master.is_deleted() => Ok(master),
        // Graph lists occurrences; their series is fetched by the sync that first sees them.
        None if event.provider_expanded => Err(ApiError::conflict(
            "not_yet_synced",
            "this occurrence's series has not been synced yet; retry after the next sync",
        )),
        _ => Err(ApiError::not_found("series")),
    }
}

/// A Graph occurrence that differs from its series (Graph's exception, or changed here).
fn is_graph_override(event: &Event) -> bool {
    event
        .provider_metadata
        .as_ref()
        .is_some_and(|m| m["seriesType"] == "exception")
        || event.pending_change == Some(PendingChange::Update)
}

/// The stored occurrences of a series Graph lists (within the window Graph syncs).
pub(super) async fn graph_occurrences(app: &App, master: &Event) -> ApiResult<Vec<Event>> {
    let window = crate::sync::feeds::graph_window();
    let range = crate::time::TimeRange {
        start: window.start.max(master.start_time),
        end: window.end,
    };
    if range.start >= range.end {
        return Ok(Vec::new());
    }
    let connections = std::collections::HashSet::from([master.connection_id.clone()]);
    let filter = crate::store::EventFilter::default();
    let (mut found, mut after) = (Vec::new(), None::<String>);
    loop {
        let page = app
            .store
            .events_in_range(&crate::store::RangeQuery {
                user_id: &master.user_id,
                range,
                connections: &connections,
                filter: &filter,
                limit: 1000,
                after: after.as_deref(),
            })
            .await?;
        found.extend(
            page.events
                .into_iter()
                .filter(|e| e.parent_event_id.as_deref() == Some(master.event_key.as_str())),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(found),
        }
    }
}

fn expandable(master: &Event) -> ApiResult<std::sync::Arc<Rule>> {
    rule_of(master).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_recurrence",
            "the series' rule cannot be expanded, so its occurrences cannot be edited one by one; change the whole series",
        )
    })
}

/// The key of the override of `master`'s occurrence at `original`; Graph series are expanded by
/// Graph, and a Microsoft series made here has no occurrence ids at Graph until it is synced.
fn child_key(calendar: &Connection, master: &Event, original: DateTime<Utc>) -> ApiResult<String> {
    exception_key(calendar.provider, master, original).ok_or_else(|| {
        ApiError::conflict(
            "not_yet_synced",
            "this Microsoft series has not been synced yet; edit its occurrences after the next sync",
        )
    })
}

/// The precondition for writing a child under `key` (a dropped override may still be stored
/// there, deleted), and the stored item if any.
async fn slot(app: &App, connection_id: &str, key: &str) -> ApiResult<(Expect, Option<Event>)> {
    match app.store.event(connection_id, key).await? {
        None => Ok((Expect::Absent, None)),
        Some(old) if old.is_deleted() => Ok((Expect::Deleted(old.version), Some(old))),
        Some(_) => Err(ApiError::conflict(
            "concurrent_modification",
            "the occurrence changed meanwhile; read it again and retry",
        )),
    }
}

/// A new child over a possibly stored deleted one keeps that one's version line.
fn over(mut child: Event, old: Option<Event>) -> Event {
    if let Some(old) = old {
        child.version = old.version + 1;
        child.created_at = old.created_at;
    }
    child
}

fn audit(user_id: &str, action: &str, event: &Event, scope: &str) -> AuditEntry {
    AuditEntry::new(user_id, action, "EVENT", Some(&event.public_id()))
        .with_metadata(serde_json::json!({ "calendarId": event.connection_id, "scope": scope }))
}

pub(super) async fn update(
    app: &App,
    user_id: &str,
    event: Event,
    calendar: &Connection,
    body: &UpdateEventRequest,
    scope: Option<Scope>,
) -> ApiResult<ApiResponse> {
    match reach(&event, scope) {
        (Scope::Series, true) => update_series(app, user_id, event, calendar, body, None).await,
        (Scope::Series, false) => {
            let series = master_of(app, &event).await?;
            update_series(app, user_id, series, calendar, body, Some(&event)).await
        }
        (Scope::Instance, false) => update_instance(app, user_id, event, calendar, body).await,
        (Scope::Following, false) => split(app, user_id, event, calendar, body).await,
        (Scope::Instance, true) => Err(instance_of_series()),
        (Scope::Following, true) => Err(first_occurrence_split()),
    }
}

fn first_occurrence_split() -> ApiError {
    ApiError::bad_request(
        "invalid_split",
        "the first occurrence starts the series: change the whole series (scope=series) instead of splitting it there",
    )
}

/// Moving an occurrence onto the original start of another one would make two of them claim it.
fn check_collision(rule: &Rule, original: DateTime<Utc>, moved: &Event) -> ApiResult<()> {
    if moved.start_time != original && rule.occurs_at(moved.start_time) {
        return Err(ApiError::bad_request(
            "occurrence_collision",
            format!(
                "another occurrence of the series starts at {}; move this one elsewhere",
                key_format(moved.start_time)
            ),
        ));
    }
    Ok(())
}

/// One occurrence: it becomes (or stays) an override of the series.
async fn update_instance(
    app: &App,
    user_id: &str,
    event: Event,
    calendar: &Connection,
    body: &UpdateEventRequest,
) -> ApiResult<ApiResponse> {
    if body.recurrence.is_some() {
        return Err(ApiError::bad_request(
            "invalid_scope",
            "recurrence belongs to the series: use scope=series, or scope=following to change it from this occurrence on",
        ));
    }
    // A Graph occurrence can be changed before its series is fetched (then without the check
    // against the series' other occurrences).
    let master = match master_of(app, &event).await {
        Err(e) if !event.provider_expanded => return Err(e),
        found => found.ok(),
    };
    let original = event.original_start_time.unwrap_or(event.start_time);
    let now = Store::now();
    let (mut child, expect, count) = if event.is_occurrence {
        let master = master
            .as_ref()
            .ok_or_else(|| ApiError::not_found("series"))?;
        let key = child_key(calendar, master, original)?;
        let (expect, old) = slot(app, &event.connection_id, &key).await?;
        let mut child = over(
            series_edit::child_of(&event, key, &master.event_key, now),
            old,
        );
        // The instance exists at the provider already (Google's instance id, the CalDAV
        // resource): writing the override back is an update there.
        child.pending_change = Some(PendingChange::Update);
        (child, expect, 1)
    } else {
        let expect = Expect::Version(event.version);
        (event, expect, 0)
    };
    apply_times(&mut child, body)?;
    apply_fields(&mut child, body)?;
    if let Some(master) = &master {
        check_collision(&*expandable(master)?, original, &child)?;
    }
    mark_changed(&mut child, now);
    let entry = audit(user_id, "EVENT_UPDATED", &child, "instance");
    save(app, &[(child.clone(), expect)], count, &entry).await?;
    ApiResponse::ok(&dto(&child, calendar))
}

/// The series' live overrides, read in full; for a series Graph lists, its stored occurrences.
async fn live_overrides(app: &App, master: &Event) -> ApiResult<Vec<Event>> {
    if master.provider_expanded {
        return graph_occurrences(app, master).await;
    }
    Ok(app.store.series_overrides(master).await?.overrides)
}

/// The series' live overrides and cancelled occurrences, each read once; for a series Graph
/// lists, its stored occurrences and the cancellations made here.
async fn children(app: &App, master: &Event) -> ApiResult<SeriesOverrides> {
    if !master.provider_expanded {
        return Ok(app.store.series_overrides(master).await?);
    }
    let cancelled = graph_cancellations(app, master)
        .await?
        .iter()
        .filter_map(|e| e.original_start_time)
        .collect();
    Ok(SeriesOverrides {
        overrides: graph_occurrences(app, master).await?,
        cancelled,
    })
}

/// The occurrences of a series Graph lists that were cancelled here (a Graph occurrence removed
/// at the provider may only have left the sync window, so only ours count). Their keys are
/// Graph's and share no prefix with the series': the calendar's keys are read to find them.
async fn graph_cancellations(app: &App, master: &Event) -> ApiResult<Vec<Event>> {
    let keys: Vec<String> = app
        .store
        .stored_keys(&master.connection_id, "")
        .await?
        .into_iter()
        .filter(|k| !k.live && k.parent.as_deref() == Some(master.event_key.as_str()))
        .map(|k| k.event_key)
        .collect();
    let mut found: Vec<Event> = app
        .store
        .events_by_keys(&master.connection_id, &keys)
        .await?
        .into_values()
        .filter(|e| e.cancels_instance)
        .collect();
    // Graph's occurrence and the placeholder that cancelled it before Graph listed the series.
    found.sort_by_key(|e| e.original_start_time);
    found.dedup_by_key(|e| e.original_start_time);
    Ok(found)
}

/// An override the series no longer has: deleted here, and at a provider that keeps overrides
/// as items of their own (Google); a CalDAV resource is written again without it.
fn drop_override(mut child: Event, provider: Provider, now: DateTime<Utc>) -> (Event, Expect) {
    let expect = Expect::Version(child.version);
    mark_deleted(&mut child, now, false);
    if provider != Provider::Google {
        child.pending_change = None;
    }
    (child, expect)
}

/// Drops the series' live overrides whose original start `keep` refuses; returns how many.
async fn drop_overrides(
    app: &App,
    master: &Event,
    provider: Provider,
    keep: &(dyn Fn(DateTime<Utc>) -> bool + Sync),
    now: DateTime<Utc>,
    writes: &mut Vec<(Event, Expect)>,
) -> ApiResult<i64> {
    let mut dropped = 0;
    for child in live_overrides(app, master).await? {
        if !keep(child.original_start_time.unwrap_or(child.start_time)) {
            writes.push(drop_override(child, provider, now));
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// Whether an edit moves the series' original starts (its rule, first start, zone or kind).
fn timing_changed(before: &Event, after: &Event) -> bool {
    before.recurrence_rule != after.recurrence_rule
        || before.start_time != after.start_time
        || before.timezone != after.timezone
        || before.is_all_day != after.is_all_day
}

/// The whole series. From an occurrence (`scope=series` on its id), times in the body move every
/// occurrence by as much as they move that one.
async fn update_series(
    app: &App,
    user_id: &str,
    mut master: Event,
    calendar: &Connection,
    body: &UpdateEventRequest,
    from_occurrence: Option<&Event>,
) -> ApiResult<ApiResponse> {
    let before = master.clone();
    match from_occurrence {
        None => apply_times(&mut master, body)?,
        Some(occurrence) => {
            let mut moved = occurrence.clone();
            apply_times(&mut moved, body)?;
            shift(&mut master, occurrence, &moved);
        }
    }
    apply_fields(&mut master, body)?;
    if let Some(lines) = &body.recurrence {
        let lines = accepted_recurrence(lines, &master, calendar.provider)?;
        series_edit::set_recurrence(&mut master, &lines);
    } else if timing_changed(&before, &master) {
        expandable(&master)?;
    }
    let now = Store::now();
    mark_changed(&mut master, now);
    let mut writes = Vec::new();
    let mut count = 0;
    if before.provider_expanded {
        let rule = expandable(&master)?;
        take_over(
            app,
            &before,
            &mut master,
            &|t| rule.occurs_at(t),
            now,
            &mut writes,
            &mut count,
        )
        .await?;
    } else if timing_changed(&before, &master) {
        // Overrides stay where their original start still occurs (docs/decisions.md 34).
        let rule = expandable(&master)?;
        let keep = |t| rule.occurs_at(t);
        count -= drop_overrides(app, &before, calendar.provider, &keep, now, &mut writes).await?;
    }
    writes.insert(0, (master.clone(), Expect::Version(before.version)));
    let entry = audit(user_id, "EVENT_UPDATED", &master, "series");
    save(app, &writes, count, &entry).await?;
    ApiResponse::ok(&dto(&master, calendar))
}

/// A series Graph lists, changed here. Exchange drops a series' exceptions when its pattern
/// changes and re-makes its occurrences, so until Graph lists the series again (the sync adopts
/// it) the series is expanded here: its stored occurrences give way, and its overrides and
/// cancellations that `keep` (their original start still occurs) stay as placeholders that
/// write-back applies to Graph's occurrences by original start, after the series.
async fn take_over(
    app: &App,
    before: &Event,
    master: &mut Event,
    keep: &(dyn Fn(DateTime<Utc>) -> bool + Sync),
    now: DateTime<Utc>,
    writes: &mut Vec<(Event, Expect)>,
    count: &mut i64,
) -> ApiResult<()> {
    master.provider_expanded = false;
    *count += 1;
    for child in graph_occurrences(app, before).await? {
        let original = child.original_start_time.unwrap_or(child.start_time);
        if is_graph_override(&child) && keep(original) {
            let key = format!("{}@{}", master.event_key, key_format(original));
            let (expect, old) = slot(app, &master.connection_id, &key).await?;
            let mut placeholder = over(
                series_edit::child_of(&child, key, &master.event_key, now),
                old,
            );
            placeholder.pending_change = Some(PendingChange::Update);
            writes.push((placeholder, expect));
            *count += 1;
        }
        writes.push(drop_override(child, Provider::Microsoft, now));
        *count -= 1;
    }
    for gone in graph_cancellations(app, before).await? {
        let original = gone.original_start_time.unwrap_or(gone.start_time);
        if keep(original) {
            let key = format!("{}@{}", master.event_key, key_format(original));
            let (expect, old) = slot(app, &master.connection_id, &key).await?;
            writes.push((over(cancellation(master, key, original, now), old), expect));
        }
    }
    Ok(())
}

/// Moves a series as `moved` moves `occurrence` (start shift, new length, zone, kind).
fn shift(master: &mut Event, occurrence: &Event, moved: &Event) {
    let by = moved.start_time - occurrence.start_time;
    let length = moved.end_time - moved.start_time;
    master.start_time += by;
    master.end_time = master.start_time + length;
    master.timezone.clone_from(&moved.timezone);
    master.is_all_day = moved.is_all_day;
    if moved.is_all_day {
        let days = Duration::days(by.num_days());
        let start = master.start_date.or(moved.start_date).map(|d| d + days);
        master.start_date = start;
        master.end_date = match (start, moved.start_date, moved.end_date) {
            (Some(s), Some(a), Some(b)) => Some(s + (b - a)),
            _ => None,
        };
    } else {
        master.start_date = None;
        master.end_date = None;
    }
}

/// The series ended before its occurrence at `at`: its new state, the rule lines of the part
/// from `at` on, and what ending it writes besides (for a Graph series, the hand-back of its
/// occurrences before `at`; see [`take_over`]) with the change to the calendar's count. The
/// series itself is written first, by the caller, on its version.
async fn end_before(
    app: &App,
    master: &Event,
    rule: &Rule,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ApiResult<(Event, Vec<String>, Vec<(Event, Expect)>, i64)> {
    let parts = series_edit::split(master, rule, at)
        .map_err(|e| ApiError::bad_request("invalid_split", e))?;
    let mut old = master.clone();
    series_edit::set_recurrence(&mut old, &parts.before);
    mark_changed(&mut old, now);
    let (mut writes, mut count) = (Vec::new(), 0);
    if master.provider_expanded {
        // Expanded here until Graph lists it again.
        take_over(
            app,
            master,
            &mut old,
            &|t| t < at,
            now,
            &mut writes,
            &mut count,
        )
        .await?;
    }
    Ok((old, parts.from, writes, count))
}

/// This and following: the series ends before the occurrence, and a new series starts with it,
/// taking the overrides and cancellations from there on (where its rule still has them).
async fn split(
    app: &App,
    user_id: &str,
    event: Event,
    calendar: &Connection,
    body: &UpdateEventRequest,
) -> ApiResult<ApiResponse> {
    let master = master_of(app, &event).await?;
    let at = event.original_start_time.unwrap_or(event.start_time);
    let rule = expandable(&master)?;
    if at <= master.start_time || rule.count_before(at) == Some(0) {
        return Err(first_occurrence_split());
    }
    let now = Store::now();
    let (old, from, mut writes, mut count) = end_before(app, &master, &rule, at, now).await?;
    let mut new = series_edit::child_of(&master, new_event_key(calendar), "", now);
    new.parent_event_id = None;
    new.original_start_time = None;
    new.start_time = at;
    new.end_time = at + (master.end_time - master.start_time);
    if master.is_all_day {
        let days = Duration::days((at - master.start_time).num_days());
        new.start_date = master.start_date.map(|d| d + days);
        new.end_date = master.end_date.map(|d| d + days);
    }
    series_edit::set_recurrence(&mut new, &from);
    apply_times(&mut new, body)?;
    apply_fields(&mut new, body)?;
    if let Some(lines) = &body.recurrence {
        let lines = accepted_recurrence(lines, &new, calendar.provider)?;
        series_edit::set_recurrence(&mut new, &lines);
    }
    let new_rule = expandable(&new)?;
    new.pending_change = Some(PendingChange::Create);
    new.sync_status = SyncStatus::Pending;
    new.version = 1;

    writes.push((new.clone(), Expect::Absent));
    count += 1;
    let SeriesOverrides {
        overrides,
        cancelled,
    } = children(app, &master).await?;
    for child in overrides {
        let original = child.original_start_time.unwrap_or(child.start_time);
        if original < at {
            continue;
        }
        // A plain Graph occurrence is the new series' own; only overrides move.
        let moves = !master.provider_expanded || is_graph_override(&child);
        if moves && new_rule.occurs_at(original) {
            let key = child_key(calendar, &new, original)?;
            let mut moved = series_edit::child_of(&child, key, &new.event_key, now);
            moved.pending_change = Some(PendingChange::Update);
            moved.sync_status = SyncStatus::Pending;
            writes.push((moved, Expect::Absent));
            count += 1;
        }
        if !master.provider_expanded {
            writes.push(drop_override(child, calendar.provider, now));
            count -= 1;
        }
    }
    writes.insert(0, (old.clone(), Expect::Version(master.version)));
    for original in cancelled {
        if original >= at && new_rule.occurs_at(original) {
            let key = child_key(calendar, &new, original)?;
            writes.push((cancellation(&new, key, original, now), Expect::Absent));
        }
    }
    let entry = audit(user_id, "EVENT_SPLIT", &old, "following").with_metadata(serde_json::json!({
        "calendarId": old.connection_id,
        "scope": "following",
        "newSeriesId": new.public_id(),
        "splitAt": key_format(at),
    }));
    save(app, &writes, count, &entry).await?;
    ApiResponse::json(StatusCode::OK, &dto(&new, calendar))
}

/// A tombstone child cancelling `master`'s occurrence at `original`, to be written back.
fn cancellation(master: &Event, key: String, original: DateTime<Utc>, now: DateTime<Utc>) -> Event {
    let mut occurrence = master.clone();
    occurrence.start_time = original;
    occurrence.end_time = original + (master.end_time - master.start_time);
    occurrence.original_start_time = Some(original);
    let mut gone = series_edit::child_of(&occurrence, key, &master.event_key, now);
    mark_deleted(&mut gone, now, true);
    // The occurrence exists at the provider (if its series does) and is cancelled there.
    gone.pending_change = Some(PendingChange::Delete);
    gone
}

pub(super) async fn delete(
    app: &App,
    user_id: &str,
    event: Event,
    calendar: &Connection,
    scope: Option<Scope>,
) -> ApiResult<ApiResponse> {
    match reach(&event, scope) {
        (Scope::Series, true) => delete_series(app, user_id, event, calendar).await,
        (Scope::Series, false) => {
            let series = master_of(app, &event).await?;
            delete_series(app, user_id, series, calendar).await
        }
        (Scope::Instance, false) => cancel_instance(app, user_id, event, calendar).await,
        (Scope::Following, false) => end_series(app, user_id, event, calendar).await,
        (Scope::Instance, true) => Err(instance_of_series()),
        (Scope::Following, true) => delete_series(app, user_id, event, calendar).await,
    }
}

/// One occurrence is cancelled: a computed one gets a tombstone child, an override becomes one.
async fn cancel_instance(
    app: &App,
    user_id: &str,
    event: Event,
    calendar: &Connection,
) -> ApiResult<ApiResponse> {
    let now = Store::now();
    let (gone, expect, count) = if event.is_occurrence {
        let master = master_of(app, &event).await?;
        let original = event.original_start_time.unwrap_or(event.start_time);
        let key = child_key(calendar, &master, original)?;
        let (expect, old) = slot(app, &event.connection_id, &key).await?;
        let gone = over(cancellation(&master, key, original, now), old);
        (gone, expect, 0)
    } else {
        let expect = Expect::Version(event.version);
        let mut gone = event;
        // An override never written back has nothing to delete at the provider, but the
        // occurrence it replaced still has to be cancelled there.
        let created_here = gone.pending_change == Some(PendingChange::Create);
        mark_deleted(&mut gone, now, true);
        if created_here {
            gone.pending_change = Some(PendingChange::Delete);
        }
        (gone, expect, -1)
    };
    let entry = audit(user_id, "EVENT_DELETED", &gone, "instance");
    save(app, &[(gone, expect)], count, &entry).await?;
    Ok(ApiResponse::no_content())
}

/// This and following, deleted: the series ends before the occurrence (the whole series, if it
/// is the first), and its overrides from there on go.
async fn end_series(
    app: &App,
    user_id: &str,
    event: Event,
    calendar: &Connection,
) -> ApiResult<ApiResponse> {
    let master = master_of(app, &event).await?;
    let at = event.original_start_time.unwrap_or(event.start_time);
    let rule = expandable(&master)?;
    if at <= master.start_time || rule.count_before(at) == Some(0) {
        return delete_series(app, user_id, master, calendar).await;
    }
    let now = Store::now();
    let (old, _, mut writes, mut count) = end_before(app, &master, &rule, at, now).await?;
    if !master.provider_expanded {
        let keep = |t| t < at;
        count -= drop_overrides(app, &master, calendar.provider, &keep, now, &mut writes).await?;
    }
    writes.insert(0, (old.clone(), Expect::Version(master.version)));
    let entry = audit(user_id, "EVENT_DELETED", &old, "following");
    save(app, &writes, count, &entry).await?;
    Ok(ApiResponse::no_content())
}

/// The whole series, with its overrides: deleting the series at the provider takes them too.
async fn delete_series(
    app: &App,
    user_id: &str,
    mut master: Event,
    calendar: &Connection,
) -> ApiResult<ApiResponse> {
    let now = Store::now();
    let overrides = live_overrides(app, &master).await?;
    let expect = Expect::Version(master.version);
    mark_deleted(&mut master, now, false);
    let mut writes = vec![(master.clone(), expect)];
    let count = -1 - i64::try_from(overrides.len()).unwrap_or(0);
    for child in overrides {
        let (mut child, expect) = drop_override(child, calendar.provider, now);
        child.pending_change = None;
        writes.push((child, expect));
    }
    let entry = audit(user_id, "EVENT_DELETED", &master, "series");
    save(app, &writes, count, &entry).await?;
    Ok(ApiResponse::no_content())
}
