//! Logging set-up: `tracing` to stderr as text or JSON, at the configured level (`RUST_LOG`
//! overrides it). CLI commands log only warnings unless asked, so their output stays clean.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

pub fn init(config: &Config, daemon: bool) {
    let default_level = if daemon {
        config.log_level.clone()
    } else {
        "warn".to_string()
    };
    // sqlx's pool logs each dead connection it drops: during a database outage weir's own line
    // ("metadata database unreachable ...") says it once.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{default_level},sqlx_core::pool=warn")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
