//! CalDAV sync against Radicale (and Xandikos): full listing, incremental sync-collection,
//! overrides, deletions, a lost token, malformed data, and a seeded random convergence run.

use std::collections::BTreeMap;

use calsync::app::App;
use calsync::sync::engine::{sync_connection, SyncOutcome, SyncReport};
use calsync_devstack::peer::{self, Peer};
use http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

pub struct CalDavFixture {
    /// Kept for its lifetime: the server stops when the fixture is dropped.
    _server: Peer,
    pub app: App,
    pub user: TestUser,
    pub connection_id: String,
    /// The collection as the server itself serves it (tests write here, bypassing any proxy).
    pub collection: String,
    http: reqwest::Client,
    auth: (String, String),
}

impl CalDavFixture {
    pub async fn radicale(tag: &str) -> Self {
        Self::radicale_behind(str::to_owned, tag).await
    }

    /// Radicale, reached by calsync through a proxy that injects faults.
    pub async fn radicale_behind(proxy: impl FnOnce(&str) -> String, tag: &str) -> Self {
        let server = peer::radicale(&[("alice", "alice-pw")]).expect("radicale");
        let via = proxy(&server.base_url);
        Self::connect(
            server,
            Some(via),
            tag,
            "/alice/work/",
            ("alice", "alice-pw"),
            true,
        )
        .await
    }

    pub async fn xandikos(tag: &str) -> Self {
        let server = peer::xandikos().expect("xandikos");
        Self::connect(
            server,
            None,
            tag,
            "/user/calendars/calendar/",
            ("user", "unused"),
            false,
        )
        .await
    }

    async fn connect(
        server: Peer,
        via: Option<String>,
        tag: &str,
        path: &str,
        (user, password): (&str, &str),
        create: bool,
    ) -> Self {
        let http = reqwest::Client::new();
        let collection = format!("{}{path}", server.base_url);
        if create {
            let response = http
                .request(Method::from_bytes(b"MKCALENDAR").unwrap(), &collection)
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "MKCALENDAR: {}",
                response.status()
            );
        }
        let servers: Vec<&str> = std::iter::once(server.base_url.as_str())
            .chain(via.as_deref())
            .collect();
        let app = app_with(&[
            http_loopback(&servers),
            // A delayed answer from the fault proxy is then a real timeout.
            ("PROVIDER_TIMEOUT_MS", "1500".into()),
        ])
        .await;
        let test_user = register(&app, tag).await;
        let server_url = via.unwrap_or_else(|| server.base_url.clone());
        let body = json!({"username": user, "appPassword": password, "serverUrl": server_url});
        let (status, connected) = call(
            &app,
            send(
                Method::POST,
                "/v1/connections/apple",
                &test_user.token,
                &body,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{connected}");
        let calendar = connected["calendars"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                collection.ends_with(&format!("{}/", c["providerName"].as_str().unwrap()))
                    || connected["calendars"].as_array().unwrap().len() == 1
            })
            .unwrap_or_else(|| panic!("{connected}"));
        Self {
            connection_id: calendar["id"].as_str().unwrap().to_owned(),
            collection,
            _server: server,

            app,
            user: test_user,
            http,
            auth: (user.to_owned(), password.to_owned()),
        }
    }

    /// The resource `name` as the server serves it.
    pub async fn fetch(&self, name: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{name}.ics", self.collection))
            .basic_auth(&self.auth.0, Some(&self.auth.1))
            .send()
            .await
            .unwrap()
    }

    /// The names (without `.ics`) of the collection's resources, as the server lists them.
    pub async fn resource_names(&self) -> Vec<String> {
        let response = self
            .http
            .request(Method::from_bytes(b"PROPFIND").unwrap(), &self.collection)
            .basic_auth(&self.auth.0, Some(&self.auth.1))
            .header("Depth", "1")
            .header("Content-Type", "application/xml")
            .body(
                r#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>"#,
            )
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "PROPFIND: {}",
            response.status()
        );
        let text = response.text().await.unwrap();
        let pieces: Vec<&str> = text.split(".ics<").collect();
        // Each piece but the last ends with an href's last segment.
        let mut names: Vec<String> = pieces[..pieces.len() - 1]
            .iter()
            .filter_map(|before| before.rsplit(['/', '>']).next())
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub async fn put(&self, name: &str, ics: &str) {
        let response = self
            .http
            .put(format!("{}{name}.ics", self.collection))
            .basic_auth(&self.auth.0, Some(&self.auth.1))
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(ics.to_owned())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "PUT {name}: {}",
            response.status()
        );
    }

    pub async fn delete(&self, name: &str) {
        let response = self
            .http
            .delete(format!("{}{name}.ics", self.collection))
            .basic_auth(&self.auth.0, Some(&self.auth.1))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "DELETE {name}: {}",
            response.status()
        );
    }

    pub async fn sync(&self) -> SyncReport {
        match sync_connection(&self.app, &self.user.id, &self.connection_id).await {
            Ok(SyncOutcome::Synced(report)) => report,
            other => panic!("sync: {other:?}"),
        }
    }

    /// Titles and starts of the live events we store for this calendar, by title.
    pub async fn stored(&self) -> BTreeMap<String, String> {
        let (status, body) = call(
            &self.app,
            query(
                get("/v1/events", &self.user.token),
                &[
                    ("start", "2026-01-01"),
                    ("end", "2027-01-01"),
                    ("limit", "1000"),
                ],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let start = match e["start"]["date"].as_str() {
                    Some(date) => date.to_owned(),
                    None => zoned(&e["start"]),
                };
                (e["title"].as_str().unwrap().to_owned(), start)
            })
            .collect()
    }

    pub async fn event_count(&self) -> i64 {
        let (_, cals) = call(&self.app, get("/v1/calendars", &self.user.token)).await;
        cals["calendars"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == self.connection_id.as_str())
            .unwrap()["eventCount"]
            .as_i64()
            .unwrap()
    }
}

pub fn ics(uid: &str, title: &str, start: &str, minutes: i64, extra: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\n\
         DTSTART;TZID=Europe/Paris:{start}\r\nDURATION:PT{minutes}M\r\nSUMMARY:{title}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

#[tokio::test]
async fn caldav_sync_lists_then_follows_changes_and_deletions() {
    lists_then_follows_changes(CalDavFixture::radicale("caldav-sync").await).await;
}

#[tokio::test]
async fn caldav_sync_lists_then_follows_changes_and_deletions_on_xandikos() {
    lists_then_follows_changes(CalDavFixture::xandikos("xandikos-sync").await).await;
}

async fn lists_then_follows_changes(fx: CalDavFixture) {
    fx.put("one", &ics("one@test", "One", "20261110T090000", 60, ""))
        .await;
    fx.put("two", &ics("two@test", "Two", "20261111T090000", 30, ""))
        .await;
    let first = fx.sync().await;
    assert!(first.full && first.written == 2, "{first:?}");
    assert_eq!(
        fx.stored().await,
        BTreeMap::from([
            ("One".into(), "2026-11-10T09:00:00+01:00".into()),
            ("Two".into(), "2026-11-11T09:00:00+01:00".into())
        ])
    );
    assert_eq!(fx.event_count().await, 2);

    // Nothing changed: an incremental listing writes nothing.
    let idle = fx.sync().await;
    assert!(
        !idle.full && idle.written == 0 && idle.deleted == 0,
        "{idle:?}"
    );

    fx.put(
        "one",
        &ics("one@test", "One (moved)", "20261112T140000", 60, ""),
    )
    .await;
    fx.delete("two").await;
    let series = "RRULE:FREQ=DAILY;COUNT=5\r\n";
    fx.put(
        "daily",
        &ics("daily@test", "Daily", "20261116T080000", 15, series),
    )
    .await;
    let changed = fx.sync().await;
    assert!(
        !changed.full && changed.written == 2 && changed.deleted == 1,
        "{changed:?}"
    );
    let stored = fx.stored().await;
    assert_eq!(
        stored.get("One (moved)").map(String::as_str),
        Some("2026-11-12T14:00:00+01:00")
    );
    assert!(!stored.contains_key("Two") && !stored.contains_key("One"));
    assert!(stored.contains_key("Daily"));
    assert_eq!(fx.event_count().await, 2);
}

#[tokio::test]
async fn a_lost_sync_token_reconciles_instead_of_wiping() {
    let fx = CalDavFixture::radicale("caldav-lost").await;
    for i in 0..3 {
        fx.put(
            &format!("e{i}"),
            &ics(
                &format!("e{i}@test"),
                &format!("E{i}"),
                &format!("2026111{i}T090000"),
                30,
                "",
            ),
        )
        .await;
    }
    fx.sync().await;
    // The server forgets our token (we corrupt it), and meanwhile one event goes and one comes.
    let mut conn = fx
        .app
        .store
        .connection(&fx.user.id, &fx.connection_id)
        .await
        .unwrap()
        .unwrap();
    conn.sync_token = Some("http://radicale.org/ns/sync/forgotten".into());
    fx.app.store.put_connection(&conn).await.unwrap();
    fx.delete("e1").await;
    fx.put("e3", &ics("e3@test", "E3", "20261113T090000", 30, ""))
        .await;
    let report = fx.sync().await;
    assert!(report.cursor_lost && report.full, "{report:?}");
    let titles: Vec<String> = fx.stored().await.into_keys().collect();
    assert_eq!(titles, ["E0", "E2", "E3"]);
    assert_eq!(fx.event_count().await, 3);
}

#[tokio::test]
async fn one_malformed_resource_is_counted_and_the_feed_goes_on_xandikos() {
    // Xandikos stores what it is given, so it can hold a resource we cannot read.
    let fx = CalDavFixture::xandikos("caldav-malformed").await;
    fx.put("good", &ics("good@test", "Good", "20261110T090000", 30, ""))
        .await;
    let broken = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:bad@test\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:not-a-time\r\nSUMMARY:Bad\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    fx.put("bad", broken).await;
    let first = fx.sync().await;
    assert_eq!((first.written, first.malformed), (1, 1), "{first:?}");
    // The cursor advanced past it: the next sync sees a later change and nothing else.
    fx.put(
        "later",
        &ics("later@test", "Later", "20261111T090000", 30, ""),
    )
    .await;
    let next = fx.sync().await;
    assert_eq!(
        (next.full, next.written, next.malformed),
        (false, 1, 0),
        "{next:?}"
    );
    assert_eq!(
        fx.stored().await.into_keys().collect::<Vec<_>>(),
        ["Good", "Later"]
    );
    // A lost token on Xandikos is a 412; the full listing still reconciles.
    let mut conn = fx
        .app
        .store
        .connection(&fx.user.id, &fx.connection_id)
        .await
        .unwrap()
        .unwrap();
    conn.sync_token = Some("http://xandikos.org/forgotten".into());
    fx.app.store.put_connection(&conn).await.unwrap();
    fx.delete("good").await;
    let recovered = fx.sync().await;
    assert!(recovered.cursor_lost, "{recovered:?}");
    assert_eq!(fx.stored().await.into_keys().collect::<Vec<_>>(), ["Later"]);
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seed: `CALSYNC_SEED` to replay, else the clock.
pub fn seed() -> u64 {
    std::env::var("CALSYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(7) as u64 | 1)
}

#[derive(Clone, Debug)]
struct Resource {
    title: String,
    day: u64,
    hour: u64,
    minutes: i64,
    zone: &'static str,
    /// A daily series with one moved instance (the second), when set.
    series: bool,
}

fn local(day: u64, hour: u64) -> String {
    format!("202611{day:02}T{hour:02}0000")
}

fn resource_ics(name: &str, r: &Resource) -> String {
    let event = |extra: &str, start: &str, title: &str| {
        format!(
            "BEGIN:VEVENT\r\nUID:{name}@test\r\nDTSTAMP:20261101T000000Z\r\nDTSTART;TZID={zone}:{start}\r\n\
             DURATION:PT{m}M\r\nSUMMARY:{title}\r\n{extra}END:VEVENT\r\n",
            zone = r.zone,
            m = r.minutes
        )
    };
    let mut body = event(
        if r.series {
            "RRULE:FREQ=DAILY;COUNT=3\r\n"
        } else {
            ""
        },
        &local(r.day, r.hour),
        &r.title,
    );
    if r.series {
        let original = local(r.day + 1, r.hour);
        let moved = local(r.day + 1, r.hour + 1);
        body += &event(
            &format!("RECURRENCE-ID;TZID={}:{original}\r\n", r.zone),
            &moved,
            &format!("{} (moved)", r.title),
        );
    }
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync convergence//EN\r\n{body}END:VCALENDAR\r\n")
}

/// What the store must hold for the provider's resources: key -> (title, start UTC).
fn expected(
    collection_path: &str,
    model: &BTreeMap<String, Resource>,
) -> BTreeMap<String, (String, String)> {
    use chrono::TimeZone;
    let utc = |zone: &str, day: u64, hour: u64| {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let t = tz
            .with_ymd_and_hms(2026, 11, day as u32, hour as u32, 0, 0)
            .earliest()
            .unwrap();
        calsync::time::key_format(t.with_timezone(&chrono::Utc))
    };
    let mut out = BTreeMap::new();
    for (name, r) in model {
        let href = format!("{collection_path}{name}.ics");
        out.insert(href.clone(), (r.title.clone(), utc(r.zone, r.day, r.hour)));
        if r.series {
            let original = utc(r.zone, r.day + 1, r.hour);
            out.insert(
                format!("{href}#{original}"),
                (
                    format!("{} (moved)", r.title),
                    utc(r.zone, r.day + 1, r.hour + 1),
                ),
            );
        }
    }
    out
}

async fn stored_by_key(fx: &CalDavFixture) -> BTreeMap<String, (String, String)> {
    stored_events(&fx.app, &fx.connection_id).await
}

#[tokio::test]
async fn caldav_converges_under_faults_seeded() {
    use calsync_devstack::fault_proxy::{Fault, FaultProxy};
    let seed = seed();
    const STEPS: usize = 40;
    println!("caldav convergence: seed={seed} steps={STEPS} (replay with CALSYNC_SEED={seed})");
    let proxy_slot = std::sync::Mutex::new(None);
    let fx = CalDavFixture::radicale_behind(
        |upstream| {
            let proxy = FaultProxy::start(upstream).unwrap();
            let url = proxy.base_url.clone();
            *proxy_slot.lock().unwrap() = Some(proxy);
            url
        },
        "caldav-converge",
    )
    .await;
    let proxy = proxy_slot.lock().unwrap().take().unwrap();
    let collection_path = url::Url::parse(&fx.collection).unwrap().path().to_owned();
    let mut rng = Rng(seed);
    let mut model: BTreeMap<String, Resource> = BTreeMap::new();
    let zones = ["Europe/Paris", "America/New_York", "UTC", "Asia/Tokyo"];
    for step in 0..STEPS {
        let names: Vec<String> = model.keys().cloned().collect();
        let pick = |rng: &mut Rng| {
            names
                .get(rng.below(names.len().max(1) as u64) as usize)
                .cloned()
        };
        match rng.below(8) {
            0 | 1 => {
                let name = format!("r{step}");
                let r = Resource {
                    title: format!("Event {step}"),
                    day: 1 + rng.below(25),
                    hour: 7 + rng.below(10),
                    minutes: 15 * (1 + rng.below(8) as i64),
                    zone: zones[rng.below(4) as usize],
                    series: rng.below(4) == 0,
                };
                fx.put(&name, &resource_ics(&name, &r)).await;
                model.insert(name, r);
            }
            2 => {
                if let Some(name) = pick(&mut rng) {
                    let r = model.get_mut(&name).unwrap();
                    (r.day, r.hour) = (1 + rng.below(25), 7 + rng.below(10));
                    fx.put(&name, &resource_ics(&name, r)).await;
                }
            }
            3 => {
                if let Some(name) = pick(&mut rng) {
                    let r = model.get_mut(&name).unwrap();
                    r.title = format!(
                        "{} (edited at {step})",
                        r.title.split(" (edited").next().unwrap()
                    );
                    fx.put(&name, &resource_ics(&name, r)).await;
                }
            }
            4 => {
                if let Some(name) = pick(&mut rng) {
                    fx.delete(&name).await;
                    model.remove(&name);
                }
            }
            5 => {
                if let Some(name) = pick(&mut rng) {
                    let r = model.get_mut(&name).unwrap();
                    r.zone = zones[rng.below(4) as usize];
                    fx.put(&name, &resource_ics(&name, r)).await;
                }
            }
            _ => {
                match rng.below(6) {
                    5 => proxy.inject(Fault {
                        status: 0,
                        retry_after: None,
                        delay: std::time::Duration::from_millis(2500),
                    }),
                    0 => proxy.inject(Fault {
                        status: 500,
                        retry_after: None,
                        delay: std::time::Duration::ZERO,
                    }),
                    1 => proxy.inject(Fault {
                        status: 429,
                        retry_after: Some(1),
                        delay: std::time::Duration::ZERO,
                    }),
                    2 => {
                        let mut conn = fx
                            .app
                            .store
                            .connection(&fx.user.id, &fx.connection_id)
                            .await
                            .unwrap()
                            .unwrap();
                        if conn.sync_token.is_some() {
                            conn.sync_token = Some("http://radicale.org/ns/sync/lost".into());
                            fx.app.store.put_connection(&conn).await.unwrap();
                        }
                    }
                    _ => {}
                }
                // Two workers on one calendar: one syncs, the other finds the lease held.
                sync_concurrently(&fx.app, &fx.user.id, &fx.connection_id, step).await;
            }
        }
    }
    // A duplicate delivery of the same request through the worker changes nothing.
    deliver_twice(&fx.app, &fx.user.id, &fx.connection_id).await;
    fx.sync().await;

    let want = expected(&collection_path, &model);
    let have = stored_by_key(&fx).await;
    assert_eq!(have, want, "seed={seed}: the store must equal the provider");
    assert_eq!(
        fx.event_count().await as usize,
        want.len(),
        "seed={seed}: exact count"
    );
    println!(
        "caldav convergence: {} resources, {} events, {} faults served",
        model.len(),
        want.len(),
        proxy.faults_served()
    );
}

#[tokio::test]
async fn a_server_without_sync_collection_is_followed_by_ctag_and_etags() {
    use calsync_devstack::fault_proxy::{FaultProxy, Refusal};
    let slot = std::sync::Mutex::new(None);
    let fx = CalDavFixture::radicale_behind(
        |upstream| {
            let proxy = FaultProxy::start(upstream).unwrap();
            // As a server that never implemented RFC 6578 answers.
            proxy.refuse(Refusal {
                method: "REPORT".into(),
                body_contains: "sync-collection".into(),
                status: 403,
                body: r#"<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:supported-report/></D:error>"#.into(),
            });
            let url = proxy.base_url.clone();
            *slot.lock().unwrap() = Some(proxy);
            url
        },
        "caldav-ctag",
    )
    .await;
    fx.put("a", &ics("a@test", "A", "20261110T090000", 30, ""))
        .await;
    fx.put("b", &ics("b@test", "B", "20261111T090000", 30, ""))
        .await;
    let first = fx.sync().await;
    assert!(first.full && first.written == 2, "{first:?}");
    let idle = fx.sync().await;
    assert!(
        !idle.full && idle.written == 0 && idle.unchanged == 0,
        "unchanged ctag, nothing fetched: {idle:?}"
    );

    fx.put("a", &ics("a@test", "A (edited)", "20261110T100000", 30, ""))
        .await;
    fx.delete("b").await;
    fx.put("c", &ics("c@test", "C", "20261112T090000", 30, ""))
        .await;
    let changed = fx.sync().await;
    assert!(
        changed.full && changed.written == 2 && changed.deleted == 1 && changed.unchanged == 0,
        "{changed:?}"
    );
    assert_eq!(
        fx.stored().await.into_keys().collect::<Vec<_>>(),
        ["A (edited)", "C"]
    );
    assert_eq!(fx.event_count().await, 2);
}

#[tokio::test]
async fn local_changes_are_written_back_to_caldav_and_a_provider_change_wins() {
    let fx = CalDavFixture::radicale("caldav-write-back").await;
    fx.sync().await;
    let (status, created) = call(
        &fx.app,
        send(
            Method::POST,
            "/v1/events",
            &fx.user.token,
            &json!({
        "calendarId": fx.connection_id, "title": "Written here",
        "start": {"dateTime": "2026-11-20T10:00:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2026-11-20T11:00:00", "timeZone": "Europe/Paris"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, key) = calsync::ids::decode_event_id(&id).unwrap();
    assert!(
        key.starts_with("/alice/work/") && key.ends_with(".ics"),
        "{key}"
    );
    let name = key
        .trim_start_matches("/alice/work/")
        .trim_end_matches(".ics")
        .to_owned();

    let pushed = fx.sync().await;
    assert_eq!(pushed.write_back.pushed, 1, "{pushed:?}");
    let resource = fx.fetch(&name).await;
    assert_eq!(resource.status(), StatusCode::OK);
    assert!(resource
        .text()
        .await
        .unwrap()
        .contains("SUMMARY:Written here"));
    // The next sync recognises our own resource: one event, no duplicate.
    fx.sync().await;
    assert_eq!(
        fx.stored().await.into_keys().collect::<Vec<_>>(),
        ["Written here"]
    );

    let path = format!("/v1/events/{id}");
    let (status, _) = call(
        &fx.app,
        send(
            Method::PATCH,
            &path,
            &fx.user.token,
            &json!({"title": "Renamed here"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fx.sync().await.write_back.pushed, 1);
    let text = fx.fetch(&name).await.text().await.unwrap();
    assert!(text.contains("SUMMARY:Renamed here"), "{text}");

    // Changed at the server meanwhile: our If-Match fails, the server's version wins.
    let uid = text
        .lines()
        .find_map(|l| l.strip_prefix("UID:"))
        .unwrap()
        .trim()
        .to_owned();
    fx.put(
        &name,
        &ics(&uid, "Changed there", "20261120T150000", 30, ""),
    )
    .await;
    let (status, _) = call(
        &fx.app,
        send(
            Method::PATCH,
            &path,
            &fx.user.token,
            &json!({"title": "Changed here"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let report = fx.sync().await;
    assert_eq!(
        report.superseded + report.write_back.superseded,
        1,
        "{report:?}"
    );
    fx.sync().await;
    assert_eq!(
        fx.stored().await.into_keys().collect::<Vec<_>>(),
        ["Changed there"]
    );

    let (status, _) = call(
        &fx.app,
        calsync::api::ApiRequest::new(Method::DELETE, &path).with_bearer(&fx.user.token),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(fx.sync().await.write_back.pushed, 1);
    let gone = fx.fetch(&name).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

/// The interval the last sync chose for the calendar, in minutes.
async fn poll_minutes(fx: &CalDavFixture) -> i64 {
    let item = raw_item(
        "CONNECTIONS_TABLE",
        &format!("USER#{}", fx.user.id),
        &format!("CONN#{}", fx.connection_id),
    )
    .await
    .unwrap();
    item["pollIntervalSeconds"]
        .as_n()
        .unwrap()
        .parse::<i64>()
        .unwrap()
        / 60
}

#[tokio::test]
async fn caldav_polling_slows_down_while_quiet_and_speeds_up_on_changes_and_activity() {
    let fx = CalDavFixture::radicale("caldav-polling").await;
    fx.put("poll01", &ics("poll01", "First", "20261207T090000", 60, ""))
        .await;
    fx.sync().await;
    assert_eq!(poll_minutes(&fx).await, 2, "a sync that brought changes");
    // The user stopped using calsync two hours ago.
    let ddb = aws_sdk_dynamodb::Client::new(&sdk().await);
    ddb.update_item()
        .table_name(&stack().environment["USERS_TABLE"])
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{}", fx.user.id)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()),
        )
        .update_expression("SET activeAt = :then")
        .expression_attribute_values(
            ":then",
            aws_sdk_dynamodb::types::AttributeValue::S(calsync::time::key_format(
                chrono::Utc::now() - chrono::Duration::hours(2),
            )),
        )
        .send()
        .await
        .unwrap();
    let mut quiet = Vec::new();
    for _ in 0..5 {
        fx.sync().await;
        quiet.push(poll_minutes(&fx).await);
    }
    assert_eq!(quiet, vec![5, 10, 20, 30, 30]);
    fx.put(
        "poll02",
        &ics("poll02", "Second", "20261208T090000", 60, ""),
    )
    .await;
    fx.sync().await;
    assert_eq!(poll_minutes(&fx).await, 2, "a change brings it back");
    // An active user keeps it short.
    app_with_fresh_activity(&fx).await;
    fx.sync().await;
    assert_eq!(poll_minutes(&fx).await, 2, "the user is active");
}

/// Records the user's activity now, as any authenticated request does (once per ten minutes
/// per container: a fresh app has not recorded it yet).
async fn app_with_fresh_activity(fx: &CalDavFixture) {
    let fresh = app().await;
    let (status, _) = call(&fresh, get("/v1/me", &fx.user.token)).await;
    assert_eq!(status, StatusCode::OK);
}
