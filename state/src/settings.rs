//! What operators and chat members chose: per-scope settings, workspace
//! aliases, access-list changes made from chat, and a small key-value table.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

/// Per-scope choices that override the profile defaults. `None` everywhere
/// means "the profile's default", so a changed config.toml still reaches
/// every scope that never chose otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSettings {
    /// Realpath of the scope's current workspace.
    pub workspace: Option<String>,
    /// `device:inode` of `workspace` when it was chosen: a run refuses a
    /// workspace whose realpath or identity changed since.
    pub workspace_id: Option<String>,
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
    /// `steer` | `queue` | `interrupt`: what a message arriving while the
    /// scope's run is active does.
    pub during_run: Option<String>,
}

/// An access-list change made from chat: `config ∪ added − removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessOp {
    /// The subject was added to the list.
    Add,
    /// The subject was removed from the list.
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

/// Per-scope settings, workspace aliases, access-list changes and the key-value table.
/// Borrowed from [`Store::settings`].
pub struct Settings<'a>(pub(crate) &'a Store);

impl Settings<'_> {
    /// The scope's own choices (all `None` when it made none).
    pub fn scope_settings(&self, scope: &str) -> Result<ScopeSettings> {
        self.0.with(|c| {
            Ok(c.query_row(
                "SELECT workspace, access, timeout_secs, reply_mode, tool_display, require_mention,
                   workspace_id, during_run
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
                        workspace_id: r.get(6)?,
                        during_run: r.get(7)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
        })
    }

    /// Replace the scope's choices with `s`.
    pub fn set_scope_settings(&self, scope: &str, s: &ScopeSettings, now_ms: i64) -> Result<()> {
        self.0.with(|c| {
            c.execute(
                "INSERT INTO scope_settings (scope, workspace, access, timeout_secs, reply_mode,
                   tool_display, require_mention, updated_at_ms, workspace_id, during_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(scope) DO UPDATE SET workspace = excluded.workspace,
                   access = excluded.access, timeout_secs = excluded.timeout_secs,
                   reply_mode = excluded.reply_mode, tool_display = excluded.tool_display,
                   require_mention = excluded.require_mention,
                   workspace_id = excluded.workspace_id,
                   during_run = excluded.during_run,
                   updated_at_ms = excluded.updated_at_ms",
                params![
                    scope,
                    s.workspace,
                    s.access,
                    s.timeout_secs.map(|v| v as i64),
                    s.reply_mode,
                    s.tool_display,
                    s.require_mention.map(i64::from),
                    now_ms,
                    s.workspace_id,
                    s.during_run
                ],
            )?;
            Ok(())
        })
    }

    /// Every group's own mention choice: (`chat:<chat_id>` scope, required).
    pub fn mention_overrides(&self) -> Result<Vec<(String, bool)>> {
        self.0.with(|c| {
            let mut st = c.prepare(
                "SELECT scope, require_mention FROM scope_settings WHERE require_mention IS NOT NULL",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    /// Every workspace alias: (name, path), by name.
    pub fn aliases(&self) -> Result<Vec<(String, String)>> {
        self.0.with(|c| {
            let mut st = c.prepare("SELECT name, path FROM aliases ORDER BY name")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    /// The path of alias `name`.
    pub fn alias(&self, name: &str) -> Result<Option<String>> {
        self.0.with(|c| {
            Ok(c.query_row(
                "SELECT path FROM aliases WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Create or repoint alias `name`.
    pub fn set_alias(&self, name: &str, path: &str, by: &str, now_ms: i64) -> Result<()> {
        self.0.with(|c| {
            c.execute(
                "INSERT INTO aliases (name, path, created_by, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET path = excluded.path,
                   created_by = excluded.created_by, updated_at_ms = excluded.updated_at_ms",
                params![name, path, by, now_ms],
            )?;
            Ok(())
        })
    }

    /// Remove alias `name`; `true` when it existed.
    pub fn remove_alias(&self, name: &str) -> Result<bool> {
        self.0
            .with(|c| Ok(c.execute("DELETE FROM aliases WHERE name = ?1", params![name])? > 0))
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
        self.0.with(|c| {
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
        self.0.with(|c| {
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

    /// The value stored under `key`.
    pub fn kv(&self, key: &str) -> Result<Option<String>> {
        self.0.with(|c| {
            Ok(
                c.query_row("SELECT value FROM kv WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
    }

    /// Store `value` under `key`.
    pub fn set_kv(&self, key: &str, value: &str) -> Result<()> {
        self.0.with(|c| {
            c.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }
}
