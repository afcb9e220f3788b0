//! The router: every normalised `Inbound` (and every card click) gets its
//! access decision here and becomes either a command or a prompt for the
//! scheduler. Commands are parsed in one place (`commands::parse`) into a
//! typed [`Command`] and carried out by one handler family each.

mod access_cmds;
mod approvals;
mod cards;
mod config;
mod files;
mod gate;
mod info;
mod late;
mod model_probe;
mod session;
mod text;
mod threads;
mod workspace;

use std::sync::Arc;
use std::time::Instant;

use fcx_proto::v1::{self as pb, Ack, Inbound};

use crate::access::{Chat, Decision, LIST_CHATS, Need};
use crate::catalog::Catalog;
use crate::commands::{self, Command};
use crate::context::Ctx;
use crate::replies::Replies;
use crate::run::StopReason;
use crate::scheduler::{DeliverError, Scheduler};
use crate::store::{AccessOp, InboxKind, ScopeSettings, StoreError};
use crate::util::now_ms;
pub(crate) use gate::Gate;

/// What the command handlers share, passed to each explicitly.
pub(crate) struct Deps {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) gate: Gate,
    pub(crate) replies: Arc<Replies>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) sched: Arc<Scheduler>,
    late: late::LateHolds,
    doctor: info::DoctorLimit,
    hints: gate::HintLimit,
}

impl Deps {
    pub(crate) fn new(ctx: Arc<Ctx>, catalog: Arc<Catalog>, sched: Arc<Scheduler>) -> Self {
        Deps {
            gate: Gate::new(ctx.clone()),
            replies: Arc::new(Replies::new(ctx.clone())),
            ctx,
            catalog,
            sched,
            late: late::LateHolds::default(),
            doctor: info::DoctorLimit::default(),
            hints: gate::HintLimit::default(),
        }
    }
}

pub(crate) struct Router {
    d: Deps,
}

impl Router {
    pub(crate) fn new(d: Deps) -> Self {
        Router { d }
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.d.gate
    }

    /// Accept one inbound message: a command is answered at once; anything
    /// else is committed to the journal, then acknowledged.
    pub(crate) fn deliver(&self, inbound: Inbound) -> Result<Ack, DeliverError> {
        let d = &self.d;
        if inbound.event_id.is_empty() || inbound.event_id.len() > 256 {
            return Err(DeliverError::Invalid("event_id must be 1-256 bytes".into()));
        }
        if inbound.scope.is_empty() || inbound.scope.len() > 512 {
            return Err(DeliverError::Invalid("scope must be 1-512 bytes".into()));
        }
        if d.sched.shutting_down() {
            return Err(DeliverError::ShuttingDown);
        }
        // A document comment is always a question for Codex: the thread
        // under a comment is no place for bot commands.
        let cmd = if inbound.chat_type() == pb::ChatType::Comment {
            None
        } else {
            commands::parse(&inbound.text)
        };
        let need = cmd.as_ref().map_or(Need::Run, Command::need);
        let decision = d.gate.decide(&inbound, need);
        if decision != Decision::Allow {
            // Acknowledged (so the platform does not redeliver) and recorded
            // for de-duplication, but nothing runs: only the key is kept (and
            // the chat type card clicks in the scope are judged by), never
            // what a sender without access wrote or who they are.
            let acc = record_key_only(d, &inbound)?;
            let answer = match decision {
                _ if acc.duplicate => None,
                Decision::Deny(t) => Some(t),
                // Anyone in a group can trigger the hint: once per chat per
                // interval, so a busy or hostile group gets no reply flood.
                Decision::Hint(t) if d.hints.allow(hint_key(&inbound), Instant::now()) => Some(t),
                _ => None,
            };
            if let Some(t) = answer {
                let name = cmd.as_ref().map_or("access", Command::name);
                d.replies.text(&inbound, name, false, t, String::new());
            }
            return Ok(ack(acc));
        }
        if inbound.text.len() > MAX_TEXT_BYTES {
            // Up to 20,000 messages may wait in memory: each is bounded, and
            // the sender hears why theirs did not run.
            let acc = record_key_only(d, &inbound)?;
            if !acc.duplicate {
                d.replies.text(
                    &inbound,
                    "message",
                    false,
                    "Message too long",
                    format!(
                        "It has {} KiB of text; fcx takes up to {} KiB per message. Send it as a file instead.",
                        inbound.text.len().div_ceil(1024),
                        MAX_TEXT_BYTES / 1024
                    ),
                );
            }
            return Ok(ack(acc));
        }
        if inbound.late_by_ms > 0 {
            return late::hold(d, inbound);
        }
        if let Some(cmd) = cmd {
            let acc = d
                .ctx
                .store
                .journal()
                .accept(&inbound, InboxKind::Command, now_ms())?;
            if !acc.duplicate {
                self.dispatch(&inbound, cmd);
            }
            return Ok(ack(acc));
        }
        if inbound.text.trim().is_empty() && inbound.attachments.is_empty() {
            return Err(DeliverError::Invalid("the message is empty".into()));
        }
        if crate::media::only_stickers(&inbound) {
            let acc = d
                .ctx
                .store
                .journal()
                .accept(&inbound, InboxKind::Command, now_ms())?;
            if !acc.duplicate {
                d.replies.text(
                    &inbound,
                    "message",
                    false,
                    "Sticker",
                    crate::media::STICKER_ANSWER.into(),
                );
            }
            return Ok(ack(acc));
        }
        d.sched.enqueue(inbound)
    }

    /// Carry out an allowed command.
    fn dispatch(&self, inbound: &Inbound, cmd: Command) {
        let d = &self.d;
        match cmd {
            Command::Stop(None) => session::Session(d).stop_here(inbound),
            Command::Stop(Some(target)) | Command::Exit(target) => {
                session::Session(d).stop_run(inbound, &target)
            }
            Command::New => session::Session(d).new_session(inbound),
            Command::Resume => session::Session(d).resume_list(inbound),
            Command::ResumeUse(code) => {
                session::Session(d).resume_use(inbound, &code);
            }
            Command::NewGroup(name) => workspace::Workspace(d).new_group(inbound, name),
            Command::Cd(path) => workspace::Workspace(d).cd(inbound, &path),
            Command::WsList => workspace::Workspace(d).list(inbound),
            Command::WsSave(name) => workspace::Workspace(d).save(inbound, &name),
            Command::WsUse(name) => workspace::Workspace(d).use_alias(inbound, &name),
            Command::WsRemove(name) => workspace::Workspace(d).remove(inbound, &name),
            Command::Timeout(t) => workspace::Workspace(d).timeout(inbound, t),
            Command::Invite(t) => access_cmds::change(d, inbound, "invite", t, AccessOp::Add),
            Command::Remove(t) => access_cmds::change(d, inbound, "remove", t, AccessOp::Remove),
            Command::Status => info::Info(d).status(inbound),
            Command::Help => info::Info(d).help(inbound),
            Command::Ps => info::Info(d).ps(inbound),
            Command::Reconnect => info::Info(d).reconnect(inbound),
            Command::Doctor => info::Info(d).doctor(inbound),
            Command::Config(None) => config::Config(d).show(inbound),
            Command::Config(Some((key, value))) => {
                config::Config(d).apply(inbound, &[(key, value)], crate::settings::Source::Typed);
            }
            Command::SendFile(path) => files::send(d, inbound, &path),
            Command::Unknown(word) => d.replies.text(
                inbound,
                "unknown",
                false,
                &format!("/{word} is not a command"),
                "Send /help for the list of commands.".into(),
            ),
            Command::Usage { command, usage } => d.replies.text(
                inbound,
                &command,
                false,
                &usage,
                "Send /help for usage.".into(),
            ),
        }
    }

    /// A stop that comes from a card button: the gateway verified the
    /// signed token; the worker re-checks that the clicking user may still
    /// stop runs in that chat and that the chat's policy is the one the
    /// button was made for. `Ok(false)` = nothing to stop.
    pub(crate) fn stop_checked(&self, a: &pb::Action) -> Result<bool, String> {
        let d = &self.d;
        let probe = cards::action_inbound(d, a, "/stop");
        match d.gate.decide(&probe, Need::User) {
            Decision::Allow => {}
            _ => return Err("you may not stop runs here".into()),
        }
        let current = d.ctx.policy(&a.scope).map_err(|e| e.to_string())?;
        if current.fingerprint != a.fingerprint {
            return Err("this chat's settings changed since the card was made".into());
        }
        let run = Some(a.stop_run_id()).filter(|r| !r.is_empty());
        Ok(d.sched.stop(&a.scope, run, StopReason::User))
    }

    /// A command-card click (COMMAND, CONFIG, RESUME), checked like the
    /// typed command it stands for; the answer goes to the scope as a
    /// command reply under the card.
    /// A click on an approval card.
    pub(crate) fn approval_action(&self, a: &pb::Action) -> pb::ActResult {
        approvals::Approvals(&self.d).decide(a)
    }

    /// A click on a late message's Run button.
    pub(crate) fn run_late(&self, a: &pb::Action) -> pb::ActResult {
        late::run(self, a)
    }

    /// A click on a final card's Fork or Archive.
    pub(crate) fn thread_action(&self, a: &pb::Action) -> pb::ActResult {
        threads::Threads(&self.d).act(a)
    }

    pub(crate) fn card_action(&self, a: &pb::Action) -> pb::ActResult {
        match cards::check_click(&self.d, a) {
            Ok(cards::Click::Config(probe)) => {
                let values: Vec<(String, String)> = match &a.kind {
                    Some(pb::action::Kind::Config(c)) => c
                        .values
                        .iter()
                        .map(|f| (f.name.clone(), f.value.clone()))
                        .collect(),
                    _ => Vec::new(),
                };
                let (ok, message) =
                    config::Config(&self.d).apply(&probe, &values, crate::settings::Source::Form);
                pb::ActResult { ok, message }
            }
            Ok(cards::Click::Resume(probe, nonce)) => {
                let (ok, message) = session::Session(&self.d).resume_use(&probe, &nonce);
                pb::ActResult { ok, message }
            }
            Ok(cards::Click::Thread(_)) => pb::ActResult {
                ok: false,
                message: "not a command-card action".into(),
            },
            Ok(cards::Click::Command(probe, cmd)) => {
                let text = probe.text.clone();
                self.dispatch(&probe, cmd);
                pb::ActResult {
                    ok: true,
                    message: format!("ran {text}"),
                }
            }
            Err(refused) => refused,
        }
    }

    /// What the gateway announced at Hello: requests it cannot carry out are
    /// answered here instead.
    pub(crate) fn set_gateway_caps(&self, caps: Vec<String>) {
        self.d.replies.set_gateway_caps(caps);
    }

    /// What the gateway learned from the platform. Returns the owner in use
    /// and where it came from.
    pub(crate) fn set_platform(
        &self,
        info: &pb::PlatformInfo,
    ) -> Result<(String, String), StoreError> {
        let d = &self.d;
        if !info.owner_id.is_empty() {
            d.ctx
                .store
                .settings()
                .set_kv(gate::KV_PLATFORM_OWNER, &info.owner_id)?;
        }
        d.gate.reload()?;
        let l = d.gate.lists();
        tracing::info!(platform = info.platform().word(), app_id = %info.app_id, owner_source = l.owner_source, "platform info");
        Ok((l.owner.clone().unwrap_or_default(), l.owner_source.into()))
    }

    /// The group a `/new group` asked for exists: enable it and let it start
    /// in the requesting scope's workspace and access mode.
    pub(crate) fn group_created(
        &self,
        scope: &str,
        chat_id: &str,
        source_scope: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        let d = &self.d;
        let store = &d.ctx.store;
        if !chat_id.is_empty() {
            store
                .settings()
                .access_change(LIST_CHATS, chat_id, AccessOp::Add, by, now_ms())?;
        }
        // Only the workspace and the access mode carry over; display and
        // mention choices start from the profile's defaults in a new group.
        let source = store.settings().scope_settings(source_scope)?;
        let mut settings = ScopeSettings {
            workspace: source.workspace,
            workspace_id: source.workspace_id,
            access: source.access,
            ..Default::default()
        };
        if settings.workspace.is_none()
            && let Ok(p) = d.ctx.policy(source_scope)
        {
            settings.workspace = Some(p.cwd.display().to_string());
            settings.workspace_id = crate::pin::identity(&p.cwd).ok();
        }
        store
            .settings()
            .set_scope_settings(scope, &settings, now_ms())?;
        d.gate.reload()?;
        tracing::info!(scope, chat_id, source_scope, "group created and enabled");
        Ok(())
    }
}

fn hint_key(inbound: &Inbound) -> &str {
    if inbound.chat_id.is_empty() {
        &inbound.scope
    } else {
        &inbound.chat_id
    }
}

fn ack(acc: crate::store::Accepted) -> Ack {
    Ack {
        accepted: true,
        duplicate: acc.duplicate,
        inbox_id: acc.inbox_id as u64,
        // Answered here, never run: nothing to download.
        fetch_attachments: false,
    }
}

/// Most text one message may carry.
pub(crate) const MAX_TEXT_BYTES: usize = 64 * 1024;

const NOT_ON_CONSOLE: &str = "Not available on the console.";

/// Outside a platform chat (the console), some commands mean nothing.
fn on_console(inbound: &Inbound) -> bool {
    Chat::from_pb(inbound.chat_type()) == Some(Chat::Console)
}

/// Records a message that will not run as its de-duplication key only (and
/// the chat type card clicks in its scope are judged by): never what its
/// sender wrote or who they are.
fn record_key_only(
    d: &Deps,
    inbound: &Inbound,
) -> Result<crate::store::Accepted, fcx_state::StoreError> {
    let key = Inbound {
        event_id: inbound.event_id.clone(),
        scope: inbound.scope.clone(),
        chat_type: inbound.chat_type,
        ..Default::default()
    };
    d.ctx
        .store
        .journal()
        .accept(&key, InboxKind::Command, now_ms())
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
