//! The audit log over HTTP: one middleware ([`record_changes`]) that records every successful
//! state-changing request (POST, PUT, PATCH, DELETE) of the REST API and the UI, and
//! [`record_login`] for the sign-in code. Who: the [`Principal`] the guard names on the response
//! (or a layer outside put in the request; "anonymous" without one); from where: the client's IP
//! address; what: the REST route table's operation id, or the event named for each UI form; on
//! what: the DAG, run and task in the path, plus what the handler adds with an [`AuditNote`].
//!
//! Successful means: a 2xx answer from the REST API, a redirect from the UI (its forms answer
//! with Post/Redirect/Get when they did what was asked; a refused form, a backfill preview or a
//! connection test answers with a page, and changed nothing). Refused requests (4xx, 5xx) are
//! not recorded, nor are requests that change nothing (dry runs, connection tests: their
//! handlers say so with [`AuditNote::not_recorded`]). Request bodies are never copied: only
//! names and ids a handler chose to add.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::Extension;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{Extensions, Method};
use axum::middleware::Next;
use axum::response::{IntoResponseParts, Response, ResponseParts};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ApiState;
use crate::domain::audit::{ANONYMOUS, NewEntry, Surface};
use crate::domain::auth::Principal;
use crate::storage::{Db, event_log};

/// What a handler adds to its request's audit entry: what the path does not say (the run a
/// trigger created, the key a form named, the state set). Only names and ids, never values.
/// Returned as part of the response: `Ok((note, response))`.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    event: Option<&'static str>,
    dag_id: Option<String>,
    run_id: Option<String>,
    task_id: Option<String>,
    logical_date: Option<DateTime<Utc>>,
    details: Vec<(&'static str, Value)>,
    not_recorded: bool,
}

impl AuditNote {
    pub fn new() -> AuditNote {
        AuditNote::default()
    }

    /// The event, when one route does several things (a backfill form pauses, resumes or cancels).
    pub fn event(mut self, event: &'static str) -> AuditNote {
        self.event = Some(event);
        self
    }

    pub fn dag(mut self, dag_id: &str) -> AuditNote {
        self.dag_id = Some(dag_id.to_string());
        self
    }

    pub fn run(mut self, run_id: &str) -> AuditNote {
        self.run_id = Some(run_id.to_string());
        self
    }

    pub fn task(mut self, task_id: &str) -> AuditNote {
        self.task_id = Some(task_id.to_string());
        self
    }

    pub fn logical_date(mut self, logical_date: DateTime<Utc>) -> AuditNote {
        self.logical_date = Some(logical_date);
        self
    }

    /// A name or id that says more (`key`, `backfill_id`, `state`); never a value that could be
    /// a secret.
    pub fn detail(mut self, name: &'static str, value: impl Into<Value>) -> AuditNote {
        self.details.push((name, value.into()));
        self
    }

    /// Nothing to record for this request: it changed nothing (a dry run, a connection test), or
    /// its handler recorded its own entry (a sign-in, through [`record_login`]).
    pub fn not_recorded() -> AuditNote {
        AuditNote {
            not_recorded: true,
            ..AuditNote::default()
        }
    }
}

impl IntoResponseParts for AuditNote {
    type Error = Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        parts.extensions_mut().insert(self);
        Ok(parts)
    }
}

/// The client's IP address, when the server was started with connection info (`weir serve`,
/// `weir webserver`; tests calling the router directly have none). Proxy headers such as
/// `X-Forwarded-For` are not read: anyone can send them.
pub fn client_address(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// How a sign-in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Recorded as `login`.
    Succeeded,
    /// Recorded as `login_failed`.
    Failed,
}

/// Records a sign-in (`POST /auth/token`, the login page): `login` or `login_failed`, the owner
/// being the username tried (cut to a bounded length; never the password). A failure to write
/// is logged, not returned: the sign-in itself goes on.
pub async fn record_login(db: &Db, outcome: LoginOutcome, username: &str, surface: Surface, address: Option<IpAddr>) {
    let event = match outcome {
        LoginOutcome::Succeeded => "login",
        LoginOutcome::Failed => "login_failed",
    };
    let entry = NewEntry::new(event, username, surface).address(address.map(|address| address.to_string()));
    write(db, &entry).await;
}

async fn write(db: &Db, entry: &NewEntry) {
    let result = match db.acquire().await {
        Ok(mut connection) => event_log::insert(&mut connection, entry, Utc::now()).await.map(drop),
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        tracing::error!(event = %entry.event, owner = %entry.owner, "cannot record an audit log entry: {error}");
    }
}

/// The signed-in person an authentication layer put into the request: as `Principal` (what
/// `request.extensions_mut().insert(principal)` stores and `Extension<Principal>` extracts), or
/// wrapped as `Extension<Principal>`.
fn principal(extensions: &Extensions) -> Option<&Principal> {
    extensions.get::<Principal>().or_else(|| {
        extensions
            .get::<Extension<Principal>>()
            .map(|Extension(principal)| principal)
    })
}

fn changes_state(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// The middleware over the REST API and the UI. It must run inside (after) the authentication
/// layer, so that the request's [`Principal`] is known: see `api::router`.
pub async fn record_changes(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if !changes_state(&method) {
        return next.run(request).await;
    }
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string())
    else {
        return next.run(request).await;
    };
    let surface = if route.starts_with("/api/") {
        Surface::Api
    } else {
        Surface::Ui
    };
    let asked_by = principal(request.extensions()).cloned();
    let address = client_address(request.extensions());
    let (mut parts, body) = request.into_parts();
    let params: Vec<(String, String)> = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let response = next.run(Request::from_parts(parts, body)).await;

    let succeeded = match surface {
        Surface::Ui => response.status().is_redirection(),
        _ => response.status().is_success(),
    };
    // The guard inside this layer names the caller on the response; a layer outside it, on the
    // request.
    let owner = principal(response.extensions())
        .or(asked_by.as_ref())
        .map_or_else(|| ANONYMOUS.to_string(), |principal| principal.username.clone());
    let note = response.extensions().get::<AuditNote>();
    if !succeeded || note.is_some_and(|note| note.not_recorded) {
        return response;
    }
    let event = note
        .and_then(|note| note.event)
        .or_else(|| match surface {
            Surface::Ui => super::ui::form_event(&route),
            _ => super::rest::operation_id(&method, &route),
        })
        .map_or_else(
            || {
                tracing::warn!(%route, "no audit event is named for this route: recorded by method and path");
                format!("{method} {route}")
            },
            str::to_string,
        );
    let mut entry = NewEntry::new(&event, &owner, surface).address(address.map(|address| address.to_string()));
    for (name, value) in params {
        entry = match name.as_str() {
            "dag_id" => entry.dag(&value),
            "dag_run_id" | "run_id" => entry.run(&value),
            "task_id" => entry.task(&value),
            "try_number" => {
                entry.try_number = value.parse().ok();
                entry
            }
            other => entry.detail(other, value),
        };
    }
    if let Some(note) = note {
        entry = apply(entry, note);
    }
    write(&state.db, &entry).await;
    response
}

fn apply(mut entry: NewEntry, note: &AuditNote) -> NewEntry {
    if let Some(dag_id) = &note.dag_id {
        entry = entry.dag(dag_id);
    }
    if let Some(run_id) = &note.run_id {
        entry = entry.run(run_id);
    }
    if let Some(task_id) = &note.task_id {
        entry = entry.task(task_id);
    }
    if let Some(logical_date) = note.logical_date {
        entry = entry.logical_date(logical_date);
    }
    for (name, value) in &note.details {
        entry = entry.detail(name, value.clone());
    }
    entry
}
