//! People who sign in: creating, listing, deleting users and resetting passwords (shared by
//! `weir users ...`, the Users page and the daemon's first start), hashing passwords with argon2id
//! (RustCrypto, PHC strings) and checking a login. Tokens and sessions are the API's business.

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::Utc;

use super::operations::OperationError;
use crate::domain::auth::{self, MAX_PASSWORD_LENGTH, Principal, Role};
use crate::storage::users::{self, User};
use crate::storage::{Db, StorageError};

/// Length of generated passwords: 24 characters of 64 kinds, 144 bits.
const GENERATED_PASSWORD_LENGTH: usize = 24;
/// The first user, created when a server starts with none.
pub const FIRST_ADMIN: &str = "admin";
/// Where the first user's generated password is written, in the state folder (mode 0600).
pub const FIRST_ADMIN_PASSWORD_FILE: &str = "admin_password.txt";

/// A user to create, as the CLI, the Users page or the configuration give it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"***")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

pub fn check_username(username: &str) -> Result<(), OperationError> {
    auth::check_username(username).map_err(OperationError::Invalid)
}

pub fn check_password(password: &str) -> Result<(), OperationError> {
    auth::check_password(password).map_err(OperationError::Invalid)
}

/// A random password of 24 URL-safe characters from the operating system's generator.
pub fn random_password() -> Result<String, OperationError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; GENERATED_PASSWORD_LENGTH];
    getrandom::fill(&mut bytes).map_err(|error| {
        OperationError::Storage(StorageError::Corrupt(format!(
            "the operating system's random generator failed: {error}"
        )))
    })?;
    // 64 symbols: the low six bits of a uniform byte are uniform.
    Ok(bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(byte & 0x3f)]))
        .collect())
}

/// argon2id with the crate's defaults (OWASP's: 19 MiB, 2 passes), as a PHC string. CPU-heavy:
/// run it on a blocking thread (`hash_password`).
fn hash_now(password: &str) -> Result<String, OperationError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| OperationError::Invalid(format!("cannot hash the password: {error}")))
}

/// Whether `password` matches the PHC string `hash` (false for a damaged hash).
fn verify_now(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

pub async fn hash_password(password: String) -> Result<String, OperationError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|error| OperationError::Invalid(format!("hashing the password stopped: {error}")))?
}

/// A hash of no one's password, checked when the username is unknown so that a wrong username
/// takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_now("weir decoy password, never anyone's").unwrap_or_default())
}

/// The outcome of a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Accepted {
        principal: Principal,
        token_epoch: i64,
    },
    /// Wrong username or wrong password (which one is not said).
    Refused,
}

/// Checks a username and password against the database.
pub async fn check_login(db: &Db, username: &str, password: &str) -> Result<Login, OperationError> {
    let user = if check_username(username).is_ok() && password.len() <= MAX_PASSWORD_LENGTH {
        let mut connection = db.acquire().await?;
        users::get(&mut connection, username).await?
    } else {
        None
    };
    let password = password.to_string();
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    let matches = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_now(&password, &hash),
        None => {
            verify_now(&password, decoy_hash());
            false
        }
    })
    .await
    .map_err(|error| OperationError::Invalid(format!("checking the password stopped: {error}")))?;
    Ok(match user {
        Some(user) if matches => Login::Accepted {
            principal: Principal {
                username: user.username,
                role: user.role,
            },
            token_epoch: user.token_epoch,
        },
        _ => Login::Refused,
    })
}

/// Creates a user with a hashed password; Conflict when the name is taken.
pub async fn create_user(db: &Db, new_user: NewUser) -> Result<User, OperationError> {
    check_username(&new_user.username)?;
    check_password(&new_user.password)?;
    let user = User {
        password_hash: hash_password(new_user.password).await?,
        username: new_user.username,
        role: new_user.role,
        email: new_user.email.filter(|text| !text.trim().is_empty()),
        first_name: new_user.first_name.filter(|text| !text.trim().is_empty()),
        last_name: new_user.last_name.filter(|text| !text.trim().is_empty()),
        token_epoch: 0,
        created_at: Utc::now(),
    };
    let mut connection = db.acquire().await?;
    users::insert(&mut connection, &user).await?;
    Ok(user)
}

/// Sets a new password; tokens and sessions issued before stop working.
pub async fn reset_password(db: &Db, username: &str, password: String) -> Result<(), OperationError> {
    check_password(&password)?;
    let hash = hash_password(password).await?;
    let mut connection = db.acquire().await?;
    users::set_password(&mut connection, username, &hash).await?;
    Ok(())
}

/// Removes a user; their tokens stop working at their next request.
pub async fn delete_user(db: &Db, username: &str) -> Result<(), OperationError> {
    let mut connection = db.acquire().await?;
    users::delete(&mut connection, username).await?;
    Ok(())
}

/// Makes the users of `[api_auth.users.*]` match the configuration (a server's start): created
/// when missing, role and password set when they differ. Returns the usernames changed.
pub async fn sync_configured(
    db: &Db,
    configured: &std::collections::BTreeMap<String, crate::config::ConfiguredUser>,
) -> Result<Vec<String>, OperationError> {
    let mut changed = Vec::new();
    for (username, wanted) in configured {
        let mut connection = db.acquire().await?;
        let existing = users::get(&mut connection, username).await?;
        drop(connection);
        let password = wanted.password.expose().to_string();
        match existing {
            None => {
                let new_user = NewUser {
                    username: username.clone(),
                    password,
                    role: wanted.role,
                    email: None,
                    first_name: None,
                    last_name: None,
                };
                create_user(db, new_user).await?;
                changed.push(username.clone());
            }
            Some(user) => {
                let hash = user.password_hash.clone();
                let candidate = password.clone();
                let same_password = tokio::task::spawn_blocking(move || verify_now(&candidate, &hash))
                    .await
                    .map_err(|error| OperationError::Invalid(format!("checking the password stopped: {error}")))?;
                if !same_password {
                    reset_password(db, username, password).await?;
                }
                if user.role != wanted.role {
                    let mut connection = db.acquire().await?;
                    users::set_role(&mut connection, username, wanted.role).await?;
                }
                if !same_password || user.role != wanted.role {
                    changed.push(username.clone());
                }
            }
        }
    }
    Ok(changed)
}

/// What the first start found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstAdmin {
    /// No user existed: `admin` was created with this password, also written to `path`.
    Created { password: String, path: PathBuf },
    /// Users exist; `path` is the file of the first password when it is still there.
    Exists { path: Option<PathBuf> },
}

/// On a server's start: when no user exists, creates `admin` (Admin) with a random password and
/// writes it to `<state_dir>/admin_password.txt` (mode 0600), as `airflow standalone` does.
pub async fn ensure_first_admin(db: &Db, state_dir: &Path) -> anyhow::Result<FirstAdmin> {
    let path = state_dir.join(FIRST_ADMIN_PASSWORD_FILE);
    let mut connection = db.acquire().await?;
    let existing = users::count(&mut connection).await?;
    drop(connection);
    if existing > 0 {
        return Ok(FirstAdmin::Exists {
            path: path.exists().then_some(path),
        });
    }
    let password = random_password()?;
    let new_user = NewUser {
        username: FIRST_ADMIN.to_string(),
        password: password.clone(),
        role: Role::Admin,
        email: None,
        first_name: None,
        last_name: None,
    };
    match create_user(db, new_user).await {
        Ok(_) => {}
        // Another server process started at the same moment and won.
        Err(OperationError::Conflict(_)) => {
            return Ok(FirstAdmin::Exists {
                path: path.exists().then_some(path),
            });
        }
        Err(error) => return Err(error.into()),
    }
    write_private_file(&path, &format!("{password}\n"))?;
    Ok(FirstAdmin::Created { password, path })
}

/// Writes `text` to a new file only the owner can read (0600), replacing an older one.
pub fn write_private_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let folder = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let mut temporary = tempfile::Builder::new()
        .prefix(".weir-private.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(folder)
        .with_context(|| format!("creating a file in {}", folder.display()))?;
    temporary
        .write_all(text.as_bytes())
        .and_then(|()| temporary.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    temporary
        .persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_in_phc_format_and_checks_only_its_password() {
        let hash = hash_now("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_now("correct horse", &hash));
        assert!(!verify_now("correct hors", &hash));
        assert!(!verify_now("correct horse", "not a hash"));
        assert_ne!(hash, hash_now("correct horse").unwrap(), "each hash has its own salt");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let first = random_password().unwrap();
        let second = random_password().unwrap();
        assert_eq!(first.len(), GENERATED_PASSWORD_LENGTH);
        assert_ne!(first, second);
        assert!(check_password(&first).is_ok());
    }
}
