//! Trigger rules (§3.4, Airflow's meanings): given the states of a task's direct upstream tasks,
//! decide whether it can run now, must wait, or can never run (skipped or upstream_failed).

use std::fmt;
use std::str::FromStr;

use super::state::{TaskState, UnknownVariant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllFailed,
    AllDone,
    AllSkipped,
    OneSuccess,
    OneFailed,
    OneDone,
    NoneFailed,
    NoneFailedMinOneSuccess,
    NoneSkipped,
    Always,
}

const NAMES: &[(TriggerRule, &str)] = &[
    (TriggerRule::AllSuccess, "all_success"),
    (TriggerRule::AllFailed, "all_failed"),
    (TriggerRule::AllDone, "all_done"),
    (TriggerRule::AllSkipped, "all_skipped"),
    (TriggerRule::OneSuccess, "one_success"),
    (TriggerRule::OneFailed, "one_failed"),
    (TriggerRule::OneDone, "one_done"),
    (TriggerRule::NoneFailed, "none_failed"),
    (TriggerRule::NoneFailedMinOneSuccess, "none_failed_min_one_success"),
    (TriggerRule::NoneSkipped, "none_skipped"),
    (TriggerRule::Always, "always"),
];

impl TriggerRule {
    /// Every rule's name as DAG files write it.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(_, name)| *name)
    }

    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(rule, _)| *rule == self)
            .map(|(_, name)| *name)
            .expect("every trigger rule has a name in NAMES")
    }
}

impl FromStr for TriggerRule {
    type Err = UnknownVariant;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        NAMES
            .iter()
            .find(|(_, name)| *name == value)
            .map(|(rule, _)| *rule)
            .ok_or_else(|| UnknownVariant {
                kind: "trigger rule",
                value: value.to_string(),
                expected: NAMES.iter().map(|(_, name)| *name).collect::<Vec<_>>().join(", "),
            })
    }
}

impl fmt::Display for TriggerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the upstream states allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The rule is met: the task can be scheduled.
    Ready,
    /// Not decided yet: some upstream task has not finished.
    Wait,
    /// The rule can no longer be met because of a skip upstream.
    Skip,
    /// The rule can no longer be met because of a failure upstream.
    UpstreamFailed,
}

/// Counts of direct upstream tasks by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    pub total: usize,
    pub success: usize,
    pub skipped: usize,
    /// `failed` and `upstream_failed` together: both mean "this branch broke".
    pub failed: usize,
    /// Finished in any way (success, skipped, failed, upstream_failed, removed).
    pub done: usize,
}

impl UpstreamCounts {
    pub fn from_states(states: impl IntoIterator<Item = TaskState>) -> Self {
        let mut counts = UpstreamCounts::default();
        for state in states {
            counts.total += 1;
            match state {
                TaskState::Success => counts.success += 1,
                TaskState::Skipped => counts.skipped += 1,
                TaskState::Failed | TaskState::UpstreamFailed => counts.failed += 1,
                _ => {}
            }
            if state.is_finished() {
                counts.done += 1;
            }
        }
        counts
    }

    fn all_done(&self) -> bool {
        self.done == self.total
    }
}

impl TriggerRule {
    /// Airflow's trigger-rule dependency, with its "flag upstream failed" behaviour: a rule that
    /// can no longer be met turns into `skipped` or `upstream_failed` at once, not when every
    /// upstream task is done.
    pub fn evaluate(self, counts: UpstreamCounts) -> Verdict {
        use Verdict::*;
        if counts.total == 0 {
            return Ready;
        }
        let all_done = counts.all_done();
        match self {
            TriggerRule::Always => Ready,
            TriggerRule::AllSuccess => {
                if counts.failed > 0 {
                    UpstreamFailed
                } else if counts.skipped > 0 {
                    Skip
                } else if counts.success == counts.total {
                    Ready
                } else {
                    Wait
                }
            }
            TriggerRule::AllFailed => {
                if counts.success > 0 || counts.skipped > 0 {
                    Skip
                } else if all_done {
                    Ready
                } else {
                    Wait
                }
            }
            TriggerRule::AllDone => {
                if all_done {
                    Ready
                } else {
                    Wait
                }
            }
            TriggerRule::AllSkipped => {
                if counts.success > 0 || counts.failed > 0 {
                    Skip
                } else if all_done {
                    Ready
                } else {
                    Wait
                }
            }
            TriggerRule::OneSuccess => {
                if counts.success > 0 {
                    Ready
                } else if all_done && counts.skipped == counts.total {
                    Skip
                } else if all_done {
                    UpstreamFailed
                } else {
                    Wait
                }
            }
            TriggerRule::OneFailed => {
                if counts.failed > 0 {
                    Ready
                } else if all_done {
                    Skip
                } else {
                    Wait
                }
            }
            TriggerRule::OneDone => {
                if counts.success > 0 || counts.failed > 0 {
                    Ready
                } else if all_done {
                    Skip
                } else {
                    Wait
                }
            }
            TriggerRule::NoneFailed => {
                if counts.failed > 0 {
                    UpstreamFailed
                } else if all_done {
                    Ready
                } else {
                    Wait
                }
            }
            TriggerRule::NoneFailedMinOneSuccess => {
                if counts.failed > 0 {
                    UpstreamFailed
                } else if all_done && counts.success == 0 {
                    Skip
                } else if all_done {
                    Ready
                } else {
                    Wait
                }
            }
            TriggerRule::NoneSkipped => {
                if counts.skipped > 0 {
                    Skip
                } else if all_done {
                    Ready
                } else {
                    Wait
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::Verdict as V;
    use super::*;

    fn check(rule: &str, upstream: &[TaskState], expected: Verdict) {
        let rule: TriggerRule = rule.parse().unwrap();
        let verdict = rule.evaluate(UpstreamCounts::from_states(upstream.iter().copied()));
        assert_eq!(verdict, expected, "{rule} with upstream {upstream:?}");
    }

    #[test]
    fn every_trigger_rule_follows_airflow() {
        let table: &[(&str, &[TaskState], Verdict)] = &[
            ("all_success", &[Success, Success], V::Ready),
            ("all_success", &[Success, Running], V::Wait),
            ("all_success", &[Success, Failed], V::UpstreamFailed),
            ("all_success", &[Running, UpstreamFailed], V::UpstreamFailed),
            ("all_success", &[Success, Skipped], V::Skip),
            ("all_success", &[Skipped, Failed], V::UpstreamFailed),
            ("all_failed", &[Failed, UpstreamFailed], V::Ready),
            ("all_failed", &[Failed, Running], V::Wait),
            ("all_failed", &[Failed, Success], V::Skip),
            ("all_failed", &[Skipped, Failed], V::Skip),
            ("all_done", &[Success, Failed, Skipped], V::Ready),
            ("all_done", &[Success, UpForRetry], V::Wait),
            ("all_skipped", &[Skipped, Skipped], V::Ready),
            ("all_skipped", &[Skipped, Running], V::Wait),
            ("all_skipped", &[Skipped, Success], V::Skip),
            ("one_success", &[Running, Success], V::Ready),
            ("one_success", &[Running, Failed], V::Wait),
            ("one_success", &[Failed, Skipped], V::UpstreamFailed),
            ("one_success", &[Skipped, Skipped], V::Skip),
            ("one_failed", &[Running, Failed], V::Ready),
            ("one_failed", &[Running, Success], V::Wait),
            ("one_failed", &[Success, Skipped], V::Skip),
            ("one_done", &[Running, Failed], V::Ready),
            ("one_done", &[Running, Success], V::Ready),
            ("one_done", &[Running, Skipped], V::Wait),
            ("one_done", &[Skipped, Skipped], V::Skip),
            ("none_failed", &[Success, Skipped], V::Ready),
            ("none_failed", &[Success, Running], V::Wait),
            ("none_failed", &[Success, UpstreamFailed], V::UpstreamFailed),
            ("none_failed_min_one_success", &[Success, Skipped], V::Ready),
            ("none_failed_min_one_success", &[Skipped, Skipped], V::Skip),
            ("none_failed_min_one_success", &[Skipped, Failed], V::UpstreamFailed),
            ("none_failed_min_one_success", &[Success, Queued], V::Wait),
            ("none_skipped", &[Success, Failed], V::Ready),
            ("none_skipped", &[Success, Running], V::Wait),
            ("none_skipped", &[Success, Skipped], V::Skip),
            ("always", &[Running, TaskState::None], V::Ready),
            ("always", &[Failed], V::Ready),
        ];
        for (rule, upstream, expected) in table {
            check(rule, upstream, *expected);
        }
    }

    #[test]
    fn a_task_without_upstream_is_ready_whatever_its_rule() {
        for (rule, _) in NAMES {
            assert_eq!(rule.evaluate(UpstreamCounts::default()), V::Ready, "{rule}");
        }
    }

    #[test]
    fn an_unknown_rule_lists_the_valid_ones() {
        let error = "all_sucess".parse::<TriggerRule>().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unknown trigger rule `all_sucess`; expected one of: all_success, all_failed")
        );
    }
}
