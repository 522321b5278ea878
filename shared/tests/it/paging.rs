//! Exact paging, proven by a seeded property test: for random calendars (single events of every
//! shape, series of every frequency, ended and open, begun years ago, with moved and cancelled
//! occurrences), random ranges, filters and limits from 1 to 1,000, following `nextCursor`
//! returns exactly the unpaged answer, computed here without calsync's range code: every series
//! walked from its first start with the `rrule` crate. Replay a failure with `CALSYNC_SEED`.

use std::collections::HashSet;

use calsync::ids::encode_event_id;
use calsync::model::{Attendee, Event, SyncStatus};
use calsync::store::Store;
use calsync::time::{key_format, TimeRange};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::support::*;

/// xorshift64*: small, seeded, replayable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const ANN: &str = "ann@example.com";

/// One item of the reference answer: its sort key, public id, and interval.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    key: String,
    id: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

struct World {
    /// Live single events and exceptions.
    singles: Vec<Event>,
    /// Series with the original starts their exceptions replace.
    series: Vec<(Event, HashSet<DateTime<Utc>>)>,
}

fn base() -> DateTime<Utc> {
    t("2026-01-01T00:00:00Z")
}

fn decorate(rng: &mut Rng, event: &mut Event) {
    if rng.chance(25) {
        event.attendees.push(Attendee {
            email: ANN.into(),
            name: None,
            response_status: None,
            optional: false,
        });
    }
    event.has_conference = rng.chance(30);
}

fn single(rng: &mut Rng, user: &str, calendar: &str, n: usize) -> Event {
    let start =
        base() - Duration::days(200) + Duration::minutes(15 * rng.below(4 * 24 * 560) as i64);
    let mut event = Event::new(
        user,
        calendar,
        &format!("single{n}"),
        "single",
        (start, start),
        Store::now(),
    );
    match rng.below(100) {
        0..=54 => event.end_time = start + Duration::minutes(15 * (1 + rng.below(8)) as i64),
        55..=59 => {}
        60..=69 => event.end_time = start + Duration::hours(4 + rng.below(22) as i64),
        70..=92 => {
            let days = if rng.below(100) < 80 {
                1
            } else {
                2 + rng.below(5) as i64
            };
            let date = start.date_naive();
            event.is_all_day = true;
            event.start_date = Some(date);
            event.end_date = Some(date + Duration::days(days));
            event.start_time = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap());
            event.end_time = event.start_time + Duration::days(days);
        }
        _ => event.end_time = start + Duration::days(9 + rng.below(40) as i64),
    }
    decorate(rng, &mut event);
    event
}

/// The starts a series' rule gives, walked from its first start (the reference expansion).
fn walk(master: &Event, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let dtstart = if master.is_all_day {
        format!(
            "DTSTART:{}T000000Z",
            master.start_date.unwrap().format("%Y%m%d")
        )
    } else {
        let zone: Tz = master.timezone.as_deref().unwrap().parse().unwrap();
        format!(
            "DTSTART;TZID={}:{}",
            zone.name(),
            master
                .start_time
                .with_timezone(&zone)
                .format("%Y%m%dT%H%M%S")
        )
    };
    let set: rrule::RRuleSet = format!("{dtstart}\n{}", master.recurrence_rule.as_deref().unwrap())
        .parse()
        .unwrap();
    (&set.limit())
        .into_iter()
        .map(|d| d.with_timezone(&Utc))
        .take_while(|d| *d < until)
        .collect()
}

fn series(rng: &mut Rng, user: &str, calendar: &str, n: usize) -> (Event, Vec<Event>) {
    let zone: Tz = *rng.pick(&[
        chrono_tz::America::New_York,
        chrono_tz::Europe::Berlin,
        chrono_tz::UTC,
        chrono_tz::Asia::Tokyo,
    ]);
    let date =
        NaiveDate::from_ymd_opt(2023, 1, 1).unwrap() + Duration::days(rng.below(4 * 365) as i64);
    let all_day = rng.chance(10);
    let local = date
        .and_hms_opt(8 + rng.below(10) as u32, 30 * rng.below(2) as u32, 0)
        .unwrap();
    let start = if all_day {
        Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
    } else {
        zone.from_local_datetime(&local)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    };
    let length = if all_day {
        Duration::days(1)
    } else {
        Duration::minutes(*rng.pick(&[30, 60, 90]))
    };
    let key = format!("series{n}");
    let mut master = Event::new(
        user,
        calendar,
        &key,
        "series",
        (start, start + length),
        Store::now(),
    );
    if all_day {
        master.is_all_day = true;
        master.start_date = Some(date);
        master.end_date = Some(date + Duration::days(1));
    } else {
        master.timezone = Some(zone.name().to_owned());
    }
    let day = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]
        [chrono::Datelike::weekday(&date).num_days_from_sunday() as usize];
    let mut rule = match rng.below(3) {
        0 => format!("FREQ=DAILY;INTERVAL={}", 1 + rng.below(3)),
        1 if rng.chance(50) => format!("FREQ=WEEKLY;BYDAY={day}"),
        1 => format!(
            "FREQ=WEEKLY;INTERVAL=2;BYDAY={day},{}",
            if day == "FR" { "MO" } else { "FR" }
        ),
        _ => "FREQ=MONTHLY".to_owned(),
    };
    match rng.below(10) {
        0..=3 => {}
        4..=6 => rule.push_str(&format!(";COUNT={}", 5 + rng.below(200))),
        _ => {
            let until = start + Duration::days(30 + rng.below(500) as i64);
            rule.push_str(&format!(";UNTIL={}", until.format("%Y%m%dT%H%M%SZ")));
        }
    }
    calsync::recurrence::apply_recurrence(&mut master, &[&format!("RRULE:{rule}")]);
    decorate(rng, &mut master);
    // Exceptions: a few occurrences moved (and maybe retitled) or cancelled.
    let mut children = Vec::new();
    if rng.chance(50) {
        let starts = walk(&master, base() + Duration::days(600));
        for _ in 0..1 + rng.below(3) {
            let original = *rng.pick(&starts);
            let child_key = format!("{key}_{}", original.format("%Y%m%dT%H%M%SZ"));
            if children.iter().any(|c: &Event| c.event_key == child_key) {
                continue;
            }
            let moved = original + Duration::hours(rng.below(97) as i64 - 48);
            let mut child = Event::new(
                user,
                calendar,
                &child_key,
                "exception",
                (moved, moved + length),
                Store::now(),
            );
            child.parent_event_id = Some(key.clone());
            child.original_start_time = Some(original);
            child.timezone = master.timezone.clone();
            child.attendees = master.attendees.clone();
            child.has_conference = master.has_conference;
            if all_day {
                child.is_all_day = true;
                child.start_date = Some(moved.date_naive());
                child.end_date = Some(moved.date_naive() + Duration::days(1));
                child.start_time =
                    Utc.from_utc_datetime(&moved.date_naive().and_hms_opt(0, 0, 0).unwrap());
                child.end_time = child.start_time + Duration::days(1);
            }
            if rng.chance(40) {
                child.deleted_at = Some(Store::now());
                child.sync_status = SyncStatus::Deleted;
                child.cancels_instance = true;
            }
            children.push(child);
        }
    }
    (master, children)
}

fn world(rng: &mut Rng, user: &str, calendars: &[String]) -> (World, Vec<Event>) {
    let mut stored = Vec::new();
    let mut singles = Vec::new();
    let mut all_series = Vec::new();
    for n in 0..300 {
        let calendar = rng.pick(calendars).clone();
        let event = single(rng, user, &calendar, n);
        singles.push(event.clone());
        stored.push(event);
    }
    for n in 0..60 {
        let calendar = rng.pick(calendars).clone();
        let (master, children) = series(rng, user, &calendar, n);
        let replaced = children
            .iter()
            .filter_map(|c| c.original_start_time)
            .collect();
        singles.extend(children.iter().filter(|c| !c.is_deleted()).cloned());
        stored.push(master.clone());
        stored.extend(children);
        all_series.push((master, replaced));
    }
    (
        World {
            singles,
            series: all_series,
        },
        stored,
    )
}

struct Filters {
    calendars: Option<Vec<String>>,
    attendee: bool,
    conference: Option<bool>,
}

impl Filters {
    fn admits(&self, e: &Event) -> bool {
        self.calendars
            .as_ref()
            .is_none_or(|c| c.contains(&e.connection_id))
            && (!self.attendee || e.attendees.iter().any(|a| a.email == ANN))
            && self.conference.is_none_or(|c| e.has_conference == c)
    }
}

fn expected(world: &World, range: TimeRange, filters: &Filters) -> Vec<Expected> {
    let item = |e: &Event, key: &str, start: DateTime<Utc>, end: DateTime<Utc>| Expected {
        key: format!("{}#{key}", key_format(start)),
        id: encode_event_id(&e.connection_id, key),
        start,
        end,
    };
    let mut out: Vec<Expected> = world
        .singles
        .iter()
        .filter(|e| filters.admits(e) && range.overlaps(e.start_time, e.end_time))
        .map(|e| item(e, &e.event_key, e.start_time, e.end_time))
        .collect();
    for (master, replaced) in &world.series {
        if !filters.admits(master) {
            continue;
        }
        let length = master.end_time - master.start_time;
        for start in walk(master, range.end) {
            if range.overlaps(start, start + length) && !replaced.contains(&start) {
                let key = format!("{}@{}", master.event_key, key_format(start));
                out.push(item(master, &key, start, start + length));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn following_cursors_gives_exactly_the_unpaged_answer() {
    let seed = crate::sync_caldav::seed();
    println!("paging property test: CALSYNC_SEED={seed}");
    let mut rng = Rng(seed);
    let app = app().await;
    let user = register(&app, "paging").await;
    let mut calendars = Vec::new();
    for name in ["Work", "Home", "Team"] {
        calendars.push(connect(&app, &user, name, name == "Work").await.id);
    }
    let (world, stored) = world(&mut rng, &user.id, &calendars);
    app.store.put_events(&stored).await.unwrap();

    let lengths = [1, 3, 7, 30, 90, 366];
    let limits = [1, 2, 5, 17, 50, 100, 250, 999, 1000];
    let mut checked = 0;
    for round in 0..14 {
        let start = base() - Duration::days(150) + Duration::hours(rng.below(24 * 500) as i64);
        let range = TimeRange {
            start,
            end: start + Duration::days(*rng.pick(&lengths)),
        };
        let filters = Filters {
            calendars: rng.chance(30).then(|| {
                let mut some = calendars.clone();
                some.truncate(1 + rng.below(2) as usize);
                some
            }),
            attendee: rng.chance(20),
            conference: rng.chance(20).then(|| rng.chance(50)),
        };
        let want = expected(&world, range, &filters);
        // At most ~150 pages a round, so the smallest limits get the shorter ranges.
        let limit = (*rng.pick(&limits)).max(want.len().div_ceil(150)).min(1000);
        let mut params = vec![
            ("start".to_owned(), key_format(range.start)),
            ("end".to_owned(), key_format(range.end)),
            ("limit".to_owned(), limit.to_string()),
        ];
        if let Some(c) = &filters.calendars {
            params.push(("calendarIds".into(), c.join(",")));
        }
        if filters.attendee {
            params.push(("attendee".into(), ANN.into()));
        }
        if let Some(c) = filters.conference {
            params.push(("hasConference".into(), c.to_string()));
        }
        let mut got: Vec<(String, String, String)> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut page_params = params.clone();
            if let Some(c) = &cursor {
                page_params.push(("cursor".into(), c.clone()));
            }
            let refs: Vec<(&str, &str)> = page_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (status, body) = call(&app, query(get("/v1/events", &user.token), &refs)).await;
            assert_eq!(
                status,
                http::StatusCode::OK,
                "seed {seed} round {round}: {body}"
            );
            let events = body["events"].as_array().unwrap();
            assert!(
                events.len() <= limit,
                "seed {seed}: a page holds at most limit"
            );
            got.extend(events.iter().map(|e: &Value| {
                let at = |v: &Value| {
                    v["dateTime"]
                        .as_str()
                        .or(v["date"].as_str())
                        .unwrap()
                        .to_owned()
                };
                (
                    e["id"].as_str().unwrap().to_owned(),
                    at(&e["start"]),
                    at(&e["end"]),
                )
            }));
            pages += 1;
            match body["nextCursor"].as_str() {
                Some(next) => {
                    assert_eq!(
                        events.len(),
                        limit,
                        "seed {seed}: only the last page is short"
                    );
                    cursor = Some(next.to_owned());
                }
                None => break,
            }
        }
        let got_ids: Vec<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
        let want_ids: Vec<&str> = want.iter().map(|e| e.id.as_str()).collect();
        if got_ids != want_ids {
            let got_set: HashSet<&str> = got_ids.iter().copied().collect();
            let want_set: HashSet<&str> = want_ids.iter().copied().collect();
            let missing: Vec<_> = want
                .iter()
                .filter(|e| !got_set.contains(e.id.as_str()))
                .map(|e| &e.key)
                .collect();
            let extra: Vec<_> = got
                .iter()
                .filter(|g| !want_set.contains(g.0.as_str()))
                .collect();
            panic!(
                "CALSYNC_SEED={seed} round {round}: range {range:?}, limit {limit}, {} pages: got {} want {}\n missing {missing:?}\n extra {extra:?}",
                pages,
                got_ids.len(),
                want_ids.len()
            );
        }
        checked += want.len();

        // The schedule routes compute on the same stream: free/busy is the reference, merged.
        if round % 4 == 0 && !filters.attendee && filters.conference.is_none() {
            let mut refs = vec![
                ("start", params[0].1.as_str()),
                ("end", params[1].1.as_str()),
            ];
            if let Some(c) = &params.iter().find(|(k, _)| k == "calendarIds") {
                refs.push(("calendarIds", c.1.as_str()));
            }
            let (status, body) = call(&app, query(get("/v1/freebusy", &user.token), &refs)).await;
            assert_eq!(status, http::StatusCode::OK, "{body}");
            let spans = want
                .iter()
                .map(|e| (e.start.max(range.start), e.end.min(range.end)))
                .collect();
            let merged: Vec<(String, String)> = calsync::schedule::merge(spans)
                .into_iter()
                .map(|(a, b)| (key_format(a), key_format(b)))
                .collect();
            let busy: Vec<(String, String)> = body["busy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    let at = |v: &Value| {
                        key_format(
                            DateTime::parse_from_rfc3339(v.as_str().unwrap())
                                .unwrap()
                                .to_utc(),
                        )
                    };
                    (at(&i["start"]), at(&i["end"]))
                })
                .collect();
            assert_eq!(busy, merged, "CALSYNC_SEED={seed} round {round}: free/busy");
        }
    }
    println!("paging property test: {checked} events and occurrences compared, all equal");
}
