//! Downstream secrets: given by reference, held in memory only, zeroized on drop,
//! never printed.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

/// Where a secret comes from. Config files name secrets; they do not contain them.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretRef {
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file (trailing newline removed), e.g. a mounted secret.
    File(PathBuf),
    /// The value itself. Accepted for throwaway setups only; `serve` and `config
    /// check` warn, because a config file is easily committed by mistake.
    Value(Zeroizing<String>),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Value(_) => f.write_str("value:<redacted>"),
        }
    }
}

/// A secret that could not be resolved. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set or not UTF-8.
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    /// The file cannot be read.
    #[error("cannot read secret file `{path}`: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The secret is empty.
    #[error("secret {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// True for inline values (which deserve a warning).
    pub fn is_inline(&self) -> bool {
        matches!(self, SecretRef::Value(_))
    }

    /// Reads the secret.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretRef::Env(name) => Zeroizing::new(
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?,
            ),
            SecretRef::File(path) => {
                let bytes =
                    Zeroizing::new(std::fs::read(path).map_err(|source| SecretError::File {
                        path: path.clone(),
                        source,
                    })?);
                let mut s = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
                while s.ends_with('\n') || s.ends_with('\r') {
                    s.pop();
                }
                s
            }
            SecretRef::Value(v) => v.clone(),
        };
        if value.is_empty() {
            return Err(SecretError::Empty(format!("{self:?}")));
        }
        Ok(Secret(value))
    }
}

/// A resolved secret. `Debug` and `Display` print `<redacted>`; memory is zeroized
/// on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value (tests, generated credentials).
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The secret, for handing to the upstream protocol. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = SecretRef::Value(Zeroizing::new("hunter2".into()));
        assert!(!format!("{s:?}").contains("hunter2"));
        let r = s.resolve().unwrap();
        assert_eq!(r.expose(), "hunter2");
        assert!(!format!("{r:?} {r}").contains("hunter2"));
    }

    #[test]
    fn file_secrets_lose_the_trailing_newline() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), "s3cret\n").unwrap();
        assert_eq!(
            SecretRef::File(tmp.path().into())
                .resolve()
                .unwrap()
                .expose(),
            "s3cret"
        );
    }

    #[test]
    fn missing_env_names_the_variable_only() {
        let e = SecretRef::Env("GATEHOUSE_TEST_SURELY_UNSET".into())
            .resolve()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable `GATEHOUSE_TEST_SURELY_UNSET` is not set"
        );
    }
}
