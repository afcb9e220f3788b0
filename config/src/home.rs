//! The `$FCX_HOME` directory layout (default `~/.fcx`).
//!
//! ```text
//! config.toml
//! profiles/<name>/state.db       the worker's journal and catalog
//! profiles/<name>/codex-home/    CODEX_HOME for the profile's Codex children
//! profiles/<name>/callback-keys.json  card-button signing keys (0600)
//! logs/                          fcxd.log, worker-<name>.log (JSON lines)
//! run/                           fcxd.sock, worker-<name>.sock, fcxd.lock (0700)
//! ```

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
    user_home: PathBuf,
}

pub(crate) fn user_home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

impl Home {
    /// `$FCX_HOME`, else `~/.fcx`.
    pub fn from_env() -> Self {
        let user_home = user_home_dir();
        let root = match std::env::var_os("FCX_HOME") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => user_home.join(".fcx"),
        };
        Self::with_user_home(root, user_home)
    }

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_user_home(root, user_home_dir())
    }

    pub fn with_user_home(root: impl Into<PathBuf>, user_home: PathBuf) -> Self {
        let root = root.into();
        // Relative homes would change meaning when a child changes directory.
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .map(|d| d.join(&root))
                .unwrap_or(root)
        };
        Home { root, user_home }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn user_home(&self) -> &Path {
        &self.user_home
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn gateway_socket(&self) -> PathBuf {
        self.run_dir().join("fcxd.sock")
    }
    pub fn gateway_lock(&self) -> PathBuf {
        self.run_dir().join("fcxd.lock")
    }
    pub fn worker_socket(&self, profile: &str) -> PathBuf {
        self.run_dir().join(format!("worker-{profile}.sock"))
    }
    pub fn profile_dir(&self, profile: &str) -> PathBuf {
        self.root.join("profiles").join(profile)
    }
    pub fn state_db(&self, profile: &str) -> PathBuf {
        self.profile_dir(profile).join("state.db")
    }
    pub fn codex_home(&self, profile: &str) -> PathBuf {
        self.profile_dir(profile).join("codex-home")
    }
    pub fn callback_keys(&self, profile: &str) -> PathBuf {
        crate::callback_keys::path_in(&self.profile_dir(profile))
    }
}
