//! The schema version: migrating, checking, and refusing to work on a schema that is behind.

use weir::storage::{self, SchemaStatus, StorageError};

use crate::support::{TestDb, databases, unmigrated_databases};

#[tokio::test]
async fn migrating_twice_is_harmless_and_leaves_the_schema_current() {
    for TestDb { db, label, .. } in &databases().await {
        db.migrate().await.expect(label);
        let status = db.schema_status().await.expect(label);
        assert!(status.required >= 1, "{label}: {status:?}");
        assert_eq!(status.current, status.required, "{label}");
        db.ensure_current().await.expect(label);
        storage::ping(db).await.expect(label);
    }
}

#[tokio::test]
async fn an_unmigrated_database_is_at_version_zero_and_asks_for_weir_db_migrate() {
    for TestDb { db, label, .. } in &unmigrated_databases().await {
        let status = db.schema_status().await.expect(label);
        assert_eq!(status.current, 0, "{label}");
        assert!(status.required >= 1, "{label}: {status:?}");
        match db.ensure_current().await {
            Err(error @ StorageError::SchemaBehind { current: 0, .. }) => {
                assert!(error.to_string().contains("run `weir db migrate`"), "{label}: {error}");
            }
            other => panic!("{label}: expected SchemaBehind, got {other:?}"),
        }
        db.migrate().await.expect(label);
        assert_eq!(
            db.schema_status().await.expect(label),
            SchemaStatus {
                current: status.required,
                required: status.required
            },
            "{label}"
        );
    }
}
