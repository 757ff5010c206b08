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
mod tests {

    #[test]
    fn schedules_with_the_same_expression_share_one_compiled_pattern_while_a_dag_uses_it() {
        let mut cache = CronCache::default();
        let pattern = |schedule: &Schedule| match schedule {
            Schedule::Cron { cron, .. } => Arc::clone(cron),
            other => panic!("expected a cron schedule, got {other:?}"),
        };
        let first = Schedule::parse("@daily", true).unwrap().shared(&mut cache);
        let second = Schedule::parse("@daily", true).unwrap().shared(&mut cache);
        let hourly = Schedule::parse("@hourly", true).unwrap().shared(&mut cache);
        assert!(Arc::ptr_eq(&pattern(&first), &pattern(&second)));
        assert!(!Arc::ptr_eq(&pattern(&first), &pattern(&hourly)));
        let weak = Arc::downgrade(&pattern(&first));
        drop((first, second));
        assert!(weak.upgrade().is_none(), "the cache does not keep a pattern alive");
    }
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Asia::Seoul;
    use std::time::{Duration, Instant};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test timestamps are RFC 3339")
            .with_timezone(&Utc)
    }

    fn cron(expression: &str) -> Schedule {
        Schedule::parse(expression, true).expect("test expressions are valid")
    }

    fn trigger(expression: &str) -> Schedule {
        Schedule::parse(expression, false).expect("test expressions are valid")
    }

    fn timetable(schedule: Schedule, timezone: Tz, start: &str, end: Option<&str>) -> Timetable {
        Timetable {
            schedule,
            timezone,
            start_date: Some(utc(start)),
            end_date: end.map(utc),
        }
    }

    fn daily_utc(start: &str, end: Option<&str>) -> Timetable {
        timetable(cron("@daily"), Tz::UTC, start, end)
    }

    fn interval(start: &str, end: &str) -> DataInterval {
        DataInterval {
            start: utc(start),
            end: utc(end),
        }
    }

    fn interval_run(start: &str, end: &str) -> PlannedRun {
        PlannedRun {
            logical_date: utc(start),
            data_interval: interval(start, end),
            run_after: utc(end),
        }
    }

    fn point_run(at: &str) -> PlannedRun {
        PlannedRun::at(utc(at))
    }

    /// The logical dates of the first `n` runs, walking with `next_after`.
    fn first_logical_dates(table: &Timetable, n: usize) -> Vec<DateTime<Utc>> {
        std::iter::successors(table.next_after(None), |run| table.next_after(Some(run.logical_date)))
            .take(n)
            .map(|run| run.logical_date)
            .collect()
    }

    fn all(texts: &[&str]) -> Vec<DateTime<Utc>> {
        texts.iter().map(|text| utc(text)).collect()
    }

    #[test]
    fn aliases_and_expressions_parse_to_the_expected_first_runs() {
        let cases = [
            ("@hourly", "2026-01-01T01:00:00Z"),
            ("@daily", "2026-01-02T00:00:00Z"),
            ("@midnight", "2026-01-02T00:00:00Z"),
            // 2026-01-01 is a Thursday, so 2026-01-04 is the first Sunday.
            ("@weekly", "2026-01-04T00:00:00Z"),
            ("@monthly", "2026-02-01T00:00:00Z"),
            ("@quarterly", "2026-04-01T00:00:00Z"),
            ("@yearly", "2027-01-01T00:00:00Z"),
            ("@annually", "2027-01-01T00:00:00Z"),
            ("@DAILY", "2026-01-02T00:00:00Z"),
            ("0 0 * * 7", "2026-01-04T00:00:00Z"),
            ("0 0 * * 1", "2026-01-05T00:00:00Z"),
            ("  15 6 * * *  ", "2026-01-01T06:15:00Z"),
        ];
        for (expression, first_fire) in cases {
            let table = timetable(cron(expression), Tz::UTC, "2026-01-01T00:01:00Z", None);
            let first = table.next_after(None).expect("a first run");
            assert_eq!(first.logical_date, utc(first_fire), "{expression}");
        }
    }

    #[test]
    fn weekly_alias_fires_on_sunday_midnight() {
        let table = timetable(cron("@weekly"), Tz::UTC, "2026-01-01T00:00:00Z", None);
        assert_eq!(
            table.next_after(None),
            Some(interval_run("2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"))
        );
    }

    #[test]
    fn quarterly_alias_fires_on_the_first_of_every_third_month() {
        let table = timetable(cron("@quarterly"), Tz::UTC, "2026-01-01T00:00:00Z", None);
        assert_eq!(
            first_logical_dates(&table, 5),
            all(&[
                "2026-01-01T00:00:00Z",
                "2026-04-01T00:00:00Z",
                "2026-07-01T00:00:00Z",
                "2026-10-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ])
        );
    }

    #[test]
    fn once_alias_parses_to_once_whatever_the_mode() {
        assert!(matches!(Schedule::parse("@once", true), Ok(Schedule::Once)));
        assert!(matches!(Schedule::parse("@once", false), Ok(Schedule::Once)));
    }

    #[test]
    fn invalid_expressions_give_the_documented_message() {
        let cases = [
            ("0 0 * * * *", "Pattern must have 5 fields"),
            ("0 25 * * *", "out of bounds"),
            ("60 0 * * *", "out of bounds"),
            ("0 0 32 * *", "out of bounds"),
            ("garbage", "Pattern must have 5 fields"),
            ("* * * *", "Pattern must have 5 fields"),
            ("", "empty"),
            ("@fortnightly", "unknown alias `@fortnightly`"),
        ];
        for (expression, reason) in cases {
            let error = Schedule::parse(expression, true).expect_err(expression);
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("`{expression}` is not a valid cron expression: ")),
                "{message}"
            );
            assert!(message.contains(reason), "{message}");
            assert!(
                message.ends_with(
                    "; use 5 fields (minute hour day-of-month month day-of-week) or one of \
                     @hourly, @daily, @weekly, @monthly, @quarterly, @yearly, @once"
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn a_cron_that_matches_no_date_is_refused_and_leap_days_are_dates() {
        for expression in ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "15 10 31 11 *"] {
            let error = Schedule::parse(expression, true).expect_err(expression);
            assert_eq!(
                error.to_string(),
                format!(
                    "`{expression}` never fires: no date matches it (e.g. a 31st in a month of 30 \
                     days, or 30 February); fix the day-of-month or month field"
                )
            );
        }
        // A fifth Friday in February needs a leap year starting February on a Friday (2008).
        for expression in [
            "0 0 29 2 *",
            "0 0 29 2 1",
            "0 0 31 1-2 *",
            "0 0 13 * 5",
            "0 0 L 2 *",
            "0 0 * 2 5#5",
            "@yearly",
        ] {
            assert!(Schedule::parse(expression, true).is_ok(), "{expression} fires");
        }
        let leap_day = timetable(cron("0 0 29 2 *"), Tz::UTC, "2026-01-01T00:00:00Z", None);
        assert_eq!(
            first_logical_dates(&leap_day, 2),
            all(&["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"])
        );
    }

    #[test]
    fn describe_shows_what_the_user_wrote() {
        let cases = [
            (cron("0 3 * * *"), "0 3 * * *"),
            (cron("@daily"), "@daily"),
            (trigger("*/5 * * * *"), "*/5 * * * *"),
            (Schedule::Once, "@once"),
            (Schedule::Never, "None"),
            (
                Schedule::Datasets(vec!["a".to_string(), "b".to_string()]),
                "datasets: a, b",
            ),
        ];
        for (schedule, expected) in cases {
            assert_eq!(schedule.describe(), expected);
        }
    }

    #[test]
    fn only_cron_and_once_are_time_based() {
        let cases = [
            (cron("@daily"), true),
            (trigger("@daily"), true),
            (Schedule::Once, true),
            (Schedule::Never, false),
            (Schedule::Datasets(vec!["a".to_string()]), false),
        ];
        for (schedule, expected) in cases {
            assert_eq!(schedule.is_time_based(), expected, "{}", schedule.describe());
        }
    }

    #[test]
    fn first_interval_starts_at_the_first_fire_time_at_or_after_start_date() {
        let cases = [
            (
                "2026-01-01T00:00:00Z",
                interval_run("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            ),
            (
                "2026-01-01T10:17:00Z",
                interval_run("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"),
            ),
            (
                "2025-12-31T23:59:59.500Z",
                interval_run("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            ),
        ];
        for (start, expected) in cases {
            assert_eq!(daily_utc(start, None).next_after(None), Some(expected), "{start}");
        }
    }

    #[test]
    fn next_after_follows_the_given_logical_date() {
        let table = daily_utc("2026-01-01T00:00:00Z", None);
        let cases = [
            (
                "2026-01-05T00:00:00Z",
                interval_run("2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"),
            ),
            // A manual run's off-grid logical date leads to the next fire time.
            (
                "2026-01-05T12:00:00Z",
                interval_run("2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"),
            ),
            // A last run from before a later-moved start_date does not pull runs before it.
            (
                "2025-06-01T00:00:00Z",
                interval_run("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            ),
        ];
        for (last, expected) in cases {
            assert_eq!(table.next_after(Some(utc(last))), Some(expected), "{last}");
        }
    }

    #[test]
    fn catchup_creates_every_missed_interval_oldest_first() {
        let table = daily_utc("2026-01-01T00:00:00Z", None);
        let now = utc("2026-01-04T06:00:00Z");
        let mut last = None;
        let mut created = Vec::new();
        while let Some(run) = table.next_to_create(last, true, now) {
            if run.run_after > now {
                created.push(run);
                break;
            }
            last = Some(run.logical_date);
            created.push(run);
        }
        assert_eq!(
            created,
            vec![
                interval_run("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
                interval_run("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"),
                interval_run("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
                // Not due yet: the caller waits for its run_after.
                interval_run("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"),
            ]
        );
    }

    #[test]
    fn without_catchup_only_the_newest_complete_interval_is_created() {
        let table = daily_utc("2026-01-01T00:00:00Z", None);
        let cases = [
            // Several complete intervals: skip to the newest.
            (
                None,
                "2026-01-04T06:00:00Z",
                interval_run("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
            ),
            (
                Some("2026-01-01T00:00:00Z"),
                "2026-01-04T06:00:00Z",
                interval_run("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
            ),
            // An interval ending exactly now is complete.
            (
                None,
                "2026-01-04T00:00:00Z",
                interval_run("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
            ),
            // The newest complete interval already ran: never repeat it, wait for the next.
            (
                Some("2026-01-03T00:00:00Z"),
                "2026-01-04T06:00:00Z",
                interval_run("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"),
            ),
            // A last run newer than anything complete (e.g. backfilled ahead) is not repeated.
            (
                Some("2026-01-09T00:00:00Z"),
                "2026-01-04T06:00:00Z",
                interval_run("2026-01-10T00:00:00Z", "2026-01-11T00:00:00Z"),
            ),
            // Nothing complete yet: the first interval, due in the future.
            (
                None,
                "2026-01-01T12:00:00Z",
                interval_run("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            ),
            // start_date in the future.
            (
                None,
                "2025-12-01T00:00:00Z",
                interval_run("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            ),
        ];
        for (last, now, expected) in cases {
            assert_eq!(
                table.next_to_create(last.map(utc), false, utc(now)),
                Some(expected),
                "last {last:?}, now {now}"
            );
        }
    }

    #[test]
    fn without_catchup_end_date_bounds_the_newest_interval() {
        let table = daily_utc("2026-01-01T00:00:00Z", Some("2026-01-03T00:00:00Z"));
        let now = utc("2026-02-01T00:00:00Z");
        assert_eq!(
            table.next_to_create(None, false, now),
            Some(interval_run("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"))
        );
        assert_eq!(
            table.next_to_create(Some(utc("2026-01-03T00:00:00Z")), false, now),
            None
        );
    }

    #[test]
    fn without_catchup_trigger_mode_skips_to_the_newest_fire_time() {
        let table = timetable(trigger("0 * * * *"), Tz::UTC, "2026-01-01T00:00:00Z", None);
        let cases = [
            (None, "2026-01-01T05:30:00Z", point_run("2026-01-01T05:00:00Z")),
            (
                Some("2026-01-01T05:00:00Z"),
                "2026-01-01T05:30:00Z",
                point_run("2026-01-01T06:00:00Z"),
            ),
            (None, "2025-12-31T23:00:00Z", point_run("2026-01-01T00:00:00Z")),
        ];
        for (last, now, expected) in cases {
            assert_eq!(
                table.next_to_create(last.map(utc), false, utc(now)),
                Some(expected),
                "last {last:?}, now {now}"
            );
        }
    }

    #[test]
    fn without_catchup_a_minutely_schedule_from_years_ago_is_fast() {
        let table = timetable(cron("* * * * *"), Tz::UTC, "2015-01-01T00:00:00Z", None);
        let started = Instant::now();
        let run = table.next_to_create(None, false, utc("2026-06-15T12:34:56Z"));
        assert_eq!(run, Some(interval_run("2026-06-15T12:33:00Z", "2026-06-15T12:34:00Z")));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn end_date_allows_an_interval_starting_exactly_on_it_and_none_after() {
        let table = daily_utc("2026-01-01T00:00:00Z", Some("2026-01-03T00:00:00Z"));
        assert_eq!(
            table.next_after(Some(utc("2026-01-02T00:00:00Z"))),
            Some(interval_run("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"))
        );
        assert_eq!(table.next_after(Some(utc("2026-01-03T00:00:00Z"))), None);
        assert_eq!(first_logical_dates(&table, 10).len(), 3);

        let triggered = timetable(
            trigger("@daily"),
            Tz::UTC,
            "2026-01-01T00:00:00Z",
            Some("2026-01-02T12:00:00Z"),
        );
        assert_eq!(
            first_logical_dates(&triggered, 10),
            all(&["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])
        );
    }

    #[test]
    fn once_runs_exactly_once_at_start_date() {
        let table = timetable(Schedule::Once, Tz::UTC, "2026-01-01T10:17:00Z", None);
        let run = point_run("2026-01-01T10:17:00Z");
        assert_eq!(table.next_after(None), Some(run));
        assert_eq!(table.next_after(Some(run.logical_date)), None);
        assert_eq!(
            table.next_to_create(None, false, utc("2027-01-01T00:00:00Z")),
            Some(run)
        );
        assert_eq!(
            table.next_to_create(Some(run.logical_date), true, utc("2027-01-01T00:00:00Z")),
            None
        );
        assert_eq!(table.upcoming(utc("2026-01-01T00:00:00Z"), 3), vec![run]);
        assert_eq!(table.upcoming(utc("2026-01-01T10:17:00Z"), 3), vec![]);
    }

    #[test]
    fn never_and_datasets_have_no_time_based_runs() {
        for schedule in [Schedule::Never, Schedule::Datasets(vec!["a".to_string()])] {
            let table = timetable(schedule, Tz::UTC, "2026-01-01T00:00:00Z", None);
            let now = utc("2026-02-01T00:00:00Z");
            assert_eq!(table.next_after(None), None);
            assert_eq!(table.next_to_create(None, true, now), None);
            assert_eq!(table.next_to_create(None, false, now), None);
            assert_eq!(table.upcoming(utc("2026-01-01T00:00:00Z"), 5), vec![]);
            assert_eq!(table.runs_between(utc("2026-01-01T00:00:00Z"), now), vec![]);
        }
    }

    #[test]
    fn without_start_date_nothing_is_scheduled() {
        let table = Timetable {
            schedule: cron("@daily"),
            timezone: Tz::UTC,
            start_date: None,
            end_date: None,
        };
        assert_eq!(table.next_after(None), None);
        assert_eq!(table.next_after(Some(utc("2026-01-01T00:00:00Z"))), None);
        assert_eq!(table.upcoming(utc("2026-01-01T00:00:00Z"), 3), vec![]);
    }

    #[test]
    fn trigger_mode_runs_at_each_fire_time_with_an_empty_interval() {
        let table = timetable(trigger("0 */6 * * *"), Tz::UTC, "2026-01-01T01:00:00Z", None);
        let first = table.next_after(None);
        assert_eq!(first, Some(point_run("2026-01-01T06:00:00Z")));
        assert_eq!(
            table.next_after(Some(utc("2026-01-01T06:00:00Z"))),
            Some(point_run("2026-01-01T12:00:00Z"))
        );
        assert_eq!(
            table.next_to_create(None, true, utc("2026-01-02T00:00:00Z")),
            Some(point_run("2026-01-01T06:00:00Z"))
        );
    }

    #[test]
    fn new_york_spring_forward_fires_a_skipped_time_once_right_after_the_gap() {
        let cases = [
            (
                "30 2 * * *",
                vec![
                    "2026-03-07T07:30:00Z",
                    // 02:30 does not exist on 2026-03-08: 03:00 EDT.
                    "2026-03-08T07:00:00Z",
                    "2026-03-09T06:30:00Z",
                ],
            ),
            (
                "30 * * * *",
                vec![
                    "2026-03-08T05:30:00Z",
                    "2026-03-08T06:30:00Z",
                    // 02:30 does not exist: 03:00 EDT, then the normal 03:30.
                    "2026-03-08T07:00:00Z",
                    "2026-03-08T07:30:00Z",
                ],
            ),
            (
                "*/20 * * * *",
                vec![
                    "2026-03-08T06:20:00Z",
                    "2026-03-08T06:40:00Z",
                    // 02:00, 02:20 and 02:40 collapse into 03:00 EDT, which also matches.
                    "2026-03-08T07:00:00Z",
                    "2026-03-08T07:20:00Z",
                ],
            ),
        ];
        for (expression, expected) in cases {
            let start = expected[0];
            for schedule in [trigger(expression), cron(expression)] {
                let table = timetable(schedule, New_York, start, None);
                assert_eq!(
                    first_logical_dates(&table, expected.len()),
                    all(&expected),
                    "{expression}"
                );
            }
        }
    }

    #[test]
    fn new_york_fall_back_fires_a_repeated_time_once_at_its_first_occurrence() {
        let cases = [
            (
                "30 1 * * *",
                vec![
                    "2026-10-31T05:30:00Z",
                    // 01:30 EDT; the 01:30 EST an hour later does not fire.
                    "2026-11-01T05:30:00Z",
                    "2026-11-02T06:30:00Z",
                ],
            ),
            (
                "0 * * * *",
                vec![
                    "2026-11-01T04:00:00Z",
                    "2026-11-01T05:00:00Z",
                    // 01:00 EST (06:00Z) repeats 01:00 and does not fire.
                    "2026-11-01T07:00:00Z",
                    "2026-11-01T08:00:00Z",
                ],
            ),
        ];
        for (expression, expected) in cases {
            let start = expected[0];
            for schedule in [trigger(expression), cron(expression)] {
                let table = timetable(schedule, New_York, start, None);
                assert_eq!(
                    first_logical_dates(&table, expected.len()),
                    all(&expected),
                    "{expression}"
                );
            }
        }
    }

    #[test]
    fn searching_backwards_across_dst_agrees_with_searching_forwards() {
        let cases = [
            ("30 2 * * *", "2026-03-01T00:00:00Z", "2026-03-15T00:00:00Z"),
            ("30 1 * * *", "2026-10-25T00:00:00Z", "2026-11-08T00:00:00Z"),
            ("*/15 * * * *", "2026-11-01T03:00:00Z", "2026-11-01T09:00:00Z"),
            ("*/15 * * * *", "2026-03-08T05:00:00Z", "2026-03-08T09:00:00Z"),
        ];
        for (expression, from, to) in cases {
            let table = timetable(cron(expression), New_York, from, None);
            let runs = table.runs_between(utc(from), utc(to));
            assert!(runs.len() > 3, "{expression}");
            for pair in runs.windows(2) {
                assert_eq!(pair[0].data_interval.end, pair[1].logical_date, "{expression}");
                assert!(pair[0].logical_date < pair[1].logical_date, "{expression}");
            }
            for run in &runs {
                assert_eq!(
                    table.manual_interval(run.run_after),
                    run.data_interval,
                    "{expression} at {}",
                    run.run_after
                );
            }
        }
    }

    #[test]
    fn fall_back_complete_interval_is_found_from_the_repeated_hour() {
        // At 01:50 EST (06:50Z) the newest complete quarter-hour interval ended at 01:45 EDT
        // (05:45Z); the repeated 01:00-01:45 EST times do not fire, so no later one exists.
        let table = timetable(cron("*/15 * * * *"), New_York, "2026-11-01T00:00:00Z", None);
        assert_eq!(
            table.manual_interval(utc("2026-11-01T06:50:00Z")),
            interval("2026-11-01T05:30:00Z", "2026-11-01T05:45:00Z")
        );
        assert_eq!(
            table.next_to_create(None, false, utc("2026-11-01T06:50:00Z")),
            Some(interval_run("2026-11-01T05:30:00Z", "2026-11-01T05:45:00Z"))
        );
    }

    #[test]
    fn seoul_three_am_daily_is_six_pm_utc_the_day_before() {
        let table = timetable(cron("0 3 * * *"), Seoul, "2026-01-01T00:00:00Z", None);
        assert_eq!(
            table.next_after(None),
            Some(interval_run("2026-01-01T18:00:00Z", "2026-01-02T18:00:00Z"))
        );
    }

    #[test]
    fn upcoming_lists_runs_due_strictly_after_the_given_time() {
        let table = daily_utc("2026-01-01T00:00:00Z", Some("2026-01-06T00:00:00Z"));
        let cases = [
            (
                "2026-01-03T12:00:00Z",
                2,
                vec![
                    interval_run("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
                    interval_run("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"),
                ],
            ),
            // A run due exactly at `after` is not upcoming.
            (
                "2026-01-04T00:00:00Z",
                1,
                vec![interval_run("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z")],
            ),
            // Before start_date, the first run comes first.
            (
                "2025-06-01T00:00:00Z",
                1,
                vec![interval_run("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")],
            ),
            // end_date cuts the list short.
            (
                "2026-01-05T12:00:00Z",
                5,
                vec![
                    interval_run("2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"),
                    interval_run("2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"),
                ],
            ),
            ("2026-01-03T12:00:00Z", 0, vec![]),
        ];
        for (after, n, expected) in cases {
            assert_eq!(table.upcoming(utc(after), n), expected, "after {after}");
        }

        let triggered = timetable(trigger("@hourly"), Tz::UTC, "2026-01-01T00:00:00Z", None);
        assert_eq!(
            triggered.upcoming(utc("2026-01-01T05:00:00Z"), 2),
            vec![point_run("2026-01-01T06:00:00Z"), point_run("2026-01-01T07:00:00Z")]
        );
    }

    #[test]
    fn runs_between_lists_runs_with_logical_dates_in_the_closed_range() {
        let table = daily_utc("2026-01-02T00:00:00Z", Some("2026-01-05T00:00:00Z"));
        let cases = [
            (
                "2026-01-02T00:00:00Z",
                "2026-01-03T00:00:00Z",
                all(&["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
            ),
            (
                "2026-01-02T06:00:00Z",
                "2026-01-03T23:00:00Z",
                all(&["2026-01-03T00:00:00Z"]),
            ),
            // Clipped to start_date and end_date.
            (
                "2025-12-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
                all(&[
                    "2026-01-02T00:00:00Z",
                    "2026-01-03T00:00:00Z",
                    "2026-01-04T00:00:00Z",
                    "2026-01-05T00:00:00Z",
                ]),
            ),
            ("2026-01-03T06:00:00Z", "2026-01-03T07:00:00Z", vec![]),
        ];
        for (from, to, expected) in cases {
            let logical: Vec<_> = table
                .runs_between(utc(from), utc(to))
                .iter()
                .map(|run| run.logical_date)
                .collect();
            assert_eq!(logical, expected, "{from}..{to}");
        }
    }

    #[test]
    fn manual_runs_cover_the_latest_completed_interval() {
        let daily = daily_utc("2026-01-01T00:00:00Z", None);
        let no_start = Timetable {
            start_date: None,
            ..daily.clone()
        };
        let triggered = timetable(trigger("@daily"), Tz::UTC, "2026-01-01T00:00:00Z", None);
        let once = timetable(Schedule::Once, Tz::UTC, "2026-01-01T00:00:00Z", None);
        let never = timetable(Schedule::Never, Tz::UTC, "2026-01-01T00:00:00Z", None);
        let datasets = timetable(
            Schedule::Datasets(vec!["a".to_string()]),
            Tz::UTC,
            "2026-01-01T00:00:00Z",
            None,
        );
        let cases = [
            (
                &daily,
                "2026-01-05T10:00:00Z",
                interval("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"),
            ),
            // On a fire time, the interval ending there is complete.
            (
                &daily,
                "2026-01-05T00:00:00Z",
                interval("2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z"),
            ),
            // Before the first interval ends there is no completed interval.
            (
                &daily,
                "2026-01-01T10:00:00Z",
                interval("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
            ),
            (
                &no_start,
                "2026-01-01T10:00:00Z",
                interval("2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z"),
            ),
            (
                &triggered,
                "2026-01-05T10:00:00Z",
                interval("2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"),
            ),
            (
                &once,
                "2026-01-05T10:00:00Z",
                interval("2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"),
            ),
            (
                &never,
                "2026-01-05T10:00:00Z",
                interval("2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"),
            ),
            (
                &datasets,
                "2026-01-05T10:00:00Z",
                interval("2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"),
            ),
        ];
        for (table, at, expected) in cases {
            assert_eq!(
                table.manual_interval(utc(at)),
                expected,
                "{} at {at}",
                table.schedule.describe()
            );
        }
    }
}
