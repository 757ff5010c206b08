//! Who is asking, and may they: tokens (JWT, HS256, signed with `[api_auth] jwt_secret`), the UI's
//! session cookie (the same token in an HttpOnly cookie, as Airflow 3 keeps it), the guard every
//! route of the REST and UI tables goes through, and login (`POST /auth/token`, the login page).
//!
//! A request that passes the guard carries the caller as `axum::Extension<Principal>`.

mod guard;
mod login;
mod throttle;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use self::guard::{Surface, guard};
pub use self::login::{
    LoginFailure, LoginRequest, TokenResponse, client_address, login, retry_seconds, token_endpoint,
};
pub use self::throttle::Throttle;
use crate::config::{ApiAuthConfig, AuthMode};
use crate::domain::auth::{Principal, Role};
use crate::storage::{Db, users};

/// The UI session cookie: the caller's token, HttpOnly, SameSite=Lax.
pub const SESSION_COOKIE: &str = "weir_session";
/// The file the token secret is generated into when `[api_auth] jwt_secret` is not set.
pub const JWT_SECRET_FILE: &str = "jwt_secret";
pub use crate::domain::auth::ANONYMOUS;
/// Clock difference between API servers that a token's expiry tolerates.
const LEEWAY_SECONDS: u64 = 5;

/// What a token says: Airflow's `sub` (the username), `iat`, `exp`, the role when issued, and the
/// user's token epoch (a password reset moves it on and so ends every earlier token).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: i64,
    exp: i64,
    epoch: i64,
}

/// Why a request is not authenticated: the 401's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("Not authenticated: send `Authorization: Bearer <token>` (POST /auth/token gives one)")]
    Missing,
    #[error(
        "Not authenticated: a session cookie is accepted only for reading; send changes with `Authorization: Bearer <token>`"
    )]
    CookieForChange,
    #[error("Invalid token: get a new one from POST /auth/token")]
    Invalid,
    #[error("Token expired: get a new one from POST /auth/token")]
    Expired,
    /// The user was deleted, or their password was reset, after the token was issued.
    #[error("Token revoked: its user no longer exists or has a new password; get a new token")]
    Revoked,
    #[error("cannot check the token against the database")]
    Storage {
        /// The database is unreachable for now (503), not broken (500).
        unavailable: bool,
    },
}

impl AuthFailure {
    /// The database did not answer a token check: an outage is answered 503 (the outage is
    /// logged once by the daemon's loops), anything else 500 with its cause logged.
    fn storage(error: &crate::storage::StorageError) -> AuthFailure {
        let unavailable = error.is_transient();
        if !unavailable {
            tracing::error!("checking a token: {error}");
        }
        AuthFailure::Storage { unavailable }
    }
}

/// Issues and checks tokens, and throttles failed logins. One per server, shared by every request.
pub struct Authenticator {
    mode: AuthMode,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
    cookie_secure: bool,
    throttle: Throttle,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Authenticator")
            .field("mode", &self.mode)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `config` signing with `secret` (at least one byte).
    pub fn new(config: &ApiAuthConfig, secret: &[u8]) -> anyhow::Result<Authenticator> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.validate_aud = false;
        Ok(Authenticator {
            mode: config.mode,
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            lifetime: config.token_lifetime,
            cookie_secure: config.cookie_secure,
            throttle: Throttle::default(),
        })
    }

    /// The authenticator of a server: `[api_auth] jwt_secret`, else `<state_dir>/jwt_secret`
    /// (generated on first use, mode 0600). Returns the path when it created the file.
    pub fn from_config(config: &ApiAuthConfig, state_dir: &Path) -> anyhow::Result<(Authenticator, Option<PathBuf>)> {
        let (secret, created) = match &config.jwt_secret {
            Some(secret) => (secret.expose().to_string(), None),
            None => load_or_create_secret(&state_dir.join(JWT_SECRET_FILE))?,
        };
        Ok((Authenticator::new(config, secret.as_bytes())?, created))
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// A token for `principal`, issued at `now`.
    pub fn issue(&self, principal: &Principal, token_epoch: i64, now: DateTime<Utc>) -> anyhow::Result<String> {
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: principal.username.clone(),
            role: principal.role.as_str().to_string(),
            iat: now.timestamp(),
            exp: now.timestamp().saturating_add(lifetime),
            epoch: token_epoch,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Who `token` belongs to, checked against the database on every request: a deleted user's
    /// or a reset password's tokens stop working at once, and a changed role applies at once.
    pub async fn principal_for_token(&self, db: &Db, token: &str) -> Result<Principal, AuthFailure> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthFailure::Expired,
                _ => AuthFailure::Invalid,
            })?
            .claims;
        let mut connection = db.acquire().await.map_err(|error| AuthFailure::storage(&error))?;
        let user = users::get(&mut connection, &claims.sub)
            .await
            .map_err(|error| AuthFailure::storage(&error))?;
        match user {
            Some(user) if user.token_epoch == claims.epoch => Ok(Principal {
                username: user.username,
                role: user.role,
            }),
            _ => Err(AuthFailure::Revoked),
        }
    }

    /// The caller of a request from its headers. `cookie_allowed`: whether the session cookie
    /// counts (UI routes, and API reads); else only `Authorization: Bearer`.
    pub async fn authenticate(
        &self,
        db: &Db,
        headers: &HeaderMap,
        cookie_allowed: bool,
    ) -> Result<Principal, AuthFailure> {
        if self.mode == AuthMode::None {
            return Ok(anonymous());
        }
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|text| {
                    let (scheme, token) = text.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
                })
                .ok_or(AuthFailure::Invalid)?;
            return self.principal_for_token(db, token).await;
        }
        match session_token(headers) {
            Some(token) if cookie_allowed => self.principal_for_token(db, token).await,
            Some(_) => Err(AuthFailure::CookieForChange),
            None => Err(AuthFailure::Missing),
        }
    }

    /// `Set-Cookie` for a new session holding `token`.
    pub fn session_cookie(&self, token: &str) -> String {
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.lifetime.as_secs(),
            if self.cookie_secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` that ends the session.
    pub fn cleared_session_cookie(&self) -> String {
        format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            if self.cookie_secure { "; Secure" } else { "" }
        )
    }
}

/// Everyone, in `mode = "none"`.
pub fn anonymous() -> Principal {
    Principal {
        username: ANONYMOUS.to_string(),
        role: Role::Admin,
    }
}

/// The session cookie's value, if the request has one.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// Reads the secret file, or creates it (32 random bytes as hex, mode 0600) through a private
/// temporary file linked into place, so two servers starting at once agree on one secret.
fn load_or_create_secret(path: &Path) -> anyhow::Result<(String, Option<PathBuf>)> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let read = |path: &Path| -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().is_empty() => anyhow::bail!(
                "the token secret file {} is empty: delete it (every token and session then ends) or set [api_auth] jwt_secret",
                path.display()
            ),
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading the token secret file {}", path.display())),
        }
    };
    if let Some(secret) = read(path)? {
        return Ok((secret, None));
    }
    let folder = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("the random generator failed: {error}"))?;
    let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut temporary = tempfile::Builder::new()
        .prefix(".jwt_secret.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(folder)
        .with_context(|| format!("creating a file in {}", folder.display()))?;
    writeln!(temporary, "{secret}")
        .and_then(|()| temporary.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    let created = match std::fs::hard_link(temporary.path(), path) {
        Ok(()) => Some(path.to_path_buf()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => None,
        Err(error) => return Err(error).with_context(|| format!("creating {}", path.display())),
    };
    let secret = read(path)?.with_context(|| format!("{} vanished after being created", path.display()))?;
    Ok((secret, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_empty_ones_do_not_count() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "theme=dark; weir_session=abc.def.ghi".parse().unwrap());
        assert_eq!(session_token(&headers), Some("abc.def.ghi"));
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "weir_session=; other=1".parse().unwrap());
        assert_eq!(session_token(&headers), None);
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "xweir_session=abc".parse().unwrap());
        assert_eq!(session_token(&headers), None);
    }

    #[test]
    fn the_secret_file_is_created_once_privately_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("state").join(JWT_SECRET_FILE);
        let (first, created) = load_or_create_secret(&path).unwrap();
        assert_eq!(created.as_deref(), Some(path.as_path()));
        assert_eq!(first.len(), 64);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (second, created) = load_or_create_secret(&path).unwrap();
        assert_eq!((second, created), (first, None));
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_when_configured() {
        let mut config = ApiAuthConfig::default();
        let plain = Authenticator::new(&config, b"k").unwrap();
        let cookie = plain.session_cookie("t");
        assert_eq!(cookie, "weir_session=t; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400");
        config.cookie_secure = true;
        let secure = Authenticator::new(&config, b"k").unwrap();
        assert!(secure.session_cookie("t").ends_with("; Secure"));
        assert!(secure.cleared_session_cookie().contains("Max-Age=0"));
    }
}
