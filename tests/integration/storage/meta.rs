//! Import errors, and the values the scheduler shares with other processes: the change
//! counter and its heartbeat.

use weir::domain::connection::Connection;
use weir::secrets::SecretsKey;
use weir::storage::import_errors::{self, NewImportError};
use weir::storage::variables::{self, Variable};
use weir::storage::{self, Db, connections};

use super::at;
use crate::support::{TestDb, databases};

#[tokio::test]
async fn import_errors_are_replaced_as_a_whole_and_listed_by_place() {
    let problem = |filename: &str, line: u32, column: u32, message: &str| NewImportError {
        filename: filename.to_string(),
        line,
        column,
        message: message.to_string(),
    };
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.acquire().await.expect(label);
        let first_scan = at("2026-03-01T12:00:00.000001Z");
        import_errors::replace_all(
            &mut connection,
            &[
                problem("dags/b.yaml", 3, 5, "unknown task `x`"),
                problem("dags/a.yaml", 9, 1, "cycle: a -> b -> a"),
                problem("dags/a.yaml", 2, 7, "`every day` is not a schedule"),
            ],
            first_scan,
        )
        .await
        .expect(label);
        let listed = import_errors::list(&mut connection).await.expect(label);
        let places: Vec<String> = listed
            .iter()
            .map(|error| format!("{}:{}:{}: {}", error.filename, error.line, error.column, error.message))
            .collect();
        assert_eq!(
            places,
            [
                "dags/a.yaml:2:7: `every day` is not a schedule",
                "dags/a.yaml:9:1: cycle: a -> b -> a",
                "dags/b.yaml:3:5: unknown task `x`",
            ],
            "{label}"
        );
        assert!(
            listed.iter().all(|error| error.timestamp == first_scan),
            "{label}: {listed:?}"
        );

        let second_scan = at("2026-03-01T12:01:00Z");
        import_errors::replace_all(
            &mut connection,
            &[problem("dags/c.yaml", 1, 1, "empty file")],
            second_scan,
        )
        .await
        .expect(label);
        let listed = import_errors::list(&mut connection).await.expect(label);
        assert_eq!(listed.len(), 1, "{label}: {listed:?}");
        assert_eq!(
            (listed[0].filename.as_str(), listed[0].timestamp),
            ("dags/c.yaml", second_scan),
            "{label}"
        );

        import_errors::replace_all(&mut connection, &[], second_scan)
            .await
            .expect(label);
        assert!(
            import_errors::list(&mut connection).await.expect(label).is_empty(),
            "{label}"
        );
    }
}

#[tokio::test]
async fn committing_a_write_schedulers_keep_moves_the_change_counter_once_and_nothing_else_does() {
    let key = SecretsKey::from_passphrase("weir-tests");
    let variable = |value: &str| Variable {
        key: "region".to_string(),
        value: value.to_string(),
        description: None,
    };
    for TestDb { db, url, label, .. } in &databases().await {
        let mut scheduler = db.acquire().await.expect(label);
        let before = storage::change_sequence(&mut scheduler).await.expect(label);
        let cli = Db::connect(url).await.expect(label);

        // Reads, and writes rolled back, move nothing.
        let mut transaction = cli.begin().await.expect(label);
        variables::get(&mut transaction, "region", &key).await.expect(label);
        transaction.commit().await.expect(label);
        let mut transaction = cli.begin().await.expect(label);
        variables::set(&mut transaction, &variable("kr"), &key)
            .await
            .expect(label);
        transaction.rollback().await.expect(label);
        assert_eq!(
            storage::change_sequence(&mut scheduler).await.expect(label),
            before,
            "{label}"
        );

        // Two writes in one committed transaction: the counter moves once, with them.
        let mut transaction = cli.begin().await.expect(label);
        variables::set(&mut transaction, &variable("kr"), &key)
            .await
            .expect(label);
        let warehouse = Connection::from_url("warehouse", "postgres://loader@db-host/dw").expect(label);
        connections::insert(&mut transaction, &warehouse, &key)
            .await
            .expect(label);
        assert_eq!(
            storage::change_sequence(&mut scheduler).await.expect(label),
            before,
            "{label}: nothing is visible before the commit"
        );
        transaction.commit().await.expect(label);
        assert_eq!(
            storage::change_sequence(&mut scheduler).await.expect(label),
            before + 1,
            "{label}"
        );

        // The scheduler's own run creation is not announced.
        let mut transaction = cli.begin_for_scheduler().await.expect(label);
        variables::set(&mut transaction, &variable("us"), &key)
            .await
            .expect(label);
        transaction.commit().await.expect(label);
        assert_eq!(
            storage::change_sequence(&mut scheduler).await.expect(label),
            before + 1,
            "{label}"
        );
        cli.close().await;
    }
}

#[tokio::test]
async fn the_scheduler_heartbeat_is_absent_until_recorded_then_round_trips() {
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.acquire().await.expect(label);
        assert_eq!(
            storage::last_heartbeat(&mut connection).await.expect(label),
            None,
            "{label}"
        );
        for beat in [at("2026-03-01T12:00:00.000001Z"), at("2026-03-01T12:00:05.123456Z")] {
            storage::record_heartbeat(&mut connection, beat).await.expect(label);
            assert_eq!(
                storage::last_heartbeat(&mut connection).await.expect(label),
                Some(beat),
                "{label}"
            );
        }
    }
}
