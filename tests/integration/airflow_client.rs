//! Compatibility with the official Airflow 3 Python client (`apache-airflow-client` 3.3.x),
//! whose pydantic models validate every response strictly: the real `weir serve` binary is
//! driven by `tests/airflow_client/client_check.py`, which shows that calls without a token get
//! 401, then logs in with `POST /auth/token` as the first start's `admin`. The interpreter comes from
//! `WEIR_TEST_PYTHON` (`.ci/run` creates it); without one the test is skipped with a notice,
//! except under `CI=true`, where that is a failure.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use super::support;

const DAG: &str = "
tags: [client]
params:
  region: { type: string, default: kr, enum: [kr, us] }
tasks:
  first: { command: 'echo hello {{ params.region }}' }
  second: { command: echo done, depends_on: [first] }
";

/// A scheduled DAG to backfill; paused, so only the backfill makes runs (backfills ignore pause).
const DAILY_DAG: &str = "
schedule: '@daily'
start_date: 2026-01-01
catchup: false
is_paused_upon_creation: true
tasks:
  work: { command: echo backfilled }
";

/// The Python interpreter with the client installed, or why there is none.
fn python() -> Result<String, String> {
    let python = std::env::var("WEIR_TEST_PYTHON").map_err(|_| "WEIR_TEST_PYTHON is not set".to_string())?;
    let probe = Command::new(&python)
        .args(["-c", "import airflow_client.client"])
        .output()
        .map_err(|error| format!("cannot run {python}: {error}"))?;
    if !probe.status.success() {
        return Err(format!(
            "{python} cannot import airflow_client: {}",
            String::from_utf8_lossy(&probe.stderr)
        ));
    }
    Ok(python)
}

#[test]
fn the_official_airflow_python_client_lists_triggers_reads_a_run_and_backfills() {
    let python = match python() {
        Ok(python) => python,
        Err(reason) => {
            if std::env::var("CI").is_ok_and(|value| value == "true") {
                panic!("the Airflow client test needs its Python under CI=true: {reason} (run .ci/run)");
            }
            let _ = writeln!(
                std::io::stderr(),
                "note: Airflow client compatibility test skipped: {reason} (.ci/run sets it up)"
            );
            return;
        }
    };
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("dags")).unwrap();
    std::fs::write(project.path().join("dags/client_dag.yaml"), DAG).unwrap();
    std::fs::write(project.path().join("dags/client_daily.yaml"), DAILY_DAG).unwrap();
    let port = support::free_port();
    std::fs::write(
        project.path().join("config.toml"),
        format!("[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\n\n[webserver]\nbind = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let log = project.path().join("serve.log");
    let daemon = support::ServerProcess::start(&project.path().join("config.toml"), "serve", &log);
    support::wait_for_port(port, &log);
    // The first start created `admin` and kept its generated password in the state folder.
    let password = std::fs::read_to_string(project.path().join("state/admin_password.txt")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow_client/client_check.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("client_dag")
        .arg("client_daily")
        .arg("admin")
        .arg(password.trim())
        .output()
        .unwrap();
    drop(daemon);
    assert!(
        output.status.success(),
        "the Airflow client check failed:\n{}\n{}\nserve log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
