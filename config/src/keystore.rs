//! The encrypted file keystore behind `keystore:ID` secret references:
//! `$FCX_HOME/secrets/keystore.json` (0600), each value sealed with
//! XChaCha20-Poly1305 (random 24-byte nonce, the id as associated data) under
//! a key derived with Argon2id from a master secret kept apart from the file:
//!
//! - the OS keyring where there is one (macOS Keychain through `security`,
//!   the Secret Service through `secret-tool` on a Linux desktop);
//! - else a random key in `$FCX_HOME/secrets/keystore.key` (0600);
//! - or, when `FCX_KEYSTORE_PASSPHRASE` is set when the keystore is created,
//!   that passphrase (which fcxd must then have in its environment too).
//!
//! Which one a keystore uses is recorded in it. Headless Linux has no
//! keyring, so servers get the key file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::Secret;

/// The environment variable holding a keystore passphrase.
pub const PASSPHRASE_ENV: &str = "FCX_KEYSTORE_PASSPHRASE";
/// Set to 1 to never use the OS keyring (a service that cannot reach it).
pub const NO_KEYRING_ENV: &str = "FCX_KEYSTORE_NO_KEYRING";
const KEYRING_SERVICE: &str = "fcx-keystore";
const CHECK_PLAINTEXT: &[u8] = b"fcx keystore v1";

/// Why a secret could not be read from or written to the keystore; each
/// says what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// No secret by that id.
    #[error("no secret `{id}` in {path}; store it with `fcxctl secret set {id}`")]
    NotFound {
        /// The secret id.
        id: String,
        /// The file.
        path: PathBuf,
    },
    #[error(
        "{path} does not exist; store a secret first with `fcxctl secret set ID` (it creates the keystore)"
    )]
    /// No keystore file yet.
    NoKeystore {
        /// The file.
        path: PathBuf,
    },
    /// The keystore file is readable by others: refused.
    #[error("{path} is readable by other users (mode {mode:o}); chmod 600 {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file could not be read or written.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The file is not a keystore this build reads.
    #[error("{path} is not a keystore fcx can read: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The master key could not be had (keyring, key file or passphrase).
    #[error("the keystore's master key is unavailable: {0}")]
    Master(String),
    #[error(
        "the master key does not open {path} (a different key file, keyring entry or passphrase)"
    )]
    /// The master key does not open this keystore.
    WrongKey {
        /// The file.
        path: PathBuf,
    },
    /// A secret id outside the allowed characters.
    #[error("a secret id is 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    BadId,
}

/// Whether `id` may name a secret (it is shown in references and
/// commands, so it stays plain).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Where the master secret comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Master {
    /// The operating system's keyring.
    Keyring,
    /// A key file next to the keystore (0600).
    KeyFile,
    /// A passphrase from the environment.
    Passphrase,
}

impl Master {
    /// The word fcxctl shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Master::Keyring => "OS keyring",
            Master::KeyFile => "key file",
            Master::Passphrase => PASSPHRASE_ENV,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kdf {
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    sealed: Sealed,
    created_ms: i64,
    updated_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct File {
    version: u32,
    master: Master,
    kdf: Kdf,
    /// A known plaintext sealed under the key: a wrong master key is told
    /// apart from a damaged record.
    check: Sealed,
    secrets: BTreeMap<String, Record>,
}

/// One stored secret, without its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// When it was first stored (ms since the epoch).
    pub created_ms: i64,
    /// When it was last replaced (ms since the epoch).
    pub updated_ms: i64,
}

/// The keystore of one FCX_HOME.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
    /// FCX_HOME, the account name of its keyring entry.
    root: PathBuf,
}

impl Keystore {
    /// The keystore under `fcx_home/secrets`.
    pub fn in_home(fcx_home: &Path) -> Self {
        Keystore {
            dir: fcx_home.join("secrets"),
            root: fcx_home.to_path_buf(),
        }
    }
    /// The keystore file.
    pub fn path(&self) -> PathBuf {
        self.dir.join("keystore.json")
    }
    /// The master key file (when the master is a key file).
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("keystore.key")
    }

    /// The secret stored as `id`.
    pub fn get(&self, id: &str) -> Result<Secret, KeystoreError> {
        let path = self.path();
        let file = self.load()?.ok_or(KeystoreError::NoKeystore { path })?;
        let record = file
            .secrets
            .get(id)
            .ok_or_else(|| KeystoreError::NotFound {
                id: id.to_string(),
                path: self.path(),
            })?;
        let cipher = self.cipher(&file, false)?;
        let bytes =
            open(&cipher, &record.sealed, id.as_bytes()).ok_or_else(|| KeystoreError::Corrupt {
                path: self.path(),
                message: format!("the record of `{id}` does not decrypt"),
            })?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| KeystoreError::Corrupt {
                path: self.path(),
                message: format!("the value of `{id}` is not text"),
            })
    }

    /// Store (or replace) `id`, creating the keystore and its master key on
    /// first use. Returns where the master key lives.
    pub fn set(&self, id: &str, value: &Secret) -> Result<Master, KeystoreError> {
        if !valid_id(id) {
            return Err(KeystoreError::BadId);
        }
        let mut file = match self.load()? {
            Some(f) => f,
            None => self.create()?,
        };
        let cipher = self.cipher(&file, false)?;
        let now = now_ms();
        let created_ms = file.secrets.get(id).map_or(now, |r| r.created_ms);
        let sealed = seal(&cipher, value.expose().as_bytes(), id.as_bytes())?;
        file.secrets.insert(
            id.to_string(),
            Record {
                sealed,
                created_ms,
                updated_ms: now,
            },
        );
        self.save(&file)?;
        Ok(file.master)
    }

    /// `Ok(false)` when there was no such secret.
    pub fn remove(&self, id: &str) -> Result<bool, KeystoreError> {
        let Some(mut file) = self.load()? else {
            return Ok(false);
        };
        let had = file.secrets.remove(id).is_some();
        if had {
            self.save(&file)?;
        }
        Ok(had)
    }

    /// Ids and times, never values (no master key needed).
    pub fn list(&self) -> Result<(Option<Master>, Vec<Entry>), KeystoreError> {
        let Some(file) = self.load()? else {
            return Ok((None, Vec::new()));
        };
        let entries = file
            .secrets
            .iter()
            .map(|(id, r)| Entry {
                id: id.clone(),
                created_ms: r.created_ms,
                updated_ms: r.updated_ms,
            })
            .collect();
        Ok((Some(file.master), entries))
    }

    fn load(&self) -> Result<Option<File>, KeystoreError> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeystoreError::Io { path, source }),
        };
        check_private(&path)?;
        let file: File = serde_json::from_str(&text).map_err(|e| KeystoreError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if file.version != 1 {
            return Err(KeystoreError::Corrupt {
                path,
                message: format!("version {} is newer than this fcx", file.version),
            });
        }
        Ok(Some(file))
    }

    fn create(&self) -> Result<File, KeystoreError> {
        let master = if crate::env_secrets::var(PASSPHRASE_ENV).is_some_and(|p| !p.is_empty()) {
            Master::Passphrase
        } else if keyring::available() {
            Master::Keyring
        } else {
            Master::KeyFile
        };
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        let mut file = File {
            version: 1,
            master,
            kdf: Kdf {
                m_kib: 19 * 1024,
                t: 2,
                p: 1,
                salt: hex::encode(salt),
            },
            check: Sealed {
                nonce: String::new(),
                ciphertext: String::new(),
            },
            secrets: BTreeMap::new(),
        };
        let cipher = self.cipher(&file, true)?;
        file.check = seal(&cipher, CHECK_PLAINTEXT, b"check")?;
        Ok(file)
    }

    /// The cipher for `file`'s master key; `create` makes a missing key
    /// file or keyring entry.
    fn cipher(&self, file: &File, create: bool) -> Result<XChaCha20Poly1305, KeystoreError> {
        let secret = match file.master {
            Master::Passphrase => crate::env_secrets::var(PASSPHRASE_ENV)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    KeystoreError::Master(format!(
                        "this keystore is sealed with a passphrase: set {PASSPHRASE_ENV} (for fcxd too)"
                    ))
                })?
                .into_bytes(),
            Master::KeyFile => self.key_file_secret(create)?,
            Master::Keyring => {
                keyring::secret(&self.root, create).map_err(KeystoreError::Master)?
            }
        };
        let salt = hex::decode(&file.kdf.salt).map_err(|_| KeystoreError::Corrupt {
            path: self.path(),
            message: "bad salt".into(),
        })?;
        let params =
            Params::new(file.kdf.m_kib, file.kdf.t, file.kdf.p, Some(32)).map_err(|e| {
                KeystoreError::Corrupt {
                    path: self.path(),
                    message: format!("bad key-derivation parameters: {e}"),
                }
            })?;
        let mut key = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(&secret, &salt, &mut key)
            .map_err(|e| KeystoreError::Master(format!("key derivation failed: {e}")))?;
        let key = Key::try_from(&key[..]).map_err(|_| KeystoreError::Master("key size".into()))?;
        let cipher = XChaCha20Poly1305::new(&key);
        if !file.check.nonce.is_empty() && open(&cipher, &file.check, b"check").is_none() {
            return Err(KeystoreError::WrongKey { path: self.path() });
        }
        Ok(cipher)
    }

    fn key_file_secret(&self, create: bool) -> Result<Vec<u8>, KeystoreError> {
        let path = self.key_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                check_private(&path)?;
                Ok(text.trim().as_bytes().to_vec())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut key = [0u8; 32];
                rand::fill(&mut key);
                let text = hex::encode(key);
                write_private(&self.dir, &path, text.as_bytes())?;
                Ok(text.into_bytes())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(KeystoreError::Master(format!(
                    "the key file {} is missing (it was created with the keystore; restore it from a backup)",
                    path.display()
                )))
            }
            Err(source) => Err(KeystoreError::Io { path, source }),
        }
    }

    fn save(&self, file: &File) -> Result<(), KeystoreError> {
        let text = serde_json::to_string_pretty(file).map_err(|e| KeystoreError::Corrupt {
            path: self.path(),
            message: e.to_string(),
        })?;
        write_private(&self.dir, &self.path(), text.as_bytes())
    }
}

fn seal(cipher: &XChaCha20Poly1305, msg: &[u8], aad: &[u8]) -> Result<Sealed, KeystoreError> {
    let mut nonce = [0u8; 24];
    rand::fill(&mut nonce);
    let n = XNonce::try_from(&nonce[..]).map_err(|_| KeystoreError::Master("nonce size".into()))?;
    let ciphertext = cipher
        .encrypt(&n, Payload { msg, aad })
        .map_err(|_| KeystoreError::Master("encryption failed".into()))?;
    Ok(Sealed {
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    })
}

fn open(cipher: &XChaCha20Poly1305, s: &Sealed, aad: &[u8]) -> Option<Vec<u8>> {
    let nonce = hex::decode(&s.nonce).ok()?;
    let n = XNonce::try_from(&nonce[..]).ok()?;
    let ct = hex::decode(&s.ciphertext).ok()?;
    cipher.decrypt(&n, Payload { msg: &ct, aad }).ok()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Refuse a secret file others can read; the error carries the fix.
pub(crate) fn check_private(path: &Path) -> Result<(), KeystoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeystoreError::Open {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
    }
    let _ = path;
    Ok(())
}

/// Write through a 0600 temporary file and rename, in a 0700 directory.
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let io = |source| KeystoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    {
        use std::io::Write as _;
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// The OS keyring through its command-line tools (no extra crates; the
/// value goes over stdin, never argv).
mod keyring {
    use std::io::Write as _;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::{KEYRING_SERVICE, NO_KEYRING_ENV};

    pub(super) fn available() -> bool {
        if std::env::var(NO_KEYRING_ENV).is_ok_and(|v| v == "1") {
            return false;
        }
        if cfg!(target_os = "macos") {
            return crate::codex::find_on_path("security").is_some();
        }
        // The Secret Service lives on the session bus: none on a server.
        cfg!(target_os = "linux")
            && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
            && crate::codex::find_on_path("secret-tool").is_some()
    }

    /// The master secret stored for `root`, created when asked to.
    pub(super) fn secret(root: &Path, create: bool) -> Result<Vec<u8>, String> {
        let account = root.display().to_string();
        if let Some(v) = lookup(&account)? {
            return Ok(v.into_bytes());
        }
        if !create {
            return Err(format!(
                "no `{KEYRING_SERVICE}` entry for {account} in the OS keyring (is it unlocked, \
                 and does fcxd run in your login session?)"
            ));
        }
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        let value = hex::encode(key);
        store(&account, &value)?;
        Ok(value.into_bytes())
    }

    fn lookup(account: &str) -> Result<Option<String>, String> {
        let out = if cfg!(target_os = "macos") {
            Command::new("security")
                .args([
                    "find-generic-password",
                    "-s",
                    KEYRING_SERVICE,
                    "-a",
                    account,
                    "-w",
                ])
                .stdin(Stdio::null())
                .output()
        } else {
            Command::new("secret-tool")
                .args(["lookup", "service", KEYRING_SERVICE, "home", account])
                .stdin(Stdio::null())
                .output()
        }
        .map_err(|e| format!("cannot run the keyring tool: {e}"))?;
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((out.status.success() && !v.is_empty()).then_some(v))
    }

    fn store(account: &str, value: &str) -> Result<(), String> {
        let (program, args, input) = if cfg!(target_os = "macos") {
            // `security -i` reads the command from stdin, so the key is
            // not on any command line.
            (
                "security",
                vec!["-i".to_string()],
                format!(
                    "add-generic-password -U -s {KEYRING_SERVICE} -a \"{}\" -w {value}\n",
                    account.replace('"', "\\\"")
                ),
            )
        } else {
            (
                "secret-tool",
                [
                    "store",
                    "--label",
                    "fcx keystore",
                    "service",
                    KEYRING_SERVICE,
                    "home",
                    account,
                ]
                .map(str::to_string)
                .to_vec(),
                value.to_string(),
            )
        };
        let mut child = Command::new(program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| format!("{program}: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} could not store the master key: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

#[cfg(test)]
#[path = "keystore_tests.rs"]
mod tests;
