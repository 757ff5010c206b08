//! Identifier newtypes: DAG ids, task ids and run ids, validated once at the edge.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind}: use 1 to 250 characters from A-Z a-z 0-9 _ . -")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
}

/// `.` and `..` (and other all-dot names) would be path navigation in log paths, never ids.
fn is_dots_only(value: &str) -> bool {
    value.bytes().all(|byte| byte == b'.')
}

fn is_valid_identifier(value: &str) -> bool {
    !value.is_empty()
        && !is_dots_only(value)
        && value.len() <= 250
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

macro_rules! identifier {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                if is_valid_identifier(&value) {
                    Ok(Self(Arc::from(value)))
                } else {
                    Err(InvalidId { kind: $kind, value })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.as_ref().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// A DAG's id: `[A-Za-z0-9_.-]{1,250}`, unique across the DAG folder.
    DagId,
    "DAG id"
);
identifier!(
    /// A task's id within its DAG.
    TaskId,
    "task id"
);

/// A run's id within its DAG (`scheduled__2026-03-01T00:00:00+00:00`, `manual__...`, or chosen by
/// the person who triggered it). Wider than DAG ids: `:` and `+` appear in the generated ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(Arc<str>);

impl RunId {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"_.-:+~".contains(&byte);
        if !value.is_empty() && !is_dots_only(&value) && value.len() <= 250 && value.bytes().all(allowed) {
            Ok(Self(Arc::from(value)))
        } else {
            Err(InvalidId { kind: "run id", value })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0.as_ref().to_owned()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_the_documented_alphabet_and_refuse_the_rest() {
        assert!(DagId::parse("daily_revenue.v2-eu").is_ok());
        assert!(DagId::parse("").is_err());
        assert!(DagId::parse("a/b").is_err());
        assert!(DagId::parse("x".repeat(251)).is_err());
        let error = TaskId::parse("load orders").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`load orders` is not a valid task id: use 1 to 250 characters from A-Z a-z 0-9 _ . -"
        );
        assert!(RunId::parse("scheduled__2026-03-01T00:00:00+00:00").is_ok());
        assert!(RunId::parse("../etc").is_err());
        assert!(RunId::parse("..").is_err());
        assert!(DagId::parse(".").is_err());
        assert!(TaskId::parse("...").is_err());
        assert!(DagId::parse("v1.2").is_ok());
    }
}
