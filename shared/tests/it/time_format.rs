//! One time format (issue 11, item 5): every instant any route returns is RFC 3339 in UTC with
//! `Z`, to the millisecond; an event's wall-clock time and IANA zone stand beside it.

use std::collections::BTreeSet;

use calsync::api::routes::ROUTES;
use calsync::api::ApiRequest;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_api_instant(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// `YYYY-MM-DDTHH:MM:SS`, a wall-clock time.
fn is_local(s: &str) -> bool {
    s.len() == 19 && is_api_instant(&format!("{s}.000Z"))
}

/// Looks like a date-time at all (so a wrong form is caught, not skipped).
fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// Checks every time in `value`; returns how many it checked.
fn check(value: &Value, key: &str, at: &str) -> usize {
    match value {
        Value::Object(map) => map
            .iter()
            // Provider extras are the provider's own JSON, passed through.
            .filter(|(k, _)| k.as_str() != "providerMetadata")
            .map(|(k, v)| check(v, k, &format!("{at}.{k}")))
            .sum(),
        Value::Array(items) => items.iter().map(|v| check(v, key, at)).sum(),
        Value::String(s) if looks_like_time(s) => {
            if key == "localDateTime" {
                assert!(is_local(s), "{at} = {s:?} is not a wall-clock time");
            } else {
                assert!(
                    is_api_instant(s),
                    "{at} = {s:?} is not UTC Z to the millisecond"
                );
            }
            1
        }
        _ => 0,
    }
}

#[tokio::test]
async fn every_instant_every_route_returns_is_utc_z_to_the_millisecond() {
    let outbox =
        std::env::temp_dir().join(format!("calsync-times-outbox-{}", calsync::ids::new_id()));
    let (_emulator, app, user) = crate::oauth_flow::setup_with(
        "times",
        &[("MAIL_OUTBOX_DIR", outbox.display().to_string())],
    )
    .await;
    let mut covered: BTreeSet<(String, &'static str)> = BTreeSet::new();
    let mut checked = 0;
    let mut exercise = |route: &'static str, status: StatusCode, body: &Value, method: &Method| {
        assert!(status.is_success(), "{method} {route}: {status} {body}");
        covered.insert((method.to_string(), route));
        checked += check(body, "", route);
    };
    macro_rules! hit {
        ($route:expr, $req:expr) => {{
            let req: ApiRequest = $req;
            let method = req.method.clone();
            let (status, body) = call(&app, req).await;
            exercise($route, status, &body, &method);
            body
        }};
    }
    let flow = crate::oauth_flow::consent(&app, &user, "google").await;
    crate::oauth_flow::callback(&app, "google", &flow).await;
    let calendars = hit!("/v1/calendars", get("/v1/calendars", &user.token));
    let calendar = calendars["calendars"][0]["id"].as_str().unwrap().to_owned();
    let post = |path: &str, body: Value| send(Method::POST, path, &user.token, &body);
    hit!(
        "/v1/auth/register",
        ApiRequest::new(Method::POST, "/v1/auth/register").with_json(&json!({
            "email": unique_email("times2"), "password": "a long enough password",
            "firstName": "T", "lastName": "F"}))
    );
    hit!(
        "/v1/auth/login",
        ApiRequest::new(Method::POST, "/v1/auth/login")
            .with_json(&json!({"email": user.email, "password": "a long enough password"}))
    );
    hit!("/v1/me", get("/v1/me", &user.token));
    // A zoned event, a bare UTC one, an all-day one and a series.
    let zoned = hit!(
        "/v1/events",
        post(
            "/v1/events",
            json!({"calendarId": calendar, "title": "Zoned",
            "start": {"dateTime": "2026-07-06T09:00:00", "timeZone": "America/New_York"},
            "end": {"dateTime": "2026-07-06T10:00:00", "timeZone": "America/New_York"}})
        )
    );
    assert_eq!(
        zoned["start"],
        json!({"dateTime": "2026-07-06T13:00:00.000Z", "localDateTime": "2026-07-06T09:00:00",
               "timeZone": "America/New_York"})
    );
    let bare = hit!(
        "/v1/events",
        post(
            "/v1/events",
            json!({"calendarId": calendar, "title": "Offset only",
            "start": {"dateTime": "2026-07-06T09:30:00+02:00"},
            "end": {"dateTime": "2026-07-06T10:30:00+02:00"}})
        )
    );
    assert_eq!(
        bare["start"],
        json!({"dateTime": "2026-07-06T07:30:00.000Z"})
    );
    hit!(
        "/v1/events",
        post(
            "/v1/events",
            json!({"calendarId": calendar, "title": "All day",
            "start": {"date": "2026-07-07"}, "end": {"date": "2026-07-08"}})
        )
    );
    let series = hit!(
        "/v1/events",
        post(
            "/v1/events",
            json!({"calendarId": calendar, "title": "Weekly",
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
            "start": {"dateTime": "2026-07-06T09:15:00", "timeZone": "Europe/Paris"},
            "end": {"dateTime": "2026-07-06T09:45:00", "timeZone": "Europe/Paris"}})
        )
    );
    let zoned_id = zoned["id"].as_str().unwrap();
    let series_id = series["id"].as_str().unwrap();
    let range = [("start", "2026-07-01"), ("end", "2026-08-01")];
    hit!("/v1/events", query(get("/v1/events", &user.token), &range));
    hit!(
        "/v1/events/{id}",
        get(&format!("/v1/events/{zoned_id}"), &user.token)
    );
    // A client sends back what it read (the wall-clock field included): accepted.
    let mut moved = zoned["start"].clone();
    moved["dateTime"] = json!("2026-07-06T14:00:00.000Z");
    let mut moved_end = zoned["end"].clone();
    moved_end["dateTime"] = json!("2026-07-06T15:00:00.000Z");
    let updated = hit!(
        "/v1/events/{id}",
        send(
            Method::PATCH,
            &format!("/v1/events/{zoned_id}"),
            &user.token,
            &json!({"start": moved, "end": moved_end})
        )
    );
    assert_eq!(updated["start"]["localDateTime"], "2026-07-06T10:00:00");
    hit!(
        "/v1/events/{id}/instances",
        query(
            get(&format!("/v1/events/{series_id}/instances"), &user.token),
            &range
        )
    );
    hit!(
        "/v1/conflicts",
        query(get("/v1/conflicts", &user.token), &range)
    );
    hit!(
        "/v1/freebusy",
        query(get("/v1/freebusy", &user.token), &range)
    );
    hit!(
        "/v1/availability",
        post(
            "/v1/availability",
            json!({"start": "2026-07-06T00:00:00Z", "end": "2026-07-07T00:00:00Z",
            "durationMinutes": 30, "timeZone": "Europe/Paris",
            "workingHoursStart": "09:00", "workingHoursEnd": "17:00"})
        )
    );
    hit!("/v1/feeds", post("/v1/feeds", json!({})));
    hit!("/v1/feeds", get("/v1/feeds", &user.token));
    hit!("/v1/connections", get("/v1/connections", &user.token));
    hit!(
        "/v1/connections/{id}",
        post("/v1/connections/microsoft", json!({}))
    );
    hit!(
        "/v1/calendars/{id}",
        send(
            Method::PATCH,
            &format!("/v1/calendars/{calendar}"),
            &user.token,
            &json!({"name": "Renamed"})
        )
    );
    hit!(
        "/v1/calendars/{id}/sync",
        post(&format!("/v1/calendars/{calendar}/sync"), json!({}))
    );
    hit!("/v1/audit-log", get("/v1/audit-log", &user.token));
    hit!("/v1/me/export", get("/v1/me/export", &user.token));
    hit!("/v1/changes", get("/v1/changes", &user.token));
    let hook = hit!(
        "/v1/webhooks",
        post(
            "/v1/webhooks",
            json!({"url": "https://hooks.example.com/calsync"})
        )
    );
    let hook = hook["id"].as_str().unwrap().to_owned();
    hit!("/v1/webhooks", get("/v1/webhooks", &user.token));
    hit!(
        "/v1/webhooks/{id}",
        send(
            Method::PATCH,
            &format!("/v1/webhooks/{hook}"),
            &user.token,
            &json!({"events": ["event.created"]})
        )
    );
    hit!(
        "/v1/webhooks/{id}/rotate-secret",
        post(&format!("/v1/webhooks/{hook}/rotate-secret"), json!({}))
    );
    for path in ["/push/microsoft", "/push/microsoft/lifecycle"] {
        let route = if path.ends_with("lifecycle") {
            "/push/microsoft/lifecycle"
        } else {
            "/push/microsoft"
        };
        hit!(
            route,
            ApiRequest::new(Method::POST, path).with_json(&json!({"value": []}))
        );
    }
    hit!(
        "/v1/auth/password-reset",
        ApiRequest::new(Method::POST, "/v1/auth/password-reset")
            .with_json(&json!({"email": user.email}))
    );
    hit!(
        "/v1/auth/password-reset/confirm",
        ApiRequest::new(Method::POST, "/v1/auth/password-reset/confirm").with_json(&json!({
            "token": crate::accounts::newest_reset_token(&outbox),
            "newPassword": "a long enough password",
        }))
    );
    let _ = std::fs::remove_dir_all(&outbox);

    // Every route that answers JSON with content was exercised (not: 204s, redirects, the
    // feed's text, the OpenAPI document, and the Apple connect, which needs a CalDAV server).
    let expected: BTreeSet<(String, &'static str)> = ROUTES
        .iter()
        .filter(|r| r.status != 204 && r.status != 302)
        .filter(|r| {
            !matches!(
                r.path,
                "/v1/feeds/{token}/calendar.ics" | "/v1/openapi.json" | "/v1/connections/apple"
            )
        })
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    assert_eq!(covered, expected);
    assert!(checked > 100, "only {checked} times checked");
}
