//! Style that matters, checked: every source file says what it is for in a `//!` first line, and
//! no stub or debugging macro is left in the library.

use std::path::{Path, PathBuf};

fn rust_files(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found
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
