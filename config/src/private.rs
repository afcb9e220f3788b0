//! Keeping fcx's files private: a 0077 umask for fcx's own processes, and
//! `$FCX_HOME` and `profiles/` at 0700 (on Windows: a private DACL).
//!
//! The Codex child gets the operator's own umask back (files it writes in the
//! workspace should look like the operator's), so the mask a process started
//! with is remembered, and fcxd hands it to its workers in
//! [`INHERITED_UMASK_ENV`] since they start under fcxd's private one.

use std::sync::OnceLock;

/// The umask fcxd started with, in octal, for the workers it starts.
pub const INHERITED_UMASK_ENV: &str = "FCX_INHERITED_UMASK";

static INHERITED: OnceLock<u32> = OnceLock::new();

/// Set the process umask to 0077 (new files 0600, directories 0700) and
/// remember the one it replaces. Call first thing in `main`.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        use nix::sys::stat::{Mode, umask};
        // mode_t is u32 on Linux and u16 on macOS.
        #[allow(clippy::useless_conversion)]
        let old = u32::from(umask(Mode::from_bits_truncate(0o077)).bits());
        let inherited = std::env::var(INHERITED_UMASK_ENV)
            .ok()
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .filter(|m| *m <= 0o777)
            .unwrap_or(old);
        let _ = INHERITED.set(inherited);
    }
}

/// Make this process's memory and `/proc/PID/environ` unreadable to other
/// processes of the same user (Linux: not dumpable), so a command Codex runs
/// without a sandbox cannot lift secrets from fcxd or a worker. A no-op
/// elsewhere. Children are dumpable again after exec.
pub fn not_dumpable() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        // Keep going: this is defence in depth, not a precondition.
        eprintln!("fcx: cannot mark the process not dumpable: {e}");
    }
}

/// The umask the operator started fcx with (`None` before
/// [`restrict_umask`], and on Windows).
pub fn inherited_umask() -> Option<u32> {
    INHERITED.get().copied()
}

/// Create `dir` if needed and make it 0700.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

impl crate::Home {
    /// `$FCX_HOME` and `profiles/` exist and are private to the owner: on
    /// Windows the home gets a protected DACL everything below inherits
    /// (`home_acl`).
    pub fn ensure_private(&self) -> std::io::Result<()> {
        private_dir(self.root())?;
        #[cfg(windows)]
        crate::home_acl_win::protect_home(self.root())?;
        private_dir(&self.root().join("profiles"))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_can_be_made_not_dumpable() {
        not_dumpable();
        assert!(!nix::sys::prctl::get_dumpable().expect("get"));
    }

    #[test]
    fn new_files_are_private_and_the_home_is_0700() {
        restrict_umask();
        assert!(inherited_umask().is_some());
        let d = tempfile::tempdir().expect("tempdir");
        let home = crate::Home::new(d.path().join("fcx"));
        std::fs::create_dir_all(home.root()).expect("mkdir");
        std::fs::set_permissions(home.root(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        home.ensure_private().expect("private");
        for p in [home.root().to_path_buf(), home.root().join("profiles")] {
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", p.display());
        }
        let f = home.root().join("f");
        std::fs::write(&f, "x").expect("write");
        let mode = std::fs::metadata(&f).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "new file readable by others: {mode:o}");
    }
}
