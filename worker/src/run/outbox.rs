//! Codex's outbox: files it writes into its chat's folder under
//! `<workspace>/.fcx/outbox/` during a run are sent to that chat once the run
//! ended (after its answer), and the folder is emptied.
//!
//! Each chat has its own folder ([`folder`], named in the run's prompt): a
//! workspace may serve several chats at once, and a run that ends takes
//! what is in its folder. With one folder for all, a run of another chat
//! that ended first took (and sent to its own chat) the files this run had
//! just written. Runs of one chat never overlap, so the folder is theirs.
//!
//! Only regular files directly in the folder are sent. Anything else a run
//! (or a prompt-injected command) may leave there is refused, reported to
//! the chat with the reason, and removed without being followed: symbolic
//! links (wherever they point), FIFOs, sockets, devices, folders, files over
//! the size limit, more files than a run may send. A `.fcx` or `outbox` that
//! is itself a link is not entered at all.

use std::path::{Path, PathBuf};

use fcx_proto::v1 as pb;

use crate::staging::{self, Refused};

/// The outboxes' parent, relative to the workspace.
pub(crate) const OUTBOX: &str = ".fcx/outbox";

/// This chat's outbox, relative to the workspace: a name derived from the
/// profile and the scope, the same for every run of the chat (a resumed
/// thread finds the folder it was told about), different for every other
/// chat and every other bot sharing the workspace.
pub(crate) fn folder(profile: &str, scope: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(profile.as_bytes());
    h.update([0]);
    h.update(scope.as_bytes());
    let digest = hex::encode(h.finalize());
    format!("{OUTBOX}/{}", &digest[..12])
}
/// Files one run may send.
pub(crate) const MAX_FILES: usize = 10;

/// What the outbox held at the end of a run.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) files: Vec<pb::FileOut>,
    /// Entry name and why it was not sent.
    pub(crate) refused: Vec<(String, String)>,
}

impl Collected {
    /// The notice for the chat about what was not sent, if anything.
    pub(crate) fn notice(&self) -> Option<String> {
        if self.refused.is_empty() {
            return None;
        }
        let mut s = String::from("Some files Codex left in its outbox were not sent:\n");
        for (name, why) in &self.refused {
            s.push_str(&format!("- `{name}`: {why}\n"));
        }
        Some(s.trim_end().to_string())
    }
}

/// Takes what is in the outbox `folder` (as [`folder`] names it) of
/// `workspace`: stages the files into `staging` (at most [`MAX_FILES`]),
/// refuses the rest, and empties the folder. Other chats' folders beside it
/// are not looked at.
pub(crate) fn collect(workspace: &Path, folder: &str, staging_dir: &Path) -> Collected {
    let mut out = Collected::default();
    let fcx = workspace.join(".fcx");
    let parent = fcx.join("outbox");
    let dir = workspace.join(folder);
    // Every step of the way must be a real folder inside the workspace.
    if dir.parent() != Some(parent.as_path()) {
        out.refused
            .push((folder.to_string(), "not an outbox folder".into()));
        return out;
    }
    for d in [&fcx, &parent, &dir] {
        match std::fs::symlink_metadata(d) {
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                // A link (or a file) where the folder should be: never
                // entered; a link is removed so the next run starts clean.
                out.refused.push((
                    rel(workspace, d),
                    "not a folder (a link or a file); nothing in it was read".into(),
                ));
                if m.file_type().is_symlink() {
                    let _ = std::fs::remove_file(d);
                }
                return out;
            }
            Err(_) => return out,
        }
    }
    let mut entries: Vec<(String, PathBuf)> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| (staging::display_name(&e.path()), e.path()))
            .collect(),
        Err(e) => {
            out.refused
                .push((folder.into(), format!("cannot be read: {}", e.kind())));
            return out;
        }
    };
    // Sent in name order: the order a user reads them in a listing.
    entries.sort();
    for (name, path) in entries {
        let taken = if out.files.len() >= MAX_FILES {
            Err(format!("more than {MAX_FILES} files in one run"))
        } else {
            take(&path, staging_dir, &format!("{folder}/{name}"), workspace)
        };
        match taken {
            Ok(f) => out.files.push(f),
            Err(why) => out.refused.push((name, why)),
        }
        remove(&path);
    }
    out
}

/// Stages one entry (never following a link: `symlink_metadata` first, then
/// an open that refuses a link in case it was swapped in since).
/// Once open, the file must still be in the workspace (a `.fcx` or
/// `outbox` swapped for a link after the check above leads elsewhere).
fn take(
    path: &Path,
    staging_dir: &Path,
    source: &str,
    workspace: &Path,
) -> Result<pb::FileOut, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.kind().to_string())?;
    if meta.file_type().is_symlink() {
        return Err(Refused::Link.to_string());
    }
    if meta.is_dir() {
        return Err("it is a folder; put files directly in the outbox".into());
    }
    let bounds = staging::Bounds {
        within: workspace,
        not_in: None,
    };
    staging::file_out(staging_dir, path, source, &bounds).map_err(|r| r.to_string())
}

fn remove(path: &Path) {
    let r = match std::fs::symlink_metadata(path) {
        // remove_dir_all does not follow links inside the tree.
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), error = %e, "cannot empty the outbox");
    }
}

fn rel(workspace: &Path, p: &Path) -> String {
    p.strip_prefix(workspace).unwrap_or(p).display().to_string()
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
