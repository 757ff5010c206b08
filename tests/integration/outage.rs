//! A metadata database that goes away under a running `weir serve`: PostgreSQL behind a TCP proxy
//! that cuts every connection for 15 s, and a SQLite file whose write lock another connection
//! holds for 15 s. The daemon stays up, `/monitor/health` shows the outage and then the recovery,
//! the run in flight finishes with each attempt recorded once. A schema that another weir moved
//! ahead is fatal: the daemon exits with a non-zero status.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use weir::domain::ids::{DagId, TaskId};
use weir::domain::state::{RunState, TaskState};
use weir::storage::runs::{self, DagRun, RunFilter};
use weir::storage::{Db, task_instances};

use crate::support;

/// How long the database stays away, at least: the outage that made the daemon exit before.
const OUTAGE: Duration = Duration::from_secs(15);

/// `across` sleeps through the first seconds of the outage: it ends while the database is away,
/// so its end must be kept and recorded once the database is back.
const CHAIN: &str = r#"
dag_id: chain
tasks:
  before:
    command: echo before
  across:
    command: sleep 3
    depends_on: [before]
  after:
    command: echo after
    depends_on: [across]
"#;

/// A fresh, migrated database of one backend (`sqlite` or `postgres`), when it is available.
async fn database(label: &str) -> Option<support::TestDb> {
    support::databases()
        .await
        .into_iter()
        .find(|test_db| test_db.label == label)
}

/// A project folder whose `weir serve` listens on a known port.
struct Project {
    folder: tempfile::TempDir,
    port: u16,
}

impl Project {
    fn new(database_url: &str) -> Project {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(folder.path().join("dags")).unwrap();
        std::fs::write(folder.path().join("dags/chain.yaml"), CHAIN).unwrap();
        let port = support::free_port();
        let config = format!(
            "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\ntask_kill_grace = \"500ms\"\n\n[database]\nurl = \"{database_url}\"\n\n[webserver]\nbind = \"127.0.0.1:{port}\"\n"
        );
        std::fs::write(folder.path().join("config.toml"), config).unwrap();
        Project { folder, port }
    }

    fn log(&self) -> PathBuf {
        self.folder.path().join("serve.log")
    }

    fn weir(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("--config")
            .arg(self.folder.path().join("config.toml"))
            .args(args)
            .env_remove("WEIR_CONFIG")
            .output()
            .unwrap()
    }

    fn serve(&self) -> support::ServerProcess {
        let daemon = support::ServerProcess::start(&self.folder.path().join("config.toml"), "serve", &self.log());
        support::wait_for_port(self.port, &self.log());
        daemon
    }

    fn trigger(&self) {
        let trigger = self.weir(&["dags", "trigger", "chain"]);
        assert!(trigger.status.success(), "{}", String::from_utf8_lossy(&trigger.stderr));
    }

    fn serve_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

/// One HTTP/1.1 request to the server: its status and body, or `None` when it did not answer.
async fn http(port: u16, method: &str, path: &str, bearer: Option<&str>, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let authorization = bearer.map_or(String::new(), |token| format!("Authorization: Bearer {token}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}

/// `/api/v2/monitor/health` as JSON, or `None` when the server did not answer.
async fn health(port: u16) -> Option<serde_json::Value> {
    let (_, body) = http(port, "GET", "/api/v2/monitor/health", None, "").await?;
    serde_json::from_str(&body).ok()
}

/// A token for the first Admin, whose generated password the first start kept.
async fn admin_token(project: &Project) -> String {
    let password = std::fs::read_to_string(project.folder.path().join("state/admin_password.txt")).unwrap();
    let body = serde_json::json!({ "username": "admin", "password": password.trim() }).to_string();
    let (status, answer) = http(project.port, "POST", "/auth/token", None, &body).await.unwrap();
    assert_eq!(status, 201, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

/// During the outage an API request is answered 503 with a message that says so.
async fn assert_api_unavailable(project: &Project, token: &str) {
    let (status, body) = http(project.port, "GET", "/api/v2/dags", Some(token), "")
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    let detail = serde_json::from_str::<serde_json::Value>(&body).unwrap()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.starts_with("the metadata database is unavailable") && detail.ends_with("retry shortly"),
        "{detail}"
    );
}

/// During the outage a UI page is weir's error page, 503 with `Retry-After`, like the API's answer.
async fn assert_ui_unavailable(project: &Project, token: &str) {
    let port = project.port;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nCookie: {}\r\n\r\n",
        support::session_cookie(token)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 503"), "{response}");
    assert!(head.to_ascii_lowercase().contains("\r\nretry-after: 5"), "{head}");
    assert!(body.contains("<!doctype html>"), "a page, not JSON: {body}");
    assert!(body.contains("the metadata database is unavailable"), "{body}");
}

fn status_of<'a>(health: &'a serde_json::Value, component: &str) -> &'a str {
    health[component]["status"].as_str().unwrap_or("missing")
}

/// Polls the health endpoint until `wanted` holds for its answer.
async fn wait_for_health(port: u16, what: &str, wanted: impl Fn(&serde_json::Value) -> bool) {
    support::wait_until_async(what, Duration::from_secs(60), || async {
        health(port).await.is_some_and(|answer| wanted(&answer))
    })
    .await;
}

async fn chain_run(db: &Db) -> Option<DagRun> {
    let mut connection = db.acquire().await.unwrap();
    let filter = RunFilter {
        dag_id: Some(DagId::parse("chain").unwrap()),
        ..RunFilter::default()
    };
    runs::list(&mut connection, &filter).await.unwrap().into_iter().next()
}

async fn task_state(db: &Db, task: &str) -> Option<TaskState> {
    let run = chain_run(db).await?;
    let mut connection = db.acquire().await.unwrap();
    task_instances::get(&mut connection, run.pk, &TaskId::parse(task).unwrap())
        .await
        .unwrap()
        .map(|instance| instance.state)
}

fn assert_alive(daemon: &mut support::ServerProcess, project: &Project, when: &str) {
    let exited = daemon.0.try_wait().unwrap();
    assert!(
        exited.is_none(),
        "weir serve exited ({exited:?}) {when}:\n{}",
        project.serve_log()
    );
}

/// The recorded attempts of `task` in run `run_pk`: try number and state.
async fn recorded_tries(connection: &mut sqlx::AnyConnection, run_pk: i64, task: &str) -> Vec<(u32, TaskState)> {
    task_instances::attempts(connection, run_pk, &TaskId::parse(task).unwrap())
        .await
        .unwrap()
        .iter()
        .map(|attempt| (attempt.try_number, attempt.state))
        .collect()
}

/// The run in flight when the outage began finished, and each task ran exactly once.
async fn assert_run_finished_with_one_attempt_each(db: &Db, project: &Project, label: &str) {
    support::wait_until_async(
        "the run in flight finishes after the outage",
        Duration::from_secs(90),
        || async { chain_run(db).await.is_some_and(|run| run.state.is_finished()) },
    )
    .await;
    let run = chain_run(db).await.unwrap();
    assert_eq!(
        run.state,
        RunState::Success,
        "{label}: the run ends successful:\n{}",
        project.serve_log()
    );
    let mut connection = db.acquire().await.unwrap();
    for task in ["before", "across", "after"] {
        let task_id = TaskId::parse(task).unwrap();
        let instance = task_instances::get(&mut connection, run.pk, &task_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (instance.state, instance.try_number),
            (TaskState::Success, 1),
            "{label}: {task} succeeded on its first try"
        );
        assert_eq!(
            recorded_tries(&mut connection, run.pk, task).await,
            [(1, TaskState::Success)],
            "{label}: {task} has one attempt, recorded once"
        );
    }
}

/// One line when the database went away and one when it came back, and no line per try.
async fn assert_outage_logged_once(project: &Project, label: &str) {
    let count = |log: &str, line: &str| log.matches(line).count();
    // A loop whose try was under way as the database came back may announce a second, short
    // outage: every announced one ends.
    support::wait_until(
        "every outage announced has its end logged",
        Duration::from_secs(30),
        || {
            let log = project.serve_log();
            count(&log, "metadata database reachable again after") >= count(&log, "metadata database unreachable")
        },
    )
    .await;
    let log = project.serve_log();
    let announced = count(&log, "metadata database unreachable");
    // Three loops tried about six times each during the outage: a line per try would be many.
    assert!(
        (1..=2).contains(&announced),
        "{label}: the outage is announced once, not at every try:\n{log}"
    );
    assert!(
        !log.contains("scheduler step failed") && !log.contains("alert delivery pass failed"),
        "{label}: a try during the outage is not logged as a failure:\n{log}"
    );
    assert!(!log.contains("scheduler stopped"), "{label}:\n{log}");
}

/// A TCP proxy in front of a server: `cut` closes every live connection and closes each new one
/// at once until `restore`.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    /// Cancelled by `cut`: every connection forwarded until then ends.
    connections: std::sync::Mutex<CancellationToken>,
    stop: CancellationToken,
}

impl Proxy {
    async fn start(upstream: String) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Arc::new(Proxy {
            port: listener.local_addr().unwrap().port(),
            cut: Arc::default(),
            connections: std::sync::Mutex::new(CancellationToken::new()),
            stop: CancellationToken::new(),
        });
        let accepting = Arc::clone(&proxy);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = accepting.stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                if accepting.cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let ended = accepting.connections.lock().unwrap().child_token();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = ended.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        proxy
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut connections = self.connections.lock().unwrap();
        connections.cancel();
        *connections = CancellationToken::new();
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.connections.lock().unwrap().cancel();
    }
}

/// `url` with its host and port replaced by the proxy's.
fn through_proxy(url: &str, port: u16) -> (String, String) {
    let authority_start = url.find("://").unwrap() + 3;
    let host_start = url[authority_start..]
        .find('@')
        .map_or(authority_start, |at| authority_start + at + 1);
    let host_end = host_start + url[host_start..].find('/').unwrap();
    let upstream = url[host_start..host_end].to_string();
    let proxied = format!("{}127.0.0.1:{port}{}", &url[..host_start], &url[host_end..]);
    (proxied, upstream)
}

/// Waits until `across` runs, so the outage begins with an attempt in flight.
async fn wait_for_attempt_in_flight(db: &Db) {
    support::wait_until_async("`across` runs", Duration::from_secs(60), || async {
        task_state(db, "across").await == Some(TaskState::Running)
    })
    .await;
}

/// After the outage: health is back to healthy, the run in flight finished with one attempt per
/// task, the daemon is still up, and the log told the outage once.
async fn assert_recovered(daemon: &mut support::ServerProcess, project: &Project, db: &Db, label: &str) {
    wait_for_health(project.port, "health reports every part healthy again", |answer| {
        ["metadatabase", "scheduler", "dag_processor"]
            .iter()
            .all(|component| status_of(answer, component) == "healthy")
    })
    .await;
    assert_run_finished_with_one_attempt_each(db, project, label).await;
    assert_alive(daemon, project, "after the outage");
    assert_outage_logged_once(project, label).await;
}

/// Holds the outage for [`OUTAGE`] and at least until the health endpoint reported it, checking
/// meanwhile that the daemon stays up.
async fn hold_outage(daemon: &mut support::ServerProcess, project: &Project) {
    let began = tokio::time::Instant::now();
    wait_for_health(project.port, "health reports the metadatabase unhealthy", |answer| {
        status_of(answer, "metadatabase") == "unhealthy" && status_of(answer, "scheduler") == "unhealthy"
    })
    .await;
    assert_alive(daemon, project, "when health reported the outage");
    // The scenario: the database stays away this long (not a synchronisation).
    tokio::time::sleep_until(began + OUTAGE).await;
    assert_alive(daemon, project, "during the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_waits_out_a_cut_postgresql_connection_and_finishes_the_run_in_flight() {
    // Without PostgreSQL (outside CI, which requires it) there is nothing to cut.
    let Some(test_db) = database("postgres").await else {
        return;
    };
    let (_, upstream) = through_proxy(&test_db.url, 0);
    let proxy = Proxy::start(upstream).await;
    let (proxied_url, _) = through_proxy(&test_db.url, proxy.port);
    let project = Project::new(&proxied_url);
    let mut daemon = project.serve();
    let token = admin_token(&project).await;
    project.trigger();
    let db = &test_db.db;
    wait_for_attempt_in_flight(db).await;

    proxy.cut();
    hold_outage(&mut daemon, &project).await;
    assert_api_unavailable(&project, &token).await;
    assert_ui_unavailable(&project, &token).await;
    assert!(
        task_state(db, "after")
            .await
            .is_none_or(|state| state == TaskState::None),
        "nothing ran past `across` while its end could not be recorded"
    );
    proxy.restore();

    assert_recovered(&mut daemon, &project, db, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_waits_out_a_locked_sqlite_file_and_finishes_the_run_in_flight() {
    let test_db = database("sqlite").await.unwrap();
    let project = Project::new(&test_db.url);
    let mut daemon = project.serve();
    project.trigger();
    let db = &test_db.db;
    wait_for_attempt_in_flight(db).await;

    // Another program takes the file's write lock and keeps it: weir's writes wait out their busy
    // timeout, then fail with "database is locked".
    let mut locker = lock_sqlite(&test_db.url).await;
    hold_outage(&mut daemon, &project).await;
    sqlx::raw_sql("ROLLBACK").execute(&mut locker).await.unwrap();
    sqlx::Connection::close(locker).await.unwrap();

    assert_recovered(&mut daemon, &project, db, "sqlite").await;
}

/// A connection of another program to the SQLite file at `url`, holding its write lock.
async fn lock_sqlite(url: &str) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let mut connection = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .unwrap()
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE; UPDATE weir_meta SET value = value WHERE key = 'change_seq';")
        .execute(&mut connection)
        .await
        .unwrap();
    connection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_moved_ahead_under_a_running_daemon_stops_it_with_a_non_zero_exit_status() {
    let test_db = database("sqlite").await.unwrap();
    let project = Project::new(&test_db.url);
    let mut daemon = project.serve();
    // A newer weir migrated the database while this one runs.
    let mut connection = test_db.db.acquire().await.unwrap();
    sqlx::query("INSERT INTO weir_migrations (version, description, applied_at) VALUES (999, 'from a newer weir', 0)")
        .execute(&mut *connection)
        .await
        .unwrap();
    drop(connection);
    let mut exit = None;
    support::wait_until("weir serve exits", Duration::from_secs(60), || {
        exit = daemon.0.try_wait().unwrap();
        exit.is_some()
    })
    .await;
    let exit = exit.unwrap();
    let log = project.serve_log();
    assert_eq!(exit.code(), Some(1), "a fatal error exits with status 1:\n{log}");
    assert!(log.contains("newer than this weir"), "the reason is on stderr:\n{log}");
}

/// The scheduler records an attempt's end again when its commit's answer was lost in a cut (the
/// commit may have happened): the second recording must change nothing.
#[tokio::test]
async fn an_attempt_end_recorded_again_after_a_lost_commit_answer_changes_nothing() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut harness = crate::support::test_app::TestApp::new(
            &test_db,
            r#"
dag_id: twice
tasks:
  load: { command: 'true', outlets: [warehouse.orders] }
  flaky: { command: 'exit 3', retries: 2, retry_delay: 1h }
"#,
        )
        .await;
        let run = harness.trigger().await;
        // The executor's real events: starts recorded as they come, ends kept back.
        let mut starts = Vec::new();
        let mut ends = Vec::new();
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        while ends.len() < 2 {
            assert!(tokio::time::Instant::now() < give_up, "{label}: both attempts end");
            harness.scheduler.tick(chrono::Utc::now()).await.unwrap();
            let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), harness.events.recv()).await else {
                continue;
            };
            if event.ends_attempt() {
                ends.push(event);
            } else {
                harness.scheduler.handle_event(event.clone()).await.unwrap();
                starts.push(event);
            }
        }
        let max_tries_before = harness.instances(&run).await["flaky"].max_tries;
        harness.scheduler.handle_events(ends.clone()).await.unwrap();
        // Again, as after a commit whose answer never came; and a start recorded late.
        harness.scheduler.handle_events(ends).await.unwrap();
        harness.scheduler.handle_events(starts).await.unwrap();

        let instances = harness.instances(&run).await;
        let flaky = &instances["flaky"];
        assert_eq!(
            (flaky.state, flaky.try_number, flaky.max_tries),
            (TaskState::UpForRetry, 1, max_tries_before),
            "{label}: the failure is applied once"
        );
        assert_eq!(
            (instances["load"].state, instances["load"].try_number),
            (TaskState::Success, 1),
            "{label}"
        );
        let mut connection = harness.db.acquire().await.unwrap();
        for (task, state) in [("flaky", TaskState::Failed), ("load", TaskState::Success)] {
            assert_eq!(
                recorded_tries(&mut connection, run.pk, task).await,
                [(1, state)],
                "{label}: {task} has one attempt, ended"
            );
        }
        let filter = weir::storage::datasets::EventFilter {
            dataset: Some("warehouse.orders".to_string()),
            ..Default::default()
        };
        let events = weir::storage::datasets::count_events(&mut connection, &filter)
            .await
            .unwrap();
        assert_eq!(events, 1, "{label}: the success updated its outlet once");
    }
}
