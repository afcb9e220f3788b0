//! fcx's files denied to Codex's commands by Codex's own sandbox: a
//! permissions profile with `deny` entries (codex 0.169.0), on every
//! platform, for every run whose sandbox is not full access.
//!
//! On Linux it stands in for the mount namespace ([`super::exec::confine`])
//! where user namespaces are unavailable (inside the namespace there is
//! nothing left for it to deny; see `overrides`); on macOS (Seatbelt) and
//! Windows it is the only layer. What a run needs stays readable: the entries on the way from
//! `$FCX_HOME` down to each kept directory (the run's `CODEX_HOME`, its
//! `lark-cli` directory) are left alone, everything beside them is denied,
//! and so is each `also` directory that exists (`~/.codex`, the operator's
//! `lark-cli` state).
//!
//! Measured with 0.169.0 on Linux (bubblewrap), and what shaped this:
//! - `--sandbox` (or app-server's `sandbox`) selects the legacy policy and
//!   drops the profile, so a run with a profile has neither; the profile
//!   `extends` the built-in `:read-only` or `:workspace` instead, and the
//!   network setting moves into it. A `sandbox_mode` in a loaded config file
//!   does not override `default_permissions`.
//! - A `read` entry under a denied directory stays denied (a `write` one is
//!   bound back, but the Codex home must not be writable): hence denying
//!   the siblings, not `$FCX_HOME` with holes.
//! - A denied path that does not exist makes Codex create an empty file
//!   there (its bind-mount target) and later runs fail on it; so only
//!   existing directories are listed, and on Linux files go in as one glob
//!   per directory (`dir/*`, expanded before each command: it matches the
//!   files there, including ones made after the run started, never a
//!   directory, and a file gone by then is simply not matched).

use std::path::{Path, PathBuf};

use super::exec::confine::Hide;
use super::{RunSpec, Sandbox};

/// The `[permissions.<id>]` profile fcx defines and selects.
pub(crate) const PROFILE_ID: &str = "fcx";

/// One `deny` entry: a path (its whole subtree), or a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Path(PathBuf),
    Glob(String),
}

impl Entry {
    fn key(&self) -> Option<String> {
        match self {
            Entry::Path(p) => p.to_str().map(str::to_string),
            Entry::Glob(g) => Some(g.clone()),
        }
    }
}

/// Whether `spec` runs under fcx's permissions profile (and so without a
/// legacy `--sandbox`): everything but full access, which has no sandbox
/// to carry the entries.
pub(crate) fn applies(spec: &RunSpec) -> bool {
    spec.sandbox != Sandbox::DangerFullAccess && spec.env.hide.is_some()
}

/// The overrides that select the profile: `default_permissions` and the
/// profile itself as one inline table (paths hold dots, which a dotted key
/// would split).
pub(crate) fn overrides(spec: &RunSpec) -> Option<Vec<(String, String)>> {
    if !applies(spec) {
        return None;
    }
    let mut hide = spec.env.hide.clone()?;
    // The run's own Codex home as the spec has it (Codex reads its skills,
    // AGENTS.md and helper binaries there through the sandbox).
    if let Some(h) = &spec.env.codex_home
        && !hide.keep.contains(h)
    {
        hide.keep.push(h.clone());
    }
    let ww = spec.sandbox == Sandbox::WorkspaceWrite;
    let network = ww.then_some(spec.network);
    let write = if ww {
        writable_roots(&spec.overrides)
    } else {
        Vec::new()
    };
    // Inside fcx's namespace every path the entries would name is already
    // gone from Codex's view ($FCX_HOME an empty tmpfs but for the kept
    // directories, `also` empty tmpfs). Listed anyway, each became a path
    // Codex found missing, so it created an empty file there and bound one
    // more mount over it for every sandboxed command; under load bwrap
    // now and then failed that bind ("Can't bind mount /bindfile… on
    // …/logs: Unable to remount destination") and the run failed at its
    // thread start. The profile still carries the mode, network and
    // writable roots.
    let deny = if spec.env.namespace {
        Vec::new()
    } else {
        entries(&hide, cfg!(target_os = "linux"))
    };
    let table = profile(spec.sandbox, network, &deny, &write);
    Some(vec![
        (
            "default_permissions".into(),
            toml::Value::String(PROFILE_ID.into()).to_string(),
        ),
        (
            format!("permissions.{PROFILE_ID}"),
            toml::Value::Table(table).to_string(),
        ),
    ])
}

/// The operator's `sandbox_workspace_write.writable_roots` (from
/// `codex.config`): the profile replaces the legacy settings, which Codex
/// then ignores (measured), so they come along as `write` entries. The
/// other legacy keys have no counterpart here and are said to be ignored.
fn writable_roots(ov: &[(String, String)]) -> Vec<String> {
    let mut roots = Vec::new();
    for (k, lit) in ov {
        let Some(rest) = k.strip_prefix("sandbox_workspace_write.") else {
            continue;
        };
        match rest {
            "network_access" => {}
            "writable_roots" => {
                roots = toml::from_str::<toml::Table>(&format!("v = {lit}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .and_then(|v| match v {
                        toml::Value::Array(a) => Some(a),
                        _ => None,
                    })
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
            }
            other => tracing::warn!(
                key = %k,
                "codex.config's sandbox_workspace_write.{other} is ignored: runs use fcx's permissions profile"
            ),
        }
    }
    roots
}

/// `[permissions.fcx]`: the built-in profile the sandbox mode stands for,
/// the network switch (workspace-write only), the deny entries and the
/// operator's extra writable roots.
pub(crate) fn profile(
    sandbox: Sandbox,
    network: Option<bool>,
    deny: &[Entry],
    write: &[String],
) -> toml::Table {
    let mut t = toml::Table::new();
    let parent = match sandbox {
        Sandbox::ReadOnly => ":read-only",
        _ => ":workspace",
    };
    t.insert("extends".into(), parent.into());
    if let Some(on) = network {
        let mut n = toml::Table::new();
        n.insert("enabled".into(), on.into());
        t.insert("network".into(), n.into());
    }
    let mut fs = toml::Table::new();
    for e in deny {
        match e.key() {
            Some(k) => {
                fs.insert(k, "deny".into());
            }
            None => {
                tracing::warn!(entry = ?e, "a path that is not UTF-8 cannot be denied to Codex")
            }
        }
    }
    for w in write {
        fs.insert(w.clone(), "write".into());
    }
    t.insert("filesystem".into(), fs.into());
    t
}

/// What to deny for `hide`, read from the disk now. `globs`: files as one
/// `dir/*` glob per directory (Linux, see the module note) rather than
/// path by path.
pub(crate) fn entries(hide: &Hide, globs: bool) -> Vec<Entry> {
    let mut out = Vec::new();
    let keep: Vec<&PathBuf> = hide
        .keep
        .iter()
        .filter(|k| k.starts_with(&hide.root) && **k != hide.root)
        .collect();
    if keep.is_empty() {
        if hide.root.is_dir() {
            out.push(Entry::Path(hide.root.clone()));
        }
    } else {
        deny_beside(&hide.root, &keep, globs, &mut out);
    }
    for a in &hide.also {
        if std::fs::symlink_metadata(a).is_ok() && !out.contains(&Entry::Path(a.clone())) {
            out.push(Entry::Path(a.clone()));
        }
    }
    out
}

/// Everything in `dir` but the way to `keep` (all inside `dir`).
fn deny_beside(dir: &Path, keep: &[&PathBuf], globs: bool, out: &mut Vec<Entry>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let glob = if globs { files_glob(dir) } else { None };
    if let Some(g) = &glob {
        out.push(Entry::Glob(g.clone()));
    }
    let mut names: Vec<_> = read.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let path = e.path();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if keep.iter().any(|k| **k == path) {
            continue;
        }
        let on_the_way: Vec<&PathBuf> = keep
            .iter()
            .copied()
            .filter(|k| k.starts_with(&path))
            .collect();
        if is_dir && !on_the_way.is_empty() {
            deny_beside(&path, &on_the_way, globs, out);
        } else if is_dir || glob.is_none() {
            out.push(Entry::Path(path));
        }
    }
}

/// `dir/*`, unless `dir` itself holds a glob character (then its files go
/// in one by one).
fn files_glob(dir: &Path) -> Option<String> {
    let d = dir.to_str()?;
    if d.contains(['*', '?', '[', ']', '{', '}', '\\']) {
        return None;
    }
    Some(format!("{}/*", d.trim_end_matches('/')))
}

#[cfg(test)]
#[path = "deny_tests.rs"]
mod tests;
