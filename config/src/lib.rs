//! `$FCX_HOME` and what lives in it: `config.toml`, per-profile directories,
//! the `run/` directory with sockets and locks, and secret references.
//!
//! Every error names the file, the key and what is wrong, because the operator
//! reads it in a terminal or a service log with no other context.

mod log_file;
pub use log_file::{RollingFile, open_log_file};
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
use std::path::PathBuf;

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

/// How the worker drives Codex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunnerKind {
    /// One `codex exec --json` child per turn.
    #[default]
    Exec,
    /// `codex app-server` over stdio JSON-RPC: live deltas, interrupt, steer.
    AppServer,
}

impl RunnerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunnerKind::Exec => "exec",
            RunnerKind::AppServer => "app-server",
        }
    }
}

/// What happens to a message that arrives while the scope's run is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuringRun {
    /// Add it to the running turn (app-server `turn/steer`); the exec
    /// runner cannot, and queues instead.
    #[default]
    Steer,
    /// Merge it into the next run.
    Queue,
    /// Stop the running turn and start a new one with everything pending.
    Interrupt,
}

impl DuringRun {
    pub const ALL: [DuringRun; 3] = [DuringRun::Steer, DuringRun::Queue, DuringRun::Interrupt];

    pub fn as_str(&self) -> &'static str {
        match self {
            DuringRun::Steer => "steer",
            DuringRun::Queue => "queue",
            DuringRun::Interrupt => "interrupt",
        }
    }

    pub fn parse(v: &str) -> Option<DuringRun> {
        DuringRun::ALL.into_iter().find(|d| d.as_str() == v)
    }
}

/// When Codex asks a person before acting (app-server runner only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalPolicy {
    /// Never ask: what the sandbox forbids fails.
    #[default]
    Never,
    /// Codex asks when it wants to leave the sandbox.
    OnRequest,
    /// Codex asks before every command that is not known to be safe, and
    /// before every file change.
    Untrusted,
}

impl ApprovalPolicy {
    /// The word app-server's `approvalPolicy` takes.
    pub fn as_str(&self) -> &'static str {
        match self {
            ApprovalPolicy::Never => "never",
            ApprovalPolicy::OnRequest => "on-request",
            ApprovalPolicy::Untrusted => "untrusted",
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
    pub runner: RunnerKind,
    /// The default for messages arriving during a run (`/config during_run`
    /// changes it per chat).
    pub during_run: DuringRun,
    /// Codex's approval policy; anything but `never` needs the app-server
    /// runner.
    pub approval: ApprovalPolicy,
    /// How long an approval card waits for a decision before it declines.
    pub approval_timeout_secs: u64,
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

/// The config.toml layout this build reads and `fcxctl init` writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The profile used when there is no config file at all, so `fcxd --console`
/// works on a fresh machine.
pub const DEFAULT_PROFILE: &str = "default";

/// Environment variable that overrides the default Codex binary (the README's
/// run script points it at the pinned install); see [`codex`] for the whole
/// rule.
pub const CODEX_BINARY_ENV: &str = "FCX_CODEX_BINARY";

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

mod load;
pub use load::valid_profile_name;

#[cfg(test)]
#[path = "security_tests.rs"]
mod security_tests;

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fuzzing_tests.rs"]
mod fuzzing_tests;
