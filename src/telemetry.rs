//! Logging set-up: `tracing` to stderr as text or JSON, at the configured level (`RUST_LOG`
//! overrides it). CLI commands log only warnings unless asked, so their output stays clean.
//! Events inside an attempt's span (`runtime::executor::attempt_span`) carry its `dag_id`,
//! `run_id`, `task_id` and `try_number`: the text format prefixes them, JSON puts them in `span`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

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
    let _ = subscriber(config.log_format, filter, std::io::stderr).try_init();
}

/// The subscriber weir logs through, writing to `writer` in `format`; tests give it a buffer.
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().finish()),
    }
}
