//! Who may open fcx's named pipes (Windows), and what they are called.
//!
//! A named pipe created without a security descriptor gets the default one,
//! which grants read access to Everyone and the anonymous account
//! ("Named Pipe Security and Access Rights", Win32 docs), so any local user
//! could open a worker's or fcxd's pipe. Ours gets a protected DACL with one
//! entry: generic-all for the SID of the user fcx runs as. That entry also
//! carries `FILE_CREATE_PIPE_INSTANCE`, which the docs require of whoever
//! creates a further instance of an existing pipe: fcx's own listener can
//! (it keeps creating instances to accept), another user cannot add an
//! instance to our pipe and answer in our place.
//!
//! The rest is `interprocess`'s doing (checked in its 2.4 source): the first
//! instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`, so when another
//! process created the name first, our bind fails (access denied) instead of
//! joining its pipe; later instances reuse our descriptor; remote clients
//! are rejected (`PIPE_REJECT_REMOTE_CLIENTS`).
//!
//! Pipe names live in one machine-wide namespace, so while fcxd or a worker
//! is down another local user may create the name first; a client (fcxctl,
//! fcxd reattaching) would then talk to that pipe. So `dial` asks who serves
//! it (`GetNamedPipeServerProcessId`, through interprocess's `peer_creds`)
//! and sends nothing, the key included, unless that process's user SID is
//! ours: [`process_user_sid`]. A process whose token we may not query
//! (another user's) is refused the same way. Type-checked only: this has not
//! run on Windows. Same-user processes, the Codex child included, can open
//! the pipe and read the key file: Windows has no counterpart of the Linux
//! namespace that hides `$FCX_HOME` (README).

use std::path::Path;

/// The pipe for a socket path: `\\.\pipe\fcx-HASH-STEM`, where HASH is a
/// 64-bit FNV-1a of the whole path, so two `FCX_HOME`s never share a pipe,
/// and STEM is the file stem, for people reading a pipe list. Windows caps
/// a pipe's full name at 256 characters: the stem is cut to keep within it.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn pipe_name(path: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.to_string_lossy().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        // A backslash would start a path component inside the pipe name.
        .chars()
        .map(|c| if c == '\\' { '_' } else { c })
        .take(MAX_STEM)
        .collect();
    format!(r"\\.\pipe\fcx-{h:016x}-{stem}")
}

/// Characters of the stem: `\\.\pipe\` (9) + `fcx-` (4) + 16 hex + `-` (1)
/// + stem stays within the 256 the docs allow.
const MAX_STEM: usize = 256 - 9 - 4 - 16 - 1;

/// The descriptor, in SDDL, that lets `sid` alone open a pipe: `D:P` is a
/// protected DACL (nothing inherited), `(A;;GA;;;SID)` allows generic-all to
/// that SID; with no other entry everyone else is denied. `None` when `sid`
/// is not a string SID, so nothing else is ever spliced into the SDDL.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn sddl_for(sid: &str) -> Option<String> {
    fcx_config::home_acl::is_string_sid(sid).then(|| format!("D:P(A;;GA;;;{sid})"))
}

#[cfg(windows)]
pub use win::current_user_sid;
#[cfg(windows)]
pub(crate) use win::{current_user_only, process_user_sid};

#[cfg(windows)]
mod win {
    use std::io;

    use interprocess::os::windows::security_descriptor::SecurityDescriptor;
    use widestring::U16CString;

    /// The security descriptor for a new pipe: the current user, nobody else.
    pub(crate) fn current_user_only() -> io::Result<SecurityDescriptor> {
        let sid = current_user_sid()?;
        let sddl = super::sddl_for(&sid).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("not a SID: {sid}"))
        })?;
        let wide = U16CString::from_str(&sddl)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        SecurityDescriptor::deserialize(&wide)
    }

    pub use fcx_config::current_user_sid;
    pub(crate) use fcx_config::process_user_sid;

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_descriptor_names_the_current_user_alone() {
            let sid = current_user_sid().expect("sid");
            assert!(sid.starts_with("S-1-"), "{sid}");
            current_user_only().expect("a valid descriptor");
            assert_eq!(process_user_sid(std::process::id()).expect("own sid"), sid);
        }
    }
}

#[cfg(test)]
#[path = "pipe_acl_tests.rs"]
mod tests;
