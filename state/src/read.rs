//! Read-only access for tools (`fcxctl`, tests, the bench): typed listings
//! of what the worker recorded, without taking its write lock and without
//! migrating. A database written before versioning is read as it is; tables
//! it does not have yet read as empty.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use crate::runs::RunTotals;
use crate::schema;
use crate::sessions::{CATALOG_COLUMNS, CatalogEntry, catalog_row};
use crate::{Result, StoreError};

/// A read-only connection to a profile's state database.
pub struct Reader {
    conn: Connection,
}

/// A catalog entry and whether its scope continues it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionListing {
    /// The catalog entry.
    pub entry: CatalogEntry,
    /// The scope's current thread is this one.
    pub current: bool,
}

/// One run as `fcxctl runs list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunListing {
    /// Position in the order the worker recorded run starts (ascending).
    pub recorded: i64,
    /// The run's id.
    pub run_id: String,
    /// The scope it ran for.
    pub scope: String,
    /// `running`, or its end state.
    pub state: String,
    /// The end state's detail (empty while running or when none was given).
    pub detail: String,
    /// Realpath of its workspace.
    pub workspace: String,
    /// The Codex thread, once known.
    pub thread_id: Option<String>,
    /// Start (ms since the epoch).
    pub started_at_ms: i64,
    /// End (ms since the epoch), once ended.
    pub ended_at_ms: Option<i64>,
    /// Messages it answered.
    pub message_count: u32,
    /// Its token figures.
    pub totals: RunTotals,
}

/// One inbox journal row, without its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRecord {
    /// The row id (accept order).
    pub id: i64,
    /// The platform event id it was de-duplicated by.
    pub event_id: String,
    /// The scope it was sent in.
    pub scope: String,
    /// `message` or `command`.
    pub kind: String,
    /// `queued`, `running`, `done` or `corrupt`.
    pub state: String,
    /// The run that claimed it.
    pub run_id: Option<String>,
    /// When the worker accepted it (ms since the epoch).
    pub accepted_at_ms: i64,
}

impl Reader {
    /// Open the database at `path` read-only. Fails when it does not exist,
    /// and with [`StoreError::NewerSchema`] when a newer fcx wrote it.
    pub fn open(path: &Path) -> Result<Self> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let found = schema::user_version(&conn).map_err(open_err)?;
        schema::check_not_newer(found, path)?;
        Ok(Reader { conn })
    }

    /// The database's schema version: [`SCHEMA_VERSION`](crate::SCHEMA_VERSION) once a worker of
    /// this build opened it, lower when only an older worker has.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(schema::user_version(&self.conn)?)
    }

    fn has_table(&self, name: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )? > 0)
    }

    /// Catalog entries, most recently used first, at most `limit`.
    pub fn sessions(&self, limit: usize) -> Result<Vec<SessionListing>> {
        if !self.has_table("session_catalog")? || !self.has_table("sessions")? {
            return Ok(Vec::new());
        }
        let columns = CATALOG_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut st = self.conn.prepare(&format!(
            "SELECT {columns}, s.thread_id IS NOT NULL
             FROM session_catalog c
             LEFT JOIN sessions s ON s.scope = c.scope AND s.thread_id = c.thread_id
             ORDER BY c.updated_at_ms DESC LIMIT ?1"
        ))?;
        let rows = st.query_map(params![limit.min(100_000) as i64], |r| {
            Ok(SessionListing {
                entry: catalog_row(r)?,
                current: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Runs, latest start first, at most `limit`.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunListing>> {
        if !self.has_table("runs")? {
            return Ok(Vec::new());
        }
        let mut st = self.conn.prepare(
            "SELECT rowid, run_id, scope, state, COALESCE(detail, ''), workspace, thread_id,
                    started_at_ms, ended_at_ms, message_count, input_tokens, cached_tokens,
                    output_tokens, reasoning_tokens
             FROM runs ORDER BY started_at_ms DESC, rowid DESC LIMIT ?1",
        )?;
        let rows = st.query_map(params![limit.min(100_000_000) as i64], |r| {
            Ok(RunListing {
                recorded: r.get(0)?,
                run_id: r.get(1)?,
                scope: r.get(2)?,
                state: r.get(3)?,
                detail: r.get(4)?,
                workspace: r.get(5)?,
                thread_id: r.get(6)?,
                started_at_ms: r.get(7)?,
                ended_at_ms: r.get(8)?,
                message_count: r.get::<_, i64>(9)?.max(0) as u32,
                totals: RunTotals {
                    input_tokens: r.get::<_, i64>(10)?.max(0) as u64,
                    cached_input_tokens: r.get::<_, i64>(11)?.max(0) as u64,
                    output_tokens: r.get::<_, i64>(12)?.max(0) as u64,
                    reasoning_output_tokens: r.get::<_, i64>(13)?.max(0) as u64,
                },
            })
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// The whole inbox journal, in accept order.
    pub fn journal(&self) -> Result<Vec<InboxRecord>> {
        if !self.has_table("inbox")? {
            return Ok(Vec::new());
        }
        let mut st = self.conn.prepare(
            "SELECT id, event_id, scope, kind, state, run_id, accepted_at_ms FROM inbox ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(InboxRecord {
                id: r.get(0)?,
                event_id: r.get(1)?,
                scope: r.get(2)?,
                kind: r.get(3)?,
                state: r.get(4)?,
                run_id: r.get(5)?,
                accepted_at_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// How many rows the inbox journal holds.
    pub fn journal_len(&self) -> Result<u64> {
        if !self.has_table("inbox")? {
            return Ok(0);
        }
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// SQLite's `PRAGMA quick_check`: `"ok"` for a sound database, else the
    /// problems it found.
    pub fn quick_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
