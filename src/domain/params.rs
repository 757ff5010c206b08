//! Run parameters (§2 `params`, §3.3): their declarations, and the check of a trigger's `conf`
//! against them, which fills in defaults and reports every problem at once.

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// The JSON type a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
    Any,
}

impl ParamType {
    /// Every type, in the order messages and the DAG file schema list them.
    pub const ALL: [ParamType; 7] = [
        ParamType::String,
        ParamType::Integer,
        ParamType::Number,
        ParamType::Boolean,
        ParamType::Array,
        ParamType::Object,
        ParamType::Any,
    ];

    pub fn parse(name: &str) -> Option<ParamType> {
        Some(match name {
            "string" => ParamType::String,
            "integer" => ParamType::Integer,
            "number" => ParamType::Number,
            "boolean" => ParamType::Boolean,
            "array" => ParamType::Array,
            "object" => ParamType::Object,
            "any" => ParamType::Any,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
            ParamType::Any => "any",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            ParamType::String => value.is_string(),
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Number => value.is_number(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::Array => value.is_array(),
            ParamType::Object => value.is_object(),
            ParamType::Any => true,
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub kind: ParamType,
    pub default: Option<Value>,
    pub allowed: Option<Vec<Value>>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub pattern: Option<regex::Regex>,
    pub description: Option<String>,
}

impl Param {
    /// Every way `value` breaks this declaration, as sentences about parameter `name`.
    pub fn problems(&self, name: &str, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.kind.accepts(value) {
            problems.push(format!(
                "param `{name}` must be of type {}, got {value}",
                self.kind.as_str()
            ));
            return problems;
        }
        if let Some(allowed) = &self.allowed
            && !allowed.contains(value)
        {
            let choices: Vec<String> = allowed.iter().map(Value::to_string).collect();
            problems.push(format!(
                "param `{name}` is {value}; allowed values: {}",
                choices.join(", ")
            ));
        }
        if let Some(number) = value.as_f64() {
            if let Some(minimum) = self.minimum
                && number < minimum
            {
                problems.push(format!("param `{name}` is {value}, below the minimum {minimum}"));
            }
            if let Some(maximum) = self.maximum
                && number > maximum
            {
                problems.push(format!("param `{name}` is {value}, above the maximum {maximum}"));
            }
        }
        if let Some(text) = value.as_str() {
            let length = text.chars().count();
            if let Some(min_length) = self.min_length
                && length < min_length
            {
                problems.push(format!("param `{name}` is shorter than {min_length} characters"));
            }
            if let Some(max_length) = self.max_length
                && length > max_length
            {
                problems.push(format!("param `{name}` is longer than {max_length} characters"));
            }
            if let Some(pattern) = &self.pattern
                && !pattern.is_match(text)
            {
                problems.push(format!(
                    "param `{name}` does not match the pattern {}",
                    pattern.as_str()
                ));
            }
        }
        problems
    }
}

/// A DAG's declared parameters, in file order.
#[derive(Debug, Clone, Default)]
pub struct Params(pub IndexMap<String, Param>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conf does not match the DAG's params: {}", .problems.join("; "))]
pub struct ConfError {
    pub problems: Vec<String>,
}

impl Params {
    /// Checks a trigger's `conf` (a JSON object or null) and returns it with defaults filled in.
    /// Keys that are not declared pass through, as in Airflow.
    pub fn resolve(&self, conf: &Value) -> Result<Map<String, Value>, ConfError> {
        let mut resolved = match conf {
            Value::Null => Map::new(),
            Value::Object(map) => map.clone(),
            other => {
                return Err(ConfError {
                    problems: vec![format!("conf must be a JSON object, got {other}")],
                });
            }
        };
        let mut problems = Vec::new();
        for (name, param) in &self.0 {
            match resolved.get(name) {
                Some(value) => problems.extend(param.problems(name, value)),
                None => match &param.default {
                    Some(default) => {
                        resolved.insert(name.clone(), default.clone());
                    }
                    None => problems.push(format!(
                        "param `{name}` is required (it has no default): add it to conf"
                    )),
                },
            }
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(ConfError { problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Params {
        let mut map = IndexMap::new();
        map.insert(
            "region".to_string(),
            Param {
                kind: ParamType::String,
                default: Some(json!("kr")),
                allowed: Some(vec![json!("kr"), json!("us"), json!("jp")]),
                minimum: None,
                maximum: None,
                min_length: None,
                max_length: None,
                pattern: None,
                description: None,
            },
        );
        map.insert(
            "limit".to_string(),
            Param {
                kind: ParamType::Integer,
                default: Some(json!(1000)),
                allowed: None,
                minimum: Some(1.0),
                maximum: None,
                min_length: None,
                max_length: None,
                pattern: None,
                description: None,
            },
        );
        Params(map)
    }

    #[test]
    fn missing_params_take_their_defaults() {
        let resolved = params().resolve(&json!({"extra": true})).unwrap();
        assert_eq!(
            Value::Object(resolved),
            json!({"extra": true, "region": "kr", "limit": 1000})
        );
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let error = params().resolve(&json!({"region": "eu", "limit": 0})).unwrap_err();
        assert_eq!(
            error.problems,
            vec![
                "param `region` is \"eu\"; allowed values: \"kr\", \"us\", \"jp\"".to_string(),
                "param `limit` is 0, below the minimum 1".to_string(),
            ]
        );
        let error = params().resolve(&json!({"limit": "many"})).unwrap_err();
        assert_eq!(
            error.problems,
            vec!["param `limit` must be of type integer, got \"many\"".to_string()]
        );
        assert!(params().resolve(&json!([1])).is_err());
    }
}
