//! Secret environment variables, read once when fcxd or a worker starts and
//! then taken out of the process's environment.
//!
//! An `env:VAR` reference reads the process environment, and the
//! environment stays readable for the life of the process (on Linux in
//! `/proc/PID/environ`, on macOS through `ps -E`), by any code that runs as
//! the fcx user. So fcxd and the workers read every variable the config
//! names (and [`KNOWN`]) first thing in `main`, keep the values in memory
//! and remove the variables, wiping their text from the block the process
//! was started with. Later `env:` reads (a token refresh, a run, a reload)
//! are answered from that copy; a variable a reloaded config names for the
//! first time was never read, so it is an error that says to restart.
//!
//! Changing the environment is only sound while no other thread exists
//! (Rust 2024 makes `remove_var` unsafe): [`take`] is `unsafe` and belongs
//! before the async runtime is built.
//!
//! Per platform:
//! - Linux (checked by the tests): the text is overwritten in the block the
//!   kernel placed, which is what `/proc/PID/environ` reads.
//! - macOS: the same code, through `_NSGetEnviron`; the strings `ps -E`
//!   (`KERN_PROCARGS2`) reads are the ones overwritten. Compiled only: never
//!   run on a Mac.
//! - Windows: the variables are removed (`SetEnvironmentVariableW`), not
//!   overwritten. The block other processes read is the one in the PEB;
//!   `GetEnvironmentStringsW` hands out a copy and its docs say to treat the
//!   memory as read-only, and reaching the PEB's own block means the
//!   undocumented `RTL_USER_PROCESS_PARAMETERS` layout. Whether removal
//!   leaves the old text behind the block's new end is not documented
//!   either (needs a Windows machine to look). It matters little there:
//!   the only readers of another process's environment are processes that
//!   may open it with `PROCESS_VM_READ` (the same user, administrators), and
//!   those can read the values kept in fcx's memory just as well. What does
//!   hold everywhere: children get a cleared environment with an allow-list
//!   (`env_allow`), never a taken variable unless it is theirs.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::sync::OnceLock;

use crate::{Config, Profile, SecretRef};

/// Secret variables fcx reads by name, whatever the config says: the
/// keystore's passphrase.
pub const KNOWN: &[&str] = &[crate::keystore::PASSPHRASE_ENV];

/// What [`take`] read: the process that took them (for the error), the
/// names it took, and the values of those that were set.
struct Taken {
    process: &'static str,
    names: BTreeSet<String>,
    values: BTreeMap<String, String>,
}

static TAKEN: OnceLock<Taken> = OnceLock::new();

/// The answer to "what is VAR" for an `env:` reference.
pub(crate) enum Lookup<'a> {
    /// Nothing was taken in this process (fcxctl, tests): read the
    /// environment as it is.
    Environment,
    /// Taken at start: its value then, if it had one.
    Taken(Option<&'a str>),
    /// Taken variables exist, but not this one: it was never read.
    NotTaken {
        /// The process that took them.
        process: &'static str,
    },
}

impl Taken {
    fn lookup(&self, var: &str) -> Lookup<'_> {
        if self.names.contains(var) {
            Lookup::Taken(self.values.get(var).map(String::as_str))
        } else {
            Lookup::NotTaken {
                process: self.process,
            }
        }
    }
}

pub(crate) fn lookup(var: &str) -> Lookup<'_> {
    TAKEN.get().map_or(Lookup::Environment, |t| t.lookup(var))
}

/// The value of a secret variable: the copy [`take`] kept, else the
/// environment. Not for `env:` references (see [`SecretRef::resolve`]).
pub fn var(name: &str) -> Option<String> {
    match lookup(name) {
        Lookup::Taken(v) => v.map(str::to_string),
        Lookup::Environment | Lookup::NotTaken { .. } => std::env::var(name).ok(),
    }
}

/// The taken variables that were set, with their values, for a child this
/// process starts (the caller filters them: a worker gets only its own).
pub fn taken_vars() -> Vec<(OsString, OsString)> {
    TAKEN
        .get()
        .map(|t| {
            t.values
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// The environment variables `profile`'s secret references read.
pub fn profile_vars(profile: &Profile) -> impl Iterator<Item = &str> {
    let app = profile.app.iter().flat_map(|a| {
        std::iter::once(&a.app_secret).chain(
            a.webhook
                .iter()
                .flat_map(|w| w.encrypt_key.iter().chain(w.verification_token.iter())),
        )
    });
    profile
        .codex
        .api_key
        .iter()
        .chain(app)
        .filter_map(SecretRef::env_var)
}

/// Every variable to take at start: what any profile of `config` reads,
/// enabled or not (a reload may enable it), and [`KNOWN`].
pub fn referenced(config: Option<&Config>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = KNOWN.iter().map(|s| s.to_string()).collect();
    for p in config.iter().flat_map(|c| c.profiles.values()) {
        names.extend(profile_vars(p).map(str::to_string));
    }
    names
}

/// A variable `profiles` read that this process did not take at start
/// (`Ok` when nothing was taken): the sentence to refuse a reload with.
pub fn check_taken<'a>(profiles: impl IntoIterator<Item = &'a Profile>) -> Result<(), String> {
    check_in(TAKEN.get(), profiles)
}

fn check_in<'a>(
    taken: Option<&Taken>,
    profiles: impl IntoIterator<Item = &'a Profile>,
) -> Result<(), String> {
    let Some(t) = taken else {
        return Ok(());
    };
    for p in profiles {
        for var in profile_vars(p) {
            if let Lookup::NotTaken { process } = t.lookup(var) {
                return Err(not_taken_message(process, var));
            }
        }
    }
    Ok(())
}

pub(crate) fn not_taken_message(process: &str, var: &str) -> String {
    format!("env: references are read when {process} starts; restart {process} to pick up {var}")
}

/// Reads `names` from the environment, keeps their values for [`var`] and
/// `env:` references, and removes them from the environment, wiping their
/// text from the block the process started with. Only the first call
/// counts.
///
/// # Safety
///
/// No other thread may exist (nor any code that reads or writes the
/// environment concurrently), and nothing may have set a variable yet:
/// call it first thing in `main`, before any runtime or thread is started.
pub unsafe fn take(process: &'static str, names: BTreeSet<String>) {
    if TAKEN.get().is_some() {
        return;
    }
    let values: BTreeMap<String, String> = names
        .iter()
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v)))
        .collect();
    #[cfg(unix)]
    // SAFETY: single-threaded and the environment untouched so far, as
    // this function's contract requires.
    let entries = unsafe { block::entries(&names) };
    for n in &names {
        // SAFETY: no other thread exists (this function's contract).
        unsafe { std::env::remove_var(n) };
    }
    #[cfg(unix)]
    // SAFETY: as above; the entries are the start-up block's, which no libc
    // frees (nothing set a variable before this call).
    unsafe {
        block::wipe(entries)
    };
    let _ = TAKEN.set(Taken {
        process,
        names,
        values,
    });
}

/// The environment block a Unix process starts with. `unsetenv` takes a
/// variable out of the `environ` array but leaves its `NAME=value` text where
/// the kernel put it, which is what `/proc/PID/environ` (and macOS's
/// `KERN_PROCARGS2`) show: that text has to be overwritten.
#[cfg(unix)]
mod block {
    use std::collections::BTreeSet;
    use std::ffi::{CStr, c_char};

    #[cfg(target_vendor = "apple")]
    unsafe fn environ() -> *const *mut c_char {
        // SAFETY: _NSGetEnviron always returns a valid pointer to environ.
        unsafe { *libc::_NSGetEnviron() }
    }

    #[cfg(not(target_vendor = "apple"))]
    unsafe fn environ() -> *const *mut c_char {
        unsafe extern "C" {
            static environ: *const *mut c_char;
        }
        // SAFETY: POSIX defines `environ`; read while no thread changes it.
        unsafe { environ }
    }

    /// The `NAME=value` strings of the block whose name is in `names`:
    /// start and length.
    ///
    /// # Safety
    /// No thread may change the environment meanwhile.
    pub(super) unsafe fn entries(names: &BTreeSet<String>) -> Vec<(*mut c_char, usize)> {
        let mut out = Vec::new();
        // SAFETY: the caller keeps the environment still.
        let mut p = unsafe { environ() };
        if p.is_null() {
            return out;
        }
        loop {
            // SAFETY: `p` walks a NULL-terminated array of C strings.
            let e = unsafe { *p };
            if e.is_null() {
                break;
            }
            // SAFETY: each entry is a NUL-terminated string.
            let bytes = unsafe { CStr::from_ptr(e) }.to_bytes();
            let name = bytes
                .iter()
                .position(|&b| b == b'=')
                .and_then(|eq| std::str::from_utf8(&bytes[..eq]).ok());
            if name.is_some_and(|n| names.contains(n)) {
                out.push((e, bytes.len()));
            }
            // SAFETY: not past the terminating NULL (checked above).
            p = unsafe { p.add(1) };
        }
        out
    }

    /// Overwrite each entry's text with NULs.
    ///
    /// # Safety
    /// The entries come from [`entries`] and are still allocated (the
    /// start-up block is never freed).
    pub(super) unsafe fn wipe(entries: Vec<(*mut c_char, usize)>) {
        for (start, len) in entries {
            // SAFETY: `len` bytes from `start` are the entry's own text.
            unsafe { std::ptr::write_bytes(start, 0, len) };
        }
    }
}

#[cfg(test)]
#[path = "env_secrets_tests.rs"]
mod tests;
