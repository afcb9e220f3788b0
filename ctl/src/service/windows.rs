//! A Task Scheduler task (`\fcx\fcxd`, at logon, as the operator), rendered
//! from deploy/windows/fcxd-task.xml and registered with schtasks.

use std::io::Write;
use std::path::PathBuf;

use fcx_config::Home;
use serde_json::{Value, json};

use super::{Target, first_line, run, run_ok, write_file};

const TEMPLATE: &str = include_str!("../../../deploy/windows/fcxd-task.xml");
const TASK: &str = "fcx\\fcxd";

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `DOMAIN\name`, as the task's principal must be written.
pub(super) fn user() -> String {
    match (std::env::var("USERDOMAIN"), std::env::var("USERNAME")) {
        (Ok(d), Ok(u)) if !d.is_empty() && !u.is_empty() => format!("{d}\\{u}"),
        _ => run("whoami", &[])
            .ok()
            .map(|o| super::stdout(&o))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(super::user_name),
    }
}

pub(super) fn render(t: &Target, user: &str) -> String {
    // Task Scheduler cannot set environment variables: FCX_HOME goes on the
    // command line instead.
    let action = format!(
        "<Command>{}</Command>\n      <Arguments>--home &quot;{}&quot;</Arguments>",
        xml_escape(&t.fcxd.display().to_string()),
        xml_escape(&t.fcx_home.display().to_string())
    );
    TEMPLATE
        .replace(
            "<?xml version=\"1.0\"?>",
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
        )
        .replace(
            "<Command>%USERPROFILE%\\.local\\bin\\fcxd.exe</Command>",
            &action,
        )
        .replace("__USER__", &xml_escape(user))
}

fn task_file(home: &Home) -> PathBuf {
    home.root().join("fcxd-task.xml")
}

/// schtasks reads task XML as UTF-16 (little-endian, with a byte-order mark).
fn utf16(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

pub(super) fn install(
    home: &Home,
    t: &Target,
    start: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let file = task_file(home);
    write_file(&file, &utf16(&render(t, &user())))?;
    writeln!(out, "wrote {}", file.display())?;
    let f = file.display().to_string();
    run_ok("schtasks", &["/Create", "/TN", TASK, "/XML", &f, "/F"])?;
    writeln!(out, "registered task \\{TASK} (at logon)")?;
    if start {
        run_ok("schtasks", &["/Run", "/TN", TASK])?;
        writeln!(out, "started \\{TASK}")?;
    }
    writeln!(
        out,
        "note: stop fcxd with `fcxctl service stop` (or `fcxctl stop`), not `schtasks /End`, \
         which kills it without stopping its runs"
    )?;
    Ok(crate::exit::OK)
}

/// Ask fcxd to stop in order (schtasks /End would kill it outright).
fn graceful_stop(home: &Home, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(crate::admin::stop(home, true, out)) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.downcast_ref(), Some(crate::CtlError::NotRunning { .. })) => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) fn uninstall(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    graceful_stop(home, out)?;
    run_ok("schtasks", &["/Delete", "/TN", TASK, "/F"])?;
    let _ = std::fs::remove_file(task_file(home));
    writeln!(out, "removed task \\{TASK}")?;
    Ok(crate::exit::OK)
}

pub(super) fn start(out: &mut dyn Write) -> anyhow::Result<u8> {
    run_ok("schtasks", &["/Run", "/TN", TASK])?;
    writeln!(out, "started \\{TASK}")?;
    Ok(crate::exit::OK)
}

pub(super) fn stop(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    graceful_stop(home, out)?;
    Ok(crate::exit::OK)
}

pub(super) fn restart(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    graceful_stop(home, out)?;
    start(out)
}

pub(super) fn status(home: &Home) -> Value {
    let state = match run("schtasks", &["/Query", "/TN", TASK, "/FO", "LIST"]) {
        Ok(o) if o.status.success() => super::stdout(&o)
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Status:")
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "registered".into()),
        Ok(o) => format!("not registered ({})", first_line(&o)),
        Err(e) => format!("unknown ({e})"),
    };
    json!({
        "manager": "Task Scheduler",
        "unit": format!("\\{TASK}"),
        "installed": task_file(home).exists(),
        "active": state,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_task_file_is_utf16_little_endian_with_a_byte_order_mark() {
        let text = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<Task>é 中</Task>";
        let bytes = super::utf16(text);
        assert_eq!(&bytes[..2], &[0xFF, 0xFE]);
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(String::from_utf16(&units).ok().as_deref(), Some(text));
    }
}
