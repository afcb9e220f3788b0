//! Process-group and process-tree control for Codex children.
//!
//! A Codex child is spawned as the leader of its own process group, so the
//! group id equals its pid. Signalling the group reaches codex and every
//! command it started *in* the group, but not commands that codex `setsid()`s
//! (it does that under `danger-full-access`): those live in their own session
//! and survive a group kill. While codex lives they are still its descendants,
//! so on Linux we walk `/proc/*/stat` ppid links, record `(pid, starttime)` for
//! every descendant, and kill the recorded ones that still carry the same start
//! time once codex is gone. The start time is what makes a recorded pid safe to
//! kill later: a reused pid gets a different one.
//!
//! On other unixes only the group signals are available; the tree helpers
//! return nothing and do nothing.

/// A process identified in a way that survives pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ProcId {
    pub(crate) pid: u32,
    /// Linux `/proc/<pid>/stat` starttime (clock ticks since boot).
    pub(crate) start_time: u64,
}

/// Signals the runner escalates through when stopping a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// `codex exec` handles SIGINT cleanly (it kills its commands and records
    /// the turn as aborted); it does not handle SIGTERM.
    Interrupt,
    Terminate,
    Kill,
}

/// The start time of a live process, to recognise it again later (crash
/// recovery records it next to the pid). `None` if the process does not exist
/// or the platform has no `/proc`.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    imp::stat(pid).map(|s| s.start_time)
}

/// Every live descendant of `pid` (not `pid` itself), found through ppid
/// links. Empty when `pid` has none or the platform has no `/proc`.
pub(crate) fn descendants(pid: u32) -> Vec<ProcId> {
    imp::descendants_of(&[pid])
}

/// Sends `sig` to process group `pgid`. Returns whether the group existed.
pub(crate) fn signal_group(pgid: u32, sig: StopSignal) -> bool {
    imp::signal_group(pgid, sig)
}

/// SIGKILLs every recorded process that still has its recorded start time,
/// plus their own process groups (a `setsid()`'d command leads one) and every
/// descendant they have now. Orphans reparent to init once codex dies, so the
/// descendants are found from the recorded pids, not from codex.
///
/// The processes are SIGSTOPped before the re-scan so none of them can fork a
/// new child between the scan and the kill.
pub(crate) fn kill_tree(recorded: &[ProcId]) {
    imp::kill_tree(recorded)
}

/// Crash recovery at worker start: kills the process group and the process
/// tree of a codex child that a crashed worker left behind, but only if `pid`
/// still has `start_time` (as recorded with [`process_start_time`] when it
/// was spawned).
///
/// If `pid` no longer exists, its process group may still have members
/// (commands codex left in its group); the kernel does not hand out a pid
/// number while a process group of that id exists, so that group can only be
/// the old one and is killed too.
///
/// Without `/proc` (non-Linux) `start_time` is always `None` and cannot be
/// checked; a live `pid` is then killed only if it still leads its own process
/// group, which a codex child does. That is a best effort: a reused pid that
/// also happens to lead a group would be hit.
pub(crate) fn kill_leftover(pid: u32, start_time: Option<u64>) {
    imp::kill_leftover(pid, start_time)
}

#[cfg(unix)]
mod sig {
    use nix::sys::signal::{self, Signal};
    use nix::unistd::Pid;

    use super::StopSignal;

    /// Converts to a nix pid, refusing values that mean "several processes"
    /// to kill(2): 0 (our own group), negatives, and 1 (init).
    pub(super) fn target(pid: u32) -> Option<Pid> {
        match i32::try_from(pid) {
            Ok(p) if p > 1 => Some(Pid::from_raw(p)),
            _ => None,
        }
    }

    pub(super) fn to_nix(sig: StopSignal) -> Signal {
        match sig {
            StopSignal::Interrupt => Signal::SIGINT,
            StopSignal::Terminate => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        }
    }

    pub(super) fn signal_group(pgid: u32, sig: StopSignal) -> bool {
        let Some(p) = target(pgid) else {
            return false;
        };
        match signal::killpg(p, to_nix(sig)) {
            Ok(()) => true,
            Err(nix::errno::Errno::ESRCH) => false,
            Err(e) => {
                tracing::warn!(pgid, signal = ?sig, error = %e, "could not signal process group");
                false
            }
        }
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(super) fn kill(pid: u32, sig: Signal) -> bool {
        let Some(p) = target(pid) else {
            return false;
        };
        signal::kill(p, sig).is_ok()
    }

    /// Whether `pid` exists (signal 0).
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    pub(super) fn exists(pid: u32) -> bool {
        let Some(p) = target(pid) else {
            return false;
        };
        signal::kill(p, None).is_ok()
    }

    /// Whether `pid` leads its own process group.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    pub(super) fn is_group_leader(pid: u32) -> bool {
        let Some(p) = target(pid) else {
            return false;
        };
        nix::unistd::getpgid(Some(p)).is_ok_and(|g| g == p)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::{HashMap, HashSet};

    use nix::sys::signal::Signal;

    use super::{ProcId, StopSignal, sig};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Stat {
        pub(crate) ppid: u32,
        pub(crate) pgrp: u32,
        pub(crate) start_time: u64,
        pub(crate) zombie: bool,
    }

    /// Parses `/proc/<pid>/stat`. The command name is in parentheses and may
    /// itself contain spaces and parentheses, so fields are counted from the
    /// last `)`.
    pub(super) fn parse_stat(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        // After the name: state(3) ppid(4) pgrp(5) ... starttime(22).
        Some(Stat {
            zombie: *fields.first()? == "Z",
            ppid: fields.get(1)?.parse().ok()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    pub(super) fn stat(pid: u32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&text)
    }

    /// pid → stat for every process visible in /proc.
    fn table() -> HashMap<u32, Stat> {
        let mut out = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return out;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Processes vanish between readdir and read; that is not an error.
            if let Some(s) = stat(pid) {
                out.insert(pid, s);
            }
        }
        out
    }

    fn descendants_in(table: &HashMap<u32, Stat>, roots: &[u32]) -> Vec<ProcId> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, s) in table {
            children.entry(s.ppid).or_default().push(pid);
        }
        let mut seen: HashSet<u32> = roots.iter().copied().collect();
        let mut queue: Vec<u32> = roots.to_vec();
        let mut out = Vec::new();
        while let Some(p) = queue.pop() {
            for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
                if seen.insert(c)
                    && let Some(s) = table.get(&c)
                {
                    out.push(ProcId {
                        pid: c,
                        start_time: s.start_time,
                    });
                    queue.push(c);
                }
            }
        }
        out
    }

    pub(super) fn descendants_of(roots: &[u32]) -> Vec<ProcId> {
        descendants_in(&table(), roots)
    }

    pub(super) fn signal_group(pgid: u32, s: StopSignal) -> bool {
        sig::signal_group(pgid, s)
    }

    fn still_same(p: &ProcId) -> bool {
        stat(p.pid).is_some_and(|s| s.start_time == p.start_time)
    }

    pub(super) fn kill_tree(recorded: &[ProcId]) {
        // Freeze first, then look for children again, until nothing new
        // turns up: a running process could otherwise fork between our scan
        // and our kill. Bounded, because a process we cannot stop (other
        // user, exiting) must not keep us here.
        let mut targets: Vec<ProcId> = recorded.iter().copied().filter(still_same).collect();
        let mut known: HashSet<u32> = targets.iter().map(|p| p.pid).collect();
        let mut stopped = 0;
        for _ in 0..16 {
            for p in &targets[stopped..] {
                sig::kill(p.pid, Signal::SIGSTOP);
            }
            stopped = targets.len();
            let pids: Vec<u32> = targets.iter().map(|p| p.pid).collect();
            let fresh: Vec<ProcId> = descendants_of(&pids)
                .into_iter()
                .filter(|p| known.insert(p.pid))
                .collect();
            if fresh.is_empty() {
                break;
            }
            targets.extend(fresh);
        }
        for p in &targets {
            let Some(s) = stat(p.pid) else { continue };
            if s.start_time != p.start_time {
                continue;
            }
            if s.pgrp == p.pid {
                // A setsid()'d command leads its own group; members whose
                // parent already died are reached only this way.
                sig::signal_group(p.pid, StopSignal::Kill);
            }
            if !s.zombie {
                tracing::debug!(pid = p.pid, "killing leftover codex descendant");
            }
            sig::kill(p.pid, Signal::SIGKILL);
        }
    }

    pub(super) fn kill_leftover(pid: u32, start_time: Option<u64>) {
        match (stat(pid), start_time) {
            (Some(s), Some(t)) if s.start_time == t => {
                // Freeze codex and collect its tree before anything dies:
                // once codex exits its children reparent to init and no
                // longer look like its descendants. kill_tree then also
                // kills codex's own group, since codex leads it.
                sig::kill(pid, Signal::SIGSTOP);
                let mut all = vec![ProcId { pid, start_time: t }];
                all.extend(descendants_of(&[pid]));
                kill_tree(&all);
                tracing::info!(pid, "killed a codex child left behind by a previous worker");
            }
            (Some(_), _) => {
                tracing::debug!(pid, "pid belongs to another process now; not killing it");
            }
            (None, _) => {
                if sig::signal_group(pid, StopSignal::Kill) {
                    tracing::info!(
                        pid,
                        "killed the leftover process group of a dead codex child"
                    );
                }
            }
        }
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod imp {
    use super::{ProcId, StopSignal, sig};

    pub(super) struct Stat {
        pub(crate) start_time: u64,
    }

    pub(super) fn stat(_pid: u32) -> Option<Stat> {
        None
    }

    pub(super) fn descendants_of(_roots: &[u32]) -> Vec<ProcId> {
        Vec::new()
    }

    pub(super) fn signal_group(pgid: u32, s: StopSignal) -> bool {
        sig::signal_group(pgid, s)
    }

    pub(super) fn kill_tree(_recorded: &[ProcId]) {}

    pub(super) fn kill_leftover(pid: u32, start_time: Option<u64>) {
        if start_time.is_some() {
            // Recorded somewhere with /proc; we cannot compare it here.
            return;
        }
        if sig::exists(pid) && !sig::is_group_leader(pid) {
            return;
        }
        sig::signal_group(pid, StopSignal::Kill);
    }
}

#[cfg(not(unix))]
mod imp {
    use super::{ProcId, StopSignal};

    pub(super) struct Stat {
        pub(crate) start_time: u64,
    }

    pub(super) fn stat(_pid: u32) -> Option<Stat> {
        None
    }

    pub(super) fn descendants_of(_roots: &[u32]) -> Vec<ProcId> {
        Vec::new()
    }

    pub(super) fn signal_group(_pgid: u32, _s: StopSignal) -> bool {
        false
    }

    pub(super) fn kill_tree(_recorded: &[ProcId]) {}

    pub(super) fn kill_leftover(_pid: u32, _start_time: Option<u64>) {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// Alive and not a zombie (pid 1 here may not reap orphans).
    pub(crate) fn alive(pid: u32) -> bool {
        imp::stat(pid).is_some_and(|s| !s.zombie)
    }

    fn wait_for_pid_file(path: &std::path::Path) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(t) = std::fs::read_to_string(path)
                && let Ok(p) = t.trim().parse()
            {
                return p;
            }
            assert!(Instant::now() < deadline, "pid file never appeared");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_gone(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !alive(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn parses_stat_with_awkward_names() {
        let line =
            "1234 (a) (b c) S 42 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = imp::parse_stat(line).expect("parse");
        assert_eq!(s.ppid, 42);
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.start_time, 987654);
        assert!(!s.zombie);
        assert!(imp::parse_stat("garbage").is_none());
        assert!(imp::parse_stat("1 (x) S 1").is_none());
    }

    #[test]
    fn own_start_time_is_stable() {
        let me = std::process::id();
        let a = process_start_time(me).expect("start time");
        assert_eq!(process_start_time(me), Some(a));
        assert_eq!(process_start_time(u32::MAX), None);
    }

    #[test]
    fn finds_descendants() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("grandchild");
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "sleep 300 & echo $! > {}; wait",
                pid_file.display()
            ))
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn");
        let grandchild = wait_for_pid_file(&pid_file);
        let found = descendants(child.id());
        assert!(found.iter().any(|p| p.pid == grandchild), "{found:?}");
        signal_group(child.id(), StopSignal::Kill);
        let _ = child.wait();
    }

    #[test]
    fn kill_leftover_kills_group_and_setsid_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let in_group = dir.path().join("in_group");
        let detached = dir.path().join("detached");
        let script = format!(
            "sleep 300 & echo $! > {g}; setsid sh -c 'echo $$ > {d}; exec sleep 300' & wait",
            g = in_group.display(),
            d = detached.display()
        );
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn");
        let g = wait_for_pid_file(&in_group);
        let d = wait_for_pid_file(&detached);
        assert!(alive(g) && alive(d));
        let start = process_start_time(child.id());
        assert!(start.is_some());

        // A wrong start time means "someone else's pid now": leave it alone.
        kill_leftover(child.id(), start.map(|s| s + 1));
        std::thread::sleep(Duration::from_millis(50));
        assert!(alive(child.id()) && alive(g) && alive(d));

        kill_leftover(child.id(), start);
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(wait_gone(g), "in-group sleep survived");
        assert!(wait_gone(d), "setsid sleep survived");
    }

    #[test]
    fn kill_tree_skips_reused_pids() {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("sleep 300")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let real = process_start_time(child.id()).expect("start");
        kill_tree(&[ProcId {
            pid: child.id(),
            start_time: real + 1,
        }]);
        std::thread::sleep(Duration::from_millis(50));
        assert!(alive(child.id()));
        kill_tree(&[ProcId {
            pid: child.id(),
            start_time: real,
        }]);
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
