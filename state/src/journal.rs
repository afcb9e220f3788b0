//! The inbox journal: every accepted message and command, de-duplicated by
//! its platform event id; messages wait here (`queued`) until a run claims
//! them.

use fcx_proto::v1::Inbound;
use prost::Message;
use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

/// How an accepted inbox row is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind {
    /// A message for Codex: queued, then run exactly once.
    Message,
    /// A command: answered at once; recorded only for de-duplication.
    Command,
}

/// What [`Journal::accept`] did with an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The journal row (new, or the one accepted before).
    pub inbox_id: i64,
    /// The event id had been accepted before; nothing was written.
    pub duplicate: bool,
}

/// A message accepted but not yet claimed by a run.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Its journal row.
    pub inbox_id: i64,
    /// The scope it was sent in.
    pub scope: String,
    /// The message as the gateway delivered it.
    pub inbound: Inbound,
    /// When the worker accepted it (worker clock, ms since the epoch).
    pub accepted_at_ms: i64,
}

/// The inbox journal of one profile: accepted messages and commands, de-duplicated by event
/// id; messages wait here until a run claims them. Borrowed from [`Store::journal`].
pub struct Journal<'a>(pub(crate) &'a Store);

impl Journal<'_> {
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
        self.0.with(|c| {
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

    /// Messages accepted but not yet started (or queued again after an
    /// interrupted run), oldest first.
    pub fn queued(&self) -> Result<Vec<QueuedMessage>> {
        self.0.with(|c| {
            let mut st = c.prepare(
                "SELECT id, scope, payload, accepted_at_ms FROM inbox
                 WHERE state IN ('queued', 'requeued') ORDER BY id",
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

    /// Forget finished inbox rows older than `before_ms` (de-duplication
    /// window) and keep the table bounded.
    pub fn prune_inbox(&self, before_ms: i64) -> Result<usize> {
        self.0.with(|c| {
            Ok(c.execute(
                "DELETE FROM inbox WHERE state IN ('done', 'corrupt') AND accepted_at_ms < ?1",
                params![before_ms],
            )?)
        })
    }

    /// What the journal holds for `event_id`, if anything.
    pub fn journaled(&self, event_id: &str) -> Result<Option<Inbound>> {
        self.0.with(|c| {
            let payload: Option<Vec<u8>> = c
                .query_row(
                    "SELECT payload FROM inbox WHERE event_id = ?1",
                    params![event_id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(match payload {
                Some(p) => Some(Inbound::decode(p.as_slice())?),
                None => None,
            })
        })
    }

    /// The chat type of the newest message journaled in `scope`, for
    /// actions (card clicks) that carry none. `None` once the journal has
    /// been pruned past the scope's last message.
    pub fn last_chat_type(&self, scope: &str) -> Result<Option<i32>> {
        self.0.with(|c| {
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
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
