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
