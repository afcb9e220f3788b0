//! The environment a worker is started with.
//!
//! Not fcxd's whole environment: fcxd may have been started with `env:`
//! secrets (the app secret, the webhook keys, other profiles' Codex keys) and
//! whatever else the operator's shell held. A worker gets an allow-list
//! (what a shell, Codex and fcx itself need), plus the variable its own
//! profile's `codex.api_key` reads, and never a variable another secret
//! reference of the config names. The worker in turn starts Codex from an
//! allow-list of its own.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};

use fcx_config::{Config, Home, SecretRef};

use fcx_config::env_allow::{BASE_NAMES, PASS_ENV};

/// Always passed when set, besides the shared [`BASE_NAMES`]: the worker's
/// own backtraces, and the OS keyring a keystore secret may live in.
const NAMES: &[&str] = &["RUST_BACKTRACE", "DBUS_SESSION_BUS_ADDRESS"];

/// Passed by prefix: locale, Codex's own, fcx's own (log filter, keystore,
/// umask, test hooks), XDG directories.
const PREFIXES: &[&str] = &["LC_", "CODEX_", "FCX_", "XDG_"];

/// The variables of `vars` a worker for `profile` may inherit, given the
/// config it serves (`None` when it cannot be read: then only the
/// allow-list passes, and the worker reports the config error itself).
pub(crate) fn worker_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    config: Option<&Config>,
    profile: &str,
) -> Vec<(OsString, OsString)> {
    let mut own: Option<String> = None;
    let mut secret: BTreeSet<String> = BTreeSet::new();
    for p in config.map(|c| c.profiles.values()).into_iter().flatten() {
        if let Some(v) = p.codex.api_key.as_ref().and_then(SecretRef::env_var) {
            if p.name == profile {
                own = Some(v.to_string());
            } else {
                secret.insert(v.to_string());
            }
        }
        if let Some(app) = &p.app {
            let refs = std::iter::once(&app.app_secret).chain(
                app.webhook
                    .iter()
                    .flat_map(|w| w.encrypt_key.iter().chain(w.verification_token.iter())),
            );
            secret.extend(refs.filter_map(SecretRef::env_var).map(str::to_string));
        }
    }
    // Two profiles may share one key variable: this profile still needs it.
    if let Some(o) = &own {
        secret.remove(o);
    }
    let vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
    let extra = vars
        .iter()
        .find(|(k, _)| k == OsStr::new(PASS_ENV))
        .map(|(_, v)| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extra: Vec<&str> = extra
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    vars.into_iter()
        .filter(|(k, _)| {
            let Some(k) = k.to_str() else {
                return false;
            };
            if secret.contains(k) {
                return false;
            }
            own.as_deref() == Some(k)
                || BASE_NAMES.contains(&k)
                || NAMES.contains(&k)
                || PREFIXES.iter().any(|p| k.starts_with(p))
                || extra.iter().any(|pat| match pat.strip_suffix('*') {
                    Some(prefix) => k.starts_with(prefix),
                    None => *pat == k,
                })
        })
        .collect()
}

/// [`worker_env`] for this process's environment (with the secret
/// variables taken at start) and the config in `home`.
pub(crate) fn for_worker(home: &Home, profile: &str) -> Vec<(OsString, OsString)> {
    let config = match Config::load(home) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(profile, error = %e, "config unreadable; the worker gets only the base environment");
            None
        }
    };
    // The secret variables fcxd took out of its environment at start are
    // offered too: the filter passes only this profile's own key.
    let vars = std::env::vars_os().chain(fcx_config::env_secrets::taken_vars());
    worker_env(vars, config.as_ref(), profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> Vec<(OsString, OsString)> {
        names
            .iter()
            .map(|n| (OsString::from(n), OsString::from("v")))
            .collect()
    }

    fn names(v: Vec<(OsString, OsString)>) -> Vec<String> {
        v.into_iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path().to_path_buf());
        Config::parse(&home.config_path(), text, &home).expect("config")
    }

    #[test]
    fn secrets_of_the_config_do_not_reach_the_worker() {
        let cfg = config(
            r#"
[profiles.a.codex]
auth = "api-key"
api_key = "env:A_CODEX_KEY"
[profiles.a.app]
app_id = "cli_a"
app_secret = "env:CODEX_APP_SECRET"
[profiles.a.app.webhook]
listen = "127.0.0.1:9000"
encrypt_key = "env:FCX_ENCRYPT_KEY"
verification_token = "env:VTOKEN"
[profiles.b.codex]
auth = "api-key"
api_key = "env:B_CODEX_KEY"
"#,
        );
        let mut env = vars(&[
            "PATH",
            "HOME",
            "LC_ALL",
            "FCX_LOG",
            "A_CODEX_KEY",
            "B_CODEX_KEY",
            "CODEX_APP_SECRET",
            "FCX_ENCRYPT_KEY",
            "VTOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "FAKE_CODEX_LOG_DIR",
        ]);
        env.push(("FCX_CODEX_PASS_ENV".into(), "FAKE_CODEX_*".into()));
        assert_eq!(
            names(worker_env(env.clone(), Some(&cfg), "a")),
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "FCX_LOG",
                "A_CODEX_KEY",
                "FAKE_CODEX_LOG_DIR",
                "FCX_CODEX_PASS_ENV"
            ]
        );
        assert_eq!(
            names(worker_env(env.clone(), Some(&cfg), "b")),
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "FCX_LOG",
                "B_CODEX_KEY",
                "FAKE_CODEX_LOG_DIR",
                "FCX_CODEX_PASS_ENV"
            ]
        );
        // Without a config only the allow-list passes (a secret under an
        // allowed prefix is only known as one from the config).
        assert_eq!(
            names(worker_env(env, None, "a")),
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "FCX_LOG",
                "CODEX_APP_SECRET",
                "FCX_ENCRYPT_KEY",
                "FAKE_CODEX_LOG_DIR",
                "FCX_CODEX_PASS_ENV"
            ]
        );
    }
}
