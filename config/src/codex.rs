//! Finding the Codex CLI: one rule for fcxd's workers, the console and
//! fcxctl.
//!
//! 1. `profiles.NAME.codex.binary` in config.toml (a path, or a name looked
//!    up on PATH);
//! 2. else the `FCX_CODEX_BINARY` environment variable (scripts/console.sh
//!    points it at the pinned install in `~/.cache/fcx`);
//! 3. else `codex` on PATH.
//!
//! Steps 1 and 2 are applied when config.toml is read
//! ([`crate::CodexConfig::binary`]); [`locate`] does the PATH lookup the
//! worker's spawn does.

use std::path::{Path, PathBuf};

/// The Codex CLI version fcx is built and tested against.
pub const PINNED_VERSION: &str = "0.169.0";

/// The one install command fcx suggests.
pub const INSTALL_HINT: &str = "npm install -g @openai/codex@0.169.0";

/// Why the configured binary cannot be used, as a sentence ending in the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error(
        "`{name}` was not found on PATH; install Codex ({INSTALL_HINT}) or set {key} to the absolute path of the Codex executable"
    )]
    /// A bare name not found on PATH.
    NotOnPath {
        /// The name configured.
        name: String,
        /// The config key that names it.
        key: String,
    },
    #[error(
        "`{path}` is a relative path, which the worker would resolve against its own working directory; set {key} to an absolute path"
    )]
    /// A relative path (it would depend on the worker's directory).
    Relative {
        /// The path configured.
        path: String,
        /// The config key that names it.
        key: String,
    },
    #[error(
        "{path} does not exist; install Codex ({INSTALL_HINT}) or set {key} to the Codex executable"
    )]
    /// The path does not exist.
    Missing {
        /// The path configured.
        path: String,
        /// The config key that names it.
        key: String,
    },
    /// The path is a directory.
    #[error("{path} is a directory; set {key} to the Codex executable inside it")]
    Directory {
        /// The path configured.
        path: String,
        /// The config key that names it.
        key: String,
    },
    #[error(
        "{path} is not executable; make it executable (chmod +x {path}) or set {key} to the Codex executable"
    )]
    /// The file lacks an execute bit.
    NotExecutable {
        /// The path configured.
        path: String,
        /// The config key that names it.
        key: String,
    },
    /// The path could not be inspected.
    #[error("cannot inspect {path}: {reason}; check {key}")]
    Unreadable {
        /// The path configured.
        path: String,
        /// The config key that names it.
        key: String,
        /// What the file system said.
        reason: String,
    },
}

/// Where a usable binary was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The absolute path of the executable.
    pub path: PathBuf,
    /// Found by a PATH lookup (a service manager's PATH is usually shorter
    /// than a login shell's).
    pub on_path: bool,
}

/// The operator's own Codex login file (`$CODEX_HOME/auth.json`, else
/// `~/.codex/auth.json`), when there is one.
pub fn user_login(home: &crate::Home) -> Option<PathBuf> {
    let f = crate::model_endpoint::user_codex_home(home).join("auth.json");
    f.is_file().then_some(f)
}

/// Resolve `binary` (as configured for `profile`) to an executable file.
pub fn locate(binary: &str, profile: &str) -> Result<Located, LocateError> {
    let key = format!("profiles.{profile}.codex.binary");
    let path = Path::new(binary);
    let is_bare = path.components().count() == 1 && !path.is_absolute();
    if is_bare {
        return find_on_path(binary)
            .map(|path| Located {
                path,
                on_path: true,
            })
            .ok_or(LocateError::NotOnPath {
                name: binary.into(),
                key,
            });
    }
    let shown = binary.to_string();
    if !path.is_absolute() {
        return Err(LocateError::Relative { path: shown, key });
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(LocateError::Missing { path: shown, key })
        }
        Err(e) => Err(LocateError::Unreadable {
            path: shown,
            key,
            reason: e.to_string(),
        }),
        Ok(m) if m.is_dir() => Err(LocateError::Directory { path: shown, key }),
        Ok(m) if !is_executable(&m) => Err(LocateError::NotExecutable { path: shown, key }),
        Ok(_) => Ok(Located {
            path: path.to_path_buf(),
            on_path: false,
        }),
    }
}

/// The version in `codex --version` output (`codex-cli 0.169.0`).
pub fn parse_version(output: &str) -> Option<String> {
    output
        .split_whitespace()
        .find(|w| {
            let mut parts = w.split('.');
            parts.next().is_some_and(|p| p.parse::<u32>().is_ok())
                && parts.next().is_some_and(|p| p.parse::<u32>().is_ok())
        })
        .map(str::to_string)
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.is_file() && m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(m: &std::fs::Metadata) -> bool {
    m.is_file()
}

/// The first executable called `name` on PATH, as the worker's spawn would
/// find it.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .flat_map(|dir| candidates(&dir, name))
        .find(|c| std::fs::metadata(c).is_ok_and(|m| is_executable(&m)))
}

#[cfg(not(windows))]
fn candidates(dir: &Path, name: &str) -> Vec<PathBuf> {
    vec![dir.join(name)]
}

/// Windows finds `codex` as `codex.exe` or `codex.cmd` (npm's shim) through
/// PATHEXT.
#[cfg(windows)]
fn candidates(dir: &Path, name: &str) -> Vec<PathBuf> {
    if Path::new(name).extension().is_some() {
        return vec![dir.join(name)];
    }
    // npm also installs an extensionless `codex` shell script next to the
    // shims, which Windows cannot start: only PATHEXT candidates count.
    let exts = std::env::var("PATHEXT").unwrap_or_else(|_| ".COM;.EXE;.BAT;.CMD".into());
    exts.split(';')
        .filter(|e| !e.is_empty())
        .map(|ext| dir.join(format!("{name}{ext}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_the_cli_banner() {
        assert_eq!(
            parse_version("codex-cli 0.169.0\n").as_deref(),
            Some("0.169.0")
        );
        assert_eq!(parse_version("codex 1.2").as_deref(), Some("1.2"));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn missing_and_relative_paths_name_the_key_and_the_pinned_hint() {
        let e = locate("/nonexistent/fcx/codex", "w")
            .expect_err("missing")
            .to_string();
        assert!(e.contains("profiles.w.codex.binary"), "{e}");
        assert!(e.contains(INSTALL_HINT), "{e}");
        let e = locate("bin/codex", "w").expect_err("relative").to_string();
        assert!(e.contains("absolute path"), "{e}");
    }
}
