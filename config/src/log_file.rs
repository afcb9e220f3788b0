//! Process log files under `logs/`: private to the owner, and rolled by
//! size while the process runs (not only at start), so a flood of log lines
//! (many of which outsiders can cause) cannot fill the disk: at most the
//! live file and one `.1` of `max_bytes` each.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use crate::Home;

/// A log file that moves itself to `NAME.log.1` and starts afresh once a
/// write would take it past `max_bytes`.
pub struct RollingFile {
    path: PathBuf,
    old: PathBuf,
    max_bytes: u64,
    written: u64,
    file: File,
}

fn open_append(path: &PathBuf) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Open (append) a process log file under `logs/`, rolling it to `.1` once
/// it passes `max_bytes`, and creating the directory private to the owner.
pub fn open_log_file(home: &Home, name: &str, max_bytes: u64) -> std::io::Result<RollingFile> {
    let dir = home.logs_dir();
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let path = dir.join(format!("{name}.log"));
    let old = dir.join(format!("{name}.log.1"));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > max_bytes) {
        let _ = std::fs::rename(&path, &old);
    }
    let file = open_append(&path)?;
    let written = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(RollingFile {
        path,
        old,
        max_bytes,
        written,
        file,
    })
}

impl RollingFile {
    fn roll(&mut self) -> std::io::Result<()> {
        // A failed rename (e.g. the file was removed) still starts afresh.
        let _ = std::fs::rename(&self.path, &self.old);
        self.file = open_append(&self.path)?;
        self.written = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(())
    }
}

impl Write for RollingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.roll()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rolls_by_size_while_running_and_keeps_one_old_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
        let mut f = open_log_file(&home, "t", 100).expect("open");
        let line = [b'x'; 39];
        for _ in 0..10 {
            f.write_all(&line).expect("write");
            f.write_all(b"\n").expect("write");
        }
        let live = home.logs_dir().join("t.log");
        let old = home.logs_dir().join("t.log.1");
        let size = |p: &PathBuf| std::fs::metadata(p).expect("exists").len();
        assert!(size(&live) <= 100, "{}", size(&live));
        assert!(size(&old) <= 100, "{}", size(&old));
        assert!(size(&live) > 0 && size(&old) > 0);
        // Reopened, the size written so far still counts.
        drop(f);
        let before = size(&live);
        let mut f = open_log_file(&home, "t", 100).expect("reopen");
        f.write_all(&[b'y'; 90]).expect("write");
        assert!(before > 10, "{before}");
        assert!(size(&live) <= 100, "{}", size(&live));
    }
}
