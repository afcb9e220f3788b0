//! The on-disk registry of fcx's running processes: one small JSON file per
//! process in `$FCX_HOME/run/procs/`, written when it starts and removed when
//! it ends. Entries of processes that died without cleaning up (kill -9, a
//! crash) are pruned on every read: the pid must be alive and, on Linux and
//! Windows, still the same process (its start time matches), so a reused pid
//! never passes for an fcx process. `fcxctl kill` signals only what is listed
//! here; on Windows it terminates only a process whose creation time is still
//! the registered one ([`terminate`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Home;

/// One registered process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// What `fcxctl ps` calls it: "g" (fcxd), "w:PROFILE", "r:RUN".
    pub id: String,
    /// "fcxd", "worker" or "codex".
    pub kind: String,
    /// The process id.
    pub pid: u32,
    /// The profile a worker or run belongs to; empty for fcxd.
    #[serde(default)]
    pub profile: String,
    /// When it registered (unix milliseconds).
    pub started_at_ms: i64,
    /// The kernel's start time of the process: clock ticks after boot on
    /// Linux, the creation time (100 ns units since 1601) on Windows; 0
    /// elsewhere.
    #[serde(default)]
    pub start_ticks: u64,
}

fn dir(home: &Home) -> PathBuf {
    home.run_dir().join("procs")
}

/// One file per (pid, id): a Codex child kept between runs is registered
/// as idle and as each run's `r:RUN` in turn, and one registration's end
/// must not remove the other's file.
fn file(home: &Home, pid: u32, id: &str) -> PathBuf {
    // FNV-1a: stable and short; the id itself is inside the file.
    let tag = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    dir(home).join(format!("{pid}-{tag:016x}.json"))
}

/// The process's start time (Linux: clock ticks since boot; Windows: its
/// creation time, while it runs), to tell a reused pid apart; 0 when unknown.
pub fn start_ticks(pid: u32) -> u64 {
    #[cfg(target_os = "linux")]
    {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0;
        };
        // The command name may hold spaces and parentheses: fields count
        // from the last ')'. starttime is field 22 overall.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(19))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    #[cfg(windows)]
    {
        crate::registry_win::running_since(pid).unwrap_or(0)
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = pid;
        0
    }
}

/// Why a registered process was not terminated.
#[derive(Debug, thiserror::Error)]
pub enum TerminateError {
    /// The process has exited (or the pid names none).
    #[error("pid {0} has ended")]
    Gone(u32),
    /// Another process has the pid now.
    #[error(
        "pid {0} now belongs to another process (its start time is not the registered one); \
         nothing was terminated"
    )]
    Reused(u32),
    /// The registry holds no start time to compare.
    #[error(
        "the start time of pid {0} was not registered, so it cannot be told from a later \
         process with the same pid; nothing was terminated"
    )]
    Unrecorded(u32),
    /// The system refused (access denied, usually).
    #[error("cannot terminate pid {pid}: {source}")]
    Os {
        /// The process.
        pid: u32,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// Whether the process seen now under `pid` (its start time, `None` when
/// it has ended) is the one registered with start time `recorded`. Strict:
/// an unrecorded start time (0) matches nothing, so a pid is never
/// terminated on a guess.
pub fn check_same(pid: u32, recorded: u64, now: Option<u64>) -> Result<(), TerminateError> {
    match now {
        None => Err(TerminateError::Gone(pid)),
        Some(_) if recorded == 0 => Err(TerminateError::Unrecorded(pid)),
        Some(t) if t != recorded => Err(TerminateError::Reused(pid)),
        Some(_) => Ok(()),
    }
}

/// The creation time of `pid` while it runs (100 ns units since 1601);
/// `None` when it does not exist, has exited or is another user's.
#[cfg(windows)]
pub fn running_since(pid: u32) -> Option<u64> {
    crate::registry_win::running_since(pid)
}

/// Terminates process `pid` (`TerminateProcess`, exit code 1), but only if
/// its creation time is still `recorded`: the check and the termination go
/// through one process handle, so the pid cannot be reused in between.
/// Windows has no signals: this is the only way to end another process.
#[cfg(windows)]
pub fn terminate(pid: u32, recorded: u64) -> Result<(), TerminateError> {
    crate::registry_win::terminate(pid, recorded)
}

/// Whether `e` still names the process it was written for.
pub fn is_live(e: &Entry) -> bool {
    #[cfg(unix)]
    {
        let Ok(raw) = i32::try_from(e.pid) else {
            return false;
        };
        let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
            Ok(()) => true,
            Err(nix::errno::Errno::EPERM) => true,
            Err(_) => false,
        };
        alive && (e.start_ticks == 0 || start_ticks(e.pid) == e.start_ticks)
    }
    #[cfg(windows)]
    {
        crate::registry_win::running_since(e.pid)
            .is_some_and(|now| e.start_ticks == 0 || now == e.start_ticks)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = e;
        true
    }
}

/// Removes its entry when dropped (a clean exit).
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
}

impl Registration {
    /// Whether `fcxctl kill` signalled the process (see [`mark_killed`]).
    pub fn was_killed(&self) -> bool {
        self.path.with_extension("killed").exists()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("killed"));
    }
}

/// Notes that an operator is about to signal `e` (`fcxctl kill`), so the
/// process that registered it can say why it ended.
pub fn mark_killed(home: &Home, e: &Entry) -> std::io::Result<()> {
    std::fs::write(file(home, e.pid, &e.id).with_extension("killed"), b"")
}

/// Registers the calling process.
pub fn register_self(
    home: &Home,
    id: &str,
    kind: &str,
    profile: &str,
    started_at_ms: i64,
) -> std::io::Result<Registration> {
    let pid = std::process::id();
    register(
        home,
        &Entry {
            id: id.to_string(),
            kind: kind.to_string(),
            pid,
            profile: profile.to_string(),
            started_at_ms,
            start_ticks: start_ticks(pid),
        },
    )
}

/// Registers `e` (written whole, then renamed into place).
pub fn register(home: &Home, e: &Entry) -> std::io::Result<Registration> {
    let d = dir(home);
    crate::private_dir(&home.run_dir())?;
    crate::private_dir(&d)?;
    let path = file(home, e.pid, &e.id);
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec(e).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, &path)?;
    Ok(Registration { path })
}

/// The live entries, by pid; stale ones are deleted on the way.
pub fn list(home: &Home) -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir(home)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for de in rd.flatten() {
        let p = de.path();
        if p.extension().is_some_and(|x| x == "killed") && !p.with_extension("json").exists() {
            let _ = std::fs::remove_file(&p);
            continue;
        }
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match read(&p) {
            Some(e) if is_live(&e) => out.push(e),
            _ => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    out.sort_by_key(|e| e.pid);
    out
}

fn read(p: &Path) -> Option<Entry> {
    let bytes = std::fs::read(p).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_is_listed_until_dropped_and_dead_pids_are_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path());
        let me = register_self(&home, "g", "fcxd", "", 1).expect("register");
        let listed = list(&home);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].pid, std::process::id());
        // A pid that is not running (or was reused: other start time).
        let dead = Entry {
            id: "w:x".into(),
            kind: "worker".into(),
            pid: std::process::id(),
            profile: "x".into(),
            started_at_ms: 1,
            start_ticks: start_ticks(std::process::id()).wrapping_add(1),
        };
        if cfg!(target_os = "linux") {
            drop(me);
            let reg = register(&home, &dead).expect("register");
            assert!(list(&home).is_empty(), "a reused pid is not this process");
            assert!(!file(&home, dead.pid, &dead.id).exists(), "pruned");
            drop(reg);
        } else {
            drop(me);
        }
        assert!(list(&home).is_empty());
    }

    #[test]
    fn only_the_registered_start_time_may_be_terminated() {
        // What the Windows kill checks on the process handle before
        // TerminateProcess: a recycled pid has another creation time.
        assert!(check_same(7, 1_000, Some(1_000)).is_ok());
        let reused = check_same(7, 1_000, Some(2_000)).expect_err("reused");
        assert!(matches!(reused, TerminateError::Reused(7)), "{reused:?}");
        assert!(
            reused.to_string().contains("nothing was terminated"),
            "{reused}"
        );
        assert!(matches!(
            check_same(7, 1_000, None),
            Err(TerminateError::Gone(7))
        ));
        // An entry written without a start time names no process for sure.
        let unknown = check_same(7, 0, Some(1_000)).expect_err("unrecorded");
        assert!(
            matches!(unknown, TerminateError::Unrecorded(7)),
            "{unknown:?}"
        );
        assert!(matches!(
            check_same(7, 0, None),
            Err(TerminateError::Gone(7))
        ));
    }

    #[test]
    fn one_process_under_two_ids_keeps_both_until_each_ends() {
        // A kept Codex child: registered as idle, then as a run's child.
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path());
        let idle = register_self(&home, "idle:1", "codex", "p", 1).expect("idle");
        let run = register_self(&home, "r:abc", "codex", "p", 2).expect("run");
        let ids = |h: &Home| list(h).into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&home).len(), 2);
        drop(idle);
        assert_eq!(ids(&home), vec!["r:abc".to_string()]);
        let e = list(&home).remove(0);
        mark_killed(&home, &e).expect("mark");
        assert!(run.was_killed());
        drop(run);
        assert!(list(&home).is_empty());
    }
}
