//! Session commands: `/stop`, `/exit`, `/new`, `/resume`.

use fcx_proto::v1::{self as pb, Inbound};

use super::Deps;
use super::text::{ago, resume_label};
use crate::catalog::{Catalog, ResumeRefusal};
use crate::context::Ctx;
use crate::replies::Replies;
use crate::run::StopReason;
use crate::runner::app_server::threads::{self, ListedThread};
use crate::util::now_ms;

pub(super) struct Session<'a>(pub(super) &'a Deps);

impl Session<'_> {
    /// `/stop`: the run of this scope.
    pub(super) fn stop_here(&self, inbound: &Inbound) {
        let d = self.0;
        let title = if d.sched.stop(&inbound.scope, None, StopReason::User) {
            "Stopping the current run"
        } else {
            "Nothing is running here"
        };
        d.replies.text(inbound, "stop", true, title, String::new());
    }

    /// `/stop <run or scope>`, `/exit <run or scope>`: any run (admins).
    pub(super) fn stop_run(&self, inbound: &Inbound, target: &str) {
        let d = self.0;
        let name = if matches!(inbound.text.trim_start().get(..5), Some("/exit")) {
            "exit"
        } else {
            "stop"
        };
        match d.sched.find_run(target) {
            Some((s, run)) => {
                d.sched.stop(&s, Some(&run), StopReason::User);
                d.replies.text(
                    inbound,
                    name,
                    true,
                    &format!("Stopping run {run}"),
                    format!("in {s}"),
                );
            }
            None => d.replies.text(
                inbound,
                name,
                false,
                &format!("No active run {target}"),
                "Send /ps for the runs in progress.".into(),
            ),
        }
    }

    /// `/new`: stop the run and forget the thread (it stays resumable).
    pub(super) fn new_session(&self, inbound: &Inbound) {
        let d = self.0;
        let scope = inbound.scope.as_str();
        let stopped = d.sched.stop(scope, None, StopReason::NewSession);
        let cleared = match d.ctx.store.sessions().clear_session(scope) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(scope, error = %e, "cannot clear the session");
                false
            }
        };
        let mut body = String::new();
        if stopped {
            body.push_str("The running turn was stopped. ");
        }
        body.push_str(if cleared {
            "The next message starts a new Codex session. /resume brings the previous one back."
        } else {
            "There was no session yet; the next message starts one."
        });
        d.replies.text(inbound, "new", true, "New session", body);
    }

    /// `/resume`: the sessions that may continue here, each with a code
    /// and a button. Under the app-server runner the list is checked
    /// against Codex's own (`thread/list` for the workspace), so a thread
    /// archived or deleted in Codex is not offered.
    pub(super) fn resume_list(&self, inbound: &Inbound) {
        let d = self.0;
        let scope = inbound.scope.as_str();
        let p = match d.ctx.policy(scope) {
            Ok(p) => p,
            Err(e) => {
                return d
                    .replies
                    .text(inbound, "resume", false, "Cannot resume", e.to_string());
            }
        };
        let (compatible, hidden) = match d.catalog.resumable(scope, &p) {
            Ok(v) => v,
            Err(e) => return d.replies.store_failed(inbound, "resume", e),
        };
        let listed = Listed { compatible, hidden };
        if d.ctx.profile.codex.runner != fcx_config::RunnerKind::AppServer {
            return resume_reply(&d.ctx, &d.catalog, &d.replies, inbound, listed, None);
        }
        let spec = match crate::run::listing_spec(&d.ctx, scope, &p) {
            Ok(s) => s,
            Err(e) => {
                return resume_reply(
                    &d.ctx,
                    &d.catalog,
                    &d.replies,
                    inbound,
                    listed,
                    Some(Err(e)),
                );
            }
        };
        let (ctx, catalog, replies) = (d.ctx.clone(), d.catalog.clone(), d.replies.clone());
        let inbound = inbound.clone();
        let known: Vec<String> = listed
            .compatible
            .iter()
            .map(|e| e.thread_id.clone())
            .collect();
        d.sched.spawn_owned(async move {
            // Codex lists the scope home's threads: the catalog's from
            // before per-scope homes come along first.
            crate::run::adopt_legacy(&spec.env, &known).await;
            let threads = threads::list(&spec, 100).await;
            if let Err(e) = &threads {
                tracing::warn!(scope = %inbound.scope, error = %e, "thread/list failed; /resume shows fcx's record");
            }
            resume_reply(&ctx, &catalog, &replies, &inbound, listed, Some(threads));
        });
    }

    /// Continue the session behind a `/resume` code. Returns whether it did,
    /// and the title of the answer.
    pub(super) fn resume_use(&self, inbound: &Inbound, code: &str) -> (bool, String) {
        let d = self.0;
        let scope = inbound.scope.as_str();
        let refuse = |title: &str, body: &str| {
            d.replies.text(inbound, "resume", false, title, body.into());
            (false, title.to_string())
        };
        let store_failed = |e| {
            d.replies.store_failed(inbound, "resume", e);
            (false, "fcx could not save that change".to_string())
        };
        let entry = match d.catalog.redeem(scope, code) {
            Ok(Ok(e)) => e,
            Ok(Err(ResumeRefusal::UnknownCode)) => {
                return refuse(
                    "That code is unknown or expired",
                    "Send /resume for fresh codes.",
                );
            }
            Ok(Err(ResumeRefusal::Gone)) => {
                return refuse(
                    "That session is gone",
                    "Send /resume for the sessions that remain.",
                );
            }
            Err(e) => return store_failed(e),
        };
        let p = match d.ctx.policy(scope) {
            Ok(p) => p,
            Err(e) => return refuse("Cannot resume", &e.to_string()),
        };
        if !Catalog::fits(&entry, &p) {
            return refuse(
                "Refused: this session cannot continue here",
                "The workspace, sandbox, access policy or identity changed since it ran, so Codex would continue it under different rules. Send /new or just write to start a fresh session.",
            );
        }
        if d.sched.find_run(scope).is_some() {
            return refuse(
                "A run is in progress here",
                "Send /stop first, then /resume.",
            );
        }
        if let Err(e) = d.catalog.resume(&entry, &p) {
            return store_failed(e);
        }
        let title = if entry.title.is_empty() {
            entry.thread_id
        } else {
            entry.title
        };
        d.replies.text(
            inbound,
            "resume",
            true,
            "Session resumed",
            format!("The next message continues \"{title}\"."),
        );
        (true, "Session resumed".into())
    }
}

/// What fcx's catalog offers for `/resume`.
struct Listed {
    compatible: Vec<fcx_state::CatalogEntry>,
    hidden: usize,
}

/// The `/resume` answer. `codex` is Codex's own list for the workspace
/// (app-server runner): catalog entries it no longer has are left out, and
/// its name or preview stands in for a missing title.
fn resume_reply(
    ctx: &Ctx,
    catalog: &Catalog,
    replies: &Replies,
    inbound: &Inbound,
    listed: Listed,
    codex: Option<Result<Vec<ListedThread>, String>>,
) {
    let scope = inbound.scope.as_str();
    let current = ctx
        .store
        .sessions()
        .session(scope)
        .ok()
        .flatten()
        .map(|s| s.thread_id);
    let mut body = String::new();
    let mut buttons = Vec::new();
    let mut gone = 0usize;
    let mut note = String::new();
    let known: Option<&Vec<ListedThread>> = match &codex {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            note = format!("\nCodex could not list its threads ({e}); this is fcx's record.");
            None
        }
        None => None,
    };
    for e in &listed.compatible {
        let mut title = e.title.clone();
        let mut updated = e.updated_at_ms;
        if let Some(threads) = known {
            let Some(t) = threads.iter().find(|t| t.id == e.thread_id) else {
                gone += 1;
                continue;
            };
            if title.is_empty() {
                title = crate::util::first_line(&t.title, 60);
            }
            updated = updated.max(t.updated_at_ms);
        }
        let code = catalog.issue_code(scope, &e.thread_id);
        let age = ago(now_ms() - updated);
        let is_current = current.as_deref() == Some(e.thread_id.as_str());
        let mark = if is_current { " (current)" } else { "" };
        let shown = if title.is_empty() {
            "untitled"
        } else {
            title.as_str()
        };
        body.push_str(&format!("- `{code}`: {shown}{mark}, {age}\n"));
        buttons.push(pb::Button {
            action: pb::ActionKind::Resume as i32,
            label: resume_label(&title, &e.thread_id, &age, is_current),
            value: code,
            style: pb::ButtonStyle::Default as i32,
            note: false,
        });
    }
    if buttons.is_empty() {
        body.push_str("No earlier session can continue here.");
    } else {
        body.push_str("\nSend /resume use <code> within 10 minutes.");
    }
    if gone > 0 {
        body.push_str(&format!(
            "\n{gone} session(s) are no longer in Codex (archived or deleted there)."
        ));
    }
    if listed.hidden > 0 {
        body.push_str(&format!(
            "\n{} other session(s) ran under another workspace, sandbox, access policy or identity and cannot continue here.",
            listed.hidden
        ));
    }
    body.push_str(&note);
    replies.send(
        inbound,
        pb::CommandReply {
            command: pb::CommandName::Resume as i32,
            title: "Sessions".into(),
            body,
            ok: true,
            buttons,
            ..Default::default()
        },
    );
}
