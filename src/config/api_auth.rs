//! The `[api_auth]` section: who may use the API and the UI. `mode` (`password`, the default, or
//! `none` for one person on a laptop, allowed only on a loopback address), the token secret and
//! lifetime, the session cookie's `Secure` flag, and users kept in the configuration
//! (`[api_auth.users.<name>]`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{BindAddress, ConfigError, scalar_text};
use crate::domain::auth::{Role, UnknownRole, check_password, check_username};
use crate::domain::duration::parse_duration;
use crate::secrets::Passphrase;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawApiAuth {
    mode: String,
    /// Any TOML scalar: `WEIR__API_AUTH__JWT_SECRET=12345` arrives as an integer.
    jwt_secret: Option<toml::Value>,
    token_lifetime: String,
    cookie_secure: Option<bool>,
    users: BTreeMap<String, RawUser>,
}

impl Default for RawApiAuth {
    fn default() -> Self {
        RawApiAuth {
            mode: "password".into(),
            jwt_secret: None,
            token_lifetime: "24h".into(),
            cookie_secure: None,
            users: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    role: String,
    password: Option<toml::Value>,
}

/// How callers are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Tokens from `POST /auth/token` and UI sessions from the login page.
    Password,
    /// Everyone is an Admin named `anonymous`: only when listening on a loopback address.
    None,
}

/// A user kept in the configuration: made to match it (created, role and password set) at
/// every server start.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfiguredUser {
    pub role: Role,
    pub password: Passphrase,
}

impl std::fmt::Debug for ConfiguredUser {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConfiguredUser")
            .field("role", &self.role)
            .field("password", &"***")
            .finish()
    }
}

/// The checked `[api_auth]` section.
#[derive(Debug, Clone)]
pub struct ApiAuthConfig {
    pub mode: AuthMode,
    /// Signs tokens and session cookies. `None` uses (and on first use creates)
    /// `<state_dir>/jwt_secret`. Every API server of one installation must use the same.
    pub jwt_secret: Option<Passphrase>,
    /// How long a token or a UI session is valid (Airflow's default: 24 hours).
    pub token_lifetime: Duration,
    /// Whether the session cookie is marked `Secure` (sent over https only). Unset: when
    /// `[webserver] base_url` is https.
    pub cookie_secure: bool,
    /// `[api_auth.users.<name>]`, by username.
    pub users: BTreeMap<String, ConfiguredUser>,
}

impl Default for ApiAuthConfig {
    fn default() -> Self {
        ApiAuthConfig {
            mode: AuthMode::Password,
            jwt_secret: None,
            token_lifetime: Duration::from_secs(24 * 3600),
            cookie_secure: false,
            users: BTreeMap::new(),
        }
    }
}

pub(super) fn parse(
    path: &Path,
    raw: &RawApiAuth,
    bind: &BindAddress,
    base_url: &str,
) -> Result<ApiAuthConfig, ConfigError> {
    let bad = |key: &str, value: &str, reason: &str| ConfigError::BadValue {
        path: path.to_path_buf(),
        section: "api_auth".to_string(),
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let mode = match raw.mode.to_ascii_lowercase().as_str() {
        "password" => AuthMode::Password,
        "none" if bind.is_loopback() => AuthMode::None,
        "none" => {
            return Err(bad(
                "mode",
                &raw.mode,
                &format!(
                    "\"none\" lets anyone who reaches the server do anything, so it is allowed only when [webserver] bind is a loopback address such as 127.0.0.1:8080 (it is {bind}); use \"password\""
                ),
            ));
        }
        _ => return Err(bad("mode", &raw.mode, "use \"password\" or \"none\"")),
    };
    let jwt_secret = match &raw.jwt_secret {
        None => None,
        Some(value) => match scalar_text(value) {
            Some(text) if text.trim().len() >= 16 => Some(Passphrase::new(text.trim())),
            _ => {
                return Err(bad(
                    "jwt_secret",
                    "***",
                    "use a random text of at least 16 characters (e.g. the output of `openssl rand -hex 32`), or remove it to use a generated one",
                ));
            }
        },
    };
    let token_lifetime = parse_duration(&raw.token_lifetime)
        .map_err(|error| bad("token_lifetime", &raw.token_lifetime, &error.to_string()))?;
    if token_lifetime < Duration::from_secs(60) {
        return Err(bad("token_lifetime", &raw.token_lifetime, "use at least 1m"));
    }
    let mut users = BTreeMap::new();
    for (username, user) in &raw.users {
        let user_error = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("[api_auth.users.{username}]: {reason}"),
        };
        check_username(username).map_err(user_error)?;
        let role: Role = user
            .role
            .parse()
            .map_err(|error: UnknownRole| user_error(error.to_string()))?;
        let password = user.password.as_ref().and_then(scalar_text).ok_or_else(|| {
            user_error(format!(
                "set `password` (or env WEIR__API_AUTH__USERS__{}__PASSWORD)",
                username.to_uppercase()
            ))
        })?;
        check_password(&password).map_err(user_error)?;
        users.insert(
            username.clone(),
            ConfiguredUser {
                role,
                password: Passphrase::new(password),
            },
        );
    }
    Ok(ApiAuthConfig {
        mode,
        jwt_secret,
        token_lifetime,
        cookie_secure: raw.cookie_secure.unwrap_or_else(|| base_url.starts_with("https://")),
        users,
    })
}
