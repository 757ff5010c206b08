//! Task logs in the UI: a window of an attempt's log, and its live stream over Server-Sent
//! Events, which sends what the log holds from an offset and then each new line as it is written,
//! until the attempt ends. Both read through `task_log::LogReader`, so a 100 MB log is never
//! loaded whole and no piece ends inside a character.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::error::{UiPath, UiQuery};
use super::{find_dag, find_run, parse_task_id};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::domain::ids::TaskId;
use crate::runtime::task_log::{LogPath, LogReader, Window};
use crate::storage::{Db, StorageError, task_instances};

/// The most of a log one page shows.
pub const LOG_WINDOW_BYTES: u64 = 256 * 1024;
/// The most one stream event carries.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;
/// A stream ends after this long; the browser reconnects from the last event id. This bounds how
/// long a connection can hold up a graceful shutdown.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);

/// The part of a log a page shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogWindow {
    pub exists: bool,
    pub text: String,
    /// Byte offsets of the window within the log, and the log's size.
    pub start: u64,
    pub end: u64,
    pub size: u64,
}

/// At most [`LOG_WINDOW_BYTES`] of the log: from `offset` when given, else its end (starting at a
/// line start). Everything written so far counts, a running attempt's unfinished last line too:
/// the live stream continues from the window's end.
pub async fn read_window(path: &LogPath, offset: Option<u64>) -> std::io::Result<LogWindow> {
    let reader = LogReader::file(path);
    let max = LOG_WINDOW_BYTES as usize;
    let window = match offset {
        Some(offset) => reader.window(offset, max).await?,
        None => reader.tail(max).await?,
    };
    Ok(LogWindow {
        exists: window.exists,
        text: window.text().into_owned(),
        start: window.start,
        end: window.end,
        size: window.size,
    })
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    from: Option<u64>,
}

/// `GET /dags/{dag_id}/runs/{dag_run_id}/tasks/{task_id}/logs/{try}/stream?from=<offset>`:
/// `log` events (`{"text": ...}`, id = the offset after them), then one `end` event once the
/// attempt has ended and everything is sent. A reconnecting browser resumes from `Last-Event-ID`.
pub async fn stream(
    State(state): State<ApiState>,
    UiPath((dag_id, run_id, task_id, try_number)): UiPath<(String, String, String, u32)>,
    UiQuery(query): UiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let run = find_run(&state, &dag, &run_id).await?;
    let task_id = parse_task_id(&task_id)?;
    let mut connection = state.db.acquire().await?;
    if task_instances::attempt_state(&mut connection, run.pk, &task_id, try_number)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "task `{task_id}` of run `{}` has no try {try_number}",
            run.run_id
        )));
    }
    drop(connection);
    let path = LogPath::new(&state.config.logs_dir(), &dag.dag_id, &run.run_id, &task_id, try_number);
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let (db, run_pk) = (state.db.clone(), run.pk);
    let ended = move || attempt_ended(db.clone(), run_pk, task_id.clone(), try_number);
    let follow = LogReader::file(&path)
        .follow(resume.or(query.from).unwrap_or(0), STREAM_CHUNK_BYTES, ended)
        .boxed();
    // Closed when the server shuts down: the stream ends with it.
    let mut dags = state.dags.clone();
    let stop = Box::pin(async move {
        tokio::select! {
            () = tokio::time::sleep(STREAM_LIFETIME) => {}
            () = async { while dags.changed().await.is_ok() {} } => {}
        }
    });
    let events = futures_util::stream::unfold(Some((follow, stop)), move |state| {
        let log = path.clone();
        async move {
            let (mut follow, mut stop) = state?;
            let item = tokio::select! {
                biased;
                () = &mut stop => return None,
                item = follow.next() => item,
            };
            match item {
                Some(Ok(window)) => Some((Ok(log_event(&window)), Some((follow, stop)))),
                Some(Err(error)) => {
                    tracing::warn!(%log, "log stream stopped: {error}");
                    None
                }
                None => Some((Ok(Event::default().event("end").data("{}")), None)),
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn log_event(window: &Window) -> Event {
    let data = serde_json::json!({ "text": window.text() }).to_string();
    Event::default().event("log").id(window.end.to_string()).data(data)
}

/// Whether the attempt has ended (or is gone: cleared, its run deleted).
async fn attempt_ended(db: Db, run_pk: i64, task_id: TaskId, try_number: u32) -> Result<bool, StorageError> {
    let mut connection = db.acquire().await?;
    let state = task_instances::attempt_state(&mut connection, run_pk, &task_id, try_number).await?;
    Ok(state.is_none_or(|state| state.is_finished()))
}
