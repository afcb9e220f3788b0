//! `$FCX_HOME` and what lives in it: `config.toml`, per-profile directories,
//! the `run/` directory with sockets and locks, and secret references.
//!
//! Every error names the file, the key and what is wrong, because the operator
//! reads it in a terminal or a service log with no other context.

#![warn(missing_docs)]

mod log_file;
pub use log_file::{RollingFile, open_log_file, rolled_files};
pub mod app_lock;
pub mod callback_keys;
pub mod codex;
pub mod env_allow;
pub mod env_secrets;
mod home;
pub mod home_acl;
#[cfg(windows)]
mod home_acl_win;
#[cfg(windows)]
pub use home_acl_win::{
    RawAce, aces_of, current_user_sid, process_user_sid, read_dacl as read_home_dacl, sid_string,
};
pub mod keystore;
pub mod lark_cli;
pub mod model_endpoint;
mod private;
pub mod registry;
#[cfg(windows)]
mod registry_win;
mod secret;

pub use home::{Home, MEDIA_DIR, ProfilePaths, outgoing_in};
pub use lark_cli::LarkCli;
pub use private::{
    INHERITED_UMASK_ENV, inherited_umask, not_dumpable, private_dir, restrict_umask,
};
pub use secret::{EXEC_OUTPUT_CAP, EXEC_TIMEOUT, Secret, SecretError, SecretRef};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Why `config.toml` cannot be used; each names the file (and the key), so
/// the operator can fix it from the message alone.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or not the shape fcx reads.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// A key holds a value fcx refuses.
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The dotted key, e.g. `profiles.work.runs.max_concurrent`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A profile was asked for by name and the file has none by that name.
    #[error("no profile named `{name}` in {path} (profiles: {known})")]
    UnknownProfile {
        /// The config file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The profiles the file has, comma-separated.
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
    /// Every profile by name, disabled ones included.
    pub profiles: BTreeMap<String, Profile>,
    /// Where fcxd serves Prometheus metrics (`metrics = "127.0.0.1:9464"`);
    /// off when `None`. Loopback only.
    pub metrics: Option<std::net::SocketAddr>,
    /// `[logs]`: how much of fcxd's and the workers' logs is kept.
    pub logs: LogRetention,
}

/// How much of each process log (`logs/NAME.log`) is kept: the live file
/// rolls to `NAME.log.1` once a write would take it past `max_bytes`, older
/// rolled files move up (`.2`, `.3`, …) and those past `keep` or older than
/// `max_age` are removed. Read when a process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    /// The size at which the live file rolls.
    pub max_bytes: u64,
    /// Rolled files kept beside the live one (0: none).
    pub keep: u32,
    /// Rolled files last written longer ago are removed; `None`: kept by
    /// count only.
    pub max_age: Option<std::time::Duration>,
}

impl Default for LogRetention {
    fn default() -> Self {
        LogRetention {
            max_bytes: 20 << 20,
            keep: 1,
            max_age: None,
        }
    }
}

/// One bot: its own worker, state, Codex home and (optionally) Feishu/Lark
/// app. Profiles share nothing but the fcxd process.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Its name (`[profiles.<name>]`); also names its directory and socket.
    pub name: String,
    /// A disabled profile gets no worker and no channel.
    pub enabled: bool,
    /// How its worker runs Codex.
    pub codex: CodexConfig,
    /// Where runs start.
    pub workspaces: WorkspacesConfig,
    /// Queueing and stopping of runs.
    pub runs: RunsConfig,
    /// The Feishu/Lark app; `None` runs the profile console-only.
    pub app: Option<AppConfig>,
    /// Who may use it.
    pub access: AccessConfig,
    /// What Codex may do in it.
    pub permissions: PermissionsConfig,
    /// The Feishu/Lark CLI identity its Codex children get (`lark_cli`).
    pub lark_cli: LarkCli,
}

/// Which of the two deployments of the platform the app lives on; they
/// differ only in their hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tenant {
    /// Feishu (open.feishu.cn).
    Feishu,
    /// Lark (open.larksuite.com).
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
    /// The word `config.toml` uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Tenant::Feishu => "feishu",
            Tenant::Lark => "lark",
        }
    }
}

/// The Feishu/Lark app a profile answers as.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// Feishu or Lark.
    pub tenant: Tenant,
    /// Overrides the tenant's base URL (tests point it at the fake platform).
    pub base_url: String,
    /// The app's id (`cli_...`); not a secret.
    pub app_id: String,
    /// Where the app secret is read from; never the secret itself.
    pub app_secret: SecretRef,
    /// Webhook ingress, for apps that cannot use the long connection; off
    /// unless configured.
    pub webhook: Option<WebhookConfig>,
    /// Messages older than this when they arrive are stale replays and are
    /// dropped (the platform retries for hours).
    pub stale_after_secs: u64,
    /// How runs are shown unless a chat chose otherwise (`/config`).
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
    /// The word `config.toml` and `/config` use.
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
    /// The address to listen on (loopback only).
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
    /// open_ids that may change settings and access for everyone.
    pub admins: Vec<String>,
    /// open_ids allowed to talk to the bot in private chats and groups.
    pub allowed_users: Vec<String>,
    /// chat_ids of groups where every member may talk to the bot.
    pub allowed_chats: Vec<String>,
    /// In groups, the bot answers only when @mentioned (a chat may change
    /// it with `/config`).
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
    /// Codex reads; it writes nothing and runs nothing that writes.
    ReadOnly,
    /// Codex writes inside the workspace only.
    Workspace,
    /// No sandbox at all (the owner's choice only).
    Full,
}

impl AccessMode {
    /// The word `config.toml` and `/config` use.
    pub fn as_str(&self) -> &'static str {
        match self {
            AccessMode::ReadOnly => "read-only",
            AccessMode::Workspace => "workspace",
            AccessMode::Full => "full",
        }
    }
}

/// What Codex may do in a profile's chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermissionsConfig {
    /// A chat's access mode until an admin changes it.
    pub default_access: AccessMode,
    /// The most any chat may be given (`full` needs the owner as well).
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

/// Where the Codex child's OpenAI credentials come from.
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
    /// The word `config.toml` uses.
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
    Exec,
    /// `codex app-server` over stdio JSON-RPC: live deltas, interrupt, steer,
    /// approvals. The default since every run and command test passes on it.
    #[default]
    AppServer,
}

impl RunnerKind {
    /// The word `config.toml` uses.
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
    /// Every choice, in the order forms offer them.
    pub const ALL: [DuringRun; 3] = [DuringRun::Steer, DuringRun::Queue, DuringRun::Interrupt];

    /// The word config.toml and `/config` use.
    pub fn as_str(&self) -> &'static str {
        match self {
            DuringRun::Steer => "steer",
            DuringRun::Queue => "queue",
            DuringRun::Interrupt => "interrupt",
        }
    }

    /// The choice a config word names.
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

/// Who may decide an approval request (config `approvers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approvers {
    /// Only the user whose message started the run.
    Actor,
    /// That user, the admins and the owner.
    #[default]
    Admins,
    /// The owner alone (others may run Codex, but only the owner lets it act).
    Owner,
}

impl Approvers {
    /// The config word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Approvers::Actor => "actor",
            Approvers::Admins => "admins",
            Approvers::Owner => "owner",
        }
    }
}

/// How a profile's worker runs Codex.
#[derive(Debug, Clone, PartialEq)]
pub struct CodexConfig {
    /// A path, or a name looked up on PATH when the worker starts.
    pub binary: String,
    /// Where its credentials come from.
    pub auth: AuthMode,
    /// Where the API key is read from (auth = api-key).
    pub api_key: Option<SecretRef>,
    /// `--model` for every run; `None` leaves Codex's own default.
    pub model: Option<String>,
    /// `-c key=value` overrides, flattened to dotted keys with TOML literal values.
    pub overrides: Vec<(String, String)>,
    /// exec or app-server.
    pub runner: RunnerKind,
    /// The default for messages arriving during a run (`/config during_run`
    /// changes it per chat).
    pub during_run: DuringRun,
    /// Codex's approval policy; anything but `never` needs the app-server
    /// runner.
    pub approval: ApprovalPolicy,
    /// How long an approval card waits for a decision before it declines.
    pub approval_timeout_secs: u64,
    /// Who may decide an approval request.
    pub approvers: Approvers,
    /// How long a scope's app-server child stays alive after its run, for
    /// the scope's next run to reuse; 0: one child per run.
    pub app_server_idle_secs: u64,
    /// Idle app-server children kept at most (the oldest is shut down).
    pub app_server_max_idle: usize,
}

/// Where a profile's runs start.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspacesConfig {
    /// The profile's default workspace, `~` already expanded.
    pub default: PathBuf,
}

/// How a profile queues and stops runs.
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
    /// How long a message that is only attachments (a screenshot) waits for
    /// the text that usually follows it before it runs alone.
    pub attachment_wait_ms: u64,
    /// Fail a run whose model API has not answered for this many seconds
    /// while Codex keeps reconnecting (0 = never: Codex retries without
    /// end when the endpoint cannot be reached).
    pub model_unreachable_secs: u64,
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self {
            debounce_ms: 0,
            max_concurrent: 4,
            idle_timeout_secs: 30 * 60,
            stop_grace_ms: 700,
            attachment_wait_ms: 30_000,
            model_unreachable_secs: 90,
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
