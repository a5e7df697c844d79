//! Secrets a node holds (`admin_token`, `cluster_secret`, client tokens, `metrics_token`): a
//! type that never prints its value, and reading one from a file (`*_file` settings).
//!
//! To ensure correctness:
//! - [`Secret`]'s `Debug` shows whether it is set, never the value, so a logged configuration
//!   leaks nothing; clap is told the same (`hide_env_values`, no default shown).
//! - Comparing a presented secret goes through [`Secret::matches`]: constant time, and an empty
//!   secret matches nothing (an empty header never passes a check).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A secret value; empty means not configured.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<hidden>"
        })
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl Secret {
    /// Whether no value is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value, for the few places that must send it (peer requests, the wipe guard's ask).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value when one is configured.
    pub fn configured(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.clone())
    }

    /// Whether `presented` is this secret: constant time, and never for an empty secret.
    pub fn matches(&self, presented: &str) -> bool {
        api::auth::same_secret(presented, &self.0)
    }

    /// Fills an unset secret from `file` when one is named; both set is an error, since which
    /// one wins would be a guess. `setting` names the pair in the error.
    pub fn fill_from_file(
        &mut self,
        file: Option<&Path>,
        setting: &str,
    ) -> Result<(), SecretError> {
        let Some(file) = file else {
            return Ok(());
        };
        if !self.0.is_empty() {
            return Err(SecretError::Both(setting.to_string()));
        }
        *self = read_secret_file(file)?;
        Ok(())
    }
}

/// A secret that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("reading secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds nothing but whitespace.
    #[error("secret file {0} is empty")]
    Empty(PathBuf),
    /// A secret was given both directly and as a file.
    #[error("{0} is given both directly and as {0}_file; give one")]
    Both(String),
}

/// The secret in `path`: its contents without surrounding whitespace (a trailing newline is
/// how editors and `echo` leave it).
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(SecretError::Empty(path.to_path_buf()));
    }
    Ok(Secret(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::from("hunter2".to_string());
        assert_eq!(format!("{secret:?}"), "<hidden>");
        assert_eq!(format!("{:?}", Secret::default()), "<unset>");
    }

    #[test]
    fn an_empty_secret_matches_nothing() {
        assert!(!Secret::default().matches(""));
        let secret = Secret::from("s".to_string());
        assert!(secret.matches("s"));
        assert!(!secret.matches(""));
        assert!(!secret.matches("s "));
    }

    #[test]
    fn files_are_read_trimmed_and_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "value\n").unwrap();
        let mut secret = Secret::default();
        secret.fill_from_file(Some(&path), "admin_token").unwrap();
        assert_eq!(secret.expose(), "value");
        assert!(matches!(
            secret.fill_from_file(Some(&path), "admin_token"),
            Err(SecretError::Both(_))
        ));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            read_secret_file(&path),
            Err(SecretError::Empty(_))
        ));
    }
}
