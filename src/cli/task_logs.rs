//! `weir tasks logs`: an attempt's log printed through `task_log::LogReader`, a bounded piece at
//! a time, and followed while the attempt runs.

use std::process::ExitCode;

use futures_util::StreamExt;

use super::runs::{find_run, parse_ids};
use super::{App, CliError, CliResult};
use crate::domain::ids::TaskId;
use crate::runtime::task_log::{LogPath, LogReader};
use crate::storage::task_instances;

pub async fn logs(
    app: &App,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    try_number: Option<u32>,
    follow: bool,
) -> CliResult {
    let (dag_id, run_id) = parse_ids(dag_id, run_id)?;
    let task_id = TaskId::parse(task_id).map_err(|error| CliError::Usage(error.to_string()))?;
    let db = app.db(false).await?;
    let mut connection = db.acquire().await?;
    let run = find_run(&mut connection, &dag_id, &run_id).await?;
    let instance = task_instances::get(&mut connection, run.pk, &task_id)
        .await?
        .ok_or_else(|| CliError::Failed(format!("run `{run_id}` has no task instance `{task_id}`")))?;
    drop(connection);
    let try_number = try_number.unwrap_or(instance.try_number);
    if try_number == 0 {
        return Err(CliError::Failed(format!(
            "`{task_id}` has not started yet ({}); nothing logged",
            instance.state
        ))
        .into());
    }
    let path = LogPath::new(&app.config.logs_dir(), &dag_id, &run_id, &task_id, try_number);
    let reader = LogReader::file(&path);
    if reader.size().await?.is_none() {
        return Err(CliError::Failed(format!("no log at {path}")).into());
    }
    if !follow {
        print_log(&reader).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let ended = || {
        let (db, task_id) = (db.clone(), task_id.clone());
        async move {
            let mut connection = db.acquire().await?;
            let current = task_instances::get(&mut connection, run.pk, &task_id).await?;
            anyhow::Ok(current.is_none_or(|ti| ti.try_number != try_number || !ti.state.is_active()))
        }
    };
    let mut pieces = std::pin::pin!(reader.follow(0, LOG_PIECE_BYTES, ended));
    while let Some(window) = pieces.next().await {
        write_stdout(&window?.bytes).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The most of a log held in memory while printing it.
const LOG_PIECE_BYTES: usize = 64 * 1024;

/// Prints the log as it is now, a bounded piece at a time, so a log of any size streams.
pub async fn print_log(reader: &LogReader) -> anyhow::Result<()> {
    let end = reader.size().await?.unwrap_or(0);
    let mut pieces = std::pin::pin!(reader.clone().pieces(0, end, LOG_PIECE_BYTES));
    while let Some(piece) = pieces.next().await {
        write_stdout(&piece?).await?;
    }
    Ok(())
}

async fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(bytes).await?;
    stdout.flush().await?;
    Ok(())
}
