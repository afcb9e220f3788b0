//! Decisions on approval cards (`Act` with APPROVAL): who may decide, the
//! decision taken to the running turn once, and the outcome answered under
//! the card.

use fcx_proto::v1::{self as pb, ApprovalDecision};

use super::Deps;
use super::cards::action_inbound;
use super::text::actor_id;
use crate::access::Role;
use crate::run::approval;

const GONE: &str =
    "This request is no longer waiting: it was decided, timed out, or its run ended.";
const NOT_YOURS: &str = "Only the user who started this run, or an admin, may decide.";
const STALE: &str = "This card is out of date: the workspace or access changed since Codex asked.";

pub(super) struct Approvals<'a>(pub(super) &'a Deps);

impl Approvals<'_> {
    pub(super) fn decide(&self, a: &pb::Action) -> pb::ActResult {
        let d = self.0;
        let refused = |message: &str| pb::ActResult {
            ok: false,
            message: message.into(),
        };
        let Some(pb::action::Kind::Approval(ap)) = &a.kind else {
            return refused("not an approval");
        };
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
        if by != pending.actor_id && !matches!(role, Role::Admin | Role::Owner) {
            tracing::warn!(scope = %a.scope, run_id = %ap.run_id, by, "approval refused: not the requester or an admin");
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
            "approval decided"
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
        d.replies.text(
            &probe,
            "approval",
            ok,
            &title,
            format!(
                "Codex was told: {} — {}.",
                word.replace('_', " "),
                pending.what
            ),
        );
        pb::ActResult {
            ok: true,
            message: title,
        }
    }
}
