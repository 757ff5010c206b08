//! The exit record of a shell attempt: a small file next to its log, written by a `/bin/sh`
//! wrapper that outlives weir, so that recovery after a crash knows whether the attempt finished.
//!
//! The daemon learns an attempt's end by waiting for its process; if the daemon is killed, that
//! knowledge dies with it. So the attempt's process group leader is a wrapper shell that runs the
//! task's command in a subshell, then writes `<status>\n` (or `<status> gone\n`, see below) to the
//! record file and exits with the same status. It is written with one `write` of a few bytes after
//! the attempt ended; recovery reads it only after killing the attempt's processes (the wrapper
//! among them), so a reader sees a whole line or an empty or missing file, never another status (a
//! line without its newline is not trusted).

use std::path::Path;

use chrono::{DateTime, Utc};

/// Run as `/bin/sh -c EXIT_RECORDING_WRAPPER /bin/sh COMMAND RECORD_PATH`: the command and the
/// path are positional parameters, never pasted into the script. The wrapper is the attempt's
/// process group leader and runs the command in a subshell, a fork of itself, with `eval` (an
/// extra `exec` of a shell cost twice as much per attempt). So the command sees what `sh -c` gave
/// it: `$0` is `/bin/sh`, no positional parameters, `$$` the group leader, `$PPID` the daemon;
/// besides, two shell variables (not exported) holding the command and the path. A signal to the
/// group (timeout, cancellation, `kill $$`) ends the wrapper too, which then writes nothing: the
/// daemon, alive, knows why it ended. If a failed command's wrapper has another parent than
/// `$PPID` by then, the daemon died meanwhile and closed the command's output pipes under it (a
/// write then fails or raises SIGPIPE): the record says `gone`, and recovery does not blame the
/// task (`/proc` unreadable reads as gone, the benefit of the doubt). A success skips that check:
/// `read` takes `/proc/$$/stat` a byte per call, each one formatted afresh by the kernel.
pub const EXIT_RECORDING_WRAPPER: &str = r#"weir_exit_record=$2
(weir_command=$1; shift 2; eval "$weir_command")
status=$?
scheduler=
if [ "$status" != 0 ]; then
  parent=
  read -r _ _ _ parent _ 2>/dev/null </proc/$$/stat
  [ "$parent" = "$PPID" ] || scheduler=' gone'
fi
printf '%s%s\n' "$status" "$scheduler" >"$weir_exit_record"
exit "$status""#;

/// `$0` of the wrapper, which the command sees as its own: what `sh -c` gave it.
pub const WRAPPER_NAME: &str = "/bin/sh";

/// How a shell attempt ended, as its wrapper recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// The task's shell's exit status (128 + n when a signal n killed it).
    pub status: i32,
    /// The scheduler that started the attempt had died before it ended (checked for failures only).
    pub scheduler_gone: bool,
    /// When the record was written (the file's modification time), if known.
    pub written_at: Option<DateTime<Utc>>,
}

/// Reads the record at `path`: `None` if there is none, or only part of one.
pub fn read_exit_record(path: &Path) -> Option<ExitRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    let (status, scheduler_gone) = parse_exit_record(&text)?;
    let written_at = std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .map(DateTime::<Utc>::from);
    Some(ExitRecord {
        status,
        scheduler_gone,
        written_at,
    })
}

/// `"3\n"` → `(3, false)`, `"3 gone\n"` → `(3, true)`; anything else (empty, no newline, other
/// words) → `None`.
fn parse_exit_record(text: &str) -> Option<(i32, bool)> {
    let line = text.strip_suffix('\n')?;
    let (status, scheduler_gone) = match line.split_once(' ') {
        None => (line, false),
        Some((status, "gone")) => (status, true),
        Some(_) => return None,
    };
    Some((status.parse().ok()?, scheduler_gone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_line_is_a_record() {
        assert_eq!(parse_exit_record("0\n"), Some((0, false)));
        assert_eq!(parse_exit_record("3\n"), Some((3, false)));
        assert_eq!(parse_exit_record("141 gone\n"), Some((141, true)));
        for partial in ["", "0", "13", "141 gone", "x\n", "3 maybe\n", "0\n1 gone\n", "\n"] {
            assert_eq!(parse_exit_record(partial), None, "{partial:?}");
        }
    }

    #[test]
    fn a_missing_file_is_no_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_exit_record(&dir.path().join("1.exit")), None);
        std::fs::write(dir.path().join("2.exit"), "").expect("write");
        assert_eq!(read_exit_record(&dir.path().join("2.exit")), None);
        std::fs::write(dir.path().join("3.exit"), "3\n").expect("write");
        let record = read_exit_record(&dir.path().join("3.exit")).expect("a record");
        assert_eq!((record.status, record.scheduler_gone), (3, false));
        assert!(record.written_at.is_some());
    }
}
