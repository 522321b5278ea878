//! The OpenAPI 3.1 document, generated from the route table and the request/response types.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::routes::{Operation, ParamKind, RouteSpec, ROUTES};
use super::{accounts, calendars, changes, connections, events, feeds, push, schedule, webhooks};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Each operation's request and success bodies. Kept out of the route table so that routing
/// does not link the schema code of every type: only the function serving this document does
/// (docs/decisions.md 36).
fn bodies(operation: Operation) -> (Option<SchemaFn>, Option<SchemaFn>) {
    use Operation as Op;
    match operation {
        Op::Register => (
            Some(schema::<accounts::RegisterRequest>),
            Some(schema::<accounts::SessionDto>),
        ),
        Op::Login => (
            Some(schema::<accounts::LoginRequest>),
            Some(schema::<accounts::SessionDto>),
        ),
        Op::Logout => (None, None),
        Op::ChangePassword => (Some(schema::<accounts::ChangePasswordRequest>), None),
        Op::RequestReset => (
            Some(schema::<accounts::ResetRequest>),
            Some(schema::<accounts::ResetAcceptedDto>),
        ),
        Op::ConfirmReset => (
            Some(schema::<accounts::ResetConfirmRequest>),
            Some(schema::<accounts::SessionDto>),
        ),
        Op::DeleteAccount => (Some(schema::<accounts::DeleteAccountRequest>), None),
        Op::ExportData => (None, Some(schema::<accounts::ExportDto>)),
        Op::Me => (None, Some(schema::<accounts::UserDto>)),
        Op::AuditLog => (None, Some(schema::<accounts::AuditPageDto>)),
        Op::OpenApi => (None, None),
        Op::ListCalendars => (None, Some(schema::<calendars::CalendarListDto>)),
        Op::UpdateCalendar => (
            Some(schema::<calendars::UpdateCalendarRequest>),
            Some(schema::<calendars::CalendarDto>),
        ),
        Op::DeleteCalendar => (None, None),
        Op::SyncCalendar => (None, Some(schema::<calendars::CalendarDto>)),
        Op::ListEvents => (None, Some(schema::<events::EventListDto>)),
        Op::CreateEvent => (
            Some(schema::<events::CreateEventRequest>),
            Some(schema::<events::EventDto>),
        ),
        Op::GetEvent => (None, Some(schema::<events::EventDto>)),
        Op::CreateFeed => (None, Some(schema::<feeds::FeedDto>)),
        Op::DeleteFeed => (None, None),
        Op::ReadFeed => (None, None),
        Op::Conflicts => (None, Some(schema::<schedule::ConflictsDto>)),
        Op::FreeBusy => (None, Some(schema::<schedule::FreeBusyDto>)),
        Op::Availability => (
            Some(schema::<schedule::AvailabilityRequest>),
            Some(schema::<schedule::AvailabilityDto>),
        ),
        Op::EventInstances => (None, Some(schema::<events::EventListDto>)),
        Op::UpdateEvent => (
            Some(schema::<events::UpdateEventRequest>),
            Some(schema::<events::EventDto>),
        ),
        Op::DeleteEvent => (None, None),
        Op::StartConnection => (None, Some(schema::<connections::AuthorizationDto>)),
        Op::ListConnections => (None, Some(schema::<connections::ConnectionListDto>)),
        Op::Disconnect => (None, None),
        Op::ListFeeds => (None, Some(schema::<feeds::FeedListDto>)),
        Op::ConnectApple => (
            Some(schema::<connections::AppleConnectRequest>),
            Some(schema::<connections::ConnectedDto>),
        ),
        Op::OAuthStart | Op::OAuthCallback => (None, None),
        Op::ListChanges => (None, Some(schema::<changes::ChangePageDto>)),
        Op::GooglePush => (None, None),
        Op::CreateWebhook => (
            Some(schema::<webhooks::CreateWebhookRequest>),
            Some(schema::<webhooks::WebhookCreatedDto>),
        ),
        Op::ListWebhooks => (None, Some(schema::<webhooks::WebhookListDto>)),
        Op::UpdateWebhook => (
            Some(schema::<webhooks::UpdateWebhookRequest>),
            Some(schema::<webhooks::WebhookDto>),
        ),
        Op::DeleteWebhook => (None, None),
        Op::RotateWebhookSecret => (
            Some(schema::<webhooks::RotateSecretRequest>),
            Some(schema::<webhooks::RotatedSecretDto>),
        ),
        Op::GraphPush | Op::GraphLifecycle => (
            Some(schema::<push::GraphNotifications>),
            Some(schema::<push::NotificationReceipt>),
        ),
    }
}

/// The document, built once per container.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// What an error status means on any route.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid input; the error names the problem",
        401 => "Missing, invalid or expired session (login: wrong e-mail or password)",
        403 => "The password given is wrong",
        404 => "No such object of this user (other users' ids get the same answer)",
        409 => "Conflicts with the current state (an e-mail already registered, a concurrent change, a series edit the provider does not allow)",
        413 => "The body is larger than 256 KiB",
        415 => "The body is not application/json",
        422 => "More than one answer may hold (a feed's or an export's events)",
        429 => "Too many attempts; retry after Retry-After seconds",
        502 => "The provider or CalDAV server failed or could not be reached (provider_unavailable)",
        503 => "Throttled, or the provider is not configured here; retry later",
        _ => "Error",
    }
}

fn retry_after_header() -> Value {
    json!({"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}})
}

/// The success response of a route.
fn success_response(spec: &RouteSpec, body: Option<Value>) -> Value {
    match (spec.operation, spec.status) {
        (Operation::ReadFeed, _) => json!({
            "description": "The merged calendar (RFC 5545)",
            "content": {"text/calendar": {"schema": {"type": "string"}}}
        }),
        (_, 302) => {
            let mut headers = json!({"Location": {
                "description": "Where the browser goes next",
                "schema": {"type": "string"}
            }});
            if spec.operation == Operation::OAuthStart {
                headers["Set-Cookie"] = json!({
                    "description": "The flow's browser binding (HttpOnly; Secure; SameSite=Lax)",
                    "schema": {"type": "string"}
                });
            }
            json!({"description": "Redirect", "headers": headers})
        }
        (_, 204) => json!({"description": "Done; no body"}),
        (_, _) => json!({
            "description": "Success",
            "content": {"application/json": {
                "schema": body.unwrap_or_else(|| json!({"type": "object"}))
            }}
        }),
    }
}

/// OpenAPI links from an answer to the operations that take its ids, so clients (and stateful
/// fuzzing, which then reaches past "unknown id") know where an id goes.
fn links(operation: Operation) -> Option<Value> {
    let by_id = |id: &str, targets: &[&str]| {
        targets
            .iter()
            .map(|target| {
                let link = json!({"operationId": target, "parameters": {"id": id}});
                ((*target).to_owned(), link)
            })
            .collect::<Map<String, Value>>()
    };
    let created = "$response.body#/id";
    let links = match operation {
        Operation::CreateEvent => by_id(
            created,
            &["GetEvent", "UpdateEvent", "DeleteEvent", "EventInstances"],
        ),
        Operation::CreateFeed => by_id(created, &["DeleteFeed"]),
        Operation::CreateWebhook => by_id(
            created,
            &["UpdateWebhook", "DeleteWebhook", "RotateWebhookSecret"],
        ),
        Operation::ListCalendars => {
            let first = "$response.body#/calendars/0/id";
            let mut links = by_id(first, &["UpdateCalendar", "SyncCalendar"]);
            links.insert(
                "CreateEvent".into(),
                json!({"operationId": "CreateEvent", "requestBody": {"calendarId": first}}),
            );
            links
        }
        _ => return None,
    };
    Some(Value::Object(links))
}

/// Every error status a route may answer: those of every route, then its own.
fn error_statuses(spec: &RouteSpec, takes_body: bool) -> Vec<u16> {
    let mut statuses = vec![400, 413, 503];
    if spec.authenticated {
        statuses.push(401);
    }
    if spec.path.contains('{') {
        statuses.push(404);
    }
    if takes_body {
        statuses.push(415);
    }
    statuses.extend_from_slice(spec.errors);
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

fn query_schema(kind: ParamKind) -> Value {
    match kind {
        ParamKind::Text => json!({"type": "string"}),
        ParamKind::Instant => json!({"anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"}
        ]}),
        ParamKind::Integer { min, max } => {
            json!({"type": "integer", "minimum": min, "maximum": max})
        }
        ParamKind::Boolean => json!({"type": "boolean"}),
        ParamKind::OneOf(values) => json!({"type": "string", "enum": values}),
    }
}

fn path_parameter(operation: Operation, name: &str) -> Value {
    let mut schema = json!({"type": "string"});
    if name == "provider" || operation == Operation::StartConnection {
        // `apple` connects through its own route, `POST /v1/connections/apple`.
        schema["enum"] = json!(["google", "microsoft"]);
    }
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn build() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "#/components/schemas/".into())
        .into_generator();
    let mut paths = Map::new();
    for spec in ROUTES {
        let mut parameters: Vec<Value> = spec
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| path_parameter(spec.operation, name))
            .collect();
        parameters.extend(spec.query.iter().map(|q| {
            json!({"name": q.name, "in": "query", "required": q.required,
                   "description": q.description, "schema": query_schema(q.kind)})
        }));
        let (request, body) = bodies(spec.operation);
        let body = body.map(|schema| schema(&mut generator).to_value());
        let mut responses = Map::new();
        let mut success = success_response(spec, body);
        if let Some(links) = links(spec.operation) {
            success["links"] = links;
        }
        responses.insert(spec.status.to_string(), success);
        if matches!(
            spec.operation,
            Operation::GraphPush | Operation::GraphLifecycle
        ) {
            responses.insert(
                "200".into(),
                json!({"description": "The validation handshake: validationToken, echoed",
                       "content": {"text/plain": {"schema": {"type": "string"}}}}),
            );
        }
        for status in error_statuses(spec, request.is_some()) {
            let mut response = error_response(error_description(status));
            if status == 429 || status == 503 {
                response["headers"] = retry_after_header();
            }
            responses.insert(status.to_string(), response);
        }
        let mut operation = json!({
            "operationId": format!("{:?}", spec.operation),
            "summary": spec.summary,
            "tags": [spec.group.tag()],
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(request) = request {
            // Graph's validation handshake POSTs no body.
            let optional = matches!(
                spec.operation,
                Operation::GraphPush | Operation::GraphLifecycle
            );
            operation["requestBody"] = json!({
                "required": !optional,
                "content": {"application/json": {"schema": request(&mut generator)}}
            });
        }
        if spec.authenticated {
            operation["security"] = json!([{"bearer": []}]);
        }
        let item = paths
            .entry(spec.path.to_owned())
            .or_insert_with(|| json!({}));
        item[spec.method.as_str().to_ascii_lowercase()] = operation;
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable, machine-readable"},
                    "message": {"type": "string", "description": "Names the problem"}
                }
            }}
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "calsync",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "One API over a person's Google, Microsoft and Apple calendars. Every instant it returns is RFC 3339 in UTC with Z, to the millisecond (2026-12-03T18:10:25.000Z); an event's start and end add, where the event has a zone, the wall-clock time there (localDateTime) and the zone's IANA name (timeZone)."
        },
        "servers": [{
            "url": "/",
            "description": "This deployment: the API's root, where paths begin with /v1 (and /oauth for browsers)"
        }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}
