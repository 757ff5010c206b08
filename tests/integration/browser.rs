//! The web UI in a real browser: starts `weir serve` on a temporary project and runs
//! `tests/browser/ui_check.mjs` (playwright-core driving Debian's headless Chromium), which logs
//! in (as the `admin` the first start created) and clicks through the DAG list, a DAG, the trigger form, the grid, the graph, a run's Gantt chart and a
//! task's log, saving screenshots under `$CARGO_TARGET_DIR/screenshots` (else `target/screenshots`);
//! and `tests/browser/csrf_check.mjs`, whose pages from another origin post each UI form at weir
//! (nothing may change, checked here in the database and the files) before the same forms are used
//! from weir's own pages (everything must change). Both fail on any Content-Security-Policy
//! violation. Without node, Chromium or `tests/browser/node_modules` they print a notice and pass,
//! except under `CI=true`, where `.ci/run` installs them and their absence is a failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support;

const CHROMIUM: &str = "/usr/bin/chromium";
const SCRIPT_DEADLINE: Duration = Duration::from_secs(240);

const DEMO_DAG: &str = r#"
dag_id: ui_demo
description: A small pipeline that the browser test triggers from the UI
owner: ui-test
tags: [demo, browser]
schedule: null
params:
  rows: { type: integer, default: 3, minimum: 1, description: How many rows each extract produces }
  mode: { type: string, default: fast, enum: [fast, thorough] }
tasks:
  extract_a:
    command: 'for i in $(seq 1 {{ params.rows }}); do echo "extract a: row $i"; done'
  extract_b:
    command: 'echo extract b in {{ params.mode }} mode; sleep 1; echo "extract b done"'
  transform:
    command: 'echo transforming; sleep 1; printf "{\"rows\": %s}" {{ params.rows }} > "$WEIR_OUTPUT"'
    depends_on: [extract_a, extract_b]
  load:
    command: echo loaded
    depends_on: [transform]
  report:
    command: echo report for {{ ds }}
    depends_on: [load]
    trigger_rule: all_done
"#;

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite(browser_dir: &Path) -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|status| status.success()) {
        return Some("node is not installed".to_string());
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        return Some(format!(
            "playwright-core is not installed (cd {} && npm ci)",
            browser_dir.display()
        ));
    }
    None
}

fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /api/v2/monitor/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

fn screenshot_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => PathBuf::from(target).join("screenshots"),
        None => root.join("target/screenshots"),
    }
}

/// A running `weir serve` on a temporary project, and where its files are.
struct Project {
    folder: tempfile::TempDir,
    port: u16,
    server_log: PathBuf,
    _server: support::ServerProcess,
}

impl Project {
    /// Writes `dags` (file name, YAML) and a config, starts `weir serve`, waits for its health.
    fn start(dags: &[(&str, &str)]) -> Project {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(folder.path().join("dags")).unwrap();
        for (name, yaml) in dags {
            std::fs::write(folder.path().join("dags").join(name), yaml).unwrap();
        }
        let port = support::free_port();
        std::fs::write(
            folder.path().join("config.toml"),
            format!(
                "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\n\n[database]\nurl = \"sqlite://state/weir.db\"\n\n[webserver]\nbind = \"127.0.0.1:{port}\"\n"
            ),
        )
        .unwrap();
        let server_log = folder.path().join("serve.log");
        let server = support::ServerProcess::start(&folder.path().join("config.toml"), "serve", &server_log);
        let started = Instant::now();
        while !healthy(port) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "weir serve did not answer its health check within 30 s:\n{}",
                std::fs::read_to_string(&server_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Project {
            folder,
            port,
            server_log,
            _server: server,
        }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    /// Runs a `weir` command against this project's config; panics unless it succeeds.
    fn weir(&self, args: &[&str]) {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("--config")
            .arg(self.folder.path().join("config.toml"))
            .args(args)
            .env_remove("WEIR_CONFIG")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "weir {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The password of `admin`, created and kept in the state folder by the first start.
    fn admin_password(&self) -> String {
        let path = self.folder.path().join("state/admin_password.txt");
        std::fs::read_to_string(path).unwrap().trim().to_string()
    }

    /// The metadata database, opened beside the running server.
    fn db(&self, runtime: &tokio::runtime::Runtime) -> weir::storage::Db {
        let url = format!("sqlite://{}", self.folder.path().join("state/weir.db").display());
        runtime.block_on(weir::storage::Db::connect(&url)).unwrap()
    }
}

/// Runs a script of `tests/browser` with `args`, logging in as `admin` with `password`; its
/// output goes to the test's.
fn run_script(browser_dir: &Path, script: &str, args: &[&str], password: &str) -> std::process::ExitStatus {
    let mut child = Command::new("node")
        .arg(browser_dir.join(script))
        .args(args)
        .env("WEIR_UI_USER", "admin")
        .env("WEIR_UI_PASSWORD", password)
        .current_dir(browser_dir)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > SCRIPT_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} did not finish within {SCRIPT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The browser folder, or `None` (after a notice) when the prerequisites are missing outside CI.
fn browser_dir() -> Option<PathBuf> {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Some(reason) = missing_prerequisite(&browser_dir) {
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            panic!("the browser test is required under CI=true: {reason}");
        }
        let _ = writeln!(std::io::stderr(), "note: browser test skipped: {reason}");
        return None;
    }
    Some(browser_dir)
}

#[test]
fn the_ui_works_in_headless_chromium() {
    let Some(browser_dir) = browser_dir() else {
        return;
    };
    let project = Project::start(&[("ui_demo.yaml", DEMO_DAG)]);
    let screenshots = screenshot_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
    let status = run_script(
        &browser_dir,
        "ui_check.mjs",
        &[&project.base_url(), &screenshots.display().to_string(), "ui_demo"],
        &project.admin_password(),
    );
    assert!(
        status.success(),
        "ui_check.mjs failed ({status}); screenshots in {}; server log:\n{}",
        screenshots.display(),
        project.server_log()
    );
}

const CSRF_DAG: &str = r#"
dag_id: csrf_target
description: What the hostile pages aim at; its param names a file that the run touches
schedule: null
params:
  file: { type: string, default: /dev/null }
tasks:
  touch:
    command: 'touch {{ params.file }}'
  done:
    command: echo done
    depends_on: [touch]
"#;

#[test]
fn forms_posted_from_another_origin_change_nothing_and_work_from_weirs_own_pages() {
    let Some(browser_dir) = browser_dir() else {
        return;
    };
    let project = Project::start(&[("csrf_target.yaml", CSRF_DAG)]);
    let markers = tempfile::tempdir().unwrap();
    let marker = |name: &str| markers.path().join(name);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = project.db(&runtime);
    let fingerprint = || runtime.block_on(crate::support::ui_fingerprint(&db));
    let wait_for = |what: &str, condition: &dyn Fn(&str) -> bool| {
        let started = Instant::now();
        loop {
            let now = fingerprint();
            if condition(&now) {
                return now;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{what} within 60 s; the database holds:\n{now}\nserver log:\n{}",
                project.server_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    let conf = format!("{{\"file\": \"{}\"}}", marker("setup").display());
    project.weir(&["dags", "trigger", "csrf_target", "--run-id", "setup", "--conf", &conf]);
    wait_for("the setup run succeeds", &|now| {
        now.contains("setup|success|0") && now.contains("setup/done|success|1")
    });
    assert!(marker("setup").exists(), "the DAG touches the file its param names");

    let screenshots = screenshot_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
    let args = |phase: &'static str| {
        vec![
            phase.to_string(),
            project.base_url(),
            "csrf_target".to_string(),
            "setup".to_string(),
            markers.path().display().to_string(),
            screenshots.display().to_string(),
        ]
    };
    let before = fingerprint();
    let hostile_args = args("hostile");
    let status = run_script(
        &browser_dir,
        "csrf_check.mjs",
        &hostile_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &project.admin_password(),
    );
    assert!(
        status.success(),
        "csrf_check.mjs hostile failed ({status}); server log:\n{}",
        project.server_log()
    );
    assert_eq!(fingerprint(), before, "a forged post changed the database");
    assert!(!marker("hostile_trigger").exists(), "a forged trigger ran its command");

    let own_args = args("own");
    let status = run_script(
        &browser_dir,
        "csrf_check.mjs",
        &own_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &project.admin_password(),
    );
    assert!(
        status.success(),
        "csrf_check.mjs own failed ({status}); server log:\n{}",
        project.server_log()
    );
    let after = fingerprint();
    for (what, line) in [
        ("paused", "csrf_target|1|0"),
        ("triggered", "own|success|0"),
        ("cleared the run, then touch with downstream", "setup/touch|success|3"),
        ("cleared twice, then marked failed", "setup/done|failed|3"),
        ("set a variable", "own_variable|set from weir|0"),
        ("added a connection", "own_connection|"),
    ] {
        assert!(after.contains(line), "{what}: no `{line}` in the database:\n{after}");
    }
    assert!(
        marker("own_trigger").exists(),
        "the run triggered from weir's page ran its command"
    );
}
