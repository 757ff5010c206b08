//! Where one attempt's log and the files next to it live: built only from validated ids, so no
//! path built here can leave the logs folder (an id is `[A-Za-z0-9_.-]`, never `.` or `..`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::domain::ids::{DagId, RunId, TaskId};

/// `<logs_dir>/<dag_id>/<run_id>/<task_id>/<try>.log`, and its `.exit` and `.output` siblings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPath {
    /// `<logs_dir>/<dag_id>/<run_id>/<task_id>`.
    folder: PathBuf,
    try_number: u32,
}

impl LogPath {
    pub fn new(logs_dir: &Path, dag_id: &DagId, run_id: &RunId, task_id: &TaskId, try_number: u32) -> Self {
        Self {
            folder: logs_dir
                .join(dag_id.as_str())
                .join(run_id.as_str())
                .join(task_id.as_str()),
            try_number,
        }
    }

    /// The log file itself.
    pub fn file(&self) -> PathBuf {
        self.sibling("log")
    }

    /// Where a shell attempt's wrapper records its exit status (see `runtime::exit_record`).
    pub fn exit_record(&self) -> PathBuf {
        self.sibling("exit")
    }

    /// Where a task writes its output (`$WEIR_OUTPUT`).
    pub fn output(&self) -> PathBuf {
        self.sibling("output")
    }

    pub fn try_number(&self) -> u32 {
        self.try_number
    }

    fn sibling(&self, extension: &str) -> PathBuf {
        self.folder.join(format!("{}.{extension}", self.try_number))
    }
}

impl fmt::Display for LogPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.file().display().fmt(formatter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempts_files_sit_in_its_task_folder_named_by_try() {
        let path = LogPath::new(
            Path::new("/state/logs"),
            &DagId::parse("etl").unwrap(),
            &RunId::parse("manual__2026-03-01T00:00:00+00:00").unwrap(),
            &TaskId::parse("load").unwrap(),
            2,
        );
        let folder = "/state/logs/etl/manual__2026-03-01T00:00:00+00:00/load";
        assert_eq!(path.file(), PathBuf::from(format!("{folder}/2.log")));
        assert_eq!(path.exit_record(), PathBuf::from(format!("{folder}/2.exit")));
        assert_eq!(path.output(), PathBuf::from(format!("{folder}/2.output")));
        assert_eq!(path.to_string(), format!("{folder}/2.log"));
    }
}
