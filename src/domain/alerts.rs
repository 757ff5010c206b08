//! Alert decisions (§9), without IO: which event a state change raises, which channels hear it
//! (the DAG's own list, else the config's default), when a run has missed its SLA, and when a
//! failed delivery is tried again.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::dag::DagAlerts;
use super::state::{RunState, RunType, TaskState, UnknownVariant};

/// What happened, as the DAG file and the payloads name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertEvent {
    /// A task failed for good (no retry left), or a run failed.
    OnFailure,
    /// A task attempt failed and the task will be tried again.
    OnRetry,
    /// A run succeeded.
    OnSuccess,
    /// A run was not finished within its DAG's `sla` after it became due.
    SlaMiss,
    /// A sample sent by `weir alerts test`; never raised by a state change.
    Test,
}

impl AlertEvent {
    pub const ALL: &'static [AlertEvent] = &[
        AlertEvent::OnFailure,
        AlertEvent::OnRetry,
        AlertEvent::OnSuccess,
        AlertEvent::SlaMiss,
        AlertEvent::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::OnFailure => "on_failure",
            AlertEvent::OnRetry => "on_retry",
            AlertEvent::OnSuccess => "on_success",
            AlertEvent::SlaMiss => "sla_miss",
            AlertEvent::Test => "test",
        }
    }
}

impl FromStr for AlertEvent {
    type Err = UnknownVariant;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        AlertEvent::ALL
            .iter()
            .copied()
            .find(|event| event.as_str() == value)
            .ok_or_else(|| UnknownVariant {
                kind: "alert event",
                value: value.to_string(),
                expected: AlertEvent::ALL
                    .iter()
                    .map(|event| event.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl fmt::Display for AlertEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one delivery of an alert stands (the outbox row's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (`next_attempt_at`).
    Pending,
    /// Claimed by a delivery loop that is sending it now.
    Sending,
    Delivered,
    /// Every attempt failed; `error` says why the last one did.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: &'static [DeliveryStatus] = &[
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    /// The status people see (§7: pending, delivered, failed): a delivery being sent right now is
    /// still pending.
    pub fn shown(self) -> DeliveryStatus {
        match self {
            DeliveryStatus::Sending => DeliveryStatus::Pending,
            other => other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownVariant;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .iter()
            .copied()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| UnknownVariant {
                kind: "alert status",
                value: value.to_string(),
                expected: "pending, sending, delivered, failed".to_string(),
            })
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channels of every DAG that does not name an event itself (`[alerts] default_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertDefaults {
    pub on_failure: Vec<String>,
    pub on_retry: Vec<String>,
    pub on_success: Vec<String>,
    pub sla_miss: Vec<String>,
}

/// The event a task instance's new state raises, if any. Only the end of an attempt counts:
/// `failed` (no retry left) and `up_for_retry`; a task's success is not an alert (a run's is).
pub fn task_event(state: TaskState) -> Option<AlertEvent> {
    match state {
        TaskState::Failed => Some(AlertEvent::OnFailure),
        TaskState::UpForRetry => Some(AlertEvent::OnRetry),
        _ => None,
    }
}

/// The event a run's final state raises.
pub fn run_event(state: RunState) -> Option<AlertEvent> {
    match state {
        RunState::Failed => Some(AlertEvent::OnFailure),
        RunState::Success => Some(AlertEvent::OnSuccess),
        RunState::Queued | RunState::Running => None,
    }
}

/// The channels that hear `event` for a DAG: its own list when the file names the event (even an
/// empty one, which silences it), else the configured default; each channel once, in order.
pub fn channels_for(dag: &DagAlerts, defaults: &AlertDefaults, event: AlertEvent) -> Vec<String> {
    let (own, default) = match event {
        AlertEvent::OnFailure => (&dag.on_failure, &defaults.on_failure),
        AlertEvent::OnRetry => (&dag.on_retry, &defaults.on_retry),
        AlertEvent::OnSuccess => (&dag.on_success, &defaults.on_success),
        AlertEvent::SlaMiss => (&dag.sla_miss, &defaults.sla_miss),
        AlertEvent::Test => return Vec::new(),
    };
    let mut channels: Vec<String> = Vec::new();
    for channel in own.as_ref().unwrap_or(default) {
        if !channels.contains(channel) {
            channels.push(channel.clone());
        }
    }
    channels
}

/// When a run's SLA clock starts: when it became due. A scheduled run is due at its `run_after`
/// (its data interval's end, or its fire time), however late the scheduler created it; a manual
/// or dataset run when it was queued (triggered, or re-queued by a clear). Backfill runs re-process
/// the past on purpose and have no SLA, as in Airflow.
pub fn sla_clock_start(
    run_type: RunType,
    run_after: DateTime<Utc>,
    queued_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match run_type {
        RunType::Scheduled => Some(run_after),
        RunType::Manual | RunType::Dataset => Some(queued_at.unwrap_or(run_after)),
        RunType::Backfill => None,
    }
}

/// The instant a run must have finished by; saturates far in the future.
pub fn sla_deadline(clock_start: DateTime<Utc>, sla: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(sla)
        .ok()
        .and_then(|sla| clock_start.checked_add_signed(sla))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A run still unfinished at `now` has missed its SLA once `now` is past the deadline.
pub fn sla_missed(deadline: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now > deadline
}

/// How one channel's deliveries are tried: `retries` more attempts after the first, waiting
/// `retry_delay · 2^(n-1)` after the n-th failure (at most `max_retry_delay`), each attempt given
/// `timeout` to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    pub retries: u32,
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub timeout: Duration,
}

impl Default for DeliveryPolicy {
    /// 5 attempts over about two and a half minutes: 10s, 20s, 40s, 80s between them.
    fn default() -> Self {
        DeliveryPolicy {
            retries: 4,
            retry_delay: Duration::from_secs(10),
            max_retry_delay: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
        }
    }
}

impl DeliveryPolicy {
    /// The wait after the `attempts`-th failed attempt.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.retry_delay
            .checked_mul(1 << doublings)
            .unwrap_or(self.max_retry_delay)
            .min(self.max_retry_delay)
    }
}

/// What happens to a delivery whose attempt just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(DateTime<Utc>),
    /// The budget is spent: the delivery ends `failed`.
    GiveUp,
}

/// After `attempts` attempts (counting the one that just failed), try again or give up.
pub fn after_failed_delivery(policy: &DeliveryPolicy, attempts: u32, now: DateTime<Utc>) -> AfterFailure {
    if attempts > policy.retries {
        return AfterFailure::GiveUp;
    }
    let delay = chrono::Duration::from_std(policy.delay_after(attempts)).unwrap_or(chrono::Duration::MAX);
    AfterFailure::RetryAt(now.checked_add_signed(delay).unwrap_or(DateTime::<Utc>::MAX_UTC))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, 0).unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_task_that_fails_for_good_raises_on_failure_and_one_that_will_retry_raises_on_retry() {
        assert_eq!(task_event(TaskState::Failed), Some(AlertEvent::OnFailure));
        assert_eq!(task_event(TaskState::UpForRetry), Some(AlertEvent::OnRetry));
        for quiet in [
            TaskState::Success,
            TaskState::Skipped,
            TaskState::UpstreamFailed,
            TaskState::UpForReschedule,
            TaskState::Scheduled,
        ] {
            assert_eq!(task_event(quiet), None, "{quiet}");
        }
    }

    #[test]
    fn a_failed_run_raises_on_failure_and_a_successful_one_on_success() {
        assert_eq!(run_event(RunState::Failed), Some(AlertEvent::OnFailure));
        assert_eq!(run_event(RunState::Success), Some(AlertEvent::OnSuccess));
        assert_eq!(run_event(RunState::Running), None);
    }

    #[test]
    fn a_dag_without_its_own_list_gets_the_default_and_an_empty_list_silences_it() {
        let defaults = AlertDefaults {
            on_failure: names(&["ops"]),
            sla_miss: names(&["ops", "mail"]),
            ..AlertDefaults::default()
        };
        let quiet = DagAlerts {
            on_failure: Some(Vec::new()),
            ..DagAlerts::default()
        };
        let own = DagAlerts {
            on_failure: Some(names(&["team", "ops", "team"])),
            ..DagAlerts::default()
        };
        assert_eq!(
            channels_for(&DagAlerts::default(), &defaults, AlertEvent::OnFailure),
            ["ops"]
        );
        assert!(channels_for(&quiet, &defaults, AlertEvent::OnFailure).is_empty());
        assert_eq!(channels_for(&quiet, &defaults, AlertEvent::SlaMiss), ["ops", "mail"]);
        assert_eq!(channels_for(&own, &defaults, AlertEvent::OnFailure), ["team", "ops"]);
        assert!(channels_for(&own, &defaults, AlertEvent::OnRetry).is_empty());
    }

    #[test]
    fn the_sla_clock_starts_when_the_run_became_due() {
        let run_after = at(0, 0);
        let queued = at(0, 5);
        assert_eq!(
            sla_clock_start(RunType::Scheduled, run_after, Some(queued)),
            Some(run_after)
        );
        assert_eq!(sla_clock_start(RunType::Manual, run_after, Some(queued)), Some(queued));
        assert_eq!(sla_clock_start(RunType::Dataset, run_after, None), Some(run_after));
        assert_eq!(sla_clock_start(RunType::Backfill, run_after, Some(queued)), None);
    }

    #[test]
    fn a_run_misses_its_sla_only_after_the_deadline() {
        let deadline = sla_deadline(at(0, 0), Duration::from_secs(2 * 3600));
        assert_eq!(deadline, at(2, 0));
        assert!(!sla_missed(deadline, at(1, 59)));
        assert!(!sla_missed(deadline, at(2, 0)));
        assert!(sla_missed(deadline, at(2, 1)));
        assert_eq!(sla_deadline(at(0, 0), Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn a_failed_delivery_is_retried_with_doubling_delays_until_the_budget_is_spent() {
        let policy = DeliveryPolicy::default();
        let now = at(0, 0);
        let delays: Vec<AfterFailure> = (1..=5)
            .map(|attempts| after_failed_delivery(&policy, attempts, now))
            .collect();
        assert_eq!(
            delays,
            [
                AfterFailure::RetryAt(now + chrono::Duration::seconds(10)),
                AfterFailure::RetryAt(now + chrono::Duration::seconds(20)),
                AfterFailure::RetryAt(now + chrono::Duration::seconds(40)),
                AfterFailure::RetryAt(now + chrono::Duration::seconds(80)),
                AfterFailure::GiveUp,
            ]
        );
        let capped = DeliveryPolicy { retries: 40, ..policy };
        assert_eq!(capped.delay_after(6), Duration::from_secs(300));
        assert_eq!(capped.delay_after(40), Duration::from_secs(300));
        let no_retries = DeliveryPolicy { retries: 0, ..policy };
        assert_eq!(after_failed_delivery(&no_retries, 1, now), AfterFailure::GiveUp);
    }

    #[test]
    fn events_read_back_from_their_names() {
        for event in AlertEvent::ALL {
            assert_eq!(event.as_str().parse::<AlertEvent>().unwrap(), *event);
        }
        assert!("on_fail".parse::<AlertEvent>().is_err());
    }
}
