//! The trigger form of the DAG page: one input per param of the DAG, and `POST
//! /dags/{dag_id}/trigger`, which reads the inputs as conf and shows the form again with every
//! problem when a value is refused.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::DagPage;
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::ApiError;
use crate::api::ui::error::{UiForm, UiPath};
use crate::api::ui::graph::GraphCache;
use crate::api::ui::{back_to, find_dag};
use crate::domain::dag::Dag;
use crate::domain::params::{Param, ParamType};
use crate::domain::ui_paths;
use crate::runtime::operations::{self, OperationError};

/// One input of the trigger form.
#[derive(Debug, Serialize)]
pub(super) struct ParamField {
    name: String,
    kind: &'static str,
    input: &'static str,
    value: String,
    checked: bool,
    options: Vec<ParamOption>,
    description: Option<String>,
    required: bool,
}

#[derive(Debug, Serialize)]
struct ParamOption {
    value: String,
    label: String,
    selected: bool,
}

pub(super) fn param_fields(dag: &Dag, submitted: Option<&HashMap<String, String>>) -> Vec<ParamField> {
    dag.params
        .0
        .iter()
        .map(|(name, param)| {
            let submitted_value = submitted.and_then(|values| values.get(&format!("param:{name}")));
            let default_text = param.default.as_ref().map(value_text).unwrap_or_default();
            let value = submitted_value.cloned().unwrap_or(default_text);
            let input = match (param.kind, &param.allowed) {
                (_, Some(_)) => "select",
                (ParamType::Boolean, None) => "checkbox",
                (ParamType::Integer | ParamType::Number, None) => "number",
                (ParamType::Array | ParamType::Object | ParamType::Any, None) => "textarea",
                (ParamType::String, None) => "text",
            };
            let options = param
                .allowed
                .iter()
                .flatten()
                .map(|allowed| {
                    let json = allowed.to_string();
                    let selected = match submitted_value {
                        Some(chosen) => *chosen == json,
                        None => param.default.as_ref() == Some(allowed),
                    };
                    ParamOption {
                        value: json,
                        label: value_text(allowed),
                        selected,
                    }
                })
                .collect();
            ParamField {
                name: name.clone(),
                kind: param.kind.as_str(),
                input,
                checked: value == "true",
                value,
                options,
                description: param.description.clone(),
                required: param.default.is_none(),
            }
        })
        .collect()
}

/// A value as a person types it: strings bare, everything else as JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The typed value of one submitted field, or what is wrong with it. Empty fields are left out
/// (the param's default applies, or it is reported as required).
fn field_value(name: &str, param: &Param, text: &str) -> Result<Option<Value>, String> {
    if param.allowed.is_some() {
        return serde_json::from_str(text)
            .map(Some)
            .map_err(|_| format!("param `{name}`: choose one of the listed values"));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() && param.kind != ParamType::String {
        return Ok(None);
    }
    match param.kind {
        ParamType::String => Ok(Some(Value::String(text.to_string()))),
        ParamType::Integer => trimmed
            .parse::<i64>()
            .map(|number| Some(Value::from(number)))
            .map_err(|_| format!("param `{name}` must be a whole number, got `{trimmed}`")),
        ParamType::Number => trimmed
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(|number| Some(Value::Number(number)))
            .ok_or_else(|| format!("param `{name}` must be a number, got `{trimmed}`")),
        ParamType::Boolean => match trimmed {
            "true" | "on" => Ok(Some(Value::Bool(true))),
            "false" => Ok(Some(Value::Bool(false))),
            other => Err(format!("param `{name}` must be true or false, got `{other}`")),
        },
        ParamType::Array | ParamType::Object => serde_json::from_str(trimmed)
            .map(Some)
            .map_err(|error| format!("param `{name}` must be JSON ({}): {error}", param.kind.as_str())),
        ParamType::Any => Ok(Some(
            serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(text.to_string())),
        )),
    }
}

/// `POST /dags/{dag_id}/trigger`: a manual run with the form's params as conf. A bad value
/// shows the form again with every problem listed.
pub async fn trigger(
    State(state): State<ApiState>,
    Extension(graphs): Extension<GraphCache>,
    UiPath(dag_id): UiPath<String>,
    UiForm(fields): UiForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    // The last value wins: a checkbox posts a hidden `false` and, when ticked, `true` after it.
    let submitted: HashMap<String, String> = fields.into_iter().collect();
    let mut problems = Vec::new();
    let mut unreadable: Vec<&str> = Vec::new();
    let mut conf = Map::new();
    for (name, param) in &dag.params.0 {
        let Some(text) = submitted.get(&format!("param:{name}")) else {
            continue;
        };
        match field_value(name, param, text) {
            Ok(Some(value)) => {
                conf.insert(name.clone(), value);
            }
            Ok(None) => {}
            Err(problem) => {
                problems.push(problem);
                unreadable.push(name);
            }
        }
    }
    let run_id = submitted
        .get("run_id")
        .map(|run_id| run_id.trim())
        .filter(|run_id| !run_id.is_empty());
    if let Some(run_id) = run_id
        && (run_id == "." || run_id == "..")
    {
        problems.push(format!("`{run_id}` cannot be a run id"));
    }
    // The same check `manual_run` makes, here for its list of problems, each shown on its own.
    // Params whose field could not be read are already reported.
    if let Err(error) = dag.params.resolve(&Value::Object(conf.clone())) {
        problems.extend(error.problems.into_iter().filter(|problem| {
            !unreadable
                .iter()
                .any(|name| problem.starts_with(&format!("param `{name}` ")))
        }));
    }
    let outcome = if problems.is_empty() {
        match operations::manual_run(&dag, &Value::Object(conf), None, run_id, None) {
            Ok(new_run) => operations::trigger(&state.db, &dag, &new_run).await.map(Some),
            Err(error) => Err(error),
        }
    } else {
        Ok(None)
    };
    let status = match outcome {
        Ok(Some(run)) => {
            let next = format!("{}?tab=grid", ui_paths::dag(dag.dag_id.as_str()));
            let note = AuditNote::new().run(run.run_id.as_str()).logical_date(run.logical_date);
            let back = back_to(Some(&next), &next, &format!("Triggered run {}", run.run_id));
            return Ok((note, back).into_response());
        }
        Ok(None) => StatusCode::BAD_REQUEST,
        Err(OperationError::Invalid(message)) => {
            problems.push(message);
            StatusCode::BAD_REQUEST
        }
        Err(OperationError::Conflict(message)) => {
            problems.push(message);
            StatusCode::CONFLICT
        }
        Err(other) => return Err(other.into()),
    };
    let page = DagPage::load_tab(&state, &dag, "trigger", &graphs).await?;
    page.render(&dag, None, &problems, Some(&submitted), status)
}
