//! Schedule tests: fire times, data intervals and catchup windows, across DST changes.

use std::time::{Duration, Instant};

use chrono_tz::America::New_York;
use chrono_tz::Asia::Seoul;

use super::*;

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
