//! Scenarios of an attempt's end: what the task instance becomes, and what is kept of it.
use std::time::Duration;

use chrono::TimeZone;

use super::*;

/// The policy of a task with `retries: 1` and `retry_delay: 30s`.
fn one_retry() -> Option<RetryPolicy> {
    Some(RetryPolicy {
        retries: 1,
        retry_delay: Duration::from_secs(30),
        exponential_backoff: false,
        max_retry_delay: None,
    })
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("a valid date")
}

/// Try `try_number` of `work` (one retry: `max_tries` 2) ended with `result` after
/// `crash_ends` earlier crash-ended attempts: the instance's state, whether the try is given
/// back, whether it counts as crash-ended, and the error's start.
fn end_of(try_number: u32, crash_ends: u32, result: AttemptResult) -> (TaskState, bool, bool, String) {
    let budget = TryBudget {
        max_tries: 2 + crash_ends,
        crash_ends,
    };
    let end = attempt_end(one_retry(), try_number, &result, budget, now());
    let error = end.error.unwrap_or_default();
    let error = error.split(';').next().unwrap_or_default().to_string();
    (end.instance_state, end.refund_try, end.crash_ended, error)
}

const STOPPED: &str = "crash-ended: the scheduler running this attempt stopped (crash or kill) before it ended";

#[test]
fn an_attempt_ended_by_its_schedulers_death_runs_again_without_using_a_retry() {
    let crash_ended = AttemptResult::CrashEnded { exit_code: None };
    assert_eq!(
        end_of(1, 0, crash_ended.clone()),
        (TaskState::Scheduled, true, true, STOPPED.to_string())
    );
    // Tries 2 and 3 cut by kills, as in the report: still no retry used.
    assert_eq!(
        end_of(2, 1, crash_ended.clone()),
        (TaskState::Scheduled, true, true, STOPPED.to_string())
    );
    assert_eq!(
        end_of(3, 2, crash_ended),
        (TaskState::Scheduled, true, true, STOPPED.to_string())
    );
}

#[test]
fn past_the_cap_a_crash_ended_attempt_counts_as_a_failure_and_says_why() {
    let crash_ended = AttemptResult::CrashEnded { exit_code: None };
    // Three free re-runs given back their tries: max_tries 2 + 3; try 4 may still retry.
    let end = attempt_end(
        one_retry(),
        4,
        &crash_ended,
        TryBudget {
            max_tries: 5,
            crash_ends: MAX_FREE_CRASH_ENDS,
        },
        now(),
    );
    assert_eq!(
        (end.instance_state, end.refund_try, end.crash_ended, end.next_retry_at),
        (
            TaskState::UpForRetry,
            false,
            true,
            Some(now() + chrono::Duration::seconds(30))
        )
    );
    let error = end.error.unwrap_or_default();
    assert!(error.contains("4 times now for this task"), "{error}");
    assert!(error.contains("counts as a failure"), "{error}");
    // The last try: failed for good.
    let end = attempt_end(
        one_retry(),
        5,
        &crash_ended,
        TryBudget {
            max_tries: 5,
            crash_ends: MAX_FREE_CRASH_ENDS + 1,
        },
        now(),
    );
    assert_eq!((end.instance_state, end.refund_try), (TaskState::Failed, false));
}

#[test]
fn a_task_that_ended_after_its_scheduler_was_gone_is_crash_ended_with_its_exit_code() {
    let end = attempt_end(
        one_retry(),
        1,
        &AttemptResult::CrashEnded { exit_code: Some(141) },
        TryBudget {
            max_tries: 2,
            crash_ends: 0,
        },
        now(),
    );
    assert_eq!((end.instance_state, end.exit_code), (TaskState::Scheduled, Some(141)));
    let error = end.error.unwrap_or_default();
    assert!(
        error.contains("it exited with code 141 after its scheduler was gone"),
        "{error}"
    );
    assert!(error.contains("1 of 3 such re-runs"), "{error}");
}

#[test]
fn failures_spend_retries_and_shutdowns_do_not() {
    let failed = || AttemptResult::Failed {
        exit_code: Some(3),
        error: "exited with code 3".to_string(),
    };
    assert_eq!(
        end_of(1, 0, failed()),
        (TaskState::UpForRetry, false, false, "exited with code 3".to_string())
    );
    assert_eq!(
        end_of(2, 0, failed()),
        (TaskState::Failed, false, false, "exited with code 3".to_string())
    );
    assert_eq!(
        end_of(1, 0, AttemptResult::Interrupted),
        (
            TaskState::Scheduled,
            true,
            false,
            "interrupted: weir shut down during the attempt".to_string()
        )
    );
    assert_eq!(
        end_of(1, 0, AttemptResult::Success { output: None }),
        (TaskState::Success, false, false, String::new())
    );
}

/// A task instance as the planner sees it after try `try_number` was claimed.
fn claimed(try_number: u32, max_tries: u32) -> TaskInstanceState {
    TaskInstanceState {
        state: TaskState::Queued,
        try_number,
        max_tries,
        next_retry_at: None,
    }
}

/// What a task instance holding try `try_number` of `max_tries` becomes when the try ends with
/// `result`.
fn instance_after(try_number: u32, max_tries: u32, result: AttemptResult) -> TaskInstanceState {
    let budget = TryBudget {
        max_tries,
        crash_ends: 0,
    };
    let end = attempt_end(one_retry(), try_number, &result, budget, now());
    let mut instance = claimed(try_number, max_tries);
    end.instance_change().apply(&mut instance);
    instance
}

fn failed() -> AttemptResult {
    AttemptResult::Failed {
        exit_code: Some(1),
        error: "exited with code 1".to_string(),
    }
}

#[test]
fn a_first_failure_waits_the_retry_delay_and_its_next_claim_is_try_2() {
    assert_eq!(
        instance_after(1, 2, failed()),
        TaskInstanceState {
            state: TaskState::UpForRetry,
            try_number: 1,
            max_tries: 2,
            next_retry_at: Some(now() + chrono::Duration::seconds(30)),
        }
    );
}

#[test]
fn the_last_failure_fails_the_task_with_nothing_to_wait_for() {
    assert_eq!(
        instance_after(2, 2, failed()),
        TaskInstanceState {
            state: TaskState::Failed,
            try_number: 2,
            max_tries: 2,
            next_retry_at: None,
        }
    );
}

#[test]
fn a_success_ends_the_task_on_its_try() {
    assert_eq!(
        instance_after(1, 2, AttemptResult::Success { output: None }),
        TaskInstanceState {
            state: TaskState::Success,
            try_number: 1,
            max_tries: 2,
            next_retry_at: None,
        }
    );
}

#[test]
fn a_sensor_poke_that_finds_nothing_gives_its_try_number_back_for_the_next_poke() {
    let next_poke = now() + chrono::Duration::seconds(60);
    assert_eq!(
        instance_after(1, 2, AttemptResult::Reschedule { at: next_poke }),
        TaskInstanceState {
            state: TaskState::UpForReschedule,
            try_number: 0,
            max_tries: 2,
            next_retry_at: Some(next_poke),
        }
    );
}

#[test]
fn a_shutdown_schedules_the_task_again_with_one_more_try_to_spend() {
    assert_eq!(
        instance_after(1, 2, AttemptResult::Interrupted),
        TaskInstanceState {
            state: TaskState::Scheduled,
            try_number: 1,
            max_tries: 3,
            next_retry_at: None,
        }
    );
}

#[test]
fn a_crash_ended_attempt_is_scheduled_again_and_counted_as_one() {
    let end = attempt_end(
        one_retry(),
        1,
        &AttemptResult::CrashEnded { exit_code: None },
        TryBudget {
            max_tries: 2,
            crash_ends: 0,
        },
        now(),
    );
    assert_eq!(
        end.instance_change(),
        InstanceChange {
            state: TaskState::Scheduled,
            next_retry_at: None,
            max_tries_added: 1,
            try_number_taken_back: 0,
            crash_ends_added: 1,
        }
    );
}

#[test]
fn an_attempt_whose_dag_is_gone_ends_for_good_whatever_stopped_it() {
    for result in [
        AttemptResult::Interrupted,
        AttemptResult::CrashEnded { exit_code: None },
        AttemptResult::Reschedule { at: now() },
        failed(),
    ] {
        let end = attempt_end_without_dag(&result);
        assert_eq!(
            (end.instance_state, end.next_retry_at, end.refund_try, end.reschedule),
            (TaskState::Failed, None, false, false),
            "{result:?}"
        );
    }
    let end = attempt_end_without_dag(&AttemptResult::Success { output: None });
    assert_eq!((end.instance_state, end.exit_code), (TaskState::Success, Some(0)));
}
