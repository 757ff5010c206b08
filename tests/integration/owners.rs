//! Who owns an attempt, with real `weir` processes: a second scheduler leaves the first one's
//! running task alone (on SQLite it is refused), and a daemon takes over the run of a
//! `weir dags test` killed mid-task (its processes killed, the run finished, the DAG not blocked).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use weir::domain::ids::{DagId, TaskId};
use weir::domain::liveness::{SchedulerKind, SchedulerRecord};
use weir::domain::state::{RunState, TaskState};
use weir::storage::runs::{self, DagRun, RunFilter};
use weir::storage::{Backend, Db, schedulers, task_instances};

use crate::daemon::Project;
use crate::support;

/// A task that runs (a shell waiting in `sleep`s) until the file `release` exists.
fn held_until(release: &Path) -> String {
    format!(
        "until [ -e '{}' ]; do sleep 0.1; done; echo released",
        release.display()
    )
}

async fn runs_of(db: &Db, dag_id: &str) -> Vec<DagRun> {
    let mut connection = db.acquire().await.unwrap();
    let filter = RunFilter {
        dag_id: Some(DagId::parse(dag_id).unwrap()),
        ..RunFilter::default()
    };
    runs::list(&mut connection, &filter).await.unwrap()
}

async fn instance(db: &Db, run: &DagRun, task: &str) -> Option<task_instances::TaskInstance> {
    let mut connection = db.acquire().await.unwrap();
    task_instances::get(&mut connection, run.pk, &TaskId::parse(task).unwrap())
        .await
        .unwrap()
}

/// The running attempt of `task` in the first run of `dag_id`, once it has a pid.
async fn running_attempt(db: &Db, dag_id: &str, task: &str) -> Option<(DagRun, task_instances::TaskInstance)> {
    let run = runs_of(db, dag_id).await.into_iter().next()?;
    let ti = instance(db, &run, task).await?;
    (ti.state == TaskState::Running && ti.pid.is_some()).then_some((run, ti))
}

/// The scheduler row of the live process `pid`.
async fn scheduler_of(db: &Db, pid: u32) -> Option<SchedulerRecord> {
    let mut connection = db.acquire().await.unwrap();
    schedulers::not_stopped(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.pid == pid)
}

/// Waits until the scheduler of process `pid` has looked for orphans after `since`: it records
/// its heartbeat right after each recovery (at start, then every 10 s).
async fn wait_for_recovery_after(db: &Db, pid: u32, since: chrono::DateTime<chrono::Utc>, what: &str) {
    support::wait_until_async(what, Duration::from_secs(60), || async {
        scheduler_of(db, pid).await.is_some_and(|row| row.heartbeat_at > since)
    })
    .await;
}

/// The exit of `child` within `deadline`, or a failed test (the child killed first).
async fn exit_within(mut child: Child, deadline: Duration, what: &str) -> std::process::Output {
    let mut exited = false;
    support::wait_until(what, deadline, || {
        exited = child.try_wait().unwrap().is_some();
        exited
    })
    .await;
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_second_scheduler_leaves_the_first_ones_running_task_alone_and_sqlite_refuses_it() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let db = &test_db.db;
        let project = Project::new(&test_db.url);
        let release = project.path().join("release");
        project.write_dag(
            "hold.yaml",
            &format!(
                "dag_id: hold\ntasks:\n  work:\n    command: \"{}\"\n    retries: 1\n",
                held_until(&release)
            ),
        );
        assert!(project.weir(&["db", "migrate"]).status.success(), "{label}");
        let first = project.serve();
        assert!(project.weir(&["dags", "trigger", "hold"]).status.success(), "{label}");
        support::wait_until_async("the first daemon runs the task", Duration::from_secs(30), || async {
            running_attempt(db, "hold", "work").await.is_some()
        })
        .await;
        let (run, before) = running_attempt(db, "hold", "work").await.unwrap();
        let group = i32::try_from(before.pid.unwrap()).unwrap();

        match db.backend() {
            Backend::Postgres => {
                let mut second = project.start("scheduler");
                support::wait_until_async("the second scheduler registers", Duration::from_secs(30), || async {
                    scheduler_of(db, second.pid()).await.is_some()
                })
                .await;
                let registered = scheduler_of(db, second.pid()).await.unwrap();
                assert_eq!(registered.kind, SchedulerKind::Daemon, "{label}");
                // Past its start-up recovery and one periodic recovery.
                wait_for_recovery_after(
                    db,
                    second.pid(),
                    registered.started_at + chrono::Duration::seconds(10),
                    "the second scheduler has looked for orphans twice",
                )
                .await;
                let after = instance(db, &run, "work").await.unwrap();
                assert_eq!(
                    (after.state, after.try_number, after.pid),
                    (TaskState::Running, 1, before.pid),
                    "{label}: the first daemon's attempt is untouched"
                );
                assert!(
                    !support::live_processes_in_group(group).is_empty(),
                    "{label}: its process still runs"
                );
                assert!(second.stop().success(), "{label}: the second scheduler stops cleanly");
                let mut connection = db.acquire().await.unwrap();
                let stopped = schedulers::get_many(&mut connection, &[registered.id]).await.unwrap();
                assert!(stopped[0].stopped_at.is_some(), "{label}: a clean stop is recorded");
            }
            Backend::Sqlite => {
                let second = Command::new(env!("CARGO_BIN_EXE_weir"))
                    .arg("--config")
                    .arg(project.path().join("config.toml"))
                    .arg("scheduler")
                    .env_remove("WEIR_CONFIG")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let refused = exit_within(second, Duration::from_secs(30), "the second scheduler exits").await;
                let stderr = String::from_utf8_lossy(&refused.stderr);
                assert!(!refused.status.success(), "{label}: refused\n{stderr}");
                assert!(
                    stderr.contains(&format!("another weir scheduler (pid {} on host ", first.pid()))
                        && stderr.contains("is running against this SQLite database")
                        && stderr.contains("stop it first, or use PostgreSQL"),
                    "{label}: the message names the running scheduler and the way out:\n{stderr}"
                );
                let after = instance(db, &run, "work").await.unwrap();
                assert_eq!(
                    (after.state, after.try_number),
                    (TaskState::Running, 1),
                    "{label}: the first daemon's attempt is untouched"
                );
                assert!(!support::live_processes_in_group(group).is_empty(), "{label}");
            }
        }

        std::fs::write(&release, "").unwrap();
        support::wait_until_async("the run finishes", Duration::from_secs(30), || async {
            runs_of(db, "hold").await[0].state.is_finished()
        })
        .await;
        assert_eq!(runs_of(db, "hold").await[0].state, RunState::Success, "{label}");
        let mut connection = db.acquire().await.unwrap();
        let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("work").unwrap())
            .await
            .unwrap();
        assert_eq!(
            attempts.len(),
            1,
            "{label}: one attempt, never ended by the second scheduler"
        );
        assert_eq!(attempts[0].output.as_deref(), Some("\"released\""), "{label}");
        drop(first);
    }
}

#[tokio::test]
async fn a_killed_dags_test_is_recovered_by_the_daemon_and_its_dag_runs_again() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let db = &test_db.db;
        let project = Project::new(&test_db.url);
        let release = project.path().join("release");
        project.write_dag(
            "single.yaml",
            &format!(
                "dag_id: single\nmax_active_runs: 1\ntasks:\n  work:\n    command: \"{}\"\n    retries: 0\n",
                held_until(&release)
            ),
        );
        project.write_dag("quick.yaml", "dag_id: quick\ntasks:\n  hello: { command: 'echo hi' }\n");
        assert!(project.weir(&["db", "migrate"]).status.success(), "{label}");
        let daemon_process = project.serve();

        let quick = project.weir(&["dags", "test", "quick"]);
        assert!(
            quick.status.success(),
            "{label}: `weir dags test` works beside a daemon\n{}",
            String::from_utf8_lossy(&quick.stderr)
        );

        let log = std::fs::File::create(project.path().join("dags-test.log")).unwrap();
        let mut test = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("--config")
            .arg(project.path().join("config.toml"))
            .args(["dags", "test", "single"])
            .env_remove("WEIR_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        support::wait_until_async("the test run's task runs", Duration::from_secs(30), || async {
            running_attempt(db, "single", "work").await.is_some()
        })
        .await;
        let (run, attempt) = running_attempt(db, "single", "work").await.unwrap();
        assert!(run.owner.is_some(), "{label}: `weir dags test` owns its run");
        let group = i32::try_from(attempt.pid.unwrap()).unwrap();
        // A heartbeat recorded 10 s after the attempt started follows a recovery that saw it.
        wait_for_recovery_after(
            db,
            daemon_process.pid(),
            attempt.start_date.unwrap() + chrono::Duration::seconds(10),
            "the daemon has looked for orphans while the test runs",
        )
        .await;
        let untouched = instance(db, &run, "work").await.unwrap();
        assert_eq!(
            (untouched.state, untouched.try_number),
            (TaskState::Running, 1),
            "{label}: a live `weir dags test`'s attempt is left alone"
        );

        test.kill().unwrap();
        test.wait().unwrap();
        // The daemon adopts the run; the attempt its dead `weir dags test` left is crash-ended
        // (its processes killed) and runs again under the daemon without using `retries: 0`.
        support::wait_until_async("the daemon runs the task again", Duration::from_secs(60), || async {
            instance(db, &run, "work")
                .await
                .is_some_and(|ti| ti.try_number == 2 && ti.state == TaskState::Running)
        })
        .await;
        let adopted = runs_of(db, "single").await.remove(0);
        assert_eq!(
            (adopted.state, adopted.owner.as_deref()),
            (RunState::Running, None),
            "{label}: adopted by the daemon"
        );
        assert!(
            support::live_processes_in_group(group).is_empty(),
            "{label}: the orphaned processes were killed"
        );
        // Not checked right after the kill (the daemon may already be recovering): the log
        // says the attempt's processes outlived their `weir dags test` and recovery killed them.
        let log = project
            .path()
            .join("state/logs/single")
            .join(run.run_id.as_str())
            .join("work/1.log");
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(
            log.contains("recovery at") && log.contains("killed leftover processes"),
            "{label}:\n{log}"
        );
        let mut connection = db.acquire().await.unwrap();
        let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("work").unwrap())
            .await
            .unwrap();
        drop(connection);
        assert_eq!(attempts[0].state, TaskState::Failed, "{label}");
        let error = attempts[0].error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("crash-ended: the scheduler running this attempt stopped"),
            "{label}: {error}"
        );

        std::fs::write(&release, "").unwrap();
        support::wait_until_async("the adopted run finishes", Duration::from_secs(60), || async {
            runs_of(db, "single").await[0].state.is_finished()
        })
        .await;
        assert_eq!(runs_of(db, "single").await[0].state, RunState::Success, "{label}");
        assert!(project.weir(&["dags", "trigger", "single"]).status.success(), "{label}");
        support::wait_until_async(
            "a new run of the max_active_runs: 1 DAG finishes",
            Duration::from_secs(30),
            || async {
                let runs = runs_of(db, "single").await;
                runs.len() == 2 && runs.iter().all(|run| run.state.is_finished())
            },
        )
        .await;
        let runs = runs_of(db, "single").await;
        assert!(
            runs.iter().all(|run| run.state == RunState::Success),
            "{label}: {runs:?}"
        );
        drop(daemon_process);
    }
}
