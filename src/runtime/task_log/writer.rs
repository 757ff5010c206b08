//! The one writer of task logs: every line masked, task output capped at `max_log_bytes`, every
//! write a whole line. Write errors are reported once in the daemon's own log and then ignored: a
//! full disk must not turn into a hung or failed attempt.
//!
//! It writes with plain blocking calls from the attempt's task: a line into the page cache takes
//! microseconds, while `tokio::fs` hands every call to the blocking pool, which with hundreds of
//! attempts at once meant a thread hop (and often a new thread) per open, write and flush.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use super::LogPath;
use crate::runtime::masking::Masker;

/// Appends to one attempt's log (a sensor's pokes share one try's log, so it never truncates).
pub struct LogWriter {
    out: BufWriter<std::fs::File>,
    path: PathBuf,
    masker: Masker,
    max_output_bytes: u64,
    output_bytes: u64,
    dropped_bytes: u64,
    failed: bool,
}

impl LogWriter {
    /// Opens the log for appending, creating its folders. Every occurrence of a secret in what is
    /// written becomes `***`; once task output reaches `max_output_bytes`, one `[weir]` line says
    /// so and further output is dropped (`[weir]` lines do not count and are never dropped).
    pub fn open(path: &LogPath, secrets: &[String], max_output_bytes: u64) -> io::Result<Self> {
        let file_path = path.file();
        if let Some(parent) = file_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&file_path)?;
        Ok(Self {
            out: BufWriter::new(file),
            path: file_path,
            masker: Masker::new(secrets),
            max_output_bytes,
            output_bytes: 0,
            dropped_bytes: 0,
            failed: false,
        })
    }

    /// `[weir]` lines, one per line of `text`: what weir did for the task. Written at once.
    pub fn note(&mut self, text: &str) {
        for line in text.lines() {
            let masked = self.masker.mask(line);
            self.write(&[b"[weir] ", masked.as_bytes(), b"\n"]);
        }
        self.flush();
    }

    /// Lines of what the task produced (a response body, rows), as they are. Written at once.
    pub fn output(&mut self, text: &str) {
        for line in text.lines() {
            self.output_line(line);
        }
        self.flush();
    }

    /// One line of task output (no newline in it), buffered: the process streamer flushes when it
    /// has caught up, so heavy output costs no system call per line. Returns the line as masked,
    /// also when the cap dropped it (a shell attempt's last stdout line is its output).
    pub fn output_line(&mut self, line: &str) -> String {
        let masked = self.masker.mask(line);
        let size = masked.len() as u64 + 1;
        if self.dropped_bytes > 0 || self.output_bytes + size > self.max_output_bytes {
            if self.dropped_bytes == 0 {
                let text = format!(
                    "log truncated: output reached max_log_bytes ({}); further output is dropped",
                    self.max_output_bytes
                );
                self.write(&[b"[weir] ", text.as_bytes(), b"\n"]);
            }
            self.dropped_bytes += size;
            return masked;
        }
        self.output_bytes += size;
        self.write(&[masked.as_bytes(), b"\n"]);
        masked
    }

    /// Bytes of output the cap dropped so far.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    pub fn flush(&mut self) {
        if !self.failed
            && let Err(error) = self.out.flush()
        {
            self.fail(&error);
        }
    }

    fn write(&mut self, parts: &[&[u8]]) {
        if self.failed {
            return;
        }
        for part in parts {
            if let Err(error) = self.out.write_all(part) {
                self.fail(&error);
                return;
            }
        }
    }

    fn fail(&mut self, error: &io::Error) {
        tracing::warn!(%error, path = %self.path.display(), "writing a task log failed; further lines of this attempt are dropped");
        self.failed = true;
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Appends `[weir]` lines to an attempt's log from outside the attempt (recovery after a crash);
/// a log that cannot be written is reported and skipped.
pub fn append_note(path: &LogPath, text: &str) {
    match LogWriter::open(path, &[], u64::MAX) {
        Ok(mut log) => log.note(text),
        Err(error) => tracing::warn!(%error, %path, "cannot append a note to a task log"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{DagId, RunId, TaskId};

    fn log_path(dir: &std::path::Path) -> LogPath {
        LogPath::new(
            dir,
            &DagId::parse("d").unwrap(),
            &RunId::parse("r").unwrap(),
            &TaskId::parse("t").unwrap(),
            1,
        )
    }

    #[test]
    fn notes_and_output_are_masked_line_by_line_and_output_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path());
        let mut log = LogWriter::open(&path, &["hunter2".to_string()], 20).unwrap();
        log.note("connecting with hunter2\nsecond note");
        log.output("pw=hunter2\nabcdefghij");
        assert_eq!(log.output_line("more hunter2"), "more ***");
        assert_eq!(log.dropped_bytes(), 9);
        drop(log);
        append_note(&path, "recovered");
        assert_eq!(
            std::fs::read_to_string(path.file()).unwrap(),
            "[weir] connecting with ***\n[weir] second note\npw=***\nabcdefghij\n\
             [weir] log truncated: output reached max_log_bytes (20); further output is dropped\n\
             [weir] recovered\n"
        );
    }
}
