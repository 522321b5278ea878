//! `/admin/*`: the control plane for tests and `make dev` (reset, accounts, settings, faults,
//! stats, push notifications). Admin requests are neither counted nor subject to faults.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{json, Req, Resp};
use crate::state::{CalendarSpec, Fault, Provider, State};
use crate::{google, google_events, graph_events, microsoft, push, Emulator};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccountBody {
    provider: String,
    email: String,
    #[serde(default)]
    deny: bool,
    display_name: Option<String>,
    #[serde(default)]
    calendars: Vec<CalendarBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CalendarBody {
    id: Option<String>,
    name: String,
    color: Option<String>,
    #[serde(default)]
    primary: bool,
    access_role: Option<String>,
    time_zone: Option<String>,
    description: Option<String>,
    can_edit: Option<bool>,
    is_removable: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsBody {
    access_token_ttl_seconds: Option<u64>,
    short_pages: Option<bool>,
}

fn bad_request(message: impl std::fmt::Display) -> Resp {
    json(400, &json!({ "error": message.to_string() }))
}

fn parse<T: for<'de> Deserialize<'de>>(req: &Req) -> Result<T, Box<Resp>> {
    serde_json::from_slice(&req.body).map_err(|e| Box::new(bad_request(e)))
}

fn settings_json(st: &State) -> Value {
    json!({ "accessTokenTtlSeconds": st.access_token_ttl, "shortPages": st.short_pages })
}

pub(crate) fn handle(em: &Emulator, req: &Req) -> Resp {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/admin/reset") => {
            *em.lock() = State::new();
            // Queued deliveries belong to the old state; their queues end once drained.
            em.workers.lock().unwrap_or_else(|e| e.into_inner()).clear();
            json(200, &json!({ "reset": true }))
        }
        ("PUT", "/admin/accounts") => put_account(em, req),
        ("GET", "/admin/accounts") => {
            let st = em.lock();
            let mut accounts: Vec<Value> = st
                .accounts
                .values()
                .map(|a| {
                    json!({
                        "provider": a.provider,
                        "email": a.email,
                        "displayName": a.display_name,
                        "deny": a.deny,
                        "calendars": a.calendars.iter().map(|c| json!({
                            "id": c.id, "name": c.name, "color": c.color, "primary": c.primary,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            accounts.sort_by_key(|a| a["email"].as_str().map(str::to_owned));
            json(200, &json!({ "accounts": accounts }))
        }
        ("PUT", "/admin/settings") => {
            let body: SettingsBody = match parse(req) {
                Ok(b) => b,
                Err(resp) => return *resp,
            };
            let mut st = em.lock();
            if let Some(ttl) = body.access_token_ttl_seconds {
                st.access_token_ttl = ttl;
            }
            if let Some(short) = body.short_pages {
                st.short_pages = short;
            }
            json(200, &settings_json(&st))
        }
        ("GET", "/admin/settings") => json(200, &settings_json(&em.lock())),
        ("POST", "/admin/faults") => {
            // One fault object, or an array of them.
            let parsed = match parse::<Value>(req) {
                Ok(Value::Array(items)) => items
                    .into_iter()
                    .map(serde_json::from_value::<Fault>)
                    .collect::<Result<Vec<_>, _>>(),
                Ok(one) => serde_json::from_value::<Fault>(one).map(|f| vec![f]),
                Err(resp) => return *resp,
            };
            let faults = match parsed {
                Ok(f) => f,
                Err(e) => return bad_request(e),
            };
            for f in &faults {
                if f.times == 0 {
                    return bad_request("times must be at least 1");
                }
                if !f.path_prefix.starts_with('/') {
                    return bad_request("pathPrefix must start with /");
                }
                if f.status.is_some_and(|s| !(100..=599).contains(&s)) {
                    return bad_request("status must be between 100 and 599");
                }
            }
            let mut st = em.lock();
            st.faults.extend(faults);
            json(200, &json!({ "queued": st.faults.len() }))
        }
        ("DELETE", "/admin/faults") => {
            let mut st = em.lock();
            let cleared = st.faults.len();
            st.faults.clear();
            json(200, &json!({ "cleared": cleared }))
        }
        ("GET", "/admin/stats") => {
            let st = em.lock();
            json(200, &serde_json::to_value(&st.stats).unwrap_or(Value::Null))
        }
        (_, path)
            if path == "/admin/push"
                || path == "/admin/push/log"
                || path == "/admin/google/channels"
                || path.starts_with("/admin/google/channels/")
                || path == "/admin/microsoft/subscriptions"
                || path.starts_with("/admin/microsoft/subscriptions/") =>
        {
            match push::admin(&mut em.lock(), req) {
                Some(resp) => resp,
                None => no_route(req),
            }
        }
        (_, path) if path.starts_with("/admin/google/calendars/") => {
            let rest: Vec<&str> = path["/admin/google/calendars/".len()..]
                .split('/')
                .collect();
            match google_events::admin(&mut em.lock(), req, &rest) {
                Some(resp) => resp,
                None => no_route(req),
            }
        }
        (_, path) if path.starts_with("/admin/microsoft/calendars/") => {
            let rest: Vec<&str> = path["/admin/microsoft/calendars/".len()..]
                .split('/')
                .collect();
            match graph_events::admin(&mut em.lock(), req, &rest) {
                Some(resp) => resp,
                None => no_route(req),
            }
        }
        _ => no_route(req),
    }
}

fn no_route(req: &Req) -> Resp {
    json(
        404,
        &json!({ "error": format!("no admin route {} {}", req.method, req.path) }),
    )
}

fn put_account(em: &Emulator, req: &Req) -> Resp {
    let body: AccountBody = match parse(req) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let provider = match body.provider.as_str() {
        "google" => Provider::Google,
        "microsoft" => Provider::Microsoft,
        other => return bad_request(format!("unknown provider {other:?} (google or microsoft)")),
    };
    if !body.email.contains('@') {
        return bad_request("email must be an e-mail address");
    }
    let specs = body
        .calendars
        .into_iter()
        .map(|c| CalendarSpec {
            id: c.id,
            name: c.name,
            color: c.color,
            primary: c.primary,
            access_role: c.access_role,
            time_zone: c.time_zone,
            description: c.description,
            can_edit: c.can_edit,
            is_removable: c.is_removable,
        })
        .collect();
    let mut st = em.lock();
    let account = st.put_account(provider, &body.email, body.display_name, body.deny, specs);
    json(
        200,
        &json!({
            "provider": account.provider,
            "email": account.email,
            "displayName": account.display_name,
            "deny": account.deny,
            "calendars": account.calendars.iter().map(|c| json!({
                "id": c.id, "name": c.name, "color": c.color, "primary": c.primary,
            })).collect::<Vec<_>>(),
        }),
    )
}

/// The answer a fault gives, `None` when it only delays the real answer.
pub(crate) fn fault_response(fault: &Fault, req: &Req) -> Option<Resp> {
    if fault.status.is_none()
        && fault.body.is_none()
        && !fault.malformed
        && fault.retry_after.is_none()
    {
        return None;
    }
    let path = req.path.as_str();
    let status = fault
        .status
        .unwrap_or(if fault.malformed || fault.body.is_some() {
            200
        } else {
            429
        });
    let mut resp = if fault.malformed {
        let full = fault.body.clone().unwrap_or_else(|| {
            if path.starts_with("/google/calendar/v3/calendars/") {
                r#"{"kind": "calendar#events", "etag": "\"p33c9ltq\"", "summary": "alice@gmail.test", "items": [{"kind": "calendar#event", "id": "seed0planning", "status": "confirmed"}]}"#.into()
            } else if path.starts_with("/microsoft/v1.0/me/calendarView") || path.contains("/calendarView/") {
                r#"{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)", "value": [{"id": "AAMkAGI2TG93AAA=", "subject": "Project sync"}]}"#.into()
            } else if path.starts_with("/google/calendar/") {
                r#"{"kind": "calendar#calendarList", "etag": "\"p33c9ltq\"", "items": [{"kind": "calendar#calendarListEntry", "id": "alice@gmail.test"}]}"#.into()
            } else if path.starts_with("/microsoft/v1.0/") {
                r#"{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity", "value": [{"id": "AAMkAGI2TG93AAA="}]}"#.into()
            } else {
                r#"{"access_token": "ya29.a0AfH6SMBx", "expires_in": 3599, "token_type": "Bearer"}"#.into()
            }
        });
        let cut = full.len() / 2;
        let cut = (0..=cut)
            .rev()
            .find(|&i| full.is_char_boundary(i))
            .unwrap_or(0);
        crate::http::response(
            status,
            "application/json; charset=utf-8",
            full[..cut].to_owned(),
        )
    } else if let Some(body) = &fault.body {
        let content_type = if serde_json::from_str::<Value>(body).is_ok() {
            "application/json; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        crate::http::response(status, content_type, body.clone())
    } else if path.starts_with("/google/calendar/") {
        google::api_error_for_status(status)
    } else if path.starts_with("/google/") {
        google::oauth_error_for_status(status)
    } else if path.starts_with("/microsoft/v1.0/") {
        microsoft::graph_error_for_status(req, status)
    } else if path.starts_with("/microsoft/") {
        microsoft::aad_error_for_status(status)
    } else {
        json(status, &json!({ "error": "injected fault" }))
    };
    if let Some(seconds) = fault.retry_after {
        crate::http::set_header(&mut resp, "retry-after", &seconds.to_string());
    }
    Some(resp)
}
