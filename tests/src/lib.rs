//! Test support for fcx: the end-to-end harness, the mock Responses server,
//! helpers to find the real Codex CLI and point it at the mock, and (as
//! binaries) the scripted fake codex and the standalone mock.

// Test support: a failed expectation here is the failing test's message.
#![allow(clippy::expect_used)]

pub mod fake_feishu;
pub mod harness;
pub mod mock_responses;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use mock_responses::{MockResponses, MockResponsesBuilder, RecordedRequest};

/// The `--version` line the pinned real Codex CLI prints.
pub const REAL_CODEX_VERSION: &str = "codex-cli 0.169.0";

/// Environment variable that overrides where [`real_codex`] looks.
pub const REAL_CODEX_ENV: &str = "FCX_TEST_CODEX";

/// The `--version` line of the `fake-codex` binary.
pub const FAKE_CODEX_VERSION: &str = "codex-cli 0.169.0-fake";

/// Model slug to use against the mock: one codex knows, so it sends no
/// "model metadata not found" warning item and offers `apply_patch`.
pub const MOCK_MODEL: &str = "gpt-5.5";

/// API key tests hand to codex; the mock sees it as `Bearer sk-mock`.
pub const MOCK_API_KEY: &str = "sk-mock";

const INSTALL_HINT: &str =
    "the real Codex CLI is required: run scripts/test.sh, which installs @openai/codex@0.169.0";

fn default_real_codex() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(
        ".cache/fcx/codex-0.169.0/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
    )
}

/// What every real-Codex end-to-end test starts from: the pinned CLI checked
/// (failing loudly before anything else when it is missing), a two-thread
/// runtime, and the mock Responses server running on it.
pub fn real_codex_with_mock() -> (tokio::runtime::Runtime, MockResponses) {
    assert!(real_codex().is_file());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mock = rt.block_on(MockResponses::start()).expect("mock server");
    (rt, mock)
}

/// Path of the real `codex` 0.169.0 binary (`$FCX_TEST_CODEX`, else the copy
/// scripts/test.sh installs under `$HOME/.cache/fcx`).
///
/// Panics when it is missing or is another version: tests that need the real
/// CLI must fail loudly rather than quietly skip.
pub fn real_codex() -> PathBuf {
    match try_real_codex() {
        Ok(path) => path,
        Err(why) => panic!("{why}"),
    }
}

/// [`real_codex`] for a program that reports instead of panicking (the
/// bench): the path, or why the pinned CLI cannot be used and how to get it.
pub fn try_real_codex() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = std::env::var_os(REAL_CODEX_ENV)
                .filter(|v| !v.is_empty())
                .map_or_else(default_real_codex, PathBuf::from);
            check_real_codex(&path).map(|()| path)
        })
        .clone()
        .map_err(|why| format!("{INSTALL_HINT} ({why})"))
}

fn check_real_codex(path: &Path) -> Result<(), String> {
    if !path.is_file() {
        return Err(format!("{} does not exist", path.display()));
    }
    let output = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {} --version failed: {e}", path.display()))?;
    let version = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || version.trim() != REAL_CODEX_VERSION {
        return Err(format!(
            "{} --version printed {:?} (status {}), expected {REAL_CODEX_VERSION:?}",
            path.display(),
            version.trim(),
            output.status
        ));
    }
    Ok(())
}

/// The chat's outbox folder fcx's prompt names (`.fcx/outbox/<12 hex>`), as
/// a model reads it from the instructions; the parent when it names none.
pub fn outbox_in(prompt: &str) -> String {
    const AT: &str = ".fcx/outbox/";
    prompt
        .find(AT)
        .map(|i| {
            let tag: String = prompt[i + AT.len()..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            format!("{AT}{tag}")
        })
        .unwrap_or_else(|| ".fcx/outbox".to_owned())
}

/// Quotes a string as a TOML basic string. JSON string escapes are a subset
/// of TOML's, so serde_json's quoting is valid TOML.
pub fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `-c` overrides (key, TOML literal) that point codex at a mock Responses
/// server at `base_url` through a custom provider named `mock`, whose key is
/// read from `CODEX_API_KEY`, with retries off and a short idle timeout so
/// failure cases end quickly.
pub fn mock_provider_overrides(base_url: &str) -> Vec<(String, String)> {
    [
        ("model_provider", toml_string("mock")),
        ("model_providers.mock.name", toml_string("Mock Responses")),
        ("model_providers.mock.base_url", toml_string(base_url)),
        ("model_providers.mock.wire_api", toml_string("responses")),
        ("model_providers.mock.env_key", toml_string("CODEX_API_KEY")),
        ("model_providers.mock.stream_max_retries", "0".to_owned()),
        ("model_providers.mock.request_max_retries", "0".to_owned()),
        (
            "model_providers.mock.stream_idle_timeout_ms",
            "5000".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// [`mock_provider_overrides`] as codex argv: `-c k=v -c k=v …`.
pub fn mock_provider_args(base_url: &str) -> Vec<String> {
    mock_provider_overrides(base_url)
        .into_iter()
        .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")])
        .collect()
}

/// Directory for per-test CODEX_HOMEs. It is deliberately not under /tmp:
/// codex refuses to create its helper aliases under a temporary dir and warns
/// on stderr.
pub fn codex_home_root() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/fcx-test")
}

/// A fresh, empty CODEX_HOME under [`codex_home_root`], removed on drop.
pub fn temp_codex_home() -> anyhow::Result<tempfile::TempDir> {
    use anyhow::Context as _;
    let root = codex_home_root();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    tempfile::Builder::new()
        .prefix("codex-home-")
        .tempdir_in(&root)
        .with_context(|| format!("creating a CODEX_HOME under {}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_toml_literals() {
        let args = mock_provider_args("http://127.0.0.1:9/v1");
        assert!(args.contains(&"model_provider=\"mock\"".to_owned()));
        assert!(
            args.contains(&"model_providers.mock.base_url=\"http://127.0.0.1:9/v1\"".to_owned())
        );
        assert!(args.contains(&"model_providers.mock.env_key=\"CODEX_API_KEY\"".to_owned()));
        assert!(args.contains(&"model_providers.mock.stream_max_retries=0".to_owned()));
        assert_eq!(args.iter().filter(|a| *a == "-c").count(), 8);
    }

    #[test]
    fn a_missing_codex_is_reported() {
        let why = check_real_codex(Path::new("/nonexistent/codex"));
        assert!(why.is_err_and(|w| w.contains("/nonexistent/codex")));
        // Something that runs but is not codex 0.169.0.
        let why = check_real_codex(Path::new("/bin/true"));
        assert!(why.is_err_and(|w| w.contains("expected")));
    }
}
