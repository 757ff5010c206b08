//! A Rust source file as the tidy checks read it: its code with comments and literal contents
//! blanked out (so a word in a doc comment or a message is not taken for a path), its string
//! literals apart, and where its tests start. Not a parser: enough lexing to tell code, comments
//! and literals apart, which is all the checks need.

use std::path::{Path, PathBuf};

/// One `.rs` file under `src/`.
pub struct Source {
    /// Relative to the crate root, with `/` separators: `src/api/rest/mod.rs`.
    pub path: String,
    /// The module path within the crate: `["api", "rest"]` for `src/api/rest/mod.rs`.
    pub module: Vec<String>,
    /// The text with comments and the contents of string and char literals replaced by spaces;
    /// line breaks are kept, so a byte offset's line is the same as in the file.
    pub code: String,
    /// Every string literal's contents with the line it starts on.
    pub strings: Vec<(usize, String)>,
    /// Lines in the file.
    pub n_lines: usize,
    /// The 1-based line of a trailing `#[cfg(test)] mod tests` block, if there is one.
    pub tests_start: Option<usize>,
    /// The whole file is test code (`tests.rs`, a test module moved to its own file).
    pub is_test_file: bool,
}

impl Source {
    pub fn read(root: &Path, file: &Path) -> Source {
        let text = std::fs::read_to_string(file).unwrap();
        let path = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        let mut module: Vec<String> = path
            .trim_start_matches("src/")
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_string)
            .collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
            module.pop();
        }
        let (code, strings) = blank_comments_and_literals(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tests_start = lines
            .iter()
            .rposition(|line| *line == "#[cfg(test)]")
            .filter(|&index| lines.get(index + 1).is_some_and(|next| next.starts_with("mod tests")))
            .map(|index| index + 1);
        let is_test_file = module.last().is_some_and(|name| name == "tests");
        Source {
            path,
            module,
            code,
            strings,
            n_lines: lines.len(),
            tests_start,
            is_test_file,
        }
    }

    /// Lines of code that is not a test: before a trailing test module, none in a test file.
    pub fn n_non_test_lines(&self) -> usize {
        if self.is_test_file {
            return 0;
        }
        self.tests_start.map_or(self.n_lines, |start| start - 1)
    }

    /// Whether 1-based `line` is test code.
    pub fn is_test_line(&self, line: usize) -> bool {
        self.is_test_file || self.tests_start.is_some_and(|start| line >= start)
    }

    /// The 1-based line of byte `offset` of [`Source::code`].
    pub fn line_of(&self, offset: usize) -> usize {
        self.code[..offset].matches('\n').count() + 1
    }
}

/// Every `.rs` file under `folder`, sorted.
pub fn rust_files(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The code of `text` with comments and literal contents blanked, and its string literals.
fn blank_comments_and_literals(text: &str) -> (String, Vec<(usize, String)>) {
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let mut strings = Vec::new();
    let mut line = 1;
    let mut index = 0;
    // Blanks `chars[from..to]` into `code`, keeping line breaks.
    let blank = |code: &mut String, line: &mut usize, span: &[char]| {
        for &c in span {
            if c == '\n' {
                *line += 1;
                code.push('\n');
            } else {
                code.extend(std::iter::repeat_n(' ', c.len_utf8()));
            }
        }
    };
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        if c == '/' && next == Some('/') {
            let end = chars[index..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |n| index + n);
            blank(&mut code, &mut line, &chars[index..end]);
            index = end;
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            let mut end = index;
            while end < chars.len() {
                if chars[end] == '/' && chars.get(end + 1) == Some(&'*') {
                    depth += 1;
                    end += 2;
                } else if chars[end] == '*' && chars.get(end + 1) == Some(&'/') {
                    depth -= 1;
                    end += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    end += 1;
                }
            }
            blank(&mut code, &mut line, &chars[index..end.min(chars.len())]);
            index = end;
        } else if let Some((open, hashes)) = raw_string_start(&chars, index) {
            // r"...", r#"..."#, br"...": no escapes, ends at `"` and as many `#`.
            let body = index + open;
            let mut end = body;
            while end < chars.len() && !(chars[end] == '"' && (1..=hashes).all(|n| chars.get(end + n) == Some(&'#'))) {
                end += 1;
            }
            strings.push((line, chars[body..end.min(chars.len())].iter().collect()));
            code.extend(chars[index..body].iter());
            blank(&mut code, &mut line, &chars[body..end.min(chars.len())]);
            index = end;
            let close = (end + 1 + hashes).min(chars.len());
            code.extend(chars[end.min(chars.len())..close].iter());
            index = index.max(close);
        } else if c == '"' {
            let body = index + 1;
            let mut end = body;
            while end < chars.len() && chars[end] != '"' {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            let end = end.min(chars.len());
            strings.push((line, chars[body..end].iter().collect()));
            code.push('"');
            blank(&mut code, &mut line, &chars[body..end]);
            if end < chars.len() {
                code.push('"');
            }
            index = end + 1;
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}'), else a lifetime or label ('a, 'static).
            let end = if next == Some('\\') {
                chars[index + 3..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map(|n| index + 3 + n)
            } else if chars.get(index + 2) == Some(&'\'') {
                Some(index + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    code.push('\'');
                    blank(&mut code, &mut line, &chars[index + 1..end]);
                    code.push('\'');
                    index = end + 1;
                }
                None => {
                    code.push(c);
                    index += 1;
                }
            }
        } else {
            if c == '\n' {
                line += 1;
            }
            code.push(c);
            index += 1;
        }
    }
    (code, strings)
}

/// At a raw string's start (`r"`, `r#"`, `br##"`, not inside an identifier such as `for`): the
/// length of its opening and its number of `#`.
fn raw_string_start(chars: &[char], index: usize) -> Option<(usize, usize)> {
    if index > 0 && (chars[index - 1].is_alphanumeric() || chars[index - 1] == '_') {
        return None;
    }
    let mut at = index;
    if chars.get(at) == Some(&'b') || chars.get(at) == Some(&'c') {
        at += 1;
    }
    if chars.get(at) != Some(&'r') {
        return None;
    }
    at += 1;
    let hashes = chars[at..].iter().take_while(|&&c| c == '#').count();
    at += hashes;
    (chars.get(at) == Some(&'"')).then_some((at + 1 - index, hashes))
}
