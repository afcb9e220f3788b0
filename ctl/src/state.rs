//! `fcxctl sessions list` and `fcxctl runs list`: read a profile's state
//! database directly, read-only, so they work with or without fcxd and never
//! take the worker's write lock.

use std::io::Write;

use anyhow::Context as _;
use clap::Subcommand;
use fcx_config::{Config, Home};
use rusqlite::{Connection, OpenFlags};
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
    message_count: i64,
    input_tokens: i64,
    output_tokens: i64,
}

fn profiles(home: &Home, only: Option<String>) -> anyhow::Result<Vec<String>> {
    if let Some(p) = only {
        return Ok(vec![p]);
    }
    let cfg = Config::load(home)?;
    Ok(cfg.profiles.keys().cloned().collect())
}

/// `None` when the profile has no state yet (its worker never ran).
fn open(home: &Home, profile: &str) -> anyhow::Result<Option<Connection>> {
    let path = home.state_db(profile);
    if !path.exists() {
        return Ok(None);
    }
    let c = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(Some(c))
}

fn has_table(c: &Connection, name: &str) -> anyhow::Result<bool> {
    Ok(c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

pub fn sessions(home: &Home, cmd: SessionsCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    let SessionsCommand::List {
        profile,
        json,
        limit,
    } = cmd;
    let mut rows = Vec::new();
    for p in profiles(home, profile)? {
        let Some(c) = open(home, &p)? else { continue };
        if !has_table(&c, "session_catalog")? {
            continue;
        }
        let mut st = c.prepare(
            "SELECT c.scope, c.thread_id, c.cwd, c.fingerprint, c.title, c.created_at_ms,
                    c.updated_at_ms, c.archived, s.thread_id IS NOT NULL
             FROM session_catalog c
             LEFT JOIN sessions s ON s.scope = c.scope AND s.thread_id = c.thread_id
             ORDER BY c.updated_at_ms DESC LIMIT ?1",
        )?;
        let it = st.query_map([limit.min(100_000) as i64], |r| {
            Ok(SessionOut {
                profile: p.clone(),
                scope: r.get(0)?,
                thread_id: r.get(1)?,
                cwd: r.get(2)?,
                fingerprint: r.get(3)?,
                title: r.get(4)?,
                created_at_ms: r.get(5)?,
                updated_at_ms: r.get(6)?,
                archived: r.get::<_, i64>(7)? != 0,
                current: r.get(8)?,
            })
        })?;
        for row in it {
            rows.push(row?);
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

pub fn runs(home: &Home, cmd: RunsCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    let RunsCommand::List {
        profile,
        json,
        limit,
    } = cmd;
    let mut rows = Vec::new();
    for p in profiles(home, profile)? {
        let Some(c) = open(home, &p)? else { continue };
        if !has_table(&c, "runs")? {
            continue;
        }
        let mut st = c.prepare(
            "SELECT run_id, scope, state, COALESCE(detail, ''), workspace, COALESCE(thread_id, ''),
                    started_at_ms, ended_at_ms, message_count, input_tokens, output_tokens
             FROM runs ORDER BY started_at_ms DESC LIMIT ?1",
        )?;
        let it = st.query_map([limit.min(100_000) as i64], |r| {
            let started: i64 = r.get(6)?;
            let ended: Option<i64> = r.get(7)?;
            Ok(RunOut {
                profile: p.clone(),
                run_id: r.get(0)?,
                scope: r.get(1)?,
                state: r.get(2)?,
                detail: r.get(3)?,
                workspace: r.get(4)?,
                thread_id: r.get(5)?,
                started_at_ms: started,
                ended_at_ms: ended,
                elapsed_ms: ended.map(|e| (e - started).max(0)),
                message_count: r.get(8)?,
                input_tokens: r.get(9)?,
                output_tokens: r.get(10)?,
            })
        })?;
        for row in it {
            rows.push(row?);
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
