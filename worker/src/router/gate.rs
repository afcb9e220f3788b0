//! The access gate: the lists in force (config ∪ chat changes, plus the
//! owner) and the decision for every message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fcx_proto::v1::Inbound;

use super::text::actor_id;
use crate::access::{self, Chat, Decision, Facts, Lists, Need, Role};
use crate::commands;
use crate::context::Ctx;
use crate::store::StoreError;

/// How often one chat may get the "group not enabled" hint.
pub(super) const HINT_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Chats remembered at once; past it, expired ones are dropped, and while
/// it is still full no hint is sent (silence is the safe side).
const HINT_CHATS: usize = 4096;

/// When each chat last got the hint.
#[derive(Default)]
pub(super) struct HintLimit(Mutex<HashMap<String, Instant>>);

impl HintLimit {
    /// Whether `chat` may get the hint at `now` (and it is recorded).
    pub(super) fn allow(&self, chat: &str, now: Instant) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = last.get(chat) {
            if now.saturating_duration_since(*t) < HINT_INTERVAL {
                return false;
            }
        } else if last.len() >= HINT_CHATS {
            last.retain(|_, t| now.saturating_duration_since(*t) < HINT_INTERVAL);
            if last.len() >= HINT_CHATS {
                return false;
            }
        }
        last.insert(chat.to_string(), now);
        true
    }
}

pub(super) const KV_PLATFORM_OWNER: &str = "platform.owner";

pub(crate) struct Gate {
    ctx: Arc<Ctx>,
}

impl Gate {
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Gate { ctx }
    }

    /// The lists live in the context: a run caps its sandbox by its
    /// senders' roles from the same lists.
    pub(super) fn lists(&self) -> MutexGuard<'_, Lists> {
        self.ctx.access_lists()
    }

    /// Rebuild the lists from config, chat changes, the learned owner and
    /// per-group mention choices.
    pub(crate) fn reload(&self) -> Result<(), StoreError> {
        let store = &self.ctx.store;
        let profile = &self.ctx.profile;
        let learned = store.settings().kv(KV_PLATFORM_OWNER)?;
        let changes = store.settings().access_changes()?;
        let mut l = Lists::build(&profile.access, learned, &changes);
        for (scope, required) in store.settings().mention_overrides()? {
            match fcx_proto::v1::Scope::parse(&scope) {
                Some(s) if !s.is_topic() => {
                    l.mention.insert(s.chat_id, required);
                }
                _ => {}
            }
        }
        // Without a platform app the only way in is the local worker socket,
        // in the operator's 0700 run directory: whoever reaches it is the
        // operator.
        l.local_only = profile.app.is_none();
        *self.lists() = l;
        Ok(())
    }

    pub(super) fn role_of(&self, inbound: &Inbound) -> Role {
        let chat = Chat::from_pb(inbound.chat_type());
        self.lists().role(actor_id(inbound), chat)
    }

    /// What the access decision for a message from `inbound`'s sender in
    /// its chat depends on.
    pub(super) fn facts(&self, inbound: &Inbound) -> Facts {
        let chat = Chat::from_pb(inbound.chat_type());
        let l = self.lists();
        Facts {
            role: l.role(actor_id(inbound), chat),
            chat,
            mentioned: inbound.mentioned,
            chat_enabled: !inbound.chat_id.is_empty() && l.chats.contains(&inbound.chat_id),
            require_mention: l.require_mention_in(&inbound.chat_id),
        }
    }

    /// Whether the sender these facts describe could type `line`.
    pub(super) fn may_use(facts: Facts, line: &str) -> bool {
        commands::parse(line).is_some_and(|c| access::decide(facts, c.need()) == Decision::Allow)
    }

    /// The access decision for one message, logged with its reason.
    pub(super) fn decide(&self, inbound: &Inbound, need: Need) -> Decision {
        let f = self.facts(inbound);
        let (actor, role, chat, chat_enabled) = (actor_id(inbound), f.role, f.chat, f.chat_enabled);
        let d = access::decide(f, need);
        let reason = match &d {
            Decision::Allow => "allowed",
            Decision::Silent(r) | Decision::Hint(r) | Decision::Deny(r) => r,
        };
        tracing::info!(
            scope = %inbound.scope,
            actor,
            event_id = %inbound.event_id,
            role = ?role,
            chat = ?chat,
            // A member of an enabled group has no personal role (Stranger)
            // yet is allowed: the log says why.
            chat_enabled,
            need = ?need,
            decision = match d {
                Decision::Allow => "allow",
                Decision::Silent(_) => "silent",
                Decision::Hint(_) => "hint",
                Decision::Deny(_) => "deny",
            },
            reason,
            "access decision"
        );
        d
    }
}
