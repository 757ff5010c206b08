//! The alerts page (§9): alert deliveries newest first, each with its channel, event, the run or
//! task it is about, its status, attempts and last error; filtered by DAG and status.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::UiQuery;
use super::{render, views};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::domain::alerts::DeliveryStatus;
use crate::domain::ids::DagId;
use crate::domain::ui_paths;
use crate::storage::alerts::{self, Alert, AlertFilter};

/// Deliveries shown on one page.
const PAGE_SIZE: u32 = 100;

#[derive(Debug, Deserialize)]
pub struct AlertsQuery {
    dag_id: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Serialize)]
struct AlertRow {
    id: i64,
    created_at: String,
    channel: String,
    event: String,
    dag_id: String,
    dag_url: String,
    run_id: String,
    run_url: String,
    task_id: Option<String>,
    task_url: Option<String>,
    status: &'static str,
    attempts: u32,
    error: Option<String>,
    when: Option<String>,
}

fn row(alert: Alert) -> AlertRow {
    let status = alert.status.shown();
    let when = match status {
        DeliveryStatus::Delivered => alert.delivered_at.map(|at| format!("delivered {}", views::time(at))),
        DeliveryStatus::Pending if alert.attempts > 0 => {
            Some(format!("next try {}", views::time(alert.next_attempt_at)))
        }
        _ => None,
    };
    AlertRow {
        id: alert.id,
        created_at: views::time(alert.created_at),
        dag_url: ui_paths::dag(&alert.dag_id),
        run_url: ui_paths::run(&alert.dag_id, &alert.run_id),
        task_url: alert
            .task_id
            .as_ref()
            .map(|task_id| ui_paths::task(&alert.dag_id, &alert.run_id, task_id)),
        channel: alert.channel,
        event: alert.event.as_str().to_string(),
        dag_id: alert.dag_id,
        run_id: alert.run_id,
        task_id: alert.task_id,
        status: status.as_str(),
        attempts: alert.attempts,
        error: alert.error,
        when,
    }
}

/// `GET /alerts?dag_id=&status=`.
pub async fn list(State(state): State<ApiState>, UiQuery(query): UiQuery<AlertsQuery>) -> Result<Response, ApiError> {
    let dag_id = query
        .dag_id
        .filter(|dag_id| !dag_id.is_empty())
        .map(DagId::parse)
        .transpose()
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let status = match query.status.as_deref().filter(|status| !status.is_empty()) {
        Some(text) => Some(
            text.parse::<DeliveryStatus>()
                .ok()
                .filter(|status| *status != DeliveryStatus::Sending)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`{text}` is not an alert status: use pending, delivered or failed."
                    ))
                })?,
        ),
        None => None,
    };
    let filter = AlertFilter {
        dag_id: dag_id.as_ref().map(ToString::to_string),
        status,
        limit: Some(PAGE_SIZE),
        offset: 0,
    };
    let mut connection = state.db.acquire().await?;
    let total = alerts::count(&mut connection, &filter).await?;
    let rows: Vec<AlertRow> = alerts::list(&mut connection, &filter)
        .await?
        .into_iter()
        .map(row)
        .collect();
    let live = rows.iter().any(|row| row.status == "pending");
    let channels: Vec<(String, &'static str)> = state
        .config
        .alerts
        .channels
        .values()
        .map(|channel| (channel.name.clone(), channel.kind.name()))
        .collect();
    let html = render::page(
        "alerts.html",
        context! {
            rows,
            total,
            shown => PAGE_SIZE,
            dag_id => dag_id.map(|dag_id| dag_id.to_string()),
            status => status.map(DeliveryStatus::as_str),
            statuses => ["pending", "delivered", "failed"],
            channels,
            live,
        },
    )?;
    Ok(html.into_response())
}
