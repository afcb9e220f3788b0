//! Windows: a process's identity (its creation time) and terminating it.
//!
//! A pid is valid "from the time the process is created until the process
//! has been terminated" and may be reused once every handle to it is closed
//! (Win32 docs, "Process Handles and Identifiers"), so a pid alone does not
//! name a process. Everything here works on one process handle: the
//! creation time and the running state are read through it and, for
//! [`terminate`], the same handle is the one terminated, so no other process
//! can take the pid between the check and the kill. Type-checked only: this
//! has not run on Windows.

use std::io;

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_INVALID_PARAMETER, FILETIME, HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
    PROCESS_TERMINATE, TerminateProcess, WaitForSingleObject,
};

use crate::registry::{TerminateError, check_same};

/// The exit code a terminated process gets (what std's `Child::kill` uses).
const KILLED_EXIT_CODE: u32 = 1;

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

/// Opens `pid` with `access` (plus what [`creation_if_running`] needs).
fn open(pid: u32, access: u32) -> io::Result<Handle> {
    // SAFETY: no pointer is passed; a null result is an error.
    let h = unsafe {
        OpenProcess(
            access | PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE,
            0,
            pid,
        )
    };
    if h.is_null() {
        return Err(io::Error::last_os_error());
    }
    Ok(Handle(h))
}

/// The creation time of the process behind `h` (100 ns units since 1601),
/// `None` once it has exited: an exited process stays openable while anyone
/// holds a handle to it, so "openable" is not "running".
fn creation_if_running(h: &Handle) -> io::Result<Option<u64>> {
    // SAFETY: `h` is a valid process handle with SYNCHRONIZE; a zero
    // timeout only polls.
    match unsafe { WaitForSingleObject(h.0, 0) } {
        WAIT_TIMEOUT => {}
        WAIT_OBJECT_0 => return Ok(None),
        _ => return Err(io::Error::last_os_error()),
    }
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: `h` has PROCESS_QUERY_LIMITED_INFORMATION; the four pointers
    // are valid FILETIMEs of ours.
    if unsafe { GetProcessTimes(h.0, &mut created, &mut exited, &mut kernel, &mut user) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(
        (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime),
    ))
}

/// The creation time of `pid` while it runs; `None` when it does not exist,
/// has exited, or may not be opened (another user's process: not ours).
pub(crate) fn running_since(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let h = open(pid, 0).ok()?;
    creation_if_running(&h).ok().flatten()
}

/// See [`crate::registry::terminate`].
pub(crate) fn terminate(pid: u32, recorded: u64) -> Result<(), TerminateError> {
    let os = |source| TerminateError::Os { pid, source };
    if pid == 0 {
        return Err(TerminateError::Gone(pid));
    }
    let h = match open(pid, PROCESS_TERMINATE) {
        Ok(h) => h,
        // What OpenProcess answers for a pid no process has.
        Err(e) if e.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) => {
            return Err(TerminateError::Gone(pid));
        }
        Err(e) => return Err(os(e)),
    };
    check_same(pid, recorded, creation_if_running(&h).map_err(os)?)?;
    // SAFETY: `h` is a valid process handle with PROCESS_TERMINATE, and is
    // the very process whose creation time was just compared.
    if unsafe { TerminateProcess(h.0, KILLED_EXIT_CODE) } == 0 {
        return Err(os(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_wrong_start_time_is_not_terminated() {
        let me = std::process::id();
        let since = running_since(me).expect("this process runs");
        assert!(since > 0);
        // A recycled pid: the creation time differs, nothing happens.
        assert!(matches!(
            terminate(me, since + 1),
            Err(TerminateError::Reused(_))
        ));
        assert!(matches!(
            terminate(me, 0),
            Err(TerminateError::Unrecorded(_))
        ));
    }
}
