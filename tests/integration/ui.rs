//! The web UI through its router, without a socket, on SQLite and PostgreSQL: every page renders
//! with its key content, unknown ids and bad forms give readable 4xx pages, buttons change state
//! and redirect back, the graph names every task, logs are served in windows and streamed live.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::watch;
use tower::ServiceExt;
use weir::api::{ApiState, router};
use weir::config::Config;
use weir::domain::dag::Dag;
use weir::domain::ids::{DagId, TaskId};
use weir::domain::state::{RunState, TaskState};
use weir::domain::validate::ValidationContext;
use weir::runtime::loader::{self, DagBag};
use weir::runtime::operations;
use weir::runtime::task_log::LogPath;
use weir::storage::runs::{self, DagRun, RunFilter};
use weir::storage::task_instances::{self, AttemptEnd};
use weir::storage::{Db, dags as dag_rows};

use crate::support::{self, TestDb};

const DAG_YAML: &str = r#"
dag_id: shop
description: Orders <b>pipeline</b>
tags: [sales, nightly]
schedule: "0 3 * * *"
start_date: 2026-01-01
params:
  region: { type: string, default: kr, enum: [kr, us] }
  rows: { type: integer, default: 10, minimum: 1 }
tasks:
  extract: { command: echo extract }
  transform: { command: echo transform, depends_on: [extract] }
  load: { command: echo load, depends_on: [transform] }
"#;

/// A UI over one DAG, with a project folder for the config and the logs. Requests carry an
/// Admin's session cookie.
pub struct Ui {
    pub state: ApiState,
    /// `Cookie` header value of an Admin's session.
    pub cookie: String,
    dag: Arc<Dag>,
    _bag: watch::Sender<Arc<DagBag>>,
    _folder: tempfile::TempDir,
}

impl Ui {
    pub async fn new(test_db: &TestDb) -> Ui {
        Ui::with_config(test_db, "").await
    }

    /// A UI whose config file ends with `extra_config` (e.g. `[connections.<name>]` tables).
    pub async fn with_config(test_db: &TestDb, extra_config: &str) -> Ui {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(folder.path().join("dags")).unwrap();
        let config_path = folder.path().join("config.toml");
        std::fs::write(
            &config_path,
            format!(
                "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\ntest_connection = \"Enabled\"\n\n[database]\nurl = \"{}\"\n{extra_config}",
                test_db.url
            ),
        )
        .unwrap();
        let config = Config::load(&config_path, true, Vec::<(String, String)>::new()).unwrap();
        let dag_path = folder.path().join("dags").join("shop.yaml");
        std::fs::write(&dag_path, DAG_YAML).unwrap();
        let dag = Arc::new(Dag::from_yaml(&dag_path, DAG_YAML, &ValidationContext::default()).unwrap());
        let mut bag = DagBag::default();
        bag.dags.insert(dag.dag_id.clone(), Arc::clone(&dag));
        loader::record(&test_db.db, &bag).await.unwrap();
        let (bag_tx, bag_rx) = watch::channel(Arc::new(bag));
        let state = ApiState {
            db: test_db.db.clone(),
            dags: bag_rx,
            auth: support::authenticator(&config),
            health: Default::default(),
            config: Arc::new(config),
            scheduler_metrics: None,
            secrets: weir::secrets::SecretsKey::from_passphrase(support::TEST_SECRETS_KEY),
        };
        let cookie = support::session_cookie(&support::token_for(&state, weir::domain::auth::Role::Admin).await);
        Ui {
            state,
            cookie,
            dag,
            _bag: bag_tx,
            _folder: folder,
        }
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, String) {
        let response = router(self.state.clone())
            .oneshot(
                Request::get(uri)
                    .header(header::COOKIE, &self.cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Posts a form; returns the status, the `Location` header and the body.
    pub async fn post(&self, uri: &str, form: &str) -> (StatusCode, Option<String>, String) {
        self.send(support::ui_form_post(uri, form)).await
    }

    /// Sends any request, as the Admin unless it names a session itself; returns the status, the
    /// `Location` header and the body.
    pub async fn send(&self, mut request: Request<Body>) -> (StatusCode, Option<String>, String) {
        if request.uri().path().starts_with("/api/") {
            // The API takes changes only with a bearer token; the session is the same token.
            let token = self.cookie.split_once('=').map_or("", |(_, token)| token);
            if !request.headers().contains_key(header::AUTHORIZATION) {
                let bearer = format!("Bearer {token}").parse().unwrap();
                request.headers_mut().insert(header::AUTHORIZATION, bearer);
            }
        } else {
            support::add_session(&mut request, &self.cookie);
        }
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|value| value.to_str().unwrap().to_string());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, location, String::from_utf8_lossy(&body).into_owned())
    }

    /// A manual run with every task instance created, as the scheduler would.
    pub async fn run(&self) -> DagRun {
        let new_run = operations::manual_run(&self.dag, &json!({}), None, None, None).unwrap();
        let run = operations::trigger(self.db(), &self.dag, &new_run).await.unwrap();
        let mut connection = self.db().acquire().await.unwrap();
        for task in &self.dag.tasks {
            task_instances::create(&mut connection, run.pk, &run.dag_id, &run.run_id, &[task])
                .await
                .unwrap();
        }
        run
    }

    /// Claims and starts try 1 of `task` with `log` already written; returns the log's path.
    async fn start(&self, run: &DagRun, task: &str, log: &[u8]) -> std::path::PathBuf {
        let task_id = TaskId::parse(task).unwrap();
        let now = Utc::now();
        let mut connection = self.db().acquire().await.unwrap();
        task_instances::set_state(&mut connection, run.pk, &task_id, TaskState::Scheduled, None, now)
            .await
            .unwrap();
        let rendered = json!({ "command": format!("echo {task}"), "env": {} });
        let try_number = task_instances::claim(&mut connection, run.pk, &task_id, &rendered, now)
            .await
            .unwrap()
            .unwrap();
        task_instances::mark_started(
            &mut connection,
            run.pk,
            &task_id,
            try_number,
            Some(4242),
            "testhost",
            now,
        )
        .await
        .unwrap();
        let path = LogPath::new(
            &self.state.config.logs_dir(),
            &run.dag_id,
            &run.run_id,
            &task_id,
            try_number,
        )
        .file();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, log).unwrap();
        path
    }

    async fn finish(&self, run: &DagRun, task: &str, state: TaskState) {
        let end = AttemptEnd {
            attempt_state: state,
            instance_state: state,
            next_retry_at: None,
            exit_code: Some(if state == TaskState::Success { 0 } else { 1 }),
            output: Some("\"rows: 42\"".to_string()),
            error: (state == TaskState::Failed).then(|| "boom".to_string()),
            refund_try: false,
            reschedule: false,
            crash_ended: false,
        };
        let mut connection = self.db().acquire().await.unwrap();
        let task_id = TaskId::parse(task).unwrap();
        task_instances::finish_attempt(&mut connection, run.pk, &task_id, 1, &end, None, Utc::now())
            .await
            .unwrap();
    }
}

pub fn run_url(run: &DagRun) -> String {
    format!("/dags/{}/runs/{}", run.dag_id, encode(run.run_id.as_str()))
}

fn encode(value: &str) -> String {
    value.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn every_page_renders_with_its_key_content() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let run = ui.run().await;
        ui.start(&run, "extract", b"line one\nline two\n").await;
        ui.finish(&run, "extract", TaskState::Success).await;
        let label = test_db.label;

        let (status, body) = ui.get("/").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(body.contains("href=\"/dags/shop\""), "{label}: {body}");
        assert!(
            body.contains("0 3 * * *") && body.contains("At 03:00"),
            "{label}: schedule in words"
        );
        assert!(
            body.contains("Orders &lt;b&gt;pipeline&lt;/b&gt;"),
            "{label}: escaped description"
        );
        assert!(body.contains("class=\"dot state-queued\""), "{label}: recent run dot");
        assert!(body.contains("role=\"switch\""), "{label}: pause toggle");

        let (_, body) = ui.get("/?q=nothing-matches").await;
        assert!(body.contains("No DAG matches"), "{label}");
        let (_, body) = ui.get("/?tag=sales").await;
        assert!(body.contains("href=\"/dags/shop\""), "{label}");

        let (status, body) = ui.get("/dags/shop").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        for task in ["extract", "transform", "load"] {
            assert!(body.contains(&format!(">{task}</th>")), "{label}: grid row {task}");
        }
        assert!(body.contains("class=\"cell state-success\""), "{label}: coloured cell");
        assert!(body.contains("class=\"run-bar state-queued\""), "{label}: run column");

        let (status, body) = ui.get("/dags/shop?tab=graph").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(body.contains("<svg"), "{label}: {body}");
        for task in ["extract", "transform", "load"] {
            assert!(
                body.contains(&format!("data-task-id=\"{task}\"")),
                "{label}: node {task}"
            );
        }
        assert!(
            body.contains("class=\"node state-success\" data-task-id=\"extract\""),
            "{label}: node coloured by the run"
        );

        let (_, body) = ui.get("/dags/shop?tab=code").await;
        assert!(
            body.contains("description: Orders &lt;b&gt;pipeline&lt;/b&gt;"),
            "{label}: escaped YAML"
        );

        let (_, body) = ui.get("/dags/shop?tab=runs").await;
        assert!(body.contains(run.run_id.as_str()), "{label}: run history");

        let (_, body) = ui.get("/dags/shop?tab=trigger").await;
        assert!(body.contains("name=\"param:region\""), "{label}: enum param");
        assert!(
            body.contains("<select id=\"param-region\""),
            "{label}: enum param is a select"
        );
        assert!(
            body.contains("name=\"param:rows\" value=\"10\""),
            "{label}: default filled in"
        );

        let (status, body) = ui.get(&run_url(&run)).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(
            body.contains("Gantt") && body.contains("gantt-bar state-success"),
            "{label}: gantt"
        );
        assert!(body.contains("Mark success"), "{label}: mark buttons");

        let (status, body) = ui.get(&format!("{}/tasks/extract", run_url(&run))).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(body.contains("line one\nline two"), "{label}: log shown");
        assert!(
            body.contains("Rendered fields") && body.contains("echo extract"),
            "{label}: rendered"
        );
        assert!(body.contains("rows: 42"), "{label}: output");
        assert!(body.contains("testhost"), "{label}: attempt host");
        assert!(
            !body.contains("data-stream"),
            "{label}: a finished attempt does not stream"
        );

        let (status, body) = ui.get("/import-errors").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(body.contains("No import errors"), "{label}");

        let (status, body) = ui.get("/static/weir.css").await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(body.contains("--success: #008000"), "{label}: palette");
    }
}

#[tokio::test]
async fn unknown_or_invalid_ids_give_readable_pages_not_500s() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let run = ui.run().await;
        let label = test_db.label;
        let cases = [
            ("/dags/nope", StatusCode::NOT_FOUND, "There is no DAG `nope`"),
            ("/dags/bad%20id", StatusCode::BAD_REQUEST, "is not a valid DAG id"),
            ("/dags/..%2F..%2Fetc", StatusCode::BAD_REQUEST, "is not a valid DAG id"),
            ("/dags/shop/runs/nope", StatusCode::NOT_FOUND, "has no run `nope`"),
            (
                "/dags/shop/runs/a%2Fb",
                StatusCode::BAD_REQUEST,
                "is not a valid run id",
            ),
            (
                "/dags/shop?tab=bogus",
                StatusCode::BAD_REQUEST,
                "there is no tab `bogus`",
            ),
            (
                "/dags/shop?offset=lots",
                StatusCode::BAD_REQUEST,
                "invalid query parameters",
            ),
            ("/static/nope.css", StatusCode::NOT_FOUND, "no static file"),
        ];
        for (uri, expected, text) in cases {
            let (status, body) = ui.get(uri).await;
            assert_eq!(status, expected, "{label}: {uri}: {body}");
            assert!(body.contains(text), "{label}: {uri}: {body}");
            assert!(body.contains("<!doctype html>"), "{label}: {uri} is a page");
        }
        let task_page = format!("{}/tasks/nope", run_url(&run));
        let (status, body) = ui.get(&task_page).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}: {body}");
        assert!(body.contains("has no task `nope`"), "{label}: {body}");
        let (status, body) = ui.get(&format!("{}/tasks/extract?try=9", run_url(&run))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}: {body}");
        assert!(body.contains("has no try 9"), "{label}: {body}");
        let (status, _) = ui.get(&format!("{}/tasks/extract/logs/1/stream", run_url(&run))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}: no try 1 yet");
        let (status, body) = ui
            .get(&format!("{}/tasks/extract/logs/first/stream", run_url(&run)))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
    }
}

#[tokio::test]
async fn the_trigger_form_creates_a_run_or_shows_every_problem() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let label = test_db.label;

        let (status, _, body) = ui
            .post("/dags/shop/trigger", "param%3Aregion=%22eu%22&param%3Arows=many")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        assert!(
            body.contains("param `rows` must be a whole number, got `many`"),
            "{label}: {body}"
        );
        assert!(
            body.contains("param `region` is &quot;eu&quot;; allowed values: &quot;kr&quot;, &quot;us&quot;"),
            "{label}: {body}"
        );
        assert!(body.contains("value=\"many\""), "{label}: the typed value is kept");

        let (status, _, body) = ui.post("/dags/shop/trigger", "param%3Arows=0").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        assert!(
            body.contains("param `rows` is 0, below the minimum 1"),
            "{label}: {body}"
        );

        let (status, location, body) = ui
            .post(
                "/dags/shop/trigger",
                "param%3Aregion=%22us%22&param%3Arows=3&run_id=from_ui",
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {body}");
        let location = location.unwrap();
        assert!(
            location.starts_with("/dags/shop?tab=grid&notice=Triggered"),
            "{label}: {location}"
        );
        let mut connection = ui.db().acquire().await.unwrap();
        let filter = RunFilter {
            dag_id: Some(DagId::parse("shop").unwrap()),
            ..RunFilter::default()
        };
        let created = runs::list(&mut connection, &filter).await.unwrap();
        assert_eq!(created.len(), 1, "{label}");
        assert_eq!(created[0].run_id.as_str(), "from_ui");
        assert_eq!(created[0].conf, json!({"region": "us", "rows": 3}), "{label}");
        drop(connection);

        let (status, _, body) = ui.post("/dags/shop/trigger", "run_id=from_ui").await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {body}");
        assert!(body.contains("already has a run with id `from_ui`"), "{label}: {body}");
        let (status, _, body) = ui.post("/dags/shop/trigger", "run_id=..").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
    }
}

#[tokio::test]
async fn buttons_pause_clear_and_mark_then_redirect_back() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let label = test_db.label;
        let run = ui.run().await;
        ui.start(&run, "extract", b"x\n").await;
        ui.finish(&run, "extract", TaskState::Failed).await;

        let (status, location, _) = ui.post("/dags/shop/pause", "paused=true&next=%2F").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(location.as_deref(), Some("/?notice=Paused%20shop"), "{label}");
        let mut connection = ui.db().acquire().await.unwrap();
        let record = dag_rows::get(&mut connection, &ui.dag.dag_id).await.unwrap().unwrap();
        assert!(record.is_paused, "{label}");
        drop(connection);
        let (status, location, _) = ui
            .post("/dags/shop/pause", "paused=false&next=%2F%2Fevil.example")
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(
            location.as_deref(),
            Some("/dags/shop?notice=Unpaused%20shop"),
            "{label}: no open redirect"
        );

        let (status, _, body) = ui.post("/dags/shop/pause", "paused=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(body.contains("`paused` must be true or false"), "{label}: {body}");
        let (status, _, body) = ui.post("/dags/shop/pause", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(body.contains("invalid form"), "{label}: {body}");

        let task_url = format!("{}/tasks/extract", run_url(&run));
        let (status, _, body) = ui.post(&format!("{task_url}/mark"), "state=running").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}");
        assert!(body.contains("marked `success` or `failed`"), "{label}: {body}");

        let (status, location, _) = ui.post(&format!("{}/clear", run_url(&run)), "which=failed").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert!(location.unwrap().contains("Cleared%201%20task%20instance"), "{label}");
        let mut connection = ui.db().acquire().await.unwrap();
        let extract = TaskId::parse("extract").unwrap();
        let ti = task_instances::get(&mut connection, run.pk, &extract)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ti.state, TaskState::None, "{label}: cleared");
        drop(connection);

        let (status, location, _) = ui.post(&format!("{task_url}/mark"), "state=success").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert!(
            location.unwrap().starts_with(&format!("{task_url}?notice=Marked")),
            "{label}"
        );
        let mut connection = ui.db().acquire().await.unwrap();
        let ti = task_instances::get(&mut connection, run.pk, &extract)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ti.state, TaskState::Success, "{label}: marked");
        drop(connection);

        let (status, location, _) = ui.post(&format!("{task_url}/clear"), "downstream=true").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert!(
            location.unwrap().contains("Cleared%203%20task%20instances"),
            "{label}: extract and its downstream"
        );
        let mut connection = ui.db().acquire().await.unwrap();
        let run_now = runs::get(&mut connection, &run.dag_id, &run.run_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run_now.state, RunState::Queued, "{label}");
    }
}

#[tokio::test]
async fn a_large_log_is_served_in_windows_never_whole() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let label = test_db.label;
        let run = ui.run().await;
        let mut log = String::new();
        let mut number = 0;
        while log.len() < 3 * 1024 * 1024 {
            log.push_str(&format!("log line {number:07} with some padding to make it longer\n"));
            number += 1;
        }
        let last_line = format!("log line {:07}", number - 1);
        ui.start(&run, "extract", log.as_bytes()).await;
        ui.finish(&run, "extract", TaskState::Success).await;
        let task_url = format!("{}/tasks/extract", run_url(&run));

        let (status, body) = ui.get(&task_url).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(body.len() < 400 * 1024, "{label}: page is {} bytes", body.len());
        assert!(body.contains(&last_line), "{label}: the tail is shown");
        assert!(!body.contains("log line 0000000 "), "{label}: the head is not");
        assert!(body.contains("Load earlier"), "{label}");

        let (status, body) = ui.get(&format!("{task_url}?try=1&offset=0")).await;
        assert_eq!(status, StatusCode::OK, "{label}");
        assert!(body.len() < 400 * 1024, "{label}: page is {} bytes", body.len());
        assert!(body.contains("log line 0000000 "), "{label}: the head is shown");
        assert!(!body.contains(&last_line), "{label}: the tail is not");
        assert!(body.contains("Load later") && !body.contains("Load earlier"), "{label}");
    }
}

/// Reads the stream's frames until `wanted` has been seen or the deadline passes.
async fn read_until(body: &mut Body, seen: &mut String, wanted: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains(wanted) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {wanted:?}; got {seen:?}"));
        match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    seen.push_str(&String::from_utf8_lossy(data));
                }
            }
            Some(Err(error)) => panic!("stream failed: {error}"),
            None => panic!("stream ended before {wanted:?}; got {seen:?}"),
        }
    }
}

#[tokio::test]
async fn the_log_stream_sends_what_exists_then_new_lines_then_ends() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let label = test_db.label;
        let run = ui.run().await;
        let path = ui.start(&run, "extract", b"first line\nsecond line\n").await;
        let uri = format!("{}/tasks/extract/logs/1/stream", run_url(&run));

        // A running attempt: the task page offers the stream from where its window ends.
        let (_, page) = ui.get(&format!("{}/tasks/extract", run_url(&run))).await;
        assert!(page.contains("/logs/1/stream?from=23"), "{label}: {page}");

        let response = router(ui.state.clone())
            .oneshot(
                Request::get(&uri)
                    .header(header::COOKIE, &ui.cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{label}");
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/event-stream",
            "{label}"
        );
        let mut body = response.into_body();
        let mut seen = String::new();
        read_until(&mut body, &mut seen, "second line").await;
        assert!(seen.contains("event: log"), "{label}: {seen}");
        assert!(
            seen.contains(r#"{"text":"first line\nsecond line\n"}"#),
            "{label}: {seen}"
        );
        assert!(seen.contains("id: 23"), "{label}: the offset is the event id: {seen}");

        // Appended while streaming.
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, b"third line\nunfinished").unwrap();
        drop(file);
        read_until(&mut body, &mut seen, "third line").await;
        assert!(!seen.contains("unfinished"), "{label}: a partial line waits: {seen}");

        // The attempt ends: the rest is sent, then `end`, then the stream closes.
        ui.finish(&run, "extract", TaskState::Success).await;
        read_until(&mut body, &mut seen, "event: end").await;
        assert!(seen.contains("unfinished"), "{label}: {seen}");
        let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
            .await
            .expect("the stream closes after `end`");
        assert!(rest.is_ok(), "{label}");

        // Resuming from an offset (a reconnecting browser) sends only what follows it.
        let request = Request::get(&uri)
            .header("last-event-id", "23")
            .header(header::COOKIE, &ui.cookie)
            .body(Body::empty())
            .unwrap();
        let response = router(ui.state.clone()).oneshot(request).await.unwrap();
        let bytes = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        let resumed = String::from_utf8_lossy(&bytes);
        assert!(
            resumed.contains("third line") && !resumed.contains("first line"),
            "{label}: {resumed}"
        );
        assert!(resumed.contains("event: end"), "{label}: {resumed}");
    }
}

#[tokio::test]
async fn the_backfill_form_previews_then_starts_a_backfill_with_its_own_page() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let label = test_db.label;

        let (status, body) = ui.get("/dags/shop?tab=backfill").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(body.contains("id=\"backfill-form\""), "{label}: {body}");
        assert!(body.contains("id=\"backfill-preview\""), "{label}: preview button");
        assert!(body.contains("No backfills yet"), "{label}");
        assert!(body.contains("href=\"/dags/shop?tab=backfill\""), "{label}: tab link");

        // The shop DAG fires at 03:00 UTC: the dates 03-01 to 03-02 cover both days' runs.
        let form = "from=2026-03-01&to=2026-03-02&reprocess=none&max_active_runs=1&reverse=true";
        let (status, _, body) = ui.post("/dags/shop/backfill", &format!("{form}&intent=preview")).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(body.contains("2 new runs, 0 re-runs, 0 skipped"), "{label}: {body}");
        let newest = body.find("2026-03-02 03:00:00").unwrap();
        let oldest = body.find("2026-03-01 03:00:00").unwrap();
        assert!(newest < oldest, "{label}: newest first when reversed");
        assert!(body.contains("action-tag action-create"), "{label}");
        assert!(
            body.contains("value=\"2026-03-01\""),
            "{label}: the form keeps its values"
        );
        assert!(
            body.contains("id=\"backfill-reverse\" type=\"checkbox\" name=\"reverse\" value=\"true\" checked"),
            "{label}"
        );
        let mut connection = ui.db().acquire().await.unwrap();
        assert!(
            weir::storage::backfills::list(&mut connection, None, None)
                .await
                .unwrap()
                .is_empty(),
            "{label}: a preview creates nothing"
        );
        drop(connection);

        let (status, location, body) = ui.post("/dags/shop/backfill", &format!("{form}&intent=start")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {body}");
        let location = location.unwrap();
        assert!(
            location.starts_with("/dags/shop/backfills/") && location.contains("?notice=Started%20backfill"),
            "{label}: {location}"
        );
        let page = location.split('?').next().unwrap().to_string();
        let (status, body) = ui.get(&location).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(body.contains("0/2 runs done"), "{label}: {body}");
        assert!(body.contains("badge state-running"), "{label}: state");
        assert!(body.contains("progress-segment state-none"), "{label}: progress bar");
        assert!(
            body.contains("id=\"backfill-pause\"") && body.contains("id=\"backfill-cancel\""),
            "{label}"
        );
        assert!(body.contains("newest first"), "{label}");
        assert!(body.contains("2026-03-02 03:00:00"), "{label}: its dates");

        let (_, body) = ui.get("/dags/shop").await;
        assert!(body.contains("id=\"active-backfill\""), "{label}: {body}");
        assert!(
            body.contains(&format!("href=\"{page}\"")),
            "{label}: linked from the DAG page"
        );
        let (_, body) = ui.get("/dags/shop?tab=backfill").await;
        assert!(body.contains(&format!("href=\"{page}\"")), "{label}: listed on the tab");

        let (status, _, body) = ui.post("/dags/shop/backfill", &format!("{form}&intent=start")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {body}");
        assert!(body.contains("already has an active backfill"), "{label}: {body}");
        assert!(body.contains("Nothing was created"), "{label}: {body}");

        let (status, location, _) = ui.post(&format!("{page}/state"), "to=paused").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert!(location.unwrap().contains("notice=Paused%20backfill"), "{label}");
        let (_, body) = ui.get(&page).await;
        assert!(
            body.contains("badge state-paused") && body.contains("id=\"backfill-resume\""),
            "{label}: {body}"
        );
        assert!(!body.contains("id=\"backfill-pause\""), "{label}");
        let (status, location, _) = ui.post(&format!("{page}/state"), "to=running").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert!(location.unwrap().contains("notice=Resumed%20backfill"), "{label}");
        let (status, location, _) = ui.post(&format!("{page}/state"), "to=cancelled").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert!(location.unwrap().contains("notice=Cancelled%20backfill"), "{label}");
        let (_, body) = ui.get(&page).await;
        assert!(body.contains("badge state-cancelled"), "{label}: {body}");
        assert!(
            !body.contains("id=\"backfill-cancel\"") && !body.contains("id=\"backfill-pause\""),
            "{label}"
        );
        let (_, body) = ui.get("/dags/shop").await;
        assert!(!body.contains("id=\"active-backfill\""), "{label}: no longer active");

        let (status, _, body) = ui.post(&format!("{page}/state"), "to=paused").await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {body}");
        assert!(
            body.contains("is cancelled: it cannot become paused"),
            "{label}: {body}"
        );
        let (status, _, body) = ui.post(&format!("{page}/state"), "to=sideways").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        assert!(body.contains("not `sideways`"), "{label}: {body}");
    }
}

#[tokio::test]
async fn bad_backfill_input_gets_readable_messages_not_500s() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let label = test_db.label;
        let (status, _, body) = ui
            .post(
                "/dags/shop/backfill",
                "from=&to=soon&reprocess=sometimes&max_active_runs=lots&conf=%5B1%5D&intent=preview",
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        for problem in [
            "From: give a logical date",
            "To: `soon` is not a date or time",
            "unknown reprocess behavior `sometimes`",
            "Max active runs must be a whole number of at least 1, got `lots`",
            "Conf must be a JSON object",
        ] {
            assert!(body.contains(problem), "{label}: `{problem}` in {body}");
        }
        assert!(body.contains("value=\"soon\""), "{label}: typed values are kept");

        let cases = [
            ("from=2026-03-05&to=2026-03-01&intent=preview", "the range is empty"),
            (
                "from=2025-01-01&to=2025-01-02&intent=start",
                "has no logical dates between",
            ),
            (
                "from=2026-03-01&to=2026-03-03&max_active_runs=0&intent=start",
                "max_active_runs must be at least 1",
            ),
            (
                "from=2026-03-01&to=2026-03-03&conf=%7B%22rows%22%3A0%7D&intent=preview",
                "param `rows` is 0",
            ),
            (
                "from=2026-03-01&to=2026-03-03&conf=%7Bnope&intent=preview",
                "Conf is not valid JSON",
            ),
            (
                "from=2026-03-01&to=2026-03-03&intent=explode",
                "unknown action `explode`",
            ),
            (
                "from=0001-01-01&to=2026-03-03&intent=preview",
                "From: 0001-01-01T00:00:00Z is outside the dates weir accepts: use a date from 1000-01-01 to 9999-12-31",
            ),
            (
                "from=1000-01-01&to=4000-12-31&intent=preview",
                "holds more than 10000 logical dates",
            ),
            (
                "from=1000-01-01&to=4000-12-31&intent=start",
                "narrow the range, or split it",
            ),
        ];
        for (form, needle) in cases {
            let (status, _, body) = ui.post("/dags/shop/backfill", form).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{label} {form}: {body}");
            assert!(body.contains(needle), "{label} {form}: {body}");
            assert!(body.contains("id=\"backfill-errors\""), "{label} {form}");
        }
        for (uri, expected, text) in [
            ("/dags/shop/backfills/999", StatusCode::NOT_FOUND, "has no backfill 999"),
            (
                "/dags/shop/backfills/abc",
                StatusCode::BAD_REQUEST,
                "is not a backfill id",
            ),
            (
                "/dags/nope/backfills/1",
                StatusCode::NOT_FOUND,
                "There is no DAG `nope`",
            ),
        ] {
            let (status, body) = ui.get(uri).await;
            assert_eq!(status, expected, "{label}: {uri}: {body}");
            assert!(body.contains(text), "{label}: {uri}: {body}");
        }
        let (status, _, body) = ui.post("/dags/shop/backfills/999/state", "to=paused").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}: {body}");
        let (status, _, body) = ui.post("/dags/nope/backfill", "from=2026-03-01").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}: {body}");
    }
}

/// An `application/x-www-form-urlencoded` body.
fn form(fields: &[(&str, &str)]) -> String {
    let encode = |value: &str| {
        value
            .bytes()
            .map(|byte| {
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                    char::from(byte).to_string()
                } else {
                    format!("%{byte:02X}")
                }
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

const CONFIG_PASSWORD: &str = "cfg-Pw-5521";
const CONFIG_CONNECTIONS: &str = "\n[connections.warehouse]\nurl = \"postgres://cfg:cfg-Pw-5521@cfg-host:5432/dw\"\ndescription = \"The warehouse\"\n";

#[tokio::test]
async fn the_variables_and_connections_pages_show_every_entry_and_no_secret() {
    for test_db in support::databases().await {
        let ui = Ui::with_config(&test_db, CONFIG_CONNECTIONS).await;
        let label = test_db.label;
        let mut connection = ui.db().begin().await.unwrap();
        for (key, value, description) in [
            ("region", "kr-central", Some("Where the shop sells")),
            ("db_password", "hunter2-Var-Secret", None),
        ] {
            let variable = weir::storage::variables::Variable {
                key: key.to_string(),
                value: value.to_string(),
                description: description.map(str::to_string),
            };
            weir::storage::variables::set(&mut connection, &variable, &ui.state.secrets)
                .await
                .unwrap();
        }
        let mut stored = weir::domain::connection::Connection::from_url(
            "warehouse",
            "postgres://loader:db-Pw-8812@db-host:5433/dw?sslmode=require&api_token=tok-4410",
        )
        .unwrap();
        stored.description = Some("Shadowed by the config".to_string());
        weir::storage::connections::insert(&mut connection, &stored, &ui.state.secrets)
            .await
            .unwrap();
        connection.commit().await.unwrap();

        let (status, body) = ui.get("/variables").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        for expected in [
            "<td class=\"mono\">region</td>",
            "kr-central",
            "Where the shop sells",
            "<td class=\"mono\">db_password</td>",
            "<td class=\"mono pre-wrap\">***</td>",
            "aria-label=\"Delete variable region\"",
            "action=\"/variables\"",
            "href=\"/variables\"",
        ] {
            assert!(body.contains(expected), "{label}: `{expected}` in {body}");
        }
        assert!(!body.contains("hunter2-Var-Secret"), "{label}: secret variable shown");

        let (status, body) = ui.get("/connections").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        for expected in [
            "<td class=\"mono\">warehouse</td>",
            "cfg-host",
            "The warehouse",
            "db-host",
            "5433",
            "loader",
            "Shadowed by the config",
            "shadowed by [connections.warehouse] in the config file",
            "<td class=\"mono\">***</td>",
            "&quot;api_token&quot;:&quot;***&quot;",
            "aria-label=\"Delete connection warehouse\"",
            "aria-label=\"Test connection warehouse from config\"",
            "action=\"/connections\"",
            "href=\"/connections\"",
        ] {
            assert!(body.contains(expected), "{label}: `{expected}` in {body}");
        }
        for secret in [CONFIG_PASSWORD, "db-Pw-8812", "tok-4410"] {
            assert!(!body.contains(secret), "{label}: {secret} shown");
        }
    }
}

#[tokio::test]
async fn variables_are_set_and_deleted_through_the_forms() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let label = test_db.label;
        let (_, body) = ui.get("/variables").await;
        assert!(body.contains("No variables yet"), "{label}: {body}");

        let set = form(&[("key", "region"), ("value", "us-east"), ("description", "Sales region")]);
        let (status, location, _) = ui.post("/variables", &set).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let location = location.unwrap();
        assert!(
            location.starts_with("/variables?notice=Set%20variable"),
            "{label}: {location}"
        );
        let (status, body) = ui.get(&location).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(body.contains("Set variable `region`."), "{label}: notice");
        assert!(
            body.contains("us-east") && body.contains("Sales region"),
            "{label}: {body}"
        );

        let replace = form(&[("key", "region"), ("value", "eu-west"), ("description", "")]);
        let (status, _, _) = ui.post("/variables", &replace).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let mut connection = ui.db().acquire().await.unwrap();
        let variable = weir::storage::variables::get(&mut connection, "region", &ui.state.secrets)
            .await
            .unwrap()
            .unwrap();
        drop(connection);
        assert_eq!(variable.value, "eu-west", "{label}");
        assert_eq!(
            variable.description.as_deref(),
            Some("Sales region"),
            "{label}: an empty description keeps the stored one"
        );

        let secret = form(&[("key", "api_token"), ("value", "tok-Secret-6620")]);
        let (status, location, _) = ui.post("/variables", &secret).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let location = location.unwrap();
        assert!(!location.contains("tok-Secret-6620"), "{label}: {location}");
        let (_, body) = ui.get(&location).await;
        assert!(body.contains("<td class=\"mono\">api_token</td>"), "{label}: {body}");
        assert!(!body.contains("tok-Secret-6620"), "{label}: secret shown");

        let (status, _, body) = ui
            .post("/variables", &form(&[("key", "bad/name"), ("value", "kept-value")]))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        assert!(
            body.contains("`bad/name` is not a valid variable key"),
            "{label}: {body}"
        );
        assert!(body.contains("id=\"variable-errors\""), "{label}: {body}");
        assert!(body.contains("kept-value"), "{label}: the typed value is kept");
        let (status, _, body) = ui
            .post(
                "/variables",
                &form(&[("key", "bad secret"), ("value", "s3cret-Typed-4471")]),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        assert!(!body.contains("s3cret-Typed-4471"), "{label}: a secret is not echoed");
        assert!(body.contains("type it again"), "{label}: {body}");

        let (status, location, _) = ui
            .post(
                "/variables/delete",
                &form(&[("key", "region"), ("next", "//evil.example")]),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(
            location.as_deref(),
            Some("/variables?notice=Deleted%20variable%20%60region%60."),
            "{label}: no open redirect"
        );
        let mut connection = ui.db().acquire().await.unwrap();
        assert!(
            weir::storage::variables::get(&mut connection, "region", &ui.state.secrets)
                .await
                .unwrap()
                .is_none(),
            "{label}"
        );
        drop(connection);
        let (status, _, body) = ui.post("/variables/delete", "key=region").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{label}: {body}");
        assert!(
            body.contains("There is no variable `region` in the database."),
            "{label}: {body}"
        );
    }
}

#[tokio::test]
async fn a_connection_added_through_the_form_is_stored_encrypted_and_its_password_never_shown() {
    const PASSWORD: &str = "Form-Pw-90210";
    let url = format!("postgres://loader:{PASSWORD}@127.0.0.1:1/dw?sslmode=disable");
    for test_db in support::databases().await {
        let ui = Ui::with_config(&test_db, CONFIG_CONNECTIONS).await;
        let label = test_db.label;
        let mut responses: Vec<String> = Vec::new();

        let add = form(&[("conn_id", "shop_db"), ("url", &url), ("description", "Orders")]);
        let (status, location, body) = ui.post("/connections", &add).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {body}");
        let location = location.unwrap();
        assert!(
            location.starts_with("/connections?notice=Added%20connection"),
            "{label}: {location}"
        );
        responses.push(location.clone());
        let (status, body) = ui.get(&location).await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(
            body.contains("Added connection `shop_db`: postgres://loader:***@127.0.0.1:1/dw?sslmode=disable."),
            "{label}: {body}"
        );
        assert!(body.contains("<td class=\"mono\">shop_db</td>"), "{label}: {body}");
        responses.push(body);

        let mut connection = ui.db().acquire().await.unwrap();
        assert!(
            !weir::storage::connections::has_plain_passwords(&mut connection)
                .await
                .unwrap(),
            "{label}: the password is stored encrypted"
        );
        let stored = weir::storage::connections::get_with_password(&mut connection, "shop_db", &ui.state.secrets)
            .await
            .unwrap()
            .unwrap();
        drop(connection);
        assert_eq!(stored.password.as_deref(), Some(PASSWORD), "{label}");
        assert_eq!(stored.description.as_deref(), Some("Orders"), "{label}");

        // A database connection named like the config's one is stored, but the config's wins.
        let shadowed = form(&[("conn_id", "warehouse"), ("url", &url)]);
        let (status, location, _) = ui.post("/connections", &shadowed).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        let location = location.unwrap();
        let (_, body) = ui.get(&location).await;
        assert!(
            body.contains("[connections.warehouse] in the config file defines it too and takes precedence"),
            "{label}: {body}"
        );
        responses.push(location);
        responses.push(body);

        let (status, _, body) = ui.post("/connections", &add).await;
        assert_eq!(status, StatusCode::CONFLICT, "{label}: {body}");
        assert!(
            body.contains("Connection `shop_db` is already in the database"),
            "{label}: {body}"
        );
        responses.push(body);
        let (status, _, body) = ui
            .post("/connections", &form(&[("conn_id", "bad id"), ("url", &url)]))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        assert!(
            body.contains("Name: connection id `bad id` contains ` `"),
            "{label}: {body}"
        );
        assert!(body.contains("may hold a password: type it again"), "{label}: {body}");
        responses.push(body);
        let unreadable = format!("postgres://loader:{PASSWORD}@host:port/dw");
        let (status, _, body) = ui
            .post("/connections", &form(&[("conn_id", "x"), ("url", &unreadable)]))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label}: {body}");
        assert!(body.contains("URL: the port is not a number"), "{label}: {body}");
        responses.push(body);

        let (status, _, body) = ui.post("/connections/test", "name=shop_db&source=database").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(
            body.contains("Test failed: shop_db") && body.contains("postgres://loader:***@127.0.0.1:1/dw"),
            "{label}: {body}"
        );
        responses.push(body);

        for response in &responses {
            for secret in [PASSWORD, CONFIG_PASSWORD] {
                assert!(!response.contains(secret), "{label}: {secret} in {response}");
            }
        }

        let (status, _, body) = ui
            .post(
                "/connections",
                &form(&[("conn_id", "scratch"), ("url", "sqlite://scratch.db?mode=rwc")]),
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}: {body}");
        let (status, _, body) = ui.post("/connections/test", "name=scratch&source=database").await;
        assert_eq!(status, StatusCode::OK, "{label}: {body}");
        assert!(
            body.contains("Reachable: scratch") && body.contains("connected and ran SELECT 1"),
            "{label}: {body}"
        );

        let (status, location, _) = ui.post("/connections/delete", "name=shop_db").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert_eq!(
            location.as_deref(),
            Some("/connections?notice=Deleted%20connection%20%60shop_db%60%20from%20the%20database."),
            "{label}"
        );
        let (_, body) = ui.get("/connections").await;
        assert!(!body.contains("<td class=\"mono\">shop_db</td>"), "{label}: deleted");
        let (status, location, _) = ui.post("/connections/delete", "name=warehouse").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{label}");
        assert!(
            location.unwrap().contains("still%20defines%20it"),
            "{label}: the config's warehouse remains"
        );
        for (path, body, expected, text) in [
            (
                "/connections/delete",
                "name=warehouse",
                StatusCode::NOT_FOUND,
                "it comes from [connections.warehouse] in the config file, change it there",
            ),
            (
                "/connections/test",
                "name=shop_db&source=database",
                StatusCode::NOT_FOUND,
                "There is no connection `shop_db` in the metadata database.",
            ),
            (
                "/connections/test",
                "name=warehouse&source=moon",
                StatusCode::BAD_REQUEST,
                "unknown connection source `moon`",
            ),
        ] {
            let (status, _, page) = ui.post(path, body).await;
            assert_eq!(status, expected, "{label}: {path} {body}: {page}");
            assert!(page.contains(text), "{label}: {path} {body}: {page}");
            assert!(page.contains("<!doctype html>"), "{label}: a page");
        }
    }
}

#[tokio::test]
async fn a_bad_connection_url_gets_a_readable_400_page() {
    for test_db in support::databases().await {
        let ui = Ui::new(&test_db).await;
        let label = test_db.label;
        for (url, problem) in [
            ("db.internal", "URL: the URL has no scheme"),
            ("", "URL: give the connection&#x27;s URL"),
            ("sqlite://", "URL: a SQLite URL needs a file"),
        ] {
            let (status, _, body) = ui
                .post("/connections", &form(&[("conn_id", "broken"), ("url", url)]))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{label} {url}: {body}");
            assert!(body.contains(problem), "{label} {url}: `{problem}` in {body}");
            assert!(body.contains("id=\"connection-errors\""), "{label} {url}");
            assert!(body.contains("value=\"broken\""), "{label} {url}: the name is kept");
        }
        let (_, _, body) = ui
            .post("/connections", &form(&[("conn_id", "broken"), ("url", "db.internal")]))
            .await;
        assert!(
            body.contains("value=\"db.internal\""),
            "{label}: a URL without secrets is kept"
        );
    }
}
