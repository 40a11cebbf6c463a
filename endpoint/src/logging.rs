//! Logging: `tracing` events to stdout, one line each, no colours.
//!
//! The Jepsen harness greps the endpoint's log for `ERROR` (the seed's `sqlite3-local` workload
//! case-insensitively), so the level name `ERROR` is printed only for `error!` events, which the
//! endpoint emits only for real failures (never for a client's mistake, a kill or a pause), and
//! the messages of a healthy run avoid the word. Targets are module paths (`endpoint::api::reply`,
//! ...) and no module is named so that a target would contain the word either.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The target prefix of the binary's own events (`src/main.rs`).
const BINARY_TARGET: &str = "powersync_endpoint";

/// The endpoint's own events (the library's and the binary's) are logged at `level`; those of
/// its libraries at most at `WARN`.
pub fn init(level: LevelFilter) {
    let filter = Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), level)
        .with_target(BINARY_TARGET, level)
        .with_default(level.min(LevelFilter::WARN));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::io::stdout);
    // Fails only if a subscriber is already set; the first one then stays, which is fine.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}
