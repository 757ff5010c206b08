//! The shared harness: a fresh database per test (SQLite always, PostgreSQL when reachable and
//! required under `CI=true`), DAGs from YAML, UI form posts as weir's own pages send them, and
//! tracing that stays silent unless `TEST_LOG` is set.

use std::io::Write;
use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};
use tokio::sync::OnceCell;
use weir::domain::dag::Dag;
use weir::domain::validate::ValidationContext;
use weir::storage::{Db, redact};

pub mod cli;
pub mod test_app;

/// The origin a test's UI form posts come from: the default `[webserver] base_url`.
pub const UI_ORIGIN: &str = "http://127.0.0.1:8080";
/// The CSRF token of the test browser: any 64 hex digits, as long as cookie and field agree.
pub const UI_CSRF_TOKEN: &str = "5eed0000000000000000000000000000000000000000000000000000000000a1";

/// A form post as a page of weir sends it from a browser: from weir's own origin, with the
/// `weir_csrf` cookie and the same token in the `csrf_token` field (appended to `form`, an
/// `application/x-www-form-urlencoded` body). The CSRF layer refuses a post without them.
pub fn ui_form_post(uri: &str, form: &str) -> axum::http::Request<axum::body::Body> {
    use weir::api::ui::csrf::{COOKIE_NAME, FIELD_NAME};
    let separator = if form.is_empty() { "" } else { "&" };
    axum::http::Request::post(uri)
        .header(axum::http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(axum::http::header::ORIGIN, UI_ORIGIN)
        .header(axum::http::header::COOKIE, format!("{COOKIE_NAME}={UI_CSRF_TOKEN}"))
        .body(axum::body::Body::from(format!(
            "{form}{separator}{FIELD_NAME}={UI_CSRF_TOKEN}"
        )))
        .expect("a form post with valid headers")
}

/// Everything a UI form can change, as text: DAGs and their pause flag, runs, task instances,
/// variables, connections and backfills.
pub async fn ui_fingerprint(db: &Db) -> String {
    let queries = [
        "SELECT dag_id, is_paused FROM dag ORDER BY dag_id",
        "SELECT run_id, state FROM dag_run ORDER BY id",
        "SELECT run_id || '/' || task_id, state, try_number FROM task_instance ORDER BY run_id, task_id",
        "SELECT key, val FROM variable ORDER BY key",
        "SELECT conn_id, conn_type FROM connection ORDER BY conn_id",
        "SELECT dag_id, state FROM backfill ORDER BY id",
    ];
    let mut connection = db.acquire().await.unwrap();
    let mut text = String::new();
    for query in queries {
        for row in sqlx::query(query).fetch_all(&mut *connection).await.unwrap() {
            let first: String = row.try_get(0).unwrap();
            let second: String = row
                .try_get::<String, _>(1)
                .unwrap_or_else(|_| row.try_get::<i64, _>(1).unwrap().to_string());
            let third: i64 = if row.len() > 2 { row.try_get(2).unwrap() } else { 0 };
            text.push_str(&format!("{first}|{second}|{third}\n"));
        }
        text.push_str("--\n");
    }
    text
}

/// The secrets key the API harnesses encrypt connection passwords with.
pub const TEST_SECRETS_KEY: &str = "weir test secrets key";
/// The secret the API harnesses sign tokens and sessions with.
pub const TEST_JWT_SECRET: &str = "weir test token secret";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Every database a test creates is named `weir_test_<pid>_<counter>_<nanos>`.
const DATABASE_PREFIX: &str = "weir_test_";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One fresh database and what keeps it alive: dropping it deletes the SQLite folder or drops
/// the PostgreSQL database.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    /// `sqlite` or `postgres`, for assertion messages.
    pub label: &'static str,
    _guard: Guard,
}

/// What removes a test database when dropped.
#[allow(dead_code, reason = "the values are held only for their Drop")]
enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres(PostgresDatabase),
}

/// A database created for one test on the shared server, dropped (with `FORCE`, which ends the
/// pool's connections) when this goes out of scope.
struct PostgresDatabase {
    server_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be the current-thread one we are on: a
        // thread with its own small runtime does the work, and we wait for it so nothing is left
        // behind when the test binary exits. Failing here only leaves a database for the next
        // run's sweep, so errors are reported, never raised.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime can always be built");
            runtime.block_on(async {
                if let Err(error) = drop_database(&server_url, &name).await {
                    notice(&format!("note: could not drop test database {name}: {error}"));
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Fresh, migrated databases: SQLite, and PostgreSQL when it is reachable.
pub async fn databases() -> Vec<TestDb> {
    let test_dbs = unmigrated_databases().await;
    for test_db in &test_dbs {
        test_db
            .db
            .migrate()
            .await
            .unwrap_or_else(|error| panic!("{}: migrating a fresh database: {error}", test_db.label));
    }
    test_dbs
}

/// Fresh, empty databases (no schema at all): SQLite, and PostgreSQL when it is reachable.
pub async fn unmigrated_databases() -> Vec<TestDb> {
    init_tracing();
    let mut test_dbs = vec![sqlite().await];
    if let Some(server_url) = postgres_url().await {
        test_dbs.push(postgres(server_url).await);
    }
    test_dbs
}

/// The PostgreSQL server's URL (`WEIR_TEST_POSTGRES_URL`, or the local default) once it is known
/// to accept connections; `None` with a notice when it does not, unless `CI=true`, which makes an
/// unreachable server a failure. Tests that need a database of their own should use
/// [`databases`]; this is the server, shared by every test.
pub async fn postgres_url() -> Option<String> {
    static REACHABLE: OnceCell<Option<String>> = OnceCell::const_new();
    REACHABLE.get_or_init(probe_postgres).await.clone()
}

/// A validated DAG from YAML, read as if from `dags/test.yaml`; panics with every problem found.
pub fn dag(yaml: &str) -> Dag {
    Dag::from_yaml(Path::new("dags/test.yaml"), yaml, &ValidationContext::default())
        .unwrap_or_else(|error| panic!("the test DAG is invalid:\n{error}"))
}

/// Writes to the real stderr: the test harness captures `eprintln!`, and a notice that only shows
/// when a test fails would be missed.
fn notice(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

async fn sqlite() -> TestDb {
    let folder = tempfile::tempdir().expect("a temporary folder can be created");
    let url = format!("sqlite://{}", folder.path().join("weir.db").display());
    let db = Db::connect(&url)
        .await
        .unwrap_or_else(|error| panic!("sqlite: opening {url}: {error}"));
    TestDb {
        db,
        url,
        label: "sqlite",
        _guard: Guard::Sqlite(folder),
    }
}

async fn postgres(server_url: String) -> TestDb {
    let name = unique_database_name();
    let mut admin = admin_connection(&server_url)
        .await
        .unwrap_or_else(|error| panic!("postgres: connecting to {}: {error}", redact(&server_url)));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("postgres: creating database {name}: {error}"));
    let _ = admin.close().await;
    // From here on the guard drops the database, even if connecting to it fails.
    let guard = PostgresDatabase {
        server_url: server_url.clone(),
        name,
    };
    let url = with_database(&server_url, &guard.name);
    let db = Db::connect(&url)
        .await
        .unwrap_or_else(|error| panic!("postgres: opening {}: {error}", redact(&url)));
    TestDb {
        db,
        url,
        label: "postgres",
        _guard: Guard::Postgres(guard),
    }
}

async fn probe_postgres() -> Option<String> {
    let server_url = std::env::var("WEIR_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    match admin_connection(&server_url).await {
        Ok(mut admin) => {
            sweep_leftovers(&mut admin).await;
            let _ = admin.close().await;
            Some(server_url)
        }
        Err(error) => {
            let reason = format!("cannot connect to {}: {error}", redact(&server_url));
            if std::env::var("CI").is_ok_and(|value| value == "true") {
                panic!("PostgreSQL is required under CI=true: {reason} (start it, or set WEIR_TEST_POSTGRES_URL)");
            }
            notice(&format!("note: PostgreSQL tests skipped, only SQLite runs: {reason}"));
            None
        }
    }
}

async fn admin_connection(server_url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(server_url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

async fn drop_database(server_url: &str, name: &str) -> Result<(), String> {
    let mut admin = admin_connection(server_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .map_err(|error| error.to_string())?;
    let _ = admin.close().await;
    Ok(())
}

/// Drops databases left by test processes that died before their guards ran (killed, aborted).
/// A database whose process is still alive belongs to a concurrent test run and is kept.
async fn sweep_leftovers(admin: &mut PgConnection) {
    let names: Vec<String> = match sqlx::query("SELECT datname FROM pg_database")
        .fetch_all(&mut *admin)
        .await
    {
        Ok(rows) => rows.iter().filter_map(|row| row.try_get::<String, _>(0).ok()).collect(),
        Err(_) => return,
    };
    for name in names {
        let Some(pid) = name
            .strip_prefix(DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut *admin)
        .await;
    }
}

fn unique_database_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "{DATABASE_PREFIX}{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The server URL with its database path replaced by `name`, query string kept.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |position| position + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |position| authority_start + position);
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Polls `condition` until it holds, failing the test with `what` after `deadline`. For waiting on
/// another process or thread; never a fixed sleep standing in for synchronisation.
pub async fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + deadline;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`wait_until`] for conditions that query the database.
pub async fn wait_until_async<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Processes of process group `group` that are still running (zombies left for init to reap do
/// not count: this machine's init does not reap them).
pub fn live_processes_in_group(group: i32) -> Vec<i32> {
    let mut live = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return live;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, pgrp, ...
        let Some(after_name) = stat.rfind(')').map(|end| &stat[end + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse::<i32>().ok() == Some(group) {
            live.push(pid);
        }
    }
    live
}

// ---------------------------------------------------------------------------------------------
// Scratch databases for the `sql` and `transfer` task types: empty databases (no weir schema) on
// each backend, reached by URL. PostgreSQL databases reuse the metadata helpers above; MariaDB
// mirrors them: `WEIR_TEST_MYSQL_URL` (default root@127.0.0.1:3306), skipped with a notice when
// unreachable, a failure under `CI=true`.

const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// An empty database for one test, dropped (or its folder deleted) when this goes out of scope.
pub struct ScratchDb {
    pub url: String,
    /// `sqlite`, `postgres` or `mariadb`, for assertion messages.
    pub label: &'static str,
    _guard: ScratchGuard,
}

#[allow(dead_code, reason = "the values are held only for their Drop")]
enum ScratchGuard {
    Sqlite(tempfile::TempDir),
    Postgres(PostgresDatabase),
    MySql(MySqlDatabase),
}

/// A fresh SQLite file (created on first connection) in its own temporary folder.
pub fn scratch_sqlite() -> ScratchDb {
    init_tracing();
    let folder = tempfile::tempdir().expect("a temporary folder can be created");
    ScratchDb {
        url: format!("sqlite://{}", folder.path().join("scratch.db").display()),
        label: "sqlite",
        _guard: ScratchGuard::Sqlite(folder),
    }
}

/// A fresh, empty PostgreSQL database, when the server is reachable.
pub async fn scratch_postgres() -> Option<ScratchDb> {
    init_tracing();
    let server_url = postgres_url().await?;
    let name = unique_database_name();
    let mut admin = admin_connection(&server_url)
        .await
        .unwrap_or_else(|error| panic!("postgres: connecting to {}: {error}", redact(&server_url)));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("postgres: creating database {name}: {error}"));
    let _ = admin.close().await;
    let guard = PostgresDatabase {
        server_url: server_url.clone(),
        name,
    };
    Some(ScratchDb {
        url: with_database(&server_url, &guard.name),
        label: "postgres",
        _guard: ScratchGuard::Postgres(guard),
    })
}

/// A fresh, empty MariaDB/MySQL database (utf8mb4), when the server is reachable.
pub async fn scratch_mysql() -> Option<ScratchDb> {
    init_tracing();
    let server_url = mysql_url().await?;
    let name = unique_database_name();
    let mut admin = mysql_admin_connection(&server_url)
        .await
        .unwrap_or_else(|error| panic!("mariadb: connecting to {}: {error}", redact(&server_url)));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )))
    .execute(&mut admin)
    .await
    .unwrap_or_else(|error| panic!("mariadb: creating database {name}: {error}"));
    let _ = admin.close().await;
    let guard = MySqlDatabase {
        server_url: server_url.clone(),
        name,
    };
    Some(ScratchDb {
        url: with_database(&server_url, &guard.name),
        label: "mariadb",
        _guard: ScratchGuard::MySql(guard),
    })
}

/// The MariaDB/MySQL server's URL (`WEIR_TEST_MYSQL_URL`, or the local default) once it is known
/// to accept connections; `None` with a notice when it does not, unless `CI=true`.
pub async fn mysql_url() -> Option<String> {
    static REACHABLE: OnceCell<Option<String>> = OnceCell::const_new();
    REACHABLE.get_or_init(probe_mysql).await.clone()
}

async fn probe_mysql() -> Option<String> {
    let server_url = std::env::var("WEIR_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_string());
    match mysql_admin_connection(&server_url).await {
        Ok(mut admin) => {
            sweep_mysql_leftovers(&mut admin).await;
            let _ = admin.close().await;
            Some(server_url)
        }
        Err(error) => {
            let reason = format!("cannot connect to {}: {error}", redact(&server_url));
            if std::env::var("CI").is_ok_and(|value| value == "true") {
                panic!("MariaDB is required under CI=true: {reason} (start it, or set WEIR_TEST_MYSQL_URL)");
            }
            notice(&format!("note: MariaDB tests skipped: {reason}"));
            None
        }
    }
}

async fn mysql_admin_connection(server_url: &str) -> Result<sqlx::mysql::MySqlConnection, String> {
    let url = server_url.replacen("mariadb://", "mysql://", 1);
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::mysql::MySqlConnection::connect(&url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// A MariaDB database created for one test, dropped when this goes out of scope.
struct MySqlDatabase {
    server_url: String,
    name: String,
}

impl Drop for MySqlDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // As for PostgreSQL: a thread with its own runtime, waited for, errors only reported.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime can always be built");
            runtime.block_on(async {
                let dropped = async {
                    let mut admin = mysql_admin_connection(&server_url).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
                        .execute(&mut admin)
                        .await
                        .map_err(|error| error.to_string())?;
                    let _ = admin.close().await;
                    Ok::<(), String>(())
                };
                if let Err(error) = dropped.await {
                    notice(&format!("note: could not drop test database {name}: {error}"));
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Drops MariaDB databases left by test processes that died before their guards ran.
async fn sweep_mysql_leftovers(admin: &mut sqlx::mysql::MySqlConnection) {
    let names: Vec<String> = match sqlx::query("SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA")
        .fetch_all(&mut *admin)
        .await
    {
        Ok(rows) => rows.iter().filter_map(|row| row.try_get::<String, _>(0).ok()).collect(),
        Err(_) => return,
    };
    for name in names {
        let Some(pid) = name
            .strip_prefix(DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(&mut *admin)
            .await;
    }
}

/// The token signer the API and UI harnesses use.
pub fn authenticator(config: &weir::config::Config) -> std::sync::Arc<weir::api::auth::Authenticator> {
    std::sync::Arc::new(weir::api::auth::Authenticator::new(&config.api_auth, TEST_JWT_SECRET.as_bytes()).unwrap())
}

/// The name of the test user of `role`: `test-viewer`, `test-user`, `test-op`, `test-admin`.
pub fn test_username(role: weir::domain::auth::Role) -> String {
    format!("test-{}", role.as_str().to_lowercase())
}

/// A valid token for the test user of `role`, created (with a password no one can type: the
/// stored hash is not a hash) when missing. The same token works as the UI session cookie.
pub async fn token_for(state: &weir::api::ApiState, role: weir::domain::auth::Role) -> String {
    use weir::storage::users::{self, User};
    let username = test_username(role);
    let mut connection = state.db.acquire().await.unwrap();
    let user = match users::get(&mut connection, &username).await.unwrap() {
        Some(user) => user,
        None => {
            let user = User {
                username: username.clone(),
                password_hash: "not a password hash".to_string(),
                role,
                email: None,
                first_name: None,
                last_name: None,
                token_epoch: 0,
                created_at: chrono::Utc::now(),
            };
            users::insert(&mut connection, &user).await.unwrap();
            user
        }
    };
    let principal = weir::domain::auth::Principal { username, role };
    state
        .auth
        .issue(&principal, user.token_epoch, chrono::Utc::now())
        .unwrap()
}

/// The `Cookie` header of a UI session holding `token`.
pub fn session_cookie(token: &str) -> String {
    format!("{}={token}", weir::api::auth::SESSION_COOKIE)
}

/// Adds the session `cookie` (`weir_session=...`) to the request's cookies, unless it already
/// carries a session or an `Authorization` header.
pub fn add_session(request: &mut axum::http::Request<axum::body::Body>, cookie: &str) {
    use axum::http::header::{AUTHORIZATION, COOKIE};
    let headers = request.headers_mut();
    if headers.contains_key(AUTHORIZATION) {
        return;
    }
    let existing = headers
        .get(COOKIE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let merged = match existing {
        Some(existing) if existing.contains(weir::api::auth::SESSION_COOKIE) => return,
        Some(existing) => format!("{existing}; {cookie}"),
        None => cookie.to_string(),
    };
    headers.insert(COOKIE, merged.parse().unwrap());
}

/// Standard base64 (RFC 4648) decoding, for what test servers receive as basic auth.
pub fn decode_base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let Some(value) = ALPHABET.iter().position(|c| *c == byte) else {
            continue;
        };
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A free TCP port on the loopback address, for a `weir serve` a test starts.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The `weir` binary running as a daemon (`serve`, `scheduler`, `webserver`), for the tests that
/// must prove what only a real process shows (crash safety, signals, exit statuses, external
/// clients): stopped with SIGTERM (and waited for) when dropped, so a failing assertion leaves
/// nothing running. Tests that only need a running weir use `test_app::RunningApp` instead.
pub struct ServerProcess(pub std::process::Child);

impl ServerProcess {
    /// `weir --config <config> <subcommand>`, its stderr (the log) into `log`.
    pub fn start(config: &Path, subcommand: &str, log: &Path) -> ServerProcess {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
        command.arg("--config").arg(config);
        ServerProcess::spawn(command, subcommand, log)
    }

    /// `weir <subcommand>` run in `folder`, finding its `config.toml` there as people run it.
    pub fn start_in(folder: &Path, subcommand: &str, log: &Path) -> ServerProcess {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
        command.current_dir(folder);
        ServerProcess::spawn(command, subcommand, log)
    }

    fn spawn(mut command: std::process::Command, subcommand: &str, log: &Path) -> ServerProcess {
        let log = std::fs::File::create(log).unwrap();
        let child = command
            .arg(subcommand)
            .env_remove("WEIR_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        ServerProcess(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then wait for the process to exit by itself.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.0.wait().unwrap()
    }

    /// SIGKILL: the process ends without any of its clean-up.
    pub fn sigkill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `port`; fails with the server's log after 30 s.
pub fn wait_for_port(port: u16, log: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "weir serve did not listen on {port} within 30 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
