//! Executors run attempts the scheduler has claimed and report back over a channel. The
//! scheduler only sees the [`Executor`] trait, so remote workers can replace the local pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::attempt::read_output;
use super::process::{ExitReason, ShellAttempt, run_shell};
use crate::domain::ids::TaskId;

/// Identifies one attempt: run, task, try.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    pub run_pk: i64,
    pub task_id: TaskId,
    pub try_number: u32,
}

/// One claimed attempt, ready to run.
#[derive(Debug, Clone)]
pub struct AttemptRequest {
    pub key: AttemptKey,
    pub shell: ShellAttempt,
    pub skip_exit_code: i32,
    pub output_path: PathBuf,
}

/// How an attempt ended, as the scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Success {
        output: Option<String>,
    },
    Skipped,
    Failed {
        exit_code: Option<i32>,
        error: String,
    },
    /// Stopped because weir shut down: tried again after the restart, without using up a retry.
    Interrupted,
}

/// What an executor reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorEvent {
    Started { key: AttemptKey, pid: Option<u32> },
    Finished { key: AttemptKey, result: AttemptResult },
}

pub type ShutdownFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// Something that runs attempts.
pub trait Executor: Send + Sync {
    /// Starts the attempt without waiting for it; events arrive on the executor's channel.
    fn submit(&self, request: AttemptRequest);
    /// Ends every running attempt (kills its process group) and waits until all have reported.
    fn shutdown(&self) -> ShutdownFuture<'_>;
}

/// Runs attempts as child processes of this process, concurrently on the tokio runtime. How many
/// run at once is the scheduler's decision (parallelism, pools), not the executor's.
pub struct LocalExecutor {
    events: mpsc::UnboundedSender<ExecutorEvent>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl LocalExecutor {
    pub fn new(events: mpsc::UnboundedSender<ExecutorEvent>) -> Arc<Self> {
        Arc::new(LocalExecutor {
            events,
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
        })
    }
}

impl Executor for LocalExecutor {
    fn submit(&self, request: AttemptRequest) {
        let events = self.events.clone();
        let cancel = self.cancel.child_token();
        self.tracker.spawn(async move {
            let result = run_attempt(&request, &events, cancel).await;
            let _ = events.send(ExecutorEvent::Finished {
                key: request.key,
                result,
            });
        });
    }

    fn shutdown(&self) -> ShutdownFuture<'_> {
        Box::pin(async move {
            self.cancel.cancel();
            self.tracker.close();
            self.tracker.wait().await;
        })
    }
}

async fn run_attempt(
    request: &AttemptRequest,
    events: &mpsc::UnboundedSender<ExecutorEvent>,
    cancel: CancellationToken,
) -> AttemptResult {
    let (started_tx, started_rx) = oneshot::channel();
    let key = request.key.clone();
    let reporter = events.clone();
    let forward = tokio::spawn(async move {
        let pid = started_rx.await.ok();
        let _ = reporter.send(ExecutorEvent::Started { key, pid });
    });
    let timeout = request.shell.timeout;
    let report = run_shell(request.shell.clone(), Some(started_tx), cancel).await;
    // The Started event must reach the scheduler before Finished.
    let _ = forward.await;
    match report.reason {
        ExitReason::Exited { code: 0 } => {
            let output_path = request.output_path.clone();
            let last_line = report.last_stdout_line;
            let output = tokio::task::spawn_blocking(move || read_output(&output_path, last_line))
                .await
                .ok()
                .flatten();
            AttemptResult::Success { output }
        }
        ExitReason::Exited { code } if code == request.skip_exit_code => AttemptResult::Skipped,
        ExitReason::Exited { code } => AttemptResult::Failed {
            exit_code: Some(code),
            error: format!("exited with code {code}"),
        },
        ExitReason::Signalled { signal } => AttemptResult::Failed {
            exit_code: None,
            error: format!("killed by signal {signal}"),
        },
        ExitReason::TimedOut => AttemptResult::Failed {
            exit_code: None,
            error: format!(
                "timed out after {}: its process group was killed",
                crate::domain::duration::format_duration(timeout.unwrap_or(Duration::ZERO))
            ),
        },
        ExitReason::Cancelled => AttemptResult::Interrupted,
        ExitReason::SpawnFailed { message } => AttemptResult::Failed {
            exit_code: None,
            error: format!("could not start: {message}"),
        },
    }
}
