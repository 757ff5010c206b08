//! Where a `{{ ... }}` may stand in a shell command: only where a shell-quoted word means what it
//! says (a word, or part of one, in plain code), not inside quotes, a comment or a here-document.

/// The shell's quoting context at a point of the command's literal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Plain code: at top level, in `$(...)` (with its parenthesis depth) or in backticks.
    Code,
    Substitution(u32),
    Backticks,
    SingleQuotes,
    AnsiQuotes,
    DoubleQuotes,
    Comment,
}

impl Context {
    fn is_code(self) -> bool {
        matches!(self, Context::Code | Context::Substitution(_) | Context::Backticks)
    }
}

/// A here-document announced by `<<WORD` whose body starts on the next line.
#[derive(Debug, Clone)]
struct HereDocument {
    delimiter: String,
    strip_tabs: bool,
}

/// Checks that every `{{ ... }}` of a shell command template stands in plain code, where its
/// shell-quoted value is one word. Inside quotes the quotes weir adds would be literal (and
/// inside double quotes `$(...)` in the value would run); in a comment a newline in the value
/// would end the comment; in a here-document nothing is unquoted; right after `\` or `$` the
/// quote would be escaped or read as `$'...'`. The error names the line and says what to write.
pub fn check(template: &str) -> Result<(), String> {
    let chars: Vec<char> = template.chars().collect();
    let mut stack = vec![Context::Code];
    let mut pending: Vec<HereDocument> = Vec::new();
    let mut previous: Option<char> = None;
    let mut index = 0;
    // Inside `{% raw %}...{% endraw %}`: literal text up to this index, then the closing tag.
    let mut raw_until: Option<(usize, usize)> = None;
    while index < chars.len() {
        let character = chars[index];
        let next = chars.get(index + 1).copied();
        if let Some((end_of_text, end_of_tag)) = raw_until
            && index >= end_of_text
        {
            raw_until = None;
            index = end_of_tag;
            continue;
        }
        if raw_until.is_none() && character == '{' && matches!(next, Some('{' | '%' | '#')) {
            let end = tag_end(&chars, index);
            if next == Some('{') {
                let top = *stack.last().unwrap_or(&Context::Code);
                if let Some(problem) = misplaced(top, previous) {
                    return Err(format!(
                        "`{{{{ ... }}}}` on line {} of the command {problem}",
                        line_of(&chars, index)
                    ));
                }
                previous = Some('x');
            } else if next == Some('%') && is_tag(&chars[index..end], "raw") {
                // `{% raw %}...{% endraw %}` is literal text: the shell scan goes through it.
                raw_until = Some(end_raw(&chars, end));
            }
            index = end;
            continue;
        }
        let top = *stack.last().unwrap_or(&Context::Code);
        let mut consumed = 1;
        match top {
            Context::SingleQuotes => {
                if character == '\'' {
                    stack.pop();
                }
            }
            Context::AnsiQuotes => match character {
                '\\' => consumed = 2,
                '\'' => {
                    stack.pop();
                }
                _ => {}
            },
            Context::DoubleQuotes => match character {
                '\\' => consumed = 2,
                '"' => {
                    stack.pop();
                }
                '$' if next == Some('(') => {
                    stack.push(Context::Substitution(1));
                    consumed = 2;
                }
                '`' => stack.push(Context::Backticks),
                _ => {}
            },
            Context::Comment => {
                if character == '\n' {
                    stack.pop();
                    if !pending.is_empty() {
                        index = skip_here_documents(&chars, index + 1, &mut pending)?;
                        previous = Some('\n');
                        continue;
                    }
                }
            }
            Context::Code | Context::Substitution(_) | Context::Backticks => match character {
                '\\' => {
                    if next == Some('{') && matches!(chars.get(index + 2), Some('{')) {
                        return Err(format!(
                            "`{{{{ ... }}}}` on line {} of the command comes right after a backslash, which would escape the quote weir puts around its value: remove the backslash",
                            line_of(&chars, index)
                        ));
                    }
                    consumed = 2;
                }
                '\'' => stack.push(Context::SingleQuotes),
                '"' => stack.push(Context::DoubleQuotes),
                '$' if next == Some('\'') => {
                    stack.push(Context::AnsiQuotes);
                    consumed = 2;
                }
                '$' if next == Some('(') => {
                    stack.push(Context::Substitution(1));
                    consumed = 2;
                }
                '`' => {
                    if top == Context::Backticks {
                        stack.pop();
                    } else {
                        stack.push(Context::Backticks);
                    }
                }
                '(' => {
                    if let Context::Substitution(depth) = top {
                        stack.pop();
                        stack.push(Context::Substitution(depth + 1));
                    }
                }
                ')' => {
                    if let Context::Substitution(depth) = top {
                        stack.pop();
                        if depth > 1 {
                            stack.push(Context::Substitution(depth - 1));
                        }
                    }
                }
                '#' if previous.is_none_or(|before| before.is_whitespace() || ";&|()<>".contains(before)) => {
                    stack.push(Context::Comment)
                }
                '<' if next == Some('<') && chars.get(index + 2) != Some(&'<') => {
                    let (document, after) = here_document_at(&chars, index + 2);
                    pending.push(document);
                    previous = Some('x');
                    index = after;
                    continue;
                }
                '\n' if !pending.is_empty() => {
                    index = skip_here_documents(&chars, index + 1, &mut pending)?;
                    previous = Some('\n');
                    continue;
                }
                _ => {}
            },
        }
        previous = chars.get(index + consumed - 1).copied();
        index += consumed;
    }
    Ok(())
}

/// Why a `{{ ... }}` cannot stand in `context` right after `previous`, if it cannot.
fn misplaced(context: Context, previous: Option<char>) -> Option<&'static str> {
    Some(match context {
        Context::SingleQuotes => {
            "sits inside single quotes: weir shell-quotes every value, so remove the quotes around it (write `--name {{ params.name }}`), or read the value from its environment variable (\"$WEIR_PARAM_NAME\")"
        }
        Context::DoubleQuotes => {
            "sits inside double quotes: weir shell-quotes every value, so remove the quotes around it (write `--name {{ params.name }}`), or read the value from its environment variable (\"$WEIR_PARAM_NAME\")"
        }
        Context::AnsiQuotes => {
            "sits inside $'...' quotes: weir shell-quotes every value, so write it as a word of its own, outside the quotes"
        }
        Context::Comment => {
            "sits in a shell comment, which a newline in its value would end: remove it from the comment"
        }
        _ if context.is_code() && previous == Some('$') => {
            "comes right after `$`, which would turn its quotes into $'...': remove the `$`"
        }
        _ => return None,
    })
}

/// The index just past the template tag that starts at `start` (`{{`, `{%` or `{#`), skipping
/// string literals inside expressions; the end of the text when the tag is not closed (the
/// syntax check reports that).
fn tag_end(chars: &[char], start: usize) -> usize {
    let close = match chars.get(start + 1) {
        Some('{') => '}',
        Some('%') => '%',
        _ => '#',
    };
    let mut index = start + 2;
    let mut string: Option<char> = None;
    while index < chars.len() {
        let character = chars[index];
        match string {
            Some(quote) => {
                if character == '\\' {
                    index += 1;
                } else if character == quote {
                    string = None;
                }
            }
            None => {
                if close != '#' && (character == '\'' || character == '"') {
                    string = Some(character);
                } else if character == close && chars.get(index + 1) == Some(&'}') {
                    return index + 2;
                }
            }
        }
        index += 1;
    }
    chars.len()
}

/// Whether a `{% ... %}` tag is `{% name %}` (with any whitespace control).
fn is_tag(tag: &[char], name: &str) -> bool {
    let text: String = tag.iter().collect();
    let inner = text.trim_start_matches("{%").trim_end_matches("%}");
    inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == name
}

/// Where the text of a raw block that starts at `start` ends, and where its `{% endraw %}` ends
/// (the end of the template when it is not closed).
fn end_raw(chars: &[char], start: usize) -> (usize, usize) {
    let mut index = start;
    while index + 1 < chars.len() {
        if chars[index] == '{' && chars[index + 1] == '%' {
            let end = tag_end(chars, index);
            if is_tag(&chars[index..end], "endraw") {
                return (index, end);
            }
        }
        index += 1;
    }
    (chars.len(), chars.len())
}

/// Reads the delimiter of a here-document after `<<` (`-` strips tabs; quotes only change
/// whether its body expands, which does not matter here: no `{{ }}` may stand in either).
fn here_document_at(chars: &[char], mut index: usize) -> (HereDocument, usize) {
    let strip_tabs = chars.get(index) == Some(&'-');
    if strip_tabs {
        index += 1;
    }
    while matches!(chars.get(index), Some(' ' | '\t')) {
        index += 1;
    }
    let mut delimiter = String::new();
    while let Some(&character) = chars.get(index) {
        if character.is_whitespace() || ";&|<>()".contains(character) {
            break;
        }
        if !matches!(character, '\'' | '"' | '\\') {
            delimiter.push(character);
        }
        index += 1;
    }
    (HereDocument { delimiter, strip_tabs }, index)
}

/// Skips the bodies of the here-documents announced on the line that just ended (`start` is the
/// first character of the next line); a `{{` inside one is an error. Returns where code resumes.
fn skip_here_documents(chars: &[char], start: usize, pending: &mut Vec<HereDocument>) -> Result<usize, String> {
    let mut index = start;
    for document in pending.drain(..) {
        loop {
            if index >= chars.len() {
                return Ok(index);
            }
            let line_end = chars[index..]
                .iter()
                .position(|&character| character == '\n')
                .map_or(chars.len(), |offset| index + offset);
            let line: String = chars[index..line_end].iter().collect();
            let compared = if document.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line.as_str()
            };
            if compared == document.delimiter {
                index = (line_end + 1).min(chars.len());
                break;
            }
            if line.contains("{{") {
                return Err(format!(
                    "`{{{{ ... }}}}` on line {} of the command sits in a here-document, where quotes are not removed and `$(...)` in a value would run: read the value from its environment variable instead (\"$WEIR_PARAM_NAME\")",
                    line_of(chars, index)
                ));
            }
            index = (line_end + 1).min(chars.len());
        }
    }
    Ok(index)
}

fn line_of(chars: &[char], index: usize) -> usize {
    chars[..index].iter().filter(|&&character| character == '\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_in_plain_code_are_accepted() {
        for command in [
            "echo {{ params.name }} > out.txt",
            "./extract.sh --day={{ ds }} out_{{ ds }}.csv",
            "x=$(printf %s {{ params.name }}) && echo \"$x\"",
            "echo \"$(cat {{ params.file }})\"",
            "echo `basename {{ params.file }}`",
            "{% for row in rows %}echo {{ row }}\n{% endfor %}",
            "echo it\\'s {{ ds }} # a comment without templates",
            "cat <<'EOF'\nno templates here\nEOF\necho {{ ds }}",
            "echo a#{{ ds }}",
            "{% raw %}echo '{{'{% endraw %} {{ ds }}",
        ] {
            assert_eq!(check(command), Ok(()), "{command}");
        }
    }

    #[test]
    fn expressions_inside_quotes_comments_and_here_documents_are_refused_with_their_line() {
        let cases = [
            (
                "echo \"{{ params.name }}\"",
                "line 1 of the command sits inside double quotes",
            ),
            (
                "echo '{{ params.name }}'",
                "line 1 of the command sits inside single quotes",
            ),
            (
                "echo $'{{ params.name }}'",
                "line 1 of the command sits inside $'...' quotes",
            ),
            (
                "true\n# run for {{ params.name }}\n",
                "line 2 of the command sits in a shell comment",
            ),
            (
                "cat <<EOF\nname: {{ params.name }}\nEOF",
                "line 2 of the command sits in a here-document",
            ),
            (
                "cat <<-'END' > f\n\tx {{ ds }}\n\tEND",
                "line 2 of the command sits in a here-document",
            ),
            (
                "echo \\{{ params.name }}",
                "line 1 of the command comes right after a backslash",
            ),
            ("echo ${{ params.name }}", "line 1 of the command comes right after `$`"),
            ("echo \"$(echo a) {{ ds }}\"", "inside double quotes"),
        ];
        for (command, expected) in cases {
            let error = check(command).unwrap_err();
            assert!(error.contains(expected), "{command}: {error}");
        }
    }

    #[test]
    fn braces_inside_template_strings_do_not_end_the_expression() {
        assert_eq!(check("echo {{ '}}\"' ~ ds }} done"), Ok(()));
        assert!(check("echo {{ '}}' }} \"{{ ds }}\"").is_err());
    }
}
