//! Words the YAML reader's errors (syntax, unknown keys, wrong types) for the person who wrote the
//! DAG file: one line, no location text (line and column are fields of the problem), the dotted
//! path of the key in question (`tasks.load.retries`), and what to write instead.

use std::borrow::Cow;

use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};

use super::Problem;
use crate::domain::suggest::closest;

/// The one problem that stopped parsing.
pub(super) fn syntax_problem(text: &str, error: &Error) -> Problem {
    let error = innermost(error);
    let (line, column) = error
        .location()
        .map(|location| (to_u32(location.line()), to_u32(location.column())))
        .unwrap_or((0, 0));
    let message = one_line(&describe(text, error, line, column));
    Problem {
        line: line.max(1),
        column: column.max(1),
        message,
    }
}

fn to_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The error itself, without the snippet and alias wrappers around it.
fn innermost(mut error: &Error) -> &Error {
    loop {
        error = error.without_snippet();
        match error {
            Error::AliasError { error: inner, .. } => error = inner,
            _ => return error,
        }
    }
}

fn describe(text: &str, error: &Error, line: u32, column: u32) -> String {
    let mut path = key_path(text, line, column);
    if matches!(error, Error::SerdeInvalidType { .. } | Error::SerdeInvalidValue { .. }) {
        // Serde's own type errors are placed at the key whose value is wrong.
        path.extend(key_at(text, line, column));
    }
    let path = path.join(".");
    let subject = |fallback: &str| {
        if path.is_empty() {
            fallback.to_string()
        } else {
            format!("`{path}`")
        }
    };
    let found = || {
        scalar_at(text, line, column)
            .map(|value| format!(", not `{value}`"))
            .unwrap_or_default()
    };
    match error {
        Error::SerdeUnknownField { field, expected, .. } => {
            let place = if path.is_empty() {
                String::new()
            } else {
                format!(" in `{path}`")
            };
            match closest(field, expected.iter().copied()) {
                Some(suggestion) => {
                    format!("unknown key `{field}`{place}: did you mean `{suggestion}`?")
                }
                None => format!(
                    "unknown key `{field}`{place}: the keys allowed here are {}",
                    expected.join(", ")
                ),
            }
        }
        Error::DuplicateMappingKey { key, .. } => {
            let key = key.as_deref().map(|key| format!(" `{key}`")).unwrap_or_default();
            let place = if path.is_empty() {
                String::new()
            } else {
                format!(" in `{path}`")
            };
            format!("duplicate key{key}{place}: each key may appear once; remove or merge the repeats")
        }
        Error::SerdeMissingField { field, .. } => {
            let place = if path.is_empty() {
                String::new()
            } else {
                format!(" in `{path}`")
            };
            format!("missing key `{field}`{place}: add it")
        }
        Error::InvalidScalar { ty, .. } => format!("{} must be {}{}", subject("the value"), scalar_kind(ty), found()),
        Error::Unexpected { expected, .. } => {
            let expected = match *expected {
                "sequence start" => "a list, such as `[a, b]`",
                "mapping start" => "a map of `key: value` entries",
                "string scalar" => "a single text value, not a list or a map",
                "scalar" => "a single value, not a list or a map",
                other => other,
            };
            format!("{} must be {expected}", subject("the value"))
        }
        Error::NullIntoString { .. } => format!("{} has no value: write one, or remove the key", subject("this key")),
        Error::SerdeInvalidType {
            unexpected, expected, ..
        }
        | Error::SerdeInvalidValue {
            unexpected, expected, ..
        } => format!("{} must be {expected}, not {unexpected}", subject("the value")),
        Error::Eof { .. } if text.lines().all(is_blank_or_comment) => {
            "the file is empty: a DAG file needs at least a `tasks:` map".to_string()
        }
        other => UserMessageFormatter.format_message(other).into_owned(),
    }
}

fn scalar_kind(ty: &str) -> Cow<'static, str> {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "floating point" | "f32" | "f64" => "a number".into(),
        "boolean" => "true or false".into(),
        other => format!("a valid {other}").into(),
    }
}

/// The first line of `message`, with any control character escaped.
fn one_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#') || line == "---"
}

fn source_line(text: &str, line: u32) -> Option<&str> {
    text.lines().nth(usize::try_from(line).ok()?.checked_sub(1)?)
}

/// The text of line `line` before 1-based character column `column`.
fn before_column(line_text: &str, column: u32) -> String {
    let column = usize::try_from(column).unwrap_or(usize::MAX);
    line_text.chars().take(column.saturating_sub(1)).collect()
}

/// The dotted path of keys leading to `line:column`, best effort: the block-style keys above it
/// (found by indentation) followed by the keys on its own line. Empty when unknown.
fn key_path(text: &str, line: u32, column: u32) -> Vec<String> {
    let Some(current) = source_line(text, line) else {
        return Vec::new();
    };
    let prefix = before_column(current, column);
    let on_line = keys_on_line(&prefix);
    let mut indent = content_indent(&prefix).unwrap_or_else(|| indentation(current));
    let mut ancestors = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let start = usize::try_from(line).unwrap_or(0).saturating_sub(1);
    for above in lines[..start.min(lines.len())].iter().rev() {
        if indent == 0 {
            break;
        }
        if is_blank_or_comment(above) {
            continue;
        }
        let above_indent = indentation(above);
        if above_indent >= indent {
            continue;
        }
        let rest = &above[above_indent..];
        if let Some(item) = rest.strip_prefix("- ") {
            // A list item holding a map: the item has no name; its first key is a sibling
            // of the keys below it unless they are indented past it.
            let key_indent = above_indent + 2 + indentation(item);
            if key_indent < indent
                && let Some(key) = leading_key(item.trim_start())
            {
                ancestors.push(key);
            }
        } else if let Some(key) = leading_key(rest) {
            ancestors.push(key);
        }
        indent = above_indent;
    }
    ancestors.reverse();
    ancestors.extend(on_line);
    ancestors
}

/// The key written at `line:column`, if the location is the start of a `key: value` entry.
fn key_at(text: &str, line: u32, column: u32) -> Option<String> {
    let current = source_line(text, line)?;
    let column = usize::try_from(column).ok()?.checked_sub(1)?;
    let rest: String = current.chars().skip(column).collect();
    leading_key(&rest)
}

/// Spaces before the first character of a line.
fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// When the part of the line before the location is only indentation and `- ` markers, the
/// column where the value starts; otherwise `None`.
fn content_indent(prefix: &str) -> Option<usize> {
    prefix
        .chars()
        .all(|c| c == ' ' || c == '-')
        .then(|| prefix.chars().count())
}

/// `key` when `text` starts with `key:` followed by a space or the end of the line.
fn leading_key(text: &str) -> Option<String> {
    let (key, rest) = text.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' '));
    (plain && (rest.is_empty() || rest.starts_with([' ', '\t']))).then(|| key.to_string())
}

/// The keys that enclose the end of `prefix` on its own line: block keys and flow-map keys, e.g.
/// `region: {type: string, default: ` gives `region`, `default`.
fn keys_on_line(prefix: &str) -> Vec<String> {
    // Each open `{`/`[` remembers the key it is the value of; `pending` is the key whose value
    // comes next.
    let mut open: Vec<Option<String>> = Vec::new();
    let mut pending: Option<String> = None;
    let mut token = String::new();
    let mut chars = prefix.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' if token.trim().is_empty() => {
                // A quoted scalar: skip it whole; it cannot open or close anything.
                let mut quoted = String::new();
                let mut closed = false;
                while let Some(inner) = chars.next() {
                    if inner == '\\' && c == '"' {
                        chars.next();
                        continue;
                    }
                    if inner == c {
                        closed = true;
                        break;
                    }
                    quoted.push(inner);
                }
                if !closed {
                    return Vec::new();
                }
                token = quoted;
            }
            ':' if chars.peek().is_none_or(|next| *next == ' ') => {
                let key = token.trim().trim_start_matches("- ").trim().to_string();
                pending = (!key.is_empty()).then_some(key);
                token.clear();
            }
            '{' | '[' => {
                open.push(pending.take());
                token.clear();
            }
            '}' | ']' => {
                open.pop();
                pending = None;
                token.clear();
            }
            ',' if !open.is_empty() => {
                pending = None;
                token.clear();
            }
            '#' if token.is_empty() || token.ends_with(' ') => break,
            _ => token.push(c),
        }
    }
    if !token.trim().is_empty() && open.is_empty() {
        // Text between the key and the location (a value already started): not a key path.
        pending = None;
    }
    open.into_iter().flatten().chain(pending).collect()
}

/// The scalar that starts at `line:column`, as written, shortened if long.
fn scalar_at(text: &str, line: u32, column: u32) -> Option<String> {
    let current = source_line(text, line)?;
    let prefix = before_column(current, column);
    let in_flow = prefix.matches(['{', '[']).count() > prefix.matches(['}', ']']).count();
    let rest: String = current.chars().skip(prefix.chars().count()).collect();
    let value = match rest.chars().next()? {
        quote @ ('\'' | '"') => {
            let end = rest[1..].find(quote)? + 2;
            rest[..end].to_string()
        }
        _ => {
            let mut end = rest.len();
            if let Some(comment) = rest.find(" #") {
                end = end.min(comment);
            }
            if in_flow && let Some(stop) = rest.find([',', '}', ']']) {
                end = end.min(stop);
            }
            rest[..end].trim().to_string()
        }
    };
    if value.is_empty() {
        return None;
    }
    if value.chars().count() > 40 {
        let short: String = value.chars().take(40).collect();
        return Some(format!("{short}…"));
    }
    Some(value)
}
