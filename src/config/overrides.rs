//! `WEIR__SECTION__KEY` environment overrides applied over `config.toml`'s table: each variable
//! tried alone first (one naming no key is ignored with a warning), a refused value blamed on
//! the variable that set it rather than on the file.

use serde::Deserialize;

use super::{ConfigError, RawConfig};

/// A `WEIR__SECTION__KEY` variable that names no key weir knows. It is ignored with a warning
/// rather than refused: the environment is shared with other programs and other versions of
/// weir, while a misspelt key in config.toml, which is weir's alone, stays an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredOverride {
    pub name: String,
    /// What the configuration reader said about it (`unknown field `nope`, expected one of ...`).
    pub reason: String,
}

impl std::fmt::Display for IgnoredOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ignored environment variable {}: {}; see the commented config.toml for every key",
            self.name, self.reason
        )
    }
}

/// The file's table with the environment's overrides applied, and which variable set what.
pub(super) struct Overrides {
    pub(super) table: toml::Table,
    /// Each applied variable's name and the key path it set (`["core", "parallelism"]`).
    applied: Vec<(String, Vec<String>)>,
    pub(super) ignored: Vec<IgnoredOverride>,
}

impl Overrides {
    /// A bad value that came from a variable is blamed on the variable, not on the file.
    pub(super) fn blame(&self, error: ConfigError) -> ConfigError {
        let ConfigError::BadValue {
            section,
            key,
            value,
            reason,
            ..
        } = &error
        else {
            return error;
        };
        let set_by = self.applied.iter().find(|(_, path)| {
            path.split_last()
                .is_some_and(|(last, sections)| last == key && sections.join(".") == *section)
        });
        match set_by {
            Some((name, _)) => ConfigError::BadOverride {
                name: name.clone(),
                reason: format!("[{section}] {key} = {value:?}: {reason}"),
            },
            None => error,
        }
    }
}

/// `WEIR__CORE__PARALLELISM=8` sets `[core] parallelism = 8`. Values are read as TOML when they
/// parse as a number or boolean, else as strings.
///
/// Each variable is first tried alone on top of the file: one naming a key weir does not know is
/// ignored with a warning. The others are applied together (some only make sense together, such
/// as a user's `ROLE` and `PASSWORD`); when the result is refused, the variable that was refused
/// on its own is named, not the file.
pub(super) fn apply_overrides(
    table: toml::Table,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<Overrides, ConfigError> {
    let mut variables: Vec<(String, String)> = environment
        .into_iter()
        .filter(|(name, _)| name.starts_with("WEIR__"))
        .collect();
    variables.sort();
    let mut overrides = Overrides {
        table: table.clone(),
        applied: Vec::new(),
        ignored: Vec::new(),
    };
    // The first variable refused on its own, and why: the likely culprit if all together fail.
    let mut refused_alone: Option<ConfigError> = None;
    for (name, value) in variables {
        let path = name.trim_start_matches("WEIR__");
        let parts: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        if parts.len() < 2 || parts.iter().any(String::is_empty) {
            return Err(ConfigError::BadOverride {
                name: name.clone(),
                reason: "use WEIR__SECTION__KEY, e.g. WEIR__DATABASE__URL".to_string(),
            });
        }
        let bad_override = |reason: String| ConfigError::BadOverride {
            name: name.clone(),
            reason,
        };
        let value = override_value(&value);
        let mut alone = table.clone();
        set_key(&mut alone, &parts, value.clone()).map_err(bad_override)?;
        match RawConfig::deserialize(toml::Value::Table(alone)) {
            Err(error) if error.message().starts_with("unknown field") => {
                overrides.ignored.push(IgnoredOverride {
                    name,
                    reason: error.message().to_string(),
                });
                continue;
            }
            Err(error) if refused_alone.is_none() => {
                let (key, sections) = parts.split_last().expect("parts has at least two elements");
                refused_alone = Some(bad_override(format!(
                    "[{}] {key}: {}",
                    sections.join("."),
                    error.message()
                )));
            }
            _ => {}
        }
        set_key(&mut overrides.table, &parts, value).map_err(bad_override)?;
        overrides.applied.push((name, parts));
    }
    if let Err(error) = RawConfig::deserialize(toml::Value::Table(overrides.table.clone())) {
        let names: Vec<&str> = overrides.applied.iter().map(|(name, _)| name.as_str()).collect();
        return Err(refused_alone.unwrap_or_else(|| ConfigError::BadOverride {
            name: names.join(", "),
            reason: error.message().to_string(),
        }));
    }
    Ok(overrides)
}

/// A variable's text as a TOML number or boolean when it reads as one, else as a string.
fn override_value(value: &str) -> toml::Value {
    format!("value = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut parsed| parsed.remove("value"))
        .filter(|parsed| {
            matches!(
                parsed,
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)
            )
        })
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

/// Sets `parts` (sections, then the key) in `table`, creating the sections.
fn set_key(table: &mut toml::Table, parts: &[String], value: toml::Value) -> Result<(), String> {
    let Some((key, sections)) = parts.split_last() else {
        return Ok(());
    };
    let mut current = table;
    for section in sections {
        let entry = current
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("`{section}` is not a section")),
        };
    }
    current.insert(key.clone(), value);
    Ok(())
}
