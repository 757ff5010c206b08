//! DAG schedules: parsing `schedule:` values and working out when runs are due and which data interval each covers.
//!
//! Everything here is pure: no IO, and the current time is always passed in.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use croner::parser::{CronParser, Seconds};

/// The schedule forms a DAG may declare.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// No time-based runs; only manual ones.
    Never,
    /// Exactly one run, at the start date.
    Once,
    /// A cron expression (or an alias of one). `data_interval` false is trigger mode.
    Cron {
        /// What the user wrote, alias included, so it can be shown back unchanged.
        expression: String,
        /// Shared: croner's compiled pattern takes about 5 KB, and the DAGs of a folder usually
        /// use a handful of schedules between them (see [`CronCache`]).
        cron: Arc<croner::Cron>,
        data_interval: bool,
    },
    /// Runs only when the named datasets are updated.
    Datasets(Vec<String>),
}

/// Compiled cron patterns by expression, so the DAGs a loader keeps share one per expression.
/// Holds them weakly: a pattern no DAG uses any more is dropped with its last DAG.
#[derive(Debug, Default)]
pub struct CronCache {
    patterns: HashMap<String, Weak<croner::Cron>>,
}

impl CronCache {
    /// The pattern already kept for `expression`, or `compiled`, kept from now on.
    pub fn share(&mut self, expression: &str, compiled: Arc<croner::Cron>) -> Arc<croner::Cron> {
        if let Some(kept) = self.patterns.get(expression).and_then(Weak::upgrade) {
            return kept;
        }
        if self.patterns.len() >= 64 {
            self.patterns.retain(|_, pattern| pattern.strong_count() > 0);
        }
        self.patterns.insert(expression.to_string(), Arc::downgrade(&compiled));
        compiled
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "`{expression}` is not a valid cron expression: {reason}; use 5 fields (minute hour day-of-month month day-of-week) or one of @hourly, @daily, @weekly, @monthly, @quarterly, @yearly, @once"
    )]
    InvalidCron { expression: String, reason: String },
    #[error(
        "`{expression}` never fires: no date matches it (e.g. a 31st in a month of 30 days, or 30 February); fix the day-of-month or month field"
    )]
    NeverFires { expression: String },
}

/// Whether `cron` matches some minute of the calendar, decided without the clock so a file
/// validates the same way every day. The 28 years from 2000-01-01 hold every combination of
/// weekday, month day and leap year the Gregorian calendar has up to 2099 (its weekdays repeat
/// every 28 years while every fourth year is a leap year), so a pattern that matches no day in
/// them, like `0 0 31 2 *`, matches none at all, and `0 0 29 2 *` matches in 2000.
///
/// The days are checked one by one (about 10,000 checks) rather than by asking croner for the
/// next occurrence: croner gives up on a pattern that never fires only at the year 5000, after
/// some 100 ms of searching, which a folder of such files would multiply.
pub fn ever_fires(cron: &croner::Cron) -> bool {
    let pattern = &cron.pattern;
    let some_hour = (0..24).any(|hour| pattern.hour_match(hour).unwrap_or(false));
    let some_minute = (0..60).any(|minute| pattern.minute_match(minute).unwrap_or(false));
    let Some(first_day) = NaiveDate::from_ymd_opt(2000, 1, 1) else {
        return true;
    };
    some_hour
        && some_minute
        && first_day.iter_days().take_while(|day| day.year() < 2028).any(|day| {
            pattern.month_match(day.month()).unwrap_or(false)
                && pattern
                    .day_match(day.year(), day.month(), day.day(), cron_weekday(day))
                    .unwrap_or(false)
        })
}

/// croner's own weekday type, from chrono's.
fn cron_weekday(day: NaiveDate) -> croner::Weekday {
    croner::Weekday::from_days_from_sunday(day.weekday().num_days_from_sunday())
}

impl Schedule {
    /// Parses a string schedule: cron or @alias (`@once` gives Once). `data_interval` false = trigger mode (only meaningful for cron; for @once ignore).
    pub fn parse(text: &str, data_interval: bool) -> Result<Schedule, ScheduleError> {
        let expression = text.trim();
        let invalid = |reason: String| ScheduleError::InvalidCron {
            expression: expression.to_string(),
            reason,
        };
        let pattern = if expression.starts_with('@') {
            match expression.to_ascii_lowercase().as_str() {
                "@once" => return Ok(Schedule::Once),
                "@hourly" => "0 * * * *",
                "@daily" | "@midnight" => "0 0 * * *",
                "@weekly" => "0 0 * * 0",
                "@monthly" => "0 0 1 * *",
                // croner has no @quarterly, and its own alias handling is bypassed so that
                // every alias is resolved in one place.
                "@quarterly" => "0 0 1 */3 *",
                "@yearly" | "@annually" => "0 0 1 1 *",
                _ => return Err(invalid(format!("unknown alias `{expression}`"))),
            }
        } else {
            expression
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| invalid(e.to_string()))?;
        if !ever_fires(&cron) {
            return Err(ScheduleError::NeverFires {
                expression: expression.to_string(),
            });
        }
        Ok(Schedule::Cron {
            expression: expression.to_string(),
            cron: Arc::new(cron),
            data_interval,
        })
    }

    /// The same schedule, its compiled pattern shared through `cache` with every other schedule
    /// of the same expression.
    pub fn shared(self, cache: &mut CronCache) -> Schedule {
        match self {
            Schedule::Cron {
                expression,
                cron,
                data_interval,
            } => {
                let cron = cache.share(&expression, cron);
                Schedule::Cron {
                    expression,
                    cron,
                    data_interval,
                }
            }
            other => other,
        }
    }

    /// What the user wrote, for display: "0 3 * * *", "@daily", "@once", "None" for Never, "datasets: a, b" for Datasets.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Never => "None".to_string(),
            Schedule::Once => "@once".to_string(),
            Schedule::Cron { expression, .. } => expression.clone(),
            Schedule::Datasets(names) => format!("datasets: {}", names.join(", ")),
        }
    }

    /// true for Cron and Once.
    pub fn is_time_based(&self) -> bool {
        matches!(self, Schedule::Cron { .. } | Schedule::Once)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataInterval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl DataInterval {
    fn at(instant: DateTime<Utc>) -> DataInterval {
        DataInterval {
            start: instant,
            end: instant,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRun {
    pub logical_date: DateTime<Utc>,
    pub data_interval: DataInterval,
    pub run_after: DateTime<Utc>,
}

impl PlannedRun {
    fn at(instant: DateTime<Utc>) -> PlannedRun {
        PlannedRun {
            logical_date: instant,
            data_interval: DataInterval::at(instant),
            run_after: instant,
        }
    }
}

/// A DAG's schedule bound to its time zone and date range.
#[derive(Debug, Clone)]
pub struct Timetable {
    pub schedule: Schedule,
    pub timezone: Tz,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

/// Bounds the matches a fire-time search may pass over because they resolve to instants on
/// the wrong side of its origin. Only DST folds and gaps cause that, and each spans hours of
/// minute matches at most; four days of minutes leaves room for the odd historical
/// day-long transition.
const MAX_SKIPPED_MATCHES: usize = 4 * 24 * 60;

/// How far past a nonexistent local time the search for the end of its gap goes. Real gaps
/// last an hour or two; a day covers the historical date-line jumps.
const MAX_GAP_MINUTES: i64 = 26 * 60;

impl Timetable {
    /// The scheduled run right after the one whose logical date is `last` (the first one when None), ignoring the clock. None when the schedule has no more runs (end_date, @once done, Never, Datasets, no start_date).
    pub fn next_after(&self, last: Option<DateTime<Utc>>) -> Option<PlannedRun> {
        let start_date = self.start_date?;
        match &self.schedule {
            Schedule::Never | Schedule::Datasets(_) => None,
            Schedule::Once => match last {
                None => self.run_starting(start_date),
                Some(_) => None,
            },
            Schedule::Cron { cron, .. } => {
                let first = self.next_fire(cron, start_date, true)?;
                let start = match last {
                    None => first,
                    // `last` may predate start_date if start_date was moved later since.
                    Some(last) => self.next_fire(cron, last, false)?.max(first),
                };
                self.run_starting(start)
            }
        }
    }

    /// The next run the scheduler should create, given the last scheduled run's logical date, catchup and now (§3.2). May have run_after > now (then it is not due yet; the caller waits until run_after).
    pub fn next_to_create(&self, last: Option<DateTime<Utc>>, catchup: bool, now: DateTime<Utc>) -> Option<PlannedRun> {
        let next = self.next_after(last)?;
        if catchup || next.run_after > now {
            return Some(next);
        }
        // Found from `now` backwards rather than by walking forward from `next`, which on a
        // minutely schedule with an old start_date would mean millions of steps.
        match self.latest_complete_run(now) {
            Some(latest) if latest.logical_date > next.logical_date => Some(latest),
            _ => Some(next),
        }
    }

    /// Up to `n` scheduled runs with run_after strictly greater than `after`, in order (for `weir dags next-runs`).
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<PlannedRun> {
        let first = match &self.schedule {
            Schedule::Never | Schedule::Datasets(_) => None,
            Schedule::Once => self
                .start_date
                .filter(|&start| start > after)
                .and_then(|start| self.run_starting(start)),
            Schedule::Cron {
                cron, data_interval, ..
            } => self.start_date.and_then(|start_date| {
                let earliest = self.next_fire(cron, start_date, true)?;
                let next_fire = self.next_fire(cron, after, false)?;
                let start = if *data_interval {
                    // The interval ending at the next fire is the first still to be created.
                    self.prev_fire(cron, next_fire, false)
                        .map_or(earliest, |start| start.max(earliest))
                } else {
                    next_fire.max(earliest)
                };
                self.run_starting(start)
            }),
        };
        std::iter::successors(first, |run| self.following(run))
            .take(n)
            .collect()
    }

    /// Every scheduled run whose logical date is within [from, to], oldest first (for backfill).
    pub fn runs_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<PlannedRun> {
        self.runs_in(from, to).collect()
    }

    /// The runs of `runs_between`, computed one at a time as they are taken, so a caller can stop
    /// early on a range of millions of dates.
    pub fn runs_in(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> impl Iterator<Item = PlannedRun> + '_ {
        let first = match &self.schedule {
            Schedule::Never | Schedule::Datasets(_) => None,
            Schedule::Once => self
                .start_date
                .filter(|&start| start >= from)
                .and_then(|start| self.run_starting(start)),
            Schedule::Cron { cron, .. } => self.start_date.and_then(|start_date| {
                let earliest = self.next_fire(cron, start_date, true)?;
                let start = self.next_fire(cron, from, true)?.max(earliest);
                self.run_starting(start)
            }),
        };
        std::iter::successors(first, |run| self.following(run)).take_while(move |run| run.logical_date <= to)
    }

    /// The data interval of a manual run at `logical_date` (§3.3).
    pub fn manual_interval(&self, logical_date: DateTime<Utc>) -> DataInterval {
        match &self.schedule {
            Schedule::Cron {
                data_interval: true, ..
            } => self
                .latest_complete_run(logical_date)
                .map_or(DataInterval::at(logical_date), |run| run.data_interval),
            _ => DataInterval::at(logical_date),
        }
    }

    /// The run whose logical date is `start`, which the caller guarantees is a fire time (or
    /// start_date for @once) not before the first run. None past end_date.
    fn run_starting(&self, start: DateTime<Utc>) -> Option<PlannedRun> {
        if self.end_date.is_some_and(|end_date| start > end_date) {
            return None;
        }
        match &self.schedule {
            Schedule::Never | Schedule::Datasets(_) => None,
            Schedule::Once
            | Schedule::Cron {
                data_interval: false, ..
            } => Some(PlannedRun::at(start)),
            Schedule::Cron { cron, .. } => {
                let end = self.next_fire(cron, start, false)?;
                Some(PlannedRun {
                    logical_date: start,
                    data_interval: DataInterval { start, end },
                    run_after: end,
                })
            }
        }
    }

    /// The run after `run`, which is itself a scheduled run, so no start_date check is needed.
    fn following(&self, run: &PlannedRun) -> Option<PlannedRun> {
        match &self.schedule {
            Schedule::Never | Schedule::Datasets(_) | Schedule::Once => None,
            Schedule::Cron {
                data_interval: true, ..
            } => self.run_starting(run.data_interval.end),
            Schedule::Cron { cron, .. } => self.run_starting(self.next_fire(cron, run.logical_date, false)?),
        }
    }

    /// The newest cron run with run_after <= `at`, within start_date and end_date (start_date
    /// is no bound when unset, so manual runs still get a cron interval).
    fn latest_complete_run(&self, at: DateTime<Utc>) -> Option<PlannedRun> {
        let Schedule::Cron {
            cron, data_interval, ..
        } = &self.schedule
        else {
            return None;
        };
        let newest_fire = self.prev_fire(cron, at, true)?;
        let mut start = if *data_interval {
            self.prev_fire(cron, newest_fire, false)?
        } else {
            newest_fire
        };
        if let Some(end_date) = self.end_date
            && start > end_date
        {
            start = self.prev_fire(cron, end_date, true)?;
        }
        if let Some(start_date) = self.start_date
            && start < self.next_fire(cron, start_date, true)?
        {
            return None;
        }
        self.run_starting(start)
    }

    /// The first fire time after `origin` (at or after it when `inclusive`).
    ///
    /// croner's own time-zone handling only applies the DST rules to fixed-time patterns:
    /// it skips gap times of e.g. `30 * * * *` and fires hourly patterns twice in a fold.
    /// So the pattern is matched on the naive wall clock and each match resolved here,
    /// which applies the rules to every pattern alike.
    fn next_fire(&self, cron: &croner::Cron, origin: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let mut cursor = whole_seconds(origin.with_timezone(&self.timezone).naive_local());
        let mut inclusive_search = true;
        // Matches that resolve to or before `origin` come from the later half of a fold (their
        // first occurrence is already past) or from a gap that resolves onto `origin`.
        for _ in 0..MAX_SKIPPED_MATCHES {
            let wall = cron.find_next_occurrence(&cursor, inclusive_search).ok()?;
            let fire = self.resolve(wall)?;
            if fire > origin || (inclusive && fire == origin) {
                return Some(fire);
            }
            cursor = wall;
            inclusive_search = false;
        }
        None
    }

    /// The last fire time before `origin` (at or before it when `inclusive`).
    fn prev_fire(&self, cron: &croner::Cron, origin: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let local = whole_seconds(origin.with_timezone(&self.timezone).naive_local());
        // In the later half of a fold, wall times after `local` up to the fold's end first
        // occurred before `origin`, so they are candidates too: start past them.
        let mut cursor = match self.timezone.from_local_datetime(&local) {
            LocalResult::Ambiguous(earlier, later) => local + (later - earlier),
            _ => local,
        };
        let mut inclusive_search = true;
        for _ in 0..MAX_SKIPPED_MATCHES {
            let wall = cron.find_previous_occurrence(&cursor, inclusive_search).ok()?;
            let fire = self.resolve(wall)?;
            if fire < origin || (inclusive && fire == origin) {
                return Some(fire);
            }
            cursor = wall;
            inclusive_search = false;
        }
        None
    }

    /// The instant a wall-clock fire time means: its first occurrence when the clock
    /// repeats it, and the first instant after the gap when the clock skips it.
    fn resolve(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.timezone.from_local_datetime(&wall) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => Some(instant.with_timezone(&Utc)),
            LocalResult::None => self.end_of_gap(wall),
        }
    }

    /// The instant the clock jumps to past the gap containing `wall`: the instant of the
    /// first valid wall time after it. Minutes find it quickly; seconds then pin it down,
    /// since some historical offsets are not whole minutes.
    fn end_of_gap(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let exists =
            |candidate: NaiveDateTime| !matches!(self.timezone.from_local_datetime(&candidate), LocalResult::None);
        let mut first_valid = (1..=MAX_GAP_MINUTES)
            .map(|minutes| wall + TimeDelta::minutes(minutes))
            .find(|&candidate| exists(candidate))?;
        for _ in 0..59 {
            let earlier = first_valid - TimeDelta::seconds(1);
            if !exists(earlier) {
                break;
            }
            first_valid = earlier;
        }
        match self.timezone.from_local_datetime(&first_valid) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => Some(instant.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    }
}

/// Cron matches fall on whole seconds, so sub-second parts only get in the way of the
/// inclusive comparisons; the callers compare against the exact origin instead.
fn whole_seconds(wall: NaiveDateTime) -> NaiveDateTime {
    wall.with_nanosecond(0).unwrap_or(wall)
}

#[cfg(test)]
mod tests;
