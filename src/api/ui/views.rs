//! What the templates show: `Serialize` views of DAGs, runs, task instances and attempts, with
//! times and durations already formatted, and the URLs of every page they link to.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::dag::Dag;
use crate::domain::schedule::Schedule;
use crate::domain::ui_paths;
use crate::storage::runs::DagRun;
use crate::storage::task_instances::{Attempt, TaskInstance};

/// Percent-encodes one URL path segment or query value (run ids carry `:` and `+`).
pub use crate::domain::percent::encode_component as encode;

/// `2026-03-01 18:00:00`, UTC.
pub fn time(value: DateTime<Utc>) -> String {
    value.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn opt_time(value: Option<DateTime<Utc>>) -> Option<String> {
    value.map(time)
}

/// `12ms`, `4.2s`, `3m 05s`, `2h 01m`: weir's tasks often take milliseconds, and `0.0s` says
/// nothing.
pub fn duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 1.0 {
        return format!("{}ms", (seconds * 1000.0).round() as u64);
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let whole = seconds.round() as u64;
    let (hours, minutes, secs) = (whole / 3600, (whole % 3600) / 60, whole % 60);
    if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else {
        format!("{minutes}m {secs:02}s")
    }
}

pub fn span(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<String> {
    let start = start?;
    let end = end.unwrap_or(now);
    Some(duration((end - start).num_milliseconds() as f64 / 1000.0))
}

/// The schedule as written, and in words when it is a cron expression.
pub fn schedule(dag: &Dag) -> (String, Option<String>) {
    let written = dag.timetable.schedule.describe();
    let words = match &dag.timetable.schedule {
        Schedule::Cron { cron, .. } => Some(cron.describe()),
        Schedule::Never => Some("Only when triggered".to_string()),
        Schedule::Once => Some("Once, at the start date".to_string()),
        Schedule::Datasets(_) => Some("When its datasets are updated".to_string()),
    };
    (written, words)
}

/// One run, as a row or a column header.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub url: String,
    pub run_type: String,
    pub state: String,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    pub queued_at: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub duration: Option<String>,
    pub active: bool,
}

impl RunView {
    pub fn new(run: &DagRun, now: DateTime<Utc>) -> RunView {
        RunView {
            run_id: run.run_id.to_string(),
            url: ui_paths::run(run.dag_id.as_str(), run.run_id.as_str()),
            run_type: run.run_type.to_string(),
            state: run.state.to_string(),
            logical_date: time(run.logical_date),
            data_interval_start: time(run.data_interval_start),
            data_interval_end: time(run.data_interval_end),
            queued_at: opt_time(run.queued_at),
            start_date: opt_time(run.start_date),
            end_date: opt_time(run.end_date),
            duration: span(run.start_date, run.end_date, now),
            active: !run.state.is_finished(),
        }
    }
}

/// One task instance, as a grid cell or a table row.
#[derive(Debug, Clone, Serialize)]
pub struct TaskInstanceView {
    pub task_id: String,
    pub url: String,
    pub state: String,
    pub try_number: u32,
    pub max_tries: u32,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub duration: Option<String>,
    pub next_retry_at: Option<String>,
}

impl TaskInstanceView {
    pub fn new(ti: &TaskInstance, now: DateTime<Utc>) -> TaskInstanceView {
        TaskInstanceView {
            task_id: ti.task_id.to_string(),
            url: ui_paths::task(ti.dag_id.as_str(), ti.run_id.as_str(), ti.task_id.as_str()),
            state: ti.state.to_string(),
            try_number: ti.try_number,
            max_tries: ti.max_tries,
            start_date: opt_time(ti.start_date),
            end_date: opt_time(ti.end_date),
            duration: span(ti.start_date, ti.end_date, now),
            next_retry_at: opt_time(ti.next_retry_at),
        }
    }

    /// A task of the DAG with no instance in this run yet.
    pub fn missing(dag_id: &str, run_id: &str, task_id: &str) -> TaskInstanceView {
        TaskInstanceView {
            task_id: task_id.to_string(),
            url: ui_paths::task(dag_id, run_id, task_id),
            state: "none".to_string(),
            try_number: 0,
            max_tries: 0,
            start_date: None,
            end_date: None,
            duration: None,
            next_retry_at: None,
        }
    }
}

/// One attempt of a task instance.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    pub try_number: u32,
    pub url: String,
    pub state: String,
    pub queued_at: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub duration: Option<String>,
    pub exit_code: Option<i64>,
    pub pid: Option<i64>,
    pub hostname: Option<String>,
    pub selected: bool,
}

impl AttemptView {
    pub fn new(attempt: &Attempt, task_url: &str, selected: bool, now: DateTime<Utc>) -> AttemptView {
        AttemptView {
            try_number: attempt.try_number,
            url: format!("{task_url}?try={}", attempt.try_number),
            state: attempt.state.to_string(),
            queued_at: time(attempt.queued_at),
            start_date: opt_time(attempt.start_date),
            end_date: opt_time(attempt.end_date),
            duration: span(attempt.start_date, attempt.end_date, now),
            exit_code: attempt.exit_code,
            pid: attempt.pid,
            hostname: attempt.hostname.clone(),
            selected,
        }
    }
}

/// Previous/next links over a list shown `limit` at a time.
#[derive(Debug, Serialize)]
pub struct Pager {
    pub offset: u64,
    pub limit: u64,
    pub total: u64,
    pub first_shown: u64,
    pub last_shown: u64,
    /// Newer entries (the list is newest first).
    pub newer_url: Option<String>,
    pub older_url: Option<String>,
}

impl Pager {
    pub fn new(base_url: &str, offset: u64, limit: u64, total: u64, shown: u64) -> Pager {
        let link = |offset: u64| {
            if offset == 0 {
                base_url.to_string()
            } else {
                format!("{base_url}&offset={offset}")
            }
        };
        Pager {
            offset,
            limit,
            total,
            first_shown: if shown == 0 { 0 } else { offset + 1 },
            last_shown: offset + shown,
            newer_url: (offset > 0).then(|| link(offset.saturating_sub(limit))),
            older_url: (offset + shown < total).then(|| link(offset + limit)),
        }
    }
}

/// The states in the legend, in the order a run goes through them.
pub const LEGEND: &[&str] = &[
    "none",
    "scheduled",
    "queued",
    "running",
    "success",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "removed",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_encoded_for_urls() {
        assert_eq!(
            encode("manual__2026-03-01T00:00:00+00:00"),
            "manual__2026-03-01T00%3A00%3A00%2B00%3A00"
        );
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(0.0123), "12ms");
        assert_eq!(duration(4.0), "4.0s");
        assert_eq!(duration(185.0), "3m 05s");
        assert_eq!(duration(7260.0), "2h 01m");
    }
}
