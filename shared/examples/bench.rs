//! `make bench`: measures the date-range query on the AWS emulator.
//!
//! A user with 10,000 events over 5 calendars across one year (mostly meetings, some all-day and
//! multi-day events), then every one-week window of that year queried through the API. Reports
//! DynamoDB items read per event returned (target <= 1.5) and requests per query. The figures are
//! recorded in docs/benchmarks.md.

use std::collections::HashSet;

#[path = "bench_parts/push.rs"]
mod push;

use calsync::api::ApiRequest;
use calsync::app::App;
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
    let sdk = calsync::aws::emulator_sdk_config(&emulator.endpoint);
    let template =
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml").as_ref())?;
    let env = provision(&sdk, &template, "bench-").await?.environment;
    let config = Config::from_lookup(|k| env.get(k).cloned())?;
    let app = App::new(&sdk, config);
    // `-- series [SIZES...]` runs just the series benchmark (at those sizes).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "series") {
        let sizes: Vec<usize> = args[1..].iter().filter_map(|a| a.parse().ok()).collect();
        return series_at_scale(&app, &sizes).await;
    }
    if args.first().is_some_and(|a| a == "login") {
        return login_timing(&app).await;
    }
    if args.first().is_some_and(|a| a == "push") {
        return push::push_latency(&sdk, &template).await;
    }

    let (token, user_id) = register_user(&app, "bench@example.com").await?;

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
        let response = app.handle(&calsync::api::service::ALL, req).await;
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
    sync_from_google(&sdk, &template).await?;
    push::push_latency(&sdk, &template).await?;
    recurrence_speed()?;
    conflict_speed();
    series_at_scale(&app, &[]).await?;
    login_timing(&app).await?;
    Ok(())
}

/// Whether a failed sign-in's answer time tells an unknown e-mail from a wrong password:
/// medians and 90th percentiles of both, interleaved, one attempt per account (under the limit).
async fn login_timing(app: &App) -> Result<(), Box<dyn std::error::Error>> {
    const ROUNDS: usize = 101;
    let mut emails = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let email = format!("timing-{i}-{}@example.com", calsync::ids::new_id());
        let register = ApiRequest::new(Method::POST, "/v1/auth/register").with_json(
            &serde_json::json!({"email": email, "password": "benchmark password",
                                "firstName": "T", "lastName": "M"}),
        );
        app.handle(&calsync::api::service::ALL, register).await;
        emails.push(email);
    }
    let attempt = |email: String| async move {
        let login = ApiRequest::new(Method::POST, "/v1/auth/login")
            .with_json(&serde_json::json!({"email": email, "password": "not the password"}));
        let started = std::time::Instant::now();
        let status = app.handle(&calsync::api::service::ALL, login).await.status;
        (started.elapsed().as_secs_f64() * 1000.0, status)
    };
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for (i, email) in emails.into_iter().enumerate() {
        let (ms, status) = attempt(email).await;
        assert_eq!(status, 401);
        wrong.push(ms);
        let (ms, status) =
            attempt(format!("nobody-{i}-{}@example.com", calsync::ids::new_id())).await;
        assert_eq!(status, 401);
        unknown.push(ms);
    }
    let quantile = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    println!(
        "failed sign-in, ms over {ROUNDS} each: wrong password median {:.1} / p90 {:.1}, unknown e-mail median {:.1} / p90 {:.1}",
        quantile(&mut wrong, 0.5),
        quantile(&mut wrong, 0.9),
        quantile(&mut unknown, 0.5),
        quantile(&mut unknown, 0.9),
    );
    Ok(())
}

/// Peak resident memory of this process since the last reset (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn reset_peak_rss() {
    // "5" resets the peak RSS counter (Linux >= 4.0); harmless where unsupported.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Sync: 10,000 new events from the Google emulator, then 100 changed ones.
async fn sync_from_google(
    sdk: &aws_config::SdkConfig,
    template: &Template,
) -> Result<(), Box<dyn std::error::Error>> {
    use calsync::sync::engine::{sync_connection, SyncOutcome};
    let emulator = calsync_provider_emulator::spawn()?;
    let base = emulator.base_url.clone();
    let mut env = provision(sdk, template, "bench-sync-").await?.environment;
    for (k, v) in [
        ("OAUTH_CALLBACK_BASE", "http://127.0.0.1:3000".to_owned()),
        ("GOOGLE_CLIENT_ID", "bench".into()),
        ("GOOGLE_CLIENT_SECRET", "bench-secret".into()),
        ("GOOGLE_AUTH_URL", format!("{base}/google/o/oauth2/v2/auth")),
        ("GOOGLE_TOKEN_URL", format!("{base}/google/token")),
        ("GOOGLE_API_BASE", format!("{base}/google/calendar/v3")),
    ] {
        env.insert(k.to_owned(), v);
    }
    let config = Config::from_lookup(|k| env.get(k).cloned())?;
    let app = App::new(sdk, config);
    let (_, user_id, primary) = connect_google(&app, "sync-bench@example.com").await?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let calendar_path: String =
        url::form_urlencoded::byte_serialize(primary.calendar_id.as_bytes()).collect();

    let put = |i: usize, title: String| {
        let (browser, base, calendar_path) = (browser.clone(), base.clone(), calendar_path.clone());
        async move {
            let day = i % 365;
            let start = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
                + Duration::days(day as i64)
                + Duration::minutes((i % 8) as i64 * 60);
            let body = serde_json::json!({
                "summary": title,
                "start": {"dateTime": start.to_rfc3339(), "timeZone": "Europe/Berlin"},
                "end": {"dateTime": (start + Duration::minutes(45)).to_rfc3339(), "timeZone": "Europe/Berlin"},
            });
            browser
                .put(format!(
                    "{base}/admin/google/calendars/{calendar_path}/events/bench{i:05}"
                ))
                .json(&body)
                .send()
                .await
                .map(|r| r.status().is_success())
        }
    };
    const NEW: usize = 10_000;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..NEW {
        tasks.spawn(put(i, format!("Bench event {i}")));
        if tasks.len() >= 64 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}

    let measure = |label: &'static str| {
        let app = app.clone();
        let (user_id, calendar_id) = (user_id.clone(), primary.id.clone());
        async move {
            reset_peak_rss();
            let before = app.store.stats();
            let started = std::time::Instant::now();
            let outcome = sync_connection(&app, &user_id, &calendar_id)
                .await
                .map_err(|e| e.to_string())?;
            let elapsed = started.elapsed();
            let after = app.store.stats();
            let SyncOutcome::Synced(report) = outcome else {
                return Err(format!("{outcome:?}"));
            };
            let writes = after.write_requests - before.write_requests;
            println!(
                "sync {label}: {} events written, {} unchanged, {} pages, {writes} DynamoDB write requests ({:.1} per 1,000 written), {:.2} s, peak RSS {:.0} MiB",
                report.written,
                report.unchanged,
                report.pages,
                writes as f64 * 1000.0 / report.written.max(1) as f64,
                elapsed.as_secs_f64(),
                peak_rss_mib().unwrap_or(f64::NAN)
            );
            Ok::<_, String>(report)
        }
    };
    let first = measure("of 10,000 new events").await?;
    for i in (0..NEW).step_by(NEW / 100) {
        put(i, format!("Bench event {i} (changed)")).await?;
    }
    let second = measure("of 100 changed events").await?;
    println!(
        "unchanged events written on the second sync: {} (target 0)",
        second.written.saturating_sub(100)
    );
    let _ = first;
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

/// Recurrence: occurrences expanded per second by calsync and by recurring-ical-events (Python)
/// on the same corpus, in one run.
fn recurrence_speed() -> Result<(), Box<dyn std::error::Error>> {
    use calsync::time::TimeRange;
    let resources = calsync_devstack::recurrence_corpus::resources();
    let window = TimeRange {
        start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2033, 1, 1, 0, 0, 0).unwrap(),
    };
    const ROUNDS: usize = 200;
    let started = std::time::Instant::now();
    let mut occurrences = 0usize;
    for _ in 0..ROUNDS {
        for (name, text) in &resources {
            occurrences += calsync::recurrence::expand_resource(name, text, window)?.len();
        }
    }
    let ours = occurrences as f64 / started.elapsed().as_secs_f64();
    let python_rounds = 20;
    let request = serde_json::json!({
        "start": "2026-01-01T00:00:00Z", "end": "2033-01-01T00:00:00Z",
        "resources": resources.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "repeat": python_rounds,
    });
    let answer = calsync_devstack::recurrence_corpus::run_oracle(&request)?;
    let theirs = answer["count"].as_f64().unwrap_or(0.0) * python_rounds as f64
        / answer["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "recurrence: {} events, {} occurrences a round; calsync {:.0} occurrences/s (parse + expand), recurring-ical-events {:.0}/s: {:.1}x (target >= 10x)",
        resources.len(),
        occurrences / ROUNDS,
        ours,
        theirs,
        ours / theirs
    );
    Ok(())
}

/// Conflicts: the sweep against pairwise comparison on random intervals.
fn conflict_speed() {
    use calsync::schedule::{clash_groups, Interval};
    let mut rng = Rng(0xC0FF_EE00_D15E_A5E5);
    for n in [1_000usize, 10_000, 100_000] {
        let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let intervals: Vec<Interval> = (0..n)
            .map(|item| {
                // About 27 events a day, as in the range benchmark.
                let start = base + Duration::minutes(rng.below(n as u64 * 53) as i64);
                Interval {
                    start,
                    end: start + Duration::minutes(15 + rng.below(105) as i64),
                    item,
                }
            })
            .collect();
        let started = std::time::Instant::now();
        let groups = clash_groups(intervals.clone());
        let sweep = started.elapsed();
        let started = std::time::Instant::now();
        let mut clashing = 0usize;
        for a in &intervals {
            if intervals
                .iter()
                .any(|b| a.item != b.item && a.start < b.end && b.start < a.end)
            {
                clashing += 1;
            }
        }
        let pairwise = started.elapsed();
        let in_groups: usize = groups.iter().map(Vec::len).sum();
        assert_eq!(in_groups, clashing, "the sweep and pairwise agree");
        println!(
            "conflicts over {n} events: sweep {:.2} ms, pairwise {:.1} ms ({:.0}x), {clashing} events in {} groups",
            sweep.as_secs_f64() * 1e3,
            pairwise.as_secs_f64() * 1e3,
            pairwise.as_secs_f64() / sweep.as_secs_f64(),
            groups.len()
        );
    }
}

/// CPU time of this whole process (every thread), from /proc: the function's own work, since
/// moto runs in another process.
fn process_cpu() -> std::time::Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    std::time::Duration::from_nanos(total)
}

/// A series of the benchmark's mix: daily, weekly or monthly; begun up to two years before
/// 2026; a third ended (COUNT or UNTIL), some with moved and cancelled occurrences.
fn bench_series(user_id: &str, conn: &str, i: usize, rng: &mut Rng) -> Vec<Event> {
    let zone = ["Europe/Berlin", "America/New_York", "Asia/Tokyo"][i % 3];
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    let date = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + Duration::days(rng.below(900) as i64);
    let local = date
        .and_hms_opt(8 + rng.below(9) as u32, 30 * rng.below(2) as u32, 0)
        .unwrap();
    let start = tz
        .from_local_datetime(&local)
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    let length = Duration::minutes(30 * (1 + rng.below(3) as i64));
    let key = format!("series{i:05}");
    let mut master = Event::new(
        user_id,
        conn,
        &key,
        &format!("Series {i}"),
        (start, start + length),
        Store::now(),
    );
    master.timezone = Some(zone.to_owned());
    let mut rule = ["FREQ=DAILY", "FREQ=WEEKLY", "FREQ=MONTHLY"][i % 3].to_owned();
    match rng.below(6) {
        0 => rule.push_str(&format!(";COUNT={}", 10 + rng.below(100))),
        1 => rule.push_str(&format!(
            ";UNTIL={}",
            (start + Duration::days(60 + rng.below(300) as i64)).format("%Y%m%dT%H%M%SZ")
        )),
        _ => {}
    }
    calsync::recurrence::apply_recurrence(&mut master, &[&format!("RRULE:{rule}")]);
    let mut out = vec![master.clone()];
    if rng.below(4) == 0 {
        let series = calsync::recurrence::Series::new(master.clone(), Default::default());
        let year = calsync::time::TimeRange {
            start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        };
        let starts: Vec<_> = series
            .occurrences(year, year.start)
            .map(|o| o.start_time)
            .collect();
        for (n, original) in starts.iter().step_by(7).take(4).enumerate() {
            let child_key = format!("{key}_{}", original.format("%Y%m%dT%H%M%SZ"));
            let moved = *original + Duration::hours(2);
            let mut child = Event::new(
                user_id,
                conn,
                &child_key,
                "moved",
                (moved, moved + length),
                Store::now(),
            );
            child.parent_event_id = Some(key.clone());
            child.original_start_time = Some(*original);
            child.timezone = Some(zone.to_owned());
            if n % 2 == 1 {
                child.deleted_at = Some(Store::now());
                child.cancels_instance = true;
            }
            out.push(child);
        }
    }
    out
}

/// Issue "Recurring series at scale": one week and 90 days over 10,000 single events in 5
/// calendars plus 0, 50, 200 and 1,000 series, through the API, following every cursor.
async fn series_at_scale(app: &App, only: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    println!("\nseries at scale (GET /v1/events, every page followed; release build, moto)");
    println!("| series | range | limit | queries | occurrences per query | pages | requests per page (max) | items read per occurrence (worst) | CPU per query | CPU per page | paged = unpaged |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (size, series_count) in [0usize, 50, 200, 1000].into_iter().enumerate() {
        if !only.is_empty() && !only.contains(&series_count) {
            continue;
        }
        let email = format!("series{series_count}@bench.example");
        let (token, user_id) = register_user(app, &email).await?;
        let mut rng = Rng(0x5EED_0000 + size as u64);
        let mut connections = Vec::new();
        for c in 0..CALENDARS {
            let conn = Connection::new(
                &user_id,
                Provider::Google,
                &format!("s{c}"),
                &format!("Calendar {c}"),
                "#3366cc",
                Store::now(),
            );
            app.store.put_connection(&conn).await?;
            connections.push(conn.id);
        }
        let mut items: Vec<Event> = (0..EVENTS)
            .map(|i| event(&user_id, &connections[i % CALENDARS], i, &mut rng))
            .collect();
        for i in 0..series_count {
            items.extend(bench_series(
                &user_id,
                &connections[i % CALENDARS],
                i,
                &mut rng,
            ));
        }
        app.store.put_events(&items).await?;
        // 90-day reads are paged at 1,000 only: at 250 they cost what the 1-week rows show, and
        // moto takes minutes a range.
        for (label, days, windows, limits) in [
            ("1 week", 7, 8, &[1000usize, 250][..]),
            ("90 days", 90, 2, &[1000][..]),
        ] {
            for &limit in limits {
                let (mut pages, mut returned, mut read, mut worst, mut max_requests) =
                    (0u64, 0u64, 0u64, 0f64, 0u64);
                let mut total_requests = 0u64;
                let mut cpu = std::time::Duration::ZERO;
                let mut identical = true;
                for w in 0..windows {
                    let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
                        + Duration::days(w * 365 / windows);
                    let end = start + Duration::days(days);
                    let before_query = app.store.stats();
                    let read_pages =
                        pages_of(app, &token, &start.to_string(), &end.to_string(), limit).await?;
                    let ids = ids_of(&read_pages);
                    for page in &read_pages {
                        cpu += page.cpu;
                        pages += 1;
                        max_requests = max_requests.max(page.requests);
                        total_requests += page.requests;
                    }
                    let after_query = app.store.stats();
                    let items_read = after_query.items_read - before_query.items_read;
                    returned += ids.len() as u64;
                    read += items_read;
                    worst = worst.max(items_read as f64 / ids.len().max(1) as f64);
                    // The same range paged at another size (333) must list the very same ids.
                    if limit == 1000 && (days == 7 || w == 0) {
                        let other =
                            pages_of(app, &token, &start.to_string(), &end.to_string(), 333)
                                .await?;
                        let other = ids_of(&other);
                        identical &= other == ids;
                    }
                }
                let queries = windows as u64;
                println!(
                    "| {series_count} | {label} | {limit} | {queries} | {:.0} | {pages} | {:.2} ({max_requests}) | {:.3} ({worst:.3}) | {:.1} ms | {:.1} ms | {} |",
                    returned as f64 / queries as f64,
                    total_requests as f64 / pages as f64,
                    read as f64 / returned.max(1) as f64,
                    cpu.as_secs_f64() * 1000.0 / queries as f64,
                    cpu.as_secs_f64() * 1000.0 / pages as f64,
                    if limit == 1000 { if identical { "yes" } else { "NO" } } else { "-" },
                );
            }
        }
    }
    densest_rule(app).await
}

/// The densest rule the API accepts (24 occurrences a day), begun two years ago: a one-week and
/// a 366-day read, every page followed.
async fn densest_rule(app: &App) -> Result<(), Box<dyn std::error::Error>> {
    let (token, user_id) = register_user(app, "densest@bench.example").await?;
    let conn = Connection::new(
        &user_id,
        Provider::Google,
        "dense",
        "Dense",
        "#3366cc",
        Store::now(),
    );
    app.store.put_connection(&conn).await?;
    let hours = (0..24).map(|h| h.to_string()).collect::<Vec<_>>().join(",");
    let rule = format!("RRULE:FREQ=DAILY;BYHOUR={hours}");
    let req = ApiRequest::new(Method::POST, "/v1/events")
        .with_bearer(&token)
        .with_json(&serde_json::json!({
        "calendarId": conn.id, "title": "Hourly", "recurrence": [rule],
        "start": {"dateTime": "2024-01-01T00:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-01-01T00:30:00", "timeZone": "Europe/Berlin"}}));
    let created = app.handle(&calsync::api::service::ALL, req).await;
    assert_eq!(
        created.status,
        http::StatusCode::CREATED,
        "{:?}",
        created.body
    );
    for (label, end) in [("1 week", "2026-03-08"), ("366 days", "2027-03-02")] {
        let before = app.store.stats();
        let started = std::time::Instant::now();
        let read_pages = pages_of(app, &token, "2026-03-01", end, 1000).await?;
        let pages = read_pages.len();
        let listed = ids_of(&read_pages).len();
        let capped = read_pages
            .iter()
            .any(|p| p.body.get("cappedSeries").is_some());
        let cpu: std::time::Duration = read_pages.iter().map(|p| p.cpu).sum();
        let after = app.store.stats();
        println!(
            "densest accepted rule (FREQ=DAILY;BYHOUR=0..23, begun 2024), {label}: {listed} occurrences in {pages} pages (capped: {capped}), {} requests, {} items read, CPU {:.1} ms, wall {:.0} ms",
            after.requests - before.requests,
            after.items_read - before.items_read,
            cpu.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// One page of `GET /v1/events`, with the DynamoDB requests and the CPU it cost.
struct PageRead {
    body: serde_json::Value,
    requests: u64,
    cpu: std::time::Duration,
}

/// Every page of a range read, following `nextCursor`.
async fn pages_of(
    app: &App,
    token: &str,
    start: &str,
    end: &str,
    limit: usize,
) -> Result<Vec<PageRead>, Box<dyn std::error::Error>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = ApiRequest::new(Method::GET, "/v1/events")
            .with_bearer(token)
            .with_query("start", start)
            .with_query("end", end)
            .with_query("limit", &limit.to_string());
        if let Some(c) = &cursor {
            req = req.with_query("cursor", c);
        }
        let before = app.store.stats();
        let cpu_before = process_cpu();
        let response = app.handle(&calsync::api::service::ALL, req).await;
        let cpu = process_cpu() - cpu_before;
        let requests = app.store.stats().requests - before.requests;
        let body = response.body.ok_or("no body")?;
        cursor = body["nextCursor"].as_str().map(str::to_owned);
        pages.push(PageRead {
            body,
            requests,
            cpu,
        });
        if cursor.is_none() {
            return Ok(pages);
        }
    }
}

/// The event ids of pages, in order.
fn ids_of(pages: &[PageRead]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.body["events"].as_array().into_iter().flatten())
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect()
}

/// Registers `email` and connects the emulated Google account through the whole OAuth flow (our
/// start route, the consent screen, our callback); returns the session token, the user id and
/// the primary calendar.
async fn connect_google(
    app: &App,
    email: &str,
) -> Result<(String, String, Connection), Box<dyn std::error::Error>> {
    let (token, user_id) = register_user(app, email).await?;
    let start = ApiRequest::new(Method::POST, "/v1/connections/google").with_bearer(&token);
    let auth_url = app
        .handle(&calsync::api::service::ALL, start)
        .await
        .body
        .ok_or("no body")?["authorizationUrl"]
        .as_str()
        .ok_or("no authorizationUrl")?
        .to_owned();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // The start route (our own, served in-process) binds the flow to this "browser" by a cookie.
    let start_link = url::Url::parse(&auth_url)?;
    let mut open = ApiRequest::new(Method::GET, start_link.path());
    for (k, v) in start_link.query_pairs() {
        open = open.with_query(&k, &v);
    }
    let started = app.handle(&calsync::api::service::ALL, open).await;
    let started_header = |name: &str| {
        started
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or(format!("the start route set no {name}"))
    };
    let consent_url = started_header("location")?;
    let cookie = started_header("set-cookie")?;
    let location = browser.get(&consent_url).send().await?.headers()["location"]
        .to_str()?
        .to_owned();
    let mut callback = ApiRequest::new(Method::GET, "/oauth/google/callback")
        .with_header("cookie", cookie.split(';').next().unwrap_or_default());
    for (k, v) in url::Url::parse(&location)?.query_pairs() {
        callback = callback.with_query(&k, &v);
    }
    app.handle(&calsync::api::service::ALL, callback).await;
    let primary = app
        .store
        .connections(&user_id)
        .await?
        .into_iter()
        .find(|c| c.is_primary)
        .ok_or("no primary calendar")?;
    Ok((token, user_id, primary))
}

/// Registers `email` through the API; the session token and the user id.
async fn register_user(
    app: &App,
    email: &str,
) -> Result<(String, String), Box<dyn std::error::Error>> {
    let register = ApiRequest::new(Method::POST, "/v1/auth/register")
        .with_json(&serde_json::json!({
        "email": email, "password": "benchmark password", "firstName": "B", "lastName": "M"}));
    let session = app
        .handle(&calsync::api::service::ALL, register)
        .await
        .body
        .ok_or("no body")?;
    let token = session["token"].as_str().ok_or("no token")?.to_owned();
    let user_id = session["user"]["id"].as_str().ok_or("no user")?.to_owned();
    Ok((token, user_id))
}
