//! `weir serve`, `weir scheduler` and `weir webserver`: a [`Daemon`] of each role, stopped by
//! SIGINT and SIGTERM.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{App, CliError, CliResult};
use crate::daemon::{Daemon, DaemonError, Role};

/// Builds the daemon of `role` and runs it until a signal; a fatal failure exits with status 1,
/// an unusable configuration with 2.
pub async fn serve(app: &App, role: Role) -> CliResult {
    // Installed first: a SIGTERM during start-up (while tasks may already run) is a clean stop,
    // not the default action that kills the process.
    let signals = Signals::install();
    let daemon = Daemon::build(app.config.clone(), role, None)
        .await
        .map_err(exit_error)?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        signals.wait(&stop).await;
        stop.cancel();
    });
    daemon.run(cancel).await.map_err(exit_error)?;
    Ok(ExitCode::SUCCESS)
}

/// The error `main` prints, with its exit code: 2 for the configuration, else 1.
fn exit_error(error: DaemonError) -> anyhow::Error {
    match error {
        DaemonError::Config(message) => CliError::Usage(message).into(),
        DaemonError::Start(error) => error,
        DaemonError::Fatal(reason) => anyhow::anyhow!("{reason}"),
    }
}

/// SIGINT and SIGTERM, listened for from the moment they are installed.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Until a signal arrives or `cancel` fires.
    async fn wait(mut self, cancel: &CancellationToken) {
        async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = next(self.interrupt.as_mut()) => {}
            _ = next(self.terminate.as_mut()) => {}
            _ = cancel.cancelled() => {}
        }
    }
}
