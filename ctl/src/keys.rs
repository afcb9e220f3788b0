//! `fcxctl keys list|rotate|retire`: the card-button signing keys in each
//! profile's `callback-keys.json`. Works on the file directly (fcxd need not
//! run; a running fcxd picks changes up within seconds). Key material is
//! never printed.

use std::io::Write;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use fcx_config::callback_keys::{self as keyfile, KeyFileError, VersionInfo};
use fcx_config::{Config, Home};
use serde::Serialize;

use crate::exit;
use crate::render;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Key versions: which one signs, which still verify, which are retired
    List {
        /// Only this profile [default: every profile in config.toml]
        #[arg(long)]
        profile: Option<String>,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Make a new random key current; older versions stay accepted until retired
    Rotate {
        /// The profile [default: the only profile in config.toml]
        #[arg(long)]
        profile: Option<String>,
    },
    /// Stop accepting VERSION and delete its key; its number is never reused
    Retire {
        /// The key version to retire (not the current one)
        version: u32,
        /// The profile [default: the only profile in config.toml]
        #[arg(long)]
        profile: Option<String>,
    },
}

#[derive(Debug, Serialize)]
struct ProfileKeys {
    profile: String,
    file: String,
    exists: bool,
    current: Option<u32>,
    versions: Vec<VersionInfo>,
}

pub(crate) fn keys(home: &Home, cmd: KeysCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    match cmd {
        KeysCommand::List { profile, json } => list(home, profile, json, out),
        KeysCommand::Rotate { profile } => {
            let profile = one_profile(home, profile)?;
            let path = home.profile(&profile).callback_keys();
            let f = keyfile::rotate(&path).map_err(|e| hint(e, &profile))?;
            let older: Vec<String> = f
                .live()
                .map(|(v, _)| v)
                .filter(|v| *v != f.current())
                .map(|v| v.to_string())
                .collect();
            write!(out, "{profile}: key version {} is now current", f.current())?;
            if older.is_empty() {
                writeln!(out, ".")?;
            } else {
                writeln!(
                    out,
                    "; {} still accepted until retired (`fcxctl keys retire VERSION`).",
                    plural_versions(&older)
                )?;
            }
            writeln!(
                out,
                "A running fcxd signs new buttons with it within seconds; no restart needed."
            )?;
            Ok(exit::OK)
        }
        KeysCommand::Retire { version, profile } => {
            let profile = one_profile(home, profile)?;
            let path = home.profile(&profile).callback_keys();
            let (_, changed) = keyfile::retire(&path, version).map_err(|e| hint(e, &profile))?;
            if changed {
                writeln!(
                    out,
                    "{profile}: key version {version} retired and its key deleted; buttons signed \
                     with it are refused from now on (no fcxd restart needed)."
                )?;
            } else {
                writeln!(out, "{profile}: key version {version} was already retired.")?;
            }
            Ok(exit::OK)
        }
    }
}

fn plural_versions(v: &[String]) -> String {
    match v {
        [one] => format!("version {one} is"),
        _ => format!("versions {} are", v.join(", ")),
    }
}

/// Adds what the operator can do about a refusal.
fn hint(e: KeyFileError, profile: &str) -> anyhow::Error {
    let extra = match &e {
        KeyFileError::RetiringCurrent(_) => {
            format!(" (`fcxctl keys rotate --profile {profile}`)")
        }
        KeyFileError::Corrupt { .. } => {
            " — move it aside to start over (fcxd does so itself on its next start)".into()
        }
        _ => String::new(),
    };
    anyhow::anyhow!("{profile}: {e}{extra}")
}

fn list(
    home: &Home,
    profile: Option<String>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let names = match profile {
        Some(p) => vec![named_profile(home, p)?],
        None => Config::load(home)?.profiles.into_keys().collect(),
    };
    let mut all = Vec::new();
    // One broken file should not hide the other profiles' keys.
    let mut failed = Vec::new();
    for p in names {
        let path = home.profile(&p).callback_keys();
        let f = match keyfile::read(&path) {
            Ok(f) => f,
            Err(e) => {
                failed.push(hint(e, &p).to_string());
                continue;
            }
        };
        all.push(ProfileKeys {
            file: path.display().to_string(),
            exists: f.is_some(),
            current: f.as_ref().map(|f| f.current()),
            versions: f.map(|f| f.versions()).unwrap_or_default(),
            profile: p,
        });
    }
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .flat_map(|pk| {
            pk.versions.iter().map(|v| {
                vec![
                    pk.profile.clone(),
                    v.version.to_string(),
                    v.state.as_str().to_string(),
                    v.created.map_or_else(|| "-".into(), utc),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        render::table(out, &["PROFILE", "VERSION", "STATE", "CREATED"], &rows)?;
    }
    for pk in all.iter().filter(|pk| !pk.exists) {
        writeln!(
            out,
            "{}: no signing keys exist yet (fcxd creates them on first use; \
             `fcxctl keys rotate --profile {}` creates one now)",
            pk.profile, pk.profile
        )?;
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(exit::OK)
}

/// An explicit `--profile`: a valid name that config.toml knows, or whose
/// directory exists (so keys stay manageable when config.toml is broken or
/// the profile was removed from it).
fn named_profile(home: &Home, p: String) -> anyhow::Result<String> {
    if !fcx_config::valid_profile_name(&p) {
        bail!(
            "`{}` is not a profile name (lowercase letters, digits, - and _)",
            render::clean(&p)
        );
    }
    if home.profile(&p).dir().is_dir() {
        return Ok(p);
    }
    let cfg = Config::load(home)?;
    cfg.profile(&p)?;
    Ok(p)
}

/// The profile a change applies to: `--profile`, else the only one.
pub(crate) fn one_profile(home: &Home, p: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = p {
        return named_profile(home, p);
    }
    let cfg = Config::load(home).context("choose a profile with --profile")?;
    let mut names = cfg.profiles.keys();
    match (names.next(), names.next()) {
        (Some(only), None) => Ok(only.clone()),
        _ => bail!(
            "{} has several profiles ({}): choose one with --profile",
            cfg.path.display(),
            cfg.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `2026-05-01 09:30 UTC`, from unix seconds.
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil (proleptic Gregorian): no date crate
    // for one column.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc(-60), "1969-12-31 23:59 UTC");
    }
}
