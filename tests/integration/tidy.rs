//! Style that matters, checked: every source file says what it is for in a `//!` first line, no
//! stub or debugging macro is left in the library, the layers import only downwards, only
//! `src/storage` holds SQL for the metadata database, no source file grows past
//! [`MAX_NON_TEST_LINES`], and ARCHITECTURE.md names every module (rust-analyzer's tidy habit).

mod source;

use std::path::Path;

use source::{Source, rust_files};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`, read.
fn sources() -> Vec<Source> {
    let sources: Vec<Source> = rust_files(&root().join("src"))
        .iter()
        .map(|file| Source::read(root(), file))
        .collect();
    assert!(sources.len() > 100, "only {} source files found", sources.len());
    sources
}

#[test]
fn every_source_file_starts_with_a_module_doc_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for folder in ["src", "tests"] {
        for file in rust_files(&root.join(folder)) {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.starts_with("//!") {
                missing.push(file.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "files without a `//!` first line: {missing:?}");
}

#[test]
fn the_library_has_no_stubs_or_debug_macros() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offenders = Vec::new();
    for file in rust_files(&root.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if ["todo!(", "unimplemented!(", "dbg!(", concat!("#[", "ignore")]
                .iter()
                .any(|needle| line.contains(needle))
            {
                offenders.push(format!("{}:{}", file.strip_prefix(root).unwrap().display(), number + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "stubs or debug macros: {offenders:?}");
}

#[test]
fn only_the_schedulers_run_creation_writes_without_moving_the_change_counter() {
    // Its cache follows its own writes; anyone else's write a scheduler keeps must move the
    // counter, which every other `storage::Transaction` does when such a write goes through it.
    let allowed = [
        "src/storage/",
        "src/runtime/scheduler/runs.rs",
        "src/runtime/datasets.rs",
    ];
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|source| source.code.contains("begin_for_scheduler("))
        .map(|source| source.path)
        .filter(|path| !allowed.iter().any(|allowed| path.starts_with(allowed)))
        .collect();
    assert!(
        offenders.is_empty(),
        "`Db::begin_for_scheduler` outside the scheduler's run creation: {offenders:?}"
    );
}

fn templates() -> Vec<(String, String)> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/templates");
    let mut found: Vec<(String, String)> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "html"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no templates in {}", folder.display());
    found
}

#[test]
fn every_post_form_in_the_templates_carries_the_csrf_field() {
    let form = regex::Regex::new(r"(?is)<form\b[^>]*>.*?</form>").unwrap();
    let posts = regex::Regex::new(r#"(?i)^<form\b[^>]*\bmethod\s*=\s*["']?post"#).unwrap();
    let mut n_post_forms = 0;
    let mut missing = Vec::new();
    for (name, text) in templates() {
        for found in form.find_iter(&text) {
            if !posts.is_match(found.as_str()) {
                continue;
            }
            n_post_forms += 1;
            if !found.as_str().contains("{{ csrf_field() }}") {
                let line = text[..found.start()].lines().count() + 1;
                missing.push(format!("{name}:{line}"));
            }
        }
    }
    assert!(
        n_post_forms >= 15,
        "only {n_post_forms} post forms found: is the pattern still right?"
    );
    assert!(
        missing.is_empty(),
        "post forms without {{{{ csrf_field() }}}}: {missing:?}"
    );
}

#[test]
fn the_templates_hold_no_inline_script_style_or_event_handler() {
    // The Content-Security-Policy refuses all three, so they would silently not work.
    let script = regex::Regex::new(r"(?i)<script\b[^>]*>").unwrap();
    let with_source = regex::Regex::new(r"(?i)\ssrc\s*=").unwrap();
    let handler = regex::Regex::new(r#"(?i)<[^>]*\son[a-z]+\s*="#).unwrap();
    let style_attribute = regex::Regex::new(r#"(?i)<[^>]*\sstyle\s*="#).unwrap();
    let style_element = regex::Regex::new(r"(?i)<style\b").unwrap();
    let javascript_url = regex::Regex::new(r"(?i)javascript:").unwrap();
    let mut offenders = Vec::new();
    for (name, text) in templates() {
        for found in script
            .find_iter(&text)
            .filter(|found| !with_source.is_match(found.as_str()))
        {
            let line = text[..found.start()].lines().count().max(1);
            offenders.push(format!("{name}:{line}: inline <script>: {}", found.as_str()));
        }
        for (what, pattern) in [
            ("on* event handler", &handler),
            ("style= attribute", &style_attribute),
            ("<style> element", &style_element),
            ("javascript: URL", &javascript_url),
        ] {
            for found in pattern.find_iter(&text) {
                let line = text[..found.start()].lines().count().max(1);
                offenders.push(format!("{name}:{line}: {what}: {}", found.as_str()));
            }
        }
    }
    assert!(offenders.is_empty(), "move these to web/static: {offenders:?}");
}

/// The top-level modules and, for each, the only top-level modules it may use. The four layers
/// import only downwards: domain ← storage ← runtime ← api / cli. Beside them, three leaves:
/// - `secrets` (the key file and the encryption of passwords at rest) uses only the domain; storage
///   encrypts and decrypts with it, so it sits under storage.
/// - `config` (`config.toml` and its overrides) uses the domain and `secrets` (the passphrases it
///   reads); storage is handed plain values, never the config, so config sits beside storage,
///   under runtime.
/// - `telemetry` (the tracing subscriber) uses `config`; only the CLI's entry point starts it.
///
/// Above `api`, `daemon` builds and runs the long-running whole (loader, scheduler, alert
/// delivery, web server) from the config; `cli` may use everything: it is the binary's front and
/// starts the daemon (`weir serve`). Neither `api` nor `daemon` uses `cli`, and `api` does not use
/// `daemon`. `lib.rs` and `main.rs` are the crate root and only declare and call.
const LAYERS: &[(&str, &[&str], &str)] = &[
    (
        "domain",
        &[],
        "the domain decides and does no IO: pass what it needs in as a value, or move the code up",
    ),
    (
        "secrets",
        &["domain"],
        "secrets is a leaf under storage: move the code that needs more up",
    ),
    (
        "config",
        &["domain", "secrets"],
        "config reads and checks config.toml only: let runtime, api or cli combine it with the rest",
    ),
    (
        "storage",
        &["domain", "secrets"],
        "storage maps rows to domain types: take plain values as parameters and move the rest up into runtime",
    ),
    (
        "telemetry",
        &["domain", "secrets", "config"],
        "telemetry only sets up tracing from the config",
    ),
    (
        "runtime",
        &["domain", "secrets", "config", "storage"],
        "runtime must not know the HTTP or CLI surface: move the shared code down into runtime and call it from above",
    ),
    (
        "api",
        &["domain", "secrets", "config", "storage", "runtime"],
        "the API is served by the daemon and called by the CLI, never the reverse: move the shared code down into runtime",
    ),
    (
        "daemon",
        &["domain", "secrets", "config", "storage", "runtime", "api"],
        "the daemon is started by the CLI, never the reverse: move the shared code down",
    ),
    (
        "cli",
        &[
            "domain",
            "secrets",
            "config",
            "storage",
            "runtime",
            "api",
            "daemon",
            "telemetry",
        ],
        "",
    ),
];

/// The top-level modules `code` names (from `crate::x`, `crate::{x, y}`, `$crate::x`, and
/// `super::` chains that climb to the crate root), with their byte offsets and the path's start
/// as written (`crate::`, `super::super::`). `module` is the
/// file's module path; `mod name {` blocks inside the file deepen it where they are open.
fn named_top_level_modules(code: &str, module: &[String]) -> Vec<(usize, String, String)> {
    let ident = regex::Regex::new(r"^\s*([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    let inline_module = regex::Regex::new(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{").unwrap();
    let path_start = regex::Regex::new(r"\b(crate|super)\s*::").unwrap();
    let one_more_super = regex::Regex::new(r"^\s*super\s*::").unwrap();
    // Depth of the inline modules open at each offset: a `{` that opens one is pushed.
    let opening_braces: Vec<usize> = inline_module.find_iter(code).map(|found| found.end() - 1).collect();
    let mut open: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut inline_depth_at = vec![0usize; code.len() + 1];
    for (offset, byte) in code.bytes().enumerate() {
        inline_depth_at[offset] = open.len();
        match byte {
            b'{' => {
                depth += 1;
                if opening_braces.contains(&offset) {
                    open.push(depth);
                }
            }
            b'}' => {
                if open.last() == Some(&depth) {
                    open.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    for start in path_start.captures_iter(code) {
        let whole = start.get(0).unwrap();
        // `super::super` is one chain: only its first `super` starts it.
        let before = code[..whole.start()].trim_end();
        if before.ends_with("::") {
            continue;
        }
        let mut rest = whole.end();
        if &start[1] == "super" {
            let mut supers = 1;
            while let Some(next) = one_more_super.find(&code[rest..]) {
                supers += 1;
                rest += next.end();
            }
            if supers < module.len() + inline_depth_at[whole.start()] {
                continue;
            }
        }
        let written: String = code[whole.start()..rest].split_whitespace().collect();
        let after = &code[rest..];
        if after.trim_start().starts_with('{') {
            // `crate::{a::b, c}`: each item's first segment, at the group's top level.
            let group_start = rest + after.find('{').unwrap() + 1;
            let mut level = 0;
            let mut item_start = group_start;
            for (offset, byte) in code[group_start..].bytes().enumerate() {
                let at = group_start + offset;
                match byte {
                    b'{' => level += 1,
                    b'}' if level == 0 => {
                        if let Some(name) = ident.captures(&code[item_start..at]) {
                            found.push((item_start, written.clone(), name[1].to_string()));
                        }
                        break;
                    }
                    b'}' => level -= 1,
                    b',' if level == 0 => {
                        if let Some(name) = ident.captures(&code[item_start..at]) {
                            found.push((item_start, written.clone(), name[1].to_string()));
                        }
                        item_start = at + 1;
                    }
                    _ => {}
                }
            }
        } else if let Some(name) = ident.captures(after) {
            found.push((whole.start(), written, name[1].to_string()));
        }
    }
    found
}

#[test]
fn the_layers_import_only_downwards() {
    let mut offenders = Vec::new();
    let mut n_paths = 0;
    for source in sources() {
        let Some(top) = source.module.first() else {
            continue; // lib.rs, main.rs
        };
        let Some((_, may_use, hint)) = LAYERS.iter().find(|(name, _, _)| name == top) else {
            offenders.push(format!(
                "{}:1: `{top}` is a top-level module the layer table does not know: add it to LAYERS in tests/integration/tidy.rs with the modules it may use, and to ARCHITECTURE.md",
                source.path
            ));
            continue;
        };
        for (offset, written, used) in named_top_level_modules(&source.code, &source.module) {
            n_paths += 1;
            let known = LAYERS.iter().any(|(name, _, _)| *name == used);
            if !known || used == *top || may_use.contains(&used.as_str()) {
                continue;
            }
            offenders.push(format!(
                "{}:{}: {top} uses `{written}{used}` (crate::{used}), but {top} may use only {may_use:?}: {hint}",
                source.path,
                source.line_of(offset)
            ));
        }
    }
    assert!(
        n_paths > 500,
        "only {n_paths} `crate::` paths found: is the pattern still right?"
    );
    assert!(
        offenders.is_empty(),
        "imports against the layering (domain ← storage ← runtime ← api / cli):\n{}",
        offenders.join("\n")
    );
}

/// Code outside `src/storage` that speaks SQL to the users' own databases (the `sql` and
/// `transfer` task types, sql sensors, `weir connections test`), never to weir's.
const SQL_FOR_USERS_DATABASES: &[&str] = &["src/runtime/operators/sql/", "src/runtime/connection_probe.rs"];

#[test]
fn only_storage_holds_sql_for_the_metadata_database() {
    // Upper case keywords, as weir writes its statements: prose ("select a run from the list")
    // does not match. Test code is left out: tests hold users' SQL as data.
    let statement =
        regex::Regex::new(r"(?s)\bSELECT\b.*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b")
            .unwrap();
    let query_call = regex::Regex::new(r"\bsqlx\s*::\s*(\{[^}]*\b)?query").unwrap();
    let mut offenders = Vec::new();
    let mut n_storage_statements = 0;
    for source in sources() {
        if source.path.starts_with("src/storage/") {
            n_storage_statements += source
                .strings
                .iter()
                .filter(|(_, text)| statement.is_match(text))
                .count();
            continue;
        }
        if SQL_FOR_USERS_DATABASES
            .iter()
            .any(|allowed| source.path.starts_with(allowed))
        {
            continue;
        }
        for found in query_call.find_iter(&source.code) {
            let line = source.line_of(found.start());
            if !source.is_test_line(line) {
                offenders.push(format!("{}:{line}: `{}`", source.path, found.as_str()));
            }
        }
        for (line, text) in &source.strings {
            if !source.is_test_line(*line)
                && let Some(found) = statement.find(text)
            {
                let shown: String = found.as_str().chars().take(60).collect();
                offenders.push(format!("{}:{line}: \"{shown}\"", source.path));
            }
        }
    }
    assert!(
        n_storage_statements > 100,
        "only {n_storage_statements} statements found in src/storage: is the pattern still right?"
    );
    assert!(
        offenders.is_empty(),
        "SQL outside src/storage: move the statement into a function of a src/storage module and call that; code that speaks to the users' own databases belongs in SQL_FOR_USERS_DATABASES\n{}",
        offenders.join("\n")
    );
}

/// The most lines a source file under `src/` may have before its tests.
const MAX_NON_TEST_LINES: usize = 600;

/// Files still over [`MAX_NON_TEST_LINES`], to be split; each leaves the list when it is split.
const TO_BE_SPLIT: &[&str] = &[];

/// Counts the lines before a trailing `#[cfg(test)] mod tests` block; a test module moved to its
/// own file (`<module>/tests.rs`) is all test code and does not count.
#[test]
fn no_source_file_is_longer_than_the_limit_before_its_tests() {
    let mut offenders = Vec::new();
    let mut over: Vec<String> = Vec::new();
    for source in sources() {
        let n_lines = source.n_non_test_lines();
        if n_lines <= MAX_NON_TEST_LINES {
            continue;
        }
        over.push(source.path.clone());
        if !TO_BE_SPLIT.contains(&source.path.as_str()) {
            offenders.push(format!(
                "{}:{}: {n_lines} lines before its tests, more than {MAX_NON_TEST_LINES}: split it by job into a folder of submodules (keep its public paths with `pub use`), or move its tests to `{}/tests.rs`",
                source.path,
                MAX_NON_TEST_LINES + 1,
                source.path.trim_end_matches(".rs").trim_end_matches("/mod")
            ));
        }
    }
    for listed in TO_BE_SPLIT {
        if !over.iter().any(|path| path == listed) {
            offenders.push(format!(
                "{listed}: is within {MAX_NON_TEST_LINES} lines now (or gone): remove it from TO_BE_SPLIT in tests/integration/tidy.rs"
            ));
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// ARCHITECTURE.md names every top-level module: each folder in `src/` (`src/domain/`), each file
/// directly in `src/` but the crate root (`src/config.rs`), and each module directly in a folder of
/// `src/`, as its file (`schedule.rs`) or folder (`alerts/`). A module's bare name counts only where
/// no other folder has a module of that name; otherwise the map must say whose it is
/// (`storage/users.rs`). Modules deeper down are their parent's business.
#[test]
fn architecture_md_names_every_top_level_module() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let src = root().join("src");
    let names_at_word_start = |name: &str| {
        map.match_indices(name).any(|(at, _)| {
            !map[..at]
                .chars()
                .next_back()
                .is_some_and(|before| before.is_alphanumeric() || before == '_' || before == '/')
        })
    };
    // (folder in src/, module name)
    let mut modules: Vec<(String, String)> = Vec::new();
    let mut missing = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for entry in &entries {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if entry.is_dir() {
            if !map.contains(&format!("src/{name}/")) {
                missing.push(format!(
                    "src/{name}/: name it as `src/{name}/` with a paragraph of what it holds"
                ));
            }
            let mut inner: Vec<_> = std::fs::read_dir(entry)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
            inner.sort();
            for path in inner {
                let file = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    modules.push((name.clone(), file));
                } else if let Some(stem) = file.strip_suffix(".rs")
                    && stem != "mod"
                {
                    modules.push((name.clone(), stem.to_string()));
                }
            }
        } else if name != "lib.rs" && !map.contains(&format!("src/{name}")) && !names_at_word_start(&name) {
            missing.push(format!(
                "src/{name}: name it as `src/{name}` with a sentence of what it is for"
            ));
        }
    }
    modules.sort();
    modules.dedup();
    for (folder, module) in &modules {
        let qualified = [format!("{folder}/{module}.rs"), format!("{folder}/{module}/")];
        if qualified.iter().any(|form| map.contains(form.as_str())) {
            continue;
        }
        let shared = modules.iter().filter(|(_, other)| other == module).count() > 1;
        let bare = [format!("{module}.rs"), format!("{module}/")];
        if !shared && bare.iter().any(|form| names_at_word_start(form)) {
            continue;
        }
        let why = if shared {
            format!(" (other folders have a `{module}` too, so say whose)")
        } else {
            String::new()
        };
        missing.push(format!(
            "src/{folder}/{module}: name it as `{folder}/{module}.rs` or `{folder}/{module}/`{why} under Folders, with what it is for"
        ));
    }
    assert!(modules.len() > 50, "only {} modules found", modules.len());
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these modules:\n{}",
        missing.join("\n")
    );
}

/// The files a user reads: README.md and everything under docs/.
fn user_facing_files() -> Vec<std::path::PathBuf> {
    fn walk(folder: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path
                .extension()
                .is_some_and(|extension| ["md", "json", "toml", "yaml"].iter().any(|text| extension == *text))
            {
                // Text only: the screenshots are pictures.
                found.push(path);
            }
        }
    }
    let mut files = vec![
        root().join("README.md"),
        root().join("config.toml"),
        root().join("bench/README.md"),
    ];
    walk(&root().join("docs"), &mut files);
    walk(&root().join("dags"), &mut files);
    files
}

#[test]
fn user_facing_text_points_nowhere_outside_the_repository() {
    // A user has the repository and the binary, not the project's contract or its issue tracker:
    // README, docs/ and every `--help` stand on their own.
    let outside = regex::Regex::new(r"§|\bSPEC\b|(?i:\bissues? #?[0-9]+)").unwrap();
    let mut offenders = Vec::new();
    let mut check = |place: &str, text: &str| {
        for (number, line) in text.lines().enumerate() {
            if let Some(found) = outside.find(line) {
                offenders.push(format!(
                    "{place}:{}: `{}` in: {}",
                    number + 1,
                    found.as_str(),
                    line.trim()
                ));
            }
        }
    };
    let files = user_facing_files();
    assert!(files.len() >= 10, "only {} user-facing files found", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        check(&file.strip_prefix(root()).unwrap().display().to_string(), &text);
    }
    let commands = crate::generated_docs::commands();
    assert!(commands.len() >= 40, "only {} commands found", commands.len());
    for (name, command) in &commands {
        check(&format!("`{name} --help`"), &crate::generated_docs::long_help(command));
    }
    assert!(
        offenders.is_empty(),
        "say it in the text itself (no section signs, SPEC or issue numbers):\n{}",
        offenders.join("\n")
    );
}
