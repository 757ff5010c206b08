//! Which names mark a value as secret (§4): variables, task env values and connection extra
//! fields whose name contains password, secret, token or key are masked wherever they are shown.

/// What a secret value is shown as.
pub const REDACTED: &str = "***";

/// Names that mark a value as secret (§4), case-insensitively.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|word| lower.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_found_in_any_case() {
        for name in ["DB_PASSWORD", "api_token", "Secret", "ssh_key", "apikey"] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["region", "host", "work_dir"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }
}
