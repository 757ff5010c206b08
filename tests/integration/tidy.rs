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
