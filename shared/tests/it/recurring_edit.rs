//! Editing recurring events as calendar apps do (docs/decisions.md 34): move one occurrence,
//! cancel one, change the rule with overrides present, split a series (this and following), a
//! concurrent edit at the provider, and re-syncs that must undo none of it. The same scenario
//! runs against the Google and Microsoft Graph emulators, Radicale and Xandikos; after every step
//! the provider's own expansion (Google `events.instances`, Graph's instances in the window; for
//! CalDAV the resources read by recurring-ical-events) must equal what `/v1/events` and the ICS
//! feed list.

use calsync::api::ApiRequest;
use calsync::app::App;
use calsync::sync::engine::SyncReport;
use chrono::DateTime;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::emulated::EmulatedCalendar;
use crate::support::*;
use crate::sync_caldav::CalDavFixture;

const RANGE: (&str, &str) = ("2027-01-01T00:00:00Z", "2027-04-01T00:00:00Z");

/// One provider's calendar as the scenario drives it.
trait Side {
    fn app(&self) -> &App;
    fn user(&self) -> &TestUser;
    fn calendar(&self) -> &str;
    async fn sync(&self) -> SyncReport;
    /// The provider's own occurrences in [`RANGE`], as `start|title` (start in UTC), sorted.
    async fn provider(&self) -> Vec<String>;
    /// Retitles, at the provider and behind our back, the occurrence of `series` (our key)
    /// whose original start is `original`.
    async fn retitle_there(&self, series: &str, original: &str, title: &str);
}

/// A calendar of the Google or the Microsoft Graph emulator (its primary / default calendar).
struct Emulated {
    calendar: EmulatedCalendar,
    graph: bool,
}

impl std::ops::Deref for Emulated {
    type Target = EmulatedCalendar;
    fn deref(&self) -> &EmulatedCalendar {
        &self.calendar
    }
}

impl Emulated {
    async fn connect(tag: &str, provider: &'static str) -> Self {
        let calendar = EmulatedCalendar::connect(tag, provider, &[]).await;
        Self {
            calendar,
            graph: provider == "microsoft",
        }
    }

    async fn google_occurrences(&self) -> Vec<String> {
        let mut out = Vec::new();
        let listing = self.provider_listing("/events").await;
        for item in listing["items"].as_array().unwrap() {
            if item.get("recurringEventId").is_some() {
                continue;
            }
            let id = item["id"].as_str().unwrap();
            let instances = if item.get("recurrence").is_some() {
                let query = format!(
                    "/events/{id}/instances?timeMin={}&timeMax={}&maxResults=2500",
                    RANGE.0, RANGE.1
                );
                self.provider_listing(&query).await["items"]
                    .as_array()
                    .unwrap()
                    .clone()
            } else {
                vec![item.clone()]
            };
            // The scenario's events are timed; the emulator's all-day samples are not its own.
            for instance in instances {
                let Some(start) = instance["start"]["dateTime"].as_str() else {
                    continue;
                };
                let start = DateTime::parse_from_rfc3339(start).unwrap().to_utc();
                if start >= t(RANGE.0) && start < t(RANGE.1) {
                    let title = instance["summary"].as_str().unwrap_or_default();
                    out.push(format!("{}|{title}", calsync::time::key_format(start)));
                }
            }
        }
        out.sort();
        out
    }
    async fn google_retitle(&self, series: &str, original: &str, title: &str) {
        let id = format!("{series}_{}", t(original).format("%Y%m%dT%H%M%SZ"));
        let query = format!("/events/{series}/instances?originalStart={original}");
        let instance = self.provider_listing(&query).await["items"][0].clone();
        let mut changed = json!({"summary": title});
        for field in ["start", "end", "recurringEventId", "originalStartTime"] {
            changed[field] = instance[field].clone();
        }
        self.put_at(&format!("/events/{id}"), changed).await;
    }

    async fn graph_occurrences(&self) -> Vec<String> {
        let query = format!("/events?startDateTime={}&endDateTime={}", RANGE.0, RANGE.1);
        let listing = self.provider_listing(&query).await;
        let mut out: Vec<String> = listing["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["isAllDay"] != true)
            .map(|e| {
                let local = chrono::NaiveDateTime::parse_from_str(
                    e["start"]["dateTime"].as_str().unwrap(),
                    "%Y-%m-%dT%H:%M:%S%.f",
                )
                .unwrap();
                let title = e["subject"].as_str().unwrap_or_default();
                format!("{}|{title}", calsync::time::key_format(local.and_utc()))
            })
            .collect();
        out.sort();
        out
    }
    async fn graph_retitle(&self, series: &str, original: &str, title: &str) {
        let master = self
            .app
            .store
            .event(&self.connection_id, series)
            .await
            .unwrap()
            .unwrap();
        let graph_id = master.provider_event_id.unwrap_or(master.event_key);
        let path = format!("/events/{graph_id}/occurrences/{original}");
        self.put_at(&path, json!({"subject": title})).await;
    }
}

impl Side for Emulated {
    fn app(&self) -> &App {
        &self.app
    }
    fn user(&self) -> &TestUser {
        &self.user
    }
    fn calendar(&self) -> &str {
        &self.connection_id
    }
    async fn sync(&self) -> SyncReport {
        self.calendar.sync().await
    }
    async fn provider(&self) -> Vec<String> {
        if self.graph {
            self.graph_occurrences().await
        } else {
            self.google_occurrences().await
        }
    }
    async fn retitle_there(&self, series: &str, original: &str, title: &str) {
        if self.graph {
            self.graph_retitle(series, original, title).await
        } else {
            self.google_retitle(series, original, title).await
        }
    }
}

impl Side for CalDavFixture {
    fn app(&self) -> &App {
        &self.app
    }
    fn user(&self) -> &TestUser {
        &self.user
    }
    fn calendar(&self) -> &str {
        &self.connection_id
    }
    async fn sync(&self) -> SyncReport {
        CalDavFixture::sync(self).await
    }
    async fn provider(&self) -> Vec<String> {
        let mut resources = serde_json::Map::new();
        for name in self.resource_names().await {
            let text = self.fetch(&name).await.text().await.unwrap();
            resources.insert(name, json!(text));
        }
        let answer = calsync_devstack::recurrence_corpus::run_oracle(&json!({
            "start": RANGE.0, "end": RANGE.1, "resources": resources, "summaries": true,
        }))
        .expect("recurring-ical-events (make venv)");
        let mut out: Vec<String> = answer["occurrences"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|v| v.as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        out.sort();
        out
    }
    async fn retitle_there(&self, series: &str, original: &str, title: &str) {
        let name = series
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".ics")
            .to_owned();
        let response = self.fetch(&name).await;
        let text = response.text().await.unwrap().replace("\r\n ", "");
        let master = text
            .split("BEGIN:VEVENT")
            .nth(1)
            .unwrap()
            .split("END:VEVENT")
            .next()
            .unwrap();
        let field = |name: &str| {
            master
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {master}"))
                .to_owned()
        };
        let (uid, start, end) = (field("UID:"), field("DTSTART"), field("DTEND"));
        let at = t(original);
        let shift = |line: &str| {
            // The series' first start and end, moved to this occurrence (same local time).
            let (head, value) = line.rsplit_once(':').unwrap();
            let first = chrono::NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S").unwrap();
            let zone: chrono_tz::Tz = head.split("TZID=").nth(1).unwrap().parse().unwrap();
            let local = at.with_timezone(&zone).date_naive().and_time(first.time());
            format!("{head}:{}", local.format("%Y%m%dT%H%M%S"))
        };
        let recurrence_id = shift(&start).replacen("DTSTART", "RECURRENCE-ID", 1);
        let changed = format!(
            "BEGIN:VEVENT\r\n{uid}\r\nDTSTAMP:20261201T000000Z\r\n{recurrence_id}\r\n{}\r\n{}\r\nSUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR",
            shift(&start),
            shift(&end)
        );
        let body = text.replace("\n", "\r\n").replace("\r\r\n", "\r\n");
        let body = body.trim_end().trim_end_matches("END:VCALENDAR").to_owned() + &changed + "\r\n";
        self.put(&name, &body).await;
    }
}

/// What the API lists in [`RANGE`] for the calendar, as `start|title`, and the events by start.
async fn ours(side: &impl Side) -> (Vec<String>, Vec<Value>) {
    let (status, body) = call(
        side.app(),
        query(
            get("/v1/events", &side.user().token),
            &[
                ("start", RANGE.0),
                ("end", RANGE.1),
                ("calendarIds", side.calendar()),
                ("limit", "1000"),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = body["events"].as_array().unwrap().clone();
    let mut lines: Vec<String> = events
        .iter()
        .map(|e| {
            let start = DateTime::parse_from_rfc3339(e["start"]["dateTime"].as_str().unwrap())
                .unwrap()
                .to_utc();
            format!(
                "{}|{}",
                calsync::time::key_format(start),
                e["title"].as_str().unwrap()
            )
        })
        .collect();
    lines.sort();
    (lines, events)
}

/// The ICS feed's occurrences in [`RANGE`], read by recurring-ical-events.
async fn feed(side: &impl Side) -> Vec<String> {
    let (status, created) = call(
        side.app(),
        ApiRequest::new(Method::POST, "/v1/feeds").with_bearer(&side.user().token),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["url"].as_str().unwrap().rsplit('/').nth(1).unwrap();
    let path = format!("/v1/feeds/{token}/calendar.ics");
    let response = side
        .app()
        .handle(
            &calsync::api::service::ALL,
            ApiRequest::new(Method::GET, &path),
        )
        .await;
    let text = response.raw.unwrap().1;
    let answer = calsync_devstack::recurrence_corpus::run_oracle(&json!({
        "start": RANGE.0, "end": RANGE.1, "resources": {"feed": text}, "summaries": true,
    }))
    .expect("recurring-ical-events (make venv)");
    let mut out: Vec<String> = answer["occurrences"]["feed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// The id `/v1/events` gives the occurrence starting at `start` (UTC).
async fn occurrence_id(side: &impl Side, start: &str) -> String {
    let (_, events) = ours(side).await;
    events
        .iter()
        .find(|e| {
            DateTime::parse_from_rfc3339(e["start"]["dateTime"].as_str().unwrap())
                .unwrap()
                .to_utc()
                == t(start)
        })
        .unwrap_or_else(|| panic!("no occurrence at {start}: {events:?}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn patch(
    side: &impl Side,
    id: &str,
    scope: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = send(
        Method::PATCH,
        &format!("/v1/events/{id}"),
        &side.user().token,
        &body,
    );
    if let Some(scope) = scope {
        req = query(req, &[("scope", scope)]);
    }
    call(side.app(), req).await
}

async fn delete(side: &impl Side, id: &str) -> StatusCode {
    let req = ApiRequest::new(Method::DELETE, &format!("/v1/events/{id}"))
        .with_bearer(&side.user().token);
    call(side.app(), req).await.0
}

/// A 400 naming the problem.
fn refused(status: StatusCode, body: &Value, code: &str) {
    assert_eq!(
        (status, error_code(body)),
        (StatusCode::BAD_REQUEST, code),
        "{body}"
    );
}

fn lines(expected: &[(&str, &str)]) -> Vec<String> {
    let mut out: Vec<String> = expected.iter().map(|(s, t)| format!("{s}|{t}")).collect();
    out.sort();
    out
}

/// The scenario's own lines (the Google emulator's calendar has sample events of its own).
fn scenario_lines(all: Vec<String>) -> Vec<String> {
    all.into_iter()
        .filter(|l| {
            ["|Standup", "|Theirs", "|Ours"]
                .iter()
                .any(|t| l.contains(t))
        })
        .collect()
}

/// Every view agrees with `expected`: the API at once; after a sync the provider; after another
/// sync still both (nothing undone); and the feed.
async fn converge(side: &impl Side, step: &str, expected: &[(&str, &str)]) {
    let expected = lines(expected);
    let ours_now = || async { scenario_lines(ours(side).await.0) };
    assert_eq!(ours_now().await, expected, "{step}: /v1/events before sync");
    let report = side.sync().await;
    assert_eq!(report.write_back.failed, 0, "{step}: {report:?}");
    let provider = || async { scenario_lines(side.provider().await) };
    assert_eq!(provider().await, expected, "{step}: at the provider");
    side.sync().await;
    assert_eq!(
        ours_now().await,
        expected,
        "{step}: /v1/events after a re-sync"
    );
    assert_eq!(
        provider().await,
        expected,
        "{step}: provider after a re-sync"
    );
    assert_eq!(
        scenario_lines(feed(side).await),
        expected,
        "{step}: the ICS feed"
    );
}

async fn scenario(side: impl Side) {
    side.sync().await;
    // Mondays 09:00 Berlin (08:00Z), eight of them.
    let create = json!({"calendarId": side.calendar(), "title": "Standup",
        "start": {"dateTime": "2027-01-04T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2027-01-04T09:30:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=8"]});
    let (status, series) = call(
        side.app(),
        send(Method::POST, "/v1/events", &side.user().token, &create),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{series}");
    let series_id = series["id"].as_str().unwrap().to_owned();
    let (_, series_key) = calsync::ids::decode_event_id(&series_id).unwrap();
    let mondays = [
        "2027-01-04T08:00:00Z",
        "2027-01-11T08:00:00Z",
        "2027-01-18T08:00:00Z",
        "2027-01-25T08:00:00Z",
        "2027-02-01T08:00:00Z",
        "2027-02-08T08:00:00Z",
        "2027-02-15T08:00:00Z",
        "2027-02-22T08:00:00Z",
    ];
    let all: Vec<(&str, &str)> = mondays.iter().map(|m| (*m, "Standup")).collect();
    converge(&side, "created", &all).await;

    // Move one: the 11th to Tuesday 15:00 Berlin, retitled. Its occurrence id keeps working.
    let moved = occurrence_id(&side, mondays[1]).await;
    let body = json!({"title": "Standup (moved)",
        "start": {"dateTime": "2027-01-12T15:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2027-01-12T15:30:00", "timeZone": "Europe/Berlin"}});
    let (status, changed) = patch(&side, &moved, None, body).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["recurringEventId"], series_id.as_str());
    let (status, again) = call(
        side.app(),
        get(&format!("/v1/events/{moved}"), &side.user().token),
    )
    .await;
    assert_eq!(
        (status, &again["title"]),
        (StatusCode::OK, &json!("Standup (moved)"))
    );

    // Cancel one: the 18th.
    let cancelled = occurrence_id(&side, mondays[2]).await;
    assert_eq!(delete(&side, &cancelled).await, StatusCode::NO_CONTENT);
    let mut expected = all.clone();
    expected[1] = ("2027-01-12T14:00:00Z", "Standup (moved)");
    expected.remove(2);
    converge(&side, "moved one, cancelled one", &expected).await;

    // /instances takes the series id or any occurrence's id, and lists the same.
    for id in [&series_id, &moved, &occurrence_id(&side, mondays[3]).await] {
        let (status, listed) = call(
            side.app(),
            query(
                get(&format!("/v1/events/{id}/instances"), &side.user().token),
                &[("start", RANGE.0), ("end", RANGE.1)],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        let listed = listed["events"].as_array().unwrap();
        assert_eq!(listed.len(), expected.len(), "{listed:?}");
        assert!(
            listed
                .iter()
                .all(|e| e["recurringEventId"] == series_id.as_str()),
            "{listed:?}"
        );
    }

    // Bad edits, each named.
    let fourth = occurrence_id(&side, mondays[3]).await;
    let onto_next = json!({"start": {"dateTime": "2027-02-01T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2027-02-01T09:30:00", "timeZone": "Europe/Berlin"}});
    let (status, body) = patch(&side, &fourth, None, onto_next).await;
    refused(status, &body, "occurrence_collision");
    let missing = calsync::ids::encode_event_id(
        side.calendar(),
        &format!("{series_key}@2027-01-05T08:00:00Z"),
    );
    let (status, body) = patch(&side, &missing, None, json!({"title": "x"})).await;
    refused(status, &body, "unknown_occurrence");
    let first = occurrence_id(&side, mondays[0]).await;
    let (status, body) = patch(&side, &first, Some("following"), json!({"title": "x"})).await;
    refused(status, &body, "invalid_split");
    let (status, body) = patch(
        &side,
        &fourth,
        None,
        json!({"recurrence": ["RRULE:FREQ=DAILY"]}),
    )
    .await;
    refused(status, &body, "invalid_scope");

    // Change the rule with overrides present: every other Monday, five times. The moved 11th
    // is no longer an occurrence (its override goes); the 18th is, and stays cancelled.
    let (status, body) = patch(
        &side,
        &series_id,
        None,
        json!({"recurrence": ["RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=5"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let biweekly = [
        ("2027-01-04T08:00:00Z", "Standup"),
        ("2027-02-01T08:00:00Z", "Standup"),
        ("2027-02-15T08:00:00Z", "Standup"),
        ("2027-03-01T08:00:00Z", "Standup"),
    ];
    converge(&side, "rule changed", &biweekly).await;

    // An override after the split point, then the split: from the 15th on it is "Standup v2";
    // the override on 1 March moves to the new series with its own title.
    let late = occurrence_id(&side, "2027-03-01T08:00:00Z").await;
    let (status, body) = patch(&side, &late, None, json!({"title": "Standup (late)"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let split_at = occurrence_id(&side, "2027-02-15T08:00:00Z").await;
    let (status, new_series) = patch(
        &side,
        &split_at,
        Some("following"),
        json!({"title": "Standup v2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{new_series}");
    assert_ne!(new_series["id"], series_id.as_str());
    let split = [
        ("2027-01-04T08:00:00Z", "Standup"),
        ("2027-02-01T08:00:00Z", "Standup"),
        ("2027-02-15T08:00:00Z", "Standup v2"),
        ("2027-03-01T08:00:00Z", "Standup (late)"),
    ];
    converge(&side, "split", &split).await;

    // A concurrent edit: the provider retitles 1 February while we retitle it too; theirs wins,
    // and the audit log says so.
    side.retitle_there(&series_key, "2027-02-01T08:00:00Z", "Theirs")
        .await;
    let feb = occurrence_id(&side, "2027-02-01T08:00:00Z").await;
    let (status, body) = patch(&side, &feb, None, json!({"title": "Ours"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    side.sync().await;
    let mut theirs = split;
    theirs[1].1 = "Theirs";
    converge(&side, "concurrent edit", &theirs).await;
    let (_, audit) = call(side.app(), get("/v1/audit-log", &side.user().token)).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "EVENT_WRITE_BACK_SUPERSEDED"),
        "{audit}"
    );
}

#[tokio::test]
async fn google_recurring_edits_reach_the_provider_and_survive_resyncs() {
    scenario(Emulated::connect("google-recurring-edit", "google").await).await;
}

#[tokio::test]
async fn graph_recurring_edits_reach_the_provider_and_survive_resyncs() {
    scenario(Emulated::connect("graph-recurring-edit", "microsoft").await).await;
}

#[tokio::test]
async fn radicale_recurring_edits_reach_the_server_and_survive_resyncs() {
    scenario(CalDavFixture::radicale("radicale-recurring-edit").await).await;
}

#[tokio::test]
async fn xandikos_recurring_edits_reach_the_server_and_survive_resyncs() {
    scenario(CalDavFixture::xandikos("xandikos-recurring-edit").await).await;
}

#[tokio::test]
async fn a_rule_on_a_single_event_and_an_unknown_scope_are_refused() {
    let app = app().await;
    let user = register(&app, "recurring-bad").await;
    let calendar = connect(&app, &user, "Work", true).await;
    let id = create_event(
        &app,
        &user,
        &calendar.id,
        "Once",
        "2027-01-04T09:00:00Z",
        "2027-01-04T10:00:00Z",
    )
    .await;
    let path = format!("/v1/events/{id}");
    let rule = json!({"recurrence": ["RRULE:FREQ=DAILY"]});
    let (status, body) = call(&app, send(Method::PATCH, &path, &user.token, &rule)).await;
    refused(status, &body, "not_recurring");
    let (status, body) = call(
        &app,
        query(
            send(Method::PATCH, &path, &user.token, &json!({})),
            &[("scope", "everything")],
        ),
    )
    .await;
    refused(status, &body, "invalid_scope");
    let (status, body) = call(
        &app,
        query(
            get(&format!("{path}/instances"), &user.token),
            &[("start", RANGE.0), ("end", RANGE.1)],
        ),
    )
    .await;
    refused(status, &body, "not_recurring");
}

#[tokio::test]
async fn scope_series_on_an_occurrence_moves_every_occurrence_by_as_much() {
    let app = app().await;
    let user = register(&app, "recurring-shift").await;
    let calendar = connect(&app, &user, "Work", true).await;
    let create = json!({"calendarId": calendar.id, "title": "Review",
        "start": {"dateTime": "2027-01-04T09:00:00Z"}, "end": {"dateTime": "2027-01-04T10:00:00Z"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"]});
    let (status, body) = call(&app, send(Method::POST, "/v1/events", &user.token, &create)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let listed = || async {
        let (_, body) = call(
            &app,
            query(
                get("/v1/events", &user.token),
                &[("start", RANGE.0), ("end", RANGE.1)],
            ),
        )
        .await;
        body["events"].as_array().unwrap().clone()
    };
    let second = listed().await[1]["id"].as_str().unwrap().to_owned();
    // The second occurrence 90 minutes later and half as long: so is every occurrence.
    let moved = json!({"start": {"dateTime": "2027-01-11T10:30:00Z"}, "end": {"dateTime": "2027-01-11T11:00:00Z"}});
    let req = query(
        send(
            Method::PATCH,
            &format!("/v1/events/{second}"),
            &user.token,
            &moved,
        ),
        &[("scope", "series")],
    );
    let (status, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let times: Vec<(String, String)> = listed()
        .await
        .iter()
        .map(|e| {
            let at = |v: &Value| {
                let t = DateTime::parse_from_rfc3339(v["dateTime"].as_str().unwrap()).unwrap();
                calsync::time::key_format(t.to_utc())
            };
            (at(&e["start"]), at(&e["end"]))
        })
        .collect();
    let expected: Vec<(String, String)> = ["04", "11", "18"]
        .iter()
        .map(|d| {
            (
                format!("2027-01-{d}T10:30:00Z"),
                format!("2027-01-{d}T11:00:00Z"),
            )
        })
        .collect();
    assert_eq!(times, expected);
}

#[tokio::test]
async fn a_rule_change_over_more_overrides_than_one_transaction_holds_drops_them_all() {
    // Internal errors log their cause; on stderr, a failure here says why (it failed once under load).
    crate::support::logs_reach_test_subscribers();
    let _logs = tracing::subscriber::set_default(calsync::telemetry::subscriber(
        std::io::stderr,
        "warn".parse().unwrap(),
    ));
    let app = app().await;
    let user = register(&app, "recurring-many").await;
    let calendar = connect(&app, &user, "Work", true).await;
    let create = json!({"calendarId": calendar.id, "title": "Daily",
        "start": {"dateTime": "2027-01-01T09:00:00Z"}, "end": {"dateTime": "2027-01-01T09:15:00Z"},
        "recurrence": ["RRULE:FREQ=DAILY;COUNT=200"]});
    let (status, series) = call(&app, send(Method::POST, "/v1/events", &user.token, &create)).await;
    assert_eq!(status, StatusCode::CREATED, "{series}");
    let series_id = series["id"].as_str().unwrap().to_owned();
    let instances = || async {
        let (status, body) = call(
            &app,
            query(
                get(&format!("/v1/events/{series_id}/instances"), &user.token),
                &[("start", "2027-01-01"), ("end", "2027-12-31")],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"].as_array().unwrap().clone()
    };
    // 150 overrides: more than one edit's transaction holds (90), so the rest go as a batch.
    let listed = instances().await;
    for (i, occurrence) in listed.iter().take(150).enumerate() {
        let id = occurrence["id"].as_str().unwrap();
        let path = format!("/v1/events/{id}");
        let (status, body) = call(
            &app,
            send(
                Method::PATCH,
                &path,
                &user.token,
                &json!({"title": format!("Daily {i}")}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let count = || async {
        let (_, cals) = call(&app, get("/v1/calendars", &user.token)).await;
        cals["calendars"][0]["eventCount"].as_i64().unwrap()
    };
    assert_eq!(count().await, 151);
    // An hour later: no override's original start occurs any more, so every one goes.
    let later = json!({"start": {"dateTime": "2027-01-01T10:00:00Z"}, "end": {"dateTime": "2027-01-01T10:15:00Z"}});
    let (status, body) = call(
        &app,
        send(
            Method::PATCH,
            &format!("/v1/events/{series_id}"),
            &user.token,
            &later,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = instances().await;
    assert_eq!(after.len(), 200);
    assert!(after.iter().all(|e| e["title"] == "Daily"
        && e["start"]["dateTime"]
            .as_str()
            .unwrap()
            .contains("T10:00:00")));
    assert_eq!(count().await, 1);
}
