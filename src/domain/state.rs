//! The states of task instances and runs, and the kinds of runs, as enums with one spelling each.

use std::fmt;
use std::str::FromStr;

/// A task instance's state (§3.4). `None` is Airflow's "no status": not yet considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    None,
    Scheduled,
    Queued,
    Running,
    Success,
    Failed,
    UpForRetry,
    /// A sensor whose condition did not hold yet: it pokes again at `next_retry_at` and holds no
    /// worker slot meanwhile (§5.5).
    UpForReschedule,
    Skipped,
    UpstreamFailed,
    Removed,
}

/// A run's state (§3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
}

/// How a run came to be (§7 `run_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunType {
    Scheduled,
    Manual,
    Backfill,
    Dataset,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`; expected one of: {expected}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
    pub expected: String,
}

macro_rules! string_enum {
    ($name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: $kind,
                        value: value.to_string(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

string_enum!(TaskState, "task state", {
    None => "none",
    Scheduled => "scheduled",
    Queued => "queued",
    Running => "running",
    Success => "success",
    Failed => "failed",
    UpForRetry => "up_for_retry",
    UpForReschedule => "up_for_reschedule",
    Skipped => "skipped",
    UpstreamFailed => "upstream_failed",
    Removed => "removed",
});

string_enum!(RunState, "run state", {
    Queued => "queued",
    Running => "running",
    Success => "success",
    Failed => "failed",
});

string_enum!(RunType, "run type", {
    Scheduled => "scheduled",
    Manual => "manual",
    Backfill => "backfill",
    Dataset => "dataset",
});

impl TaskState {
    /// Finished for good: nothing will run again unless someone clears it.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success
                | TaskState::Failed
                | TaskState::Skipped
                | TaskState::UpstreamFailed
                | TaskState::Removed
        )
    }

    /// Handed to (or held by) the executor.
    pub fn is_active(self) -> bool {
        matches!(self, TaskState::Queued | TaskState::Running)
    }
}

impl RunState {
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_stored_spelling() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(*state));
        }
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(*state));
        }
        for run_type in RunType::ALL {
            assert_eq!(run_type.as_str().parse::<RunType>(), Ok(*run_type));
        }
        let error = "done".parse::<RunState>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown run state `done`; expected one of: queued, running, success, failed"
        );
    }
}
