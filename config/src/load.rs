//! Reading `config.toml`: the raw serde shapes (unknown keys are errors),
//! their validation into [`Config`], and error messages that name the file,
//! line and key but never a value.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::*;

// ---- raw (serde) shapes: unknown keys are errors ----

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Absent in files written before it existed: those are version 1.
    schema_version: Option<u32>,
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
    // Metrics (issue 13): the opt-in Prometheus endpoint.
    metrics: Option<String>,
    logs: Option<RawLogs>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    max_size_mib: Option<u64>,
    keep: Option<u32>,
    max_age_days: Option<u64>,
}

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
    lark_cli: Option<crate::LarkCli>,
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
    runner: Option<RunnerKind>,
    during_run: Option<DuringRun>,
    approval: Option<ApprovalPolicy>,
    approval_timeout_secs: Option<u64>,
    approvers: Option<Approvers>,
    app_server_idle_secs: Option<u64>,
    app_server_max_idle: Option<usize>,
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
    attachment_wait_ms: Option<u64>,
    model_unreachable_secs: Option<u64>,
}

impl Config {
    /// Read `home`'s config.toml, or the built-in default when it is absent.
    pub fn load(home: &Home) -> Result<Self, ConfigError> {
        let path = home.config_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path, &text, home),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut cfg = Self::parse(&path, "", home)?;
                cfg.from_file = false;
                // No config and no key, but the operator is logged in to
                // Codex: the built-in profile uses that login rather than
                // failing every run (fcxd says so at start).
                let no_key =
                    crate::env_secrets::var("OPENAI_API_KEY").is_none_or(|v| v.trim().is_empty());
                if no_key && crate::codex::user_login(home).is_some() {
                    for p in cfg.profiles.values_mut() {
                        p.codex.auth = AuthMode::InheritUser;
                        p.codex.api_key = None;
                    }
                }
                Ok(cfg)
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Parse and validate `text` as the config at `path` (`~` expands
    /// against `home`).
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
        let metrics = match raw.metrics.as_deref() {
            None => None,
            Some(m) => Some(metrics_addr(m).map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "metrics".into(),
                message,
            })?),
        };
        let logs = log_retention(raw.logs.unwrap_or_default()).map_err(|(key, message)| {
            ConfigError::Invalid {
                path: path.to_path_buf(),
                key: format!("logs.{key}"),
                message,
            }
        })?;
        Ok(Config {
            path: path.to_path_buf(),
            from_file: true,
            profiles,
            metrics,
            logs,
        })
    }

    /// The profile named `name`, or an error listing the ones there are.
    pub fn profile(&self, name: &str) -> Result<&Profile, ConfigError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ConfigError::UnknownProfile {
                path: self.path.clone(),
                name: name.to_string(),
                known: self.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// The profiles fcxd serves.
    pub fn enabled_profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values().filter(|p| p.enabled)
    }
}

/// `[logs]`, within bounds; the error names the key.
fn log_retention(raw: RawLogs) -> Result<LogRetention, (&'static str, String)> {
    let mut r = LogRetention::default();
    if let Some(m) = raw.max_size_mib {
        if !(1..=1024).contains(&m) {
            return Err(("max_size_mib", format!("{m} is not within 1..=1024 (MiB)")));
        }
        r.max_bytes = m << 20;
    }
    if let Some(k) = raw.keep {
        if k > 100 {
            return Err(("keep", format!("{k} is more than 100 rolled files")));
        }
        r.keep = k;
    }
    if let Some(d) = raw.max_age_days {
        if !(1..=3650).contains(&d) {
            return Err((
                "max_age_days",
                format!("{d} is not within 1..=3650 (leave it out to keep files by count only)"),
            ));
        }
        r.max_age = Some(std::time::Duration::from_secs(d * 86_400));
    }
    Ok(r)
}

/// The metrics listener: a loopback address and port (the endpoint has no
/// authentication, so it never listens beyond this machine).
fn metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = s
        .parse()
        .map_err(|_| "must be a loopback address and port, e.g. \"127.0.0.1:9464\"".to_string())?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address; the metrics endpoint listens on 127.0.0.1 or ::1 only \
             (put a proxy in front to expose it)",
            addr.ip()
        ));
    }
    Ok(addr)
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

/// Whether `name` may name a profile: it becomes a directory and a
/// socket name, so it stays short and plain.
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
        attachment_wait_ms: rp.runs.attachment_wait_ms.unwrap_or(d.attachment_wait_ms),
        model_unreachable_secs: rp
            .runs
            .model_unreachable_secs
            .unwrap_or(d.model_unreachable_secs),
    };
    if runs.model_unreachable_secs > 86_400 {
        return Err(invalid(
            ".runs.model_unreachable_secs",
            "must be at most 86400 (a day); 0 turns the limit off".into(),
        ));
    }
    if runs.attachment_wait_ms > 600_000 {
        return Err(invalid(
            ".runs.attachment_wait_ms",
            "must be at most 600000 (ten minutes)".into(),
        ));
    }
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

    let runner = rp.codex.runner.unwrap_or_default();
    let approval = rp.codex.approval.unwrap_or_default();
    if approval != ApprovalPolicy::Never && runner != RunnerKind::AppServer {
        return Err(invalid(
            ".codex.approval",
            format!(
                "\"{}\" needs runner = \"app-server\" (codex exec cannot ask for approval; it always runs with approval \"never\")",
                approval.as_str()
            ),
        ));
    }
    let approval_timeout_secs = rp.codex.approval_timeout_secs.unwrap_or(10 * 60);
    if approval_timeout_secs == 0 {
        return Err(invalid(
            ".codex.approval_timeout_secs",
            "must be at least 1".into(),
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
            runner,
            during_run: rp.codex.during_run.unwrap_or_default(),
            approval,
            approval_timeout_secs,
            approvers: rp.codex.approvers.unwrap_or_default(),
            app_server_idle_secs: rp.codex.app_server_idle_secs.unwrap_or(300),
            app_server_max_idle: rp.codex.app_server_max_idle.unwrap_or(4),
        },
        workspaces: WorkspacesConfig {
            default: default_ws,
        },
        runs,
        lark_cli: rp.lark_cli.unwrap_or_default(),
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
