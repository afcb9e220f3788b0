//! The profile's card-callback signing keys on disk.

use std::path::Path;

use serde_json::{Value, json};

use crate::callback::KeyRing;

/// The profile's card-callback signing keys, kept with its secrets:
/// `$FCX_HOME/profiles/NAME/callback-keys.json` (0600), created on first use.
/// Rotation adds a version; older versions stay accepted until retired.
pub fn load_keys(profile_dir: &Path) -> std::io::Result<KeyRing> {
    let path = profile_dir.join("callback-keys.json");
    let parsed = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    if let Some(v) = parsed
        && let Some(ring) = ring_from(&v)
    {
        return Ok(ring);
    }
    let mut key = vec![0u8; 32];
    rand::fill(&mut key[..]);
    let v = json!({"current": 1, "keys": {"1": hex_encode(&key)}, "retired": []});
    std::fs::create_dir_all(profile_dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).write(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write as _;
        opts.open(&tmp)?.write_all(v.to_string().as_bytes())?;
    }
    std::fs::rename(&tmp, &path)?;
    KeyRing::new(1, key).map_err(|e| std::io::Error::other(e.to_string()))
}

fn ring_from(v: &Value) -> Option<KeyRing> {
    let current = u32::try_from(v["current"].as_u64()?).ok()?;
    let keys = v["keys"].as_object()?;
    let mut ring = KeyRing::new(
        current,
        hex_decode(keys.get(&current.to_string())?.as_str()?)?,
    )
    .ok()?;
    for (ver, k) in keys {
        let Ok(ver) = ver.parse::<u32>() else {
            continue;
        };
        if ver != current
            && let Some(bytes) = k.as_str().and_then(hex_decode)
        {
            let _ = ring.accept(ver, bytes);
        }
    }
    for r in v["retired"].as_array().into_iter().flatten() {
        if let Some(ver) = r.as_u64().and_then(|n| u32::try_from(n).ok()) {
            let _ = ring.retire(ver);
        }
    }
    Some(ring)
}

pub(crate) fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::{self, Claims, Expected};
    use crate::supervisor::now_ms;

    #[test]
    fn keys_are_created_once_and_read_back() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = load_keys(d.path()).expect("create");
        let b = load_keys(d.path()).expect("load");
        let c = Claims::new(
            "r",
            "chat:oc",
            "oc",
            "ou",
            "stop",
            "fp",
            now_ms() / 1000 + 60,
        );
        let t = a.sign(&c).expect("sign");
        let exp = Expected {
            operator: "ou",
            scope: "chat:oc",
            chat_id: "oc",
            ..Default::default()
        };
        assert!(callback::verify(&t, &b, now_ms() / 1000, &exp).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join("callback-keys.json"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
    }
}
