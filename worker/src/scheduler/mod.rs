//! Per-scope queues and the global run pool.
//!
//! - feedback at accept: each accepted message is announced at once
//!   ([`pb::Queued`], carrying the id of the run that will answer it), so a
//!   chat sees its card or reaction before the run starts;
//! - one active run per scope; a lone message starts at once (no quiet
//!   window unless `runs.debounce_ms` asks for one); messages that arrive
//!   while the scope's run is active, or while the run waits for a slot,
//!   are merged into one next run, which starts as soon as the scope is
//!   free, never behind a timer;
//! - a message that is only attachments (a screenshot) waits up to
//!   `runs.attachment_wait_ms` for the text that usually follows it, and
//!   runs with it;
//! - a global cap on concurrent runs, with scopes served in the order their
//!   oldest waiting message arrived (no scope can starve another);
//! - a message that arrives while its scope's run is active does what the
//!   scope's `during_run` says: `steer` adds it to the running turn (when
//!   the runner can; the exec runner cannot, and it queues, which the chat
//!   is told once), `queue` merges it into the next run, `interrupt` stops
//!   the run and the next one answers everything pending;
//! - `/stop`, `/new`, shutdown preempt;
//! - durable: a message is acknowledged only once committed; a run's
//!   messages are claimed in the same transaction that records the run, so a
//!   crash reports the run as interrupted instead of running it twice.
//!
//! What a run does is the executor's business ([`Execute`]): the scheduler
//! does not change when a runner does.

mod board;
mod queue;
mod steerer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fcx_proto::v1::{self as pb, Ack, Inbound};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::Ctx;
use fcx_config::DuringRun;

use crate::run::{Execute, RunJob, RunSlot, SteerAttempt, StopReason};
use crate::store::{InboxKind, QueuedMessage, RunRow, StoreError};
use crate::util::now_ms;
use board::Board;
use queue::Queues;
use steerer::Steerer;

/// Queue bound per scope and for the whole profile: past it, "busy".
const MAX_QUEUED_PER_SCOPE: usize = 50;
const MAX_QUEUED_TOTAL: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliverError {
    #[error("{0}")]
    Invalid(String),
    #[error("busy: {0}")]
    Busy(String),
    #[error("shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A snapshot for `Status`, `/ps` and `/doctor`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) active: Vec<pb::RunInfo>,
    pub(crate) queued: u64,
    pub(crate) started_at_ms: i64,
}

/// One scope as `/status` shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScopeView {
    /// The active run's id and start.
    pub(crate) active: Option<(String, i64)>,
    pub(crate) queued_here: usize,
    pub(crate) queued_all: usize,
}

pub(crate) struct Scheduler {
    ctx: Arc<Ctx>,
    exec: Arc<dyn Execute>,
    /// The queues, the schedule loop's wake-up and the announcements.
    board: Arc<Board>,
    /// Messages added to running turns.
    steerer: Arc<Steerer>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    started_at_ms: i64,
}

impl Scheduler {
    pub(crate) fn new(ctx: Arc<Ctx>, exec: Arc<dyn Execute>, shutdown: CancellationToken) -> Self {
        let board = Arc::new(Board::new(ctx.clone()));
        let tasks = TaskTracker::new();
        Scheduler {
            steerer: Arc::new(Steerer::new(ctx.clone(), board.clone(), tasks.clone())),
            ctx,
            exec,
            board,
            shutdown,
            tasks,
            started_at_ms: now_ms(),
        }
    }

    /// Queue what a previous worker accepted but never started (each runs
    /// exactly once), then start scheduling.
    pub(crate) fn start(self: &Arc<Self>, accepted: Vec<QueuedMessage>) {
        let n = accepted.len();
        {
            let mut q = self.board.lock();
            for m in accepted {
                // Already waited once; no second debounce.
                q.push(m, None);
            }
        }
        if n > 0 {
            tracing::info!(messages = n, "re-queued accepted messages after restart");
        }
        let me = self.clone();
        self.tasks.spawn(async move { me.schedule_loop().await });
    }

    /// Whether the worker is stopping: nothing new is accepted.
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Commit one message for Codex and queue it. Limits are checked under
    /// the lock that queues, so a refused message is never half-accepted.
    pub(crate) fn enqueue(self: &Arc<Self>, inbound: Inbound) -> Result<Ack, DeliverError> {
        // Read before taking the lock every Deliver waits on.
        let settings = self.ctx.settings(&inbound.scope);
        let reply_mode = crate::settings::reply_mode(&self.ctx.profile, &settings);
        let during_run = crate::settings::during_run(&self.ctx.profile, &settings);
        let mut q = self.board.lock();
        if q.draining {
            return Err(DeliverError::ShuttingDown);
        }
        let scope_len = q.waiting_in(&inbound.scope);
        if scope_len >= MAX_QUEUED_PER_SCOPE {
            return Err(DeliverError::Busy(format!(
                "this chat already has {scope_len} messages waiting; wait for the current run or /stop it"
            )));
        }
        if q.waiting() >= MAX_QUEUED_TOTAL {
            return Err(DeliverError::Busy(
                "fcx has too many messages waiting; try again in a moment".into(),
            ));
        }
        // One moment for the journal's accept time and the scheduler's
        // quiet window, read before the commit: the window counts from when
        // the message was accepted, as the journal (and the fairness count
        // read from it) says, not from whenever a slow commit returned.
        let (now, arrived) = (now_ms(), Instant::now());
        // Also for a duplicate: its download may not have finished before
        // fcxd went away (the store makes a second fetch cheap).
        let fetch_attachments = crate::media::downloadable(&inbound);
        let acc = self
            .ctx
            .store
            .journal()
            .accept(&inbound, InboxKind::Message, now)?;
        if !acc.duplicate {
            let scope = inbound.scope.clone();
            let message = QueuedMessage {
                inbox_id: acc.inbox_id,
                scope: scope.clone(),
                inbound,
                accepted_at_ms: now,
            };
            let mut interrupt = None;
            let mut no_steer = false;
            if let Some(active) = q.active(&scope).cloned() {
                match during_run {
                    // A member's text never joins a full-access turn: it
                    // waits for the next run, which its sender caps.
                    DuringRun::Steer
                        if active.steering.full_access()
                            && !self.steerer.owner_sent(&message.inbound) => {}
                    // Its files are downloaded after this accept: placed
                    // in the turn's workspace first, then steered with it.
                    DuringRun::Steer if crate::media::downloadable(&message.inbound) => {
                        if let Some(workspace) = active.steering.workspace() {
                            drop(q);
                            self.steerer
                                .steer_after_download(active, message, workspace, reply_mode);
                            return Ok(ack(&acc, fetch_attachments));
                        }
                        no_steer = active.steering.cannot_steer();
                    }
                    DuringRun::Steer => match active.steering.steer(&message.inbound, Vec::new()) {
                        SteerAttempt::Sent(answer) => {
                            drop(q);
                            self.steerer
                                .await_steer(active, message, answer, reply_mode);
                            return Ok(ack(&acc, fetch_attachments));
                        }
                        SteerAttempt::Unsupported => no_steer = true,
                        SteerAttempt::Closed => {}
                    },
                    DuringRun::Interrupt => interrupt = Some(active),
                    DuringRun::Queue => {}
                }
            }
            self.board
                .queue(&mut q, message, reply_mode, interrupt.is_some(), arrived);
            drop(q);
            if let Some(active) = interrupt {
                tracing::info!(scope, run_id = %active.run_id, "interrupting the run for a new message");
                active.stop(StopReason::Superseded);
            }
            if no_steer {
                self.steerer.tell_no_steer(&scope);
            }
            self.board.wake.notify_one();
        }
        Ok(ack(&acc, fetch_attachments))
    }

    /// Stop the active run of `scope` (only if it is `run_id`, when given).
    pub(crate) fn stop(&self, scope: &str, run_id: Option<&str>, why: StopReason) -> bool {
        if why == StopReason::NewSession {
            // A Codex child kept for the old session has no use left.
            self.exec.release(scope);
        }
        let q = self.board.lock();
        match q.active(scope) {
            Some(a) if run_id.is_none_or(|r| r == a.run_id) => {
                a.stop(why);
                true
            }
            _ => false,
        }
    }

    /// Run `work` as a task the scheduler owns: it ends with the worker
    /// (cancelled at shutdown, which waits for it).
    pub(crate) fn spawn_owned(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let stop = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = work => {}
                _ = stop.cancelled() => {}
            }
        });
    }

    /// The active run `run_id` of `scope`.
    pub(crate) fn slot(&self, scope: &str, run_id: &str) -> Option<Arc<RunSlot>> {
        self.board
            .lock()
            .active(scope)
            .filter(|a| a.run_id == run_id)
            .cloned()
    }

    /// The scope and run id of an active run named by run id or by scope.
    pub(crate) fn find_run(&self, target: &str) -> Option<(String, String)> {
        let q = self.board.lock();
        q.actives()
            .find(|(s, a)| a.run_id == target || s.as_str() == target)
            .map(|(s, a)| (s.clone(), a.run_id.clone()))
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let q = self.board.lock();
        Snapshot {
            active: q.actives().map(|(s, a)| a.info(s)).collect(),
            queued: q.waiting() as u64,
            started_at_ms: self.started_at_ms,
        }
    }

    pub(crate) fn scope_view(&self, scope: &str) -> ScopeView {
        let q = self.board.lock();
        ScopeView {
            active: q.active(scope).map(|a| (a.run_id.clone(), a.started_at_ms)),
            queued_here: q.waiting_in(scope),
            queued_all: q.waiting(),
        }
    }

    /// Stop every run (they end as interrupted), stop scheduling, and wait
    /// until every run has reported its end.
    pub(crate) async fn shutdown(&self) {
        {
            let mut q = self.board.lock();
            q.draining = true;
            for (_, a) in q.actives() {
                a.stop(StopReason::Shutdown);
            }
        }
        self.shutdown.cancel();
        self.board.wake.notify_one();
        self.tasks.close();
        self.tasks.wait().await;
    }

    async fn schedule_loop(self: Arc<Self>) {
        let debounce = Duration::from_millis(self.ctx.profile.runs.debounce_ms);
        let attachment_wait = Duration::from_millis(self.ctx.profile.runs.attachment_wait_ms);
        loop {
            let next = self.schedule(debounce, attachment_wait);
            tokio::select! {
                _ = self.board.wake.notified() => {}
                _ = sleep_until(next) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Start every run that may start now; return when to look again.
    fn schedule(
        self: &Arc<Self>,
        debounce: Duration,
        attachment_wait: Duration,
    ) -> Option<Instant> {
        let mut q = self.board.lock();
        // Every run this pass starts records the moment it was chosen: a
        // later one must not look started after a scope that became ready
        // while the earlier ones were being recorded (it was not ready when
        // the choice was made).
        let (now, now_wall) = (Instant::now(), now_ms());
        let (ready, next) = q.ready_holding(
            now,
            debounce,
            attachment_wait,
            self.ctx.profile.runs.max_concurrent,
        );
        for scope in ready {
            self.start_run(&mut q, scope, now_wall);
        }
        next
    }

    fn start_run(self: &Arc<Self>, q: &mut Queues, scope: String, started_at_ms: i64) {
        let messages = q.take(&scope);
        let n = messages.len();
        let Some(run_id) = messages.first().map(batch_run_id) else {
            return;
        };
        let reply_to = messages
            .last()
            .map(|m| m.inbound.message_id.clone())
            .unwrap_or_default();
        let workspace = self.ctx.workspace_of(&scope);
        let mut row = RunRow {
            run_id,
            scope: scope.clone(),
            reply_to: reply_to.clone(),
            thread_id: None,
            state: "running".into(),
            started_at_ms,
            child_pid: None,
            child_start_time: None,
            workspace: workspace.clone(),
        };
        let ids: Vec<i64> = messages.iter().map(|m| m.inbox_id).collect();
        let mut recorded = self.ctx.store.runs().start_run(&row, n as u32, &ids);
        if recorded.is_err() {
            // The batch ran before under this id (its worker died and the
            // journal gave the messages back for their one retry): the
            // retry is a run of its own, with a card of its own.
            row.run_id = crate::util::short_id('r');
            recorded = self.ctx.store.runs().start_run(&row, n as u32, &ids);
        }
        let run_id = row.run_id.clone();
        if let Err(e) = recorded {
            // Put them back: they stay accepted and are retried on the next
            // scheduling pass rather than lost.
            tracing::error!(scope, error = %e, "cannot record a run start; will retry");
            q.put_back(&scope, messages);
            return;
        }
        let slot = Arc::new(RunSlot::new(
            run_id.clone(),
            started_at_ms,
            self.shutdown.child_token(),
            workspace,
        ));
        slot.set_batch(n as u32, &reply_to);
        q.started(&scope, slot.clone(), n);
        let job = RunJob {
            scope: scope.clone(),
            run_id: run_id.clone(),
            reply_to,
            messages,
            slot,
        };
        let run = self.exec.execute(job);
        let me = self.clone();
        self.tasks.spawn(async move {
            run.await;
            let freed_at_ms = {
                let mut q = me.board.lock();
                q.finished(&scope);
                now_ms()
            };
            me.board.wake.notify_one();
            // The scope waits for the pool from here, a moment after its
            // run's Done event (the run's tail): the bench's fairness count
            // reads this line to know when.
            tracing::debug!(scope, run_id, freed_at_ms, "scope free for its next run");
        });
    }
}

fn ack(acc: &crate::store::Accepted, fetch_attachments: bool) -> Ack {
    Ack {
        accepted: true,
        duplicate: acc.duplicate,
        inbox_id: acc.inbox_id as u64,
        fetch_attachments,
    }
}

/// The id of the run a batch of waiting messages becomes, from its first
/// message alone: announced at accept, it stays the same until the run
/// starts, even across a worker restart (the batch is re-queued from the
/// journal with the same first message), so the card a chat was shown at
/// accept is the one the run streams into. Short like
/// [`crate::util::short_id`].
pub(crate) fn batch_run_id(first: &QueuedMessage) -> String {
    // FNV-1a over the journal id and the accept time: a journal that was
    // reset reuses ids, not the times they were accepted at.
    let mut h: u32 = 0x811c_9dc5;
    for b in first
        .inbox_id
        .to_le_bytes()
        .iter()
        .chain(first.accepted_at_ms.to_le_bytes().iter())
    {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("r{h:08x}")
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
