//! A launchd LaunchAgent in the `gui/<uid>` domain, rendered from
//! deploy/launchd/dev.fcx.fcxd.plist.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use fcx_config::Home;
use serde_json::{Value, json};

use super::{Target, first_line, run, run_ok, stdout, write_file};

const TEMPLATE: &str = include_str!("../../../deploy/launchd/dev.fcx.fcxd.plist");
const LABEL: &str = "dev.fcx.fcxd";
/// `bootout` returns before launchd has removed the job; a `bootstrap` in
/// that window fails with 5 (I/O error) or 37 (in progress).
const BOOTSTRAP_ATTEMPTS: u32 = 10;
const GONE_WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(500);

fn plist_path(user_home: &Path) -> PathBuf {
    user_home
        .join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn render(t: &Target) -> String {
    let home = xml_escape(&t.user_home.display().to_string());
    let mut text = TEMPLATE
        .replace(
            "<string>__HOME__/.local/bin/fcxd</string>",
            &format!(
                "<string>{}</string>",
                xml_escape(&t.fcxd.display().to_string())
            ),
        )
        .replace(
            "<string>__HOME__/.fcx</string>",
            &format!(
                "<string>{}</string>",
                xml_escape(&t.fcx_home.display().to_string())
            ),
        )
        .replace(
            "__HOME__/.fcx/logs/",
            &format!(
                "{}/",
                xml_escape(&t.fcx_home.join("logs").display().to_string())
            ),
        );
    // The template's PATH line, replaced by the one computed for this machine.
    if let Some(start) = text.find("<key>PATH</key>")
        && let Some(open) = text[start..].find("<string>").map(|i| start + i)
        && let Some(close) = text[open..].find("</string>").map(|i| open + i)
    {
        text.replace_range(
            open..close + "</string>".len(),
            &format!("<string>{}</string>", xml_escape(&t.path)),
        );
    }
    if let Some(codex) = &t.codex_binary {
        text = text.replace(
            "    <key>PATH</key>",
            &format!(
                "    <key>{}</key>\n    <string>{}</string>\n    <key>PATH</key>",
                fcx_config::CODEX_BINARY_ENV,
                xml_escape(codex)
            ),
        );
    }
    text.replace("__HOME__", &home)
}

fn domain() -> anyhow::Result<String> {
    let o = run_ok("id", &["-u"])?;
    Ok(format!("gui/{}", stdout(&o)))
}

fn loaded(service: &str) -> bool {
    run("launchctl", &["print", service]).is_ok_and(|o| o.status.success())
}

fn wait_gone(service: &str) -> bool {
    let deadline = std::time::Instant::now() + GONE_WAIT;
    while loaded(service) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

fn bootout(service: &str) -> anyhow::Result<()> {
    if loaded(service) {
        let _ = run("launchctl", &["bootout", service]);
        if !wait_gone(service) {
            bail!(
                "launchd still has {service} {}s after bootout; try again in a moment",
                GONE_WAIT.as_secs()
            );
        }
    }
    Ok(())
}

fn bootstrap(domain: &str, plist: &Path) -> anyhow::Result<()> {
    let p = plist.display().to_string();
    let mut last = String::new();
    for _ in 0..BOOTSTRAP_ATTEMPTS {
        match run("launchctl", &["bootstrap", domain, &p]) {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => last = first_line(&o),
            Err(e) => bail!("cannot run launchctl: {e}"),
        }
        std::thread::sleep(POLL * 2);
    }
    bail!("`launchctl bootstrap {domain} {p}` kept failing: {last}")
}

pub(super) fn install(
    home: &Home,
    t: &Target,
    start: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    // launchd does not create the directories of StandardOutPath.
    std::fs::create_dir_all(home.logs_dir())?;
    let plist = plist_path(&t.user_home);
    write_file(&plist, render(t).as_bytes())?;
    writeln!(out, "wrote {}", plist.display())?;
    if let Ok(o) = run("plutil", &["-lint", &plist.display().to_string()])
        && !o.status.success()
    {
        bail!("plutil rejects {}: {}", plist.display(), first_line(&o));
    }
    let domain = domain()?;
    let service = format!("{domain}/{LABEL}");
    bootout(&service)?;
    if start {
        bootstrap(&domain, &plist)?;
        writeln!(out, "loaded and started {service}")?;
    } else {
        writeln!(out, "start it with `fcxctl service start`")?;
    }
    writeln!(
        out,
        "note: a LaunchAgent runs while you are logged in to the GUI; it does not start at boot"
    )?;
    writeln!(out, "next: fcxctl service status; fcxctl doctor")?;
    Ok(crate::exit::OK)
}

pub(super) fn uninstall(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    let service = format!("{}/{LABEL}", domain()?);
    bootout(&service)?;
    let plist = plist_path(home.user_home());
    if plist.exists() {
        std::fs::remove_file(&plist)?;
    }
    writeln!(out, "stopped and removed {}", plist.display())?;
    Ok(crate::exit::OK)
}

pub(super) fn start(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    let domain = domain()?;
    let service = format!("{domain}/{LABEL}");
    if loaded(&service) {
        run_ok("launchctl", &["kickstart", &service])?;
    } else {
        let plist = plist_path(home.user_home());
        if !plist.exists() {
            bail!(
                "{} is not installed; run `fcxctl service install`",
                plist.display()
            );
        }
        bootstrap(&domain, &plist)?;
    }
    writeln!(out, "started {service}")?;
    Ok(crate::exit::OK)
}

pub(super) fn stop(out: &mut dyn Write) -> anyhow::Result<u8> {
    // bootout: KeepAlive would otherwise start it again.
    let service = format!("{}/{LABEL}", domain()?);
    bootout(&service)?;
    writeln!(out, "stopped {service}")?;
    Ok(crate::exit::OK)
}

pub(super) fn restart(out: &mut dyn Write) -> anyhow::Result<u8> {
    let service = format!("{}/{LABEL}", domain()?);
    run_ok("launchctl", &["kickstart", "-k", &service])?;
    writeln!(out, "restarted {service}")?;
    Ok(crate::exit::OK)
}

pub(super) fn status(home: &Home) -> Value {
    let plist = plist_path(home.user_home());
    let (service, state) = match domain() {
        Ok(d) => {
            let service = format!("{d}/{LABEL}");
            let state = match run("launchctl", &["print", &service]) {
                Ok(o) if o.status.success() => stdout(&o)
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("state = ").map(str::to_string))
                    .unwrap_or_else(|| "loaded".into()),
                _ => "not loaded".into(),
            };
            (service, state)
        }
        Err(e) => (LABEL.to_string(), format!("unknown ({e})")),
    };
    json!({
        "manager": "launchd (LaunchAgent)",
        "unit": plist.display().to_string(),
        "installed": plist.exists(),
        "service": service,
        "active": state,
    })
}
