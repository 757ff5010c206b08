//! Jinja templating of task fields (§2), with Airflow's context names and filters. Strict about
//! undefined names, as Airflow is, so a typo fails the attempt instead of rendering as empty.

use std::sync::OnceLock;

use chrono::{Duration as ChronoDuration, NaiveDate};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value;

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        environment.set_keep_trailing_newline(true);
        environment.add_filter("ds_add", ds_add);
        environment.add_filter("ds_format", ds_format);
        environment.add_filter("shell_quote", shell_quote);
        environment
    })
}

/// A rendering failure, worded for the person who wrote the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render `{field}`: {reason}")]
pub struct RenderError {
    pub field: String,
    pub reason: String,
}

/// Compiles a template without rendering it: the check run at DAG validation.
pub fn check_syntax(template: &str) -> Result<(), String> {
    environment()
        .template_from_str(template)
        .map(|_| ())
        .map_err(|error| describe(&error))
}

/// Whether `text` has template syntax at all; text without it renders to itself.
pub fn has_syntax(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Renders one templated field with `context` (a JSON object of the names of §2).
pub fn render(field: &str, template: &str, context: &Value) -> Result<String, RenderError> {
    if !has_syntax(template) {
        return Ok(template.to_string());
    }
    environment()
        .render_str(template, context)
        .map_err(|error| RenderError {
            field: field.to_string(),
            reason: describe(&error),
        })
}

fn describe(error: &Error) -> String {
    let mut text = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    if let Some(line) = error.line() {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

fn parse_ds(ds: &str) -> Result<NaiveDate, Error> {
    NaiveDate::parse_from_str(ds, "%Y-%m-%d")
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("`{ds}` is not a YYYY-MM-DD date")))
}

/// `{{ ds | ds_add(-1) }}`: the date `days` days later.
fn ds_add(ds: String, days: i64) -> Result<String, Error> {
    let date = parse_ds(&ds)?;
    let shifted = date
        .checked_add_signed(ChronoDuration::days(days))
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "date out of range"))?;
    Ok(shifted.format("%Y-%m-%d").to_string())
}

/// `{{ ds | ds_format("%d/%m/%Y") }}`, or Airflow's form with an input format first.
fn ds_format(ds: String, first: String, second: Option<String>) -> Result<String, Error> {
    let (input, output) = match second {
        Some(output) => (first, output),
        None => ("%Y-%m-%d".to_string(), first),
    };
    let date = NaiveDate::parse_from_str(&ds, &input).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("`{ds}` does not match the format `{input}`"),
        )
    })?;
    let mut rendered = String::new();
    use std::fmt::Write;
    write!(rendered, "{}", date.format(&output)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("`{output}` is not a valid date format"),
        )
    })?;
    Ok(rendered)
}

/// `{{ value | shell_quote }}`: one shell word, whatever the value holds.
fn shell_quote(value: minijinja::Value) -> String {
    let text = match value.as_str() {
        Some(text) => text.to_string(),
        None => value.to_string(),
    };
    format!("'{}'", text.replace('\'', r#"'\''"#))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Value {
        json!({
            "ds": "2026-03-01",
            "ds_nodash": "20260301",
            "params": {"region": "kr"},
            "tasks": {},
        })
    }

    #[test]
    fn fields_render_with_the_context_and_filters() {
        let cases = [
            (
                "./extract.sh --day {{ ds }} --region {{ params.region }}",
                "./extract.sh --day 2026-03-01 --region kr",
            ),
            ("{{ ds | ds_add(-1) }}", "2026-02-28"),
            ("{{ ds | ds_add(31) }}", "2026-04-01"),
            ("{{ ds | ds_format('%d/%m/%Y') }}", "01/03/2026"),
            ("{{ ds_nodash | ds_format('%Y%m%d', '%Y-%m') }}", "2026-03"),
            ("echo {{ \"it's\" | shell_quote }}", "echo 'it'\\''s'"),
            ("no template at all", "no template at all"),
        ];
        for (template, expected) in cases {
            assert_eq!(render("command", template, &context()).unwrap(), expected, "{template}");
        }
    }

    #[test]
    fn an_undefined_name_fails_the_render_and_names_the_field() {
        let error = render("command", "echo {{ params.regoin }}", &context()).unwrap_err();
        assert_eq!(error.field, "command");
        assert!(
            error
                .to_string()
                .starts_with("cannot render `command`: undefined value"),
            "{error}"
        );
    }

    #[test]
    fn syntax_errors_are_found_without_rendering() {
        assert!(check_syntax("echo {{ ds }}").is_ok());
        let error = check_syntax("echo {{ ds ").unwrap_err();
        assert!(error.contains("syntax error"), "{error}");
    }
}
