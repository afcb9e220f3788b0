//! The profile's media store (`media/` in the profile directory): fcxd is
//! its only writer, the worker reads it. Layout: `fcx_proto::media`.
//!
//! - blobs by content hash, so the same bytes are kept once;
//! - a resource key → hash map, so a key sent again (forwarded, re-sent)
//!   is not downloaded again;
//! - one manifest per message: what became of each of its attachments.
//!
//! Everything is written to a temporary name and renamed, so a reader never
//! sees half a file; directories are 0700 and files 0600. Entries unused
//! for [`MAX_AGE`] are collected ([`MediaStore::collect`]); "used" is the
//! file's modification time, touched when a key is reused.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fcx_proto::media::{blob_path, content_hash, is_hash, key_path, manifest_path};
use fcx_proto::v1::MediaManifest;
use prost::Message as _;

/// How long an entry nobody used is kept.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub(crate) struct MediaStore {
    dir: PathBuf,
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

/// What one collection pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Collected {
    pub(crate) blobs: usize,
    pub(crate) keys: usize,
    pub(crate) manifests: usize,
}

impl MediaStore {
    /// Opens (creating, 0700) the store at `dir`.
    pub(crate) fn open(dir: PathBuf) -> std::io::Result<Self> {
        for sub in ["", "blobs", "keys", "msgs"] {
            fcx_config::private_dir(&dir.join(sub))?;
        }
        Ok(MediaStore { dir })
    }

    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The blob already stored for resource `key`, touched as used.
    pub(crate) fn by_key(&self, key: &str) -> Option<Stored> {
        let kp = key_path(&self.dir, key);
        let sha = std::fs::read_to_string(&kp).ok()?;
        let sha = sha.trim();
        if !is_hash(sha) {
            return None;
        }
        let bp = blob_path(&self.dir, sha);
        let size = std::fs::metadata(&bp).ok()?.len();
        let now = SystemTime::now();
        touch(&bp, now);
        touch(&kp, now);
        Some(Stored {
            sha256: sha.to_string(),
            size,
        })
    }

    /// Store `bytes` (once per content) and remember them for `key`.
    pub(crate) fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<Stored> {
        let sha = content_hash(bytes);
        let bp = blob_path(&self.dir, &sha);
        if std::fs::metadata(&bp).is_ok_and(|m| m.len() == bytes.len() as u64) {
            touch(&bp, SystemTime::now());
        } else {
            write_atomic(&bp, bytes)?;
        }
        write_atomic(&key_path(&self.dir, key), sha.as_bytes())?;
        Ok(Stored {
            sha256: sha,
            size: bytes.len() as u64,
        })
    }

    pub(crate) fn has_manifest(&self, message_id: &str) -> bool {
        manifest_path(&self.dir, message_id).exists()
    }

    pub(crate) fn put_manifest(&self, m: &MediaManifest) -> std::io::Result<()> {
        write_atomic(&manifest_path(&self.dir, &m.message_id), &m.encode_to_vec())
    }

    /// Remove what was not used since `now - max_age`: blobs, keys (also
    /// those whose blob is gone) and manifests.
    pub(crate) fn collect(&self, now: SystemTime, max_age: Duration) -> Collected {
        let old = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() > max_age)
                .unwrap_or(false)
        };
        let mut c = Collected::default();
        for p in entries(&self.dir.join("blobs")) {
            if old(&p) && std::fs::remove_file(&p).is_ok() {
                c.blobs += 1;
            }
        }
        for p in entries(&self.dir.join("keys")) {
            let dangling = std::fs::read_to_string(&p)
                .map(|s| !is_hash(s.trim()) || !blob_path(&self.dir, s.trim()).exists())
                .unwrap_or(true);
            if (old(&p) || dangling) && std::fs::remove_file(&p).is_ok() {
                c.keys += 1;
            }
        }
        for p in entries(&self.dir.join("msgs")) {
            if old(&p) && std::fs::remove_file(&p).is_ok() {
                c.manifests += 1;
            }
        }
        c
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn touch(p: &Path, now: SystemTime) {
    if let Ok(f) = std::fs::OpenOptions::new().append(true).open(p) {
        let _ = f.set_modified(now);
    }
}

/// Write `bytes` to `path` via a private temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let mut raw = [0u8; 8];
    rand::fill(&mut raw[..]);
    let tmp = dir.join(format!(".tmp-{}", hex::encode(raw)));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
