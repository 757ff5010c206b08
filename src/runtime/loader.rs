//! The DAG folder: finds every `*.yaml`/`*.yml` file, parses and validates the changed ones, and
//! keeps the set of loaded DAGs and import errors. The daemon watches the folder (inotify, with
//! a `dag_dir_poll` rescan as a safety net) and records each change in the database.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use notify::Watcher;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::domain::dag::Dag;
use crate::domain::ids::DagId;
use crate::domain::schedule::CronCache;
use crate::domain::validate::{DagFileError, MAX_DAG_FILE_BYTES, Problem, ValidationContext, too_large};
use crate::runtime::health::{Component, DatabaseLoop, Health};
use crate::storage::failure::ErrorClass;
use crate::storage::import_errors::NewImportError;
use crate::storage::{self, Db, StorageError};

/// The DAGs loaded from the folder, and the files that failed.
#[derive(Debug, Clone, Default)]
pub struct DagBag {
    pub dags: BTreeMap<DagId, Arc<Dag>>,
    pub errors: Vec<DagFileError>,
}

impl DagBag {
    pub fn get(&self, dag_id: &DagId) -> Option<&Arc<Dag>> {
        self.dags.get(dag_id)
    }

    /// One row per problem, for the `import_error` table.
    pub fn import_errors(&self) -> Vec<NewImportError> {
        self.errors
            .iter()
            .flat_map(|error| {
                error.problems.iter().map(|problem| NewImportError {
                    filename: error.path.display().to_string(),
                    line: problem.line,
                    column: problem.column,
                    message: problem.message.clone(),
                })
            })
            .collect()
    }
}

struct FileEntry {
    modified: Option<SystemTime>,
    len: u64,
    parsed: Result<Arc<Dag>, DagFileError>,
}

/// The folder and what was last read from each file; re-reads only files whose size or
/// modification time changed.
pub struct DagFolder {
    folder: PathBuf,
    context: ValidationContext,
    files: HashMap<PathBuf, FileEntry>,
    crons: CronCache,
}

impl DagFolder {
    pub fn new(folder: PathBuf, context: ValidationContext) -> Self {
        DagFolder {
            folder,
            context,
            files: HashMap::new(),
            crons: CronCache::default(),
        }
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Rescans the folder (blocking IO). Returns `None` when nothing changed since the last call.
    pub fn refresh(&mut self) -> Option<DagBag> {
        let paths = dag_files(&self.folder);
        let mut changed = paths.len() != self.files.len();
        // `dag_files` returns the paths sorted: a binary search keeps a rescan of a thousand files
        // from doing a million comparisons every `dag_dir_poll`.
        self.files
            .retain(|path, _| paths.binary_search_by(|probe| by_bytes(probe, path)).is_ok());
        for path in &paths {
            let metadata = std::fs::metadata(path).ok();
            let modified = metadata.as_ref().and_then(|metadata| metadata.modified().ok());
            let len = metadata.as_ref().map_or(0, std::fs::Metadata::len);
            if let Some(entry) = self.files.get(path)
                && entry.modified == modified
                && entry.len == len
            {
                continue;
            }
            changed = true;
            let parsed = parse_file(path, &self.context).map(|mut dag| {
                dag.timetable.schedule = dag.timetable.schedule.shared(&mut self.crons);
                Arc::new(dag)
            });
            self.files.insert(path.clone(), FileEntry { modified, len, parsed });
        }
        changed.then(|| self.bag())
    }

    fn bag(&self) -> DagBag {
        let mut paths: Vec<&PathBuf> = self.files.keys().collect();
        paths.sort();
        let mut bag = DagBag::default();
        let mut origin: HashMap<DagId, &PathBuf> = HashMap::new();
        for path in paths {
            match &self.files[path].parsed {
                Ok(dag) => {
                    if let Some(first) = origin.get(&dag.dag_id) {
                        bag.errors.push(DagFileError {
                            path: path.clone(),
                            problems: vec![Problem {
                                line: 1,
                                column: 1,
                                message: format!(
                                    "dag_id `{}` is already defined in {}: DAG ids must be unique; set a different `dag_id:`",
                                    dag.dag_id,
                                    first.display()
                                ),
                            }],
                        });
                    } else {
                        origin.insert(dag.dag_id.clone(), path);
                        bag.dags.insert(dag.dag_id.clone(), Arc::clone(dag));
                    }
                }
                Err(error) => bag.errors.push(error.clone()),
            }
        }
        bag
    }
}

/// Reads and validates one DAG file.
/// A file larger than [`MAX_DAG_FILE_BYTES`] is refused without reading more than that.
/// A bug in weir that panics while reading the file becomes that file's import error: one file
/// must never stop the daemon's loader, `weir serve` or `weir dags validate`.
pub fn parse_file(path: &Path, context: &ValidationContext) -> Result<Dag, DagFileError> {
    catching_panics(path, || read_and_validate(path, context))
}

/// Runs `parse`, turning a panic in it into the import error of the file at `path`.
fn catching_panics(path: &Path, parse: impl FnOnce() -> Result<Dag, DagFileError>) -> Result<Dag, DagFileError> {
    // A parse only reads its file and the context and builds a new `Dag`: a panic halfway leaves
    // nothing shared half-changed, so unwinding past it is safe.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)).unwrap_or_else(|payload| {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        tracing::error!(path = %path.display(), %reason, "internal error while reading a DAG file");
        Err(DagFileError::new(path, vec![internal_error(&reason)]))
    })
}

/// The import error of a file whose reading hit a bug in weir.
fn internal_error(reason: &str) -> Problem {
    Problem {
        line: 1,
        column: 1,
        message: format!(
            "internal error while reading this file: {reason}; this is a bug in weir, please report it with the file attached (the other DAG files are not affected)"
        ),
    }
}

fn read_and_validate(path: &Path, context: &ValidationContext) -> Result<Dag, DagFileError> {
    let fail = |problem: Problem| DagFileError::new(path, vec![problem]);
    let cannot_read = |error: std::io::Error| Problem {
        line: 1,
        column: 1,
        message: format!("cannot read the file: {error}"),
    };
    let file = std::fs::File::open(path).map_err(|error| fail(cannot_read(error)))?;
    let mut bytes = Vec::new();
    file.take(MAX_DAG_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| fail(cannot_read(error)))?;
    if bytes.len() > MAX_DAG_FILE_BYTES {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |metadata| metadata.len());
        return Err(fail(too_large(size)));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(Problem {
            line: 1,
            column: 1,
            message: "cannot read the file: it is not UTF-8 text".to_string(),
        })
    })?;
    Dag::from_yaml(path, &text, context)
}

/// Every `*.yaml`/`*.yml` under `folder`, recursively, skipping hidden files and folders.
pub fn dag_files(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            // The entry's type comes with the directory listing; only a symbolic link needs a
            // stat to know whether it leads to a folder. This runs every `dag_dir_poll`.
            let is_dir = match entry.file_type() {
                Ok(kind) if kind.is_symlink() => path.is_dir(),
                Ok(kind) => kind.is_dir(),
                Err(_) => path.is_dir(),
            };
            if is_dir {
                pending.push(path);
            } else if matches!(path.extension().and_then(|ext| ext.to_str()), Some("yaml" | "yml")) {
                found.push(path);
            }
        }
    }
    found.sort_unstable_by(|a, b| by_bytes(a, b));
    found
}

/// The order of [`dag_files`]: plain bytes, far cheaper than `Path`'s component-wise comparison.
fn by_bytes(a: &Path, b: &Path) -> std::cmp::Ordering {
    a.as_os_str().cmp(b.as_os_str())
}

/// Loads the folder once (for CLI commands).
pub fn load_folder(folder: &Path, context: &ValidationContext) -> DagBag {
    DagFolder::new(folder.to_path_buf(), context.clone())
        .refresh()
        .unwrap_or_default()
}

/// Records the bag in the database: DAG rows upserted, vanished ones inactive, import errors
/// replaced. The DAG rows' writes move the change counter, so a scheduler in another process
/// notices.
pub async fn record(db: &Db, bag: &DagBag) -> Result<(), StorageError> {
    let now = Utc::now();
    let mut transaction = db.begin().await?;
    for dag in bag.dags.values() {
        storage::dags::upsert(&mut transaction, dag, now).await?;
    }
    let active: Vec<DagId> = bag.dags.keys().cloned().collect();
    storage::dags::deactivate_others(&mut transaction, &active).await?;
    storage::import_errors::replace_all(&mut transaction, &bag.import_errors(), now).await?;
    transaction.commit().await?;
    Ok(())
}

/// Watches the folder until cancelled: every change is parsed, published on `bag`, and recorded
/// in the database when `db` is given (the scheduler's copy records; the web server's only reads).
/// Reports to `health` while it runs, with each completed scan as its heartbeat.
pub async fn watch_folder(
    folder: DagFolder,
    db: Option<Db>,
    poll: Duration,
    bag: watch::Sender<Arc<DagBag>>,
    cancel: CancellationToken,
    health: Arc<Health>,
) {
    let _alive = health.alive(Component::DagProcessor);
    let mut database = DatabaseLoop::new(Arc::clone(&health), Component::DagProcessor);
    // Set while the database is unreachable: when to try recording again.
    let mut retry_at: Option<tokio::time::Instant> = None;
    let (events_tx, mut events) = mpsc::unbounded_channel::<()>();
    let watch_path = folder.folder().to_path_buf();
    // inotify makes changes visible at once; the periodic rescan covers file systems where it
    // does not work (network mounts) and a folder created after start-up.
    let _watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the folder opens it, and inotify reports opens: reacting to those would rescan
        // forever. Only changes matter.
        if let Ok(event) = &event
            && matches!(event.kind, notify::EventKind::Access(_))
        {
            return;
        }
        let _ = events_tx.send(());
    })
    .and_then(|mut watcher| {
        watcher.watch(&watch_path, notify::RecursiveMode::Recursive)?;
        Ok(watcher)
    })
    .map_err(|error| tracing::warn!(folder = %watch_path.display(), %error, "cannot watch the DAG folder; relying on periodic rescans"))
    .ok();
    let folder = Arc::new(Mutex::new(folder));
    let mut unrecorded: Option<Arc<DagBag>> = None;
    let mut rescan = tokio::time::interval(poll);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(()) = events.recv() => {
                // Editors write a file in several steps; let them finish before reading.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while events.try_recv().is_ok() {}
            }
            _ = rescan.tick() => {}
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => {}
        }
        let scanning = Arc::clone(&folder);
        let scanned = tokio::task::spawn_blocking(move || {
            // A panic in a rescan (`parse_file` already turns one in a file into its import
            // error) poisons the lock; each file's entry is still whole, so later rescans go on
            // with them instead of never loading a file again.
            let mut folder = scanning.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            folder.refresh()
        })
        .await;
        let refreshed = match scanned {
            Ok(refreshed) => {
                health.beat(Component::DagProcessor, Utc::now());
                refreshed
            }
            // A scan that could not finish is no sign of life: the health check sees the last one age.
            Err(error) => {
                tracing::error!(%error, "rescanning the DAG folder failed; trying again at the next change");
                None
            }
        };
        if let Some(new_bag) = refreshed {
            tracing::info!(
                dags = new_bag.dags.len(),
                import_errors = new_bag.errors.len(),
                "DAG folder changed"
            );
            for error in &new_bag.errors {
                tracing::warn!("import error: {error}");
            }
            let new_bag = Arc::new(new_bag);
            bag.send_replace(Arc::clone(&new_bag));
            if db.is_some() {
                unrecorded = Some(new_bag);
            }
        }
        // A database outage must not lose a change: it is kept and recorded once the database is
        // back (tried again with a backoff); another failure is tried again at the next rescan.
        if let (Some(pending), Some(db)) = (&unrecorded, &db) {
            retry_at = None;
            match record(db, pending).await {
                Ok(()) => {
                    unrecorded = None;
                    database.reached();
                }
                Err(error) if error.class() == ErrorClass::Transient => {
                    let delay = database.failed(&anyhow::Error::from(error));
                    retry_at = Some(tokio::time::Instant::now() + delay);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot record the DAG folder in the metadata database; will retry")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_reading_a_file_becomes_its_import_error() {
        let path = Path::new("/dags/buggy.yaml");
        let error = catching_panics(path, || panic!("no entry found for key")).unwrap_err();
        assert_eq!(error.path, path);
        assert_eq!(
            error.to_string(),
            "/dags/buggy.yaml:1:1: internal error while reading this file: no entry found for key; this is a bug in weir, please report it with the file attached (the other DAG files are not affected)"
        );
        let formatted = catching_panics(path, || panic!("index {} out of range", 7)).unwrap_err();
        assert!(
            formatted.problems[0].message.contains(": index 7 out of range;"),
            "{formatted}"
        );
    }

    #[test]
    fn a_task_depending_on_a_broken_one_is_reported_once_and_the_other_files_load() {
        let folder = tempfile::tempdir().expect("temporary folder");
        std::fs::write(folder.path().join("good.yaml"), "tasks:\n  a: {command: 'true'}\n").expect("write");
        std::fs::write(
            folder.path().join("broken.yaml"),
            "tasks:\n  a: {type: nosuch}\n  b: {command: 'true', depends_on: [a]}\n",
        )
        .expect("write");
        let bag = load_folder(folder.path(), &ValidationContext::default());
        assert_eq!(bag.dags.keys().map(DagId::as_str).collect::<Vec<_>>(), ["good"]);
        assert_eq!(bag.errors.len(), 1);
        assert_eq!(
            bag.errors[0].problems[0].message,
            "unknown task type `nosuch`: use one of shell, http, sql, transfer, sensor, trigger_dag"
        );
    }
}
