//! Checks on this machine: Codex, secrets, workspaces, permissions, fcxd.

use std::path::Path;
use std::time::Duration;

use fcx_config::{AuthMode, Home, Profile, SecretRef};

use super::Checks;

/// `codex --version` answers at once; a binary that does not is not Codex.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// FCX_HOME and the directories fcxd keeps private (0700), the admin socket;
/// on Windows the home's DACL.
pub(super) fn home_permissions(home: &Home, c: &mut Checks) {
    let root = home.root();
    if !root.is_dir() {
        c.info(
            "permissions",
            format!(
                "{} does not exist yet; fcxd creates it (0700) on first start",
                root.display()
            ),
        );
        return;
    }
    if cfg!(windows) {
        // Modes mean nothing there: the home's DACL does.
        super::win_home::home_acl(root, c);
        return;
    }
    let mut loose = Vec::new();
    let dirs = [
        root.to_path_buf(),
        home.run_dir(),
        home.logs_dir(),
        root.join("profiles"),
    ];
    let mut profile_dirs: Vec<_> = std::fs::read_dir(root.join("profiles"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    profile_dirs.sort();
    for d in dirs.iter().chain(profile_dirs.iter()) {
        if open_mode(d).is_some() {
            loose.push(format!("chmod 700 {}", d.display()));
        }
    }
    // Every file fcx keeps there (state.db and its journals, cursors, used
    // nonces, key files, logs, sockets): written under umask 0077, so a
    // looser one was copied in or chmodded later.
    let mut files: Vec<_> = profile_dirs
        .iter()
        .map(|d| d.join("callback-keys.json"))
        .collect();
    files.push(home.gateway_socket());
    // config.toml is the operator's (and holds secret references only).
    let state_dirs = [home.run_dir(), home.logs_dir()];
    for d in state_dirs.iter().chain(profile_dirs.iter()) {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        let mut found: Vec<_> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| !p.is_dir() && !files.contains(p))
            .collect();
        found.sort();
        files.extend(found);
    }
    for f in files {
        if open_mode(&f).is_some() {
            loose.push(format!("chmod 600 {}", f.display()));
        }
    }
    if loose.is_empty() {
        c.ok(
            "permissions",
            format!(
                "{} and its directories are private (0700), its files (state, logs, keys, sockets) 0600",
                root.display()
            ),
        );
    } else {
        c.fail(
            "permissions",
            "other users can read or enter parts of FCX_HOME (state, logs, keys)",
            loose.join("; "),
        );
    }
}

/// `Some(mode)` when `p` exists and group or others have any access.
#[cfg(unix)]
pub(super) fn open_mode(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::symlink_metadata(p).ok()?;
    let mode = m.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
pub(super) fn open_mode(_: &Path) -> Option<u32> {
    None
}

/// Whether fcxd is installed as a service, and (systemd) lingers.
pub(super) fn service_unit(home: &Home, c: &mut Checks) {
    let v = crate::service::native_status(home);
    let unit = v["unit"].as_str().unwrap_or("");
    if v["installed"] != true {
        c.info("service", format!("not installed ({} absent)", unit));
        return;
    }
    c.ok(
        "service",
        format!(
            "{} installed, {}",
            unit,
            v["active"].as_str().unwrap_or("state unknown")
        ),
    );
    if let Some(l) = v["linger"].as_str()
        && l != "on"
    {
        let user = crate::service::user_name();
        c.warn(
            "linger",
            format!("{l}: fcxd stops when your last session ends"),
            format!("loginctl enable-linger {user}"),
        );
    }
}

/// Whether fcxd answers on its admin socket.
pub(super) async fn service(home: &Home, c: &mut Checks) {
    match crate::admin::Admin::connect(home).await {
        Ok(mut admin) => match admin.status().await {
            Ok(st) => c.ok(
                "fcxd",
                format!("running (pid {}, {} profile(s))", st.pid, st.profiles.len()),
            ),
            Err(e) => c.fail(
                "fcxd",
                e.to_string(),
                "see its log in $FCX_HOME/logs/fcxd.log; restart it with `fcxctl service restart`",
            ),
        },
        Err(crate::CtlError::NotRunning { .. }) => c.warn(
            "fcxd",
            "not running",
            "start it: `fcxctl service install` (runs it as a service), or `fcxd` in a terminal",
        ),
        Err(e) => c.fail(
            "fcxd",
            e.to_string(),
            "run fcxctl as the user that runs fcxd, or restart it with `fcxctl service restart`",
        ),
    }
}

pub(super) async fn profile(home: &Home, p: &Profile, c: &mut Checks) {
    if !p.enabled {
        c.info(
            "profile",
            "disabled (problems are reported as warnings until it is enabled)",
        );
    }
    codex(p, c).await;
    auth(home, p, c);
    super::model::endpoint(home, p, c).await;
    secrets(p, c);
    workspace(home, p, c);
    app_lock(home, p, c);
}

/// Whether the profile's app id is free or served from this home: an app
/// served by another home's fcxd makes this one refuse to start.
fn app_lock(home: &Home, p: &Profile, c: &mut Checks) {
    use fcx_config::app_lock::{AppLock, AppLockError, lock_dir};
    let Some(app) = &p.app else { return };
    let this_home = format!("in {} (fcxd pid", home.root().display());
    match AppLock::acquire(&lock_dir(home), &app.app_id, "fcxctl doctor (checking)") {
        Ok(_free) => c.ok("app lock", format!("app {} is not served by another home", app.app_id)),
        Err(AppLockError::Held { holder, .. }) if holder.contains(&this_home) => {
            c.ok("app lock", format!("app {} is served by this home's fcxd", app.app_id))
        }
        Err(e @ AppLockError::Held { .. }) => c.fail(
            "app lock",
            e.to_string(),
            "stop the fcxd of that home (`fcxctl --home DIR stop`), or give this profile an app of its own",
        ),
        Err(e) => c.warn("app lock", e.to_string(), "check the permissions of that directory"),
    }
}

async fn codex(p: &Profile, c: &mut Checks) {
    let found = match fcx_config::codex::locate(&p.codex.binary, &p.name) {
        Ok(f) => f,
        Err(e) => {
            let text = e.to_string();
            let (detail, fix) = text.split_once("; ").unwrap_or((&text, ""));
            c.fail("codex binary", detail, fix);
            return;
        }
    };
    let mut detail = found.path.display().to_string();
    if found.on_path {
        detail.push_str(&format!(" (`{}` found on PATH)", p.codex.binary));
    }
    c.ok("codex binary", detail);
    let run = tokio::process::Command::new(&found.path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let pinned = fcx_config::codex::PINNED_VERSION;
    match tokio::time::timeout(VERSION_TIMEOUT, run).await {
        Ok(Ok(o)) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            match fcx_config::codex::parse_version(&text) {
                Some(v) if v == pinned => c.ok("codex version", v),
                Some(v) => c.warn(
                    "codex version",
                    format!("{v}; fcx is tested with {pinned}"),
                    format!(
                        "install the tested version: {}",
                        fcx_config::codex::INSTALL_HINT
                    ),
                ),
                None => c.warn(
                    "codex version",
                    "`--version` printed no version number",
                    format!(
                        "check that {} is the Codex CLI ({})",
                        found.path.display(),
                        fcx_config::codex::INSTALL_HINT
                    ),
                ),
            }
        }
        Ok(Ok(o)) => c.fail(
            "codex version",
            format!("`{} --version` failed ({})", found.path.display(), o.status),
            format!("reinstall Codex: {}", fcx_config::codex::INSTALL_HINT),
        ),
        Ok(Err(e)) => c.fail(
            "codex version",
            format!("cannot run {}: {e}", found.path.display()),
            format!(
                "reinstall Codex ({}) or fix profiles.{}.codex.binary",
                fcx_config::codex::INSTALL_HINT,
                p.name
            ),
        ),
        Err(_) => c.fail(
            "codex version",
            format!(
                "`{} --version` did not answer within {}s",
                found.path.display(),
                VERSION_TIMEOUT.as_secs()
            ),
            format!(
                "check that it is the Codex CLI ({})",
                fcx_config::codex::INSTALL_HINT
            ),
        ),
    }
}

fn auth(home: &Home, p: &Profile, c: &mut Checks) {
    match p.codex.auth {
        AuthMode::ApiKey => c.info(
            "codex auth",
            "api-key (checked with the secrets below); each chat has its own CODEX_HOME under codex-homes/",
        ),
        AuthMode::CodexHome => {
            let dir = home.profile(&p.name).codex_home();
            if dir.join("auth.json").is_file() {
                c.ok(
                    "codex auth",
                    format!(
                        "codex-home: {} (each chat has its own CODEX_HOME under codex-homes/, linked to this login and config.toml)",
                        dir.display()
                    ),
                );
            } else {
                // Codex may keep its login in the OS keyring instead.
                c.warn(
                    "codex auth",
                    format!("codex-home: no auth.json in {}", dir.display()),
                    format!(
                        "log in once: fcxctl codex login --profile {} (CODEX_HOME={})",
                        p.name,
                        dir.display()
                    ),
                );
            }
        }
        AuthMode::InheritUser => {
            let dir = home.user_home().join(".codex");
            if dir.join("auth.json").is_file() {
                c.ok(
                    "codex auth",
                    format!(
                        "inherit-user: {} (shared by every chat by design: threads and memories too)",
                        dir.display()
                    ),
                );
            } else {
                c.warn(
                    "codex auth",
                    format!("inherit-user: no auth.json in {}", dir.display()),
                    "log in once as this user: codex login",
                );
            }
        }
    }
}

/// Every secret reference the profile uses resolves; only references are
/// printed.
fn secrets(p: &Profile, c: &mut Checks) {
    let mut refs: Vec<(String, &SecretRef)> = Vec::new();
    if p.codex.auth == AuthMode::ApiKey
        && let Some(r) = &p.codex.api_key
    {
        refs.push((format!("profiles.{}.codex.api_key", p.name), r));
    }
    if let Some(app) = &p.app {
        refs.push((
            format!("profiles.{}.app.app_secret", p.name),
            &app.app_secret,
        ));
        if let Some(w) = &app.webhook {
            if let Some(r) = &w.encrypt_key {
                refs.push((format!("profiles.{}.app.webhook.encrypt_key", p.name), r));
            }
            if let Some(r) = &w.verification_token {
                refs.push((
                    format!("profiles.{}.app.webhook.verification_token", p.name),
                    r,
                ));
            }
        }
    }
    if p.codex.auth == AuthMode::ApiKey && p.codex.api_key.is_none() {
        c.fail(
            "secret",
            "auth is api-key but no key is configured",
            format!(
                "set profiles.{}.codex.api_key to a reference (env:VAR, file:PATH)",
                p.name
            ),
        );
    }
    for (key, r) in refs {
        match r.resolve() {
            // The trap on README's path: init's default `env:OPENAI_API_KEY`
            // resolves in the operator's shell, and the service installed
            // next starts fcxd without that shell's environment.
            Ok(_) if matches!(r, SecretRef::Env(_)) => c.warn(
                "secret",
                format!(
                    "{key} = {r} resolves in this shell, but fcxd started by the service manager does not see your shell's environment"
                ),
                format!(
                    "keep it in the keystore: `fcxctl secret set ID` (reads it without echo), then set {key} = \"keystore:ID\" (or use file:PATH)"
                ),
            ),
            Ok(_) => c.ok("secret", format!("{key} = {r} resolves")),
            Err(e) => c.fail("secret", format!("{key}: {e}"), secret_fix(&key, r)),
        }
    }
}

fn secret_fix(key: &str, r: &SecretRef) -> String {
    match r {
        SecretRef::Env(var) => format!(
            "export {var} in fcxd's environment (a service does not see your shell's), \
             or point {key} at a file:PATH"
        ),
        SecretRef::File(path) => format!(
            "write the value into {p} and make it private (chmod 600 {p}), or fix {key}",
            p = path.display()
        ),
        SecretRef::Keystore { id, .. } => {
            format!("store it: fcxctl secret set {id} (for fcxd's own FCX_HOME), or fix {key}")
        }
        SecretRef::Exec(_) => format!(
            "run the command by hand as fcxd's user; it must print the secret within {}s",
            fcx_config::EXEC_TIMEOUT.as_secs()
        ),
    }
}

fn workspace(home: &Home, p: &Profile, c: &mut Checks) {
    let ws = &p.workspaces.default;
    let key = format!("profiles.{}.workspaces.default", p.name);
    match std::fs::metadata(ws) {
        Ok(m) if m.is_dir() => {
            if ws == Path::new("/") || ws == home.user_home() {
                c.warn(
                    "workspace",
                    format!(
                        "{} is a broad root: Codex would work across all of it",
                        ws.display()
                    ),
                    format!("set {key} to a project directory"),
                );
            } else {
                c.ok("workspace", ws.display().to_string());
            }
        }
        Ok(_) => c.fail(
            "workspace",
            format!("{} is not a directory", ws.display()),
            format!("set {key} to a directory"),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => c.fail(
            "workspace",
            format!("{} does not exist", ws.display()),
            format!("mkdir -p {} (or set {key})", ws.display()),
        ),
        Err(e) => c.fail(
            "workspace",
            format!("cannot inspect {}: {e}", ws.display()),
            format!("check {key}"),
        ),
    }
}
