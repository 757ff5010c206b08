//! `GET /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}`:
//! an attempt's log through `task_log::LogReader`, as Airflow's JSON lines or as plain text.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::dag_runs::find;
use super::query::QueryParams;
use super::task_instances::{check_map_index, find_instance, ids};
use crate::api::ApiState;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::runtime::task_log::{LogPath, LogReader};

/// One line of a log in Airflow's `StructuredLogMessage` shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLine {
    pub event: String,
}

/// Airflow's `TaskInstancesLogResponse`. `continuation_token` is the byte offset to read from
/// next (pass it back as `token`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskInstancesLogResponse {
    pub content: Vec<LogLine>,
    pub continuation_token: Option<String>,
}

/// Most bytes of log one JSON response carries; `continuation_token` continues from there.
const MAX_LOG_CHUNK: usize = 1024 * 1024;
/// The buffer a plain-text log is streamed through.
const TEXT_STREAM_CHUNK: usize = 64 * 1024;
/// The response header that carries the continuation token of a plain-text log (Airflow's name).
const CONTINUATION_HEADER: &str = "airflow-continuation-token";

/// `GET .../taskInstances/{task_id}/logs/{try_number}`: JSON lines by default, the raw text with
/// `Accept: text/plain`. The ids are parsed before any path is built, so none can leave the logs
/// folder.
///
/// The log is read through `task_log::LogReader` from the offset the `token` carries (a
/// continuation token is the byte offset to continue from, as an opaque string), so memory stays
/// bounded whatever the log's size. JSON: one window of at most [`MAX_LOG_CHUNK`] bytes from the
/// token on, and the token of what follows (while the attempt runs, a last line still being written
/// waits for its end). Plain text: everything from the token to the end of the log as it is at the
/// request, streamed in [`TEXT_STREAM_CHUNK`] pieces, with the token of the end in the
/// `Airflow-Continuation-Token` header.
pub async fn logs(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id, task_id, try_number)): ApiPath<(String, String, String, String)>,
    params: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (dag_id, run_id, task_id) = ids(&dag_id, &run_id, &task_id)?;
    let try_number: u32 = try_number
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("try_number must be a positive integer, got `{try_number}`")))?;
    check_map_index(&params)?;
    let offset: u64 = match params.one("token") {
        None | Some("") => 0,
        Some(token) => token.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "token `{token}` is not a continuation token from an earlier response"
            ))
        })?,
    };
    let run = find(&state, &dag_id, &run_id).await?;
    let ti = find_instance(&state, &run, &task_id).await?;
    if try_number == 0 || try_number > ti.try_number {
        return Err(ApiError::NotFound(format!(
            "`{task_id}` in run `{run_id}` has no try {try_number} (tries so far: {})",
            ti.try_number
        )));
    }
    let still_writing = try_number == ti.try_number && ti.state.is_active();
    let path = LogPath::new(&state.config.logs_dir(), &dag_id, &run_id, &task_id, try_number);
    let reader = LogReader::file(&path).still_writing(still_writing);
    let reading_error =
        |error: std::io::Error| ApiError::Internal(anyhow::Error::new(error).context(format!("reading log {path}")));
    let wants_text = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/plain") && !accept.contains("application/json"));
    if wants_text {
        return text_log(reader, offset).await.map_err(reading_error);
    }
    let window = reader.window(offset, MAX_LOG_CHUNK).await.map_err(reading_error)?;
    Ok(ApiJson(TaskInstancesLogResponse {
        content: window
            .text()
            .lines()
            .map(|line| LogLine {
                event: line.to_string(),
            })
            .collect(),
        continuation_token: Some(window.end.to_string()),
    })
    .into_response())
}

/// The log from `offset` to its end as it is now, streamed a bounded piece at a time.
async fn text_log(reader: LogReader, offset: u64) -> std::io::Result<Response> {
    let end = reader.size().await?.unwrap_or(0);
    let body = Body::from_stream(reader.pieces(offset.min(end), end, TEXT_STREAM_CHUNK));
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
            (HeaderName::from_static(CONTINUATION_HEADER), end.to_string()),
        ],
        body,
    )
        .into_response())
}
