//! Secret-named variables and connection extras at rest: written through the REST API and the
//! CLI, they never reach the metadata database in clear text (the SQLite file and its WAL read as
//! bytes; every PostgreSQL row read with plain SQL), rows left in plain text by an older weir are
//! encrypted on start, and a task still receives the clear values.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::sync::watch;
use tower::ServiceExt;
use weir::api::{self, ApiState};
use weir::config::Config;
use weir::domain::state::RunState;
use weir::runtime::loader::DagBag;
use weir::secrets::SecretsKey;
use weir::storage::task_instances;

use crate::support::test_app::TestApp;
use crate::support::{self, TestDb};

/// The key the test scheduler decrypts with.
const KEY: &str = crate::support::test_app::TEST_SECRETS_PASSPHRASE;
const API_VARIABLE: &str = "ApiVarSecret7f3a";
const API_EXTRA: &str = "ApiExtraSecret91c2";
const API_NESTED_EXTRA: &str = "ApiNestedSecret55d0";
const CLI_VARIABLE: &str = "CliVarSecret2b8e";
const CLI_EXTRA: &str = "CliExtraSecret6a41";
const ALL_SECRETS: [&str; 5] = [API_VARIABLE, API_EXTRA, API_NESTED_EXTRA, CLI_VARIABLE, CLI_EXTRA];

async fn call(state: &ApiState, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
    let token = support::token_for(state, weir::domain::auth::Role::Admin).await;
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = api::router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn api_state(test_db: &TestDb, folder: &Path) -> ApiState {
    let config_path = folder.join("config.toml");
    std::fs::write(&config_path, "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\n").unwrap();
    let config = Config::load(&config_path, true, std::iter::empty::<(String, String)>()).unwrap();
    let (_sender, receiver) = watch::channel(Arc::new(DagBag::default()));
    ApiState {
        db: test_db.db.clone(),
        dags: receiver,
        auth: support::authenticator(&config),
        health: Default::default(),
        config: Arc::new(config),
        scheduler_metrics: None,
        secrets: SecretsKey::from_passphrase(KEY),
    }
}

fn weir(project: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(project)
        .args(args)
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A project for the CLI whose metadata database is `test_db`, with the test key.
fn project(test_db: &TestDb) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("dags")).unwrap();
    std::fs::write(
        folder.path().join("config.toml"),
        format!(
            "[core]\ndags_folder = \"dags\"\n\n[database]\nurl = \"{}\"\n\n[secrets]\nkey = \"{KEY}\"\n",
            test_db.url
        ),
    )
    .unwrap();
    folder
}

/// Everything the metadata database holds, as it lies on disk: for SQLite the bytes of the file
/// and its write-ahead log; for PostgreSQL every row of every table, read as text with plain SQL.
async fn raw_storage(test_db: &TestDb) -> String {
    if test_db.label == "sqlite" {
        let path = test_db.url.trim_start_matches("sqlite://").to_string();
        let mut bytes = std::fs::read(&path).unwrap();
        for suffix in ["-wal", "-journal"] {
            if let Ok(more) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(more);
            }
        }
        assert!(bytes.len() > 4096, "read the database file {path}");
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let mut connection = test_db.db.acquire().await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut *connection)
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get("name").unwrap())
    .collect();
    assert!(tables.iter().any(|table| table == "variable"), "{tables:?}");
    let mut all = String::new();
    for table in tables {
        let sql = format!("SELECT CAST(t AS TEXT) AS row_text FROM \"{table}\" t");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *connection)
            .await
            .unwrap()
        {
            all.push_str(&row.try_get::<String, _>("row_text").unwrap());
            all.push('\n');
        }
    }
    all
}

#[tokio::test]
async fn secret_variables_and_extras_written_by_the_api_and_the_cli_never_reach_storage_in_clear() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let folder = tempfile::tempdir().unwrap();
        let state = api_state(&test_db, folder.path());

        let (status, created) = call(
            &state,
            Method::POST,
            "/api/v2/variables",
            json!({"key": "warehouse_password", "value": API_VARIABLE}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {created}");
        assert_eq!(created["value"], "***", "{label}: masked as before");
        assert_eq!(created["is_encrypted"], true, "{label}");
        let extra = json!({"api_token": API_EXTRA, "auth": {"client_secret": API_NESTED_EXTRA}, "region": "kr"});
        let (status, created) = call(
            &state,
            Method::POST,
            "/api/v2/connections",
            json!({"connection_id": "crm", "conn_type": "http", "host": "crm.example", "extra": extra.to_string()}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{label}: {created}");
        let shown: Value = serde_json::from_str(created["extra"].as_str().unwrap()).unwrap();
        assert_eq!(
            shown,
            json!({"api_token": "***", "auth": {"client_secret": "***"}, "region": "kr"}),
            "{label}"
        );

        let cli = project(&test_db);
        let set = weir(cli.path(), &["variables", "set", "loader_token", CLI_VARIABLE]);
        assert!(set.status.success(), "{label}: {set:?}");
        let extra = format!("{{\"ssh_key\": \"{CLI_EXTRA}\"}}");
        let add = weir(
            cli.path(),
            &[
                "connections",
                "add",
                "ssh_box",
                "--conn-type",
                "ssh",
                "--host",
                "box",
                "--extra",
                &extra,
            ],
        );
        assert!(add.status.success(), "{label}: {add:?}");
        let got = weir(cli.path(), &["variables", "get", "loader_token"]);
        assert_eq!(
            String::from_utf8_lossy(&got.stdout).trim(),
            CLI_VARIABLE,
            "{label}: `get` prints it as before"
        );

        // A task gets the clear values through its templates.
        let out = tempfile::tempdir().unwrap();
        let out_file = |name: &str| out.path().join(name).display().to_string();
        let yaml = format!(
            "dag_id: secrets_reader\ntasks:\n  read:\n    command: printf '%s %s %s %s %s' {{{{ var.warehouse_password }}}} {{{{ var.loader_token }}}} {{{{ conn.crm.extra.api_token }}}} {{{{ conn.crm.extra.auth.client_secret }}}} {{{{ conn.ssh_box.extra.ssh_key }}}} > {}\n",
            out_file("seen.txt")
        );
        let mut harness = TestApp::new(&test_db, &yaml).await;
        let run = harness.trigger().await;
        let state_reached = harness.run_to_end(&run).await;
        let mut connection = test_db.db.acquire().await.unwrap();
        let attempts = task_instances::attempts(
            &mut connection,
            run.pk,
            &weir::domain::ids::TaskId::parse("read").unwrap(),
        )
        .await
        .unwrap();
        drop(connection);
        assert_eq!(state_reached, RunState::Success, "{label}: {attempts:?}");
        let seen = std::fs::read_to_string(out_file("seen.txt")).unwrap();
        let expected = format!("{API_VARIABLE} {CLI_VARIABLE} {API_EXTRA} {API_NESTED_EXTRA} {CLI_EXTRA}");
        assert_eq!(seen, expected, "{label}");

        // Nothing of it lies in the database in clear text, even after the run.
        let raw = raw_storage(&test_db).await;
        assert!(raw.contains("enc:v1:"), "{label}: the ciphertext is there");
        assert!(
            raw.contains("warehouse_password") && raw.contains("crm.example"),
            "{label}: and the rest in clear"
        );
        for secret in ALL_SECRETS {
            assert!(!raw.contains(secret), "{label}: `{secret}` is stored in clear text");
        }
    }
}

#[tokio::test]
async fn secrets_left_in_plain_text_by_an_older_weir_are_encrypted_on_start_and_still_read_back() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut connection = test_db.db.acquire().await.unwrap();
        sqlx::query("INSERT INTO variable (key, val) VALUES ('old_api_key', 'OldPlainVar'), ('region', 'kr'), ('note', 'enc:v1:looks-encrypted')")
            .execute(&mut *connection)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO connection (conn_id, conn_type, host, extra) VALUES ('old', 'http', 'h', '{\"password\": \"OldPlainExtra\", \"timeout\": 5}')",
        )
        .execute(&mut *connection)
        .await
        .unwrap();
        drop(connection);

        let cli = project(&test_db);
        let migrated = weir(cli.path(), &["db", "migrate"]);
        let stdout = String::from_utf8_lossy(&migrated.stdout).into_owned();
        assert!(migrated.status.success(), "{label}: {migrated:?}");
        assert!(
            stdout.contains("0 connection password(s), 1 connection extra(s), 1 variable(s)"),
            "{label}: {stdout}"
        );

        let mut connection = test_db.db.acquire().await.unwrap();
        let variable: String = sqlx::query("SELECT val FROM variable WHERE key = 'old_api_key'")
            .fetch_one(&mut *connection)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        let region: String = sqlx::query("SELECT val FROM variable WHERE key = 'region'")
            .fetch_one(&mut *connection)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        let extra: String = sqlx::query("SELECT extra FROM connection WHERE conn_id = 'old'")
            .fetch_one(&mut *connection)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert!(variable.starts_with("enc:v1:"), "{label}: {variable}");
        assert_eq!(region, "kr", "{label}: a variable that is not secret stays as it was");
        assert!(
            !extra.contains("OldPlainExtra") && extra.contains("\"timeout\":5"),
            "{label}: {extra}"
        );

        let key = SecretsKey::from_passphrase(KEY);
        let variables = weir::storage::variables::all(&mut connection, &key).await.unwrap();
        assert_eq!(variables["old_api_key"], "OldPlainVar", "{label}");
        assert_eq!(
            variables["note"], "enc:v1:looks-encrypted",
            "{label}: a variable that is not secret is never decrypted, whatever it looks like"
        );
        let old = weir::storage::connections::get_with_password(&mut connection, "old", &key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.extra["password"], "OldPlainExtra", "{label}");
        assert_eq!(old.extra["timeout"], 5, "{label}: the value's JSON type comes back too");
        let other = SecretsKey::from_passphrase("another key");
        let error = weir::storage::connections::get_with_password(&mut connection, "old", &other)
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("connection `old`'s extra `password` was encrypted with a different secrets key"),
            "{label}: {error}"
        );
        let error = weir::storage::variables::all(&mut connection, &other)
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("variable `old_api_key`'s value was encrypted with a different secrets key"),
            "{label}: {error}"
        );
        drop(connection);

        let again = weir(cli.path(), &["db", "migrate"]);
        assert!(
            !String::from_utf8_lossy(&again.stdout).contains("encrypted"),
            "{label}: nothing left to encrypt: {again:?}"
        );
    }
}
