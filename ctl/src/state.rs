//! `fcxctl sessions list` and `fcxctl runs list`: read a profile's state
//! database through `fcx-state`'s read-only [`Reader`], so they work with or
//! without fcxd, never take the worker's write lock and never hold SQL of
//! their own.

use std::io::Write;

use anyhow::Context as _;
use clap::Subcommand;
use fcx_config::{Config, Home};
use fcx_state::Reader;
use serde::Serialize;

use crate::exit;

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Resumable Codex sessions: scope, workspace, fingerprint, last use
    List {
        /// Only this profile [default: every profile in config.toml]
        #[arg(long)]
        profile: Option<String>,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
        /// At most this many per profile
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs: state, timings, tokens
    List {
        /// Only this profile [default: every profile in config.toml]
        #[arg(long)]
        profile: Option<String>,
        /// Print a JSON array
        #[arg(long)]
        json: bool,
        /// At most this many per profile
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Serialize)]
struct SessionOut {
    profile: String,
    scope: String,
    thread_id: String,
    cwd: String,
    fingerprint: String,
    title: String,
    created_at_ms: i64,
    updated_at_ms: i64,
    archived: bool,
    current: bool,
}

#[derive(Debug, Serialize)]
struct RunOut {
    profile: String,
    run_id: String,
    scope: String,
    state: String,
    detail: String,
    workspace: String,
    thread_id: String,
    started_at_ms: i64,
    ended_at_ms: Option<i64>,
    elapsed_ms: Option<i64>,
    message_count: u32,
    input_tokens: u64,
    output_tokens: u64,
}

fn profiles(home: &Home, only: Option<String>) -> anyhow::Result<Vec<String>> {
    if let Some(p) = only {
        return Ok(vec![p]);
    }
    let cfg = Config::load(home)?;
    Ok(cfg.profiles.keys().cloned().collect())
}

/// `None` when the profile has no state yet (its worker never ran).
fn open(home: &Home, profile: &str) -> anyhow::Result<Option<Reader>> {
    let path = home.profile(profile).state_db();
    if !path.exists() {
        return Ok(None);
    }
    let r = Reader::open(&path).with_context(|| format!("profile {profile}"))?;
    Ok(Some(r))
}

pub(crate) fn sessions(
    home: &Home,
    cmd: SessionsCommand,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let SessionsCommand::List {
        profile,
        json,
        limit,
    } = cmd;
    let mut rows = Vec::new();
    for p in profiles(home, profile)? {
        let Some(r) = open(home, &p)? else { continue };
        for l in r.sessions(limit)? {
            rows.push(SessionOut {
                profile: p.clone(),
                scope: l.entry.scope,
                thread_id: l.entry.thread_id,
                cwd: l.entry.cwd,
                fingerprint: l.entry.fingerprint,
                title: l.entry.title,
                created_at_ms: l.entry.created_at_ms,
                updated_at_ms: l.entry.updated_at_ms,
                archived: l.entry.archived,
                current: l.current,
            });
        }
    }
    if json_or_none(out, &rows, json, "no sessions")? {
        return Ok(exit::OK);
    }
    writeln!(
        out,
        "{:<10} {:<28} {:<38} {:<8} {:<12} WORKSPACE",
        "PROFILE", "SCOPE", "THREAD", "STATE", "FINGERPRINT"
    )?;
    for r in rows {
        let state = if r.current {
            "current"
        } else if r.archived {
            "archived"
        } else {
            "idle"
        };
        writeln!(
            out,
            "{:<10} {:<28} {:<38} {:<8} {:<12} {}",
            r.profile,
            r.scope,
            r.thread_id,
            state,
            r.fingerprint.get(..12).unwrap_or(&r.fingerprint),
            r.cwd
        )?;
    }
    Ok(exit::OK)
}

pub(crate) fn runs(home: &Home, cmd: RunsCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    let RunsCommand::List {
        profile,
        json,
        limit,
    } = cmd;
    let mut rows = Vec::new();
    for p in profiles(home, profile)? {
        let Some(r) = open(home, &p)? else { continue };
        for l in r.runs(limit)? {
            rows.push(RunOut {
                profile: p.clone(),
                run_id: l.run_id,
                scope: l.scope,
                state: l.state,
                detail: l.detail,
                workspace: l.workspace,
                thread_id: l.thread_id.unwrap_or_default(),
                started_at_ms: l.started_at_ms,
                ended_at_ms: l.ended_at_ms,
                elapsed_ms: l.ended_at_ms.map(|e| (e - l.started_at_ms).max(0)),
                message_count: l.message_count,
                input_tokens: l.totals.input_tokens,
                output_tokens: l.totals.output_tokens,
            });
        }
    }
    if json_or_none(out, &rows, json, "no runs")? {
        return Ok(exit::OK);
    }
    writeln!(
        out,
        "{:<10} {:<10} {:<24} {:<12} {:>8} {:>5} {:>9} {:>9}  DETAIL",
        "PROFILE", "RUN", "SCOPE", "STATE", "SECS", "MSGS", "IN TOK", "OUT TOK"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<10} {:<10} {:<24} {:<12} {:>8} {:>5} {:>9} {:>9}  {}",
            r.profile,
            r.run_id,
            r.scope,
            r.state,
            r.elapsed_ms
                .map_or("-".to_string(), |e| format!("{:.1}", e as f64 / 1000.0)),
            r.message_count,
            r.input_tokens,
            r.output_tokens,
            r.detail
        )?;
    }
    Ok(exit::OK)
}

/// The `--json` form, or the "nothing yet" line: `true` when either was
/// written and the table is not needed.
fn json_or_none<T: Serialize>(
    out: &mut dyn Write,
    rows: &[T],
    json: bool,
    empty: &str,
) -> anyhow::Result<bool> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(rows)?)?;
        return Ok(true);
    }
    if rows.is_empty() {
        writeln!(out, "{empty}")?;
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
