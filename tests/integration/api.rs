//! The REST API through `router(state).oneshot(request)`, on SQLite and PostgreSQL: every
//! endpoint's success and its refusals of bad input (4xx with a precise `detail`, never a 500),
//! the OpenAPI document against the route table, `/metrics`, and one real server on port 0.

mod backfills;
mod connections;
mod dags;
mod datasets;
mod resources;
mod run_routes;
mod task_instance_routes;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;
use weir::api::{self, ApiState};
use weir::config::Config;
use weir::domain::dag::Dag;
use weir::domain::state::{RunState, TaskState};
use weir::domain::validate::{DagFileError, Problem};
use weir::runtime::loader::{self, DagBag};
use weir::runtime::operations;
use weir::runtime::task_log::LogPath;
use weir::storage::runs;
use weir::storage::runs::DagRun;
use weir::storage::task_instances::{self, AttemptEnd};

use crate::support::{self, TestDb};

/// The test DAG: params and two tasks, `first` then `second`.
pub const DAG_YAML: &str = "
description: API test DAG
owner: data-eng
tags: [api, etl]
params:
  region: { type: string, default: kr, enum: [kr, us] }
defaults: { retries: 1, retry_delay: 30s }
tasks:
  first: { command: echo hello }
  second: { command: echo done, depends_on: [first] }
";

/// One database with the API in front of it. Requests carry an Admin's token unless they set
/// `Authorization` or `Cookie` themselves ([`Api::send_anonymous`] sends none).
pub struct Api {
    pub router: Router,
    pub state: ApiState,
    pub admin_token: String,
    pub dag: Arc<Dag>,
    pub label: &'static str,
    _folder: tempfile::TempDir,
    _test_db: TestDb,
}

/// An answer: status and body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub content_type: String,
}

impl Answer {
    pub fn detail(&self) -> String {
        self.body["detail"].as_str().unwrap_or_default().to_string()
    }
}

/// The API over each fresh database, with the test DAG loaded and recorded, and one broken file.
pub async fn apis() -> Vec<Api> {
    apis_with(&[]).await
}

/// As [`apis`], with more DAGs loaded (each YAML names its `dag_id`).
pub async fn apis_with(extra_dags: &[&str]) -> Vec<Api> {
    let mut apis = Vec::new();
    for test_db in support::databases().await {
        let folder = tempfile::tempdir().unwrap();
        let config_path = folder.path().join("config.toml");
        std::fs::write(
            &config_path,
            "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\ntest_connection = \"Enabled\"\n\n[pools]\ndefault = 8\nwarehouse = 2\n",
        )
        .unwrap();
        let config = Config::load(&config_path, true, std::iter::empty::<(String, String)>()).unwrap();
        let dag = Arc::new(support::dag(DAG_YAML));
        let mut bag = DagBag::default();
        bag.dags.insert(dag.dag_id.clone(), Arc::clone(&dag));
        for yaml in extra_dags {
            let extra = Arc::new(support::dag(yaml));
            bag.dags.insert(extra.dag_id.clone(), extra);
        }
        bag.errors.push(DagFileError {
            path: Path::new("dags/broken.yaml").to_path_buf(),
            problems: vec![Problem {
                line: 3,
                column: 5,
                message: "unknown key `comand`".to_string(),
            }],
        });
        loader::record(&test_db.db, &bag).await.unwrap();
        let (_sender, receiver) = watch::channel(Arc::new(bag));
        let state = ApiState {
            db: test_db.db.clone(),
            dags: receiver,
            auth: support::authenticator(&config),
            health: Default::default(),
            config: Arc::new(config),
            scheduler_metrics: None,
            secrets: weir::secrets::SecretsKey::from_passphrase(support::TEST_SECRETS_KEY),
        };
        let admin_token = support::token_for(&state, weir::domain::auth::Role::Admin).await;
        apis.push(Api {
            router: api::router(state.clone()),
            state,
            admin_token,
            dag,
            label: test_db.label,
            _folder: folder,
            _test_db: test_db,
        });
    }
    apis
}

impl Api {
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).unwrap()).await
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, None).await
    }

    /// Sends a raw body (for malformed JSON and wrong content types).
    pub async fn raw(&self, method: Method, uri: &str, content_type: &str, body: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    /// Sends `request`, as the Admin unless it names its caller itself.
    pub async fn send(&self, mut request: Request<Body>) -> Answer {
        let headers = request.headers_mut();
        if !headers.contains_key(header::AUTHORIZATION) && !headers.contains_key(header::COOKIE) {
            let bearer = format!("Bearer {}", self.admin_token);
            headers.insert(header::AUTHORIZATION, bearer.parse().unwrap());
        }
        self.send_anonymous(request).await
    }

    /// Sends `request` as it is, with no token added.
    pub async fn send_anonymous(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            content_type,
        }
    }

    /// A manual run of the test DAG with its task instances, `first` finished with a log.
    pub async fn finished_run(&self, run_id: &str) -> DagRun {
        let new_run = operations::manual_run(&self.dag, &json!({"region": "us"}), None, Some(run_id), None).unwrap();
        let run = operations::trigger(&self.state.db, &self.dag, &new_run).await.unwrap();
        let now = chrono::Utc::now();
        let mut connection = self.state.db.acquire().await.unwrap();
        for task in &self.dag.tasks {
            task_instances::create(&mut connection, run.pk, &run.dag_id, &run.run_id, &[task])
                .await
                .unwrap();
        }
        runs::start(&mut connection, run.pk, now).await.unwrap();
        let first = &self.dag.tasks[0];
        task_instances::set_state(&mut connection, run.pk, &first.task_id, TaskState::Scheduled, None, now)
            .await
            .unwrap();
        let try_number = task_instances::claim(
            &mut connection,
            run.pk,
            &first.task_id,
            &json!({"command": "echo hello"}),
            now,
        )
        .await
        .unwrap()
        .unwrap();
        task_instances::mark_started(
            &mut connection,
            run.pk,
            &first.task_id,
            try_number,
            Some(42),
            "host",
            now,
        )
        .await
        .unwrap();
        let end = AttemptEnd {
            attempt_state: TaskState::Success,
            instance_state: TaskState::Success,
            next_retry_at: None,
            exit_code: Some(0),
            output: Some("hello".to_string()),
            error: None,
            refund_try: false,
            reschedule: false,
            crash_ended: false,
        };
        task_instances::finish_attempt(&mut connection, run.pk, &first.task_id, try_number, &end, None, now)
            .await
            .unwrap();
        let log = LogPath::new(
            &self.state.config.logs_dir(),
            &run.dag_id,
            &run.run_id,
            &first.task_id,
            try_number,
        )
        .file();
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(&log, "line one\nhello us\n").unwrap();
        runs::get_by_pk(&mut connection, run.pk).await.unwrap().unwrap()
    }

    /// Finishes the run: `second` succeeds too, and the run is a success.
    pub async fn finish(&self, run: &DagRun) {
        let now = chrono::Utc::now();
        let mut transaction = self.state.db.begin().await.unwrap();
        task_instances::mark(
            &mut transaction,
            run.pk,
            &self.dag.tasks[1].task_id,
            TaskState::Success,
            now,
        )
        .await
        .unwrap();
        runs::finish(&mut transaction, run.pk, RunState::Success, now)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_error_shape() {
    for api in apis().await {
        let answer = api.get("/api/v2/nothing/here").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}: {answer:?}", api.label);
        assert!(answer.detail().contains("/api/v2/nothing/here"), "{answer:?}");
        let answer = api.call(Method::PUT, "/api/v2/dags", None).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{answer:?}");
        assert!(answer.detail().contains("method not allowed"), "{answer:?}");
    }
}

#[tokio::test]
async fn version_and_health_answer() {
    for api in apis().await {
        let version = api.get("/api/v2/version").await;
        assert_eq!(version.status, StatusCode::OK);
        assert_eq!(version.body["version"], env!("CARGO_PKG_VERSION"));
        let health = api.get("/api/v2/monitor/health").await;
        assert_eq!(health.body["metadatabase"]["status"], "healthy", "{}", api.label);
    }
}

#[tokio::test]
async fn health_reports_each_part_as_this_process_sees_it_and_a_stopped_dag_loader_as_unhealthy() {
    use weir::runtime::health::{Component, Health};
    let mut api = apis().await.remove(0);
    let health = Arc::new(Health::default());
    let _scheduler = health.alive(Component::Scheduler);
    health.beat(Component::Scheduler, chrono::Utc::now());
    let loader = health.alive(Component::DagProcessor);
    health.beat(Component::DagProcessor, chrono::Utc::now());
    api.router = api::router(ApiState {
        health: Arc::clone(&health),
        ..api.state.clone()
    });
    let statuses = |body: &Value| {
        ["metadatabase", "scheduler", "dag_processor"]
            .map(|part| body[part]["status"].as_str().unwrap_or("").to_string())
    };
    let answer = api.get("/api/v2/monitor/health").await;
    assert_eq!(statuses(&answer.body), ["healthy", "healthy", "healthy"], "{answer:?}");
    // The folder watcher's task ended (a panic, a return): never "healthy" again.
    drop(loader);
    let answer = api.get("/api/v2/monitor/health").await;
    assert_eq!(
        statuses(&answer.body),
        ["healthy", "healthy", "unhealthy"],
        "{answer:?}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_the_router_serves() {
    let api = apis().await.remove(0);
    let answer = api.get("/api/v2/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.body;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{document}");
    let table = weir::api::rest::route_table();
    assert!(table.len() > 30, "{table:?}");
    for route in &table {
        let operation = &document["paths"][route.path][route.verb.as_str()];
        assert!(
            operation.is_object(),
            "{} {} missing from the document",
            route.verb.as_str(),
            route.path
        );
        assert_eq!(operation["operationId"], route.operation_id);
        // Every listed route is really routed: a request reaches a handler, not the catch-all.
        let uri = route
            .path
            .replace("{dag_id}", "nope")
            .replace("{dag_run_id}", "nope")
            .replace("{task_id}", "nope")
            .replace("{try_number}", "1")
            .replace("{import_error_id}", "1")
            .replace("{variable_key}", "nope")
            .replace("{connection_id}", "nope")
            .replace("{pool_name}", "nope")
            .replace("{backfill_id}", "1");
        let method = Method::from_bytes(route.verb.as_str().to_uppercase().as_bytes()).unwrap();
        let body = matches!(route.verb, weir::api::rest::Verb::Post | weir::api::rest::Verb::Patch).then(|| json!({}));
        let answer = api.call(method, &uri, body).await;
        assert!(!answer.detail().starts_with("no such API path"), "{uri}: {answer:?}");
        if answer.status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(answer.detail().contains("pools are read-only"), "{uri}: {answer:?}");
        }
        assert!(answer.status.as_u16() < 500, "{uri}: {answer:?}");
    }
    let served: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|methods| methods.as_object().unwrap().len())
        .sum();
    assert_eq!(served, table.len(), "the document lists exactly the table");
}

#[tokio::test]
async fn metrics_count_runs_and_task_instances_by_state() {
    for api in apis().await {
        let run = api.finished_run("metrics_run").await;
        api.finish(&run).await;
        let answer = api.get("/metrics").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.content_type.starts_with("text/plain"), "{answer:?}");
        let text = answer.body.as_str().unwrap().to_string();
        for line in [
            "weir_dag_runs{state=\"success\"} 1",
            "weir_task_instances{state=\"success\"} 2",
            "weir_import_errors 1",
            "weir_pool_slots{pool=\"warehouse\",kind=\"total\"} 2",
            "# TYPE weir_queue_depth gauge",
        ] {
            assert!(
                text.lines().any(|have| have == line),
                "{}: missing `{line}` in\n{text}",
                api.label
            );
        }
    }
}

#[tokio::test]
async fn a_real_server_on_port_0_answers_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = apis().await.remove(0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = api.router.clone();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /api/v2/dags?limit=5 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                api.admin_token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    server.abort();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["dags"][0]["dag_id"], "test", "{body}");
    assert_eq!(body["total_entries"], 1);
}
