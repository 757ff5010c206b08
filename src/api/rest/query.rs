//! Query strings as Airflow's clients send them (repeated keys for lists: `tags=a&tags=b`), read
//! into typed values with precise 400s, plus the id and pagination helpers every handler shares.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::error::{ApiError, ApiQuery};
use crate::domain::ids::{DagId, RunId, TaskId};

/// Default page size, as in Airflow.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page served; larger `limit`s are clamped to it (Airflow clamps to its maximum too).
pub const MAX_LIMIT: u32 = 1000;

/// Every `key=value` pair of the query string, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiQuery(pairs) = ApiQuery::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        Ok(QueryParams(pairs))
    }
}

/// One page: how many rows to skip and how many to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u32,
}

impl Page {
    /// The page of an in-memory list.
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(usize::try_from(self.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(self.limit).unwrap_or(usize::MAX))
            .collect()
    }
}

/// A sort key from `order_by`: the field name and whether a leading `-` asked for descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub field: String,
    pub descending: bool,
}

impl QueryParams {
    /// Every value given for `name` (repeated keys; a comma-separated value counts as several).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .flat_map(|(_, value)| value.split(',').map(str::trim).map(str::to_string))
            .filter(|value| !value.is_empty())
            .collect()
    }

    /// The last value given for `name`.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.one(name) {
            None => Ok(None),
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(ApiError::BadRequest(format!(
                    "query parameter `{name}` must be true or false, got `{value}`"
                ))),
            },
        }
    }

    /// A non-negative integer; digits beyond `u32` saturate (they only ever mean "a lot").
    fn count(&self, name: &str) -> Result<Option<u32>, ApiError> {
        match self.one(name) {
            None => Ok(None),
            Some(value) if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) => {
                Ok(Some(value.parse::<u32>().unwrap_or(u32::MAX)))
            }
            Some(value) => Err(ApiError::BadRequest(format!(
                "query parameter `{name}` must be a non-negative integer, got `{value}`"
            ))),
        }
    }

    /// `limit` (default 50, at most 1000: larger values are clamped) and `offset` (default 0).
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.count("limit")?.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        let offset = self.count("offset")?.unwrap_or(0);
        Ok(Page { limit, offset })
    }

    /// The first `order_by` value, checked against the fields this list can be sorted by.
    pub fn order_by(&self, allowed: &[&str], default: &str) -> Result<OrderBy, ApiError> {
        let text = self
            .list("order_by")
            .into_iter()
            .next()
            .unwrap_or_else(|| default.to_string());
        let (field, descending) = match text.strip_prefix('-') {
            Some(field) => (field.to_string(), true),
            None => (text.clone(), false),
        };
        if !allowed.contains(&field.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "cannot order by `{text}`: use one of {} (prefix `-` for descending)",
                allowed.join(", ")
            )));
        }
        Ok(OrderBy { field, descending })
    }
}

pub fn dag_id(value: &str) -> Result<DagId, ApiError> {
    DagId::parse(value).map_err(|error| ApiError::BadRequest(error.to_string()))
}

pub fn run_id(value: &str) -> Result<RunId, ApiError> {
    RunId::parse(value).map_err(|error| ApiError::BadRequest(error.to_string()))
}

pub fn task_id(value: &str) -> Result<TaskId, ApiError> {
    TaskId::parse(value).map_err(|error| ApiError::BadRequest(error.to_string()))
}

/// Keys of variables and ids of connections: the id alphabet (`[A-Za-z0-9_.-]`), up to `max`
/// characters, so they can be written as `var.<key>` and `WEIR_CONN_<ID>`.
pub fn key(kind: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let valid = !value.is_empty()
        && value.len() <= max
        && !value.bytes().all(|byte| byte == b'.')
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
    if valid {
        Ok(value.to_string())
    } else {
        Err(ApiError::BadRequest(format!(
            "`{value}` is not a valid {kind}: use 1 to {max} characters from A-Z a-z 0-9 _ . -"
        )))
    }
}

/// SQL `LIKE`-style matching as Airflow's `*_pattern` parameters do it: case-insensitive, `%`
/// is any run of characters, `_` any one character, and the pattern may match anywhere.
pub fn like(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = format!("%{}%", pattern.to_lowercase()).chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    // matches[j]: pattern[..i] matches text[..j], row by row.
    let mut matches = vec![false; text.len() + 1];
    matches[0] = true;
    for symbol in &pattern {
        let mut next = vec![false; text.len() + 1];
        match symbol {
            '%' => {
                let mut any = false;
                for (j, slot) in next.iter_mut().enumerate() {
                    any = any || matches[j];
                    *slot = any;
                }
            }
            _ => {
                for j in 1..=text.len() {
                    next[j] = matches[j - 1] && (*symbol == '_' || *symbol == text[j - 1]);
                }
            }
        }
        matches = next;
    }
    matches[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        )
    }

    #[test]
    fn like_patterns_match_anywhere_with_percent_and_underscore() {
        assert!(like("etl", "example_ETL"));
        assert!(like("ex%etl", "example_etl"));
        assert!(like("h_llo", "say_hello"));
        assert!(!like("h_llo", "hllo"));
        assert!(like("", "anything"));
        assert!(!like("xyz", "example_etl"));
    }

    #[test]
    fn limits_are_clamped_and_negative_or_garbage_values_refused() {
        assert_eq!(params(&[]).page().unwrap(), Page { limit: 50, offset: 0 });
        assert_eq!(params(&[("limit", "5000")]).page().unwrap().limit, MAX_LIMIT);
        assert_eq!(
            params(&[("limit", "99999999999999999999999")]).page().unwrap().limit,
            MAX_LIMIT
        );
        let error = params(&[("limit", "-1")]).page().unwrap_err();
        assert_eq!(
            error.to_string(),
            "query parameter `limit` must be a non-negative integer, got `-1`"
        );
        assert!(params(&[("offset", "ten")]).page().is_err());
    }

    #[test]
    fn repeated_and_comma_separated_values_both_make_lists() {
        let query = params(&[("tags", "a"), ("tags", "b,c")]);
        assert_eq!(query.list("tags"), ["a", "b", "c"]);
        let order = params(&[("order_by", "-dag_id")])
            .order_by(&["dag_id"], "dag_id")
            .unwrap();
        assert_eq!(
            order,
            OrderBy {
                field: "dag_id".to_string(),
                descending: true
            }
        );
        assert!(params(&[("order_by", "nope")]).order_by(&["dag_id"], "dag_id").is_err());
    }
}
