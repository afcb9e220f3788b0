//! Where and how Codex may run for a scope: the workspace (by realpath), the
//! sandbox, network access, and the policy fingerprint that decides whether a
//! stored Codex thread may be resumed.

use std::path::{Path, PathBuf};

use fcx_config::{AuthMode, Home, Profile};
use sha2::{Digest, Sha256};

use crate::runner::Sandbox;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPolicy {
    /// Realpath of the workspace.
    pub cwd: PathBuf,
    pub sandbox: Sandbox,
    pub network: bool,
    /// Hex SHA-256 over everything that must match for a thread to resume.
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "the workspace {0} does not exist; create it or point profiles.<name>.workspaces.default at an existing directory"
    )]
    Missing(String),
    #[error("the workspace {0} is not a directory")]
    NotDir(String),
    #[error("the workspace {path} is too broad ({why}); choose a project directory")]
    TooBroad { path: String, why: &'static str },
}

/// Resolve the policy for a run in `scope`.
pub fn resolve(profile: &Profile, home: &Home, scope: &str) -> Result<RunPolicy, PolicyError> {
    let cwd = workspace(&profile.workspaces.default, home)?;
    let sandbox = Sandbox::WorkspaceWrite;
    let network = false;
    let fingerprint = fingerprint(&FingerprintInput {
        scope,
        cwd: &cwd,
        sandbox,
        network,
        auth: &profile.codex.auth,
        codex_home: &codex_home_identity(profile, home),
        model: profile.codex.model.as_deref().unwrap_or(""),
        overrides: &profile.codex.overrides,
    });
    Ok(RunPolicy {
        cwd,
        sandbox,
        network,
        fingerprint,
    })
}

/// The Codex home a profile's children use, as an identity string.
pub fn codex_home_identity(profile: &Profile, home: &Home) -> String {
    match profile.codex.auth {
        AuthMode::InheritUser => "inherit-user".into(),
        _ => home.codex_home(&profile.name).display().to_string(),
    }
}

/// Realpath of `path`, refusing roots that would hand Codex the whole machine.
pub fn workspace(path: &Path, home: &Home) -> Result<PathBuf, PolicyError> {
    let shown = path.display().to_string();
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(_) => return Err(PolicyError::Missing(shown)),
    };
    if !real.is_dir() {
        return Err(PolicyError::NotDir(shown));
    }
    if real.parent().is_none() {
        return Err(PolicyError::TooBroad {
            path: shown,
            why: "it is a filesystem root",
        });
    }
    if let Ok(h) = std::fs::canonicalize(home.user_home())
        && h == real
    {
        return Err(PolicyError::TooBroad {
            path: shown,
            why: "it is your home directory itself",
        });
    }
    Ok(real)
}

pub struct FingerprintInput<'a> {
    pub scope: &'a str,
    pub cwd: &'a Path,
    pub sandbox: Sandbox,
    pub network: bool,
    pub auth: &'a AuthMode,
    pub codex_home: &'a str,
    pub model: &'a str,
    pub overrides: &'a [(String, String)],
}

/// SHA-256 over a canonical, length-prefixed encoding, so no two different
/// inputs can encode to the same bytes.
pub fn fingerprint(i: &FingerprintInput<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        h.update((name.len() as u32).to_be_bytes());
        h.update(name.as_bytes());
        h.update((value.len() as u64).to_be_bytes());
        h.update(value);
    };
    field("v", b"fcx-fingerprint-1");
    field("scope", i.scope.as_bytes());
    field("cwd", i.cwd.as_os_str().as_encoded_bytes());
    field("sandbox", i.sandbox.as_str().as_bytes());
    field("network", if i.network { b"1" } else { b"0" });
    field("auth", i.auth.as_str().as_bytes());
    field("codex_home", i.codex_home.as_bytes());
    field("model", i.model.as_bytes());
    let mut ov: Vec<_> = i.overrides.iter().collect();
    ov.sort();
    for (k, v) in ov {
        field("override.key", k.as_bytes());
        field("override.value", v.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(cwd: &'a Path, ov: &'a [(String, String)]) -> FingerprintInput<'a> {
        FingerprintInput {
            scope: "chat:a",
            cwd,
            sandbox: Sandbox::WorkspaceWrite,
            network: false,
            auth: &AuthMode::ApiKey,
            codex_home: "/h",
            model: "",
            overrides: ov,
        }
    }

    #[test]
    fn fingerprint_changes_with_each_input() {
        let cwd = PathBuf::from("/w");
        let base = fingerprint(&input(&cwd, &[]));
        assert_eq!(base, fingerprint(&input(&cwd, &[])));
        let other = PathBuf::from("/w2");
        assert_ne!(base, fingerprint(&input(&other, &[])));
        let mut i = input(&cwd, &[]);
        i.sandbox = Sandbox::ReadOnly;
        assert_ne!(base, fingerprint(&i));
        let mut i = input(&cwd, &[]);
        i.network = true;
        assert_ne!(base, fingerprint(&i));
        let mut i = input(&cwd, &[]);
        i.scope = "chat:b";
        assert_ne!(base, fingerprint(&i));
        let ov = [("a".to_string(), "1".to_string())];
        assert_ne!(base, fingerprint(&input(&cwd, &ov)));
    }

    #[test]
    fn workspace_must_exist_and_not_be_a_root() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
        assert!(matches!(
            workspace(&d.path().join("nope"), &home),
            Err(PolicyError::Missing(_))
        ));
        assert!(matches!(
            workspace(Path::new("/"), &home),
            Err(PolicyError::TooBroad { .. })
        ));
        assert!(matches!(
            workspace(d.path(), &home),
            Err(PolicyError::TooBroad { .. })
        ));
        std::fs::create_dir(d.path().join("proj")).expect("mkdir");
        let w = workspace(&d.path().join("proj/../proj"), &home).expect("ok");
        assert!(w.ends_with("proj"));
    }
}
