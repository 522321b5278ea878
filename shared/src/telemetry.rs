//! Structured JSON logs. Each request runs in a span carrying its request id, so every line a
//! request writes names it. Secrets are never passed to a log macro.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The JSON subscriber, writing to `writer` (stdout in Lambda; a buffer in tests).
pub fn subscriber<W>(writer: W, filter: Targets) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        // Everything reaches the filter below; fmt's own default would stop at INFO.
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_current_span(true)
        // The full list, so lines written inside SDK spans still carry the request id.
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .with_writer(writer)
        .finish()
        .with(filter)
}

/// Installs the JSON subscriber on stdout once, filtered by `RUST_LOG` (default `info`).
/// `RUST_LOG` takes a level and `target=level` pairs (`warn,calsync=debug`); a `Targets` filter,
/// not an `EnvFilter`, because its span and field matchers would link a regex engine into
/// every function for a feature no one uses.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout, filter));
}
