//! The `$FCX_HOME` directory layout (default `~/.fcx`).
//!
//! ```text
//! config.toml
//! profiles/<name>/state.db       the worker's journal and catalog
//! profiles/<name>/codex-home/    CODEX_HOME for the profile's Codex children
//! profiles/<name>/callback-keys.json  card-button signing keys (0600)
//! profiles/<name>/media/         downloaded attachments by content hash (0700)
//! logs/                          fcxd.log, worker-<name>.log (JSON lines)
//! run/                           fcxd.sock, worker-<name>.sock, fcxd.lock (0700)
//! ```

use std::path::{Path, PathBuf};

/// The attachment store's name inside a profile's directory.
pub const MEDIA_DIR: &str = "media";

/// The paths of one `$FCX_HOME`, computed in one place so fcxd, the
/// workers and fcxctl always agree on where things are.
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

    /// The home at `root`, for the current user.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_user_home(root, user_home_dir())
    }

    /// The home at `root` with `~` meaning `user_home` (tests use a fake one).
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

    /// The home directory itself (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// What `~` expands to in config values.
    pub fn user_home(&self) -> &Path {
        &self.user_home
    }
    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// Sockets, locks and worker stderr files (0700).
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// fcxd's log files.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// fcxd's admin socket, for fcxctl.
    pub fn gateway_socket(&self) -> PathBuf {
        self.run_dir().join("fcxd.sock")
    }
    /// The lock that keeps a second fcxd off this home.
    pub fn gateway_lock(&self) -> PathBuf {
        self.run_dir().join("fcxd.lock")
    }
    /// Where a profile's worker serves (it outlives fcxd; the next fcxd finds
    /// it here).
    pub fn worker_socket(&self, profile: &str) -> PathBuf {
        self.run_dir().join(format!("worker-{profile}.sock"))
    }
    /// Everything one profile keeps.
    pub fn profile_dir(&self, profile: &str) -> PathBuf {
        self.root.join("profiles").join(profile)
    }
    /// A profile's state database (fcx-state).
    pub fn state_db(&self, profile: &str) -> PathBuf {
        self.profile_dir(profile).join("state.db")
    }
    /// The profile's attachment store (fcxd writes it, the worker reads it).
    pub fn media_dir(&self, profile: &str) -> PathBuf {
        self.profile_dir(profile).join(MEDIA_DIR)
    }
    /// A profile's own `CODEX_HOME` (auth = codex-home).
    pub fn codex_home(&self, profile: &str) -> PathBuf {
        self.profile_dir(profile).join("codex-home")
    }
    /// A profile's callback key file.
    pub fn callback_keys(&self, profile: &str) -> PathBuf {
        crate::callback_keys::path_in(&self.profile_dir(profile))
    }
}
