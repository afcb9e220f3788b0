//! Run history: one row per run, from the claim of its messages to its end
//! state and token totals.

use rusqlite::params;

use crate::{Result, Store};

/// A run as the worker records it when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// The run's short id (`r…`).
    pub run_id: String,
    /// The scope it runs for.
    pub scope: String,
    /// The message the answer replies to.
    pub reply_to: String,
    /// The Codex thread, once known.
    pub thread_id: Option<String>,
    /// `running` until it ends; then its end state (`completed`,
    /// `interrupted`, …).
    pub state: String,
    /// Start time (worker clock, ms since the epoch).
    pub started_at_ms: i64,
    /// The Codex child's pid, once spawned.
    pub child_pid: Option<u32>,
    /// The child's start time, to tell a reused pid from the child.
    pub child_start_time: Option<u64>,
    /// Realpath of the workspace it runs in.
    pub workspace: String,
}

/// Token figures of a run, or a thread's cumulative ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// Input tokens served from the cache.
    pub cached_input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_output_tokens: u64,
}

/// Run history: what ran, its child process, how it ended, and the runs a crash left
/// behind. Borrowed from [`Store::runs`].
pub struct Runs<'a>(pub(crate) &'a Store);

impl Runs<'_> {
    /// Record a run start and claim its messages, atomically: after this, a
    /// crash reports the run as interrupted rather than running it again.
    pub fn start_run(&self, run: &RunRow, message_count: u32, inbox_ids: &[i64]) -> Result<()> {
        self.0.with(|c| {
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
                    // A message queued again after an interrupted run keeps
                    // that mark while it runs: it is not queued a third time.
                    "UPDATE inbox SET state = CASE state WHEN 'requeued' THEN 'rerunning' ELSE 'running' END,
                     run_id = ?1 WHERE id = ?2",
                    params![run.run_id, id],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// A message added to `run_id`'s running turn (steered into it): it is
    /// that run's from now on, and a crash reports it with the run instead
    /// of running it again on its own.
    pub fn steer_into_run(&self, run_id: &str, inbox_id: i64) -> Result<()> {
        self.0.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE inbox SET state = 'running', run_id = ?1 WHERE id = ?2",
                params![run_id, inbox_id],
            )?;
            tx.execute(
                "UPDATE runs SET message_count = message_count + 1 WHERE run_id = ?1",
                params![run_id],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Record the run's Codex child, so a restarted worker can find it.
    pub fn set_run_child(&self, run_id: &str, pid: u32, start_time: Option<u64>) -> Result<()> {
        self.0.with(|c| {
            c.execute(
                "UPDATE runs SET child_pid = ?1, child_start_time = ?2 WHERE run_id = ?3",
                params![pid, start_time.map(|v| v as i64), run_id],
            )?;
            Ok(())
        })
    }

    /// Record the Codex thread the run turned out to use.
    pub fn set_run_thread(&self, run_id: &str, thread_id: &str) -> Result<()> {
        self.0.with(|c| {
            c.execute(
                "UPDATE runs SET thread_id = ?1 WHERE run_id = ?2",
                params![thread_id, run_id],
            )?;
            Ok(())
        })
    }

    /// End a run in `state` and mark its messages done, atomically.
    pub fn finish_run(
        &self,
        run_id: &str,
        state: &str,
        detail: &str,
        totals: RunTotals,
        ended_at_ms: i64,
    ) -> Result<()> {
        self.0.with(|c| {
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

    /// End a run a previous worker left `running` as interrupted. Its
    /// messages are queued again to run once more, unless they were already
    /// such a retry (then they are done). Returns how many were queued
    /// again; the run's detail is `retry_detail` if any, else `detail`.
    pub fn interrupt_orphan(
        &self,
        run_id: &str,
        detail: &str,
        retry_detail: &str,
        ended_at_ms: i64,
    ) -> Result<usize> {
        self.0.with(|c| {
            let tx = c.transaction()?;
            let requeued = tx.execute(
                "UPDATE inbox SET state = 'requeued' WHERE run_id = ?1 AND state = 'running' AND kind = 'message'",
                params![run_id],
            )?;
            tx.execute(
                "UPDATE runs SET state = 'interrupted', detail = ?1, ended_at_ms = ?2 WHERE run_id = ?3",
                params![
                    if requeued > 0 { retry_detail } else { detail },
                    ended_at_ms,
                    run_id
                ],
            )?;
            tx.execute(
                "UPDATE inbox SET state = 'done' WHERE run_id = ?1 AND state != 'requeued'",
                params![run_id],
            )?;
            tx.commit()?;
            Ok(requeued)
        })
    }

    /// Runs a previous worker left in `running`: it died with them in flight.
    pub fn orphaned_runs(&self) -> Result<Vec<RunRow>> {
        self.0.with(|c| {
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
}

#[cfg(test)]
#[path = "runs_tests.rs"]
mod tests;
