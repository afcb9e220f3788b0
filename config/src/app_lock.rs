//! One profile per app id, across every fcx home of this user: an app's
//! events go to whichever connection the platform picks, so two fcxd
//! serving one app would each see half of them. The lock is an OS file lock
//! (released by the OS when the holder dies, so a crash never leaves it
//! stuck) on a file named after the app id, in a directory shared by all
//! homes: `$FCX_LOCK_DIR`, else `~/.cache/fcx/locks`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::Home;

/// Overrides the shared lock directory (tests give each home its own).
pub const LOCK_DIR_ENV: &str = "FCX_LOCK_DIR";

/// The directory every home's app locks live in.
pub fn lock_dir(home: &Home) -> PathBuf {
    match std::env::var_os(LOCK_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => home.user_home().join(".cache").join("fcx").join("locks"),
    }
}

/// Why an app lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AppLockError {
    /// Another profile (of this home or another) serves the app.
    #[error(
        "app {app_id} is already served by {holder}; an app can be served by one profile at a time: stop that one, or give this profile its own app"
    )]
    Held {
        /// The app.
        app_id: String,
        /// Who holds it, as its holder wrote it ("profile `P` in HOME (fcxd pid N)").
        holder: String,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A held app lock; dropping it releases the app.
#[derive(Debug)]
pub struct AppLock {
    _file: File,
}

/// The lock file's name: the app id where it is plain, else its hex.
fn file_name(app_id: &str) -> String {
    if !app_id.is_empty()
        && app_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        format!("app-{app_id}.lock")
    } else {
        format!("app-x{}.lock", hex::encode(app_id))
    }
}

impl AppLock {
    /// Takes the lock for `app_id` in `dir`, writing `holder` (who holds it,
    /// for the next one's error) into the file.
    pub fn acquire(dir: &Path, app_id: &str, holder: &str) -> Result<Self, AppLockError> {
        let path = dir.join(file_name(app_id));
        let io = |source| AppLockError::Io {
            path: path.clone(),
            source,
        };
        crate::private_dir(dir).map_err(io)?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(AppLockError::Held {
                    app_id: app_id.to_string(),
                    holder: if holder.is_empty() {
                        "another fcxd".to_string()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        f.set_len(0).map_err(io)?;
        f.write_all(holder.as_bytes()).map_err(io)?;
        Ok(AppLock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = AppLock::acquire(dir.path(), "cli_a1", "profile `work` in /h1 (fcxd pid 1)")
            .expect("first");
        let e = AppLock::acquire(dir.path(), "cli_a1", "profile `x` in /h2").expect_err("held");
        let msg = e.to_string();
        assert!(
            msg.contains("app cli_a1 is already served by profile `work` in /h1"),
            "{msg}"
        );
        AppLock::acquire(dir.path(), "cli_other", "y").expect("another app is free");
        drop(first);
        AppLock::acquire(dir.path(), "cli_a1", "profile `x` in /h2").expect("released");
    }

    #[test]
    fn odd_app_ids_make_safe_file_names() {
        assert_eq!(file_name("cli_ab-1"), "app-cli_ab-1.lock");
        assert_eq!(file_name("../x"), "app-x2e2e2f78.lock");
    }
}
