//! Logging set-up: `tracing` to stderr as text or JSON, at the configured level (`RUST_LOG`
//! overrides it). CLI commands log only warnings unless asked, so their output stays clean.
//! Colour only on a terminal unless asked (`--color`), and never with `NO_COLOR` set.
//! Events inside an attempt's span (`runtime::executor::attempt_span`) carry its `dag_id`,
//! `run_id`, `task_id` and `try_number`: the text format prefixes them, JSON puts them in `span`.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// When log lines carry colour (ANSI escapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when standard error is a terminal and `NO_COLOR` is unset or empty.
    #[default]
    Auto,
    /// Colour even into a file or a pipe, and despite `NO_COLOR`.
    Always,
    /// No colour.
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether the output is a terminal and the value of `NO_COLOR`
    /// (<https://no-color.org>: set and not empty turns colour off).
    pub fn colors(self, is_terminal: bool, no_color: Option<&OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_terminal && no_color.is_none_or(OsStr::is_empty),
        }
    }
}

pub fn init(config: &Config, daemon: bool, color: ColorChoice) {
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
    let ansi = color.colors(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let _ = subscriber(config.log_format, filter, ansi, std::io::stderr).try_init();
}

/// The subscriber weir logs through, writing to `writer` in `format` (with ANSI colour when
/// `ansi`); tests give it a buffer.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_the_choice_the_terminal_and_no_color() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        // (choice, is a terminal, NO_COLOR, colours)
        let table = [
            (ColorChoice::Auto, true, None, true),
            (ColorChoice::Auto, true, empty, true),
            (ColorChoice::Auto, true, set, false),
            (ColorChoice::Auto, false, None, false),
            (ColorChoice::Always, false, set, true),
            (ColorChoice::Never, true, None, false),
        ];
        for (choice, is_terminal, no_color, expected) in table {
            assert_eq!(
                choice.colors(is_terminal, no_color),
                expected,
                "{choice:?} terminal={is_terminal} NO_COLOR={no_color:?}"
            );
        }
    }
}
