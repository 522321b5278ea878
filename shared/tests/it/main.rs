//! Integration tests: the API and the store against the AWS emulator (moto server), with the
//! tables provisioned from template.yaml. One binary, one emulator per run.

mod accounts;
mod aws_client;
mod aws_emulator;
mod calendars;
mod changes;
mod connect;
mod emulated;
mod events;
mod fuzz;
mod gateway;
mod http_api;
mod ics_feed;

mod logging;
mod oauth_flow;
mod paging;
mod push;
mod recurrence;
mod recurrence_oracle;
mod recurring_edit;

mod schedule;
mod seed;

/// `make seed`'s seeding, from the example itself.
#[path = "../../examples/seed.rs"]
mod demo_seed;

mod support;
mod sync_caldav;
mod sync_google;

mod sync_jobs;
mod sync_microsoft;

mod template;
mod time_format;
mod webhooks;
