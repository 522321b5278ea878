//! The HTTP API, independent of Lambda: an [`ApiRequest`] goes in, an [`ApiResponse`] comes out.
//! Routes are declared once in [`routes::ROUTES`]; template.yaml, the local gateway and the
//! OpenAPI document are checked against that table by tests.

mod accounts;
mod calendars;
mod connections;
mod events;
mod feeds;
pub use feeds::render as render_feed;
mod input;
pub mod openapi;
mod recurring;
pub mod routes;
mod schedule;

use std::collections::HashMap;
use std::sync::Arc;

use http::{Method, StatusCode};
use serde::Serialize;

use crate::config::Config;
use crate::crypto::TokenCipher;
use crate::error::{ApiError, ApiResult};
use crate::store::Store;
pub use routes::{Operation, RouteGroup};

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
            headers: Vec::new(),
            body: Some(err.body()),
            raw: None,
        }
    }
}

/// Everything a handler needs: the store, the configuration and the clients of other services.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub config: Config,
    /// Seals provider secrets; `None` when no KMS key is configured.
    pub cipher: Option<Arc<TokenCipher>>,
    pub sqs: aws_sdk_sqs::Client,
    /// For provider calls.
    pub http: reqwest::Client,
}

/// A matched route: which operation, with which path parameters.
struct Matched<'r> {
    operation: Operation,
    params: Vec<(&'static str, &'r str)>,
}

impl App {
    /// Builds every client from one SDK configuration.
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        let cipher = config
            .token_key_id
            .as_ref()
            .map(|key| Arc::new(TokenCipher::new(aws_sdk_kms::Client::new(sdk), key.clone())));
        Self {
            store: Store::new(aws_sdk_dynamodb::Client::new(sdk), &config),
            cipher,
            sqs: aws_sdk_sqs::Client::new(sdk),
            http: crate::providers::http_client_with_timeout(config.provider_timeout),
            config,
        }
    }

    pub(crate) fn cipher(&self) -> ApiResult<&TokenCipher> {
        self.cipher
            .as_deref()
            .ok_or_else(|| ApiError::internal("TOKEN_KEY_ID is not configured"))
    }

    /// Serves one request. `group` limits the routes to one function's (None serves them all).
    pub async fn handle(&self, group: Option<RouteGroup>, req: ApiRequest) -> ApiResponse {
        let result = match route(group, &req) {
            Ok(matched) => self.dispatch(matched, &req).await,
            Err(e) => Err(e),
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

    async fn dispatch(&self, m: Matched<'_>, req: &ApiRequest) -> ApiResult<ApiResponse> {
        if req.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body may be at most {MAX_BODY_BYTES} bytes"),
            ));
        }
        let param = |name: &str| {
            m.params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| ApiError::internal(format!("route without {{{name}}}")))
        };
        let id = || param("id");
        use Operation as Op;
        match m.operation {
            Op::Register => accounts::register(self, req).await,
            Op::Login => accounts::login(self, req).await,
            Op::Logout => accounts::logout(self, req).await,
            Op::Me => accounts::me(self, req).await,
            Op::AuditLog => accounts::audit_log(self, req).await,
            Op::OpenApi => ApiResponse::ok(&openapi::document()),
            Op::ListCalendars => calendars::list(self, req).await,
            Op::UpdateCalendar => calendars::update(self, req, id()?).await,
            Op::DeleteCalendar => calendars::delete(self, req, id()?).await,
            Op::ListEvents => events::list(self, req).await,
            Op::CreateEvent => events::create(self, req).await,
            Op::GetEvent => events::get(self, req, id()?).await,
            Op::UpdateEvent => events::update(self, req, id()?).await,
            Op::DeleteEvent => events::delete(self, req, id()?).await,
            Op::CreateFeed => feeds::create(self, req).await,
            Op::DeleteFeed => feeds::delete(self, req, id()?).await,
            Op::ReadFeed => feeds::read(self, req, param("token")?).await,
            Op::Conflicts => schedule::conflicts(self, req).await,
            Op::FreeBusy => schedule::freebusy(self, req).await,
            Op::Availability => schedule::availability(self, req).await,
            Op::EventInstances => events::instances(self, req, id()?).await,
            Op::SyncCalendar => calendars::sync_now(self, req, id()?).await,
            Op::StartConnection => connections::start(self, req, param("provider")?).await,
            Op::OAuthCallback => connections::callback(self, req, param("provider")?).await,
        }
    }

    /// The user id behind the request's bearer token.
    pub(crate) async fn authenticate(&self, req: &ApiRequest) -> ApiResult<String> {
        let token = crate::auth::bearer_token(req.header("authorization"))?;
        let hash = crate::ids::sha256_hex(token);
        let now = chrono::Utc::now().timestamp();
        match self.store.session(&hash, now).await? {
            Some(session) => Ok(session.user_id),
            None => Err(ApiError::unauthorized("session is invalid or expired")),
        }
    }
}

fn route<'r>(group: Option<RouteGroup>, req: &'r ApiRequest) -> ApiResult<Matched<'r>> {
    let path = req.path.trim_end_matches('/');
    let mut allowed = Vec::new();
    for spec in routes::ROUTES {
        if group.is_some_and(|g| g != spec.group) {
            continue;
        }
        let Some(params) = routes::match_path(spec.path, path) else {
            continue;
        };
        if spec.method == req.method {
            return Ok(Matched {
                operation: spec.operation,
                params,
            });
        }
        allowed.push(spec.method.as_str());
    }
    if allowed.is_empty() {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("no route {} {}", req.method, req.path),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} {} is not allowed; allowed: {}",
                req.method,
                req.path,
                allowed.join(", ")
            ),
        ))
    }
}
