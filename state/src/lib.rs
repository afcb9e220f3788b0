//! Durable state, one writer per profile (this worker): the inbox journal with
//! de-duplication, the event log the gateway resumes from, run history and
//! the per-scope session (Codex thread) table.
//!
//! SQLite in WAL mode with `synchronous = NORMAL`: a commit survives a kill -9
//! of the worker at any moment (the WAL is in the OS before `COMMIT` returns);
//! an operating-system crash may lose the last few commits. That trade keeps a
//! `Deliver` round trip well under a millisecond, where `FULL` would cost an
//! fsync per message.

use std::path::Path;
use std::sync::Mutex;

use fcx_proto::v1::{Inbound, WorkerEvent};
use prost::Message;
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state database holds an undecodable record: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("state database lock poisoned")]
    Poisoned,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How an accepted inbox row is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind {
    /// A message for Codex: queued, then run exactly once.
    Message,
    /// A command: answered at once; recorded only for de-duplication.
    Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub inbox_id: i64,
    pub duplicate: bool,
}

#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub inbox_id: i64,
    pub scope: String,
    pub inbound: Inbound,
    pub accepted_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub run_id: String,
    pub scope: String,
    pub reply_to: String,
    pub thread_id: Option<String>,
    pub state: String,
    pub started_at_ms: i64,
    pub child_pid: Option<u32>,
    pub child_start_time: Option<u64>,
    pub workspace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRow {
    pub scope: String,
    pub thread_id: String,
    pub cwd: String,
    pub fingerprint: String,
    /// The thread's cumulative usage after its last run (Codex reports
    /// thread totals; the next run's figures are the difference).
    pub usage: RunTotals,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_output_tokens: u64,
}

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = r#"
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
-- reply_mode, tool_display and require_mention are added by migrate().
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

/// Bounds of the session catalog: older entries beyond them are pruned.
pub const CATALOG_PER_SCOPE: usize = 20;
pub const CATALOG_PER_PROFILE: usize = 5000;

/// One resumable Codex thread, keyed by scope + cwd realpath + fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub scope: String,
    pub thread_id: String,
    pub cwd: String,
    pub fingerprint: String,
    pub title: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub archived: bool,
}

/// Per-scope choices that override the profile defaults. `None` everywhere
/// means "the profile's default", so a changed config.toml still reaches
/// every scope that never chose otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSettings {
    /// Realpath of the scope's current workspace.
    pub workspace: Option<String>,
    /// Access mode (`read-only` | `workspace` | `full`).
    pub access: Option<String>,
    /// Idle timeout in seconds; `Some(0)` = off.
    pub timeout_secs: Option<u64>,
    /// `card` | `markdown` | `text`.
    pub reply_mode: Option<String>,
    /// `full` | `summary` | `off`.
    pub tool_display: Option<String>,
    /// Whether group members must mention the bot. Kept on the group's
    /// `chat:<chat_id>` row, so every topic of a topic group shares it.
    pub require_mention: Option<bool>,
}

/// An access-list change made from chat: `config ∪ added − removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessOp {
    Add,
    Remove,
}

impl AccessOp {
    fn as_str(self) -> &'static str {
        match self {
            AccessOp::Add => "add",
            AccessOp::Remove => "remove",
        }
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "busy_timeout", 5000)
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        migrate(&conn).map_err(open_err)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// Read-only access for tools (`fcxctl`) that must not disturb the worker.
    pub fn open_read_only(path: &Path) -> Result<Connection> {
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
            |source| StoreError::Open {
                path: path.display().to_string(),
                source,
            },
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut c)
    }

    /// Commit an inbound message to the journal. Returns the existing row with
    /// `duplicate = true` when the event id was accepted before.
    pub fn accept(&self, inbound: &Inbound, kind: InboxKind, now_ms: i64) -> Result<Accepted> {
        let payload = inbound.encode_to_vec();
        let (kind_s, state) = match kind {
            InboxKind::Message => ("message", "queued"),
            InboxKind::Command => ("command", "done"),
        };
        // Every inbound message passes here: cached statements skip the
        // SQL parse, and a fresh row's id comes from the insert itself (the
        // connection is behind our mutex, so no other insert can interleave).
        self.with(|c| {
            let n = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO inbox (event_id, scope, kind, state, payload, accepted_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    inbound.event_id,
                    inbound.scope,
                    kind_s,
                    state,
                    payload,
                    now_ms
                ])?;
            let id: i64 = if n == 1 {
                c.last_insert_rowid()
            } else {
                c.prepare_cached("SELECT id FROM inbox WHERE event_id = ?1")?
                    .query_row(params![inbound.event_id], |r| r.get(0))?
            };
            Ok(Accepted {
                inbox_id: id,
                duplicate: n == 0,
            })
        })
    }

    /// Messages accepted but not yet started, oldest first.
    pub fn queued(&self) -> Result<Vec<QueuedMessage>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, scope, payload, accepted_at_ms FROM inbox
                 WHERE state = 'queued' ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (inbox_id, scope, payload, accepted_at_ms) = row?;
                match Inbound::decode(payload.as_slice()) {
                    Ok(inbound) => out.push(QueuedMessage {
                        inbox_id,
                        scope,
                        inbound,
                        accepted_at_ms,
                    }),
                    Err(e) => {
                        // Never let one bad row block the queue; say so and
                        // retire it.
                        tracing::error!(inbox_id, error = %e, "undecodable inbox row retired");
                        c.execute(
                            "UPDATE inbox SET state = 'corrupt' WHERE id = ?1",
                            params![inbox_id],
                        )?;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Record a run start and claim its messages, atomically: after this, a
    /// crash reports the run as interrupted rather than running it again.
    pub fn start_run(&self, run: &RunRow, message_count: u32, inbox_ids: &[i64]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO runs (run_id, scope, reply_to, thread_id, state, workspace, started_at_ms, message_count)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7)",
                params![
                    run.run_id,
                    run.scope,
                    run.reply_to,
                    run.thread_id,
                    run.workspace,
                    run.started_at_ms,
                    message_count
                ],
            )?;
            for id in inbox_ids {
                tx.execute(
                    "UPDATE inbox SET state = 'running', run_id = ?1 WHERE id = ?2",
                    params![run.run_id, id],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    pub fn set_run_child(&self, run_id: &str, pid: u32, start_time: Option<u64>) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET child_pid = ?1, child_start_time = ?2 WHERE run_id = ?3",
                params![pid, start_time.map(|v| v as i64), run_id],
            )?;
            Ok(())
        })
    }

    pub fn set_run_thread(&self, run_id: &str, thread_id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET thread_id = ?1 WHERE run_id = ?2",
                params![thread_id, run_id],
            )?;
            Ok(())
        })
    }

    pub fn finish_run(
        &self,
        run_id: &str,
        state: &str,
        detail: &str,
        totals: RunTotals,
        ended_at_ms: i64,
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE runs SET state = ?1, detail = ?2, ended_at_ms = ?3, input_tokens = ?4,
                 cached_tokens = ?5, output_tokens = ?6, reasoning_tokens = ?7 WHERE run_id = ?8",
                params![
                    state,
                    detail,
                    ended_at_ms,
                    totals.input_tokens as i64,
                    totals.cached_input_tokens as i64,
                    totals.output_tokens as i64,
                    totals.reasoning_output_tokens as i64,
                    run_id
                ],
            )?;
            tx.execute(
                "UPDATE inbox SET state = 'done' WHERE run_id = ?1",
                params![run_id],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Runs a previous worker left in `running`: it died with them in flight.
    pub fn orphaned_runs(&self) -> Result<Vec<RunRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT run_id, scope, reply_to, thread_id, state, started_at_ms, child_pid,
                        child_start_time, workspace
                 FROM runs WHERE state = 'running' ORDER BY started_at_ms",
            )?;
            let rows = st.query_map([], |r| {
                Ok(RunRow {
                    run_id: r.get(0)?,
                    scope: r.get(1)?,
                    reply_to: r.get(2)?,
                    thread_id: r.get(3)?,
                    state: r.get(4)?,
                    started_at_ms: r.get(5)?,
                    child_pid: r.get::<_, Option<i64>>(6)?.map(|v| v as u32),
                    child_start_time: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                    workspace: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    /// Append an event (its `seq` is assigned here) and return the seq.
    pub fn append_event(&self, ev: &WorkerEvent) -> Result<u64> {
        let payload = ev.encode_to_vec();
        self.with(|c| {
            c.execute(
                "INSERT INTO events (scope, at_ms, payload) VALUES (?1, ?2, ?3)",
                params![ev.scope, ev.at_ms, payload],
            )?;
            Ok(c.last_insert_rowid() as u64)
        })
    }

    /// Events with `seq >= from`, at most `limit`, in order.
    pub fn events_from(&self, from: u64, limit: usize) -> Result<Vec<WorkerEvent>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, payload FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![from as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, payload) = row?;
                let mut ev = WorkerEvent::decode(payload.as_slice())?;
                ev.seq = seq as u64;
                out.push(ev);
            }
            Ok(out)
        })
    }

    pub fn last_seq(&self) -> Result<u64> {
        self.with(|c| {
            // sqlite_sequence survives pruning, so seq never goes backwards.
            let v: Option<i64> = c
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.unwrap_or(0) as u64)
        })
    }

    /// Keep the newest `keep` events; the gateway is never that far behind.
    pub fn prune_events(&self, keep: u64) -> Result<usize> {
        let last = self.last_seq()?;
        if last <= keep {
            return Ok(0);
        }
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM events WHERE seq <= ?1",
                params![(last - keep) as i64],
            )?)
        })
    }

    /// Forget finished inbox rows older than `before_ms` (de-duplication
    /// window) and keep the table bounded.
    pub fn prune_inbox(&self, before_ms: i64) -> Result<usize> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM inbox WHERE state IN ('done', 'corrupt') AND accepted_at_ms < ?1",
                params![before_ms],
            )?)
        })
    }

    pub fn session(&self, scope: &str) -> Result<Option<SessionRow>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT scope, thread_id, cwd, fingerprint, cum_input, cum_cached, cum_output,
                        cum_reasoning FROM sessions WHERE scope = ?1",
                params![scope],
                |r| {
                    Ok(SessionRow {
                        scope: r.get(0)?,
                        thread_id: r.get(1)?,
                        cwd: r.get(2)?,
                        fingerprint: r.get(3)?,
                        usage: RunTotals {
                            input_tokens: r.get::<_, i64>(4)? as u64,
                            cached_input_tokens: r.get::<_, i64>(5)? as u64,
                            output_tokens: r.get::<_, i64>(6)? as u64,
                            reasoning_output_tokens: r.get::<_, i64>(7)? as u64,
                        },
                    })
                },
            )
            .optional()?)
        })
    }

    pub fn set_session(&self, s: &SessionRow, now_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (scope, thread_id, cwd, fingerprint, cum_input, cum_cached,
                   cum_output, cum_reasoning, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(scope) DO UPDATE SET thread_id = excluded.thread_id, cwd = excluded.cwd,
                   fingerprint = excluded.fingerprint, cum_input = excluded.cum_input,
                   cum_cached = excluded.cum_cached, cum_output = excluded.cum_output,
                   cum_reasoning = excluded.cum_reasoning, updated_at_ms = excluded.updated_at_ms",
                params![
                    s.scope,
                    s.thread_id,
                    s.cwd,
                    s.fingerprint,
                    s.usage.input_tokens as i64,
                    s.usage.cached_input_tokens as i64,
                    s.usage.output_tokens as i64,
                    s.usage.reasoning_output_tokens as i64,
                    now_ms
                ],
            )?;
            Ok(())
        })
    }

    pub fn clear_session(&self, scope: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM sessions WHERE scope = ?1", params![scope])? > 0))
    }

    /// Record (or refresh) a thread in the catalog. The title is kept from
    /// the first time the thread was seen.
    pub fn catalog_touch(&self, s: &SessionRow, title: &str, now_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO session_catalog (scope, thread_id, cwd, fingerprint, title, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT(scope, thread_id) DO UPDATE SET cwd = excluded.cwd,
                   fingerprint = excluded.fingerprint, updated_at_ms = excluded.updated_at_ms,
                   archived = 0",
                params![s.scope, s.thread_id, s.cwd, s.fingerprint, title, now_ms],
            )?;
            Ok(())
        })
    }

    /// Catalog entries of `scope`, newest first; only those matching `cwd`
    /// and `fingerprint` when given.
    pub fn catalog(
        &self,
        scope: Option<&str>,
        key: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<CatalogEntry>> {
        self.with(|c| catalog_query(c, scope, key, limit))
    }

    pub fn catalog_entry(&self, scope: &str, thread_id: &str) -> Result<Option<CatalogEntry>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("{CATALOG_SELECT} WHERE scope = ?1 AND thread_id = ?2"),
                params![scope, thread_id],
                catalog_row,
            )
            .optional()?)
        })
    }

    /// Archive the scope's entries that no longer match its policy: they can
    /// never be resumed, and are pruned first.
    pub fn catalog_archive_incompatible(
        &self,
        scope: &str,
        cwd: &str,
        fingerprint: &str,
    ) -> Result<usize> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE session_catalog SET archived = 1
                 WHERE scope = ?1 AND archived = 0 AND (cwd != ?2 OR fingerprint != ?3)",
                params![scope, cwd, fingerprint],
            )?)
        })
    }

    /// Keep the catalog bounded: archived entries go first, then the oldest
    /// beyond `per_scope` in a scope and `per_profile` overall.
    pub fn catalog_prune(&self, per_scope: usize, per_profile: usize) -> Result<usize> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut n = tx.execute(
                "DELETE FROM session_catalog WHERE archived = 1 AND rowid NOT IN (
                   SELECT rowid FROM session_catalog WHERE archived = 1
                   ORDER BY updated_at_ms DESC LIMIT ?1)",
                params![per_scope as i64],
            )?;
            n += tx.execute(
                "DELETE FROM session_catalog WHERE rowid IN (
                   SELECT rowid FROM (
                     SELECT rowid, ROW_NUMBER() OVER (PARTITION BY scope ORDER BY updated_at_ms DESC) AS rn
                     FROM session_catalog) WHERE rn > ?1)",
                params![per_scope as i64],
            )?;
            n += tx.execute(
                "DELETE FROM session_catalog WHERE rowid NOT IN (
                   SELECT rowid FROM session_catalog ORDER BY updated_at_ms DESC LIMIT ?1)",
                params![per_profile as i64],
            )?;
            tx.commit()?;
            Ok(n)
        })
    }

    pub fn scope_settings(&self, scope: &str) -> Result<ScopeSettings> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT workspace, access, timeout_secs, reply_mode, tool_display, require_mention
                 FROM scope_settings WHERE scope = ?1",
                params![scope],
                |r| {
                    Ok(ScopeSettings {
                        workspace: r.get(0)?,
                        access: r.get(1)?,
                        timeout_secs: r.get::<_, Option<i64>>(2)?.map(|v| v.max(0) as u64),
                        reply_mode: r.get(3)?,
                        tool_display: r.get(4)?,
                        require_mention: r.get::<_, Option<i64>>(5)?.map(|v| v != 0),
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
        })
    }

    pub fn set_scope_settings(&self, scope: &str, s: &ScopeSettings, now_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO scope_settings (scope, workspace, access, timeout_secs, reply_mode,
                   tool_display, require_mention, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(scope) DO UPDATE SET workspace = excluded.workspace,
                   access = excluded.access, timeout_secs = excluded.timeout_secs,
                   reply_mode = excluded.reply_mode, tool_display = excluded.tool_display,
                   require_mention = excluded.require_mention,
                   updated_at_ms = excluded.updated_at_ms",
                params![
                    scope,
                    s.workspace,
                    s.access,
                    s.timeout_secs.map(|v| v as i64),
                    s.reply_mode,
                    s.tool_display,
                    s.require_mention.map(i64::from),
                    now_ms
                ],
            )?;
            Ok(())
        })
    }

    /// Every group's own mention choice: (`chat:<chat_id>` scope, required).
    pub fn mention_overrides(&self) -> Result<Vec<(String, bool)>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT scope, require_mention FROM scope_settings WHERE require_mention IS NOT NULL",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    /// The chat type of the newest message journaled in `scope`, for
    /// actions (card clicks) that carry none. `None` once the journal has
    /// been pruned past the scope's last message.
    pub fn last_chat_type(&self, scope: &str) -> Result<Option<i32>> {
        self.with(|c| {
            let payload: Option<Vec<u8>> = c
                .query_row(
                    "SELECT payload FROM inbox WHERE scope = ?1 ORDER BY id DESC LIMIT 1",
                    params![scope],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(match payload {
                Some(p) => Some(Inbound::decode(p.as_slice())?.chat_type),
                None => None,
            })
        })
    }

    pub fn aliases(&self) -> Result<Vec<(String, String)>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT name, path FROM aliases ORDER BY name")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    pub fn alias(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT path FROM aliases WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    pub fn set_alias(&self, name: &str, path: &str, by: &str, now_ms: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO aliases (name, path, created_by, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET path = excluded.path,
                   created_by = excluded.created_by, updated_at_ms = excluded.updated_at_ms",
                params![name, path, by, now_ms],
            )?;
            Ok(())
        })
    }

    pub fn remove_alias(&self, name: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM aliases WHERE name = ?1", params![name])? > 0))
    }

    /// Record an access-list change; the latest change per subject wins.
    pub fn access_change(
        &self,
        list: &str,
        subject: &str,
        op: AccessOp,
        by: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO access_changes (list, subject, op, by_actor, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(list, subject) DO UPDATE SET op = excluded.op,
                   by_actor = excluded.by_actor, at_ms = excluded.at_ms",
                params![list, subject, op.as_str(), by, now_ms],
            )?;
            Ok(())
        })
    }

    /// Every recorded change: (list, subject, op).
    pub fn access_changes(&self) -> Result<Vec<(String, String, AccessOp)>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT list, subject, op FROM access_changes")?;
            let rows = st.query_map([], |r| {
                let op: String = r.get(2)?;
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    if op == "remove" {
                        AccessOp::Remove
                    } else {
                        AccessOp::Add
                    },
                ))
            })?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    pub fn kv(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT value FROM kv WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
    }

    pub fn set_kv(&self, key: &str, value: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }
}

/// Columns added after the first release, as (table, column, type). A
/// database from an older worker gains them on open; `CREATE TABLE IF NOT
/// EXISTS` alone would leave its tables as they were.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("scope_settings", "reply_mode", "TEXT"),
    ("scope_settings", "tool_display", "TEXT"),
    ("scope_settings", "require_mention", "INTEGER"),
];

fn migrate(c: &Connection) -> rusqlite::Result<()> {
    for (table, column, ty) in ADDED_COLUMNS {
        let mut st = c.prepare(&format!("PRAGMA table_info({table})"))?;
        let present = st
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .iter()
            .any(|n| n == column);
        if !present {
            c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
            tracing::info!(table, column, "state database migrated");
        }
    }
    Ok(())
}

const CATALOG_SELECT: &str = "SELECT scope, thread_id, cwd, fingerprint, title, created_at_ms, updated_at_ms, archived FROM session_catalog";

fn catalog_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogEntry> {
    Ok(CatalogEntry {
        scope: r.get(0)?,
        thread_id: r.get(1)?,
        cwd: r.get(2)?,
        fingerprint: r.get(3)?,
        title: r.get(4)?,
        created_at_ms: r.get(5)?,
        updated_at_ms: r.get(6)?,
        archived: r.get::<_, i64>(7)? != 0,
    })
}

/// Shared by the worker and read-only tools (`fcxctl sessions list`).
pub fn catalog_query(
    c: &Connection,
    scope: Option<&str>,
    key: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<CatalogEntry>> {
    let mut sql = format!("{CATALOG_SELECT} WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if let Some(s) = scope {
        args.push(s.to_string());
        sql.push_str(&format!(" AND scope = ?{}", args.len()));
    }
    if let Some((cwd, fp)) = key {
        args.push(cwd.to_string());
        sql.push_str(&format!(" AND cwd = ?{} AND archived = 0", args.len()));
        args.push(fp.to_string());
        sql.push_str(&format!(" AND fingerprint = ?{}", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY updated_at_ms DESC LIMIT {}",
        limit.min(100_000)
    ));
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args.iter()), catalog_row)?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(id: &str, scope: &str) -> Inbound {
        Inbound {
            event_id: id.into(),
            scope: scope.into(),
            text: format!("text of {id}"),
            ..Default::default()
        }
    }

    #[test]
    fn accept_is_idempotent_and_survives_reopen() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("s/state.db");
        {
            let s = Store::open(&p).expect("open");
            let a = s
                .accept(&inbound("e1", "chat:a"), InboxKind::Message, 1)
                .expect("accept");
            assert!(!a.duplicate);
            let b = s
                .accept(&inbound("e1", "chat:a"), InboxKind::Message, 2)
                .expect("accept again");
            assert!(b.duplicate);
            assert_eq!(a.inbox_id, b.inbox_id);
        }
        let s = Store::open(&p).expect("reopen");
        let q = s.queued().expect("queued");
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].inbound.text, "text of e1");
        assert!(
            s.accept(&inbound("e1", "chat:a"), InboxKind::Message, 3)
                .expect("dup after reopen")
                .duplicate
        );
    }

    #[test]
    fn started_runs_are_not_requeued_and_show_as_orphaned() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("state.db")).expect("open");
        let a = s
            .accept(&inbound("e1", "chat:a"), InboxKind::Message, 1)
            .expect("accept");
        s.accept(&inbound("e2", "chat:a"), InboxKind::Message, 1)
            .expect("accept");
        let run = RunRow {
            run_id: "r1".into(),
            scope: "chat:a".into(),
            reply_to: "m1".into(),
            thread_id: None,
            state: "running".into(),
            started_at_ms: 5,
            child_pid: None,
            child_start_time: None,
            workspace: "/w".into(),
        };
        s.start_run(&run, 1, &[a.inbox_id]).expect("start");
        let q = s.queued().expect("queued");
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].inbound.event_id, "e2");
        let o = s.orphaned_runs().expect("orphans");
        assert_eq!(o.len(), 1);
        s.finish_run(
            "r1",
            "interrupted",
            "worker restarted",
            RunTotals::default(),
            9,
        )
        .expect("finish");
        assert!(s.orphaned_runs().expect("orphans").is_empty());
    }

    #[test]
    fn event_seq_is_monotonic_across_pruning() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("state.db")).expect("open");
        for i in 0..10 {
            let seq = s
                .append_event(&WorkerEvent {
                    scope: "chat:a".into(),
                    at_ms: i,
                    ..Default::default()
                })
                .expect("append");
            assert_eq!(seq, (i + 1) as u64);
        }
        s.prune_events(3).expect("prune");
        let evs = s.events_from(0, 100).expect("read");
        assert_eq!(
            evs.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        assert_eq!(s.last_seq().expect("last"), 10);
        let seq = s
            .append_event(&WorkerEvent::default())
            .expect("append after prune");
        assert_eq!(seq, 11);
    }

    #[test]
    fn an_old_database_gains_the_settings_columns_and_keeps_its_rows() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("state.db");
        {
            // The table as the first release created it.
            let c = Connection::open(&p).expect("open");
            c.execute_batch(
                "CREATE TABLE scope_settings (scope TEXT PRIMARY KEY, workspace TEXT,
                   access TEXT, timeout_secs INTEGER, updated_at_ms INTEGER NOT NULL);
                 INSERT INTO scope_settings VALUES ('chat:a', '/w', 'read-only', 300, 1);",
            )
            .expect("old schema");
        }
        let s = Store::open(&p).expect("open migrates");
        let got = s.scope_settings("chat:a").expect("read");
        assert_eq!(
            got,
            ScopeSettings {
                workspace: Some("/w".into()),
                access: Some("read-only".into()),
                timeout_secs: Some(300),
                ..Default::default()
            }
        );
        let mut changed = got.clone();
        changed.reply_mode = Some("text".into());
        changed.tool_display = Some("summary".into());
        changed.require_mention = Some(false);
        s.set_scope_settings("chat:a", &changed, 2).expect("write");
        drop(s);
        // Opening again is a no-op for the migration and keeps the values.
        let s = Store::open(&p).expect("reopen");
        assert_eq!(s.scope_settings("chat:a").expect("read"), changed);
        assert_eq!(
            s.mention_overrides().expect("overrides"),
            vec![("chat:a".to_string(), false)]
        );
    }

    #[test]
    fn the_last_chat_type_of_a_scope_comes_from_its_newest_message() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("state.db")).expect("open");
        assert_eq!(s.last_chat_type("chat:g").expect("none"), None);
        let mut m = inbound("e1", "chat:g");
        m.chat_type = fcx_proto::v1::ChatType::Group as i32;
        s.accept(&m, InboxKind::Command, 1).expect("accept");
        s.accept(&inbound("e2", "chat:other"), InboxKind::Command, 2)
            .expect("accept");
        assert_eq!(
            s.last_chat_type("chat:g").expect("type"),
            Some(fcx_proto::v1::ChatType::Group as i32)
        );
    }
}
