//! The web UI (§8): server-rendered pages at Airflow's URLs (`/`, `/dags/{dag_id}`,
//! `/dags/{dag_id}/runs/{dag_run_id}`, `/dags/{dag_id}/runs/{dag_run_id}/tasks/{task_id}`), from
//! minijinja templates and plain CSS/JS embedded in the binary. Buttons post forms to routes here
//! that call `runtime::operations`, then redirect back (Post/Redirect/Get).

mod alerts;
mod audit;
mod backfills;
mod connections;
pub mod csrf;
mod dags;
mod datasets;
mod error;
pub mod graph;
mod logs;
mod render;
mod runs;
mod tasks;
mod variables;
mod views;

use std::sync::Arc;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Extension, Router};

use self::error::UiError;
use super::ApiState;
use crate::domain::dag::Dag;
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::storage::runs::{self as run_rows, DagRun};

/// Every UI route, behind the CSRF layer ([`csrf::protect`]): a route added here is protected
/// without doing anything, and its forms get the token with `{{ csrf_field() }}`.
pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/", get(dags::list))
        .route("/import-errors", get(dags::import_errors))
        .route("/datasets", get(datasets::list))
        .route("/alerts", get(alerts::list))
        .route("/audit", get(audit::list))
        .route("/variables", get(variables::list).post(variables::set))
        .route("/variables/delete", post(variables::delete))
        .route("/connections", get(connections::list).post(connections::add))
        .route("/connections/delete", post(connections::delete))
        .route("/connections/test", post(connections::test))
        .route("/static/{*path}", get(render::asset))
        .route("/dags/{dag_id}", get(dags::show))
        .route("/dags/{dag_id}/pause", post(dags::pause))
        .route("/dags/{dag_id}/trigger", post(dags::trigger))
        .route("/dags/{dag_id}/backfill", post(backfills::submit))
        .route("/dags/{dag_id}/backfills/{backfill_id}", get(backfills::show))
        .route("/dags/{dag_id}/backfills/{backfill_id}/state", post(backfills::change))
        .route("/dags/{dag_id}/runs/{run_id}", get(runs::show))
        .route("/dags/{dag_id}/runs/{run_id}/clear", post(runs::clear))
        .route("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", get(tasks::show))
        .route("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear", post(tasks::clear))
        .route("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark", post(tasks::mark))
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/{try_number}/stream",
            get(logs::stream),
        )
        .layer(Extension(graph::GraphCache::default()))
        .layer(axum::middleware::from_fn_with_state(state.clone(), csrf::protect))
}

/// The event the audit log records when a form succeeds, by route: the REST API's operation id
/// for the same action, so one filter finds it whichever surface it came from. A handler whose
/// form does several things names the event itself (`AuditNote::event`).
const FORM_EVENTS: &[(&str, &str)] = &[
    ("/variables", "post_variable"),
    ("/variables/delete", "delete_variable"),
    ("/connections", "post_connection"),
    ("/connections/delete", "delete_connection"),
    ("/dags/{dag_id}/pause", "patch_dag"),
    ("/dags/{dag_id}/trigger", "trigger_dag_run"),
    ("/dags/{dag_id}/backfill", "create_backfill"),
    ("/dags/{dag_id}/backfills/{backfill_id}/state", "change_backfill"),
    ("/dags/{dag_id}/runs/{run_id}/clear", "clear_dag_run"),
    (
        "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear",
        "post_clear_task_instances",
    ),
    (
        "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
        "patch_task_instance",
    ),
];

/// The audit event of the form posted to `route` (axum's `MatchedPath`).
pub fn form_event(route: &str) -> Option<&'static str> {
    FORM_EVENTS
        .iter()
        .find(|(path, _)| *path == route)
        .map(|(_, event)| *event)
}

/// The loaded DAG named in the address.
fn find_dag(state: &ApiState, raw_dag_id: &str) -> Result<Arc<Dag>, UiError> {
    let dag_id = DagId::parse(raw_dag_id).map_err(|error| UiError::BadRequest(error.to_string()))?;
    state.bag().get(&dag_id).cloned().ok_or_else(|| {
        UiError::NotFound(format!(
            "There is no DAG `{dag_id}`: no file in the DAG folder defines it, or its file has import errors."
        ))
    })
}

/// The run of `dag` named in the address.
async fn find_run(state: &ApiState, dag: &Dag, raw_run_id: &str) -> Result<DagRun, UiError> {
    let run_id = RunId::parse(raw_run_id).map_err(|error| UiError::BadRequest(error.to_string()))?;
    let mut connection = state.db.acquire().await?;
    run_rows::get(&mut connection, &dag.dag_id, &run_id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("DAG `{}` has no run `{run_id}`.", dag.dag_id)))
}

fn parse_task_id(raw_task_id: &str) -> Result<TaskId, UiError> {
    TaskId::parse(raw_task_id).map_err(|error| UiError::BadRequest(error.to_string()))
}

/// Where a form goes back to: the page's `next` when it is a path on weir itself
/// ([`local_path`]), else `fallback`. Never fails, so an action already committed is never
/// answered with an error because of a hostile `next`.
fn back_to(next: Option<&str>, fallback: &str, notice: &str) -> Redirect {
    let target = next.and_then(local_path).unwrap_or(fallback);
    let separator = if target.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{target}{separator}notice={}", views::encode(notice)))
}

/// `next` if it is a path on this server (`/dags/x?tab=grid`), else `None`: no scheme, no
/// `//host` or `/\host` (browsers read both as another host), only printable ASCII (no space, no
/// control character such as a tab or CR/LF, which browsers drop or which would split the
/// `Location` header), and once percent-decoded still no `//`, `\\` or control character.
pub fn local_path(next: &str) -> Option<&str> {
    let printable = |text: &[u8]| text.iter().all(|byte| byte.is_ascii_graphic());
    let leaves_path = |text: &[u8]| text.starts_with(b"//") || text.starts_with(b"/\\") || text.contains(&b'\\');
    let raw = next.as_bytes();
    if !raw.starts_with(b"/") || leaves_path(raw) || !printable(raw) {
        return None;
    }
    let decoded = percent_decode(raw);
    if leaves_path(&decoded) || decoded.iter().any(u8::is_ascii_control) {
        return None;
    }
    Some(next)
}

/// `%XX` escapes decoded (others left as they are), for checking what a browser may make of them.
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let mut decoded = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        let escape = (raw[index] == b'%')
            .then(|| Some((hex(*raw.get(index + 1)?)?, hex(*raw.get(index + 2)?)?)))
            .flatten();
        match escape {
            Some((high, low)) => {
                decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                index += 3;
            }
            None => {
                decoded.push(raw[index]);
                index += 1;
            }
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_paths_on_weir_only() {
        let cases: &[(&str, bool)] = &[
            ("/", true),
            ("/dags/shop?tab=grid", true),
            ("/dags/shop/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00", true),
            ("/?tag=a%20b", true),
            ("/dags/caf%C3%A9", true),
            ("//evil.example", false),
            ("/\\evil.example", false),
            ("/dags\\..\\x", false),
            ("/\t/evil.example", false),
            ("/%09/evil.example", false),
            ("/%2F/evil.example", false),
            ("/%2f%2fevil.example", false),
            ("/dags/a%2Fb", true),
            ("/%5Cevil.example", false),
            ("/x\r\nSet-Cookie: a=b", false),
            ("/x%0d%0aSet-Cookie:%20a=b", false),
            ("/x\n", false),
            ("/x\0", false),
            ("/x\u{7f}", false),
            ("/x%7F", false),
            ("/x y", false),
            ("/dags/caf\u{e9}", false),
            ("https://evil.example/", false),
            ("javascript:alert(1)", false),
            ("http:/evil.example", false),
            ("evil.example", false),
            ("", false),
            (" /", false),
            ("%2F%2Fevil.example", false),
        ];
        for (next, accepted) in cases {
            assert_eq!(local_path(next).is_some(), *accepted, "next = {next:?}");
        }
    }
}
