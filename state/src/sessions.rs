//! Sessions: the Codex thread each scope continues (`sessions`) and the
//! catalog of threads it could resume (`session_catalog`).

use rusqlite::{Connection, OptionalExtension, params};

use crate::runs::RunTotals;
use crate::{Result, Store};

/// Catalog entries kept per scope; older ones are pruned.
pub const CATALOG_PER_SCOPE: usize = 20;
/// Catalog entries kept per profile; older ones are pruned.
pub const CATALOG_PER_PROFILE: usize = 5000;

/// The thread a scope continues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRow {
    /// The scope.
    pub scope: String,
    /// The Codex thread id.
    pub thread_id: String,
    /// Realpath of the workspace the thread runs in.
    pub cwd: String,
    /// Fingerprint of the policy the thread was started under.
    pub fingerprint: String,
    /// The thread's cumulative usage after its last run (Codex reports
    /// thread totals; the next run's figures are the difference).
    pub usage: RunTotals,
}

/// One resumable Codex thread, keyed by scope + cwd realpath + fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The scope the thread belongs to.
    pub scope: String,
    /// The Codex thread id.
    pub thread_id: String,
    /// Realpath of its workspace.
    pub cwd: String,
    /// Fingerprint of the policy it was started under.
    pub fingerprint: String,
    /// Title, from the first message of the thread.
    pub title: String,
    /// First seen (ms since the epoch).
    pub created_at_ms: i64,
    /// Last used (ms since the epoch).
    pub updated_at_ms: i64,
    /// No longer resumable (its workspace or policy changed).
    pub archived: bool,
}

pub(crate) const CATALOG_COLUMNS: &str =
    "scope, thread_id, cwd, fingerprint, title, created_at_ms, updated_at_ms, archived";

/// Reads the [`CATALOG_COLUMNS`] of a row, in that order.
pub(crate) fn catalog_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogEntry> {
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

fn catalog_query(
    c: &Connection,
    scope: Option<&str>,
    key: Option<(&str, &str)>,
    limit: usize,
) -> Result<Vec<CatalogEntry>> {
    let mut sql = format!("SELECT {CATALOG_COLUMNS} FROM session_catalog WHERE 1 = 1");
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

/// Which Codex thread each scope continues, and the catalog of threads `/resume` offers.
/// Borrowed from [`Store::sessions`].
pub struct Sessions<'a>(pub(crate) &'a Store);

impl Sessions<'_> {
    /// The thread `scope` continues, if any.
    pub fn session(&self, scope: &str) -> Result<Option<SessionRow>> {
        self.0.with(|c| {
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

    /// Make `s` the thread its scope continues.
    pub fn set_session(&self, s: &SessionRow, now_ms: i64) -> Result<()> {
        self.0.with(|c| {
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

    /// Forget the thread `scope` continues; `true` when there was one.
    pub fn clear_session(&self, scope: &str) -> Result<bool> {
        self.0
            .with(|c| Ok(c.execute("DELETE FROM sessions WHERE scope = ?1", params![scope])? > 0))
    }

    /// Record (or refresh) a thread in the catalog. The title is kept from
    /// the first time the thread was seen.
    pub fn catalog_touch(&self, s: &SessionRow, title: &str, now_ms: i64) -> Result<()> {
        self.0.with(|c| {
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
        self.0.with(|c| catalog_query(c, scope, key, limit))
    }

    /// One catalog entry.
    pub fn catalog_entry(&self, scope: &str, thread_id: &str) -> Result<Option<CatalogEntry>> {
        self.0.with(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {CATALOG_COLUMNS} FROM session_catalog WHERE scope = ?1 AND thread_id = ?2"
                ),
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
        self.0.with(|c| {
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
        self.0.with(|c| {
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
}
