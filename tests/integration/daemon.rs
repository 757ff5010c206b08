//! The `weir` binary as people run it: `weir serve` picking up CLI triggers and DAG folder
//! changes, and surviving a SIGKILL mid-task without losing or duplicating work (§3.9).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weir::domain::ids::{DagId, TaskId};
use weir::domain::state::{RunState, TaskState};
use weir::storage::runs::{self, RunFilter};
use weir::storage::{Db, task_instances};

use crate::support;

/// A project folder with a config pointing at the test database.
pub struct Project {
    folder: tempfile::TempDir,
}

impl Project {
    pub fn new(database_url: &str) -> Project {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(folder.path().join("dags")).unwrap();
        let config = format!(
            "[core]\ndags_folder = \"dags\"\nstate_dir = \"state\"\ntask_kill_grace = \"500ms\"\n\n[database]\nurl = \"{database_url}\"\n\n[webserver]\nbind = \"127.0.0.1:0\"\n"
        );
        std::fs::write(folder.path().join("config.toml"), config).unwrap();
        Project { folder }
    }

    pub fn path(&self) -> &Path {
        self.folder.path()
    }

    /// Adds sections (alert channels, ...) to the project's config.toml.
    pub fn append_config(&self, text: &str) {
        let path = self.path().join("config.toml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(text);
        std::fs::write(path, config).unwrap();
    }

    pub fn write_dag(&self, name: &str, yaml: &str) {
        // Written to a hidden name first and renamed, so the watcher never reads half a file.
        let hidden = self.path().join("dags").join(format!(".{name}.tmp"));
        std::fs::write(&hidden, yaml).unwrap();
        std::fs::rename(&hidden, self.path().join("dags").join(name)).unwrap();
    }

    pub fn weir(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("--config")
            .arg(self.path().join("config.toml"))
            .args(args)
            .env_remove("WEIR_CONFIG")
            .output()
            .unwrap()
    }

    pub fn serve(&self) -> Daemon {
        self.start("serve")
    }

    /// `weir <subcommand>` (`serve`, `scheduler`) in the background, its log in the project folder.
    pub fn start(&self, subcommand: &str) -> Daemon {
        let log = self.path().join(format!("{subcommand}-{}.log", std::process::id()));
        Daemon::start(&self.path().join("config.toml"), subcommand, &log)
    }
}

/// The real binary running as a daemon.
pub type Daemon = support::ServerProcess;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn only_run(db: &Db, dag_id: &str) -> Vec<runs::DagRun> {
    let mut connection = db.acquire().await.unwrap();
    let filter = RunFilter {
        dag_id: Some(DagId::parse(dag_id).unwrap()),
        ..RunFilter::default()
    };
    runs::list(&mut connection, &filter).await.unwrap()
}

#[tokio::test]
async fn a_daemon_killed_mid_task_ends_the_orphan_and_retries_after_restart() {
    for test_db in support::databases().await {
        let project = Project::new(&test_db.url);
        project.write_dag(
            "crash.yaml",
            r#"
dag_id: crash
tasks:
  work:
    command: 'if [ "$WEIR_TRY_NUMBER" = 1 ]; then sleep 300; fi; echo finished on try $WEIR_TRY_NUMBER'
    retries: 1
    retry_delay: 0s
"#,
        );
        assert!(project.weir(&["db", "migrate"]).status.success());
        let mut first = project.serve();
        let trigger = project.weir(&["dags", "trigger", "crash"]);
        assert!(
            trigger.status.success(),
            "{}: {}",
            test_db.label,
            String::from_utf8_lossy(&trigger.stderr)
        );

        let db = &test_db.db;
        let work = TaskId::parse("work").unwrap();
        let running_pid = || async {
            let run = only_run(db, "crash").await.into_iter().next()?;
            let mut connection = db.acquire().await.unwrap();
            let ti = task_instances::get(&mut connection, run.pk, &work).await.unwrap()?;
            if ti.state == TaskState::Running {
                ti.pid.map(|pid| i32::try_from(pid).unwrap())
            } else {
                None
            }
        };
        support::wait_until_async(
            "the first attempt runs with a recorded pid",
            Duration::from_secs(30),
            || async { running_pid().await.is_some() },
        )
        .await;
        let orphan = running_pid().await.unwrap();
        first.sigkill();
        assert!(
            !support::live_processes_in_group(orphan).is_empty(),
            "{}: the attempt outlives its killed daemon",
            test_db.label
        );

        let _second = project.serve();
        support::wait_until_async(
            "the run finishes after the restart",
            Duration::from_secs(60),
            || async {
                only_run(db, "crash")
                    .await
                    .first()
                    .is_some_and(|run| run.state.is_finished())
            },
        )
        .await;
        let runs = only_run(db, "crash").await;
        assert_eq!(runs.len(), 1, "{}: no run duplicated", test_db.label);
        assert_eq!(runs[0].state, RunState::Success, "{}", test_db.label);
        assert!(
            support::live_processes_in_group(orphan).is_empty(),
            "{}: the orphan was killed",
            test_db.label
        );
        let mut connection = db.acquire().await.unwrap();
        let attempts = task_instances::attempts(&mut connection, runs[0].pk, &work)
            .await
            .unwrap();
        assert_eq!(attempts.len(), 2, "{}", test_db.label);
        assert_eq!(attempts[0].state, TaskState::Failed);
        assert!(
            attempts[0]
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("scheduler running this attempt stopped")
        );
        assert_eq!(attempts[1].output.as_deref(), Some("\"finished on try 2\""));
        let log =
            std::fs::read_to_string(log_file(project.path(), "crash", runs[0].run_id.as_str(), "work", 1)).unwrap();
        assert!(
            log.contains("recovery at"),
            "{}: the first attempt's log keeps its lines and says how it ended:\n{log}",
            test_db.label
        );
    }
}

fn log_file(project: &Path, dag: &str, run: &str, task: &str, try_number: u32) -> PathBuf {
    project
        .join("state/logs")
        .join(dag)
        .join(run)
        .join(task)
        .join(format!("{try_number}.log"))
}

#[tokio::test]
async fn a_running_daemon_picks_up_cli_triggers_new_dag_files_and_broken_ones() {
    for test_db in support::databases().await {
        let project = Project::new(&test_db.url);
        project.write_dag(
            "first.yaml",
            "dag_id: first\ntasks:\n  hello: { command: 'echo hello' }\n",
        );
        assert!(project.weir(&["db", "migrate"]).status.success());
        let _daemon = project.serve();
        let db = &test_db.db;

        let trigger = project.weir(&["dags", "trigger", "first", "--wait"]);
        assert!(
            trigger.status.success(),
            "{}: {}",
            test_db.label,
            String::from_utf8_lossy(&trigger.stderr)
        );
        assert!(stdout(&trigger).contains("success"), "{}", stdout(&trigger));

        project.write_dag(
            "second.yaml",
            "dag_id: second\ntasks:\n  hello: { command: 'echo hi' }\n",
        );
        support::wait_until_async("the new DAG file is recorded", Duration::from_secs(20), || async {
            let mut connection = db.acquire().await.unwrap();
            weir::storage::dags::get(&mut connection, &DagId::parse("second").unwrap())
                .await
                .unwrap()
                .is_some()
        })
        .await;

        project.write_dag(
            "broken.yaml",
            "dag_id: broken\ntasks:\n  a: { command: 'true', retires: 2 }\n",
        );
        let mut listed = String::new();
        support::wait_until("the broken file is an import error", Duration::from_secs(20), || {
            listed = stdout(&project.weir(&["import-errors", "--output", "json"]));
            listed.contains("broken.yaml")
        })
        .await;
        let errors: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let error = &errors[0];
        assert_eq!(
            (error["line"].as_u64(), error["column"].as_u64()),
            (Some(3), Some(25)),
            "{}: {error}",
            test_db.label
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("unknown key `retires` in `tasks.a`: did you mean `retries`?"),
            "{error}"
        );

        std::fs::remove_file(project.path().join("dags/first.yaml")).unwrap();
        support::wait_until_async("the removed DAG becomes inactive", Duration::from_secs(20), || async {
            let mut connection = db.acquire().await.unwrap();
            let record = weir::storage::dags::get(&mut connection, &DagId::parse("first").unwrap())
                .await
                .unwrap();
            record.is_some_and(|record| !record.is_active)
        })
        .await;
        assert_eq!(
            only_run(db, "first").await.len(),
            1,
            "{}: its history stays",
            test_db.label
        );
    }
}

#[tokio::test]
async fn a_clean_shutdown_interrupts_a_task_without_using_its_retry_and_it_runs_after_restart() {
    for test_db in support::databases().await {
        let project = Project::new(&test_db.url);
        project.write_dag(
            "deploy.yaml",
            "dag_id: deploy\ntasks:\n  work:\n    command: 'if [ \"$WEIR_TRY_NUMBER\" = 1 ]; then sleep 300; fi; echo ok'\n",
        );
        assert!(project.weir(&["db", "migrate"]).status.success());
        let mut first = project.serve();
        assert!(project.weir(&["dags", "trigger", "deploy"]).status.success());
        let db = &test_db.db;
        let work = TaskId::parse("work").unwrap();
        let instance = || async {
            let run = only_run(db, "deploy").await.into_iter().next()?;
            let mut connection = db.acquire().await.unwrap();
            task_instances::get(&mut connection, run.pk, &work).await.unwrap()
        };
        support::wait_until_async("the attempt runs", Duration::from_secs(30), || async {
            instance()
                .await
                .is_some_and(|ti| ti.state == TaskState::Running && ti.pid.is_some())
        })
        .await;
        let group = i32::try_from(instance().await.unwrap().pid.unwrap()).unwrap();
        assert!(
            first.stop().success(),
            "{}: weir serve exits 0 on SIGTERM",
            test_db.label
        );
        assert!(
            support::live_processes_in_group(group).is_empty(),
            "{}: the task was stopped with weir",
            test_db.label
        );
        let interrupted = instance().await.unwrap();
        assert_eq!(
            (interrupted.state, interrupted.try_number, interrupted.max_tries),
            (TaskState::Scheduled, 1, 2),
            "{}: scheduled again with its single try refunded",
            test_db.label
        );

        let _second = project.serve();
        support::wait_until_async(
            "the run finishes after the restart",
            Duration::from_secs(60),
            || async {
                only_run(db, "deploy")
                    .await
                    .first()
                    .is_some_and(|run| run.state.is_finished())
            },
        )
        .await;
        assert_eq!(
            only_run(db, "deploy").await[0].state,
            RunState::Success,
            "{}",
            test_db.label
        );
    }
}
