//! The schema and its ordered migrations, recorded in SQLite's
//! `PRAGMA user_version`.
//!
//! A database written before versioning (version 0) holds the tables of the
//! baseline, perhaps without columns added later; migration 1 brings it to
//! the baseline in place and keeps every row. A new migration is appended to
//! [`MIGRATIONS`] with the next version, and [`SCHEMA_VERSION`] follows it;
//! a shipped migration is never edited.

use std::path::Path;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::{Result, StoreError};

/// The schema version this build writes and understands. A database with a
/// higher one was written by a newer fcx and is refused.
pub const SCHEMA_VERSION: i64 = 3;

/// One step of the schema: applied, in a transaction, to a database whose
/// version is below `version`.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) what: &'static str,
    pub(crate) apply: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

/// In version order, the last one at [`SCHEMA_VERSION`].
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "baseline: the tables of the unversioned releases, with their added columns",
        apply: baseline,
    },
    Migration {
        version: 2,
        what: "scope_settings.workspace_id: the pinned workspace's device and inode",
        apply: workspace_id,
    },
    Migration {
        version: 3,
        what: "scope_settings.during_run: what a message arriving during a run does",
        apply: during_run,
    },
];

/// The tables as the unversioned releases created them. `IF NOT EXISTS`
/// because a version-0 database may already hold any of them.
const BASELINE: &str = r#"
CREATE TABLE IF NOT EXISTS inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    scope           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    run_id          TEXT,
    payload         BLOB NOT NULL,
    accepted_at_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_state ON inbox(state, id);
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    scope    TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    payload  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id            TEXT PRIMARY KEY,
    scope             TEXT NOT NULL,
    reply_to          TEXT NOT NULL,
    thread_id         TEXT,
    state             TEXT NOT NULL,
    detail            TEXT,
    workspace         TEXT NOT NULL,
    started_at_ms     INTEGER NOT NULL,
    ended_at_ms       INTEGER,
    child_pid         INTEGER,
    child_start_time  INTEGER,
    message_count     INTEGER NOT NULL,
    input_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    output_tokens     INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs(state);
CREATE TABLE IF NOT EXISTS sessions (
    scope          TEXT PRIMARY KEY,
    thread_id      TEXT NOT NULL,
    cwd            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    cum_input      INTEGER NOT NULL DEFAULT 0,
    cum_cached     INTEGER NOT NULL DEFAULT 0,
    cum_output     INTEGER NOT NULL DEFAULT 0,
    cum_reasoning  INTEGER NOT NULL DEFAULT 0,
    updated_at_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session_catalog (
    scope          TEXT NOT NULL,
    thread_id      TEXT NOT NULL,
    cwd            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    title          TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    archived       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, thread_id)
);
CREATE INDEX IF NOT EXISTS catalog_by_key ON session_catalog(scope, cwd, fingerprint, updated_at_ms);
CREATE TABLE IF NOT EXISTS scope_settings (
    scope          TEXT PRIMARY KEY,
    workspace      TEXT,
    access         TEXT,
    timeout_secs   INTEGER,
    updated_at_ms  INTEGER NOT NULL
);
-- reply_mode, tool_display and require_mention: BASELINE_ADDED_COLUMNS.
CREATE TABLE IF NOT EXISTS aliases (
    name           TEXT PRIMARY KEY,
    path           TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_changes (
    list           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    op             TEXT NOT NULL,
    by_actor       TEXT NOT NULL,
    at_ms          INTEGER NOT NULL,
    PRIMARY KEY (list, subject)
);
CREATE TABLE IF NOT EXISTS kv (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"#;

/// Columns the unversioned releases added after their first one, as
/// (table, column, type): a version-0 database may lack any of them.
const BASELINE_ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("scope_settings", "reply_mode", "TEXT"),
    ("scope_settings", "tool_display", "TEXT"),
    ("scope_settings", "require_mention", "INTEGER"),
];

fn baseline(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(BASELINE)?;
    for (table, column, ty) in BASELINE_ADDED_COLUMNS {
        if !has_column(tx, table, column)? {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
            tracing::info!(table, column, "state database column added");
        }
    }
    Ok(())
}

fn workspace_id(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("ALTER TABLE scope_settings ADD COLUMN workspace_id TEXT")
}

fn during_run(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("ALTER TABLE scope_settings ADD COLUMN during_run TEXT")
}

fn has_column(c: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut st = c.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names.iter().any(|n| n == column))
}

pub(crate) fn user_version(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Refuse a database from a newer fcx.
pub(crate) fn check_not_newer(found: i64, path: &Path) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.display().to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Bring the database to [`SCHEMA_VERSION`]: every pending migration and
/// the new version commit together, or none does.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let open_err = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    let found = user_version(conn).map_err(open_err)?;
    check_not_newer(found, path)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    // Read again under the write lock: another opener may have migrated.
    let found = user_version(&tx).map_err(open_err)?;
    check_not_newer(found, path)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        (m.apply)(&tx).map_err(open_err)?;
        tracing::info!(
            version = m.version,
            what = m.what,
            "state database migrated"
        );
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(open_err)?;
    tx.commit().map_err(open_err)?;
    Ok(())
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
