//! The binary: `weir users ...` on the database directly, and the first start of a web server
//! creating `admin` with a password printed once and kept in a private file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use weir::domain::auth::Role;
use weir::runtime::users::{self, Login};

use crate::daemon::Project;
use crate::support;

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn weir_users_creates_lists_resets_and_deletes_with_airflows_flags() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let project = Project::new(&test_db.url);
        let output = project.weir(&[
            "users",
            "create",
            "--username",
            "ana",
            "--role",
            "Op",
            "--password",
            "ana's password",
            "--email",
            "ana@example.com",
            "--firstname",
            "Ana",
            "--lastname",
            "Lee",
        ]);
        assert!(output.status.success(), "{label}: {}", text(&output));
        assert!(!text(&output).contains("ana's password"), "{label}: never printed back");
        let login = users::check_login(&test_db.db, "ana", "ana's password").await.unwrap();
        assert!(
            matches!(login, Login::Accepted { principal, .. } if principal.role == Role::Op),
            "{label}"
        );

        let output = project.weir(&[
            "users",
            "create",
            "--username",
            "bob",
            "--role",
            "viewer",
            "--use-random-password",
        ]);
        assert!(output.status.success(), "{label}: {}", text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let password = stdout.lines().find_map(|line| line.strip_prefix("password: ")).unwrap();
        let login = users::check_login(&test_db.db, "bob", password).await.unwrap();
        assert!(matches!(login, Login::Accepted { .. }), "{label}");

        let output = project.weir(&["users", "list", "--output", "json"]);
        assert!(output.status.success(), "{label}: {}", text(&output));
        let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(listed[0]["username"], "ana");
        assert_eq!(listed[0]["role"], "Op");
        assert_eq!(listed[0]["email"], "ana@example.com");
        assert_eq!(listed[1]["role"], "Viewer");
        let table = text(&project.weir(&["users", "list"]));
        assert!(table.starts_with("username  role"), "{label}: {table}");
        assert!(!table.contains("argon2"), "{label}: no hash is shown");

        let output = project.weir(&[
            "users",
            "reset-password",
            "--username",
            "ana",
            "--password",
            "a new password",
        ]);
        assert!(output.status.success(), "{label}: {}", text(&output));
        let login = users::check_login(&test_db.db, "ana", "ana's password").await.unwrap();
        assert_eq!(login, Login::Refused, "{label}");

        let output = project.weir(&["users", "delete", "--username", "bob"]);
        assert!(output.status.success(), "{label}: {}", text(&output));
        let output = project.weir(&["users", "delete", "--username", "bob"]);
        assert_eq!(output.status.code(), Some(1), "{label}");
        assert!(text(&output).contains("no user `bob`"), "{label}: {}", text(&output));

        let refusals: [(&[&str], &str); 4] = [
            (
                &[
                    "users",
                    "create",
                    "--username",
                    "ana",
                    "--role",
                    "Op",
                    "--password",
                    "long enough",
                ],
                "already exists",
            ),
            (
                &[
                    "users",
                    "create",
                    "--username",
                    "x y",
                    "--role",
                    "Op",
                    "--password",
                    "long enough",
                ],
                "not a valid username",
            ),
            (
                &[
                    "users",
                    "create",
                    "--username",
                    "cy",
                    "--role",
                    "Boss",
                    "--password",
                    "long enough",
                ],
                "not a role",
            ),
            (
                &[
                    "users",
                    "create",
                    "--username",
                    "cy",
                    "--role",
                    "Op",
                    "--password",
                    "short",
                ],
                "too short",
            ),
        ];
        for (args, message) in refusals {
            let output = project.weir(args);
            assert!(!output.status.success(), "{label}: {args:?}");
            assert!(text(&output).contains(message), "{label}: {args:?}: {}", text(&output));
        }
        let output = project.weir(&["users", "create", "--username", "cy", "--role", "Op"]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{label}: a password or --use-random-password is required"
        );
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// `weir webserver` on the project, its stdout and stderr into files, with the configured user
/// `ops`'s password in the environment when given.
fn webserver(config: &Path, stdout: &Path, stderr: &Path, ops_password: Option<&str>) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .arg("--config")
        .arg(config)
        .arg("webserver")
        .env_remove("WEIR_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(std::fs::File::create(stderr).unwrap());
    if let Some(password) = ops_password {
        command.env("WEIR__API_AUTH__USERS__OPS__PASSWORD", password);
    }
    Server(command.spawn().unwrap())
}

#[tokio::test]
async fn the_first_start_creates_admin_and_prints_its_password_only_once() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let folder = tempfile::tempdir().unwrap();
        let config = folder.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[core]\nstate_dir = \"state\"\n\n[database]\nurl = \"{}\"\n\n[webserver]\nbind = \"127.0.0.1:0\"\n",
                test_db.url
            ),
        )
        .unwrap();
        let (stdout, stderr) = (folder.path().join("out.1"), folder.path().join("err.1"));
        let server = webserver(&config, &stdout, &stderr, None);
        support::wait_until("the server listens", Duration::from_secs(30), || {
            std::fs::read_to_string(&stderr)
                .unwrap_or_default()
                .contains("web server listening")
        })
        .await;
        drop(server);
        let printed = std::fs::read_to_string(&stdout).unwrap();
        let file = folder.path().join("state/admin_password.txt");
        let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
        assert_eq!(password.len(), 24, "{label}");
        assert!(printed.contains(&password), "{label}: printed once: {printed}");
        assert!(
            printed.contains(&file.display().to_string()),
            "{label}: says where it is kept"
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{label}"
        );
        let secret = folder.path().join("state/jwt_secret");
        assert_eq!(
            std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
            0o600,
            "{label}"
        );
        let logged = std::fs::read_to_string(&stderr).unwrap();
        assert!(!logged.contains(&password), "{label}: the password is not in the log");
        let login = users::check_login(&test_db.db, "admin", &password).await.unwrap();
        assert!(
            matches!(login, Login::Accepted { principal, .. } if principal.role == Role::Admin),
            "{label}"
        );

        // The second start finds users: it prints no password and says where the first one is.
        // It also brings in a user from the configuration, its password from the environment.
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str("\n[api_auth.users.ops]\nrole = \"Op\"\n");
        std::fs::write(&config, text).unwrap();
        let (stdout, stderr) = (folder.path().join("out.2"), folder.path().join("err.2"));
        let server = webserver(&config, &stdout, &stderr, Some("ops password from env"));
        support::wait_until("the server listens again", Duration::from_secs(30), || {
            std::fs::read_to_string(&stderr)
                .unwrap_or_default()
                .contains("web server listening")
        })
        .await;
        drop(server);
        let printed = std::fs::read_to_string(&stdout).unwrap();
        assert!(!printed.contains(&password), "{label}: {printed}");
        let logged = std::fs::read_to_string(&stderr).unwrap();
        assert!(!logged.contains(&password), "{label}");
        assert!(logged.contains("admin_password.txt"), "{label}: {logged}");
        let login = users::check_login(&test_db.db, "ops", "ops password from env")
            .await
            .unwrap();
        assert!(
            matches!(login, Login::Accepted { principal, .. } if principal.role == Role::Op),
            "{label}: configured user"
        );
        let second_secret = std::fs::read_to_string(&secret).unwrap();
        assert_eq!(second_secret.trim().len(), 64, "{label}: the token secret is kept");
    }
}

#[tokio::test]
async fn mode_none_is_refused_off_loopback_with_exit_2() {
    let folder = tempfile::tempdir().unwrap();
    let config = folder.path().join("config.toml");
    std::fs::write(
        &config,
        "[webserver]\nbind = \"0.0.0.0:8080\"\n[api_auth]\nmode = \"none\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("--config")
        .arg(&config)
        .args(["users", "list"])
        .env_remove("WEIR_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("[api_auth] mode = \"none\"") && text(&output).contains("loopback"),
        "{}",
        text(&output)
    );
}
