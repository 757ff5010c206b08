//! Printing results as an aligned table or as JSON (`--output table|json`, §7).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned columns, for people.
    #[default]
    Table,
    /// JSON with the REST API's field names, for scripts.
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

/// The most characters a table cell shows; longer ones end in `…` with the count left out (the
/// whole value is in `--output json`). A table is for reading on a terminal: a cell of a
/// thousand characters already wraps over a dozen lines, and every row is padded to the widest.
pub const MAX_CELL_CHARS: usize = 1000;

/// `text` cut to [`MAX_CELL_CHARS`] characters, saying how much was left out.
fn shortened(text: String) -> String {
    let length = text.chars().count();
    if length <= MAX_CELL_CHARS {
        return text;
    }
    let kept: String = text.chars().take(MAX_CELL_CHARS).collect();
    format!(
        "{kept}… ({} more characters; see --output json)",
        length - MAX_CELL_CHARS
    )
}

/// An aligned plain-text table with a header row.
pub fn table(rows: &[Value], columns: &[&str]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|column| shortened(cell(row.get(column)))).collect())
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
    // Padded by hand: `format!("{value:<width$}")` panics on a width over 65,535.
    let line = |values: Vec<&str>, out: &mut String| {
        let start = out.len();
        for (index, (value, width)) in values.iter().zip(&widths).enumerate() {
            if index > 0 {
                out.push_str("  ");
            }
            out.push_str(value);
            out.extend(std::iter::repeat_n(' ', width.saturating_sub(value.chars().count())));
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    line(columns.to_vec(), &mut out);
    for row in &cells {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell_and_lines_have_no_trailing_spaces() {
        let rows = [
            json!({"dag_id": "daily", "tags": ["finance", "eu"], "paused": false}),
            json!({"dag_id": "a", "tags": [], "paused": null}),
        ];
        assert_eq!(
            table(&rows, &["dag_id", "tags", "paused"]),
            "dag_id  tags        paused\ndaily   finance,eu  false\na\n"
        );
    }

    #[test]
    fn a_cell_longer_than_any_format_width_is_cut_with_an_ellipsis_and_the_count_left_out() {
        let long = "é".repeat(70_000);
        let rows = [json!({"dag_id": "tagged", "tags": [long], "owner": "weir"})];
        let text = table(&rows, &["dag_id", "tags", "owner"]);
        let row = text.lines().nth(1).unwrap();
        let kept = "é".repeat(MAX_CELL_CHARS);
        assert_eq!(
            row,
            format!("tagged  {kept}… (69000 more characters; see --output json)  weir")
        );
        let header = text.lines().next().unwrap();
        let column_start = |line: &str, last: &str| line.chars().count() - last.len();
        assert_eq!(column_start(header, "owner"), column_start(row, "weir"), "{header}");
    }
}
