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
