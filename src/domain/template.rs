//! Jinja templating of task fields (§2), with Airflow's context names and filters. Strict about
//! undefined names, as Airflow is, so a typo fails the attempt instead of rendering as empty.
//!
//! A shell task's `command` renders in its own environment that shell-quotes every `{{ ... }}`
//! (minijinja's auto-escaping with a shell formatter, as HTML templates escape `<`): a value is
//! always one word, whatever it holds. `| raw` is the one way to paste text unquoted. Every other
//! field renders plain: it never reaches a shell (env values are passed as environment, SQL
//! values go in bind `parameters:`, HTTP bodies are JSON built from rendered strings).

mod placement;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::{Duration as ChronoDuration, NaiveDate};
use minijinja::value::Value as TemplateValue;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use serde_json::Value;

/// The auto-escape mode of shell commands.
const SHELL: AutoEscape = AutoEscape::Custom("shell");

/// Most template instructions one render may run: generous for loops over a task's output rows,
/// and a bound on `{% for %}` nests that would otherwise run for hours.
const FUEL: u64 = 5_000_000;

/// Most bytes one rendered field may hold (a command, a URL, an env value, a SQL text). Rendered
/// fields are stored with each attempt: `{{ ['x'] * 100000000 }}` must fail the attempt with a
/// clear reason, not write 700 MB into the database. Fuel cannot bound this: one instruction
/// can print a huge value.
pub const MAX_RENDERED_FIELD_BYTES: usize = 1024 * 1024;

fn base_environment() -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_keep_trailing_newline(true);
    environment.set_fuel(Some(FUEL));
    // Every `{{ ... }}` is printed within the field's limit, also inside `{% set %}` blocks and
    // macros, whose text does not pass through the capped output of `render_in`.
    environment.set_formatter(plain_formatter);
    environment.add_filter("ds_add", ds_add);
    environment.add_filter("ds_format", ds_format);
    environment.add_filter("raw", raw);
    environment
}

/// Plain fields: values are pasted as they are.
fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = base_environment();
        environment.add_filter("shell_quote", shell_quote);
        environment
    })
}

/// Shell commands: every value is shell-quoted unless `| raw` marked it.
fn shell_environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = base_environment();
        environment.set_auto_escape_callback(|_| SHELL);
        environment.set_formatter(shell_formatter);
        // Quoting is automatic: these are kept so that older commands still render, once quoted.
        environment.add_filter("shell_quote", unchanged);
        environment.add_filter("escape", unchanged);
        environment.add_filter("e", unchanged);
        // minijinja's `safe` and `tojson` mark their result as already escaped; in a command that
        // would be a second, silent way around the quoting.
        environment.add_filter("safe", refuse_safe);
        environment.add_filter("tojson", tojson_text);
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

/// The check of a shell task's `command` at DAG validation: its syntax, and that every
/// `{{ ... }}` stands where a quoted word means what it says (not inside quotes, a comment or a
/// here-document).
pub fn check_shell_command(template: &str) -> Result<(), String> {
    shell_environment()
        .template_from_str(template)
        .map_err(|error| describe(&error))?;
    placement::check(template)
}

/// Whether `text` has template syntax at all; text without it renders to itself.
pub fn has_syntax(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The top-level context names a template reads (`params`, `ds`, ...); empty when it does not
/// compile (the syntax check reports that).
pub fn names_read(template: &str) -> BTreeSet<String> {
    if !has_syntax(template) {
        return BTreeSet::new();
    }
    environment()
        .template_from_str(template)
        .map(|compiled| compiled.undeclared_variables(false).into_iter().collect())
        .unwrap_or_default()
}

/// The check of SQL text (a sql task's `sql` or file, a sensor's query, a transfer's query and
/// table): it must not read `params` or `conf`, which come from whoever triggers the run and
/// would be pasted into the statement; such values go in a sql task's bind `parameters:`.
pub fn check_sql_text(field: &str, template: &str) -> Result<(), String> {
    let names = names_read(template);
    let read: Vec<&str> = ["params", "conf"]
        .into_iter()
        .filter(|name| names.contains(*name))
        .collect();
    match read.first() {
        None => Ok(()),
        Some(name) => Err(format!(
            "`{field}` pastes `{name}` into its SQL text, where a value from a trigger's conf could change the statement: bind it instead, as `parameters: {{value: \"{{{{ {name}.value }}}}\"}}` on a sql task and `:value` in the SQL"
        )),
    }
}

/// Renders one plain templated field with `context` (a JSON object of the names of §2).
pub fn render(field: &str, template: &str, context: &Value) -> Result<String, RenderError> {
    if !has_syntax(template) {
        return Ok(template.to_string());
    }
    render_in(environment(), field, template, context)
}

/// Renders a shell task's `command`: every `{{ ... }}` becomes one shell-quoted word (a value
/// that needs no quotes, such as `2026-03-01`, is written as it is), except a value passed
/// through `| raw`, which is pasted unquoted. Refuses a template whose `{{ ... }}` stands inside
/// quotes, a comment or a here-document, where quoting would not hold.
pub fn render_shell_command(template: &str, context: &Value) -> Result<String, RenderError> {
    if !has_syntax(template) {
        return Ok(template.to_string());
    }
    placement::check(template).map_err(|reason| RenderError {
        field: "command".to_string(),
        reason,
    })?;
    render_in(shell_environment(), "command", template, context)
}

/// `text` as one word for a POSIX shell (`sh -c`): unchanged when it needs no quotes.
pub fn shell_word(text: &str) -> Result<String, String> {
    shlex::try_quote(text)
        .map(|word| word.into_owned())
        .map_err(|_| "the value holds a NUL byte, which no shell command can carry: pass it another way".to_string())
}

fn render_in(
    environment: &Environment<'_>,
    field: &str,
    template: &str,
    context: &Value,
) -> Result<String, RenderError> {
    let failed = |reason: String| RenderError {
        field: field.to_string(),
        reason,
    };
    let compiled = environment
        .template_from_str(template)
        .map_err(|error| failed(describe(&error)))?;
    let mut output = CappedOutput::default();
    if let Err(error) = compiled.render_captured_to(context, &mut output) {
        return Err(failed(if output.overflowed {
            too_long("the rendered text")
        } else {
            describe(&error)
        }));
    }
    // Only whole `str` pieces are ever written, so the bytes are UTF-8.
    String::from_utf8(output.bytes).map_err(|_| failed("the rendered text is not UTF-8".to_string()))
}

/// What a field or value past [`MAX_RENDERED_FIELD_BYTES`] is told.
fn too_long(what: &str) -> String {
    format!(
        "{what} is longer than {MAX_RENDERED_FIELD_BYTES} bytes (1 MiB), the most a rendered field may hold: render less (a repeated value or a loop that prints too much?), or have the task read the data from a file"
    )
}

/// The output of one render, refusing to grow past [`MAX_RENDERED_FIELD_BYTES`].
#[derive(Default)]
struct CappedOutput {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, piece: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + piece.len() > MAX_RENDERED_FIELD_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendered field is too long"));
        }
        self.bytes.extend_from_slice(piece);
        Ok(piece.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Prints a value into a plain field, as minijinja's own formatter would, within the limit.
fn plain_formatter(out: &mut Output<'_>, _state: &State<'_, '_>, value: &TemplateValue) -> Result<(), Error> {
    if value.is_undefined() {
        return Ok(());
    }
    out.write_str(&text_of(value)?)
        .map_err(|error| Error::new(ErrorKind::WriteFailure, "cannot write the rendered field").with_source(error))
}

/// Writes a value into a shell command: as it is when `| raw` marked it, else as one quoted word.
/// Auto-escape blocks (`{% autoescape false %}`) do not change this.
fn shell_formatter(out: &mut Output<'_>, _state: &State<'_, '_>, value: &TemplateValue) -> Result<(), Error> {
    if value.is_undefined() {
        return Ok(());
    }
    let text = text_of(value)?;
    let written = if value.is_safe() {
        text
    } else {
        shell_word(&text).map_err(|reason| Error::new(ErrorKind::InvalidOperation, reason))?
    };
    out.write_str(&written)
        .map_err(|error| Error::new(ErrorKind::WriteFailure, "cannot write the rendered command").with_source(error))
}

/// A value as text, refused past [`MAX_RENDERED_FIELD_BYTES`] before more is built: printing
/// `['x'] * 100000000` would otherwise make a 700 MB string first.
fn text_of(value: &TemplateValue) -> Result<String, Error> {
    if let Some(text) = value.as_str() {
        if text.len() > MAX_RENDERED_FIELD_BYTES {
            return Err(Error::new(ErrorKind::InvalidOperation, too_long("a value")));
        }
        return Ok(text.to_string());
    }
    // Each item of a list or map prints at least one byte: one with more items than the limit is
    // refused before printing. Printing it would stop at the limit but still walk every item
    // (the standard list formatter goes on after an error), which takes minutes for 100,000,000.
    if value.len().is_some_and(|items| items > MAX_RENDERED_FIELD_BYTES) {
        return Err(Error::new(ErrorKind::InvalidOperation, too_long("a value")));
    }
    let mut text = CappedText::default();
    use std::fmt::Write;
    match write!(text, "{value}") {
        Ok(()) => Ok(text.text),
        Err(_) if text.overflowed => Err(Error::new(ErrorKind::InvalidOperation, too_long("a value"))),
        Err(_) => Err(Error::new(ErrorKind::InvalidOperation, "cannot print this value")),
    }
}

/// Text that refuses to grow past [`MAX_RENDERED_FIELD_BYTES`].
#[derive(Default)]
struct CappedText {
    text: String,
    overflowed: bool,
}

impl std::fmt::Write for CappedText {
    fn write_str(&mut self, piece: &str) -> std::fmt::Result {
        if self.text.len() + piece.len() > MAX_RENDERED_FIELD_BYTES {
            self.overflowed = true;
            return Err(std::fmt::Error);
        }
        self.text.push_str(piece);
        Ok(())
    }
}

/// `{{ value | raw }}`: the value pasted as it is, unquoted. In a shell command this is the one
/// way to insert shell syntax; elsewhere it changes nothing.
fn raw(value: TemplateValue) -> Result<TemplateValue, Error> {
    Ok(TemplateValue::from_safe_string(text_of(&value)?))
}

fn unchanged(value: TemplateValue) -> TemplateValue {
    value
}

fn refuse_safe(_value: TemplateValue) -> Result<TemplateValue, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        "`| safe` does not apply to shell commands, where every value is quoted: write `| raw` to paste text unquoted",
    ))
}

/// `tojson` as text (quoted like any value), not as minijinja's already-escaped markup.
fn tojson_text(value: TemplateValue) -> Result<String, Error> {
    serde_json::to_string(&value)
        .map_err(|error| Error::new(ErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(error))
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

/// `{{ value | shell_quote }}` outside shell commands: one shell word, whatever the value holds.
/// In a shell command values are quoted anyway and this filter leaves them as they are.
fn shell_quote(value: TemplateValue) -> Result<String, Error> {
    shell_word(&text_of(&value)?).map_err(|reason| Error::new(ErrorKind::InvalidOperation, reason))
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
            ("echo {{ \"it's\" | shell_quote }}", "echo \"it's\""),
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

    fn shell(template: &str, name: &str) -> Result<String, RenderError> {
        render_shell_command(template, &json!({"ds": "2026-03-01", "params": {"name": name}}))
    }

    #[test]
    fn every_value_in_a_shell_command_is_one_quoted_word() {
        let cases = [
            ("kr", "echo kr > out.txt"),
            ("x; touch PWNED", "echo 'x; touch PWNED' > out.txt"),
            ("$(touch PWNED)", "echo '$(touch PWNED)' > out.txt"),
            ("it's", "echo \"it's\" > out.txt"),
            ("", "echo '' > out.txt"),
        ];
        for (name, expected) in cases {
            assert_eq!(
                shell("echo {{ params.name }} > out.txt", name).unwrap(),
                expected,
                "{name}"
            );
        }
        assert_eq!(
            shell("./run.sh --day {{ ds }}", "").unwrap(),
            "./run.sh --day 2026-03-01"
        );
    }

    #[test]
    fn raw_is_the_one_way_to_paste_text_unquoted() {
        let hostile = "x; touch PWNED";
        assert_eq!(
            shell("echo {{ params.name | raw }}", hostile).unwrap(),
            "echo x; touch PWNED"
        );
        for quoted in [
            "echo {{ params.name | shell_quote }}",
            "echo {{ params.name | e }}",
            "echo {{ params.name | escape }}",
            "{% autoescape false %}echo {{ params.name }}{% endautoescape %}",
            "{% set copy = params.name %}echo {{ copy }}",
            "{% macro word(text) %}{{ text }}{% endmacro %}echo {{ word(params.name) }}",
        ] {
            assert_eq!(shell(quoted, hostile).unwrap(), "echo 'x; touch PWNED'", "{quoted}");
        }
        assert_eq!(
            shell("echo {{ params | tojson }}", hostile).unwrap(),
            r#"echo '{"name":"x; touch PWNED"}'"#
        );
        assert_eq!(
            shell("echo {{ params.name | raw | upper }}", hostile).unwrap(),
            "echo X; TOUCH PWNED",
            "a text filter after raw keeps it raw"
        );
        assert_eq!(
            shell("echo {{ (params.name | raw) ~ '!' }}", hostile).unwrap(),
            "echo 'x; touch PWNED!'",
            "a new value made with ~ is quoted again"
        );
        let error = shell("echo {{ params.name | safe }}", hostile).unwrap_err();
        assert!(error.reason.contains("write `| raw`"), "{error}");
    }

    #[test]
    fn other_fields_render_values_as_they_are() {
        let context = json!({"params": {"name": "x; touch PWNED"}});
        assert_eq!(
            render("env.NAME", "{{ params.name }}", &context).unwrap(),
            "x; touch PWNED"
        );
        assert_eq!(
            render("env.NAME", "{{ params.name | shell_quote }}", &context).unwrap(),
            "'x; touch PWNED'"
        );
        assert_eq!(
            render("url", "/q?{{ params.name | urlencode }}", &context).unwrap(),
            "/q?x%3B%20touch%20PWNED"
        );
    }

    #[test]
    fn a_shell_command_with_a_value_inside_quotes_is_refused_before_it_runs() {
        let error = shell("echo \"{{ params.name }}\"", "$(touch PWNED)").unwrap_err();
        assert!(error.reason.contains("inside double quotes"), "{error}");
        assert!(check_shell_command("echo '{{ ds }}'").is_err());
        assert!(check_shell_command("echo {{ ds }}").is_ok());
    }

    #[test]
    fn a_nul_byte_cannot_reach_a_shell_command() {
        let error = shell("echo {{ params.name }}", "a\u{0}b").unwrap_err();
        assert!(error.reason.contains("NUL byte"), "{error}");
    }

    #[test]
    fn templates_that_would_run_for_hours_run_out_of_fuel() {
        let error = render(
            "command",
            "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
            &context(),
        )
        .unwrap_err();
        assert!(error.reason.contains("fuel"), "{error}");
    }

    #[test]
    fn a_field_that_would_render_past_the_limit_fails_naming_the_field_and_the_limit() {
        let huge = "{{ ['x'] * 100000000 }}";
        for error in [
            render("env.BIG", huge, &context()).unwrap_err(),
            render_shell_command(&format!("echo {huge}"), &context()).unwrap_err(),
            render_shell_command("echo {{ (['x'] * 100000000) | raw }}", &context()).unwrap_err(),
            render(
                "url",
                "{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}",
                &context(),
            )
            .unwrap_err(),
        ] {
            assert!(
                error
                    .reason
                    .contains("longer than 1048576 bytes (1 MiB), the most a rendered field may hold"),
                "{error}"
            );
        }
        let error = render("env.BIG", huge, &context()).unwrap_err();
        assert!(error.to_string().starts_with("cannot render `env.BIG`: "), "{error}");
        let within = render("url", "{{ 'x' * 1048576 }}", &context()).unwrap();
        assert_eq!(within.len(), MAX_RENDERED_FIELD_BYTES);
    }

    #[test]
    fn the_names_a_template_reads_are_known_before_rendering() {
        let names = names_read("SELECT * FROM t WHERE a = '{{ params.a }}' AND d = '{{ ds }}'");
        assert_eq!(names, BTreeSet::from(["ds".to_string(), "params".to_string()]));
        assert!(names_read("SELECT 1").is_empty());
    }

    #[test]
    fn sql_text_may_not_paste_params_or_conf() {
        assert_eq!(check_sql_text("sql", "DELETE FROM t WHERE day = '{{ ds }}'"), Ok(()));
        let error = check_sql_text("sql", "DELETE FROM t WHERE name = '{{ params.name }}'").unwrap_err();
        assert!(error.starts_with("`sql` pastes `params` into its SQL text"), "{error}");
        assert!(check_sql_text("from.sql", "SELECT {{ conf.limit }}").is_err());
    }

    #[test]
    fn syntax_errors_are_found_without_rendering() {
        assert!(check_syntax("echo {{ ds }}").is_ok());
        let error = check_syntax("echo {{ ds ").unwrap_err();
        assert!(error.contains("syntax error"), "{error}");
    }
}
