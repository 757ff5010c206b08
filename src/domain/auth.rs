//! Who may do what: Airflow's four roles, ordered so that each holds every permission of the
//! ones before it, and the access a route or a form declares. A decision only: finding out who is
//! asking (tokens, sessions, the CLI's OS user) belongs to the layers above.

use std::fmt;
use std::str::FromStr;

/// A person's role, Airflow's names. Each role may do everything the roles before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything except secrets (variables, connections, users).
    Viewer,
    /// + triggers, clears, marks, pauses and backfills.
    User,
    /// + variables, connections and pools.
    Op,
    /// + users.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::User, Role::Op, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::User => "User",
            Role::Op => "Op",
            Role::Admin => "Admin",
        }
    }

    /// Whether this role may use something that declares `access`.
    pub fn may(self, access: Access) -> bool {
        match access {
            Access::Public => true,
            Access::AtLeast(required) => self >= required,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role; the roles are Viewer, User, Op and Admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// Airflow's names, case-insensitively (`op`, `OP` and `Op` are one role).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownRole(text.to_string()))
    }
}

/// What a route or a form requires of whoever calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: health probes, Prometheus, the OpenAPI document, the login page.
    /// Such a route must reveal nothing secret.
    Public,
    /// A signed-in person whose role is at least this one.
    AtLeast(Role),
}

impl Access {
    /// Read access to everything but secrets.
    pub const READ: Access = Access::AtLeast(Role::Viewer);
    /// Changes to runs and DAGs: trigger, clear, mark, pause, backfill.
    pub const OPERATE: Access = Access::AtLeast(Role::User);
    /// Secrets and shared settings: variables, connections, pools.
    pub const CONFIGURE: Access = Access::AtLeast(Role::Op);
    /// Users and their roles.
    pub const ADMINISTER: Access = Access::AtLeast(Role::Admin);
}

/// A signed-in person, as a request or a CLI command knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub role: Role,
}

impl Principal {
    pub fn may(&self, access: Access) -> bool {
        self.role.may(access)
    }
}

/// Shortest password accepted from a person (generated ones are longer).
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Longest password accepted: argon2 takes any length, but a megabyte of it is an attack.
pub const MAX_PASSWORD_LENGTH: usize = 1024;
const MAX_USERNAME_LENGTH: usize = 64;
/// Who everyone is when logins are off; no user may take the name (a token issued then would
/// otherwise be theirs later).
pub const ANONYMOUS: &str = "anonymous";

/// Usernames: 1 to 64 of `A-Z a-z 0-9 _ . @ -`, so they are safe in URLs, logs and tokens.
pub fn check_username(username: &str) -> Result<(), String> {
    let valid = !username.is_empty()
        && username.len() <= MAX_USERNAME_LENGTH
        && username
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'@' | b'-'));
    if !valid {
        return Err(format!(
            "`{username}` is not a valid username: use 1 to {MAX_USERNAME_LENGTH} characters from A-Z a-z 0-9 _ . @ -"
        ));
    }
    if username.eq_ignore_ascii_case(ANONYMOUS) {
        return Err(format!(
            "`{username}` is reserved: it names everyone when logins are off ([api_auth] mode = \"none\")"
        ));
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return Err(format!(
            "the password is too short: use at least {MIN_PASSWORD_LENGTH} characters (or --use-random-password)"
        ));
    }
    if password.len() > MAX_PASSWORD_LENGTH {
        return Err(format!(
            "the password is too long: use at most {MAX_PASSWORD_LENGTH} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_what_the_roles_before_it_may() {
        let table = [
            (Access::Public, [true, true, true, true]),
            (Access::READ, [true, true, true, true]),
            (Access::OPERATE, [false, true, true, true]),
            (Access::CONFIGURE, [false, false, true, true]),
            (Access::ADMINISTER, [false, false, false, true]),
        ];
        for (access, expected) in table {
            let actual = Role::ALL.map(|role| role.may(access));
            assert_eq!(actual, expected, "{access:?}");
        }
    }

    #[test]
    fn roles_parse_by_airflow_name_in_any_case() {
        assert_eq!("op".parse::<Role>(), Ok(Role::Op));
        assert_eq!(" Admin ".parse::<Role>(), Ok(Role::Admin));
        assert_eq!("VIEWER".parse::<Role>(), Ok(Role::Viewer));
        let error = "Superuser".parse::<Role>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "`Superuser` is not a role; the roles are Viewer, User, Op and Admin"
        );
    }

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert!(check_username("ana.lee@corp-1").is_ok());
        for bad in [
            "",
            "ana lee",
            "ana/../x",
            "<b>",
            &"x".repeat(65),
            "anonymous",
            "Anonymous",
        ] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password(&"x".repeat(2000)).is_err());
        assert!(check_password("long enough").is_ok());
    }
}
