//! The web UI in a real browser: starts `weir serve` on a temporary project and runs
//! `tests/browser/ui_check.mjs` (playwright-core driving Debian's headless Chromium), which clicks
//! through the DAG list, a DAG, the trigger form, the grid, the graph, a run's Gantt chart and a
//! task's log, saving screenshots under `$CARGO_TARGET_DIR/screenshots` (else `target/screenshots`).
//! Without node, Chromium or `tests/browser/node_modules` it prints a notice and passes, except
//! under `CI=true`, where `.ci/run` installs them and their absence is a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    command: 'echo "extract b in {{ params.mode }} mode"; sleep 1; echo "extract b done"'
  transform:
    command: 'echo transforming; sleep 1; echo "{\"rows\": {{ params.rows }}}" > "$WEIR_OUTPUT"'
    depends_on: [extract_a, extract_b]
  load:
    command: echo loaded
    depends_on: [transform]
  report:
    command: echo "report for {{ ds }}"
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

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
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

#[test]
fn the_ui_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    if let Some(reason) = missing_prerequisite(&browser_dir) {
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            panic!("the browser test is required under CI=true: {reason}");
        }
        let _ = writeln!(std::io::stderr(), "note: browser test skipped: {reason}");
        return;
    }

    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("dags")).unwrap();
    std::fs::write(project.path().join("dags/ui_demo.yaml"), DEMO_DAG).unwrap();
    let port = free_port();
    std::fs::write(
        project.path().join("config.toml"),
        format!(
            "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\n\n[database]\nurl = \"sqlite://state/weir.db\"\n\n[webserver]\nbind = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let server_log = project.path().join("serve.log");
    let server = Server {
        child: Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("--config")
            .arg(project.path().join("config.toml"))
            .arg("serve")
            .env_remove("WEIR_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&server_log).unwrap())
            .spawn()
            .unwrap(),
    };
    let started = Instant::now();
    while !healthy(port) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "weir serve did not answer its health check within 30 s:\n{}",
            std::fs::read_to_string(&server_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let screenshots = screenshot_dir(root);
    let mut script = Command::new("node")
        .arg(browser_dir.join("ui_check.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&screenshots)
        .arg("ui_demo")
        .current_dir(&browser_dir)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = script.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SCRIPT_DEADLINE {
            let _ = script.kill();
            let _ = script.wait();
            panic!("ui_check.mjs did not finish within {SCRIPT_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(server);
    assert!(
        status.success(),
        "ui_check.mjs failed ({status}); screenshots in {}; server log:\n{}",
        screenshots.display(),
        std::fs::read_to_string(&server_log).unwrap_or_default()
    );
}
