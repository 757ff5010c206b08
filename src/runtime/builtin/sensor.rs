//! Sensors (§5.5): one poke per attempt. When the condition does not hold yet the attempt ends
//! `up_for_reschedule` with the time of the next poke, so a waiting sensor holds no worker slot
//! (Airflow's `mode: reschedule`). The wait is bounded by the task's `timeout`, counted from the
//! first poke of the try; then the sensor fails, or is skipped with `soft_fail`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{BuiltinAttempt, LogWriter, http, sql};
use crate::domain::dag::{DEFAULT_SENSOR_TIMEOUT, HttpBody, SensorCondition, SensorTask};
use crate::domain::duration::format_duration;
use crate::domain::ids::{DagId, TaskId};
use crate::domain::state::{RunState, TaskState};
use crate::runtime::executor::AttemptResult;
use crate::storage::{runs, task_instances};

/// What a poke found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PokeVerdict {
    Holds,
    NotYet,
}

/// How a sensor attempt ends after a poke: done, waiting for the next poke, or out of time.
pub fn after_poke(
    verdict: PokeVerdict,
    first_poke: DateTime<Utc>,
    now: DateTime<Utc>,
    timeout: Duration,
    poke_interval: Duration,
    soft_fail: bool,
) -> AttemptResult {
    if verdict == PokeVerdict::Holds {
        return AttemptResult::Success { output: None };
    }
    let waited = (now - first_poke).to_std().unwrap_or_default();
    if waited >= timeout {
        return if soft_fail {
            AttemptResult::Skipped
        } else {
            AttemptResult::Failed {
                exit_code: None,
                error: format!(
                    "sensor timed out: the condition did not hold within {} (timeout)",
                    format_duration(timeout)
                ),
            }
        };
    }
    let to_chrono = |duration: Duration| chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
    let deadline = first_poke + to_chrono(timeout);
    let next = (now + to_chrono(poke_interval)).min(deadline);
    AttemptResult::Reschedule { at: next }
}

pub(super) async fn poke(attempt: &BuiltinAttempt, sensor: &SensorTask, log: &mut LogWriter) -> AttemptResult {
    let timeout = attempt.timeout.unwrap_or(DEFAULT_SENSOR_TIMEOUT);
    let waited = (Utc::now() - attempt.first_poke).to_std().unwrap_or_default();
    // A poke never runs past the sensor's deadline.
    let remaining = timeout.saturating_sub(waited).max(Duration::from_millis(1));
    let verdict = match tokio::time::timeout(remaining, check(attempt, &sensor.condition, remaining, log)).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(error)) => return AttemptResult::Failed { exit_code: None, error },
        Err(_) => {
            log.note("the poke did not finish before the sensor's timeout");
            PokeVerdict::NotYet
        }
    };
    log.note(match verdict {
        PokeVerdict::Holds => "poke: the condition holds",
        PokeVerdict::NotYet => "poke: the condition does not hold yet",
    });
    after_poke(
        verdict,
        attempt.first_poke,
        Utc::now(),
        timeout,
        sensor.poke_interval,
        sensor.soft_fail,
    )
}

async fn check(
    attempt: &BuiltinAttempt,
    condition: &SensorCondition,
    remaining: Duration,
    log: &mut LogWriter,
) -> Result<PokeVerdict, String> {
    match condition {
        SensorCondition::File { path } => {
            let full = attempt.folder.join(path);
            log.note(&format!("poke: does {} exist?", full.display()));
            Ok(verdict(tokio::fs::try_exists(&full).await.unwrap_or(false)))
        }
        SensorCondition::Http {
            conn,
            url,
            expect_status,
        } => {
            let url = http::target_url(attempt, conn.as_deref(), url)?;
            let request_timeout = remaining.min(Duration::from_secs(60));
            // A server that is not up yet is what a sensor waits for, not an error.
            match http::send("GET", url, &[], &HttpBody::None, request_timeout, log).await {
                Ok(response) => Ok(verdict(expect_status.accepts(response.status))),
                Err(error) => {
                    log.note(&error);
                    Ok(PokeVerdict::NotYet)
                }
            }
        }
        SensorCondition::Sql { conn, sql: query } => {
            let url = attempt.connection(conn)?;
            let first = sql::first_value(url, query, log).await?;
            log.note(&format!("poke: the query returned {first}"));
            Ok(verdict(truthy(&first)))
        }
        SensorCondition::DagRun { dag_id, task_id } => {
            dag_run_succeeded(attempt, dag_id, task_id.as_deref(), log).await
        }
    }
}

fn verdict(holds: bool) -> PokeVerdict {
    if holds { PokeVerdict::Holds } else { PokeVerdict::NotYet }
}

/// Python's truthiness, which Airflow's SqlSensor uses: null, false, 0, "" and "0" do not hold.
pub fn truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(flag) => *flag,
        serde_json::Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        serde_json::Value::String(text) => {
            let text = text.trim();
            !(text.is_empty() || text == "0" || text.eq_ignore_ascii_case("false"))
        }
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(map) => !map.is_empty(),
    }
}

/// Holds once the other DAG has a successful run (or task) for the same logical date.
async fn dag_run_succeeded(
    attempt: &BuiltinAttempt,
    dag_id: &str,
    task_id: Option<&str>,
    log: &mut LogWriter,
) -> Result<PokeVerdict, String> {
    let dag_id = DagId::parse(dag_id.to_string()).map_err(|error| error.to_string())?;
    let task_id = task_id
        .map(|task| TaskId::parse(task.to_string()).map_err(|error| error.to_string()))
        .transpose()?;
    let database = |error: crate::storage::StorageError| format!("reading the metadata database: {error}");
    let mut connection = attempt.db.acquire().await.map_err(database)?;
    let candidates = runs::with_logical_date(&mut connection, &dag_id, attempt.logical_date)
        .await
        .map_err(database)?;
    log.note(&format!(
        "poke: {} run(s) of {dag_id} for logical date {}",
        candidates.len(),
        attempt.logical_date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    for run in candidates {
        let holds = match &task_id {
            None => run.state == RunState::Success,
            Some(task_id) => task_instances::get(&mut connection, run.pk, task_id)
                .await
                .map_err(database)?
                .is_some_and(|instance| instance.state == TaskState::Success),
        };
        if holds {
            return Ok(PokeVerdict::Holds);
        }
    }
    Ok(PokeVerdict::NotYet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_poke_that_holds_succeeds_and_one_that_does_not_waits_for_the_next_poke_until_the_timeout() {
        let timeout = Duration::from_secs(100);
        let interval = Duration::from_secs(30);
        let cases = [
            (PokeVerdict::Holds, 500, false, AttemptResult::Success { output: None }),
            (PokeVerdict::NotYet, 0, false, AttemptResult::Reschedule { at: at(30) }),
            // The last poke happens at the deadline, not after it.
            (
                PokeVerdict::NotYet,
                80,
                false,
                AttemptResult::Reschedule { at: at(100) },
            ),
            (
                PokeVerdict::NotYet,
                100,
                false,
                AttemptResult::Failed {
                    exit_code: None,
                    error: "sensor timed out: the condition did not hold within 1m40s (timeout)".to_string(),
                },
            ),
            (PokeVerdict::NotYet, 150, true, AttemptResult::Skipped),
        ];
        for (verdict, now, soft_fail, expected) in cases {
            assert_eq!(
                after_poke(verdict, at(0), at(now), timeout, interval, soft_fail),
                expected,
                "{verdict:?} at +{now}s soft_fail={soft_fail}"
            );
        }
    }

    #[test]
    fn sql_sensor_values_are_true_the_way_airflow_reads_them() {
        use serde_json::json;
        for value in [json!(1), json!(true), json!("yes"), json!(0.5), json!([0])] {
            assert!(truthy(&value), "{value}");
        }
        for value in [
            json!(null),
            json!(0),
            json!(false),
            json!(""),
            json!("0"),
            json!("false"),
            json!([]),
        ] {
            assert!(!truthy(&value), "{value}");
        }
    }
}
