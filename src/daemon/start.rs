//! The start-up steps of a daemon that the CLI's other commands share: opening the metadata
//! database, the secrets key, encrypting secrets stored in plain text; and the daemon's own:
//! the listener and authentication with the first start's `admin`.

use anyhow::Context;

use crate::api::auth::Authenticator;
use crate::config::{AuthMode, BindAddress, Config};
use crate::runtime::users::{self, FirstAdmin};
use crate::secrets::{KeyError, KeySource, SecretsKey};
use crate::storage::{Backend, Db};

/// Opens the metadata database. SQLite is created and migrated by whichever command needs it
/// first; PostgreSQL is migrated only by `serve`/`scheduler`/`db migrate` (`migrate`).
pub async fn open_database(config: &Config, migrate: bool) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url).await?;
    if migrate || db.backend() == Backend::Sqlite {
        db.migrate().await?;
    } else {
        db.ensure_current().await?;
    }
    Ok(db)
}

/// The secrets key: `[secrets] key`, else `<state_dir>/secret.key`, created on first use.
pub fn secrets_key(config: &Config) -> Result<SecretsKey, KeyError> {
    let (key, source) = SecretsKey::load_or_create(config.secrets_key.as_ref(), &config.state_dir)?;
    match source {
        KeySource::Configured => tracing::debug!("secrets key from [secrets] key"),
        KeySource::File { path, created: true } => tracing::warn!(
            "generated a secrets key in {}: connection passwords in the database are encrypted with it. Keep the file (without it they cannot be read); when weir runs on several machines, set [secrets] key (e.g. to this file's contents) on every one",
            path.display()
        ),
        KeySource::File { path, created: false } => {
            tracing::info!("secrets key from {} ([secrets] key is not set)", path.display());
        }
    }
    Ok(key)
}

/// How many secrets stored in plain text `encrypt_plain_secrets` encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncryptedCounts {
    pub passwords: usize,
    /// Connections whose secret-named extra values were encrypted.
    pub extras: usize,
    pub variables: usize,
}

/// Encrypts connection passwords, secret-named connection extras and secret-named variables
/// stored before their encryption existed (`serve`, `scheduler`, `db migrate`).
pub async fn encrypt_plain_secrets(db: &Db, key: &SecretsKey) -> anyhow::Result<EncryptedCounts> {
    let mut connection = db.acquire().await?;
    let counts = EncryptedCounts {
        passwords: crate::storage::connections::encrypt_plain_passwords(&mut connection, key).await?,
        extras: crate::storage::connections::encrypt_plain_extras(&mut connection, key).await?,
        variables: crate::storage::variables::encrypt_plain_values(&mut connection, key).await?,
    };
    if counts != EncryptedCounts::default() {
        tracing::info!(
            passwords = counts.passwords,
            extras = counts.extras,
            variables = counts.variables,
            "encrypted secrets stored in plain text"
        );
    }
    Ok(counts)
}

/// Listens on `[webserver] bind`, resolving a host name now (the first of its addresses that
/// accepts).
pub(super) async fn listen(bind: &BindAddress) -> anyhow::Result<tokio::net::TcpListener> {
    let addresses = bind
        .resolve()
        .await
        .with_context(|| format!("cannot resolve {bind} ([webserver] bind)"))?;
    tokio::net::TcpListener::bind(addresses.as_slice())
        .await
        .with_context(|| format!("cannot listen on {bind} ([webserver] bind)"))
}

/// The token signer, the configured users, and on a first start the `admin` user, whose
/// generated password is printed this once and kept in a private file in the state folder.
pub(super) async fn prepare_authentication(db: &Db, config: &Config) -> anyhow::Result<Authenticator> {
    let (authenticator, created) = Authenticator::from_config(&config.api_auth, &config.state_dir)?;
    if let Some(path) = created {
        tracing::warn!(
            "generated the token secret in {}: tokens and sessions are signed with it. When several API servers serve one installation, set [api_auth] jwt_secret to the same value on every one",
            path.display()
        );
    }
    if config.api_auth.mode == AuthMode::None {
        tracing::warn!(
            "[api_auth] mode = \"none\": everyone who reaches {} is an Admin; allowed because it is a loopback address",
            config.bind
        );
        return Ok(authenticator);
    }
    let changed = users::sync_configured(db, &config.api_auth.users).await?;
    if !changed.is_empty() {
        tracing::info!(users = ?changed, "users from [api_auth.users] created or updated");
    }
    match users::ensure_first_admin(db, &config.state_dir).await? {
        FirstAdmin::Created { password, path } => {
            // Printed, not logged: the one time a person sees it, kept out of log collectors.
            println!(
                "\nweir created the user `{}` (role Admin) with the password:\n\n    {password}\n\nIt is also in {} (readable only by you). Log in at {}/login; change it with `weir users reset-password --username {} --password ...`.\n",
                users::FIRST_ADMIN,
                path.display(),
                config.base_url,
                users::FIRST_ADMIN,
            );
        }
        FirstAdmin::Exists { path: Some(path) } => tracing::info!(
            "the first Admin's generated password is in {} (delete the file once you have changed or noted it)",
            path.display()
        ),
        FirstAdmin::Exists { path: None } => {}
    }
    Ok(authenticator)
}
