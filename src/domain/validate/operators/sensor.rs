//! The task types that poll: `sensor` (one condition: a file, an HTTP answer, a SQL value or
//! another DAG's run) and `trigger_dag`, which may wait for the run it triggers.

use std::time::Duration;

use super::{TaskKeys, check_json_templates, missing, status_expectation, templated};
use crate::domain::dag::{Operator, SensorCondition, SensorTask, StatusExpectation, TriggerDagTask};
use crate::domain::ids::DagId;
use crate::domain::spec::SqlSpec;
use crate::domain::template;
use crate::domain::validate::{Problems, duration};

const DEFAULT_POKE_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TRIGGER_POKE_INTERVAL: Duration = Duration::from_secs(10);

pub(super) fn sensor(keys: &TaskKeys<'_>, problems: &mut Problems) -> Option<Operator> {
    let own = keys.own;
    let mut conditions = Vec::new();
    if let Some(file) = &own.file {
        conditions.push((
            "file",
            Some(SensorCondition::File {
                path: templated(file, "file", problems),
            }),
        ));
    }
    if let Some(http) = &own.http {
        let spec = &http.value;
        let condition = match (&spec.url, &spec.conn) {
            (None, None) => {
                problems.at(http, "`http:` needs `url:` (or `conn:` whose URL is checked)");
                None
            }
            (url, conn) => {
                let url = url.clone().unwrap_or_default();
                if let Err(error) = template::check_syntax(&url) {
                    problems.at(http, format!("template error in `http.url`: {error}"));
                }
                let expect_status = match &spec.expect_status {
                    Some(value) => status_expectation(value, http.referenced, problems),
                    None => Some(StatusExpectation::any_2xx()),
                };
                expect_status.map(|expect_status| SensorCondition::Http {
                    conn: conn.clone(),
                    url,
                    expect_status,
                })
            }
        };
        conditions.push(("http", condition));
    }
    if let Some(sql) = &own.sql {
        let condition = match &sql.value {
            SqlSpec::Query(query) => match (&query.conn, &query.sql) {
                (Some(conn), Some(text)) => {
                    if let Err(error) = template::check_syntax(text) {
                        problems.at(sql, format!("template error in `sql.sql`: {error}"));
                    } else if let Err(error) = template::check_sql_text("sql.sql", text) {
                        problems.at(sql, error);
                    }
                    Some(SensorCondition::Sql {
                        conn: conn.clone(),
                        sql: text.clone(),
                    })
                }
                _ => {
                    problems.at(sql, "a sql sensor needs `sql: {conn: NAME, sql: QUERY}`");
                    None
                }
            },
            SqlSpec::Text(_) => {
                problems.at(
                    sql,
                    "a sql sensor needs `sql: {conn: NAME, sql: QUERY}` (the first column of the first row is checked)",
                );
                None
            }
        };
        conditions.push(("sql", condition));
    }
    if let Some(dag_run) = &own.dag_run {
        let condition = match &dag_run.value.dag_id {
            Some(dag_id) => match DagId::parse(dag_id.clone()) {
                Ok(_) => Some(SensorCondition::DagRun {
                    dag_id: dag_id.clone(),
                    task_id: dag_run.value.task_id.clone(),
                }),
                Err(error) => {
                    problems.at(dag_run, error.to_string());
                    None
                }
            },
            None => {
                problems.at(dag_run, "`dag_run:` needs `dag_id:` (and optionally `task_id:`)");
                None
            }
        };
        conditions.push(("dag_run", condition));
    }
    let condition = match conditions.len() {
        0 => {
            missing(
                keys,
                problems,
                format!(
                    "sensor `{}` has nothing to wait for: give one of `file:`, `http:`, `sql:` or `dag_run:`",
                    keys.task_id
                ),
            );
            return None;
        }
        1 => conditions.pop().and_then(|(_, condition)| condition)?,
        _ => {
            let names: Vec<&str> = conditions.iter().map(|(name, _)| *name).collect();
            missing(
                keys,
                problems,
                format!(
                    "sensor `{}` waits for {}: give exactly one condition (make one sensor per condition)",
                    keys.task_id,
                    names.join(" and ")
                ),
            );
            return None;
        }
    };
    let poke_interval = poke_interval(keys, DEFAULT_POKE_INTERVAL, problems);
    Some(Operator::Sensor(Box::new(SensorTask {
        condition,
        poke_interval,
        soft_fail: own
            .soft_fail
            .or(keys.defaults.and_then(|d| d.soft_fail))
            .unwrap_or(false),
    })))
}

fn poke_interval(keys: &TaskKeys<'_>, default: Duration, problems: &mut Problems) -> Duration {
    let interval = keys
        .pick(|d| &d.poke_interval)
        .and_then(|text| duration(text, "poke_interval", problems))
        .unwrap_or(default);
    if interval.is_zero()
        && let Some(text) = keys.pick(|d| &d.poke_interval)
    {
        problems.at(text, "`poke_interval` must be positive, e.g. 30s");
    }
    interval
}

pub(super) fn trigger_dag(keys: &TaskKeys<'_>, problems: &mut Problems) -> Option<Operator> {
    let Some(dag_id) = keys.own.dag_id.as_ref() else {
        missing(
            keys,
            problems,
            format!(
                "trigger_dag task `{}` has no `dag_id:`: name the DAG to trigger",
                keys.task_id
            ),
        );
        return None;
    };
    if let Err(error) = DagId::parse(dag_id.value.clone()) {
        problems.at(dag_id, error.to_string());
        return None;
    }
    let conf = match &keys.own.conf {
        None => serde_json::json!({}),
        Some(conf) if conf.value.is_object() => {
            check_json_templates(&conf.value, "conf", conf.referenced, problems);
            conf.value.clone()
        }
        Some(conf) => {
            problems.at(
                conf,
                "`conf` must be a map of run parameters, e.g. `conf: {region: kr}`",
            );
            return None;
        }
    };
    Some(Operator::TriggerDag(Box::new(TriggerDagTask {
        dag_id: dag_id.value.clone(),
        conf,
        wait_for_completion: keys.own.wait_for_completion.unwrap_or(false),
        poke_interval: poke_interval(keys, DEFAULT_TRIGGER_POKE_INTERVAL, problems),
    })))
}
