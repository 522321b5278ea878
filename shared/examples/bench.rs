//! `make bench`: measures the date-range query on the AWS emulator.
//!
//! A user with 10,000 events over 5 calendars across one year (mostly meetings, some all-day and
//! multi-day events), then every one-week window of that year queried through the API. Reports
//! DynamoDB items read per event returned (target <= 1.5) and requests per query. The figures are
//! recorded in docs/benchmarks.md.

use std::collections::HashSet;

use calsync::api::{ApiRequest, App};
use calsync::config::Config;
use calsync::model::{Connection, Event, Provider};
use calsync::store::Store;
use calsync_devstack::emulator::Emulator;
use calsync_devstack::provision::provision;
use calsync_devstack::template::Template;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use http::Method;

const EVENTS: usize = 10_000;
const CALENDARS: usize = 5;

/// A small deterministic generator (xorshift), so every run measures the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn event(user_id: &str, conn: &str, i: usize, rng: &mut Rng) -> Event {
    let year_start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let day = Duration::days(rng.below(365) as i64);
    let kind = rng.below(100);
    let (start, end, all_day) = if kind < 94 {
        // Meetings: 15 to 120 minutes between 07:00 and 19:00.
        let start = year_start + day + Duration::minutes(7 * 60 + 15 * rng.below(48) as i64);
        (
            start,
            start + Duration::minutes(15 * (1 + rng.below(8)) as i64),
            false,
        )
    } else if kind < 99 {
        let start = year_start + day;
        (start, start + Duration::days(1), true)
    } else {
        let start = year_start + day;
        (start, start + Duration::days(2 + rng.below(5) as i64), true)
    };
    let key = format!("bench{i:05}");
    let mut event = Event::new(
        user_id,
        conn,
        &key,
        &format!("Event {i}"),
        (start, end),
        Store::now(),
    );
    event.provider_event_id = Some(key);
    if all_day {
        event.is_all_day = true;
        event.start_date = Some(start.date_naive());
        event.end_date = Some(end.date_naive());
    }
    event
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start()?;
    let sdk = calsync_devstack::local_sdk_config(&emulator.endpoint).await;
    let template =
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml").as_ref())?;
    let env = provision(&sdk, &template, "bench-").await?.environment;
    let config = Config::from_lookup(|k| env.get(k).cloned())?;
    let app = App::new(&sdk, config);

    let register = ApiRequest::new(Method::POST, "/v1/auth/register").with_json(&serde_json::json!({
        "email": "bench@example.com", "password": "benchmark password", "firstName": "B", "lastName": "M"}));
    let session = app.handle(None, register).await.body.ok_or("no body")?;
    let token = session["token"].as_str().ok_or("no token")?.to_owned();
    let user_id = session["user"]["id"]
        .as_str()
        .ok_or("no user id")?
        .to_owned();

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut connections = Vec::new();
    for c in 0..CALENDARS {
        let calendar_id = format!("cal{c}");
        let mut conn = Connection::new(
            &user_id,
            Provider::Google,
            &calendar_id,
            &format!("Calendar {c}"),
            "#3366cc",
            Store::now(),
        );
        conn.is_primary = c == 0;
        conn.event_count = (EVENTS / CALENDARS) as i64;
        app.store.put_connection(&conn).await?;
        connections.push(conn.id);
    }
    let events: Vec<Event> = (0..EVENTS)
        .map(|i| event(&user_id, &connections[i % CALENDARS], i, &mut rng))
        .collect();
    let load_started = std::time::Instant::now();
    let before = app.store.stats();
    app.store.put_events(&events).await?;
    let load = app.store.stats();
    println!(
        "loaded {EVENTS} events in {:.1} s with {} BatchWriteItem requests",
        load_started.elapsed().as_secs_f64(),
        load.write_requests - before.write_requests
    );

    let (mut returned, mut read, mut requests, mut worst_ratio, mut queries) =
        (0u64, 0u64, 0u64, 0f64, 0u64);
    let monday = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let mut seen = HashSet::new();
    for week in 0..51 {
        let start = monday + Duration::weeks(week);
        let end = start + Duration::weeks(1);
        let req = ApiRequest::new(Method::GET, "/v1/events")
            .with_bearer(&token)
            .with_query("start", &start.to_string())
            .with_query("end", &end.to_string())
            .with_query("limit", "1000");
        let before = app.store.stats();
        let response = app.handle(None, req).await;
        let after = app.store.stats();
        let body = response.body.ok_or("no body")?;
        let page = body["events"].as_array().ok_or("no events")?;
        assert!(body.get("nextCursor").is_none(), "a week fits one page");
        let expected = events
            .iter()
            .filter(|e| {
                e.start_time < Utc.from_utc_datetime(&end.and_hms_opt(0, 0, 0).unwrap())
                    && e.end_time > Utc.from_utc_datetime(&start.and_hms_opt(0, 0, 0).unwrap())
            })
            .count();
        assert_eq!(
            page.len(),
            expected,
            "week {week} returned what overlaps it"
        );
        seen.extend(
            page.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned)),
        );
        let items = after.items_read - before.items_read;
        returned += page.len() as u64;
        read += items;
        requests += after.requests - before.requests;
        worst_ratio = worst_ratio.max(items as f64 / page.len().max(1) as f64);
        queries += 1;
    }
    println!(
        "one-week queries: {queries}, events returned per query: {:.0}",
        returned as f64 / queries as f64
    );
    println!(
        "DynamoDB items read per event returned: {:.3} (worst week {:.3}; target <= 1.5)",
        read as f64 / returned as f64,
        worst_ratio
    );
    println!(
        "DynamoDB requests per query: {:.2} (session, calendars, and the four duration tiers read concurrently)",
        requests as f64 / queries as f64
    );
    println!("distinct events seen across the year: {}", seen.len());
    kms_calls_per_thousand_decryptions(&app, &sdk).await?;
    Ok(())
}

/// Provider secrets: KMS calls made by one container to decrypt 1,000 sealed tokens.
async fn kms_calls_per_thousand_decryptions(
    app: &App,
    sdk: &aws_config::SdkConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    use calsync::crypto::{Secret, SecretContext, TokenCipher};
    let key = app.config.token_key_id.clone().ok_or("no TOKEN_KEY_ID")?;
    let sealer = TokenCipher::new(aws_sdk_kms::Client::new(sdk), key.clone());
    let mut sealed = Vec::new();
    for i in 0..1000 {
        let account = format!("account{i}");
        let context = SecretContext {
            user_id: "bench",
            account_id: &account,
            field: "access_token",
        };
        sealed.push((
            account.clone(),
            sealer
                .seal(&Secret::new(format!("token-{i}")), context)
                .await?,
        ));
    }
    let container = TokenCipher::new(aws_sdk_kms::Client::new(sdk), key);
    let started = std::time::Instant::now();
    for (account, secret) in &sealed {
        let context = SecretContext {
            user_id: "bench",
            account_id: account,
            field: "access_token",
        };
        container.open(secret, context).await?;
    }
    println!(
        "KMS calls: {} to seal 1,000 secrets, {} to decrypt 1,000 in a fresh container ({:.0} µs per decryption on average)",
        sealer.kms_calls(),
        container.kms_calls(),
        started.elapsed().as_secs_f64() * 1e6 / 1000.0
    );
    Ok(())
}
