//! `fcxctl init`: write a first config.toml. Every value comes from a flag
//! or, at a terminal, a prompt (secrets without echo); the app's credentials
//! are checked live (token and bot info) before anything is written; the
//! result is validated like fcxd will read it and written 0600 with its
//! `schema_version`. An existing config.toml is kept unless `--force`.

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use fcx_config::keystore::Keystore;
use fcx_config::{AuthMode, Config, Home, Secret, SecretRef, Tenant};
use std::io::{BufRead as _, IsTerminal as _, Read as _, Write};
use std::path::PathBuf;

use crate::openapi::OpenApi;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TenantArg {
    Feishu,
    Lark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplyModeArg {
    Card,
    Markdown,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    ApiKey,
    CodexHome,
    InheritUser,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Profile name
    #[arg(long, default_value = "default")]
    pub profile: String,
    #[command(flatten)]
    pub values: ProfileArgs,
    /// Replace an existing config.toml (the old one is kept as config.toml.bak)
    #[arg(long)]
    pub force: bool,
}

/// What a profile is made of, as flags (or prompts at a terminal); shared by
/// `init` and `profile add`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// The Codex workspace (an existing directory)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// How Codex authenticates
    #[arg(long, value_enum)]
    pub codex_auth: Option<AuthArg>,
    /// The Codex executable (a path, or a name on PATH) [default: $FCX_CODEX_BINARY, else codex on PATH]
    #[arg(long, value_name = "PATH")]
    pub codex_binary: Option<String>,
    /// With --codex-auth api-key: a reference to the key (keystore:ID,
    /// env:VAR, file:PATH, exec:COMMAND) [default: env:OPENAI_API_KEY]
    #[arg(long, value_name = "REF")]
    pub api_key: Option<String>,
    /// Console only: no Feishu/Lark app
    #[arg(long, conflicts_with_all = ["app_id", "app_secret", "app_secret_stdin"])]
    pub no_app: bool,
    /// feishu (open.feishu.cn) or lark (open.larksuite.com)
    #[arg(long, value_enum)]
    pub tenant: Option<TenantArg>,
    /// The app's App ID (cli_…)
    #[arg(long, value_name = "ID")]
    pub app_id: Option<String>,
    /// A reference to the App Secret (keystore:ID, env:VAR, file:PATH, exec:COMMAND)
    #[arg(long, value_name = "REF", conflicts_with = "app_secret_stdin")]
    pub app_secret: Option<String>,
    /// Read the App Secret from stdin and store it in the keystore
    #[arg(long)]
    pub app_secret_stdin: bool,
    /// How runs are answered: card, markdown or text [default: card]
    #[arg(long, value_enum, value_name = "MODE")]
    pub reply_mode: Option<ReplyModeArg>,
    /// Your open_id (ou_…): the owner; learned from the platform when left out
    #[arg(long, value_name = "OPEN_ID")]
    pub owner: Option<String>,
    /// Open Platform base URL (a test platform); default from --tenant
    #[arg(long, value_name = "URL", hide = true)]
    pub base_url: Option<String>,
    /// Never prompt: a missing value is an error naming its flag
    #[arg(long)]
    pub non_interactive: bool,
}

/// A profile's values, gathered and checked, ready to render.
pub(crate) struct NewProfile {
    ws: PathBuf,
    binary: Option<String>,
    auth: AuthArg,
    api_key: Option<String>,
    app: Option<NewApp>,
}

/// The `[app]` init writes.
struct NewApp {
    tenant: Tenant,
    reply_mode: Option<ReplyModeArg>,
    app_id: String,
    secret_ref: String,
    base_url: Option<String>,
    owner: Option<String>,
}

/// Asks at a terminal, or says which flag is missing.
struct Ask {
    interactive: bool,
}

impl Ask {
    fn line(&self, flag: &str, question: &str, default: Option<&str>) -> anyhow::Result<String> {
        if !self.interactive {
            return match default {
                Some(d) => Ok(d.to_string()),
                None => bail!("{flag} is required (or run fcxctl init at a terminal to be asked)"),
            };
        }
        let shown = default.map_or_else(String::new, |d| format!(" [{d}]"));
        eprint!("{question}{shown}: ");
        std::io::stderr().flush()?;
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s)?;
        let s = s.trim();
        match (s.is_empty(), default) {
            (false, _) => Ok(s.to_string()),
            (true, Some(d)) => Ok(d.to_string()),
            (true, None) => bail!("{question}: no answer"),
        }
    }

    fn secret(&self, flag: &str, question: &str) -> anyhow::Result<String> {
        if !self.interactive {
            bail!("{flag} is required (or run fcxctl init at a terminal to be asked)");
        }
        let v = rpassword::prompt_password(format!("{question} (not shown): "))?;
        if v.trim().is_empty() {
            bail!("{question}: no answer");
        }
        Ok(v.trim().to_string())
    }
}

pub(crate) fn init(home: &Home, a: InitArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let path = home.config_path();
    if path.exists() && !a.force {
        bail!(
            "{} exists; fcxctl init does not overwrite it (add --force to replace it; the old file \
             is kept as config.toml.bak), or check it with `fcxctl doctor`",
            path.display()
        );
    }
    check_name(&a.profile)?;
    let p = a.profile.clone();
    let new = gather(home, &p, &a.values, out)?;
    let text = format!("{}{}", header(), render_profile(&p, &new));
    // Validate exactly as fcxd will read it.
    Config::parse(&path, &text, home).context("the config init would write does not validate")?;
    write_config(home, &text)?;
    writeln!(out, "wrote {} (profile `{p}`)", path.display())?;
    if new.auth == AuthArg::CodexHome {
        writeln!(
            out,
            "log Codex in once: fcxctl codex login --profile {p} (CODEX_HOME={})",
            home.profile(&p).codex_home().display()
        )?;
    }
    writeln!(out, "next: fcxctl doctor, then fcxctl service install")?;
    Ok(crate::exit::OK)
}

/// Writes config.toml atomically, 0600 in a private home; the previous file
/// is kept as config.toml.bak.
pub(crate) fn write_config(home: &Home, text: &str) -> anyhow::Result<()> {
    let path = home.config_path();
    // The one place the home is made private (0700; on Windows a
    // protected DACL), shared with fcxd and the workers.
    home.ensure_private()?;
    if path.exists() {
        std::fs::copy(&path, home.root().join("config.toml.bak"))?;
    }
    let tmp = home.root().join(".config.toml.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&tmp)?.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// `name` may name a profile (it becomes part of file and socket names).
pub(crate) fn check_name(name: &str) -> anyhow::Result<()> {
    if !fcx_config::valid_profile_name(name) {
        bail!("`{name}` is not a profile name: 1-32 characters of a-z, 0-9, '-' and '_'");
    }
    Ok(())
}

/// Every value of a profile from flags or prompts; the app's credentials
/// are checked live and a typed App Secret goes into the keystore.
pub(crate) fn gather(
    home: &Home,
    p: &str,
    a: &ProfileArgs,
    out: &mut dyn Write,
) -> anyhow::Result<NewProfile> {
    let ask = Ask {
        interactive: !a.non_interactive && std::io::stdin().is_terminal(),
    };

    let ws = match &a.workspace {
        Some(w) => w.clone(),
        None => PathBuf::from(ask.line(
            "--workspace",
            "Codex workspace (an existing directory)",
            None,
        )?),
    };
    let ws = fcx_config::expand_tilde(&ws.to_string_lossy(), home);
    if !ws.is_dir() {
        bail!(
            "the workspace {} is not an existing directory; create it (mkdir -p {}) or pick another",
            ws.display(),
            ws.display()
        );
    }
    let auth = match a.codex_auth {
        Some(x) => x,
        None => match ask
            .line(
                "--codex-auth",
                "Codex auth: api-key, codex-home or inherit-user",
                Some("api-key"),
            )?
            .as_str()
        {
            "api-key" => AuthArg::ApiKey,
            "codex-home" => AuthArg::CodexHome,
            "inherit-user" => AuthArg::InheritUser,
            other => bail!("`{other}` is not api-key, codex-home or inherit-user"),
        },
    };
    let api_key = match auth {
        AuthArg::ApiKey => {
            let r = match &a.api_key {
                Some(r) => r.clone(),
                None => ask.line(
                    "--api-key",
                    "API key reference (keystore:ID, env:VAR, file:PATH, exec:COMMAND)",
                    Some("env:OPENAI_API_KEY"),
                )?,
            };
            SecretRef::parse_in(&r, home).map_err(|e| anyhow::anyhow!("--api-key: {e}"))?;
            Some(r)
        }
        _ => None,
    };

    let want_app = if a.no_app {
        false
    } else if a.app_id.is_some() {
        true
    } else {
        ask.line(
            "--app-id or --no-app",
            "Connect a Feishu/Lark app? (yes/no)",
            Some("yes"),
        )?
        .starts_with('y')
    };
    let mut app = None;
    if want_app {
        let tenant = match a.tenant {
            Some(TenantArg::Feishu) => Tenant::Feishu,
            Some(TenantArg::Lark) => Tenant::Lark,
            None => match ask
                .line("--tenant", "Domain: feishu or lark", Some("feishu"))?
                .as_str()
            {
                "lark" => Tenant::Lark,
                "feishu" => Tenant::Feishu,
                other => bail!("`{other}` is not feishu or lark"),
            },
        };
        let app_id = match &a.app_id {
            Some(id) => id.clone(),
            None => ask.line("--app-id", "App ID (cli_…)", None)?,
        };
        // The secret: a reference as given, or a value to keep in the keystore.
        let (secret_ref, value) = if let Some(r) = &a.app_secret {
            let parsed =
                SecretRef::parse_in(r, home).map_err(|e| anyhow::anyhow!("--app-secret: {e}"))?;
            let v = parsed.resolve().context("--app-secret")?;
            (r.clone(), v)
        } else if a.app_secret_stdin {
            let mut s = String::new();
            std::io::stdin().take(1 << 16).read_to_string(&mut s)?;
            let s = s.trim().to_string();
            if s.is_empty() {
                bail!("--app-secret-stdin: stdin was empty");
            }
            (String::new(), Secret::new(s))
        } else {
            let v = ask.secret("--app-secret or --app-secret-stdin", "App Secret")?;
            (String::new(), Secret::new(v))
        };
        let base_url = a
            .base_url
            .clone()
            .unwrap_or_else(|| tenant.base_url().to_string());
        let owner = check_live(&base_url, &app_id, &value, tenant, out)?;
        let secret_ref = if secret_ref.is_empty() {
            let id = format!("{p}-app-secret");
            Keystore::in_home(home.root()).set(&id, &value)?;
            writeln!(
                out,
                "stored the App Secret in the keystore as keystore:{id}"
            )?;
            format!("keystore:{id}")
        } else {
            secret_ref
        };
        let owner = a.owner.clone().or(owner);
        app = Some(NewApp {
            tenant,
            reply_mode: a.reply_mode,
            app_id,
            secret_ref,
            base_url: a.base_url.clone(),
            owner,
        });
    }

    Ok(NewProfile {
        ws,
        binary: a.codex_binary.clone(),
        auth,
        api_key,
        app,
    })
}

/// Token and bot info against the platform; the owner when the app may read
/// it. Nothing is written when this fails.
fn check_live(
    base_url: &str,
    app_id: &str,
    secret: &Secret,
    tenant: Tenant,
    out: &mut dyn Write,
) -> anyhow::Result<Option<String>> {
    let client = OpenApi::new(base_url, app_id, secret.clone())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let console = crate::doctor::console_url(tenant);
    let refused = |e: crate::openapi::CallError| {
        anyhow::anyhow!(
            "the platform refused these credentials ({e}); copy App ID and App Secret from \
             {console} → your app → Credentials & Basic Info (and enable the Bot feature); \
             nothing was written"
        )
    };
    let (bot, owner) = rt.block_on(async {
        let token = client.token().await.map_err(refused)?;
        let bot = client.bot_info(&token).await.map_err(refused)?;
        let owner = client.app_owner(&token).await;
        Ok::<_, anyhow::Error>((bot, owner))
    })?;
    writeln!(
        out,
        "credentials ok: bot `{}` (open_id {})",
        bot.app_name, bot.open_id
    )?;
    Ok(owner)
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The top of a config.toml init writes.
pub(crate) fn header() -> String {
    format!(
        "# Written by fcxctl init. Check it with `fcxctl doctor`; README's Configuration has every key.\n\
         schema_version = {}\n",
        fcx_config::SCHEMA_VERSION
    )
}

/// One profile's tables, starting with a blank line.
pub(crate) fn render_profile(p: &str, new: &NewProfile) -> String {
    let auth_mode = match new.auth {
        AuthArg::ApiKey => AuthMode::ApiKey,
        AuthArg::CodexHome => AuthMode::CodexHome,
        AuthArg::InheritUser => AuthMode::InheritUser,
    };
    let mut t = format!(
        "\n[profiles.{p}]\nenabled = true\n\n[profiles.{p}.codex]\nauth = {}\n",
        quote(auth_mode.as_str())
    );
    if let Some(b) = &new.binary {
        t.push_str(&format!("binary = {}\n", quote(b)));
    }
    if let Some(k) = &new.api_key {
        t.push_str(&format!("api_key = {}\n", quote(k)));
    }
    t.push_str(&format!(
        "\n[profiles.{p}.workspaces]\ndefault = {}\n",
        quote(&new.ws.to_string_lossy())
    ));
    if let Some(app) = &new.app {
        t.push_str(&format!(
            "\n[profiles.{p}.app]\ntenant = {}\napp_id = {}\napp_secret = {}\n",
            quote(app.tenant.as_str()),
            quote(&app.app_id),
            quote(&app.secret_ref)
        ));
        if let Some(u) = &app.base_url {
            t.push_str(&format!("base_url = {}\n", quote(u)));
        }
        if let Some(m) = app.reply_mode {
            let m = match m {
                ReplyModeArg::Card => "card",
                ReplyModeArg::Markdown => "markdown",
                ReplyModeArg::Text => "text",
            };
            t.push_str(&format!("reply_mode = {}\n", quote(m)));
        }
        t.push_str(&format!("\n[profiles.{p}.access]\n"));
        match &app.owner {
            Some(o) => t.push_str(&format!("owner = {}\n", quote(o))),
            None => t.push_str("# owner = \"ou_...\"  # learned from the platform when unset\n"),
        }
    }
    t
}
