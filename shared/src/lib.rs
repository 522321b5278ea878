//! calsync's common crate: every Lambda function is a thin wrapper over what lives here.
//!
//! - [`model`]: the domain (users, calendars, events, audit entries) and its validation rules.
//! - [`store`]: DynamoDB persistence, keyed for each access pattern (docs/data-model.md).
//! - [`api`]: the HTTP API, routed by method and path, usable without Lambda.
//! - [`lambda`]: the glue each function binary calls.

pub mod api;
pub mod app;
pub mod auth;
pub mod aws;
pub mod config;
pub mod crypto;
pub mod erasure;
pub mod error;
pub mod ical_rule;
pub mod ics;
pub mod ids;

pub mod jobs;
pub mod lambda;
pub mod mail;
pub mod model;
pub mod notify;
pub mod providers;
pub mod queue;
pub mod recurrence;
pub mod schedule;
pub mod series_edit;

pub mod store;
pub mod stream;
pub mod sync;

pub mod telemetry;
pub mod time;
