//! Process log files under `logs/`: private to the owner, and rolled by
//! size while the process runs (not only at start), so a flood of log lines
//! (many of which outsiders can cause) cannot fill the disk: at most the
//! live file and `keep` rolled ones of `max_bytes` each ([`LogRetention`],
//! `[logs]` in config.toml), rolled ones past `max_age` removed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Home, LogRetention};

/// A log file that moves itself to `NAME.log.1` (and older ones up) and
/// starts afresh once a write would take it past `max_bytes`.
pub struct RollingFile {
    dir: PathBuf,
    name: String,
    path: PathBuf,
    retention: LogRetention,
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

/// `NAME.log.N` files in `dir`, by N.
pub fn rolled_files(dir: &Path, name: &str) -> Vec<(u32, PathBuf)> {
    let prefix = format!("{name}.log.");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix(&prefix)?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Open (append) a process log file under `logs/`, rolling it once it
/// passes `retention.max_bytes`, and creating the directory private to the
/// owner.
pub fn open_log_file(
    home: &Home,
    name: &str,
    retention: &LogRetention,
) -> std::io::Result<RollingFile> {
    let dir = home.logs_dir();
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let path = dir.join(format!("{name}.log"));
    let mut f = RollingFile {
        file: open_append(&path)?,
        dir,
        name: name.to_string(),
        path,
        retention: *retention,
        written: 0,
    };
    f.written = f.file.metadata().map(|m| m.len()).unwrap_or(0);
    if f.written > retention.max_bytes {
        f.roll()?;
    } else {
        f.prune();
    }
    Ok(f)
}

impl RollingFile {
    fn roll(&mut self) -> std::io::Result<()> {
        // Failed renames (e.g. a file removed meanwhile) still start afresh.
        let keep = self.retention.keep;
        for (n, p) in rolled_files(&self.dir, &self.name).into_iter().rev() {
            if n >= keep {
                let _ = std::fs::remove_file(&p);
            } else {
                let _ = std::fs::rename(&p, self.dir.join(format!("{}.log.{}", self.name, n + 1)));
            }
        }
        if keep > 0 {
            let _ = std::fs::rename(&self.path, self.dir.join(format!("{}.log.1", self.name)));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        self.file = open_append(&self.path)?;
        self.written = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        self.prune();
        Ok(())
    }

    /// Removes rolled files past `keep` or older than `max_age`.
    fn prune(&self) {
        let now = std::time::SystemTime::now();
        for (n, p) in rolled_files(&self.dir, &self.name) {
            let too_old = self.retention.max_age.is_some_and(|age| {
                std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d > age))
            });
            if n > self.retention.keep || too_old {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

impl Write for RollingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.retention.max_bytes {
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
        let r = LogRetention {
            max_bytes: 100,
            ..LogRetention::default()
        };
        let mut f = open_log_file(&home, "t", &r).expect("open");
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
        let mut f = open_log_file(&home, "t", &r).expect("reopen");
        f.write_all(&[b'y'; 90]).expect("write");
        assert!(before > 10, "{before}");
        assert!(size(&live) <= 100, "{}", size(&live));
    }

    #[test]
    fn rolled_files_move_up_to_keep_and_old_ones_go() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
        let r = LogRetention {
            max_bytes: 10,
            keep: 3,
            max_age: None,
        };
        let mut f = open_log_file(&home, "t", &r).expect("open");
        for i in 0..6u8 {
            f.write_all(&[b'a' + i; 10]).expect("write");
        }
        let dir = home.logs_dir();
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).expect(n);
        assert_eq!(read("t.log"), "ffffffffff");
        assert_eq!(read("t.log.1"), "eeeeeeeeee");
        assert_eq!(read("t.log.2"), "dddddddddd");
        assert_eq!(read("t.log.3"), "cccccccccc");
        assert_eq!(rolled_files(&dir, "t").len(), 3);

        // Fewer kept, and an age limit: a reopen prunes both ways.
        drop(f);
        let old = std::fs::File::options()
            .write(true)
            .open(dir.join("t.log.1"))
            .expect("open .1");
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
        old.set_modified(past).expect("age .1");
        let r = LogRetention {
            max_bytes: 100,
            keep: 2,
            max_age: Some(std::time::Duration::from_secs(86_400)),
        };
        let _f = open_log_file(&home, "t", &r).expect("reopen");
        let left: Vec<u32> = rolled_files(&dir, "t").iter().map(|(n, _)| *n).collect();
        assert_eq!(left, vec![2], "past keep and past max_age removed");

        // keep = 0: the live file alone.
        let r = LogRetention {
            max_bytes: 10,
            keep: 0,
            max_age: None,
        };
        let mut f = open_log_file(&home, "z", &r).expect("open");
        for _ in 0..3 {
            f.write_all(b"0123456789").expect("write");
        }
        assert!(rolled_files(&dir, "z").is_empty());
        assert_eq!(read("z.log"), "0123456789");
    }
}
