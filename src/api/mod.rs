//! The HTTP surface (§8): the REST API under `/api/v2` (Airflow 3's stable API for the resources
//! weir has), the web UI at `/`, and `/metrics`. Handlers only translate: every decision and every
//! query is in the layers below.

pub mod audit;
pub mod auth;
pub mod error;
pub mod origin;
pub mod rest;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::from_fn_with_state;
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;

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
    /// Issues and checks tokens and sessions; throttles failed logins.
    pub auth: Arc<auth::Authenticator>,
    /// The state of this process's scheduler and DAG folder loader, for `/monitor/health`.
    pub health: Arc<crate::runtime::health::Health>,
}

impl ApiState {
    pub fn bag(&self) -> Arc<DagBag> {
        Arc::clone(&self.dags.borrow())
    }
}

/// Largest request body accepted (DAG run conf, variables, connections).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest a request may take, except streams (logs) which have their own rules.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What pages may load and do: only weir's own scripts, styles and images (no inline script or
/// style, so injected markup cannot run), forms post only to weir, and no site may frame weir.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every response carries (pages, API, static files, errors).
pub const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// The whole HTTP application.
///
/// Layer order matters: a layer added later wraps the ones before it and sees the request first.
/// The audit layer (`audit::record_changes`) comes right after the routes: what is inside it (the
/// API's origin check, the UI's CSRF check, the handlers) answers first, and a refusal is not
/// recorded. The authentication guard is also inside it (each route has its own, from its row's
/// `Access`): it names the caller on the response, which is how the audit layer learns the owner.
pub fn router(state: ApiState) -> Router {
    let mut router = Router::new()
        .merge(rest::router(&state).layer(from_fn_with_state(state.clone(), origin::refuse_foreign_browsers)))
        .merge(ui::router(&state))
        .layer(from_fn_with_state(state.clone(), audit::record_changes))
        .layer(from_fn_with_state(state.clone(), origin::refuse_rebound_hosts))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router.with_state(state)
}
