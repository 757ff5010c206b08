//! Splits a SQL script into its statements on `;`, without being fooled by semicolons inside
//! strings, quoted identifiers, dollar quotes or comments.

use super::Backend;

/// Where the scanner is inside the script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scan {
    Code,
    /// Inside `'...'` (or MySQL's `"..."`); `backslash_escapes` for MySQL strings and PostgreSQL `E'...'`.
    Quoted {
        close: char,
        backslash_escapes: bool,
    },
    /// Inside `"..."` or `` `...` `` identifiers, where the closing character doubled is an escape.
    Identifier {
        close: char,
    },
    /// Inside a PostgreSQL dollar quote; holds the whole opening delimiter, e.g. `$body$`.
    DollarQuoted {
        delimiter: String,
    },
    LineComment,
    BlockComment,
}

/// What one character of a script is, for the splitter and the placeholder finder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Code,
    /// Inside (or delimiting) a string, a quoted identifier or a dollar quote.
    Literal,
    Comment,
}

/// The class of every character of `script` (one entry per `char`). Quoting rules follow
/// `backend`: MySQL strings take backslash escapes and `#` starts a comment there; dollar quotes
/// (`$$...$$`, `$tag$...$tag$`) and `E'...'` strings are PostgreSQL's.
pub(super) fn classify(chars: &[char], backend: Backend) -> Vec<Class> {
    let mut classes = Vec::with_capacity(chars.len());
    let mut scan = Scan::Code;
    let mut index = 0;
    while index < chars.len() {
        let character = chars[index];
        let next = chars.get(index + 1).copied();
        let mut width = 1;
        let class = match &scan {
            Scan::Code => {
                if character == '-' && next == Some('-') || character == '#' && backend == Backend::MySql {
                    scan = Scan::LineComment;
                    Class::Comment
                } else if character == '/' && next == Some('*') {
                    scan = Scan::BlockComment;
                    width = 2;
                    Class::Comment
                } else if character == '\'' {
                    let escape_prefix = backend == Backend::Postgres && is_escape_string_prefix(chars, index);
                    scan = Scan::Quoted {
                        close: '\'',
                        backslash_escapes: backend == Backend::MySql || escape_prefix,
                    };
                    Class::Literal
                } else if character == '"' && backend == Backend::MySql {
                    scan = Scan::Quoted {
                        close: '"',
                        backslash_escapes: true,
                    };
                    Class::Literal
                } else if character == '"' || character == '`' {
                    scan = Scan::Identifier { close: character };
                    Class::Literal
                } else if character == '$'
                    && backend == Backend::Postgres
                    && let Some(delimiter) = dollar_quote_at(chars, index)
                {
                    width = delimiter.chars().count();
                    scan = Scan::DollarQuoted { delimiter };
                    Class::Literal
                } else {
                    Class::Code
                }
            }
            Scan::Quoted {
                close,
                backslash_escapes,
            } => {
                if *backslash_escapes && character == '\\' {
                    width = 2;
                } else if character == *close {
                    // A doubled closing quote is an escaped quote: leaving and re-entering the
                    // string on the next character gives the same result.
                    scan = Scan::Code;
                }
                Class::Literal
            }
            Scan::Identifier { close } => {
                if character == *close {
                    scan = Scan::Code;
                }
                Class::Literal
            }
            Scan::DollarQuoted { delimiter } => {
                if character == '$' && starts_with_at(chars, index, delimiter) {
                    width = delimiter.chars().count();
                    scan = Scan::Code;
                }
                Class::Literal
            }
            Scan::LineComment => {
                if character == '\n' {
                    scan = Scan::Code;
                }
                Class::Comment
            }
            Scan::BlockComment => {
                if character == '*' && next == Some('/') {
                    scan = Scan::Code;
                    width = 2;
                }
                Class::Comment
            }
        };
        let width = width.min(chars.len() - index);
        classes.extend(std::iter::repeat_n(class, width));
        index += width;
    }
    classes
}

/// The statements of `script` in order, each trimmed, without the separating `;`; statements
/// that hold only whitespace and comments are dropped. Semicolons inside strings, quoted
/// identifiers, dollar quotes and comments do not split (see [`classify`]). Procedural blocks
/// that need a client `DELIMITER` (MySQL procedures, SQLite triggers with `BEGIN ... END`) are
/// not recognised: send such a body as a single statement, or use dollar quotes on PostgreSQL.
pub fn split_statements(script: &str, backend: Backend) -> Vec<String> {
    let chars: Vec<char> = script.chars().collect();
    let classes = classify(&chars, backend);
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut has_code = false;
    for (&character, &class) in chars.iter().zip(&classes) {
        if class == Class::Code && character == ';' {
            finish_statement(&mut statements, &mut current, &mut has_code);
            continue;
        }
        if class == Class::Literal || class == Class::Code && !character.is_whitespace() {
            has_code = true;
        }
        current.push(character);
    }
    finish_statement(&mut statements, &mut current, &mut has_code);
    statements
}

/// A `:name` placeholder in code: where it starts and ends (char indices) and its name. A colon
/// doubled (`::int`, a PostgreSQL cast) or followed by `=` (MySQL's `:=`) is not one, and
/// neither is one inside a string or a comment.
pub(super) fn named_placeholders(chars: &[char], backend: Backend) -> Vec<(usize, usize, String)> {
    let classes = classify(chars, backend);
    let is_code = |index: usize| classes.get(index) == Some(&Class::Code);
    let mut found = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        if chars[index] == ':' && is_code(index) {
            if chars.get(index + 1) == Some(&':') {
                index += 2;
                continue;
            }
            let follows_colon = index > 0 && chars[index - 1] == ':';
            let starts_name = chars
                .get(index + 1)
                .is_some_and(|&first| (first.is_ascii_alphabetic() || first == '_') && is_code(index + 1));
            if starts_name && !follows_colon {
                let mut end = index + 1;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') && is_code(end) {
                    end += 1;
                }
                found.push((index, end, chars[index + 1..end].iter().collect()));
                index = end;
                continue;
            }
        }
        index += 1;
    }
    found
}

fn finish_statement(statements: &mut Vec<String>, current: &mut String, has_code: &mut bool) {
    if *has_code {
        statements.push(current.trim().to_string());
    }
    current.clear();
    *has_code = false;
}

/// `E'...'` (or `e'...'`) where the `E` is not the end of a longer word.
fn is_escape_string_prefix(chars: &[char], quote_index: usize) -> bool {
    if quote_index == 0 || !matches!(chars[quote_index - 1], 'E' | 'e') {
        return false;
    }
    quote_index < 2 || !is_identifier_char(chars[quote_index - 2])
}

/// The dollar-quote delimiter (`$$` or `$tag$`) starting at `index`, if there is one there. A `$`
/// that ends an identifier (`price$`) or starts a parameter (`$1`) is not one.
fn dollar_quote_at(chars: &[char], index: usize) -> Option<String> {
    if index > 0 && is_identifier_char(chars[index - 1]) {
        return None;
    }
    let mut end = index + 1;
    while end < chars.len() && chars[end] != '$' {
        let character = chars[end];
        let allowed = if end == index + 1 {
            character.is_alphabetic() || character == '_'
        } else {
            is_identifier_char(character)
        };
        if !allowed {
            return None;
        }
        end += 1;
    }
    (end < chars.len()).then(|| chars[index..=end].iter().collect())
}

fn starts_with_at(chars: &[char], index: usize, needle: &str) -> bool {
    let needle: Vec<char> = needle.chars().collect();
    chars.get(index..index + needle.len()) == Some(needle.as_slice())
}

fn is_identifier_char(character: char) -> bool {
    character.is_alphanumeric() || character == '_' || character == '$'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(script: &str, backend: Backend) -> Vec<String> {
        split_statements(script, backend)
    }

    #[test]
    fn statements_are_split_on_semicolons_and_trimmed() {
        assert_eq!(
            split(
                "CREATE TABLE t (a int);\n  INSERT INTO t VALUES (1) ;SELECT * FROM t",
                Backend::Sqlite
            ),
            ["CREATE TABLE t (a int)", "INSERT INTO t VALUES (1)", "SELECT * FROM t"]
        );
    }

    #[test]
    fn empty_statements_and_comment_only_statements_are_dropped() {
        assert_eq!(
            split(
                ";; SELECT 1;\n-- just a note;\n/* and; another */ ;  ",
                Backend::Postgres
            ),
            ["SELECT 1"]
        );
        assert!(split("  \n -- nothing here\n", Backend::Sqlite).is_empty());
    }

    #[test]
    fn a_semicolon_inside_a_string_does_not_split() {
        assert_eq!(
            split("INSERT INTO t VALUES ('a;b', 'it''s; fine'); SELECT 2", Backend::Sqlite),
            ["INSERT INTO t VALUES ('a;b', 'it''s; fine')", "SELECT 2"]
        );
    }

    #[test]
    fn quoted_identifiers_and_backticks_keep_their_semicolons() {
        assert_eq!(
            split(r#"SELECT "odd;name" FROM t; SELECT `x;y` FROM u"#, Backend::Sqlite),
            [r#"SELECT "odd;name" FROM t"#, "SELECT `x;y` FROM u"]
        );
    }

    #[test]
    fn comments_may_hold_semicolons_and_quotes() {
        assert_eq!(
            split(
                "SELECT 1 -- it's; a comment\n; /* don't; */ SELECT 2",
                Backend::Postgres
            ),
            ["SELECT 1 -- it's; a comment", "/* don't; */ SELECT 2"]
        );
    }

    #[test]
    fn postgres_dollar_quotes_hold_whole_function_bodies() {
        let script = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\
                      CREATE FUNCTION g() RETURNS text AS $body$ SELECT 'a;$$;b'; $body$ LANGUAGE sql;\n\
                      SELECT f()";
        assert_eq!(
            split(script, Backend::Postgres),
            [
                "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
                "CREATE FUNCTION g() RETURNS text AS $body$ SELECT 'a;$$;b'; $body$ LANGUAGE sql",
                "SELECT f()"
            ]
        );
    }

    #[test]
    fn a_postgres_parameter_or_identifier_dollar_is_not_a_dollar_quote() {
        assert_eq!(
            split("SELECT $1; SELECT price$ FROM t; SELECT 3", Backend::Postgres),
            ["SELECT $1", "SELECT price$ FROM t", "SELECT 3"]
        );
    }

    #[test]
    fn mysql_strings_take_backslash_escapes_and_hash_comments() {
        assert_eq!(
            split(
                r#"INSERT INTO t VALUES ('it\'s; ok', "say \"hi;\""); # note; here
SELECT 2"#,
                Backend::MySql
            ),
            [
                r#"INSERT INTO t VALUES ('it\'s; ok', "say \"hi;\"")"#,
                "# note; here\nSELECT 2"
            ]
        );
    }

    #[test]
    fn postgres_escape_strings_take_backslash_escapes_but_plain_strings_do_not() {
        assert_eq!(
            split(r"SELECT E'a\'; b'; SELECT 'c\'; SELECT 3", Backend::Postgres),
            [r"SELECT E'a\'; b'", r"SELECT 'c\'", "SELECT 3"]
        );
    }

    #[test]
    fn a_doubled_quote_in_an_identifier_is_an_escape() {
        assert_eq!(
            split(r#"SELECT 1 AS "a"";b"; SELECT 2"#, Backend::Sqlite),
            [r#"SELECT 1 AS "a"";b""#, "SELECT 2"]
        );
    }

    #[test]
    fn named_placeholders_are_found_in_code_only() {
        let names = |sql: &str, backend| -> Vec<String> {
            let chars: Vec<char> = sql.chars().collect();
            named_placeholders(&chars, backend)
                .into_iter()
                .map(|(_, _, name)| name)
                .collect()
        };
        assert_eq!(
            names(
                "SELECT :a, ':b', \":c\", x::int, :d::text -- :e\n/* :f */ FROM t WHERE y = :a",
                Backend::Postgres
            ),
            ["a", "d", "a"]
        );
        assert_eq!(
            names("SET @x := 1; SELECT :name_1, '\\':g'", Backend::MySql),
            ["name_1"]
        );
        assert_eq!(names("SELECT $$ :h $$, :i, arr[1:2]", Backend::Postgres), ["i"]);
    }

    #[test]
    fn unicode_text_survives_splitting() {
        assert_eq!(
            split("SELECT 'héllo; wörld ✓'; SELECT '日本'", Backend::Sqlite),
            ["SELECT 'héllo; wörld ✓'", "SELECT '日本'"]
        );
    }
}
