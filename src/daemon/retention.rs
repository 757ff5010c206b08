//! `[core] retention_days`: the daemon's daily removal of old history.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::runtime::health::{Component, DatabaseLoop, Health};
use crate::runtime::operations::{self, OperationError};
use crate::storage::Db;

/// Once at start and then every day, removes finished runs (and their task instances, attempts
/// and logs) and audit log entries older than `days`. A database outage is waited out (the clean
/// runs once the database is back).
pub(super) async fn clean_daily(
    db: Db,
    logs_dir: std::path::PathBuf,
    days: u32,
    cancel: CancellationToken,
    health: Arc<Health>,
) {
    let _alive = health.alive(Component::Retention);
    let mut database = DatabaseLoop::new(health, Component::Retention);
    let mut daily = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = daily.tick() => {}
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        let cleaned = database
            .retry(&cancel, || async {
                operations::clean_history(&db, &logs_dir, cutoff, None, false)
                    .await
                    .map_err(|error| match error {
                        // Unwrapped, so that an outage is told from a failure.
                        OperationError::Storage(error) => anyhow::Error::from(error),
                        other => anyhow::Error::from(other),
                    })
            })
            .await;
        match cleaned {
            Ok(None) => break,
            Ok(Some(report)) => tracing::info!(
                runs = report.runs,
                task_instances = report.task_instances,
                log_folders = report.log_folders,
                alerts = report.alerts,
                dataset_events = report.dataset_events,
                event_logs = report.event_logs,
                days,
                "retention: removed old history"
            ),
            Err(error) => tracing::error!("retention: cannot remove old history: {error:#}"),
        }
    }
}
