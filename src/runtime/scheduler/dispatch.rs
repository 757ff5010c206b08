//! Dispatch: admits scheduled tasks within the limits, renders them, claims them in one
//! transaction and only then hands each executor a fully rendered attempt.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{Scheduler, TickOutcome};
use crate::domain::dag::{Dag, Operator};
use crate::domain::ids::{DagId, TaskId};
use crate::domain::planner::{self, Candidate, Capacity};
use crate::runtime::attempt::{self, attempt_env, needs_context, render_fields, template_context};
use crate::runtime::builtin::BuiltinAttempt;
use crate::runtime::connections::Connections;
use crate::runtime::executor::{AttemptKey, AttemptRequest, AttemptResult, AttemptWork, attempt_span};
use crate::runtime::loader::DagBag;
use crate::runtime::process::ShellAttempt;
use crate::runtime::task_log::LogPath;
use crate::storage::runs::{self, DagRun};
use crate::storage::task_instances::{self, SlotHolder};

/// The fewest waiting task instances a dispatch reads at a time (it reads four per free slot when
/// that is more): enough that a page rarely ends before the free slots are taken.
const DISPATCH_PAGE_MIN: usize = 256;

impl Scheduler {
    pub(super) async fn dispatch(
        &self,
        bag: &DagBag,
        now: DateTime<Utc>,
        change_seq: i64,
        outcome: &mut TickOutcome,
    ) -> anyhow::Result<()> {
        let mut connection = self.db.acquire().await?;
        let holders = task_instances::slot_holders(&mut connection).await?;
        let capacity = capacity(&holders, self.settings.parallelism, &self.settings.pools);
        let free = capacity.parallelism.saturating_sub(capacity.running_total);
        if free == 0 {
            return Ok(());
        }
        // Read the waiting task instances in admission order, a page at a time, until the free
        // slots are taken or none are left: admission is greedy in that order, so what it admits
        // from the pages read is what it would admit from all of them.
        let page = (free * 4).max(DISPATCH_PAGE_MIN);
        let mut waiting = Vec::new();
        let mut candidates: Vec<Candidate<usize>> = Vec::new();
        let admitted = loop {
            let read = task_instances::scheduled(&mut connection, self.owner(), page, waiting.len()).await?;
            let last_page = read.len() < page;
            for entry in read {
                if let Some(dag) = bag.get(&entry.dag_id) {
                    candidates.push(Candidate {
                        key: waiting.len(),
                        run_key: entry.run_pk,
                        priority_weight: entry.priority_weight,
                        logical_date: entry.logical_date,
                        pool: entry.pool.clone(),
                        pool_slots: entry.pool_slots,
                        max_active_tasks: dag.max_active_tasks,
                    });
                }
                waiting.push(entry);
            }
            let admitted = planner::admit(&candidates, &capacity);
            if last_page || admitted.len() >= free {
                break admitted;
            }
        };
        if admitted.is_empty() {
            return Ok(());
        }
        let mut resolved = self.resolve_secrets(&mut connection, change_seq).await?;
        drop(connection);
        resolved.variables.extend(self.settings.variables.clone());
        resolved
            .passwords
            .extend(self.settings.connection_passwords.iter().cloned());
        let connections_view = resolved.connections.template_context();
        // Every claim of this step in one transaction; attempts start once it is committed.
        let mut transaction = self.db.begin().await?;
        let mut run_pks: Vec<i64> = admitted.iter().map(|admitted| admitted.run_key).collect();
        run_pks.sort_unstable();
        run_pks.dedup();
        let runs_of_step: HashMap<i64, DagRun> = runs::get_many(&mut transaction, &run_pks)
            .await?
            .into_iter()
            .map(|run| (run.pk, run))
            .collect();
        let mut outputs_cache: HashMap<i64, HashMap<String, String>> = HashMap::new();
        // First each attempt's rendered fields, then the claims, a few statements per run.
        let mut prepared = Vec::new();
        for admitted in &admitted {
            let waiting = &waiting[admitted.key];
            let Some(dag) = bag.get(&waiting.dag_id) else {
                continue;
            };
            let Some(run) = runs_of_step.get(&waiting.run_pk) else {
                continue;
            };
            let Some(task) = dag.task(waiting.task_id.as_str()) else {
                continue;
            };
            let try_number = waiting.try_number + 1;
            let context = if needs_context(task) {
                // Outputs change only when attempts end, never during a dispatch: read once per run.
                let outputs = match outputs_cache.entry(run.pk) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(task_instances::outputs(&mut transaction, run.pk).await?)
                    }
                };
                template_context(
                    dag,
                    run,
                    task.task_id.as_str(),
                    try_number,
                    outputs,
                    &resolved.variables,
                    &connections_view,
                )
            } else {
                serde_json::Value::Null
            };
            let rendered = render_fields(task, &dag.folder(), &context);
            let secrets = attempt::secrets(&resolved.variables, &task.env, &resolved.passwords);
            let rendered_json = match &rendered {
                Ok(fields) => mask_json(fields.to_json(), &secrets),
                Err(error) => serde_json::json!({ "error": error.to_string() }),
            };
            // A sensor's later pokes continue its try: its timeout counts from the first poke.
            let first_poke = if matches!(task.operator, Operator::Sensor(_)) {
                task_instances::attempts(&mut transaction, run.pk, &task.task_id)
                    .await?
                    .into_iter()
                    .find(|attempt| attempt.try_number == try_number)
                    .and_then(|attempt| attempt.start_date)
            } else {
                None
            };
            prepared.push(PreparedAttempt {
                dag,
                run,
                task,
                rendered,
                rendered_json,
                secrets,
                first_poke,
            });
        }
        let mut claimed: HashMap<i64, HashMap<TaskId, u32>> = HashMap::new();
        for run_pk in &run_pks {
            let claims: Vec<(&TaskId, &serde_json::Value)> = prepared
                .iter()
                .filter(|attempt| attempt.run.pk == *run_pk)
                .map(|attempt| (&attempt.task.task_id, &attempt.rendered_json))
                .collect();
            let tries =
                task_instances::claim_many(&mut transaction, *run_pk, &claims, self.scheduler_id(), now).await?;
            claimed.insert(*run_pk, tries.into_iter().collect());
        }
        let mut requests = Vec::new();
        for PreparedAttempt {
            dag,
            run,
            task,
            rendered,
            secrets,
            first_poke,
            ..
        } in prepared
        {
            // Another scheduler, or a clear or mark, got there first.
            let Some(&try_number) = claimed.get(&run.pk).and_then(|tries| tries.get(&task.task_id)) else {
                continue;
            };
            self.cache.claimed(run.pk, &task.task_id, try_number);
            let key = AttemptKey {
                run_pk: run.pk,
                task_id: task.task_id.clone(),
                try_number,
            };
            let span = attempt_span(&dag.dag_id, &run.run_id, &task.task_id, try_number);
            let prepared = rendered.map_err(|error| error.to_string()).and_then(|fields| {
                let urls = connection_urls(&fields.operator, &resolved.connections)?;
                Ok((fields, urls))
            });
            let (fields, connection_urls) = match prepared {
                Ok(prepared) => prepared,
                Err(error) => {
                    // A template that cannot render, or an unknown connection, fails the attempt
                    // before anything runs.
                    let result = AttemptResult::Failed { exit_code: None, error };
                    self.record_result(&mut transaction, dag, &key, &result, None, now)
                        .instrument(span)
                        .await?;
                    continue;
                }
            };
            let log = LogPath::new(
                &self.settings.logs_dir,
                &dag.dag_id,
                &run.run_id,
                &task.task_id,
                try_number,
            );
            let work = match &fields.operator {
                Operator::Shell {
                    command,
                    cwd,
                    skip_exit_code,
                } => {
                    let output = log.output();
                    let cwd = match cwd {
                        Some(cwd) => dag.folder().join(cwd),
                        None => dag.folder(),
                    };
                    let env = attempt_env(run, dag, task.task_id.as_str(), try_number, &fields.env, &output);
                    AttemptWork::Shell {
                        shell: Box::new(ShellAttempt {
                            command: command.clone(),
                            cwd,
                            env,
                            timeout: task.timeout,
                            kill_grace: self.settings.kill_grace,
                            exit_record_path: Some(log.exit_record()),
                            log_path: log,
                            secrets,
                            max_log_bytes: self.settings.max_log_bytes,
                        }),
                        skip_exit_code: *skip_exit_code,
                        output_path: output,
                    }
                }
                operator => {
                    let target_dag = match operator {
                        Operator::TriggerDag(trigger) => DagId::parse(trigger.dag_id.clone())
                            .ok()
                            .and_then(|target| bag.get(&target).cloned()),
                        _ => None,
                    };
                    AttemptWork::Builtin(Box::new(BuiltinAttempt {
                        operator: operator.clone(),
                        connections: connection_urls.clone(),
                        log_path: log,
                        secrets,
                        max_log_bytes: self.settings.max_log_bytes,
                        timeout: task.timeout,
                        folder: dag.folder(),
                        db: self.db.clone(),
                        dag_id: dag.dag_id.clone(),
                        run_id: run.run_id.clone(),
                        task_id: task.task_id.clone(),
                        logical_date: run.logical_date,
                        first_poke: first_poke.unwrap_or(now),
                        target_dag,
                    }))
                }
            };
            span.in_scope(|| tracing::debug!("queued attempt"));
            requests.push(AttemptRequest { key, work, span });
        }
        transaction.commit().await?;
        for request in requests {
            self.executor.submit(request);
            outcome.tasks_queued += 1;
        }
        Ok(())
    }
}

/// How many slots the task instances holding one (queued or running) take, against the limits.
pub fn capacity(active: &[SlotHolder], parallelism: u32, pools: &BTreeMap<String, u32>) -> Capacity {
    let mut capacity = Capacity {
        parallelism: parallelism as usize,
        running_total: active.len(),
        pool_size: pools.iter().map(|(name, slots)| (name.clone(), *slots)).collect(),
        ..Capacity::default()
    };
    for instance in active {
        *capacity.pool_used.entry(instance.pool.clone()).or_insert(0) += instance.pool_slots;
        *capacity.run_active.entry(instance.run_pk).or_insert(0) += 1;
    }
    capacity
}

/// One admitted task of a dispatch, rendered and ready to claim.
struct PreparedAttempt<'a> {
    dag: &'a Arc<Dag>,
    run: &'a DagRun,
    task: &'a crate::domain::dag::Task,
    rendered: Result<attempt::RenderedFields, crate::domain::template::RenderError>,
    /// As stored with the attempt: rendered fields with secrets masked.
    rendered_json: serde_json::Value,
    secrets: Vec<String>,
    first_poke: Option<DateTime<Utc>>,
}

/// The URLs (with credentials) of the connections `operator` names, or why one cannot be used.
pub fn connection_urls(operator: &Operator, connections: &Connections) -> Result<HashMap<String, String>, String> {
    operator
        .connections()
        .into_iter()
        .map(|name| {
            let url = connections.url(name).map_err(|error| error.to_string())?;
            Ok((name.to_string(), url))
        })
        .collect()
}

fn mask_json(value: serde_json::Value, secrets: &[String]) -> serde_json::Value {
    if secrets.is_empty() {
        return value;
    }
    match value {
        serde_json::Value::String(text) => {
            serde_json::Value::String(crate::runtime::masking::mask_secrets(&text, secrets))
        }
        serde_json::Value::Object(map) => {
            serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, mask_json(v, secrets))).collect())
        }
        other => other,
    }
}
