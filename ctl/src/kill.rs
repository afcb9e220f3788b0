//! `fcxctl kill <id|pid>`: signal one process fcx started, found in the
//! registry (`$FCX_HOME/run/procs/`, pruned of dead and reused pids). Any
//! other pid is refused, so a typo never signals an unrelated process.
//! On Windows only `--force` works (TerminateProcess), and only on the
//! process whose creation time was registered.

use std::io::Write;

use anyhow::bail;
use fcx_config::Home;
use fcx_config::registry::{self, Entry};

pub(crate) fn kill(
    home: &Home,
    target: &str,
    force: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let entries = registry::list(home);
    let pid: Option<u32> = target.parse().ok();
    let Some(e) = entries
        .iter()
        .find(|e| e.id == target || Some(e.pid) == pid)
    else {
        bail!(
            "`{}` is not a running fcx process of {} (see `fcxctl ps`); fcxctl kill signals only \
             processes fcx started and registered",
            crate::render::clean(target),
            home.root().display()
        );
    };
    // Refused before the run is marked as killed by the operator.
    #[cfg(windows)]
    if let Some(why) = windows_refusal(e, force) {
        bail!(why);
    }
    if e.kind == "codex" {
        // The run then ends as failed "killed by the operator", not as a crash.
        let _ = registry::mark_killed(home, e);
    }
    let sig = signal(e, force)?;
    let what = match e.kind.as_str() {
        "fcxd" if !force => " (it stops its workers and exits)",
        // SIGKILL / TerminateProcess: fcxd has no say.
        "fcxd" => {
            " (its workers go on: the next fcxd reattaches to them; without one they exit after \
             15 idle minutes)"
        }
        "worker" if !force => " (its runs end as interrupted; fcxd starts a new worker)",
        // A kept child between runs has no run to fail.
        "codex" if e.id.starts_with("idle:") => {
            " (a chat's kept Codex child between runs; its next run starts a new one)"
        }
        "codex" => " (its run ends as failed, killed by the operator)",
        _ => "",
    };
    // No process group on Windows: TerminateProcess ends codex.exe alone.
    let left = if cfg!(windows) && e.kind == "codex" {
        "; commands it started may outlive it on Windows"
    } else {
        ""
    };
    writeln!(
        out,
        "sent {sig} to {} {} (pid {}){what}{left}",
        e.kind, e.id, e.pid
    )?;
    Ok(crate::exit::OK)
}

#[cfg(unix)]
fn signal(e: &Entry, force: bool) -> anyhow::Result<&'static str> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let (sig, name) = if force {
        (Signal::SIGKILL, "SIGKILL")
    } else {
        (Signal::SIGTERM, "SIGTERM")
    };
    let raw = i32::try_from(e.pid)?;
    // A Codex child leads its own process group: its commands go with it.
    let target = if e.kind == "codex" {
        Pid::from_raw(-raw)
    } else {
        Pid::from_raw(raw)
    };
    kill(target, sig).map_err(|err| anyhow::anyhow!("cannot signal pid {}: {err}", e.pid))?;
    Ok(name)
}

/// Windows has no SIGTERM: only `--force` gets here (TerminateProcess,
/// checked against the registered creation time so a recycled pid is
/// never hit).
#[cfg(windows)]
fn signal(e: &Entry, _force: bool) -> anyhow::Result<&'static str> {
    registry::terminate(e.pid, e.start_ticks)?;
    Ok("TerminateProcess")
}

#[cfg(not(any(unix, windows)))]
fn signal(_: &Entry, _: bool) -> anyhow::Result<&'static str> {
    bail!(
        "fcxctl kill is not available on this platform; use `fcxctl stop` or `fcxctl restart-worker`"
    )
}

/// Why `fcxctl kill` without `--force` does nothing on Windows: there is no
/// polite signal, and terminating outright is not what a plain kill means
/// on Unix (fcxd would leave its workers and runs behind).
#[cfg_attr(not(windows), allow(dead_code))]
fn windows_refusal(e: &Entry, force: bool) -> Option<String> {
    if force {
        return None;
    }
    let orderly = match e.kind.as_str() {
        "fcxd" => "`fcxctl stop`".to_string(),
        "worker" => format!(
            "`fcxctl restart-worker {}`",
            crate::render::clean(&e.profile)
        ),
        _ => "`/stop` in the chat".to_string(),
    };
    Some(format!(
        "Windows has no SIGTERM: `fcxctl kill --force {}` terminates {} {} outright \
         (TerminateProcess); for an orderly stop use {orderly}",
        crate::render::clean(&e.id),
        e.kind,
        crate::render::clean(&e.id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, kind: &str) -> Entry {
        Entry {
            id: id.into(),
            kind: kind.into(),
            pid: 42,
            profile: "work".into(),
            started_at_ms: 1,
            start_ticks: 7,
        }
    }

    #[test]
    fn a_plain_kill_on_windows_names_force_and_the_orderly_way() {
        let why = windows_refusal(&entry("g", "fcxd"), false).expect("refused");
        assert!(why.contains("fcxctl kill --force g"), "{why}");
        assert!(why.contains("`fcxctl stop`"), "{why}");
        let why = windows_refusal(&entry("w:work", "worker"), false).expect("refused");
        assert!(why.contains("`fcxctl restart-worker work`"), "{why}");
        let why = windows_refusal(&entry("r:abc", "codex"), false).expect("refused");
        assert!(why.contains("--force r:abc"), "{why}");
        assert_eq!(windows_refusal(&entry("r:abc", "codex"), true), None);
    }
}
