//! A run's approval requests waiting for a person, and the control channel
//! their decisions go to the runner through. A request is decided once.

use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::runner::{ApprovalDecision, ControlError, RunControl};

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

#[derive(Debug, Default)]
struct State {
    /// The run's control channel, while its runner runs.
    control: Option<mpsc::Sender<RunControl>>,
    /// Approval id → what was asked.
    pending: Vec<(String, PendingApproval)>,
}

/// The approval requests of one run.
#[derive(Debug, Default)]
pub(crate) struct PendingApprovals {
    state: Mutex<State>,
}

impl PendingApprovals {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decisions on approval requests go through `control`.
    pub(crate) fn open(&self, control: mpsc::Sender<RunControl>) {
        self.lock().control = Some(control);
    }

    pub(crate) fn add(&self, approval_id: &str, pending: PendingApproval) {
        self.lock().pending.push((approval_id.to_string(), pending));
    }

    /// The requests still waiting, removed (the run is ending).
    pub(crate) fn take(&self) -> Vec<(String, PendingApproval)> {
        std::mem::take(&mut self.lock().pending)
    }

    pub(crate) fn get(&self, approval_id: &str) -> Option<PendingApproval> {
        self.lock()
            .pending
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
        let mut l = self.lock();
        let at = l.pending.iter().position(|(id, _)| id == approval_id)?;
        let control = l.control.clone()?;
        let (_, pending) = l.pending.remove(at);
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

    /// The runner returned: nothing is left to decide.
    pub(super) fn close(&self) {
        let mut l = self.lock();
        l.control = None;
        l.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingApproval {
        PendingApproval {
            actor_id: "ou_a".into(),
            what: "rm -rf build".into(),
            approvers: fcx_config::Approvers::Admins,
        }
    }

    #[tokio::test]
    async fn a_request_is_decided_once_through_the_control_channel_and_not_after_close() {
        let a = PendingApprovals::default();
        a.add("ap1", pending());
        assert_eq!(a.get("ap1"), Some(pending()));
        // No control channel yet: nothing is sent and the request stays.
        assert!(a.decide("ap1", ApprovalDecision::Accept).is_none());
        assert_eq!(a.get("ap1"), Some(pending()));

        let (tx, mut rx) = mpsc::channel(4);
        a.open(tx);
        let (p, _answer) = a.decide("ap1", ApprovalDecision::Accept).expect("pending");
        assert_eq!(p, pending());
        let Some(RunControl::Approve {
            request_id,
            decision,
            ..
        }) = rx.recv().await
        else {
            panic!("no decision sent")
        };
        assert_eq!(
            (request_id.as_str(), decision),
            ("ap1", ApprovalDecision::Accept)
        );
        assert!(
            a.decide("ap1", ApprovalDecision::Decline).is_none(),
            "decided once"
        );

        a.add("ap2", pending());
        a.close();
        assert!(a.get("ap2").is_none());
        assert!(a.decide("ap2", ApprovalDecision::Accept).is_none());
    }
}
