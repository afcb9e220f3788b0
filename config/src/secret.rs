//! Secret references (`env:VAR`, `file:PATH`) and a value type that never
//! prints itself.

use std::fmt;
use std::path::PathBuf;

/// Where a secret comes from. The reference is safe to show; the value is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference}: environment variable {var} is not set or empty")]
    EnvMissing { reference: String, var: String },
    #[error("secret {reference}: cannot read {path}: {source}")]
    FileUnreadable {
        reference: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret {reference}: {path} is empty")]
    FileEmpty { reference: String, path: PathBuf },
}

impl SecretRef {
    /// Parse `env:VAR` or `file:PATH`. The error never repeats the input,
    /// because a mistake here is usually a pasted secret.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_in(s, &crate::home::user_home_dir())
    }

    /// Like [`SecretRef::parse`], expanding `file:~/…` against `user_home`.
    pub fn parse_in(s: &str, user_home: &std::path::Path) -> Result<Self, String> {
        if let Some(var) = s.strip_prefix("env:") {
            let ok = !var.is_empty()
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !var.as_bytes()[0].is_ascii_digit();
            if !ok {
                return Err("env: must name an environment variable (letters, digits, _)".into());
            }
            return Ok(SecretRef::Env(var.to_string()));
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: must be followed by a path".into());
            }
            let p = if let Some(rest) = path.strip_prefix("~/") {
                user_home.join(rest)
            } else {
                PathBuf::from(path)
            };
            return Ok(SecretRef::File(p));
        }
        Err("a secret reference is env:VAR or file:PATH (the value itself does not belong in config.toml)".into())
    }

    /// Resolve to the value. Reads the environment or the file each time, so a
    /// rotated key is picked up by the next run.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret(v)),
                _ => Err(SecretError::EnvMissing {
                    reference: self.to_string(),
                    var: var.clone(),
                }),
            },
            SecretRef::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    SecretError::FileUnreadable {
                        reference: self.to_string(),
                        path: path.clone(),
                        source,
                    }
                })?;
                let v = text.trim_end_matches(['\r', '\n']).to_string();
                if v.trim().is_empty() {
                    return Err(SecretError::FileEmpty {
                        reference: self.to_string(),
                        path: path.clone(),
                    });
                }
                Ok(Secret(v))
            }
        }
    }

    /// The environment variable this reference reads, if any: the worker
    /// removes it from the Codex child's environment so the key appears there
    /// only once, as `CODEX_API_KEY`.
    pub fn env_var(&self) -> Option<&str> {
        match self {
            SecretRef::Env(v) => Some(v),
            SecretRef::File(_) => None,
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// A resolved secret. `Debug` and `Display` print a placeholder, so it cannot
/// leak through a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(v: impl Into<String>) -> Self {
        Secret(v.into())
    }
    /// The value, for the one place that needs it (the child's environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
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
    fn parse_and_resolve_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("k");
        std::fs::write(&p, "sk-test-123\n").expect("write");
        let r = SecretRef::parse(&format!("file:{}", p.display())).expect("parse");
        let s = r.resolve().expect("resolve");
        assert_eq!(s.expose(), "sk-test-123");
        assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
    }

    #[test]
    fn missing_sources_are_clear_and_do_not_leak() {
        let r = SecretRef::parse("env:FCX_TEST_SURELY_UNSET_VAR").expect("parse");
        let e = r.resolve().expect_err("unset").to_string();
        assert!(e.contains("FCX_TEST_SURELY_UNSET_VAR"), "{e}");
        let r = SecretRef::parse("file:/nonexistent/fcx/key").expect("parse");
        let e = r.resolve().expect_err("missing").to_string();
        assert!(e.contains("/nonexistent/fcx/key"), "{e}");
        let e = SecretRef::parse("sk-live-abcdef").expect_err("plain value");
        assert!(!e.contains("sk-live"), "{e}");
        assert!(SecretRef::parse("env:1BAD").is_err());
        assert!(SecretRef::parse("env:").is_err());
    }
}
