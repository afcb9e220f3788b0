//! Windows workspace safety, decided from owners and DACLs already read:
//! plain functions, so every rule is tested on any platform (`pin_win`
//! does the Win32 reading, type-checked only).
//!
//! The Unix rule is "the workspace is the fcx user's, and no other user can
//! swap a component of its path". On Windows a path component can be
//! swapped by whoever may delete or rename it (`DELETE` on it, or
//! `FILE_DELETE_CHILD` on its parent), or give themselves that right
//! (`WRITE_DAC`, `WRITE_OWNER`). Creating a new entry (`FILE_ADD_FILE`,
//! `FILE_ADD_SUBDIRECTORY`) replaces no existing one and is not refused:
//! the system drive's root grants it to Authenticated Users by default, so
//! refusing it would refuse every workspace. "Other users" are the groups
//! every local account is in: Everyone, Authenticated Users, BUILTIN\Users
//! and INTERACTIVE; a grant to one named other account is not looked for
//! (the owner check covers directories another account made).
//!
//! Owners: the workspace must be owned by the fcx user's SID, or by
//! BUILTIN\Administrators when fcx itself runs elevated (an elevated
//! administrator's new directories are often owned by that group, and the
//! elevated fcx holds the same rights through it). A directory above it may
//! also belong to SYSTEM, Administrators or TrustedInstaller, the Windows
//! counterparts of root.

use std::io;
use std::path::Path;

use crate::policy::PolicyError;

pub(crate) const EVERYONE: &str = "S-1-1-0";
pub(crate) const AUTHENTICATED_USERS: &str = "S-1-5-11";
pub(crate) const BUILTIN_USERS: &str = "S-1-5-32-545";
pub(crate) const INTERACTIVE: &str = "S-1-5-4";
pub(crate) const SYSTEM: &str = "S-1-5-18";
pub(crate) const ADMINISTRATORS: &str = "S-1-5-32-544";
pub(crate) const TRUSTED_INSTALLER: &str =
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464";

/// Access-mask bits (winnt.h). Creating entries is not refused (see
/// above); the tests grant it.
#[cfg(test)]
pub(crate) const FILE_ADD_FILE: u32 = 0x0002;
#[cfg(test)]
pub(crate) const FILE_ADD_SUBDIRECTORY: u32 = 0x0004;
pub(crate) const FILE_DELETE_CHILD: u32 = 0x0040;
pub(crate) const DELETE: u32 = 0x0001_0000;
pub(crate) const WRITE_DAC: u32 = 0x0004_0000;
pub(crate) const WRITE_OWNER: u32 = 0x0008_0000;
pub(crate) const GENERIC_ALL: u32 = 0x1000_0000;
pub(crate) const GENERIC_WRITE: u32 = 0x4000_0000;
/// What GENERIC_WRITE and GENERIC_ALL mean for a file or directory.
const FILE_GENERIC_WRITE: u32 = 0x0012_0116;
const FILE_ALL_ACCESS: u32 = 0x001F_01FF;

/// One access-control entry of a DACL, as far as these rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ace {
    /// An allow entry (else a deny entry).
    pub(crate) allow: bool,
    /// Inherited by children only: it does not apply to this directory.
    pub(crate) inherit_only: bool,
    pub(crate) mask: u32,
    /// The trustee, as a string SID.
    pub(crate) sid: String,
}

/// A directory's owner and DACL. `dacl: None` is a NULL DACL, which grants
/// every access to everyone (not an empty DACL, which grants none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Security {
    pub(crate) owner: String,
    pub(crate) dacl: Option<Vec<Ace>>,
}

fn is_everybody(sid: &str) -> bool {
    [EVERYONE, AUTHENTICATED_USERS, BUILTIN_USERS, INTERACTIVE].contains(&sid)
}

fn name_of(sid: &str) -> &str {
    match sid {
        EVERYONE => "Everyone",
        AUTHENTICATED_USERS => "Authenticated Users",
        BUILTIN_USERS => "BUILTIN\\Users",
        INTERACTIVE => "INTERACTIVE",
        SYSTEM => "SYSTEM",
        ADMINISTRATORS => "BUILTIN\\Administrators",
        TRUSTED_INSTALLER => "TrustedInstaller",
        other => other,
    }
}

/// Generic rights as the file system maps them.
fn mapped(mask: u32) -> u32 {
    let mut m = mask;
    if m & GENERIC_ALL != 0 {
        m |= FILE_ALL_ACCESS;
    }
    if m & GENERIC_WRITE != 0 {
        m |= FILE_GENERIC_WRITE;
    }
    m
}

/// The rights that let another user swap this directory (and, for a
/// directory above the workspace, the entry below it).
fn swap_rights(parent: bool) -> u32 {
    let own = DELETE | WRITE_DAC | WRITE_OWNER;
    if parent { own | FILE_DELETE_CHILD } else { own }
}

fn describe(rights: u32) -> String {
    let mut what = Vec::new();
    if rights & DELETE != 0 {
        what.push("delete or rename it");
    }
    if rights & FILE_DELETE_CHILD != 0 {
        what.push("delete or rename what it holds");
    }
    if rights & WRITE_DAC != 0 {
        what.push("change its permissions");
    }
    if rights & WRITE_OWNER != 0 {
        what.push("take ownership of it");
    }
    what.join(", ")
}

/// Whether every-user groups may swap this directory: the reason, naming
/// the group and what it may do. DACL order is kept the way Windows reads
/// it: a right an earlier deny entry took away is not granted by a later
/// allow. Only a deny for Everyone or Authenticated Users counts, the
/// groups every signed-in account carries: BUILTIN\Users and INTERACTIVE
/// leave some out (a service or network logon is not INTERACTIVE).
pub(crate) fn others_may_swap(dacl: Option<&[Ace]>, parent: bool) -> Option<String> {
    let risky = swap_rights(parent);
    let Some(aces) = dacl else {
        return Some(format!(
            "it has no access control list, so every user may {} (a FAT or exFAT volume?)",
            describe(risky)
        ));
    };
    let mut denied = 0u32;
    let mut found: Option<(&str, u32)> = None;
    for ace in aces
        .iter()
        .filter(|a| !a.inherit_only && is_everybody(&a.sid))
    {
        let mask = mapped(ace.mask);
        if !ace.allow {
            if [EVERYONE, AUTHENTICATED_USERS].contains(&ace.sid.as_str()) {
                denied |= mask;
            }
            continue;
        }
        let granted = mask & risky & !denied;
        if granted != 0 {
            found = Some(match found {
                Some((sid, had)) => (sid, had | granted),
                None => (ace.sid.as_str(), granted),
            });
        }
    }
    found.map(|(sid, rights)| format!("{} may {}", name_of(sid), describe(rights)))
}

/// What is wrong with `owner` owning the workspace (`parent: false`) or a
/// directory above it, for a process running as `me`.
pub(crate) fn owner_problem(owner: &str, me: &str, parent: bool, elevated: bool) -> Option<String> {
    let fine = owner == me
        || (owner == ADMINISTRATORS && (elevated || parent))
        || (parent && [SYSTEM, TRUSTED_INSTALLER].contains(&owner));
    (!fine).then(|| format!("it belongs to another account ({})", name_of(owner)))
}

/// The whole check over `real` (a realpath) and every directory above it,
/// with `read` giving each one's owner and DACL.
pub(crate) fn check_tree(
    real: &Path,
    me: &str,
    elevated: bool,
    mut read: impl FnMut(&Path) -> io::Result<Security>,
) -> Result<(), PolicyError> {
    let shown = real.display().to_string();
    let mut dir = Some(real);
    while let Some(d) = dir {
        let parent = d != real;
        let sec = read(d).map_err(|e| PolicyError::Unsafe {
            path: shown.clone(),
            why: format!(
                "cannot read the owner and permissions of {}: {e}",
                d.display()
            ),
        })?;
        let problem = owner_problem(&sec.owner, me, parent, elevated).or_else(|| {
            others_may_swap(sec.dacl.as_deref(), parent)
                .map(|w| format!("{w}, so another user could replace the path"))
        });
        if let Some(why) = problem {
            return Err(PolicyError::Unsafe {
                path: shown,
                why: if parent {
                    format!("{}: {why}", d.display())
                } else {
                    why
                },
            });
        }
        dir = d.parent();
    }
    Ok(())
}

/// The pin's identity: the volume serial number and the 128-bit file id
/// (a 64-bit index is given as its 8 little-endian bytes, zero-extended,
/// which is how NTFS reports it in the 128-bit form too).
pub(crate) fn identity_string(volume_serial: u64, file_id: [u8; 16]) -> String {
    let id: String = file_id.iter().map(|b| format!("{b:02x}")).collect();
    format!("vol:{volume_serial:016x}:{id}")
}

/// The 128-bit form of a 64-bit file index (`nFileIndexHigh/Low`).
pub(crate) fn index_as_id(high: u32, low: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&((u64::from(high) << 32) | u64::from(low)).to_le_bytes());
    id
}

#[cfg(test)]
#[path = "win_acl_tests.rs"]
mod tests;
