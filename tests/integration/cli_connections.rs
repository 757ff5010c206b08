//! `weir connections ...` and `weir variables ...` as a user runs them, against SQLite and
//! PostgreSQL metadata databases: passwords never printed (table or JSON), sources and
//! precedence shown, `test` reaching real servers, exit codes 0/1/2 (§7).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{self, TestDb};

const DB_PASSWORD: &str = "s3cr3t-pw-cli-db-4b8e";
const STDIN_PASSWORD: &str = "s3cr3t-pw-cli-stdin-0c7d";
const CONFIG_PASSWORD: &str = "s3cr3t-pw-cli-config-e21a";
const ENV_PASSWORD: &str = "s3cr3t-pw-cli-env-93f0";
const ALL_PASSWORDS: [&str; 4] = [DB_PASSWORD, STDIN_PASSWORD, CONFIG_PASSWORD, ENV_PASSWORD];

/// Runs weir in `project` with extra environment variables and optional standard input.
fn weir_with(project: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .current_dir(project)
        .args(args)
        .env_remove("WEIR_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn weir(project: &Path, args: &[&str]) -> Output {
    weir_with(project, args, &[], None)
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A project whose metadata database is `test_db`, with `extra_config` appended.
fn project(test_db: &TestDb, extra_config: &str) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("dags")).unwrap();
    std::fs::write(
        folder.path().join("config.toml"),
        format!(
            "[core]\ndags_folder = \"dags\"\n\n[database]\nurl = \"{}\"\n{extra_config}",
            test_db.url
        ),
    )
    .unwrap();
    folder
}

fn assert_no_password(output: &Output, what: &str) {
    let all = text(output);
    for password in ALL_PASSWORDS {
        assert!(!all.contains(password), "{what} printed a password:\n{all}");
    }
}

#[tokio::test]
async fn connections_get_and_list_show_every_source_and_never_a_password() {
    for test_db in &support::databases().await {
        let label = test_db.label;
        let config =
            format!("\n[connections.reporting]\nurl = \"postgres://report:{CONFIG_PASSWORD}@cfg-host:5432/rep\"\n");
        let project = project(test_db, &config);
        let env_url = format!("https://svc:{ENV_PASSWORD}@api.example.com/v1");
        let env = [("WEIR_CONN_API", env_url.as_str())];

        let url = format!("postgres://loader:{DB_PASSWORD}@db.internal:5432/dw?sslmode=require");
        let added = weir_with(
            project.path(),
            &["connections", "add", "warehouse", "--url", &url],
            &env,
            None,
        );
        assert_eq!(added.status.code(), Some(0), "{label}: {}", text(&added));
        assert!(
            text(&added).contains("postgres://loader:***@db.internal:5432/dw?sslmode=require"),
            "{label}: {}",
            text(&added)
        );
        assert_no_password(&added, "add");
        let key_file = project.path().join(".weir/secret.key");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{label}: the generated key file is private");

        let args = [
            "connections",
            "add",
            "api",
            "--conn-type",
            "https",
            "--host",
            "db-api.example.com",
            "--login",
            "svc",
            "--password-stdin",
            "--extra",
            r#"{"timeout": 5, "client_secret": "s3cr3t-pw-cli-stdin-0c7d"}"#,
        ];
        let shadowed = weir_with(project.path(), &args, &env, Some(&format!("{STDIN_PASSWORD}\n")));
        assert_eq!(shadowed.status.code(), Some(0), "{label}: {}", text(&shadowed));
        assert!(
            text(&shadowed).contains("environment variable WEIR_CONN_API defines `api` too and takes precedence"),
            "{label}: {}",
            text(&shadowed)
        );

        for output_format in ["table", "json"] {
            let listed = weir_with(
                project.path(),
                &["connections", "list", "--output", output_format],
                &env,
                None,
            );
            assert_eq!(listed.status.code(), Some(0), "{label}: {}", text(&listed));
            assert_no_password(&listed, &format!("{label}: list --output {output_format}"));
            for name in ["warehouse", "api", "reporting"] {
                let got = weir_with(
                    project.path(),
                    &["connections", "get", name, "--output", output_format],
                    &env,
                    None,
                );
                assert_eq!(got.status.code(), Some(0), "{label}: {}", text(&got));
                assert!(text(&got).contains("***"), "{label}: get {name}: {}", text(&got));
                assert_no_password(&got, &format!("{label}: get {name} --output {output_format}"));
            }
        }

        let listed = weir_with(project.path(), &["connections", "list", "--output", "json"], &env, None);
        let rows: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
        let summary: Vec<(String, String, bool)> = rows
            .iter()
            .map(|row| {
                (
                    row["conn_id"].as_str().unwrap().to_string(),
                    row["source"].as_str().unwrap().to_string(),
                    row["used"].as_bool().unwrap(),
                )
            })
            .collect();
        let expected = [
            ("api", "env", true),
            ("api", "database", false),
            ("reporting", "config", true),
            ("warehouse", "database", true),
        ];
        let expected: Vec<(String, String, bool)> = expected
            .iter()
            .map(|(name, source, used)| (name.to_string(), source.to_string(), *used))
            .collect();
        assert_eq!(summary, expected, "{label}");
        let api_from_database = &rows[1];
        assert_eq!(api_from_database["extra"]["client_secret"], "***", "{label}");
        assert_eq!(api_from_database["extra"]["timeout"], 5, "{label}");

        let missing = weir(project.path(), &["connections", "get", "warehose"]);
        assert_eq!(missing.status.code(), Some(1), "{label}: {}", text(&missing));
        assert!(
            text(&missing).contains("did you mean `warehouse`?"),
            "{}",
            text(&missing)
        );

        let from_config = weir(project.path(), &["connections", "delete", "reporting"]);
        assert_eq!(from_config.status.code(), Some(1), "{label}: {}", text(&from_config));
        assert!(
            text(&from_config).contains("[connections.reporting] in the config file"),
            "{}",
            text(&from_config)
        );
        let deleted = weir(project.path(), &["connections", "delete", "warehouse"]);
        assert_eq!(deleted.status.code(), Some(0), "{label}: {}", text(&deleted));
        let again = weir(project.path(), &["connections", "delete", "warehouse"]);
        assert_eq!(again.status.code(), Some(1), "{label}: {}", text(&again));
    }
}

/// A one-shot HTTP server that answers 404 to whatever it is asked.
fn http_server_answering_404() -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        // Gives up after a while, so a client that never connects fails the test instead of hanging it.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < give_up,
                        "nobody connected to the test server"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(error) => panic!("accepting: {error}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).unwrap();
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
    });
    (format!("http://user:{ENV_PASSWORD}@{address}/base"), server)
}

#[tokio::test]
async fn connections_test_says_ok_or_why_not_and_exits_1_on_failure() {
    for test_db in &support::databases().await {
        let label = test_db.label;
        let project = project(test_db, "");
        std::fs::write(project.path().join("warehouse.db"), b"").unwrap();
        let (http_url, server) = http_server_answering_404();
        let unreachable = format!("postgres://etl:{DB_PASSWORD}@127.0.0.1:1/dw");
        let env = [
            ("WEIR_CONN_LOCAL", "sqlite://warehouse.db"),
            ("WEIR_CONN_SERVICE", http_url.as_str()),
            ("WEIR_CONN_NOWHERE", unreachable.as_str()),
        ];

        let local = weir_with(project.path(), &["connections", "test", "local"], &env, None);
        assert_eq!(local.status.code(), Some(0), "{label}: {}", text(&local));
        assert!(text(&local).contains("OK sqlite://"), "{}", text(&local));

        let service = weir_with(project.path(), &["connections", "test", "service"], &env, None);
        server.join().unwrap();
        assert_eq!(
            service.status.code(),
            Some(0),
            "{label}: any HTTP answer is reachable: {}",
            text(&service)
        );
        assert!(text(&service).contains("answered HTTP 404"), "{}", text(&service));
        assert_no_password(&service, "test service");

        let nowhere = weir_with(project.path(), &["connections", "test", "nowhere"], &env, None);
        assert_eq!(nowhere.status.code(), Some(1), "{label}: {}", text(&nowhere));
        assert!(
            text(&nowhere).contains("FAILED postgres://etl:***@127.0.0.1:1/dw"),
            "{}",
            text(&nowhere)
        );
        assert_no_password(&nowhere, "test nowhere");

        if let Some(server_url) = support::postgres_url().await {
            let with_password = server_url.replacen("://postgres@", &format!("://postgres:{DB_PASSWORD}@"), 1);
            let env = [("WEIR_CONN_PG", with_password.as_str())];
            let pg = weir_with(project.path(), &["connections", "test", "pg"], &env, None);
            assert_eq!(pg.status.code(), Some(0), "{label}: {}", text(&pg));
            assert!(text(&pg).contains("connected and ran SELECT 1"), "{}", text(&pg));
            assert_no_password(&pg, "test pg");
        }

        let unknown = weir(project.path(), &["connections", "test", "nope"]);
        assert_eq!(unknown.status.code(), Some(1), "{label}: {}", text(&unknown));
        assert!(text(&unknown).contains("WEIR_CONN_<NAME>"), "{}", text(&unknown));
    }
}

#[tokio::test]
async fn a_password_stored_with_another_key_is_named_as_such() {
    for test_db in &support::databases().await {
        let label = test_db.label;
        let project = project(test_db, "");
        let url = "sqlite://w.db".to_string();
        let old_key = [("WEIR__SECRETS__KEY", "the old key")];
        let add = [
            "connections",
            "add",
            "warehouse",
            "--url",
            &url,
            "--password",
            DB_PASSWORD,
        ];
        let added = weir_with(project.path(), &add, &old_key, None);
        assert_eq!(added.status.code(), Some(0), "{label}: {}", text(&added));
        assert!(
            !project.path().join(".weir/secret.key").exists(),
            "{label}: a configured key writes no key file"
        );
        let new_key = [("WEIR__SECRETS__KEY", "a new key")];
        let tested = weir_with(project.path(), &["connections", "test", "warehouse"], &new_key, None);
        assert_eq!(tested.status.code(), Some(1), "{label}: {}", text(&tested));
        assert!(
            text(&tested).contains(
                "connection `warehouse`'s password was encrypted with a different secrets key: set [secrets] key"
            ),
            "{label}: {}",
            text(&tested)
        );
    }
}

#[tokio::test]
async fn variables_are_set_read_listed_masked_and_deleted() {
    for test_db in &support::databases().await {
        let label = test_db.label;
        let project = project(test_db, "");
        let set = weir(
            project.path(),
            &["variables", "set", "region", "kr", "--description", "market"],
        );
        assert_eq!(set.status.code(), Some(0), "{label}: {}", text(&set));
        let set = weir(project.path(), &["variables", "set", "api_token", DB_PASSWORD]);
        assert_eq!(set.status.code(), Some(0), "{label}: {}", text(&set));

        let got = weir(project.path(), &["variables", "get", "api_token"]);
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            format!("{DB_PASSWORD}\n"),
            "{label}: get prints the value"
        );
        let env = [("WEIR_VAR_REGION", "us"), ("WEIR_VAR_WORK_DIR", "/data")];
        let got = weir_with(project.path(), &["variables", "get", "region"], &env, None);
        assert_eq!(String::from_utf8_lossy(&got.stdout), "us\n", "{label}: env wins");

        for output_format in ["table", "json"] {
            let listed = weir_with(
                project.path(),
                &["variables", "list", "--output", output_format],
                &env,
                None,
            );
            assert_eq!(listed.status.code(), Some(0), "{label}: {}", text(&listed));
            assert!(!text(&listed).contains(DB_PASSWORD), "{label}: {}", text(&listed));
        }
        let listed = weir_with(project.path(), &["variables", "list", "--output", "json"], &env, None);
        let rows: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
        let summary: Vec<(&str, &str, &str, bool)> = rows
            .iter()
            .map(|row| {
                (
                    row["key"].as_str().unwrap(),
                    row["value"].as_str().unwrap(),
                    row["source"].as_str().unwrap(),
                    row["used"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("api_token", "***", "database", true),
                ("region", "us", "env", true),
                ("region", "kr", "database", false),
                ("work_dir", "/data", "env", true),
            ],
            "{label}"
        );

        let deleted = weir(project.path(), &["variables", "delete", "region"]);
        assert_eq!(deleted.status.code(), Some(0), "{label}: {}", text(&deleted));
        let missing = weir(project.path(), &["variables", "get", "region"]);
        assert_eq!(missing.status.code(), Some(1), "{label}: {}", text(&missing));
        assert!(text(&missing).contains("no variable `region`"), "{}", text(&missing));
        let again = weir(project.path(), &["variables", "delete", "region"]);
        assert_eq!(again.status.code(), Some(1), "{label}: {}", text(&again));
    }
}

#[tokio::test]
async fn bad_input_to_connection_commands_exits_2() {
    let test_dbs = support::databases().await;
    let project = project(&test_dbs[0], "");
    for args in [
        vec!["connections", "add", "warehouse"],
        vec!["connections", "add", "bad name", "--conn-type", "postgres"],
        vec!["connections", "add", "w", "--url", "db.internal:5432"],
        vec!["connections", "add", "w", "--conn-type", "postgres", "--extra", "[1]"],
        vec!["connections", "add", "w", "--url", "postgres://h", "--port", "99999"],
        vec!["variables", "set", "bad key", "v"],
    ] {
        let output = weir(project.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
    }
}

#[tokio::test]
async fn db_migrate_encrypts_passwords_stored_in_plain_text_before_encryption_existed() {
    for test_db in &support::databases().await {
        let label = test_db.label;
        let project = project(test_db, "\n[secrets]\nkey = \"migrate test key\"\n");
        let mut connection = test_db.db.acquire().await.unwrap();
        sqlx::query("INSERT INTO connection (conn_id, conn_type, host, password) VALUES ('old', 'postgres', 'h', $1)")
            .bind(DB_PASSWORD)
            .execute(&mut *connection)
            .await
            .unwrap();
        drop(connection);
        let migrated = weir(project.path(), &["db", "migrate"]);
        assert_eq!(migrated.status.code(), Some(0), "{label}: {}", text(&migrated));
        assert!(
            text(&migrated).contains("encrypted secrets stored in plain text: 1 connection password(s)"),
            "{label}: {}",
            text(&migrated)
        );
        let mut connection = test_db.db.acquire().await.unwrap();
        let raw: String = sqlx::Row::try_get(
            &sqlx::query("SELECT password FROM connection WHERE conn_id = 'old'")
                .fetch_one(&mut *connection)
                .await
                .unwrap(),
            "password",
        )
        .unwrap();
        assert!(
            raw.starts_with("enc:v1:") && !raw.contains(DB_PASSWORD),
            "{label}: {raw}"
        );
        let key = weir::secrets::SecretsKey::from_passphrase("migrate test key");
        assert_eq!(key.decrypt(&raw).unwrap(), DB_PASSWORD, "{label}");
    }
}
