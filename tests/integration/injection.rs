//! Templates that cannot inject: a trigger's conf reaches a shell task as one quoted word (or
//! an environment variable) and never as shell syntax, unless the DAG says `| raw`; real runs,
//! real processes, on SQLite and PostgreSQL.

use serde_json::json;
use weir::domain::state::{RunState, TaskState};

use crate::support;
use crate::support::test_app::TestApp;

/// Every way a value could break out of a word: a separator, a substitution, backticks,
/// quotes of both kinds, a redirection and a newline.
const HOSTILE: &str = "x; touch PWNED $(touch PWNED) `touch PWNED` 'a' \"b\" > PWNED\nnext";

fn dag(quoted_dir: &std::path::Path, raw_dir: &std::path::Path) -> String {
    format!(
        r#"dag_id: greet
params:
  name: {{type: string, default: world}}
tasks:
  quoted:
    command: echo {{{{ params.name }}}} > quoted.txt
    cwd: {quoted}
  from_env:
    command: printf '%s\n' "$WEIR_PARAM_NAME" > env.txt
    cwd: {quoted}
  raw:
    command: echo {{{{ params.name | raw }}}}
    cwd: {raw}
"#,
        quoted = quoted_dir.display(),
        raw = raw_dir.display(),
    )
}

#[tokio::test]
async fn a_hostile_conf_value_is_written_literally_and_runs_nothing_unless_the_dag_says_raw() {
    for test_db in support::databases().await {
        let quoted_dir = tempfile::tempdir().unwrap();
        let raw_dir = tempfile::tempdir().unwrap();
        let mut harness = TestApp::new(&test_db, &dag(quoted_dir.path(), raw_dir.path())).await;
        let run = harness.trigger_with_conf(json!({"name": "x; touch PWNED"})).await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        let instances = harness.instances(&run).await;
        assert!(
            instances.values().all(|ti| ti.state == TaskState::Success),
            "{}",
            test_db.label
        );

        let read = |dir: &tempfile::TempDir, name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read(&quoted_dir, "quoted.txt"), "x; touch PWNED\n", "{}", test_db.label);
        assert_eq!(read(&quoted_dir, "env.txt"), "x; touch PWNED\n", "{}", test_db.label);
        assert!(
            !quoted_dir.path().join("PWNED").exists(),
            "{}: the quoted command ran the injected one",
            test_db.label
        );
        // `| raw` is the one way to paste shell syntax: there it runs, as the DAG asked.
        assert!(
            raw_dir.path().join("PWNED").exists(),
            "{}: `| raw` pasted the text",
            test_db.label
        );
    }
}

#[tokio::test]
async fn every_breakout_character_stays_inside_the_word() {
    let test_db = support::databases().await.remove(0);
    let quoted_dir = tempfile::tempdir().unwrap();
    let raw_dir = tempfile::tempdir().unwrap();
    // Only the quoted tasks: the raw one would run the payload by design.
    let yaml = dag(quoted_dir.path(), raw_dir.path());
    let yaml = &yaml[..yaml.find("  raw:").unwrap()];
    let mut harness = TestApp::new(&test_db, yaml).await;
    let run = harness.trigger_with_conf(json!({"name": HOSTILE})).await;
    assert_eq!(harness.run_to_end(&run).await, RunState::Success);
    let entries: Vec<String> = std::fs::read_dir(quoted_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!entries.iter().any(|name| name.starts_with("PWNED")), "{entries:?}");
    let expected = format!("{HOSTILE}\n");
    assert_eq!(
        std::fs::read_to_string(quoted_dir.path().join("quoted.txt")).unwrap(),
        expected
    );
    assert_eq!(
        std::fs::read_to_string(quoted_dir.path().join("env.txt")).unwrap(),
        expected
    );
}

#[tokio::test]
async fn a_hostile_conf_value_reaches_a_sql_task_as_a_bound_value_on_every_database() {
    let hostile = "'; DROP TABLE t; --";
    let metadata = support::databases().await.remove(0);
    let mut targets = vec![support::scratch_sqlite()];
    targets.extend(support::scratch_postgres().await);
    targets.extend(support::scratch_mysql().await);
    for (index, target) in targets.iter().enumerate() {
        let mut log = |_: &str| {};
        weir::runtime::operators::sql::run_sql(&target.url, "CREATE TABLE t (name VARCHAR(60))", &[], 1, &mut log)
            .await
            .unwrap();
        let name = format!("target{index}");
        let stored = weir::domain::connection::Connection::from_url(&name, &target.url).unwrap();
        let key = weir::secrets::SecretsKey::from_passphrase("weir-tests");
        let mut connection = metadata.db.begin().await.unwrap();
        weir::storage::connections::insert(&mut connection, &stored, &key)
            .await
            .unwrap();
        connection.commit().await.unwrap();
        let yaml = format!(
            r#"dag_id: bind{index}
params:
  name: {{type: string, default: nobody}}
tasks:
  insert:
    type: sql
    conn: {name}
    sql: INSERT INTO t (name) VALUES (:name); SELECT name FROM t WHERE name = :name
    parameters:
      name: "{{{{ params.name }}}}"
"#
        );
        let mut harness = TestApp::new(&metadata, &yaml).await;
        let run = harness.trigger_with_conf(json!({"name": hostile})).await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", target.label);
        let mut connection = harness.db.acquire().await.unwrap();
        let outputs = weir::storage::task_instances::outputs(&mut connection, run.pk)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&outputs["insert"]).unwrap(),
            json!([{"name": hostile}]),
            "{}",
            target.label
        );
        let rows = weir::runtime::operators::sql::run_sql(&target.url, "SELECT COUNT(*) AS n FROM t", &[], 1, &mut log)
            .await
            .unwrap();
        assert_eq!(
            rows.rows[0]["n"].to_string().trim_matches('"'),
            "1",
            "{}: t is still there",
            target.label
        );
    }
}
