//! A running scheduler keeps resolved variables and connections between dispatches; a change made
//! through the REST API or the CLI moves the change counter with its commit, so the next attempt
//! uses the new value at once, not after the scheduler's safety-net interval.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Utc;
use serde_json::json;
use tokio::sync::watch;
use tower::ServiceExt;
use weir::api::{self, ApiState};
use weir::domain::connection::Connection;
use weir::domain::state::{RunState, TaskState};
use weir::secrets::SecretsKey;
use weir::storage::runs::DagRun;
use weir::storage::task_instances;
use weir::storage::variables::{self, Variable};
use weir::storage::{self, connections};

use crate::support::test_app::{TEST_SECRETS_PASSPHRASE, TestApp};
use crate::support::{self, TestDb};

/// `first` resolves variables and connections (and the scheduler keeps them); the test changes
/// one before `second`, which runs after `first`, is dispatched.
const DAG: &str = r#"
dag_id: fresh_values
tasks:
  first:
    command: echo greeting={{ var.greeting }} host={{ conn.target.host }}
  second:
    command: echo greeting={{ var.greeting }} host={{ conn.target.host }}
    depends_on: [first]
"#;

/// A stepped scheduler over `DAG`, with `greeting` = `hello` and `target` on `old-host` stored.
async fn app_with_values(test_db: &TestDb) -> TestApp {
    let key = SecretsKey::from_passphrase(TEST_SECRETS_PASSPHRASE);
    let mut transaction = test_db.db.begin().await.unwrap();
    let greeting = Variable {
        key: "greeting".to_string(),
        value: "hello".to_string(),
        description: None,
    };
    variables::set(&mut transaction, &greeting, &key).await.unwrap();
    let target = Connection::from_url("target", "http://old-host:8080").unwrap();
    connections::insert(&mut transaction, &target, &key).await.unwrap();
    transaction.commit().await.unwrap();
    TestApp::builder(test_db).dag(DAG).stepped().await
}

/// Triggers a run and steps (without recording executor events, so `second` cannot start) until
/// `first` is claimed: the scheduler has resolved and kept the values `first` renders.
async fn start_first(app: &mut TestApp) -> DagRun {
    let run = app.trigger().await;
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        app.scheduler.tick(Utc::now()).await.unwrap();
        let states = app.states(&run).await;
        if states
            .get("first")
            .is_some_and(|state| !matches!(state, TaskState::None | TaskState::Scheduled))
        {
            return run;
        }
        assert!(tokio::time::Instant::now() < give_up, "`first` is never claimed");
    }
}

/// Drives the run to its end and returns what `first` and `second` printed.
async fn finish(app: &mut TestApp, run: &DagRun, label: &str) -> (String, String) {
    assert_eq!(app.run_to_end(run).await, RunState::Success, "{label}");
    let mut connection = app.db.acquire().await.unwrap();
    let outputs = task_instances::outputs(&mut connection, run.pk).await.unwrap();
    (outputs["first"].clone(), outputs["second"].clone())
}

async fn change_sequence(app: &TestApp) -> i64 {
    let mut connection = app.db.acquire().await.unwrap();
    storage::change_sequence(&mut connection).await.unwrap()
}

/// The REST API over the app's database, as `weir webserver` serves it, and an admin's token.
async fn api_of(app: &TestApp) -> (axum::Router, String) {
    let (_sender, dags) = watch::channel(app.bag());
    let state = ApiState {
        db: app.db.clone(),
        dags,
        auth: support::authenticator(&app.config),
        health: Default::default(),
        config: Arc::new(app.config.clone()),
        scheduler_metrics: None,
        secrets: SecretsKey::from_passphrase(TEST_SECRETS_PASSPHRASE),
    };
    let token = support::token_for(&state, weir::domain::auth::Role::Admin).await;
    (api::router(state), token)
}

async fn call(router: &axum::Router, token: &str, method: Method, uri: &str, body: serde_json::Value) -> StatusCode {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    router.clone().oneshot(request).await.unwrap().status()
}

/// `weir <args>` in the app's project folder (its config.toml names the same database and key).
fn weir(folder: &Path, args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(folder)
        .args(args)
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "weir {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_variable_and_a_connection_changed_through_the_api_reach_the_next_attempt_of_a_running_scheduler() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut app = app_with_values(&test_db).await;
        let (router, token) = api_of(&app).await;

        let run = start_first(&mut app).await;
        let before = change_sequence(&app).await;
        let status = call(
            &router,
            &token,
            Method::PATCH,
            "/api/v2/variables/greeting",
            json!({"key": "greeting", "value": "bonjour"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(
            change_sequence(&app).await > before,
            "{label}: the change moved the counter"
        );
        assert_eq!(
            finish(&mut app, &run, label).await,
            (
                "\"greeting=hello host=old-host\"".to_string(),
                "\"greeting=bonjour host=old-host\"".to_string()
            ),
            "{label}"
        );

        let run = start_first(&mut app).await;
        let status = call(
            &router,
            &token,
            Method::PATCH,
            "/api/v2/connections/target?update_mask=host",
            json!({"connection_id": "target", "conn_type": "http", "host": "new-host"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert_eq!(
            finish(&mut app, &run, label).await,
            (
                "\"greeting=bonjour host=old-host\"".to_string(),
                "\"greeting=bonjour host=new-host\"".to_string()
            ),
            "{label}"
        );
    }
}

#[tokio::test]
async fn a_variable_and_a_connection_changed_through_the_cli_reach_the_next_attempt_of_a_running_scheduler() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut app = app_with_values(&test_db).await;
        let folder = app.folder().to_path_buf();

        let run = start_first(&mut app).await;
        weir(&folder, &["variables", "set", "greeting", "bonjour"]);
        assert_eq!(
            finish(&mut app, &run, label).await,
            (
                "\"greeting=hello host=old-host\"".to_string(),
                "\"greeting=bonjour host=old-host\"".to_string()
            ),
            "{label}"
        );

        let run = start_first(&mut app).await;
        weir(&folder, &["connections", "delete", "target"]);
        weir(
            &folder,
            &["connections", "add", "target", "--url", "http://new-host:8080"],
        );
        assert_eq!(
            finish(&mut app, &run, label).await,
            (
                "\"greeting=bonjour host=old-host\"".to_string(),
                "\"greeting=bonjour host=new-host\"".to_string()
            ),
            "{label}"
        );
    }
}
