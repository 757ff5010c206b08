//! Commands that refuse to do more, or less, than the user meant: a backfill that would start no
//! run, and `weir tasks clear` touching several runs without `--yes`.

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use serde_json::Value;
use weir::domain::ids::DagId;
use weir::domain::state::{RunState, RunType};
use weir::storage::Db;
use weir::storage::runs::{self, NewRun};

fn weir(project: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(project)
        .args(args)
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

const DAILY: &str = "dag_id: daily\nschedule: '@daily'\nstart_date: 2026-01-01\nis_paused_upon_creation: true\ntasks:\n  a: { command: 'true' }\n  b: { command: 'true', depends_on: [a] }\n";

fn project() -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("dags")).unwrap();
    std::fs::write(folder.path().join("config.toml"), "[core]\ndags_folder = \"dags\"\n").unwrap();
    std::fs::write(folder.path().join("dags/daily.yaml"), DAILY).unwrap();
    folder
}

fn day(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{text}T00:00:00Z"))
        .unwrap()
        .with_timezone(&Utc)
}

/// Records a finished scheduled run of `daily` in the project's database, as the scheduler would.
async fn scheduled_run(db: &Db, date: &str, state: RunState) {
    let logical_date = day(date);
    let new_run = NewRun {
        dag_id: DagId::parse("daily").unwrap(),
        run_id: runs::generated_run_id(RunType::Scheduled, logical_date),
        run_type: RunType::Scheduled,
        logical_date,
        data_interval_start: logical_date,
        data_interval_end: logical_date + chrono::Duration::days(1),
        run_after: logical_date + chrono::Duration::days(1),
        conf: Value::Null,
        owner: None,
    };
    let mut transaction = db.begin().await.unwrap();
    let run = runs::insert(&mut transaction, &new_run, Utc::now()).await.unwrap();
    runs::start(&mut transaction, run.pk, Utc::now()).await.unwrap();
    assert!(runs::finish(&mut transaction, run.pk, state, Utc::now()).await.unwrap());
    transaction.commit().await.unwrap();
}

#[tokio::test]
async fn a_backfill_with_nothing_to_run_exits_1_says_why_and_which_reprocess_would_rerun_it() {
    let project = project();
    let migrate = weir(project.path(), &["db", "migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));
    let db = Db::connect(&format!("sqlite://{}", project.path().join(".weir/weir.db").display()))
        .await
        .unwrap();
    scheduled_run(&db, "2026-03-01", RunState::Success).await;
    scheduled_run(&db, "2026-03-02", RunState::Success).await;
    scheduled_run(&db, "2026-03-03", RunState::Failed).await;
    let backfill = [
        "dags",
        "backfill",
        "daily",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-03",
    ];

    let refused = weir(project.path(), &backfill);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    for needle in [
        "nothing to backfill: all 3 logical dates",
        "(2 success, 1 failed)",
        "reprocess `none` re-runs none of them, so no backfill was created",
        "reprocess `failed` re-runs the 1 failed run(s); reprocess `completed` re-runs all 3 finished run(s)",
        "`--reprocess` on the command line",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    let listed = json_of(&weir(project.path(), &["backfills", "list", "--output", "json"]));
    assert_eq!(listed.as_array().unwrap().len(), 0, "nothing recorded: {listed}");

    let dry_run = weir(project.path(), &[&backfill[..], &["--dry-run"][..]].concat());
    assert!(dry_run.status.success(), "{}", text(&dry_run.stderr));
    assert!(
        text(&dry_run.stdout).contains("nothing to backfill"),
        "the dry run says it too: {}",
        text(&dry_run.stdout)
    );

    let rerun = weir(
        project.path(),
        &[&backfill[..], &["--reprocess", "failed"][..]].concat(),
    );
    assert!(rerun.status.success(), "{}", text(&rerun.stderr));
    assert!(
        text(&rerun.stdout).contains("1 run(s) to go"),
        "{}",
        text(&rerun.stdout)
    );
}

/// Every task state of every run of `daily`, keyed by run id.
fn states(project: &Path) -> Vec<(String, Vec<Value>)> {
    let listed = json_of(&weir(project, &["runs", "list", "daily", "--output", "json"]));
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            let run_id = run["dag_run_id"].as_str().unwrap().to_string();
            let states = json_of(&weir(
                project,
                &["tasks", "states", "daily", &run_id, "--output", "json"],
            ));
            let states = states
                .as_array()
                .unwrap()
                .iter()
                .map(|task| task["state"].clone())
                .collect();
            (run_id, states)
        })
        .collect()
}

#[test]
fn tasks_clear_of_several_runs_needs_yes_and_names_the_count() {
    let project = project();
    for date in ["2026-03-01", "2026-03-02"] {
        let test = weir(project.path(), &["dags", "test", "daily", date]);
        assert!(test.status.success(), "{}", text(&test.stderr));
    }
    let before = states(project.path());
    assert_eq!(before.len(), 2);
    assert!(
        before.iter().all(|(_, states)| states == &["success", "success"]),
        "{before:?}"
    );

    let refused = weir(project.path(), &["tasks", "clear", "daily"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("this would clear 4 task instance(s) in 2 runs of daily")
            && stderr.contains("every run of the DAG is matched")
            && stderr.contains("nothing was cleared")
            && stderr.contains("Pass --yes"),
        "{stderr}"
    );
    assert_eq!(states(project.path()), before, "nothing was cleared");

    let one_run = &before[0].0;
    let single = weir(
        project.path(),
        &["tasks", "clear", "daily", "--run", one_run, "--task", "^b$"],
    );
    assert!(
        single.status.success(),
        "one run needs no --yes: {}",
        text(&single.stderr)
    );
    assert!(
        text(&single.stdout).contains("cleared 1 task instance(s)"),
        "{}",
        text(&single.stdout)
    );

    let cleared = weir(project.path(), &["tasks", "clear", "daily", "--yes"]);
    assert!(cleared.status.success(), "{}", text(&cleared.stderr));
    assert!(text(&cleared.stdout).contains("cleared "), "{}", text(&cleared.stdout));
    let after = states(project.path());
    assert!(
        after
            .iter()
            .all(|(_, states)| states.iter().all(|state| state != "success")),
        "{after:?}"
    );

    let help = weir(project.path(), &["tasks", "clear", "--help"]);
    let help = text(&help.stdout);
    assert!(help.contains("--yes") && help.contains("more than one run"), "{help}");
}
