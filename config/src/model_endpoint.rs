//! Which model API a profile's Codex talks to, read the way Codex 0.169
//! reads it, so `/doctor`, `fcxctl doctor` and a run that cannot reach it
//! name the same URL.
//!
//! Codex takes `model_provider` (default `openai`) and that provider's
//! `base_url` from its `-c` overrides (fcx's `profiles.NAME.codex.config`)
//! over its `CODEX_HOME/config.toml`; the built-in `openai` provider uses
//! `openai_base_url`, else the OpenAI API for a key and the ChatGPT backend
//! for a ChatGPT login.

use std::path::{Path, PathBuf};

use crate::{AuthMode, Home, Profile};

/// The OpenAI API, where a key goes by default.
pub const OPENAI_API: &str = "https://api.openai.com/v1";
/// Where Codex goes with a ChatGPT login.
pub const CHATGPT_BACKEND: &str = "https://chatgpt.com/backend-api/codex";

/// The model API of one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEndpoint {
    /// The provider's base URL (without a trailing `/`).
    pub base_url: String,
    /// The provider Codex uses (`openai`, or a `model_providers` name).
    pub provider: String,
    /// Where the URL comes from, for the fix: a config key, or "Codex's
    /// default".
    pub source: String,
}

impl ModelEndpoint {
    /// What a probe asks for: the provider's model list, which every
    /// Responses-compatible server routes (any HTTP answer proves the
    /// endpoint is reachable; the status is not judged).
    pub fn probe_url(&self) -> String {
        format!("{}/models", self.base_url)
    }

    /// What to do when the endpoint does not answer.
    pub fn fix(&self) -> String {
        format!(
            "check this machine's network and proxy (HTTPS_PROXY) toward {}, or correct the endpoint ({})",
            self.base_url, self.source
        )
    }
}

/// The Codex home the profile's child uses: its own, or the operator's
/// (`$CODEX_HOME`, else `~/.codex`) with `auth = "inherit-user"`.
pub fn codex_home_of(profile: &Profile, home: &Home) -> PathBuf {
    match profile.codex.auth {
        AuthMode::InheritUser => user_codex_home(home),
        AuthMode::ApiKey | AuthMode::CodexHome => home.profile(&profile.name).codex_home(),
    }
}

/// The operator's own Codex home: `$CODEX_HOME`, else `~/.codex`.
pub fn user_codex_home(home: &Home) -> PathBuf {
    match std::env::var_os("CODEX_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => home.user_home().join(".codex"),
    }
}

/// The profile's model API, or `None` when its provider is one fcx cannot
/// read a URL for (a `model_providers` entry without `base_url`).
pub fn resolve(profile: &Profile, home: &Home) -> Option<ModelEndpoint> {
    let codex_home = codex_home_of(profile, home);
    let file = read_table(&codex_home.join("config.toml"));
    let config_key = format!("profiles.{}.codex.config", profile.name);
    let file_key = codex_home.join("config.toml").display().to_string();
    // Overrides win over the file, as `-c` does.
    let lookup = |path: &[&str]| -> Option<(String, String)> {
        let dotted = path.join(".");
        let over = profile
            .codex
            .overrides
            .iter()
            .rev()
            .find(|(k, _)| *k == dotted)
            .and_then(|(_, v)| literal_str(v));
        if let Some(v) = over {
            return Some((v, format!("{config_key}: {dotted}")));
        }
        let mut t = file.as_ref()?;
        let (last, dirs) = path.split_last()?;
        for d in dirs {
            t = t.get(*d)?.as_table()?;
        }
        let v = t.get(*last)?.as_str()?.to_string();
        Some((v, format!("{file_key}: {dotted}")))
    };
    let provider = lookup(&["model_provider"])
        .map(|(p, _)| p)
        .unwrap_or_else(|| "openai".into());
    let found = lookup(&["model_providers", &provider, "base_url"]).or_else(|| {
        if provider == "openai" {
            lookup(&["openai_base_url"])
        } else {
            None
        }
    });
    let (base_url, source) = match found {
        Some(f) => f,
        None => (
            default_base(&provider, profile, &codex_home)?.to_string(),
            format!(
                "Codex's default; to use another, set openai_base_url (or model_provider and model_providers.<provider>.base_url) in profiles.{}.codex.config",
                profile.name
            ),
        ),
    };
    Some(ModelEndpoint {
        base_url: base_url.trim_end_matches('/').to_string(),
        provider,
        source,
    })
}

/// Codex's built-in providers' URLs.
fn default_base(provider: &str, profile: &Profile, codex_home: &Path) -> Option<&'static str> {
    match provider {
        "openai" if profile.codex.auth != AuthMode::ApiKey && chatgpt_login(codex_home) => {
            Some(CHATGPT_BACKEND)
        }
        "openai" => Some(OPENAI_API),
        "ollama" | "oss" => Some("http://localhost:11434/v1"),
        "lmstudio" => Some("http://localhost:1234/v1"),
        _ => None,
    }
}

/// Whether the home's `auth.json` holds a ChatGPT login (tokens) rather
/// than an API key.
fn chatgpt_login(codex_home: &Path) -> bool {
    std::fs::read_to_string(codex_home.join("auth.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .is_some_and(|v| v.get("tokens").is_some_and(serde_json::Value::is_object))
}

fn read_table(path: &Path) -> Option<toml::Table> {
    std::fs::read_to_string(path).ok()?.parse().ok()
}

/// A TOML literal (as overrides keep their values) as a string.
fn literal_str(lit: &str) -> Option<String> {
    let t: toml::Table = format!("v = {lit}").parse().ok()?;
    t.get("v")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn profile(h: &Home, text: &str) -> Profile {
        let c = Config::parse(Path::new("c.toml"), text, h).expect("parse");
        c.profile("a").expect("a").clone()
    }

    fn home() -> (tempfile::TempDir, Home) {
        let d = tempfile::tempdir().expect("tempdir");
        let h = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
        (d, h)
    }

    const BASE: &str =
        "[profiles.a.codex]\napi_key = \"env:K\"\n[profiles.a.workspaces]\ndefault = \"/srv/w\"\n";

    #[test]
    fn a_key_goes_to_the_openai_api_unless_an_override_says_otherwise() {
        let (_d, h) = home();
        let e = resolve(&profile(&h, BASE), &h).expect("endpoint");
        assert_eq!(e.base_url, OPENAI_API);
        assert_eq!(e.probe_url(), "https://api.openai.com/v1/models");
        assert!(e.source.starts_with("Codex's default"), "{e:?}");

        let text = BASE.replace(
            "api_key = \"env:K\"\n",
            "api_key = \"env:K\"\nconfig = { model_provider = \"mock\", model_providers = { mock = { base_url = \"http://127.0.0.1:9/v1/\" } } }\n",
        );
        let e = resolve(&profile(&h, &text), &h).expect("endpoint");
        assert_eq!(e.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(e.provider, "mock");
        assert_eq!(
            e.source,
            "profiles.a.codex.config: model_providers.mock.base_url"
        );

        let text = BASE.replace(
            "api_key = \"env:K\"\n",
            "api_key = \"env:K\"\nconfig = { openai_base_url = \"http://proxy.local/v1\" }\n",
        );
        let e = resolve(&profile(&h, &text), &h).expect("endpoint");
        assert_eq!(e.base_url, "http://proxy.local/v1");
    }

    #[test]
    fn the_codex_homes_config_is_read_and_a_chatgpt_login_goes_to_chatgpt() {
        let (_d, h) = home();
        let text = BASE.replace("api_key = \"env:K\"\n", "auth = \"codex-home\"\n");
        let p = profile(&h, &text);
        let ch = h.profile("a").codex_home();
        std::fs::create_dir_all(&ch).expect("codex home");
        std::fs::write(ch.join("auth.json"), r#"{"tokens":{"id_token":"x"}}"#).expect("auth");
        assert_eq!(resolve(&p, &h).expect("endpoint").base_url, CHATGPT_BACKEND);
        std::fs::write(
            ch.join("config.toml"),
            "model_provider = \"local\"\n[model_providers.local]\nbase_url = \"http://10.0.0.2:8000/v1\"\n",
        )
        .expect("config");
        let e = resolve(&p, &h).expect("endpoint");
        assert_eq!(e.base_url, "http://10.0.0.2:8000/v1");
        assert!(
            e.source
                .ends_with("config.toml: model_providers.local.base_url")
        );
        // A provider without a URL fcx can read: nothing to check.
        std::fs::write(ch.join("config.toml"), "model_provider = \"other\"\n").expect("config");
        assert_eq!(resolve(&p, &h), None);
    }
}
