//! A workspace is pinned when it is chosen: its realpath and its identity
//! (device and inode; on Windows the volume serial number and file id,
//! `pin_win`). Every run checks both, so replacing a directory on the way
//! with a symlink, or the workspace itself with another directory, moves no
//! run anywhere else. A workspace must belong to the fcx user and sit where
//! no other user can swap a component of its path (Windows: `win_acl`).

use std::path::{Path, PathBuf};

use crate::policy::PolicyError;

/// What a workspace was when it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pin {
    pub(crate) real: PathBuf,
    /// `device:inode` (Windows: `vol:SERIAL:FILEID`), as stored in
    /// `scope_settings.workspace_id`.
    pub(crate) id: String,
}

/// `device:inode` of `real` (Windows: `vol:SERIAL:FILEID`).
pub(crate) fn identity(real: &Path) -> Result<String, PolicyError> {
    let missing = || PolicyError::Missing(real.display().to_string());
    #[cfg(windows)]
    {
        crate::pin_win::identity(real).map_err(|_| missing())
    }
    #[cfg(not(windows))]
    {
        let meta = std::fs::metadata(real).map_err(|_| missing())?;
        Ok(id_of(&meta))
    }
}

#[cfg(unix)]
fn id_of(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}:{}", meta.dev(), meta.ino())
}

#[cfg(not(any(unix, windows)))]
fn id_of(meta: &std::fs::Metadata) -> String {
    // No stable file identity in std here: creation time stands in.
    let created = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("created:{created}")
}

/// The pin of `real` (already a checked realpath).
pub(crate) fn pin(real: &Path) -> Result<Pin, PolicyError> {
    Ok(Pin {
        real: real.to_path_buf(),
        id: identity(real)?,
    })
}

/// Refuse when `configured` no longer resolves to the pinned realpath, or
/// the directory there is not the pinned one.
pub(crate) fn check(configured: &Path, pinned: &Pin) -> Result<(), PolicyError> {
    let shown = pinned.real.display().to_string();
    let now = std::fs::canonicalize(configured).map_err(|_| PolicyError::Missing(shown.clone()))?;
    if now != pinned.real {
        return Err(PolicyError::Moved {
            path: shown,
            why: format!("it now resolves to {}", now.display()),
        });
    }
    if identity(&now)? != pinned.id {
        return Err(PolicyError::Moved {
            path: shown,
            why: "the directory there was replaced by another one".into(),
        });
    }
    Ok(())
}

/// Refuse a workspace that is not the fcx user's, or whose path runs
/// through a directory another user could swap a component of: one owned by
/// someone other than the fcx user or root, or a world-writable one (a
/// sticky one such as /tmp only when the entry in it is the fcx user's,
/// since the sticky bit keeps others from renaming it).
#[cfg(unix)]
pub(crate) fn check_owner(real: &Path) -> Result<(), PolicyError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    let shown = real.display().to_string();
    let meta = |p: &Path| std::fs::metadata(p).map_err(|_| PolicyError::Missing(shown.clone()));
    let own = meta(real)?;
    if own.uid() != me {
        return Err(PolicyError::Unsafe {
            path: shown.clone(),
            why: format!("it belongs to another user (uid {})", own.uid()),
        });
    }
    let mut child_uid = own.uid();
    let mut dir = real.parent();
    while let Some(d) = dir {
        let m = meta(d)?;
        if m.uid() != me && m.uid() != 0 {
            return Err(PolicyError::Unsafe {
                path: shown.clone(),
                why: format!("{} belongs to another user (uid {})", d.display(), m.uid()),
            });
        }
        let mode = m.permissions().mode();
        let world_writable = mode & 0o002 != 0;
        let sticky = mode & 0o1000 != 0;
        if world_writable && !(sticky && child_uid == me) {
            return Err(PolicyError::Unsafe {
                path: shown.clone(),
                why: format!(
                    "{} is writable by every user, so another user could replace the path",
                    d.display()
                ),
            });
        }
        child_uid = m.uid();
        dir = d.parent();
    }
    Ok(())
}

/// Windows: the same rule over owner SIDs and DACLs (`win_acl`).
#[cfg(windows)]
pub(crate) fn check_owner(real: &Path) -> Result<(), PolicyError> {
    crate::pin_win::check_owner(real)
}

#[cfg(not(any(unix, windows)))]
pub(crate) fn check_owner(_real: &Path) -> Result<(), PolicyError> {
    Ok(())
}

// Symlinks, modes and owners: the Unix checks.
#[cfg(all(test, unix))]
#[path = "pin_tests.rs"]
mod tests;
