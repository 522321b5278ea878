//! Runtime configuration, read once per container from the environment template.yaml sets.

use std::env;

/// Physical names of the resources a function uses, and its tunables.
#[derive(Clone, Debug)]
pub struct Config {
    pub users_table: String,
    pub connections_table: String,
    pub events_table: String,
    pub audit_table: String,
    pub session_ttl_days: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Builds the configuration from any name → value lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError(format!("{name} is not set")))
        };
        let session_ttl_days = match lookup("SESSION_TTL_DAYS") {
            None => 30,
            Some(v) => v
                .parse()
                .ok()
                .filter(|d| (1..=365).contains(d))
                .ok_or_else(|| ConfigError(format!("SESSION_TTL_DAYS={v} is not 1..=365")))?,
        };
        Ok(Self {
            users_table: required("USERS_TABLE")?,
            connections_table: required("CONNECTIONS_TABLE")?,
            events_table: required("EVENTS_TABLE")?,
            audit_table: required("AUDIT_TABLE")?,
            session_ttl_days,
        })
    }
}
