//! What `/proc` tells about processes: a process's state and start time, the members of a
//! process group, and the processes of an orphaned attempt, found by their environment markers
//! and killed after a crash.

use std::collections::BTreeSet;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getpgid, getpgrp};

use super::signal_group;
use crate::domain::liveness::ProcessState;

/// Fields of /proc/<pid>/stat we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProcStat {
    pub(super) state: char,
    pub(super) ppid: i32,
    pub(super) pgrp: i32,
}

impl ProcStat {
    pub(super) fn is_zombie(self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

pub(super) fn read_proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&stat)
}

/// Parses `pid (comm) state ppid pgrp ...`. The command name may contain spaces and
/// parentheses, so the fields are taken after the last `)`.
pub(super) fn parse_proc_stat(stat: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcStat { state, ppid, pgrp })
}

/// What this host knows of `pid`: gone (or a zombie), or running since its start time (clock
/// ticks since boot, field 22 of /proc/<pid>/stat), so a pid reused by another process is told
/// apart from the one recorded. Reads one /proc file.
pub fn process_state(pid: u32) -> ProcessState {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return ProcessState::Gone;
    };
    if parse_proc_stat(&stat).is_none_or(ProcStat::is_zombie) {
        return ProcessState::Gone;
    }
    // After the command name: state is field 3, so starttime (field 22) is the 20th.
    let start_time = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().nth(19))
        .and_then(|ticks| ticks.parse().ok());
    ProcessState::Running { start_time }
}

/// Pids of all processes currently listed in /proc (empty if /proc is unreadable).
pub(super) fn proc_pids() -> Vec<i32> {
    match std::fs::read_dir("/proc") {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(err) => {
            tracing::warn!(%err, "cannot list /proc");
            Vec::new()
        }
    }
}
/// Kills (SIGKILL) every process that carries all of the given environment variables
/// with these values (read from /proc/<pid>/environ), plus the process group of each
/// one found. Returns the pids killed. Used to end orphaned attempts after a crash: the
/// env markers (e.g. WEIR_DAG_ID, WEIR_RUN_ID, WEIR_TASK_ID, WEIR_TRY_NUMBER) identify
/// one attempt, so a reused pid is never hit.
///
/// The returned pids are those of the matching processes that were signalled; other
/// members of their groups are killed too but not listed. Processes that vanish or
/// cannot be read while scanning are skipped; our own pid and process group are never
/// signalled. With no markers nothing is killed (every process would match).
///
/// This reads /proc synchronously: call it at startup or through `spawn_blocking`.
pub fn kill_processes_with_env(markers: &[(&str, &str)]) -> Vec<i32> {
    if markers.is_empty() {
        tracing::warn!("kill_processes_with_env called without markers; killing nothing");
        return Vec::new();
    }
    let wanted: Vec<Vec<u8>> = markers
        .iter()
        .map(|(key, value)| format!("{key}={value}").into_bytes())
        .collect();
    let own_pid = i32::try_from(std::process::id()).expect("Linux pids fit in i32 (pid_max <= 2^22)");
    let own_group = getpgrp();
    let mut killed = Vec::new();
    let mut groups = BTreeSet::new();
    for pid in proc_pids() {
        if pid == own_pid {
            continue;
        }
        // Unreadable (another user's process) or gone: not ours to kill.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let matches = wanted
            .iter()
            .all(|marker| environ.split(|&byte| byte == 0).any(|var| var == marker.as_slice()));
        if !matches {
            continue;
        }
        let target = Pid::from_raw(pid);
        // Looked up before killing, while the process (and so its group) still exists.
        let group = getpgid(Some(target)).ok();
        match kill(target, Signal::SIGKILL) {
            Ok(()) => {
                tracing::info!(pid, ?markers, "killed orphaned attempt process");
                killed.push(pid);
            }
            Err(Errno::ESRCH) => continue,
            Err(err) => {
                tracing::warn!(%err, pid, "could not kill orphaned attempt process");
                continue;
            }
        }
        if let Some(group) = group
            && group != own_group
            && group.as_raw() > 1
        {
            groups.insert(group);
        }
    }
    for group in groups {
        signal_group(group, Signal::SIGKILL);
    }
    killed
}
