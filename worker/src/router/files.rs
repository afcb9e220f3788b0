//! `/sendfile <path>`: a file from inside the scope's workspace, to the chat.
//!
//! The path is resolved from the workspace (an absolute path must lie in
//! it), every symlink resolved; what it resolves to must be a regular file
//! inside the workspace's realpath and outside fcx's own home. The file is
//! then opened without following a link, checked again where it really is
//! once open (a swap after the check, of the file or of a directory above
//! it, is caught), staged (`crate::staging`), and handed to the gateway as
//! a `FileOut`.

use std::path::{Path, PathBuf};

use fcx_proto::v1::Inbound;
use fcx_proto::v1::worker_event::Kind;

use super::{Deps, NOT_ON_CONSOLE, on_console};
use crate::staging::{self, Refused};

const COMMAND: &str = "sendfile";

pub(super) fn send(d: &Deps, inbound: &Inbound, arg: &str) {
    let refuse = |title: &str, body: String| d.replies.text(inbound, COMMAND, false, title, body);
    if on_console(inbound) {
        return refuse(
            NOT_ON_CONSOLE,
            "The file is on this machine already.".into(),
        );
    }
    if !d.replies.gateway_has(fcx_proto::caps::FILES_OUT) {
        return refuse(
            "Not available",
            "The fcx gateway serving this chat cannot send files; upgrade fcxd.".into(),
        );
    }
    let workspace = match d.ctx.policy(&inbound.scope) {
        Ok(p) => p.cwd,
        Err(e) => return refuse("No workspace", e.to_string()),
    };
    let shown = arg.trim();
    let home = d.ctx.home.root();
    let sent = resolve(&workspace, home, shown).and_then(|(real, rel)| {
        staging::file_out(
            &d.ctx.home.profile(&d.ctx.profile.name).outgoing_dir(),
            &real,
            &rel,
            &staging::Bounds {
                within: &workspace,
                not_in: Some(home),
            },
        )
    });
    match sent {
        Ok(f) => {
            tracing::info!(scope = %inbound.scope, size = f.size, "file staged for /sendfile");
            d.ctx
                .emit(&inbound.scope, "", &inbound.message_id, Kind::FileOut(f));
        }
        Err(why) => refuse(
            &format!("Not sent: {}", one_line(shown)),
            format!("`{}` was not sent: {why}.", one_line(shown)),
        ),
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// The realpath `arg` names inside `workspace`, and that path relative to
/// the workspace (for messages). Refused: a path that resolves outside the
/// workspace (`..`, an absolute path elsewhere, a symlink pointing out), a
/// path into fcx's own `home`, the workspace itself, and a missing file.
pub(crate) fn resolve(
    workspace: &Path,
    home: &Path,
    arg: &str,
) -> Result<(PathBuf, String), Refused> {
    if arg.is_empty() {
        return Err(Refused::Missing);
    }
    let base = std::fs::canonicalize(workspace).map_err(|e| Refused::Unreadable(e.to_string()))?;
    let written = Path::new(arg);
    let candidate = if written.is_absolute() {
        written.to_path_buf()
    } else {
        base.join(written)
    };
    let real = match std::fs::canonicalize(&candidate) {
        Ok(r) => r,
        // A dangling link or a missing file: say which without probing
        // what lies outside the workspace.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let lexical = crate::policy::normalize_lexically(&candidate);
            return Err(if lexical.starts_with(&base) {
                Refused::Missing
            } else {
                Refused::Outside
            });
        }
        Err(e) => return Err(Refused::Unreadable(e.kind().to_string())),
    };
    if !real.starts_with(&base) {
        return Err(Refused::Outside);
    }
    let home_real = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
    if real.starts_with(&home_real) {
        return Err(Refused::Private);
    }
    if real == base {
        return Err(Refused::Directory);
    }
    let rel = real
        .strip_prefix(&base)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Ok((real, rel))
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
