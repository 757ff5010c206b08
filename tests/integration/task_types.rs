//! The in-process task types through the real scheduler and executor, on SQLite and PostgreSQL:
//! http against a real local server (expected and unexpected statuses, a server that never
//! answers, JSON output used downstream), sensors (a file that a sibling creates, timeouts with
//! and without soft_fail, a waiting sensor that leaves the only slot free), trigger_dag, and
//! secrets kept out of logs and rendered fields.

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use weir::domain::ids::TaskId;
use weir::domain::state::{RunState, TaskState};
use weir::storage::runs::{self, RunFilter};
use weir::storage::task_instances;

use crate::support;
use crate::support::test_app::TestApp;

/// A real HTTP server on a free local port, for the length of a test.
struct TestServer {
    base: String,
    _task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start() -> TestServer {
        let app = Router::new()
            .route(
                "/orders",
                get(|| async { axum::Json(serde_json::json!({"rows": 3, "day": "2026-03-01"})) }),
            )
            .route(
                "/broken",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database is down") }),
            )
            .route(
                "/created",
                post(|body: String| async move { (StatusCode::CREATED, body) }),
            )
            .route(
                "/whoami",
                get(|headers: HeaderMap| async move {
                    // Echoes the credentials it was sent, as a careless API might.
                    let auth = headers
                        .get("authorization")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let decoded = auth
                        .strip_prefix("Basic ")
                        .map(support::decode_base64)
                        .unwrap_or_default();
                    format!("you sent {decoded}")
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer { base, _task: task }
    }
}

/// A server that accepts connections and never answers.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (base, task)
}

async fn attempt_error(harness: &TestApp, run_pk: i64, task: &str) -> String {
    let mut connection = harness.db.acquire().await.unwrap();
    let attempts = task_instances::attempts(&mut connection, run_pk, &TaskId::parse(task).unwrap())
        .await
        .unwrap();
    attempts
        .last()
        .and_then(|attempt| attempt.error.clone())
        .unwrap_or_default()
}

fn read_log(harness: &TestApp, run: &weir::storage::runs::DagRun, task: &str, try_number: u32) -> String {
    let path = harness
        .logs_dir()
        .join(run.dag_id.as_str())
        .join(run.run_id.as_str())
        .join(task)
        .join(format!("{try_number}.log"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

#[tokio::test]
async fn an_http_task_gets_json_that_a_downstream_task_reads_and_a_bad_status_fails() {
    let server = TestServer::start().await;
    for test_db in support::databases().await {
        let yaml = format!(
            r#"
dag_id: http_flow
tasks:
  fetch:
    type: http
    url: {base}/orders
  announce:
    type: http
    url: {base}/created
    json: {{rows: "{{{{ tasks.fetch.output.rows }}}}"}}
    expect_status: 201
    depends_on: [fetch]
  count:
    command: echo rows={{{{ tasks.fetch.output.rows }}}} day={{{{ tasks.fetch.output.day }}}}
    depends_on: [fetch]
  broken:
    type: http
    url: {base}/broken
"#,
            base = server.base
        );
        let mut harness = TestApp::new(&test_db, &yaml).await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let states = harness.states(&run).await;
        assert_eq!(states["fetch"], TaskState::Success, "{}", test_db.label);
        assert_eq!(states["announce"], TaskState::Success, "{}", test_db.label);
        assert_eq!(states["count"], TaskState::Success, "{}", test_db.label);
        assert_eq!(states["broken"], TaskState::Failed, "{}", test_db.label);
        let mut connection = harness.db.acquire().await.unwrap();
        let outputs = task_instances::outputs(&mut connection, run.pk).await.unwrap();
        drop(connection);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&outputs["fetch"]).unwrap(),
            serde_json::json!({"rows": 3, "day": "2026-03-01"})
        );
        assert_eq!(
            outputs["announce"], r#"{"rows":"3"}"#,
            "the JSON body was rendered and echoed back"
        );
        assert_eq!(outputs["count"], r#""rows=3 day=2026-03-01""#);
        let error = attempt_error(&harness, run.pk, "broken").await;
        assert!(
            error.contains("answered 500 Internal Server Error, expected 2xx: database is down"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn an_http_task_against_a_server_that_never_answers_fails_at_its_request_timeout() {
    let (base, _server) = silent_server().await;
    for test_db in support::databases().await {
        let yaml = format!(
            r#"
dag_id: http_silent
tasks:
  wait_forever:
    type: http
    url: {base}/anything
    request_timeout: 300ms
"#
        );
        let mut harness = TestApp::new(&test_db, &yaml).await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let error = attempt_error(&harness, run.pk, "wait_forever").await;
        assert!(error.starts_with("no answer from http://"), "{error}");
        assert!(error.ends_with("within 300ms (request_timeout)"), "{error}");
    }
}

#[tokio::test]
async fn a_file_sensor_waits_while_a_sibling_creates_the_file_and_keeps_its_try() {
    for test_db in support::databases().await {
        // The sibling creates the file only after the sensor has found it missing once, so the
        // sensor must really wait and poke again.
        let yaml = r#"
dag_id: file_wait
tasks:
  wait_for_file:
    type: sensor
    file: "{{ run_id }}.ready"
    poke_interval: 100ms
    timeout: 1m
  deliver:
    command: |
      # The task runs in the DAG folder (`dags/`); the logs are under `state/logs/`.
      log="../state/logs/$WEIR_DAG_ID/$WEIR_RUN_ID/wait_for_file/1.log"
      until grep -q "does not hold yet" "$log" 2>/dev/null; do sleep 0.02; done
      touch "$WEIR_RUN_ID.ready"
"#;
        let mut harness = TestApp::new(&test_db, yaml).await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        let sensor = &harness.instances(&run).await["wait_for_file"];
        assert_eq!(
            (sensor.state, sensor.try_number),
            (TaskState::Success, 1),
            "{}",
            test_db.label
        );
        let log = read_log(&harness, &run, "wait_for_file", 1);
        assert!(log.matches("poke: does").count() >= 2, "{log}");
        assert!(log.contains("poke: the condition holds"), "{log}");
        let mut connection = harness.db.acquire().await.unwrap();
        let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("wait_for_file").unwrap())
            .await
            .unwrap();
        assert_eq!(attempts.len(), 1, "every poke belongs to the one try: {attempts:?}");
    }
}

#[tokio::test]
async fn a_sensor_that_times_out_fails_and_with_soft_fail_is_skipped() {
    for test_db in support::databases().await {
        let yaml = r#"
dag_id: sensor_timeouts
tasks:
  strict:
    type: sensor
    file: never-there
    poke_interval: 50ms
    timeout: 300ms
  lenient:
    type: sensor
    file: never-there
    poke_interval: 50ms
    timeout: 300ms
    soft_fail: true
"#;
        let mut harness = TestApp::new(&test_db, yaml).await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let states = harness.states(&run).await;
        assert_eq!(states["strict"], TaskState::Failed, "{}", test_db.label);
        assert_eq!(states["lenient"], TaskState::Skipped, "{}", test_db.label);
        let error = attempt_error(&harness, run.pk, "strict").await;
        assert_eq!(
            error, "sensor timed out: the condition did not hold within 300ms (timeout)",
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn with_parallelism_one_a_waiting_sensor_leaves_the_slot_to_the_task_it_waits_for() {
    for test_db in support::databases().await {
        // The sensor goes first (higher priority). If it held the only slot while waiting, the
        // task that creates its file could never start and the run would never finish.
        let yaml = r#"
dag_id: one_slot
tasks:
  wait:
    type: sensor
    file: "{{ run_id }}.flag"
    poke_interval: 100ms
    timeout: 1m
    priority_weight: 10
  make_flag:
    command: touch "$WEIR_RUN_ID.flag"
"#;
        let mut harness = TestApp::builder(&test_db)
            .dag(yaml)
            .core("parallelism = 1")
            .stepped()
            .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        assert_eq!(harness.instances(&run).await["wait"].try_number, 1, "{}", test_db.label);
        let log = read_log(&harness, &run, "wait", 1);
        assert!(
            log.contains("does not hold yet"),
            "the sensor poked before the file existed, then let make_flag run: {log}"
        );
    }
}

#[tokio::test]
async fn trigger_dag_starts_the_other_dag_and_waits_for_its_success() {
    for test_db in support::databases().await {
        let parent = r#"
dag_id: parent
tasks:
  kick:
    type: trigger_dag
    dag_id: child
    conf: {day: "{{ ds }}"}
    wait_for_completion: true
    poke_interval: 100ms
"#;
        let child = r#"
dag_id: child
params:
  day: {type: string, default: none}
tasks:
  work:
    command: echo child for {{ params.day }}
"#;
        let mut harness = TestApp::builder(&test_db).dags(&[parent, child]).stepped().await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        let mut connection = harness.db.acquire().await.unwrap();
        let child_runs = runs::list(
            &mut connection,
            &RunFilter {
                dag_id: Some(weir::domain::ids::DagId::parse("child").unwrap()),
                ..RunFilter::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(child_runs.len(), 1, "{}", test_db.label);
        assert_eq!(child_runs[0].state, RunState::Success);
        let ds = run.logical_date.format("%Y-%m-%d").to_string();
        assert_eq!(child_runs[0].conf["day"], ds, "conf was rendered for the parent's run");
        let outputs = task_instances::outputs(&mut connection, run.pk).await.unwrap();
        let output: serde_json::Value = serde_json::from_str(&outputs["kick"]).unwrap();
        assert_eq!(output["state"], "success");
        assert_eq!(output["dag_run_id"], child_runs[0].run_id.as_str());
    }
}

#[tokio::test]
async fn a_connection_password_never_reaches_the_task_log_or_the_rendered_fields() {
    let server = TestServer::start().await;
    let password = "pw-LEAK-check-7731";
    let authority = server.base.trim_start_matches("http://");
    for test_db in support::databases().await {
        // The URL with credentials is written into the task itself (rendered field), sent as
        // basic auth, and echoed back by the server into the log.
        let yaml = format!(
            r#"
dag_id: leaky
tasks:
  whoami:
    type: http
    url: "http://loader:{password}@{authority}/whoami"
  shell_echo:
    command: echo "the password is {password}"
"#
        );
        let mut harness = TestApp::builder(&test_db)
            .dag(&yaml)
            .tune(move |settings| settings.connection_passwords = vec![password.to_string()])
            .stepped()
            .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        for task in ["whoami", "shell_echo"] {
            let log = read_log(&harness, &run, task, 1);
            assert!(!log.contains(password), "{task} log leaks the password: {log}");
            assert!(log.contains("***"), "{task} log shows the mask: {log}");
            let mut connection = harness.db.acquire().await.unwrap();
            let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse(task).unwrap())
                .await
                .unwrap();
            let rendered = attempts[0].rendered.to_string();
            assert!(!rendered.contains(password), "{task} rendered fields leak: {rendered}");
            assert!(rendered.contains("***"), "{rendered}");
        }
        assert!(
            read_log(&harness, &run, "whoami", 1).contains("you sent loader:***"),
            "the server really received the credentials"
        );
        let mut connection = harness.db.acquire().await.unwrap();
        let outputs = task_instances::outputs(&mut connection, run.pk).await.unwrap();
        for task in ["whoami", "shell_echo"] {
            assert!(
                !outputs[task].contains(password),
                "{task} output leaks: {}",
                outputs[task]
            );
        }
    }
}

#[tokio::test]
async fn a_hanging_http_server_does_not_hold_up_other_tasks() {
    let (base, _server) = silent_server().await;
    for test_db in support::databases().await {
        let yaml = format!(
            r#"
dag_id: hang_and_go
tasks:
  hang:
    type: http
    url: {base}/x
    request_timeout: 30s
    timeout: 500ms
  quick:
    command: echo done
"#
        );
        let mut harness = TestApp::new(&test_db, &yaml).await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let states = harness.states(&run).await;
        assert_eq!(states["quick"], TaskState::Success);
        assert_eq!(states["hang"], TaskState::Failed);
        assert_eq!(attempt_error(&harness, run.pk, "hang").await, "timed out after 500ms");
    }
}

#[tokio::test]
async fn a_password_stored_in_the_database_is_used_by_a_task_and_masked_in_what_it_shows() {
    let server = TestServer::start().await;
    let password = "db-stored-PW-5521";
    let authority = server.base.trim_start_matches("http://");
    for test_db in support::databases().await {
        let key = weir::secrets::SecretsKey::from_passphrase("weir-tests");
        let stored = weir::domain::connection::Connection::from_url(
            "crm_leak_test",
            &format!("http://loader:{password}@{authority}"),
        )
        .unwrap();
        let mut connection = test_db.db.begin().await.unwrap();
        weir::storage::connections::insert(&mut connection, &stored, &key)
            .await
            .unwrap();
        for (name, value) in [("region", "kr"), ("crm_api_token", "tok-DB-9913")] {
            let variable = weir::storage::variables::Variable {
                key: name.to_string(),
                value: value.to_string(),
                description: None,
            };
            weir::storage::variables::set(&mut connection, &variable, &key)
                .await
                .unwrap();
        }
        connection.commit().await.unwrap();
        let yaml = r#"
dag_id: db_conn
tasks:
  whoami:
    type: http
    conn: crm_leak_test
    url: /whoami
  describe:
    command: echo host={{ conn.crm_leak_test.host }} login={{ conn.crm_leak_test.login }}
  variables:
    command: echo region={{ var.region }} token={{ var.crm_api_token }}
"#;
        let mut harness = TestApp::new(&test_db, yaml).await;
        let run = harness.trigger().await;
        let state = harness.run_to_end(&run).await;
        assert_eq!(
            state,
            RunState::Success,
            "{}: {:?}",
            test_db.label,
            attempt_error(&harness, run.pk, "variables").await
        );
        let whoami = read_log(&harness, &run, "whoami", 1);
        assert!(
            whoami.contains("you sent loader:***"),
            "basic auth from the stored URL: {whoami}"
        );
        assert!(!whoami.contains(password), "{whoami}");
        let mut connection = harness.db.acquire().await.unwrap();
        let outputs = task_instances::outputs(&mut connection, run.pk).await.unwrap();
        assert_eq!(
            outputs["describe"], r#""host=127.0.0.1 login=loader""#,
            "conn.<name> in templates"
        );
        assert_eq!(
            outputs["whoami"], r#""you sent loader:***""#,
            "the output is masked too"
        );
        assert_eq!(
            outputs["variables"], r#""region=kr token=***""#,
            "database variables in templates; a secret-named one masked"
        );
        for task in ["whoami", "describe"] {
            let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse(task).unwrap())
                .await
                .unwrap();
            assert!(!attempts[0].rendered.to_string().contains(password));
        }
    }
}
