//! `$FCX_HOME`'s permissions on Windows, decided from a DACL already read:
//! plain functions, tested on every platform (`home_acl_win` does the
//! Win32 calls, type-checked only: it has not run on Windows).
//!
//! A directory made under `%USERPROFILE%` inherits a DACL private to its
//! user, but one made elsewhere (`C:\fcx`) inherits the drive's, which lets
//! every signed-in user read it: secrets, state.db, logs. So fcx gives the
//! home a protected DACL (nothing inherited from the parent) with three
//! entries, each inherited by everything below (OICI): the user fcx runs
//! as, SYSTEM and BUILTIN\Administrators (the Windows counterparts of root,
//! which can take any file anyway).

use std::path::Path;

/// LocalSystem.
pub const SYSTEM_SID: &str = "S-1-5-18";
/// BUILTIN\Administrators.
pub const ADMINISTRATORS_SID: &str = "S-1-5-32-544";

/// Whether `sid` is a string SID (`S-1-…`, decimal parts), so nothing else
/// is ever spliced into an SDDL string.
pub fn is_string_sid(sid: &str) -> bool {
    let mut parts = sid.split('-');
    parts.next() == Some("S")
        && parts.next() == Some("1")
        && sid.split('-').count() >= 3
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The home's descriptor in SDDL: `D:P` a protected DACL, then full file
/// access (`FA`) inherited by files and directories (`OICI`) for `user`,
/// SYSTEM (`SY`) and BUILTIN\Administrators (`BA`). `None` when `user` is
/// not a string SID.
pub fn home_sddl(user: &str) -> Option<String> {
    is_string_sid(user).then(|| format!("D:P(A;OICI;FA;;;{user})(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"))
}

/// One access-control entry, as far as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ace {
    /// An allow entry (else a deny entry).
    pub allow: bool,
    /// The access mask (winnt.h bits).
    pub mask: u32,
    /// The trustee, as a string SID.
    pub sid: String,
}

/// What the home's DACL lets others do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeAcl {
    /// Only the user, SYSTEM and Administrators are granted anything.
    Private,
    /// A NULL DACL: everyone may do everything (a FAT or exFAT volume?).
    NoDacl,
    /// These SIDs are granted some access, in DACL order, once each.
    Others(Vec<String>),
}

/// Judge the home's DACL (`None`: a NULL DACL) for a process running as
/// `me`. Every allow entry counts, inherit-only ones too: those grant
/// access to the files below (secrets, state.db). Deny entries take
/// nothing away here: the fix is to remove the grant, not to rely on them.
pub fn judge_home_acl(dacl: Option<&[Ace]>, me: &str) -> HomeAcl {
    let Some(aces) = dacl else {
        return HomeAcl::NoDacl;
    };
    let mut others: Vec<String> = Vec::new();
    for a in aces.iter().filter(|a| a.allow && a.mask != 0) {
        let ours = a.sid == me || a.sid == SYSTEM_SID || a.sid == ADMINISTRATORS_SID;
        if !ours && !others.contains(&a.sid) {
            others.push(a.sid.clone());
        }
    }
    if others.is_empty() {
        HomeAcl::Private
    } else {
        HomeAcl::Others(others)
    }
}

/// A readable name for the SIDs a stray grant usually goes to.
pub fn sid_name(sid: &str) -> &str {
    match sid {
        "S-1-1-0" => "Everyone",
        "S-1-5-11" => "Authenticated Users",
        "S-1-5-32-545" => "BUILTIN\\Users",
        "S-1-5-4" => "INTERACTIVE",
        "S-1-3-0" => "CREATOR OWNER",
        SYSTEM_SID => "SYSTEM",
        ADMINISTRATORS_SID => "BUILTIN\\Administrators",
        other => other,
    }
}

/// The `icacls` command that makes `root` private to `me`: drop what is
/// inherited, grant the three full control for everything below, remove
/// every other grant found.
pub fn home_acl_fix(root: &Path, me: &str, others: &[String]) -> String {
    let mut cmd = format!(
        "icacls \"{}\" /inheritance:r /grant:r \"*{me}:(OI)(CI)F\" \"*{SYSTEM_SID}:(OI)(CI)F\" \"*{ADMINISTRATORS_SID}:(OI)(CI)F\"",
        root.display()
    );
    for sid in others.iter().filter(|s| is_string_sid(s)) {
        cmd.push_str(&format!(" /remove:g \"*{sid}\""));
    }
    cmd
}

#[cfg(test)]
#[path = "home_acl_tests.rs"]
mod tests;
