//! Secret references and a value type that never prints itself. fcxd, the
//! workers and fcxctl all resolve secrets here:
//!
//! - `keystore:ID`: the encrypted keystore of this FCX_HOME ([`crate::keystore`]);
//! - `env:VAR`: an environment variable of the resolving process (fcxd and
//!   the workers read them at start: [`crate::env_secrets`]);
//! - `file:PATH`: the file's content (one trailing newline dropped); the file
//!   must be private to its owner (0600 on Unix), else it is refused;
//! - `exec:COMMAND`: the standard output of `/bin/sh -c COMMAND` (`cmd /C` on
//!   Windows), for pass, 1Password, vault and similar CLIs; it must finish
//!   within [`EXEC_TIMEOUT`] and print at most [`EXEC_OUTPUT_CAP`] bytes.

use std::fmt;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::keystore::{Keystore, KeystoreError};

/// How long an `exec:` command may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);
/// The most an `exec:` command may print (a secret, not a document).
pub const EXEC_OUTPUT_CAP: usize = 64 * 1024;

/// Where a secret comes from. The reference is safe to show; the value is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME`: an environment variable.
    Env(String),
    /// `file:PATH`: a file that only its owner may read.
    File(PathBuf),
    /// An id in the keystore of the FCX_HOME the reference was read for.
    Keystore {
        /// The secret's id.
        id: String,
        /// The home whose keystore holds it.
        fcx_home: PathBuf,
    },
    /// `exec:COMMAND`: what a command prints (bounded in time and size).
    Exec(String),
}

/// Why a secret could not be read; names the reference, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is unset or empty.
    #[error("secret {reference}: environment variable {var} is not set or empty")]
    EnvMissing {
        /// The reference as configured (never the value).
        reference: String,
        /// The environment variable.
        var: String,
    },
    /// The variable was not read when the process started (fcxd and the
    /// workers read `env:` variables only then, and remove them).
    #[error("secret {reference}: {message}")]
    EnvNotTaken {
        /// The reference as configured (never the value).
        reference: String,
        /// What to do: restart.
        message: String,
    },
    /// The file could not be read.
    #[error("secret {reference}: cannot read {path}: {source}")]
    FileUnreadable {
        /// The reference as configured (never the value).
        reference: String,
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("secret {reference}: {path} is empty")]
    FileEmpty {
        /// The reference as configured (never the value).
        reference: String,
        /// The file.
        path: PathBuf,
    },
    #[error(
        "secret {reference}: {path} is readable by other users (mode {mode:o}); refused: chmod 600 {path}"
    )]
    /// The file is readable by others: refused.
    FileOpen {
        /// The reference as configured (never the value).
        reference: String,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The keystore could not give it.
    #[error("secret {reference}: {source}")]
    Keystore {
        /// The reference as configured (never the value).
        reference: String,
        /// What the keystore said.
        source: KeystoreError,
    },
    /// The command failed, timed out or printed too much.
    #[error("secret {reference}: {message}")]
    Exec {
        /// The reference as configured (never the value).
        reference: String,
        /// What went wrong.
        message: String,
    },
}

impl SecretRef {
    /// Parse a reference for the FCX_HOME of the environment. The error
    /// never repeats the input, because a mistake here is usually a pasted
    /// secret.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_in(s, &crate::Home::from_env())
    }

    /// Like [`SecretRef::parse`] for `home`: `file:~/…` expands against its
    /// user home, `keystore:` names its keystore.
    pub fn parse_in(s: &str, home: &crate::Home) -> Result<Self, String> {
        let user_home = home.user_home();
        if let Some(id) = s.strip_prefix("keystore:") {
            if !crate::keystore::valid_id(id) {
                return Err(
                    "keystore: must be followed by an id of 1-64 characters (A-Z, a-z, 0-9, '.', '_', '-')"
                        .into(),
                );
            }
            return Ok(SecretRef::Keystore {
                id: id.to_string(),
                fcx_home: home.root().to_path_buf(),
            });
        }
        if let Some(cmd) = s.strip_prefix("exec:") {
            if cmd.trim().is_empty() {
                return Err("exec: must be followed by a command".into());
            }
            return Ok(SecretRef::Exec(cmd.to_string()));
        }
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
        Err("a secret reference is keystore:ID, exec:COMMAND, env:VAR or file:PATH (the value itself does not belong in config.toml; store it with `fcxctl secret set ID`)".into())
    }

    /// Resolve to the value. Reads the environment or the file each time, so a
    /// rotated key is picked up by the next run.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(var) => {
                let value = match crate::env_secrets::lookup(var) {
                    crate::env_secrets::Lookup::Environment => std::env::var(var).ok(),
                    crate::env_secrets::Lookup::Taken(v) => v.map(str::to_string),
                    crate::env_secrets::Lookup::NotTaken { process } => {
                        return Err(SecretError::EnvNotTaken {
                            reference: self.to_string(),
                            message: crate::env_secrets::not_taken_message(process, var),
                        });
                    }
                };
                match value {
                    Some(v) if !v.trim().is_empty() => Ok(Secret(v)),
                    _ => Err(SecretError::EnvMissing {
                        reference: self.to_string(),
                        var: var.clone(),
                    }),
                }
            }
            SecretRef::File(path) => {
                if let Err(KeystoreError::Open { mode, .. }) = crate::keystore::check_private(path)
                {
                    return Err(SecretError::FileOpen {
                        reference: self.to_string(),
                        path: path.clone(),
                        mode,
                    });
                }
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
            SecretRef::Keystore { id, fcx_home } => {
                Keystore::in_home(fcx_home)
                    .get(id)
                    .map_err(|source| SecretError::Keystore {
                        reference: self.to_string(),
                        source,
                    })
            }
            SecretRef::Exec(cmd) => {
                run_exec(cmd, EXEC_TIMEOUT, EXEC_OUTPUT_CAP).map_err(|message| SecretError::Exec {
                    reference: self.to_string(),
                    message,
                })
            }
        }
    }

    /// The environment variable this reference reads, if any: the worker
    /// removes it from the Codex child's environment so the key appears there
    /// only once, as `CODEX_API_KEY`.
    pub fn env_var(&self) -> Option<&str> {
        match self {
            SecretRef::Env(v) => Some(v),
            SecretRef::File(_) | SecretRef::Keystore { .. } | SecretRef::Exec(_) => None,
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Keystore { id, .. } => write!(f, "keystore:{id}"),
            // The command is configuration, not the secret.
            SecretRef::Exec(cmd) => write!(f, "exec:{cmd}"),
        }
    }
}

/// Run an `exec:` command: its standard output (one trailing newline
/// dropped) within `timeout` and `cap` bytes. Errors say what went wrong,
/// never what it printed on standard output.
fn run_exec(cmd: &str, timeout: Duration, cap_bytes: usize) -> Result<Secret, String> {
    let mut c = if cfg!(windows) {
        let mut c = std::process::Command::new("cmd");
        c.arg("/C").arg(cmd);
        c
    } else {
        let mut c = std::process::Command::new("/bin/sh");
        c.arg("-c").arg(cmd);
        c
    };
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Its own process group, so a timeout ends the command and its children.
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        c.process_group(0);
    }
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot start the command: {e}"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let cap = cap_bytes as u64 + 1;
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout {
            let _ = s.take(cap).read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr {
            let _ = s.take(4096).read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                kill_tree(&mut child);
                // The readers end when the killed group's pipes close.
                return Err(format!(
                    "the command did not finish within {:.1}s and was stopped",
                    timeout.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for the command: {e}")),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    // Checked first: a command cut off at the cap may die of SIGPIPE.
    if out.len() > cap_bytes {
        return Err(format!(
            "the command printed more than {cap_bytes} bytes; a secret command prints the secret only"
        ));
    }
    if !status.success() {
        let why = String::from_utf8_lossy(&err);
        let why = why.lines().next().unwrap_or("").trim();
        let why: String = why.chars().take(200).collect();
        return Err(if why.is_empty() {
            format!("the command failed ({status})")
        } else {
            format!("the command failed ({status}): {why}")
        });
    }
    let text =
        String::from_utf8(out).map_err(|_| "the command printed non-UTF-8 output".to_string())?;
    let v = text.strip_suffix('\n').unwrap_or(&text);
    let v = v.strip_suffix('\r').unwrap_or(v);
    if v.trim().is_empty() {
        return Err("the command printed nothing".into());
    }
    Ok(Secret(v.to_string()))
}

#[cfg(unix)]
fn kill_tree(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(not(unix))]
fn kill_tree(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A resolved secret. `Debug` and `Display` print a placeholder, so it cannot
/// leak through a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value read from somewhere else.
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

    #[cfg(unix)]
    #[test]
    fn exec_prints_the_secret_and_is_bounded_in_time_and_size() {
        let ok = SecretRef::parse("exec:printf 'sk-from-exec\\n'").expect("parse");
        assert_eq!(ok.to_string(), "exec:printf 'sk-from-exec\\n'");
        assert_eq!(ok.resolve().expect("resolve").expose(), "sk-from-exec");

        // A hung command (and a child it started) is stopped at the timeout.
        let e =
            run_exec("sleep 30 & sleep 30", Duration::from_millis(300), 1024).expect_err("timeout");
        assert!(e.contains("did not finish within 0.3s"), "{e}");

        let e = run_exec(
            "head -c 5000 /dev/zero | tr '\\0' x",
            Duration::from_secs(10),
            1024,
        )
        .expect_err("too much output");
        assert!(e.contains("more than 1024 bytes"), "{e}");

        // A failure reports stderr, never stdout (which may hold the secret).
        let r = SecretRef::parse("exec:printf 'sk-%s' partial; echo 'no such entry' >&2; exit 3")
            .expect("parse");
        let e = r.resolve().expect_err("failure").to_string();
        assert!(
            e.contains("no such entry") && e.contains("exit status: 3"),
            "{e}"
        );
        assert!(!e.contains("sk-partial"), "{e}");
        let e = SecretRef::parse("exec:true")
            .expect("parse")
            .resolve()
            .expect_err("empty");
        assert!(e.to_string().contains("printed nothing"), "{e}");
        assert!(SecretRef::parse("exec: ").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn file_secrets_readable_by_others_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("k");
        std::fs::write(&p, "sk-test-123\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let r = SecretRef::parse(&format!("file:{}", p.display())).expect("parse");
        let e = r.resolve().expect_err("open file").to_string();
        assert!(e.contains("mode 640"), "{e}");
        assert!(e.contains(&format!("chmod 600 {}", p.display())), "{e}");
        assert!(!e.contains("sk-test"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(r.resolve().expect("private file").expose(), "sk-test-123");
    }

    #[test]
    fn keystore_references_resolve_through_the_home_keystore() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = crate::Home::with_user_home(d.path().join("h"), d.path().to_path_buf());
        let r = SecretRef::parse_in("keystore:app.secret", &home).expect("parse");
        assert_eq!(r.to_string(), "keystore:app.secret");
        let e = r.resolve().expect_err("no keystore").to_string();
        assert!(e.contains("fcxctl secret set"), "{e}");
        crate::keystore::Keystore::in_home(home.root())
            .set("app.secret", &Secret::new("s3cret-value"))
            .expect("set");
        assert_eq!(r.resolve().expect("resolve").expose(), "s3cret-value");
        assert!(SecretRef::parse_in("keystore:", &home).is_err());
        assert!(SecretRef::parse_in("keystore:a/b", &home).is_err());
    }

    #[test]
    fn parse_and_resolve_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("k");
        std::fs::write(&p, "sk-test-123\n").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
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
