//! Windows: a workspace's identity, owner and DACLs, read through Win32.
//! The rules live in `win_acl` (plain functions, tested everywhere); this
//! only reads. Every directory is opened with `FILE_FLAG_BACKUP_SEMANTICS`
//! (the only way to open a directory) and `FILE_FLAG_OPEN_REPARSE_POINT`:
//! the paths here are realpaths, so a junction or symbolic link found at
//! one now was put there since, and must be judged as itself, not as
//! whatever it points to. Type-checked only: this has not run on Windows.

use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{ERROR_SUCCESS, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_FILE_OBJECT};
use windows_sys::Win32::Security::{
    ACL, CheckTokenMembership, CreateWellKnownSid, DACL_SECURITY_INFORMATION,
    OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, WinBuiltinAdministratorsSid,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
    FILE_ID_INFO, FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    FileIdInfo, GetFileInformationByHandle, GetFileInformationByHandleEx, READ_CONTROL,
};

use crate::policy::PolicyError;
use crate::win_acl::{self, Ace, Security};

/// The largest SID (SECURITY_MAX_SID_SIZE, 68 bytes), in u32 words for
/// the alignment a SID needs.
const MAX_SID_WORDS: usize = 17;

fn open_dir(p: &Path, access: u32) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .access_mode(access)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(p)
}

fn raw(f: &std::fs::File) -> HANDLE {
    f.as_raw_handle().cast()
}

/// The volume serial number and file id of `real`: the 128-bit id where
/// the file system has one (`FileIdInfo`: NTFS, ReFS), else the 64-bit
/// index. A volume always answers the same way, so a pin compares like
/// with like.
pub(crate) fn identity(real: &Path) -> io::Result<String> {
    let f = open_dir(real, FILE_READ_ATTRIBUTES)?;
    let mut info = FILE_ID_INFO::default();
    // SAFETY: the handle is open for the call; `info` is a FILE_ID_INFO
    // of ours and its size is passed.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            raw(&f),
            FileIdInfo,
            (&raw mut info).cast(),
            std::mem::size_of::<FILE_ID_INFO>() as u32,
        )
    } != 0;
    // A file system without 128-bit ids reports zero there.
    if ok && info.FileId.Identifier != [0; 16] {
        return Ok(win_acl::identity_string(
            info.VolumeSerialNumber,
            info.FileId.Identifier,
        ));
    }
    let mut by = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: the handle is open; `by` is a valid out-pointer.
    if unsafe { GetFileInformationByHandle(raw(&f), &mut by) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(win_acl::identity_string(
        u64::from(by.dwVolumeSerialNumber),
        win_acl::index_as_id(by.nFileIndexHigh, by.nFileIndexLow),
    ))
}

/// Refuses a workspace that is not the fcx user's, or whose path another
/// user could swap a component of (the rules: `win_acl`).
pub(crate) fn check_owner(real: &Path) -> Result<(), PolicyError> {
    let me = fcx_ipc::current_user_sid().map_err(|e| PolicyError::Unsafe {
        path: real.display().to_string(),
        why: format!("cannot tell which account fcx runs as: {e}"),
    })?;
    win_acl::check_tree(real, &me, elevated(), security_of)
}

/// Whether this process runs with the Administrators group enabled
/// (elevated); a filtered administrator's token has it deny-only.
fn elevated() -> bool {
    let mut sid = [0u32; MAX_SID_WORDS];
    let mut len = std::mem::size_of_val(&sid) as u32;
    // SAFETY: `sid` has `len` bytes, aligned for a SID; no domain SID is
    // needed for a BUILTIN group.
    if unsafe {
        CreateWellKnownSid(
            WinBuiltinAdministratorsSid,
            std::ptr::null_mut(),
            sid.as_mut_ptr().cast(),
            &mut len,
        )
    } == 0
    {
        return false;
    }
    let mut member = 0;
    // SAFETY: a null token means this thread's (or process's) token; `sid`
    // now holds a valid SID.
    if unsafe { CheckTokenMembership(std::ptr::null_mut(), sid.as_mut_ptr().cast(), &mut member) }
        == 0
    {
        return false;
    }
    member != 0
}

/// Frees what a security call allocated with LocalAlloc.
struct Local(*mut core::ffi::c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: allocated by the system for us, freed once here.
            unsafe {
                LocalFree(self.0);
            }
        }
    }
}

/// The owner and DACL of the directory `p` (not of what a link there
/// points to).
fn security_of(p: &Path) -> io::Result<Security> {
    let f = open_dir(p, READ_CONTROL)?;
    let mut owner: PSID = std::ptr::null_mut();
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the handle is open with READ_CONTROL; the out-pointers are
    // ours; `owner` and `dacl` point into `sd`, freed after their last use.
    let err = unsafe {
        GetSecurityInfo(
            raw(&f),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if err != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(err as i32));
    }
    let _sd = Local(sd);
    if owner.is_null() {
        return Err(io::Error::other("the directory has no owner"));
    }
    // SAFETY: a non-null owner SID inside `sd`, alive until `_sd` drops.
    let owner = unsafe { fcx_config::sid_string(owner) }?;
    // A null DACL (no DACL at all) grants everyone everything.
    let dacl = if dacl.is_null() {
        None
    } else {
        Some(aces_of(dacl)?)
    };
    Ok(Security { owner, dacl })
}

/// The entries of `dacl` (valid, inside a live security descriptor).
fn aces_of(dacl: *const ACL) -> io::Result<Vec<Ace>> {
    // SAFETY: `dacl` is non-null and inside the caller's live descriptor.
    let raw = unsafe { fcx_config::aces_of(dacl) }?;
    Ok(raw
        .into_iter()
        .map(|a| Ace {
            allow: a.allow,
            inherit_only: a.inherit_only,
            mask: a.mask,
            sid: a.sid,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_of_ours_passes_and_keeps_its_identity() {
        let d = tempfile::tempdir().expect("tempdir");
        let ws = d.path().join("proj");
        std::fs::create_dir(&ws).expect("mkdir");
        let real = std::fs::canonicalize(&ws).expect("real");
        let id = identity(&real).expect("identity");
        assert!(id.starts_with("vol:"), "{id}");
        assert_eq!(identity(&real).expect("again"), id);
        std::fs::remove_dir(&ws).expect("rm");
        std::fs::create_dir(d.path().join("other")).expect("mkdir");
        std::fs::rename(d.path().join("other"), &ws).expect("swap");
        assert_ne!(identity(&real).expect("swapped"), id);
        let sec = security_of(&real).expect("security");
        assert_eq!(sec.owner, fcx_ipc::current_user_sid().expect("sid"));
    }
}
