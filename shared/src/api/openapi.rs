//! The OpenAPI 3.1 document, generated from the route table and the request/response types.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::routes::{Operation, ROUTES};
use super::{accounts, calendars, connections, events, feeds, schedule};

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
        Op::StartConnection => (
            Some(schema::<connections::AppleConnectRequest>),
            Some(schema::<connections::AuthorizationDto>),
        ),
        Op::OAuthStart | Op::OAuthCallback => (None, None),
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
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(spec.query.iter().map(|q| {
            json!({"name": q.name, "in": "query", "required": q.required,
                   "description": q.description, "schema": {"type": "string"}})
        }));
        let (request, body) = bodies(spec.operation);
        let status = spec.status;
        let mut ok = json!({"description": "Success"});
        if let Some(schema) = body {
            ok["content"] = json!({"application/json": {"schema": schema(&mut generator)}});
        } else if status == 200 {
            ok["content"] = json!({"application/json": {"schema": {"type": "object"}}});
        }
        let mut responses = Map::new();
        responses.insert(status.to_string(), ok);
        responses.insert(
            "400".into(),
            error_response("Invalid input; the error names the problem"),
        );
        if spec.authenticated {
            responses.insert(
                "401".into(),
                error_response("Missing, invalid or expired session"),
            );
        }
        if spec.path.contains('{') {
            responses.insert("404".into(), error_response("No such object of this user"));
        }
        let mut operation = json!({
            "operationId": format!("{:?}", spec.operation),
            "summary": spec.summary,
            "tags": [spec.group.tag()],
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(request) = request {
            operation["requestBody"] = json!({
                "required": true,
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
            "description": "One API over a person's Google, Microsoft and Apple calendars."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}
