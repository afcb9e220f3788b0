//! `<workspace>/.fcx/inbox/`: where a run's attachments land, under names
//! that cannot leave the folder.

use std::io::{Read as _, Write as _};

use std::path::{Path, PathBuf};

/// The inbox, relative to the workspace.
pub(crate) const INBOX: &str = ".fcx/inbox";
/// Longest file name written (bytes), well under every file system's 255.
const MAX_NAME: usize = 120;

#[derive(Debug, thiserror::Error)]
pub(crate) enum InboxError {
    #[error("{0} is not a plain folder inside the workspace")]
    NotAFolder(String),
    #[error("cannot write into the inbox: {0}")]
    Io(#[from] std::io::Error),
}

/// `name` as one safe file name: no path separators, no `..`, no control
/// or NUL characters, no leading dot, at most [`MAX_NAME`] bytes (cut on a
/// character boundary, the extension kept). Empty → `fallback`.
pub(crate) fn sanitize(name: &str, fallback: &str) -> String {
    // Only the last component of whatever path the sender wrote.
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut s: String = base
        .chars()
        .map(|c| {
            // Control characters, bidi overrides and invisible marks (a
            // name that reads as `gpj.exe` backwards), Windows-reserved.
            if c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
                || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|')
            {
                '_'
            } else {
                c
            }
        })
        .collect();
    s = s.trim().trim_start_matches('.').trim().to_string();
    if s.is_empty() || s.chars().all(|c| c == '.' || c == '_') {
        s = fallback.to_string();
    }
    if s.len() > MAX_NAME {
        let (stem, ext) = split_ext(&s);
        let ext = if ext.len() <= 16 { ext } else { "" };
        let mut cut = MAX_NAME.saturating_sub(ext.len());
        while !stem.is_char_boundary(cut.min(stem.len())) {
            cut -= 1;
        }
        s = format!("{}{ext}", &stem[..cut.min(stem.len())]);
    }
    s
}

/// ("report", ".pdf") for "report.pdf"; a leading dot is not an extension.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// Copy `src` into the workspace's inbox as `name` (already sanitised),
/// returning the path relative to the workspace. The same content under the
/// same name is reused; another file of that name gets `name (2)`, ….
/// Symlinks are never followed: not for `.fcx`, not for `inbox`, not for the
/// file itself.
pub(crate) fn place(
    workspace: &Path,
    name: &str,
    src: &Path,
    size: u64,
    sha256: &str,
) -> Result<PathBuf, InboxError> {
    let dir = ensure_dir(workspace, &workspace.join(".fcx"))?;
    let dir = ensure_dir(workspace, &dir.join("inbox"))?;
    let (stem, ext) = split_ext(name);
    for n in 1..=100u32 {
        let candidate = if n == 1 {
            name.to_string()
        } else {
            format!("{stem} ({n}){ext}")
        };
        let target = dir.join(&candidate);
        match std::fs::symlink_metadata(&target) {
            Ok(m)
                if m.file_type().is_file()
                    && m.len() == size
                    && hash_file(&target).as_deref() == Some(sha256) =>
            {
                return Ok(Path::new(INBOX).join(candidate));
            }
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o644).custom_flags(libc::O_NOFOLLOW);
        }
        let mut out = match opts.open(&target) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        };
        let copied = std::fs::File::open(src).and_then(|mut i| std::io::copy(&mut i, &mut out));
        let inside = std::fs::canonicalize(&target)
            .ok()
            .zip(std::fs::canonicalize(&dir).ok())
            .is_some_and(|(t, d)| t.parent() == Some(d.as_path()));
        if let Err(e) = copied.and_then(|_| out.flush()) {
            let _ = std::fs::remove_file(&target);
            return Err(e.into());
        }
        if !inside {
            let _ = std::fs::remove_file(&target);
            return Err(InboxError::NotAFolder(INBOX.into()));
        }
        return Ok(Path::new(INBOX).join(candidate));
    }
    Err(InboxError::Io(std::io::Error::other(
        "too many files of that name",
    )))
}

/// `dir` exists as a real directory (created if missing) whose realpath is
/// inside `workspace`'s.
fn ensure_dir(workspace: &Path, dir: &Path) -> Result<PathBuf, InboxError> {
    let rel = dir
        .strip_prefix(workspace)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => {}
        Ok(_) => return Err(InboxError::NotAFolder(rel)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir()) {
                    return Err(InboxError::NotAFolder(rel));
                }
            }
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    }
    let real = std::fs::canonicalize(dir)?;
    let ws = std::fs::canonicalize(workspace)?;
    if !real.starts_with(&ws) {
        return Err(InboxError::NotAFolder(rel));
    }
    Ok(dir.to_path_buf())
}

/// Hex SHA-256 of a file's bytes.
fn hash_file(p: &Path) -> Option<String> {
    use sha2::{Digest as _, Sha256};
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf).ok()? {
            0 => return Some(hex::encode(h.finalize())),
            n => h.update(&buf[..n]),
        }
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;
