//! Clicks that come back from command cards (`Act` with COMMAND, CONFIG or
//! RESUME). A click is checked exactly like the typed command it stands
//! for, plus the policy fingerprint the card was made under.

use fcx_proto::v1::{self as pb, Inbound, Scope};

use super::Deps;
use super::text::actor_id;
use crate::access::Decision;
use crate::commands::{self, Command};
use crate::util::{now_ms, short_id};

/// What a click on a card made before the scope's policy changed gets.
const STALE_CARD: &str =
    "This card is out of date: the workspace or access changed. Send the command again.";
pub(super) const NOT_ALLOWED: &str = "You may not use fcx here.";
const NOT_A_COMMAND: &str = "Only a command (starting with /) can run from a card.";

/// A click that passed every check, with the message it stands for.
pub(super) enum Click {
    Command(Inbound, Command),
    Config(Inbound),
    Resume(Inbound, String),
    /// A final card's thread button (checked as the `/resume` it resembles).
    Thread(Inbound),
}

/// Check a command-card click: the command it names, the clicking user's
/// access, and the card's fingerprint. A refusal a user may see is also
/// answered under the card.
pub(super) fn check_click(d: &Deps, a: &pb::Action) -> Result<Click, pb::ActResult> {
    let refused = |message: &str| pb::ActResult {
        ok: false,
        message: message.into(),
    };
    use pb::action::Kind;
    let (text, cmd) = match &a.kind {
        Some(Kind::Command(c)) => {
            let line = c.line.trim();
            match commands::parse(line) {
                Some(c) => (line.to_string(), c),
                None => {
                    tracing::warn!(scope = %a.scope, "card command refused: not a command");
                    return Err(refused(NOT_A_COMMAND));
                }
            }
        }
        Some(Kind::Config(_)) => ("/config".to_string(), Command::Config(None)),
        Some(Kind::Resume(r)) => (
            format!("/resume use {}", r.nonce),
            Command::ResumeUse(r.nonce.clone()),
        ),
        Some(Kind::Thread(t)) => (super::threads::stands_for(t), Command::Resume),
        _ => return Err(refused("not a command-card action")),
    };
    let probe = action_inbound(d, a, &text);
    let decision = d.gate.decide(&probe, cmd.need());
    match decision {
        Decision::Silent(_) => return Err(refused(NOT_ALLOWED)),
        Decision::Hint(t) => {
            d.replies.text(&probe, cmd.name(), false, t, String::new());
            return Err(refused(t));
        }
        Decision::Allow | Decision::Deny(_) => {}
    }
    {
        let current = d
            .ctx
            .policy(&a.scope)
            .map(|p| p.fingerprint)
            .unwrap_or_default();
        // An empty fingerprint is never valid: it would skip this check.
        if a.fingerprint.is_empty() || current != a.fingerprint {
            tracing::warn!(scope = %a.scope, actor = actor_id(&probe), "stale card refused");
            // Answered under the card, like every refusal a user may see
            // (strangers get silence above).
            d.replies
                .text(&probe, cmd.name(), false, STALE_CARD, String::new());
            return Err(refused(STALE_CARD));
        }
    }
    if let Decision::Deny(t) = decision {
        d.replies.text(&probe, cmd.name(), false, t, String::new());
        return Err(refused(t));
    }
    Ok(match &a.kind {
        Some(Kind::Config(_)) => Click::Config(probe),
        Some(Kind::Resume(r)) => Click::Resume(probe, r.nonce.clone()),
        Some(Kind::Thread(_)) => Click::Thread(probe),
        _ => Click::Command(probe, cmd),
    })
}

/// The message a click stands for: the clicking user writing `text` in
/// the card's scope, addressed to the bot, answered under the card.
pub(super) fn action_inbound(d: &Deps, a: &pb::Action, text: &str) -> Inbound {
    let chat_id = match a.created_chat_id() {
        "" => Scope::chat_of(&a.scope),
        id => id.to_string(),
    };
    Inbound {
        event_id: format!("act:{}", short_id('a')),
        scope: a.scope.clone(),
        actor: a.actor.clone(),
        text: text.into(),
        chat_type: chat_type_of(d, &a.scope, &chat_id) as i32,
        // A click is addressed to the bot by construction.
        mentioned: true,
        chat_id,
        message_id: a.message_id.clone(),
        sent_at_ms: now_ms(),
        ..Default::default()
    }
}

/// The chat type of a scope an action names (actions carry none): a topic
/// by its scope, else what the newest message journaled there said, else a
/// group when the chat is an enabled group, else a private chat.
fn chat_type_of(d: &Deps, scope: &str, chat_id: &str) -> pb::ChatType {
    if Scope::key_is_topic(scope) {
        return pb::ChatType::Topic;
    }
    match d.ctx.store.journal().last_chat_type(scope) {
        Ok(Some(t)) => {
            let t = pb::ChatType::try_from(t).unwrap_or(pb::ChatType::Unspecified);
            if t != pb::ChatType::Unspecified {
                return t;
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(scope, error = %e, "cannot read the scope's chat type"),
    }
    if !chat_id.is_empty() && d.gate.lists().chats.contains(chat_id) {
        pb::ChatType::Group
    } else {
        pb::ChatType::Private
    }
}
