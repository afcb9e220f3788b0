//! `fcxctl secret set|list|remove`: the encrypted keystore behind
//! `keystore:ID` references. Values are read without echo from a terminal,
//! or from stdin for scripts, and never printed.

use std::io::{IsTerminal as _, Read as _, Write};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use fcx_config::Home;
use fcx_config::keystore::{Keystore, valid_id};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret (read without echo, or from stdin when piped); use it
    /// in config.toml as keystore:ID
    Set {
        /// The id (1-64 characters of A-Z, a-z, 0-9, '.', '_', '-')
        id: String,
    },
    /// The stored ids and when they were set (never the values)
    List {
        /// Print one JSON object instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored secret
    Remove { id: String },
}

pub(crate) fn secret(home: &Home, cmd: SecretCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    let store = Keystore::in_home(home.root());
    match cmd {
        SecretCommand::Set { id } => {
            if !valid_id(&id) {
                bail!(
                    "`{id}` is not a valid id: use 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'"
                );
            }
            let value = read_value(&id)?;
            let master = store.set(&id, &fcx_config::Secret::new(value))?;
            let where_ = match master {
                fcx_config::keystore::Master::KeyFile => {
                    format!("key file {}", store.key_file().display())
                }
                other => other.as_str().to_string(),
            };
            writeln!(
                out,
                "stored `{id}` in {} (master key: {where_})",
                store.path().display()
            )?;
            writeln!(out, "use it in config.toml as \"keystore:{id}\"")?;
            Ok(crate::exit::OK)
        }
        SecretCommand::List { json } => {
            let (master, entries) = store.list()?;
            if json {
                let v = json!({
                    "keystore": store.path().display().to_string(),
                    "master": master.map(|m| m.as_str()),
                    "secrets": entries,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                return Ok(crate::exit::OK);
            }
            if entries.is_empty() {
                writeln!(
                    out,
                    "no secrets in {}; store one with `fcxctl secret set ID`",
                    store.path().display()
                )?;
                return Ok(crate::exit::OK);
            }
            let now = crate::render::now_ms();
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    let age = |ms| {
                        crate::render::age_secs(ms, now).map_or_else(
                            || "-".into(),
                            |s| format!("{} ago", crate::render::duration(s)),
                        )
                    };
                    vec![
                        format!("keystore:{}", e.id),
                        age(e.created_ms),
                        age(e.updated_ms),
                    ]
                })
                .collect();
            crate::render::table(out, &["REFERENCE", "CREATED", "UPDATED"], &rows)?;
            Ok(crate::exit::OK)
        }
        SecretCommand::Remove { id } => {
            if store.remove(&id)? {
                writeln!(out, "removed `{id}` from {}", store.path().display())?;
                Ok(crate::exit::OK)
            } else {
                bail!("no secret `{id}` in {}", store.path().display())
            }
        }
    }
}

/// From a terminal without echo; otherwise all of stdin (one trailing
/// newline dropped).
fn read_value(id: &str) -> anyhow::Result<String> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value for {id} (not shown): "))
            .context("reading the value from the terminal")?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut s)
            .context("reading the value from stdin")?;
        let s = s.strip_suffix('\n').unwrap_or(&s);
        s.strip_suffix('\r').unwrap_or(s).to_string()
    };
    if value.trim().is_empty() {
        bail!("empty value: nothing stored");
    }
    Ok(value)
}
