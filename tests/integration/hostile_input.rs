//! Hostile input, as property tests: the DAG loader, cron and duration parsing and template
//! rendering never panic on arbitrary text, the loader refuses alias bombs, deep nesting and
//! huge files with a located error, and a shell-quoted value comes back from a real `/bin/sh`
//! exactly as it went in. Case counts are modest: these run in CI on two cores.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use serde_json::json;
use weir::domain::dag::Dag;
use weir::domain::duration::parse_duration;
use weir::domain::schedule::Schedule;
use weir::domain::template;
use weir::domain::validate::{MAX_DAG_FILE_BYTES, ValidationContext};
use weir::runtime::loader::parse_file;

fn load(text: &str) -> Result<Dag, weir::domain::validate::DagFileError> {
    Dag::from_yaml(Path::new("/dags/hostile.yaml"), text, &ValidationContext::default())
}

/// Text shaped like a DAG file: known keys, odd values, anchors, aliases, flow collections and
/// indentation, in any order.
fn yaml_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("dag_id: ".to_string()),
        Just("tasks:\n".to_string()),
        Just("  t: ".to_string()),
        Just("    command: ".to_string()),
        Just("schedule: ".to_string()),
        Just("params: ".to_string()),
        Just("depends_on: [".to_string()),
        Just("type: sql\n".to_string()),
        Just("parameters: {".to_string()),
        Just("&a ".to_string()),
        Just("*a ".to_string()),
        Just("<<: *a\n".to_string()),
        Just("{{ params.x }}".to_string()),
        Just("- ".to_string()),
        Just("\n".to_string()),
        Just("]".to_string()),
        Just("}".to_string()),
        "[ -~]{0,12}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_dag_loader_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        let _ = load(&text);
    }

    #[test]
    fn the_dag_loader_never_panics_on_yaml_shaped_text(text in yaml_like()) {
        if let Err(error) = load(&text) {
            for problem in &error.problems {
                prop_assert!(problem.line >= 1 && problem.column >= 1, "{problem:?}");
            }
        }
    }

    #[test]
    fn cron_and_duration_parsing_never_panic(
        text in "\\PC{0,40}",
        fields in prop::collection::vec("[0-9*/,LW#?A-Za-z-]{1,6}", 0..8),
    ) {
        let _ = Schedule::parse(&text, true);
        let _ = Schedule::parse(&fields.join(" "), false);
        let _ = parse_duration(&text);
        let _ = parse_duration(&fields.concat());
    }

    #[test]
    fn template_rendering_never_panics(text in "[{}%#a-z0-9 |.()'\"~*+-]{0,60}") {
        let context = json!({"ds": "2026-03-01", "params": {"x": "y"}, "tasks": {}});
        let _ = template::render("field", &text, &context);
        let _ = template::render_shell_command(&text, &context);
        let _ = template::check_syntax(&text);
        let _ = template::check_shell_command(&text);
    }

    #[test]
    fn a_quoted_value_comes_back_from_a_real_shell_exactly(
        value in prop_oneof![
            "[a-z '\"$`\\\\;&|<>(){}\\[\\]*?!#~=%^,\n\t\r-]{0,40}",
            "[^\u{0}]{0,24}",
        ]
    ) {
        let command = template::render_shell_command(
            "printf %s {{ params.v }}",
            &json!({"params": {"v": value}}),
        )
        .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let output = Command::new("/bin/sh").arg("-c").arg(&command).output().unwrap();
        prop_assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
        prop_assert_eq!(String::from_utf8(output.stdout).unwrap(), value, "{:?}", command);
    }
}

#[test]
fn an_alias_bomb_is_refused_at_its_line_without_expanding() {
    // Each param's default holds ten copies of the one before: ten to the twelfth strings.
    let mut bomb = String::from("params:\n  a0: {default: &a0 [x, x, x, x, x, x, x, x, x, x]}\n");
    for level in 1..12 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        bomb.push_str(&format!("  a{level}: {{default: &a{level} [{items}]}}\n"));
    }
    bomb.push_str("tasks:\n  t: {command: 'true'}\n");
    let error = load(&bomb).expect_err("ten to the eleventh nodes are refused");
    let problem = &error.problems[0];
    assert!(problem.line >= 2 && problem.line <= 13, "{problem:?}");
    assert!(!problem.message.contains("unknown key"), "{problem:?}");
}

#[test]
fn deep_nesting_is_refused_with_a_location() {
    for nested in [
        "[".repeat(100_000),
        "a:\n".to_string()
            + &(1..200)
                .map(|depth| format!("{}k:\n", " ".repeat(depth)))
                .collect::<String>(),
    ] {
        let error = load(&nested).expect_err("too deep");
        let problem = &error.problems[0];
        assert!(problem.line >= 1 && problem.column >= 1, "{problem:?}");
    }
}

#[test]
fn a_huge_dag_file_is_refused_without_being_read_whole() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("huge.yaml");
    let mut text = String::from("tasks:\n");
    let mut index = 0;
    while text.len() <= MAX_DAG_FILE_BYTES {
        text.push_str(&format!("  t{index}: {{command: 'true'}}\n"));
        index += 1;
    }
    std::fs::write(&path, &text).unwrap();
    let error = parse_file(&path, &ValidationContext::default()).expect_err("too large");
    assert_eq!((error.problems[0].line, error.problems[0].column), (1, 1));
    assert!(
        error.problems[0].message.contains("more than a DAG file may hold"),
        "{:?}",
        error.problems[0]
    );
    let error = load(&text).expect_err("too large as text too");
    assert!(error.problems[0].message.contains("split it into several DAGs"));
}
