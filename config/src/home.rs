//! The `$FCX_HOME` directory layout (default `~/.fcx`).
//!
//! ```text
//! config.toml
//! profiles/<name>/state.db       the worker's journal and catalog
//! profiles/<name>/codex-home/    the profile's Codex login and config (auth.json, config.toml)
//! profiles/<name>/codex-homes/<digest>/  CODEX_HOME of one chat's Codex children (0700)
//! profiles/<name>/callback-keys.json  card-button signing keys (0600)
//! profiles/<name>/media/         downloaded attachments by content hash (0700)
//! profiles/<name>/outgoing/      files staged by the worker for the chat (0600)
//! logs/                          fcxd.log, worker-<name>.log (JSON lines)
//! run/                           fcxd.sock, worker-<name>.sock, fcxd.lock (0700)
//! ```

use std::path::{Path, PathBuf};

/// The attachment store's name inside a profile's directory.
pub const MEDIA_DIR: &str = "media";
/// Where the per-scope Codex homes live inside a profile's directory.
const SCOPE_HOMES_DIR: &str = "codex-homes";

/// 128 bits of SHA-256 of a continuity key, in hex: the name of its Codex
/// home.
fn scope_digest(continuity: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(continuity.as_bytes());
    hex::encode(&d[..16])
}

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
    /// Everything one profile keeps, under `profiles/<name>/`.
    pub fn profile(&self, profile: &str) -> ProfilePaths {
        ProfilePaths {
            dir: self.root.join("profiles").join(profile),
        }
    }
}

/// The paths inside one profile's directory (`profiles/<name>/`), from
/// [`Home::profile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePaths {
    dir: PathBuf,
}

impl ProfilePaths {
    /// The profile's directory itself.
    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }
    /// The profile's state database (fcx-state).
    pub fn state_db(&self) -> PathBuf {
        self.dir.join("state.db")
    }
    /// The profile's attachment store (fcxd writes it, the worker reads it).
    pub fn media_dir(&self) -> PathBuf {
        self.dir.join(MEDIA_DIR)
    }
    /// The profile's own Codex home: where `fcxctl codex login` puts the
    /// login (auth = codex-home) and the operator puts `config.toml`. Runs
    /// do not use it as their `CODEX_HOME`: see [`Self::scope_codex_home`].
    pub fn codex_home(&self) -> PathBuf {
        self.dir.join("codex-home")
    }
    /// The `CODEX_HOME` of one continuity scope's Codex children (its
    /// threads, Codex's stores, memories): named by a digest of the scope
    /// key, so a chat id never becomes a path. Beside `codex-home/`, not
    /// in it, so that one can be shown to a child without the others.
    pub fn scope_codex_home(&self, continuity: &str) -> PathBuf {
        self.dir
            .join(SCOPE_HOMES_DIR)
            .join(scope_digest(continuity))
    }
    /// The profile's callback key file.
    pub fn callback_keys(&self) -> PathBuf {
        crate::callback_keys::path_in(&self.dir)
    }
    /// Where the worker stages files for the chat (`/sendfile`, Codex's
    /// outbox) and the gateway picks them up.
    pub fn outgoing_dir(&self) -> PathBuf {
        outgoing_in(&self.dir)
    }
}

/// [`ProfilePaths::outgoing_dir`] for a profile directory already known.
pub fn outgoing_in(profile_dir: &Path) -> PathBuf {
    profile_dir.join("outgoing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_keeps_everything_under_its_own_directory() {
        let home = Home::with_user_home("/fcx", PathBuf::from("/u"));
        let p = home.profile("work");
        assert_eq!(p.dir(), PathBuf::from("/fcx/profiles/work"));
        assert_eq!(p.state_db(), PathBuf::from("/fcx/profiles/work/state.db"));
        assert_eq!(p.media_dir(), PathBuf::from("/fcx/profiles/work/media"));
        assert_eq!(
            p.codex_home(),
            PathBuf::from("/fcx/profiles/work/codex-home")
        );
        assert_eq!(
            p.outgoing_dir(),
            outgoing_in(&PathBuf::from("/fcx/profiles/work"))
        );
        assert!(p.callback_keys().starts_with("/fcx/profiles/work"));
        assert_ne!(home.profile("other"), p);
    }

    #[test]
    fn each_scope_has_its_own_codex_home_named_by_a_digest() {
        let p = Home::with_user_home("/fcx", PathBuf::from("/u")).profile("work");
        let a = p.scope_codex_home("chat:oc_a");
        assert_eq!(
            a,
            PathBuf::from("/fcx/profiles/work/codex-homes/6bca488d52b706fa5cbede222dee65af")
        );
        assert_eq!(a, p.scope_codex_home("chat:oc_a"), "stable");
        assert_ne!(a, p.scope_codex_home("chat:oc_b"));
        assert_ne!(a, p.scope_codex_home("doc:d1"));
        // Not inside the profile's own Codex home, so that one can be kept
        // visible alone.
        assert!(!a.starts_with(p.codex_home()));
        // A key with slashes or dots stays one path component.
        let odd = p.scope_codex_home("chat:../../x/y");
        assert_eq!(odd.parent(), a.parent());
    }
}
