//! A whole daemon built with `Daemon::build` and run in the test process on port 0, on SQLite and
//! PostgreSQL: it serves HTTP, runs what is triggered, reads `WEIR_VAR_*` from the environment it
//! was given (not the process's), stops when cancelled, and stops by itself with the reason when
//! its database becomes one it cannot use.

use weir::daemon::DaemonError;
use weir::domain::state::RunState;

use crate::support;
use crate::support::test_app::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_on_port_zero_serves_runs_what_is_triggered_and_stops_when_cancelled() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let out = tempfile::tempdir().unwrap();
        let seen = out.path().join("seen.txt");
        let yaml = format!(
            "dag_id: greet\ntasks:\n  greet:\n    command: printf '%s' {{{{ var.greeting }}}} > {}\n",
            seen.display()
        );
        let app = TestApp::builder(&test_db)
            .dag(&yaml)
            .env("WEIR_VAR_GREETING", "hello-from-the-snapshot")
            .start()
            .await;
        assert!(
            std::env::var("WEIR_VAR_GREETING").is_err(),
            "{label}: the value reaches weir without the test process's environment"
        );

        assert_eq!(
            app.get_status("/api/v2/monitor/health").await,
            "HTTP/1.1 200 OK",
            "{label}: the web server answers on its port"
        );

        let dag = weir::domain::dag::Dag::from_yaml(
            &app.config.dags_folder.join("dag0.yaml"),
            &yaml,
            &app.config.validation_context(),
        )
        .unwrap();
        let run = app.trigger(&dag).await;
        app.drive_until("the triggered run finishes", || async {
            app.run_state(&run).await.is_finished()
        })
        .await;
        assert_eq!(app.run_state(&run).await, RunState::Success, "{label}");
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap(),
            "hello-from-the-snapshot",
            "{label}: the task saw the variable from the environment weir was started with"
        );

        let stopped = app.stop().await;
        assert!(
            stopped.is_ok(),
            "{label}: a cancelled daemon stops cleanly: {stopped:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_moved_ahead_stops_the_daemon_by_itself_with_the_reason() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut app = TestApp::builder(&test_db).start().await;
        // A newer weir migrated the database while this one runs.
        let mut connection = test_db.db.acquire().await.unwrap();
        sqlx::query(
            "INSERT INTO weir_migrations (version, description, applied_at) VALUES (999, 'from a newer weir', 0)",
        )
        .execute(&mut *connection)
        .await
        .unwrap();
        drop(connection);
        match app.wait().await {
            Err(DaemonError::Fatal(reason)) => assert!(
                reason.contains("the scheduler stopped") && reason.contains("newer than this weir"),
                "{label}: {reason}"
            ),
            other => panic!("{label}: expected a fatal stop, got {other:?}"),
        }
    }
}
