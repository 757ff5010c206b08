//! Whether the owner of attempts and runs (a scheduler, or a `weir dags test` process) is still
//! alive: recovery takes over only what a dead owner left, never what a live one is running.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::state::UnknownVariant;

/// How long an owner on another host may go without a heartbeat before it counts as dead.
/// Owners beat every 10 s, so this is six missed beats: long enough that a busy or briefly
/// disconnected scheduler keeps its tasks, short enough that a dead host's work is taken over
/// within a minute. An owner on the same host is judged by its process instead, at once.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a live owner records its heartbeat (and a daemon looks for dead owners' work).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// What kind of process a scheduler row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    /// `weir serve` or `weir scheduler`: drives every run without an owner.
    Daemon,
    /// `weir dags test`: drives only the run it owns.
    Test,
}

impl SchedulerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::Daemon => "daemon",
            SchedulerKind::Test => "test",
        }
    }
}

impl FromStr for SchedulerKind {
    type Err = UnknownVariant;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "daemon" => Ok(SchedulerKind::Daemon),
            "test" => Ok(SchedulerKind::Test),
            _ => Err(UnknownVariant {
                kind: "scheduler kind",
                value: value.to_string(),
                expected: "daemon, test".to_string(),
            }),
        }
    }
}

/// A registered scheduler, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerRecord {
    pub id: i64,
    pub kind: SchedulerKind,
    pub hostname: String,
    pub pid: u32,
    /// When its process started, in the kernel's clock ticks since boot (`/proc/<pid>/stat`): a
    /// pid reused by another process has another start time.
    pub pid_start: Option<u64>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Set when it stopped cleanly.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// What this host knows of a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// A live (not zombie) process, with its start time when it could be read.
    Running {
        start_time: Option<u64>,
    },
    Gone,
}

/// Whether an owner is alive, and if not, how that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead(Death),
}

/// How an owner is known to be dead; worded for the logs and the attempt's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Death {
    /// No row names it: a run or attempt from before owners were recorded, or a row long gone.
    Unregistered,
    Stopped {
        at: DateTime<Utc>,
    },
    ProcessGone {
        pid: u32,
        hostname: String,
    },
    PidReused {
        pid: u32,
        hostname: String,
    },
    Silent {
        hostname: String,
        pid: u32,
        last_heartbeat: DateTime<Utc>,
    },
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Death::Unregistered => f.write_str("its owner is not registered (it ran before this weir version)"),
            Death::Stopped { at } => write!(f, "its owner stopped at {}", at.to_rfc3339()),
            Death::ProcessGone { pid, hostname } => write!(f, "its owner (pid {pid} on {hostname}) is gone"),
            Death::PidReused { pid, hostname } => {
                write!(
                    f,
                    "its owner (pid {pid} on {hostname}) is gone (the pid now belongs to another process)"
                )
            }
            Death::Silent {
                hostname,
                pid,
                last_heartbeat,
            } => write!(
                f,
                "its owner (pid {pid} on {hostname}) has not recorded a heartbeat since {}",
                last_heartbeat.to_rfc3339()
            ),
        }
    }
}

/// Decides whether `owner` (`None`: no row) is alive, seen from `this_host` at `now`. `process` is
/// what this host knows of the owner's pid; it is only consulted when the owner ran here.
///
/// On this host the process is proof either way: a live process keeps its work even if its
/// heartbeat is late (it may be waiting out a database outage; ending it is its supervisor's
/// call), and a gone one is dead at once. Elsewhere only the heartbeat can tell.
pub fn liveness(
    owner: Option<&SchedulerRecord>,
    this_host: &str,
    process: Option<ProcessState>,
    now: DateTime<Utc>,
) -> Liveness {
    let Some(owner) = owner else {
        return Liveness::Dead(Death::Unregistered);
    };
    if let Some(at) = owner.stopped_at {
        return Liveness::Dead(Death::Stopped { at });
    }
    if owner.hostname == this_host
        && let Some(process) = process
    {
        let hostname = owner.hostname.clone();
        let pid = owner.pid;
        return match process {
            ProcessState::Gone => Liveness::Dead(Death::ProcessGone { pid, hostname }),
            ProcessState::Running {
                start_time: Some(started),
            } if owner.pid_start.is_some_and(|recorded| recorded != started) => {
                Liveness::Dead(Death::PidReused { pid, hostname })
            }
            ProcessState::Running { .. } => Liveness::Alive,
        };
    }
    let silent_for = now.signed_duration_since(owner.heartbeat_at);
    if silent_for.to_std().is_ok_and(|silent| silent > HEARTBEAT_TIMEOUT) {
        return Liveness::Dead(Death::Silent {
            hostname: owner.hostname.clone(),
            pid: owner.pid,
            last_heartbeat: owner.heartbeat_at,
        });
    }
    Liveness::Alive
}

/// The `owner` of the run a `weir dags test` drives: its scheduler row.
pub fn test_run_owner(scheduler_id: i64) -> String {
    format!("test:{scheduler_id}")
}

/// The scheduler row that owns a run, from its `owner`; `None` for an owner from before owners
/// were registered (`test:<pid>:<time>`), which counts as dead.
pub fn run_owner_scheduler(owner: &str) -> Option<i64> {
    owner.strip_prefix("test:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "alpha";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn owner(hostname: &str, heartbeat_at: i64) -> SchedulerRecord {
        SchedulerRecord {
            id: 7,
            kind: SchedulerKind::Daemon,
            hostname: hostname.to_string(),
            pid: 4242,
            pid_start: Some(1000),
            started_at: at(0),
            heartbeat_at: at(heartbeat_at),
            stopped_at: None,
        }
    }

    fn running(start_time: u64) -> Option<ProcessState> {
        Some(ProcessState::Running {
            start_time: Some(start_time),
        })
    }

    #[test]
    fn an_owner_on_another_host_is_alive_until_its_heartbeat_is_a_minute_old() {
        let other = owner("beta", 100);
        assert_eq!(liveness(Some(&other), HOST, None, at(100)), Liveness::Alive);
        assert_eq!(liveness(Some(&other), HOST, None, at(160)), Liveness::Alive);
        assert_eq!(
            liveness(Some(&other), HOST, None, at(161)),
            Liveness::Dead(Death::Silent {
                hostname: "beta".to_string(),
                pid: 4242,
                last_heartbeat: at(100)
            })
        );
    }

    #[test]
    fn a_heartbeat_from_the_future_of_a_skewed_clock_is_alive() {
        assert_eq!(
            liveness(Some(&owner("beta", 500)), HOST, None, at(100)),
            Liveness::Alive
        );
    }

    #[test]
    fn an_owner_on_this_host_whose_process_is_gone_is_dead_at_once() {
        let here = owner(HOST, 100);
        assert_eq!(
            liveness(Some(&here), HOST, Some(ProcessState::Gone), at(101)),
            Liveness::Dead(Death::ProcessGone {
                pid: 4242,
                hostname: HOST.to_string()
            })
        );
    }

    #[test]
    fn a_pid_reused_by_another_process_is_dead() {
        let here = owner(HOST, 100);
        assert_eq!(
            liveness(Some(&here), HOST, running(2000), at(101)),
            Liveness::Dead(Death::PidReused {
                pid: 4242,
                hostname: HOST.to_string()
            })
        );
    }

    #[test]
    fn a_live_process_on_this_host_is_alive_even_with_a_late_heartbeat() {
        let here = owner(HOST, 100);
        assert_eq!(liveness(Some(&here), HOST, running(1000), at(1000)), Liveness::Alive);
        let unknown_start = SchedulerRecord {
            pid_start: None,
            ..owner(HOST, 100)
        };
        assert_eq!(
            liveness(Some(&unknown_start), HOST, running(5), at(1000)),
            Liveness::Alive
        );
        assert_eq!(
            liveness(
                Some(&here),
                HOST,
                Some(ProcessState::Running { start_time: None }),
                at(1000)
            ),
            Liveness::Alive
        );
    }

    #[test]
    fn an_owner_on_this_host_without_a_process_answer_falls_back_to_its_heartbeat() {
        let here = owner(HOST, 100);
        assert_eq!(liveness(Some(&here), HOST, None, at(120)), Liveness::Alive);
        assert!(matches!(
            liveness(Some(&here), HOST, None, at(200)),
            Liveness::Dead(Death::Silent { .. })
        ));
    }

    #[test]
    fn a_stopped_owner_is_dead_whatever_its_process_or_heartbeat_says() {
        let stopped = SchedulerRecord {
            stopped_at: Some(at(150)),
            ..owner(HOST, 150)
        };
        assert_eq!(
            liveness(Some(&stopped), HOST, running(1000), at(151)),
            Liveness::Dead(Death::Stopped { at: at(150) })
        );
    }

    #[test]
    fn an_unregistered_owner_is_dead() {
        assert_eq!(liveness(None, HOST, None, at(0)), Liveness::Dead(Death::Unregistered));
    }

    #[test]
    fn a_test_run_owner_names_its_scheduler_row_and_old_owners_name_none() {
        assert_eq!(test_run_owner(12), "test:12");
        assert_eq!(run_owner_scheduler(&test_run_owner(12)), Some(12));
        assert_eq!(run_owner_scheduler("test:4242:1765000000000000"), None);
        assert_eq!(run_owner_scheduler("someone"), None);
    }

    #[test]
    fn scheduler_kinds_are_stored_by_name() {
        for kind in [SchedulerKind::Daemon, SchedulerKind::Test] {
            assert_eq!(kind.as_str().parse::<SchedulerKind>().unwrap(), kind);
        }
        assert!("worker".parse::<SchedulerKind>().is_err());
    }
}
