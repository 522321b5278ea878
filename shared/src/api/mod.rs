//! The HTTP API, independent of Lambda: an [`ApiRequest`] goes in, an [`ApiResponse`] comes out.
//! Routes are declared once in [`routes::ROUTES`]; template.yaml, the local gateway and the
//! OpenAPI document are checked against that table by tests.

mod accounts;
mod browser_binding;
mod calendars;
mod changes;
mod connections;
pub mod delivery;
mod events;
mod feeds;
mod push;
mod throttling;
mod webhooks;
pub use feeds::render as render_feed;
mod input;
pub mod instant;
pub mod openapi;
mod recurring;
pub mod routes;
mod schedule;
pub mod service;

use std::collections::HashMap;

use http::{Method, StatusCode};
use serde::Serialize;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
pub use accounts::EXPORT_PART_ITEMS;
pub use routes::{Operation, RouteGroup};
use service::Call;
pub use service::Service;

/// Bodies larger than this are refused before parsing (API Gateway itself allows 10 MB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A request as the API sees it, whatever carried it.
#[derive(Clone, Debug, Default)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The client's address as API Gateway saw it (`requestContext.http.sourceIp`); never a
    /// header, since a client can write any header.
    pub source_ip: Option<std::net::IpAddr>,
}

impl ApiRequest {
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            ..Default::default()
        }
    }

    /// Header lookup; names are stored lower-case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_owned());
        self
    }

    pub fn with_bearer(self, token: &str) -> Self {
        self.with_header("authorization", &format!("Bearer {token}"))
    }

    pub fn with_json(mut self, body: &serde_json::Value) -> Self {
        self.body = body.to_string().into_bytes();
        self.with_header("content-type", "application/json")
    }

    pub fn with_source_ip(mut self, ip: std::net::IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    pub fn with_query(mut self, name: &str, value: &str) -> Self {
        self.query.insert(name.to_owned(), value.to_owned());
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    /// `None` for 204 No Content.
    pub body: Option<serde_json::Value>,
    /// A body that is not JSON: content type and text (the ICS feed).
    pub raw: Option<(String, String)>,
}

impl ApiResponse {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> ApiResult<Self> {
        Ok(Self {
            status,
            headers: Vec::new(),
            body: Some(serde_json::to_value(value).map_err(ApiError::internal)?),
            raw: None,
        })
    }

    pub fn ok<T: Serialize>(value: &T) -> ApiResult<Self> {
        Self::json(StatusCode::OK, value)
    }

    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
            raw: None,
        }
    }

    fn error(err: &ApiError) -> Self {
        Self {
            status: err.status,
            headers: err
                .headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
            body: Some(err.body()),
            raw: None,
        }
    }
}

impl App {
    /// Serves one request with the routes of `service`.
    pub async fn handle(&self, service: &Service, req: ApiRequest) -> ApiResponse {
        let result = match route(service.group, &req) {
            Ok(call) => {
                tracing::info!(method = %req.method, route = call.route, "request");
                self.dispatch(service, &call).await
            }
            Err(e) => {
                tracing::info!(method = %req.method, "request to no route");
                Err(e)
            }
        };
        match result {
            Ok(resp) => resp,
            Err(err) => {
                if err.status.is_server_error() {
                    tracing::error!(
                        status = err.status.as_u16(),
                        code = err.code,
                        "request failed"
                    );
                } else {
                    tracing::info!(status = err.status.as_u16(), code = err.code, message = %err.message, "request refused");
                }
                ApiResponse::error(&err)
            }
        }
    }

    async fn dispatch(&self, service: &Service, call: &Call<'_>) -> ApiResult<ApiResponse> {
        if call.req.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body may be at most {MAX_BODY_BYTES} bytes"),
            ));
        }
        service.dispatch(self, call).await
    }

    /// The user id behind the request's bearer token.
    pub(crate) async fn authenticate(&self, req: &ApiRequest) -> ApiResult<String> {
        let token = crate::auth::bearer_token(req.header("authorization"))?;
        let hash = crate::ids::sha256_hex(token);
        let now = chrono::Utc::now().timestamp();
        match self.store.session(&hash, now).await? {
            Some(session) => {
                self.note_activity(&session.user_id).await;
                Ok(session.user_id)
            }
            None => Err(ApiError::unauthorized("session is invalid or expired")),
        }
    }
}

/// Matches the request against the whole route table: a route of `group` is a call; a path
/// known with other methods only is a 405 with `Allow` (every function can answer that, and the
/// `$default` route's function does); anything else, a route of another function included, is a
/// 404.
fn route<'r>(group: Option<RouteGroup>, req: &'r ApiRequest) -> ApiResult<Call<'r>> {
    let path = req.path.trim_end_matches('/');
    let mut allowed: Vec<&str> = Vec::new();
    let mut served_elsewhere = false;
    for spec in routes::ROUTES {
        let Some(params) = routes::match_path(spec.path, path) else {
            continue;
        };
        if spec.method != req.method {
            if !allowed.contains(&spec.method.as_str()) {
                allowed.push(spec.method.as_str());
            }
            continue;
        }
        if group.is_some_and(|g| g != spec.group) {
            served_elsewhere = true;
            continue;
        }
        return Ok(Call {
            operation: spec.operation,
            route: spec.path,
            group: spec.group,
            params,
            req,
        });
    }
    if allowed.is_empty() || served_elsewhere {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            // Not the path: a path can carry a credential, and this message is logged.
            format!("no route for {} at this path", req.method),
        ));
    }
    let allowed = allowed.join(", ");
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed at this path; allowed: {allowed}",
            req.method
        ),
    )
    .with_header("allow", allowed))
}
