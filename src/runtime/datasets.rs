//! Data-aware scheduling at run time (§6), for the scheduler: the events a successful task's
//! `outlets` record, and the `dataset` runs created for DAGs whose datasets all have news. The
//! decisions are [`crate::domain::datasets`]'s; this module reads, writes and logs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::executor::AttemptKey;
use super::loader::DagBag;
use crate::domain::dag::Dag;
use crate::domain::datasets::{
    Consumption, DatasetProgress, DatasetTrigger, Lineage, dataset_trigger, lineage, scheduled_on,
};
use crate::domain::ids::{DagId, InvalidId, RunId};
use crate::domain::state::RunType;
use crate::storage::dags::DagRecord;
use crate::storage::datasets::{self, DatasetSummary, NewDatasetEvent};
use crate::storage::runs::{self, NewRun};
use crate::storage::{Db, StorageError, Transaction};

/// Records one event per outlet of the attempt's task, on the caller's transaction (the one that
/// records the task's success), whose commit then moves the change counter so a scheduler in
/// another process (when this is `weir dags test`) notices at once. Returns how many events were
/// recorded.
pub async fn record_outlet_events(
    transaction: &mut Transaction,
    dag: &Dag,
    key: &AttemptKey,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let Some(task) = dag.task(key.task_id.as_str()) else {
        return Ok(0);
    };
    if task.outlets.is_empty() {
        return Ok(0);
    }
    let Some(run) = runs::get_by_pk(transaction, key.run_pk).await? else {
        return Ok(0);
    };
    for outlet in &task.outlets {
        let event = NewDatasetEvent {
            dataset: outlet,
            source_dag_id: run.dag_id.as_str(),
            source_run_id: run.run_id.as_str(),
            source_task_id: key.task_id.as_str(),
            source_try_number: key.try_number,
        };
        let id = datasets::record_event(transaction, &event, now).await?;
        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, task_id = %key.task_id, dataset = %outlet, event_id = id, "dataset updated");
    }
    Ok(task.outlets.len())
}

/// The run id of a dataset run: `dataset_triggered__2026-03-01T12:00:00.123456+00:00` (Airflow 3
/// says `asset_triggered__`; weir calls them datasets).
pub fn dataset_run_id(logical_date: DateTime<Utc>) -> Result<RunId, InvalidId> {
    let stamp = logical_date.format("%Y-%m-%dT%H:%M:%S%.f+00:00").to_string();
    RunId::parse(format!("dataset_triggered__{stamp}"))
}

/// Creates a `dataset` run for every unpaused dataset-scheduled DAG whose datasets all have news
/// and which is below its `max_active_runs` (otherwise the events stay pending, and one run
/// consumes them all once a slot frees). Returns how many runs were created.
pub async fn create_dataset_runs(
    db: &Db,
    bag: &DagBag,
    records: &HashMap<DagId, DagRecord>,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let consumers: Vec<(&Dag, &[String], &DagRecord)> = bag
        .dags
        .values()
        .filter_map(|dag| {
            let datasets = scheduled_on(dag)?;
            let record = records.get(&dag.dag_id)?;
            Some((dag.as_ref(), datasets, record))
        })
        .collect();
    if consumers.is_empty() {
        return Ok(0);
    }
    let mut connection = db.acquire().await?;
    let watermarks = datasets::watermarks(&mut connection).await?;
    let mut newest: HashMap<&str, Option<i64>> = HashMap::new();
    let mut decisions = Vec::with_capacity(consumers.len());
    for (dag, names, record) in consumers {
        let mut progress = Vec::with_capacity(names.len());
        for name in names {
            let newest_event = match newest.get(name.as_str()) {
                Some(known) => *known,
                None => {
                    let found = datasets::newest_event_id(&mut connection, name).await?;
                    newest.insert(name, found);
                    found
                }
            };
            progress.push(DatasetProgress {
                dataset: name.clone(),
                consumed_through: watermarks.get(&(dag.dag_id.clone(), name.clone())).copied(),
                newest_event,
            });
        }
        decisions.push((dag, record, dataset_trigger(&progress)));
    }
    drop(connection);
    let mut created = 0;
    for (dag, record, decision) in decisions {
        match decision {
            // Paused DAGs are tracked too: events while paused are kept for when it is unpaused.
            DatasetTrigger::Track(names) => {
                let mut transaction = db.begin().await?;
                for name in &names {
                    datasets::track(&mut transaction, &dag.dag_id, name).await?;
                }
                transaction.commit().await?;
            }
            DatasetTrigger::Wait { .. } => {}
            DatasetTrigger::Ready(consumptions) => {
                if !record.is_paused && create_dataset_run(db, dag, &consumptions, now).await? {
                    created += 1;
                }
            }
        }
    }
    Ok(created)
}

/// Consumes the events and creates the run in one transaction; `false` when the DAG is at its
/// `max_active_runs` or another scheduler consumed the events first.
async fn create_dataset_run(
    db: &Db,
    dag: &Dag,
    consumptions: &[Consumption],
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    // The scheduler's own run creation: it moves no change counter.
    let mut transaction = db.begin_for_scheduler().await?;
    let (queued, running) = runs::count_active(&mut transaction, &dag.dag_id).await?;
    if queued + running >= dag.max_active_runs {
        transaction.rollback().await?;
        return Ok(false);
    }
    let mut first_event: Option<DateTime<Utc>> = None;
    let mut last_event: Option<DateTime<Utc>> = None;
    for consumption in consumptions {
        let moved = datasets::advance_watermark(
            &mut transaction,
            &dag.dag_id,
            &consumption.dataset,
            consumption.after,
            consumption.through,
        )
        .await?;
        if !moved {
            transaction.rollback().await?;
            return Ok(false);
        }
        if let Some((first, last)) = datasets::event_span(
            &mut transaction,
            &consumption.dataset,
            consumption.after,
            consumption.through,
        )
        .await?
        {
            first_event = Some(first_event.map_or(first, |known| known.min(first)));
            last_event = Some(last_event.map_or(last, |known| known.max(last)));
        }
    }
    // Stored times have microsecond precision; the run id must match the stored logical date.
    let logical_date = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let new_run = NewRun {
        dag_id: dag.dag_id.clone(),
        run_id: dataset_run_id(logical_date)?,
        run_type: RunType::Dataset,
        logical_date,
        // Airflow's choice: the interval spans the consumed events.
        data_interval_start: first_event.unwrap_or(logical_date),
        data_interval_end: last_event.unwrap_or(logical_date),
        run_after: logical_date,
        conf: serde_json::Value::Object(dag.params.resolve(&serde_json::Value::Null).unwrap_or_default()),
        owner: None,
    };
    let run = match runs::insert(&mut transaction, &new_run, now).await {
        Ok(run) => run,
        Err(StorageError::Conflict(reason)) => {
            tracing::warn!(dag_id = %dag.dag_id, "dataset run not created: {reason}");
            transaction.rollback().await?;
            return Ok(false);
        }
        Err(error) => return Err(error.into()),
    };
    transaction.commit().await?;
    let datasets: Vec<&str> = consumptions
        .iter()
        .map(|consumption| consumption.dataset.as_str())
        .collect();
    tracing::info!(dag_id = %dag.dag_id, run_id = %run.run_id, datasets = ?datasets, "created dataset run");
    Ok(true)
}

/// One dataset as the UI and the API show it: who produces and consumes it according to the
/// loaded DAGs, and what the recorded events say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetOverview {
    pub name: String,
    pub lineage: Lineage,
    /// `None` when the dataset has no event yet.
    pub events: Option<DatasetSummary>,
}

/// Every dataset the loaded DAGs mention or an event names (a DAG that produced it may be gone),
/// sorted by name.
pub async fn overview(
    connection: &mut sqlx::AnyConnection,
    bag: &DagBag,
) -> Result<Vec<DatasetOverview>, StorageError> {
    let mut declared = lineage(bag.dags.values().map(|dag| dag.as_ref()));
    let mut summaries = datasets::summaries(connection).await?;
    for name in summaries.keys() {
        declared.entry(name.clone()).or_default();
    }
    Ok(declared
        .into_iter()
        .map(|(name, lineage)| DatasetOverview {
            events: summaries.remove(&name),
            name,
            lineage,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_run_ids_name_the_trigger_and_the_time_to_the_microsecond() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            dataset_run_id(at).unwrap().as_str(),
            "dataset_triggered__2026-03-01T12:00:00.123456+00:00"
        );
    }
}
