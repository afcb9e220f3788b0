//! A final card's thread buttons (`Act` with THREAD): Fork (`thread/fork`:
//! the scope continues a copy of the thread) and Archive (`thread/archive`:
//! Codex files it away, and the scope starts anew). Checked like the
//! `/resume` it resembles (same role, the card's fingerprint), refused
//! while a run is in progress, carried out in a task the scheduler owns.

use fcx_proto::v1::{self as pb, ThreadOp};

use super::Deps;
use super::cards::{Click, check_click};
use super::text::actor_id;
use crate::runner::app_server::threads;

const BUSY: &str = "A run is in progress here: send /stop first, or wait for it to end.";
const NO_RUNNER: &str = "Forking and archiving need the app-server runner.";

pub(super) struct Threads<'a>(pub(super) &'a Deps);

impl Threads<'_> {
    pub(super) fn act(&self, a: &pb::Action) -> pb::ActResult {
        let d = self.0;
        let refused = |message: &str| pb::ActResult {
            ok: false,
            message: message.into(),
        };
        let Some(pb::action::Kind::Thread(t)) = &a.kind else {
            return refused("not a thread action");
        };
        let op = t.op();
        if op == ThreadOp::Unspecified || t.thread_id.is_empty() {
            return refused("no thread action given");
        }
        let probe = match check_click(d, a) {
            Ok(Click::Thread(probe)) => probe,
            Ok(_) => return refused("not a thread action"),
            Err(r) => return r,
        };
        let answer = |ok: bool, title: &str, body: String| {
            d.replies.text(&probe, "resume", ok, title, body);
            pb::ActResult {
                ok,
                message: title.to_string(),
            }
        };
        if d.ctx.profile.codex.runner != fcx_config::RunnerKind::AppServer {
            return answer(false, NO_RUNNER, String::new());
        }
        if d.sched.find_run(&a.scope).is_some() {
            return answer(false, BUSY, String::new());
        }
        let policy = match d.ctx.policy(&a.scope) {
            Ok(p) => p,
            Err(e) => return answer(false, "Cannot do that here", e.to_string()),
        };
        let spec = match crate::run::listing_spec(&d.ctx, &a.scope, &policy) {
            Ok(s) => s,
            Err(e) => return answer(false, "Codex cannot start", e),
        };
        tracing::info!(scope = %a.scope, by = actor_id(&probe), op = op.word(), thread = %t.thread_id, run_id = %t.run_id, "thread action");
        let (ctx, catalog, replies) = (d.ctx.clone(), d.catalog.clone(), d.replies.clone());
        let thread_id = t.thread_id.clone();
        d.sched.spawn_owned(async move {
            let reply = |ok: bool, title: &str, body: String| {
                replies.text(&probe, "resume", ok, title, body);
            };
            let scope = probe.scope.clone();
            crate::run::adopt_legacy(&spec.env, std::slice::from_ref(&thread_id)).await;
            match op {
                ThreadOp::Fork => match threads::fork(&spec, &thread_id).await {
                    Ok(new) => {
                        let title = format!("Fork of {}", short(&thread_id));
                        catalog.save_session(&scope, &new, &policy, Default::default(), &title);
                        tracing::info!(scope = %scope, from = %thread_id, thread = %new, "thread forked");
                        reply(
                            true,
                            "Forked",
                            format!(
                                "The next message continues a copy of this session (new thread `{new}`); the original stays as it was."
                            ),
                        );
                    }
                    Err(e) => {
                        tracing::warn!(scope = %scope, thread = %thread_id, error = %e, "thread/fork failed");
                        reply(false, "Not forked", e);
                    }
                },
                ThreadOp::Archive => match threads::archive(&spec, &thread_id).await {
                    Ok(()) => {
                        let continuity = pb::Scope::continuity_of(&scope);
                        let current = ctx.store.sessions().session(&continuity).ok().flatten();
                        let cleared = current.is_some_and(|s| s.thread_id == thread_id)
                            && ctx
                                .store
                                .sessions()
                                .clear_session(&continuity)
                                .unwrap_or(false);
                        tracing::info!(scope = %scope, thread = %thread_id, cleared, "thread archived");
                        reply(
                            true,
                            "Archived",
                            if cleared {
                                "Codex archived this session; the next message starts a new one.".into()
                            } else {
                                "Codex archived that session.".into()
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(scope = %scope, thread = %thread_id, error = %e, "thread/archive failed");
                        reply(false, "Not archived", e);
                    }
                },
                ThreadOp::Unspecified => {}
            }
        });
        pb::ActResult {
            ok: true,
            message: format!("{} requested", op.word()),
        }
    }
}

/// The head of a thread id, for titles.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// What a thread click stands for in the role check: `/resume`.
pub(super) fn stands_for(t: &pb::ThreadAction) -> String {
    format!("/resume {} {}", t.op().word(), t.thread_id)
}
