//! Bind parameters of a `sql` task: `:name` in a statement becomes the backend's placeholder
//! (`$1` on PostgreSQL, `?` on SQLite and MySQL) and its value travels beside the SQL, never
//! inside it.

use super::split::named_placeholders;
use super::{Backend, Cell, SqlTaskError};

/// One statement ready to run: its SQL with native placeholders and the values, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundStatement {
    pub sql: String,
    pub values: Vec<Cell>,
}

/// A parameter's value as a cell: text, integer, float, boolean or null (the task's validation
/// refuses lists and maps).
pub fn cell_of(name: &str, value: &serde_json::Value) -> Result<Cell, SqlTaskError> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => Cell::Null,
        Value::Bool(flag) => Cell::Bool(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => Cell::Int(integer),
            None => Cell::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => Cell::Text(text.clone()),
        Value::Array(_) | Value::Object(_) => {
            return Err(SqlTaskError::BadParameter {
                name: name.to_string(),
                problem: "a list or map cannot be bound; give text, a number, true/false or null".to_string(),
            });
        }
    })
}

/// `statement` with each `:name` replaced by the backend's next placeholder, and the values to
/// bind in that order (a name used twice is bound twice). With no parameters the statement is
/// left exactly as written. A `:name` that is not a parameter is an error naming the known ones.
pub fn bind_statement(
    statement: &str,
    backend: Backend,
    parameters: &[(String, Cell)],
) -> Result<BoundStatement, SqlTaskError> {
    if parameters.is_empty() {
        return Ok(BoundStatement {
            sql: statement.to_string(),
            values: Vec::new(),
        });
    }
    let chars: Vec<char> = statement.chars().collect();
    let mut sql = String::with_capacity(statement.len());
    let mut values = Vec::new();
    let mut copied = 0;
    for (start, end, name) in named_placeholders(&chars, backend) {
        let Some((_, value)) = parameters.iter().find(|(known, _)| *known == name) else {
            return Err(SqlTaskError::UnknownParameter {
                name,
                known: parameters
                    .iter()
                    .map(|(known, _)| format!(":{known}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        sql.extend(&chars[copied..start]);
        values.push(value.clone());
        match backend {
            Backend::Postgres => sql.push_str(&format!("${}", values.len())),
            Backend::Sqlite | Backend::MySql => sql.push('?'),
        }
        copied = end;
    }
    sql.extend(&chars[copied..]);
    Ok(BoundStatement { sql, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters() -> Vec<(String, Cell)> {
        vec![
            ("name".to_string(), Cell::Text("'; DROP TABLE t; --".to_string())),
            ("limit".to_string(), Cell::Int(5)),
        ]
    }

    #[test]
    fn named_parameters_become_native_placeholders_with_their_values_beside() {
        let sql = "SELECT * FROM t WHERE name = :name AND note <> ':name' LIMIT :limit -- :name";
        let postgres = bind_statement(sql, Backend::Postgres, &parameters()).unwrap();
        assert_eq!(
            postgres.sql,
            "SELECT * FROM t WHERE name = $1 AND note <> ':name' LIMIT $2 -- :name"
        );
        assert_eq!(
            postgres.values,
            [Cell::Text("'; DROP TABLE t; --".to_string()), Cell::Int(5)]
        );
        let sqlite = bind_statement("SELECT :limit, :limit::text", Backend::Sqlite, &parameters()).unwrap();
        assert_eq!(sqlite.sql, "SELECT ?, ?::text");
        assert_eq!(sqlite.values.len(), 2);
    }

    #[test]
    fn an_unknown_name_is_an_error_that_lists_the_known_ones() {
        let error = bind_statement("SELECT :nmae", Backend::MySql, &parameters()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the SQL uses `:nmae`, which is not among the task's parameters (:name, :limit): add it under `parameters:` or fix the name"
        );
    }

    #[test]
    fn without_parameters_the_statement_is_left_as_written() {
        let bound = bind_statement("SELECT :x", Backend::Sqlite, &[]).unwrap();
        assert_eq!(bound.sql, "SELECT :x");
        assert!(bound.values.is_empty());
    }
}
