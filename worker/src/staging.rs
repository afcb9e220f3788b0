//! Files leaving for the chat (`/sendfile`, Codex's outbox): opened without
//! following links or blocking on FIFOs, bounded, and copied into the
//! profile's `outgoing/` directory, where the gateway picks them up (see
//! `FileOut` in worker.proto). The copy is what is sent, so a file changed
//! or swapped after the check is not what reaches the chat. Where the
//! opened file really is is checked on its descriptor (Linux): not following
//! a link guards only a path's last component, and a directory above it
//! swapped for a link between the check and the open leads elsewhere.
//!
//! The gateway marks a staged file handled by leaving `<name>.sent` next to
//! it and removing the copy; the worker collects copies and markers older
//! than [`KEEP`] (a copy the gateway never picked up, a marker kept so that
//! a replay after a gateway crash does not send twice).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use fcx_proto::v1 as pb;

/// Largest file fcx sends (the chat platform's own limit for files).
pub(crate) const MAX_FILE_BYTES: u64 = 30 * 1024 * 1024;

/// How long staged copies and markers are kept.
pub(crate) const KEEP: Duration = Duration::from_secs(24 * 3600);

/// Why a file is not sent, as the user reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("no such file")]
    Missing,
    #[error("it is a folder; name a file")]
    Directory,
    #[error("it is a symbolic link; links are not followed")]
    Link,
    #[error("it is {0}, not a regular file")]
    Special(&'static str),
    #[error("it is outside the workspace")]
    Outside,
    #[error("it is one of fcx's own files")]
    Private,
    #[error("it is empty")]
    Empty,
    #[error("it is too large: {} (fcx sends files up to {})", human_size(*.0), human_size(MAX_FILE_BYTES))]
    TooLarge(u64),
    #[error("it cannot be read: {0}")]
    Unreadable(String),
}

impl Refused {
    fn io(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => Refused::Missing,
            _ => {
                #[cfg(unix)]
                if e.raw_os_error() == Some(libc::ELOOP) {
                    return Refused::Link;
                }
                Refused::Unreadable(e.kind().to_string())
            }
        }
    }
}

/// "2.5 MB", "812 KB", "17 bytes".
pub(crate) fn human_size(n: u64) -> String {
    const MB: u64 = 1024 * 1024;
    if n >= MB {
        format!("{:.1} MB", n as f64 / MB as f64)
    } else if n >= 1024 {
        format!("{} KB", n.div_ceil(1024))
    } else if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

/// What a non-regular file is, for the refusal.
fn kind_of(ft: std::fs::FileType) -> Refused {
    if ft.is_dir() {
        return Refused::Directory;
    }
    if ft.is_symlink() {
        return Refused::Link;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Refused::Special("a named pipe");
        }
        if ft.is_socket() {
            return Refused::Special("a socket");
        }
        if ft.is_block_device() || ft.is_char_device() {
            return Refused::Special("a device");
        }
    }
    Refused::Special("not a regular file")
}

/// Opens `path` as a regular file without following a link in its last
/// component and without blocking on a FIFO; checks the type and size on
/// the open file itself.
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64), Refused> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    // A directory opens fine on Unix; the type check below refuses it.
    let f = o.open(path).map_err(|e| Refused::io(&e))?;
    let meta = f.metadata().map_err(|e| Refused::io(&e))?;
    if !meta.is_file() {
        return Err(kind_of(meta.file_type()));
    }
    let size = meta.len();
    if size > MAX_FILE_BYTES {
        return Err(Refused::TooLarge(size));
    }
    if size == 0 {
        return Err(Refused::Empty);
    }
    Ok((f, size))
}

/// Checks where the open `file` really is, by its descriptor: a link
/// swapped into a directory above it after the path was checked (by a
/// command Codex left running) would otherwise send a file from anywhere
/// the worker can read, fcx's own secrets included. Off Linux the path
/// checks and the last component's `O_NOFOLLOW` are all there is.
fn opened_within(file: &File, bounds: &Bounds<'_>) -> Result<(), Refused> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let at = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|e| Refused::Unreadable(format!("where it is: {}", e.kind())))?;
        let within = std::fs::canonicalize(bounds.within).map_err(|e| Refused::io(&e))?;
        if !at.starts_with(&within) {
            return Err(Refused::Outside);
        }
        if let Some(home) = bounds.not_in {
            let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
            if at.starts_with(&home) {
                return Err(Refused::Private);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, bounds);
    Ok(())
}

/// Copies the open file into `dir` under a fresh random name, refusing it
/// if it grew past the limit or shrank to nothing while being read.
/// Returns the staged name and the bytes copied.
pub(crate) fn stage(dir: &Path, mut file: File) -> Result<(String, u64), Refused> {
    fcx_config::private_dir(dir).map_err(|e| Refused::Unreadable(format!("staging: {e}")))?;
    let mut raw = [0u8; 16];
    rand::fill(&mut raw[..]);
    let name = hex::encode(raw);
    let path = dir.join(&name);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Refused::Unreadable(format!("staging: {}", e.kind())))?;
    let copied = (|| {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Refused::io(&e)),
            };
            total += n as u64;
            if total > MAX_FILE_BYTES {
                return Err(Refused::TooLarge(total));
            }
            out.write_all(&buf[..n])
                .map_err(|e| Refused::Unreadable(format!("staging: {}", e.kind())))?;
        }
        if total == 0 {
            return Err(Refused::Empty);
        }
        out.sync_all()
            .map_err(|e| Refused::Unreadable(format!("staging: {}", e.kind())))?;
        Ok(total)
    })();
    match copied {
        Ok(n) => Ok((name, n)),
        Err(r) => {
            let _ = std::fs::remove_file(&path);
            Err(r)
        }
    }
}

/// The name a user sees for `path`: its last component, with control
/// characters replaced, bounded.
pub(crate) fn display_name(path: &Path) -> String {
    let raw = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let clean: String = raw
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .take(200)
        .collect();
    if clean.trim().is_empty() {
        "file".into()
    } else {
        clean
    }
}

/// Where a file leaving for the chat must turn out to be, once open.
/// Read on Linux only (`opened_within`).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Bounds<'a> {
    /// Inside this directory (the workspace).
    pub(crate) within: &'a Path,
    /// And not inside this one (fcx's own home), when given.
    pub(crate) not_in: Option<&'a Path>,
}

/// Stages `path` (already resolved) and describes it for the gateway,
/// provided the file opened lies within `bounds`.
pub(crate) fn file_out(
    dir: &Path,
    path: &Path,
    source: &str,
    bounds: &Bounds<'_>,
) -> Result<pb::FileOut, Refused> {
    let (file, _) = open_regular(path)?;
    opened_within(&file, bounds)?;
    let (staged, size) = stage(dir, file)?;
    Ok(pb::FileOut {
        staged,
        name: display_name(path),
        size,
        source: source.to_string(),
    })
}

/// Removes staged copies and markers older than `keep`. Best effort: a
/// failure is logged and tried again next time.
pub(crate) fn collect_garbage(dir: &Path, keep: Duration) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for e in rd.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > keep);
        if old && let Err(err) = std::fs::remove_file(e.path()) {
            tracing::warn!(path = %e.path().display(), error = %err, "cannot remove an old staged file");
        }
    }
}

#[cfg(test)]
#[path = "staging_tests.rs"]
mod tests;
