//! Approval requests as cards: what Codex asked, for whom, with signed
//! Approve / Approve for session / Deny buttons (a command reply the
//! gateway renders and signs for the users config `approvers` lets decide),
//! and the timeout that declines a request nobody decided.

use std::time::{Duration, Instant};

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, ApprovalDecision};

use fcx_config::Approvers;

use super::RunJob;
use super::slot::PendingApproval;
use crate::access::{Lists, Role};
use crate::context::Ctx;
use crate::policy::RunPolicy;
use crate::runner::{self, ToolKind};
use crate::util::first_line;

/// What the card and the log say Codex asked for.
pub(crate) struct Asked<'a> {
    pub(crate) approval_id: &'a str,
    pub(crate) kind: ToolKind,
    pub(crate) command: &'a str,
    pub(crate) cwd: &'a str,
    pub(crate) reason: &'a str,
    /// The tool's title as the run card shows it (files for a change).
    pub(crate) title: &'a str,
}

impl Asked<'_> {
    fn what(&self) -> String {
        match self.kind {
            ToolKind::FileChange if self.title.is_empty() => "change files".to_string(),
            ToolKind::FileChange => format!("change {}", first_line(self.title, 200)),
            _ => format!("run `{}`", first_line(self.command, 200).replace('`', "'")),
        }
    }
}

/// Approval requests of one run waiting for a decision, with their
/// deadlines.
#[derive(Default)]
pub(crate) struct Waiting {
    deadlines: Vec<(String, Instant)>,
}

impl Waiting {
    pub(crate) fn add(&mut self, approval_id: &str, timeout: Duration) {
        self.deadlines
            .push((approval_id.to_string(), Instant::now() + timeout));
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().map(|(_, at)| *at).min()
    }

    /// The requests whose time is up, removed.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<String> {
        let (gone, keep) = std::mem::take(&mut self.deadlines)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.deadlines = keep;
        gone.into_iter().map(|(id, _)| id).collect()
    }
}

/// Whether `by` (with `role` in the chat) may decide a request of
/// `actor`'s run under `approvers`.
pub(crate) fn may_decide(approvers: Approvers, actor: &str, by: &str, role: Role) -> bool {
    match approvers {
        Approvers::Actor => !by.is_empty() && by == actor,
        Approvers::Admins => {
            (!by.is_empty() && by == actor) || matches!(role, Role::Admin | Role::Owner)
        }
        Approvers::Owner => role == Role::Owner,
    }
}

/// The users a request's buttons are signed for: the requester (unless
/// only the owner decides), the owner, then the admins; each once.
pub(crate) fn deciders(lists: &Lists, approvers: Approvers, actor: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        if !id.is_empty() && !out.iter().any(|x| x == id) {
            out.push(id.to_string());
        }
    };
    if approvers != Approvers::Owner {
        add(actor);
    }
    if approvers != Approvers::Actor {
        add(lists.owner.as_deref().unwrap_or(""));
    }
    if approvers == Approvers::Admins {
        for a in &lists.admins {
            add(a);
        }
    }
    out
}

/// Records the request on the run's slot and posts its card: a command
/// reply to the run's message, signed for the users who may decide,
/// always a card (buttons exist only there).
pub(crate) fn request(
    ctx: &Ctx,
    job: &RunJob,
    policy: &RunPolicy,
    asked: &Asked<'_>,
    timeout: Duration,
) {
    let actor = job
        .messages
        .last()
        .and_then(|m| m.inbound.actor.clone())
        .unwrap_or_default();
    let what = asked.what();
    let approvers = ctx.profile.codex.approvers;
    job.slot.approvals.add(
        asked.approval_id,
        PendingApproval {
            actor_id: actor.id.clone(),
            what: what.clone(),
            approvers,
        },
    );
    let deciders = deciders(&ctx.access_lists(), approvers, &actor.id);
    tracing::info!(run_id = %job.run_id, scope = %job.scope, approval = asked.approval_id, actor = %actor.id, approvers = approvers.as_str(), %what, "approval requested");
    let risk = if !asked.reason.is_empty() {
        "Codex asks to go beyond its sandbox for this."
    } else if asked.kind == ToolKind::FileChange {
        "Files in the workspace change."
    } else {
        "The command runs in the workspace under the sandbox below."
    };
    let mut body = format!("Codex asks to {what}.\n\n{risk}");
    if !asked.reason.is_empty() {
        body.push_str(&format!(
            "\n\nCodex's reason: {}",
            first_line(asked.reason, 300)
        ));
    }
    let minutes = timeout.as_secs().div_ceil(60);
    body.push_str(&format!("\n\nNo decision within {minutes} min denies it."));
    let cwd = if asked.cwd.is_empty() {
        policy.cwd.display().to_string()
    } else {
        asked.cwd.to_string()
    };
    let field = |name: &str, value: String| pb::Field {
        name: name.into(),
        value,
    };
    let value = |d: ApprovalDecision| format!("{}/{}/{}", job.run_id, asked.approval_id, d.word());
    let button = |d: ApprovalDecision, label: &str, style: pb::ButtonStyle| pb::Button {
        action: pb::ActionKind::Approval as i32,
        label: label.into(),
        value: value(d),
        style: style as i32,
        note: false,
    };
    let reply = pb::CommandReply {
        command: pb::CommandName::Approval as i32,
        title: match asked.kind {
            ToolKind::FileChange => "Codex asks to change files".into(),
            _ => "Codex asks to run a command".into(),
        },
        body,
        ok: true,
        fields: vec![
            field(
                "command",
                if asked.command.is_empty() {
                    asked.title.to_string()
                } else {
                    asked.command.to_string()
                },
            ),
            field("cwd", cwd),
            field("sandbox", policy.sandbox.as_str().into()),
            field("network", if policy.network { "on" } else { "off" }.into()),
            field("run", job.run_id.clone()),
            field(
                "requested by",
                if actor.name.is_empty() {
                    actor.id.clone()
                } else {
                    actor.name.clone()
                },
            ),
        ],
        buttons: vec![
            button(
                ApprovalDecision::Approve,
                "Approve",
                pb::ButtonStyle::Primary,
            ),
            button(
                ApprovalDecision::ApproveForSession,
                "Approve for session",
                pb::ButtonStyle::Default,
            ),
            button(ApprovalDecision::Deny, "Deny", pb::ButtonStyle::Danger),
            // The same deny, with a short text Codex reads as the reason.
            pb::Button {
                note: true,
                ..button(
                    ApprovalDecision::Deny,
                    "Deny with a note",
                    pb::ButtonStyle::Danger,
                )
            },
        ],
        fingerprint: policy.fingerprint.clone(),
        actor: Some(actor),
        reply_mode: pb::ReplyMode::Card as i32,
        deciders,
        ..Default::default()
    };
    ctx.emit(&job.scope, "", &job.reply_to, Kind::CommandReply(reply));
    waiting(
        ctx,
        &job.scope,
        &job.run_id,
        &job.reply_to,
        asked.approval_id,
        &what,
        true,
    );
}

/// Tells the run's card whether it waits on `approval_id`.
pub(crate) fn waiting(
    ctx: &Ctx,
    scope: &str,
    run_id: &str,
    reply_to: &str,
    approval_id: &str,
    what: &str,
    waiting: bool,
) {
    ctx.emit(
        scope,
        run_id,
        reply_to,
        Kind::ApprovalWait(pb::ApprovalWait {
            approval_id: approval_id.to_string(),
            what: what.to_string(),
            waiting,
        }),
    );
}

/// The run ended (stopped, failed, or finished) with requests nobody
/// decided: the runner declined them (a stopped turn) or Codex dropped
/// them; each is logged as such, and the card stops waiting.
pub(crate) fn abandon(ctx: &Ctx, job: &RunJob) {
    for (approval_id, pending) in job.slot.approvals.take() {
        tracing::info!(run_id = %job.run_id, scope = %job.scope, approval = %approval_id, what = %pending.what, stop = ?job.slot.stop_reason(), "approval declined: its run ended undecided");
        waiting(
            ctx,
            &job.scope,
            &job.run_id,
            &job.reply_to,
            &approval_id,
            &pending.what,
            false,
        );
    }
}

/// Nobody decided in time: declined, and the chat told.
pub(crate) fn expire(ctx: &Ctx, job: &RunJob, approval_id: &str, timeout: Duration) {
    let Some((pending, _answer)) = job
        .slot
        .approvals
        .decide(approval_id, runner::ApprovalDecision::Decline)
    else {
        return;
    };
    tracing::info!(run_id = %job.run_id, scope = %job.scope, approval = approval_id, by = "timeout", decision = "deny", what = %pending.what, "approval decided");
    waiting(
        ctx,
        &job.scope,
        &job.run_id,
        &job.reply_to,
        approval_id,
        &pending.what,
        false,
    );
    ctx.emit(
        &job.scope,
        "",
        &job.reply_to,
        Kind::CommandReply(pb::CommandReply {
            command: pb::CommandName::Approval as i32,
            title: format!(
                "Denied: no decision within {} min",
                timeout.as_secs().div_ceil(60)
            ),
            body: format!("Codex was told it may not {}.", pending.what),
            ok: false,
            ..Default::default()
        }),
    );
}

/// The runner's decision for a button's.
pub(crate) fn decision(d: ApprovalDecision) -> Option<runner::ApprovalDecision> {
    match d {
        ApprovalDecision::Approve => Some(runner::ApprovalDecision::Accept),
        ApprovalDecision::ApproveForSession => Some(runner::ApprovalDecision::AcceptForSession),
        ApprovalDecision::Deny => Some(runner::ApprovalDecision::Decline),
        ApprovalDecision::Unspecified => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_expire_in_order_and_once() {
        let mut w = Waiting::default();
        assert_eq!(w.next_deadline(), None);
        w.add("a", Duration::from_secs(0));
        w.add("b", Duration::from_secs(3600));
        assert!(w.next_deadline().is_some());
        assert_eq!(w.expired(Instant::now()), vec!["a".to_string()]);
        assert!(w.expired(Instant::now()).is_empty());
        assert_eq!(w.deadlines.len(), 1);
    }

    #[test]
    fn who_may_decide_follows_the_approvers_setting() {
        use Approvers::*;
        let cases = [
            (Actor, "u1", Role::User, true),
            (Actor, "a1", Role::Admin, false),
            (Actor, "o1", Role::Owner, false),
            (Admins, "u1", Role::User, true),
            (Admins, "u2", Role::User, false),
            (Admins, "a1", Role::Admin, true),
            (Admins, "o1", Role::Owner, true),
            (Owner, "u1", Role::User, false),
            (Owner, "a1", Role::Admin, false),
            (Owner, "o1", Role::Owner, true),
        ];
        for (approvers, by, role, may) in cases {
            assert_eq!(
                may_decide(approvers, "u1", by, role),
                may,
                "{approvers:?} {by}"
            );
        }
        assert!(!may_decide(Actor, "", "", Role::Stranger));
    }

    #[test]
    fn buttons_are_signed_for_exactly_who_may_decide() {
        let lists = Lists {
            owner: Some("o1".into()),
            admins: ["a1".to_string(), "a2".to_string()].into_iter().collect(),
            ..Default::default()
        };
        assert_eq!(deciders(&lists, Approvers::Actor, "u1"), vec!["u1"]);
        assert_eq!(
            deciders(&lists, Approvers::Admins, "u1"),
            vec!["u1", "o1", "a1", "a2"]
        );
        assert_eq!(
            deciders(&lists, Approvers::Admins, "o1"),
            vec!["o1", "a1", "a2"]
        );
        assert_eq!(deciders(&lists, Approvers::Owner, "u1"), vec!["o1"]);
    }

    #[test]
    fn every_button_maps_to_a_runner_decision() {
        assert_eq!(
            decision(ApprovalDecision::Approve),
            Some(runner::ApprovalDecision::Accept)
        );
        assert_eq!(
            decision(ApprovalDecision::ApproveForSession),
            Some(runner::ApprovalDecision::AcceptForSession)
        );
        assert_eq!(
            decision(ApprovalDecision::Deny),
            Some(runner::ApprovalDecision::Decline)
        );
        assert_eq!(decision(ApprovalDecision::Unspecified), None);
    }
}
