//! What weir logs about an attempt names it: events written while an attempt runs (in the
//! executor) and while its end is recorded (in the scheduler) carry its `dag_id`, `run_id`,
//! `task_id` and `try_number`, through the same subscriber and JSON format `weir serve` logs with.

use std::io::Write;
use std::sync::{Arc, Mutex};

use weir::config::LogFormat;
use weir::domain::state::RunState;

use crate::support;
use crate::support::test_app::TestApp;

/// What the subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
            .collect()
    }
}

/// The one line whose message is `message`.
fn line_saying<'a>(lines: &'a [serde_json::Value], message: &str) -> &'a serde_json::Value {
    let matching: Vec<_> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == message)
        .collect();
    assert_eq!(matching.len(), 1, "one line says {message:?}: {lines:#?}");
    matching[0]
}

// On the test's thread (the default runtime): the scheduler and the attempt it runs log through
// the subscriber set for this thread.
#[tokio::test]
async fn what_an_attempt_logs_while_it_runs_and_is_recorded_names_its_dag_run_task_and_try() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let captured = Captured::default();
        let writer = captured.clone();
        let filter = tracing_subscriber::EnvFilter::new("warn");
        let subscriber = weir::telemetry::subscriber(LogFormat::Json, filter, false, move || writer.clone());
        let _default = tracing::subscriber::set_default(subscriber);
        let mut app = TestApp::new(&test_db, "dag_id: spans\ntasks:\n  blocked:\n    command: 'true'\n").await;
        // A file where the DAG's log folder should be: the attempt cannot open its log, which it
        // says while it runs, and it fails, which the scheduler says while recording its end.
        std::fs::create_dir_all(app.logs_dir()).unwrap();
        std::fs::write(app.logs_dir().join("spans"), "not a folder").unwrap();
        let run = app.trigger().await;
        assert_eq!(app.run_to_end(&run).await, RunState::Failed, "{label}");

        let lines = captured.lines();
        for message in ["shell attempt not started", "attempt failed"] {
            let line = line_saying(&lines, message);
            let span = &line["span"];
            assert_eq!(span["name"], "attempt", "{label}: {line}");
            assert_eq!(span["dag_id"], "spans", "{label}: {line}");
            assert_eq!(span["run_id"], run.run_id.as_str(), "{label}: {line}");
            assert_eq!(span["task_id"], "blocked", "{label}: {line}");
            assert_eq!(span["try_number"], 1, "{label}: {line}");
        }
    }
}
