//! The event log: every semantic event the worker emits, numbered by `seq`,
//! which the gateway resumes from after a restart.

use fcx_proto::v1::WorkerEvent;
use prost::Message;
use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

/// The event log the gateway resumes from. Borrowed from [`Store::events`].
pub struct EventLog<'a>(pub(crate) &'a Store);

impl EventLog<'_> {
    /// Append an event (its `seq` is assigned here) and return the seq.
    pub fn append_event(&self, ev: &WorkerEvent) -> Result<u64> {
        let payload = ev.encode_to_vec();
        self.0.with(|c| {
            c.execute(
                "INSERT INTO events (scope, at_ms, payload) VALUES (?1, ?2, ?3)",
                params![ev.scope, ev.at_ms, payload],
            )?;
            Ok(c.last_insert_rowid() as u64)
        })
    }

    /// Events with `seq >= from`, at most `limit`, in order.
    pub fn events_from(&self, from: u64, limit: usize) -> Result<Vec<WorkerEvent>> {
        self.0.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, payload FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![from as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, payload) = row?;
                // One undecodable row must not stop every later event from
                // reaching the gateway: it is skipped, and said so.
                let mut ev = match WorkerEvent::decode(payload.as_slice()) {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::error!(seq, error = %e, "skipping an undecodable event row");
                        continue;
                    }
                };
                ev.seq = seq as u64;
                out.push(ev);
            }
            Ok(out)
        })
    }

    /// The newest seq ever assigned (0 before the first event).
    pub fn last_seq(&self) -> Result<u64> {
        self.0.with(|c| {
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
        self.0.with(|c| {
            Ok(c.execute(
                "DELETE FROM events WHERE seq <= ?1",
                params![(last - keep) as i64],
            )?)
        })
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
