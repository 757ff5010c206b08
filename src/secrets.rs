//! The secrets key (§1 `[secrets] key`) and the encryption of secrets at rest (connection
//! passwords, secret-named connection extras and variables):
//! XChaCha20-Poly1305 with a random 24-byte nonce per value, key = SHA-256 of the passphrase.
//!
//! It sits beside `config.rs` rather than in `storage/` because three layers use it: storage
//! encrypts and decrypts, the CLI and the daemon find the key (configured, or generated once into
//! `<state_dir>/secret.key`), and neither of those is SQL.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// What marks a stored value as encrypted, and with which scheme.
pub const ENCRYPTED_PREFIX: &str = "enc:v1:";
/// The key file written into the state folder when no key is configured.
pub const KEY_FILE_NAME: &str = "secret.key";
const NONCE_LEN: usize = 24;

/// A passphrase as configured (`[secrets] key`), kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl Passphrase {
    pub fn new(text: impl Into<String>) -> Self {
        Passphrase(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Passphrase(***)")
    }
}

/// The key that encrypts secrets at rest.
#[derive(Clone)]
pub struct SecretsKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SecretsKey(***)")
    }
}

/// Where the key in use came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `[secrets] key` or `WEIR__SECRETS__KEY`.
    Configured,
    /// The key file in the state folder; `created` when this call wrote it.
    File { path: PathBuf, created: bool },
}

/// Why the key could not be found or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "[secrets] key is empty: set it to a long random text, or remove it to use {KEY_FILE_NAME} in the state folder"
    )]
    EmptyPassphrase,
    #[error("cannot read the secrets key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the secrets key file {path} is empty: put the key back in it (or set [secrets] key); deleting it makes passwords stored with the old key unreadable"
    )]
    EmptyFile { path: PathBuf },
    #[error("cannot create the secrets key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Why a stored value could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Authentication failed: the value was encrypted with another key (or was altered).
    #[error("was encrypted with a different secrets key")]
    WrongKey,
    #[error("is damaged in the database ({0})")]
    Malformed(String),
}

impl SecretsKey {
    /// The key for a passphrase: SHA-256 of its bytes, so any length of text works.
    pub fn from_passphrase(passphrase: &str) -> SecretsKey {
        let digest = Sha256::digest(passphrase.as_bytes());
        SecretsKey {
            cipher: XChaCha20Poly1305::new(&digest),
        }
    }

    /// The configured key, else the one in `<state_dir>/secret.key`, generated there (mode 0600)
    /// on first use, as Airflow generates a Fernet key. A key file on one machine is no use to a
    /// second one: setups sharing a PostgreSQL database across machines must configure the key.
    pub fn load_or_create(
        configured: Option<&Passphrase>,
        state_dir: &Path,
    ) -> Result<(SecretsKey, KeySource), KeyError> {
        if let Some(passphrase) = configured {
            if passphrase.expose().trim().is_empty() {
                return Err(KeyError::EmptyPassphrase);
            }
            return Ok((SecretsKey::from_passphrase(passphrase.expose()), KeySource::Configured));
        }
        let path = state_dir.join(KEY_FILE_NAME);
        let created = match read_key_file(&path)? {
            Some(_) => false,
            None => create_key_file(&path)?,
        };
        let passphrase = read_key_file(&path)?.ok_or_else(|| KeyError::Read {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "it vanished after being created"),
        })?;
        Ok((
            SecretsKey::from_passphrase(&passphrase),
            KeySource::File { path, created },
        ))
    }

    /// `enc:v1:<hex(nonce || ciphertext)>`, a fresh random nonce each time.
    pub fn encrypt(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption into a Vec fails only when the text exceeds what the cipher can count
        // (about 256 GiB); a password never does, but an empty ciphertext would be caught on read.
        let ciphertext = self.cipher.encrypt(&nonce, plain.as_bytes()).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        format!("{ENCRYPTED_PREFIX}{}", hex_encode(&bytes))
    }

    /// The plain text of a stored value. A value without the `enc:` prefix is a password stored
    /// before encryption existed and is returned as it is.
    pub fn decrypt(&self, stored: &str) -> Result<String, DecryptError> {
        let Some(encoded) = stored.strip_prefix(ENCRYPTED_PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = hex_decode(encoded).ok_or_else(|| DecryptError::Malformed("not hexadecimal".to_string()))?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(DecryptError::Malformed("too short".to_string()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| DecryptError::Malformed("too short".to_string()))?;
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), ciphertext)
            .map_err(|_| DecryptError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| DecryptError::Malformed("not UTF-8 text".to_string()))
    }
}

/// Whether a stored value is already encrypted (anything else is legacy plain text).
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(ENCRYPTED_PREFIX)
}

fn read_key_file(path: &Path) -> Result<Option<String>, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Err(KeyError::EmptyFile {
            path: path.to_path_buf(),
        }),
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes 32 random bytes (as hex) to a private temporary file, then links it into place, so a
/// second process starting at the same moment either wins or reads the winner's complete file.
/// Returns whether this call created the file.
fn create_key_file(path: &Path) -> Result<bool, KeyError> {
    let write_error = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let folder = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(folder).map_err(write_error)?;
    let key = XChaCha20Poly1305::generate_key(&mut OsRng);
    let mut temporary = tempfile::Builder::new()
        .prefix(".secret.key.")
        .permissions(private_permissions())
        .tempfile_in(folder)
        .map_err(write_error)?;
    writeln!(temporary, "{}", hex_encode(&key)).map_err(write_error)?;
    temporary.as_file().sync_all().map_err(write_error)?;
    match std::fs::hard_link(temporary.path(), path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(write_error(error)),
    }
}

fn private_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o600)
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |byte: u8| char::from(byte).to_digit(16).and_then(|value| u8::try_from(value).ok());
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_round_trips_and_the_stored_form_hides_it() {
        let key = SecretsKey::from_passphrase("correct horse");
        let stored = key.encrypt("s3cr3t-pw");
        assert!(stored.starts_with("enc:v1:"), "{stored}");
        assert!(!stored.contains("s3cr3t-pw"));
        assert_eq!(key.decrypt(&stored).unwrap(), "s3cr3t-pw");
    }

    #[test]
    fn each_encryption_uses_a_fresh_nonce() {
        let key = SecretsKey::from_passphrase("k");
        assert_ne!(key.encrypt("same"), key.encrypt("same"));
    }

    #[test]
    fn another_key_cannot_decrypt() {
        let stored = SecretsKey::from_passphrase("one").encrypt("pw");
        assert_eq!(
            SecretsKey::from_passphrase("two").decrypt(&stored),
            Err(DecryptError::WrongKey)
        );
    }

    #[test]
    fn legacy_plain_text_reads_as_it_is_and_damage_is_reported() {
        let key = SecretsKey::from_passphrase("k");
        assert_eq!(key.decrypt("old-plain-pw").unwrap(), "old-plain-pw");
        assert!(!is_encrypted("old-plain-pw"));
        assert!(matches!(key.decrypt("enc:v1:zz"), Err(DecryptError::Malformed(_))));
        assert!(matches!(key.decrypt("enc:v1:00ff"), Err(DecryptError::Malformed(_))));
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex_encode(&bytes), "00017f80ff");
        assert_eq!(hex_decode("00017f80ff").unwrap(), bytes);
        assert_eq!(hex_decode("0"), None);
    }

    #[test]
    fn without_a_configured_key_one_is_generated_once_privately_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let folder = tempfile::tempdir().unwrap();
        let state_dir = folder.path().join("state");
        let (first, source) = SecretsKey::load_or_create(None, &state_dir).unwrap();
        let path = state_dir.join(KEY_FILE_NAME);
        assert_eq!(
            source,
            KeySource::File {
                path: path.clone(),
                created: true
            }
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, source) = SecretsKey::load_or_create(None, &state_dir).unwrap();
        assert_eq!(
            source,
            KeySource::File {
                path: path.clone(),
                created: false
            }
        );
        assert_eq!(second.decrypt(&first.encrypt("pw")).unwrap(), "pw");
        // The file's text is the passphrase: configuring it elsewhere gives the same key.
        let text = std::fs::read_to_string(&path).unwrap();
        let configured = Passphrase::new(text.trim());
        let (copied, source) = SecretsKey::load_or_create(Some(&configured), &state_dir).unwrap();
        assert_eq!(source, KeySource::Configured);
        assert_eq!(copied.decrypt(&first.encrypt("pw")).unwrap(), "pw");
        let leftovers: Vec<_> = std::fs::read_dir(&state_dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn an_empty_key_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let error = SecretsKey::load_or_create(Some(&Passphrase::new(" ")), folder.path()).unwrap_err();
        assert!(matches!(error, KeyError::EmptyPassphrase));
        std::fs::write(folder.path().join(KEY_FILE_NAME), "\n").unwrap();
        let error = SecretsKey::load_or_create(None, folder.path()).unwrap_err();
        assert!(error.to_string().contains("is empty"), "{error}");
    }

    #[test]
    fn debug_output_hides_keys() {
        assert_eq!(format!("{:?}", Passphrase::new("p")), "Passphrase(***)");
        assert_eq!(format!("{:?}", SecretsKey::from_passphrase("p")), "SecretsKey(***)");
    }
}
