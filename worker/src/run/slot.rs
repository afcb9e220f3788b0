//! One active run's live handle, shared by the scheduler (which lists and
//! stops it) and the run driver (which fills in what it learns).

use std::path::PathBuf;
use std::sync::Mutex;

use fcx_proto::v1::{self as pb, Inbound};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::prompt::{self, PromptContext};
use crate::runner::{ApprovalDecision, ControlError, RunControl};

/// Why a run was stopped from outside; the first reason wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    User,
    NewSession,
    TimedOut,
    Shutdown,
    /// A message arrived and the scope interrupts for it (during_run =
    /// interrupt).
    Superseded,
}

/// Whether a message can be added to the running turn.
#[derive(Debug, Default)]
enum Steering {
    /// The run has not reached its runner yet, or has left it.
    #[default]
    Closed,
    /// The runner cannot take input into a running turn (exec).
    Unsupported,
    Open {
        control: mpsc::Sender<RunControl>,
        /// What the steered message's prompt says about where it runs, as
        /// for the run's own prompt.
        context: SteerContext,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct SteerContext {
    pub(crate) scope: String,
    pub(crate) workspace: String,
    pub(crate) sandbox: &'static str,
    pub(crate) network: bool,
}

/// What became of an attempt to add a message to the running turn.
#[derive(Debug)]
pub(crate) enum SteerAttempt {
    /// Handed to the runner; the answer says whether Codex took it.
    Sent(oneshot::Receiver<Result<(), ControlError>>),
    /// The runner cannot steer (the exec runner).
    Unsupported,
    /// Not now: the run is starting or ending.
    Closed,
}

#[derive(Debug, Default)]
struct Live {
    stop: Option<StopReason>,
    child_pid: Option<u32>,
    thread_id: Option<String>,
    workspace: String,
    /// Messages the run answers, steered ones included.
    messages: u32,
    /// The message its events reply to.
    reply_to: String,
    steering: Steering,
    /// The run's control channel (approvals), while its runner runs.
    control: Option<mpsc::Sender<RunControl>>,
    /// Approval requests waiting for a person: approval id → what was asked.
    approvals: Vec<(String, PendingApproval)>,
}

/// An approval request waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingApproval {
    /// The user whose message started the run (the one the card's buttons
    /// are signed for).
    pub(crate) actor_id: String,
    /// One line: what Codex asked to do.
    pub(crate) what: String,
    /// Who may decide it (config `approvers` when it was asked).
    pub(crate) approvers: fcx_config::Approvers,
}

#[derive(Debug)]
pub(crate) struct RunSlot {
    pub(crate) run_id: String,
    pub(crate) started_at_ms: i64,
    pub(crate) cancel: CancellationToken,
    live: Mutex<Live>,
}

impl RunSlot {
    pub(crate) fn new(
        run_id: String,
        started_at_ms: i64,
        cancel: CancellationToken,
        workspace: String,
    ) -> Self {
        RunSlot {
            run_id,
            started_at_ms,
            cancel,
            live: Mutex::new(Live {
                workspace,
                ..Default::default()
            }),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record why (unless a reason is already set) and cancel the run.
    pub(crate) fn stop(&self, why: StopReason) {
        self.live().stop.get_or_insert(why);
        self.cancel.cancel();
    }

    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        self.live().stop
    }

    pub(crate) fn set_child(&self, pid: u32) {
        self.live().child_pid = Some(pid);
    }

    pub(crate) fn set_thread(&self, thread_id: &str) {
        self.live().thread_id = Some(thread_id.to_string());
    }

    pub(crate) fn set_workspace(&self, workspace: &str) {
        self.live().workspace = workspace.to_string();
    }

    /// The messages the run starts with and the one its events reply to.
    pub(crate) fn set_batch(&self, messages: u32, reply_to: &str) {
        let mut l = self.live();
        l.messages = messages;
        l.reply_to = reply_to.to_string();
    }

    pub(crate) fn reply_to(&self) -> String {
        self.live().reply_to.clone()
    }

    /// One more message joined the running turn; how many it answers now.
    pub(crate) fn add_message(&self) -> u32 {
        let mut l = self.live();
        l.messages += 1;
        l.messages
    }

    /// The runner takes steering requests through `control`.
    pub(crate) fn open_steering(&self, control: mpsc::Sender<RunControl>, context: SteerContext) {
        self.live().steering = Steering::Open { control, context };
    }

    /// The runner cannot steer.
    pub(crate) fn steering_unsupported(&self) {
        self.live().steering = Steering::Unsupported;
    }

    /// The runner returned: nothing more can join the turn, and nothing
    /// is left to decide.
    pub(crate) fn close_steering(&self) {
        let mut l = self.live();
        l.steering = Steering::Closed;
        l.control = None;
        l.approvals.clear();
    }

    /// Decisions on approval requests go through `control`.
    pub(crate) fn open_control(&self, control: mpsc::Sender<RunControl>) {
        self.live().control = Some(control);
    }

    pub(crate) fn add_approval(&self, approval_id: &str, pending: PendingApproval) {
        self.live()
            .approvals
            .push((approval_id.to_string(), pending));
    }

    /// The requests still waiting, removed (the run is ending).
    pub(crate) fn take_approvals(&self) -> Vec<(String, PendingApproval)> {
        std::mem::take(&mut self.live().approvals)
    }

    pub(crate) fn approval(&self, approval_id: &str) -> Option<PendingApproval> {
        self.live()
            .approvals
            .iter()
            .find(|(id, _)| id == approval_id)
            .map(|(_, p)| p.clone())
    }

    /// Take the decision on a pending request to the runner; `None` when
    /// it is no longer pending (decided, timed out, or the run ended). A
    /// request is decided once.
    pub(crate) fn decide(
        &self,
        approval_id: &str,
        decision: ApprovalDecision,
    ) -> Option<(PendingApproval, oneshot::Receiver<Result<(), ControlError>>)> {
        let mut l = self.live();
        let at = l.approvals.iter().position(|(id, _)| id == approval_id)?;
        let control = l.control.clone()?;
        let (_, pending) = l.approvals.remove(at);
        let (reply, answer) = oneshot::channel();
        control
            .try_send(RunControl::Approve {
                request_id: approval_id.to_string(),
                decision,
                reply,
            })
            .ok()?;
        Some((pending, answer))
    }

    /// Whether the running turn has full access: only the owner's text may
    /// join it (see `access::run_cap`).
    pub(crate) fn full_access(&self) -> bool {
        matches!(
            &self.live().steering,
            Steering::Open { context, .. }
                if context.sandbox == crate::runner::Sandbox::DangerFullAccess.as_str()
        )
    }

    /// Try to add `message` to the running turn, as a prompt of its own
    /// (built like the run's, so chat text cannot pose as the bridge).
    pub(crate) fn steer(&self, message: &Inbound, images: Vec<PathBuf>) -> SteerAttempt {
        let l = self.live();
        let (control, context) = match &l.steering {
            Steering::Closed => return SteerAttempt::Closed,
            Steering::Unsupported => return SteerAttempt::Unsupported,
            Steering::Open { control, context } => (control, context),
        };
        if self.cancel.is_cancelled() {
            return SteerAttempt::Closed;
        }
        let text = prompt::build(
            &PromptContext {
                scope: &context.scope,
                workspace: &context.workspace,
                sandbox: context.sandbox,
                network: context.network,
                // The turn's first prompt said how to hand back files.
                files_out: false,
            },
            std::slice::from_ref(message),
        );
        let (reply, answer) = oneshot::channel();
        match control.try_send(RunControl::Steer {
            text,
            images,
            reply,
        }) {
            Ok(()) => SteerAttempt::Sent(answer),
            Err(_) => SteerAttempt::Closed,
        }
    }

    /// Whether this run's runner cannot steer at all (the exec runner).
    pub(crate) fn cannot_steer(&self) -> bool {
        matches!(self.live().steering, Steering::Unsupported)
    }

    /// The workspace of the turn a message can be steered into now (its
    /// attachments are placed there before the steer); `None` when the
    /// turn cannot take one.
    pub(crate) fn steer_workspace(&self) -> Option<String> {
        match &self.live().steering {
            Steering::Open { context, .. } if !self.cancel.is_cancelled() => {
                Some(context.workspace.clone())
            }
            _ => None,
        }
    }

    pub(crate) fn info(&self, scope: &str) -> pb::RunInfo {
        let l = self.live();
        pb::RunInfo {
            run_id: self.run_id.clone(),
            scope: scope.to_string(),
            thread_id: l.thread_id.clone().unwrap_or_default(),
            started_at_ms: self.started_at_ms,
            child_pid: l.child_pid.unwrap_or(0),
            workspace: l.workspace.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stop_reason_wins_and_every_stop_cancels() {
        let s = RunSlot::new("r1".into(), 5, CancellationToken::new(), "/w".into());
        assert_eq!(s.stop_reason(), None);
        s.stop(StopReason::NewSession);
        s.stop(StopReason::Shutdown);
        assert_eq!(s.stop_reason(), Some(StopReason::NewSession));
        assert!(s.cancel.is_cancelled());
    }

    #[tokio::test]
    async fn steering_follows_the_runner_and_ends_with_it() {
        let s = RunSlot::new("r1".into(), 5, CancellationToken::new(), "/w".into());
        let m = Inbound {
            text: "also this".into(),
            ..Default::default()
        };
        assert!(matches!(s.steer(&m, Vec::new()), SteerAttempt::Closed));
        s.steering_unsupported();
        assert!(matches!(s.steer(&m, Vec::new()), SteerAttempt::Unsupported));
        let (tx, mut rx) = mpsc::channel(1);
        s.open_steering(
            tx,
            SteerContext {
                scope: "chat:a".into(),
                workspace: "/w".into(),
                sandbox: "read-only",
                network: false,
            },
        );
        let SteerAttempt::Sent(answer) = s.steer(&m, Vec::new()) else {
            panic!("not sent")
        };
        let Some(RunControl::Steer { text, reply, .. }) = rx.recv().await else {
            panic!("no steer")
        };
        assert!(text.contains("also this"), "{text}");
        assert!(text.contains("scope: chat:a"), "{text}");
        reply.send(Ok(())).expect("answer");
        assert_eq!(answer.await.expect("answered"), Ok(()));
        s.set_batch(2, "m1");
        assert_eq!(s.add_message(), 3);
        assert_eq!(s.reply_to(), "m1");
        s.close_steering();
        assert!(matches!(s.steer(&m, Vec::new()), SteerAttempt::Closed));
    }

    #[test]
    fn info_reflects_what_the_run_learned() {
        let s = RunSlot::new("r1".into(), 5, CancellationToken::new(), "/w".into());
        s.set_child(42);
        s.set_thread("t-1");
        s.set_workspace("/w2");
        let i = s.info("chat:a");
        assert_eq!(
            (i.run_id.as_str(), i.scope.as_str(), i.thread_id.as_str()),
            ("r1", "chat:a", "t-1")
        );
        assert_eq!((i.child_pid, i.started_at_ms), (42, 5));
        assert_eq!(i.workspace, "/w2");
    }
}
