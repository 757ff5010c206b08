//! Two writers on one SQLite file: a `sql` or `transfer` task that finds the file locked by
//! another connection waits for it (and says so in its log) instead of failing, and a lock held
//! past the connection's `busy_timeout` fails the task with the file's name and the wait.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Executor};
use tokio::sync::mpsc;
use weir::runtime::operators::sql::{
    DEFAULT_BUSY_TIMEOUT, SqlOutcome, SqlTaskError, TransferMode, TransferSpec, run_sql, transfer,
};

use crate::support::{self, ScratchDb};

/// A script shaped like the shop's summaries: it reads (the table exists already) before it
/// writes, the case SQLite refuses at once in a deferred transaction while another connection
/// writes.
const SUMMARY_SCRIPT: &str = "CREATE TABLE IF NOT EXISTS totals (day TEXT, amount INTEGER);
DELETE FROM totals WHERE day = '2026-03-02';
INSERT INTO totals VALUES ('2026-03-02', 7);
SELECT COUNT(*) AS days FROM totals";

/// The database file behind a scratch SQLite URL.
fn file_of(db: &ScratchDb) -> String {
    db.url.trim_start_matches("sqlite://").to_string()
}

/// A connection of its own (not weir's) that holds the write lock: a transaction that has
/// written and not committed. `journal` is the file's journal mode, set first.
async fn hold_write_lock(db: &ScratchDb, journal: &str) -> SqliteConnection {
    let mut holder = SqliteConnectOptions::new()
        .filename(file_of(db))
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("PRAGMA journal_mode = {journal}")))
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert_eq!(mode, journal);
    holder
        .execute("CREATE TABLE IF NOT EXISTS totals (day TEXT, amount INTEGER)")
        .await
        .unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    holder
        .execute("INSERT INTO totals VALUES ('2026-03-01', 5)")
        .await
        .unwrap();
    holder
}

/// Waits (at most a minute, a deadline rather than a pause) for a log line containing `needle`;
/// returns every line seen until then.
async fn line_containing(lines: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.recv().await {
            let matched = line.contains(needle);
            seen.push(line);
            if matched {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no log line with {needle:?}; saw {seen:?}");
    seen
}

fn spawn_script(
    url: String,
) -> (
    tokio::task::JoinHandle<Result<SqlOutcome, SqlTaskError>>,
    mpsc::UnboundedReceiver<String>,
) {
    let (sender, lines) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut log = move |line: &str| {
            let _ = sender.send(line.to_string());
        };
        run_sql(&url, SUMMARY_SCRIPT, &[], 10, &mut log).await
    });
    (task, lines)
}

#[tokio::test]
async fn a_sql_task_that_finds_the_file_locked_waits_for_the_lock_and_then_succeeds() {
    for journal in ["delete", "wal"] {
        let db = support::scratch_sqlite();
        let mut holder = hold_write_lock(&db, journal).await;
        let (task, mut lines) = spawn_script(db.url.clone());
        let seen = line_containing(&mut lines, "is locked by another connection: waiting up to 30s").await;
        assert!(
            seen[0].contains(&format!("connected to sqlite at {}", file_of(&db)))
                && seen[0].contains("busy_timeout 30s"),
            "{journal}: {seen:?}"
        );
        holder.execute("COMMIT").await.unwrap();

        let outcome = task.await.unwrap().unwrap_or_else(|error| panic!("{journal}: {error}"));
        assert_eq!(
            outcome.rows[0]["days"], 2,
            "{journal}: the holder's row and the task's row"
        );
    }
}

#[tokio::test]
async fn a_free_file_is_switched_to_wal_and_the_default_wait_is_30_seconds() {
    assert_eq!(DEFAULT_BUSY_TIMEOUT, Duration::from_secs(30));
    let db = support::scratch_sqlite();
    let mut lines = Vec::new();
    let mut log = |line: &str| lines.push(line.to_string());
    run_sql(&db.url, "CREATE TABLE t (a INTEGER)", &[], 10, &mut log)
        .await
        .unwrap();
    assert!(lines[0].contains("(journal wal, busy_timeout 30s)"), "{lines:?}");
    let mut shorter = Vec::new();
    let mut log = |line: &str| shorter.push(line.to_string());
    let url = format!("{}?busy_timeout=2m", db.url);
    run_sql(&url, "SELECT COUNT(*) FROM t", &[], 10, &mut log)
        .await
        .unwrap();
    assert!(shorter[0].contains("busy_timeout 2m)"), "{shorter:?}");
}

#[tokio::test]
async fn a_transfer_into_a_locked_file_waits_for_the_lock_and_then_loads() {
    let source = support::scratch_sqlite();
    let mut ignore = |_: &str| {};
    run_sql(
        &source.url,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER); INSERT INTO orders VALUES (1, 10), (2, 20)",
        &[],
        10,
        &mut ignore,
    )
    .await
    .unwrap();
    let target = support::scratch_sqlite();
    let mut holder = hold_write_lock(&target, "wal").await;
    let spec = TransferSpec {
        from_url: source.url.clone(),
        from_sql: "SELECT id, amount FROM orders".into(),
        to_url: target.url.clone(),
        table: "stg_orders".into(),
        mode: TransferMode::Replace,
        keys: vec![],
        batch_size: 100,
    };
    let (sender, mut lines) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut log = move |line: &str| {
            let _ = sender.send(line.to_string());
        };
        transfer(&spec, &mut log).await
    });
    line_containing(&mut lines, "is locked by another connection: waiting up to 30s").await;
    holder.execute("COMMIT").await.unwrap();
    assert_eq!(task.await.unwrap().unwrap(), 2);
}

#[tokio::test]
async fn a_lock_held_past_the_busy_timeout_fails_the_task_naming_the_file_and_the_wait() {
    let db = support::scratch_sqlite();
    let mut holder = hold_write_lock(&db, "delete").await;
    let (task, mut lines) = spawn_script(format!("{}?busy_timeout=300ms", db.url));
    line_containing(&mut lines, "is locked by another connection: waiting up to 300ms").await;
    // The holder keeps its lock until the task has given up.
    let error = task.await.unwrap().unwrap_err();
    assert!(matches!(error, SqlTaskError::Locked { .. }), "{error:?}");
    let message = error.to_string();
    for needle in [
        format!("the database file {} stayed locked by another connection", file_of(&db)),
        "starting a write transaction waited".to_string(),
        "(busy_timeout 300ms)".to_string(),
        "nothing was saved".to_string(),
        "busy_timeout=5m".to_string(),
    ] {
        assert!(message.contains(&needle), "{needle:?} not in {message}");
    }
    holder.execute("COMMIT").await.unwrap();
    let mut ignore = |_: &str| {};
    let left = run_sql(&db.url, "SELECT COUNT(*) AS n FROM totals", &[], 10, &mut ignore)
        .await
        .unwrap();
    assert_eq!(left.rows[0]["n"], 1, "only the holder's row: the task wrote nothing");
}
