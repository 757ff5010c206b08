//! `weir serve` killed with SIGKILL while tasks run: an attempt cut by the daemon's death runs
//! again without using a retry, and one that finished while the daemon was dead is recorded from
//! its exit record and not run again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use weir::domain::ids::{DagId, TaskId};
use weir::domain::state::{RunState, TaskState};
use weir::storage::runs::{self, DagRun, RunFilter};
use weir::storage::{Db, task_instances};

use crate::daemon::Project;
use crate::support;

const PATIENCE: Duration = Duration::from_secs(60);

async fn the_run(db: &Db, dag_id: &str) -> Option<DagRun> {
    let mut connection = db.acquire().await.unwrap();
    let filter = RunFilter {
        dag_id: Some(DagId::parse(dag_id).unwrap()),
        ..RunFilter::default()
    };
    let mut listed = runs::list(&mut connection, &filter).await.unwrap();
    assert!(listed.len() <= 1, "one run only, found {}", listed.len());
    listed.pop()
}

async fn instance(db: &Db, dag_id: &str, task: &str) -> Option<task_instances::TaskInstance> {
    let run = the_run(db, dag_id).await?;
    let mut connection = db.acquire().await.unwrap();
    task_instances::get(&mut connection, run.pk, &TaskId::parse(task).unwrap())
        .await
        .unwrap()
}

/// The process group of `task`'s try `try_number`, once the daemon recorded it running.
async fn running_group(db: &Db, dag_id: &str, task: &str, try_number: u32) -> i32 {
    let group = || async {
        instance(db, dag_id, task)
            .await
            .filter(|ti| ti.state == TaskState::Running && ti.try_number == try_number)
            .and_then(|ti| ti.pid)
            .map(|pid| i32::try_from(pid).unwrap())
    };
    support::wait_until_async(
        &format!("try {try_number} of {task} runs with a recorded pid"),
        PATIENCE,
        || async { group().await.is_some() },
    )
    .await;
    group().await.unwrap()
}

async fn finished_run(db: &Db, dag_id: &str) -> DagRun {
    support::wait_until_async("the run finishes", PATIENCE, || async {
        the_run(db, dag_id).await.is_some_and(|run| run.state.is_finished())
    })
    .await;
    the_run(db, dag_id).await.unwrap()
}

fn attempt_file(project: &Path, run: &DagRun, task: &str, name: &str) -> PathBuf {
    project
        .join("state/logs")
        .join(run.dag_id.as_str())
        .join(run.run_id.as_str())
        .join(task)
        .join(name)
}

#[tokio::test]
async fn a_task_without_retries_whose_tries_are_cut_by_two_daemon_kills_still_succeeds() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let db = &test_db.db;
        let project = Project::new(&test_db.url);
        project.write_dag(
            "cut.yaml",
            "dag_id: cut\ntasks:\n  work:\n    command: 'if [ \"$WEIR_TRY_NUMBER\" -lt 3 ]; then sleep 300; fi; echo finished on try $WEIR_TRY_NUMBER'\n    retries: 0\n",
        );
        assert!(project.weir(&["db", "migrate"]).status.success(), "{label}");
        let mut daemon = project.serve();
        assert!(project.weir(&["dags", "trigger", "cut"]).status.success(), "{label}");
        let mut orphans = Vec::new();
        for try_number in [1, 2] {
            orphans.push(running_group(db, "cut", "work", try_number).await);
            daemon.sigkill();
            daemon = project.serve();
        }

        let run = finished_run(db, "cut").await;
        assert_eq!(run.state, RunState::Success, "{label}");
        for orphan in orphans {
            assert!(
                support::live_processes_in_group(orphan).is_empty(),
                "{label}: the cut try's processes were killed"
            );
        }
        let work = TaskId::parse("work").unwrap();
        let mut connection = db.acquire().await.unwrap();
        let ti = task_instances::get(&mut connection, run.pk, &work)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (ti.state, ti.try_number, ti.crash_ends, ti.max_tries),
            (TaskState::Success, 3, 2, 3),
            "{label}: two crash-ended tries given back, no retry needed"
        );
        let attempts = task_instances::attempts(&mut connection, run.pk, &work).await.unwrap();
        let ends: Vec<(u32, TaskState, String)> = attempts
            .iter()
            .map(|attempt| {
                let error = attempt.error.clone().unwrap_or_default();
                (
                    attempt.try_number,
                    attempt.state,
                    error.split(';').next().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let cut = "crash-ended: the scheduler running this attempt stopped (crash or kill) before it ended".to_string();
        assert_eq!(
            ends,
            vec![
                (1, TaskState::Failed, cut.clone()),
                (2, TaskState::Failed, cut),
                (3, TaskState::Success, String::new()),
            ],
            "{label}"
        );
        assert_eq!(attempts[2].output.as_deref(), Some("\"finished on try 3\""), "{label}");
        let log = std::fs::read_to_string(attempt_file(project.path(), &run, "work", "2.log")).unwrap();
        assert!(log.contains("recorded it as crash-ended"), "{label}: {log}");
        drop(daemon);
    }
}

#[tokio::test]
async fn a_task_that_ended_while_the_daemon_was_dead_is_recorded_from_its_exit_record() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let db = &test_db.db;
        let project = Project::new(&test_db.url);
        // Both wait for `go`, which the test writes once the daemon is dead. `quiet` then
        // finishes its work and leaves its output; `chatty` prints, and its stdout, a pipe to
        // the dead daemon, kills it with SIGPIPE on its first try: the crash's doing, not its own.
        project.write_dag(
            "late.yaml",
            r#"
dag_id: late
tasks:
  quiet:
    command: 'while [ ! -f go ]; do sleep 0.05; done; echo "try $WEIR_TRY_NUMBER" >> quiet.ran; echo done > "$WEIR_OUTPUT"'
    retries: 0
  chatty:
    command: 'if [ "$WEIR_TRY_NUMBER" = 1 ]; then while [ ! -f go ]; do sleep 0.05; done; fi; echo printed on try $WEIR_TRY_NUMBER'
    retries: 0
"#,
        );
        assert!(project.weir(&["db", "migrate"]).status.success(), "{label}");
        let mut daemon = project.serve();
        assert!(project.weir(&["dags", "trigger", "late"]).status.success(), "{label}");
        running_group(db, "late", "quiet", 1).await;
        running_group(db, "late", "chatty", 1).await;
        daemon.sigkill();
        let run = the_run(db, "late").await.unwrap();
        std::fs::write(project.path().join("dags/go"), "").unwrap();
        let records = ["quiet", "chatty"].map(|task| attempt_file(project.path(), &run, task, "1.exit"));
        support::wait_until("both tasks recorded their exit", PATIENCE, || {
            records
                .iter()
                .all(|record| std::fs::read_to_string(record).is_ok_and(|text| text.ends_with('\n')))
        })
        .await;
        assert_eq!(std::fs::read_to_string(&records[0]).unwrap(), "0\n", "{label}");
        assert_eq!(std::fs::read_to_string(&records[1]).unwrap(), "141 gone\n", "{label}");

        let _daemon = project.serve();
        let run = finished_run(db, "late").await;
        assert_eq!(run.state, RunState::Success, "{label}");
        let mut connection = db.acquire().await.unwrap();
        let quiet = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("quiet").unwrap())
            .await
            .unwrap();
        assert_eq!(
            quiet
                .iter()
                .map(|attempt| (attempt.try_number, attempt.state, attempt.output.clone()))
                .collect::<Vec<_>>(),
            vec![(1, TaskState::Success, Some("\"done\"".to_string()))],
            "{label}: finished once, recorded as finished"
        );
        assert_eq!(
            std::fs::read_to_string(project.path().join("dags/quiet.ran")).unwrap(),
            "try 1\n",
            "{label}: not run again"
        );
        let chatty = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("chatty").unwrap())
            .await
            .unwrap();
        assert_eq!(
            chatty
                .iter()
                .map(|attempt| (attempt.try_number, attempt.state, attempt.exit_code))
                .collect::<Vec<_>>(),
            vec![(1, TaskState::Failed, Some(141)), (2, TaskState::Success, Some(0))],
            "{label}: the try its dead daemon's closed pipe killed ran again"
        );
        let error = chatty[0].error.clone().unwrap_or_default();
        assert!(
            error.contains("crash-ended") && error.contains("exited with code 141 after its scheduler was gone"),
            "{label}: {error}"
        );
    }
}
