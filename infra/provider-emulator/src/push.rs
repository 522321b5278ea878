//! Push notifications: Google Calendar notification channels (`events.watch`, `channels.stop`)
//! and Microsoft Graph change-notification subscriptions (`/subscriptions`) with their webhook
//! deliveries; and the admin side (delivery faults, the delivery log, channel and subscription
//! listings, lifecycle notifications on demand).
//!
//! Every event write (API or admin) records a [`Change`]; once the request is answered,
//! [`dispatch`] turns the recorded changes (and queued messages such as a channel's `sync`) into
//! deliveries. Deliveries run on tokio tasks, one queue per channel or subscription (so a
//! channel's messages arrive in order), and never hold up an API answer; only Graph's validation
//! handshake is made while the create request waits, as Graph does. Deliveries go to loopback
//! addresses only.

// Handlers fail with the finished HTTP answer; it is built once per request, so its size does
// not matter and boxing every early return would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::events::Change;
use crate::google::{api_error, unauthenticated};
use crate::http::{guid, json, percent_decode, response, sha256, Req, Resp};
use crate::microsoft::{graph_account, graph_error, CALENDAR_SCOPES};
use crate::state::{Provider, State, TokenProblem};
use crate::tz::graph_timestamp;
use crate::Emulator;

/// `params.ttl` default of the Calendar API's watch methods: "Default is 604800 seconds."
pub(crate) const GOOGLE_DEFAULT_TTL: i64 = 604_800;
/// Google documents no maximum for Calendar channels; the emulator caps at the default week.
pub(crate) const GOOGLE_MAX_TTL: i64 = 604_800;
/// Graph's maximum lifetime of a subscription to Outlook events (basic notifications).
pub(crate) const GRAPH_MAX_MINUTES: i64 = 10_080;
/// "Any value under 45 minutes after the time of the request is automatically set to 45 minutes
/// after the request time." (subscription resource, `expirationDateTime`).
pub(crate) const GRAPH_MIN_MINUTES: i64 = 45;
/// The validation request must be answered within 10 seconds.
const VALIDATION_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Graph publishes change notifications "using an HTTP client with a 3-second timeout".
const GRAPH_TIMEOUT: StdDuration = StdDuration::from_secs(3);
/// Google documents no timeout; ten seconds.
const GOOGLE_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// The tenant of personal Microsoft accounts (the emulator's accounts are consumer ones).
pub(crate) const MSA_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// Channel ids: "Maximum length: 64 characters." Tokens: "Maximum length: 256 characters."
const MAX_CHANNEL_ID: usize = 64;
const MAX_CHANNEL_TOKEN: usize = 256;
/// `clientState`: "The maximum length is 128 characters."
const MAX_CLIENT_STATE: usize = 128;
const GOOGLE_USER_AGENT: &str =
    "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)";

/// Each `PushState` gets its own number: deliveries queued before `POST /admin/reset` see that
/// the state they belong to is gone and are not sent.
static EPOCH: AtomicU64 = AtomicU64::new(1);

// ---------------------------------------------------------------------------------------------
// State

/// A Google notification channel (`events.watch`).
#[derive(Clone, Debug)]
pub(crate) struct Channel {
    pub id: String,
    pub resource_id: String,
    pub resource_uri: String,
    /// The watched calendar (its stored id, not `primary`).
    pub calendar: String,
    pub account: String,
    pub client_id: String,
    pub address: String,
    pub token: Option<String>,
    pub expiration: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub stopped: Option<DateTime<Utc>>,
    /// The last `X-Goog-Message-Number` used (the `sync` message is 1).
    pub messages: u64,
}

impl Channel {
    fn live(&self, now: DateTime<Utc>) -> bool {
        self.stopped.is_none() && self.expiration > now
    }

    fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.stopped.is_some() {
            "stopped"
        } else if self.expiration <= now {
            "expired"
        } else {
            "live"
        }
    }
}

/// A Graph subscription to a calendar's events.
#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub id: String,
    /// As the client gave it.
    pub resource: String,
    pub calendar: String,
    pub account: String,
    pub user_id: String,
    pub application_id: String,
    pub change_type: String,
    pub kinds: BTreeSet<String>,
    pub client_state: Option<String>,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub expiration: DateTime<Utc>,
    pub latest_tls: String,
    pub created: DateTime<Utc>,
    /// When and how it ended: `deleted` (DELETE) or `removed` (a `subscriptionRemoved`).
    pub ended: Option<(DateTime<Utc>, &'static str)>,
}

impl Subscription {
    fn live(&self, now: DateTime<Utc>) -> bool {
        self.ended.is_none() && self.expiration > now
    }

    fn state(&self, now: DateTime<Utc>) -> &'static str {
        match self.ended {
            Some((_, how)) => how,
            None if self.expiration <= now => "expired",
            None => "live",
        }
    }

    /// The subscription resource as Graph returns it.
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_timestamp(self.expiration),
            "creatorId": self.user_id,
            "includeResourceData": false,
            "latestSupportedTlsVersion": self.latest_tls,
            "encryptionCertificate": null,
            "encryptionCertificateId": null,
            "notificationUrlAppId": null,
        })
    }
}

/// `PUT /admin/push`: deterministic delivery faults.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PushFaults {
    /// The next n notifications are not sent (`sync` messages and validation requests are
    /// never dropped).
    pub drop_next: u64,
    /// The next n notifications are sent twice.
    pub duplicate_next: u64,
    /// Every delivery waits this long first.
    pub delay_ms: u64,
}

/// One delivery attempt, as `GET /admin/push/log` lists it.
#[derive(Clone, Debug)]
pub(crate) struct LogEntry {
    pub seq: u64,
    pub provider: Provider,
    /// Channel or subscription id.
    pub id: String,
    /// `sync` / `exists` (Google), `created` / `updated` / `deleted`, a lifecycle event or
    /// `validation` (Graph).
    pub kind: String,
    pub url: String,
    pub message_number: Option<u64>,
    pub dropped: bool,
    pub duplicate: bool,
    pub pending: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub time: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
}

impl LogEntry {
    fn json(&self) -> Value {
        let mut v = json!({
            "seq": self.seq,
            "provider": self.provider,
            "id": self.id,
            "kind": self.kind,
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "dropped": self.dropped,
            "duplicated": self.duplicate,
            "pending": self.pending,
            "time": self.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "completedAt": self.completed.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        });
        match self.provider {
            Provider::Google => {
                v["channelId"] = json!(self.id);
                v["messageNumber"] = json!(self.message_number);
            }
            Provider::Microsoft => v["subscriptionId"] = json!(self.id),
        }
        v
    }
}

/// What must still hold when a queued delivery is about to be sent.
#[derive(Clone, Debug)]
enum Liveness {
    Channel(String),
    Subscription(String),
    Always,
}

/// One HTTP POST to make.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    epoch: u64,
    seq: u64,
    /// Deliveries with the same key go out one after the other, in order.
    key: String,
    url: String,
    headers: Vec<(&'static str, String)>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    delay_ms: u64,
    timeout: StdDuration,
    live: Liveness,
}

pub(crate) struct PushState {
    epoch: u64,
    pub channels: Vec<Channel>,
    pub subscriptions: Vec<Subscription>,
    pub faults: PushFaults,
    pub log: Vec<LogEntry>,
    next_seq: u64,
    outbox: Vec<Job>,
}

impl PushState {
    pub fn new() -> Self {
        PushState {
            epoch: EPOCH.fetch_add(1, Ordering::Relaxed),
            channels: Vec::new(),
            subscriptions: Vec::new(),
            faults: PushFaults::default(),
            log: Vec::new(),
            next_seq: 1,
            outbox: Vec::new(),
        }
    }

    fn log_entry(
        &mut self,
        provider: Provider,
        id: &str,
        kind: &str,
        url: &str,
        message_number: Option<u64>,
    ) -> &mut LogEntry {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.log.push(LogEntry {
            seq,
            provider,
            id: id.to_owned(),
            kind: kind.to_owned(),
            url: url.to_owned(),
            message_number,
            dropped: false,
            duplicate: false,
            pending: true,
            status: None,
            error: None,
            time: Utc::now(),
            completed: None,
        });
        self.log.last_mut().expect("just pushed")
    }

    fn entry_mut(&mut self, seq: u64) -> Option<&mut LogEntry> {
        self.log.iter_mut().rev().find(|e| e.seq == seq)
    }

    /// Queues a notification, applying the delivery faults: dropped (logged, not sent), or sent
    /// twice.
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &mut self,
        provider: Provider,
        id: &str,
        kind: &str,
        url: &str,
        message_number: Option<u64>,
        droppable: bool,
        mut job: Job,
    ) {
        if droppable && self.faults.drop_next > 0 {
            self.faults.drop_next -= 1;
            let entry = self.log_entry(provider, id, kind, url, message_number);
            entry.dropped = true;
            entry.pending = false;
            return;
        }
        let copies = if self.faults.duplicate_next > 0 {
            self.faults.duplicate_next -= 1;
            2
        } else {
            1
        };
        job.epoch = self.epoch;
        job.delay_ms = self.faults.delay_ms;
        for copy in 0..copies {
            let entry = self.log_entry(provider, id, kind, url, message_number);
            entry.duplicate = copy == 1;
            let mut job = job.clone();
            job.seq = entry.seq;
            self.outbox.push(job);
        }
    }

    fn still_live(&self, live: &Liveness, now: DateTime<Utc>) -> bool {
        match live {
            Liveness::Channel(id) => self.channels.iter().any(|c| &c.id == id && c.live(now)),
            Liveness::Subscription(id) => self
                .subscriptions
                .iter()
                .any(|s| &s.id == id && s.live(now)),
            Liveness::Always => true,
        }
    }

    /// Queues the next message of channel `index` (`sync` or `exists`).
    fn google_message(&mut self, index: usize, state: &str) {
        let ch = &mut self.channels[index];
        ch.messages += 1;
        let number = ch.messages;
        let mut headers = vec![
            ("user-agent", GOOGLE_USER_AGENT.to_owned()),
            ("x-goog-channel-id", ch.id.clone()),
        ];
        if let Some(token) = &ch.token {
            headers.push(("x-goog-channel-token", token.clone()));
        }
        headers.extend([
            (
                "x-goog-channel-expiration",
                ch.expiration
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string(),
            ),
            ("x-goog-resource-id", ch.resource_id.clone()),
            ("x-goog-resource-uri", ch.resource_uri.clone()),
            ("x-goog-resource-state", state.to_owned()),
            ("x-goog-message-number", number.to_string()),
        ]);
        let job = Job {
            epoch: 0,
            seq: 0,
            key: format!("google:{}", ch.id),
            url: ch.address.clone(),
            headers,
            content_type: None,
            body: Vec::new(),
            delay_ms: 0,
            timeout: GOOGLE_TIMEOUT,
            live: Liveness::Channel(ch.id.clone()),
        };
        let (id, url) = (ch.id.clone(), ch.address.clone());
        self.enqueue(
            Provider::Google,
            &id,
            state,
            &url,
            Some(number),
            state != "sync",
            job,
        );
    }

    /// Queues a change notification of subscription `index`.
    fn graph_change(&mut self, index: usize, event_id: &str, kind: &str, change_key: &str) {
        let sub = &self.subscriptions[index];
        let resource = format!("Users/{}/Events/{}", sub.user_id, event_id);
        let body = json!({
            "value": [{
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": graph_timestamp(sub.expiration),
                "changeType": kind,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "@odata.etag": format!("W/\"{change_key}\""),
                    "id": event_id,
                },
                "clientState": sub.client_state,
                "tenantId": MSA_TENANT,
            }]
        });
        let job = graph_job(
            &sub.id,
            &sub.notification_url,
            &body,
            Liveness::Subscription(sub.id.clone()),
        );
        let (id, url) = (sub.id.clone(), sub.notification_url.clone());
        self.enqueue(Provider::Microsoft, &id, kind, &url, None, true, job);
    }
}

fn graph_job(id: &str, url: &str, body: &Value, live: Liveness) -> Job {
    Job {
        epoch: 0,
        seq: 0,
        key: format!("microsoft:{id}"),
        url: url.to_owned(),
        headers: Vec::new(),
        content_type: Some("application/json; charset=utf-8"),
        body: body.to_string().into_bytes(),
        delay_ms: 0,
        timeout: GRAPH_TIMEOUT,
        live,
    }
}

// ---------------------------------------------------------------------------------------------
// Turning changes into deliveries

/// Takes the changes recorded since the last call and the queued messages, and returns the
/// deliveries to make: one `exists` per live channel of each changed Google calendar (several
/// changes in one request make one message), one change notification per Graph event change
/// for each live subscription that asked for that change type.
pub(crate) fn collect(st: &mut State) -> Vec<Job> {
    let changes = std::mem::take(&mut st.events.changes);
    let now = Utc::now();
    let mut google_seen = BTreeSet::new();
    for change in changes {
        match change {
            Change::Google { calendar } => {
                if !google_seen.insert(calendar.clone()) {
                    continue;
                }
                let watching: Vec<usize> = (0..st.push.channels.len())
                    .filter(|&i| {
                        let c = &st.push.channels[i];
                        c.calendar == calendar && c.live(now)
                    })
                    .collect();
                for i in watching {
                    st.push.google_message(i, "exists");
                }
            }
            Change::Microsoft {
                calendar,
                id,
                kind,
                change_key,
            } => {
                let subscribed: Vec<usize> = (0..st.push.subscriptions.len())
                    .filter(|&i| {
                        let s = &st.push.subscriptions[i];
                        s.calendar == calendar && s.live(now) && s.kinds.contains(kind)
                    })
                    .collect();
                for i in subscribed {
                    st.push.graph_change(i, &id, kind, &change_key);
                }
            }
        }
    }
    std::mem::take(&mut st.push.outbox)
}

/// Turns what the last request changed into deliveries and hands them to the delivery queues.
pub(crate) fn dispatch(em: &Arc<Emulator>) {
    let jobs = collect(&mut em.lock());
    if jobs.is_empty() {
        return;
    }
    let mut workers = em.workers.lock().unwrap_or_else(|e| e.into_inner());
    for job in jobs {
        let job = match workers.get(&job.key) {
            Some(tx) => match tx.send(job) {
                Ok(()) => continue,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let key = job.key.clone();
        let _ = tx.send(job);
        workers.insert(key, tx);
        tokio::spawn(worker(em.clone(), rx));
    }
}

/// The delivery queues of one emulator, by channel or subscription.
pub(crate) type Workers = Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>;

async fn worker(em: Arc<Emulator>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        deliver(&em, job).await;
    }
}

async fn deliver(em: &Emulator, job: Job) {
    if job.delay_ms > 0 {
        tokio::time::sleep(StdDuration::from_millis(job.delay_ms)).await;
    }
    {
        let mut st = em.lock();
        if st.push.epoch != job.epoch {
            return;
        }
        if !st.push.still_live(&job.live, Utc::now()) {
            if let Some(entry) = st.push.entry_mut(job.seq) {
                entry.pending = false;
                entry.error = Some("not sent: the channel or subscription ended first".into());
                entry.completed = Some(Utc::now());
            }
            return;
        }
    }
    let mut request = em.client.post(&job.url).timeout(job.timeout);
    for (name, value) in &job.headers {
        request = request.header(*name, value);
    }
    if let Some(content_type) = job.content_type {
        request = request.header("content-type", content_type);
    }
    let outcome = request.body(job.body.clone()).send().await;
    let (status, error) = match outcome {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read the answer so the connection can be reused; its content does not matter.
            let _ = resp.bytes().await;
            (Some(status), None)
        }
        Err(e) => (None, Some(describe(&e))),
    };
    let mut st = em.lock();
    if st.push.epoch != job.epoch {
        return;
    }
    if let Some(entry) = st.push.entry_mut(job.seq) {
        entry.pending = false;
        entry.status = status;
        entry.error = error;
        entry.completed = Some(Utc::now());
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("connection failed: {e}")
    } else {
        e.to_string()
    }
}

/// Why a delivery address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BadAddress {
    /// Not an absolute `http` / `https` URL.
    NotHttp,
    /// Not on a loopback host.
    NotLoopback,
}

impl BadAddress {
    fn describe(self) -> &'static str {
        match self {
            BadAddress::NotHttp => "not an absolute http(s) URL",
            BadAddress::NotLoopback => "not a loopback address",
        }
    }
}

/// A delivery address the emulator accepts: `http` or `https` on a loopback host.
fn loopback_url(address: &str) -> Result<url::Url, BadAddress> {
    let url = url::Url::parse(address).map_err(|_| BadAddress::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BadAddress::NotHttp);
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !loopback {
        return Err(BadAddress::NotLoopback);
    }
    Ok(url)
}

// ---------------------------------------------------------------------------------------------
// Google: events.watch and channels.stop

fn google_bad(message: &str, reason: &str) -> Resp {
    api_error(400, message, reason, "global", "INVALID_ARGUMENT")
}

/// An opaque, stable id for a watched calendar's events collection (Google's are like
/// `o3hgv1538sdjfh`).
fn resource_id(calendar: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    sha256(&format!("resource:events:{calendar}"))
        .iter()
        .take(27)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A number of milliseconds since the epoch, given as a JSON string or number.
fn millis(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok().or_else(|| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

/// `POST /calendar/v3/calendars/{calendarId}/events/watch`.
pub(crate) fn google_watch(em: &Emulator, req: &Req, cid: &str) -> Resp {
    let mut st = em.lock();
    let cal = match crate::google_events::resolve(
        &st,
        req,
        cid,
        false,
        "calendar.v1.EventsService.Watch",
    ) {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let client_id = match st.check_bearer(Provider::Google, req.bearer()) {
        Ok(grant) => grant.client_id.clone(),
        Err(_) => return unauthenticated(false),
    };
    let body = match google_json_object(req) {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let text = |name: &str| -> Result<Option<String>, Resp> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(google_bad(
                &format!("Invalid value for: {name} is not a string"),
                "invalid",
            )),
        }
    };
    let fields =
        (|| Ok::<_, Resp>((text("id")?, text("type")?, text("address")?, text("token")?)))();
    let (id, kind, address, token) = match fields {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let Some(id) = id else {
        return google_bad("Required: the channel's id", "required");
    };
    if id.chars().count() > MAX_CHANNEL_ID {
        return google_bad(
            "Invalid value for: id is longer than 64 characters",
            "invalid",
        );
    }
    match kind.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("web_hook") || t.eq_ignore_ascii_case("webhook") => {}
        None => return google_bad("Required: the channel's type (web_hook)", "required"),
        Some(other) => {
            return google_bad(
                &format!("Invalid value for: type {other:?} (web_hook or webhook)"),
                "invalid",
            )
        }
    }
    let Some(address) = address else {
        return google_bad(
            "WebHook callback must be HTTPS: ",
            "push.webhookUrlNotHttps",
        );
    };
    match loopback_url(&address) {
        Ok(_) => {}
        Err(BadAddress::NotLoopback) => {
            return google_bad(
                &format!("Unauthorized WebHook callback channel: {address} (the provider emulator delivers to loopback addresses only)"),
                "push.webhookUrlUnauthorized",
            )
        }
        Err(_) => {
            return google_bad(
                &format!("WebHook callback must be HTTPS: {address}"),
                "push.webhookUrlNotHttps",
            )
        }
    }
    if token
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_CHANNEL_TOKEN)
    {
        return google_bad(
            "Invalid value for: token is longer than 256 characters",
            "invalid",
        );
    }
    let now = Utc::now();
    let requested = match body.get("expiration") {
        None | Some(Value::Null) => None,
        Some(v) => match millis(v) {
            Some(0) => None,
            Some(ms) => match Utc.timestamp_millis_opt(ms).single() {
                Some(t) if t > now => Some(t),
                _ => return google_bad("Invalid value for: expiration is in the past", "invalid"),
            },
            None => {
                return google_bad(
                    "Invalid value for: expiration (milliseconds since the epoch)",
                    "invalid",
                )
            }
        },
    };
    let ttl = match body.get("params").and_then(|p| p.get("ttl")) {
        None | Some(Value::Null) => None,
        Some(v) => match millis(v) {
            Some(secs) if secs > 0 => Some(secs),
            _ => return google_bad("Invalid value for: params.ttl (seconds)", "invalid"),
        },
    };
    let cap = now + Duration::seconds(GOOGLE_MAX_TTL);
    let expiration = requested
        .or_else(|| ttl.map(|s| now + Duration::seconds(s.min(GOOGLE_MAX_TTL))))
        .unwrap_or_else(|| now + Duration::seconds(GOOGLE_DEFAULT_TTL))
        .min(cap);
    // Google keeps milliseconds.
    let expiration = Utc
        .timestamp_millis_opt(expiration.timestamp_millis())
        .single()
        .unwrap_or(expiration);
    if st.push.channels.iter().any(|c| c.id == id && c.live(now)) {
        return google_bad(&format!("Channel id {id} not unique"), "channelIdNotUnique");
    }
    let resource_uri = format!(
        "{}/google/calendar/v3/calendars/{}/events?alt=json",
        em.base_url,
        url::form_urlencoded::byte_serialize(percent_decode(cid).as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    );
    let channel = Channel {
        id: id.clone(),
        resource_id: resource_id(&cal.id),
        resource_uri,
        calendar: cal.id.clone(),
        account: cal.owner.clone(),
        client_id,
        address,
        token,
        expiration,
        created: now,
        stopped: None,
        messages: 0,
    };
    let mut answer = json!({
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": channel.resource_uri,
    });
    if let Some(token) = &channel.token {
        answer["token"] = json!(token);
    }
    answer["expiration"] = json!(channel.expiration.timestamp_millis().to_string());
    st.push.channels.push(channel);
    let index = st.push.channels.len() - 1;
    st.push.google_message(index, "sync");
    response(200, "application/json; charset=UTF-8", answer.to_string())
}

/// `POST /calendar/v3/channels/stop`.
pub(crate) fn google_stop(em: &Emulator, req: &Req) -> Resp {
    let mut st = em.lock();
    let client_id = match st.check_bearer(Provider::Google, req.bearer()) {
        Ok(grant) => grant.client_id.clone(),
        Err(TokenProblem::Missing) => return unauthenticated(true),
        Err(_) => return unauthenticated(false),
    };
    let body = match google_json_object(req) {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let id = body.get("id").and_then(Value::as_str).unwrap_or_default();
    let resource = body.get("resourceId").and_then(Value::as_str);
    if id.is_empty() {
        return google_bad("Required: the channel's id", "required");
    }
    let now = Utc::now();
    let found = st.push.channels.iter_mut().find(|c| {
        c.id == id && c.live(now) && c.client_id == client_id && resource == Some(&c.resource_id)
    });
    match found {
        Some(channel) => {
            channel.stopped = Some(now);
            response(204, "text/html", "")
        }
        None => api_error(
            404,
            &format!("Channel '{id}' not found for project '{client_id}'"),
            "notFound",
            "global",
            "NOT_FOUND",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Graph: /subscriptions

/// `/microsoft/v1.0/subscriptions[...]`; `None` for other paths.
pub(crate) async fn graph_route(em: &Emulator, req: &Req) -> Option<Resp> {
    let rest = req.path.strip_prefix("/microsoft/v1.0/subscriptions")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method.as_str();
    Some(match (method, segments.as_slice()) {
        ("POST", []) => graph_create(em, req).await,
        ("GET", []) => graph_list(em, req),
        ("GET", [id]) => graph_get(em, req, &percent_decode(id)),
        ("PATCH", [id]) => graph_patch(em, req, &percent_decode(id)).await,
        ("DELETE", [id]) => graph_delete(em, req, &percent_decode(id)),
        ("POST", [id, action]) if action.eq_ignore_ascii_case("reauthorize") => {
            graph_reauthorize(em, req, &percent_decode(id))
        }
        _ => graph_error(
            req,
            501,
            "NotImplemented",
            &format!(
                "The provider emulator does not emulate {method} {}.",
                req.path
            ),
        ),
    })
}

fn invalid(req: &Req, message: &str) -> Resp {
    graph_error(req, 400, "InvalidRequest", message)
}

fn subscription_not_found(req: &Req) -> Resp {
    graph_error(req, 404, "ResourceNotFound", "The object was not found.")
}

/// The signed-in account and app of a subscriptions request.
struct Caller {
    account: String,
    user_id: String,
    client_id: String,
}

fn caller(st: &State, req: &Req) -> Result<Caller, Resp> {
    let account = graph_account(st, req, CALENDAR_SCOPES).map_err(|r| *r)?;
    let client_id = st
        .check_bearer(Provider::Microsoft, req.bearer())
        .map(|g| g.client_id.clone())
        .unwrap_or_default();
    Ok(Caller {
        account: account.email.clone(),
        user_id: account.user_id(),
        client_id,
    })
}

/// The calendar a subscription's `resource` names: `me/events` (the default calendar),
/// `me/calendar/events`, `me/calendars/{id}/events` (or `calendars('{id}')`), each also as
/// `users/{id or userPrincipalName}/...` for the signed-in user; a leading `/` is fine.
fn resource_calendar(
    st: &State,
    req: &Req,
    caller: &Caller,
    resource: &str,
) -> Result<String, Resp> {
    let path = resource.trim().trim_start_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let rest: &[&str] = match segments.as_slice() {
        [me, rest @ ..] if eq(me, "me") => rest,
        [users, user, rest @ ..] if eq(users, "users") => {
            let user = percent_decode(user);
            let user = user
                .strip_prefix("('")
                .and_then(|u| u.strip_suffix("')"))
                .unwrap_or(&user)
                .to_owned();
            if !eq(&user, &caller.user_id) && !eq(&user, &caller.account) {
                return Err(graph_error(
                    req,
                    403,
                    "ErrorAccessDenied",
                    "Access is denied. Check credentials and try again.",
                ));
            }
            rest
        }
        _ => &[],
    };
    let Some(account) = st.account(Provider::Microsoft, &caller.account) else {
        return Err(subscription_not_found(req));
    };
    let default = || {
        account
            .calendars
            .iter()
            .find(|c| c.primary)
            .map(|c| c.id.clone())
            .ok_or_else(|| subscription_not_found(req))
    };
    let not_emulated = || {
        graph_error(
            req,
            501,
            "NotImplemented",
            &format!("The provider emulator emulates subscriptions to calendar events only (me/events, me/calendars/{{id}}/events), not {resource:?}."),
        )
    };
    match rest {
        [events] if eq(events, "events") => default(),
        [calendar, events] if eq(calendar, "calendar") && eq(events, "events") => default(),
        [calendars, id, events] if eq(calendars, "calendars") && eq(events, "events") => {
            find_calendar(account, id).ok_or_else(|| {
                graph_error(
                    req,
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
            })
        }
        [one, events] if eq(events, "events") && one.len() > 9 && eq(&one[..9], "calendars") => {
            // calendars('{id}')
            let id = one[9..]
                .strip_prefix("('")
                .and_then(|s| s.strip_suffix("')"))
                .ok_or_else(not_emulated)?;
            find_calendar(account, id).ok_or_else(|| {
                graph_error(
                    req,
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
            })
        }
        _ => Err(not_emulated()),
    }
}

fn find_calendar(account: &crate::state::Account, id: &str) -> Option<String> {
    let id = percent_decode(id);
    account
        .calendars
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.id.clone())
}

/// `expirationDateTime` of a create or renewal: at most 10,080 minutes ahead (400 beyond, with
/// Graph's `ExtensionError`), raised to 45 minutes ahead when sooner, refused in the past.
fn expiration(req: &Req, raw: Option<&Value>) -> Result<DateTime<Utc>, Resp> {
    let raw = match raw {
        None | Some(Value::Null) => {
            return Err(invalid(
                req,
                "expirationDateTime is a required property for subscription creation.",
            ))
        }
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(invalid(
                req,
                "Could not process subscription creation payload. Are all property names spelled and camelCased properly?",
            ))
        }
    };
    let Some(t) = crate::tz::parse_graph_instant(raw) else {
        return Err(invalid(
            req,
            "Could not process subscription creation payload. Are all property names spelled and camelCased properly?",
        ));
    };
    let now = Utc::now();
    if t <= now {
        return Err(invalid(
            req,
            "Subscription expiration date time must be in the future.",
        ));
    }
    if t > now + Duration::minutes(GRAPH_MAX_MINUTES) {
        return Err(graph_error(
            req,
            400,
            "ExtensionError",
            &format!(
                "Subscription expiration can only be {GRAPH_MAX_MINUTES} minutes in the future."
            ),
        ));
    }
    Ok(t.max(now + Duration::minutes(GRAPH_MIN_MINUTES)))
}

const CREATE_FIELDS: &[&str] = &[
    "@odata.type",
    "changeType",
    "notificationUrl",
    "lifecycleNotificationUrl",
    "resource",
    "expirationDateTime",
    "clientState",
    "latestSupportedTlsVersion",
    "includeResourceData",
    "encryptionCertificate",
    "encryptionCertificateId",
    "notificationQueryOptions",
    "notificationUrlAppId",
    "notificationContentType",
    "id",
    "applicationId",
    "creatorId",
];

fn graph_body(req: &Req) -> Result<serde_json::Map<String, Value>, Resp> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(invalid(
            req,
            "Could not process subscription creation payload. Are all property names spelled and camelCased properly?",
        )),
    }
}

fn optional_text(
    req: &Req,
    body: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, Resp> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            req,
            "Could not process subscription creation payload. Are all property names spelled and camelCased properly?",
        )),
    }
}

fn notification_url(req: &Req, raw: &str, name: &str) -> Result<String, Resp> {
    match loopback_url(raw) {
        Ok(_) => Ok(raw.to_owned()),
        Err(problem) => Err(invalid(
            req,
            &format!(
                "Invalid {name} {raw:?}: {} (the provider emulator delivers to http(s) loopback addresses only).",
                problem.describe()
            ),
        )),
    }
}

/// Graph's validation handshake with one URL; logged as kind `validation`.
async fn validate(em: &Emulator, id: &str, url: &str) -> Result<(), &'static str> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        guid()
    );
    let (epoch, seq) = {
        let mut st = em.lock();
        let epoch = st.push.epoch;
        let seq = st
            .push
            .log_entry(Provider::Microsoft, id, "validation", url, None)
            .seq;
        (epoch, seq)
    };
    let mut target = match url::Url::parse(url) {
        Ok(u) => u,
        Err(_) => {
            return Err("Notification endpoint must respond with 200 OK to validation request.")
        }
    };
    target
        .query_pairs_mut()
        .append_pair("validationToken", &token);
    let outcome = em
        .client
        .post(target.as_str())
        .timeout(VALIDATION_TIMEOUT)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Vec::new())
        .send()
        .await;
    let (status, error, verdict) = match outcome {
        Err(e) => (
            None,
            Some(describe(&e)),
            Err("Notification endpoint must respond with 200 OK to validation request."),
        ),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let text = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            let verdict = if status != 200 {
                Err("Notification endpoint must respond with 200 OK to validation request.")
            } else if !content_type.starts_with("text/plain") {
                Err("Response must have Content-Type text/plain.")
            } else if text != token.as_bytes() {
                Err("Response must exactly match validationToken query parameter.")
            } else {
                Ok(())
            };
            (Some(status), verdict.err().map(str::to_owned), verdict)
        }
    };
    let mut st = em.lock();
    if st.push.epoch == epoch {
        if let Some(entry) = st.push.entry_mut(seq) {
            entry.pending = false;
            entry.status = status;
            entry.error = error;
            entry.completed = Some(Utc::now());
        }
    }
    verdict
}

fn validation_failed(req: &Req, why: &str) -> Resp {
    invalid(
        req,
        &format!("Subscription validation request failed. {why}"),
    )
}

fn graph_entity(req: &Req, status: u16, sub: &Subscription) -> Resp {
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
    });
    if let (Value::Object(o), Value::Object(rest)) = (&mut body, sub.json()) {
        o.extend(rest);
    }
    crate::graph_events::graph_resp(req, status, &body)
}

async fn graph_create(em: &Emulator, req: &Req) -> Resp {
    let sub = {
        let st = em.lock();
        let caller = match caller(&st, req) {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        let body = match graph_body(req) {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        if let Some(unknown) = body.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
            return invalid(
                req,
                &format!("Could not process subscription creation payload. Are all property names spelled and camelCased properly? ({unknown:?} is not a subscription property)"),
            );
        }
        let text = |name: &str| optional_text(req, &body, name);
        let fields = (|| {
            Ok::<_, Resp>((
                text("changeType")?,
                text("notificationUrl")?,
                text("lifecycleNotificationUrl")?,
                text("resource")?,
                text("clientState")?,
                text("latestSupportedTlsVersion")?,
            ))
        })();
        let (change_type, url, lifecycle, resource, client_state, tls) = match fields {
            Ok(f) => f,
            Err(resp) => return resp,
        };
        let Some(change_type) = change_type.filter(|c| !c.trim().is_empty()) else {
            return invalid(
                req,
                "changeType is a required property for subscription creation.",
            );
        };
        let kinds: BTreeSet<String> = change_type
            .split(',')
            .map(|k| k.trim().to_ascii_lowercase())
            .collect();
        if let Some(bad) = kinds
            .iter()
            .find(|k| !matches!(k.as_str(), "created" | "updated" | "deleted"))
        {
            return invalid(
                req,
                &format!("Invalid changeType {bad:?}: the supported values are created, updated and deleted."),
            );
        }
        let Some(url) = url else {
            return invalid(
                req,
                "notificationUrl is a required property for subscription creation.",
            );
        };
        let url = match notification_url(req, &url, "notificationUrl") {
            Ok(u) => u,
            Err(resp) => return resp,
        };
        let lifecycle = match lifecycle
            .map(|l| notification_url(req, &l, "lifecycleNotificationUrl"))
            .transpose()
        {
            Ok(l) => l,
            Err(resp) => return resp,
        };
        let Some(resource) = resource.filter(|r| !r.trim().is_empty()) else {
            return invalid(
                req,
                "resource is a required property for subscription creation.",
            );
        };
        if client_state
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_CLIENT_STATE)
        {
            return invalid(
                req,
                "clientState is longer than the maximum of 128 characters.",
            );
        }
        let tls = tls.unwrap_or_else(|| "v1_2".into());
        if !matches!(tls.as_str(), "v1_0" | "v1_1" | "v1_2" | "v1_3") {
            return invalid(
                req,
                &format!("Invalid latestSupportedTlsVersion {tls:?}: v1_0, v1_1, v1_2 or v1_3."),
            );
        }
        if body.get("includeResourceData") == Some(&Value::Bool(true)) {
            return graph_error(
                req,
                501,
                "NotImplemented",
                "The provider emulator does not emulate rich notifications (includeResourceData).",
            );
        }
        let calendar = match resource_calendar(&st, req, &caller, &resource) {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        let expiration = match expiration(req, body.get("expirationDateTime")) {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        Subscription {
            id: guid(),
            resource,
            calendar,
            account: caller.account,
            user_id: caller.user_id,
            application_id: caller.client_id,
            change_type,
            kinds,
            client_state,
            notification_url: url,
            lifecycle_url: lifecycle,
            expiration,
            latest_tls: tls,
            created: Utc::now(),
            ended: None,
        }
    };
    // The handshake, while the create request waits (the state is not locked meanwhile).
    if let Err(why) = validate(em, &sub.id, &sub.notification_url).await {
        return validation_failed(req, why);
    }
    if let Some(lifecycle) = &sub.lifecycle_url {
        if let Err(why) = validate(em, &sub.id, lifecycle).await {
            return validation_failed(req, why);
        }
    }
    let resp = graph_entity(req, 201, &sub);
    em.lock().push.subscriptions.push(sub);
    resp
}

/// The caller's subscription `id` while it is live (Graph forgets expired ones).
fn own_subscription<'a>(
    st: &'a mut State,
    caller: &Caller,
    id: &str,
) -> Option<&'a mut Subscription> {
    let now = Utc::now();
    st.push.subscriptions.iter_mut().find(|s| {
        s.id.eq_ignore_ascii_case(id)
            && s.live(now)
            && s.application_id == caller.client_id
            && s.account == caller.account
    })
}

fn graph_list(em: &Emulator, req: &Req) -> Resp {
    let st = em.lock();
    let caller = match caller(&st, req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let now = Utc::now();
    let value: Vec<Value> = st
        .push
        .subscriptions
        .iter()
        .filter(|s| {
            s.live(now) && s.application_id == caller.client_id && s.account == caller.account
        })
        .map(Subscription::json)
        .collect();
    crate::graph_events::graph_resp(
        req,
        200,
        &json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
            "value": value,
        }),
    )
}

fn graph_get(em: &Emulator, req: &Req, id: &str) -> Resp {
    let mut st = em.lock();
    let caller = match caller(&st, req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    match own_subscription(&mut st, &caller, id) {
        Some(sub) => graph_entity(req, 200, sub),
        None => subscription_not_found(req),
    }
}

async fn graph_patch(em: &Emulator, req: &Req, id: &str) -> Resp {
    let (expiration, new_url) = {
        let mut st = em.lock();
        let caller = match caller(&st, req) {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        if own_subscription(&mut st, &caller, id).is_none() {
            return subscription_not_found(req);
        }
        let body = match graph_body(req) {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        if let Some(other) = body.keys().find(|k| {
            !matches!(
                k.as_str(),
                "expirationDateTime" | "notificationUrl" | "@odata.type"
            )
        }) {
            return invalid(
                req,
                &format!(
                    "Only expirationDateTime and notificationUrl can be updated, not {other:?}."
                ),
            );
        }
        let expiration = match body.get("expirationDateTime") {
            None => None,
            raw => match expiration(req, raw) {
                Ok(t) => Some(t),
                Err(resp) => return resp,
            },
        };
        let new_url = match optional_text(req, &body, "notificationUrl") {
            Ok(Some(u)) => match notification_url(req, &u, "notificationUrl") {
                Ok(u) => Some(u),
                Err(resp) => return resp,
            },
            Ok(None) => None,
            Err(resp) => return resp,
        };
        (expiration, new_url)
    };
    if let Some(url) = &new_url {
        if let Err(why) = validate(em, id, url).await {
            return validation_failed(req, why);
        }
    }
    let mut st = em.lock();
    let caller = match caller(&st, req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    match own_subscription(&mut st, &caller, id) {
        Some(sub) => {
            if let Some(t) = expiration {
                sub.expiration = t;
            }
            if let Some(url) = new_url {
                sub.notification_url = url;
            }
            graph_entity(req, 200, sub)
        }
        None => subscription_not_found(req),
    }
}

fn graph_delete(em: &Emulator, req: &Req, id: &str) -> Resp {
    let mut st = em.lock();
    let caller = match caller(&st, req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    match own_subscription(&mut st, &caller, id) {
        Some(sub) => {
            sub.ended = Some((Utc::now(), "deleted"));
            no_content()
        }
        None => subscription_not_found(req),
    }
}

fn graph_reauthorize(em: &Emulator, req: &Req, id: &str) -> Resp {
    let mut st = em.lock();
    let caller = match caller(&st, req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    match own_subscription(&mut st, &caller, id) {
        Some(_) => no_content(),
        None => subscription_not_found(req),
    }
}

fn no_content() -> Resp {
    let resp = response(204, "text/plain", "");
    crate::http::with_header(resp, "request-id", &guid())
}

// ---------------------------------------------------------------------------------------------
// Admin

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultsBody {
    drop_next: Option<u64>,
    duplicate_next: Option<u64>,
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleBody {
    event: String,
}

fn admin_error(status: u16, message: impl std::fmt::Display) -> Resp {
    json(status, &json!({ "error": message.to_string() }))
}

fn faults_json(f: &PushFaults) -> Value {
    serde_json::to_value(f).unwrap_or(Value::Null)
}

fn channel_json(c: &Channel, now: DateTime<Utc>) -> Value {
    json!({
        "id": c.id,
        "resourceId": c.resource_id,
        "resourceUri": c.resource_uri,
        "calendarId": c.calendar,
        "account": c.account,
        "clientId": c.client_id,
        "address": c.address,
        "token": c.token,
        "expiration": c.expiration.timestamp_millis().to_string(),
        "expirationDateTime": c.expiration.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "created": c.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "state": c.state(now),
        "stoppedAt": c.stopped.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "lastMessageNumber": c.messages,
    })
}

fn subscription_admin_json(s: &Subscription, now: DateTime<Utc>) -> Value {
    let mut v = s.json();
    v["calendarId"] = json!(s.calendar);
    v["account"] = json!(s.account);
    v["state"] = json!(s.state(now));
    v["created"] = json!(graph_timestamp(s.created));
    v["endedAt"] = json!(s.ended.map(|(t, _)| graph_timestamp(t)));
    v
}

/// `/admin/push`, `/admin/push/log`, `/admin/google/channels[...]`,
/// `/admin/microsoft/subscriptions[...]`; `None` for other paths.
pub(crate) fn admin(st: &mut State, req: &Req) -> Option<Resp> {
    let now = Utc::now();
    let path = req.path.as_str();
    let method = req.method.as_str();
    Some(match (method, path) {
        ("GET", "/admin/push") => json(200, &faults_json(&st.push.faults)),
        ("PUT", "/admin/push") => {
            let body: FaultsBody = match serde_json::from_slice(&req.body) {
                Ok(b) => b,
                Err(e) => return Some(admin_error(400, e)),
            };
            let f = &mut st.push.faults;
            if let Some(n) = body.drop_next {
                f.drop_next = n;
            }
            if let Some(n) = body.duplicate_next {
                f.duplicate_next = n;
            }
            if let Some(ms) = body.delay_ms {
                f.delay_ms = ms;
            }
            json(200, &faults_json(f))
        }
        ("GET", "/admin/push/log") => json(
            200,
            &json!({ "deliveries": st.push.log.iter().map(LogEntry::json).collect::<Vec<_>>() }),
        ),
        ("DELETE", "/admin/push/log") => {
            let cleared = st.push.log.len();
            st.push.log.clear();
            json(200, &json!({ "cleared": cleared }))
        }
        ("GET", "/admin/google/channels") => json(
            200,
            &json!({ "channels": st.push.channels.iter().map(|c| channel_json(c, now)).collect::<Vec<_>>() }),
        ),
        ("GET", "/admin/microsoft/subscriptions") => json(
            200,
            &json!({ "subscriptions": st.push.subscriptions.iter().map(|s| subscription_admin_json(s, now)).collect::<Vec<_>>() }),
        ),
        _ => {
            if let Some(rest) = path.strip_prefix("/admin/google/channels/") {
                let segments: Vec<&str> = rest.split('/').collect();
                return Some(match (method, segments.as_slice()) {
                    ("POST", [id, "expire"]) => {
                        let id = percent_decode(id);
                        match st.push.channels.iter_mut().rev().find(|c| c.id == id) {
                            Some(c) => {
                                c.expiration = c.expiration.min(now);
                                json(200, &channel_json(c, now))
                            }
                            None => admin_error(404, format!("no channel {id:?}")),
                        }
                    }
                    _ => admin_error(404, format!("no admin route {method} {path}")),
                });
            }
            let rest = path.strip_prefix("/admin/microsoft/subscriptions/")?;
            let segments: Vec<&str> = rest.split('/').collect();
            match (method, segments.as_slice()) {
                ("POST", [id, "expire"]) => {
                    let id = percent_decode(id);
                    match st.push.subscriptions.iter_mut().find(|s| s.id == id) {
                        Some(s) => {
                            s.expiration = s.expiration.min(now);
                            json(200, &subscription_admin_json(s, now))
                        }
                        None => admin_error(404, format!("no subscription {id:?}")),
                    }
                }
                ("POST", [id, "lifecycle"]) => lifecycle(st, req, &percent_decode(id)),
                _ => admin_error(404, format!("no admin route {method} {path}")),
            }
        }
    })
}

/// `POST /admin/microsoft/subscriptions/{id}/lifecycle`: sends a lifecycle notification.
fn lifecycle(st: &mut State, req: &Req, id: &str) -> Resp {
    let body: LifecycleBody = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => return admin_error(400, e),
    };
    let event = body.event.as_str();
    if !matches!(
        event,
        "reauthorizationRequired" | "subscriptionRemoved" | "missed"
    ) {
        return admin_error(
            400,
            format!("unknown lifecycle event {event:?} (reauthorizationRequired, subscriptionRemoved or missed)"),
        );
    }
    let Some(index) = st
        .push
        .subscriptions
        .iter()
        .position(|s| s.id == id && s.ended.is_none())
    else {
        return admin_error(404, format!("no subscription {id:?} (or it was deleted)"));
    };
    let sub = &st.push.subscriptions[index];
    let Some(url) = sub.lifecycle_url.clone() else {
        return admin_error(
            409,
            format!("subscription {id:?} has no lifecycleNotificationUrl"),
        );
    };
    let payload = json!({
        "value": [{
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": graph_timestamp(sub.expiration),
            "tenantId": MSA_TENANT,
            "clientState": sub.client_state,
            "lifecycleEvent": event,
        }]
    });
    let sub_id = sub.id.clone();
    if event == "subscriptionRemoved" {
        st.push.subscriptions[index].ended = Some((Utc::now(), "removed"));
    }
    let job = graph_job(&sub_id, &url, &payload, Liveness::Always);
    st.push
        .enqueue(Provider::Microsoft, &sub_id, event, &url, None, true, job);
    json(
        200,
        &json!({ "queued": event, "subscriptionId": sub_id, "lifecycleNotificationUrl": url }),
    )
}

/// A Google request's JSON object body, or Google's parse error.
fn google_json_object(req: &Req) -> Result<serde_json::Map<String, Value>, Resp> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(api_error(
            400,
            "Parse Error",
            "parseError",
            "global",
            "INVALID_ARGUMENT",
        )),
    }
}
