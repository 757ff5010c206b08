//! Raising alerts: the scheduler calls these inside the transaction of the state change that
//! causes them (a task attempt's end, a run's end, a missed SLA), so an alert is recorded if and
//! only if its cause is. Each channel that hears the event gets its own outbox row; nothing is
//! sent here.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::AnyConnection;

use super::message::{self, Payload};
use crate::domain::alerts::{self, AlertDefaults, AlertEvent};
use crate::domain::dag::Dag;
use crate::domain::duration::format_duration;
use crate::domain::ids::TaskId;
use crate::domain::state::{RunState, TaskState};
use crate::runtime::loader::DagBag;
use crate::runtime::task_log::{LogPath, LogReader};
use crate::storage::alerts::{self as outbox, NewAlert};
use crate::storage::runs::{self, DagRun};
use crate::storage::task_instances;
use crate::storage::{Db, StorageError};

/// Lines of a log quoted in an alert's `error`.
const LOG_LINES: usize = 20;
/// Bytes read from the end of a log to find those lines.
const LOG_TAIL_BYTES: usize = 8 * 1024;

/// What the scheduler needs to raise alerts: the configured defaults and where the UI is.
#[derive(Debug, Clone, Default)]
pub struct AlertRouting {
    pub defaults: AlertDefaults,
    /// `[webserver] base_url`, for `log_url`.
    pub base_url: String,
    /// Where attempt logs are, to quote their last lines.
    pub logs_dir: std::path::PathBuf,
}

/// A task attempt just ended with the task in `state` (`failed` for good, `up_for_retry`, ...):
/// records the alerts that raises. `attempt_error` is the attempt's own error message, quoted when
/// its log has nothing. Returns how many deliveries were recorded.
#[allow(clippy::too_many_arguments, reason = "the parts of one attempt's end, all needed")]
pub async fn record_task_alerts(
    connection: &mut AnyConnection,
    routing: &AlertRouting,
    dag: &Dag,
    run_pk: i64,
    task_id: &TaskId,
    try_number: u32,
    state: TaskState,
    attempt_error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let Some(event) = alerts::task_event(state) else {
        return Ok(0);
    };
    let channels = alerts::channels_for(&dag.alerts, &routing.defaults, event);
    if channels.is_empty() {
        return Ok(0);
    }
    let Some(run) = runs::get_by_pk(connection, run_pk).await? else {
        return Ok(0);
    };
    let log = LogPath::new(&routing.logs_dir, &dag.dag_id, &run.run_id, task_id, try_number);
    let error = match log_tail(&log).await {
        Some(tail) => Some(tail),
        None => attempt_error.map(str::to_string),
    };
    let payload = Payload {
        event: event.as_str().to_string(),
        dag_id: dag.dag_id.to_string(),
        dag_run_id: run.run_id.to_string(),
        task_id: Some(task_id.to_string()),
        state: state.as_str().to_string(),
        try_number: Some(try_number),
        logical_date: rfc3339(run.logical_date),
        log_url: message::task_log_url(
            &routing.base_url,
            dag.dag_id.as_str(),
            run.run_id.as_str(),
            task_id.as_str(),
            try_number,
        ),
        error,
    };
    insert_all(
        connection,
        &channels,
        event,
        &run,
        Some(task_id.as_str()),
        &payload,
        now,
    )
    .await
}

/// A run just finished in `state`: records `on_failure` or `on_success`. Returns how many
/// deliveries were recorded.
pub async fn record_run_alerts(
    connection: &mut AnyConnection,
    routing: &AlertRouting,
    dag: &Dag,
    run: &DagRun,
    state: RunState,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let Some(event) = alerts::run_event(state) else {
        return Ok(0);
    };
    let channels = alerts::channels_for(&dag.alerts, &routing.defaults, event);
    if channels.is_empty() {
        return Ok(0);
    }
    let error = match state {
        RunState::Failed => failed_tasks(connection, routing, run).await?,
        _ => None,
    };
    let payload = Payload {
        event: event.as_str().to_string(),
        dag_id: run.dag_id.to_string(),
        dag_run_id: run.run_id.to_string(),
        task_id: None,
        state: state.as_str().to_string(),
        try_number: None,
        logical_date: rfc3339(run.logical_date),
        log_url: message::run_url(&routing.base_url, run.dag_id.as_str(), run.run_id.as_str()),
        error,
    };
    insert_all(connection, &channels, event, run, None, &payload, now).await
}

/// What the SLA check did in one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlaCheck {
    /// Deliveries recorded for runs that just missed their SLA.
    pub recorded: usize,
    /// The earliest deadline still ahead: the scheduler wakes then.
    pub next_deadline: Option<DateTime<Utc>>,
}

/// Records `sla_miss` once for each unfinished run past its DAG's `sla`. Cheap when nothing
/// can miss: DAGs without an `sla` or without `sla_miss` channels cost no query, and the one query
/// reads only queued and running runs not yet marked.
pub async fn check_slas(db: &Db, routing: &AlertRouting, bag: &DagBag, now: DateTime<Utc>) -> anyhow::Result<SlaCheck> {
    let watched: Vec<&Dag> = bag
        .dags
        .values()
        .map(AsRef::as_ref)
        .filter(|dag| {
            dag.sla.is_some() && !alerts::channels_for(&dag.alerts, &routing.defaults, AlertEvent::SlaMiss).is_empty()
        })
        .collect();
    let mut check = SlaCheck::default();
    if watched.is_empty() {
        return Ok(check);
    }
    let dag_ids: Vec<_> = watched.iter().map(|dag| &dag.dag_id).collect();
    let mut connection = db.acquire().await?;
    let candidates = runs::sla_candidates(&mut connection, &dag_ids).await?;
    drop(connection);
    for run in candidates {
        let Some(dag) = bag.get(&run.dag_id) else {
            continue;
        };
        let (Some(sla), Some(clock_start)) = (
            dag.sla,
            alerts::sla_clock_start(run.run_type, run.run_after, run.queued_at),
        ) else {
            continue;
        };
        let deadline = alerts::sla_deadline(clock_start, sla);
        if !alerts::sla_missed(deadline, now) {
            check.next_deadline = Some(check.next_deadline.map_or(deadline, |next| next.min(deadline)));
            continue;
        }
        let mut transaction = db.begin().await?;
        // The mark makes it once per run, even with two schedulers deciding from the same read.
        if runs::mark_sla_missed(&mut transaction, run.pk, now).await? {
            let channels = alerts::channels_for(&dag.alerts, &routing.defaults, AlertEvent::SlaMiss);
            let payload = Payload {
                event: AlertEvent::SlaMiss.as_str().to_string(),
                dag_id: run.dag_id.to_string(),
                dag_run_id: run.run_id.to_string(),
                task_id: None,
                state: run.state.as_str().to_string(),
                try_number: None,
                logical_date: rfc3339(run.logical_date),
                log_url: message::run_url(&routing.base_url, run.dag_id.as_str(), run.run_id.as_str()),
                error: Some(format!(
                    "not finished {} after it became due at {}: the SLA deadline was {}",
                    format_duration(sla),
                    rfc3339(clock_start),
                    rfc3339(deadline)
                )),
            };
            check.recorded += insert_all(
                &mut transaction,
                &channels,
                AlertEvent::SlaMiss,
                &run,
                None,
                &payload,
                now,
            )
            .await?;
            tracing::warn!(dag_id = %run.dag_id, run_id = %run.run_id, deadline = %rfc3339(deadline), "run missed its SLA");
        }
        transaction.commit().await?;
    }
    Ok(check)
}

async fn insert_all(
    connection: &mut AnyConnection,
    channels: &[String],
    event: AlertEvent,
    run: &DagRun,
    task_id: Option<&str>,
    payload: &Payload,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let payload = serde_json::to_value(payload).map_err(|error| StorageError::Corrupt(error.to_string()))?;
    for channel in channels {
        let alert = NewAlert {
            channel,
            event,
            dag_id: run.dag_id.as_str(),
            run_id: run.run_id.as_str(),
            task_id,
            payload: &payload,
        };
        outbox::insert(connection, &alert, now).await?;
    }
    Ok(channels.len())
}

/// `tasks failed: a (try 2), b (try 1)` and the first one's last log lines.
async fn failed_tasks(
    connection: &mut AnyConnection,
    routing: &AlertRouting,
    run: &DagRun,
) -> Result<Option<String>, StorageError> {
    let failed: Vec<_> = task_instances::for_run(connection, run.pk)
        .await?
        .into_iter()
        .filter(|instance| instance.state == TaskState::Failed)
        .collect();
    let Some(first) = failed.first() else {
        return Ok(None);
    };
    let names: Vec<String> = failed
        .iter()
        .map(|instance| format!("{} (try {})", instance.task_id, instance.try_number))
        .collect();
    let mut text = format!("tasks failed: {}", names.join(", "));
    let log = LogPath::new(
        &routing.logs_dir,
        &run.dag_id,
        &run.run_id,
        &first.task_id,
        first.try_number,
    );
    if let Some(tail) = log_tail(&log).await {
        text.push_str(&format!("\n--- {} try {} ---\n{tail}", first.task_id, first.try_number));
    }
    Ok(Some(text))
}

/// The last lines of a log, `None` when it is missing or empty. Reads only its end.
async fn log_tail(path: &LogPath) -> Option<String> {
    let tail = LogReader::file(path).tail(LOG_TAIL_BYTES).await.ok()?;
    let tail = message::last_lines(tail.text().trim_end(), LOG_LINES);
    (!tail.trim().is_empty()).then_some(tail)
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
