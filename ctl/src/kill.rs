//! `fcxctl kill <id|pid>`: signal one process fcx started, found in the
//! registry (`$FCX_HOME/run/procs/`, pruned of dead and reused pids). Any
//! other pid is refused, so a typo never signals an unrelated process.

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
    if e.kind == "codex" {
        // The run then ends as failed "killed by the operator", not as a crash.
        let _ = registry::mark_killed(home, e);
    }
    let sig = signal(e, force)?;
    let what = match e.kind.as_str() {
        "fcxd" => " (it stops its workers and exits)",
        "worker" if !force => " (its runs end as interrupted; fcxd starts a new worker)",
        // A kept child between runs has no run to fail.
        "codex" if e.id.starts_with("idle:") => {
            " (a chat's kept Codex child between runs; its next run starts a new one)"
        }
        "codex" => " (its run ends as failed, killed by the operator)",
        _ => "",
    };
    writeln!(
        out,
        "sent {sig} to {} {} (pid {}){what}",
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

#[cfg(not(unix))]
fn signal(_: &Entry, _: bool) -> anyhow::Result<&'static str> {
    bail!("fcxctl kill is not available on Windows; use `fcxctl stop` or `fcxctl restart-worker`")
}
