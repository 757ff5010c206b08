//! Backfills (§3.8) as decisions: which logical dates a backfill covers and what happens to each
//! (a new run, a re-run of an existing one, or nothing), and which of them start at each step.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::schedule::{PlannedRun, Timetable};
use super::state::{RunState, UnknownVariant};

/// Which existing runs a backfill re-runs (Airflow 3's `reprocess_behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reprocess {
    /// Dates that already have a run are skipped.
    #[default]
    None,
    /// Failed runs are cleared and run again; others are skipped.
    Failed,
    /// Every finished run is cleared and run again.
    Completed,
}

/// A backfill's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillState {
    Running,
    Paused,
    Completed,
    Cancelled,
}

/// What a backfill does with one logical date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateAction {
    Create,
    Rerun,
    Skip,
}

macro_rules! spelled {
    ($name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: $kind, value: value.to_string(), expected: [$($text),+].join(", ") }),
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(Reprocess, "reprocess behavior", { None => "none", Failed => "failed", Completed => "completed" });
spelled!(BackfillState, "backfill state", { Running => "running", Paused => "paused", Completed => "completed", Cancelled => "cancelled" });
spelled!(DateAction, "backfill action", { Create => "create", Rerun => "rerun", Skip => "skip" });

impl BackfillState {
    /// Running or paused: it still owns its DAG (one active backfill per DAG).
    pub fn is_active(self) -> bool {
        matches!(self, BackfillState::Running | BackfillState::Paused)
    }
}

/// A run that already exists for a logical date (scheduled or backfill: unique per date).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingRun {
    pub logical_date: DateTime<Utc>,
    pub run_id: String,
    pub state: RunState,
}

/// One logical date of a backfill and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDate {
    pub run: PlannedRun,
    pub action: DateAction,
    /// The run that exists for this date, if any.
    pub existing_run_id: Option<String>,
    /// The state of that run.
    pub existing_state: Option<RunState>,
    /// Why a date is skipped, for the dry run.
    pub reason: Option<String>,
}

/// The most logical dates one backfill may cover unless `[core] max_backfill_dates` says otherwise.
pub const DEFAULT_MAX_DATES: u32 = 10_000;

/// Why a backfill's range is refused before anything is planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// More dates than the limit. Counting stops one past it: that is a lower bound, and the only
    /// number that costs nothing more (the range may hold billions of minutes).
    #[error(
        "the range from {from} to {to} holds more than {limit} logical dates of schedule `{schedule}`: a backfill covers at most {limit} (the server's [core] max_backfill_dates); narrow the range, or split it into several backfills"
    )]
    TooManyDates {
        from: String,
        to: String,
        schedule: String,
        limit: u32,
    },
}

/// How many logical dates `[from, to]` holds, counted lazily and stopped one past `limit`, so
/// nothing grows with the size of the range.
pub fn count_dates(
    timetable: &Timetable,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<usize, RangeError> {
    let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let count = timetable.runs_in(from, to).take(limit_len.saturating_add(1)).count();
    if count <= limit_len {
        return Ok(count);
    }
    Err(RangeError::TooManyDates {
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        schedule: timetable.schedule.describe(),
        limit,
    })
}

/// Every scheduled logical date in `[from, to]`, oldest first (newest first with `reverse`), and
/// what the backfill does with each.
pub fn plan_dates(
    timetable: &Timetable,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    reprocess: Reprocess,
    existing: &[ExistingRun],
    reverse: bool,
) -> Vec<PlannedDate> {
    let by_date: HashMap<DateTime<Utc>, &ExistingRun> = existing
        .iter()
        .map(|existing| (existing.logical_date, existing))
        .collect();
    let mut dates: Vec<PlannedDate> = timetable
        .runs_in(from, to)
        .map(|run| {
            let found = by_date.get(&run.logical_date).copied();
            let (action, reason) = match found {
                None => (DateAction::Create, None),
                Some(existing) if !existing.state.is_finished() => (
                    DateAction::Skip,
                    Some(format!("run {} is {}", existing.run_id, existing.state)),
                ),
                Some(existing) => match (reprocess, existing.state) {
                    (Reprocess::Completed, _) | (Reprocess::Failed, RunState::Failed) => (DateAction::Rerun, None),
                    _ => (
                        DateAction::Skip,
                        Some(format!("run {} exists ({})", existing.run_id, existing.state)),
                    ),
                },
            };
            PlannedDate {
                run,
                action,
                existing_run_id: found.map(|existing| existing.run_id.clone()),
                existing_state: found.map(|existing| existing.state),
                reason,
            }
        })
        .collect();
    if reverse {
        dates.reverse();
    }
    dates
}

/// Why a backfill that would start no run is refused instead of being recorded: every date
/// already has a run that the chosen reprocess behavior leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NothingToBackfill(String);

/// `Err` when no date of `dates` gets a run (each is skipped), with the runs found and which
/// reprocess behavior would re-run them.
pub fn check_something_to_do(dates: &[PlannedDate], reprocess: Reprocess) -> Result<(), NothingToBackfill> {
    if dates.iter().any(|date| date.action != DateAction::Skip) {
        return Ok(());
    }
    let states: Vec<RunState> = dates.iter().filter_map(|date| date.existing_state).collect();
    let (Some(first), Some(last)) = (
        dates.iter().map(|date| date.run.logical_date).min(),
        dates.iter().map(|date| date.run.logical_date).max(),
    ) else {
        return Ok(());
    };
    let mut by_state: Vec<(RunState, usize)> = Vec::new();
    for state in &states {
        match by_state.iter_mut().find(|(seen, _)| seen == state) {
            Some((_, count)) => *count += 1,
            None => by_state.push((*state, 1)),
        }
    }
    let found: Vec<String> = by_state
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    let failed = states.iter().filter(|state| **state == RunState::Failed).count();
    let finished = states.iter().filter(|state| state.is_finished()).count();
    let unfinished = states.len() - finished;
    let total = dates.len();
    let range = if first == last {
        format!("the logical date {} already has a run", first.to_rfc3339())
    } else {
        format!(
            "all {total} logical dates from {} to {} already have a run",
            first.to_rfc3339(),
            last.to_rfc3339()
        )
    };
    let mut message = format!(
        "nothing to backfill: {range} ({}), and reprocess `{reprocess}` re-runs none of them, so no backfill was created.",
        found.join(", ")
    );
    let mut advice = Vec::new();
    if failed > 0 && reprocess == Reprocess::None {
        advice.push(format!("reprocess `failed` re-runs the {failed} failed run(s)"));
    }
    if reprocess != Reprocess::Completed && finished > failed {
        advice.push(format!("reprocess `completed` re-runs all {finished} finished run(s)"));
    }
    if !advice.is_empty() {
        message.push_str(&format!(
            " To run them again: {} (`--reprocess` on the command line, `reprocess_behavior` in the REST API).",
            advice.join("; ")
        ));
    }
    if unfinished > 0 {
        message.push_str(&format!(
            " {unfinished} run(s) are still queued or running: no backfill re-runs those; wait for them to finish."
        ));
    }
    Err(NothingToBackfill(message))
}

/// One planned date as the backfill tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateProgress {
    pub action: DateAction,
    /// Started: its run was created or cleared.
    pub started: bool,
    /// Its run is queued or running.
    pub active: bool,
}

/// What a backfill step does: the positions (in order) of dates to start now, and whether the
/// backfill is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillStep {
    pub start: Vec<usize>,
    pub completed: bool,
}

/// Starts dates in their order while fewer than `max_active_runs` of the backfill's runs are
/// active; complete when every date to run has started and none is active any more.
pub fn backfill_step(dates: &[DateProgress], state: BackfillState, max_active_runs: u32) -> BackfillStep {
    let active = dates.iter().filter(|date| date.active).count();
    let pending: Vec<usize> = dates
        .iter()
        .enumerate()
        .filter(|(_, date)| date.action != DateAction::Skip && !date.started)
        .map(|(position, _)| position)
        .collect();
    let start = if state == BackfillState::Running {
        let free = (max_active_runs as usize).saturating_sub(active);
        pending.iter().copied().take(free).collect()
    } else {
        Vec::new()
    };
    let completed = state == BackfillState::Running && pending.is_empty() && active == 0;
    BackfillStep { start, completed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::Schedule;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn daily() -> Timetable {
        Timetable {
            schedule: Schedule::parse("@daily", true).unwrap(),
            timezone: chrono_tz::Tz::UTC,
            start_date: Some(at("2026-01-01T00:00:00Z")),
            end_date: None,
        }
    }

    fn existing(day: &str, state: RunState) -> ExistingRun {
        ExistingRun {
            logical_date: at(&format!("{day}T00:00:00Z")),
            run_id: format!("scheduled__{day}"),
            state,
        }
    }

    fn summary(dates: &[PlannedDate]) -> Vec<String> {
        dates
            .iter()
            .map(|date| format!("{} {}", date.run.logical_date.format("%m-%d"), date.action))
            .collect()
    }

    #[test]
    fn each_reprocess_behavior_decides_what_happens_to_existing_runs() {
        let runs = [
            existing("2026-03-02", RunState::Success),
            existing("2026-03-03", RunState::Failed),
            existing("2026-03-04", RunState::Running),
        ];
        let table = [
            (
                Reprocess::None,
                ["03-01 create", "03-02 skip", "03-03 skip", "03-04 skip"],
            ),
            (
                Reprocess::Failed,
                ["03-01 create", "03-02 skip", "03-03 rerun", "03-04 skip"],
            ),
            (
                Reprocess::Completed,
                ["03-01 create", "03-02 rerun", "03-03 rerun", "03-04 skip"],
            ),
        ];
        for (reprocess, expected) in table {
            let dates = plan_dates(
                &daily(),
                at("2026-03-01T00:00:00Z"),
                at("2026-03-04T00:00:00Z"),
                reprocess,
                &runs,
                false,
            );
            assert_eq!(summary(&dates), expected, "{reprocess}");
        }
        let dates = plan_dates(
            &daily(),
            at("2026-03-01T00:00:00Z"),
            at("2026-03-04T00:00:00Z"),
            Reprocess::None,
            &runs,
            false,
        );
        assert_eq!(dates[3].reason.as_deref(), Some("run scheduled__2026-03-04 is running"));
    }

    #[test]
    fn reverse_runs_newest_first() {
        let dates = plan_dates(
            &daily(),
            at("2026-03-01T00:00:00Z"),
            at("2026-03-03T00:00:00Z"),
            Reprocess::None,
            &[],
            true,
        );
        assert_eq!(summary(&dates), ["03-03 create", "03-02 create", "03-01 create"]);
    }

    /// The logical dates a backfill typed as `from`..`to` covers, read as every surface reads them.
    fn typed_range(schedule: &str, timezone: chrono_tz::Tz, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        use crate::domain::dates::{RangeEnd, parse_range_bound};
        let timetable = Timetable {
            schedule: Schedule::parse(schedule, true).unwrap(),
            timezone,
            start_date: Some(at("2025-01-01T00:00:00Z")),
            end_date: None,
        };
        let from = parse_range_bound(from, timezone, RangeEnd::Start).unwrap();
        let to = parse_range_bound(to, timezone, RangeEnd::End).unwrap();
        plan_dates(&timetable, from, to, Reprocess::None, &[], false)
            .iter()
            .map(|date| date.run.logical_date)
            .collect()
    }

    #[test]
    fn a_range_of_dates_includes_every_run_of_its_last_day() {
        use chrono_tz::Tz;
        // (schedule, time zone, from, to, dates, first, last)
        let table = [
            (
                "0 3 * * *",
                Tz::UTC,
                "2026-03-01",
                "2026-03-31",
                31,
                "2026-03-01T03:00:00+00:00",
                "2026-03-31T03:00:00+00:00",
            ),
            (
                "30 4 * * *",
                Tz::UTC,
                "2026-03-01",
                "2026-03-31",
                31,
                "2026-03-01T04:30:00+00:00",
                "2026-03-31T04:30:00+00:00",
            ),
            (
                "0 * * * *",
                Tz::UTC,
                "2026-03-01",
                "2026-03-31",
                744,
                "2026-03-01T00:00:00+00:00",
                "2026-03-31T23:00:00+00:00",
            ),
            (
                "0 3 * * *",
                Tz::Asia__Seoul,
                "2026-03-01",
                "2026-03-31",
                31,
                "2026-02-28T18:00:00+00:00",
                "2026-03-30T18:00:00+00:00",
            ),
            (
                "0 23 * * *",
                Tz::Asia__Seoul,
                "2026-03-01",
                "2026-03-01",
                1,
                "2026-03-01T14:00:00+00:00",
                "2026-03-01T14:00:00+00:00",
            ),
            // Berlin's spring-forward day has 23 hours, its fall-back day 25 with 02:00 firing once.
            (
                "0 * * * *",
                Tz::Europe__Berlin,
                "2026-03-29",
                "2026-03-29",
                23,
                "2026-03-28T23:00:00+00:00",
                "2026-03-29T21:00:00+00:00",
            ),
            (
                "0 * * * *",
                Tz::Europe__Berlin,
                "2026-10-25",
                "2026-10-25",
                24,
                "2026-10-24T22:00:00+00:00",
                "2026-10-25T22:00:00+00:00",
            ),
            (
                "30 2 * * *",
                Tz::Europe__Berlin,
                "2026-03-29",
                "2026-03-29",
                1,
                "2026-03-29T01:00:00+00:00",
                "2026-03-29T01:00:00+00:00",
            ),
            // A time is taken as given: midnight of March 31 leaves its 03:00 run out.
            (
                "0 3 * * *",
                Tz::UTC,
                "2026-03-01T03:00",
                "2026-03-31T00:00",
                30,
                "2026-03-01T03:00:00+00:00",
                "2026-03-30T03:00:00+00:00",
            ),
            (
                "0 3 * * *",
                Tz::UTC,
                "2026-03-01T03:00:01",
                "2026-03-31T03:00:00Z",
                30,
                "2026-03-02T03:00:00+00:00",
                "2026-03-31T03:00:00+00:00",
            ),
        ];
        for (schedule, timezone, from, to, count, first, last) in table {
            let dates = typed_range(schedule, timezone, from, to);
            let shown: Vec<String> = dates.iter().map(DateTime::to_rfc3339).collect();
            let case = format!("{schedule} {timezone} {from}..{to}");
            assert_eq!(dates.len(), count, "{case}");
            assert_eq!(shown.first().map(String::as_str), Some(first), "{case}");
            assert_eq!(shown.last().map(String::as_str), Some(last), "{case}");
        }
    }

    fn every_minute() -> Timetable {
        Timetable {
            schedule: Schedule::parse("* * * * *", true).unwrap(),
            timezone: chrono_tz::Tz::UTC,
            start_date: Some(at("1000-01-01T00:00:00Z")),
            end_date: None,
        }
    }

    #[test]
    fn a_range_within_the_limit_counts_its_dates_exactly() {
        let count = count_dates(&daily(), at("2026-03-01T00:00:00Z"), at("2026-03-10T00:00:00Z"), 10).unwrap();
        assert_eq!(count, 10);
    }

    #[test]
    fn a_range_over_the_limit_is_refused_with_how_many_dates_it_holds() {
        let error = count_dates(&daily(), at("2026-03-01T00:00:00Z"), at("2026-03-11T00:00:00Z"), 10).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the range from 2026-03-01T00:00:00+00:00 to 2026-03-11T00:00:00+00:00 holds more than 10 logical dates of schedule `@daily`: a backfill covers at most 10 (the server's [core] max_backfill_dates); narrow the range, or split it into several backfills"
        );
    }

    #[test]
    fn eight_thousand_years_of_minutes_are_refused_after_counting_one_past_the_limit() {
        let error = count_dates(
            &every_minute(),
            at("1000-01-01T00:00:00Z"),
            at("9999-12-31T00:00:00Z"),
            10_000,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("holds more than 10000 logical dates of schedule `* * * * *`"),
            "{error}"
        );
    }

    #[test]
    fn cron_schedules_have_no_dates_from_year_5000_on() {
        // croner searches up to year 5000, so no interval of a cron schedule ends past 9999.
        let count = count_dates(&daily(), at("4999-12-28T00:00:00Z"), at("9999-12-31T00:00:00Z"), 10).unwrap();
        assert_eq!(
            count, 4,
            "12-28 to 12-31, whose interval ends at 5000-01-01, croner's last time"
        );
    }

    fn progress(spec: &str) -> Vec<DateProgress> {
        // c = to create, not started; A = started and active; d = started and done; s = skipped
        spec.chars()
            .map(|c| match c {
                'c' => DateProgress {
                    action: DateAction::Create,
                    started: false,
                    active: false,
                },
                'A' => DateProgress {
                    action: DateAction::Create,
                    started: true,
                    active: true,
                },
                'd' => DateProgress {
                    action: DateAction::Create,
                    started: true,
                    active: false,
                },
                _ => DateProgress {
                    action: DateAction::Skip,
                    started: false,
                    active: false,
                },
            })
            .collect()
    }

    #[test]
    fn a_step_starts_dates_in_order_up_to_max_active_runs() {
        let table: [(&str, BackfillState, u32, &[usize], bool); 7] = [
            ("cccccc", BackfillState::Running, 3, &[0, 1, 2], false),
            ("AAdccc", BackfillState::Running, 3, &[3], false),
            ("AAAccc", BackfillState::Running, 3, &[], false),
            ("ddsdsd", BackfillState::Running, 3, &[], true),
            ("ddAsdd", BackfillState::Running, 3, &[], false),
            ("dAcccc", BackfillState::Paused, 3, &[], false),
            ("dAcccc", BackfillState::Cancelled, 3, &[], false),
        ];
        for (spec, state, max, start, completed) in table {
            let step = backfill_step(&progress(spec), state, max);
            assert_eq!(
                step,
                BackfillStep {
                    start: start.to_vec(),
                    completed
                },
                "{spec} {state}"
            );
        }
    }

    #[test]
    fn a_backfill_whose_every_date_is_skipped_is_refused_with_the_reprocess_that_would_rerun_them() {
        let runs = [
            existing("2026-03-01", RunState::Success),
            existing("2026-03-02", RunState::Failed),
            existing("2026-03-03", RunState::Success),
        ];
        let refusal = |reprocess: Reprocess, to: &str, runs: &[ExistingRun]| {
            let dates = plan_dates(&daily(), at("2026-03-01T00:00:00Z"), at(to), reprocess, runs, false);
            check_something_to_do(&dates, reprocess)
                .err()
                .map(|refusal| refusal.to_string())
        };
        assert_eq!(
            refusal(Reprocess::None, "2026-03-03T00:00:00Z", &runs).as_deref(),
            Some(
                "nothing to backfill: all 3 logical dates from 2026-03-01T00:00:00+00:00 to 2026-03-03T00:00:00+00:00 \
                 already have a run (2 success, 1 failed), and reprocess `none` re-runs none of them, so no backfill \
                 was created. To run them again: reprocess `failed` re-runs the 1 failed run(s); reprocess `completed` \
                 re-runs all 3 finished run(s) (`--reprocess` on the command line, `reprocess_behavior` in the REST API)."
            )
        );
        // With `failed` the failed date is re-run: something to do.
        assert_eq!(refusal(Reprocess::Failed, "2026-03-03T00:00:00Z", &runs), None);
        // A date without a run is created: something to do.
        assert_eq!(refusal(Reprocess::None, "2026-03-04T00:00:00Z", &runs), None);
        let successes = [existing("2026-03-01", RunState::Success)];
        let message = refusal(Reprocess::Failed, "2026-03-01T00:00:00Z", &successes).unwrap();
        assert!(
            message.contains("the logical date 2026-03-01T00:00:00+00:00 already has a run (1 success)")
                && message.contains("reprocess `completed` re-runs all 1 finished run(s)")
                && !message.contains("failed run(s)"),
            "{message}"
        );
        let running = [existing("2026-03-01", RunState::Running)];
        let message = refusal(Reprocess::Completed, "2026-03-01T00:00:00Z", &running).unwrap();
        assert!(
            message.contains("1 running")
                && message.contains("still queued or running")
                && !message.contains("To run them again"),
            "{message}"
        );
    }
}
