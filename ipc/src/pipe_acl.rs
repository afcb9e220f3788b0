//! Who may open fcx's named pipes (Windows): the current user only.
//!
//! A named pipe created without a security descriptor gets the default one,
//! which lets Everyone (and the anonymous account) open it for reading, so
//! any local user could reach a worker's or fcxd's pipe and try it. Ours
//! gets a protected DACL with one entry: full access for the SID of the user
//! fcx runs as. The first instance is created with
//! `FILE_FLAG_FIRST_PIPE_INSTANCE` (interprocess does that for a new
//! listener), so a process that created the name first (to impersonate the
//! service) makes our bind fail instead of sharing the name; remote clients
//! are rejected (`PIPE_REJECT_REMOTE_CLIENTS`, interprocess's default).

use std::io;

use interprocess::os::windows::security_descriptor::SecurityDescriptor;
use widestring::{U16CStr, U16CString};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
use windows_sys::Win32::Security::{GetTokenInformation, TOKEN_QUERY, TOKEN_USER, TokenUser};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// The security descriptor for a new pipe: the current user, nobody else.
pub(crate) fn current_user_only() -> io::Result<SecurityDescriptor> {
    let sid = current_user_sid()?;
    // D:P — a protected DACL (nothing inherited); A;;GA;;;SID — allow
    // generic-all to that SID. No other entry: everyone else is denied.
    let sddl = format!("D:P(A;;GA;;;{sid})");
    let wide = U16CString::from_str(&sddl)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    SecurityDescriptor::deserialize(&wide)
}

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

/// The current process's user SID as a string (`S-1-5-21-…`).
fn current_user_sid() -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: GetCurrentProcess returns a pseudo-handle; `token` is a valid
    // out-pointer.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let token = Handle(token);
    let mut len: u32 = 0;
    // SAFETY: a size query: no buffer, `len` receives the size needed.
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
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is valid (above); `text` is a valid out-pointer.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success `text` is a NUL-terminated string allocated with
    // LocalAlloc, freed once here after copying it.
    let out = unsafe { U16CStr::from_ptr_str(text) }.to_string_lossy();
    // SAFETY: see above; `text` is not used after this.
    unsafe {
        LocalFree(text.cast());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_names_the_current_user_alone() {
        let sid = current_user_sid().expect("sid");
        assert!(sid.starts_with("S-1-"), "{sid}");
        current_user_only().expect("a valid descriptor");
    }
}
