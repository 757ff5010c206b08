//! Supervision of shell task attempts: runs `sh -c` in its own process group, streams its output
//! into the attempt's log (through `task_log::LogWriter`, which masks and caps it), enforces
//! timeouts and cancellation, and kills orphans after a crash.

use std::io;
use std::path::{Path, PathBuf};

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod procfs;

pub use self::procfs::{kill_processes_with_env, process_state};
use self::procfs::{proc_pids, read_proc_stat};
use super::exit_record::{EXIT_RECORDING_WRAPPER, WRAPPER_NAME};
use super::masking::Masker;
pub use super::masking::mask_secrets;
use super::task_log::{LogPath, LogWriter};

/// Longest piece of output kept in memory as one line. A longer line (no newline for
/// that long) is written to the log in pieces of at most this size, so a task that
/// prints megabytes without a newline cannot make the scheduler buffer all of it.
/// Also the cap on `last_stdout_line`.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How long output is still read after the process ended (leader exited, or the group
/// was killed). A background process that inherited stdout/stderr and outlives the
/// leader keeps the pipes open forever; Airflow does not kill such processes after a
/// normal exit, and neither do we, but we must not wait for them either. Two seconds
/// is far more than a pipe needs to deliver what was already written.
pub const OUTPUT_DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// How often we look whether a signalled process group has ended during the grace
/// period. Short enough that a well-behaved task is not kept waiting.
const GROUP_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long we wait to reap the leader after SIGKILL. A SIGKILLed process normally
/// goes within milliseconds; only one stuck in uninterruptible I/O can take longer, and
/// then we give up on its exit status rather than block the attempt forever.
const LEADER_REAP_DEADLINE: Duration = Duration::from_secs(5);

/// Lines in flight between the pipe readers and the log writer. Bounded so a slow
/// disk applies back-pressure to the pipes instead of growing memory: at most
/// `LOG_CHANNEL_CAPACITY * MAX_LINE_BYTES` (4 MiB) is queued.
const LOG_CHANNEL_CAPACITY: usize = 64;

/// Read buffer per pipe.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Everything needed to run one attempt of a shell task.
#[derive(Debug, Clone)]
pub struct ShellAttempt {
    /// Run as `sh -c <command>`.
    pub command: String,
    pub cwd: PathBuf,
    /// Added to the inherited environment.
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// SIGTERM → wait this long → SIGKILL.
    pub kill_grace: Duration,
    /// Created (with parent dirs); stdout and stderr lines appended as they arrive.
    pub log_path: LogPath,
    /// Every occurrence in a log line is replaced by `***` (empty strings are ignored).
    pub secrets: Vec<String>,
    /// Once the task's output reaches this many bytes, one line saying the log was
    /// truncated is written and the rest of the output is dropped (the pipes are still
    /// drained so the task does not block). `[weir]` lines do not count.
    pub max_log_bytes: u64,
    /// Where the attempt's exit record goes (see [`super::exit_record`]): with a path, the command
    /// runs under a wrapper shell that writes its status there when it ends, even if weir died
    /// meanwhile, so recovery can tell a finished attempt from a cut one. `None` (`weir tasks
    /// test`, which no recovery follows): `sh -c` runs the command directly.
    pub exit_record_path: Option<PathBuf>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The process exited by itself.
    Exited { code: i32 },
    /// Its exit status could not be collected (someone else reaped it): the process group was
    /// killed to be sure nothing of it runs on, and the log says so.
    Lost { message: String },
    /// Killed by a signal we did not send.
    Signalled { signal: i32 },
    /// We killed it after `timeout`.
    TimedOut,
    /// We killed it because the cancellation token fired (or it fired before start).
    Cancelled,
    /// The process could not be started (or its log file could not be opened).
    SpawnFailed { message: String },
}

/// The outcome of [`run_shell`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub reason: ExitReason,
    pub pid: Option<u32>,
    /// Last non-empty stdout line, masked, at most [`MAX_LINE_BYTES`].
    pub last_stdout_line: Option<String>,
}

/// Runs the attempt to its end. `started` (if given) receives the child's pid (= its
/// process group id) right after spawn, before output is awaited, so the caller can
/// record it.
///
/// If this future is dropped before the process ended, the process group is sent
/// SIGKILL so that no unsupervised task keeps running.
pub async fn run_shell(
    attempt: ShellAttempt,
    started: Option<oneshot::Sender<u32>>,
    cancel: CancellationToken,
) -> AttemptReport {
    // The writer masks; the pipe readers only need the secrets to split over-long lines safely.
    let masker = Arc::new(Masker::new(&attempt.secrets));
    let mut log = match LogWriter::open(&attempt.log_path, &attempt.secrets, attempt.max_log_bytes) {
        Ok(log) => log,
        Err(err) => {
            let message = format!("cannot open log file {}: {err}", attempt.log_path);
            tracing::warn!(reason = %message, "shell attempt not started");
            return not_started(ExitReason::SpawnFailed { message });
        }
    };
    log.note(&format!(
        "running: sh -c {} in {}",
        crate::domain::template::shell_word(&attempt.command).unwrap_or_else(|_| attempt.command.clone()),
        attempt.cwd.display()
    ));

    if cancel.is_cancelled() {
        log.note("cancelled before the command was started");
        return not_started(ExitReason::Cancelled);
    }

    // By its full path, like Python's `subprocess` with `shell=True`: `sh` through `PATH` costs a
    // failed `execve` per `PATH` entry before it (eight on a typical developer's machine) for
    // every attempt.
    let mut command = Command::new("/bin/sh");
    command.arg("-c");
    match &attempt.exit_record_path {
        Some(record) => {
            // A record left by an earlier attempt with this path (a run deleted and created again
            // under the same id) must not speak for this one.
            if let Err(err) = std::fs::remove_file(record)
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(%err, path = %record.display(), "cannot remove an old exit record");
            }
            command
                .arg(EXIT_RECORDING_WRAPPER)
                .arg(WRAPPER_NAME)
                .arg(&attempt.command)
                .arg(record);
        }
        None => {
            command.arg(&attempt.command);
        }
    }
    command
        .current_dir(&attempt.cwd)
        .envs(attempt.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that timeouts and cancellation can signal the whole tree
        // and the group id identifies the attempt's processes.
        .process_group(0);
    let started_at = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let message = spawn_failure_message(&attempt.cwd, &err).await;
            log.note(&format!("failed to start: {message}"));
            return not_started(ExitReason::SpawnFailed { message });
        }
    };
    let pid = child.id().expect("a child that was never waited on still has its pid");
    let pgid = Pid::from_raw(i32::try_from(pid).expect("Linux pids fit in i32 (pid_max <= 2^22)"));
    let mut guard = GroupKillGuard { pgid, armed: true };
    if let Some(started) = started {
        // The caller may have stopped listening; the attempt runs regardless.
        let _ = started.send(pid);
    }
    log.note(&format!(
        "started pid {pid} (process group {pid}) at {}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    ));

    let (log_tx, log_rx) = mpsc::channel(LOG_CHANNEL_CAPACITY);
    // A JoinSet aborts its readers when dropped, so a reader stuck on a pipe that a
    // background process holds open cannot outlive this function.
    let mut readers = JoinSet::new();
    if let Some(stdout) = child.stdout.take() {
        readers.spawn(read_lines(stdout, true, masker.clone(), log_tx.clone()).in_current_span());
    }
    if let Some(stderr) = child.stderr.take() {
        readers.spawn(read_lines(stderr, false, masker.clone(), log_tx.clone()).in_current_span());
    }
    // One writer task receives both streams from a single channel, so lines land in
    // the log in the order they arrived.
    let writer = tokio::spawn(write_log(log_rx, log).in_current_span());

    let timeout = attempt.timeout;
    let timer = async move {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let reason = tokio::select! {
        // Biased so that a process that already exited reports its own status even if
        // the timeout or the cancellation became ready at the same moment.
        biased;
        status = child.wait() => exit_reason(status),
        () = timer => ExitReason::TimedOut,
        () = cancel.cancelled() => ExitReason::Cancelled,
    };
    match &reason {
        ExitReason::TimedOut | ExitReason::Cancelled => {
            let why = match (&reason, timeout) {
                (ExitReason::TimedOut, Some(limit)) => {
                    format!("timed out after {}", human_duration(limit))
                }
                _ => "cancelled".to_owned(),
            };
            terminate_group(&mut child, pgid, attempt.kill_grace, &why, &log_tx).await;
        }
        ExitReason::Lost { .. } => {
            // `wait` failed: we no longer know whether the leader runs, so make sure
            // nothing of the attempt keeps running unsupervised.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        _ => {}
    }
    // The leader has been reaped: its pid may be reused from now on, so the group id
    // must not be signalled any more.
    guard.armed = false;
    let elapsed = started_at.elapsed();

    drop(log_tx);
    let drained = tokio::time::timeout(OUTPUT_DRAIN_DEADLINE, async {
        while readers.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        readers.abort_all();
        while readers.join_next().await.is_some() {}
    }
    let (mut log, last_stdout_line) = match writer.await {
        Ok(done) => done,
        Err(err) => {
            tracing::error!(%err, pid, "log writer task failed; log footer not written");
            return AttemptReport {
                reason,
                pid: Some(pid),
                last_stdout_line: None,
            };
        }
    };
    if !drained {
        log.note(&format!(
            "stopped reading output {} after the process ended: a background process of group {pid} still holds stdout/stderr open",
            human_duration(OUTPUT_DRAIN_DEADLINE)
        ))
        ;
    }
    if log.dropped_bytes() > 0 {
        log.note(&format!(
            "log truncated: {} bytes of output beyond max_log_bytes ({}) were dropped",
            log.dropped_bytes(),
            attempt.max_log_bytes
        ));
    }
    log.note(&footer(&reason, elapsed));
    AttemptReport {
        reason,
        pid: Some(pid),
        last_stdout_line,
    }
}

fn not_started(reason: ExitReason) -> AttemptReport {
    AttemptReport {
        reason,
        pid: None,
        last_stdout_line: None,
    }
}

fn exit_reason(status: io::Result<ExitStatus>) -> ExitReason {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExitReason::Exited { code },
            (None, Some(signal)) => ExitReason::Signalled { signal },
            // Neither code nor signal only happens for stopped/continued statuses,
            // which `wait` does not report; treat it like a lost status.
            (None, None) => ExitReason::Lost {
                message: format!("wait reported neither an exit code nor a signal ({status:?})"),
            },
        },
        Err(err) => {
            tracing::error!(%err, "waiting for a shell attempt failed");
            ExitReason::Lost {
                message: format!("waiting for it failed: {err}"),
            }
        }
    }
}

fn footer(reason: &ExitReason, elapsed: Duration) -> String {
    let elapsed = human_duration(elapsed);
    match reason {
        ExitReason::Exited { code } => format!("exited with code {code} after {elapsed}"),
        ExitReason::Signalled { signal } => {
            let name = Signal::try_from(*signal).map_or("unknown signal", Signal::as_str);
            format!("killed by signal {signal} ({name}) after {elapsed}")
        }
        ExitReason::TimedOut => format!("timed out: attempt ended after {elapsed}"),
        ExitReason::Cancelled => format!("cancelled: attempt ended after {elapsed}"),
        ExitReason::SpawnFailed { message } => format!("failed to start: {message}"),
        ExitReason::Lost { message } => format!("lost track of the process after {elapsed}: {message}"),
    }
}

/// Explains a spawn error. A missing working directory makes spawn fail with the same
/// "No such file or directory" as a missing `sh`, so look at the directory to say which.
async fn spawn_failure_message(cwd: &Path, err: &io::Error) -> String {
    match tokio::fs::metadata(cwd).await {
        Err(cwd_err) => {
            format!("working directory {} is not accessible: {cwd_err}", cwd.display())
        }
        Ok(meta) if !meta.is_dir() => {
            format!("working directory {} is not a directory", cwd.display())
        }
        Ok(_) => format!("could not spawn sh: {err}"),
    }
}

/// SIGTERM to the group, up to `grace` for it to end, then SIGKILL; finally reaps the
/// leader. Writes what it did to the log through `notes`.
async fn terminate_group(child: &mut Child, pgid: Pid, grace: Duration, why: &str, notes: &mpsc::Sender<LogItem>) {
    signal_group(pgid, Signal::SIGTERM);
    note(notes, format!("{why}: sent SIGTERM to process group {pgid}")).await;
    let deadline = Instant::now() + grace;
    loop {
        if !group_has_live_members(pgid).await {
            note(notes, format!("process group {pgid} ended within the grace period")).await;
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            signal_group(pgid, Signal::SIGKILL);
            note(
                notes,
                format!(
                    "process group {pgid} still running after the {} grace period: sent SIGKILL",
                    human_duration(grace)
                ),
            )
            .await;
            break;
        }
        tokio::time::sleep(GROUP_POLL_INTERVAL.min(deadline - now)).await;
    }
    // Once more SIGKILL to the whole group, to catch a grandchild that ignored SIGTERM
    // and was forked after we looked. This is safe only while the leader is not reaped
    // yet: its zombie keeps the group id from being reused by an unrelated process.
    signal_group(pgid, Signal::SIGKILL);
    match tokio::time::timeout(LEADER_REAP_DEADLINE, child.wait()).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::warn!(%err, %pgid, "could not reap a killed shell attempt"),
        Err(_) => {
            tracing::warn!(%pgid, "killed shell attempt did not exit; leaving it to be reaped later");
            note(notes, format!("process group {pgid} did not exit after SIGKILL")).await;
        }
    }
}

fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        // Already gone: nothing left to signal.
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => tracing::warn!(%err, %pgid, ?signal, "could not signal process group"),
    }
}

async fn note(notes: &mpsc::Sender<LogItem>, text: String) {
    // The writer only stops after every sender is gone, so this cannot fail while we
    // hold `notes`; if it ever did, losing a log line is all that happens.
    let _ = notes.send(LogItem::Note(text)).await;
}

/// Whether any process of the group is still running.
///
/// `killpg(pgid, 0)` alone is not enough: it also succeeds for zombies, and orphaned
/// grandchildren stay zombies for good when PID 1 does not reap (containers without
/// an init). So when it succeeds, /proc is consulted to ignore zombies.
async fn group_has_live_members(pgid: Pid) -> bool {
    match killpg(pgid, None) {
        Err(Errno::ESRCH) => return false,
        // EPERM: a member exists that we may not signal (it changed its uid).
        Err(_) => return true,
        Ok(()) => {}
    }
    let pgid = pgid.as_raw();
    // Reading /proc is blocking file I/O.
    tokio::task::spawn_blocking(move || {
        proc_pids()
            .into_iter()
            .any(|pid| read_proc_stat(pid).is_some_and(|stat| stat.pgrp == pgid && !stat.is_zombie()))
    })
    .await
    // If the scan could not run, assume the worst: the caller then sends SIGKILL.
    .unwrap_or(true)
}

/// Sends SIGKILL to the process group if `run_shell` is dropped while the process is
/// still supervised, so an abandoned attempt does not keep running.
struct GroupKillGuard {
    pgid: Pid,
    armed: bool,
}

impl Drop for GroupKillGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// What the pipe readers and the supervisor send to the log writer.
#[derive(Debug)]
enum LogItem {
    /// A line (or a piece of an over-long one) of task output, as the task wrote it; the
    /// writer masks it.
    Output { line: String, stdout: bool },
    /// A `[weir]` line, written in sequence with the output.
    Note(String),
}

/// Reads one pipe line by line (pieces of at most [`MAX_LINE_BYTES`], never ending inside a
/// secret or a character) until EOF and sends the lines to the log writer.
async fn read_lines<R: AsyncRead + Unpin>(pipe: R, stdout: bool, masker: Arc<Masker>, log: mpsc::Sender<LogItem>) {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, pipe);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let available = match reader.fill_buf().await {
            Ok(available) => available,
            Err(err) => {
                tracing::warn!(%err, stdout, "reading task output failed");
                break;
            }
        };
        if available.is_empty() {
            break; // EOF: every writer of the pipe has closed it.
        }
        // `line` is always shorter than MAX_LINE_BYTES here (it is split below when it
        // gets full), so there is room for at least one byte.
        let room = MAX_LINE_BYTES - line.len();
        let window = &available[..available.len().min(room)];
        let (consumed, complete) = match window.iter().position(|&byte| byte == b'\n') {
            Some(newline) => {
                line.extend_from_slice(&window[..newline]);
                (newline + 1, true)
            }
            None => {
                line.extend_from_slice(window);
                (window.len(), false)
            }
        };
        reader.consume(consumed);
        if complete {
            if !send_line(&log, &line, stdout).await {
                return;
            }
            line.clear();
        } else if line.len() >= MAX_LINE_BYTES {
            // Emit what we have, but not a piece that ends inside a secret or a UTF-8
            // character; that tail starts the next piece.
            let cut = masker.safe_split_point(&line);
            if !send_line(&log, &line[..cut], stdout).await {
                return;
            }
            line.drain(..cut);
        }
    }
    if !line.is_empty() {
        // Output that did not end with a newline.
        send_line(&log, &line, stdout).await;
    }
}

/// Returns false if the log writer is gone.
async fn send_line(log: &mpsc::Sender<LogItem>, raw: &[u8], stdout: bool) -> bool {
    // Treat CRLF like LF so Windows-style output does not end every line with `\r`.
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    // Tasks may print anything; invalid UTF-8 becomes U+FFFD rather than an error.
    let line = String::from_utf8_lossy(raw).into_owned();
    log.send(LogItem::Output { line, stdout }).await.is_ok()
}

/// Writes everything received to the log until all senders are gone; returns the
/// writer (for the footer) and the last non-empty stdout line.
async fn write_log(mut items: mpsc::Receiver<LogItem>, mut log: LogWriter) -> (LogWriter, Option<String>) {
    let mut last_stdout_line = None;
    while let Some(item) = items.recv().await {
        match item {
            LogItem::Output { line, stdout } => {
                let masked = log.output_line(&line);
                if stdout && !masked.is_empty() {
                    last_stdout_line = Some(masked);
                }
            }
            LogItem::Note(text) => log.note(&text),
        }
        // Flush whenever we caught up, so the log can be followed live without a
        // syscall per line under heavy output.
        if items.is_empty() {
            log.flush();
        }
    }
    log.flush();
    let last_stdout_line = last_stdout_line.map(|mut line: String| {
        // Masking can make a piece longer than it was read (a short secret becomes
        // `***`), so cap again.
        truncate_at_char_boundary(&mut line, MAX_LINE_BYTES);
        line
    });
    (log, last_stdout_line)
}

fn truncate_at_char_boundary(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// `5s` for whole seconds, `1.23s` otherwise.
fn human_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.2}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::procfs::{ProcStat, parse_proc_stat};
    use super::*;
    use crate::domain::liveness::ProcessState;
    use nix::sys::wait::{WaitPidFlag, waitpid};
    use std::sync::Once;

    /// Upper bound for conditions that should become true quickly.
    const PATIENCE: Duration = Duration::from_secs(15);

    fn test_log_path(logs_dir: &Path) -> LogPath {
        use crate::domain::ids::{DagId, RunId, TaskId};
        let id = |text: &str| text.to_owned();
        LogPath::new(
            logs_dir,
            &DagId::parse(id("dag")).expect("an id"),
            &RunId::parse(id("nested")).expect("an id"),
            &TaskId::parse(id("task")).expect("an id"),
            1,
        )
    }

    fn attempt(dir: &Path, command: &str) -> ShellAttempt {
        ShellAttempt {
            command: command.to_owned(),
            cwd: dir.to_owned(),
            env: Vec::new(),
            timeout: None,
            kill_grace: Duration::from_secs(2),
            log_path: test_log_path(&dir.join("logs")),
            secrets: Vec::new(),
            max_log_bytes: 1 << 20,
            exit_record_path: None,
        }
    }

    async fn run(attempt: ShellAttempt) -> (AttemptReport, String) {
        let log_path = attempt.log_path.file();
        let report = tokio::time::timeout(PATIENCE, run_shell(attempt, None, CancellationToken::new()))
            .await
            .expect("run_shell should finish");
        let log = tokio::fs::read_to_string(&log_path).await.expect("log file exists");
        (report, log)
    }

    /// Runs `attempt` in a task and returns its handle and the pid sent on `started`.
    async fn start(attempt: ShellAttempt, cancel: CancellationToken) -> (tokio::task::JoinHandle<AttemptReport>, i32) {
        let (started_tx, started_rx) = oneshot::channel();
        let handle = tokio::spawn(run_shell(attempt, Some(started_tx), cancel));
        let pid = started_rx.await.expect("pid is sent after spawn");
        (handle, i32::try_from(pid).expect("pid fits"))
    }

    async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_contains(path: &Path, text: &str) -> bool {
        std::fs::read_to_string(path).is_ok_and(|log| log.contains(text))
    }

    /// Makes this test process the reaper of orphaned grandchildren. Our PID 1 may not
    /// reap (as in this sandbox), and a zombie keeps `killpg(pgid, 0)` succeeding, so
    /// without this "the group is gone" could never be observed.
    fn become_subreaper() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            nix::sys::prctl::set_child_subreaper(true).expect("can become a child subreaper");
        });
    }

    /// Reaps zombies re-parented to us. Only non-leaders: group leaders are the
    /// children that tokio or the tests themselves wait for.
    fn reap_orphans() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        for pid in proc_pids() {
            if let Some(stat) = read_proc_stat(pid)
                && stat.ppid == me
                && stat.pgrp != pid
                && stat.is_zombie()
            {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            }
        }
    }

    fn group_is_gone(pgid: i32) -> bool {
        reap_orphans();
        killpg(Pid::from_raw(pgid), None) == Err(Errno::ESRCH)
    }

    fn non_weir_lines(log: &str) -> Vec<&str> {
        log.lines().filter(|line| !line.starts_with("[weir] ")).collect()
    }

    #[tokio::test]
    async fn exit_codes_zero_and_three_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (report, log) = run(attempt(dir.path(), "exit 0")).await;
        assert_eq!(report.reason, ExitReason::Exited { code: 0 });
        assert!(report.pid.is_some());
        assert!(log.contains("[weir] exited with code 0 after "), "{log}");

        let (report, log) = run(attempt(dir.path(), "exit 3")).await;
        assert_eq!(report.reason, ExitReason::Exited { code: 3 });
        assert!(log.contains("[weir] exited with code 3 after "), "{log}");
    }

    #[tokio::test]
    async fn a_signal_we_did_not_send_is_reported_as_signalled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (report, log) = run(attempt(dir.path(), "kill -KILL $$")).await;
        assert_eq!(report.reason, ExitReason::Signalled { signal: 9 });
        assert!(log.contains("killed by signal 9 (SIGKILL)"), "{log}");
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_logged_between_header_and_footer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (report, log) = run(attempt(dir.path(), "echo to-out; echo to-err >&2; printf 'no newline'")).await;
        assert_eq!(report.reason, ExitReason::Exited { code: 0 });
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some(
                format!(
                    "[weir] running: sh -c \"echo to-out; echo to-err >&2; printf 'no newline'\" in {}",
                    dir.path().display()
                )
                .as_str()
            )
        );
        assert!(lines.contains(&"to-out"), "{log}");
        assert!(lines.contains(&"to-err"), "{log}");
        assert!(lines.contains(&"no newline"), "{log}");
        let last = lines.last().expect("log has lines");
        assert!(last.starts_with("[weir] exited with code 0 after "), "{log}");
        assert_eq!(report.last_stdout_line.as_deref(), Some("no newline"));
    }

    #[tokio::test]
    async fn secrets_are_masked_in_the_log_and_the_last_stdout_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut job = attempt(
            dir.path(),
            "echo 'token is hunter2'; echo 'err hunter2!' >&2; echo 'last hunter2'; echo",
        );
        job.secrets = vec!["hunter2".to_owned(), String::new()];
        let (report, log) = run(job).await;
        assert!(!log.contains("hunter2"), "{log}");
        assert!(log.contains("token is ***"), "{log}");
        assert!(log.contains("err ***!"), "{log}");
        // The trailing empty line does not replace the last non-empty one.
        assert_eq!(report.last_stdout_line.as_deref(), Some("last ***"));
    }

    #[tokio::test]
    async fn env_and_cwd_are_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).expect("create work dir");
        let work = work.canonicalize().expect("canonical path");
        let mut job = attempt(&work, "pwd; echo \"$FOO\"");
        job.env = vec![("FOO".to_owned(), "bar baz".to_owned())];
        let (report, log) = run(job).await;
        assert_eq!(report.reason, ExitReason::Exited { code: 0 });
        assert_eq!(
            non_weir_lines(&log),
            vec![work.to_str().expect("utf-8 path"), "bar baz"]
        );
        assert_eq!(report.last_stdout_line.as_deref(), Some("bar baz"));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_tree() {
        become_subreaper();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut job = attempt(dir.path(), "sleep 300 & sleep 300");
        job.timeout = Some(Duration::from_millis(300));
        job.kill_grace = Duration::from_secs(10);
        let log_path = job.log_path.file();
        let begun = Instant::now();
        let (handle, pgid) = start(job, CancellationToken::new()).await;
        let report = tokio::time::timeout(PATIENCE, handle)
            .await
            .expect("run_shell finishes")
            .expect("task ok");
        assert_eq!(report.reason, ExitReason::TimedOut);
        // SIGTERM was enough, so the grace period was not sat out.
        assert!(begun.elapsed() < Duration::from_secs(10));
        eventually("the process group is gone", || group_is_gone(pgid)).await;
        let log = std::fs::read_to_string(&log_path).expect("log");
        assert!(
            log.contains(&format!(
                "[weir] timed out after 0.30s: sent SIGTERM to process group {pgid}"
            )),
            "{log}"
        );
        assert!(log.contains("ended within the grace period"), "{log}");
        assert!(log.contains("[weir] timed out: attempt ended after "), "{log}");
    }

    #[tokio::test]
    async fn a_child_ignoring_sigterm_is_sigkilled_after_the_grace_period() {
        become_subreaper();
        let dir = tempfile::tempdir().expect("tempdir");
        // Cancelled only once the trap is in place, so SIGTERM really is ignored.
        let mut job = attempt(dir.path(), "trap '' TERM; echo armed; sleep 300 & sleep 300");
        let grace = Duration::from_millis(500);
        job.kill_grace = grace;
        let log_path = job.log_path.file();
        let cancel = CancellationToken::new();
        let (handle, pgid) = start(job, cancel.clone()).await;
        // The whole line: the `[weir] running: ...` line holds the command's words too.
        eventually("the trap is armed", || log_contains(&log_path, "\narmed\n")).await;
        cancel.cancel();
        let report = tokio::time::timeout(PATIENCE, handle)
            .await
            .expect("run_shell finishes")
            .expect("task ok");
        assert_eq!(report.reason, ExitReason::Cancelled);
        eventually("the process group is gone", || group_is_gone(pgid)).await;
        // What happened, in order: SIGTERM, the group still alive when the grace period ran
        // out, then SIGKILL; never an end within the grace period.
        let log = std::fs::read_to_string(&log_path).expect("log");
        let sigterm = log
            .find(&format!("[weir] cancelled: sent SIGTERM to process group {pgid}"))
            .unwrap_or_else(|| panic!("SIGTERM is logged: {log}"));
        let sigkill = log
            .find(&format!(
                "[weir] process group {pgid} still running after the 0.50s grace period: sent SIGKILL"
            ))
            .unwrap_or_else(|| panic!("SIGKILL after the grace period is logged: {log}"));
        assert!(sigterm < sigkill, "SIGTERM comes first: {log}");
        assert!(!log.contains("ended within the grace period"), "{log}");
    }

    #[tokio::test]
    async fn cancellation_kills_the_tree_and_reports_cancelled() {
        become_subreaper();
        let dir = tempfile::tempdir().expect("tempdir");
        let command = "echo ready; sleep 300 & sleep 300";
        // Under the exit-recording wrapper too, which then leaves no record.
        for job in [attempt(dir.path(), command), recorded(dir.path(), command)] {
            let (log_path, record) = (job.log_path.file(), job.exit_record_path.clone());
            let _ = std::fs::remove_file(&log_path);
            let cancel = CancellationToken::new();
            let (handle, pgid) = start(job, cancel.clone()).await;
            eventually("the command runs", || log_contains(&log_path, "\nready\n")).await;
            cancel.cancel();
            let report = tokio::time::timeout(PATIENCE, handle)
                .await
                .expect("run_shell finishes")
                .expect("task ok");
            assert_eq!(report.reason, ExitReason::Cancelled);
            assert_eq!(report.pid, Some(u32::try_from(pgid).expect("pid fits")));
            eventually("the process group is gone", || group_is_gone(pgid)).await;
            let log = std::fs::read_to_string(&log_path).expect("log");
            assert!(log.contains("[weir] cancelled: attempt ended after "), "{log}");
            assert!(
                !record.is_some_and(|record| record.exists()),
                "a record for a cancelled attempt"
            );
        }
    }

    #[tokio::test]
    async fn a_token_cancelled_before_start_runs_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        let job = attempt(dir.path(), &format!("touch '{}'", marker.display()));
        let log_path = job.log_path.file();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let report = run_shell(job, None, cancel).await;
        assert_eq!(report.reason, ExitReason::Cancelled);
        assert_eq!(report.pid, None);
        assert!(!marker.exists());
        assert!(log_contains(
            &log_path,
            "[weir] cancelled before the command was started"
        ));
    }

    #[tokio::test]
    async fn a_missing_cwd_is_a_spawn_failure_with_a_clear_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("does-not-exist");
        let mut job = attempt(dir.path(), "true");
        job.cwd = missing.clone();
        let (report, log) = run(job).await;
        let ExitReason::SpawnFailed { message } = &report.reason else {
            panic!("expected SpawnFailed, got {:?}", report.reason);
        };
        assert!(
            message.starts_with(&format!("working directory {} is not accessible", missing.display())),
            "{message}"
        );
        assert_eq!(report.pid, None);
        assert!(log.contains(&format!("[weir] failed to start: {message}")), "{log}");
    }

    #[tokio::test]
    async fn an_unwritable_log_path_is_a_spawn_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").expect("write file");
        let mut job = attempt(dir.path(), "true");
        job.log_path = test_log_path(&file);
        let report = run_shell(job, None, CancellationToken::new()).await;
        assert!(
            matches!(&report.reason, ExitReason::SpawnFailed { message } if message.starts_with("cannot open log file")),
            "{report:?}"
        );
    }

    #[tokio::test]
    async fn a_background_grandchild_holding_stdout_does_not_hang_run_shell() {
        become_subreaper();
        let dir = tempfile::tempdir().expect("tempdir");
        let (started_tx, started_rx) = oneshot::channel();
        let job = attempt(dir.path(), "sleep 300 & echo done");
        let log_path = job.log_path.file();
        let begun = Instant::now();
        let report = tokio::time::timeout(PATIENCE, run_shell(job, Some(started_tx), CancellationToken::new()))
            .await
            .expect("run_shell must not wait for the background sleep");
        let pgid = i32::try_from(started_rx.await.expect("pid sent")).expect("pid fits");
        assert!(begun.elapsed() < OUTPUT_DRAIN_DEADLINE + Duration::from_secs(5));
        assert_eq!(report.reason, ExitReason::Exited { code: 0 });
        assert_eq!(report.last_stdout_line.as_deref(), Some("done"));
        let log = std::fs::read_to_string(&log_path).expect("log");
        assert!(log.contains("still holds stdout/stderr open"), "{log}");
        // Like Airflow, a normal exit leaves background processes alone: clean up.
        assert!(!group_is_gone(pgid), "the background sleep should still run");
        killpg(Pid::from_raw(pgid), Signal::SIGKILL).expect("kill leftover sleep");
        eventually("the leftover sleep is gone", || group_is_gone(pgid)).await;
    }

    #[tokio::test]
    async fn output_beyond_max_log_bytes_is_dropped_after_one_truncation_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut job = attempt(dir.path(), "seq 1 20000");
        job.max_log_bytes = 1000;
        let (report, log) = run(job).await;
        assert_eq!(report.reason, ExitReason::Exited { code: 0 });
        // The pipe was drained to the end even though the log stopped early.
        assert_eq!(report.last_stdout_line.as_deref(), Some("20000"));
        let output: usize = non_weir_lines(&log).iter().map(|line| line.len() + 1).sum();
        assert!(output <= 1000, "{output} bytes of output logged");
        assert_eq!(log.matches("further output is dropped").count(), 1, "{log}");
        assert!(
            log.contains("bytes of output beyond max_log_bytes (1000) were dropped"),
            "{log}"
        );
        assert!(
            log.lines()
                .last()
                .is_some_and(|line| line.starts_with("[weir] exited with code 0"))
        );
    }

    #[tokio::test]
    async fn a_huge_line_is_split_without_leaking_a_secret_across_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 200 KiB without a newline, with a secret straddling the first 64 KiB boundary.
        let command = format!(
            "head -c {} /dev/zero | tr '\\0' a; printf 'SECRET123'; head -c 140000 /dev/zero | tr '\\0' b; echo; echo after",
            MAX_LINE_BYTES - 4
        );
        let mut job = attempt(dir.path(), &command);
        job.secrets = vec!["SECRET123".to_owned()];
        let (report, log) = run(job).await;
        assert_eq!(report.reason, ExitReason::Exited { code: 0 });
        let output = non_weir_lines(&log);
        assert!(output.len() >= 4, "expected the line in pieces: {} lines", output.len());
        assert!(output.iter().all(|line| line.len() <= MAX_LINE_BYTES));
        let joined = output.concat();
        assert!(
            !joined.contains("SEC") && !joined.contains("123"),
            "secret fragment leaked"
        );
        assert!(joined.contains("aaaa***bbbb"));
        assert_eq!(output.last().copied(), Some("after"));
    }

    fn recorded(dir: &Path, command: &str) -> ShellAttempt {
        ShellAttempt {
            exit_record_path: Some(dir.join("logs").join("nested").join("attempt.exit")),
            ..attempt(dir, command)
        }
    }

    #[tokio::test]
    async fn with_an_exit_record_the_wrapper_records_the_status_and_changes_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = recorded(dir.path(), "echo \"$0\" \"$#\" out; echo err >&2; exit 3");
        let record = job.exit_record_path.clone().expect("a record path");
        std::fs::create_dir_all(record.parent().expect("a folder")).expect("create folder");
        std::fs::write(&record, "0\n").expect("an old record");
        let (report, log) = run(job).await;
        assert_eq!(report.reason, ExitReason::Exited { code: 3 });
        assert_eq!(non_weir_lines(&log), vec!["/bin/sh 0 out", "err"]);
        assert_eq!(report.last_stdout_line.as_deref(), Some("/bin/sh 0 out"));
        assert!(log.contains("[weir] exited with code 3 after "), "{log}");
        assert_eq!(std::fs::read_to_string(&record).expect("a record"), "3\n");

        // `$$` is still the group leader, as under `sh -c`: the wrapper itself, which then
        // records nothing (the supervisor saw the signal).
        let (report, _) = run(recorded(dir.path(), "kill -KILL $$")).await;
        assert_eq!(report.reason, ExitReason::Signalled { signal: 9 });
        assert!(!record.exists(), "a record after the wrapper was killed");
    }

    #[test]
    fn kill_processes_with_env_kills_the_marked_attempt_and_its_group_only() {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        become_subreaper();
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let marker = format!("weir-test-{}-{nanos}", std::process::id());
        // The grandchild drops the marker: it must still die as a member of the group.
        let mut target = std::process::Command::new("sh")
            .args(["-c", "env -u WEIR_TEST_MARKER sleep 300 & wait"])
            .env("WEIR_TEST_MARKER", &marker)
            .env("WEIR_TEST_TRY", "1")
            .process_group(0)
            .spawn()
            .expect("spawn target");
        let mut other_try = std::process::Command::new("sleep")
            .arg("300")
            .env("WEIR_TEST_MARKER", &marker)
            .env("WEIR_TEST_TRY", "2")
            .process_group(0)
            .spawn()
            .expect("spawn bystander");
        let target_pid = i32::try_from(target.id()).expect("pid fits");
        // Wait until the grandchild has exec'd without the marker; before that its
        // environment is still the shell's copy, which carries the marker.
        let deadline = Instant::now() + PATIENCE;
        while !proc_pids().into_iter().any(|pid| {
            pid != target_pid
                && read_proc_stat(pid).is_some_and(|stat| stat.pgrp == target_pid)
                && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm == "sleep\n")
        }) {
            assert!(Instant::now() < deadline, "the grandchild never started");
            std::thread::sleep(Duration::from_millis(20));
        }

        let killed = kill_processes_with_env(&[("WEIR_TEST_MARKER", &marker), ("WEIR_TEST_TRY", "1")]);

        assert_eq!(killed, vec![target_pid]);
        let status = target.wait().expect("wait for target");
        assert_eq!(status.signal(), Some(9));
        let deadline = Instant::now() + PATIENCE;
        while !group_is_gone(target_pid) {
            assert!(Instant::now() < deadline, "the target's group survived");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            other_try.try_wait().expect("try_wait").is_none(),
            "the other try was killed"
        );
        other_try.kill().expect("kill bystander");
        other_try.wait().expect("reap bystander");
    }

    #[test]
    fn kill_processes_with_env_without_markers_kills_nothing() {
        assert!(kill_processes_with_env(&[]).is_empty());
    }

    #[test]
    fn proc_stat_is_parsed_even_with_parentheses_in_the_name() {
        let stat = "42 (weird) name)) S 7 42 42 0 -1";
        assert_eq!(
            parse_proc_stat(stat),
            Some(ProcStat {
                state: 'S',
                ppid: 7,
                pgrp: 42
            })
        );
    }

    #[test]
    fn this_process_is_running_since_a_fixed_start_and_a_reaped_child_is_gone() {
        let me = std::process::id();
        let first = process_state(me);
        assert!(
            matches!(first, ProcessState::Running { start_time: Some(_) }),
            "{first:?}"
        );
        assert_eq!(process_state(me), first, "the start time does not move");
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("reap true");
        assert_eq!(process_state(pid), ProcessState::Gone);
    }

    #[test]
    fn a_status_that_cannot_be_collected_is_lost_not_an_exit_code() {
        let reason = exit_reason(Err(io::Error::from_raw_os_error(nix::libc::ECHILD)));
        let ExitReason::Lost { message } = &reason else {
            panic!("expected Lost, got {reason:?}");
        };
        assert!(message.starts_with("waiting for it failed: "), "{message}");
        assert!(
            footer(&reason, Duration::from_secs(2))
                .starts_with("lost track of the process after 2s: waiting for it failed"),
            "{}",
            footer(&reason, Duration::from_secs(2))
        );
    }

    #[test]
    fn durations_are_logged_briefly() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
        assert_eq!(human_duration(Duration::from_millis(1234)), "1.23s");
    }
}
