//! Datasets (§6) as decisions: whether a dataset-scheduled DAG gets a run from the events recorded
//! so far, and the lineage (producing tasks, consuming DAGs) that the DAG definitions declare.
//!
//! The model: every event has an increasing id. For each dataset a DAG's schedule lists, the
//! database keeps a watermark, the id of the newest event that DAG has already consumed. A
//! dataset has news for the DAG when its newest event id is above the watermark; the DAG gets a
//! run once every listed dataset has news, and that run consumes all of them (the watermarks move
//! to the newest ids), however many events each dataset had: Airflow's queue semantics, where
//! several updates while the consumer waits make one run, not many.

use std::collections::{BTreeMap, BTreeSet};

use super::dag::Dag;
use super::ids::{DagId, TaskId};
use super::schedule::Schedule;

/// What is known about one dataset that a DAG's schedule lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetProgress {
    pub dataset: String,
    /// The id of the newest event the DAG has consumed; `None` when the DAG is not yet tracked for
    /// this dataset (it was just added, or just listed the dataset).
    pub consumed_through: Option<i64>,
    /// The id of the dataset's newest event, `None` when it has none.
    pub newest_event: Option<i64>,
}

/// The events of one dataset that a new run consumes: ids in `(after, through]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumption {
    pub dataset: String,
    pub after: i64,
    pub through: i64,
}

/// What a dataset-scheduled DAG needs, given its datasets' progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetTrigger {
    /// Start tracking these datasets at their newest event: what happened before the DAG listed a
    /// dataset does not count (as in Airflow, where only later events queue a run).
    Track(Vec<String>),
    /// These datasets have had no event since the DAG's last dataset run.
    Wait { without_news: Vec<String> },
    /// Every listed dataset has news: a run consumes these events.
    Ready(Vec<Consumption>),
}

/// Decides from the progress of each listed dataset (duplicates count once). Tracking comes
/// first, so a DAG never runs on events from before it listed a dataset.
pub fn dataset_trigger(progress: &[DatasetProgress]) -> DatasetTrigger {
    let mut by_dataset: BTreeMap<&str, &DatasetProgress> = BTreeMap::new();
    for entry in progress {
        by_dataset.entry(entry.dataset.as_str()).or_insert(entry);
    }
    let untracked: Vec<String> = by_dataset
        .values()
        .filter(|entry| entry.consumed_through.is_none())
        .map(|entry| entry.dataset.clone())
        .collect();
    if !untracked.is_empty() {
        return DatasetTrigger::Track(untracked);
    }
    let mut consumptions = Vec::new();
    let mut without_news = Vec::new();
    for entry in by_dataset.values() {
        let after = entry.consumed_through.unwrap_or(0);
        match entry.newest_event {
            Some(newest) if newest > after => consumptions.push(Consumption {
                dataset: entry.dataset.clone(),
                after,
                through: newest,
            }),
            _ => without_news.push(entry.dataset.clone()),
        }
    }
    if without_news.is_empty() && !consumptions.is_empty() {
        DatasetTrigger::Ready(consumptions)
    } else {
        DatasetTrigger::Wait { without_news }
    }
}

/// The datasets a DAG's schedule lists, if it is dataset-scheduled.
pub fn scheduled_on(dag: &Dag) -> Option<&[String]> {
    match &dag.timetable.schedule {
        Schedule::Datasets(names) => Some(names),
        _ => None,
    }
}

/// Who produces and who consumes one dataset, as the DAG definitions declare it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Tasks with the dataset in their `outlets`, sorted.
    pub producers: BTreeSet<(DagId, TaskId)>,
    /// DAGs whose schedule lists the dataset, sorted.
    pub consumers: BTreeSet<DagId>,
}

/// Every dataset the DAGs mention, by name, with its producers and consumers.
pub fn lineage<'a>(dags: impl IntoIterator<Item = &'a Dag>) -> BTreeMap<String, Lineage> {
    let mut datasets: BTreeMap<String, Lineage> = BTreeMap::new();
    for dag in dags {
        for task in &dag.tasks {
            for outlet in &task.outlets {
                datasets
                    .entry(outlet.clone())
                    .or_default()
                    .producers
                    .insert((dag.dag_id.clone(), task.task_id.clone()));
            }
        }
        for name in scheduled_on(dag).unwrap_or_default() {
            datasets
                .entry(name.clone())
                .or_default()
                .consumers
                .insert(dag.dag_id.clone());
        }
    }
    datasets
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::domain::validate::ValidationContext;

    fn progress(dataset: &str, consumed_through: Option<i64>, newest_event: Option<i64>) -> DatasetProgress {
        DatasetProgress {
            dataset: dataset.to_string(),
            consumed_through,
            newest_event,
        }
    }

    fn consumption(dataset: &str, after: i64, through: i64) -> Consumption {
        Consumption {
            dataset: dataset.to_string(),
            after,
            through,
        }
    }

    #[test]
    fn a_dataset_the_dag_just_listed_is_tracked_before_anything_else() {
        let decision = dataset_trigger(&[progress("a", Some(3), Some(7)), progress("b", None, Some(5))]);
        assert_eq!(decision, DatasetTrigger::Track(vec!["b".to_string()]));
    }

    #[test]
    fn one_dataset_with_a_new_event_makes_a_run_that_consumes_it() {
        let decision = dataset_trigger(&[progress("warehouse.orders", Some(0), Some(1))]);
        assert_eq!(
            decision,
            DatasetTrigger::Ready(vec![consumption("warehouse.orders", 0, 1)])
        );
    }

    #[test]
    fn a_dataset_without_events_or_without_news_waits() {
        assert_eq!(
            dataset_trigger(&[progress("a", Some(0), None)]),
            DatasetTrigger::Wait {
                without_news: vec!["a".to_string()]
            }
        );
        assert_eq!(
            dataset_trigger(&[progress("a", Some(4), Some(4))]),
            DatasetTrigger::Wait {
                without_news: vec!["a".to_string()]
            }
        );
    }

    #[test]
    fn two_datasets_need_news_on_both() {
        let only_a = dataset_trigger(&[progress("a", Some(0), Some(2)), progress("b", Some(1), Some(1))]);
        assert_eq!(
            only_a,
            DatasetTrigger::Wait {
                without_news: vec!["b".to_string()]
            }
        );
        let both = dataset_trigger(&[progress("a", Some(0), Some(2)), progress("b", Some(1), Some(3))]);
        assert_eq!(
            both,
            DatasetTrigger::Ready(vec![consumption("a", 0, 2), consumption("b", 1, 3)])
        );
    }

    #[test]
    fn several_events_since_the_last_run_make_one_run_that_consumes_them_all() {
        let decision = dataset_trigger(&[progress("a", Some(2), Some(9))]);
        assert_eq!(decision, DatasetTrigger::Ready(vec![consumption("a", 2, 9)]));
    }

    #[test]
    fn a_dataset_listed_twice_counts_once() {
        let decision = dataset_trigger(&[progress("a", Some(0), Some(1)), progress("a", Some(0), Some(1))]);
        assert_eq!(decision, DatasetTrigger::Ready(vec![consumption("a", 0, 1)]));
    }

    #[test]
    fn a_dag_listing_no_dataset_never_runs() {
        assert_eq!(
            dataset_trigger(&[]),
            DatasetTrigger::Wait {
                without_news: Vec::new()
            }
        );
    }

    #[test]
    fn lineage_lists_producing_tasks_and_consuming_dags_per_dataset() {
        let context = ValidationContext::default();
        let producer = Dag::from_yaml(
            Path::new("/dags/producer.yaml"),
            "dag_id: producer\ntasks:\n  load: { command: 'true', outlets: [warehouse.orders, warehouse.items] }\n  other: { command: 'true' }\n",
            &context,
        )
        .unwrap();
        let consumer = Dag::from_yaml(
            Path::new("/dags/consumer.yaml"),
            "dag_id: consumer\nschedule: {datasets: [warehouse.orders, lake.raw]}\ntasks:\n  report: { command: 'true' }\n",
            &context,
        )
        .unwrap();
        let found = lineage([&producer, &consumer]);
        let names: Vec<&str> = found.keys().map(String::as_str).collect();
        assert_eq!(names, ["lake.raw", "warehouse.items", "warehouse.orders"]);
        let orders = &found["warehouse.orders"];
        assert_eq!(
            orders.producers,
            BTreeSet::from([(DagId::parse("producer").unwrap(), TaskId::parse("load").unwrap())])
        );
        assert_eq!(orders.consumers, BTreeSet::from([DagId::parse("consumer").unwrap()]));
        assert!(found["lake.raw"].producers.is_empty());
        assert!(found["warehouse.items"].consumers.is_empty());
    }
}
