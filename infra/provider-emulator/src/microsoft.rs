//! Microsoft: identity platform v2.0 authorization-code flow (login.microsoftonline.com) and Graph
//! v1.0 `/me` and `/me/calendars`, under `/microsoft`.

use std::time::Instant;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::{
    client_auth, guid, json, no_store, param, pkce_matches, redirect_with, response, sha256,
    valid_pkce_string, with_header, Req, Resp,
};
use crate::state::{
    Account, AuthCode, Calendar, Grant, Provider, State, TokenProblem, CODE_LIFETIME,
};
use crate::Emulator;

const ACCESS_PREFIX: &str = "EwB";
const REFRESH_PREFIX: &str = "M.C540_BL2.0.U.-";
const CODE_PREFIX: &str = "M.C507_BAY.2.U.";
const GRAPH: &str = "https://graph.microsoft.com/";
/// Scopes that describe the sign-in itself; they are not listed in the token response's `scope`.
const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

pub(crate) const CALENDAR_SCOPES: &[&str] = &[
    "calendars.read",
    "calendars.readbasic",
    "calendars.readwrite",
    "calendars.read.shared",
    "calendars.readwrite.shared",
    ".default",
];
const USER_SCOPES: &[&str] = &[
    "user.read",
    "user.readwrite",
    "user.readbasic.all",
    "user.read.all",
    "user.readwrite.all",
    "directory.read.all",
    ".default",
];

pub(crate) fn route(em: &Emulator, req: &Req) -> Option<Resp> {
    let segments: Vec<&str> = req.path.split('/').skip(1).collect();
    let method = req.method.as_str();
    Some(match (method, segments.as_slice()) {
        ("GET", ["microsoft", "v1.0", "me"]) => me(em, req),
        ("GET", ["microsoft", "v1.0", "me", "calendars"]) => calendars(em, req),
        (_, ["microsoft", "v1.0", "me", ..]) if crate::graph_events::handles(&segments[3..]) => {
            crate::graph_events::route(em, req, &segments[3..])
        }
        (_, ["microsoft", "v1.0", ..]) => graph_error(
            req,
            400,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                segments.last().copied().unwrap_or_default()
            ),
        ),
        ("GET", ["microsoft", tenant, "oauth2", "v2.0", "authorize"]) if !tenant.is_empty() => {
            authorize(em, req)
        }
        ("POST", ["microsoft", tenant, "oauth2", "v2.0", "token"]) if !tenant.is_empty() => {
            token(em, req)
        }
        _ => return None,
    })
}

/// Normalises a requested scope to the form the token response lists (`https://graph.microsoft.com/X`),
/// `None` for the sign-in scopes.
fn resource_scope(scope: &str) -> Option<String> {
    if OIDC_SCOPES.iter().any(|s| s.eq_ignore_ascii_case(scope)) {
        return None;
    }
    if scope.starts_with("https://") || scope.starts_with("api://") {
        Some(scope.to_owned())
    } else {
        Some(format!("{GRAPH}{scope}"))
    }
}

/// Whether the grant carries one of `allowed` (lower-case short names) for Graph.
fn has_scope(grant: &Grant, allowed: &[&str]) -> bool {
    grant.scopes.iter().any(|s| {
        let short = s.strip_prefix(GRAPH).unwrap_or(s).to_ascii_lowercase();
        allowed.contains(&short.as_str())
    })
}

// ---------------------------------------------------------------------------------------------
// Identity platform

fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An identity-platform error as the token endpoint returns it.
pub(crate) fn aad_error(status: u16, error: &str, code: u32, message: &str) -> Resp {
    let trace_id = guid();
    let correlation_id = guid();
    let timestamp = timestamp();
    no_store(json(
        status,
        &json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    ))
}

/// The default body of a fault with this status on an identity-platform path.
pub(crate) fn aad_error_for_status(status: u16) -> Resp {
    match status {
        400 => aad_error(400, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid."),
        401 => aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app."),
        429 => aad_error(429, "temporarily_unavailable", 50196, "The server terminated an operation because it encountered a client request loop. Please contact your app vendor."),
        s if s >= 500 => aad_error(s, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."),
        s => aad_error(s, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid."),
    }
}

fn authorize(em: &Emulator, req: &Req) -> Resp {
    let q = &req.query;
    let page = |message: &str| {
        response(
            400,
            "text/html; charset=utf-8",
            format!(
                "<!DOCTYPE html><title>Sign in to your account</title><p>{}</p>",
                message.replace('<', "&lt;")
            ),
        )
    };
    let Some(client_id) = param(q, "client_id") else {
        return page(
            "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(redirect_uri) = param(q, "redirect_uri") else {
        return page(
            "AADSTS900144: The request body must contain the following parameter: 'redirect_uri'.",
        );
    };
    let Ok(redirect_url) = url::Url::parse(redirect_uri) else {
        return page("AADSTS90102: 'redirect_uri' value must be a valid absolute URI.");
    };
    let state = param(q, "state");
    let mut st = em.lock();
    let fail = |st: &mut State, error: &str, code: u32, message: &str| {
        st.stats.microsoft.authorization_errors += 1;
        let description = format!(
            "AADSTS{code}: {message}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            guid(),
            guid(),
            timestamp()
        );
        let mut pairs = vec![
            ("error", error),
            ("error_description", description.as_str()),
        ];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        redirect_with(&redirect_url, &pairs)
    };
    if param(q, "response_type") != Some("code") {
        return fail(
            &mut st,
            "unsupported_response_type",
            70005,
            "The provided value for the input parameter 'response_type' isn't allowed for this request. Expected value: 'code'.",
        );
    }
    let Some(scope) = param(q, "scope") else {
        return fail(
            &mut st,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let Some(challenge) = param(q, "code_challenge") else {
        return fail(
            &mut st,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code_challenge'.",
        );
    };
    if param(q, "code_challenge_method") != Some("S256") || !valid_pkce_string(challenge) {
        return fail(
            &mut st,
            "invalid_request",
            501491,
            "Invalid code_challenge or code_challenge_method: S256 is required.",
        );
    }
    let Some(account) = st.resolve_login(Provider::Microsoft, param(q, "login_hint")) else {
        return fail(
            &mut st,
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
    };
    if account.deny {
        return fail(
            &mut st,
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
    }
    let email = account.email.clone();
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    let offline = scopes
        .iter()
        .any(|s| s.eq_ignore_ascii_case("offline_access"));
    let code = format!("{CODE_PREFIX}{}", guid());
    st.codes.insert(
        code.clone(),
        AuthCode {
            provider: Provider::Microsoft,
            account: email,
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            challenge: challenge.to_owned(),
            offline,
            issued: Instant::now(),
            redeemed: false,
        },
    );
    st.stats.microsoft.authorizations += 1;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    redirect_with(&redirect_url, &pairs)
}

fn token(em: &Emulator, req: &Req) -> Resp {
    let form = req.form();
    let mut st = em.lock();
    let client_id = match client_auth(req, &form) {
        Ok(id) => id,
        Err(reason) => {
            st.stats.microsoft.failed_token_requests += 1;
            return if reason == "client_id is missing" {
                aad_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_id'.",
                )
            } else {
                aad_error(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
            };
        }
    };
    let resp = match param(&form, "grant_type") {
        None => aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ),
        Some("authorization_code") => exchange_code(&mut st, &form, &client_id),
        Some("refresh_token") => refresh(&mut st, &form, &client_id),
        Some(other) => aad_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        ),
    };
    if resp.status() != 200 {
        st.stats.microsoft.failed_token_requests += 1;
    }
    resp
}

fn token_response(st: &mut State, grant: u64, scopes: &[String], offline: bool) -> Resp {
    let access_token = st.issue_access_token(grant, ACCESS_PREFIX);
    let scope = scopes
        .iter()
        .filter_map(|s| resource_scope(s))
        .collect::<Vec<_>>()
        .join(" ");
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": st.access_token_ttl,
        "ext_expires_in": st.access_token_ttl,
        "access_token": access_token,
    });
    if offline {
        body["refresh_token"] = Value::from(st.issue_refresh_token(grant, REFRESH_PREFIX));
    }
    no_store(json(200, &body))
}

fn exchange_code(st: &mut State, form: &[(String, String)], client_id: &str) -> Resp {
    let Some(code) = param(form, "code") else {
        return aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code'.",
        );
    };
    let Some(auth) = st
        .codes
        .get(code)
        .filter(|c| c.provider == Provider::Microsoft)
    else {
        return aad_error(
            400,
            "invalid_grant",
            70000,
            "The provided value for the 'code' parameter is not valid.",
        );
    };
    if auth.redeemed {
        return aad_error(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.");
    }
    if auth.issued.elapsed() > CODE_LIFETIME {
        return aad_error(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.");
    }
    if auth.client_id != client_id {
        return aad_error(400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid. The code was issued to a different client.");
    }
    if param(form, "redirect_uri") != Some(auth.redirect_uri.as_str()) {
        return aad_error(400, "invalid_grant", 70000, "The provided value for the 'redirect_uri' is not valid. The value must exactly match the redirect URI used to obtain the authorization code.");
    }
    let verified = param(form, "code_verifier").is_some_and(|v| pkce_matches(v, &auth.challenge));
    if !verified {
        return aad_error(400, "invalid_grant", 50148, "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.");
    }
    let (account, scopes, offline) = (auth.account.clone(), auth.scopes.clone(), auth.offline);
    if let Some(auth) = st.codes.get_mut(code) {
        auth.redeemed = true;
    }
    let grant = st.new_grant(Grant {
        provider: Provider::Microsoft,
        account,
        client_id: client_id.to_owned(),
        scopes: scopes.clone(),
    });
    st.stats.microsoft.authorization_code_grants += 1;
    token_response(st, grant, &scopes, offline)
}

fn refresh(st: &mut State, form: &[(String, String)], client_id: &str) -> Resp {
    let Some(token) = param(form, "refresh_token") else {
        return aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'refresh_token'.",
        );
    };
    let invalid = || {
        aad_error(400, "invalid_grant", 70000, "The provided value for the 'refresh_token' is not valid. The refresh token has been used or revoked.")
    };
    let Some(&grant_id) = st.refresh_tokens.get(token) else {
        return invalid();
    };
    let Some(grant) = st
        .grants
        .get(&grant_id)
        .filter(|g| g.provider == Provider::Microsoft)
    else {
        return invalid();
    };
    if grant.client_id != client_id {
        return aad_error(400, "invalid_grant", 70000, "The provided value for the 'refresh_token' is not valid. The token was issued to a different client.");
    }
    let scopes = grant.scopes.clone();
    // Rotation: the redeemed refresh token stops working; the answer carries its successor.
    st.refresh_tokens.remove(token);
    st.stats.microsoft.refresh_token_grants += 1;
    token_response(st, grant_id, &scopes, true)
}

// ---------------------------------------------------------------------------------------------
// Graph

/// A Graph error: `{"error": {"code", "message", "innerError": {...}}}` plus the request-id headers.
pub(crate) fn graph_error(req: &Req, status: u16, code: &str, message: &str) -> Resp {
    let request_id = guid();
    let client_request_id = req
        .header("client-request-id")
        .map(str::to_owned)
        .unwrap_or_else(|| request_id.clone());
    let resp = json(
        status,
        &json!({
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }
        }),
    );
    let resp = with_header(resp, "request-id", &request_id);
    with_header(resp, "client-request-id", &client_request_id)
}

/// The default body of a fault with this status on a Graph path.
pub(crate) fn graph_error_for_status(req: &Req, status: u16) -> Resp {
    let (code, message) = match status {
        400 => ("BadRequest", "Bad request."),
        401 => ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
        403 => ("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
        404 => ("ErrorItemNotFound", "The specified object was not found in the store."),
        409 => ("ErrorIrresolvableConflict", "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item."),
        429 => ("ApplicationThrottled", "Application is over its MailboxConcurrency limit."),
        500 => ("ErrorInternalServerError", "An internal server error occurred. The operation failed."),
        503 => ("ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
        504 => ("UnknownError", "Gateway timeout."),
        _ => ("UnknownError", "An unknown error occurred."),
    };
    graph_error(req, status, code, message)
}

fn unauthorized(req: &Req, problem: TokenProblem) -> Resp {
    let message = match problem {
        TokenProblem::Missing => "Access token is empty.",
        TokenProblem::Unknown => "CompactToken parsing failed with error code: 80049217",
        TokenProblem::Expired => "Access token has expired or is not yet valid.",
    };
    let resp = graph_error(req, 401, "InvalidAuthenticationToken", message);
    with_header(
        resp,
        "www-authenticate",
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
    )
}

pub(crate) const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

pub(crate) fn graph_ok(req: &Req, body: &Value) -> Resp {
    let resp = response(200, ODATA_JSON, body.to_string());
    let request_id = guid();
    let client_request_id = req
        .header("client-request-id")
        .map(str::to_owned)
        .unwrap_or_else(|| request_id.clone());
    let resp = with_header(resp, "request-id", &request_id);
    with_header(resp, "client-request-id", &client_request_id)
}

/// The signed-in account of a Graph request, or the error to answer with.
pub(crate) fn graph_account<'a>(
    st: &'a State,
    req: &Req,
    scopes: &[&str],
) -> Result<&'a Account, Box<Resp>> {
    let grant = st
        .check_bearer(Provider::Microsoft, req.bearer())
        .map_err(|p| Box::new(unauthorized(req, p)))?;
    if !has_scope(grant, scopes) {
        return Err(Box::new(if scopes == USER_SCOPES {
            graph_error(
                req,
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        } else {
            graph_error(
                req,
                403,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            )
        }));
    }
    st.account(Provider::Microsoft, &grant.account)
        .ok_or_else(|| Box::new(unauthorized(req, TokenProblem::Unknown)))
}

fn me(em: &Emulator, req: &Req) -> Resp {
    let st = em.lock();
    let account = match graph_account(&st, req, USER_SCOPES) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let (given, surname) = match account.display_name.split_once(' ') {
        Some((g, s)) => (Value::from(g), Value::from(s)),
        None => (Value::from(account.display_name.as_str()), Value::Null),
    };
    graph_ok(
        req,
        &json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "businessPhones": [],
            "displayName": account.display_name,
            "givenName": given,
            "jobTitle": null,
            "mail": account.email,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": "en-US",
            "surname": surname,
            "userPrincipalName": account.email,
            "id": account.user_id(),
        }),
    )
}

/// `calendarColor` values and the hex colours Outlook paints them with.
const COLORS: &[(&str, &str)] = &[
    ("lightBlue", "#a6d1f5"),
    ("lightGreen", "#87d28e"),
    ("lightOrange", "#fcab73"),
    ("lightGray", "#c0c0c0"),
    ("lightYellow", "#f4d07a"),
    ("lightTeal", "#5dd8d8"),
    ("lightPink", "#f08cc0"),
    ("lightBrown", "#cba287"),
    ("lightRed", "#f88c9b"),
];

fn calendar_json(account: &Account, calendar: &Calendar) -> Value {
    let (color, hex) = match calendar.color.as_deref() {
        Some(hex) if hex.starts_with('#') => ("auto".to_owned(), hex.to_ascii_lowercase()),
        Some(name) => match COLORS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((n, h)) => ((*n).to_owned(), (*h).to_owned()),
            None => ("auto".to_owned(), String::new()),
        },
        None => ("auto".to_owned(), String::new()),
    };
    let change_key =
        STANDARD.encode(&sha256(&format!("{}:{}", calendar.id, calendar.updated_micros))[..16]);
    json!({
        "id": calendar.id,
        "name": calendar.name,
        "color": color,
        "hexColor": hex,
        "isDefaultCalendar": calendar.primary,
        "changeKey": change_key,
        "canShare": calendar.can_share,
        "canViewPrivateItems": true,
        "canEdit": calendar.can_edit,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": calendar.primary,
        "isRemovable": calendar.is_removable,
        "owner": { "name": account.display_name, "address": account.email },
    })
}

/// `odata.maxpagesize=N` from a `Prefer` header (which may carry several preferences).
pub(crate) fn max_page_size(req: &Req) -> Option<Result<usize, String>> {
    req.headers.get_all("prefer").iter().find_map(|value| {
        value.to_str().ok()?.split(',').find_map(|pref| {
            let value = pref.trim().strip_prefix("odata.maxpagesize=")?;
            Some(
                value
                    .trim_matches('"')
                    .parse::<usize>()
                    .map_err(|_| value.to_owned()),
            )
        })
    })
}

fn calendars(em: &Emulator, req: &Req) -> Resp {
    let st = em.lock();
    let account = match graph_account(&st, req, CALENDAR_SCOPES) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let bad = |message: &str| graph_error(req, 400, "BadRequest", message);
    let top = match req.query("$top").map(|t| t.parse::<usize>().map_err(|_| t)) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(t)) => return bad(&format!("Invalid $top value '{t}'.")),
    };
    let prefer = match max_page_size(req) {
        None => None,
        Some(Ok(n)) if n >= 1 => Some(n),
        Some(Ok(n)) => return bad(&format!("Invalid odata.maxpagesize value '{n}'.")),
        Some(Err(v)) => return bad(&format!("Invalid odata.maxpagesize value '{v}'.")),
    };
    let (offset, token_size) = match req.query("$skiptoken") {
        None => (0, None),
        Some(token) => match decode_skiptoken(account, token) {
            Some((offset, size)) => (offset, Some(size)),
            None => return bad("The $skiptoken is invalid."),
        },
    };
    let page_size = prefer.or(top).or(token_size).unwrap_or(10).min(1000);
    if page_size == 0 {
        return graph_ok(
            req,
            &json!({
                "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{}')/calendars", account.user_id()),
                "value": [],
            }),
        );
    }
    let all = &account.calendars;
    let end = (offset + page_size).min(all.len());
    let value: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .map(|c| calendar_json(account, c))
        .collect();
    let mut body = json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{}')/calendars", account.user_id()),
        "value": value,
    });
    if end < all.len() {
        let token = encode_skiptoken(account, end, page_size);
        let top_part = top.map(|t| format!("$top={t}&")).unwrap_or_default();
        body["@odata.nextLink"] = Value::from(format!(
            "{}/microsoft/v1.0/me/calendars?{top_part}$skiptoken={token}",
            em.base_url
        ));
    }
    let resp = graph_ok(req, &body);
    match prefer {
        Some(n) => with_header(
            resp,
            "preference-applied",
            &format!("odata.maxpagesize={n}"),
        ),
        None => resp,
    }
}

fn encode_skiptoken(account: &Account, offset: usize, size: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{offset}:{size}", account.email))
}

fn decode_skiptoken(account: &Account, token: &str) -> Option<(usize, usize)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let mut parts = raw.rsplitn(3, ':');
    let size = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    (parts.next()? == account.email).then_some((offset, size))
}
