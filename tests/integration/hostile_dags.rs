//! Malformed and hostile DAG files against the loader, `weir dags validate` and a running
//! `weir serve`: a task depending on a task that failed to build, truncations and byte flips of
//! the example DAGs, alias bombs, and twenty thousand tasks naming missing ones. Nothing panics,
//! every file's report stays small, and the daemon goes on loading new files after them. Also the
//! render-time caps: a template printing a huge value and a `sql_file` that never ends fail the
//! attempt with a clear reason instead of storing hundreds of megabytes.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use weir::domain::dag::Dag;
use weir::domain::ids::{DagId, TaskId};
use weir::domain::state::{RunState, TaskState};
use weir::domain::validate::limits::{MAX_PROBLEM_TEXT_PER_FILE, MAX_PROBLEMS_PER_FILE};
use weir::domain::validate::{DagFileError, ValidationContext};
use weir::runtime::loader::{DagBag, load_folder};
use weir::storage::task_instances;

use crate::daemon::Project;
use crate::support;
use crate::support::test_app::TestApp;

fn load(name: &str, text: &str) -> Result<Dag, DagFileError> {
    Dag::from_yaml(&Path::new("/dags").join(name), text, &ValidationContext::default())
}

fn problems(name: &str, text: &str) -> Vec<String> {
    let error = load(name, text).expect_err("the file is broken");
    error.problems.iter().map(ToString::to_string).collect()
}

/// The reported reproductions: a task depending on a task that failed to build.
const FAILED_UPSTREAM: [(&str, &str); 4] = [
    (
        "unknown_type.yaml",
        "tasks:\n  a: { type: nosuch }\n  b: { command: 'true', depends_on: [a] }\n",
    ),
    (
        "no_command.yaml",
        "tasks:\n  a: { retries: 1 }\n  b: { command: 'true', depends_on: [a] }\n",
    ),
    (
        "failed_in_a_cycle.yaml",
        "tasks:\n  a: { type: nosuch }\n  b: { command: 'true', depends_on: [a, c] }\n  c: { command: 'true', depends_on: [b] }\n",
    ),
    (
        "failed_in_a_chain.yaml",
        "tasks:\n  a: { type: sql }\n  b: { command: 'true', depends_on: [a] }\n  c: { command: 'true', depends_on: [b, a] }\n",
    ),
];

#[test]
fn a_task_depending_on_a_task_that_failed_to_build_gives_located_problems() {
    assert_eq!(
        problems(FAILED_UPSTREAM[0].0, FAILED_UPSTREAM[0].1),
        ["2:14: unknown task type `nosuch`: use one of shell, http, sql, transfer, sensor, trigger_dag"]
    );
    let no_command = problems(FAILED_UPSTREAM[1].0, FAILED_UPSTREAM[1].1);
    assert_eq!(no_command.len(), 1, "{no_command:?}");
    assert!(no_command[0].starts_with("2:3: "), "{no_command:?}");
    assert!(no_command[0].contains("command"), "{no_command:?}");
    let cycle = problems(FAILED_UPSTREAM[2].0, FAILED_UPSTREAM[2].1);
    assert!(
        cycle.iter().any(|problem| problem.contains("tasks form a cycle")),
        "the cycle among the tasks that did build is still found: {cycle:?}"
    );
    assert!(cycle[0].starts_with("2:14: unknown task type `nosuch`"), "{cycle:?}");
    let chain = problems(FAILED_UPSTREAM[3].0, FAILED_UPSTREAM[3].1);
    assert!(
        chain.iter().all(|problem| !problem.contains("depends on unknown task")),
        "a task that failed to build is still known by its id: {chain:?}"
    );
}

#[test]
fn weir_dags_validate_reports_the_reproductions_and_exits_1() {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("dags")).unwrap();
    std::fs::write(project.path().join("config.toml"), "[core]\ndags_folder = \"dags\"\n").unwrap();
    for (name, text) in FAILED_UPSTREAM {
        std::fs::write(project.path().join("dags").join(name), text).unwrap();
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(project.path())
        .args(["dags", "validate"])
        .env_remove("WEIR_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown_type.yaml:2:14: unknown task type `nosuch`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A file of `count` tasks, each depending on a task that does not exist (about 1 MB for 20,000).
fn tasks_with_missing_dependencies(count: usize, missing: impl Fn(usize) -> String) -> String {
    let mut text = String::from("dag_id: generated\ntasks:\n");
    for index in 0..count {
        text.push_str(&format!(
            "  task_{index:05}: {{command: 'true', depends_on: [{}]}}\n",
            missing(index)
        ));
    }
    text
}

fn text_of(error: &DagFileError) -> usize {
    error.problems.iter().map(|problem| problem.message.len()).sum()
}

#[test]
fn twenty_thousand_tasks_with_missing_dependencies_give_a_short_report() {
    for (name, missing) in [
        (
            "far",
            Box::new(|index| format!("upstream_{index:05}")) as Box<dyn Fn(usize) -> String>,
        ),
        ("near", Box::new(|index| format!("tsk_{index:05}"))),
    ] {
        let text = tasks_with_missing_dependencies(20_000, missing);
        assert!(text.len() > 900_000, "{}", text.len());
        let error = load("generated.yaml", &text).expect_err("every dependency is missing");
        assert_eq!(error.problems.len(), MAX_PROBLEMS_PER_FILE + 1, "{name}");
        assert!(
            text_of(&error) <= MAX_PROBLEM_TEXT_PER_FILE,
            "{name}: {}",
            text_of(&error)
        );
        let first = error.problems[0].to_string();
        let last = error.problems[MAX_PROBLEMS_PER_FILE].to_string();
        assert!(last.contains("... and 19900 more problems not shown"), "{name}: {last}");
        assert!(first.len() < 300, "{name}: {first}");
        match name {
            "far" => assert_eq!(
                first,
                "3:46: task `task_00000` depends on unknown task `upstream_00000`: no task has a similar id; fix the name or add the task"
            ),
            _ => assert_eq!(
                first,
                "3:46: task `task_00000` depends on unknown task `tsk_00000`: did you mean `task_00000`? Fix the name or add the task"
            ),
        }
    }
}

/// Each parameter's default holds ten copies of the one before: ten to the eleventh strings.
fn alias_bomb() -> String {
    let mut bomb = String::from("params:\n  a0: {default: &a0 [x, x, x, x, x, x, x, x, x, x]}\n");
    for level in 1..12 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        bomb.push_str(&format!("  a{level}: {{default: &a{level} [{items}]}}\n"));
    }
    bomb.push_str("tasks:\n  t: {command: 'true'}\n");
    bomb
}

/// The same with merge keys: each mapping merges the one before, ten times over.
fn merge_bomb() -> String {
    let mut bomb = String::from("defaults:\n  env: &m0 {A: x}\nx0: &x0 {<<: *m0}\n");
    for level in 1..40 {
        let merges = vec![format!("*x{}", level - 1); 10].join(", ");
        bomb.push_str(&format!("x{level}: &x{level} {{<<: [{merges}]}}\n"));
    }
    bomb.push_str("tasks:\n  t: {command: 'true'}\n");
    bomb
}

/// The example DAGs of the repository, by file name.
fn examples() -> Vec<(String, Vec<u8>)> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
    let mut examples: Vec<(String, Vec<u8>)> = std::fs::read_dir(&folder)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read(&path).unwrap())
        })
        .collect();
    examples.sort();
    assert!(
        examples.len() >= 3,
        "the example DAGs are found in {}",
        folder.display()
    );
    examples
}

/// A small deterministic generator, so a failure names a file that can be made again.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// The hostile corpus: every example truncated every 37 bytes, each with 40 single-byte and 20
/// many-byte flips, the reproductions, the bombs and the 20,000-task file.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut random = Xorshift(0x5eed_1234_abcd_ef01);
    for (stem, bytes) in examples() {
        for end in (0..bytes.len()).step_by(37) {
            files.push((format!("{stem}_cut_{end}.yaml"), bytes[..end].to_vec()));
        }
        for flip in 0..60 {
            let mut flipped = bytes.clone();
            let changes = if flip < 40 { 1 } else { 1 + random.below(8) };
            for _ in 0..changes {
                let at = random.below(flipped.len());
                // Half the flips write a byte YAML cares about, half any byte at all.
                flipped[at] = if random.below(2) == 0 {
                    b":-[]{}&*!|>'\"#%@`\n\t ,?"[random.below(22)]
                } else {
                    (random.next() & 0xff) as u8
                };
            }
            files.push((format!("{stem}_flip_{flip}.yaml"), flipped));
        }
    }
    for (name, text) in FAILED_UPSTREAM {
        files.push((name.to_string(), text.as_bytes().to_vec()));
    }
    files.push(("alias_bomb.yaml".to_string(), alias_bomb().into_bytes()));
    files.push(("merge_bomb.yaml".to_string(), merge_bomb().into_bytes()));
    files.push((
        "twenty_thousand.yaml".to_string(),
        tasks_with_missing_dependencies(20_000, |index| format!("upstream_{index:05}")).into_bytes(),
    ));
    files
}

fn import_error_text(bag: &DagBag) -> usize {
    bag.import_errors()
        .iter()
        .map(|error| error.filename.len() + error.message.len())
        .sum()
}

#[test]
fn the_loader_reads_the_hostile_corpus_without_a_panic_and_keeps_its_errors_small() {
    let corpus = corpus();
    // Straight through the validator first: the loader's last-resort catch of a panic would
    // otherwise hide one from this test.
    for (name, bytes) in &corpus {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = load(name, text);
        }
    }
    let folder = tempfile::tempdir().unwrap();
    for (name, bytes) in &corpus {
        std::fs::write(folder.path().join(name), bytes).unwrap();
    }
    let bag = load_folder(folder.path(), &ValidationContext::default());
    assert!(
        bag.errors.len() > corpus.len() / 2,
        "most of the corpus is broken: {} errors for {} files",
        bag.errors.len(),
        corpus.len()
    );
    for error in &bag.errors {
        assert!(
            !error.to_string().contains("internal error"),
            "no file reaches a bug in weir: {error}"
        );
        assert!(text_of(error) <= MAX_PROBLEM_TEXT_PER_FILE, "{}", error.path.display());
    }
    let total = import_error_text(&bag);
    assert!(total < 1024 * 1024, "all import errors together hold {total} bytes");
    let generated = bag
        .errors
        .iter()
        .find(|error| error.path.ends_with("twenty_thousand.yaml"))
        .expect("the 20,000-task file is an import error");
    assert!(text_of(generated) <= MAX_PROBLEM_TEXT_PER_FILE);
    let bombs: Vec<&DagFileError> = bag
        .errors
        .iter()
        .filter(|error| error.path.to_string_lossy().contains("_bomb"))
        .collect();
    assert_eq!(bombs.len(), 2, "both bombs are refused");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn an_example_dag_with_random_bytes_changed_or_cut_never_panics_the_validator(
        example in 0usize..4,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let examples = examples();
        let (stem, bytes) = &examples[example % examples.len()];
        let mut changed = bytes.clone();
        for (at, byte) in flips {
            let at = at.index(changed.len());
            changed[at] = byte;
        }
        changed.truncate(cut.index(changed.len() + 1));
        let text = String::from_utf8_lossy(&changed);
        if let Err(error) = load(&format!("{stem}.yaml"), &text) {
            prop_assert!(!error.problems.is_empty());
            for problem in &error.problems {
                prop_assert!(problem.line >= 1 && problem.column >= 1, "{problem:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_running_daemon_keeps_loading_new_dag_files_after_hostile_ones() {
    for test_db in support::databases().await {
        let project = Project::new(&test_db.url);
        project.write_dag("first.yaml", "dag_id: first\ntasks:\n  hello: { command: 'true' }\n");
        assert!(project.weir(&["db", "migrate"]).status.success());
        let daemon = project.serve();
        let db = &test_db.db;
        let recorded = |dag_id: &'static str| async move {
            let mut connection = db.acquire().await.unwrap();
            weir::storage::dags::get(&mut connection, &DagId::parse(dag_id).unwrap())
                .await
                .unwrap()
                .is_some_and(|record| record.is_active)
        };
        support::wait_until_async("the first DAG is loaded", Duration::from_secs(30), || recorded("first")).await;

        let mut hostile: Vec<(String, String)> = FAILED_UPSTREAM
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        hostile.push(("alias_bomb.yaml".to_string(), alias_bomb()));
        hostile.push((
            "twenty_thousand.yaml".to_string(),
            tasks_with_missing_dependencies(20_000, |index| format!("upstream_{index:05}")),
        ));
        for (stem, bytes) in examples().into_iter().take(2) {
            let text = String::from_utf8(bytes).unwrap();
            hostile.push((format!("{stem}_cut.yaml"), text[..text.len() / 2].to_string()));
        }
        for (name, text) in &hostile {
            project.write_dag(name, text);
        }
        let mut listed = String::new();
        support::wait_until("every hostile file is an import error", Duration::from_secs(60), || {
            listed = String::from_utf8_lossy(&project.weir(&["import-errors", "--output", "json"]).stdout).into_owned();
            // A cut example may still be a valid DAG: only the others must be listed.
            hostile
                .iter()
                .filter(|(name, _)| !name.ends_with("_cut.yaml"))
                .all(|(name, _)| listed.contains(name.as_str()))
        })
        .await;
        assert!(
            listed.len() < 1024 * 1024,
            "{}: the import errors listed hold {} bytes",
            test_db.label,
            listed.len()
        );
        assert!(!listed.contains("internal error"), "{listed}");

        project.write_dag("after.yaml", "dag_id: after\ntasks:\n  hello: { command: 'true' }\n");
        support::wait_until_async(
            "a DAG file written after the hostile ones is loaded",
            Duration::from_secs(30),
            || recorded("after"),
        )
        .await;
        // A daemon started with the hostile files already there starts and loads the others.
        drop(daemon);
        project.write_dag(
            "restarted.yaml",
            "dag_id: restarted\ntasks:\n  hello: { command: 'true' }\n",
        );
        let _daemon = project.serve();
        support::wait_until_async(
            "a daemon started among the hostile files loads the valid ones",
            Duration::from_secs(30),
            || recorded("restarted"),
        )
        .await;
        project.write_dag(
            "twenty_thousand.yaml",
            "dag_id: fixed\ntasks:\n  hello: { command: 'true' }\n",
        );
        support::wait_until_async("the fixed file is loaded", Duration::from_secs(30), || {
            recorded("fixed")
        })
        .await;
        support::wait_until("the fixed file's errors are gone", Duration::from_secs(30), || {
            let listed = project.weir(&["import-errors", "--output", "json"]).stdout;
            !String::from_utf8_lossy(&listed).contains("twenty_thousand.yaml")
        })
        .await;
    }
}

async fn last_attempt(harness: &TestApp, run_pk: i64, task: &str) -> task_instances::Attempt {
    let mut connection = harness.db.acquire().await.unwrap();
    task_instances::attempts(&mut connection, run_pk, &TaskId::parse(task).unwrap())
        .await
        .unwrap()
        .pop()
        .expect("the task has an attempt")
}

#[tokio::test]
async fn huge_rendered_fields_and_endless_sql_files_fail_the_attempt_with_a_clear_reason() {
    let big_sql = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(big_sql.path(), "SELECT 1;\n".repeat(200_000)).unwrap();
    let yaml = format!(
        r#"
dag_id: caps
tasks:
  huge_command:
    command: "echo {{{{ ['x'] * 100000000 }}}}"
  huge_env:
    command: 'true'
    env:
      BIG: "{{{{ ['x'] * 100000000 }}}}"
  endless_sql_file:
    type: sql
    conn: warehouse
    sql_file: /dev/zero
  big_sql_file:
    type: sql
    conn: warehouse
    sql_file: {}
"#,
        big_sql.path().display()
    );
    for test_db in support::databases().await {
        let mut harness = TestApp::new(&test_db, &yaml).await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let states = harness.states(&run).await;
        for (task, reason) in [
            ("huge_command", "cannot render `command`: "),
            ("huge_env", "cannot render `env.BIG`: "),
            (
                "endless_sql_file",
                "cannot render `sql_file`: /dev/zero is not a regular file",
            ),
            ("big_sql_file", "is larger than 1048576 bytes (1 MiB)"),
        ] {
            assert_eq!(states[task], TaskState::Failed, "{}: {task}", test_db.label);
            let attempt = last_attempt(&harness, run.pk, task).await;
            let error = attempt.error.clone().unwrap_or_default();
            assert!(error.contains(reason), "{}: {task}: {error}", test_db.label);
            if task.starts_with("huge") {
                assert!(error.contains("longer than 1048576 bytes (1 MiB)"), "{task}: {error}");
            }
            let stored = attempt.rendered.to_string();
            assert!(
                stored.len() < 4096,
                "{task}: {} bytes of rendered fields stored",
                stored.len()
            );
        }
    }
}
