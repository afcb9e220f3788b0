//! The profile's card-callback signing keys on disk, and a handle that
//! follows the file while fcxd runs.
//!
//! The file format (and its locking and atomic writes) lives in
//! [`fcx_config::callback_keys`], shared with `fcxctl keys`; this module
//! turns it into a [`KeyRing`] and notices when an operator rotates or
//! retires a version, so no restart is needed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use fcx_config::callback_keys::{self as keyfile, KeyFile, Origin};

use crate::ingress::callback::{
    self, Claims, Denied, Expected, KeyError, KeyRing, NonceStore, SignError,
};

/// How often the file is looked at (one `stat`): rare enough to cost
/// nothing in the card-ACK path, soon enough that a retired key stops
/// working right after `fcxctl keys retire`.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The profile's card-callback signing keys, kept with its secrets:
/// `$FCX_HOME/profiles/NAME/callback-keys.json` (0600), created on first use.
/// Rotation adds a version; older versions stay accepted until retired.
#[cfg(test)]
pub(crate) fn load_keys(profile_dir: &Path) -> io::Result<KeyRing> {
    let path = keyfile::path_in(profile_dir);
    let (file, origin) = keyfile::load_or_create(&path).map_err(io::Error::other)?;
    log_origin(&path, &origin);
    ring_from(&file).map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

fn log_origin(path: &Path, origin: &Origin) {
    match origin {
        Origin::Existing => {}
        Origin::Created => {
            tracing::info!(path = %path.display(), "created the card signing keys");
        }
        Origin::ReplacedCorrupt { kept, reason } => tracing::warn!(
            path = %path.display(),
            kept = %kept.display(),
            %reason,
            "the card signing key file did not parse; it was kept aside and a new key \
             created (buttons already sent stop working)"
        ),
    }
}

/// The ring for a parsed file: the current key signs, other live keys
/// verify, retired versions are refused as retired.
pub(crate) fn ring_from(f: &KeyFile) -> Result<KeyRing, KeyError> {
    let current = f.current();
    let key = f.key(current).ok_or(KeyError::Unknown(current))?;
    let mut ring = KeyRing::new(current, key.to_vec())?;
    for (v, k) in f.live() {
        if v != current {
            ring.accept(v, k.to_vec())?;
        }
    }
    for v in f.retired() {
        ring.add_retired(v)?;
    }
    Ok(ring)
}

/// What identifies one version of the file without reading it. The file is
/// only ever replaced by rename, so a new inode (or size, or mtime) means a
/// new file even where mtime is coarse.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            },
        }
    }
}

struct Watch {
    /// The file the ring in memory came from.
    stamp: Option<Stamp>,
    /// The problem already logged, so a broken file warns once, not every
    /// second; cleared when a good file is loaded.
    problem: Option<String>,
}

struct Shared {
    path: PathBuf,
    ring: RwLock<Arc<KeyRing>>,
    every_ms: u64,
    epoch: Instant,
    /// Milliseconds after `epoch` before which nobody looks at the file.
    next_check_ms: AtomicU64,
    watch: Mutex<Watch>,
}

/// The profile's signing keys as fcxd uses them: cheap to clone and share
/// between the card surface (signs) and the callback checker (verifies).
/// Picks up a rotation or retirement from the file, looking at most once a
/// second. A file that becomes unreadable or invalid changes nothing in
/// memory: the last good ring stays in use and one warning is logged.
#[derive(Clone)]
pub(crate) struct SharedKeys(Arc<Shared>);

impl std::fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeys")
            .field("path", &self.0.path)
            .field("ring", &*self.ring())
            .finish()
    }
}

impl SharedKeys {
    /// The keys in `profile_dir`, creating the file on first use (like
    /// [`load_keys`]).
    pub(crate) fn open(profile_dir: &Path) -> io::Result<Self> {
        Self::open_with(profile_dir, CHECK_EVERY)
    }

    fn open_with(profile_dir: &Path, every: Duration) -> io::Result<Self> {
        let path = keyfile::path_in(profile_dir);
        let (file, origin) = keyfile::load_or_create(&path).map_err(io::Error::other)?;
        log_origin(&path, &origin);
        let ring =
            ring_from(&file).map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        let keys = SharedKeys(Arc::new(Shared {
            path,
            ring: RwLock::new(Arc::new(ring)),
            every_ms,
            epoch: Instant::now(),
            next_check_ms: AtomicU64::new(every_ms),
            watch: Mutex::new(Watch {
                stamp: None,
                problem: None,
            }),
        }));
        // Pins the stamp to what is on disk now (the file may have changed
        // since it was read above; then this reads it again).
        keys.refresh();
        Ok(keys)
    }

    /// The ring in use now (after a reload, if one is due). Hold it only for
    /// one sign or verify: a later call may return a newer ring.
    pub(crate) fn ring(&self) -> Arc<KeyRing> {
        self.maybe_refresh();
        self.current_ring()
    }

    /// Signs with the current key.
    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        self.ring().sign(claims)
    }

    /// [`callback::verify_once`] against the current ring.
    pub(crate) fn verify_once(
        &self,
        token: &str,
        now: i64,
        expected: &Expected<'_>,
        nonces: &dyn NonceStore,
    ) -> Result<Claims, Denied> {
        callback::verify_once(token, &self.ring(), now, expected, nonces)
    }

    #[cfg(test)]
    pub(crate) fn current_version(&self) -> u32 {
        self.ring().current_version()
    }

    fn current_ring(&self) -> Arc<KeyRing> {
        // A poisoned lock only means a panic elsewhere while swapping in a
        // complete ring; the value is still a whole ring.
        self.0
            .ring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn maybe_refresh(&self) {
        let now = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        if now < self.0.next_check_ms.load(Ordering::Relaxed) {
            return;
        }
        self.0
            .next_check_ms
            .store(now.saturating_add(self.0.every_ms), Ordering::Relaxed);
        self.refresh();
    }

    /// Looks at the file now and reloads it if it changed.
    pub(crate) fn refresh(&self) {
        // Someone else is looking right now: their answer will do.
        let mut watch = match self.0.watch.try_lock() {
            Ok(w) => w,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        match self.reload_if_changed(&watch) {
            Ok(None) => {}
            Ok(Some((stamp, ring))) => {
                if watch.stamp.is_some() {
                    tracing::info!(path = %self.0.path.display(), keys = ?ring, "card signing keys reloaded");
                }
                *self.0.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
                watch.stamp = Some(stamp);
                watch.problem = None;
            }
            Err(problem) => {
                if watch.problem.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(
                        path = %self.0.path.display(),
                        %problem,
                        keeping = ?*self.current_ring(),
                        "cannot reload the card signing keys; the keys already loaded stay in use"
                    );
                    watch.problem = Some(problem);
                }
            }
        }
    }

    /// `Ok(None)` when the file is the one already loaded. A failed load
    /// records no stamp, so a file made readable again (chmod does not
    /// change the stamp) is picked up on the next look.
    fn reload_if_changed(&self, watch: &Watch) -> Result<Option<(Stamp, KeyRing)>, String> {
        let path = &self.0.path;
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if watch.stamp.as_ref() == Some(&Stamp::of(&meta)) {
            return Ok(None);
        }
        let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
        // The stamp of the file actually read: if it is replaced meanwhile,
        // the next look sees a different one and reads again.
        let stamp = Stamp::of(&f.metadata().map_err(|e| e.to_string())?);
        let file = keyfile::read_open(&mut f, path).map_err(|e| e.to_string())?;
        let ring = ring_from(&file).map_err(|e| e.to_string())?;
        Ok(Some((stamp, ring)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::callback::{self, Claims, Expected, MemoryNonceStore};
    use crate::link::supervisor::now_ms;

    fn claims() -> Claims {
        Claims::new(
            "r",
            "chat:oc",
            "oc",
            "ou",
            "stop",
            "fp",
            now_ms() / 1000 + 60,
        )
    }

    fn expected() -> Expected<'static> {
        Expected {
            operator: "ou",
            scope: "chat:oc",
            chat_id: "oc",
            ..Default::default()
        }
    }

    fn verify(t: &str, keys: &SharedKeys) -> Result<Claims, Denied> {
        callback::verify(t, &keys.ring(), now_ms() / 1000, &expected())
    }

    /// A handle that looks at the file on every call.
    fn eager(dir: &Path) -> SharedKeys {
        SharedKeys::open_with(dir, Duration::ZERO).expect("open")
    }

    fn file(dir: &Path) -> PathBuf {
        keyfile::path_in(dir)
    }

    #[test]
    fn keys_are_created_once_and_read_back() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = load_keys(d.path()).expect("create");
        let b = load_keys(d.path()).expect("load");
        let t = a.sign(&claims()).expect("sign");
        assert!(callback::verify(&t, &b, now_ms() / 1000, &expected()).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file(d.path()))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn files_from_before_created_was_kept_still_load() {
        let d = tempfile::tempdir().expect("tempdir");
        let (k1, k2) = ("11".repeat(32), "22".repeat(32));
        std::fs::write(
            file(d.path()),
            format!(r#"{{"current": 2, "keys": {{"1": "{k1}", "2": "{k2}"}}, "retired": []}}"#),
        )
        .expect("write");
        let keys = SharedKeys::open(d.path()).expect("open");
        assert_eq!(keys.current_version(), 2);
        let old = callback::sign(&claims(), &[0x11; 32], 1).expect("sign");
        assert!(verify(&old, &keys).is_ok());
    }

    #[test]
    fn a_rotation_is_picked_up_and_old_tokens_stay_accepted() {
        let d = tempfile::tempdir().expect("tempdir");
        let keys = eager(d.path());
        let other_clone = keys.clone();
        let old = keys.sign(&claims()).expect("sign");
        assert_eq!(keys.current_version(), 1);
        keyfile::rotate(&file(d.path())).expect("rotate");
        let new = other_clone.sign(&claims()).expect("sign");
        assert_eq!(keys.current_version(), 2);
        assert!(verify(&old, &keys).is_ok(), "v1 still accepted");
        assert!(verify(&new, &keys).is_ok());
        let store = MemoryNonceStore::default();
        assert!(
            keys.verify_once(&old, now_ms() / 1000, &expected(), &store)
                .is_ok()
        );
    }

    #[test]
    fn a_retired_version_is_refused_without_a_restart() {
        let d = tempfile::tempdir().expect("tempdir");
        let keys = eager(d.path());
        let old = keys.sign(&claims()).expect("sign");
        keyfile::rotate(&file(d.path())).expect("rotate");
        let new = keys.sign(&claims()).expect("sign");
        keyfile::retire(&file(d.path()), 1).expect("retire");
        assert_eq!(verify(&old, &keys), Err(Denied::RetiredKey));
        assert!(verify(&new, &keys).is_ok());
        // And for a fresh fcxd reading the same file.
        let restarted = SharedKeys::open(d.path()).expect("open");
        assert_eq!(verify(&old, &restarted), Err(Denied::RetiredKey));
        assert!(verify(&new, &restarted).is_ok());
    }

    #[test]
    fn a_corrupt_or_missing_file_keeps_the_last_good_ring() {
        let d = tempfile::tempdir().expect("tempdir");
        let keys = eager(d.path());
        keyfile::rotate(&file(d.path())).expect("rotate");
        let t = keys.sign(&claims()).expect("sign");
        assert_eq!(keys.current_version(), 2);
        let good = std::fs::read_to_string(file(d.path())).expect("read");

        std::fs::write(file(d.path()), "{\"current\": 1, \"ke").expect("corrupt");
        for _ in 0..3 {
            assert_eq!(keys.current_version(), 2);
            assert!(verify(&t, &keys).is_ok());
        }
        std::fs::write(file(d.path()), r#"{"current": 1, "keys": {}}"#).expect("invalid");
        assert!(verify(&t, &keys).is_ok());
        std::fs::remove_file(file(d.path())).expect("rm");
        assert!(verify(&t, &keys).is_ok());
        assert!(keys.sign(&claims()).is_ok());

        // A good file again is picked up.
        std::fs::write(file(d.path()), &good).expect("restore");
        keyfile::rotate(&file(d.path())).expect("rotate");
        assert_eq!(keys.current_version(), 3);
        assert!(verify(&t, &keys).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_file_keeps_the_last_good_ring() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let keys = eager(d.path());
        let t = keys.sign(&claims()).expect("sign");
        keyfile::rotate(&file(d.path())).expect("rotate");
        let set = |mode| {
            std::fs::set_permissions(file(d.path()), std::fs::Permissions::from_mode(mode))
                .expect("chmod")
        };
        set(0o000);
        // Root reads it anyway; then there is nothing to test here.
        if std::fs::read(file(d.path())).is_err() {
            assert_eq!(keys.current_version(), 1);
            assert!(verify(&t, &keys).is_ok());
        }
        // Readable again: loaded although size and mtime did not change.
        set(0o600);
        assert_eq!(keys.current_version(), 2);
    }

    #[test]
    fn the_file_is_looked_at_at_most_once_per_interval() {
        let d = tempfile::tempdir().expect("tempdir");
        let keys = SharedKeys::open_with(d.path(), Duration::from_secs(3600)).expect("open");
        assert_eq!(keys.current_version(), 1);
        keyfile::rotate(&file(d.path())).expect("rotate");
        assert_eq!(keys.current_version(), 1, "not looked at again yet");
        keys.refresh();
        assert_eq!(keys.current_version(), 2);
    }

    #[test]
    fn debug_output_has_no_key_material() {
        let d = tempfile::tempdir().expect("tempdir");
        let keys = eager(d.path());
        let f = keyfile::read(&file(d.path())).expect("read").expect("file");
        let hex = hex::encode(f.key(1).expect("key"));
        assert!(!format!("{keys:?}").contains(&hex));
        assert!(!format!("{keys:?}").contains(&hex[..16]));
    }
}
