//! fcxd's process: lock, logs, workers, surfaces, the admin socket, signals
//! and a clean shutdown (runs stopped, state flushed, workers stopped).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fcx_config::{Config, Home};
use fcx_ipc::SocketAddr;
use fcx_proto::v1::gateway_server::GatewayServer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::prelude::*;

use crate::admin::AdminService;
use crate::fleet::{Fleet, ReloadError};
use crate::ingress::console::Console;
use crate::link::supervisor::{now_ms, worker_binary};

#[derive(Debug, clap::Parser)]
#[command(
    name = "fcxd",
    version,
    about = "fcx gateway: chat surfaces in front, one Codex worker per profile behind",
    long_about = None
)]
/// fcxd's command line (its help is the `about` above and the fields' doc
/// comments).
pub struct Args {
    /// Use this terminal as the chat: each line you type is a message from
    /// the profile owner. Needs no Feishu configuration.
    #[arg(long)]
    pub console: bool,
    /// Profile for the console (default: the only enabled profile, or
    /// `default`).
    #[arg(long)]
    pub profile: Option<String>,
    /// FCX_HOME (default: $FCX_HOME, else ~/.fcx).
    #[arg(long)]
    pub home: Option<PathBuf>,
}

/// The whole of fcxd: logs, the home lock, the workers, the channels, the
/// admin socket, and an orderly stop on SIGTERM/Ctrl-C; `main.rs` only
/// parses the command line.
pub fn main(args: Args) -> ExitCode {
    // Before any file is created: state, cursors, logs and keys are private.
    fcx_config::restrict_umask();
    fcx_config::not_dumpable();
    let home = args
        .home
        .clone()
        .map(Home::new)
        .unwrap_or_else(Home::from_env);
    let config = Config::load(&home);
    // SAFETY: no other thread exists yet (the runtime is built below) and
    // nothing has changed the environment.
    unsafe {
        fcx_config::env_secrets::take(
            "fcxd",
            fcx_config::env_secrets::referenced(config.as_ref().ok()),
        )
    };
    // One TLS crypto provider for reqwest and tokio-tungstenite alike.
    crate::feishu::install_crypto_provider();
    let retention = config.as_ref().map(|c| c.logs).unwrap_or_default();
    init_logging(&home, &retention, args.console);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fcxd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(args, home, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // To the log file only: stderr gets the one sentence below.
            tracing::error!(target: EXIT_TARGET, error = %format!("{e:#}"), "fcxd failed");
            eprintln!("fcxd: {e:#}");
            ExitCode::FAILURE
        }
    };
    // The console's stdin read is blocking and may never return; do not let
    // runtime teardown wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

/// Says at start, not at the first message, when Codex has no key, and what
/// to do about it (console: on the terminal too, where only errors show).
async fn warn_about_codex_auth(p: fcx_config::Profile, from_file: bool, console: bool) {
    let say = |text: String| {
        tracing::warn!(profile = %p.name, "{text}");
        if console {
            eprintln!("fcxd: {text}");
        }
    };
    match (&p.codex.auth, &p.codex.api_key) {
        (fcx_config::AuthMode::InheritUser, _) if !from_file => say(
            "no config.toml and no OPENAI_API_KEY: Codex uses your own Codex login;              export OPENAI_API_KEY or run `fcxctl init` to give fcx a key of its own"
                .into(),
        ),
        (fcx_config::AuthMode::ApiKey, Some(r)) => {
            let r = r.clone();
            // An exec: reference runs a command (bounded): not on this thread.
            let resolved = tokio::task::spawn_blocking(move || r.resolve().map(|_| ())).await;
            if let Ok(Err(e)) = resolved {
                say(format!(
                    "profile `{}`: the Codex API key cannot be read ({e}), so every run will fail; \
                     export the variable, or store the key with `fcxctl secret set ID` and set \
                     profiles.{}.codex.api_key = \"keystore:ID\", or log in with `codex login` and \
                     set auth = \"inherit-user\"",
                    p.name, p.name
                ));
            }
        }
        _ => {}
    }
}

/// The tracing target of fcxd's last error, which main prints itself.
const EXIT_TARGET: &str = "fcxd_exit";

fn init_logging(home: &Home, retention: &fcx_config::LogRetention, console: bool) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("FCX_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    // The console is the chat: only errors reach the terminal there.
    let stderr_level = if console { "error" } else { "warn" };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(tracing_subscriber::EnvFilter::new(format!(
            "{stderr_level},{EXIT_TARGET}=off"
        )));
    let file = fcx_config::open_log_file(home, "fcxd", retention);
    let file_err = file.as_ref().err().map(|e| e.to_string());
    let file_layer = file.ok().map(|f| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::sync::Mutex::new(f))
            .with_filter(filter())
    });
    tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr)
        .init();
    if let Some(e) = file_err {
        tracing::warn!(error = %e, "cannot open the log file; logging to stderr only");
    }
}

/// One fcxd per FCX_HOME: a held lock file (released by the OS when the
/// process dies, so a crash never leaves it stuck).
fn take_lock(home: &Home) -> anyhow::Result<std::fs::File> {
    fcx_ipc::ensure_private_dir(&home.run_dir())?;
    let path = home.gateway_lock();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "fcxd is already running for {} (pid {}); stop it with `fcxctl stop` first",
                home.root().display(),
                pid.trim()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    use std::io::Write as _;
    f.set_len(0)?;
    write!(f, "{}", std::process::id())?;
    Ok(f)
}

async fn run(
    args: Args,
    home: Home,
    config: Result<Config, fcx_config::ConfigError>,
) -> anyhow::Result<()> {
    home.ensure_private()
        .with_context(|| format!("cannot make {} private (0700)", home.root().display()))?;
    // Read once, before the secret variables it names were taken.
    let config = config?;
    let _lock = take_lock(&home)?;
    let _registered = fcx_config::registry::register_self(&home, "g", "fcxd", "", now_ms())
        .map_err(|e| tracing::warn!(error = %e, "cannot register fcxd in run/procs"))
        .ok();
    let worker_bin = worker_binary().map_err(anyhow::Error::msg)?;

    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let only = if args.console {
        Some(match &args.profile {
            Some(p) => p.clone(),
            None => {
                let enabled: Vec<_> = config.enabled_profiles().collect();
                match enabled.as_slice() {
                    [only] => only.name.clone(),
                    _ => fcx_config::DEFAULT_PROFILE.to_string(),
                }
            }
        })
    } else {
        args.profile.clone()
    };
    let fleet = Fleet::new(home.clone(), worker_bin, args.console, only, stop.clone());
    let profiles = fleet.wanted(&config)?;
    if profiles.is_empty() {
        anyhow::bail!(
            "no enabled profile in {}; add one with `fcxctl profile add NAME` or run `fcxd --console`",
            config.path.display()
        );
    }
    for p in &profiles {
        tasks.spawn(warn_about_codex_auth(
            p.clone(),
            config.from_file,
            args.console,
        ));
    }
    // Every app lock first: a refused profile starts nothing.
    let mut locks = Vec::new();
    for p in &profiles {
        locks.push(
            fleet
                .lock_app(p)
                .map_err(|e| anyhow::anyhow!("profile `{}` cannot start: {e}", p.name))?,
        );
    }
    for (p, lock) in profiles.iter().zip(locks) {
        fleet.start(p.clone(), lock);
    }

    let admin_sock = SocketAddr::new(home.gateway_socket());
    let listener = fcx_ipc::bind(&admin_sock).await?;
    let admin = AdminService {
        home: home.root().display().to_string(),
        started_at_ms: now_ms(),
        fleet: fleet.clone(),
        stop: stop.clone(),
    };
    let admin_stop = CancellationToken::new();
    {
        let s = admin_stop.clone();
        tasks.spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(GatewayServer::new(admin))
                .serve_with_incoming_shutdown(listener.incoming(), s.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "admin server failed");
            }
        });
    }
    if let Some(addr) = config.metrics {
        let (fleet, s) = (fleet.clone(), admin_stop.clone());
        tasks.spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, fleet, s).await {
                tracing::error!(%addr, error = %e, "cannot serve metrics (config.toml: metrics)");
            }
        });
    }
    tracing::info!(home = %home.root().display(), profiles = profiles.len(), "fcxd started");

    let signals = {
        let stop = stop.clone();
        let fleet = fleet.clone();
        tasks.spawn(async move {
            let mut signals = Signals::new();
            while let Signal::Reload = signals.next().await {
                tracing::info!("SIGHUP: reloading config.toml");
                match fleet.reload().await {
                    Ok(_) => {}
                    // The console's terminal went away.
                    Err(ReloadError::Console) => break,
                    Err(e) => tracing::error!(error = %e, "reload failed"),
                }
            }
            tracing::info!("signal received; shutting down");
            stop.cancel();
        })
    };

    let quit = CancellationToken::new();
    let console = args.console.then(|| {
        let console = Console {
            worker: fleet.units()[0].worker.clone(),
            workspace: profiles[0].workspaces.default.display().to_string(),
            stop: stop.clone(),
            quit: quit.clone(),
        };
        // The console requests shutdown itself at end of input.
        tokio::spawn(console.run())
    });
    stop.cancelled().await;

    // Workers stop their runs (which end as interrupted) and flush state;
    // the supervisors wait for them to exit.
    signals.abort();
    fleet.wait_workers_stopped().await;
    quit.cancel();
    if let Some(c) = console {
        let _ = c.await;
    }
    admin_stop.cancel();
    fleet.wait_all().await;
    tasks.close();
    tasks.wait().await;
    tracing::info!("fcxd stopped");
    Ok(())
}

enum Signal {
    /// SIGHUP: read config.toml again (Unix only: Windows has no SIGHUP;
    /// `fcxctl reload` works everywhere).
    #[cfg_attr(not(unix), allow(dead_code))]
    Reload,
    /// SIGTERM or Ctrl-C.
    Stop,
}

/// The signal streams, registered once so none is missed between two waits.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = recv(&mut self.term) => Signal::Stop,
                _ = recv(&mut self.hup) => Signal::Reload,
                _ = tokio::signal::ctrl_c() => Signal::Stop,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
