//! One active run's live handle, shared by the scheduler (which lists and
//! stops it) and the run driver (which fills in what it learns).

mod approvals;
mod steering;

use std::sync::Mutex;

use fcx_proto::v1 as pb;
use tokio_util::sync::CancellationToken;

pub(crate) use approvals::{PendingApproval, PendingApprovals};
pub(crate) use steering::{SteerAttempt, SteerContext, Steering};

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
    /// Codex kept retrying a model API it could not reach.
    ModelUnreachable,
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
}

#[derive(Debug)]
pub(crate) struct RunSlot {
    pub(crate) run_id: String,
    pub(crate) started_at_ms: i64,
    /// The start on the monotonic clock: the run's length as shown to the
    /// user, which a wall-clock step mid-run must not change by an hour.
    pub(crate) started: std::time::Instant,
    pub(crate) cancel: CancellationToken,
    /// Adding messages to the running turn.
    pub(crate) steering: Steering,
    /// Approval requests waiting for a person.
    pub(crate) approvals: PendingApprovals,
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
            started: std::time::Instant::now(),
            steering: Steering::new(cancel.clone()),
            approvals: PendingApprovals::default(),
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

    /// The runner returned: nothing more can join the turn, and nothing
    /// is left to decide.
    pub(crate) fn close_steering(&self) {
        self.steering.close();
        self.approvals.close();
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
    use crate::runner::RunControl;
    use fcx_proto::v1::Inbound;
    use tokio::sync::mpsc;

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
        assert!(matches!(
            s.steering.steer(&m, Vec::new()),
            SteerAttempt::Closed
        ));
        s.steering.unsupported();
        assert!(matches!(
            s.steering.steer(&m, Vec::new()),
            SteerAttempt::Unsupported
        ));
        let (tx, mut rx) = mpsc::channel(1);
        s.steering.open(
            tx,
            SteerContext {
                scope: "chat:a".into(),
                workspace: "/w".into(),
                sandbox: "read-only",
                network: false,
            },
        );
        let SteerAttempt::Sent(answer) = s.steering.steer(&m, Vec::new()) else {
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
        assert!(matches!(
            s.steering.steer(&m, Vec::new()),
            SteerAttempt::Closed
        ));
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
