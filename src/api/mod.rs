//! The HTTP surface (§8): the REST API under `/api/v2` (Airflow 3's stable API for the resources
//! weir has), the web UI at `/`, and `/metrics`. Handlers only translate: every decision and every
//! query is in the layers below.

pub mod error;
pub mod rest;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::sync::watch;

use crate::config::Config;
use crate::runtime::loader::DagBag;
use crate::storage::Db;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    /// The DAG definitions as currently loaded from the folder.
    pub dags: watch::Receiver<Arc<DagBag>>,
    pub config: Arc<Config>,
    /// The in-process scheduler's own measurements (`weir serve`); `None` for `weir webserver`.
    pub scheduler_metrics: Option<Arc<crate::runtime::metrics::SchedulerMetrics>>,
    /// Encrypts connection passwords, secret extras and secret variables written through the API.
    pub secrets: crate::secrets::SecretsKey,
}

impl ApiState {
    pub fn bag(&self) -> Arc<DagBag> {
        Arc::clone(&self.dags.borrow())
    }
}

/// Largest request body accepted (DAG run conf, variables, connections).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest a request may take, except streams (logs) which have their own rules.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole HTTP application.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(rest::router())
        .merge(ui::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}
