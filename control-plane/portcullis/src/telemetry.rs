//! Logging set-up: `tracing` to stderr, as text or JSON, filtered by `--log`.

use crate::cli::LogFormat;
use crate::config::CommonSettings;

/// Installs the global subscriber. Call once, first thing.
pub fn init(settings: &CommonSettings) {
    // Validated in `CommonSettings::from_args`; fall back to `info` rather than panic anyway.
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
