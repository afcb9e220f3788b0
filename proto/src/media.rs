//! The media store's layout: fcxd writes downloaded attachments into a
//! profile's `media/` directory and the worker reads them, so both name the
//! files through these helpers alone.
//!
//! ```text
//! media/blobs/<sha256>        the bytes, by content (0600)
//! media/keys/<sha256(key)>    platform resource key → content hash (0600)
//! media/msgs/<sha256(id)>.pb  a message's MediaManifest (0600)
//! ```

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Hex SHA-256 of `bytes`: a blob's name.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `s` can name a blob (64 lowercase hex digits): a manifest read
/// from disk never makes a path out of anything else.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where the bytes with content hash `sha256` live.
pub fn blob_path(media: &Path, sha256: &str) -> PathBuf {
    media.join("blobs").join(sha256)
}

/// Where the content hash of platform resource `key` is remembered.
pub fn key_path(media: &Path, key: &str) -> PathBuf {
    media.join("keys").join(content_hash(key.as_bytes()))
}

/// Where the manifest of message `message_id` lives.
pub fn manifest_path(media: &Path, message_id: &str) -> PathBuf {
    media
        .join("msgs")
        .join(format!("{}.pb", content_hash(message_id.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_come_from_the_platform() {
        let m = Path::new("/m");
        let k = key_path(m, "../../etc/passwd");
        assert_eq!(k.parent(), Some(Path::new("/m/keys")));
        let p = manifest_path(m, "om_../x");
        assert_eq!(p.parent(), Some(Path::new("/m/msgs")));
        assert!(is_hash(&content_hash(b"x")));
        assert!(!is_hash("../x"));
        assert!(!is_hash(&"A".repeat(64)));
    }
}
