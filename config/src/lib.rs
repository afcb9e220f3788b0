//! `$FCX_HOME` and what lives in it: `config.toml`, per-profile directories,
//! the `run/` directory with sockets and locks, and secret references.
//!
//! Every error names the file, the key and what is wrong, because the operator
//! reads it in a terminal or a service log with no other context.

pub mod callback_keys;
pub mod codex;
mod home;
pub mod keystore;
mod private;
mod secret;

pub use home::Home;
pub use private::{
    INHERITED_UMASK_ENV, inherited_umask, not_dumpable, private_dir, restrict_umask,
};
pub use secret::{EXEC_OUTPUT_CAP, EXEC_TIMEOUT, Secret, SecretError, SecretRef};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("no profile named `{name}` in {path} (profiles: {known})")]
    UnknownProfile {
        path: PathBuf,
        name: String,
        known: String,
    },
}

/// The whole `config.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (or would be, when absent).
    pub path: PathBuf,
    /// False when no file exists and the built-in default is in use.
    pub from_file: bool,
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub enabled: bool,
    pub codex: CodexConfig,
    pub workspaces: WorkspacesConfig,
    pub runs: RunsConfig,
    /// The Feishu/Lark app; `None` runs the profile console-only.
    pub app: Option<AppConfig>,
    pub access: AccessConfig,
    pub permissions: PermissionsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tenant {
    Feishu,
    Lark,
}

impl Tenant {
    /// Open Platform base URL (also the long-connection endpoint host).
    pub fn base_url(&self) -> &'static str {
        match self {
            Tenant::Feishu => "https://open.feishu.cn",
            Tenant::Lark => "https://open.larksuite.com",
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Tenant::Feishu => "feishu",
            Tenant::Lark => "lark",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    pub tenant: Tenant,
    /// Overrides the tenant's base URL (tests point it at the fake platform).
    pub base_url: String,
    pub app_id: String,
    pub app_secret: SecretRef,
    /// Webhook ingress, for apps that cannot use the long connection; off
    /// unless configured.
    pub webhook: Option<WebhookConfig>,
    /// Messages older than this when they arrive are stale replays and are
    /// dropped (the platform retries for hours).
    pub stale_after_secs: u64,
    pub reply_mode: ReplyMode,
}

/// How a run is shown in the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplyMode {
    /// A live CardKit card with a stop button (markdown if cards fail).
    Card,
    /// The final answer as markdown messages.
    Markdown,
    /// The final answer as plain-text messages (no markdown at all).
    Text,
}

impl ReplyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyMode::Card => "card",
            ReplyMode::Markdown => "markdown",
            ReplyMode::Text => "text",
        }
    }
}

/// A loopback-bound HTTP listener; a reverse proxy or tunnel forwards the
/// platform's requests to it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub listen: std::net::SocketAddr,
    /// The app's Encrypt Key: bodies are AES-256-CBC encrypted and requests
    /// signed (`X-Lark-Signature`) when it is set.
    pub encrypt_key: Option<SecretRef>,
    /// The app's Verification Token, checked on every request when set.
    pub verification_token: Option<SecretRef>,
}

/// Who may use the profile. Fail-closed: empty lists allow nobody but the
/// owner (and admins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// Owner's open_id; `None` = learned from the platform's app info.
    pub owner: Option<String>,
    pub admins: Vec<String>,
    pub allowed_users: Vec<String>,
    pub allowed_chats: Vec<String>,
    pub require_mention_in_group: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            owner: None,
            admins: Vec::new(),
            allowed_users: Vec::new(),
            allowed_chats: Vec::new(),
            require_mention_in_group: true,
        }
    }
}

/// Access modes, mapped to Codex sandboxes by the worker:
/// read-only → read-only, workspace → workspace-write, full → danger-full-access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessMode {
    ReadOnly,
    Workspace,
    Full,
}

impl AccessMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccessMode::ReadOnly => "read-only",
            AccessMode::Workspace => "workspace",
            AccessMode::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermissionsConfig {
    pub default_access: AccessMode,
    pub max_access: AccessMode,
    /// Network access inside the sandbox (workspace-write only).
    pub network: bool,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        PermissionsConfig {
            default_access: AccessMode::Workspace,
            max_access: AccessMode::Workspace,
            network: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// The key from `api_key` reaches the Codex child as `CODEX_API_KEY`.
    ApiKey,
    /// Whatever `codex login` stored in the profile's own Codex home.
    CodexHome,
    /// The operator's own `~/.codex`: no `CODEX_HOME` is set for the child.
    InheritUser,
}

impl AuthMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMode::ApiKey => "api-key",
            AuthMode::CodexHome => "codex-home",
            AuthMode::InheritUser => "inherit-user",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodexConfig {
    /// A path, or a name looked up on PATH when the worker starts.
    pub binary: String,
    pub auth: AuthMode,
    pub api_key: Option<SecretRef>,
    pub model: Option<String>,
    /// `-c key=value` overrides, flattened to dotted keys with TOML literal values.
    pub overrides: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspacesConfig {
    /// The profile's default workspace, `~` already expanded.
    pub default: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunsConfig {
    /// Quiet window a message waits for more before its run starts; 0 (the
    /// default): a lone message starts at once, and messages that arrive
    /// while its run is busy merge into the next run.
    pub debounce_ms: u64,
    /// Runs at once across all scopes of the profile.
    pub max_concurrent: usize,
    /// Stop a run after this many seconds without a Codex event (0 = never).
    pub idle_timeout_secs: u64,
    /// Grace after SIGINT before SIGTERM, and after SIGTERM before SIGKILL.
    pub stop_grace_ms: u64,
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self {
            debounce_ms: 0,
            max_concurrent: 4,
            idle_timeout_secs: 30 * 60,
            stop_grace_ms: 700,
        }
    }
}

// ---- raw (serde) shapes: unknown keys are errors ----

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Absent in files written before it existed: those are version 1.
    schema_version: Option<u32>,
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
}

/// The config.toml layout this build reads and `fcxctl init` writes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    codex: RawCodex,
    #[serde(default)]
    workspaces: RawWorkspaces,
    #[serde(default)]
    runs: RawRuns,
    app: Option<RawApp>,
    #[serde(default)]
    access: RawAccess,
    #[serde(default)]
    permissions: RawPermissions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    tenant: Option<Tenant>,
    base_url: Option<String>,
    app_id: String,
    app_secret: String,
    webhook: Option<RawWebhook>,
    stale_after_secs: Option<u64>,
    reply_mode: Option<ReplyMode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    listen: String,
    encrypt_key: Option<String>,
    verification_token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    owner: Option<String>,
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    allowed_users: Vec<String>,
    #[serde(default)]
    allowed_chats: Vec<String>,
    require_mention_in_group: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPermissions {
    default_access: Option<AccessMode>,
    max_access: Option<AccessMode>,
    network: Option<bool>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCodex {
    binary: Option<String>,
    auth: Option<AuthMode>,
    api_key: Option<String>,
    model: Option<String>,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWorkspaces {
    default: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuns {
    debounce_ms: Option<u64>,
    max_concurrent: Option<usize>,
    idle_timeout_secs: Option<u64>,
    stop_grace_ms: Option<u64>,
}

/// The profile used when there is no config file at all, so `fcxd --console`
/// works on a fresh machine.
pub const DEFAULT_PROFILE: &str = "default";

/// Environment variable that overrides the default Codex binary (the README's
/// run script points it at the pinned install); see [`codex`] for the whole
/// rule.
pub const CODEX_BINARY_ENV: &str = "FCX_CODEX_BINARY";

impl Config {
    /// Read `home`'s config.toml, or the built-in default when it is absent.
    pub fn load(home: &Home) -> Result<Self, ConfigError> {
        let path = home.config_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path, &text, home),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut cfg = Self::parse(&path, "", home)?;
                cfg.from_file = false;
                Ok(cfg)
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    pub fn parse(path: &Path, text: &str, home: &Home) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: parse_message(&e, text),
        })?;
        if let Some(v) = raw.schema_version
            && v != SCHEMA_VERSION
        {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "schema_version".into(),
                message: format!(
                    "{v} is not a layout this fcx reads (it reads {SCHEMA_VERSION}); this file was written by another fcx version"
                ),
            });
        }
        let mut raw_profiles = raw.profiles;
        if raw_profiles.is_empty() {
            raw_profiles.insert(DEFAULT_PROFILE.to_string(), RawProfile::default_enabled());
        }
        let mut profiles = BTreeMap::new();
        for (name, rp) in raw_profiles {
            let p = build_profile(path, home, &name, rp)?;
            profiles.insert(name, p);
        }
        Ok(Config {
            path: path.to_path_buf(),
            from_file: true,
            profiles,
        })
    }

    pub fn profile(&self, name: &str) -> Result<&Profile, ConfigError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ConfigError::UnknownProfile {
                path: self.path.clone(),
                name: name.to_string(),
                known: self.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    pub fn enabled_profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values().filter(|p| p.enabled)
    }
}

impl RawProfile {
    fn default_enabled() -> Self {
        RawProfile {
            enabled: true,
            ..Default::default()
        }
    }
}

/// Line, column and message of a TOML error, never the offending line: an
/// unquoted secret pasted into config.toml would otherwise end up in logs.
fn parse_message(e: &toml::de::Error, text: &str) -> String {
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            match key_at(text, before) {
                Some(key) => format!("line {line}, column {column}: key `{key}`: {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

/// The dotted key whose value starts the error's line (the part before `=`,
/// under the last table header), so the message names it without its value.
fn key_at(text: &str, before: &str) -> Option<String> {
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let plain = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | ' '))
    };
    if !plain(key) {
        return None;
    }
    let table = text
        .get(..line_start)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(['[', ']']).trim().to_string())
        .filter(|t| plain(t));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// `http://` to a loopback host (a local test platform).
fn http_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub fn valid_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

fn build_profile(
    path: &Path,
    home: &Home,
    name: &str,
    rp: RawProfile,
) -> Result<Profile, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: format!("profiles.{name}{key}"),
        message,
    };
    if !valid_profile_name(name) {
        return Err(invalid(
            "",
            "a profile name is 1-32 characters of a-z, 0-9, '-' and '_', starting with a letter or digit".into(),
        ));
    }
    let binary = match rp.codex.binary {
        Some(b) if b.trim().is_empty() => {
            return Err(invalid(".codex.binary", "must not be empty".into()));
        }
        Some(b) => expand_tilde(&b, home).to_string_lossy().into_owned(),
        None => std::env::var(CODEX_BINARY_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "codex".into()),
    };
    let auth = rp.codex.auth.unwrap_or(AuthMode::ApiKey);
    let api_key = match rp.codex.api_key {
        Some(s) => Some(SecretRef::parse_in(&s, home).map_err(|e| invalid(".codex.api_key", e))?),
        None if auth == AuthMode::ApiKey => Some(SecretRef::Env("OPENAI_API_KEY".into())),
        None => None,
    };
    if auth != AuthMode::ApiKey && api_key.is_some() {
        return Err(invalid(
            ".codex.api_key",
            format!(
                "is only used with auth = \"api-key\" (this profile has auth = \"{}\"); remove it",
                auth.as_str()
            ),
        ));
    }
    if let Some(m) = &rp.codex.model
        && m.trim().is_empty()
    {
        return Err(invalid(".codex.model", "must not be empty when set".into()));
    }
    let mut overrides = Vec::new();
    flatten_overrides("", &rp.codex.config, &mut overrides)
        .map_err(|m| invalid(".codex.config", m))?;

    let default_ws = rp.workspaces.default.unwrap_or_else(|| "~/fcx-work".into());
    if default_ws.trim().is_empty() {
        return Err(invalid(".workspaces.default", "must not be empty".into()));
    }
    let default_ws = expand_tilde(&default_ws, home);
    if !default_ws.is_absolute() {
        return Err(invalid(
            ".workspaces.default",
            format!(
                "`{}` is not an absolute path (use /... or ~/...)",
                default_ws.display()
            ),
        ));
    }

    let d = RunsConfig::default();
    let runs = RunsConfig {
        debounce_ms: rp.runs.debounce_ms.unwrap_or(d.debounce_ms),
        max_concurrent: rp.runs.max_concurrent.unwrap_or(d.max_concurrent),
        idle_timeout_secs: rp.runs.idle_timeout_secs.unwrap_or(d.idle_timeout_secs),
        stop_grace_ms: rp.runs.stop_grace_ms.unwrap_or(d.stop_grace_ms),
    };
    if runs.max_concurrent == 0 || runs.max_concurrent > 256 {
        return Err(invalid(
            ".runs.max_concurrent",
            "must be between 1 and 256".into(),
        ));
    }
    if runs.debounce_ms > 60_000 {
        return Err(invalid(
            ".runs.debounce_ms",
            "must be at most 60000 (one minute)".into(),
        ));
    }
    if runs.stop_grace_ms == 0 || runs.stop_grace_ms > 30_000 {
        return Err(invalid(
            ".runs.stop_grace_ms",
            "must be between 1 and 30000".into(),
        ));
    }

    let app = match rp.app {
        None => None,
        Some(a) => {
            let tenant = a.tenant.unwrap_or(Tenant::Feishu);
            if a.app_id.trim().is_empty() {
                return Err(invalid(".app.app_id", "must not be empty".into()));
            }
            let app_secret = SecretRef::parse_in(&a.app_secret, home)
                .map_err(|e| invalid(".app.app_secret", e))?;
            let base_url = match a.base_url {
                Some(u) => {
                    if !(u.starts_with("https://") || http_loopback(&u)) {
                        return Err(invalid(
                            ".app.base_url",
                            "must start with https:// (http:// only for a loopback test platform: 127.0.0.1, [::1] or localhost); the app secret must not travel in cleartext"
                                .into(),
                        ));
                    }
                    u.trim_end_matches('/').to_string()
                }
                None => tenant.base_url().to_string(),
            };
            let webhook = match a.webhook {
                None => None,
                Some(w) => {
                    let listen: std::net::SocketAddr = w.listen.parse().map_err(|_| {
                        invalid(
                            ".app.webhook.listen",
                            format!("`{}` is not an address like 127.0.0.1:8787", w.listen),
                        )
                    })?;
                    if !listen.ip().is_loopback() {
                        return Err(invalid(
                            ".app.webhook.listen",
                            "must be a loopback address (127.0.0.1 or [::1]); put a reverse proxy or tunnel in front".into(),
                        ));
                    }
                    let secret = |key: &str, v: Option<String>| {
                        v.map(|v| SecretRef::parse_in(&v, home).map_err(|e| invalid(key, e)))
                            .transpose()
                    };
                    // Without both, anyone who reaches the listener (a local
                    // user, or anyone through the tunnel) could post events:
                    // the key signs and encrypts, the token is checked inside.
                    if w.encrypt_key.is_none() || w.verification_token.is_none() {
                        return Err(invalid(
                            ".app.webhook",
                            "needs both encrypt_key and verification_token (the app's Encrypt Key and Verification Token, as env:VAR or file:PATH); an unsigned webhook would accept forged events".into(),
                        ));
                    }
                    Some(WebhookConfig {
                        listen,
                        encrypt_key: secret(".app.webhook.encrypt_key", w.encrypt_key)?,
                        verification_token: secret(
                            ".app.webhook.verification_token",
                            w.verification_token,
                        )?,
                    })
                }
            };
            let stale_after_secs = a.stale_after_secs.unwrap_or(30 * 60);
            if stale_after_secs < 60 {
                return Err(invalid(
                    ".app.stale_after_secs",
                    "must be at least 60 (the platform's first retry comes after 15 s)".into(),
                ));
            }
            Some(AppConfig {
                tenant,
                base_url,
                app_id: a.app_id,
                app_secret,
                webhook,
                stale_after_secs,
                reply_mode: a.reply_mode.unwrap_or(ReplyMode::Card),
            })
        }
    };
    let clean_ids = |key: &str, v: Vec<String>| -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for id in v {
            let id = id.trim().to_string();
            if id.is_empty() {
                return Err(invalid(key, "ids must not be empty".into()));
            }
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    };
    let access = AccessConfig {
        owner: match rp.access.owner {
            Some(o) if o.trim().is_empty() => {
                return Err(invalid(
                    ".access.owner",
                    "must not be empty when set".into(),
                ));
            }
            o => o.map(|o| o.trim().to_string()),
        },
        admins: clean_ids(".access.admins", rp.access.admins)?,
        allowed_users: clean_ids(".access.allowed_users", rp.access.allowed_users)?,
        allowed_chats: clean_ids(".access.allowed_chats", rp.access.allowed_chats)?,
        require_mention_in_group: rp.access.require_mention_in_group.unwrap_or(true),
    };
    let dp = PermissionsConfig::default();
    let permissions = PermissionsConfig {
        default_access: rp.permissions.default_access.unwrap_or(dp.default_access),
        max_access: rp.permissions.max_access.unwrap_or(dp.max_access),
        network: rp.permissions.network.unwrap_or(dp.network),
    };
    if permissions.default_access > permissions.max_access {
        return Err(invalid(
            ".permissions.default_access",
            format!(
                "\"{}\" is above max_access = \"{}\"",
                permissions.default_access.as_str(),
                permissions.max_access.as_str()
            ),
        ));
    }

    Ok(Profile {
        name: name.to_string(),
        enabled: rp.enabled,
        app,
        access,
        permissions,
        codex: CodexConfig {
            binary,
            auth,
            api_key,
            model: rp.codex.model,
            overrides,
        },
        workspaces: WorkspacesConfig {
            default: default_ws,
        },
        runs,
    })
}

/// Flatten a TOML table into `(dotted.key, toml-literal)` pairs, the form
/// `codex -c key=value` parses.
fn flatten_overrides(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    for (k, v) in table {
        if k.is_empty() {
            return Err("an override key must not be empty".into());
        }
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten_overrides(&key, t, out)?,
            other => out.push((key, toml_literal(other))),
        }
    }
    Ok(())
}

fn toml_literal(v: &toml::Value) -> String {
    // Value's Display renders a TOML literal (strings quoted and escaped).
    v.to_string()
}

/// Expand a leading `~` to the home directory.
pub fn expand_tilde(p: &str, home: &Home) -> PathBuf {
    if p == "~" {
        return home.user_home().to_path_buf();
    }
    if let Some(rest) = p.strip_prefix("~/") {
        return home.user_home().join(rest);
    }
    PathBuf::from(p)
}

/// Open (append) a process log file under `logs/`, rotating it to `.1` once it
/// passes `max_bytes`, and creating the directory private to the owner.
pub fn open_log_file(home: &Home, name: &str, max_bytes: u64) -> std::io::Result<std::fs::File> {
    let dir = home.logs_dir();
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let path = dir.join(format!("{name}.log"));
    if std::fs::metadata(&path)
        .map(|m| m.len() > max_bytes)
        .unwrap_or(false)
    {
        let _ = std::fs::rename(&path, dir.join(format!("{name}.log.1")));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod security_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let d = tempfile::tempdir().expect("tempdir");
        let h = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
        (d, h)
    }

    #[test]
    fn no_file_gives_a_default_profile() {
        let (_d, h) = home();
        let c = Config::load(&h).expect("default config");
        assert!(!c.from_file);
        let p = c.profile(DEFAULT_PROFILE).expect("default profile");
        assert!(p.enabled);
        assert_eq!(p.codex.auth, AuthMode::ApiKey);
        assert_eq!(
            p.codex.api_key,
            Some(SecretRef::Env("OPENAI_API_KEY".into()))
        );
        assert_eq!(p.workspaces.default, h.user_home().join("fcx-work"));
    }

    #[test]
    fn full_profile_parses_and_flattens_overrides() {
        let (_d, h) = home();
        let text = r#"
[profiles.work]
enabled = true
[profiles.work.codex]
binary = "/opt/codex/bin/codex"
auth = "api-key"
api_key = "file:~/key.txt"
model = "gpt-5.5"
config = { model_provider = "mock", model_providers = { mock = { base_url = "http://127.0.0.1:1/v1", stream_max_retries = 0 } }, "sandbox_workspace_write.network_access" = false }
[profiles.work.workspaces]
default = "~/src"
"#;
        let c = Config::parse(Path::new("c.toml"), text, &h).expect("parse");
        let p = c.profile("work").expect("profile");
        assert_eq!(p.codex.binary, "/opt/codex/bin/codex");
        assert_eq!(
            p.codex.api_key,
            Some(SecretRef::File(h.user_home().join("key.txt")))
        );
        assert_eq!(p.codex.model.as_deref(), Some("gpt-5.5"));
        let o: BTreeMap<_, _> = p.codex.overrides.iter().cloned().collect();
        assert_eq!(o["model_provider"], "\"mock\"");
        assert_eq!(
            o["model_providers.mock.base_url"],
            "\"http://127.0.0.1:1/v1\""
        );
        assert_eq!(o["model_providers.mock.stream_max_retries"], "0");
        assert_eq!(o["sandbox_workspace_write.network_access"], "false");
        assert_eq!(p.workspaces.default, h.user_home().join("src"));
    }

    #[test]
    fn app_access_and_permissions_parse() {
        let (_d, h) = home();
        let text = r#"
[profiles.bot.app]
tenant = "lark"
app_id = "cli_0123456789abcdef"
app_secret = "env:LARK_SECRET"
[profiles.bot.access]
owner = "ou_owner"
admins = ["ou_a", "ou_a"]
allowed_chats = ["oc_1"]
require_mention_in_group = false
[profiles.bot.permissions]
max_access = "full"
network = true
"#;
        let c = Config::parse(Path::new("c.toml"), text, &h).expect("parse");
        let p = c.profile("bot").expect("profile");
        let app = p.app.as_ref().expect("app");
        assert_eq!(app.tenant, Tenant::Lark);
        assert_eq!(app.base_url, "https://open.larksuite.com");
        assert_eq!(app.app_secret, SecretRef::Env("LARK_SECRET".into()));
        assert!(app.webhook.is_none());
        assert_eq!(app.stale_after_secs, 1800);
        assert_eq!(p.access.owner.as_deref(), Some("ou_owner"));
        assert_eq!(p.access.admins, vec!["ou_a".to_string()]);
        assert!(!p.access.require_mention_in_group);
        assert_eq!(p.permissions.default_access, AccessMode::Workspace);
        assert_eq!(p.permissions.max_access, AccessMode::Full);
        assert!(p.permissions.network);
        let d = Config::load(&h).expect("default");
        let dp = d.profile(DEFAULT_PROFILE).expect("default profile");
        assert!(dp.app.is_none());
        assert!(dp.access.require_mention_in_group);
        let hook = "[profiles.w.app]\napp_id = \"cli_1\"\napp_secret = \"env:S\"\n[profiles.w.app.webhook]\nlisten = \"0.0.0.0:8787\"\n";
        let e = Config::parse(Path::new("c.toml"), hook, &h)
            .expect_err("public listener")
            .to_string();
        assert!(e.contains("loopback"), "{e}");
        let ok = Config::parse(
            Path::new("c.toml"),
            &hook.replace("0.0.0.0", "127.0.0.1").replace(
                "8787\"\n",
                "8787\"\nencrypt_key = \"env:EK\"\nverification_token = \"env:VT\"\n",
            ),
            &h,
        )
        .expect("webhook");
        let w = ok
            .profile("w")
            .expect("w")
            .app
            .as_ref()
            .and_then(|a| a.webhook.clone())
            .expect("hook");
        assert_eq!(w.encrypt_key, Some(SecretRef::Env("EK".into())));
        let e = Config::parse(
            Path::new("c.toml"),
            "[profiles.a.permissions]\ndefault_access = \"full\"\n",
            &h,
        )
        .expect_err("default above max")
        .to_string();
        assert!(e.contains("profiles.a.permissions.default_access"), "{e}");
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let (_d, h) = home();
        let text = "[profiles.a.codex]\nbinnary = \"codex\"\n";
        let e = Config::parse(Path::new("/x/config.toml"), text, &h)
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("/x/config.toml"), "{e}");
        assert!(e.contains("binnary"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn bad_values_are_explained() {
        let (_d, h) = home();
        let cases = [
            (
                "[profiles.a.codex]\nauth = \"password\"\n",
                "auth",
                "unknown variant",
            ),
            (
                "[profiles.a.codex]\napi_key = \"sk-plain\"\n",
                "profiles.a.codex.api_key",
                "env:VAR or file:PATH",
            ),
            (
                "[profiles.a.codex]\nauth = \"codex-home\"\napi_key = \"env:X\"\n",
                "profiles.a.codex.api_key",
                "only used with",
            ),
            (
                "[profiles.a.workspaces]\ndefault = \"rel/path\"\n",
                "profiles.a.workspaces.default",
                "not an absolute path",
            ),
            (
                "[profiles.A]\nenabled = true\n",
                "profiles.A",
                "profile name",
            ),
            (
                "[profiles.a.runs]\nmax_concurrent = 0\n",
                "profiles.a.runs.max_concurrent",
                "between 1 and 256",
            ),
        ];
        for (text, key, what) in cases {
            let e = Config::parse(Path::new("c.toml"), text, &h)
                .expect_err(text)
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
            assert!(e.contains(what), "{text}: {e}");
            assert!(!e.contains("sk-plain"), "secret echoed: {e}");
        }
    }
}
