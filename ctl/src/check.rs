//! `fcxctl config check`: what fcxd would find wrong at start, said before it
//! starts, with the key to change for each problem. Works without fcxd.

use std::io::Write;
use std::path::Path;

use fcx_config::{AuthMode, Config, Home, Profile, SecretError, SecretRef};

/// Collects the report and counts what fails the check.
struct Report<'a> {
    out: &'a mut dyn Write,
    errors: usize,
    warnings: usize,
    /// Problems in a disabled profile are reported but do not fail the
    /// check: fcxd does not start that profile.
    strict: bool,
    /// `--json`: every line as a record (and `out` a sink).
    records: Option<Vec<serde_json::Value>>,
    profile: Option<String>,
}

impl Report<'_> {
    fn record(&mut self, label: &str, status: &str, detail: &str) {
        let profile = self.profile.clone();
        if let Some(r) = &mut self.records {
            r.push(serde_json::json!({
                "profile": profile, "check": label, "status": status, "detail": detail,
            }));
        }
    }

    fn ok(&mut self, label: &str, detail: &str) -> std::io::Result<()> {
        self.record(label, "ok", detail);
        writeln!(self.out, "  {label}: ok ({detail})")
    }

    fn info(&mut self, label: &str, detail: &str) -> std::io::Result<()> {
        self.record(label, "info", detail);
        writeln!(self.out, "  {label}: {detail}")
    }

    fn error(&mut self, label: &str, sentence: &str) -> std::io::Result<()> {
        if self.strict {
            self.errors += 1;
            self.record(label, "error", sentence);
            writeln!(self.out, "  {label}: error: {sentence}")
        } else {
            self.warn(label, sentence)
        }
    }

    fn warn(&mut self, label: &str, sentence: &str) -> std::io::Result<()> {
        self.warnings += 1;
        self.record(label, "warning", sentence);
        writeln!(self.out, "  {label}: warning: {sentence}")
    }

    fn note(&mut self, sentence: &str) -> std::io::Result<()> {
        self.record("note", "info", sentence);
        writeln!(self.out, "    note: {sentence}")
    }
}

/// `config check --json`: one object with every check as a record.
pub(crate) fn config_check_json(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    let cfg = Config::load(home)?;
    let mut sink = std::io::sink();
    let mut r = Report {
        out: &mut sink,
        errors: 0,
        warnings: 0,
        strict: true,
        records: Some(Vec::new()),
        profile: None,
    };
    #[cfg(unix)]
    check_home_mode(home, &mut r)?;
    for p in cfg.profiles.values() {
        r.profile = Some(p.name.clone());
        check_profile(home, p, &mut r)?;
    }
    let v = serde_json::json!({
        "config": cfg.path.display().to_string(),
        "from_file": cfg.from_file,
        "ok": r.errors == 0,
        "errors": r.errors,
        "warnings": r.warnings,
        "checks": r.records.take().unwrap_or_default(),
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    Ok(if r.errors == 0 {
        crate::exit::OK
    } else {
        crate::exit::FAILURE
    })
}

pub(crate) fn config_check(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    writeln!(out, "home: {}", home_line(home))?;
    // The ConfigError sentence already names the file and the key.
    let cfg = Config::load(home)?;
    if cfg.from_file {
        writeln!(out, "config: {}", cfg.path.display())?;
    } else {
        writeln!(
            out,
            "config: {} does not exist; the built-in default profile `{}` is in use",
            cfg.path.display(),
            fcx_config::DEFAULT_PROFILE
        )?;
    }
    let mut r = Report {
        out,
        errors: 0,
        warnings: 0,
        strict: true,
        records: None,
        profile: None,
    };
    #[cfg(unix)]
    check_home_mode(home, &mut r)?;
    for p in cfg.profiles.values() {
        check_profile(home, p, &mut r)?;
    }
    let n = cfg.profiles.len();
    let profiles = if n == 1 { "profile" } else { "profiles" };
    let warnings = match r.warnings {
        0 => String::new(),
        1 => ", 1 warning".into(),
        w => format!(", {w} warnings"),
    };
    if r.errors == 0 {
        writeln!(r.out, "config check: ok ({n} {profiles}{warnings})")?;
        Ok(crate::exit::OK)
    } else {
        let problems = if r.errors == 1 { "problem" } else { "problems" };
        writeln!(
            r.out,
            "config check: {} {problems} in {n} {profiles}{warnings}",
            r.errors
        )?;
        Ok(crate::exit::FAILURE)
    }
}

fn home_line(home: &Home) -> String {
    let root = home.root().display();
    if home.root().is_dir() {
        root.to_string()
    } else {
        format!("{root} (does not exist yet; fcxd creates it on first start)")
    }
}

/// FCX_HOME holds state, logs and sockets of every profile: other users must
/// not read it. Only a warning, because fcxd tightens it on start.
#[cfg(unix)]
fn check_home_mode(home: &Home, r: &mut Report<'_>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(home.root()) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            r.warn(
                "home",
                &format!(
                    "{} is accessible to other users (mode {mode:o}); chmod 700 {}",
                    home.root().display(),
                    home.root().display()
                ),
            )?;
        }
    }
    Ok(())
}

fn check_profile(home: &Home, p: &Profile, r: &mut Report<'_>) -> std::io::Result<()> {
    r.strict = p.enabled;
    if p.enabled {
        writeln!(r.out, "profile `{}`: enabled", p.name)?;
    } else {
        writeln!(
            r.out,
            "profile `{}`: disabled (its problems are warnings until it is enabled)",
            p.name
        )?;
    }

    match fcx_config::codex::locate(&p.codex.binary, &p.name) {
        Ok(found) => {
            let detail = if found.on_path {
                format!(
                    "{}, `{}` found on PATH",
                    found.path.display(),
                    p.codex.binary
                )
            } else {
                found.path.display().to_string()
            };
            r.ok("codex binary", &detail)?;
            if found.on_path {
                r.note(&format!(
                    "fcxd looks `{}` up on its own PATH, which under a service manager is \
                     usually shorter than this shell's; an absolute path in \
                     profiles.{}.codex.binary avoids surprises",
                    p.codex.binary, p.name
                ))?;
            }
        }
        Err(e) => r.error("codex binary", &e.to_string())?,
    }

    r.info("auth", p.codex.auth.as_str())?;
    match p.codex.auth {
        AuthMode::ApiKey => check_api_key(p, r)?,
        AuthMode::CodexHome => check_codex_home(home, p, r)?,
        AuthMode::InheritUser => r.info(
            "codex home",
            "the operator's own ~/.codex login (CODEX_HOME is not set for Codex)",
        )?,
    }
    if let Some(m) = &p.codex.model {
        r.info("model", m)?;
    }

    check_workspace(home, p, r)
}

fn check_api_key(p: &Profile, r: &mut Report<'_>) -> std::io::Result<()> {
    let key = format!("profiles.{}.codex.api_key", p.name);
    let Some(reference) = &p.codex.api_key else {
        return r.error(
            "api key",
            &format!("auth is api-key but no key is configured; set {key} to keystore:ID, env:VAR, file:PATH or exec:COMMAND"),
        );
    };
    // Resolve to prove the key is reachable; the value is dropped unread and
    // only the reference is ever printed.
    match reference.resolve() {
        Ok(_) => {
            r.ok("api key", &reference.to_string())?;
            if let SecretRef::Env(var) = reference {
                r.note(&format!(
                    "fcxd reads {var} from its own environment, not this shell's; under a \
                     service manager use keystore:ID (fcxctl secret set) or file:PATH"
                ))?;
            }
            Ok(())
        }
        Err(e) => {
            let hint = match &e {
                SecretError::EnvMissing { var, .. } => {
                    format!("export {var} in fcxd's environment, or point {key} at a file:PATH")
                }
                SecretError::FileUnreadable { .. } => {
                    format!("create the file with the key (mode 0600) or fix {key}")
                }
                SecretError::FileEmpty { .. } => "write the key into the file (mode 0600)".into(),
                SecretError::Exec { .. } => format!("check the command in {key}"),
                // These sentences end in their fix already.
                SecretError::FileOpen { .. }
                | SecretError::Keystore { .. }
                | SecretError::EnvNotTaken { .. } => String::new(),
            };
            if hint.is_empty() {
                r.error("api key", &e.to_string())
            } else {
                r.error("api key", &format!("{e}; {hint}"))
            }
        }
    }
}

fn check_codex_home(home: &Home, p: &Profile, r: &mut Report<'_>) -> std::io::Result<()> {
    let dir = home.profile(&p.name).codex_home();
    let login = format!("CODEX_HOME={} codex login", dir.display());
    r.info("codex home", &dir.display().to_string())?;
    if !dir.is_dir() {
        r.warn(
            "codex home",
            &format!("it does not exist yet; log in once with: {login}"),
        )
    } else if !dir.join("auth.json").is_file() {
        // Codex may keep credentials in the OS keyring instead, so this
        // cannot be more than a warning.
        r.warn(
            "codex home",
            &format!(
                "no auth.json there; unless Codex keeps its login in the OS keyring, log in \
                 once with: {login}"
            ),
        )
    } else {
        Ok(())
    }
}

fn check_workspace(home: &Home, p: &Profile, r: &mut Report<'_>) -> std::io::Result<()> {
    let ws = &p.workspaces.default;
    let key = format!("profiles.{}.workspaces.default", p.name);
    match std::fs::metadata(ws) {
        Ok(m) if m.is_dir() => {
            r.ok("workspace", &ws.display().to_string())?;
            if ws == Path::new("/") || ws == home.user_home() {
                r.warn(
                    "workspace",
                    &format!(
                        "{} is a broad root: Codex would work across all of it; set {key} to \
                         a project directory",
                        ws.display()
                    ),
                )?;
            }
            Ok(())
        }
        Ok(_) => r.error(
            "workspace",
            &format!(
                "{} is not a directory; set {key} to a directory",
                ws.display()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.error(
            "workspace",
            &format!(
                "{} does not exist; create it (mkdir -p {}) or set {key}",
                ws.display(),
                ws.display()
            ),
        ),
        Err(e) => r.error(
            "workspace",
            &format!("cannot inspect {}: {e}; check {key}", ws.display()),
        ),
    }
}
