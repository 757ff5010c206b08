//! The example DAGs in `dags/` run on a fresh machine: each passes `weir dags test` in a copy of
//! the repository's project (its own state folder, databases and connections), and the shop
//! pipeline leaves the revenue it should in the warehouse, with the shop on SQLite and on
//! PostgreSQL.

use std::path::Path;
use std::process::{Command, Output};

use sqlx::{Connection, Row};

use crate::support;

/// The repository's `dags/` and `config.toml`, copied so runs write nowhere in the checkout.
fn project_copy() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let folder = tempfile::tempdir().unwrap();
    copy_tree(&root.join("dags"), &folder.path().join("dags"));
    std::fs::copy(root.join("config.toml"), folder.path().join("config.toml")).unwrap();
    folder
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn weir(project: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .current_dir(project)
        .args(args)
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("WEIR_CONN_") || name.starts_with("WEIR__") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied()).output().unwrap()
}

fn dags_test(project: &Path, dag_id: &str, env: &[(&str, &str)]) {
    dags_test_at(project, dag_id, "2026-03-01", env);
}

fn dags_test_at(project: &Path, dag_id: &str, logical_date: &str, env: &[(&str, &str)]) {
    let output = weir(project, &["dags", "test", dag_id, logical_date], env);
    assert!(
        output.status.success(),
        "`weir dags test {dag_id}` failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The revenue the seed writes for one day: 40 orders over the example's six prices.
fn expected_revenue_cents() -> i64 {
    let prices = [2450, 5900, 1875, 299, 1320, 540];
    (0..40).map(|i| prices[(i * 5 % 6) as usize] * (i % 3 + 1)).sum()
}

async fn warehouse_revenue_cents(project: &Path) -> (i64, i64) {
    let url = format!("sqlite://{}", project.join(".weir/warehouse.db").display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let total = |table: &'static str| {
        format!("SELECT CAST(ROUND(SUM(revenue) * 100) AS INTEGER) FROM {table} WHERE day = '2026-03-01'")
    };
    let customers: i64 = sqlx::query(sqlx::AssertSqlSafe(total("customer_revenue_daily")))
        .fetch_one(&mut connection)
        .await
        .unwrap()
        .get(0);
    let products: i64 = sqlx::query(sqlx::AssertSqlSafe(total("product_revenue_daily")))
        .fetch_one(&mut connection)
        .await
        .unwrap()
        .get(0);
    (customers, products)
}

#[tokio::test]
async fn every_example_dag_passes_dags_test_on_a_fresh_project() {
    let project = project_copy();
    for dag_id in ["hello_world", "example_etl", "shop_etl", "shop_report"] {
        dags_test(project.path(), dag_id, &[]);
    }
    let expected = expected_revenue_cents();
    assert_eq!(
        warehouse_revenue_cents(project.path()).await,
        (expected, expected),
        "both summaries hold the day's revenue"
    );
    // Another run for the same day: the extract upserts and the summaries rebuild the day, so
    // nothing doubles.
    dags_test_at(project.path(), "shop_etl", "2026-03-01T12:00:00Z", &[]);
    assert_eq!(warehouse_revenue_cents(project.path()).await, (expected, expected));
}

#[tokio::test]
async fn the_shop_pipeline_extracts_from_postgresql_when_the_shop_connection_points_there() {
    let Some(shop) = support::databases().await.into_iter().find(|db| db.label == "postgres") else {
        return;
    };
    let project = project_copy();
    dags_test(project.path(), "shop_etl", &[("WEIR_CONN_SHOP", shop.url.as_str())]);
    let expected = expected_revenue_cents();
    assert_eq!(warehouse_revenue_cents(project.path()).await, (expected, expected));
    let mut connection = sqlx::PgConnection::connect(&shop.url).await.unwrap();
    let orders: i64 = sqlx::query("SELECT COUNT(*) FROM orders")
        .fetch_one(&mut connection)
        .await
        .unwrap()
        .get(0);
    assert_eq!(orders, 40, "the shop database on PostgreSQL was seeded");
}

/// The flagship example beside a running daemon: `weir dags test shop_etl` for 20 dates while
/// `weir serve` runs on the same folder (its own scheduled shop_etl run and the shop_report runs
/// its dataset events start read and write the same SQLite files). Every task of every run
/// succeeds on its first try: writers wait for each other's lock instead of failing into a retry.
#[tokio::test]
async fn shop_etl_succeeds_on_the_first_try_for_twenty_dates_beside_a_running_daemon() {
    let project = project_copy();
    let config_path = project.path().join("config.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains("bind = \"127.0.0.1:8080\""));
    std::fs::write(
        &config_path,
        config.replace("bind = \"127.0.0.1:8080\"", "bind = \"127.0.0.1:0\""),
    )
    .unwrap();
    let mut daemon = support::ServerProcess::start_in(project.path(), "serve", &project.path().join("serve.log"));
    // The daemon is at work once it has made its own shop_etl run (catchup is off: the latest date).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let listed = weir(project.path(), &["runs", "list", "shop_etl", "--output", "json"], &[]);
        let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_default();
        if runs
            .as_array()
            .is_some_and(|runs| runs.iter().any(|run| run["run_type"] == "scheduled"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "weir serve made no shop_etl run:\n{}",
            std::fs::read_to_string(project.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let mut retried = Vec::new();
    for day in 1..=20 {
        let date = format!("2026-02-{day:02}");
        dags_test_at(project.path(), "shop_etl", &date, &[]);
        let run_id = format!("manual__{date}T00:00:00+00:00");
        let states = weir(
            project.path(),
            &["tasks", "states", "shop_etl", &run_id, "--output", "json"],
            &[],
        );
        let states: serde_json::Value = serde_json::from_slice(&states.stdout).unwrap();
        assert_eq!(states.as_array().unwrap().len(), 7, "{date}: {states}");
        for task in states.as_array().unwrap() {
            if task["try_number"] != 1 || task["state"] != "success" {
                retried.push(format!(
                    "{date} {} (try {}, {})",
                    task["task_id"], task["try_number"], task["state"]
                ));
            }
        }
    }
    daemon.stop();
    assert!(retried.is_empty(), "tasks that needed another try: {retried:?}");
}
