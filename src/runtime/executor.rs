//! Executors run attempts the scheduler has claimed and report back over a channel. The
//! scheduler only sees the [`Executor`] trait, so remote workers can replace the local pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::attempt::read_output;
use super::builtin::{BuiltinAttempt, run_builtin};
use super::masking::mask_secrets;
use super::process::{ExitReason, ShellAttempt, run_shell};
use crate::domain::ids::{DagId, RunId, TaskId};

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
    pub work: AttemptWork,
    /// [`attempt_span`] of this attempt: the executor runs it inside, so everything logged while
    /// it runs names the attempt.
    pub span: tracing::Span,
}

/// The span of one attempt: what is logged while it is dispatched, run or recorded carries its
/// `dag_id`, `run_id`, `task_id` and `try_number`. At the error level, so that it is enabled
/// whenever anything is logged: a warning in a daemon logging only warnings still names its
/// attempt. The ids are formatted once, when the span is created.
pub fn attempt_span(dag_id: &DagId, run_id: &RunId, task_id: &TaskId, try_number: u32) -> tracing::Span {
    tracing::error_span!("attempt", %dag_id, %run_id, %task_id, try_number)
}

/// What an attempt runs: a child process, or one of the task types weir runs itself.
#[derive(Debug, Clone)]
pub enum AttemptWork {
    Shell {
        shell: Box<ShellAttempt>,
        skip_exit_code: i32,
        output_path: PathBuf,
    },
    Builtin(Box<BuiltinAttempt>),
}

/// How an attempt ended, as the scheduler needs it: a domain value, since what an end does to
/// its task instance is decided in `domain::attempt_end`.
pub use crate::domain::attempt_end::AttemptResult;

/// What an executor reports, with when it happened: the scheduler may record an event a few
/// milliseconds later, in a batch, and the recorded times must be the attempt's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorEvent {
    Started {
        key: AttemptKey,
        pid: Option<u32>,
        at: DateTime<Utc>,
    },
    Finished {
        key: AttemptKey,
        result: AttemptResult,
        at: DateTime<Utc>,
    },
}

impl ExecutorEvent {
    /// Whether a scheduling step can decide anything new after this event. An attempt's end frees
    /// its slot and settles its task (downstream tasks, a retry, the run's state follow); a start
    /// only moves the instance from queued to running, holding the same slot, so the scheduler
    /// records it without stepping.
    pub fn ends_attempt(&self) -> bool {
        matches!(self, ExecutorEvent::Finished { .. })
    }
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
        let span = request.span.clone();
        let attempt = async move {
            let result = match &request.work {
                AttemptWork::Shell {
                    shell,
                    skip_exit_code,
                    output_path,
                } => run_shell_attempt(&request.key, shell, *skip_exit_code, output_path, &events, cancel).await,
                AttemptWork::Builtin(builtin) => {
                    let _ = events.send(ExecutorEvent::Started {
                        key: request.key.clone(),
                        pid: None,
                        at: Utc::now(),
                    });
                    run_builtin(builtin, cancel).await
                }
            };
            let _ = events.send(ExecutorEvent::Finished {
                key: request.key,
                result,
                at: Utc::now(),
            });
        };
        self.tracker.spawn(attempt.instrument(span));
    }

    fn shutdown(&self) -> ShutdownFuture<'_> {
        Box::pin(async move {
            self.cancel.cancel();
            self.tracker.close();
            self.tracker.wait().await;
        })
    }
}

/// Runs a shell attempt to its end; public for `weir tasks test`, which runs one without a
/// scheduler.
pub async fn run_shell_attempt(
    key: &AttemptKey,
    shell: &ShellAttempt,
    skip_exit_code: i32,
    output_path: &std::path::Path,
    events: &mpsc::UnboundedSender<ExecutorEvent>,
    cancel: CancellationToken,
) -> AttemptResult {
    let (started_tx, started_rx) = oneshot::channel();
    let key = key.clone();
    let reporter = events.clone();
    let forward = tokio::spawn(
        async move {
            let pid = started_rx.await.ok();
            let _ = reporter.send(ExecutorEvent::Started {
                key,
                pid,
                at: Utc::now(),
            });
        }
        .in_current_span(),
    );
    let timeout = shell.timeout;
    let report = run_shell(shell.clone(), Some(started_tx), cancel).await;
    // The Started event must reach the scheduler before Finished.
    let _ = forward.await;
    match report.reason {
        ExitReason::Exited { code: 0 } => {
            // A read of a small local file (usually absent): cheaper in place than a hop to
            // the blocking pool, like the log writes (see task_log::LogWriter).
            let output =
                read_output(output_path, report.last_stdout_line).map(|output| mask_secrets(&output, &shell.secrets));
            AttemptResult::Success { output }
        }
        ExitReason::Exited { code } if code == skip_exit_code => AttemptResult::Skipped,
        ExitReason::Exited { code } => AttemptResult::Failed {
            exit_code: Some(code),
            error: exit_error(code),
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
        ExitReason::Lost { message } => AttemptResult::Failed {
            exit_code: None,
            error: format!("lost track of the process: {message}"),
        },
    }
}

/// "exited with code 3"; a shell reports a command killed by signal n as 128 + n (the task's
/// command runs in a subshell of its wrapper, see `exit_record`), so such a code is explained.
fn exit_error(code: i32) -> String {
    let signal = code
        .checked_sub(128)
        .filter(|signal| (1..=64).contains(signal))
        .and_then(|signal| nix::sys::signal::Signal::try_from(signal).ok());
    match signal {
        Some(signal) => format!(
            "exited with code {code} (killed by signal {}, {})",
            code - 128,
            signal.as_str()
        ),
        None => format!("exited with code {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shells_code_for_a_killed_command_names_the_signal() {
        assert_eq!(exit_error(3), "exited with code 3");
        assert_eq!(exit_error(137), "exited with code 137 (killed by signal 9, SIGKILL)");
        assert_eq!(exit_error(255), "exited with code 255");
    }
}
