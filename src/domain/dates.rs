//! The dates weir accepts from outside (years 1000 to 9999, UTC) and the one parser for dates
//! people type: every surface (REST API bodies, UI forms, CLI arguments, DAG files) goes through
//! `parse_date_in` or `Timestamp`, so a year 0 or 10000 is refused where it enters.
//!
//! Why these bounds: storage would hold more (microseconds in an `i64`), but RFC 3339 and the
//! clients reading it back (Python's `datetime`, the official Airflow client) need a four-digit
//! year, and a year before 1000 is accepted by chrono yet breaks some of them when listed.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
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

    #[test]
    fn a_json_timestamp_out_of_range_fails_to_deserialize_with_the_marker() {
        let error = serde_json::from_str::<Timestamp>("\"0000-01-01T00:00:00Z\"").unwrap_err();
        assert!(error.to_string().contains(OUT_OF_RANGE), "{error}");
        let ok: Timestamp = serde_json::from_str("\"2026-03-01T00:00:00Z\"").unwrap();
        assert_eq!(ok.to_string(), "2026-03-01T00:00:00+00:00");
    }
}
