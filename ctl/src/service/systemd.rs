//! A systemd user unit (`systemctl --user`), rendered from
//! deploy/systemd/fcxd.service.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use fcx_config::Home;
use serde_json::{Value, json};

use super::{Target, first_line, run, stdout, write_file};

const TEMPLATE: &str = include_str!("../../../deploy/systemd/fcxd.service");
const UNIT: &str = "fcxd.service";

/// `$XDG_CONFIG_HOME/systemd/user/fcxd.service`, else under ~/.config.
pub(super) fn unit_path(user_home: &Path) -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| user_home.join(".config"));
    config.join("systemd/user").join(UNIT)
}

/// A value for `Environment=` / `ExecStart=`: quoted, with systemd's `%`
/// specifiers and C escapes neutralised so a path means itself.
fn quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
    )
}

pub(super) fn render(t: &Target) -> String {
    let mut out = String::from(
        "# Written by `fcxctl service install` from deploy/systemd/fcxd.service with this\n\
         # machine's paths. Re-run it after moving fcxd or FCX_HOME.\n",
    );
    for line in TEMPLATE.lines() {
        if line.starts_with("Environment=FCX_HOME=") {
            out.push_str(&format!(
                "Environment={}\n",
                quote(&format!("FCX_HOME={}", t.fcx_home.display()))
            ));
            out.push_str(&format!(
                "Environment={}\n",
                quote(&format!("PATH={}", t.path))
            ));
            if let Some(codex) = &t.codex_binary {
                out.push_str(&format!(
                    "Environment={}\n",
                    quote(&format!("{}={codex}", fcx_config::CODEX_BINARY_ENV))
                ));
            }
        } else if line.starts_with("ExecStart=") {
            out.push_str(&format!(
                "ExecStart={}\n",
                quote(&t.fcxd.display().to_string())
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `systemctl --user …`, explaining the usual reason it cannot work.
fn systemctl(args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["--user"];
    full.extend_from_slice(args);
    let o = match run("systemctl", &full) {
        Ok(o) => o,
        Err(e) => bail!(
            "cannot run systemctl ({e}): this system has no systemd; run fcxd under your own \
             supervisor (deploy/README.md)"
        ),
    };
    if o.status.success() {
        return Ok(stdout(&o));
    }
    let why = first_line(&o);
    if why.contains("Failed to connect to bus") || why.contains("No medium found") {
        bail!(
            "`systemctl --user {}` cannot reach your user manager ({why}). This happens in a \
             shell entered with su or sudo -u: log in as this user (ssh, or `machinectl shell \
             $USER@`) and run the command again",
            args.join(" ")
        );
    }
    bail!("`systemctl --user {}` failed: {why}", args.join(" "))
}

/// `systemd-analyze verify` when it is installed: catches a bad line or an
/// ExecStart that does not exist before systemd would.
fn verify(path: &std::path::Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let p = path.display().to_string();
    match run("systemd-analyze", &["verify", &p]) {
        Ok(o) if o.status.success() => writeln!(out, "verified {p} (systemd-analyze verify)")?,
        Ok(o) => bail!(
            "systemd-analyze verify rejects {p}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(_) => writeln!(out, "systemd-analyze not found; {p} not verified")?,
    }
    Ok(())
}

/// Linger keeps the user manager (and fcxd) running with nobody logged in.
fn linger() -> Result<bool, String> {
    let user = super::user_name();
    match run(
        "loginctl",
        &["show-user", &user, "--property=Linger", "--value"],
    ) {
        Ok(o) if o.status.success() => Ok(stdout(&o) == "yes"),
        Ok(o) => Err(first_line(&o)),
        Err(e) => Err(e.to_string()),
    }
}

fn explain_linger(out: &mut dyn Write) -> anyhow::Result<()> {
    let user = super::user_name();
    match linger() {
        Ok(true) => writeln!(out, "linger: on (fcxd keeps running after you log out)")?,
        Ok(false) => writeln!(
            out,
            "warning: linger is off for {user}: your user manager, and fcxd with it, stops when \
             your last session ends (ssh logout, desktop logout) and chat messages go \
             unanswered until you log in again. Turn it on: loginctl enable-linger {user}"
        )?,
        Err(e) => writeln!(
            out,
            "warning: cannot check linger ({e}); make sure `loginctl show-user {user} \
             --property=Linger` says yes, else: loginctl enable-linger {user}"
        )?,
    }
    Ok(())
}

pub(super) fn install(t: &Target, start: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let path = unit_path(&t.user_home);
    write_file(&path, render(t).as_bytes())?;
    writeln!(out, "wrote {}", path.display())?;
    verify(&path, out)?;
    systemctl(&["daemon-reload"])?;
    if start {
        systemctl(&["enable", "--now", UNIT])?;
        writeln!(out, "enabled and started {UNIT}")?;
    } else {
        systemctl(&["enable", UNIT])?;
        writeln!(out, "enabled {UNIT}; start it with `fcxctl service start`")?;
    }
    explain_linger(out)?;
    writeln!(out, "next: fcxctl service status; fcxctl doctor")?;
    Ok(crate::exit::OK)
}

pub(super) fn uninstall(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    let path = unit_path(home.user_home());
    if !path.exists() {
        writeln!(out, "{} is not installed", path.display())?;
        return Ok(crate::exit::OK);
    }
    systemctl(&["disable", "--now", UNIT])?;
    std::fs::remove_file(&path)?;
    systemctl(&["daemon-reload"])?;
    writeln!(out, "stopped and removed {}", path.display())?;
    Ok(crate::exit::OK)
}

pub(super) fn start(out: &mut dyn Write) -> anyhow::Result<u8> {
    // A unit that hit its start limit refuses to start until reset.
    let _ = run("systemctl", &["--user", "reset-failed", UNIT]);
    systemctl(&["start", UNIT])?;
    writeln!(out, "started {UNIT}")?;
    Ok(crate::exit::OK)
}

pub(super) fn stop(out: &mut dyn Write) -> anyhow::Result<u8> {
    systemctl(&["stop", UNIT])?;
    writeln!(out, "stopped {UNIT}")?;
    Ok(crate::exit::OK)
}

pub(super) fn restart(out: &mut dyn Write) -> anyhow::Result<u8> {
    let _ = run("systemctl", &["--user", "reset-failed", UNIT]);
    systemctl(&["restart", UNIT])?;
    writeln!(out, "restarted {UNIT}")?;
    Ok(crate::exit::OK)
}

pub(super) fn status(home: &Home) -> Value {
    let path = unit_path(home.user_home());
    // is-enabled / is-active print their answer and exit non-zero for
    // "disabled" / "inactive": the answer is the output either way.
    let ask = |verb: &str| match run("systemctl", &["--user", verb, UNIT]) {
        Ok(o) if !stdout(&o).is_empty() => stdout(&o),
        Ok(o) => first_line(&o),
        Err(e) => format!("unknown ({e})"),
    };
    let linger = match linger() {
        Ok(true) => "on".to_string(),
        Ok(false) => "off (loginctl enable-linger)".to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    json!({
        "manager": "systemd (user)",
        "unit": path.display().to_string(),
        "installed": path.exists(),
        "enabled": ask("is-enabled"),
        "active": ask("is-active"),
        "linger": linger,
    })
}
