//! The log of an in-process attempt: lines appended to the attempt's log file as they happen,
//! with every secret masked as `***`. Write errors are reported once in the daemon's own log and
//! never fail the task.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::runtime::masking::Masker;

pub struct TaskLog {
    file: File,
    masker: Masker,
    failed: bool,
}

impl TaskLog {
    /// Opens (creating folders and file) for appending: a sensor's pokes share one try's log.
    pub fn open(path: &Path, secrets: &[String]) -> std::io::Result<TaskLog> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(TaskLog {
            file,
            masker: Masker::new(secrets),
            failed: false,
        })
    }

    /// A `[weir]` line: what weir did for the task.
    pub fn note(&mut self, text: &str) {
        self.write(&format!("[weir] {text}"));
    }

    /// Lines of what the task produced (a response body, rows), as they are.
    pub fn output(&mut self, text: &str) {
        for line in text.lines() {
            self.write(line);
        }
    }

    fn write(&mut self, line: &str) {
        if self.failed {
            return;
        }
        let masked = self.masker.mask(line);
        if let Err(error) = writeln!(self.file, "{masked}") {
            self.failed = true;
            tracing::warn!(%error, "could not write a task log line; further lines of this attempt are dropped");
        }
    }
}
