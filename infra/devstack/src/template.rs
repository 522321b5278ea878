//! Reading template.yaml: resources, their properties, and the HttpApi routes of each function.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("reading {0}: {1}")]
    Io(String, std::io::Error),
    #[error("parsing template: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("template: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Template {
    #[serde(default)]
    pub parameters: BTreeMap<String, Value>,
    #[serde(default)]
    pub globals: Value,
    pub resources: BTreeMap<String, Resource>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default)]
    pub properties: Value,
    #[serde(default)]
    pub metadata: Value,
}

/// One HttpApi event of a function: method and path template, served by a binary.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
    pub binary: String,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TemplateError::Io(path.display().to_string(), e))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Ok(serde_norway::from_str(text)?)
    }

    /// The default value of a parameter, as text.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        self.parameters.get(name)?.get("Default").map(scalar_text)
    }

    /// Every HttpApi route, with the binary (`Metadata.BuildProperties.Binary`) that serves it.
    pub fn http_routes(&self) -> Result<Vec<HttpRoute>, TemplateError> {
        let mut routes = Vec::new();
        for (name, resource) in &self.resources {
            if resource.kind != "AWS::Serverless::Function" {
                continue;
            }
            let events = resource.properties.get("Events").and_then(Value::as_object);
            let http_events = events
                .into_iter()
                .flat_map(|e| e.values())
                .filter(|e| e.get("Type").and_then(Value::as_str) == Some("HttpApi"))
                .collect::<Vec<_>>();
            if http_events.is_empty() {
                continue;
            }
            let binary = resource
                .metadata
                .pointer("/BuildProperties/Binary")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TemplateError::Invalid(format!("{name} has no Metadata.BuildProperties.Binary"))
                })?;
            for event in http_events {
                let field = |f: &str| {
                    event
                        .pointer(&format!("/Properties/{f}"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            TemplateError::Invalid(format!("{name}: HttpApi event without {f}"))
                        })
                };
                routes.push(HttpRoute {
                    method: field("Method")?.to_ascii_uppercase(),
                    path: field("Path")?,
                    binary: binary.to_owned(),
                });
            }
        }
        routes.sort();
        Ok(routes)
    }
}

/// The HttpApi's `CorsConfiguration`, with parameters resolved to their defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<u64>,
}

impl Template {
    /// A list property: a YAML list, or a `Ref` to a (comma-delimited) parameter's default.
    fn list(&self, value: Option<&Value>) -> Vec<String> {
        match value {
            Some(Value::Array(items)) => items.iter().map(scalar_text).collect(),
            Some(Value::Object(map)) => map
                .get("Ref")
                .and_then(Value::as_str)
                .and_then(|name| self.parameter_default(name))
                .map(|text| {
                    text.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            Some(other) => vec![scalar_text(other)],
            None => Vec::new(),
        }
    }

    /// The CORS configuration of the template's HttpApi, if it has one.
    pub fn cors(&self) -> Result<Option<Cors>, TemplateError> {
        let Some(config) = self
            .resources
            .values()
            .filter(|r| r.kind == "AWS::Serverless::HttpApi")
            .find_map(|r| r.properties.get("CorsConfiguration"))
        else {
            return Ok(None);
        };
        let cors = Cors {
            allow_origins: self.list(config.get("AllowOrigins")),
            allow_methods: self.list(config.get("AllowMethods")),
            allow_headers: self.list(config.get("AllowHeaders")),
            expose_headers: self.list(config.get("ExposeHeaders")),
            allow_credentials: config
                .get("AllowCredentials")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_age: config.get("MaxAge").and_then(Value::as_u64),
        };
        if cors.allow_credentials && cors.allow_origins.iter().any(|o| o == "*") {
            // API Gateway refuses this too: any site could act with the user's credentials.
            return Err(TemplateError::Invalid(
                "CorsConfiguration: AllowOrigins '*' with AllowCredentials".into(),
            ));
        }
        Ok(Some(cors))
    }
}

impl Cors {
    fn allows(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|o| o == "*" || o == origin)
    }

    /// API Gateway's answer to a preflight: 204, with the CORS headers when the origin is allowed.
    pub fn preflight(
        &self,
        origin: Option<&http::HeaderValue>,
    ) -> http::Response<http_body_util::Full<hyper::body::Bytes>> {
        let mut response = http::Response::new(http_body_util::Full::default());
        *response.status_mut() = http::StatusCode::NO_CONTENT;
        if let Some(origin) = origin.filter(|o| o.to_str().is_ok_and(|o| self.allows(o))) {
            let headers = response.headers_mut();
            let mut set = |name: &'static str, value: String| {
                if let Ok(value) = http::HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            };
            set("access-control-allow-origin", self.origin_value(origin));
            set("access-control-allow-methods", self.allow_methods.join(","));
            set("access-control-allow-headers", self.allow_headers.join(","));
            if self.allow_credentials {
                set("access-control-allow-credentials", "true".into());
            }
            if let Some(age) = self.max_age {
                set("access-control-max-age", age.to_string());
            }
            set("vary", "origin".into());
        }
        response
    }

    /// Adds the CORS headers of an allowed origin to an ordinary response.
    pub fn decorate(&self, origin: Option<&http::HeaderValue>, headers: &mut http::HeaderMap) {
        let Some(origin) = origin.filter(|o| o.to_str().is_ok_and(|o| self.allows(o))) else {
            return;
        };
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set("access-control-allow-origin", self.origin_value(origin));
        if self.allow_credentials {
            set("access-control-allow-credentials", "true".into());
        }
        if !self.expose_headers.is_empty() {
            set(
                "access-control-expose-headers",
                self.expose_headers.join(","),
            );
        }
        set("vary", "origin".into());
    }

    /// The request's origin echoed (never `*` when credentials are allowed).
    fn origin_value(&self, origin: &http::HeaderValue) -> String {
        if self.allow_origins.iter().any(|o| o == "*") && !self.allow_credentials {
            "*".into()
        } else {
            origin.to_str().unwrap_or_default().to_owned()
        }
    }
}

pub(crate) fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Matches a path against a template like `/v1/events/{id}`.
pub fn path_matches(template: &str, path: &str) -> bool {
    let mut concrete = path.split('/');
    for segment in template.split('/') {
        match concrete.next() {
            None => return false,
            Some(value) if segment.starts_with('{') && segment.ends_with('}') => {
                if value.is_empty() {
                    return false;
                }
            }
            Some(value) if value == segment => {}
            Some(_) => return false,
        }
    }
    concrete.next().is_none()
}
