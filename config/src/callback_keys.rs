//! The profile's card-callback signing keys on disk:
//! `$FCX_HOME/profiles/NAME/callback-keys.json` (0600).
//!
//! ```json
//! {"current": 2, "keys": {"2": "<hex, 32 bytes>", "1": "…"}, "retired": [0],
//!  "created": {"0": 1700000000, "1": 1710000000, "2": 1720000000}}
//! ```
//!
//! `keys` holds only versions that still verify; a retired version keeps its
//! number in `retired` (so it is refused, and never handed out again) but
//! its key material is gone. `created` (unix seconds) is optional: files
//! written before it existed still load.
//!
//! This lives in fcx-config, not in the gateway, because fcxd (which signs
//! with the keys and creates the file on first use) and fcxctl (which
//! rotates and retires) must share one reading of the format, and fcxctl
//! should not link the gateway's HTTP/TLS stack to get it.
//!
//! Writers (fcxd's first-use creation, `fcxctl keys rotate|retire`) take an
//! OS advisory lock on `callback-keys.json.lock` for read-modify-write and
//! replace the file atomically (temporary file, fsync, rename), so readers
//! never see half a file and two writers never lose each other's version.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The key file's name inside a profile directory.
pub const FILE_NAME: &str = "callback-keys.json";
/// Size of a newly generated key; HMAC-SHA256 wants at least its output size.
pub const KEY_BYTES: usize = 32;
/// A writer holds the lock for a few milliseconds; waiting this long means
/// something is wrong and the operator should hear about it.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Why the callback key file could not be read, changed or written; each
/// names the file, because fcxd and fcxctl both report it to an operator.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// The new contents could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// The file is not a key file this build reads.
    #[error("{path} is not a valid callback key file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Another writer held the lock too long.
    #[error("{path} stayed locked by another writer (fcxd or fcxctl) for {secs}s")]
    Busy {
        /// The file.
        path: PathBuf,
        /// How long it waited.
        secs: u64,
    },
    #[error(
        "version {0} is the current signing key and cannot be retired; rotate to a new key first"
    )]
    /// The signing key cannot be retired while it signs.
    RetiringCurrent(u32),
    /// No such key version.
    #[error("there is no key version {version} (versions: {known})")]
    UnknownVersion {
        /// The version asked for.
        version: u32,
        /// The versions there are.
        known: String,
    },
    /// Key versions ran out (u32::MAX reached).
    #[error("no key version is left after {0}")]
    Exhausted(u32),
}

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Signs new tokens (and verifies).
    Current,
    /// Verifies tokens signed before a rotation.
    Accepted,
    /// Refused; its key material is gone.
    Retired,
}

impl VersionState {
    /// The word fcxctl shows.
    pub fn as_str(&self) -> &'static str {
        match self {
            VersionState::Current => "current",
            VersionState::Accepted => "accepted",
            VersionState::Retired => "retired",
        }
    }
}

/// One version as shown to an operator: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// The key version tokens carry.
    pub version: u32,
    /// What it may still do.
    pub state: VersionState,
    /// Unix seconds; `None` for keys from files written before this was kept.
    pub created: Option<i64>,
}

/// The parsed file. Invariants (checked on parse, kept by every method):
/// `current` has key material; no version is both live and retired.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFile {
    current: u32,
    keys: BTreeMap<u32, Vec<u8>>,
    retired: BTreeSet<u32>,
    created: BTreeMap<u32, i64>,
}

impl fmt::Debug for KeyFile {
    // Key material must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("current", &self.current)
            .field("live", &self.keys.keys().collect::<Vec<_>>())
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct RawFile {
    current: u32,
    keys: BTreeMap<String, String>,
    #[serde(default)]
    retired: Vec<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    created: BTreeMap<String, i64>,
}

impl KeyFile {
    /// A file with one fresh random key as version 1.
    pub fn generate(now: i64) -> Self {
        KeyFile {
            current: 1,
            keys: BTreeMap::from([(1, random_key())]),
            retired: BTreeSet::new(),
            created: BTreeMap::from([(1, now)]),
        }
    }

    /// Parses the file's text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyFileError> {
        let corrupt = |message: String| KeyFileError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawFile = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        let version = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| corrupt(format!("`{s}` is not a key version")))
        };
        let retired: BTreeSet<u32> = raw.retired.into_iter().collect();
        let mut keys = BTreeMap::new();
        for (v, hex_key) in &raw.keys {
            let v = version(v)?;
            // Listed as retired too: retired wins, as it always did.
            if retired.contains(&v) {
                continue;
            }
            let key = hex::decode(hex_key)
                .map_err(|_| corrupt(format!("the key of version {v} is not hex")))?;
            if key.len() < KEY_BYTES {
                return Err(corrupt(format!(
                    "the key of version {v} is shorter than {KEY_BYTES} bytes"
                )));
            }
            keys.insert(v, key);
        }
        if retired.contains(&raw.current) {
            return Err(corrupt(format!(
                "the current version {} is listed as retired",
                raw.current
            )));
        }
        if !keys.contains_key(&raw.current) {
            return Err(corrupt(format!(
                "no key for the current version {}",
                raw.current
            )));
        }
        let mut created = BTreeMap::new();
        for (v, at) in &raw.created {
            created.insert(version(v)?, *at);
        }
        Ok(KeyFile {
            current: raw.current,
            keys,
            retired,
            created,
        })
    }

    /// The file's contents (key material included: written 0600 only).
    pub fn to_json(&self) -> String {
        let raw = RawFile {
            current: self.current,
            keys: self
                .keys
                .iter()
                .map(|(v, k)| (v.to_string(), hex::encode(k)))
                .collect(),
            retired: self.retired.iter().copied().collect(),
            created: self
                .created
                .iter()
                .map(|(v, at)| (v.to_string(), *at))
                .collect(),
        };
        // A map of strings and numbers always serializes.
        serde_json::to_string_pretty(&raw).unwrap_or_default() + "\n"
    }

    /// The version new tokens are signed with.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// The key of a version that still verifies.
    pub fn key(&self, version: u32) -> Option<&[u8]> {
        self.keys.get(&version).map(Vec::as_slice)
    }

    /// Versions that still verify (the current one included), ascending.
    pub fn live(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.keys.iter().map(|(v, k)| (*v, k.as_slice()))
    }

    /// Retired versions, ascending.
    pub fn retired(&self) -> impl Iterator<Item = u32> + '_ {
        self.retired.iter().copied()
    }

    /// Every version ever issued, ascending, without key material.
    pub fn versions(&self) -> Vec<VersionInfo> {
        let all: BTreeSet<u32> = self.keys.keys().chain(&self.retired).copied().collect();
        all.into_iter()
            .map(|v| VersionInfo {
                version: v,
                state: if v == self.current {
                    VersionState::Current
                } else if self.retired.contains(&v) {
                    VersionState::Retired
                } else {
                    VersionState::Accepted
                },
                created: self.created.get(&v).copied(),
            })
            .collect()
    }

    /// Adds `key` as a new version above every version ever used (retired
    /// ones included, so a number never comes back) and makes it current.
    pub fn rotate(&mut self, key: Vec<u8>, now: i64) -> Result<u32, KeyFileError> {
        let highest = self
            .keys
            .keys()
            .chain(&self.retired)
            .chain(self.created.keys())
            .copied()
            .max()
            .unwrap_or(0);
        let next = highest
            .checked_add(1)
            .ok_or(KeyFileError::Exhausted(highest))?;
        self.keys.insert(next, key);
        self.created.insert(next, now);
        self.current = next;
        Ok(next)
    }

    /// Forgets `version`'s key and refuses it from now on. `Ok(false)` when
    /// it was already retired.
    pub fn retire(&mut self, version: u32) -> Result<bool, KeyFileError> {
        if version == self.current {
            return Err(KeyFileError::RetiringCurrent(version));
        }
        if self.retired.contains(&version) {
            return Ok(false);
        }
        if self.keys.remove(&version).is_none() {
            return Err(KeyFileError::UnknownVersion {
                version,
                known: self
                    .versions()
                    .iter()
                    .map(|i| format!("{} ({})", i.version, i.state.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        self.retired.insert(version);
        Ok(true)
    }
}

/// A fresh random key of [`KEY_BYTES`].
pub fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; KEY_BYTES];
    rand::fill(&mut key[..]);
    key
}

/// The key file inside a profile directory.
pub fn path_in(profile_dir: &Path) -> PathBuf {
    profile_dir.join(FILE_NAME)
}

/// Seconds since the epoch (0 for a clock before it), as the file records them.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The file at `path`, or `None` when it does not exist yet.
pub fn read(path: &Path) -> Result<Option<KeyFile>, KeyFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyFileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    KeyFile::parse(&text, path).map(Some)
}

/// Reads an already open key file; for callers that need the file's
/// metadata to match exactly what was read (change detection).
pub fn read_open(file: &mut File, path: &Path) -> Result<KeyFile, KeyFileError> {
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|source| KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    KeyFile::parse(&text, path)
}

/// What [`load_or_create`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The file was there and parsed.
    Existing,
    /// There was no file; a new key was made.
    Created,
    /// The file did not parse; it was renamed to `kept` (never deleted) and
    /// a new one was created.
    ReplacedCorrupt {
        /// Where the unreadable file now is.
        kept: PathBuf,
        /// Why it did not parse.
        reason: String,
    },
}

/// The keys at `path`, creating the file (version 1) on first use. A file
/// that does not parse is moved aside, not overwritten; one that cannot be
/// read at all is an error (it may be fine once permissions are fixed).
pub fn load_or_create(path: &Path) -> Result<(KeyFile, Origin), KeyFileError> {
    match read(path) {
        Ok(Some(f)) => return Ok((f, Origin::Existing)),
        Ok(None) | Err(KeyFileError::Corrupt { .. }) => {}
        Err(e) => return Err(e),
    }
    let _lock = lock(path)?;
    // Another writer may have finished while this one waited.
    let origin = match read(path) {
        Ok(Some(f)) => return Ok((f, Origin::Existing)),
        Ok(None) => Origin::Created,
        Err(KeyFileError::Corrupt { message, .. }) => {
            let kept = sibling(path, &format!(".corrupt-{}", unix_now()));
            std::fs::rename(path, &kept).map_err(|source| KeyFileError::Write {
                path: path.to_path_buf(),
                source,
            })?;
            Origin::ReplacedCorrupt {
                kept,
                reason: message,
            }
        }
        Err(e) => return Err(e),
    };
    let f = KeyFile::generate(unix_now());
    write_atomic(path, &f)?;
    Ok((f, origin))
}

/// Adds a fresh key as the new current version, creating the file when it
/// does not exist. Returns the file as written.
pub fn rotate(path: &Path) -> Result<KeyFile, KeyFileError> {
    let _lock = lock(path)?;
    let f = match read(path)? {
        Some(mut f) => {
            f.rotate(random_key(), unix_now())?;
            f
        }
        None => KeyFile::generate(unix_now()),
    };
    write_atomic(path, &f)?;
    Ok(f)
}

/// Retires `version` (see [`KeyFile::retire`]). Returns the file and
/// whether anything changed; a missing file knows no version.
pub fn retire(path: &Path, version: u32) -> Result<(KeyFile, bool), KeyFileError> {
    let _lock = lock(path)?;
    let Some(mut f) = read(path)? else {
        return Err(KeyFileError::UnknownVersion {
            version,
            known: "none yet".into(),
        });
    };
    let changed = f.retire(version)?;
    if changed {
        write_atomic(path, &f)?;
    }
    Ok((f, changed))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Holds the writers' lock until dropped. An OS lock (flock/LockFileEx)
/// rather than a create-new marker file: the kernel releases it when the
/// holder exits, however it exits, so there is no stale lock to detect. The
/// lock file itself stays; deleting it would let two writers lock
/// different inodes.
pub struct WriteLock {
    _file: File,
}

/// Takes the writers' lock for the key file at `path`, waiting up to a few
/// seconds for another writer.
pub fn lock(path: &Path) -> Result<WriteLock, KeyFileError> {
    let lock_path = sibling(path, ".lock");
    let io_err = |source| KeyFileError::Write {
        path: lock_path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(io_err)?;
    }
    let file = private_options()
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err)?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(WriteLock { _file: file }),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(KeyFileError::Busy {
                    path: lock_path,
                    secs: LOCK_WAIT.as_secs(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
    }
}

/// Replaces the file at `path` with `f` (0600), so that a reader sees the
/// old file or the new one, and a crash leaves one of them on disk. Callers
/// hold [`lock`].
pub fn write_atomic(path: &Path, f: &KeyFile) -> Result<(), KeyFileError> {
    let err = |source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(err)?;
    }
    let tmp = sibling(path, ".tmp");
    // A leftover from a crash could carry another mode; start clean.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let written = private_options()
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(f.to_json().as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    // Makes the rename itself durable; best effort (not every filesystem
    // lets a directory be synced).
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
        }
        #[cfg(not(unix))]
        {
            let _ = p;
            0o600
        }
    }

    #[test]
    fn files_without_created_still_load() {
        let k = "ab".repeat(32);
        let text = format!(r#"{{"current": 1, "keys": {{"1": "{k}"}}, "retired": []}}"#);
        let f = KeyFile::parse(&text, Path::new("x")).expect("old format");
        assert_eq!(f.current(), 1);
        assert_eq!(
            f.versions(),
            vec![VersionInfo {
                version: 1,
                state: VersionState::Current,
                created: None
            }]
        );
        // And without "retired" at all.
        let text = format!(r#"{{"current": 1, "keys": {{"1": "{k}"}}}}"#);
        assert!(KeyFile::parse(&text, Path::new("x")).is_ok());
    }

    #[test]
    fn round_trip_keeps_everything_but_retired_keys() {
        let mut f = KeyFile::generate(100);
        assert_eq!(f.rotate(vec![7; 32], 200).expect("rotate"), 2);
        assert_eq!(f.rotate(vec![8; 32], 300).expect("rotate"), 3);
        assert!(f.retire(1).expect("retire"));
        let back = KeyFile::parse(&f.to_json(), Path::new("x")).expect("parse");
        assert_eq!(back, f);
        assert_eq!(back.key(1), None);
        assert_eq!(back.key(2), Some(&[7u8; 32][..]));
        let states: Vec<_> = back.versions().iter().map(|v| v.state).collect();
        assert_eq!(
            states,
            [
                VersionState::Retired,
                VersionState::Accepted,
                VersionState::Current
            ]
        );
        let json = f.to_json();
        assert!(!json.contains(&hex::encode(KeyFile::generate(0).keys[&1].clone())));
        assert!(!format!("{f:?}").contains(&hex::encode([7u8; 32])));
    }

    #[test]
    fn retired_numbers_are_never_reused() {
        let mut f = KeyFile::generate(0);
        f.rotate(vec![2; 32], 0).expect("rotate");
        f.rotate(vec![3; 32], 0).expect("rotate");
        f.retire(2).expect("retire 2");
        // Drop 3 from the picture entirely: 2 (retired) still counts.
        let mut g = f.clone();
        g.keys.remove(&3);
        g.created.remove(&3);
        g.current = 1;
        assert_eq!(g.rotate(vec![4; 32], 0).expect("rotate"), 3);
        assert_eq!(f.rotate(vec![4; 32], 0).expect("rotate"), 4);
    }

    #[test]
    fn retire_refuses_current_and_unknown() {
        let mut f = KeyFile::generate(0);
        f.rotate(vec![2; 32], 0).expect("rotate");
        assert!(matches!(f.retire(2), Err(KeyFileError::RetiringCurrent(2))));
        let e = f.retire(9).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "there is no key version 9 (versions: 1 (accepted), 2 (current))"
        );
        assert!(f.retire(1).expect("retire"));
        assert!(!f.retire(1).expect("again"), "already retired is no change");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let k = "ab".repeat(32);
        let cases = [
            ("", "EOF"),
            ("{}", "missing field"),
            (
                r#"{"current": 2, "keys": {"1": "K"}}"#,
                "no key for the current version 2",
            ),
            (
                r#"{"current": 1, "keys": {"1": "K"}, "retired": [1]}"#,
                "listed as retired",
            ),
            (r#"{"current": 1, "keys": {"1": "zz"}}"#, "not hex"),
            (
                r#"{"current": 1, "keys": {"1": "abcd"}}"#,
                "shorter than 32",
            ),
            (
                r#"{"current": 1, "keys": {"x": "K"}}"#,
                "`x` is not a key version",
            ),
            (r#"{"current": -1, "keys": {"1": "K"}}"#, "invalid value"),
        ];
        for (text, want) in cases {
            let text = text.replace('K', &k);
            let e = KeyFile::parse(&text, Path::new("/p/callback-keys.json")).expect_err(&text);
            let msg = e.to_string();
            assert!(
                msg.starts_with("/p/callback-keys.json is not a valid"),
                "{msg}"
            );
            assert!(msg.contains(want), "{text}: {msg}");
            assert!(!msg.contains(&k), "{msg}");
        }
    }

    #[test]
    fn first_use_creates_a_private_file_and_corrupt_files_are_kept() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = path_in(&d.path().join("profiles/work"));
        let (a, origin) = load_or_create(&p).expect("create");
        assert_eq!(origin, Origin::Created);
        assert_eq!(mode(&p), 0o600);
        let (b, origin) = load_or_create(&p).expect("load");
        assert_eq!((b, origin), (a, Origin::Existing));
        std::fs::write(&p, "{not json").expect("corrupt");
        let (c, origin) = load_or_create(&p).expect("replace");
        let Origin::ReplacedCorrupt { kept, .. } = origin else {
            panic!("{origin:?}");
        };
        assert_eq!(std::fs::read_to_string(kept).expect("kept"), "{not json");
        assert_eq!(read(&p).expect("read"), Some(c));
    }

    #[test]
    fn concurrent_rotations_each_get_their_own_version() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = path_in(d.path());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || rotate(&p).map(|f| f.current()))
            })
            .collect();
        let mut got: Vec<u32> = threads
            .into_iter()
            .map(|t| t.join().expect("join").expect("rotate"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, (1..=8).collect::<Vec<_>>());
        let f = read(&p).expect("read").expect("exists");
        assert_eq!(f.current(), 8);
        assert_eq!(f.live().count(), 8);
        assert_eq!(mode(&p), 0o600);
    }
}
