//! The command line as a user meets it: exit codes 0/1/2, messages that say what and where, and
//! `--output json` with the REST API's field names (§7).

use std::path::Path;
use std::process::Command;

use crate::support::cli::{project, text, weir};

const DAILY: &str = "dag_id: daily\nschedule: '0 3 * * *'\ntimezone: Asia/Seoul\nstart_date: 2026-01-01\ntags: [finance]\ntasks:\n  a: { command: 'true' }\n  b: { command: 'true', depends_on: [a] }\n";

#[test]
fn validate_prints_file_line_column_and_exits_1_for_a_broken_dag() {
    let project = project(&[
        ("good.yaml", DAILY),
        ("bad.yaml", "tasks:\n  a: { command: 'true', depends_on: [nope] }\n"),
    ]);
    let output = weir(project.path(), &["dags", "validate"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("bad.yaml:2:38: task `a` depends on unknown task `nope`"),
        "{stderr}"
    );
    assert!(
        text(&output.stdout).contains("1 valid, 1 broken"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn a_bad_config_value_exits_2_naming_the_file_and_key() {
    let project = project(&[]);
    std::fs::write(project.path().join("config.toml"), "[core]\nparallelism = 0\n").unwrap();
    let output = weir(project.path(), &["dags", "list"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("config.toml: [core] parallelism = \"0\": must be at least 1"),
        "{stderr}"
    );
    let missing = weir(project.path(), &["--config", "nowhere.toml", "dags", "list"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("cannot read config file nowhere.toml"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn usage_errors_exit_2_and_a_missing_dag_exits_1() {
    let project = project(&[("daily.yaml", DAILY)]);
    assert_eq!(weir(project.path(), &["dags", "frobnicate"]).status.code(), Some(2));
    let missing = weir(project.path(), &["dags", "show", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no DAG `nope`"),
        "{}",
        text(&missing.stderr)
    );
    let bad_conf = weir(project.path(), &["dags", "trigger", "daily", "--conf", "{not json"]);
    assert_eq!(bad_conf.status.code(), Some(2));
}

#[test]
fn dags_list_json_carries_the_api_field_names() {
    let project = project(&[("daily.yaml", DAILY)]);
    let output = weir(project.path(), &["dags", "list", "--output", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let dags: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let dag = &dags[0];
    for field in [
        "dag_id",
        "is_paused",
        "is_active",
        "schedule",
        "timezone",
        "tags",
        "fileloc",
        "next_dagrun_logical_date",
    ] {
        assert!(dag.get(field).is_some(), "missing {field} in {dag}");
    }
    assert_eq!(dag["dag_id"], "daily");
    assert_eq!(dag["timezone"], "Asia/Seoul");
    assert_eq!(dag["tags"], serde_json::json!(["finance"]));
    assert!(
        project.path().join(".weir/weir.db").exists(),
        "the embedded database is created on first use"
    );
}

#[test]
fn next_runs_lists_runs_after_a_time_in_utc_and_local_time() {
    let project = project(&[("daily.yaml", DAILY)]);
    let output = weir(
        project.path(),
        &[
            "dags",
            "next-runs",
            "daily",
            "-n",
            "2",
            "--after",
            "2026-03-01T00:00:00Z",
            "--output",
            "json",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let runs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // 03:00 in Seoul is 18:00 UTC the day before; the first run created after the given time is
    // the one whose interval ends at 2026-03-01T18:00Z.
    assert_eq!(runs[0]["logical_date"], "2026-02-28T18:00:00Z");
    assert_eq!(runs[0]["data_interval_end"], "2026-03-01T18:00:00Z");
    assert_eq!(runs[0]["run_after"], "2026-03-01T18:00:00Z");
    assert_eq!(runs[1]["logical_date"], "2026-03-01T18:00:00Z");
}

#[test]
fn dags_test_runs_the_whole_dag_and_records_it() {
    let project = project(&[("daily.yaml", DAILY)]);
    let output = weir(project.path(), &["dags", "test", "daily", "2026-03-01"]);
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let listed = weir(project.path(), &["runs", "list", "daily", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["state"], "success");
    assert_eq!(runs[0]["run_type"], "manual");
    for field in [
        "dag_id",
        "dag_run_id",
        "logical_date",
        "data_interval_start",
        "data_interval_end",
        "start_date",
        "end_date",
        "backfill_id",
    ] {
        assert!(runs[0].get(field).is_some(), "missing {field}");
    }
    let run_id = runs[0]["dag_run_id"].as_str().unwrap();
    let states = weir(
        project.path(),
        &["tasks", "states", "daily", run_id, "--output", "json"],
    );
    let states: serde_json::Value = serde_json::from_slice(&states.stdout).unwrap();
    assert_eq!(states.as_array().unwrap().len(), 2);
    for state in states.as_array().unwrap() {
        assert_eq!(state["state"], "success");
        assert_eq!(state["try_number"], 1);
        assert!(state["duration"].as_f64().is_some());
    }
    let failing = project.path().join("dags/failing.yaml");
    std::fs::write(failing, "tasks:\n  boom: { command: 'exit 4' }\n").unwrap();
    assert_eq!(
        weir(project.path(), &["dags", "test", "failing"]).status.code(),
        Some(1)
    );
}

#[test]
fn tasks_why_names_what_a_waiting_task_still_needs() {
    let project = project(&[(
        "chain.yaml",
        "dag_id: chain\ntasks:\n  first: { command: 'true' }\n  second: { command: 'true', depends_on: [first] }\n",
    )]);
    let trigger = weir(project.path(), &["dags", "trigger", "chain", "--run-id", "waiting"]);
    assert!(trigger.status.success(), "{}", text(&trigger.stderr));
    let why = weir(project.path(), &["tasks", "why", "chain", "waiting", "second"]);
    assert!(why.status.success(), "{}", text(&why.stderr));
    let reasons = text(&why.stdout);
    assert!(reasons.contains("- the run is queued, not started yet"), "{reasons}");
    assert!(
        reasons.contains("- trigger rule all_success is not met yet: waiting for upstream first (none)"),
        "{reasons}"
    );
    let duplicate = weir(project.path(), &["dags", "trigger", "chain", "--run-id", "waiting"]);
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(
        text(&duplicate.stderr).contains("already has a run with id `waiting`"),
        "{}",
        text(&duplicate.stderr)
    );
    let bad_param = weir(project.path(), &["dags", "trigger", "chain", "--conf", "[1]"]);
    assert_eq!(bad_param.status.code(), Some(1));
    assert!(
        text(&bad_param.stderr).contains("conf must be a JSON object"),
        "{}",
        text(&bad_param.stderr)
    );
}

#[tokio::test]
async fn commands_refuse_a_postgres_schema_that_is_behind_and_say_to_migrate() {
    let Some(test_db) = crate::support::unmigrated_databases()
        .await
        .into_iter()
        .find(|db| db.label == "postgres")
    else {
        return; // support already printed why PostgreSQL is absent (and fails under CI=true)
    };
    let project = project(&[("daily.yaml", DAILY)]);
    let config = format!(
        "[core]\ndags_folder = \"dags\"\n[database]\nurl = \"{}\"\n",
        test_db.url
    );
    std::fs::write(project.path().join("config.toml"), config).unwrap();
    let check = weir(project.path(), &["db", "check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stdout).contains("run `weir db migrate`"),
        "{}",
        text(&check.stdout)
    );
    let listed = weir(project.path(), &["runs", "list"]);
    assert_eq!(listed.status.code(), Some(1));
    assert!(
        text(&listed.stderr).contains("schema is at version 0 but this weir needs ")
            && text(&listed.stderr).contains(": run `weir db migrate`"),
        "{}",
        text(&listed.stderr)
    );
    assert!(weir(project.path(), &["db", "migrate"]).status.success());
    assert!(weir(project.path(), &["runs", "list"]).status.success());
}

#[test]
fn db_clean_reports_what_it_removes_and_a_dry_run_removes_nothing() {
    let project = project(&[("daily.yaml", DAILY)]);
    assert!(
        weir(project.path(), &["dags", "test", "daily", "2026-01-05"])
            .status
            .success()
    );
    assert!(
        weir(project.path(), &["dags", "test", "daily", "2026-06-05"])
            .status
            .success()
    );
    let dry = weir(project.path(), &["db", "clean", "--before", "2026-03-01", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).starts_with("would remove 1 run(s), 2 task instance(s), 2 attempt(s), 1 log folder(s), 0 alert(s), 0 dataset event(s) and 0 audit log record(s)"),
        "{}",
        text(&dry.stdout)
    );
    let done = weir(
        project.path(),
        &["db", "clean", "--before", "2026-03-01", "--dag", "daily"],
    );
    assert!(
        text(&done.stdout).starts_with("removed 1 run(s)"),
        "{}",
        text(&done.stdout)
    );
    let listed = weir(project.path(), &["runs", "list", "--output", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert!(runs[0]["logical_date"].as_str().unwrap().starts_with("2026-06-0"));
    assert_eq!(
        weir(project.path(), &["db", "clean", "--before", "someday"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn a_run_marked_failed_by_hand_takes_its_unfinished_tasks_with_it() {
    let project = project(&[("daily.yaml", DAILY)]);
    assert!(
        weir(project.path(), &["dags", "trigger", "daily", "--run-id", "by_hand"])
            .status
            .success()
    );
    let marked = weir(project.path(), &["runs", "mark", "daily", "by_hand", "failed"]);
    assert!(marked.status.success(), "{}", text(&marked.stderr));
    assert_eq!(text(&marked.stdout).trim(), "daily by_hand marked failed");
    let shown = weir(
        project.path(),
        &["runs", "show", "daily", "by_hand", "--output", "json"],
    );
    let run: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(run["state"], "failed");
    assert_eq!(
        weir(project.path(), &["runs", "mark", "daily", "nope", "success"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn tasks_logs_prints_an_attempts_log_and_says_when_there_is_none() {
    let project = project(&[(
        "talk.yaml",
        "dag_id: talk\ntasks:\n  say: { command: 'echo hello from the log' }\n",
    )]);
    assert!(
        weir(project.path(), &["dags", "test", "talk", "2026-03-01"])
            .status
            .success()
    );
    let run_id = "manual__2026-03-01T00:00:00+00:00";
    let logs = weir(project.path(), &["tasks", "logs", "talk", run_id, "say"]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    let log = text(&logs.stdout);
    assert!(
        log.contains("hello from the log") && log.contains("[weir] exited with code 0"),
        "{log}"
    );
    let missing = weir(project.path(), &["tasks", "logs", "talk", run_id, "say", "--try", "7"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no log at"), "{}", text(&missing.stderr));
}

#[test]
fn dags_show_draws_the_graph_as_dot_and_as_svg() {
    let project = project(&[("daily.yaml", DAILY)]);
    let dot = weir(project.path(), &["dags", "show", "daily", "--format", "dot"]);
    assert!(text(&dot.stdout).contains("\"a\" -> \"b\";"), "{}", text(&dot.stdout));
    let svg = weir(project.path(), &["dags", "show", "daily", "--format", "svg"]);
    assert!(svg.status.success(), "{}", text(&svg.stderr));
    let svg = text(&svg.stdout);
    assert!(svg.trim_start().starts_with("<svg") || svg.contains("<svg"), "{svg}");
    assert!(
        svg.contains("data-task-id=\"a\"") && svg.contains("data-task-id=\"b\""),
        "{svg}"
    );
}

const EVERY_MINUTE: &str =
    "dag_id: every_minute\nschedule: '* * * * *'\nstart_date: 1000-01-01\ntasks:\n  a: { command: 'true' }\n";

#[test]
fn a_backfill_too_long_or_a_date_out_of_range_exits_2_and_says_why() {
    let project = project(&[("every_minute.yaml", EVERY_MINUTE)]);
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "dags",
                "backfill",
                "every_minute",
                "--from",
                "1000-01-01",
                "--to",
                "9999-12-31",
                "--dry-run",
            ],
            "holds more than 10000 logical dates of schedule `* * * * *`",
        ),
        (
            &[
                "dags",
                "backfill",
                "every_minute",
                "--from",
                "1000-01-01",
                "--to",
                "9999-12-31",
            ],
            "narrow the range, or split it into several backfills",
        ),
        (
            &[
                "dags",
                "backfill",
                "every_minute",
                "--from",
                "0001-01-01",
                "--to",
                "2026-01-01",
                "--dry-run",
            ],
            "0001-01-01T00:00:00Z is outside the dates weir accepts: use a date from 1000-01-01 to 9999-12-31",
        ),
        (
            &[
                "dags",
                "trigger",
                "every_minute",
                "--logical-date",
                "0000-06-01T00:00:00Z",
            ],
            "use a date from 1000-01-01 to 9999-12-31",
        ),
    ];
    for (args, needle) in cases {
        let refused = weir(project.path(), args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {}", text(&refused.stderr));
        assert!(
            text(&refused.stderr).contains(needle),
            "{args:?}: {}",
            text(&refused.stderr)
        );
    }
    let limited = std::fs::read_to_string(project.path().join("config.toml")).unwrap() + "max_backfill_dates = 3\n";
    std::fs::write(project.path().join("config.toml"), limited).unwrap();
    let args = [
        "dags",
        "backfill",
        "every_minute",
        "--from",
        "2026-03-01T00:00",
        "--to",
        "2026-03-01T00:03",
        "--dry-run",
    ];
    let over = weir(project.path(), &args);
    assert_eq!(over.status.code(), Some(2), "{}", text(&over.stderr));
    assert!(
        text(&over.stderr).contains("holds more than 3 logical dates"),
        "{}",
        text(&over.stderr)
    );
    let within = weir(
        project.path(),
        &[&args[..6], &["2026-03-01T00:02", "--dry-run"]].concat(),
    );
    assert_eq!(within.status.code(), Some(0), "{}", text(&within.stderr));
    assert!(
        text(&within.stdout).contains("3 date(s); nothing created"),
        "{}",
        text(&within.stdout)
    );
}

/// `weir serve` with its output in files, as `weir serve > file 2>&1` leaves it: what it wrote.
fn serve_output(folder: &Path, global_args: &[&str], remove_no_color: bool) -> Vec<u8> {
    let port = crate::support::free_port();
    std::fs::write(
        folder.join("config.toml"),
        format!("[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\n\n[webserver]\nbind = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let stdout_path = folder.join("serve.out");
    let stderr_path = folder.join("serve.err");
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .current_dir(folder)
        .args(global_args)
        .arg("serve")
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    if remove_no_color {
        command.env_remove("NO_COLOR");
    }
    let mut server = crate::support::ServerProcess(command.spawn().unwrap());
    crate::support::wait_for_port(port, &stderr_path);
    assert!(server.stop().success());
    let mut written = std::fs::read(&stdout_path).unwrap();
    written.extend(std::fs::read(&stderr_path).unwrap());
    written
}

#[test]
fn serve_into_a_file_writes_no_colour_codes_unless_asked() {
    let project = project(&[("daily.yaml", DAILY)]);
    // (global arguments, NO_COLOR unset, coloured)
    let cases: [(&[&str], bool, bool); 4] = [
        (&[], true, false),
        (&["--color", "auto"], false, false),
        (&["--color", "never"], true, false),
        (&["--color", "always"], false, true),
    ];
    for (args, remove_no_color, coloured) in cases {
        let written = serve_output(project.path(), args, remove_no_color);
        let text = String::from_utf8_lossy(&written);
        assert!(text.contains("INFO"), "{args:?}: the log has lines: {text}");
        assert_eq!(written.contains(&0x1b), coloured, "{args:?}: {text}");
    }
}

#[test]
fn an_unknown_dag_id_suggests_the_nearest_one() {
    let project = project(&[
        ("daily.yaml", DAILY),
        (
            "hello_world.yaml",
            &DAILY.replace("dag_id: daily", "dag_id: hello_world"),
        ),
    ]);
    for args in [
        &["dags", "show", "hello_wrld"][..],
        &["dags", "trigger", "helo_world"],
        &[
            "dags",
            "backfill",
            "hello_world_",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
            "--dry-run",
        ],
    ] {
        let output = weir(project.path(), args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            text(&output.stderr).contains("did you mean `hello_world`?"),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
    let far = weir(project.path(), &["dags", "show", "something_else"]);
    assert!(
        text(&far.stderr).contains("check the id with `weir dags list`"),
        "{}",
        text(&far.stderr)
    );
}
