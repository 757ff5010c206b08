//! The audit log's records: who changed what, on which DAG, run or task, through which surface and
//! from where. Data only: the HTTP layer, the CLI and the login code fill them in, storage keeps
//! them. A record names things (ids, keys, the new state); it never holds a value that could be a
//! secret (a variable's value, a password, a request body, `conf`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Longest text kept in one field: an id, a username tried at the login form, a path. Anything
/// longer is cut (the audit log records who and what, it is not a place to store input).
pub const MAX_FIELD_CHARS: usize = 256;

/// Who an audit entry is about when nobody signed in (authentication off, or not yet added).
pub const ANONYMOUS: &str = "anonymous";

/// Where a change was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// The REST API under `/api/v2` (and the token endpoint).
    Api,
    /// The web UI's forms (and its login page).
    Ui,
    /// The `weir` command line, working on the database directly.
    Cli,
}

impl Surface {
    pub const ALL: [Surface; 3] = [Surface::Api, Surface::Ui, Surface::Cli];

    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Api => "api",
            Surface::Ui => "ui",
            Surface::Cli => "cli",
        }
    }
}

impl fmt::Display for Surface {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a surface: use api, ui or cli")]
pub struct UnknownSurface(pub String);

impl FromStr for Surface {
    type Err = UnknownSurface;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Surface::ALL
            .into_iter()
            .find(|surface| surface.as_str() == text)
            .ok_or_else(|| UnknownSurface(text.to_string()))
    }
}

/// An entry to record. `event` names the action: the REST API's operation id for the same action
/// (`trigger_dag_run`, `patch_dag`, `delete_variable` …) whichever surface it came from, `login`,
/// `login_failed` or `db_clean`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub event: String,
    pub owner: String,
    pub surface: Surface,
    pub address: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub try_number: Option<u32>,
    pub logical_date: Option<DateTime<Utc>>,
    /// Names and ids that say more (a variable's key, a backfill's id, the state set), never values.
    pub extra: Map<String, Value>,
}

impl NewEntry {
    /// An entry for `event` by `owner`, about nothing in particular yet.
    pub fn new(event: &str, owner: &str, surface: Surface) -> NewEntry {
        NewEntry {
            event: clip(event),
            owner: clip(owner),
            surface,
            address: None,
            dag_id: None,
            run_id: None,
            task_id: None,
            try_number: None,
            logical_date: None,
            extra: Map::new(),
        }
    }

    pub fn address(mut self, address: Option<String>) -> NewEntry {
        self.address = address.map(|address| clip(&address));
        self
    }

    pub fn dag(mut self, dag_id: &str) -> NewEntry {
        self.dag_id = Some(clip(dag_id));
        self
    }

    pub fn run(mut self, run_id: &str) -> NewEntry {
        self.run_id = Some(clip(run_id));
        self
    }

    pub fn task(mut self, task_id: &str) -> NewEntry {
        self.task_id = Some(clip(task_id));
        self
    }

    pub fn logical_date(mut self, logical_date: DateTime<Utc>) -> NewEntry {
        self.logical_date = Some(logical_date);
        self
    }

    /// Adds a detail; text is cut to [`MAX_FIELD_CHARS`].
    pub fn detail(mut self, name: &str, value: impl Into<Value>) -> NewEntry {
        let value = match value.into() {
            Value::String(text) => Value::String(clip(&text)),
            other => other,
        };
        self.extra.insert(name.to_string(), value);
        self
    }
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub when: DateTime<Utc>,
    pub event: String,
    pub owner: String,
    pub surface: Surface,
    pub address: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub try_number: Option<u32>,
    pub logical_date: Option<DateTime<Utc>>,
    pub extra: Map<String, Value>,
}

/// `text` without control characters (no forged lines in a log view) and at most
/// [`MAX_FIELD_CHARS`] characters.
pub fn clip(text: &str) -> String {
    text.chars()
        .filter(|character| !character.is_control())
        .take(MAX_FIELD_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_control_laden_text_is_cut_and_cleaned() {
        let entry = NewEntry::new("login_failed", &"a".repeat(10_000), Surface::Api)
            .detail("key", "line\r\nforged")
            .dag("d\u{0}ag");
        assert_eq!(entry.owner.chars().count(), MAX_FIELD_CHARS);
        assert_eq!(entry.extra["key"], "lineforged");
        assert_eq!(entry.dag_id.as_deref(), Some("dag"));
    }

    #[test]
    fn surfaces_read_back_what_they_store() {
        for surface in Surface::ALL {
            assert_eq!(surface.as_str().parse::<Surface>(), Ok(surface));
        }
        assert!("web".parse::<Surface>().is_err());
    }
}
