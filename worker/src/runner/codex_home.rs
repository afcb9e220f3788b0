//! One `CODEX_HOME` per continuity scope (`profiles/<name>/codex-homes/<digest>/`,
//! see [`fcx_config::ProfilePaths::scope_codex_home`]): a chat's threads,
//! Codex's stores (`state_5.sqlite`, `memories_1.sqlite`, …), its
//! memories and its `/resume` list are its own. What the operator set up
//! once for the profile stays in the profile's Codex home and shows in
//! every scope home as a symbolic link ([`SHARED`]).
//!
//! Why links, measured with codex 0.169.0 (strace of a login through a
//! linked `auth.json`): Codex takes `$CODEX_HOME/auth.lock`, resolves the
//! link, takes `<target>.lock` beside the target, writes a temporary file
//! there and renames it over the target. The link stays a link, so a
//! ChatGPT login's rotating refresh token is written once, where every
//! scope reads it; `auth.lock` is linked too, so two scopes never refresh
//! with one token at once. A copy per scope would let the tokens diverge;
//! a hard link would be cut by the first rename. Config edits go the same
//! way (measured: app-server `config/value/write` through a linked
//! `config.toml` replaced the target's inode; the link stayed).

use std::io;
use std::path::{Path, PathBuf};

/// What a scope's Codex home links to in the profile's: the login, Codex's
/// lock around replacing it, the operator's config and global
/// instructions.
pub(crate) const SHARED: &[&str] = &["auth.json", "auth.lock", "config.toml", "AGENTS.md"];

/// What a confined child sees of the profile's Codex home: [`SHARED`] and
/// the lock Codex puts beside `auth.json` while replacing it. The rest
/// (threads from before per-scope homes, Codex's stores) stays hidden.
pub(crate) const SHOWN: &[&str] = &[
    "auth.json",
    "auth.lock",
    "config.toml",
    "AGENTS.md",
    "auth.json.lock",
];

/// Whose Codex home a chat's runs use, for `/status` and `/doctor`.
pub(crate) fn describe(auth: &fcx_config::AuthMode) -> &'static str {
    match auth {
        fcx_config::AuthMode::ApiKey | fcx_config::AuthMode::CodexHome => {
            "this chat's own: its threads and Codex's stores are not shared with other chats (the login and config.toml are the profile's)"
        }
        fcx_config::AuthMode::InheritUser => {
            "the operator's ~/.codex, shared by every chat by design (auth = \"inherit-user\")"
        }
    }
}

/// Creates `home` (0700) and links [`SHARED`] in it to `shared`'s (which
/// is created too, so a link never dangles into nowhere once the operator
/// logs in). A regular file where a link belongs is left alone and logged:
/// it may hold the only copy of a login.
pub(crate) fn prepare(home: &Path, shared: Option<&Path>) -> io::Result<()> {
    private_dir(home)?;
    let Some(shared) = shared else {
        return Ok(());
    };
    private_dir(shared)?;
    for name in SHARED {
        link(&home.join(name), &shared.join(name))?;
    }
    Ok(())
}

#[cfg(unix)]
fn link(at: &Path, target: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(at) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(at)? == target {
                return Ok(());
            }
            std::fs::remove_file(at)?;
        }
        Ok(_) => {
            tracing::warn!(file = %at.display(), shared = %target.display(), "a scope's Codex home has its own copy of a shared file; it is left as it is");
            return Ok(());
        }
    }
    std::os::unix::fs::symlink(target, at)
}

#[cfg(not(unix))]
fn link(at: &Path, target: &Path) -> io::Result<()> {
    // No symbolic links without privileges: a copy, refreshed each start.
    match std::fs::copy(target, at) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // It holds auth and history: tighten a directory someone created
        // more open. Not fatal if we cannot (not ours).
        let meta = std::fs::metadata(dir)?;
        if meta.permissions().mode() & 0o077 != 0
            && let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not make a Codex home private");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// What [`adopt`] found for a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Adopted {
    /// The scope's home has the thread already.
    Present,
    /// Copied from the profile's Codex home (the original stays).
    Copied(PathBuf),
    /// Neither home has it.
    Missing,
}

/// Makes a thread from before per-scope homes resumable in `home`: its
/// rollout `sessions/YYYY/MM/DD/rollout-<ts>-<thread_id>.jsonl` is copied
/// from `shared` to the same place in `home`. Codex 0.169.0 resumes from
/// the rollout alone (measured: `exec resume` and app-server
/// `thread/resume` both replayed the history, without the old home's
/// sqlite rows); the original stays for the operator.
pub(crate) fn adopt(home: &Path, shared: &Path, thread_id: &str) -> io::Result<Adopted> {
    if thread_id.is_empty() || thread_id.contains(['/', '\\']) || thread_id.contains("..") {
        return Ok(Adopted::Missing);
    }
    if find_rollout(&home.join("sessions"), thread_id)?.is_some() {
        return Ok(Adopted::Present);
    }
    let from = shared.join("sessions");
    let Some(found) = find_rollout(&from, thread_id)? else {
        return Ok(Adopted::Missing);
    };
    let rel = found
        .strip_prefix(&from)
        .map_err(|_| io::Error::other("a rollout outside its sessions directory"))?;
    let to = home.join("sessions").join(rel);
    if let Some(parent) = to.parent() {
        private_dir(parent)?;
    }
    // Beside the destination first: a run that reads a half-copied file
    // would resume a truncated history.
    let tmp = to.with_extension("jsonl.copying");
    std::fs::copy(&found, &tmp)?;
    std::fs::rename(&tmp, &to)?;
    Ok(Adopted::Copied(to))
}

/// `sessions/*/*/*/rollout-*-<thread_id>.jsonl` under `sessions`.
fn find_rollout(sessions: &Path, thread_id: &str) -> io::Result<Option<PathBuf>> {
    let suffix = format!("-{thread_id}.jsonl");
    let mut level = vec![sessions.to_path_buf()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for dir in level {
            for e in read_dir_or_empty(&dir)? {
                if e.file_type()?.is_dir() {
                    next.push(e.path());
                }
            }
        }
        level = next;
    }
    for dir in level {
        for e in read_dir_or_empty(&dir)? {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("rollout-") && name.ends_with(&suffix) && e.file_type()?.is_file() {
                return Ok(Some(e.path()));
            }
        }
    }
    Ok(None)
}

fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "codex_home_tests.rs"]
mod tests;
