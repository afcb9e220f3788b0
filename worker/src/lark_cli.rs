//! Projecting the profile's Feishu/Lark CLI identity into a Codex child
//! (issue 13 item 7; see [`fcx_config::lark_cli`]).
//!
//! `lark-cli` (npm `@larksuite/cli`) reads `$LARKSUITE_CLI_CONFIG_DIR/config.json`:
//! `{"apps":[{"appId", "appSecret", "brand", "defaultAs", "strictMode", "users"}]}`,
//! where `appSecret` is a plain string or a reference `{"source":"file"|"keychain","id"}`.
//! Its keychain is its own store (on Linux an AES key file next to the
//! data), so fcx uses the `file` reference: the secret sits in `app-secret`
//! (0600) beside `config.json`, never in config.json, the environment or a
//! log. That directory is bound into the child's view of the otherwise
//! hidden `$FCX_HOME`, because `lark-cli` runs as one of Codex's commands:
//! whatever `lark-cli` can read, Codex's commands can read too. That is
//! what giving Codex the bot identity means; `lark_cli = "disabled"` keeps
//! the secret out of every run. Codex's own sandbox keeps the directory
//! read-only (writes are limited to the workspace) unless access is `full`.

use std::path::{Path, PathBuf};

use fcx_config::{Home, LarkCli, Profile, Tenant};

use crate::runner::ChildEnv;

/// The variable `lark-cli` takes its config directory from.
pub(crate) const CONFIG_DIR_VAR: &str = "LARKSUITE_CLI_CONFIG_DIR";

/// The preset a run in `scope` gets: the profile's, narrowed to bot-only
/// outside one-to-one chats (`one_to_one`: a private chat or the console).
pub(crate) fn effective(profile: &Profile, one_to_one: bool) -> LarkCli {
    if profile.app.is_none() {
        // No app, no bot to act as.
        return LarkCli::Disabled;
    }
    profile.lark_cli.for_chat(one_to_one)
}

/// Writes the config directory for `preset` and adds it to `env` (the only
/// variable: `LARKSUITE_CLI_CONFIG_DIR`), bound back inside the hidden
/// `$FCX_HOME`. A run that must not act as a user also has the operator's
/// own `lark-cli` state hidden. The error is the sentence the user sees.
pub(crate) fn project(
    profile: &Profile,
    home: &Home,
    preset: LarkCli,
    env: &mut ChildEnv,
) -> Result<(), String> {
    if preset != LarkCli::UserDefault
        && let Some(h) = env.hide.as_mut()
    {
        h.also.extend(fcx_config::lark_cli::user_state_dirs(home));
    }
    let (Some(app), Some(dir)) = (
        profile.app.as_ref(),
        fcx_config::lark_cli::config_dir(home, &profile.name, preset),
    ) else {
        return Ok(());
    };
    // The run goes on without lark-cli rather than failing on it.
    let secret = match app.app_secret.resolve() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(profile = %profile.name, error = %e, "cannot read the app secret for lark-cli; this run gets no lark-cli configuration");
            return Ok(());
        }
    };
    write(&dir, &app.app_id, app.tenant, secret.expose(), preset).map_err(|e| {
        format!(
            "cannot write lark-cli's configuration in {}: {e}",
            dir.display()
        )
    })?;
    env.set
        .push((CONFIG_DIR_VAR.into(), dir.display().to_string()));
    if let Some(h) = env.hide.as_mut() {
        h.keep.push(dir);
    }
    Ok(())
}

/// One line for `/status` and `/doctor`: the identity a run here gets
/// (`here`, see [`effective`]) and the profile's preset. App ids and words
/// only, never a secret or token.
pub(crate) fn describe(profile: &Profile, here: LarkCli) -> String {
    let configured = profile.lark_cli;
    match (here, &profile.app) {
        (_, None) => "disabled (no Feishu/Lark app in this profile)".into(),
        (LarkCli::Disabled, _) => "disabled (lark_cli = \"disabled\")".into(),
        (LarkCli::BotOnly, Some(app)) if configured == LarkCli::UserDefault => format!(
            "bot-only here, as the app {} (lark_cli = \"user-default\" applies in private chats only)",
            app.app_id
        ),
        (LarkCli::BotOnly, Some(app)) => format!("bot-only, as the app {}", app.app_id),
        (LarkCli::UserDefault, Some(app)) => format!(
            "user-default: the user logged in to lark-cli for the app {} (bot-only in groups)",
            app.app_id
        ),
    }
}

fn write(
    dir: &Path,
    app_id: &str,
    tenant: Tenant,
    secret: &str,
    preset: LarkCli,
) -> std::io::Result<()> {
    if let Some(parent) = dir.parent() {
        fcx_config::private_dir(parent)?;
    }
    fcx_config::private_dir(dir)?;
    let secret_path = dir.join("app-secret");
    if std::fs::read(&secret_path).ok().as_deref() != Some(secret.as_bytes()) {
        write_private(&secret_path, secret.as_bytes())?;
    }
    let path = dir.join("config.json");
    let old: Option<serde_json::Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let body = config_json(app_id, tenant, &secret_path, preset, old.as_ref());
    let text = serde_json::to_vec_pretty(&body).map_err(std::io::Error::other)?;
    if std::fs::read(&path).ok().as_deref() != Some(&text[..]) {
        write_private(&path, &text)?;
    }
    Ok(())
}

/// The `config.json` `lark-cli` reads. Bot-only: strict mode `bot` (its
/// user commands are hidden), no users. User-default: acts as the user the
/// operator logged in (`lark-cli auth login` adds it to `users`, kept
/// across rewrites while the app id stays the same).
pub(crate) fn config_json(
    app_id: &str,
    tenant: Tenant,
    secret_path: &Path,
    preset: LarkCli,
    old: Option<&serde_json::Value>,
) -> serde_json::Value {
    let (default_as, strict, users) = match preset {
        LarkCli::UserDefault => {
            let users = old
                .and_then(|o| o.get("apps")?.as_array()?.first().cloned())
                .filter(|a| a.get("appId").and_then(|v| v.as_str()) == Some(app_id))
                .and_then(|a| a.get("users").cloned())
                .unwrap_or_else(|| serde_json::json!([]));
            ("user", "off", users)
        }
        _ => ("bot", "bot", serde_json::json!([])),
    };
    let brand = match tenant {
        Tenant::Feishu => "feishu",
        Tenant::Lark => "lark",
    };
    serde_json::json!({
        "strictMode": strict,
        "currentApp": "fcx",
        "apps": [{
            "name": "fcx",
            "appId": app_id,
            "appSecret": {"source": "file", "id": secret_path.display().to_string()},
            "brand": brand,
            "defaultAs": default_as,
            "strictMode": strict,
            "users": users,
        }],
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Runs of several scopes start at once and each projects the same
    // files: a temporary name of its own per write, so one run's clean-up
    // never removes the file another is about to rename (that race failed
    // runs with ENOENT under load).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp: PathBuf = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    {
        use std::io::Write;
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[path = "lark_cli_tests.rs"]
mod tests;
