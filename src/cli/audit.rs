//! The audit log from the command line: every command that changes state records an entry whose
//! owner is the operating-system user running it (the CLI works on the database directly, so that
//! is who it is) and whose address is this host's name.

use chrono::Utc;

use crate::domain::audit::{NewEntry, Surface};
use crate::storage::{Db, event_log};

/// The name of the user running this process: the password database's entry for the real uid,
/// else `$USER`, else `uid:<n>`.
pub fn os_user() -> String {
    let uid = nix::unistd::getuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
        return user.name;
    }
    match std::env::var("USER") {
        Ok(name) if !name.is_empty() => name,
        _ => format!("uid:{uid}"),
    }
}

/// An entry for `event` by the OS user, from this host.
pub fn entry(event: &str) -> NewEntry {
    let host = nix::unistd::gethostname()
        .ok()
        .map(|name| name.to_string_lossy().into_owned());
    NewEntry::new(event, &os_user(), Surface::Cli).address(host)
}

/// Records `entry`. The change it describes is already committed, so a failure to write is
/// reported on stderr, not as the command's failure (running it again would repeat the change).
pub async fn record(db: &Db, entry: NewEntry) {
    let result = match db.acquire().await {
        Ok(mut connection) => event_log::insert(&mut connection, &entry, Utc::now()).await.map(drop),
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        eprintln!(
            "warning: the change was made but not recorded in the audit log ({}): {error}",
            entry.event
        );
    }
}
