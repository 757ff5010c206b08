//! The dates weir accepts from outside (years 1000 to 9999, UTC) and the one parser for dates
//! people type: every surface (REST API bodies, UI forms, CLI arguments, DAG files) goes through
//! `parse_date_in` or `Timestamp`, so a year 0 or 10000 is refused where it enters.
//!
//! Why these bounds: storage would hold more (microseconds in an `i64`), but RFC 3339 and the
//! clients reading it back (Python's `datetime`, the official Airflow client) need a four-digit
//! year, and a year before 1000 is accepted by chrono yet breaks some of them when listed.

use std::fmt;

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

/// The first year weir accepts.
pub const FIRST_YEAR: i32 = 1000;
/// The last year weir accepts.
pub const LAST_YEAR: i32 = 9999;

/// Words every out-of-range refusal carries, so the JSON body extractor can answer it with a 400
/// (a serde error reaches it only as text).
pub const OUT_OF_RANGE: &str = "outside the dates weir accepts";

/// A date outside years 1000 to 9999 (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} is {OUT_OF_RANGE}: use a date from 1000-01-01 to 9999-12-31 (UTC)", shown(*.0))]
pub struct DateOutOfRange(pub DateTime<Utc>);

/// Why a typed date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("`{0}` is not a date or time: write 2026-03-01, 2026-03-01T03:00:00 or RFC 3339")]
    NotADate(String),
    #[error(transparent)]
    OutOfRange(#[from] DateOutOfRange),
}

/// Chrono writes years past 9999 with a sign; show them as they were meant.
fn shown(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `at` if its year (in UTC) is within 1000 to 9999.
pub fn check(at: DateTime<Utc>) -> Result<DateTime<Utc>, DateOutOfRange> {
    use chrono::Datelike;
    if (FIRST_YEAR..=LAST_YEAR).contains(&at.year()) {
        Ok(at)
    } else {
        Err(DateOutOfRange(at))
    }
}

/// Dates are `2026-01-01`, `2026-01-01T03:00:00` (both in `timezone`) or RFC 3339, with a year
/// (in UTC) from 1000 to 9999.
pub fn parse_date_in(text: &str, timezone: Tz) -> Result<DateTime<Utc>, DateError> {
    let text = text.trim();
    let not_a_date = || DateError::NotADate(text.to_string());
    let instant = match DateTime::parse_from_rfc3339(text) {
        Ok(instant) => instant.with_timezone(&Utc),
        Err(_) => {
            let naive = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok())
                .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok())
                .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").ok())
                .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").ok())
                .ok_or_else(not_a_date)?;
            timezone
                .from_local_datetime(&naive)
                .earliest()
                .ok_or_else(not_a_date)?
                .with_timezone(&Utc)
        }
    };
    Ok(check(instant)?)
}

/// Which end of a date range a typed bound is: a date alone means the start of that day for the
/// first, and the end of that day for the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    /// The first instant of the range (`--from`, `from_date`).
    Start,
    /// The last instant of the range, included (`--to`, `to_date`).
    End,
}

/// One bound of a date range (backfills), in `timezone` when it has no offset. A date alone
/// (`2026-03-31`) covers the whole of that day in `timezone`: as a start it is the day's first
/// instant, as an end its last (one microsecond before the next day starts), so `--to
/// 2026-03-31` includes a run at 03:00 on March 31. A time (`2026-03-31T03:00`, RFC 3339) is
/// taken as given. Days that DST shortens or lengthens count as they are, and a day whose
/// midnight does not exist starts at the first instant it has.
pub fn parse_range_bound(text: &str, timezone: Tz, end: RangeEnd) -> Result<DateTime<Utc>, DateError> {
    let text = text.trim();
    let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") else {
        return parse_date_in(text, timezone);
    };
    let not_a_date = || DateError::NotADate(text.to_string());
    let instant = match end {
        RangeEnd::Start => start_of_day(day, timezone).ok_or_else(not_a_date)?,
        RangeEnd::End => {
            let next_day = day.checked_add_days(Days::new(1)).ok_or_else(not_a_date)?;
            start_of_day(next_day, timezone).ok_or_else(not_a_date)? - TimeDelta::microseconds(1)
        }
    };
    Ok(check(instant)?)
}

/// The first instant of `day` in `timezone`: its midnight, or the end of a DST gap that swallows
/// it (a few zones have moved their clocks at midnight).
fn start_of_day(day: NaiveDate, timezone: Tz) -> Option<DateTime<Utc>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    (0..=26 * 60).find_map(|minutes| {
        timezone
            .from_local_datetime(&(midnight + TimeDelta::minutes(minutes)))
            .earliest()
            .map(|instant| instant.with_timezone(&Utc))
    })
}

/// A time from a JSON body (RFC 3339), refused while deserializing when outside the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn new(at: DateTime<Utc>) -> Result<Timestamp, DateOutOfRange> {
        check(at).map(Timestamp)
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(timestamp: Timestamp) -> Self {
        timestamp.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let at = DateTime::<Utc>::deserialize(deserializer)?;
        Timestamp::new(at).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_outside_years_1000_to_9999_are_refused_with_the_range() {
        for text in [
            "0000-01-01",
            "0001-01-01T00:00:00Z",
            "0999-12-31T23:59:59Z",
            "9999-12-31T23:00:00-05:00",
        ] {
            let error = parse_date_in(text, Tz::UTC).unwrap_err();
            assert!(matches!(error, DateError::OutOfRange(_)), "{text}: {error}");
            assert!(error.to_string().contains("1000-01-01 to 9999-12-31"), "{error}");
        }
        for text in ["1000-01-01", "9999-12-31T23:59:59Z", "2026-03-01T03:00"] {
            assert!(parse_date_in(text, Tz::UTC).is_ok(), "{text}");
        }
        // The bound is in UTC: midnight of 1000-01-01 in Berlin is still year 999 in UTC.
        assert!(parse_date_in("1000-01-01", Tz::Europe__Berlin).is_err());
    }

    #[test]
    fn text_that_is_no_date_says_how_to_write_one() {
        let error = parse_date_in("yesterday", Tz::UTC).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`yesterday` is not a date or time: write 2026-03-01, 2026-03-01T03:00:00 or RFC 3339"
        );
    }

    fn bound(text: &str, timezone: Tz, end: RangeEnd) -> String {
        parse_range_bound(text, timezone, end).unwrap().to_rfc3339()
    }

    #[test]
    fn a_date_alone_covers_its_whole_day_in_the_dags_time_zone() {
        use RangeEnd::{End, Start};
        let table = [
            ("2026-03-01", Tz::UTC, Start, "2026-03-01T00:00:00+00:00"),
            ("2026-03-31", Tz::UTC, End, "2026-03-31T23:59:59.999999+00:00"),
            ("2026-03-01", Tz::Asia__Seoul, Start, "2026-02-28T15:00:00+00:00"),
            ("2026-03-31", Tz::Asia__Seoul, End, "2026-03-31T14:59:59.999999+00:00"),
            // Berlin springs forward on 2026-03-29 (a 23-hour day) and falls back on 2026-10-25
            // (25 hours): the day's end is the next midnight, whatever the offset became.
            ("2026-03-29", Tz::Europe__Berlin, Start, "2026-03-28T23:00:00+00:00"),
            (
                "2026-03-29",
                Tz::Europe__Berlin,
                End,
                "2026-03-29T21:59:59.999999+00:00",
            ),
            ("2026-10-25", Tz::Europe__Berlin, Start, "2026-10-24T22:00:00+00:00"),
            (
                "2026-10-25",
                Tz::Europe__Berlin,
                End,
                "2026-10-25T22:59:59.999999+00:00",
            ),
            // Santiago moved its clocks at midnight: 2022-09-11 began at 01:00.
            ("2022-09-11", Tz::America__Santiago, Start, "2022-09-11T04:00:00+00:00"),
            (
                "2022-09-10",
                Tz::America__Santiago,
                End,
                "2022-09-11T03:59:59.999999+00:00",
            ),
        ];
        for (text, timezone, end, expected) in table {
            assert_eq!(bound(text, timezone, end), expected, "{text} {timezone} {end:?}");
        }
    }

    #[test]
    fn a_time_or_an_offset_is_taken_as_given_at_either_end() {
        for end in [RangeEnd::Start, RangeEnd::End] {
            assert_eq!(bound("2026-03-31T03:00", Tz::UTC, end), "2026-03-31T03:00:00+00:00");
            assert_eq!(
                bound("2026-03-31 03:00:00", Tz::Asia__Seoul, end),
                "2026-03-30T18:00:00+00:00"
            );
            assert_eq!(
                bound("2026-03-31T00:00:00Z", Tz::Asia__Seoul, end),
                "2026-03-31T00:00:00+00:00"
            );
        }
    }

    #[test]
    fn range_bounds_keep_the_parsers_refusals() {
        let error = parse_range_bound("9999-12-31", Tz::America__New_York, RangeEnd::End).unwrap_err();
        assert!(matches!(error, DateError::OutOfRange(_)), "{error}");
        assert!(parse_range_bound("9999-12-31", Tz::UTC, RangeEnd::End).is_ok());
        let error = parse_range_bound("2026-02-30", Tz::UTC, RangeEnd::End).unwrap_err();
        assert!(matches!(error, DateError::NotADate(_)), "{error}");
    }

    #[test]
    fn a_json_timestamp_out_of_range_fails_to_deserialize_with_the_marker() {
        let error = serde_json::from_str::<Timestamp>("\"0000-01-01T00:00:00Z\"").unwrap_err();
        assert!(error.to_string().contains(OUT_OF_RANGE), "{error}");
        let ok: Timestamp = serde_json::from_str("\"2026-03-01T00:00:00Z\"").unwrap();
        assert_eq!(ok.to_string(), "2026-03-01T00:00:00+00:00");
    }
}
