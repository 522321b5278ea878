//! Google: OAuth 2.0 for web server apps (accounts.google.com / oauth2.googleapis.com) and
//! Calendar API v3 `calendarList.list`, under `/google`.

use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::{
    client_auth, json, no_store, param, pkce_matches, redirect_with, response, sha256,
    valid_pkce_string, with_header, Req, Resp,
};
use crate::state::{
    Account, AuthCode, Calendar, Grant, Provider, State, TokenProblem, CODE_LIFETIME,
};
use crate::Emulator;

const ACCESS_PREFIX: &str = "ya29.a0";
const REFRESH_PREFIX: &str = "1//0";
const CODE_PREFIX: &str = "4/0A";

/// Scopes that allow `calendarList.list`.
const CALENDAR_LIST_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.calendarlist",
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
];

/// The calendar colour palette of `GET /calendar/v3/colors` (`calendar` part).
const PALETTE: [&str; 24] = [
    "#ac725e", "#d06b64", "#f83a22", "#fa573c", "#ff7537", "#ffad46", "#42d692", "#16a765",
    "#7bd148", "#b3dc6c", "#fbe983", "#fad165", "#92e1c0", "#9fe1e7", "#9fc6e7", "#4986e7",
    "#9a9cff", "#b99aff", "#c2c2c2", "#cabdbf", "#cca6ac", "#f691b2", "#cd74e6", "#a47ae2",
];

pub(crate) fn route(em: &Emulator, req: &Req) -> Option<Resp> {
    let method = req.method.as_str();
    Some(match (method, req.path.as_str()) {
        ("GET", "/google/o/oauth2/v2/auth") => authorize(em, req),
        ("POST", "/google/token") => token(em, req),
        ("POST" | "GET", "/google/revoke") => revoke(em, req),
        ("GET", "/google/calendar/v3/users/me/calendarList") => calendar_list(em, req),
        ("POST", "/google/calendar/v3/channels/stop") => crate::push::google_stop(em, req),
        (_, path) if path.starts_with("/google/calendar/v3/calendars/") => {
            match crate::google_events::route(em, req) {
                Some(resp) => resp,
                None => api_error(404, "Not Found", "notFound", "global", "NOT_FOUND"),
            }
        }
        (_, path) if path.starts_with("/google/calendar/") => {
            api_error(404, "Not Found", "notFound", "global", "NOT_FOUND")
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Authorization endpoint

/// Google shows an error page (no redirect) when it cannot trust the redirect target.
fn error_page(message: &str) -> Resp {
    response(
        400,
        "text/html; charset=utf-8",
        format!(
            "<!DOCTYPE html><title>Error 400: invalid_request</title>\
             <h1>Access blocked: Authorization Error</h1><p>Error 400: invalid_request</p><p>{}</p>",
            message.replace('<', "&lt;")
        ),
    )
}

fn authorize(em: &Emulator, req: &Req) -> Resp {
    let q = &req.query;
    let Some(client_id) = param(q, "client_id") else {
        return error_page("Missing required parameter: client_id");
    };
    let Some(redirect_uri) = param(q, "redirect_uri") else {
        return error_page("Missing required parameter: redirect_uri");
    };
    let Ok(redirect_url) = url::Url::parse(redirect_uri) else {
        return error_page("Invalid parameter value for redirect_uri: Invalid redirect");
    };
    let state = param(q, "state");
    let mut st = em.lock();
    let fail = |st: &mut State, error: &str, description: &str| {
        st.stats.google.authorization_errors += 1;
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        redirect_with(&redirect_url, &pairs)
    };
    if param(q, "response_type") != Some("code") {
        return fail(
            &mut st,
            "unsupported_response_type",
            "Invalid response_type: only 'code' is supported",
        );
    }
    let Some(scope) = param(q, "scope") else {
        return fail(
            &mut st,
            "invalid_request",
            "Missing required parameter: scope",
        );
    };
    let Some(challenge) = param(q, "code_challenge") else {
        return fail(
            &mut st,
            "invalid_request",
            "Missing required parameter: code_challenge",
        );
    };
    if param(q, "code_challenge_method") != Some("S256") {
        return fail(
            &mut st,
            "invalid_request",
            "Invalid code_challenge_method: only S256 is allowed",
        );
    }
    if !valid_pkce_string(challenge) {
        return fail(&mut st, "invalid_request", "Invalid code_challenge");
    }
    let Some(account) = st.resolve_login(Provider::Google, param(q, "login_hint")) else {
        return fail(&mut st, "access_denied", "No account");
    };
    if account.deny {
        let mut pairs = vec![("error", "access_denied")];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        st.stats.google.authorization_errors += 1;
        return redirect_with(&redirect_url, &pairs);
    }
    let email = account.email.clone();
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    let code = format!("{CODE_PREFIX}{}", crate::http::random_token(54));
    st.codes.insert(
        code.clone(),
        AuthCode {
            provider: Provider::Google,
            account: email,
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes: scopes.clone(),
            challenge: challenge.to_owned(),
            offline: param(q, "access_type") == Some("offline"),
            issued: Instant::now(),
            redeemed: false,
        },
    );
    st.stats.google.authorizations += 1;
    let granted = scopes.join(" ");
    let mut pairs = Vec::new();
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.extend([
        ("code", code.as_str()),
        ("scope", granted.as_str()),
        ("authuser", "0"),
        ("prompt", "consent"),
    ]);
    redirect_with(&redirect_url, &pairs)
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
    no_store(json(
        status,
        &json!({ "error": error, "error_description": description }),
    ))
}

fn token(em: &Emulator, req: &Req) -> Resp {
    let form = req.form();
    let mut st = em.lock();
    let client_id = match client_auth(req, &form) {
        Ok(id) => id,
        Err(reason) => {
            st.stats.google.failed_token_requests += 1;
            let description = if reason == "client_id is missing" {
                "Could not determine client ID from request."
            } else {
                "Unauthorized"
            };
            return oauth_error(401, "invalid_client", description);
        }
    };
    let resp = match param(&form, "grant_type") {
        None => oauth_error(
            400,
            "invalid_request",
            "Required parameter is missing: grant_type",
        ),
        Some("authorization_code") => exchange_code(&mut st, &form, &client_id),
        Some("refresh_token") => refresh(&mut st, &form, &client_id),
        Some(other) => oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        ),
    };
    if resp.status() != 200 {
        st.stats.google.failed_token_requests += 1;
    }
    resp
}

fn bad_grant() -> Resp {
    oauth_error(400, "invalid_grant", "Bad Request")
}

fn exchange_code(st: &mut State, form: &[(String, String)], client_id: &str) -> Resp {
    let Some(code) = param(form, "code") else {
        return oauth_error(400, "invalid_request", "Missing required parameter: code");
    };
    let Some(auth) = st
        .codes
        .get(code)
        .filter(|c| c.provider == Provider::Google)
    else {
        return oauth_error(400, "invalid_grant", "Malformed auth code.");
    };
    if auth.redeemed || auth.issued.elapsed() > CODE_LIFETIME || auth.client_id != client_id {
        return bad_grant();
    }
    if param(form, "redirect_uri") != Some(auth.redirect_uri.as_str()) {
        return oauth_error(400, "redirect_uri_mismatch", "Bad Request");
    }
    let Some(verifier) = param(form, "code_verifier") else {
        return oauth_error(400, "invalid_grant", "Missing code verifier.");
    };
    if !pkce_matches(verifier, &auth.challenge) {
        return bad_grant();
    }
    let (account, scopes, offline) = (auth.account.clone(), auth.scopes.clone(), auth.offline);
    if let Some(auth) = st.codes.get_mut(code) {
        auth.redeemed = true;
    }
    let grant = st.new_grant(Grant {
        provider: Provider::Google,
        account,
        client_id: client_id.to_owned(),
        scopes: scopes.clone(),
    });
    let access_token = st.issue_access_token(grant, ACCESS_PREFIX);
    let mut body = json!({
        "access_token": access_token,
        "expires_in": st.access_token_ttl,
        "scope": scopes.join(" "),
        "token_type": "Bearer",
    });
    if offline {
        body["refresh_token"] = Value::from(st.issue_refresh_token(grant, REFRESH_PREFIX));
    }
    st.stats.google.authorization_code_grants += 1;
    no_store(json(200, &body))
}

fn refresh(st: &mut State, form: &[(String, String)], client_id: &str) -> Resp {
    let Some(token) = param(form, "refresh_token") else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: refresh_token",
        );
    };
    let Some(&grant_id) = st.refresh_tokens.get(token) else {
        return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
    };
    let Some(grant) = st
        .grants
        .get(&grant_id)
        .filter(|g| g.provider == Provider::Google)
    else {
        return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
    };
    if grant.client_id != client_id {
        return oauth_error(401, "unauthorized_client", "Unauthorized");
    }
    let scope = grant.scopes.join(" ");
    let access_token = st.issue_access_token(grant_id, ACCESS_PREFIX);
    st.stats.google.refresh_token_grants += 1;
    // Google does not rotate refresh tokens: no refresh_token in the answer.
    no_store(json(
        200,
        &json!({
            "access_token": access_token,
            "expires_in": st.access_token_ttl,
            "scope": scope,
            "token_type": "Bearer",
        }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Revocation endpoint

fn revoke(em: &Emulator, req: &Req) -> Resp {
    let form = req.form();
    let token = param(&form, "token").or_else(|| req.query("token"));
    let mut st = em.lock();
    let grant = token.and_then(|t| {
        st.refresh_tokens
            .get(t)
            .copied()
            .or_else(|| st.access_tokens.get(t).map(|a| a.grant))
    });
    match grant.filter(|g| {
        st.grants
            .get(g)
            .is_some_and(|g| g.provider == Provider::Google)
    }) {
        Some(grant) => {
            st.revoke_grant(grant);
            st.stats.google.revocations += 1;
            json(200, &json!({}))
        }
        None => json(
            400,
            &json!({ "error": "invalid_token", "error_description": "Token expired or revoked" }),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Calendar API v3

/// Google API error body: `{"error": {"code", "message", "errors": [...], "status"}}`.
pub(crate) fn api_error(
    code: u16,
    message: &str,
    reason: &str,
    domain: &str,
    status: &str,
) -> Resp {
    json(
        code,
        &json!({
            "error": {
                "code": code,
                "message": message,
                "errors": [{ "message": message, "domain": domain, "reason": reason }],
                "status": status,
            }
        }),
    )
}

/// The default body of a fault with this status on a Calendar API path.
pub(crate) fn api_error_for_status(status: u16) -> Resp {
    match status {
        400 => api_error(
            400,
            "Bad Request",
            "badRequest",
            "global",
            "INVALID_ARGUMENT",
        ),
        401 => unauthenticated(false),
        403 => api_error(
            403,
            "Rate Limit Exceeded",
            "rateLimitExceeded",
            "usageLimits",
            "PERMISSION_DENIED",
        ),
        404 => api_error(404, "Not Found", "notFound", "global", "NOT_FOUND"),
        409 => api_error(
            409,
            "The requested identifier already exists.",
            "duplicate",
            "global",
            "ALREADY_EXISTS",
        ),
        410 => api_error(
            410,
            "Sync token is no longer valid, a full sync is required.",
            "fullSyncRequired",
            "global",
            "GONE",
        ),
        412 => api_error(
            412,
            "Precondition Failed",
            "conditionNotMet",
            "global",
            "FAILED_PRECONDITION",
        ),
        429 => api_error(
            429,
            "Rate Limit Exceeded",
            "rateLimitExceeded",
            "usageLimits",
            "RESOURCE_EXHAUSTED",
        ),
        500 => api_error(500, "Backend Error", "backendError", "global", "INTERNAL"),
        503 => api_error(
            503,
            "The service is currently unavailable.",
            "backendError",
            "global",
            "UNAVAILABLE",
        ),
        s => api_error(s, "Unknown Error.", "unknown", "global", "UNKNOWN"),
    }
}

/// The default body of a fault with this status on an OAuth path.
pub(crate) fn oauth_error_for_status(status: u16) -> Resp {
    match status {
        400 => oauth_error(400, "invalid_request", "Bad Request"),
        401 => oauth_error(401, "invalid_client", "Unauthorized"),
        429 => oauth_error(429, "rate_limit_exceeded", "Rate Limit Exceeded"),
        503 => oauth_error(
            503,
            "temporarily_unavailable",
            "The service is currently unavailable.",
        ),
        s if s >= 500 => oauth_error(s, "internal_failure", "Backend Error"),
        s => oauth_error(s, "invalid_request", "Bad Request"),
    }
}

pub(crate) fn unauthenticated(missing: bool) -> Resp {
    let (message, inner, reason) = if missing {
        (
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "Login Required.",
            "required",
        )
    } else {
        (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "Invalid Credentials",
            "authError",
        )
    };
    let resp = json(
        401,
        &json!({
            "error": {
                "code": 401,
                "message": message,
                "errors": [{
                    "message": inner,
                    "domain": "global",
                    "reason": reason,
                    "location": "Authorization",
                    "locationType": "header",
                }],
                "status": "UNAUTHENTICATED",
            }
        }),
    );
    with_header(
        resp,
        "www-authenticate",
        if missing {
            "Bearer realm=\"https://accounts.google.com/\""
        } else {
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\""
        },
    )
}

pub(crate) fn insufficient_scopes(method: &str) -> Resp {
    json(
        403,
        &json!({
            "error": {
                "code": 403,
                "message": "Request had insufficient authentication scopes.",
                "errors": [{
                    "message": "Insufficient Permission",
                    "domain": "global",
                    "reason": "insufficientPermissions",
                }],
                "status": "PERMISSION_DENIED",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "calendar-json.googleapis.com",
                        "method": method,
                    },
                }],
            }
        }),
    )
}

pub(crate) fn invalid_value(parameter: &str, value: &str) -> Resp {
    json(
        400,
        &json!({
            "error": {
                "code": 400,
                "message": format!("Invalid value '{value}' for parameter {parameter}."),
                "errors": [{
                    "message": format!("Invalid value '{value}' for parameter {parameter}."),
                    "domain": "global",
                    "reason": "invalid",
                    "location": parameter,
                    "locationType": "parameter",
                }],
                "status": "INVALID_ARGUMENT",
            }
        }),
    )
}

fn colors(calendar: &Calendar, index: usize) -> (String, String) {
    let fallback = ((index % PALETTE.len()) + 1).to_string();
    match calendar.color.as_deref() {
        Some(hex) if hex.starts_with('#') => {
            let hex = hex.to_ascii_lowercase();
            (nearest_color_id(&hex), hex)
        }
        Some(id) => match id.parse::<usize>() {
            Ok(n) if (1..=24).contains(&n) => (id.to_owned(), PALETTE[n - 1].to_owned()),
            _ => (fallback.clone(), PALETTE[index % PALETTE.len()].to_owned()),
        },
        None => (fallback, PALETTE[index % PALETTE.len()].to_owned()),
    }
}

/// Google maps a custom background colour to the closest palette entry for `colorId`.
fn nearest_color_id(hex: &str) -> String {
    let rgb = |h: &str| -> Option<(i32, i32, i32)> {
        let h = h.strip_prefix('#')?;
        if h.len() != 6 {
            return None;
        }
        let c = |i: usize| i32::from_str_radix(&h[i..i + 2], 16).ok();
        Some((c(0)?, c(2)?, c(4)?))
    };
    let Some((r, g, b)) = rgb(hex) else {
        return "1".into();
    };
    let best = PALETTE
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            rgb(p).map(|(pr, pg, pb)| (i, (pr - r).pow(2) + (pg - g).pow(2) + (pb - b).pow(2)))
        })
        .min_by_key(|&(_, d)| d)
        .map(|(i, _)| i + 1)
        .unwrap_or(1);
    best.to_string()
}

fn entry(calendar: &Calendar, index: usize) -> Value {
    let (color_id, background) = colors(calendar, index);
    let mut entry = json!({
        "kind": "calendar#calendarListEntry",
        "etag": format!("\"{}\"", calendar.updated_micros),
        "id": calendar.id,
        "summary": calendar.name,
    });
    if let Some(description) = &calendar.description {
        entry["description"] = Value::from(description.as_str());
    }
    let rest = json!({
        "timeZone": calendar.time_zone,
        "colorId": color_id,
        "backgroundColor": background,
        "foregroundColor": "#000000",
        "selected": true,
        "accessRole": calendar.access_role,
        "defaultReminders": [],
        "conferenceProperties": { "allowedConferenceSolutionTypes": ["hangoutsMeet"] },
    });
    if let (Value::Object(entry), Value::Object(rest)) = (&mut entry, rest) {
        entry.extend(rest);
    }
    if calendar.primary {
        entry["primary"] = Value::Bool(true);
    }
    entry
}

fn encode_token(kind: &str, account: &Account, n: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{}:{n}", account.email))
}

fn decode_token(kind: &str, account: &Account, token: &str) -> Option<u64> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let rest = raw.strip_prefix(kind)?.strip_prefix(':')?;
    let (email, n) = rest.rsplit_once(':')?;
    (email == account.email).then_some(())?;
    n.parse().ok()
}

fn calendar_list(em: &Emulator, req: &Req) -> Resp {
    let st = em.lock();
    let grant = match st.check_bearer(Provider::Google, req.bearer()) {
        Ok(grant) => grant,
        Err(TokenProblem::Missing) => return unauthenticated(true),
        Err(_) => return unauthenticated(false),
    };
    if !grant
        .scopes
        .iter()
        .any(|s| CALENDAR_LIST_SCOPES.contains(&s.as_str()))
    {
        return insufficient_scopes("calendar.v1.CalendarListService.List");
    }
    let Some(account) = st.account(Provider::Google, &grant.account) else {
        return unauthenticated(false);
    };
    let max_results = match req.query("maxResults") {
        None => 100,
        Some(raw) => match raw.parse::<i64>() {
            // "The page size can never be larger than 250 entries."
            Ok(n) if n >= 1 => n.min(250) as usize,
            _ => return invalid_value("maxResults", raw),
        },
    };
    let mut calendars: &[Calendar] = &account.calendars;
    if let Some(sync) = req.query("syncToken") {
        match decode_token("sync", account, sync) {
            Some(version) if version == account.version => calendars = &[],
            Some(_) => {}
            None => {
                return api_error(
                    410,
                    "Sync token is no longer valid, a full sync is required.",
                    "fullSyncRequired",
                    "global",
                    "GONE",
                )
            }
        }
    }
    let offset = match req.query("pageToken") {
        None => 0,
        Some(token) => match decode_token("page", account, token) {
            Some(offset) => offset as usize,
            None => return invalid_value("pageToken", token),
        },
    };
    let end = (offset + max_results).min(calendars.len());
    let items: Vec<Value> = calendars
        .iter()
        .enumerate()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .map(|(i, c)| entry(c, i))
        .collect();
    let etag_hash = sha256(&format!("{}:{}", account.email, account.version));
    let etag: String = etag_hash[..10].iter().map(|b| format!("{b:02x}")).collect();
    let mut body = json!({
        "kind": "calendar#calendarList",
        "etag": format!("\"p{etag}\""),
    });
    if end < calendars.len() {
        body["nextPageToken"] = Value::from(encode_token("page", account, end as u64));
    } else {
        body["nextSyncToken"] = Value::from(encode_token("sync", account, account.version));
    }
    body["items"] = Value::Array(items);
    response(200, "application/json; charset=UTF-8", body.to_string())
}
