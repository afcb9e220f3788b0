//! `fcxctl service install|uninstall|start|stop|restart|status`: fcxd under
//! the OS's own service manager, as the operator (never root): a systemd
//! user unit (Linux), a launchd agent (macOS), a Task Scheduler task
//! (Windows). Units are rendered from the `deploy/` templates with this
//! machine's real paths; every backend is compiled on every OS so its
//! rendering is tested everywhere.

mod launchd;
mod systemd;
mod windows;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use fcx_config::{Config, Home, SecretRef};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Manager {
    Systemd,
    Launchd,
    TaskScheduler,
}

impl Manager {
    fn native() -> Manager {
        if cfg!(target_os = "macos") {
            Manager::Launchd
        } else if cfg!(windows) {
            Manager::TaskScheduler
        } else {
            Manager::Systemd
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// The fcxd executable the service runs [default: next to fcxctl, else
    /// ~/.local/bin/fcxd, where scripts/install.sh puts it]
    #[arg(long, value_name = "PATH")]
    pub fcxd: Option<PathBuf>,
    /// Print the rendered unit and change nothing
    #[arg(long)]
    pub print: bool,
    /// Write and register the unit but do not start it
    #[arg(long)]
    pub no_start: bool,
    /// Render for this service manager instead of this OS's (with --print)
    #[arg(long, value_enum)]
    pub manager: Option<Manager>,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Render the unit from deploy/ with real paths, register it and start fcxd
    Install(InstallArgs),
    /// Stop fcxd and remove the unit
    Uninstall,
    /// Start fcxd through the service manager
    Start,
    /// Stop fcxd through the service manager (it stops its runs first)
    Stop,
    /// Restart fcxd through the service manager
    Restart,
    /// Whether the unit is installed, enabled and running
    Status {
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

/// What a unit needs to know about this machine.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub fcxd: PathBuf,
    pub fcx_home: PathBuf,
    pub user_home: PathBuf,
    /// PATH for the service: where fcxd and Codex are found now, then the
    /// system directories (a service manager's PATH is short).
    pub path: String,
    /// `FCX_CODEX_BINARY` as set for this install, carried into the unit.
    pub codex_binary: Option<String>,
}

pub(crate) fn service(home: &Home, cmd: ServiceCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    let manager = Manager::native();
    match cmd {
        ServiceCommand::Install(args) => install(home, args, out),
        ServiceCommand::Uninstall => match manager {
            Manager::Systemd => systemd::uninstall(home, out),
            Manager::Launchd => launchd::uninstall(home, out),
            Manager::TaskScheduler => windows::uninstall(home, out),
        },
        ServiceCommand::Start => match manager {
            Manager::Systemd => systemd::start(out),
            Manager::Launchd => launchd::start(home, out),
            Manager::TaskScheduler => windows::start(out),
        },
        ServiceCommand::Stop => match manager {
            Manager::Systemd => systemd::stop(out),
            Manager::Launchd => launchd::stop(out),
            Manager::TaskScheduler => windows::stop(home, out),
        },
        ServiceCommand::Restart => match manager {
            Manager::Systemd => systemd::restart(out),
            Manager::Launchd => launchd::restart(out),
            Manager::TaskScheduler => windows::restart(home, out),
        },
        ServiceCommand::Status { json } => {
            let mut v = native_status(home);
            v["fcxd"] = fcxd_state(home);
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    let shown = match val {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    writeln!(out, "{k}: {shown}")?;
                }
            }
            Ok(crate::exit::OK)
        }
    }
}

/// The service manager's view for this OS (`service status`, doctor).
pub(crate) fn native_status(home: &Home) -> Value {
    match Manager::native() {
        Manager::Systemd => systemd::status(home),
        Manager::Launchd => launchd::status(home),
        Manager::TaskScheduler => windows::status(home),
    }
}

fn install(home: &Home, args: InstallArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let native = Manager::native();
    let manager = args.manager.unwrap_or(native);
    if manager != native && !args.print {
        bail!("--manager other than this OS's works only with --print");
    }
    let target = target(home, args.fcxd.as_deref())?;
    if args.print {
        let text = match manager {
            Manager::Systemd => systemd::render(&target),
            Manager::Launchd => launchd::render(&target),
            Manager::TaskScheduler => windows::render(&target, &windows::user()),
        };
        write!(out, "{text}")?;
        return Ok(crate::exit::OK);
    }
    warn_about_environment(home, out)?;
    match manager {
        Manager::Systemd => systemd::install(&target, !args.no_start, out),
        Manager::Launchd => launchd::install(home, &target, !args.no_start, out),
        Manager::TaskScheduler => windows::install(home, &target, !args.no_start, out),
    }
}

/// The unit's view of this machine. fcxd and fcx-worker must both exist: a
/// unit pointing at nothing only fails later, in a log nobody reads.
fn target(home: &Home, fcxd: Option<&Path>) -> anyhow::Result<Target> {
    let exe = |name: &str| {
        if cfg!(windows) {
            format!("{name}.exe")
        } else {
            name.to_string()
        }
    };
    let fcxd = match fcxd {
        Some(p) => std::path::absolute(p).context("resolving --fcxd")?,
        None => {
            let beside = std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join(exe("fcxd"))))
                .filter(|p| p.is_file());
            beside.unwrap_or_else(|| home.user_home().join(".local/bin").join(exe("fcxd")))
        }
    };
    if !fcxd.is_file() {
        bail!(
            "{} does not exist; install the binaries first: scripts/install.sh (in the fcx \
             checkout) puts fcxd, fcx-worker and fcxctl into ~/.local/bin, or pass --fcxd PATH",
            fcxd.display()
        );
    }
    let worker = fcxd.with_file_name(exe("fcx-worker"));
    if !worker.is_file() {
        bail!(
            "{} is missing (fcxd starts it from its own directory); run scripts/install.sh",
            worker.display()
        );
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = fcxd.parent() {
        dirs.push(d.to_path_buf());
    }
    // Codex as fcxd would find it now, so the service finds the same one
    // (npm's codex is a node script: node usually sits in the same
    // directory).
    let codex_binary = std::env::var(fcx_config::CODEX_BINARY_ENV)
        .ok()
        .filter(|s| !s.is_empty());
    if let Ok(cfg) = Config::load(home) {
        for p in cfg.enabled_profiles() {
            if let Ok(found) = fcx_config::codex::locate(&p.codex.binary, &p.name)
                && let Some(d) = found.path.parent()
            {
                dirs.push(d.to_path_buf());
            }
        }
    }
    let system: &[&str] = if cfg!(windows) {
        &[]
    } else {
        &["/usr/local/bin", "/usr/bin", "/bin"]
    };
    dirs.extend(system.iter().map(PathBuf::from));
    let mut seen = Vec::new();
    for d in dirs {
        if !seen.contains(&d) {
            seen.push(d);
        }
    }
    let path = std::env::join_paths(&seen)
        .context("a directory on the service's PATH contains the path separator")?
        .to_string_lossy()
        .into_owned();
    Ok(Target {
        fcxd,
        fcx_home: home.root().to_path_buf(),
        user_home: home.user_home().to_path_buf(),
        path,
        codex_binary,
    })
}

/// A service sees neither this shell's exported variables nor its PATH.
fn warn_about_environment(home: &Home, out: &mut dyn Write) -> anyhow::Result<()> {
    let Ok(cfg) = Config::load(home) else {
        writeln!(
            out,
            "warning: config.toml does not load; fcxd will not start until `fcxctl doctor` passes"
        )?;
        return Ok(());
    };
    for p in cfg.enabled_profiles() {
        let mut refs: Vec<&SecretRef> = p.codex.api_key.iter().collect();
        if let Some(app) = &p.app {
            refs.push(&app.app_secret);
        }
        for r in refs {
            if let Some(var) = r.env_var() {
                writeln!(
                    out,
                    "warning: profile `{}` reads {r}; the service does not see your shell's \
                     {var}: store it with `fcxctl secret set` and use keystore:ID, or use file:PATH",
                    p.name
                )?;
            }
        }
    }
    Ok(())
}

/// Run a service-manager command, capturing its output.
pub(crate) fn run(program: &str, args: &[&str]) -> std::io::Result<Output> {
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
}

/// Run and require success; the error carries what the tool printed.
pub(crate) fn run_ok(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    let o = run(program, args).with_context(|| format!("cannot run {program}"))?;
    if !o.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            o.status,
            first_line(&o)
        );
    }
    Ok(o)
}

pub(crate) fn first_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let text = if err.trim().is_empty() {
        String::from_utf8_lossy(&o.stdout).into_owned()
    } else {
        err.into_owned()
    };
    crate::render::clean(text.lines().next().unwrap_or("").trim())
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Write `text` to `path`, creating its directory.
pub(crate) fn write_file(path: &Path, text: &[u8]) -> anyhow::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn fcxd_state(home: &Home) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(rt) = rt else {
        return json!("unknown");
    };
    rt.block_on(async {
        match crate::admin::Admin::connect(home).await {
            Ok(mut a) => match a.status().await {
                Ok(st) => json!(format!("running (pid {})", st.pid)),
                Err(e) => json!(e.to_string()),
            },
            Err(crate::CtlError::NotRunning { .. }) => json!("not running"),
            Err(e) => json!(e.to_string()),
        }
    })
}

/// The login name, for linger and the Windows task principal.
pub(crate) fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| run("id", &["-un"]).ok().map(|o| stdout(&o)))
        .unwrap_or_default()
}
