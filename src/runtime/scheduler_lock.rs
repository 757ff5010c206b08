//! One scheduler per SQLite database: an OS advisory lock (`flock`) on a file next to the
//! database, held for the life of the process. The kernel releases it when the process ends,
//! however it ends (a SIGKILL included), so a crashed scheduler never blocks the next start.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Held while this process schedules against a SQLite database.
#[derive(Debug)]
pub struct SchedulerLock {
    /// Open for as long as the lock is held: closing it releases the lock.
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerLockError {
    #[error(
        "another weir scheduler ({holder}) is running against this SQLite database ({database}); stop it first, or use PostgreSQL to run more than one scheduler"
    )]
    Held { holder: String, database: String },
    #[error("cannot take the scheduler lock {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl SchedulerLock {
    /// The lock of the SQLite database file `database`, or who holds it. The lock file
    /// (`<database>.scheduler-lock`) says which process holds it, for the next one's message.
    pub fn acquire(database: &Path) -> Result<SchedulerLock, SchedulerLockError> {
        let path = lock_path(database);
        let io_error = |source| SchedulerLockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        // Not truncated on open: the holder's description must survive a refused open.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(SchedulerLockError::Held {
                    holder: if holder.is_empty() {
                        "a process that is starting".to_string()
                    } else {
                        holder.to_string()
                    },
                    database: database.display().to_string(),
                });
            }
            Err(TryLockError::Error(error)) => return Err(io_error(error)),
        }
        let holder = format!(
            "pid {} on host {}, started {}",
            std::process::id(),
            super::recovery::this_host(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0).map_err(io_error)?;
        file.write_all(holder.as_bytes()).map_err(io_error)?;
        Ok(SchedulerLock { _file: file })
    }
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_os_string();
    name.push(".scheduler-lock");
    PathBuf::from(name)
}

/// The file of a `sqlite://` database URL; `None` for another database or an in-memory one.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let (file, query) = rest.split_once('?').unwrap_or((rest, ""));
    if file.is_empty() || file == ":memory:" || query.split('&').any(|pair| pair == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_with_the_holder_named() {
        let folder = tempfile::tempdir().unwrap();
        let database = folder.path().join("weir.db");
        let first = SchedulerLock::acquire(&database).unwrap();
        let refused = SchedulerLock::acquire(&database).unwrap_err().to_string();
        assert!(
            refused.starts_with(&format!("another weir scheduler (pid {} on host ", std::process::id())),
            "{refused}"
        );
        assert!(refused.contains("stop it first, or use PostgreSQL"), "{refused}");
        drop(first);
        assert!(SchedulerLock::acquire(&database).is_ok(), "released with its file");
    }

    #[test]
    fn only_sqlite_files_have_a_lock() {
        assert_eq!(
            sqlite_file("sqlite:///srv/weir/weir.db?mode=rwc"),
            Some(PathBuf::from("/srv/weir/weir.db"))
        );
        assert_eq!(sqlite_file("sqlite://:memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory&cache=shared"), None);
        assert_eq!(sqlite_file("postgres://weir@db/weir"), None);
    }
}
