//! One run's lifecycle: workspace check, prompt, runner, event translation,
//! end state, session save. The scheduler hands a [`RunJob`] to an
//! [`Execute`]; the [`RunDriver`] is the real one, over any [`Runner`].

pub(crate) mod approval;
mod end;
mod env;
mod outbox;
mod reach;
mod slot;
mod thread_buttons;
mod translate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, Inbound};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::access::{self, Chat, Role};
use crate::catalog::{Catalog, Continue};
use crate::context::Ctx;
use crate::policy::RunPolicy;
use crate::prompt::{self, PromptContext};
use crate::runner::{self, Outcome, RunIo, RunResult, RunSpec, Runner};
use crate::scheduler::sleep_until;
use crate::store::{QueuedMessage, RunTotals, StoreError};
use crate::util::{first_line, now_ms, tail};
use end::{Finished, failed};
pub(crate) use env::{child_env, resolve_binary};
#[cfg(test)]
pub(crate) use slot::PendingApproval;
pub(crate) use slot::{RunSlot, SteerAttempt, SteerContext, StopReason};
use translate::Translator;

/// One run as the scheduler hands it over: the messages it answers and
/// the slot through which it is stopped and observed.
pub(crate) struct RunJob {
    pub(crate) scope: String,
    pub(crate) run_id: String,
    /// The message the run's answer replies to (the last one).
    pub(crate) reply_to: String,
    pub(crate) messages: Vec<QueuedMessage>,
    pub(crate) slot: Arc<RunSlot>,
}

impl RunJob {
    /// The session's title in the catalog: the first message's first line.
    pub(crate) fn title(&self) -> String {
        self.messages
            .first()
            .map(|m| first_line(&m.inbound.text, 60))
            .unwrap_or_default()
    }
}

/// Whether files can leave this run's scope for its chat (the console's
/// user has the workspace at hand: nothing is sent there).
fn files_out(job: &RunJob) -> bool {
    job.messages
        .first()
        .is_some_and(|m| m.inbound.chat_type() != pb::ChatType::Console)
}

/// Carries out runs. The future ends once the run's end is recorded and
/// reported.
pub(crate) trait Execute: Send + Sync + 'static {
    fn execute(&self, job: RunJob) -> BoxFuture<'static, ()>;
    /// `scope` starts a new session: nothing kept for its runs is wanted.
    fn release(&self, _scope: &str) {}
}

enum Attempt {
    Done(Finished),
    ThreadGone(String),
}

/// How a run the previous worker left running ends.
/// How often a refused run-end write is tried again.
const END_RETRY_EVERY: Duration = Duration::from_millis(250);

const ORPHAN_DETAIL: &str = "worker restarted";
/// ... when its messages are queued to run once more.
const ORPHAN_RETRY_DETAIL: &str = "worker restarted; running it again";

pub(crate) struct RunDriver {
    ctx: Arc<Ctx>,
    catalog: Arc<Catalog>,
    runner: Arc<dyn Runner>,
    turns: Arc<ThreadTurns>,
}

impl Execute for RunDriver {
    fn execute(&self, job: RunJob) -> BoxFuture<'static, ()> {
        let me = RunDriver {
            ctx: self.ctx.clone(),
            catalog: self.catalog.clone(),
            runner: self.runner.clone(),
            turns: self.turns.clone(),
        };
        Box::pin(async move { me.run(job).await })
    }

    fn release(&self, scope: &str) {
        self.runner.release(&pb::Scope::continuity_of(scope));
    }
}

/// Runs whose scope continues another scope's thread (comment runs on one
/// document) take turns: two at once would both resume the same Codex
/// thread. Other scopes have one run at a time anyway.
#[derive(Default)]
struct ThreadTurns(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl ThreadTurns {
    /// Waits for the turn of `scope`'s thread (at once for a scope that
    /// is its own continuity); `None` if the run was stopped meanwhile.
    async fn take(
        &self,
        scope: &str,
        slot: &RunSlot,
    ) -> Option<Option<tokio::sync::OwnedMutexGuard<()>>> {
        let key = pb::Scope::continuity_of(scope);
        if key == scope {
            return Some(None);
        }
        let lock = {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            m.retain(|_, l| Arc::strong_count(l) > 1);
            m.entry(key).or_default().clone()
        };
        tokio::select! {
            g = lock.lock_owned() => Some(Some(g)),
            _ = slot.cancel.cancelled() => None,
        }
    }
}

/// A spec for asking Codex about `scope`'s threads outside a run
/// (`thread/list`): the same binary, environment (the scope's Codex home)
/// and overrides as the scope's runs.
pub(crate) fn listing_spec(ctx: &Ctx, scope: &str, policy: &RunPolicy) -> Result<RunSpec, String> {
    let profile = &ctx.profile;
    Ok(RunSpec {
        run_id: "thread-list".into(),
        prompt: String::new(),
        cwd: policy.cwd.clone(),
        sandbox: policy.sandbox,
        network: policy.network,
        model: profile.codex.model.clone(),
        resume_thread: None,
        images: Vec::new(),
        overrides: profile.codex.overrides.clone(),
        binary: resolve_binary(profile)?,
        env: child_env(profile, &ctx.home, scope)?,
        stop_grace: Duration::from_millis(profile.runs.stop_grace_ms),
        approval: profile.codex.approval,
        warm_key: None,
    })
}

/// Threads from before per-scope Codex homes, copied into the scope's home
/// so Codex finds them there ([`runner::codex_home::adopt`]); one that
/// cannot be found ends as "session could not be found" at resume.
pub(crate) async fn adopt_legacy(env: &runner::ChildEnv, threads: &[String]) {
    let (Some(home), Some(shared)) = (env.codex_home.clone(), env.shared_home.clone()) else {
        return;
    };
    let threads = threads.to_vec();
    let done = tokio::task::spawn_blocking(move || {
        for t in &threads {
            match runner::codex_home::adopt(&home, &shared, t) {
                Ok(runner::codex_home::Adopted::Copied(to)) => {
                    tracing::info!(thread = %t, to = %to.display(), "thread from the profile's Codex home copied into the scope's")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(thread = %t, error = %e, "cannot copy a thread into the scope's Codex home")
                }
            }
        }
    })
    .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "copying threads into the scope's Codex home failed");
    }
}

impl RunDriver {
    pub(crate) fn new(ctx: Arc<Ctx>, catalog: Arc<Catalog>, runner: Arc<dyn Runner>) -> Self {
        RunDriver {
            ctx,
            catalog,
            runner,
            turns: Arc::default(),
        }
    }

    /// Ends what the runner keeps between runs (its idle children).
    pub(crate) async fn shutdown_runner(&self) {
        self.runner.shutdown().await;
    }

    fn emit(&self, job: &RunJob, kind: Kind) {
        self.ctx.emit(&job.scope, &job.run_id, &job.reply_to, kind);
    }

    /// Runs a previous worker left `running` end as "interrupted (worker
    /// restarted)"; their messages are queued again and run once more (a
    /// run that was itself such a retry is not retried again).
    pub(crate) fn recover_orphans(&self) -> Result<(), StoreError> {
        for run in self.ctx.store.runs().orphaned_runs()? {
            if let Some(pid) = run.child_pid {
                runner::process::kill_leftover(pid, run.child_start_time);
            }
            let requeued = self.ctx.store.runs().interrupt_orphan(
                &run.run_id,
                ORPHAN_DETAIL,
                ORPHAN_RETRY_DETAIL,
                now_ms(),
            )?;
            let detail = if requeued > 0 {
                ORPHAN_RETRY_DETAIL
            } else {
                ORPHAN_DETAIL
            };
            let elapsed = (now_ms() - run.started_at_ms).max(0) as u64;
            self.ctx.emit(
                &run.scope,
                &run.run_id,
                &run.reply_to,
                Kind::Done(pb::Done {
                    reason: pb::DoneReason::Interrupted as i32,
                    detail: detail.into(),
                    final_text: String::new(),
                    elapsed_ms: elapsed,
                    usage: None,
                    ..Default::default()
                }),
            );
            tracing::warn!(run_id = %run.run_id, scope = %run.scope, requeued, "run interrupted by a worker restart");
            end::log_summary(&end::Summary {
                scope: &run.scope,
                run_id: &run.run_id,
                runner: self.ctx.runner_name,
                outcome: end::state_name(pb::DoneReason::Interrupted),
                duration_ms: elapsed,
                messages: 0,
                usage: None,
            });
        }
        Ok(())
    }

    /// Records the run's end and marks its messages done (one write). While
    /// the state directory refuses writes (full, read-only) it is tried
    /// again, holding the run's slot (nothing else could be saved either):
    /// the `Done` event must not go out before it, or a worker restart
    /// would run the messages a second time.
    async fn record_end(&self, run_id: &str, state: &str, detail: &str, totals: RunTotals) {
        let stop = self.ctx.stopping();
        let mut refused = 0u32;
        loop {
            match self
                .ctx
                .store
                .runs()
                .finish_run(run_id, state, detail, totals, now_ms())
            {
                Ok(()) => {
                    if refused > 0 {
                        tracing::info!(run_id, refused, "the run end is recorded");
                    }
                    return;
                }
                Err(e) => {
                    if refused == 0 {
                        tracing::error!(run_id, error = %e, "cannot record the run end; trying again until the state directory takes writes");
                    }
                    refused += 1;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(END_RETRY_EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn run(&self, job: RunJob) {
        // Held until the run's end is recorded, so the next comment on the
        // same document resumes the thread this run saved.
        let turn = self.turns.take(&job.scope, &job.slot).await;
        let done = match &turn {
            // Stopped while waiting: it never ran.
            None => Attempt::Done(end::stopped_before_start(job.slot.stop_reason())),
            Some(_) => self.attempt(&job, false).await,
        };
        let done = match done {
            Attempt::ThreadGone(msg) => {
                // The stored thread is gone for good (not a transient error):
                // start a new thread explicitly, and say so.
                tracing::warn!(scope = %job.scope, "stored Codex thread not found: {msg}");
                let continuity = pb::Scope::continuity_of(&job.scope);
                if let Err(e) = self.ctx.store.sessions().clear_session(&continuity) {
                    tracing::error!(error = %e, "cannot clear the session");
                }
                self.emit(
                    &job,
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
            usage_known,
        } = done;
        let state = end::state_name(reason);
        self.record_end(&job.run_id, state, &detail, totals).await;
        tracing::info!(run_id = %job.run_id, scope = %job.scope, state, detail = %detail, "run ended");
        let elapsed_ms = u64::try_from(job.slot.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let failed_in = match reason {
            pb::DoneReason::Failed if job.slot.info(&job.scope).child_pid != 0 => {
                pb::RunPhase::Codex
            }
            pb::DoneReason::Failed => pb::RunPhase::Prepare,
            _ => pb::RunPhase::Unspecified,
        };
        end::log_summary(&end::Summary {
            scope: &job.scope,
            run_id: &job.run_id,
            runner: self.ctx.runner_name,
            outcome: state,
            duration_ms: elapsed_ms,
            messages: job.messages.len(),
            usage: usage_known.then_some(totals),
        });
        let info = job.slot.info(&job.scope);
        let terminal_line = thread_buttons::terminal_line(
            &self.ctx.profile,
            &self.ctx.home,
            &job.scope,
            &self.ctx.access_lists(),
            &job.messages,
            &info.workspace,
            &info.thread_id,
        );
        self.emit(
            &job,
            Kind::Done(pb::Done {
                reason: reason as i32,
                detail,
                final_text,
                elapsed_ms,
                usage: Some(end::usage_pb(totals)),
                buttons: thread_buttons::buttons(&self.ctx.profile, &info.thread_id),
                terminal_line,
                failed_in: failed_in as i32,
            }),
        );
        self.send_outbox(&job).await;
    }

    /// After the answer: the files Codex left in the workspace's outbox go
    /// to the chat, and what could not go is named with the reason.
    async fn send_outbox(&self, job: &RunJob) {
        let workspace = job.slot.info(&job.scope).workspace;
        if !files_out(job) || workspace.is_empty() {
            return;
        }
        // Most runs leave no outbox: one stat, no blocking task.
        let fcx = std::path::Path::new(&workspace).join(".fcx");
        if std::fs::symlink_metadata(&fcx).is_err() {
            return;
        }
        let staging_dir = self.ctx.home.profile(&self.ctx.profile.name).outgoing_dir();
        let folder = outbox::folder(&self.ctx.profile.name, &job.scope);
        let collected = tokio::task::spawn_blocking(move || {
            crate::staging::collect_garbage(&staging_dir, crate::staging::KEEP);
            outbox::collect(std::path::Path::new(&workspace), &folder, &staging_dir)
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(run_id = %job.run_id, error = %e, "collecting the outbox failed");
            outbox::Collected::default()
        });
        if !collected.files.is_empty() || !collected.refused.is_empty() {
            tracing::info!(run_id = %job.run_id, files = collected.files.len(), refused = collected.refused.len(), "outbox collected");
        }
        for f in collected.files.iter().cloned() {
            self.emit(job, Kind::FileOut(f));
        }
        if let Some(text) = collected.notice() {
            // Not part of the run (it has ended): an ordinary notice.
            self.ctx.emit(
                &job.scope,
                "",
                &job.reply_to,
                Kind::Notice(pb::Notice { text }),
            );
        }
    }

    async fn attempt(&self, job: &RunJob, fresh: bool) -> Attempt {
        let scope = job.scope.as_str();
        let profile = &self.ctx.profile;
        // The sandbox is capped by the lowest role among the senders whose
        // text is in this run (a merged burst can hold several).
        let cap = access::run_cap(lowest_role(&self.ctx, &job.messages));
        let policy = match self.ctx.policy_capped(scope, cap) {
            Ok(p) => p,
            Err(e) => return Attempt::Done(failed(e.to_string())),
        };
        let chosen = crate::policy::effective_access(
            profile,
            &self.ctx.settings(&pb::Scope::continuity_of(scope)),
        );
        if policy.access < chosen {
            self.emit(
                job,
                Kind::Notice(pb::Notice {
                    text: format!(
                        "This chat's access is `{}`, but only the owner's messages run with it: this run has `{}`.",
                        chosen.as_str(),
                        policy.access.as_str()
                    ),
                }),
            );
        }
        let binary = match resolve_binary(profile) {
            Ok(b) => b,
            Err(e) => return Attempt::Done(failed(e)),
        };
        // Resolving the key may run an `exec:` command (bounded, but
        // seconds): not on an async worker thread.
        let env = {
            let (profile, home) = (profile.clone(), self.ctx.home.clone());
            let lark = policy.lark_cli;
            let scope = scope.to_string();
            tokio::task::spawn_blocking(move || {
                let mut env = child_env(&profile, &home, &scope)?;
                crate::lark_cli::project(&profile, &home, lark, &mut env)?;
                Ok::<_, String>(env)
            })
            .await
        };
        let env = match env {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return Attempt::Done(failed(e)),
            Err(e) => {
                return Attempt::Done(failed(format!("cannot prepare Codex's environment: {e}")));
            }
        };
        let next = if fresh {
            Continue::Fresh
        } else {
            self.catalog.next_run(scope, &policy)
        };
        let (resume, base) = match next {
            Continue::Thread(s) => (Some(s.thread_id), s.usage),
            Continue::PolicyChanged => {
                self.emit(
                    job,
                    Kind::Notice(pb::Notice {
                        text: "The workspace, sandbox or Codex identity changed since the last session; starting a new session.".into(),
                    }),
                );
                (None, RunTotals::default())
            }
            Continue::Fresh => (None, RunTotals::default()),
        };
        if let Some(thread) = &resume {
            adopt_legacy(&env, std::slice::from_ref(thread)).await;
        }
        let mut inbounds: Vec<Inbound> = job.messages.iter().map(|m| m.inbound.clone()).collect();
        // Waits for fcxd's downloads (the Queued feedback went out at
        // accept), then copies into the workspace's inbox.
        let media = crate::media::prepare(
            &self.ctx.home.profile(&profile.name).media_dir(),
            &policy.cwd,
            &mut inbounds,
            crate::media::FETCH_WAIT,
            &job.slot.cancel,
        )
        .await;
        let settings = self.ctx.settings(scope);
        let reply_mode = pb::ReplyMode::from_word(crate::settings::reply_mode(profile, &settings))
            .unwrap_or_default();
        // The user hears every reason the prompt lists: never a silent drop.
        // A run card names them itself (RunStarted.skipped_attachments);
        // other reply modes get them as a notice at once.
        if !media.skipped.is_empty() && !fresh && reply_mode != pb::ReplyMode::Card {
            self.emit(
                job,
                Kind::Notice(pb::Notice {
                    text: format!(
                        "Not passed to Codex:\n{}",
                        media
                            .skipped
                            .iter()
                            .map(|l| format!("• {l}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ),
                }),
            );
        }
        if !media.images.is_empty() || media.bytes > 0 {
            tracing::info!(run_id = %job.run_id, images = media.images.len(), bytes = media.bytes, skipped = media.skipped.len(), "attachments ready");
        }
        let cwd_s = policy.cwd.display().to_string();
        let folder = outbox::folder(&profile.name, scope);
        let prompt = prompt::build(
            &PromptContext {
                scope,
                workspace: &cwd_s,
                sandbox: policy.sandbox.as_str(),
                network: policy.network,
                files_out: files_out(job),
                outbox: &folder,
            },
            &inbounds,
        );
        self.emit(
            job,
            Kind::RunStarted(pb::RunStarted {
                thread_id: resume.clone().unwrap_or_default(),
                resumed: resume.is_some(),
                workspace: cwd_s.clone(),
                sandbox: pb::Sandbox::from_word(policy.sandbox.as_str()).unwrap_or_default() as i32,
                model: profile.codex.model.clone().unwrap_or_default(),
                message_count: job.messages.len() as u32,
                message_ids: inbounds.iter().map(|m| m.message_id.clone()).collect(),
                fingerprint: policy.fingerprint.clone(),
                reply_mode: reply_mode as i32,
                tool_display: pb::ToolDisplay::from_word(crate::settings::tool_display(&settings))
                    .unwrap_or_default() as i32,
                skipped_attachments: media.skipped.clone(),
                requester: job
                    .messages
                    .iter()
                    .find(|m| m.inbound.message_id == job.reply_to)
                    .and_then(|m| m.inbound.actor.clone()),
            }),
        );
        job.slot.set_workspace(&cwd_s);
        let spec = RunSpec {
            run_id: job.run_id.clone(),
            prompt,
            cwd: policy.cwd.clone(),
            sandbox: policy.sandbox,
            network: policy.network,
            model: profile.codex.model.clone(),
            resume_thread: resume.clone(),
            images: media.images,
            overrides: profile.codex.overrides.clone(),
            binary,
            env,
            stop_grace: Duration::from_millis(profile.runs.stop_grace_ms),
            approval: profile.codex.approval,
            warm_key: Some(pb::Scope::continuity_of(scope)),
        };
        let result = self.drive(job, spec, &policy, base).await;
        if let Outcome::ThreadNotFound { message } = &result.outcome
            && resume.is_some()
            && !job.slot.cancel.is_cancelled()
        {
            return Attempt::ThreadGone(message.clone());
        }
        Attempt::Done(self.conclude(job, &policy, result, base))
    }

    /// Run the turn, translating runner events into worker events, with the
    /// idle watchdog.
    async fn drive(
        &self,
        job: &RunJob,
        spec: RunSpec,
        policy: &RunPolicy,
        base: RunTotals,
    ) -> RunResult {
        let resumed_from = spec.resume_thread.clone();
        let (ev_tx, mut ev_rx) = mpsc::channel(256);
        // Kept open so the runner can tell "no control requests" from
        // "orchestrator gone"; the exec runner answers NotSupported anyway.
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        if self.runner.caps().steer {
            job.slot.steering.open(
                ctl_tx.clone(),
                SteerContext {
                    scope: job.scope.clone(),
                    workspace: spec.cwd.display().to_string(),
                    sandbox: spec.sandbox.as_str(),
                    network: spec.network,
                },
            );
        } else {
            job.slot.steering.unsupported();
        }
        job.slot.approvals.open(ctl_tx.clone());
        let fut = self.runner.run(
            spec,
            RunIo {
                events: ev_tx,
                control: ctl_rx,
                cancel: job.slot.cancel.clone(),
            },
        );
        tokio::pin!(fut);
        let idle_limit = self.ctx.idle_timeout(&job.scope);
        let mut last_event = Instant::now();
        let mut model =
            reach::ModelWatch::new(self.ctx.profile.runs.model_unreachable_secs, last_event);
        let mut unreachable = None;
        let mut t = Translator {
            ctx: &self.ctx,
            catalog: &self.catalog,
            job,
            policy,
            base,
            resumed_from,
            open: HashMap::new(),
            waiting: approval::Waiting::default(),
            registered: None,
        };
        let result = loop {
            let idle_deadline = idle_limit.map(|l| last_event + l);
            let approval_deadline = t.waiting.next_deadline();
            tokio::select! {
                biased;
                Some(ev) = ev_rx.recv() => {
                    last_event = Instant::now();
                    model.saw(&ev, last_event);
                    t.handle(ev);
                }
                r = &mut fut => {
                    while let Ok(ev) = ev_rx.try_recv() {
                        t.handle(ev);
                    }
                    break r;
                }
                _ = sleep_until(approval_deadline) => {
                    for id in t.waiting.expired(Instant::now()) {
                        approval::expire(&self.ctx, job, &id, t.approval_timeout());
                    }
                }
                _ = sleep_until(model.deadline()), if unreachable.is_none() => {
                    let endpoint = fcx_config::model_endpoint::resolve(&self.ctx.profile, &self.ctx.home);
                    let message = model.failure(endpoint.as_ref().map(|e| e.base_url.as_str()));
                    tracing::warn!(run_id = %job.run_id, "{message}");
                    job.slot.stop(StopReason::ModelUnreachable);
                    unreachable = Some(message);
                }
                _ = sleep_until(idle_deadline) => {
                    tracing::warn!(run_id = %job.run_id, "no Codex event within the idle timeout; stopping the run");
                    job.slot.stop(StopReason::TimedOut);
                    last_event = Instant::now() + Duration::from_secs(3600);
                }
            }
        };
        approval::abandon(&self.ctx, job);
        job.slot.close_steering();
        drop(ctl_tx);
        t.close_open_tools();
        let result = match unreachable {
            // The stop, not Codex's answer to it, is what the user needs.
            Some(message) if job.slot.stop_reason() == Some(StopReason::ModelUnreachable) => {
                RunResult {
                    outcome: Outcome::Failed { message },
                    ..result
                }
            }
            _ => result,
        };
        let mut result = result;
        if t.killed_by_operator() && result.outcome != runner::Outcome::Completed {
            result.outcome = runner::Outcome::Failed {
                message: format!(
                    "Codex was killed by the operator (fcxctl kill r:{}).",
                    job.run_id
                ),
            };
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
        let stop = job.slot.stop_reason();
        let cum = r.usage.map(end::totals).unwrap_or(base);
        // Keep the thread for the next message unless the user asked for a
        // new session; a transient failure never drops a stored thread id.
        if let Some(thread) = &r.thread_id
            && stop != Some(StopReason::NewSession)
        {
            self.catalog
                .save_session(&job.scope, thread, policy, cum, &job.title());
        }
        let idle = self.ctx.idle_timeout(&job.scope).unwrap_or_default();
        let (reason, detail) = end::end_state(stop, &r.outcome, idle);
        if reason == pb::DoneReason::Failed && !r.stderr_tail.is_empty() {
            tracing::warn!(run_id = %job.run_id, stderr = %tail(&r.stderr_tail, 2000), "codex failed");
        }
        Finished {
            reason,
            detail,
            final_text: r.final_text.unwrap_or_default(),
            totals: end::diff(cum, base),
            usage_known: r.usage.is_some(),
        }
    }
}

/// The lowest role among the senders of `messages`, from the access lists
/// in force now (a sender removed since has no role left).
fn lowest_role(ctx: &Ctx, messages: &[QueuedMessage]) -> Role {
    let lists = ctx.access_lists();
    messages
        .iter()
        .map(|m| {
            let actor = m.inbound.actor.as_ref().map_or("", |a| a.id.as_str());
            lists.role(actor, Chat::from_pb(m.inbound.chat_type()))
        })
        .min()
        .unwrap_or(Role::Stranger)
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
