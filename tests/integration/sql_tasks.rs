//! The `sql` and `transfer` task engines against real SQLite, PostgreSQL and MariaDB databases:
//! scripts in one transaction, and typed rows moved between every pair of backends that matters.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Value, json};
use weir::runtime::operators::sql::{SqlOutcome, SqlTaskError, TransferMode, TransferSpec, run_sql, transfer};

use crate::support::{self, ScratchDb};

/// Runs `script` on `url`, failing the test on error; returns the outcome.
async fn sql(url: &str, script: &str) -> SqlOutcome {
    let mut log = |_: &str| {};
    run_sql(url, script, &[], 1000, &mut log)
        .await
        .unwrap_or_else(|error| panic!("running {script:?}: {error}"))
}

/// The number in the first column of the first row of `query`.
async fn count(url: &str, query: &str) -> i64 {
    let outcome = sql(url, query).await;
    let first = &outcome.rows[0];
    let value = &first[&outcome.columns[0]];
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
        .unwrap_or_else(|| panic!("{query} gave {value}"))
}

/// Runs a transfer, failing the test on error; returns rows moved and the log lines.
async fn run_transfer(spec: &TransferSpec) -> (u64, Vec<String>) {
    let mut lines = Vec::new();
    let mut log = |line: &str| lines.push(line.to_string());
    let moved = transfer(spec, &mut log)
        .await
        .unwrap_or_else(|error| panic!("transfer {spec:?}: {error}"));
    (moved, lines)
}

fn spec(from: &ScratchDb, from_sql: &str, to: &ScratchDb, table: &str, mode: TransferMode) -> TransferSpec {
    TransferSpec {
        from_url: from.url.clone(),
        from_sql: from_sql.to_string(),
        to_url: to.url.clone(),
        table: table.to_string(),
        mode,
        keys: Vec::new(),
        batch_size: 1000,
    }
}

/// Every backend that is available here: SQLite always, PostgreSQL and MariaDB when reachable.
async fn all_backends() -> Vec<ScratchDb> {
    let mut databases = vec![support::scratch_sqlite()];
    databases.extend(support::scratch_postgres().await);
    databases.extend(support::scratch_mysql().await);
    databases
}

/// One value as text that reads the same whichever backend it came back from: numbers and
/// decimal strings as written, timestamps in UTC as `YYYY-MM-DD HH:MM:SS[.ffffff]` whether they
/// carry `Z`, an offset or nothing, NULL as `NULL`.
fn normalized(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::String(text) => {
            if NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
                return text.clone();
            }
            if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
                return instant.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string();
            }
            for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
                if let Ok(instant) = DateTime::parse_from_str(text, format) {
                    return instant.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string();
                }
            }
            for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(timestamp) = NaiveDateTime::parse_from_str(text, format) {
                    return timestamp.format("%Y-%m-%d %H:%M:%S%.f").to_string();
                }
            }
            text.clone()
        }
        other => other.to_string(),
    }
}

/// The rows of `query` on `url`, each value normalized, columns in the query's order.
async fn read_back(url: &str, query: &str) -> Vec<Vec<String>> {
    let outcome = sql(url, query).await;
    outcome
        .rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| outcome.columns.iter().map(|column| normalized(&row[column])).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// sql

#[tokio::test]
async fn a_script_runs_its_statements_and_returns_the_rows_of_the_last_one_up_to_the_cap() {
    for db in all_backends().await {
        let script = "CREATE TABLE fruit (id INTEGER, name VARCHAR(40), price DECIMAL(8,2));\n\
                      INSERT INTO fruit VALUES (1, 'apple', 1.25), (2, 'pear; ripe', 0.75), (3, 'kiwi ✓', 12.50);\n\
                      -- the output:\n\
                      SELECT id, name FROM fruit ORDER BY id";
        let mut lines = Vec::new();
        let mut log = |line: &str| lines.push(line.to_string());
        let outcome = run_sql(&db.url, script, &[], 2, &mut log)
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", db.label));
        assert_eq!(outcome.statements, 3, "{}", db.label);
        assert_eq!(
            outcome.rows,
            json!([{"id": 1, "name": "apple"}, {"id": 2, "name": "pear; ripe"}]),
            "{}",
            db.label
        );
        assert_eq!(outcome.columns, ["id", "name"], "{}", db.label);
        assert!(
            outcome.truncated,
            "{}: three rows with a cap of two are cut off",
            db.label
        );
        assert_eq!(outcome.rows_affected[1..], [3, 3], "{}", db.label);
        assert!(
            lines[0].starts_with(&format!(
                "connected to {}",
                if db.label == "mariadb" { "mysql" } else { db.label }
            )),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"statement 2 of 3: 3 rows affected".to_string()),
            "{}: {lines:?}",
            db.label
        );
        assert!(
            lines.contains(&"statement 3 of 3: 3 rows returned (the first 2 kept)".to_string()),
            "{}: {lines:?}",
            db.label
        );

        let all = run_sql(
            &db.url,
            "SELECT name, price FROM fruit WHERE id = 3",
            &[],
            10,
            &mut |_: &str| {},
        )
        .await
        .unwrap();
        assert!(!all.truncated);
        let price = &all.rows[0]["price"];
        match db.label {
            // SQLite keeps a DECIMAL(8,2) as a REAL: a number; the others give exact decimal text.
            "sqlite" => assert_eq!(price, &json!(12.5)),
            _ => assert_eq!(price, &json!("12.50"), "{}", db.label),
        }
        assert_eq!(all.rows[0]["name"], json!("kiwi ✓"), "{}", db.label);
    }
}

#[tokio::test]
async fn a_hostile_parameter_is_bound_as_a_value_and_never_runs_as_sql() {
    let hostile = "'; DROP TABLE t; --";
    for db in all_backends().await {
        sql(&db.url, "CREATE TABLE t (name VARCHAR(60), n INTEGER)").await;
        let parameters = [("name".to_string(), json!(hostile)), ("n".to_string(), json!(7))];
        let mut log = |_: &str| {};
        let outcome = run_sql(
            &db.url,
            "INSERT INTO t (name, n) VALUES (:name, :n);\n\
             INSERT INTO t (name, n) VALUES ('literal :name', 1);\n\
             SELECT name, n FROM t WHERE name = :name OR n = :n ORDER BY n",
            &parameters,
            10,
            &mut log,
        )
        .await
        .unwrap_or_else(|error| panic!("{}: {error}", db.label));
        assert_eq!(outcome.rows, json!([{"name": hostile, "n": 7}]), "{}", db.label);
        assert_eq!(
            count(&db.url, "SELECT COUNT(*) FROM t").await,
            2,
            "{}: the table is still there",
            db.label
        );
        let unknown = run_sql(&db.url, "SELECT :nmae", &parameters, 10, &mut log)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("`:nmae`, which is not among the task's parameters"),
            "{unknown}"
        );
    }
}

#[tokio::test]
async fn a_failing_statement_rolls_back_every_statement_before_it_and_names_its_number() {
    for db in all_backends().await {
        // The table first, on its own: MySQL commits DDL implicitly, so it cannot be part of
        // the rolled-back work there.
        sql(
            &db.url,
            "CREATE TABLE ledger (id INTEGER PRIMARY KEY, note VARCHAR(20))",
        )
        .await;
        let mut lines = Vec::new();
        let mut log = |line: &str| lines.push(line.to_string());
        let error = run_sql(
            &db.url,
            "INSERT INTO ledger VALUES (1, 'first');\nUPDATE ledger SET note = 'changed';\nINSERT INTO no_such_table VALUES (3)",
            &[],
            10,
            &mut log,
        )
        .await
        .expect_err("the third statement must fail");
        match &error {
            SqlTaskError::Statement {
                number, total, message, ..
            } => {
                assert_eq!((*number, *total), (3, 3), "{}", db.label);
                assert!(message.contains("no_such_table"), "{}: {message}", db.label);
            }
            other => panic!("{}: expected a statement error, got {other}", db.label),
        }
        assert!(error.to_string().starts_with("statement 3 of 3 failed"), "{error}");
        assert_eq!(
            count(&db.url, "SELECT COUNT(*) AS n FROM ledger").await,
            0,
            "{}: nothing persisted",
            db.label
        );
        assert!(lines.iter().any(|line| line.contains("rolled back")), "{lines:?}");
    }
}

#[tokio::test]
async fn an_empty_script_is_refused_before_connecting() {
    let mut log = |_: &str| {};
    let error = run_sql("sqlite:///nonexistent/dir/x.db", " -- nothing\n ; ", &[], 10, &mut log)
        .await
        .unwrap_err();
    assert!(matches!(error, SqlTaskError::EmptyScript), "{error}");
}

#[tokio::test]
async fn a_connection_error_never_shows_the_password() {
    let mut log = |_: &str| {};
    for url in [
        "postgres://weir:s3cr3t-pw@127.0.0.1:1/db",
        "mysql://weir:s3cr3t-pw@127.0.0.1:1/db",
    ] {
        let error = run_sql(url, "SELECT 1", &[], 10, &mut log)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("cannot connect to "), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}

#[tokio::test]
async fn a_postgres_type_weir_cannot_move_is_named_with_a_cast_to_use() {
    let Some(db) = support::scratch_postgres().await else {
        return;
    };
    let mut log = |_: &str| {};
    let error = run_sql(&db.url, "SELECT 1 AS id, interval '1 day' AS wait", &[], 10, &mut log)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("column `wait` has type INTERVAL"), "{error}");
    assert!(error.contains("CAST(wait AS TEXT)"), "{error}");

    let target = support::scratch_sqlite();
    let spec = spec(
        &db,
        "SELECT 1 AS id, interval '1 day' AS wait",
        &target,
        "waits",
        TransferMode::Append,
    );
    let error = transfer(&spec, &mut log).await.unwrap_err();
    assert!(
        matches!(&error, SqlTaskError::UnsupportedType { column, .. } if column == "wait"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// transfer: typed rows across backends

/// Creates and fills `orders` on `db` with the same rows in each backend's own types: integers,
/// decimals (and a 30-digit one where the backend keeps it exactly), unicode and quotes, dates,
/// timestamps with and without zone, booleans, floats, and a row of NULLs.
async fn create_orders(db: &ScratchDb) {
    let script = match db.label {
        "postgres" => {
            "CREATE TABLE orders (id bigint PRIMARY KEY, qty integer, amount numeric(12,2), big numeric(30,10), \
               note text, day date, created_at timestamp, created_tz timestamptz, flag boolean, price double precision);\n\
             INSERT INTO orders VALUES \
               (1, 3, 12345.67, 12345678901234567890.0123456789, 'héllo ''quoted'' \"double\" ✓', '2024-02-29', \
                '2024-02-29 13:14:15.123456', '2024-02-29 15:14:15.123456+02', true, 2.5), \
               (2, -7, -0.05, -1.5, 'semi; colon', '1999-12-31', '1999-12-31 23:59:59', '1999-12-31 23:59:59+00', false, -0.25), \
               (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        }
        "mariadb" => {
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, qty INT, amount DECIMAL(12,2), big DECIMAL(30,10), \
               note TEXT, day DATE, created_at DATETIME(6), created_tz TIMESTAMP(6) NULL, flag BOOLEAN, price DOUBLE);\n\
             INSERT INTO orders VALUES \
               (1, 3, 12345.67, 12345678901234567890.0123456789, 'héllo ''quoted'' \"double\" ✓', '2024-02-29', \
                '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456', true, 2.5), \
               (2, -7, -0.05, -1.5, 'semi; colon', '1999-12-31', '1999-12-31 23:59:59', '1999-12-31 23:59:59', false, -0.25), \
               (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        }
        _ => {
            // SQLite has no exact decimal beyond 15 digits: its `big` is text.
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER, amount DECIMAL(12,2), big TEXT, \
               note TEXT, day DATE, created_at DATETIME, created_tz TIMESTAMPTZ, flag BOOLEAN, price REAL);\n\
             INSERT INTO orders VALUES \
               (1, 3, 12345.67, '12345678901234567890.0123456789', 'héllo ''quoted'' \"double\" ✓', '2024-02-29', \
                '2024-02-29 13:14:15.123456', '2024-02-29T15:14:15.123456+02:00', 1, 2.5), \
               (2, -7, -0.05, '-1.5000000000', 'semi; colon', '1999-12-31', '1999-12-31 23:59:59', '1999-12-31 23:59:59Z', 0, -0.25), \
               (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        }
    };
    sql(&db.url, script).await;
}

/// What every target holds after the transfer, normalized.
fn expected_orders() -> Vec<Vec<String>> {
    let row = |values: [&str; 10]| values.iter().map(ToString::to_string).collect::<Vec<_>>();
    vec![
        row([
            "1",
            "3",
            "12345.67",
            "12345678901234567890.0123456789",
            "héllo 'quoted' \"double\" ✓",
            "2024-02-29",
            "2024-02-29 13:14:15.123456",
            "2024-02-29 13:14:15.123456",
            "true",
            "2.5",
        ]),
        row([
            "2",
            "-7",
            "-0.05",
            "-1.5000000000",
            "semi; colon",
            "1999-12-31",
            "1999-12-31 23:59:59",
            "1999-12-31 23:59:59",
            "false",
            "-0.25",
        ]),
        row([
            "3", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL",
        ]),
    ]
}

const ORDER_COLUMNS: &str = "id, qty, amount, big, note, day, created_at, created_tz, flag, price";

async fn assert_orders_move(source: &ScratchDb, target: &ScratchDb) {
    let direction = format!("{} -> {}", source.label, target.label);
    let (moved, lines) = run_transfer(&spec(
        source,
        &format!("SELECT {ORDER_COLUMNS} FROM orders"),
        target,
        "orders_copy",
        TransferMode::Append,
    ))
    .await;
    assert_eq!(moved, 3, "{direction}");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("created table orders_copy (id ")),
        "{direction}: {lines:?}"
    );
    let rows = read_back(
        &target.url,
        &format!("SELECT {ORDER_COLUMNS} FROM orders_copy ORDER BY id"),
    )
    .await;
    assert_eq!(rows, expected_orders(), "{direction}");
}

#[tokio::test]
async fn postgres_rows_move_into_sqlite_with_their_types() {
    let Some(source) = support::scratch_postgres().await else {
        return;
    };
    create_orders(&source).await;
    let target = support::scratch_sqlite();
    assert_orders_move(&source, &target).await;
    // A known precision up to 15 digits stays a number in SQLite; a wider decimal stays text.
    let types = read_back(&target.url, "SELECT name, type FROM pragma_table_info('orders_copy')").await;
    assert!(
        types.contains(&vec!["amount".into(), "NUMERIC(12,2)".into()]),
        "{types:?}"
    );
    assert!(types.contains(&vec!["big".into(), "TEXT".into()]), "{types:?}");
    assert!(
        types.contains(&vec!["created_tz".into(), "TIMESTAMPTZ".into()]),
        "{types:?}"
    );
}

#[tokio::test]
async fn sqlite_rows_move_into_postgres_with_their_types() {
    let Some(target) = support::scratch_postgres().await else {
        return;
    };
    let source = support::scratch_sqlite();
    create_orders(&source).await;
    assert_orders_move(&source, &target).await;
    let types = read_back(
        &target.url,
        "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = 'orders_copy' ORDER BY ordinal_position",
    )
    .await;
    let type_of = |name: &str| types.iter().find(|row| row[0] == name).map(|row| row[1].clone());
    assert_eq!(type_of("amount").as_deref(), Some("numeric"));
    assert_eq!(type_of("created_at").as_deref(), Some("timestamp without time zone"));
    assert_eq!(type_of("created_tz").as_deref(), Some("timestamp with time zone"));
    assert_eq!(type_of("day").as_deref(), Some("date"));
    assert_eq!(type_of("flag").as_deref(), Some("boolean"));
    let precision = read_back(
        &target.url,
        "SELECT numeric_precision::int, numeric_scale::int FROM information_schema.columns WHERE table_name = 'orders_copy' AND column_name = 'amount'",
    )
    .await;
    assert_eq!(
        precision,
        [["12", "2"]],
        "SQLite's declared DECIMAL(12,2) keeps its shape"
    );
}

#[tokio::test]
async fn mariadb_rows_move_into_postgres_with_their_types() {
    let (Some(source), Some(target)) = (support::scratch_mysql().await, support::scratch_postgres().await) else {
        return;
    };
    create_orders(&source).await;
    assert_orders_move(&source, &target).await;
    let precision = read_back(
        &target.url,
        "SELECT numeric_precision::int, numeric_scale::int FROM information_schema.columns WHERE table_name = 'orders_copy' AND column_name = 'big'",
    )
    .await;
    assert_eq!(precision, [["30", "10"]], "DECIMAL(30,10) keeps its shape");
}

#[tokio::test]
async fn postgres_rows_move_into_mariadb_with_their_types() {
    let (Some(source), Some(target)) = (support::scratch_postgres().await, support::scratch_mysql().await) else {
        return;
    };
    create_orders(&source).await;
    assert_orders_move(&source, &target).await;
}

#[tokio::test]
async fn sqlite_rows_move_into_mariadb_with_their_types() {
    let Some(target) = support::scratch_mysql().await else {
        return;
    };
    let source = support::scratch_sqlite();
    create_orders(&source).await;
    assert_orders_move(&source, &target).await;
}

#[tokio::test]
async fn mariadb_rows_move_into_sqlite_and_postgres_rows_into_postgres() {
    if let Some(source) = support::scratch_mysql().await {
        create_orders(&source).await;
        assert_orders_move(&source, &support::scratch_sqlite()).await;
    }
    if let (Some(source), Some(target)) = (support::scratch_postgres().await, support::scratch_postgres().await) {
        create_orders(&source).await;
        assert_orders_move(&source, &target).await;
    }
}

// ---------------------------------------------------------------------------------------------
// transfer: modes

async fn assert_modes(source: &ScratchDb, target: &ScratchDb) {
    let direction = format!("{} -> {}", source.label, target.label);
    sql(
        &source.url,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40));\n\
         INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    )
    .await;
    let query = "SELECT id, name FROM items";

    let append = spec(source, query, target, "appended", TransferMode::Append);
    run_transfer(&append).await;
    run_transfer(&append).await;
    assert_eq!(
        count(&target.url, "SELECT COUNT(*) AS n FROM appended").await,
        6,
        "{direction}: append twice doubles"
    );

    let replace = spec(source, query, target, "replaced", TransferMode::Replace);
    run_transfer(&replace).await;
    let (_, lines) = run_transfer(&replace).await;
    assert_eq!(
        count(&target.url, "SELECT COUNT(*) AS n FROM replaced").await,
        3,
        "{direction}: replace keeps one copy"
    );
    assert!(
        lines
            .iter()
            .any(|line| line == "replace: deleted the 3 rows replaced held"),
        "{lines:?}"
    );

    let mut upsert = spec(source, query, target, "upserted", TransferMode::Upsert);
    upsert.keys = vec!["id".into()];
    run_transfer(&upsert).await;
    sql(
        &source.url,
        "UPDATE items SET name = 'TWO' WHERE id = 2;\nINSERT INTO items VALUES (4, 'four')",
    )
    .await;
    let (moved, _) = run_transfer(&upsert).await;
    assert_eq!(moved, 4, "{direction}");
    assert_eq!(
        read_back(&target.url, "SELECT id, name FROM upserted ORDER BY id").await,
        [["1", "one"], ["2", "TWO"], ["3", "three"], ["4", "four"]],
        "{direction}: upsert updates changed rows and inserts new ones, without duplicates"
    );
}

#[tokio::test]
async fn append_doubles_replace_keeps_one_copy_and_upsert_merges_into_sqlite() {
    let source = support::scratch_sqlite();
    assert_modes(&source, &support::scratch_sqlite()).await;
}

#[tokio::test]
async fn append_doubles_replace_keeps_one_copy_and_upsert_merges_into_postgres() {
    let Some(target) = support::scratch_postgres().await else {
        return;
    };
    assert_modes(&support::scratch_sqlite(), &target).await;
}

#[tokio::test]
async fn append_doubles_replace_keeps_one_copy_and_upsert_merges_into_mariadb() {
    let Some(target) = support::scratch_mysql().await else {
        return;
    };
    let source = support::scratch_postgres()
        .await
        .unwrap_or_else(support::scratch_sqlite);
    assert_modes(&source, &target).await;
}

#[tokio::test]
async fn upsert_without_keys_or_with_keys_the_source_lacks_is_refused() {
    let source = support::scratch_sqlite();
    let target = support::scratch_sqlite();
    sql(&source.url, "CREATE TABLE items (id INTEGER, name TEXT)").await;
    let mut log = |_: &str| {};
    let mut upsert = spec(
        &source,
        "SELECT id, name FROM items",
        &target,
        "items",
        TransferMode::Upsert,
    );
    let error = transfer(&upsert, &mut log).await.unwrap_err();
    assert!(matches!(error, SqlTaskError::UpsertWithoutKeys), "{error}");
    assert!(error.to_string().contains("keys: [id]"), "{error}");

    upsert.keys = vec!["item_id".into()];
    let error = transfer(&upsert, &mut log).await.unwrap_err().to_string();
    assert!(
        error.contains("[\"item_id\"] are not among the source query's columns [\"id\", \"name\"]"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failed_load_leaves_the_target_as_it_was() {
    let Some(target) = support::scratch_postgres().await else {
        return;
    };
    let source = support::scratch_sqlite();
    sql(
        &source.url,
        "CREATE TABLE items (id INTEGER, name TEXT);\n\
         INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, NULL)",
    )
    .await;
    sql(
        &target.url,
        "CREATE TABLE items (id BIGINT, name TEXT NOT NULL); INSERT INTO items VALUES (9, 'kept')",
    )
    .await;
    let mut replace = spec(
        &source,
        "SELECT id, name FROM items ORDER BY id",
        &target,
        "items",
        TransferMode::Replace,
    );
    replace.batch_size = 2;
    let mut log = |_: &str| {};
    let error = transfer(&replace, &mut log).await.unwrap_err();
    assert!(matches!(error, SqlTaskError::Load { batch: 2, .. }), "{error}");
    assert!(error.to_string().contains("rolled back"), "{error}");
    assert_eq!(
        read_back(&target.url, "SELECT id, name FROM items").await,
        [["9", "kept"]],
        "neither the delete nor the first batch stays"
    );
}

// ---------------------------------------------------------------------------------------------
// transfer: batches, empty sources, names

#[tokio::test]
async fn ten_rows_in_batches_of_three_arrive_in_four_batches() {
    let source = support::scratch_sqlite();
    let target = support::scratch_sqlite();
    let numbers = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) \
                   SELECT i AS id, i * 1.5 AS half, 'row ' || i AS label FROM n";
    let mut batched = spec(&source, numbers, &target, "numbers", TransferMode::Append);
    batched.batch_size = 3;
    let (moved, lines) = run_transfer(&batched).await;
    assert_eq!(moved, 10);
    let batches: Vec<&String> = lines.iter().filter(|line| line.starts_with("batch ")).collect();
    assert_eq!(
        batches,
        [
            "batch 1: 3 rows moved so far",
            "batch 2: 6 rows moved so far",
            "batch 3: 9 rows moved so far",
            "batch 4: 10 rows moved so far"
        ]
    );
    assert_eq!(
        read_back(
            &target.url,
            "SELECT COUNT(*), SUM(id), MIN(label), MAX(half) FROM numbers"
        )
        .await,
        [["10", "55", "row 1", "15.0"]]
    );
}

#[tokio::test]
async fn a_batch_wider_than_the_bind_parameter_limit_is_split_into_several_inserts() {
    let source = support::scratch_sqlite();
    let target = support::scratch_sqlite();
    // 5,000 rows × 10 columns = 50,000 parameters, past SQLite's 32,766 for one statement.
    let columns: Vec<String> = (1..=10).map(|column| format!("i + {column} AS c{column}")).collect();
    let wide = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) SELECT {} FROM n",
        columns.join(", ")
    );
    let mut batched = spec(&source, &wide, &target, "wide", TransferMode::Append);
    batched.batch_size = 5000;
    let (moved, lines) = run_transfer(&batched).await;
    assert_eq!(moved, 5000);
    assert!(
        lines.contains(&"batch 1: 5000 rows moved so far".to_string()),
        "{lines:?}"
    );
    assert_eq!(
        count(&target.url, "SELECT SUM(c10) - SUM(c1) FROM wide").await,
        9 * 5000
    );
}

#[tokio::test]
async fn an_empty_source_still_creates_the_table_and_moves_no_rows() {
    let Some(source) = support::scratch_postgres().await else {
        return;
    };
    create_orders(&source).await;
    let target = support::scratch_sqlite();
    let (moved, _) = run_transfer(&spec(
        &source,
        "SELECT * FROM orders WHERE id < 0",
        &target,
        "empty_copy",
        TransferMode::Append,
    ))
    .await;
    assert_eq!(moved, 0);
    let columns = read_back(&target.url, "SELECT name, type FROM pragma_table_info('empty_copy')").await;
    assert_eq!(columns.len(), 10, "{columns:?}");
    assert_eq!(columns[0], ["id", "INTEGER"]);
    assert_eq!(count(&target.url, "SELECT COUNT(*) FROM empty_copy").await, 0);
}

#[tokio::test]
async fn a_schema_qualified_table_is_created_in_its_schema() {
    let Some(target) = support::scratch_postgres().await else {
        return;
    };
    sql(&target.url, "CREATE SCHEMA staging").await;
    let source = support::scratch_sqlite();
    sql(
        &source.url,
        "CREATE TABLE t (id INTEGER, \"Odd Name\" TEXT); INSERT INTO t VALUES (1, 'x')",
    )
    .await;
    let (moved, _) = run_transfer(&spec(
        &source,
        "SELECT id, \"Odd Name\" FROM t",
        &target,
        "staging.orders",
        TransferMode::Replace,
    ))
    .await;
    assert_eq!(moved, 1);
    assert_eq!(
        read_back(&target.url, "SELECT id, \"Odd Name\" FROM staging.orders").await,
        [["1", "x"]]
    );
}

#[tokio::test]
async fn mariadb_binary_collated_text_reads_as_text_and_blobs_as_bytes() {
    let Some(db) = support::scratch_mysql().await else {
        return;
    };
    sql(
        &db.url,
        "CREATE TABLE j (id INT, doc JSON, code VARCHAR(10) COLLATE utf8mb4_bin, raw VARBINARY(10), \
           tu TINYINT UNSIGNED, bu BIGINT UNSIGNED, y YEAR, bits BIT(8), e ENUM('a','b'), t TIME);\n\
         INSERT INTO j VALUES (1, '{\"a\": [1, 2]}', 'AbC', x'00ff', 200, 18446744073709551615, 2024, b'00000101', 'b', '10:00:00')",
    )
    .await;
    let outcome = sql(&db.url, "SELECT doc, code, raw, tu, y, bits, e FROM j").await;
    assert_eq!(
        outcome.rows,
        json!([{"doc": "{\"a\": [1, 2]}", "code": "AbC", "raw": "\\x00ff", "tu": 200, "y": 2024, "bits": 5, "e": "b"}])
    );
    let mut log = |_: &str| {};
    let error = run_sql(&db.url, "SELECT bu FROM j", &[], 10, &mut log)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("larger than a signed 64-bit integer") && error.contains("CAST(bu AS DECIMAL(20,0))"),
        "{error}"
    );
    let error = run_sql(&db.url, "SELECT t FROM j", &[], 10, &mut log)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("column `t` has type TIME") && error.contains("CAST(t AS CHAR)"),
        "{error}"
    );

    if let Some(target) = support::scratch_postgres().await {
        run_transfer(&spec(
            &db,
            "SELECT id, code, raw FROM j",
            &target,
            "j",
            TransferMode::Append,
        ))
        .await;
        assert_eq!(
            read_back(&target.url, "SELECT code, raw, pg_typeof(raw)::text AS raw_type FROM j").await,
            [["AbC", "\\x00ff", "bytea"]]
        );
    }
}

#[tokio::test]
async fn postgres_specific_types_read_as_their_neutral_values() {
    let Some(db) = support::scratch_postgres().await else {
        return;
    };
    let outcome = sql(
        &db.url,
        "SELECT 1::int2 AS small, 1.1::float4 AS single, '00010203-0405-0607-0809-0a0b0c0d0e0f'::uuid AS id, \
                '{\"k\": [1, true]}'::jsonb AS doc, '\\xdead'::bytea AS raw, 'abc'::char(5) AS padded, \
                123456789012345678901234567890.5::numeric AS huge, 'NaN'::numeric AS nan",
    )
    .await;
    assert_eq!(
        outcome.rows,
        json!([{
            "small": 1, "single": 1.1, "id": "00010203-0405-0607-0809-0a0b0c0d0e0f", "doc": {"k": [1, true]},
            "raw": "\\xdead", "padded": "abc  ", "huge": "123456789012345678901234567890.5", "nan": "NaN"
        }])
    );
}

#[tokio::test]
async fn a_sqlite_value_that_contradicts_its_declared_type_stops_a_transfer_but_shows_in_sql_output() {
    let source = support::scratch_sqlite();
    sql(
        &source.url,
        "CREATE TABLE events (id INTEGER, day DATE);\nINSERT INTO events VALUES (1, '2026-03-01'), (2, 'soon')",
    )
    .await;
    let target = support::scratch_sqlite();
    let mut log = |_: &str| {};
    let error = transfer(
        &spec(
            &source,
            "SELECT id, day FROM events",
            &target,
            "events",
            TransferMode::Append,
        ),
        &mut log,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("column `day` (type DATE)"), "{error}");
    assert!(
        error.contains("a TEXT value ('soon') where a date is declared"),
        "{error}"
    );
    assert_eq!(
        sql(&source.url, "SELECT id, day FROM events ORDER BY id").await.rows,
        json!([{"id": 1, "day": "2026-03-01"}, {"id": 2, "day": "soon"}])
    );
}

#[tokio::test]
async fn a_mariadb_upsert_into_a_table_without_a_unique_key_is_refused_instead_of_duplicating() {
    let Some(target) = support::scratch_mysql().await else {
        return;
    };
    sql(&target.url, "CREATE TABLE items (id BIGINT, name TEXT)").await;
    let source = support::scratch_sqlite();
    sql(
        &source.url,
        "CREATE TABLE items (id INTEGER, name TEXT); INSERT INTO items VALUES (1, 'a')",
    )
    .await;
    let mut upsert = spec(
        &source,
        "SELECT id, name FROM items",
        &target,
        "items",
        TransferMode::Upsert,
    );
    upsert.keys = vec!["id".into()];
    let mut log = |_: &str| {};
    let error = transfer(&upsert, &mut log).await.unwrap_err();
    assert!(matches!(error, SqlTaskError::NoUniqueKey { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("PRIMARY KEY or UNIQUE index on exactly (id)"),
        "{error}"
    );

    sql(&target.url, "ALTER TABLE items ADD PRIMARY KEY (id)").await;
    run_transfer(&upsert).await;
    run_transfer(&upsert).await;
    assert_eq!(count(&target.url, "SELECT COUNT(*) FROM items").await, 1);
}

#[tokio::test]
async fn a_mariadb_batch_larger_than_its_packet_limit_is_sent_in_smaller_inserts() {
    let Some(target) = support::scratch_mysql().await else {
        return;
    };
    let source = support::scratch_sqlite();
    // 300 rows of 100 kB: 30 MB in one batch, past MariaDB's default 16 MiB max_allowed_packet.
    let big_rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) \
                    SELECT i AS id, hex(zeroblob(50000)) AS payload FROM n";
    let mut batched = spec(&source, big_rows, &target, "payloads", TransferMode::Append);
    batched.batch_size = 300;
    let (moved, _) = run_transfer(&batched).await;
    assert_eq!(moved, 300);
    assert_eq!(
        count(&target.url, "SELECT SUM(LENGTH(payload)) FROM payloads").await,
        300 * 100_000
    );
}

#[tokio::test]
async fn a_table_can_be_copied_within_one_sqlite_file() {
    let db = support::scratch_sqlite();
    sql(
        &db.url,
        "CREATE TABLE raw (id INTEGER, amount DECIMAL(10,2));\n\
         INSERT INTO raw VALUES (1, 1.50), (2, 2.25), (3, 3.75), (4, 4.00), (5, 5.05)",
    )
    .await;
    let mut copy = spec(
        &db,
        "SELECT id, amount * 2 AS doubled FROM raw",
        &db,
        "doubled",
        TransferMode::Replace,
    );
    copy.batch_size = 2;
    let (moved, _) = run_transfer(&copy).await;
    assert_eq!(moved, 5);
    assert_eq!(count(&db.url, "SELECT COUNT(*) FROM doubled").await, 5);
}
