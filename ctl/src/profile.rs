//! `fcxctl profile add|list|show|remove|enable|disable`: the profiles in
//! config.toml. Edits work on the text, table by table, so every comment
//! and every other profile stays as the operator wrote it; each edit is
//! checked by reading the result back (the profile changed as asked and no
//! other did) before it replaces the file. A running fcxd applies it on
//! `fcxctl reload` (or SIGHUP).

use std::io::Write;

use anyhow::{Context as _, bail};
use fcx_config::{Config, Home, Profile};
use serde_json::{Value, json};

use crate::init::{ProfileArgs, check_name, gather, header, render_profile, write_config};
use crate::render::table;

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// Add a profile (same values as `fcxctl init`; credentials checked live)
    Add {
        /// The new profile's name
        name: String,
        #[command(flatten)]
        values: ProfileArgs,
    },
    /// List the profiles in config.toml
    List {
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one profile's settings (secret references, never values)
    Show {
        name: String,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Remove a profile's tables from config.toml (its state stays in
    /// $FCX_HOME/profiles/NAME)
    Remove { name: String },
    /// Let fcxd serve the profile
    Enable { name: String },
    /// Keep the profile in config.toml but do not serve it
    Disable { name: String },
}

pub(crate) fn profile(home: &Home, c: ProfileCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    match c {
        ProfileCommand::List { json } => list(home, json, out),
        ProfileCommand::Show { name, json } => show(home, &name, json, out),
        ProfileCommand::Add { name, values } => add(home, &name, &values, out),
        ProfileCommand::Remove { name } => edit(home, &name, Edit::Remove, out),
        ProfileCommand::Enable { name } => edit(home, &name, Edit::Enabled(true), out),
        ProfileCommand::Disable { name } => edit(home, &name, Edit::Enabled(false), out),
    }
}

fn list(home: &Home, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let config = Config::load(home)?;
    if json {
        let v: Vec<Value> = config.profiles.values().map(summary_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(crate::exit::OK);
    }
    if !config.from_file {
        writeln!(
            out,
            "no {} yet: the built-in `default` profile is in use (add one with `fcxctl profile add NAME`)",
            config.path.display()
        )?;
    }
    let rows: Vec<Vec<String>> = config
        .profiles
        .values()
        .map(|p| {
            vec![
                p.name.clone(),
                if p.enabled { "yes" } else { "no" }.into(),
                surface(p),
                p.codex.auth.as_str().into(),
                p.workspaces.default.display().to_string(),
            ]
        })
        .collect();
    table(
        out,
        &["PROFILE", "ENABLED", "SURFACE", "AUTH", "WORKSPACE"],
        &rows,
    )?;
    Ok(crate::exit::OK)
}

fn surface(p: &Profile) -> String {
    match &p.app {
        Some(a) => format!("{} {}", a.tenant.as_str(), a.app_id),
        None => "console".into(),
    }
}

fn summary_json(p: &Profile) -> Value {
    json!({
        "name": p.name,
        "enabled": p.enabled,
        "tenant": p.app.as_ref().map(|a| a.tenant.as_str()),
        "app_id": p.app.as_ref().map(|a| a.app_id.clone()),
        "auth": p.codex.auth.as_str(),
        "workspace": p.workspaces.default.display().to_string(),
    })
}

fn show_json(p: &Profile) -> Value {
    let mut v = summary_json(p);
    v["codex"] = json!({
        "binary": p.codex.binary,
        "auth": p.codex.auth.as_str(),
        "api_key": p.codex.api_key.as_ref().map(|r| r.to_string()),
        "model": p.codex.model,
        "runner": p.codex.runner.as_str(),
    });
    v["app"] = match &p.app {
        Some(a) => json!({
            "tenant": a.tenant.as_str(),
            "app_id": a.app_id,
            "app_secret": a.app_secret.to_string(),
            "base_url": a.base_url,
            "reply_mode": a.reply_mode.as_str(),
            "webhook": a.webhook.as_ref().map(|w| w.listen.to_string()),
        }),
        None => Value::Null,
    };
    v["access"] = json!({
        "owner": p.access.owner,
        "admins": p.access.admins,
        "allowed_users": p.access.allowed_users,
        "allowed_chats": p.access.allowed_chats,
        "require_mention_in_group": p.access.require_mention_in_group,
    });
    v["permissions"] = json!({
        "default_access": p.permissions.default_access.as_str(),
        "max_access": p.permissions.max_access.as_str(),
        "network": p.permissions.network,
    });
    v["runs"] = json!({
        "max_concurrent": p.runs.max_concurrent,
        "idle_timeout_secs": p.runs.idle_timeout_secs,
    });
    v
}

fn show(home: &Home, name: &str, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let config = Config::load(home)?;
    let p = config.profile(name)?;
    let v = show_json(p);
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(crate::exit::OK);
    }
    // The JSON document flattened to `section.key  value` lines.
    fn lines(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    lines(&key, x, out);
                }
            }
            Value::Null => out.push((prefix.to_string(), "-".into())),
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut rows = Vec::new();
    lines("", &v, &mut rows);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, val) in rows {
        writeln!(out, "{k:width$}  {}", crate::render::clean(&val))?;
    }
    Ok(crate::exit::OK)
}

fn add(home: &Home, name: &str, values: &ProfileArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    check_name(name)?;
    let path = home.config_path();
    let (old_text, old) = match std::fs::read_to_string(&path) {
        Ok(t) => {
            let c = Config::parse(&path, &t, home)?;
            (Some(t), Some(c))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if old.as_ref().is_some_and(|c| c.profiles.contains_key(name)) {
        bail!(
            "{} already has a profile `{name}`; change it there, or `fcxctl profile remove {name}` first",
            path.display()
        );
    }
    let new = gather(home, name, values, out)?;
    let mut text = old_text.unwrap_or_else(header);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&render_profile(name, &new));
    let config = Config::parse(&path, &text, home)
        .context("the profile add would write does not validate")?;
    if let Some(old) = &old {
        same_others(old, &config, name)?;
    }
    write_config(home, &text)?;
    writeln!(out, "added profile `{name}` to {}", path.display())?;
    apply_hint(home, out)
}

enum Edit {
    Remove,
    Enabled(bool),
}

fn edit(home: &Home, name: &str, what: Edit, out: &mut dyn Write) -> anyhow::Result<u8> {
    let path = home.config_path();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (create one with `fcxctl init` or `fcxctl profile add`)",
            path.display()
        )
    })?;
    let old = Config::parse(&path, &text, home)?;
    let before = old.profile(name)?.clone();
    let new_text = match what {
        Edit::Remove => {
            if old.profiles.len() == 1 {
                bail!(
                    "`{name}` is the only profile in {}; disable it instead (`fcxctl profile disable {name}`)",
                    path.display()
                );
            }
            remove_tables(&text, name)
        }
        Edit::Enabled(on) => {
            if before.enabled == on {
                let state = if on { "enabled" } else { "disabled" };
                writeln!(out, "profile `{name}` is already {state}")?;
                return Ok(crate::exit::OK);
            }
            set_enabled(&text, name, on)
        }
    };
    let refuse = |why: String| {
        anyhow::anyhow!(
            "cannot edit profile `{name}` in {} safely ({why}); nothing was changed: edit the file by hand",
            path.display()
        )
    };
    let new = Config::parse(&path, &new_text, home).map_err(|e| refuse(e.to_string()))?;
    same_others(&old, &new, name).map_err(|e| refuse(e.to_string()))?;
    let done = match what {
        Edit::Remove => {
            if new.profiles.contains_key(name) {
                return Err(refuse("it is not made of [profiles.NAME…] tables".into()));
            }
            "removed"
        }
        Edit::Enabled(on) => {
            let mut expected = before.clone();
            expected.enabled = on;
            if new.profiles.get(name) != Some(&expected) {
                return Err(refuse("the result is not the same profile".into()));
            }
            if on { "enabled" } else { "disabled" }
        }
    };
    write_config(home, &new_text)?;
    writeln!(out, "{done} profile `{name}` in {}", path.display())?;
    if let Edit::Remove = what {
        writeln!(
            out,
            "its state stays in {} (delete it by hand when no longer needed)",
            home.profile(name).dir().display()
        )?;
    }
    apply_hint(home, out)
}

/// Every profile but `name` reads the same before and after an edit.
fn same_others(old: &Config, new: &Config, name: &str) -> anyhow::Result<()> {
    let others = |c: &Config| -> Vec<Profile> {
        c.profiles
            .values()
            .filter(|p| p.name != name)
            .cloned()
            .collect()
    };
    if others(old) != others(new) {
        bail!("another profile would change too");
    }
    Ok(())
}

fn apply_hint(home: &Home, out: &mut dyn Write) -> anyhow::Result<u8> {
    if home.gateway_socket().exists() {
        writeln!(
            out,
            "fcxd is running: apply it with `fcxctl reload` (other profiles keep running)"
        )?;
    }
    Ok(crate::exit::OK)
}

/// A table header's key path (`[profiles.work.app]` → profiles, work, app);
/// `None` for any other line.
fn header_path(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    let inner = t
        .strip_prefix("[[")
        .and_then(|r| r.split_once("]]"))
        .or_else(|| t.strip_prefix('[').and_then(|r| r.split_once(']')))?
        .0;
    Some(
        inner
            .split('.')
            .map(|k| k.trim().trim_matches('"').trim_matches('\'').to_string())
            .collect(),
    )
}

fn belongs(path: &[String], name: &str) -> bool {
    path.len() >= 2 && path[0] == "profiles" && path[1] == name
}

/// `text` split into the lines before the first table and one chunk per
/// table (its header and every line up to the next header).
fn tables(text: &str) -> Vec<(Option<Vec<String>>, Vec<&str>)> {
    let mut chunks: Vec<(Option<Vec<String>>, Vec<&str>)> = vec![(None, Vec::new())];
    for line in text.split_inclusive('\n') {
        match header_path(line) {
            Some(p) => chunks.push((Some(p), vec![line])),
            None => {
                if let Some(last) = chunks.last_mut() {
                    last.1.push(line);
                }
            }
        }
    }
    chunks
}

/// `text` without the `[profiles.NAME]` and `[profiles.NAME.*]` tables.
fn remove_tables(text: &str, name: &str) -> String {
    tables(text)
        .into_iter()
        .filter(|(p, _)| !p.as_ref().is_some_and(|p| belongs(p, name)))
        .flat_map(|(_, lines)| lines)
        .collect()
}

/// `text` with `enabled` of profile `name` set to `on`: the line replaced,
/// else added under `[profiles.NAME]`, else that table added before the
/// profile's first one.
fn set_enabled(text: &str, name: &str, on: bool) -> String {
    let line = format!("enabled = {on}\n");
    let mut chunks = tables(text);
    let own = chunks.iter().position(|(p, _)| {
        p.as_deref()
            .is_some_and(|p| p.len() == 2 && belongs(p, name))
    });
    match own {
        Some(i) => {
            let lines = &mut chunks[i].1;
            let existing = lines.iter().position(|l| {
                l.trim_start()
                    .strip_prefix("enabled")
                    .is_some_and(|r| r.trim_start().starts_with('='))
            });
            let mut owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            match existing {
                Some(j) => owned[j] = line,
                None => owned.insert(1, line),
            }
            chunks_to_string(&chunks, Some((i, owned)))
        }
        None => {
            let first = chunks
                .iter()
                .position(|(p, _)| p.as_deref().is_some_and(|p| belongs(p, name)));
            let mut s = String::new();
            for (i, (_, lines)) in chunks.iter().enumerate() {
                if Some(i) == first {
                    s.push_str(&format!("[profiles.{name}]\n{line}\n"));
                }
                s.extend(lines.iter().copied());
            }
            s
        }
    }
}

fn chunks_to_string(
    chunks: &[(Option<Vec<String>>, Vec<&str>)],
    replace: Option<(usize, Vec<String>)>,
) -> String {
    let mut s = String::new();
    for (i, (_, lines)) in chunks.iter().enumerate() {
        match &replace {
            Some((j, new)) if *j == i => new.iter().for_each(|l| s.push_str(l)),
            _ => s.extend(lines.iter().copied()),
        }
    }
    s
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
