//! Session commands: `/stop`, `/exit`, `/new`, `/resume`.

use fcx_proto::v1::{self as pb, Inbound};

use super::Deps;
use super::text::{ago, resume_label};
use crate::catalog::{Catalog, ResumeRefusal};
use crate::run::StopReason;
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
    /// and a button.
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
        let current = d
            .ctx
            .store
            .sessions()
            .session(scope)
            .ok()
            .flatten()
            .map(|s| s.thread_id);
        let mut body = String::new();
        let mut buttons = Vec::new();
        for e in &compatible {
            let code = d.catalog.issue_code(scope, &e.thread_id);
            let age = ago(now_ms() - e.updated_at_ms);
            let is_current = current.as_deref() == Some(e.thread_id.as_str());
            let mark = if is_current { " (current)" } else { "" };
            let title = if e.title.is_empty() {
                "untitled"
            } else {
                e.title.as_str()
            };
            body.push_str(&format!("- `{code}`: {title}{mark}, {age}\n"));
            buttons.push(pb::Button {
                action: pb::ActionKind::Resume as i32,
                label: resume_label(&e.title, &e.thread_id, &age, is_current),
                value: code,
                style: pb::ButtonStyle::Default as i32,
            });
        }
        if compatible.is_empty() {
            body.push_str("No earlier session can continue here.");
        } else {
            body.push_str("\nSend /resume use <code> within 10 minutes.");
        }
        if hidden > 0 {
            body.push_str(&format!(
                "\n{hidden} other session(s) ran under another workspace, sandbox, access policy or identity and cannot continue here."
            ));
        }
        d.replies.send(
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
