//! Windows: the user fcx runs as, and `$FCX_HOME`'s DACL, through Win32.
//! The rules live in `home_acl` (plain functions, tested everywhere).
//! Type-checked only: this has not run on Windows.

use std::io;
use std::path::Path;

use windows_sys::Win32::Foundation::{CloseHandle, ERROR_SUCCESS, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    GetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT, SetNamedSecurityInfoW,
};
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, DACL_SECURITY_INFORMATION, GetAce,
    GetSecurityDescriptorDacl, GetTokenInformation, INHERIT_ONLY_ACE,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, TOKEN_QUERY, TOKEN_USER,
    TokenUser,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

use crate::home_acl::Ace;

/// ACE types (winnt.h) laid out as header, mask, SID: allowed, denied and
/// allowed-callback (a conditional allow, counted as an allow since it may
/// apply). Other types are skipped.
const ACCESS_ALLOWED: u8 = 0;
const ACCESS_DENIED: u8 = 1;
const ACCESS_ALLOWED_CALLBACK: u8 = 9;

/// Closes a handle when dropped.
struct Handle(HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by us and is closed once.
        unsafe {
            CloseHandle(self.0);
        }
    }
}

/// Frees LocalAlloc'ed memory when dropped.
struct Local(*mut core::ffi::c_void);

impl Drop for Local {
    fn drop(&mut self) {
        // SAFETY: allocated by the system with LocalAlloc, freed once.
        unsafe {
            LocalFree(self.0);
        }
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn wide_path(p: &Path) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    p.as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect()
}

/// The current process's user SID as a string (`S-1-5-21-…`).
pub fn current_user_sid() -> io::Result<String> {
    // SAFETY: GetCurrentProcess returns a pseudo-handle, valid always and
    // never closed.
    user_sid_of(unsafe { GetCurrentProcess() })
}

/// The user SID of process `pid`, as a string; an error when the process
/// or its token may not be queried (another user's, usually).
pub fn process_user_sid(pid: u32) -> io::Result<String> {
    // SAFETY: no pointer is passed; a null result is an error.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return Err(io::Error::last_os_error());
    }
    let process = Handle(process);
    user_sid_of(process.0)
}

/// The user SID of the process behind `process` (a handle with at least
/// PROCESS_QUERY_LIMITED_INFORMATION).
fn user_sid_of(process: HANDLE) -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: `process` is a valid process handle; `token` is a valid
    // out-pointer.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let token = Handle(token);
    let mut len: u32 = 0;
    // SAFETY: a size query: no buffer (it fails with
    // ERROR_INSUFFICIENT_BUFFER), `len` receives the size needed.
    unsafe {
        GetTokenInformation(token.0, TokenUser, std::ptr::null_mut(), 0, &mut len);
    }
    if len == 0 {
        return Err(io::Error::last_os_error());
    }
    // u64 words: TOKEN_USER holds pointers and needs their alignment.
    let mut buf = vec![0u64; (len as usize).div_ceil(8)];
    // SAFETY: `buf` has at least `len` bytes, suitably aligned.
    if unsafe { GetTokenInformation(token.0, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) }
        == 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so `buf` starts with a TOKEN_USER whose
    // SID points into `buf` (alive until the end of this function).
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    // SAFETY: the token's user SID, inside `buf`, alive here.
    unsafe { sid_string(sid) }
}

/// One entry of a DACL, as Windows holds it (allow and deny types only).
pub struct RawAce {
    /// An allow entry (else a deny entry).
    pub allow: bool,
    /// Applies only to what is created below, not to the object itself.
    pub inherit_only: bool,
    /// The access mask (winnt.h bits).
    pub mask: u32,
    /// The trustee, as a string SID.
    pub sid: String,
}

/// The allow and deny entries of `dacl`, in order; the workspace check and
/// the home's check each read them under their own rules.
///
/// # Safety
/// `dacl` points to a valid ACL inside a security descriptor that outlives
/// the call.
pub unsafe fn aces_of(dacl: *const ACL) -> io::Result<Vec<RawAce>> {
    // SAFETY: the caller's promise: a valid ACL header.
    let count = unsafe { (*dacl).AceCount };
    let mut out = Vec::with_capacity(usize::from(count));
    for i in 0..u32::from(count) {
        let mut p: *mut core::ffi::c_void = std::ptr::null_mut();
        // SAFETY: `i` is below the ACL's count; `p` is a valid out-pointer.
        if unsafe { GetAce(dacl, i, &mut p) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: every ACE starts with an ACE_HEADER.
        let header = unsafe { std::ptr::read_unaligned(p.cast::<ACE_HEADER>()) };
        let allow = match header.AceType {
            ACCESS_ALLOWED | ACCESS_ALLOWED_CALLBACK => true,
            ACCESS_DENIED => false,
            _ => continue,
        };
        let ace = p.cast::<ACCESS_ALLOWED_ACE>();
        // SAFETY: these types share ACCESS_ALLOWED_ACE's layout: the mask,
        // then the SID starting at `SidStart`, within the ACE.
        let (mask, sid) = unsafe {
            (
                std::ptr::read_unaligned(&raw const (*ace).Mask),
                (&raw const (*ace).SidStart).cast_mut().cast(),
            )
        };
        out.push(RawAce {
            allow,
            inherit_only: u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0,
            mask,
            // SAFETY: the SID inside a valid ACE.
            sid: unsafe { sid_string(sid) }?,
        });
    }
    Ok(out)
}

/// `S-1-…` for a SID.
///
/// # Safety
/// `sid` points to a valid SID.
pub unsafe fn sid_string(sid: PSID) -> io::Result<String> {
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is a valid SID; `text` is a valid out-pointer.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let text = Local(text.cast());
    let p = text.0.cast::<u16>();
    let mut len = 0;
    // SAFETY: on success `text` is a NUL-terminated UTF-16 string.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units before the NUL were just read.
    let units = unsafe { std::slice::from_raw_parts(p, len) };
    Ok(String::from_utf16_lossy(units))
}

/// Give `dir` the home's protected DACL (`home_acl::home_sddl`).
pub(crate) fn protect_home(dir: &Path) -> io::Result<()> {
    let me = current_user_sid()?;
    let sddl = crate::home_acl::home_sddl(&me)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("not a SID: {me}")))?;
    let sddl = wide(&sddl);
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; `sd` is a valid out-pointer.
    if unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        )
    } == 0
    {
        return Err(io::Error::last_os_error());
    }
    let sd = Local(sd);
    let mut present = 0;
    let mut defaulted = 0;
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `sd` is the valid descriptor made above; `dacl` points into
    // it and is used while `sd` lives.
    if unsafe { GetSecurityDescriptorDacl(sd.0, &mut present, &mut dacl, &mut defaulted) } == 0 {
        return Err(io::Error::last_os_error());
    }
    if present == 0 || dacl.is_null() {
        return Err(io::Error::other("the home's descriptor has no DACL"));
    }
    let path = wide_path(dir);
    // SAFETY: `path` is NUL-terminated; `dacl` is valid (above); owner,
    // group and SACL are left alone (null).
    let err = unsafe {
        SetNamedSecurityInfoW(
            path.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    };
    if err != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(err as i32));
    }
    Ok(())
}

/// The DACL of `dir` (`None`: a NULL DACL, everyone may do everything).
pub fn read_dacl(dir: &Path) -> io::Result<Option<Vec<Ace>>> {
    let path = wide_path(dir);
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `path` is NUL-terminated; the out-pointers are ours; `dacl`
    // points into `sd`, freed after its last use.
    let err = unsafe {
        GetNamedSecurityInfoW(
            path.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
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
    if dacl.is_null() {
        return Ok(None);
    }
    // SAFETY: `dacl` is non-null and points into `sd`, alive until `_sd` drops.
    let aces = unsafe { aces_of(dacl) }?;
    // The home counts every entry, inherit-only ones too: they reach the
    // files below it.
    let out = aces
        .into_iter()
        .map(|a| Ace {
            allow: a.allow,
            mask: a.mask,
            sid: a.sid,
        })
        .collect();
    Ok(Some(out))
}
