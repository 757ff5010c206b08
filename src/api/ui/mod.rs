//! The web UI (§8): server-rendered pages at Airflow's URLs (`/`, `/dags/{dag_id}`,
//! `/dags/{dag_id}/runs/{dag_run_id}`, `/dags/{dag_id}/runs/{dag_run_id}/tasks/{task_id}`), from
//! minijinja templates and plain CSS/JS embedded in the binary. Buttons post forms to routes here
//! that call `runtime::operations`, then redirect back (Post/Redirect/Get). Every route is a row
//! of [`entries`] with the `Access` it needs; the guard redirects callers without a session to
//! `/login` and refuses roles below the row's with a 403 page. Templates get the caller as `me`
//! and what they may do as `can` (see `render::page`), and show only those actions.

mod alerts;
mod audit;
mod backfills;
mod connections;
pub mod csrf;
mod dags;
mod datasets;
mod error;
pub mod graph;
mod login;
mod logs;
mod render;
mod runs;
mod tasks;
mod users;
mod variables;
mod views;

use std::sync::Arc;

use axum::handler::Handler;
use axum::response::Redirect;
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};

pub use self::error::error_page;
pub use self::render::with_caller;
pub use self::views::encode;
use super::ApiState;
use super::auth::{self, Surface};
use super::rest::Verb;
use crate::api::error::ApiError;
use crate::domain::auth::Access;
use crate::domain::dag::Dag;
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::storage::runs::{self as run_rows, DagRun};

/// One UI route: what the role × route test and the guard read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiRoute {
    pub verb: Verb,
    pub path: &'static str,
    pub access: Access,
}

struct UiEntry {
    route: UiRoute,
    handler: MethodRouter<ApiState>,
}

fn page<H, T>(verb: Verb, path: &'static str, access: Access, handler: H) -> UiEntry
where
    H: Handler<T, ApiState>,
    T: 'static,
{
    let handler = match verb {
        Verb::Get => get(handler),
        _ => post(handler),
    };
    UiEntry {
        route: UiRoute { verb, path, access },
        handler,
    }
}

/// Every UI route with the access it needs: pages to read are Viewer's, forms that change runs
/// and DAGs User's, variables and connections Op's, users Admin's. Forms post (never GET).
fn entries() -> Vec<UiEntry> {
    use Verb::{Get, Post};
    const PUBLIC: Access = Access::Public;
    const READ: Access = Access::READ;
    const OPERATE: Access = Access::OPERATE;
    const CONFIGURE: Access = Access::CONFIGURE;
    const ADMINISTER: Access = Access::ADMINISTER;
    vec![
        page(Get, "/login", PUBLIC, login::page),
        page(Post, "/login", PUBLIC, login::submit),
        page(Post, "/logout", PUBLIC, login::logout),
        page(Get, "/static/{*path}", PUBLIC, render::asset),
        page(Get, "/", READ, dags::list),
        page(Get, "/import-errors", READ, dags::import_errors),
        page(Get, "/datasets", READ, datasets::list),
        page(Get, "/alerts", READ, alerts::list),
        page(Get, "/audit", READ, audit::list),
        page(Get, "/variables", CONFIGURE, variables::list),
        page(Post, "/variables", CONFIGURE, variables::set),
        page(Post, "/variables/delete", CONFIGURE, variables::delete),
        page(Get, "/connections", CONFIGURE, connections::list),
        page(Post, "/connections", CONFIGURE, connections::add),
        page(Post, "/connections/delete", CONFIGURE, connections::delete),
        page(Post, "/connections/test", CONFIGURE, connections::test),
        page(Get, "/users", ADMINISTER, users::list),
        page(Post, "/users", ADMINISTER, users::create),
        page(Post, "/users/delete", ADMINISTER, users::delete),
        page(Post, "/users/reset-password", ADMINISTER, users::reset_password),
        page(Get, "/dags/{dag_id}", READ, dags::show),
        page(Post, "/dags/{dag_id}/pause", OPERATE, dags::pause),
        page(Post, "/dags/{dag_id}/trigger", OPERATE, dags::trigger),
        page(Post, "/dags/{dag_id}/backfill", OPERATE, backfills::submit),
        page(Get, "/dags/{dag_id}/backfills/{backfill_id}", READ, backfills::show),
        page(
            Post,
            "/dags/{dag_id}/backfills/{backfill_id}/state",
            OPERATE,
            backfills::change,
        ),
        page(Get, "/dags/{dag_id}/runs/{run_id}", READ, runs::show),
        page(Post, "/dags/{dag_id}/runs/{run_id}/clear", OPERATE, runs::clear),
        page(Get, "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", READ, tasks::show),
        page(
            Post,
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear",
            OPERATE,
            tasks::clear,
        ),
        page(
            Post,
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
            OPERATE,
            tasks::mark,
        ),
        page(
            Get,
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/{try_number}/stream",
            READ,
            logs::stream,
        ),
    ]
}

/// Every UI route, for tests that check each one's access.
pub fn route_table() -> Vec<UiRoute> {
    entries().into_iter().map(|entry| entry.route).collect()
}

/// Every row's route behind the guard of its `access`, its errors rendered as pages
/// ([`error::render_errors_as_pages`], inside the guard so a page's menu is the caller's), all
/// behind the CSRF layer
/// ([`csrf::protect`]): a route added here is protected without doing anything, and its forms get
/// the token with `{{ csrf_field() }}`.
pub fn router(state: &ApiState) -> Router<ApiState> {
    let mut router = Router::new();
    for entry in entries() {
        let guard_state = (state.clone(), entry.route.access, Surface::Ui);
        let handler = entry
            .handler
            .route_layer(axum::middleware::from_fn(error::render_errors_as_pages))
            .route_layer(axum::middleware::from_fn_with_state(guard_state, auth::guard));
        router = router.route(entry.route.path, handler);
    }
    router
        .layer(Extension(graph::GraphCache::default()))
        .layer(axum::middleware::from_fn_with_state(state.clone(), csrf::protect))
}

/// The event the audit log records when a form succeeds, by route: the REST API's operation id
/// for the same action, so one filter finds it whichever surface it came from. A handler whose
/// form does several things names the event itself (`AuditNote::event`).
const FORM_EVENTS: &[(&str, &str)] = &[
    ("/logout", "logout"),
    ("/users", "create_user"),
    ("/users/delete", "delete_user"),
    ("/users/reset-password", "reset_user_password"),
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
fn find_dag(state: &ApiState, raw_dag_id: &str) -> Result<Arc<Dag>, ApiError> {
    let dag_id = DagId::parse(raw_dag_id).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    state.bag().get(&dag_id).cloned().ok_or_else(|| {
        ApiError::NotFound(format!(
            "There is no DAG `{dag_id}`: no file in the DAG folder defines it, or its file has import errors."
        ))
    })
}

/// The run of `dag` named in the address.
async fn find_run(state: &ApiState, dag: &Dag, raw_run_id: &str) -> Result<DagRun, ApiError> {
    let run_id = RunId::parse(raw_run_id).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let mut connection = state.db.acquire().await?;
    run_rows::get(&mut connection, &dag.dag_id, &run_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("DAG `{}` has no run `{run_id}`.", dag.dag_id)))
}

fn parse_task_id(raw_task_id: &str) -> Result<TaskId, ApiError> {
    TaskId::parse(raw_task_id).map_err(|error| ApiError::BadRequest(error.to_string()))
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
    let decoded: Vec<u8> = percent_encoding::percent_decode(raw).collect();
    if leaves_path(&decoded) || decoded.iter().any(u8::is_ascii_control) {
        return None;
    }
    Some(next)
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
