//! Decisions on approval cards (`Act` with APPROVAL): who may decide, the
//! decision taken to the running turn once, and the outcome answered under
//! the card.
//!
//! A deny's note: app-server's approval answer (codex 0.169.0) is a bare
//! decision with no room for a reason, so the note goes into the waiting
//! turn as a steered message first (`turn/steer`, built like any chat
//! message), then the decline: Codex reads the refusal as the tool's
//! result and the note as the user's next words in the same turn.

use fcx_proto::v1::{self as pb, ApprovalDecision};

use super::Deps;
use super::cards::action_inbound;
use super::text::actor_id;
use crate::access::Role;
use crate::run::approval;

const GONE: &str =
    "This request is no longer waiting: it was decided, timed out, or its run ended.";
const NOT_YOURS: &str = "You may not decide this request (config `approvers`).";
const STALE: &str = "This card is out of date: the workspace or access changed since Codex asked.";

pub(super) struct Approvals<'a>(pub(super) &'a Deps);

impl Approvals<'_> {
    /// fcxd could not post the request's card (only fcxd sends this, over
    /// the worker's private socket): nobody can decide it, so it is
    /// declined now and the run says why.
    fn undeliverable(&self, a: &pb::Action, ap: &pb::ApprovalAction) -> pb::ActResult {
        let d = self.0;
        let Some(slot) = d.sched.slot(&a.scope, &ap.run_id) else {
            return pb::ActResult {
                ok: false,
                message: GONE.into(),
            };
        };
        let Some((pending, _answer)) = slot
            .approvals
            .decide(&ap.approval_id, crate::runner::ApprovalDecision::Decline)
        else {
            return pb::ActResult {
                ok: false,
                message: GONE.into(),
            };
        };
        tracing::info!(scope = %a.scope, run_id = %ap.run_id, approval = %ap.approval_id, by = "undeliverable", decision = "deny", what = %pending.what, "approval decided");
        let reply_to = slot.reply_to();
        approval::waiting(
            &d.ctx,
            &a.scope,
            &ap.run_id,
            &reply_to,
            &ap.approval_id,
            &pending.what,
            false,
        );
        d.ctx.emit(
            &a.scope,
            &ap.run_id,
            &reply_to,
            pb::worker_event::Kind::Error(pb::RunError {
                message: format!(
                    "The approval card could not be posted, so Codex was told no: {}.",
                    pending.what
                ),
                fatal: false,
            }),
        );
        pb::ActResult {
            ok: true,
            message: "declined".into(),
        }
    }

    pub(super) fn decide(&self, a: &pb::Action) -> pb::ActResult {
        let d = self.0;
        let refused = |message: &str| pb::ActResult {
            ok: false,
            message: message.into(),
        };
        let Some(pb::action::Kind::Approval(ap)) = &a.kind else {
            return refused("not an approval");
        };
        if ap.undeliverable {
            return self.undeliverable(a, ap);
        }
        let Some(decision) = approval::decision(ap.decision()) else {
            return refused("no decision given");
        };
        let word = ap.decision().word();
        let probe = action_inbound(d, a, &format!("approval {word}"));
        let by = actor_id(&probe).to_string();
        let Some(slot) = d.sched.slot(&a.scope, &ap.run_id) else {
            d.replies
                .text(&probe, "approval", false, GONE, String::new());
            return refused(GONE);
        };
        let Some(pending) = slot.approvals.get(&ap.approval_id) else {
            d.replies
                .text(&probe, "approval", false, GONE, String::new());
            return refused(GONE);
        };
        let role = d.gate.role_of(&probe);
        if !approval::may_decide(pending.approvers, &pending.actor_id, &by, role) {
            tracing::warn!(scope = %a.scope, run_id = %ap.run_id, approval = %ap.approval_id, by, approvers = pending.approvers.as_str(), "approval refused: not one who may decide");
            return refused(NOT_YOURS);
        }
        let current = d
            .ctx
            .policy(&a.scope)
            .map(|p| p.fingerprint)
            .unwrap_or_default();
        if a.fingerprint.is_empty() || current != a.fingerprint {
            d.replies
                .text(&probe, "approval", false, STALE, String::new());
            return refused(STALE);
        }
        let note = match ap.decision() {
            ApprovalDecision::Deny => ap.note.trim(),
            _ => "",
        };
        // Queued on the run's control channel ahead of the decision, so
        // Codex has the note before it reads the refusal.
        // Only the owner's words join a full-access turn (access::run_cap).
        let note_sent =
            !note.is_empty() && (!slot.steering.full_access() || role == Role::Owner) && {
                let mut m = probe.clone();
                m.text = format!(
                    "(I denied your request to {}.) {note}",
                    pending.what.trim_end_matches('.')
                );
                matches!(
                    slot.steering.steer(&m, Vec::new()),
                    crate::run::SteerAttempt::Sent(_)
                )
            };
        let Some((pending, _answer)) = slot.approvals.decide(&ap.approval_id, decision) else {
            d.replies
                .text(&probe, "approval", false, GONE, String::new());
            return refused(GONE);
        };
        tracing::info!(
            scope = %a.scope,
            run_id = %ap.run_id,
            approval = %ap.approval_id,
            by,
            decision = word,
            what = %pending.what,
            note = !note.is_empty(),
            note_sent,
            "approval decided"
        );
        approval::waiting(
            &d.ctx,
            &a.scope,
            &ap.run_id,
            &slot.reply_to(),
            &ap.approval_id,
            &pending.what,
            false,
        );
        let who = probe
            .actor
            .as_ref()
            .map(|x| {
                if x.name.is_empty() {
                    x.id.clone()
                } else {
                    x.name.clone()
                }
            })
            .unwrap_or_default();
        let (ok, title) = match ap.decision() {
            ApprovalDecision::Approve => (true, format!("Approved by {who}")),
            ApprovalDecision::ApproveForSession => {
                (true, format!("Approved for this session by {who}"))
            }
            _ => (false, format!("Denied by {who}")),
        };
        let mut body = format!(
            "Codex was told: {} — {}.",
            word.replace('_', " "),
            pending.what
        );
        if note_sent {
            body.push_str(&format!("\n\nWith the note: {note}"));
        } else if !note.is_empty() {
            body.push_str("\n\nThe note could not be passed on: the turn no longer takes input.");
        }
        d.replies.text(&probe, "approval", ok, &title, body);
        pb::ActResult {
            ok: true,
            message: title,
        }
    }
}
