//! Task logs in the UI: a window of a log file read with a seek (a 100 MB log is never loaded
//! whole), and the live stream of an attempt's log over Server-Sent Events, which sends what the
//! file holds from an offset and then each new line as it is written, until the attempt ends.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use super::error::{UiError, UiPath, UiQuery};
use super::{find_dag, find_run, parse_task_id};
use crate::api::ApiState;
use crate::domain::ids::TaskId;
use crate::runtime::attempt;
use crate::runtime::loader::DagBag;
use crate::storage::{Db, task_instances};

/// The most of a log one page shows.
pub const LOG_WINDOW_BYTES: u64 = 256 * 1024;
/// The most one stream event carries.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;
/// How often a stream looks for new bytes.
const STREAM_POLL: Duration = Duration::from_millis(250);
/// How often a stream asks the database whether the attempt has ended.
const STREAM_STATE_CHECK: Duration = Duration::from_secs(1);
/// A stream ends after this long; the browser reconnects from the last event id. This bounds how
/// long a connection can hold up a graceful shutdown.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);

/// The part of a log file a page shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogWindow {
    pub exists: bool,
    pub text: String,
    /// Byte offsets of the window within the file, and the file's size.
    pub start: u64,
    pub end: u64,
    pub size: u64,
}

/// The log of one attempt: `<state_dir>/logs/<dag>/<run>/<task>/<try>.log`, from ids already
/// validated by their parsers; `.` and `..` are refused on top of that.
pub fn log_file(
    logs_dir: &Path,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: u32,
) -> Result<PathBuf, UiError> {
    if [dag_id, run_id, task_id]
        .iter()
        .any(|part| *part == "." || *part == "..")
    {
        return Err(UiError::BadRequest("`.` and `..` are not ids".to_string()));
    }
    Ok(attempt::log_path(logs_dir, dag_id, run_id, task_id, try_number))
}

/// Reads at most [`LOG_WINDOW_BYTES`] of the file: from `offset` when given (cut back to a line
/// end), else the end of the file (starting at a line start).
pub async fn read_window(path: &Path, offset: Option<u64>) -> std::io::Result<LogWindow> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LogWindow {
                exists: false,
                text: String::new(),
                start: 0,
                end: 0,
                size: 0,
            });
        }
        Err(error) => return Err(error),
    };
    let size = file.metadata().await?.len();
    let mut start = match offset {
        Some(offset) => offset.min(size),
        None => size.saturating_sub(LOG_WINDOW_BYTES),
    };
    let length = (size - start).min(LOG_WINDOW_BYTES);
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    file.take(length).read_to_end(&mut bytes).await?;
    let mut end = start + bytes.len() as u64;
    if offset.is_none() && start > 0 {
        if let Some(newline) = bytes.iter().position(|byte| *byte == b'\n') {
            bytes.drain(..=newline);
            start += newline as u64 + 1;
        }
    } else if end < size
        && let Some(newline) = bytes.iter().rposition(|byte| *byte == b'\n')
    {
        bytes.truncate(newline + 1);
        end = start + bytes.len() as u64;
    }
    Ok(LogWindow {
        exists: true,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        start,
        end,
        size,
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
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, UiError> {
    let dag = find_dag(&state, &dag_id)?;
    let run = find_run(&state, &dag, &run_id).await?;
    let task_id = parse_task_id(&task_id)?;
    let mut connection = state.db.acquire().await?;
    if task_instances::attempt_state(&mut connection, run.pk, &task_id, try_number)
        .await?
        .is_none()
    {
        return Err(UiError::NotFound(format!(
            "task `{task_id}` of run `{}` has no try {try_number}",
            run.run_id
        )));
    }
    drop(connection);
    let path = log_file(
        &state.config.logs_dir(),
        dag.dag_id.as_str(),
        run.run_id.as_str(),
        task_id.as_str(),
        try_number,
    )?;
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let tail = LogTail {
        db: state.db.clone(),
        dags: state.dags.clone(),
        run_pk: run.pk,
        task_id,
        try_number,
        path,
        position: resume.or(query.from).unwrap_or(0),
        finished: false,
        checked_at: None,
        opened_at: Instant::now(),
        done: false,
    };
    let events = futures_util::stream::unfold(tail, |mut tail| async move {
        tail.next_event().await.map(|event| (Ok(event), tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Where a stream is in one attempt's log.
struct LogTail {
    db: Db,
    /// Closed when the server shuts down: the stream ends with it.
    dags: watch::Receiver<std::sync::Arc<DagBag>>,
    run_pk: i64,
    task_id: TaskId,
    try_number: u32,
    path: PathBuf,
    position: u64,
    finished: bool,
    checked_at: Option<Instant>,
    opened_at: Instant,
    done: bool,
}

impl LogTail {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.done || self.opened_at.elapsed() > STREAM_LIFETIME || self.dags.has_changed().is_err() {
                return None;
            }
            if !self.finished && self.checked_at.is_none_or(|at| at.elapsed() >= STREAM_STATE_CHECK) {
                self.checked_at = Some(Instant::now());
                match self.attempt_finished().await {
                    Ok(finished) => self.finished = finished,
                    Err(error) => {
                        tracing::warn!(task_id = %self.task_id, "log stream stopped: {error}");
                        return None;
                    }
                }
            }
            let bytes = match self.read_chunk().await {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), "log stream stopped: {error}");
                    return None;
                }
            };
            if !bytes.is_empty() {
                self.position += bytes.len() as u64;
                let text = String::from_utf8_lossy(&bytes);
                let data = serde_json::json!({ "text": text }).to_string();
                return Some(Event::default().event("log").id(self.position.to_string()).data(data));
            }
            if self.finished {
                self.done = true;
                return Some(Event::default().event("end").data("{}"));
            }
            tokio::time::sleep(STREAM_POLL).await;
        }
    }

    async fn attempt_finished(&self) -> Result<bool, crate::storage::StorageError> {
        let mut connection = self.db.acquire().await?;
        let state = task_instances::attempt_state(&mut connection, self.run_pk, &self.task_id, self.try_number).await?;
        Ok(state.is_none_or(|state| state.is_finished()))
    }

    /// New bytes from the position: whole lines while the attempt runs, everything once it ended;
    /// never a UTF-8 character cut in two at the chunk's end.
    async fn read_chunk(&self) -> std::io::Result<Vec<u8>> {
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        file.seek(std::io::SeekFrom::Start(self.position)).await?;
        let mut bytes = Vec::new();
        file.take(STREAM_CHUNK_BYTES as u64).read_to_end(&mut bytes).await?;
        let full_chunk = bytes.len() == STREAM_CHUNK_BYTES;
        if !self.finished && !full_chunk {
            match bytes.iter().rposition(|byte| *byte == b'\n') {
                Some(newline) => bytes.truncate(newline + 1),
                None => bytes.clear(),
            }
        } else if full_chunk
            && let Err(error) = std::str::from_utf8(&bytes)
            && error.error_len().is_none()
        {
            bytes.truncate(error.valid_up_to());
        }
        Ok(bytes)
    }
}
