//! The config overrides a Codex child runs with, kept off its command line.
//!
//! `-c key=value` on argv is readable by every local user (`ps`,
//! `/proc/<pid>/cmdline`), and the operator's `codex.config` may hold
//! provider URLs, headers or tokens. So `codex exec` reads them from a
//! profile file layered on its `CODEX_HOME` config (`-p NAME` layers
//! `$CODEX_HOME/NAME.config.toml`, 0.169.0), named by a digest of its
//! content (so runs with the same settings share one file, and nothing needs
//! cleaning up); `codex app-server` gets them as the `config` of
//! `thread/start` and `thread/resume`, over its stdin.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{RunSpec, Sandbox};

/// The variable Codex reads an API key from.
pub(crate) const API_KEY_VAR: &str = "CODEX_API_KEY";

/// Codex's list of variables its commands do not inherit.
const EXCLUDE_KEY: &str = "shell_environment_policy.exclude";

/// A TOML array literal: `existing` (a TOML array literal from config.toml,
/// if any) plus the API key variable.
pub(crate) fn with_key_excluded(existing: Option<&str>) -> String {
    let ours = format!("\"{API_KEY_VAR}\"");
    match existing.map(str::trim) {
        Some(list) if list.starts_with('[') && list.ends_with(']') => {
            let inner = list[1..list.len() - 1].trim().trim_end_matches(',').trim();
            if inner.is_empty() {
                format!("[{ours}]")
            } else {
                format!("[{inner}, {ours}]")
            }
        }
        _ => format!("[{ours}]"),
    }
}

/// `(dotted.key, toml-literal)` overrides every runner applies, in order
/// (a later one wins): the operator's config, the permissions profile that
/// denies fcx's files (or, in full access, nothing) with network access,
/// and the API key hidden from the commands Codex runs.
pub(crate) fn overrides(spec: &RunSpec) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let hide_key = spec.env.api_key.is_some();
    let mut operator_excludes = None;
    for (k, v) in &spec.overrides {
        if hide_key && k == EXCLUDE_KEY {
            operator_excludes = Some(v.as_str());
            continue;
        }
        out.push((k.clone(), v.clone()));
    }
    if let Some(profile) = super::deny::overrides(spec) {
        // fcx's files denied by Codex's sandbox; the network switch is in
        // the profile (the legacy key would be ignored next to it).
        out.extend(profile);
    } else if spec.sandbox == Sandbox::WorkspaceWrite {
        out.push((
            "sandbox_workspace_write.network_access".into(),
            spec.network.to_string(),
        ));
    }
    if hide_key {
        // Codex itself needs the key; the commands it runs must not see it
        // (measured with 0.169.0: by default they inherit it). An exclude
        // list of the operator's own is kept, with the key added.
        out.push((EXCLUDE_KEY.into(), with_key_excluded(operator_excludes)));
    }
    out
}

/// A literal as Codex's `-c` reads it: TOML, else the raw string.
fn value(literal: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {literal}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(literal.to_string()))
}

/// The overrides as one TOML table, dotted keys split as `-c` splits them.
fn table(ov: &[(String, String)]) -> toml::Table {
    let mut root = toml::Table::new();
    'each: for (key, literal) in ov {
        let parts: Vec<&str> = key.split('.').collect();
        let Some((last, path)) = parts.split_last() else {
            continue;
        };
        let mut t = &mut root;
        for p in path {
            let slot = t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !slot.is_table() {
                // A later, deeper key replaces a scalar, as with `-c`.
                *slot = toml::Value::Table(toml::Table::new());
            }
            match slot {
                toml::Value::Table(next) => t = next,
                _ => continue 'each,
            }
        }
        t.insert(last.to_string(), value(literal));
    }
    root
}

/// The overrides as the text of a Codex config file.
pub(crate) fn profile_toml(ov: &[(String, String)]) -> String {
    toml::to_string(&table(ov)).unwrap_or_default()
}

/// The overrides as app-server's `config` object: dotted keys, JSON values.
pub(crate) fn as_json(ov: &[(String, String)]) -> serde_json::Map<String, serde_json::Value> {
    ov.iter()
        .map(|(k, lit)| {
            let v = serde_json::to_value(value(lit)).unwrap_or(serde_json::Value::Null);
            (k.clone(), v)
        })
        .collect()
}

/// The Codex home a child reads its config from: fcx's for the profile,
/// else the operator's (`$CODEX_HOME`, else `~/.codex`).
pub(crate) fn codex_home_of(spec: &RunSpec) -> Option<PathBuf> {
    if let Some(h) = &spec.env.codex_home {
        return Some(h.clone());
    }
    if let Some((_, v)) = spec.env.set.iter().rev().find(|(k, _)| k == "CODEX_HOME") {
        return Some(PathBuf::from(v));
    }
    match std::env::var_os("CODEX_HOME") {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".codex")),
    }
}

/// Writes the overrides as `<codex_home>/<name>.config.toml` (private) and
/// returns `name`, for `-p`.
pub(crate) async fn write_profile(
    codex_home: &Path,
    ov: &[(String, String)],
) -> io::Result<String> {
    let text = profile_toml(ov);
    let digest = Sha256::digest(text.as_bytes());
    let name = format!("fcx-{}", hex::encode(&digest[..8]));
    let path = codex_home.join(format!("{name}.config.toml"));
    if tokio::fs::read(&path).await.ok().as_deref() == Some(text.as_bytes()) {
        return Ok(name);
    }
    tokio::fs::create_dir_all(codex_home).await?;
    let mut raw = [0u8; 8];
    rand::fill(&mut raw[..]);
    let tmp = codex_home.join(format!(".{name}.{}.tmp", hex::encode(raw)));
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let written = async {
        use tokio::io::AsyncWriteExt as _;
        let mut f = opts.open(&tmp).await?;
        f.write_all(text.as_bytes()).await?;
        f.flush().await?;
        tokio::fs::rename(&tmp, &path).await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written.map(|()| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dotted_keys_become_tables_and_literals_keep_their_type() {
        let o = ov(&[
            ("model_provider", "\"mock\""),
            ("model_providers.mock.base_url", "\"http://127.0.0.1:1/v1\""),
            ("model_providers.mock.stream_max_retries", "0"),
            ("shell_environment_policy.exclude", "[\"A\", \"B\"]"),
            ("odd", "not toml at all"),
        ]);
        let text = profile_toml(&o);
        let back: toml::Table = toml::from_str(&text).expect("valid toml");
        assert_eq!(back["model_provider"].as_str(), Some("mock"));
        assert_eq!(
            back["model_providers"]["mock"]["base_url"].as_str(),
            Some("http://127.0.0.1:1/v1")
        );
        assert_eq!(
            back["model_providers"]["mock"]["stream_max_retries"].as_integer(),
            Some(0)
        );
        assert_eq!(
            back["shell_environment_policy"]["exclude"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(back["odd"].as_str(), Some("not toml at all"));
        let j = as_json(&o);
        assert_eq!(j["model_providers.mock.stream_max_retries"], 0);
        assert_eq!(j["shell_environment_policy.exclude"][1], "B");
    }

    #[tokio::test]
    async fn the_profile_file_is_private_and_shared_by_equal_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = ov(&[("model", "\"gpt-5.5\"")]);
        let a = write_profile(dir.path(), &o).await.expect("write");
        let b = write_profile(dir.path(), &o).await.expect("write");
        assert_eq!(a, b);
        let c = write_profile(dir.path(), &ov(&[("model", "\"o3\"")]))
            .await
            .expect("write");
        assert_ne!(a, c);
        let p = dir.path().join(format!("{a}.config.toml"));
        assert_eq!(
            std::fs::read_to_string(&p).expect("file"),
            "model = \"gpt-5.5\"\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }
}
