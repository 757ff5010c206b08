//! Printing results as an aligned table or as JSON (`--output table|json`, §7).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// RFC 3339 UTC, as in the REST API: `2026-03-01T18:00:00Z`.
pub fn time(value: DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn opt_time(value: Option<DateTime<Utc>>) -> Value {
    value.map_or(Value::Null, |value| Value::String(time(value)))
}

/// Prints rows (JSON objects with the same keys) in the chosen format; `columns` picks and orders
/// the table's columns.
pub fn print_rows(format: OutputFormat, rows: &[Value], columns: &[&str]) {
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(rows.to_vec())).unwrap_or_default()
        ),
        OutputFormat::Table => print!("{}", table(rows, columns)),
    }
}

pub fn print_object(format: OutputFormat, object: &Value, text: impl FnOnce() -> String) {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(object).unwrap_or_default()),
        OutputFormat::Table => print!("{}", text()),
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items.iter().map(|item| cell(Some(item))).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}

/// An aligned plain-text table with a header row.
pub fn table(rows: &[Value], columns: &[&str]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|column| cell(row.get(column))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            cells
                .iter()
                .map(|row| row[index].chars().count())
                .max()
                .unwrap_or(0)
                .max(column.len())
        })
        .collect();
    let mut out = String::new();
    let line = |values: Vec<&str>, out: &mut String| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(value, width)| format!("{value:<width$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(columns.to_vec(), &mut out);
    for row in &cells {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}
