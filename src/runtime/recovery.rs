//! How recovery ends an attempt that a dead scheduler left queued or running: finished, if its
//! wrapper recorded an exit status before the scheduler died; crash-ended otherwise.

use super::executor::AttemptResult;
use super::exit_record::ExitRecord;

/// The end recorded for an orphaned attempt, from its exit record (`None`: no record, e.g. a
/// builtin attempt, one never started, or one cut by the crash). `output` reads what a
/// successful attempt left in `$WEIR_OUTPUT`; its last stdout line died with the scheduler.
pub fn recovered_result(
    record: Option<&ExitRecord>,
    skip_exit_code: Option<i32>,
    output: impl FnOnce() -> Option<String>,
) -> AttemptResult {
    let Some(record) = record else {
        return AttemptResult::CrashEnded { exit_code: None };
    };
    match record.status {
        0 => AttemptResult::Success { output: output() },
        code if Some(code) == skip_exit_code => AttemptResult::Skipped,
        // It ended after its scheduler had gone: its output pipes were closed under it, and a
        // write then fails or kills it with SIGPIPE, so its failure may be the crash's doing.
        code if record.scheduler_gone => AttemptResult::CrashEnded { exit_code: Some(code) },
        code => AttemptResult::Failed {
            exit_code: Some(code),
            error: format!(
                "exited with code {code} (found in its exit record: its scheduler stopped before recording the end)"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: i32, scheduler_gone: bool) -> ExitRecord {
        ExitRecord {
            status,
            scheduler_gone,
            written_at: None,
        }
    }

    fn output() -> Option<String> {
        Some("\"done\"".to_string())
    }

    #[test]
    fn an_attempt_that_recorded_its_end_is_recorded_finished_and_not_run_again() {
        let cases = [
            (Some(record(0, false)), AttemptResult::Success { output: output() }),
            (Some(record(0, true)), AttemptResult::Success { output: output() }),
            (Some(record(99, false)), AttemptResult::Skipped),
            (
                Some(record(3, false)),
                AttemptResult::Failed {
                    exit_code: Some(3),
                    error:
                        "exited with code 3 (found in its exit record: its scheduler stopped before recording the end)"
                            .to_string(),
                },
            ),
        ];
        for (record, expected) in cases {
            assert_eq!(
                recovered_result(record.as_ref(), Some(99), output),
                expected,
                "{record:?}"
            );
        }
    }

    #[test]
    fn an_attempt_without_a_record_or_that_failed_after_the_crash_is_crash_ended() {
        assert_eq!(
            recovered_result(None, Some(99), output),
            AttemptResult::CrashEnded { exit_code: None }
        );
        assert_eq!(
            recovered_result(Some(&record(141, true)), Some(99), output),
            AttemptResult::CrashEnded { exit_code: Some(141) }
        );
    }
}
