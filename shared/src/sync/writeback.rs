//! Write-back: local changes (created, changed or deleted through the API) pushed to the
//! provider after a sync, under the same lease. Google Calendar v3 today: creates carry our own
//! event id (hex is valid base32hex), so a retried push answers 409 and makes no second event,
//! and the next sync recognises the event by its id; changes and deletions carry `If-Match`
//! with the provider's ETag, and a precondition failure lets the provider's version win.
//! CalDAV: a create is a PUT with `If-None-Match: *` to the href the event was keyed by when it
//! was created (`<collection>/<our id>.ics`); changes and deletions carry `If-Match`.
//! Microsoft Graph: creates carry our key as `transactionId`; Graph's id is indexed back to our
//! key (`byProviderId`), so its deltas find the events we made (docs/decisions.md).

use serde::Serialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::crypto::Secret;
use crate::model::{Connection, Event, PendingChange, Provider, SyncStatus};
use crate::providers::{exchange, status_error, transport_error, ProviderError};
use crate::store::StoreError;
use crate::sync::feeds::{caldav::CalDavFeed, Feed};

/// Local changes pushed per sync; the rest wait for the next one.
const PUSH_BATCH: i32 = 100;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    pub pushed: usize,
    /// The provider's version changed meanwhile: it wins, the local change is dropped.
    pub superseded: usize,
    pub failed: usize,
}

/// Google's event resource for a local event.
fn google_body(event: &Event, with_id: bool) -> Value {
    let time = |instant: chrono::DateTime<chrono::Utc>, date: Option<chrono::NaiveDate>| match (
        event.is_all_day,
        date,
    ) {
        (true, Some(d)) => json!({ "date": d.format("%Y-%m-%d").to_string() }),
        _ => {
            json!({ "dateTime": crate::time::key_format(instant), "timeZone": event.timezone.as_deref().unwrap_or("UTC") })
        }
    };
    let mut body = json!({
        "summary": event.title,
        "description": event.description,
        "location": event.location,
        "start": time(event.start_time, event.start_date),
        "end": time(event.end_time, event.end_date),
        "attendees": event.attendees.iter().map(|a| json!({
            "email": a.email, "displayName": a.name, "optional": a.optional,
        })).collect::<Vec<_>>(),
        "reminders": {
            "useDefault": event.reminders.is_empty(),
            "overrides": event.reminders.iter().map(|r| json!({
                "method": serde_json::to_value(r.method).unwrap_or(Value::Null), "minutes": r.minutes,
            })).collect::<Vec<_>>(),
        },
    });
    if let Some(rule) = &event.recurrence_rule {
        body["recurrence"] = json!(rule.lines().collect::<Vec<_>>());
    }
    if with_id {
        body["id"] = json!(event.event_key);
    }
    body
}

enum Outcome {
    /// Done; the provider's new ETag and, for a create where the provider chose the id, that id.
    Pushed(Option<String>),
    Created {
        id: String,
        etag: Option<String>,
    },
    /// The provider's version, read again after a failed precondition.
    Superseded(Option<Box<Event>>),
}

async fn push_google(
    http: &reqwest::Client,
    base: &str,
    calendar: &str,
    token: &Secret,
    event: &Event,
) -> Result<Outcome, ProviderError> {
    let calendar: String = url::form_urlencoded::byte_serialize(calendar.as_bytes()).collect();
    let url = format!("{base}/calendars/{calendar}/events");
    let key: String = url::form_urlencoded::byte_serialize(event.event_key.as_bytes()).collect();
    let precondition = |request: reqwest::RequestBuilder| match &event.provider_etag {
        Some(etag) => request.header("If-Match", etag),
        None => request,
    };
    let request = match event.pending_change {
        Some(PendingChange::Create) => http.post(&url).json(&google_body(event, true)),
        Some(PendingChange::Update) => precondition(
            http.patch(format!("{url}/{key}"))
                .json(&google_body(event, false)),
        ),
        Some(PendingChange::Delete) => precondition(http.delete(format!("{url}/{key}"))),
        None => return Ok(Outcome::Pushed(event.provider_etag.clone())),
    };
    let (status, headers, body) = exchange(request.bearer_auth(token.expose())).await?;
    let etag = || {
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["etag"].as_str().map(str::to_owned))
    };
    match (event.pending_change, status.as_u16()) {
        (_, 200..=299) => Ok(Outcome::Pushed(etag())),
        // Our id already exists: an earlier push of this create landed (a retry after a crash).
        (Some(PendingChange::Create), 409) => Ok(Outcome::Pushed(None)),
        // Already gone at the provider: nothing left to delete.
        (Some(PendingChange::Delete), 404 | 410) => Ok(Outcome::Pushed(None)),
        (_, 412) => {
            // Re-read the provider's version rather than overwrite it.
            let current = http
                .get(format!("{url}/{key}"))
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(transport_error)?;
            let text = current.text().await.map_err(transport_error)?;
            let provider = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                match crate::sync::feeds::google::to_change(&v) {
                    crate::sync::Change::Upsert(e) => Some(e),
                    _ => None,
                }
            });
            Ok(Outcome::Superseded(provider))
        }
        _ => Err(status_error(status, &headers, &body)),
    }
}

/// Pushes the connection's pending local changes through its feed's credentials.
pub async fn push_pending(
    app: &App,
    conn: &Connection,
    feed: &Feed,
) -> Result<PushReport, StoreError> {
    let mut report = PushReport::default();
    let google = app
        .config
        .oauth(Provider::Google)
        .map(|s| s.api_base.clone());
    let graph = app
        .config
        .oauth(Provider::Microsoft)
        .map(|s| s.api_base.clone());
    let mut batch = app.store.pending_events(&conn.id, PUSH_BATCH).await?;
    // A series before its overrides: an override is written to an instance of a series that
    // must exist at the provider first.
    batch.sort_by_key(|e| e.parent_event_id.is_some());
    if let Feed::CalDav(caldav) = feed {
        push_resources(app, conn, caldav, batch, &mut report).await?;
        return Ok(report);
    }
    for event in batch {
        let outcome = match (feed, &google, &graph) {
            (Feed::Google(g), Some(base), _) => {
                push_google(app.http(), base, &conn.calendar_id, &g.token, &event).await
            }
            (Feed::Microsoft(m), _, Some(base)) => {
                let graph = GraphTarget {
                    http: app.http(),
                    base,
                    token: &m.token,
                };
                match placeholder_series(app, &event).await? {
                    Some(series) => graph.push_override(&series, &event).await,
                    None => push_graph(app.http(), base, &conn.calendar_id, &m.token, &event).await,
                }
            }
            _ => continue,
        };
        settle(app, event, outcome, &mut report).await?;
    }
    Ok(report)
}

/// Records the outcome of pushing one event, if nobody changed it since it was read.
async fn settle(
    app: &App,
    event: Event,
    outcome: Result<Outcome, ProviderError>,
    report: &mut PushReport,
) -> Result<(), StoreError> {
    let expected = event.version;
    let mut done = event.clone();
    match outcome {
        Ok(Outcome::Created { id, etag }) => {
            report.pushed += 1;
            done.pending_change = None;
            done.sync_status = SyncStatus::Synced;
            done.provider_event_id = Some(id);
            done.provider_etag = etag;
        }
        Ok(Outcome::Pushed(etag)) => {
            report.pushed += 1;
            done.pending_change = None;
            if !done.is_deleted() {
                done.sync_status = SyncStatus::Synced;
                done.provider_event_id = done
                    .provider_event_id
                    .or_else(|| Some(done.event_key.clone()));
                done.provider_etag = etag.or(done.provider_etag);
            }
        }
        Ok(Outcome::Superseded(provider)) => {
            // The provider's version wins; the local change is dropped (and audited below).
            report.superseded += 1;
            if let Some(theirs) = provider {
                let mut theirs = *theirs;
                theirs.user_id = done.user_id.clone();
                theirs.connection_id = done.connection_id.clone();
                theirs.created_at = done.created_at;
                theirs.version = done.version;
                done = theirs;
            }
            done.pending_change = None;
            done.sync_status = SyncStatus::Synced;
            done.fingerprint = None;
            let audit = crate::model::AuditEntry::new(
                &done.user_id,
                "EVENT_WRITE_BACK_SUPERSEDED",
                "EVENT",
                Some(&done.public_id()),
            )
            .failed("the event changed at the provider; the provider's version was kept");
            app.store.append_audit(&audit).await?;
        }
        Err(e) => {
            report.failed += 1;
            tracing::warn!(event = %event.event_key, error = %e, "write-back failed; will retry");
            done.sync_status = SyncStatus::Failed;
            done.sync_error = Some(e.to_string());
        }
    }
    if done.pending_change.is_none() {
        done.sync_error = None;
    }
    done.version += 1;
    done.last_synced_at = Some(crate::store::Store::now());
    match app.store.replace_pushed(&done, expected).await {
        // Changed through the API meanwhile: the newer change is pushed next time.
        Ok(()) | Err(StoreError::ConditionFailed) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One CalDAV resource as stored: an event, or a series with its overrides and the original
/// starts of its cancelled occurrences. It is written back whole, whichever part changed.
struct Resource {
    master: Event,
    overrides: Vec<Event>,
    cancelled: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Resource {
    async fn load(app: &App, connection_id: &str, href: &str) -> Result<Option<Self>, StoreError> {
        let Some(master) = app.store.event(connection_id, href).await? else {
            return Ok(None);
        };
        let crate::store::SeriesOverrides {
            overrides,
            cancelled,
        } = if master.is_recurring {
            app.store.series_overrides(&master).await?
        } else {
            Default::default()
        };
        Ok(Some(Self {
            master,
            overrides,
            cancelled,
        }))
    }

    /// The resource's UID: the one it has at the server (kept as the provider id), else ours. A
    /// server may refuse a PUT that changes it.
    fn uid(&self) -> String {
        self.master
            .provider_event_id
            .clone()
            .unwrap_or_else(|| crate::ics::uid(&self.master))
    }

    /// The iCalendar text: the series (with an EXDATE per cancelled occurrence), then its
    /// overrides, with the time zones they use.
    fn text(&self) -> String {
        let uid = Some(self.uid());
        let mut entries = vec![crate::ics::FeedEvent::plain(self.master.clone())];
        entries[0].exdates.clone_from(&self.cancelled);
        entries[0].uid.clone_from(&uid);
        for child in &self.overrides {
            let mut entry = crate::ics::FeedEvent::plain(child.clone());
            entry.series_all_day = self.master.is_all_day;
            entry.uid.clone_from(&uid);
            entries.push(entry);
        }
        let end = self
            .overrides
            .iter()
            .map(|e| e.end_time)
            .fold(self.master.end_time, chrono::DateTime::max);
        crate::ics::calendar(
            "calsync",
            &entries,
            self.master.start_time,
            end + chrono::Duration::days(1),
        )
    }
}

/// CalDAV: the pending changes grouped by resource (a series and its overrides share one), each
/// resource written once.
async fn push_resources(
    app: &App,
    conn: &Connection,
    feed: &CalDavFeed,
    batch: Vec<Event>,
    report: &mut PushReport,
) -> Result<(), StoreError> {
    let mut hrefs: Vec<String> = Vec::new();
    for event in &batch {
        let href = event
            .event_key
            .split('#')
            .next()
            .unwrap_or_default()
            .to_owned();
        if !hrefs.contains(&href) {
            hrefs.push(href);
        }
    }
    for href in hrefs {
        let parts: Vec<Event> = batch
            .iter()
            .filter(|e| e.event_key.split('#').next() == Some(href.as_str()))
            .cloned()
            .collect();
        let Some(resource) = Resource::load(app, &conn.id, &href).await? else {
            // Overrides whose series is gone: nothing left to write them into.
            for part in parts {
                settle(app, part, Ok(Outcome::Pushed(None)), report).await?;
            }
            continue;
        };
        let outcome = push_caldav(feed, &conn.calendar_id, &resource).await;
        for part in parts.into_iter().filter(|p| p.event_key != href) {
            let shared = match &outcome {
                Ok(Outcome::Superseded(_)) => Ok(Outcome::Superseded(None)),
                Ok(_) => Ok(Outcome::Pushed(None)),
                Err(e) => Err(ProviderError::Unavailable(e.to_string())),
            };
            settle(app, part, shared, report).await?;
        }
        // The series carries the resource's new ETag, whether or not it changed itself.
        settle(app, resource.master, outcome, report).await?;
    }
    Ok(())
}

async fn push_caldav(
    feed: &CalDavFeed,
    collection: &str,
    resource: &Resource,
) -> Result<Outcome, ProviderError> {
    let event = &resource.master;
    let base = url::Url::parse(collection)
        .map_err(|_| ProviderError::Protocol("bad collection URL".into()))?;
    let url = base
        .join(&event.event_key)
        .map_err(|_| ProviderError::Protocol("bad event href".into()))?;
    let url = feed.policy.check(url.as_str())?;
    let auth = |request: reqwest::RequestBuilder| {
        request.basic_auth(&feed.username, Some(feed.password.expose()))
    };
    let precondition = |request: reqwest::RequestBuilder| match &event.provider_etag {
        Some(etag) => request.header("If-Match", etag),
        None => request,
    };
    let put = |request: reqwest::RequestBuilder| {
        request
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(resource.text())
    };
    let request = match event.pending_change {
        Some(PendingChange::Create) => put(feed.http.put(url.clone())).header("If-None-Match", "*"),
        Some(PendingChange::Delete) => precondition(feed.http.delete(url.clone())),
        // The series itself, or only an override or cancellation in its resource, changed.
        Some(PendingChange::Update) | None => precondition(put(feed.http.put(url.clone()))),
    };
    let response = auth(request).send().await.map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let etag = headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.map_err(transport_error)?;
    match (event.pending_change, status.as_u16()) {
        // The UID we wrote is the resource's from now on.
        (Some(PendingChange::Create), 200..=299) => Ok(Outcome::Created {
            id: resource.uid(),
            etag,
        }),
        (_, 200..=299) => Ok(Outcome::Pushed(etag)),
        // The resource exists: an earlier push of this create landed.
        (Some(PendingChange::Create), 412) => Ok(Outcome::Created {
            id: resource.uid(),
            etag: None,
        }),
        (Some(PendingChange::Delete), 404 | 410) => Ok(Outcome::Pushed(None)),
        (_, 412) => {
            let current = auth(feed.http.get(url))
                .send()
                .await
                .map_err(transport_error)?;
            let etag = current
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = current.text().await.map_err(transport_error)?;
            let provider = crate::sync::feeds::parse_calendar_resource(&event.event_key, &text)
                .into_iter()
                .find_map(|c| match c {
                    crate::sync::Change::Upsert(mut e) if e.event_key == event.event_key => {
                        e.provider_etag = etag.clone();
                        Some(e)
                    }
                    _ => None,
                });
            Ok(Outcome::Superseded(provider))
        }
        _ => Err(status_error(status, &headers, &body)),
    }
}

/// The Graph id of the series an override placeholder (`<series>@<original start>`) belongs to:
/// a Microsoft series made here, whose occurrences Graph has not listed to us yet.
async fn placeholder_series(app: &App, event: &Event) -> Result<Option<String>, StoreError> {
    let Some(parent) = event.parent_event_id.as_deref() else {
        return Ok(None);
    };
    if event.provider_expanded
        || event.provider_event_id.is_some()
        || !event.event_key.contains('@')
    {
        return Ok(None);
    }
    Ok(app
        .store
        .event(&event.connection_id, parent)
        .await?
        .and_then(|m| m.provider_event_id))
}

struct GraphTarget<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    token: &'a Secret,
}

impl GraphTarget<'_> {
    fn item(&self, id: &str) -> String {
        format!(
            "{}/me/events/{}",
            self.base,
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        )
    }

    /// Writes an override of a series' occurrence, found among the series' instances by its
    /// original start: changed (`PATCH`) or cancelled (`DELETE`).
    async fn push_override(&self, series: &str, event: &Event) -> Result<Outcome, ProviderError> {
        let original = event.original_start_time.ok_or_else(|| {
            ProviderError::Protocol("an override without its original start".into())
        })?;
        let window = [
            ("startDateTime", crate::time::key_format(original)),
            (
                "endDateTime",
                crate::time::key_format(original + chrono::Duration::minutes(1)),
            ),
        ];
        let (status, headers, body) = exchange(
            self.http
                .get(format!("{}/instances", self.item(series)))
                .query(&window)
                .bearer_auth(self.token.expose()),
        )
        .await?;
        if !status.is_success() {
            return Err(status_error(status, &headers, &body));
        }
        let listing: Value = serde_json::from_str(&body)
            .map_err(|e| ProviderError::Protocol(format!("instances: {e}")))?;
        let found = listing["value"].as_array().into_iter().flatten().find(|i| {
            i["originalStart"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t == original)
        });
        let Some(id) = found.and_then(|i| i["id"].as_str()) else {
            // Gone at Graph already (cancelled, or the series changed): nothing to write.
            return Ok(Outcome::Pushed(None));
        };
        let request = if event.is_deleted() {
            self.http.delete(self.item(id))
        } else {
            self.http.patch(self.item(id)).json(&graph_body(event)?)
        };
        let (status, headers, body) = exchange(request.bearer_auth(self.token.expose())).await?;
        match status.as_u16() {
            200..=299 | 404 if event.is_deleted() => Ok(Outcome::Pushed(None)),
            200..=299 => Ok(Outcome::Pushed(None)),
            _ => Err(status_error(status, &headers, &body)),
        }
    }
}

/// Graph's event resource for a local event: times in UTC, except a series' (its pattern repeats
/// in its own zone, which Graph keeps); a series carries its pattern.
fn graph_body(event: &Event) -> Result<Value, ProviderError> {
    let zone = event
        .timezone
        .as_deref()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        .filter(|_| event.is_recurring);
    let time = |t: chrono::DateTime<chrono::Utc>| match zone {
        Some(zone) => {
            json!({ "dateTime": t.with_timezone(&zone).format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": zone.name() })
        }
        None => json!({ "dateTime": t.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC" }),
    };
    let mut body = json!({
        "subject": event.title,
        "body": { "contentType": "text", "content": event.description.clone().unwrap_or_default() },
        "start": time(event.start_time),
        "end": time(event.end_time),
        "isAllDay": event.is_all_day,
        "location": { "displayName": event.location.clone().unwrap_or_default() },
        "attendees": event.attendees.iter().map(|a| json!({
            "emailAddress": { "address": a.email, "name": a.name },
            "type": if a.optional { "optional" } else { "required" },
        })).collect::<Vec<_>>(),
        "showAs": if event.transparent { "free" } else { "busy" },
    });
    if let Some(lines) = event
        .recurrence_rule
        .as_deref()
        .filter(|_| event.is_recurring)
    {
        body["recurrence"] =
            crate::providers::graph_recurrence::to_graph(lines, event.start_time, zone)
                .map_err(ProviderError::Protocol)?;
    }
    Ok(body)
}

/// Microsoft Graph: a create carries our key as `transactionId` (a retried create returns the
/// event made the first time); Graph's id is kept as the provider id and indexed back to our key.
async fn push_graph(
    http: &reqwest::Client,
    base: &str,
    calendar: &str,
    token: &Secret,
    event: &Event,
) -> Result<Outcome, ProviderError> {
    let calendar: String = url::form_urlencoded::byte_serialize(calendar.as_bytes()).collect();
    let item = |id: &str| {
        format!(
            "{base}/me/events/{}",
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        )
    };
    let precondition = |request: reqwest::RequestBuilder| match &event.provider_etag {
        Some(etag) => request.header("If-Match", etag),
        None => request,
    };
    // Graph's id: the key of an event that came from Graph, else what Graph gave our create.
    let provider_id = event.provider_event_id.as_deref();
    let request = match (event.pending_change, provider_id) {
        (Some(PendingChange::Create), _) => {
            let mut body = graph_body(event)?;
            body["transactionId"] = json!(event.event_key);
            http.post(format!("{base}/me/calendars/{calendar}/events"))
                .json(&body)
        }
        (Some(PendingChange::Update), Some(id)) => {
            precondition(http.patch(item(id)).json(&graph_body(event)?))
        }
        (Some(PendingChange::Delete), Some(id)) => precondition(http.delete(item(id))),
        // Never created at the provider: nothing to change or delete there.
        (Some(_), None) | (None, _) => return Ok(Outcome::Pushed(event.provider_etag.clone())),
    };
    let (status, headers, body) = exchange(request.bearer_auth(token.expose())).await?;
    let json = serde_json::from_str::<Value>(&body).ok();
    let etag = json
        .as_ref()
        .and_then(|v| v["@odata.etag"].as_str().map(str::to_owned));
    match (event.pending_change, status.as_u16()) {
        (Some(PendingChange::Create), 200..=299) => {
            match json.as_ref().and_then(|v| v["id"].as_str()) {
                Some(id) => Ok(Outcome::Created {
                    id: id.to_owned(),
                    etag,
                }),
                None => Err(ProviderError::Protocol(
                    "Graph created an event without an id".into(),
                )),
            }
        }
        (_, 200..=299) => Ok(Outcome::Pushed(etag)),
        (Some(PendingChange::Delete), 404 | 410) => Ok(Outcome::Pushed(None)),
        (_, 412) => {
            let id = provider_id.unwrap_or_default();
            let current = http
                .get(item(id))
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(transport_error)?;
            let text = current.text().await.map_err(transport_error)?;
            let provider = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                match crate::sync::feeds::microsoft::to_change(&v) {
                    crate::sync::Change::Upsert(mut e) => {
                        e.provider_event_id =
                            Some(std::mem::replace(&mut e.event_key, event.event_key.clone()));
                        Some(e)
                    }
                    _ => None,
                }
            });
            Ok(Outcome::Superseded(provider))
        }
        _ => Err(status_error(status, &headers, &body)),
    }
}
