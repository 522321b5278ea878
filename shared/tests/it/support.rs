//! The shared test stack: one emulator per test binary, provisioned once from template.yaml.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use calsync::api::ApiRequest;
use calsync::app::App;
use calsync::config::Config;
use calsync::ids;
use calsync::model::{Connection, Provider};
use calsync::store::Store;
use calsync_devstack::emulator::Emulator;
use calsync_devstack::template::Template;
use calsync_devstack::{local_sdk_config, provision::provision};
use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use serde_json::{json, Value};

pub const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

pub struct Stack {
    pub emulator: Emulator,
    pub environment: BTreeMap<String, String>,
}

pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        logs_reach_test_subscribers();
        // Provisioning runs on its own runtime: each test has its own, and this one outlives none.
        std::thread::spawn(|| {
            let emulator = Emulator::start().expect("start the AWS emulator");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let environment = runtime.block_on(async {
                let sdk = local_sdk_config(&emulator.endpoint).await;
                let template = Template::load(TEMPLATE.as_ref()).expect("template.yaml");
                provision(&sdk, &template, "it-")
                    .await
                    .expect("provision")
                    .environment
            });
            Stack {
                emulator,
                environment,
            }
        })
        .join()
        .expect("stack thread")
    })
}

/// `CALDAV_ALLOW_HTTP_LOOPBACK` naming exactly the loopback servers at `urls`.
pub fn http_loopback(urls: &[&str]) -> (&'static str, String) {
    let allowed: Vec<String> = urls
        .iter()
        .map(|raw| {
            let url = url::Url::parse(raw).expect("a server URL");
            format!(
                "{}:{}",
                url.host_str().expect("a host"),
                url.port_or_known_default().expect("a port")
            )
        })
        .collect();
    ("CALDAV_ALLOW_HTTP_LOOPBACK", allowed.join(","))
}

/// The functions' own SDK configuration (`calsync::aws`), pointed at the emulator.
pub async fn sdk() -> aws_config::SdkConfig {
    calsync::aws::emulator_sdk_config(&stack().emulator.endpoint)
}

pub async fn app() -> App {
    app_with(&[]).await
}

/// An app whose configuration is the template's with `overrides` on top.
pub async fn app_with(overrides: &[(&str, String)]) -> App {
    let mut env = stack().environment.clone();
    for (k, v) in overrides {
        env.insert((*k).to_owned(), v.clone());
    }
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
    App::new(&sdk().await, config)
}

/// An app on tables of its own (same emulator), for tests of jobs that sweep a whole table:
/// other tests' items must not be swept, and theirs must not be touched.
pub async fn isolated_app(tag: &str, overrides: &[(&str, String)]) -> App {
    let sdk = sdk().await;
    let template = Template::load(TEMPLATE.as_ref()).expect("template.yaml");
    let mut env = provision(&sdk, &template, &format!("it-{tag}-"))
        .await
        .expect("provision")
        .environment;
    for (k, v) in overrides {
        env.insert((*k).to_owned(), v.clone());
    }
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
    App::new(&sdk, config)
}

/// An app on an AWS emulator of its own, for tests whose load would slow or disturb the others
/// (the fuzzer's thousands of requests, thousands of events loaded at once): moto serves one
/// request at a time per process. Keep the emulator for as long as the app is used.
pub async fn app_on_own_emulator(tag: &str, overrides: &[(&str, String)]) -> (Emulator, App) {
    logs_reach_test_subscribers();
    let emulator = tokio::task::spawn_blocking(Emulator::start)
        .await
        .unwrap()
        .expect("the AWS emulator");
    let sdk = local_sdk_config(&emulator.endpoint).await;
    let template = Template::load(TEMPLATE.as_ref()).expect("template.yaml");
    let mut env = provision(&sdk, &template, &format!("{tag}-"))
        .await
        .expect("provision")
        .environment;
    for (k, v) in overrides {
        env.insert((*k).to_owned(), v.clone());
    }
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
    (emulator, App::new(&sdk, config))
}

/// The raw stored item, as DynamoDB holds it.
pub async fn raw_item(
    table_var: &str,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(&sdk().await)
        .get_item()
        .table_name(&stack().environment[table_var])
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Sends a request through the whole API; returns status and JSON body (Null for none).
pub async fn call(app: &App, req: ApiRequest) -> (StatusCode, Value) {
    let resp = app.handle(&calsync::api::service::ALL, req).await;
    (resp.status, resp.body.unwrap_or(Value::Null))
}

pub fn get(path: &str, token: &str) -> ApiRequest {
    ApiRequest::new(Method::GET, path).with_bearer(token)
}

pub fn send(method: Method, path: &str, token: &str, body: &Value) -> ApiRequest {
    ApiRequest::new(method, path)
        .with_bearer(token)
        .with_json(body)
}

pub fn query(mut req: ApiRequest, params: &[(&str, &str)]) -> ApiRequest {
    for (k, v) in params {
        req = req.with_query(k, v);
    }
    req
}

pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
}

pub fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.com", &ids::new_id()[..12])
}

pub async fn register(app: &App, tag: &str) -> TestUser {
    let email = unique_email(tag);
    let (status, body) = call(
        app,
        ApiRequest::new(Method::POST, "/v1/auth/register").with_json(&json!({
            "email": email, "password": "a long enough password",
            "firstName": "Test", "lastName": tag
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    TestUser {
        id: body["user"]["id"].as_str().unwrap().to_owned(),
        email,
        token: body["token"].as_str().unwrap().to_owned(),
    }
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A connected calendar, as the OAuth callback will create it.
pub async fn connect(app: &App, user: &TestUser, name: &str, primary: bool) -> Connection {
    let calendar_id = format!("{name}@group.calendar.google.com");
    let mut conn = Connection::new(
        &user.id,
        Provider::Google,
        &calendar_id,
        name,
        "#3366cc",
        Store::now(),
    );
    conn.is_primary = primary;
    app.store.put_connection(&conn).await.unwrap();
    conn
}

/// Creates a timed event through the API; returns its id.
pub async fn create_event(
    app: &App,
    user: &TestUser,
    calendar: &str,
    title: &str,
    start: &str,
    end: &str,
) -> String {
    let (status, body) = call(
        app,
        send(
            Method::POST,
            "/v1/events",
            &user.token,
            &json!({"calendarId": calendar, "title": title,
                    "start": {"dateTime": start}, "end": {"dateTime": end}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Titles of the events a range query returns, in order.
pub async fn titles_in_range(app: &App, user: &TestUser, start: &str, end: &str) -> Vec<String> {
    let (status, body) = call(
        app,
        query(
            get("/v1/events", &user.token),
            &[("start", start), ("end", end)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_owned())
        .collect()
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// The live events stored for a calendar as range reads list them (a Graph series master is
/// stored for editing only): key -> (title, start in UTC).
pub async fn stored_events(
    app: &App,
    connection_id: &str,
) -> std::collections::BTreeMap<String, (String, String)> {
    let keys: Vec<String> = app
        .store
        .stored_keys(connection_id, "")
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.listed)
        .map(|k| k.event_key)
        .collect();
    app.store
        .events_by_keys(connection_id, &keys)
        .await
        .unwrap()
        .into_values()
        .map(|e| {
            (
                e.event_key.clone(),
                (e.title, calsync::time::key_format(e.start_time)),
            )
        })
        .collect()
}

/// Delivers the same scheduled-sync request twice in one SQS batch, as SQS's at-least-once
/// delivery may; both must succeed (the second finds nothing to do or waits out the lease).
pub async fn deliver_twice(app: &App, user_id: &str, connection_id: &str) {
    let body = json!({"userId": user_id, "connectionId": connection_id, "reason": "scheduled"})
        .to_string();
    let event: calsync::sync::worker::SqsEvent = serde_json::from_value(json!({"Records": [
        {"messageId": "m1", "body": body}, {"messageId": "m2", "body": body}]}))
    .expect("an SQS event");
    let response = calsync::sync::worker::handle(app, event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

/// Two workers sync one connection at once: one syncs, the other finds the lease held or
/// nothing left to do; neither fails.
pub async fn sync_concurrently(app: &App, user_id: &str, connection_id: &str, step: usize) {
    use calsync::sync::engine::{sync_connection, SyncOutcome};
    let (a, b) = tokio::join!(
        sync_connection(app, user_id, connection_id),
        sync_connection(app, user_id, connection_id)
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(
        outcomes.iter().any(|o| matches!(o, SyncOutcome::Synced(_))),
        "step {step}: {outcomes:?}"
    );
}

/// An event time as a wall clock with its UTC offset (`2026-03-09T09:00:00-04:00`), from the
/// API's instant and the wall-clock time beside it; an instant without a zone as given.
pub fn zoned(time: &Value) -> String {
    let instant = time["dateTime"].as_str().expect("a timed event");
    let Some(local) = time["localDateTime"].as_str() else {
        return instant.to_owned();
    };
    let utc = DateTime::parse_from_rfc3339(instant).unwrap().naive_utc();
    let wall = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S").unwrap();
    let minutes = (wall - utc).num_minutes();
    let sign = if minutes < 0 { '-' } else { '+' };
    format!(
        "{local}{sign}{:02}:{:02}",
        minutes.abs() / 60,
        minutes.abs() % 60
    )
}

/// PATCHes an event through the API; asserts it was changed.
pub async fn patch_event(app: &App, user: &TestUser, id: &str, body: Value) {
    let (status, answer) = call(
        app,
        send(
            Method::PATCH,
            &format!("/v1/events/{id}"),
            &user.token,
            &body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// DELETEs an event through the API; asserts it was deleted.
pub async fn delete_event(app: &App, user: &TestUser, id: &str) {
    let (status, answer) = call(
        app,
        send(
            Method::DELETE,
            &format!("/v1/events/{id}"),
            &user.token,
            &json!({}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
}

/// Every message waiting in `queue` (received and deleted), as JSON.
pub async fn drain_queue(queue: &str) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Tests that read their own logs set a subscriber for their thread (`set_default`). Without a
/// process-wide subscriber, a log call site first reached by another test's thread may be cached
/// as "never enabled" for every thread, and its lines never reach that test (the logging tests
/// missed lines under load). This process-wide subscriber records nothing but keeps every call
/// site asking each thread's own subscriber.
pub fn logs_reach_test_subscribers() {
    use tracing::span::{Attributes, Id, Record};
    use tracing::subscriber::Interest;
    use tracing::{Event, Metadata};

    struct AskEveryTime;
    impl tracing::Subscriber for AskEveryTime {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            Interest::sometimes()
        }
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(AskEveryTime);
    });
}

/// `count` stored-event fillers for a calendar, `bulk00000`, `bulk00001`, ..., 30 minutes each,
/// one every `every` from `first` on (as a sync would store them, without the API).
pub fn filler_events(
    user_id: &str,
    calendar_id: &str,
    count: usize,
    first: DateTime<Utc>,
    every: chrono::Duration,
) -> Vec<calsync::model::Event> {
    (0..count)
        .map(|i| {
            let start = first + every * i32::try_from(i).unwrap();
            calsync::model::Event::new(
                user_id,
                calendar_id,
                &format!("bulk{i:05}"),
                &format!("Bulk {i}"),
                (start, start + chrono::Duration::minutes(30)),
                start,
            )
        })
        .collect()
}
