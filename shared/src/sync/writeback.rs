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

use crate::api::App;
use crate::crypto::Secret;
use crate::model::{Connection, Event, PendingChange, Provider, SyncStatus};
use crate::providers::{status_error, transport_error, ProviderError};
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
    let response = request
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(transport_error)?;
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
    for event in app.store.pending_events(&conn.id, PUSH_BATCH).await? {
        let expected = event.version;
        let mut done = event.clone();
        let outcome = match (feed, &google) {
            (Feed::Google(g), Some(base)) => {
                push_google(&app.http, base, &conn.calendar_id, &g.token, &event).await
            }
            (Feed::CalDav(c), _) => push_caldav(c, &conn.calendar_id, &event).await,
            (Feed::Microsoft(m), _) => match &graph {
                Some(base) => {
                    push_graph(&app.http, base, &conn.calendar_id, &m.token, &event).await
                }
                None => continue,
            },
            _ => continue,
        };
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
            Ok(()) | Err(StoreError::ConditionFailed) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// One event as its own iCalendar resource (with the time zones it uses).
fn resource(event: &Event) -> String {
    crate::ics::calendar(
        "calsync",
        &[crate::ics::FeedEvent::plain(event.clone())],
        event.start_time,
        event.end_time + chrono::Duration::days(1),
    )
}

async fn push_caldav(
    feed: &CalDavFeed,
    collection: &str,
    event: &Event,
) -> Result<Outcome, ProviderError> {
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
            .body(resource(event))
    };
    let request = match event.pending_change {
        Some(PendingChange::Create) => put(feed.http.put(url.clone())).header("If-None-Match", "*"),
        Some(PendingChange::Update) => precondition(put(feed.http.put(url.clone()))),
        Some(PendingChange::Delete) => precondition(feed.http.delete(url.clone())),
        None => return Ok(Outcome::Pushed(event.provider_etag.clone())),
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
        (_, 200..=299) => Ok(Outcome::Pushed(etag)),
        // The resource exists: an earlier push of this create landed.
        (Some(PendingChange::Create), 412) => Ok(Outcome::Pushed(None)),
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

/// Graph's event resource for a local event (times in UTC; Graph keeps the zone we name).
fn graph_body(event: &Event) -> Value {
    let time = |t: chrono::DateTime<chrono::Utc>| json!({ "dateTime": t.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC" });
    json!({
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
    })
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
    let provider_id = event
        .provider_event_id
        .as_deref()
        .filter(|p| *p != event.event_key);
    let request = match (event.pending_change, provider_id) {
        (Some(PendingChange::Create), _) => {
            let mut body = graph_body(event);
            body["transactionId"] = json!(event.event_key);
            http.post(format!("{base}/me/calendars/{calendar}/events"))
                .json(&body)
        }
        (Some(PendingChange::Update), Some(id)) => {
            precondition(http.patch(item(id)).json(&graph_body(event)))
        }
        (Some(PendingChange::Delete), Some(id)) => precondition(http.delete(item(id))),
        // Never created at the provider: nothing to change or delete there.
        (Some(_), None) | (None, _) => return Ok(Outcome::Pushed(event.provider_etag.clone())),
    };
    let response = request
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(transport_error)?;
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
