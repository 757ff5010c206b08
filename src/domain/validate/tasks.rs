//! The `tasks:` of a DAG file: each task built from its own keys over `defaults:`, its pool and
//! dependencies checked, and all of them put in an order where each comes after its upstream.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use indexmap::IndexMap;
use serde_saphyr::Spanned;

use super::{MAX_RETRIES, check_template, count, duration, merged};
use super::{Problems, ValidationContext};
use crate::domain::dag::{RetryPolicy, Task};
use crate::domain::ids::TaskId;
use crate::domain::spec::{DagSpec, TaskSpec};
use crate::domain::trigger_rule::TriggerRule;

pub(super) fn tasks(spec: &DagSpec, context: &ValidationContext, problems: &mut Problems) -> Option<Vec<Task>> {
    let no_tasks = IndexMap::new();
    let declared = spec.tasks.value.as_ref().unwrap_or(&no_tasks);
    if declared.is_empty() {
        problems.at(
            &spec.tasks,
            "`tasks:` is missing or empty: a DAG needs at least one task, e.g. `tasks: {hello: {command: echo hello}}`",
        );
    }
    let defaults = spec.defaults.as_ref();
    if let Some(defaults) = defaults
        && let Some(depends_on) = defaults.value.depends_on.as_ref().and_then(|list| list.first())
    {
        problems.at(depends_on, "depends_on cannot be a default: set it on each task");
    }
    let default = |pick: fn(&TaskSpec) -> &Option<Spanned<String>>| defaults.map(|d| pick(&d.value));

    let mut ids: HashMap<&str, TaskId> = HashMap::new();
    let mut built: Vec<(Task, &Spanned<TaskSpec>)> = Vec::new();
    let mut all_valid = true;
    for (raw_id, task_spec) in declared {
        let task_id = match TaskId::parse(raw_id.value.clone()) {
            Ok(task_id) => task_id,
            Err(error) => {
                problems.at(raw_id, error.to_string());
                all_valid = false;
                continue;
            }
        };
        ids.insert(raw_id.value.as_str(), task_id.clone());
        let own = &task_spec.value;
        let fallback = defaults.map(|d| &d.value);

        let kind = merged(&own.kind, default(|d| &d.kind));
        let type_name = kind.map(|kind| kind.value.as_str()).unwrap_or("shell");
        let type_at = kind.map(|kind| kind.referenced).unwrap_or(task_spec.referenced);
        let keys = super::operators::TaskKeys {
            task_id: raw_id.value.as_str(),
            at: raw_id.referenced,
            own,
            defaults: fallback,
        };
        let operator = super::operators::operator(type_name, type_at, &keys, problems);

        let trigger_rule = match merged(&own.trigger_rule, default(|d| &d.trigger_rule)) {
            None => TriggerRule::AllSuccess,
            Some(rule) => rule
                .value
                .parse()
                .unwrap_or_else(|error: crate::domain::state::UnknownVariant| {
                    problems.at(rule, error.to_string());
                    TriggerRule::AllSuccess
                }),
        };
        let retry_delay = merged(&own.retry_delay, default(|d| &d.retry_delay))
            .and_then(|text| duration(text, "retry_delay", problems))
            .unwrap_or(context.default_task_retry_delay);
        let max_retry_delay = merged(&own.max_retry_delay, default(|d| &d.max_retry_delay))
            .and_then(|text| duration(text, "max_retry_delay", problems));
        let timeout_text = merged(&own.timeout, default(|d| &d.timeout));
        let timeout = timeout_text.and_then(|text| duration(text, "timeout", problems));
        if let Some(text) = timeout_text
            && timeout == Some(Duration::ZERO)
        {
            problems.at(
                text,
                format!("task `{task_id}` has a zero timeout: remove it or give a positive duration"),
            );
        }
        let pool = match merged(&own.pool, default(|d| &d.pool)) {
            None => "default".to_string(),
            Some(pool) => {
                if !context.pools.contains_key(&pool.value) {
                    let known: Vec<&str> = context.pools.keys().map(String::as_str).collect();
                    problems.at(
                        pool,
                        format!(
                            "unknown pool `{}`: add it under [pools] in config.toml (known pools: {})",
                            pool.value,
                            known.join(", ")
                        ),
                    );
                }
                pool.value.clone()
            }
        };
        let pool_slots_spec = merged(&own.pool_slots, fallback.map(|d| &d.pool_slots));
        let pool_slots = count(pool_slots_spec, "pool_slots", u32::MAX, problems).unwrap_or(1);
        if let (Some(written), Some(&size)) = (pool_slots_spec, context.pools.get(&pool)) {
            check_pool_slots(&task_id, &pool, pool_slots, size, written, problems);
        }
        let retries = match merged(&own.retries, fallback.map(|d| &d.retries)) {
            None => context.default_task_retries,
            Some(written) if written.value <= MAX_RETRIES => written.value,
            Some(written) => {
                problems.at(
                    written,
                    format!(
                        "retries must be at most {MAX_RETRIES}, not {}: to wait longer for something, use a sensor task with `poke_interval` and `timeout`",
                        written.value
                    ),
                );
                context.default_task_retries
            }
        };
        let priority_weight = match merged(&own.priority_weight, fallback.map(|d| &d.priority_weight)) {
            None => 1,
            Some(written) if i32::try_from(written.value).is_ok() => written.value,
            Some(written) => {
                problems.at(
                    written,
                    format!(
                        "priority_weight must be between {} and {} (as in Airflow), not {}: only the order of weights matters, so smaller numbers do the same",
                        i32::MIN,
                        i32::MAX,
                        written.value
                    ),
                );
                1
            }
        };
        let mut env = Vec::new();
        for source in [fallback.and_then(|d| d.env.as_ref()), own.env.as_ref()]
            .into_iter()
            .flatten()
        {
            for (name, value) in source {
                check_template(value, &format!("env.{name}"), problems);
                env.retain(|(existing, _): &(String, String)| existing != name);
                env.push((name.clone(), value.value.clone()));
            }
        }
        let Some(operator) = operator else {
            all_valid = false;
            continue;
        };
        let task = Task {
            task_id,
            operator,
            upstream: Vec::new(),
            downstream: Vec::new(),
            trigger_rule,
            retry: RetryPolicy {
                retries,
                retry_delay,
                exponential_backoff: own
                    .retry_exponential_backoff
                    .or(fallback.and_then(|d| d.retry_exponential_backoff))
                    .unwrap_or(false),
                max_retry_delay,
            },
            timeout,
            pool,
            pool_slots,
            priority_weight,
            env,
            depends_on_past: own
                .depends_on_past
                .or(fallback.and_then(|d| d.depends_on_past))
                .unwrap_or(false),
            outlets: own
                .outlets
                .clone()
                .or_else(|| fallback.and_then(|d| d.outlets.clone()))
                .unwrap_or_default(),
            doc: own.doc.clone(),
        };
        built.push((task, task_spec));
    }

    // Dependencies: every entry must name another task, once. A task that failed to build still
    // has its id in `ids`: depending on it is not a second problem.
    let mut near_names = None;
    for (task, task_spec) in &mut built {
        let mut seen = HashSet::new();
        for entry in task_spec.value.depends_on.iter().flatten() {
            match ids.get(entry.value.as_str()) {
                None => {
                    let near = near_names
                        .get_or_insert_with(|| super::limits::NearNames::new(ids.keys().copied()))
                        .near(&entry.value);
                    problems.at(
                        entry,
                        format!(
                            "task `{}` depends on unknown task `{}`: {}",
                            task.task_id,
                            entry.value,
                            super::limits::unknown_name_hint(near.as_deref())
                        ),
                    );
                }
                Some(upstream) if *upstream == task.task_id => {
                    problems.at(
                        entry,
                        format!(
                            "task `{}` depends on itself: remove it from its own depends_on",
                            task.task_id
                        ),
                    );
                }
                Some(upstream) => {
                    if seen.insert(upstream.clone()) {
                        task.upstream.push(upstream.clone());
                    } else {
                        problems.at(
                            entry,
                            format!(
                                "task `{}` lists `{}` twice in depends_on: remove one",
                                task.task_id, entry.value
                            ),
                        );
                    }
                }
            }
        }
    }
    let ordered = topological_order(&built, problems)?;
    if !all_valid {
        return None;
    }
    Some(ordered)
}

/// A task must fit in its pool, or it would wait for ever. A pool of 0 slots is closed on
/// purpose (its tasks wait until it is given slots again), so it is not a mistake here.
fn check_pool_slots(
    task_id: &TaskId,
    pool: &str,
    pool_slots: u32,
    size: u32,
    written: &Spanned<i64>,
    problems: &mut Problems,
) {
    if size > 0 && pool_slots > size {
        problems.at(
            written,
            format!(
                "task `{task_id}` takes {pool_slots} slots of pool `{pool}`, which has {size}, so it would never start: lower pool_slots to at most {size}, or give the pool more slots under [pools] in config.toml"
            ),
        );
    }
}

/// Orders tasks so each comes after its upstream tasks; a cycle is reported with its members.
/// An upstream task that failed to build is not in `built`: its edges are left out (its own
/// problem is reported, and no `Dag` is made from a file with one).
fn topological_order(built: &[(Task, &Spanned<TaskSpec>)], problems: &mut Problems) -> Option<Vec<Task>> {
    let position: HashMap<&TaskId, usize> = built
        .iter()
        .enumerate()
        .map(|(i, (task, _))| (&task.task_id, i))
        .collect();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    let mut marks = vec![Mark::White; built.len()];
    let mut order = Vec::with_capacity(built.len());
    let mut cycle_found = false;
    for start in 0..built.len() {
        if marks[start] != Mark::White {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Grey;
        while let Some(&mut (node, ref mut next_edge)) = stack.last_mut() {
            let upstream = &built[node].0.upstream;
            if *next_edge < upstream.len() {
                let target = position.get(&upstream[*next_edge]).copied();
                *next_edge += 1;
                let Some(target) = target else {
                    continue;
                };
                match marks[target] {
                    Mark::White => {
                        marks[target] = Mark::Grey;
                        stack.push((target, 0));
                    }
                    Mark::Grey if !cycle_found => {
                        cycle_found = true;
                        let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        // The stack walks upstream edges: each member depends on the next one.
                        let members: Vec<&str> = stack[from..]
                            .iter()
                            .map(|(n, _)| built[*n].0.task_id.as_str())
                            .collect();
                        let first = members.first().copied().unwrap_or_default();
                        let path = format!("{} -> {first} (each depends on the next)", members.join(" -> "));
                        let culprit = built[node].1;
                        let entry = culprit
                            .value
                            .depends_on
                            .iter()
                            .flatten()
                            .find(|entry| entry.value == built[target].0.task_id.as_str());
                        let message = format!("tasks form a cycle: {path}; remove one of these depends_on entries");
                        match entry {
                            Some(entry) => problems.at(entry, message),
                            None => problems.at(culprit, message),
                        }
                    }
                    _ => {}
                }
            } else {
                marks[node] = Mark::Black;
                order.push(node);
                stack.pop();
            }
        }
    }
    if cycle_found {
        return None;
    }
    let mut tasks: Vec<Task> = order.into_iter().map(|i| built[i].0.clone()).collect();
    let mut downstream: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    for task in &tasks {
        for upstream in &task.upstream {
            downstream
                .entry(upstream.clone())
                .or_default()
                .push(task.task_id.clone());
        }
    }
    for task in &mut tasks {
        task.downstream = downstream.remove(&task.task_id).unwrap_or_default();
    }
    Some(tasks)
}
