//! Which of the worker's environment variables a Codex child may see.
//!
//! The child starts from an empty environment plus this allow-list, so
//! secrets fcxd or the worker were started with (an `env:` reference's
//! variable, tokens of the operator's shell) never reach Codex or the
//! commands it runs. fcx adds what Codex needs itself (`CODEX_HOME`, the
//! API key) on top.

use std::ffi::{OsStr, OsString};

use fcx_config::env_allow::BASE_NAMES as NAMES;
pub(crate) use fcx_config::env_allow::PASS_ENV;

/// Passed by prefix.
const PREFIXES: &[&str] = &["LC_", "CODEX_"];

/// Never passed, whatever the lists say: fcx sets the key itself when the
/// profile uses one.
const NEVER: &[&str] = &["CODEX_API_KEY", "FCX_HOME", "FCX_WORKER_SOCKET", PASS_ENV];

/// The variables of `vars` a Codex child may inherit; `extra` is the value
/// of [`PASS_ENV`].
pub(crate) fn allowed(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    extra: Option<&OsStr>,
) -> Vec<(OsString, OsString)> {
    let extra = extra.map(|e| e.to_string_lossy().into_owned());
    let extra: Vec<&str> = extra
        .as_deref()
        .map(|e| {
            e.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    vars.into_iter()
        .filter(|(k, _)| {
            let Some(k) = k.to_str() else {
                return false;
            };
            if NEVER.contains(&k) {
                return false;
            }
            NAMES.contains(&k)
                || PREFIXES.iter().any(|p| k.starts_with(p))
                || extra.iter().any(|pat| match pat.strip_suffix('*') {
                    Some(prefix) => k.starts_with(prefix),
                    None => *pat == k,
                })
        })
        .collect()
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

    #[test]
    fn only_the_allow_list_passes() {
        let got = names(allowed(
            vars(&[
                "PATH",
                "HOME",
                "LC_ALL",
                "CODEX_SANDBOX_NETWORK_DISABLED",
                "CODEX_API_KEY",
                "OPENAI_API_KEY",
                "FEISHU_APP_SECRET",
                "LARK_PASSWD",
                "FCX_HOME",
                "AWS_SECRET_ACCESS_KEY",
                "FAKE_CODEX_LOG_DIR",
                "MY_PROXY_CA",
            ]),
            Some(OsStr::new("FAKE_CODEX_*, MY_PROXY_CA,CODEX_API_KEY")),
        ));
        assert_eq!(
            got,
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "CODEX_SANDBOX_NETWORK_DISABLED",
                "FAKE_CODEX_LOG_DIR",
                "MY_PROXY_CA"
            ]
        );
        let got = names(allowed(vars(&["FAKE_CODEX_LOG_DIR", "TERM"]), None));
        assert_eq!(got, ["TERM"]);
    }
}
