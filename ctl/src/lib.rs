//! fcxctl, the operator CLI.
//!
//! Admin verbs (`status`, `ps`, `restart-worker`, `stop`) talk to a running
//! fcxd over its owner-only socket in `$FCX_HOME/run/`; `config` and `keys`
//! verbs work on `$FCX_HOME` directly, so they help most when fcxd will not
//! start.
//!
//! Exit codes are part of the interface (scripts and service checks use them):
//! see [`exit`].

#![warn(missing_docs)]

mod admin;
mod check;
mod codex_login;
mod doctor;
mod init;
mod keys;
mod kill;
mod logs;
mod openapi;
mod profile;
mod render;
mod secret;
mod service;
mod state;

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fcx_config::Home;

/// Process exit codes.
pub mod exit {
    /// The command ran and found nothing wrong.
    pub const OK: u8 = 0;
    /// The command ran and something is wrong (a config problem, an RPC
    /// error, a timeout).
    pub const FAILURE: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// fcxd is not running: nothing answers on its socket.
    pub const NOT_RUNNING: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "fcxctl",
    version,
    about = "Operate fcx: the fcxd gateway and its workers",
    long_about = None
)]
/// The command line (its help is the `about` above and the variants' doc
/// comments).
pub struct Cli {
    /// The fcx home directory [default: $FCX_HOME, else ~/.fcx]
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    // clap reads doc comments as help text: the subcommands document
    // themselves.
    #[allow(missing_docs)]
    #[command(subcommand)]
    pub command: Command,
}

// What fcxctl is asked to do. Not a doc comment: clap would forward it to
// the parent command's help.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show fcxd and each profile's worker and channel
    Status {
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// List fcxd, its workers and running Codex processes
    Ps {
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Stop fcxd (its workers stop their runs first)
    Stop {
        /// Return once fcxd accepted the request instead of waiting for it to exit
        #[arg(long)]
        no_wait: bool,
    },
    /// Read config.toml again: added profiles start, removed ones stop,
    /// changed ones restart; the others are not touched
    Reload {
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// The profiles in config.toml: add, list, show, remove, enable, disable
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Restart one profile's worker; the Feishu connection stays up
    RestartWorker {
        /// The profile whose worker to restart
        profile: String,
    },
    /// Signal one registered fcx process (fcxd, a worker, a Codex run) by
    /// its id from `fcxctl ps` or its pid; any other pid is refused
    Kill {
        /// `g`, `w:PROFILE`, `r:RUN`, or a pid
        target: String,
        /// SIGKILL instead of SIGTERM (Windows: required; TerminateProcess)
        #[arg(long)]
        force: bool,
    },
    /// The Codex CLI for a profile (`login`: with its own CODEX_HOME)
    #[command(subcommand)]
    Codex(codex_login::CodexCommand),
    /// Write a first config.toml: flags or prompts, credentials checked live
    Init(init::InitArgs),
    /// Check everything between this machine and a bot that answers; each
    /// problem comes with its fix (exit 1 when any check fails)
    Doctor {
        /// Check only this profile
        #[arg(long, value_name = "P")]
        profile: Option<String>,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Run fcxd as a service of this OS (systemd user unit, launchd agent,
    /// Task Scheduler task)
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// The encrypted keystore behind keystore:ID secret references
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Show the logs in $FCX_HOME/logs, merged in time order
    Logs(logs::LogsArgs),
    /// Inspect config.toml
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The session catalog in each profile's state (read-only)
    #[command(subcommand)]
    Sessions(state::SessionsCommand),
    /// Run history in each profile's state (read-only)
    #[command(subcommand)]
    Runs(state::RunsCommand),
    /// Card-button signing keys (callback-keys.json): list, rotate, retire
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print a shell completion script (e.g. `fcxctl completions bash > ~/.local/share/bash-completion/completions/fcxctl`)
    Completions {
        // clap reads doc comments as help text; the possible values say it.
        #[allow(missing_docs)]
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

// `fcxctl config ...` (not a doc comment, as above).
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check config.toml, binaries, secrets and workspaces without starting anything
    Check {
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Print the path of config.toml
    Path {
        /// Print a JSON object instead of the bare path
        #[arg(long)]
        json: bool,
    },
}

/// The shells `fcxctl completions` writes scripts for.
// clap reads doc comments on the values as help text; the names say it.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

/// Failures with a fixed meaning for the operator (and an exit code).
#[derive(Debug)]
pub(crate) enum CtlError {
    NotRunning {
        socket: PathBuf,
    },
    // Told apart from NotRunning by a Unix socket connect (admin.rs).
    #[cfg_attr(not(unix), allow(dead_code))]
    Unreachable {
        socket: PathBuf,
        reason: String,
    },
    Timeout {
        what: String,
        socket: PathBuf,
        secs: u64,
        logs: PathBuf,
    },
    Rpc {
        what: String,
        message: String,
    },
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::NotRunning { socket } => write!(
                f,
                "fcxd is not running (nothing answers on {}); start it with `fcxd` (or `fcxd --console`)",
                socket.display()
            ),
            CtlError::Unreachable { socket, reason } => {
                write!(f, "cannot reach fcxd on {}: {reason}", socket.display())
            }
            CtlError::Timeout {
                what,
                socket,
                secs,
                logs,
            } => write!(
                f,
                "fcxd did not {what} within {secs}s on {}; it may be hung: see its log in {} \
                 or restart the service",
                socket.display(),
                logs.display()
            ),
            CtlError::Rpc { what, message } => write!(f, "fcxd could not {what}: {message}"),
        }
    }
}

impl std::error::Error for CtlError {}

impl CtlError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CtlError::NotRunning { .. } => exit::NOT_RUNNING,
            _ => exit::FAILURE,
        }
    }
}

/// Run one command line: output on stdout, one error sentence on stderr.
pub fn run(cli: Cli) -> ExitCode {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = execute(cli, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => ExitCode::from(code),
        // `fcxctl ps | head`: the reader left, which is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            let code = e
                .downcast_ref::<CtlError>()
                .map_or(exit::FAILURE, CtlError::exit_code);
            ExitCode::from(code)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

/// Run one command, writing its report to `out`; returns the exit code for
/// commands that report problems rather than fail (`config check`).
pub(crate) fn execute(cli: Cli, out: &mut dyn Write) -> anyhow::Result<u8> {
    let home = match cli.home {
        Some(dir) => Home::new(dir),
        None => Home::from_env(),
    };
    match cli.command {
        Command::Config(ConfigCommand::Path { json }) => {
            if json {
                let v = serde_json::json!({
                    "config": home.config_path().display().to_string(),
                    "home": home.root().display().to_string(),
                });
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "{}", home.config_path().display())?;
            }
            Ok(exit::OK)
        }
        Command::Config(ConfigCommand::Check { json: false }) => check::config_check(&home, out),
        Command::Config(ConfigCommand::Check { json: true }) => {
            check::config_check_json(&home, out)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
                CompletionShell::Powershell => clap_complete::Shell::PowerShell,
            };
            clap_complete::generate(shell, &mut Cli::command(), "fcxctl", out);
            Ok(exit::OK)
        }
        Command::Init(args) => init::init(&home, args, out),
        Command::Doctor { profile, json } => {
            block_on(doctor::doctor(&home, profile.as_deref(), json, out))
        }
        Command::Service(c) => service::service(&home, c, out),
        Command::Secret(c) => secret::secret(&home, c, out),
        Command::Logs(args) => logs::logs(&home, args, out),
        Command::Status { json } => block_on(admin::status(&home, json, out)),
        Command::Ps { json } => block_on(admin::ps(&home, json, out)),
        Command::Stop { no_wait } => block_on(admin::stop(&home, !no_wait, out)),
        Command::Codex(c) => codex_login::codex(&home, c, out),
        Command::Kill { target, force } => kill::kill(&home, &target, force, out),
        Command::Reload { json } => block_on(admin::reload(&home, json, out)),
        Command::Profile(c) => profile::profile(&home, c, out),
        Command::RestartWorker { profile } => block_on(admin::restart_worker(&home, &profile, out)),
        Command::Sessions(c) => state::sessions(&home, c, out),
        Command::Runs(c) => state::runs(&home, c, out),
        Command::Keys(c) => keys::keys(&home, c, out),
    }
}

/// One short-lived runtime per command: fcxctl makes one or two calls and a
/// thread pool would only cost start-up time.
fn block_on<F: std::future::Future<Output = anyhow::Result<u8>>>(f: F) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    rt.block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn home_is_global() {
        let cli =
            Cli::try_parse_from(["fcxctl", "status", "--home", "/x", "--json"]).expect("parse");
        assert_eq!(cli.home.as_deref(), Some(std::path::Path::new("/x")));
        assert!(matches!(cli.command, Command::Status { json: true }));
    }

    #[test]
    fn not_running_is_exit_3_and_names_the_socket() {
        let e = CtlError::NotRunning {
            socket: "/h/run/fcxd.sock".into(),
        };
        assert_eq!(e.exit_code(), exit::NOT_RUNNING);
        assert!(
            e.to_string()
                .contains("fcxd is not running (nothing answers on /h/run/fcxd.sock)")
        );
    }
}
