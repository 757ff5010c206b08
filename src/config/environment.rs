//! The process environment, read once at start-up and passed down with the [`Config`](super::Config):
//! `WEIR_CONN_*` connections and `WEIR_VAR_*` variables are resolved from this snapshot, never
//! from the process's variables deep inside, so a test hands in the values it wants.

use std::sync::Arc;

/// Environment variables as they were when the configuration was loaded.
#[derive(Clone, Default)]
pub struct Environment {
    variables: Arc<Vec<(String, String)>>,
}

impl Environment {
    /// The variables given (the process's, or a test's).
    pub fn from_pairs(variables: impl IntoIterator<Item = (String, String)>) -> Environment {
        Environment {
            variables: Arc::new(variables.into_iter().collect()),
        }
    }

    /// Every variable, name and value.
    pub fn vars(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.variables.iter().cloned()
    }
}

/// Names only: values may be passwords (`WEIR_CONN_*`).
impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.variables.iter().map(|(name, _)| name))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_debug_view_names_the_variables_without_their_values() {
        let environment =
            Environment::from_pairs([("WEIR_CONN_DB".to_string(), "postgres://u:hunter2@h/d".to_string())]);
        let shown = format!("{environment:?}");
        assert!(shown.contains("WEIR_CONN_DB") && !shown.contains("hunter2"), "{shown}");
    }
}
