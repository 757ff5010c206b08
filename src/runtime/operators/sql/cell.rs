//! The neutral value type that carries one database value to another database or to JSON, and
//! the kinds of column weir knows how to move.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

/// One value read from a database, independent of which database it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// The exact decimal text (`-12345.67`, `NaN`): never rounded through a float.
    Decimal(String),
    Text(String),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Bytes(Vec<u8>),
    Json(Value),
}

/// What a column holds, as far as moving it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    Bool,
    Int,
    Float,
    Decimal,
    Text,
    Date,
    Timestamp,
    TimestampTz,
    Bytes,
    Json,
    /// No declared type (a SQLite expression, a bare `NULL`): decided by the values themselves.
    Dynamic,
    /// A type weir cannot move (intervals, arrays, geometry, ...): the query should cast it.
    Unsupported,
}

impl ColumnKind {
    pub fn label(self) -> &'static str {
        match self {
            ColumnKind::Bool => "boolean",
            ColumnKind::Int => "integer",
            ColumnKind::Float => "float",
            ColumnKind::Decimal => "decimal",
            ColumnKind::Text => "text",
            ColumnKind::Date => "date",
            ColumnKind::Timestamp => "timestamp",
            ColumnKind::TimestampTz => "timestamp with time zone",
            ColumnKind::Bytes => "bytes",
            ColumnKind::Json => "json",
            ColumnKind::Dynamic => "untyped",
            ColumnKind::Unsupported => "unsupported",
        }
    }
}

/// Precision and scale of a decimal column, when the source declares them (`NUMERIC(12,2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecimalShape {
    pub precision: u32,
    pub scale: u32,
}

/// One result column: its name, what it holds, and the type the database gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnKind,
    /// The database's own name for the type (`INT8`, `DECIMAL`, `DATETIME`), for messages and decoding.
    pub type_name: String,
    pub decimal: Option<DecimalShape>,
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, kind: ColumnKind, type_name: impl Into<String>) -> Self {
        ColumnSpec {
            name: name.into(),
            kind,
            type_name: type_name.into(),
            decimal: None,
        }
    }
}

impl Cell {
    /// The kind a value of this cell naturally belongs to (`None` for `Null`).
    pub fn kind(&self) -> Option<ColumnKind> {
        Some(match self {
            Cell::Null => return None,
            Cell::Bool(_) => ColumnKind::Bool,
            Cell::Int(_) => ColumnKind::Int,
            Cell::Float(_) => ColumnKind::Float,
            Cell::Decimal(_) => ColumnKind::Decimal,
            Cell::Text(_) => ColumnKind::Text,
            Cell::Date(_) => ColumnKind::Date,
            Cell::Timestamp(_) => ColumnKind::Timestamp,
            Cell::TimestampTz(_) => ColumnKind::TimestampTz,
            Cell::Bytes(_) => ColumnKind::Bytes,
            Cell::Json(_) => ColumnKind::Json,
        })
    }

    /// The cell as JSON for a task's output: numbers stay numbers, decimals become strings (no
    /// precision lost), dates `YYYY-MM-DD`, timestamps ISO 8601 (`Z` when the zone is known),
    /// bytes a `\x`-prefixed hex string, JSON as itself.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(value) => Value::Bool(*value),
            Cell::Int(value) => Value::from(*value),
            Cell::Float(value) => {
                serde_json::Number::from_f64(*value).map_or_else(|| Value::String(value.to_string()), Value::Number)
            }
            Cell::Decimal(text) | Cell::Text(text) => Value::String(text.clone()),
            Cell::Date(date) => Value::String(date.format("%Y-%m-%d").to_string()),
            Cell::Timestamp(timestamp) => Value::String(timestamp.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            Cell::TimestampTz(timestamp) => Value::String(timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Cell::Bytes(bytes) => Value::String(hex(bytes)),
            Cell::Json(value) => value.clone(),
        }
    }

    /// This cell made to fit a column of `kind`, widening where nothing is lost (an integer into
    /// a float or decimal column, a number into a text column); `Err` says what does not fit.
    pub fn conform(self, kind: ColumnKind) -> Result<Cell, String> {
        let Some(own_kind) = self.kind() else {
            return Ok(Cell::Null);
        };
        if own_kind == kind || matches!(kind, ColumnKind::Dynamic | ColumnKind::Unsupported) {
            return Ok(self);
        }
        match (self, kind) {
            (Cell::Int(value), ColumnKind::Float) => Ok(Cell::Float(value as f64)),
            (Cell::Int(value), ColumnKind::Decimal) => Ok(Cell::Decimal(value.to_string())),
            (Cell::Float(value), ColumnKind::Decimal) if value.is_finite() => Ok(Cell::Decimal(value.to_string())),
            (Cell::Int(value), ColumnKind::Text) => Ok(Cell::Text(value.to_string())),
            (Cell::Float(value), ColumnKind::Text) => Ok(Cell::Text(value.to_string())),
            (Cell::Decimal(text), ColumnKind::Text) => Ok(Cell::Text(text)),
            (Cell::Text(text), ColumnKind::Bytes) => Ok(Cell::Bytes(text.into_bytes())),
            (Cell::Text(text), ColumnKind::Json) => Ok(Cell::Json(Value::String(text))),
            (Cell::Int(value), ColumnKind::Json) => Ok(Cell::Json(Value::from(value))),
            (cell, kind) => Err(format!(
                "a {} value ({}) in a column of {} values",
                own_kind.label(),
                cell.preview(),
                kind.label()
            )),
        }
    }

    /// A short rendering of the value for error messages.
    pub fn preview(&self) -> String {
        let text = match self {
            Cell::Json(value) => value.to_string(),
            other => match other.to_json() {
                Value::String(text) => format!("'{text}'"),
                value => value.to_string(),
            },
        };
        if text.chars().count() > 60 {
            format!("{}...", text.chars().take(57).collect::<String>())
        } else {
            text
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 + bytes.len() * 2);
    text.push_str("\\x");
    for byte in bytes {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Decides the kind of every `Dynamic` column from the values in `rows` (the first batch): one
/// kind when all non-null values agree, integers and floats together as float, any other mix as
/// text; a column with no value at all becomes text.
pub fn settle_dynamic_kinds(columns: &mut [ColumnSpec], rows: &[Vec<Cell>]) {
    for (index, column) in columns.iter_mut().enumerate() {
        if column.kind != ColumnKind::Dynamic {
            continue;
        }
        let mut settled: Option<ColumnKind> = None;
        for kind in rows.iter().filter_map(|row| row.get(index).and_then(Cell::kind)) {
            settled = Some(match settled {
                None => kind,
                Some(seen) if seen == kind => seen,
                Some(ColumnKind::Int | ColumnKind::Float) if matches!(kind, ColumnKind::Int | ColumnKind::Float) => {
                    ColumnKind::Float
                }
                Some(_) => ColumnKind::Text,
            });
        }
        column.kind = settled.unwrap_or(ColumnKind::Text);
    }
}

/// Reads the date and time texts SQLite keeps: `YYYY-MM-DD HH:MM:SS[.fff]`, with `T` instead
/// of the space, an optional `Z` or `±HH:MM` offset, or a bare date (midnight). An offset is
/// applied, giving UTC; without one the text is taken as UTC, as SQLite's own functions do.
pub fn parse_timestamp_text(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.naive_utc());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(with_offset) = DateTime::parse_from_str(text, format) {
            return Some(with_offset.naive_utc());
        }
    }
    let without_zulu = text.strip_suffix('Z').unwrap_or(text);
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(timestamp) = NaiveDateTime::parse_from_str(without_zulu, format) {
            return Some(timestamp);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
}

/// Reads a `YYYY-MM-DD` date, also accepting a timestamp text whose time is dropped.
pub fn parse_date_text(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_timestamp_text(text).map(|timestamp| timestamp.date()))
}

/// Whether `text` is a plain decimal number (`-12.50`, `3`, `.5`, `1e3` is not).
pub fn is_decimal_text(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    !(whole.is_empty() && fraction.is_empty())
        && whole.chars().all(|character| character.is_ascii_digit())
        && fraction.chars().all(|character| character.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn timestamp(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn json_keeps_numbers_as_numbers_and_decimals_as_exact_strings() {
        assert_eq!(Cell::Int(-7).to_json(), json!(-7));
        assert_eq!(Cell::Float(2.5).to_json(), json!(2.5));
        assert_eq!(
            Cell::Decimal("12345678901234567890.12".into()).to_json(),
            json!("12345678901234567890.12")
        );
        assert_eq!(Cell::Float(f64::NAN).to_json(), json!("NaN"));
        assert_eq!(Cell::Null.to_json(), json!(null));
        assert_eq!(Cell::Bytes(vec![0xde, 0xad]).to_json(), json!("\\xdead"));
        assert_eq!(Cell::Json(json!({"a": [1]})).to_json(), json!({"a": [1]}));
    }

    #[test]
    fn json_dates_and_timestamps_are_iso_8601() {
        assert_eq!(
            Cell::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()).to_json(),
            json!("2026-03-01")
        );
        assert_eq!(
            Cell::Timestamp(timestamp("2026-03-01 10:20:30")).to_json(),
            json!("2026-03-01T10:20:30")
        );
        assert_eq!(
            Cell::Timestamp(timestamp("2026-03-01 10:20:30.250")).to_json(),
            json!("2026-03-01T10:20:30.250")
        );
        assert_eq!(
            Cell::TimestampTz(timestamp("2026-03-01 10:20:30.123456").and_utc()).to_json(),
            json!("2026-03-01T10:20:30.123456Z")
        );
    }

    #[test]
    fn cells_widen_only_where_nothing_is_lost() {
        assert_eq!(Cell::Int(3).conform(ColumnKind::Float), Ok(Cell::Float(3.0)));
        assert_eq!(Cell::Int(3).conform(ColumnKind::Decimal), Ok(Cell::Decimal("3".into())));
        assert_eq!(Cell::Null.conform(ColumnKind::Date), Ok(Cell::Null));
        let error = Cell::Text("abc".into()).conform(ColumnKind::Int).unwrap_err();
        assert_eq!(error, "a text value ('abc') in a column of integer values");
    }

    #[test]
    fn untyped_columns_take_the_kind_their_values_agree_on() {
        let mut columns = vec![
            ColumnSpec::new("a", ColumnKind::Dynamic, "NULL"),
            ColumnSpec::new("b", ColumnKind::Dynamic, "NULL"),
            ColumnSpec::new("c", ColumnKind::Dynamic, "NULL"),
            ColumnSpec::new("d", ColumnKind::Dynamic, "NULL"),
            ColumnSpec::new("e", ColumnKind::Date, "DATE"),
        ];
        let rows = vec![
            vec![Cell::Int(1), Cell::Int(1), Cell::Int(1), Cell::Null, Cell::Null],
            vec![
                Cell::Null,
                Cell::Float(1.5),
                Cell::Text("x".into()),
                Cell::Null,
                Cell::Null,
            ],
        ];
        settle_dynamic_kinds(&mut columns, &rows);
        let kinds: Vec<ColumnKind> = columns.iter().map(|column| column.kind).collect();
        assert_eq!(
            kinds,
            [
                ColumnKind::Int,
                ColumnKind::Float,
                ColumnKind::Text,
                ColumnKind::Text,
                ColumnKind::Date
            ]
        );
    }

    #[test]
    fn sqlite_timestamp_texts_are_read_in_their_common_forms() {
        let expected = timestamp("2026-03-01 10:20:30");
        for text in [
            "2026-03-01 10:20:30",
            "2026-03-01T10:20:30",
            "2026-03-01T10:20:30Z",
            "2026-03-01 10:20:30+00:00",
            "2026-03-01T12:20:30+02:00",
        ] {
            assert_eq!(parse_timestamp_text(text), Some(expected), "{text}");
        }
        assert_eq!(
            parse_timestamp_text("2026-03-01 10:20:30.5"),
            Some(timestamp("2026-03-01 10:20:30.5"))
        );
        assert_eq!(
            parse_timestamp_text("2026-03-01"),
            Some(timestamp("2026-03-01 00:00:00"))
        );
        assert_eq!(parse_timestamp_text("yesterday"), None);
        assert_eq!(
            parse_date_text("2026-03-01"),
            Some(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap())
        );
    }

    #[test]
    fn decimal_texts_are_plain_numbers() {
        for text in ["12.50", "-3", "+0.5", ".5", "7."] {
            assert!(is_decimal_text(text), "{text}");
        }
        for text in ["", "-", "1e3", "12,5", "abc", "1.2.3"] {
            assert!(!is_decimal_text(text), "{text}");
        }
    }
}
