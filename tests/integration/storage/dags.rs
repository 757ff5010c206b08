//! The `dag` table: recording parsed DAGs, pausing, retiring and planning their next run.

use std::collections::HashMap;

use weir::domain::dag::Dag;
use weir::storage::StorageError;
use weir::storage::dags::{self, DagRecord};

use super::{PIPELINE, at, dag_id};
use crate::support::{TestDb, dag, databases};

#[tokio::test]
async fn a_new_dag_is_paused_when_it_asks_to_be_and_an_update_keeps_its_pause_flag() {
    let paused_at_creation = dag("
dag_id: cautious
is_paused_upon_creation: true
tasks:
  only: { command: 'true' }
");
    let active_at_creation = dag("
dag_id: eager
tasks:
  only: { command: 'true' }
");
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.expect(label);
        let now = at("2026-03-01T12:00:00Z");
        assert!(
            dags::upsert(&mut connection, &paused_at_creation, now)
                .await
                .expect(label),
            "{label}: new"
        );
        assert!(
            dags::upsert(&mut connection, &active_at_creation, now)
                .await
                .expect(label),
            "{label}: new"
        );
        let cautious = dags::get(&mut connection, &paused_at_creation.dag_id)
            .await
            .expect(label)
            .expect(label);
        assert!(cautious.is_paused && cautious.is_active, "{label}: {cautious:?}");
        let eager = dags::get(&mut connection, &active_at_creation.dag_id)
            .await
            .expect(label)
            .expect(label);
        assert!(!eager.is_paused, "{label}: {eager:?}");

        dags::set_paused(&mut connection, &paused_at_creation.dag_id, false)
            .await
            .expect(label);
        dags::set_paused(&mut connection, &active_at_creation.dag_id, true)
            .await
            .expect(label);
        let later = at("2026-03-01T12:05:00Z");
        assert!(
            !dags::upsert(&mut connection, &paused_at_creation, later)
                .await
                .expect(label),
            "{label}: updated, not new"
        );
        assert!(
            !dags::upsert(&mut connection, &active_at_creation, later)
                .await
                .expect(label),
            "{label}: updated, not new"
        );
        let cautious = dags::get(&mut connection, &paused_at_creation.dag_id)
            .await
            .expect(label)
            .expect(label);
        assert!(!cautious.is_paused, "{label}: an update must not re-pause");
        assert_eq!(cautious.last_parsed_at, later, "{label}");
        let eager = dags::get(&mut connection, &active_at_creation.dag_id)
            .await
            .expect(label)
            .expect(label);
        assert!(eager.is_paused, "{label}: an update must not unpause");
    }
}

#[tokio::test]
async fn every_field_of_a_dag_round_trips_through_get_and_list_to_the_microsecond() {
    let pipeline = dag(PIPELINE);
    let minimal = dag("
dag_id: adhoc
tasks:
  only: { command: 'true' }
");
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.expect(label);
        let parsed_at = at("2026-03-01T12:00:00.123456Z");
        dags::upsert(&mut connection, &pipeline, parsed_at).await.expect(label);
        dags::upsert(&mut connection, &minimal, parsed_at).await.expect(label);
        let next_logical = at("2026-03-02T05:30:00.000001Z");
        let next_run_after = at("2026-03-03T05:30:00.999999Z");
        dags::set_next_run(
            &mut connection,
            &pipeline.dag_id,
            Some(next_logical),
            Some(next_run_after),
        )
        .await
        .expect(label);

        let expected_pipeline = DagRecord {
            dag_id: dag_id("orders_pipeline"),
            fileloc: "dags/test.yaml".to_string(),
            is_paused: false,
            is_active: true,
            schedule: "30 6 * * *".to_string(),
            timezone: "Europe/Berlin".to_string(),
            owner: "data-team".to_string(),
            description: Some("Loads yesterday's orders".to_string()),
            tags: vec!["orders".to_string(), "daily".to_string()],
            next_dagrun_logical_date: Some(next_logical),
            next_dagrun_run_after: Some(next_run_after),
            last_parsed_at: parsed_at,
        };
        let expected_minimal = DagRecord {
            dag_id: dag_id("adhoc"),
            fileloc: "dags/test.yaml".to_string(),
            is_paused: false,
            is_active: true,
            schedule: minimal.timetable.schedule.describe(),
            timezone: "UTC".to_string(),
            owner: "weir".to_string(),
            description: None,
            tags: Vec::new(),
            next_dagrun_logical_date: None,
            next_dagrun_run_after: None,
            last_parsed_at: parsed_at,
        };
        assert_eq!(
            dags::get(&mut connection, &pipeline.dag_id).await.expect(label),
            Some(expected_pipeline.clone()),
            "{label}"
        );
        assert_eq!(
            dags::list(&mut connection).await.expect(label),
            vec![expected_minimal, expected_pipeline],
            "{label}: listed by dag id"
        );

        dags::set_next_run(&mut connection, &pipeline.dag_id, None, None)
            .await
            .expect(label);
        let cleared = dags::get(&mut connection, &pipeline.dag_id)
            .await
            .expect(label)
            .expect(label);
        assert_eq!(cleared.next_dagrun_logical_date, None, "{label}");
        assert_eq!(cleared.next_dagrun_run_after, None, "{label}");
        assert_eq!(
            dags::get(&mut connection, &dag_id("never_loaded")).await.expect(label),
            None,
            "{label}"
        );
    }
}

#[tokio::test]
async fn pausing_a_dag_that_was_never_loaded_is_not_found() {
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.expect(label);
        match dags::set_paused(&mut connection, &dag_id("ghost"), true).await {
            Err(StorageError::NotFound(message)) => {
                assert!(message.contains("`ghost`"), "{label}: {message}");
            }
            other => panic!("{label}: expected NotFound, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn deactivating_others_retires_only_the_dags_not_listed_and_forgets_their_next_run() {
    let dags_by_id: Vec<Dag> = ["kept_a", "gone", "kept_b"]
        .iter()
        .map(|id| dag(&format!("dag_id: {id}\ntasks:\n  only: {{ command: 'true' }}\n")))
        .collect();
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.expect(label);
        let now = at("2026-03-01T12:00:00Z");
        for each in &dags_by_id {
            dags::upsert(&mut connection, each, now).await.expect(label);
        }
        dags::set_next_run(&mut connection, &dag_id("gone"), Some(now), Some(now))
            .await
            .expect(label);
        let active = [dag_id("kept_a"), dag_id("kept_b")];
        assert_eq!(
            dags::deactivate_others(&mut connection, &active).await.expect(label),
            1,
            "{label}"
        );
        let records: HashMap<String, DagRecord> = dags::list(&mut connection)
            .await
            .expect(label)
            .into_iter()
            .map(|record| (record.dag_id.to_string(), record))
            .collect();
        assert!(records["kept_a"].is_active && records["kept_b"].is_active, "{label}");
        assert!(!records["gone"].is_active, "{label}");
        assert_eq!(records["gone"].next_dagrun_logical_date, None, "{label}");
        assert_eq!(records["gone"].next_dagrun_run_after, None, "{label}");
        assert_eq!(
            dags::deactivate_others(&mut connection, &active).await.expect(label),
            0,
            "{label}: already inactive"
        );
        assert!(
            !dags::upsert(&mut connection, &dags_by_id[1], now).await.expect(label),
            "{label}: updated, not new"
        );
        let back = dags::get(&mut connection, &dag_id("gone"))
            .await
            .expect(label)
            .expect(label);
        assert!(back.is_active, "{label}: a DAG file that returns is active again");
    }
}
