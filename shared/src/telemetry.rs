//! Structured JSON logs. Each request runs in a span carrying its request id, so every line a
//! request writes names it. Secrets are never passed to a log macro.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; later calls (tests) are no-ops.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .try_init();
}
