//! Per-scope queues and the run orchestrator.
//!
//! - one active run per scope; a burst of messages is debounced into one
//!   prompt, and messages that arrive during a run are merged into the next;
//! - a global cap on concurrent runs, with scopes served in the order their
//!   oldest waiting message arrived (no scope can starve another);
//! - an idle watchdog stops a run that hears nothing from Codex;
//! - `/stop`, `/new`, shutdown preempt;
//! - durable: a message is acknowledged only once committed; a run's
//!   messages are claimed in the same transaction that records the run, so a
//!   crash reports the run as interrupted instead of running it twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fcx_config::{AuthMode, Home, Profile};
use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, Ack, Inbound};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::{Decision, Lists, Need};
use crate::commands::{self, Command};
use crate::events::EventBus;
use crate::policy::RunPolicy;
use crate::prompt::{self, PromptContext};
use crate::runner::{
    self, ChildEnv, Outcome, RunIo, RunResult, RunSpec, Runner, RunnerEvent, TokenUsage,
};
use crate::store::{InboxKind, QueuedMessage, RunRow, RunTotals, SessionRow, Store, StoreError};
use crate::util::{first_line, now_ms, short_id, tail};

/// Output kept per tool in events: the card shows a tail, never megabytes.
const TOOL_OUTPUT_TAIL: usize = 4000;
/// Queue bound per scope and for the whole profile: past it, "busy".
const MAX_QUEUED_PER_SCOPE: usize = 50;
const MAX_QUEUED_TOTAL: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    User,
    NewSession,
    TimedOut,
    Shutdown,
}

struct ActiveRun {
    run_id: String,
    cancel: CancellationToken,
    stop: Arc<Mutex<Option<StopReason>>>,
    started_at_ms: i64,
    child_pid: Option<u32>,
    thread_id: Option<String>,
    workspace: String,
}

#[derive(Default)]
struct ScopeState {
    queued: Vec<QueuedMessage>,
    last_arrival: Option<Instant>,
    /// When the oldest waiting message arrived: a burst may hold it for at
    /// most a few debounce windows, so a chat that never pauses still runs.
    first_arrival: Option<Instant>,
    /// Global arrival order of the oldest waiting message, for fairness.
    order: u64,
    active: Option<ActiveRun>,
}

#[derive(Default)]
struct State {
    scopes: HashMap<String, ScopeState>,
    active: usize,
    queued: usize,
    next_order: u64,
    draining: bool,
}

#[path = "cards.rs"]
mod cards;
#[path = "router.rs"]
mod router;

pub struct Orchestrator {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) profile: Profile,
    pub(crate) home: Home,
    pub(crate) store: Arc<Store>,
    bus: EventBus,
    pub(crate) runner: Arc<dyn Runner>,
    state: Mutex<State>,
    wake: Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    started_at_ms: i64,
    /// Access lists in force (config ∪ chat changes, plus the owner).
    pub(crate) lists: Mutex<Lists>,
    /// `/resume` codes: code → (scope, thread id, expiry).
    pub(crate) nonces: Mutex<HashMap<String, (String, String, Instant)>>,
    /// Last `/doctor` per scope, for its rate limit.
    pub(crate) doctor_last: Mutex<HashMap<String, Instant>>,
}

/// A snapshot for `Status` and `/status`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub active: Vec<pb::RunInfo>,
    pub queued: u64,
    pub started_at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{0}")]
    Invalid(String),
    #[error("busy: {0}")]
    Busy(String),
    #[error("shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Orchestrator {
    pub fn new(
        profile: Profile,
        home: Home,
        store: Arc<Store>,
        bus: EventBus,
        runner: Arc<dyn Runner>,
        shutdown: CancellationToken,
    ) -> Self {
        Orchestrator {
            inner: Arc::new(Inner {
                profile,
                home,
                store,
                bus,
                runner,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                shutdown,
                tasks: TaskTracker::new(),
                started_at_ms: now_ms(),
                lists: Mutex::new(Lists::default()),
                nonces: Mutex::new(HashMap::new()),
                doctor_last: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Settle what a previous worker left behind, then start scheduling.
    ///
    /// Runs it left `running` end as "interrupted (worker restarted)" and are
    /// not re-run (Codex may have changed files already); messages it had
    /// accepted but not started are queued again and run exactly once.
    pub fn start(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        inner.reload_lists()?;
        if let Err(e) = inner.store.catalog_prune(
            crate::store::CATALOG_PER_SCOPE,
            crate::store::CATALOG_PER_PROFILE,
        ) {
            tracing::warn!(error = %e, "cannot prune the session catalog");
        }
        for run in inner.store.orphaned_runs()? {
            if let Some(pid) = run.child_pid {
                runner::process::kill_leftover(pid, run.child_start_time);
            }
            let detail = "worker restarted";
            inner.store.finish_run(
                &run.run_id,
                "interrupted",
                detail,
                RunTotals::default(),
                now_ms(),
            )?;
            let elapsed = (now_ms() - run.started_at_ms).max(0) as u64;
            inner.emit(
                &run.scope,
                &run.run_id,
                &run.reply_to,
                Kind::Done(pb::Done {
                    reason: pb::DoneReason::Interrupted as i32,
                    detail: detail.into(),
                    final_text: String::new(),
                    elapsed_ms: elapsed,
                    usage: None,
                }),
            );
            tracing::warn!(run_id = %run.run_id, scope = %run.scope, "run interrupted by a worker restart");
        }
        let queued = inner.store.queued()?;
        {
            let mut st = inner.lock();
            let n = queued.len();
            for m in queued {
                let order = st.next_order;
                st.next_order += 1;
                let sc = st.scopes.entry(m.scope.clone()).or_default();
                if sc.queued.is_empty() {
                    sc.order = order;
                }
                // Already waited once; no second debounce.
                sc.last_arrival = None;
                sc.queued.push(m);
            }
            st.queued += n;
            if n > 0 {
                tracing::info!(messages = n, "re-queued accepted messages after restart");
            }
        }
        let me = inner.clone();
        inner.tasks.spawn(async move { me.schedule_loop().await });
        Ok(())
    }

    /// Accept one inbound message: a command is answered at once; anything
    /// else is committed to the journal, then acknowledged.
    pub fn deliver(&self, inbound: Inbound) -> Result<Ack, DeliverError> {
        let inner = &self.inner;
        if inbound.event_id.is_empty() || inbound.event_id.len() > 256 {
            return Err(DeliverError::Invalid("event_id must be 1-256 bytes".into()));
        }
        if inbound.scope.is_empty() || inbound.scope.len() > 512 {
            return Err(DeliverError::Invalid("scope must be 1-512 bytes".into()));
        }
        if inner.shutdown.is_cancelled() {
            return Err(DeliverError::ShuttingDown);
        }
        let cmd = commands::parse(&inbound.text);
        let need = cmd.as_ref().map_or(Need::Run, Command::need);
        let decision = inner.decide(&inbound, need);
        if decision != Decision::Allow {
            // Acknowledged (so the platform does not redeliver) and recorded
            // for de-duplication, but nothing runs.
            let acc = inner.store.accept(&inbound, InboxKind::Command, now_ms())?;
            if !acc.duplicate {
                let text = match decision {
                    Decision::Hint(t) | Decision::Deny(t) => Some(t),
                    _ => None,
                };
                if let Some(t) = text {
                    let name = cmd.as_ref().map_or("access", Command::name);
                    inner.reply(&inbound, name, false, t, String::new());
                }
            }
            return Ok(Ack {
                accepted: true,
                duplicate: acc.duplicate,
                inbox_id: acc.inbox_id as u64,
            });
        }
        if let Some(cmd) = cmd {
            let acc = inner.store.accept(&inbound, InboxKind::Command, now_ms())?;
            if !acc.duplicate {
                inner.command(&inbound, cmd);
            }
            return Ok(Ack {
                accepted: true,
                duplicate: acc.duplicate,
                inbox_id: acc.inbox_id as u64,
            });
        }
        if inbound.text.trim().is_empty() && inbound.attachments.is_empty() {
            return Err(DeliverError::Invalid("the message is empty".into()));
        }
        // Check limits before committing, under the same lock that queues,
        // so a refused message is never half-accepted.
        let mut st = inner.lock();
        if st.draining {
            return Err(DeliverError::ShuttingDown);
        }
        let scope_len = st.scopes.get(&inbound.scope).map_or(0, |s| s.queued.len());
        if scope_len >= MAX_QUEUED_PER_SCOPE {
            return Err(DeliverError::Busy(format!(
                "this chat already has {scope_len} messages waiting; wait for the current run or /stop it"
            )));
        }
        if st.queued >= MAX_QUEUED_TOTAL {
            return Err(DeliverError::Busy(
                "fcx has too many messages waiting; try again in a moment".into(),
            ));
        }
        let now = now_ms();
        let acc = inner.store.accept(&inbound, InboxKind::Message, now)?;
        if !acc.duplicate {
            let order = st.next_order;
            st.next_order += 1;
            let sc = st.scopes.entry(inbound.scope.clone()).or_default();
            if sc.queued.is_empty() {
                sc.order = order;
            }
            let arrived = Instant::now();
            sc.last_arrival = Some(arrived);
            sc.first_arrival.get_or_insert(arrived);
            sc.queued.push(QueuedMessage {
                inbox_id: acc.inbox_id,
                scope: inbound.scope.clone(),
                inbound,
                accepted_at_ms: now,
            });
            st.queued += 1;
            drop(st);
            inner.wake.notify_one();
        }
        Ok(Ack {
            accepted: true,
            duplicate: acc.duplicate,
            inbox_id: acc.inbox_id as u64,
        })
    }

    /// Stop the active run of `scope` (optionally only if it is `run_id`).
    pub fn stop(&self, scope: &str, run_id: Option<&str>) -> bool {
        self.inner.stop_scope(scope, run_id, StopReason::User)
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// A stop that comes from a card button: the gateway verified the
    /// signed token; the worker re-checks that the clicking user may still
    /// stop runs in that chat and that the chat's policy is the one the
    /// button was made for. `Ok(false)` = nothing to stop.
    pub fn stop_checked(&self, a: &pb::Action) -> Result<bool, String> {
        self.inner.stop_checked(a)
    }

    /// A command-card click (COMMAND, CONFIG, RESUME), checked like the
    /// typed command it stands for; the answer goes to the scope as a
    /// command reply under the card.
    pub fn card_action(&self, a: &pb::Action) -> pb::ActResult {
        self.inner.card_action(a)
    }

    /// Stop every run (they end as interrupted), stop scheduling, and wait
    /// until every run has reported its end.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let scopes: Vec<String> = {
            let mut st = inner.lock();
            st.draining = true;
            st.scopes
                .iter()
                .filter(|(_, s)| s.active.is_some())
                .map(|(k, _)| k.clone())
                .collect()
        };
        for s in scopes {
            inner.stop_scope(&s, None, StopReason::Shutdown);
        }
        inner.shutdown.cancel();
        inner.wake.notify_one();
        inner.tasks.close();
        inner.tasks.wait().await;
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; keep serving with the state
        // as it was rather than taking every scope down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, scope: &str, run_id: &str, reply_to: &str, kind: Kind) {
        if let Err(e) = self.bus.emit(scope, run_id, reply_to, kind) {
            tracing::error!(scope, run_id, error = %e, "cannot record an event");
        }
    }

    fn reply(&self, inbound: &Inbound, command: &str, ok: bool, title: &str, body: String) {
        self.reply_fields(inbound, command, ok, title, body, Vec::new());
    }

    fn reply_fields(
        &self,
        inbound: &Inbound,
        command: &str,
        ok: bool,
        title: &str,
        body: String,
        fields: Vec<pb::Field>,
    ) {
        self.send_reply(
            inbound,
            pb::CommandReply {
                command: command.into(),
                title: title.into(),
                body,
                ok,
                fields,
                ..Default::default()
            },
        );
    }

    fn reply_request(
        &self,
        inbound: &Inbound,
        command: &str,
        title: &str,
        body: String,
        request: pb::gateway_request::Kind,
    ) {
        self.send_reply(
            inbound,
            pb::CommandReply {
                command: command.into(),
                title: title.into(),
                body,
                ok: true,
                gateway_request: Some(pb::GatewayRequest {
                    kind: Some(request),
                }),
                ..Default::default()
            },
        );
    }

    /// Every command reply goes out here: it answers `inbound`'s sender in
    /// the scope's reply mode, and carries the policy fingerprint its
    /// buttons are signed for (empty when the policy cannot be resolved, so
    /// no button of it can act).
    fn send_reply(&self, inbound: &Inbound, mut reply: pb::CommandReply) {
        let scope = inbound.scope.as_str();
        reply.actor = inbound.actor.clone();
        reply.reply_mode =
            crate::settings::reply_mode(&self.profile, &self.settings(scope)).to_string();
        reply.fingerprint = self
            .policy(scope)
            .map(|p| p.fingerprint)
            .unwrap_or_default();
        self.emit(scope, "", &inbound.message_id, Kind::CommandReply(reply));
    }

    fn stop_checked(&self, a: &pb::Action) -> Result<bool, String> {
        let probe = self.action_inbound(a, "/stop");
        match self.decide(&probe, crate::access::Need::User) {
            crate::access::Decision::Allow => {}
            _ => return Err("you may not stop runs here".into()),
        }
        let current = self.policy(&a.scope).map_err(|e| e.to_string())?;
        if current.fingerprint != a.fingerprint {
            return Err("this chat's settings changed since the card was made".into());
        }
        let run = (!a.run_id.is_empty()).then_some(a.run_id.as_str());
        Ok(self.stop_scope(&a.scope, run, StopReason::User))
    }

    fn stop_scope(&self, scope: &str, run_id: Option<&str>, why: StopReason) -> bool {
        let st = self.lock();
        let Some(active) = st.scopes.get(scope).and_then(|s| s.active.as_ref()) else {
            return false;
        };
        if run_id.is_some_and(|r| r != active.run_id) {
            return false;
        }
        if let Ok(mut s) = active.stop.lock()
            && s.is_none()
        {
            *s = Some(why);
        }
        active.cancel.cancel();
        true
    }

    fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        let active = st
            .scopes
            .iter()
            .filter_map(|(scope, s)| {
                s.active.as_ref().map(|a| pb::RunInfo {
                    run_id: a.run_id.clone(),
                    scope: scope.clone(),
                    thread_id: a.thread_id.clone().unwrap_or_default(),
                    started_at_ms: a.started_at_ms,
                    child_pid: a.child_pid.unwrap_or(0),
                    workspace: a.workspace.clone(),
                })
            })
            .collect();
        Snapshot {
            active,
            queued: st.queued as u64,
            started_at_ms: self.started_at_ms,
        }
    }

    async fn schedule_loop(self: Arc<Self>) {
        let debounce = Duration::from_millis(self.profile.runs.debounce_ms);
        loop {
            let next = self.schedule(debounce);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sleep_until(next) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Start every run that may start now; return when to look again.
    fn schedule(self: &Arc<Self>, debounce: Duration) -> Option<Instant> {
        let now = Instant::now();
        let mut st = self.lock();
        if st.draining {
            return None;
        }
        // This runs on every accepted message, under the lock Deliver needs:
        // only scopes that may start now are copied and sorted; the ones
        // still in their debounce just contribute their time (cloning and
        // sorting every waiting scope was a quarter of the worker's CPU
        // with a thousand chats waiting).
        let max = self.profile.runs.max_concurrent;
        // Every slot busy: nothing can start and no timer is useful (a
        // finishing run wakes us). During a burst this is the common case,
        // and it must not cost a scan of every waiting scope.
        if st.active >= max {
            return None;
        }
        let free = max - st.active;
        let mut ready: Vec<(u64, String)> = Vec::new();
        let mut waiting: Vec<(u64, Instant)> = Vec::new();
        for (k, sc) in &st.scopes {
            if sc.active.is_some() || sc.queued.is_empty() {
                continue;
            }
            let quiet = sc.last_arrival.map(|t| t + debounce);
            let held = sc.first_arrival.map(|t| t + max_hold(debounce));
            match quiet.zip(held).map(|(q, h)| q.min(h)).or(quiet) {
                Some(at) if at > now => waiting.push((sc.order, at)),
                _ => ready.push((sc.order, k.clone())),
            }
        }
        // Only the `free` oldest ready scopes start: select them instead of
        // sorting every ready scope. The first one left behind marks where
        // waiting scopes stop mattering for the timer.
        let mut blocked_at = u64::MAX;
        if ready.len() > free {
            ready.select_nth_unstable(free);
            blocked_at = ready[free].0;
            ready.truncate(free);
        }
        ready.sort_unstable();
        for (_, scope) in ready {
            self.start_run(&mut st, &scope);
        }
        waiting
            .into_iter()
            .filter(|(order, _)| *order < blocked_at)
            .map(|(_, at)| at)
            .min()
    }

    fn start_run(self: &Arc<Self>, st: &mut State, scope: &str) {
        let Some(sc) = st.scopes.get_mut(scope) else {
            return;
        };
        let messages = std::mem::take(&mut sc.queued);
        sc.last_arrival = None;
        sc.first_arrival = None;
        let n = messages.len();
        let run_id = short_id('r');
        let reply_to = messages
            .last()
            .map(|m| m.inbound.message_id.clone())
            .unwrap_or_default();
        let cancel = self.shutdown.child_token();
        let stop = Arc::new(Mutex::new(None));
        let started_at_ms = now_ms();
        let workspace = match self.policy(scope) {
            Ok(p) => p.cwd.display().to_string(),
            Err(_) => self.profile.workspaces.default.display().to_string(),
        };
        let row = RunRow {
            run_id: run_id.clone(),
            scope: scope.to_string(),
            reply_to: reply_to.clone(),
            thread_id: None,
            state: "running".into(),
            started_at_ms,
            child_pid: None,
            child_start_time: None,
            workspace: workspace.clone(),
        };
        let ids: Vec<i64> = messages.iter().map(|m| m.inbox_id).collect();
        if let Err(e) = self.store.start_run(&row, n as u32, &ids) {
            // Put them back: they stay accepted and are retried on the next
            // scheduling pass rather than lost.
            tracing::error!(scope, error = %e, "cannot record a run start; will retry");
            sc.queued = messages;
            return;
        }
        sc.active = Some(ActiveRun {
            run_id: run_id.clone(),
            cancel: cancel.clone(),
            stop: stop.clone(),
            started_at_ms,
            child_pid: None,
            thread_id: None,
            workspace,
        });
        st.active += 1;
        st.queued = st.queued.saturating_sub(n);
        let me = self.clone();
        let scope = scope.to_string();
        self.tasks.spawn(async move {
            let job = RunJob {
                scope: scope.clone(),
                run_id,
                reply_to,
                messages,
                cancel,
                stop,
                started_at_ms,
            };
            me.clone().run(job).await;
            me.finish_scope(&scope);
        });
    }

    fn finish_scope(&self, scope: &str) {
        {
            let mut st = self.lock();
            if let Some(sc) = st.scopes.get_mut(scope) {
                sc.active = None;
                if sc.queued.is_empty() {
                    st.scopes.remove(scope);
                }
            }
            st.active = st.active.saturating_sub(1);
        }
        self.wake.notify_one();
    }

    fn set_active<F: FnOnce(&mut ActiveRun)>(&self, scope: &str, f: F) {
        let mut st = self.lock();
        if let Some(a) = st.scopes.get_mut(scope).and_then(|s| s.active.as_mut()) {
            f(a);
        }
    }

    async fn run(self: Arc<Self>, job: RunJob) {
        let first = self.attempt(&job, false).await;
        let done = match first {
            Attempt::ThreadGone(msg) => {
                // The stored thread is gone for good (not a transient error):
                // start a new thread explicitly, and say so.
                tracing::warn!(scope = %job.scope, "stored Codex thread not found: {msg}");
                if let Err(e) = self.store.clear_session(&job.scope) {
                    tracing::error!(error = %e, "cannot clear the session");
                }
                self.emit(
                    &job.scope,
                    &job.run_id,
                    &job.reply_to,
                    Kind::Notice(pb::Notice {
                        text:
                            "The previous Codex session could not be found; starting a new session."
                                .into(),
                    }),
                );
                match self.attempt(&job, true).await {
                    Attempt::Done(d) => d,
                    Attempt::ThreadGone(m) => failed(m),
                }
            }
            Attempt::Done(d) => d,
        };
        let Finished {
            reason,
            detail,
            final_text,
            totals,
        } = done;
        let state = match reason {
            pb::DoneReason::Completed => "completed",
            pb::DoneReason::Interrupted => "interrupted",
            pb::DoneReason::TimedOut => "timed_out",
            _ => "failed",
        };
        if let Err(e) = self
            .store
            .finish_run(&job.run_id, state, &detail, totals, now_ms())
        {
            tracing::error!(run_id = %job.run_id, error = %e, "cannot record the run end");
        }
        tracing::info!(run_id = %job.run_id, scope = %job.scope, state, detail = %detail, "run ended");
        self.emit(
            &job.scope,
            &job.run_id,
            &job.reply_to,
            Kind::Done(pb::Done {
                reason: reason as i32,
                detail,
                final_text,
                elapsed_ms: (now_ms() - job.started_at_ms).max(0) as u64,
                usage: Some(usage_pb(totals)),
            }),
        );
    }

    async fn attempt(self: &Arc<Self>, job: &RunJob, fresh: bool) -> Attempt {
        let scope = job.scope.as_str();
        let policy = match self.policy(scope) {
            Ok(p) => p,
            Err(e) => return Attempt::Done(failed(e.to_string())),
        };
        let binary = match resolve_binary(&self.profile) {
            Ok(b) => b,
            Err(e) => return Attempt::Done(failed(e)),
        };
        let env = match self.child_env() {
            Ok(e) => e,
            Err(e) => return Attempt::Done(failed(e)),
        };
        let session = if fresh {
            None
        } else {
            match self.store.session(scope) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the session");
                    None
                }
            }
        };
        let (resume, base) = match session {
            Some(s) if s.fingerprint == policy.fingerprint => (Some(s.thread_id.clone()), s),
            Some(_) => {
                self.emit(
                    scope,
                    &job.run_id,
                    &job.reply_to,
                    Kind::Notice(pb::Notice {
                        text: "The workspace, sandbox or Codex identity changed since the last session; starting a new session.".into(),
                    }),
                );
                (None, SessionRow::default())
            }
            None => (None, SessionRow::default()),
        };
        let inbounds: Vec<Inbound> = job.messages.iter().map(|m| m.inbound.clone()).collect();
        let settings = self.settings(scope);
        let cwd_s = policy.cwd.display().to_string();
        let prompt = prompt::build(
            &PromptContext {
                scope,
                workspace: &cwd_s,
                sandbox: policy.sandbox.as_str(),
                network: policy.network,
            },
            &inbounds,
        );
        self.emit(
            scope,
            &job.run_id,
            &job.reply_to,
            Kind::RunStarted(pb::RunStarted {
                thread_id: resume.clone().unwrap_or_default(),
                resumed: resume.is_some(),
                workspace: cwd_s.clone(),
                sandbox: policy.sandbox.as_str().into(),
                model: self.profile.codex.model.clone().unwrap_or_default(),
                message_count: job.messages.len() as u32,
                message_ids: inbounds.iter().map(|m| m.message_id.clone()).collect(),
                fingerprint: policy.fingerprint.clone(),
                reply_mode: crate::settings::reply_mode(&self.profile, &settings).into(),
                tool_display: crate::settings::tool_display(&settings).into(),
            }),
        );
        self.set_active(scope, |a| a.workspace = cwd_s.clone());
        let spec = RunSpec {
            run_id: job.run_id.clone(),
            prompt,
            cwd: policy.cwd.clone(),
            sandbox: policy.sandbox,
            network: policy.network,
            model: self.profile.codex.model.clone(),
            resume_thread: resume.clone(),
            images: Vec::new(),
            overrides: self.profile.codex.overrides.clone(),
            binary,
            env,
            stop_grace: Duration::from_millis(self.profile.runs.stop_grace_ms),
        };
        let result = self.drive(job, spec, &policy, base.usage).await;
        if let Outcome::ThreadNotFound { message } = &result.outcome
            && resume.is_some()
            && !job.cancel.is_cancelled()
        {
            return Attempt::ThreadGone(message.clone());
        }
        Attempt::Done(self.conclude(job, &policy, result, base.usage))
    }

    fn child_env(&self) -> Result<ChildEnv, String> {
        let p = &self.profile;
        let mut env = ChildEnv {
            remove: vec!["FCX_HOME".into(), "FCX_WORKER_SOCKET".into()],
            ..Default::default()
        };
        match p.codex.auth {
            AuthMode::ApiKey => {
                env.codex_home = Some(self.home.codex_home(&p.name));
                let r = p.codex.api_key.as_ref().ok_or_else(|| {
                    format!(
                        "profile {} uses auth = \"api-key\" but has no api_key reference",
                        p.name
                    )
                })?;
                let key = r.resolve().map_err(|e| {
                    format!(
                        "cannot read the Codex API key: {e}; fix profiles.{}.codex.api_key",
                        p.name
                    )
                })?;
                if let Some(var) = r.env_var() {
                    env.remove.push(var.to_string());
                }
                env.api_key = Some(key);
            }
            AuthMode::CodexHome => env.codex_home = Some(self.home.codex_home(&p.name)),
            AuthMode::InheritUser => {}
        }
        Ok(env)
    }

    /// Run the turn, translating runner events into worker events, with the
    /// idle watchdog.
    async fn drive(
        self: &Arc<Self>,
        job: &RunJob,
        spec: RunSpec,
        policy: &RunPolicy,
        base: RunTotals,
    ) -> RunResult {
        let scope = job.scope.as_str();
        let resumed_from = spec.resume_thread.clone();
        let (ev_tx, mut ev_rx) = mpsc::channel(256);
        // Kept open so the runner can tell "no control requests" from
        // "orchestrator gone"; the exec runner answers NotSupported anyway.
        let (_ctl_tx, ctl_rx) = mpsc::channel(8);
        let fut = self.runner.run(
            spec,
            RunIo {
                events: ev_tx,
                control: ctl_rx,
                cancel: job.cancel.clone(),
            },
        );
        tokio::pin!(fut);
        let idle_limit = self.idle_timeout(scope);
        let mut last_event = Instant::now();
        let mut open_tools: HashMap<String, (pb::ToolKind, String)> = HashMap::new();
        let mut t = Translator {
            inner: self,
            job,
            policy,
            base,
            resumed_from,
        };
        let result = loop {
            let idle_deadline = idle_limit.map(|l| last_event + l);
            tokio::select! {
                biased;
                Some(ev) = ev_rx.recv() => {
                    last_event = Instant::now();
                    t.handle(ev, &mut open_tools);
                }
                r = &mut fut => {
                    while let Ok(ev) = ev_rx.try_recv() {
                        t.handle(ev, &mut open_tools);
                    }
                    break r;
                }
                _ = sleep_until(idle_deadline) => {
                    tracing::warn!(run_id = %job.run_id, "no Codex event within the idle timeout; stopping the run");
                    self.stop_scope(scope, Some(&job.run_id), StopReason::TimedOut);
                    last_event = Instant::now() + Duration::from_secs(3600);
                }
            }
        };
        // Items Codex started but never finished (an interrupted turn leaves
        // them open): close them so no surface shows a tool spinning forever.
        for (item_id, (kind, title)) in open_tools {
            self.emit(
                scope,
                &job.run_id,
                &job.reply_to,
                Kind::ToolEnd(pb::ToolEnd {
                    item_id,
                    kind: kind as i32,
                    title,
                    status: pb::ToolStatus::Abandoned as i32,
                    ..Default::default()
                }),
            );
        }
        result
    }

    fn conclude(
        &self,
        job: &RunJob,
        policy: &RunPolicy,
        r: RunResult,
        base: RunTotals,
    ) -> Finished {
        let stop = job.stop.lock().ok().and_then(|s| *s);
        let cum = r.usage.map(totals).unwrap_or(base);
        let totals = diff(cum, base);
        // Keep the thread for the next message unless the user asked for a
        // new session; a transient failure never drops a stored thread id.
        if let Some(thread) = &r.thread_id
            && stop != Some(StopReason::NewSession)
        {
            self.save_session(job, thread, policy, cum);
        }
        let final_text = r.final_text.clone().unwrap_or_default();
        let (reason, detail) = match (stop, &r.outcome) {
            (Some(StopReason::TimedOut), _) => (
                pb::DoneReason::TimedOut,
                format!(
                    "no activity from Codex for {}",
                    span(self.idle_timeout(&job.scope).unwrap_or_default())
                ),
            ),
            (Some(StopReason::User), _) => (pb::DoneReason::Interrupted, "stopped".to_string()),
            (Some(StopReason::NewSession), _) => (
                pb::DoneReason::Interrupted,
                "stopped for a new session".to_string(),
            ),
            (Some(StopReason::Shutdown), _) => (
                pb::DoneReason::Interrupted,
                "fcx is shutting down".to_string(),
            ),
            (None, Outcome::Completed) => (pb::DoneReason::Completed, String::new()),
            (None, Outcome::Interrupted) => (pb::DoneReason::Interrupted, "stopped".to_string()),
            (None, Outcome::Failed { message }) | (None, Outcome::ThreadNotFound { message }) => {
                (pb::DoneReason::Failed, message.clone())
            }
        };
        if reason == pb::DoneReason::Failed && !r.stderr_tail.is_empty() {
            tracing::warn!(run_id = %job.run_id, stderr = %tail(&r.stderr_tail, 2000), "codex failed");
        }
        Finished {
            reason,
            detail,
            final_text,
            totals,
        }
    }

    fn save_session(&self, job: &RunJob, thread: &str, policy: &RunPolicy, cum: RunTotals) {
        let scope = job.scope.as_str();
        let row = SessionRow {
            scope: scope.to_string(),
            thread_id: thread.to_string(),
            cwd: policy.cwd.display().to_string(),
            fingerprint: policy.fingerprint.clone(),
            usage: cum,
        };
        if let Err(e) = self.store.set_session(&row, now_ms()) {
            tracing::error!(scope, error = %e, "cannot save the session");
        }
        let title = job
            .messages
            .first()
            .map(|m| first_line(&m.inbound.text, 60))
            .unwrap_or_default();
        if let Err(e) = self.store.catalog_touch(&row, &title, now_ms()) {
            tracing::error!(scope, error = %e, "cannot record the session in the catalog");
        }
    }
}

/// Turns runner events into worker events for one run.
struct Translator<'a> {
    inner: &'a Arc<Inner>,
    job: &'a RunJob,
    policy: &'a RunPolicy,
    base: RunTotals,
    resumed_from: Option<String>,
}

impl Translator<'_> {
    fn emit(&self, kind: Kind) {
        self.inner
            .emit(&self.job.scope, &self.job.run_id, &self.job.reply_to, kind);
    }

    fn handle(&mut self, ev: RunnerEvent, open: &mut HashMap<String, (pb::ToolKind, String)>) {
        let job = self.job;
        match ev {
            RunnerEvent::Spawned { pid } => {
                let start = runner::process::process_start_time(pid);
                if let Err(e) = self.inner.store.set_run_child(&job.run_id, pid, start) {
                    tracing::error!(error = %e, "cannot record the child pid");
                }
                self.inner
                    .set_active(&job.scope, |a| a.child_pid = Some(pid));
                tracing::info!(run_id = %job.run_id, pid, "codex child spawned");
            }
            RunnerEvent::ThreadStarted { thread_id } => {
                // Codex 0.169.0 quietly starts a new thread when asked to
                // resume an id it cannot parse: never pretend it continued.
                let resumed = match &self.resumed_from {
                    Some(asked) if *asked != thread_id => {
                        tracing::warn!(asked = %asked, got = %thread_id, "codex started a new thread instead of resuming");
                        self.emit(Kind::Notice(pb::Notice {
                            text: "The previous Codex session could not be continued; Codex started a new session.".into(),
                        }));
                        false
                    }
                    Some(_) => true,
                    None => false,
                };
                if let Err(e) = self.inner.store.set_run_thread(&job.run_id, &thread_id) {
                    tracing::error!(error = %e, "cannot record the thread id");
                }
                let stop = job.stop.lock().ok().and_then(|s| *s);
                if stop != Some(StopReason::NewSession) {
                    // Saved now, so the thread continues even if this worker
                    // dies before the turn ends.
                    self.inner
                        .save_session(job, &thread_id, self.policy, self.base);
                }
                let tid = thread_id.clone();
                self.inner
                    .set_active(&job.scope, |a| a.thread_id = Some(tid));
                self.emit(Kind::ThreadBound(pb::ThreadBound { thread_id, resumed }));
            }
            RunnerEvent::TurnStarted => {}
            RunnerEvent::TextDelta { item_id, delta } => {
                self.emit(Kind::TextDelta(pb::TextDelta { item_id, delta }));
            }
            RunnerEvent::AgentMessage { .. } => {}
            RunnerEvent::ReasoningDelta { item_id, delta } => {
                self.emit(Kind::ReasoningDelta(pb::ReasoningDelta { item_id, delta }));
            }
            RunnerEvent::ToolStarted {
                item_id,
                kind,
                title,
                changes,
            } => {
                let k = tool_kind(kind);
                open.insert(item_id.clone(), (k, title.clone()));
                self.emit(Kind::ToolStart(pb::ToolStart {
                    item_id,
                    kind: k as i32,
                    title,
                    changes: changes.into_iter().map(change_pb).collect(),
                }));
            }
            RunnerEvent::ToolCompleted {
                item_id,
                kind,
                title,
                status,
                exit_code,
                output,
                changes,
                error,
            } => {
                open.remove(&item_id);
                self.emit(Kind::ToolEnd(pb::ToolEnd {
                    item_id,
                    kind: tool_kind(kind) as i32,
                    title,
                    status: match status {
                        runner::ToolStatus::Ok => pb::ToolStatus::Ok,
                        runner::ToolStatus::Failed => pb::ToolStatus::Failed,
                        runner::ToolStatus::Declined => pb::ToolStatus::Declined,
                    } as i32,
                    has_exit_code: exit_code.is_some(),
                    exit_code: exit_code.unwrap_or(0),
                    output_tail: tail(&output, TOOL_OUTPUT_TAIL),
                    changes: changes.into_iter().map(change_pb).collect(),
                    error: error.unwrap_or_default(),
                }));
            }
            RunnerEvent::Usage(u) => {
                self.emit(Kind::Usage(usage_pb(diff(totals(u), self.base))));
            }
            RunnerEvent::Warning { message } => {
                self.emit(Kind::Error(pb::RunError {
                    message: first_line(&message, 500),
                    fatal: false,
                }));
            }
        }
    }
}

struct RunJob {
    scope: String,
    run_id: String,
    reply_to: String,
    messages: Vec<QueuedMessage>,
    cancel: CancellationToken,
    stop: Arc<Mutex<Option<StopReason>>>,
    started_at_ms: i64,
}

enum Attempt {
    Done(Finished),
    ThreadGone(String),
}

struct Finished {
    reason: pb::DoneReason,
    detail: String,
    final_text: String,
    totals: RunTotals,
}

fn failed(detail: String) -> Finished {
    Finished {
        reason: pb::DoneReason::Failed,
        detail,
        final_text: String::new(),
        totals: RunTotals::default(),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn totals(u: TokenUsage) -> RunTotals {
    RunTotals {
        input_tokens: u.input_tokens,
        cached_input_tokens: u.cached_input_tokens,
        output_tokens: u.output_tokens,
        reasoning_output_tokens: u.reasoning_output_tokens,
    }
}

/// Per-run usage from thread totals (Codex reports cumulative figures).
fn diff(cum: RunTotals, base: RunTotals) -> RunTotals {
    RunTotals {
        input_tokens: cum.input_tokens.saturating_sub(base.input_tokens),
        cached_input_tokens: cum
            .cached_input_tokens
            .saturating_sub(base.cached_input_tokens),
        output_tokens: cum.output_tokens.saturating_sub(base.output_tokens),
        reasoning_output_tokens: cum
            .reasoning_output_tokens
            .saturating_sub(base.reasoning_output_tokens),
    }
}

fn usage_pb(t: RunTotals) -> pb::Usage {
    pb::Usage {
        input_tokens: t.input_tokens,
        cached_input_tokens: t.cached_input_tokens,
        output_tokens: t.output_tokens,
        reasoning_output_tokens: t.reasoning_output_tokens,
    }
}

fn tool_kind(k: runner::ToolKind) -> pb::ToolKind {
    match k {
        runner::ToolKind::Command => pb::ToolKind::Command,
        runner::ToolKind::FileChange => pb::ToolKind::FileChange,
        runner::ToolKind::Mcp => pb::ToolKind::Mcp,
        runner::ToolKind::WebSearch => pb::ToolKind::WebSearch,
        runner::ToolKind::Todo => pb::ToolKind::Todo,
    }
}

fn change_pb(c: runner::FileChange) -> pb::FileChange {
    pb::FileChange {
        path: c.path,
        kind: c.kind,
    }
}

/// The codex binary as a path: a configured path must exist; a bare name is
/// looked up on PATH. The error is the sentence the user sees.
pub fn resolve_binary(profile: &Profile) -> Result<PathBuf, String> {
    let b = &profile.codex.binary;
    let hint = format!(
        "install the Codex CLI (npm install -g @openai/codex@0.169.0) or set profiles.{}.codex.binary in config.toml",
        profile.name
    );
    if b.contains('/') || b.contains(std::path::MAIN_SEPARATOR) {
        let p = PathBuf::from(b);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("the codex binary {b} does not exist; {hint}"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(b);
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(format!(
        "the codex binary `{b}` was not found on PATH; {hint}"
    ))
}

/// "45 seconds", "1 minute", "30 minutes": how long, as a user reads it.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s < 120 && !s.is_multiple_of(60) {
        (s, "second")
    } else {
        (s.div_ceil(60), "minute")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// The longest a burst may keep its first message waiting for a quiet
/// window: five windows, at least two seconds.
fn max_hold(debounce: Duration) -> Duration {
    (debounce * 5).max(Duration::from_secs(2))
}
