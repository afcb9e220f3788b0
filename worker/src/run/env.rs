//! What a Codex child is started with: the binary and its environment.

use std::path::PathBuf;

use fcx_config::{AuthMode, Home, Profile};

use crate::runner::ChildEnv;
use crate::runner::exec::confine::Hide;

/// The environment a Codex child gets for `profile` in `scope`: its
/// `CODEX_HOME` is the continuity scope's own (auth api-key and
/// codex-home; inherit-user keeps the operator's `~/.codex`, shared by
/// design). The error is the sentence the user sees (never the secret).
pub(crate) fn child_env(profile: &Profile, home: &Home, scope: &str) -> Result<ChildEnv, String> {
    let p = profile;
    let mut env = ChildEnv {
        remove: vec!["FCX_HOME".into(), "FCX_WORKER_SOCKET".into()],
        ..Default::default()
    };
    let paths = home.profile(&p.name);
    let continuity = fcx_proto::v1::Scope::continuity_of(scope);
    match p.codex.auth {
        AuthMode::ApiKey => {
            env.codex_home = Some(paths.scope_codex_home(&continuity));
            let r = p.codex.api_key.as_ref().ok_or_else(|| {
                format!(
                    "profile {} uses auth = \"api-key\" but has no api_key reference",
                    p.name
                )
            })?;
            let key = r.resolve().map_err(|e| {
                format!(
                    "cannot read the Codex API key: {e}; fix profiles.{}.codex.api_key",
                    p.name
                )
            })?;
            if let Some(var) = r.env_var() {
                env.remove.push(var.to_string());
            }
            env.api_key = Some(key);
        }
        AuthMode::CodexHome => env.codex_home = Some(paths.scope_codex_home(&continuity)),
        AuthMode::InheritUser => {}
    }
    if env.codex_home.is_some() {
        env.shared_home = Some(paths.codex_home());
    }
    // Denied by Codex's sandbox on every platform; hidden by the namespace
    // too where it works.
    env.hide = Some(Hide {
        root: home.root().to_path_buf(),
        keep: env.codex_home.iter().cloned().collect(),
        only: env
            .shared_home
            .clone()
            .map(|d| (d, crate::runner::codex_home::SHOWN)),
        // The operator's own Codex login, unless this profile uses it.
        also: if p.codex.auth == AuthMode::InheritUser {
            Vec::new()
        } else {
            vec![home.user_home().join(".codex")]
        },
    });
    env.namespace = crate::runner::exec::confine::available().is_ok();
    Ok(env)
}

/// The codex binary as a path, found by the one rule fcxd, the console and
/// fcxctl share ([`fcx_config::codex::locate`]). The error is the sentence
/// the user sees, ending in the fix (the pinned install command).
pub(crate) fn resolve_binary(profile: &Profile) -> Result<PathBuf, String> {
    fcx_config::codex::locate(&profile.codex.binary, &profile.name)
        .map(|l| l.path)
        .map_err(|e| format!("Codex cannot start: {e}"))
}
