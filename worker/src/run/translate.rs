//! Runner events → worker events for one run: the only place that knows
//! both vocabularies, so a new runner changes nothing past it.

use std::collections::HashMap;

use fcx_proto::v1 as pb;
use fcx_proto::v1::worker_event::Kind;

use super::end::{diff, totals, usage_pb};
use super::{RunJob, StopReason};
use crate::catalog::Catalog;
use crate::context::Ctx;
use crate::policy::RunPolicy;
use crate::runner::{self, RunnerEvent};
use crate::store::RunTotals;
use crate::util::{first_line, tail};

/// Output kept per tool in events: the card shows a tail, never megabytes.
const TOOL_OUTPUT_TAIL: usize = 4000;

pub(crate) struct Translator<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) catalog: &'a Catalog,
    pub(crate) job: &'a RunJob,
    pub(crate) policy: &'a RunPolicy,
    /// The thread's cumulative usage before this run.
    pub(crate) base: RunTotals,
    /// The thread this run asked to continue.
    pub(crate) resumed_from: Option<String>,
    /// Tools started and not yet ended: item id → (kind, title).
    pub(crate) open: HashMap<String, (pb::ToolKind, String)>,
    /// Approval requests waiting for a person.
    pub(crate) waiting: super::approval::Waiting,
    /// The Codex child's entry in the process registry (`r:RUN`), so
    /// `fcxctl kill` can stop a stuck child; removed when the run ends.
    pub(crate) registered: Option<fcx_config::registry::Registration>,
}

impl Translator<'_> {
    pub(crate) fn approval_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ctx.profile.codex.approval_timeout_secs)
    }

    fn register(&mut self, pid: u32) {
        let entry = fcx_config::registry::Entry {
            id: format!("r:{}", self.job.run_id),
            kind: "codex".into(),
            pid,
            profile: self.ctx.profile.name.clone(),
            started_at_ms: crate::util::now_ms(),
            start_ticks: fcx_config::registry::start_ticks(pid),
        };
        // A run whose child cannot be registered still runs; only
        // `fcxctl kill` cannot name it.
        match fcx_config::registry::register(&self.ctx.home, &entry) {
            Ok(r) => self.registered = Some(r),
            Err(e) => {
                tracing::warn!(run_id = %self.job.run_id, error = %e, "cannot register the codex child")
            }
        }
    }

    /// Whether an operator killed this run's child (`fcxctl kill`).
    pub(crate) fn killed_by_operator(&self) -> bool {
        self.registered.as_ref().is_some_and(|r| r.was_killed())
    }

    fn emit(&self, kind: Kind) {
        self.ctx
            .emit(&self.job.scope, &self.job.run_id, &self.job.reply_to, kind);
    }

    pub(crate) fn handle(&mut self, ev: RunnerEvent) {
        let job = self.job;
        match ev {
            RunnerEvent::Spawned { pid } => {
                let start = runner::process::process_start_time(pid);
                if let Err(e) = self.ctx.store.runs().set_run_child(&job.run_id, pid, start) {
                    tracing::error!(error = %e, "cannot record the child pid");
                }
                job.slot.set_child(pid);
                self.register(pid);
                tracing::info!(run_id = %job.run_id, pid, "codex child spawned");
            }
            RunnerEvent::ThreadStarted { thread_id } => self.thread_started(thread_id),
            RunnerEvent::TurnStarted | RunnerEvent::AgentMessage { .. } => {}
            RunnerEvent::TextDelta { item_id, delta } => {
                self.emit(Kind::TextDelta(pb::TextDelta { item_id, delta }));
            }
            RunnerEvent::ReasoningDelta { item_id, delta } => {
                self.emit(Kind::ReasoningDelta(pb::ReasoningDelta { item_id, delta }));
            }
            RunnerEvent::ToolOutputDelta { item_id, delta } => {
                self.emit(Kind::ToolOutputDelta(pb::ToolOutputDelta {
                    item_id,
                    delta,
                }));
            }
            RunnerEvent::ToolStarted {
                item_id,
                kind,
                title,
                changes,
            } => {
                let k = tool_kind(kind);
                self.open.insert(item_id.clone(), (k, title.clone()));
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
                self.open.remove(&item_id);
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
            RunnerEvent::ApprovalRequested {
                approval_id,
                item_id,
                kind,
                command,
                cwd,
                reason,
            } => {
                let title = self
                    .open
                    .get(&item_id)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_default();
                let timeout = self.approval_timeout();
                super::approval::request(
                    self.ctx,
                    job,
                    self.policy,
                    &super::approval::Asked {
                        approval_id: &approval_id,
                        kind,
                        command: &command,
                        cwd: &cwd,
                        reason: &reason,
                        title: &title,
                    },
                    timeout,
                );
                self.waiting.add(&approval_id, timeout);
            }
            RunnerEvent::Warning { message } | RunnerEvent::Retrying { message } => {
                self.emit(Kind::Error(pb::RunError {
                    message: first_line(&message, 500),
                    fatal: false,
                }));
            }
        }
    }

    fn thread_started(&mut self, thread_id: String) {
        let job = self.job;
        // Codex 0.169.0 quietly starts a new thread when asked to resume an
        // id it cannot parse: never pretend it continued.
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
        if let Err(e) = self
            .ctx
            .store
            .runs()
            .set_run_thread(&job.run_id, &thread_id)
        {
            tracing::error!(error = %e, "cannot record the thread id");
        }
        if job.slot.stop_reason() != Some(StopReason::NewSession) {
            // Saved now, so the thread continues even if this worker dies
            // before the turn ends.
            self.catalog
                .save_session(&job.scope, &thread_id, self.policy, self.base, &job.title());
        }
        job.slot.set_thread(&thread_id);
        self.emit(Kind::ThreadBound(pb::ThreadBound { thread_id, resumed }));
    }

    /// Close the items Codex started but never finished (an interrupted
    /// turn leaves them open), so no surface shows a tool spinning forever.
    pub(crate) fn close_open_tools(&mut self) {
        for (item_id, (kind, title)) in std::mem::take(&mut self.open) {
            self.emit(Kind::ToolEnd(pb::ToolEnd {
                item_id,
                kind: kind as i32,
                title,
                status: pb::ToolStatus::Abandoned as i32,
                ..Default::default()
            }));
        }
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
        kind: pb::FileChangeKind::from_word(&c.kind).unwrap_or_default() as i32,
    }
}
