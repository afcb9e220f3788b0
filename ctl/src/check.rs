//! `fcxctl config check`: what fcxd would find wrong at start, said before it
//! starts, with the key to change for each problem. Works without fcxd.

use std::io::Write;
use std::path::{Path, PathBuf};

use fcx_config::{AuthMode, Config, Home, Profile, SecretError, SecretRef};

/// Collects the report and counts what fails the check.
struct Report<'a> {
    out: &'a mut dyn Write,
    errors: usize,
    warnings: usize,
    /// Problems in a disabled profile are reported but do not fail the
    /// check: fcxd does not start that profile.
    strict: bool,
}

impl Report<'_> {
    fn ok(&mut self, label: &str, detail: &str) -> std::io::Result<()> {
        writeln!(self.out, "  {label}: ok ({detail})")
    }

    fn info(&mut self, label: &str, detail: &str) -> std::io::Result<()> {
        writeln!(self.out, "  {label}: {detail}")
    }

    fn error(&mut self, label: &str, sentence: &str) -> std::io::Result<()> {
        if self.strict {
            self.errors += 1;
            writeln!(self.out, "  {label}: error: {sentence}")
        } else {
            self.warn(label, sentence)
        }
    }

    fn warn(&mut self, label: &str, sentence: &str) -> std::io::Result<()> {
        self.warnings += 1;
        writeln!(self.out, "  {label}: warning: {sentence}")
    }

    fn note(&mut self, sentence: &str) -> std::io::Result<()> {
        writeln!(self.out, "    note: {sentence}")
    }
}

pub fn config_check(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
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

    match check_binary(&p.codex.binary, &p.name) {
        Ok(found) => {
            r.ok("codex binary", &found.detail)?;
            if found.on_path {
                r.note(&format!(
                    "fcxd looks `{}` up on its own PATH, which under a service manager is \
                     usually shorter than this shell's; an absolute path in \
                     profiles.{}.codex.binary avoids surprises",
                    p.codex.binary, p.name
                ))?;
            }
        }
        Err(sentence) => r.error("codex binary", &sentence)?,
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

struct Found {
    detail: String,
    on_path: bool,
}

fn check_binary(binary: &str, profile: &str) -> Result<Found, String> {
    let key = format!("profiles.{profile}.codex.binary");
    let path = Path::new(binary);
    let is_bare = path.components().count() == 1 && !path.is_absolute();
    if is_bare {
        return match find_on_path(binary) {
            Some(found) => Ok(Found {
                detail: format!("{}, `{binary}` found on PATH", found.display()),
                on_path: true,
            }),
            None => Err(format!(
                "`{binary}` was not found on PATH; install Codex (npm install -g @openai/codex) \
                 or set {key} to the absolute path of the Codex executable"
            )),
        };
    }
    if !path.is_absolute() {
        return Err(format!(
            "`{binary}` is a relative path, which the worker would resolve against its own \
             working directory; set {key} to an absolute path"
        ));
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{binary} does not exist; install Codex there or set {key} to the Codex executable"
        )),
        Err(e) => Err(format!("cannot inspect {binary}: {e}; check {key}")),
        Ok(m) if m.is_dir() => Err(format!(
            "{binary} is a directory; set {key} to the Codex executable inside it"
        )),
        Ok(m) if !is_executable(&m) => Err(format!(
            "{binary} is not executable; make it executable (chmod +x {binary}) or set {key} \
             to the Codex executable"
        )),
        Ok(_) => Ok(Found {
            detail: binary.to_string(),
            on_path: false,
        }),
    }
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.is_file() && m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(m: &std::fs::Metadata) -> bool {
    m.is_file()
}

/// The first executable called `name` on PATH, as the worker's spawn would
/// find it.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .flat_map(|dir| candidates(&dir, name))
        .find(|c| std::fs::metadata(c).is_ok_and(|m| is_executable(&m)))
}

#[cfg(not(windows))]
fn candidates(dir: &Path, name: &str) -> Vec<PathBuf> {
    vec![dir.join(name)]
}

/// Windows finds `codex` as `codex.exe` or `codex.cmd` (npm's shim) through
/// PATHEXT.
#[cfg(windows)]
fn candidates(dir: &Path, name: &str) -> Vec<PathBuf> {
    if Path::new(name).extension().is_some() {
        return vec![dir.join(name)];
    }
    // npm also installs an extensionless `codex` shell script next to the
    // shims, which Windows cannot start: only PATHEXT candidates count.
    let exts = std::env::var("PATHEXT").unwrap_or_else(|_| ".COM;.EXE;.BAT;.CMD".into());
    exts.split(';')
        .filter(|e| !e.is_empty())
        .map(|ext| dir.join(format!("{name}{ext}")))
        .collect()
}

fn check_api_key(p: &Profile, r: &mut Report<'_>) -> std::io::Result<()> {
    let key = format!("profiles.{}.codex.api_key", p.name);
    let Some(reference) = &p.codex.api_key else {
        return r.error(
            "api key",
            &format!("auth is api-key but no key is configured; set {key} to env:VAR or file:PATH"),
        );
    };
    // Resolve to prove the key is reachable; the value is dropped unread and
    // only the reference is ever printed.
    match reference.resolve() {
        Ok(_) => {
            r.ok("api key", &reference.to_string())?;
            match reference {
                SecretRef::Env(var) => r.note(&format!(
                    "fcxd reads {var} from its own environment, not this shell's; under a \
                     service manager set it in the unit, or use file:PATH"
                ))?,
                #[cfg(unix)]
                SecretRef::File(path) => check_secret_mode(path, r)?,
                #[cfg(not(unix))]
                SecretRef::File(_) => {}
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
            };
            r.error("api key", &format!("{e}; {hint}"))
        }
    }
}

#[cfg(unix)]
fn check_secret_mode(path: &Path, r: &mut Report<'_>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            r.warn(
                "api key",
                &format!(
                    "{} is readable by other users (mode {mode:o}); chmod 600 {}",
                    path.display(),
                    path.display()
                ),
            )?;
        }
    }
    Ok(())
}

fn check_codex_home(home: &Home, p: &Profile, r: &mut Report<'_>) -> std::io::Result<()> {
    let dir = home.codex_home(&p.name);
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
