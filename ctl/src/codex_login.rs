//! `fcxctl codex login [--profile P]`: the Codex CLI's own login, run with
//! the profile's isolated Codex home (`auth = "codex-home"`), so the login
//! lands there and nowhere else.

use std::io::Write;

use anyhow::{Context as _, bail};
use fcx_config::{AuthMode, Config, Home};

#[derive(Debug, clap::Subcommand)]
pub enum CodexCommand {
    /// Run `codex login` with the profile's own CODEX_HOME
    Login {
        /// The profile (default: the only one)
        #[arg(long, value_name = "P")]
        profile: Option<String>,
        /// Passed to `codex login` (e.g. --device-auth, --with-api-key)
        #[arg(last = true)]
        args: Vec<String>,
    },
}

pub(crate) fn codex(home: &Home, c: CodexCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    let CodexCommand::Login { profile, args } = c;
    let name = crate::keys::one_profile(home, profile)?;
    let config = Config::load(home)?;
    let p = config.profile(&name)?;
    if p.codex.auth != AuthMode::CodexHome {
        bail!(
            "profile `{name}` uses auth = \"{}\"; a login of its own needs auth = \"codex-home\" in \
             [profiles.{name}.codex]",
            p.codex.auth.as_str()
        );
    }
    let bin = fcx_config::codex::locate(&p.codex.binary, &name)?;
    let dir = home.profile(&name).codex_home();
    fcx_config::private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    writeln!(out, "codex login with CODEX_HOME={}", dir.display())?;
    out.flush()?;
    let status = std::process::Command::new(&bin.path)
        .arg("login")
        .args(&args)
        .env("CODEX_HOME", &dir)
        .env_remove("CODEX_API_KEY")
        .status()
        .with_context(|| format!("cannot run {}", bin.path.display()))?;
    if !status.success() {
        bail!("`codex login` did not succeed ({status}); nothing else was changed");
    }
    writeln!(
        out,
        "profile `{name}` is logged in; its next run uses this login (check with `fcxctl doctor --profile {name}`)"
    )?;
    Ok(crate::exit::OK)
}
