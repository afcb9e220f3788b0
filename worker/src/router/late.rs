//! Messages delivered after the stale window (`Inbound.late_by_ms`: fcx was
//! offline when they were sent). Codex must not act on an hour-old request
//! unasked, and the sender must not be left wondering: the message is held
//! (in memory) and its sender gets a notice with one Run button. A click
//! runs it once, as if it had just been sent; after a worker restart
//! nothing is held and the click says to send it again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fcx_proto::v1::{self as pb, Ack, Inbound};

use super::Deps;
use super::text::actor_id;
use crate::access::{Decision, Need};
use crate::scheduler::DeliverError;

/// Messages held at once; past it the oldest is let go (its button then
/// answers "send it again"). Each is at most `MAX_TEXT_BYTES` of text.
const MAX_HELD: usize = 256;
/// As long as the notice's button stays valid (fcxd signs command-card
/// buttons for a day).
const HOLD_FOR: Duration = Duration::from_secs(24 * 3600);
/// Run nonces remembered after their message ran, so a click that reaches
/// the worker twice is told it already ran rather than "send it again".
const MAX_TAKEN: usize = 1024;

pub(super) const LABEL: &str = "Run it now";
const GONE_TITLE: &str = "That message is no longer held";
const GONE_BODY: &str = "fcx restarted (or a day passed) since the notice, so it cannot run it from here. Send the message again.";
const ALREADY_RAN: &str = "That message was already run";
const NOT_YOURS: &str = "Only the person who sent that message can run it.";
const CHANGED: &str = "This chat's fcx settings changed since the notice. Send the message again to run it under the new ones.";

struct Held {
    inbound: Inbound,
    at: Instant,
}

#[derive(Default)]
struct State {
    held: HashMap<String, Held>,
    /// Nonces in the order they were held (some may be taken already).
    order: VecDeque<String>,
    taken: VecDeque<String>,
}

/// What a click found under its nonce.
#[derive(Debug, PartialEq)]
pub(super) enum Taken {
    /// The held message, now the caller's to run (never handed out twice).
    Message(Box<Inbound>),
    AlreadyRan,
    /// Held for someone else, or in another scope: left held.
    NotYours,
    /// Never held by this worker, expired, or let go.
    Gone,
}

/// The late messages this worker holds, by the nonce their Run button names.
#[derive(Default)]
pub(crate) struct LateHolds(Mutex<State>);

impl LateHolds {
    /// Holds `inbound`; returns the nonce its Run button carries.
    pub(super) fn hold(&self, inbound: Inbound, now: Instant) -> String {
        let nonce = format!("l{:016x}", rand::random::<u64>());
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        s.held
            .retain(|_, h| now.saturating_duration_since(h.at) < HOLD_FOR);
        while s.held.len() >= MAX_HELD {
            let Some(oldest) = s.order.pop_front() else {
                break;
            };
            s.held.remove(&oldest);
        }
        let held = &s.held;
        s.order.retain(|n| held.contains_key(n));
        s.order.push_back(nonce.clone());
        s.held.insert(nonce.clone(), Held { inbound, at: now });
        nonce
    }

    /// Takes the message held under `nonce` for a click by `actor` in
    /// `scope`: only its sender, only where it was sent, only once.
    pub(super) fn take(&self, nonce: &str, scope: &str, actor: &str, now: Instant) -> Taken {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = s.held.get(nonce) else {
            return if s.taken.iter().any(|t| t == nonce) {
                Taken::AlreadyRan
            } else {
                Taken::Gone
            };
        };
        if now.saturating_duration_since(h.at) >= HOLD_FOR {
            s.held.remove(nonce);
            return Taken::Gone;
        }
        if h.inbound.scope != scope || actor.is_empty() || actor_id(&h.inbound) != actor {
            return Taken::NotYours;
        }
        let Some(h) = s.held.remove(nonce) else {
            return Taken::Gone;
        };
        if s.taken.len() >= MAX_TAKEN {
            s.taken.pop_front();
        }
        s.taken.push_back(nonce.to_string());
        Taken::Message(Box::new(h.inbound))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).held.len()
    }
}

/// A late message from an allowed sender: recorded for de-duplication
/// (only its key: what was written stays in memory), held, and its sender
/// asked. A redelivery of the same event is a duplicate and asks nothing.
pub(super) fn hold(d: &Deps, inbound: Inbound) -> Result<Ack, DeliverError> {
    let acc = super::record_key_only(d, &inbound)?;
    let mut ack = super::ack(acc);
    if ack.duplicate {
        return Ok(ack);
    }
    // Downloaded now, so a click finds its files ready (the run waits for
    // them as for any message).
    ack.fetch_attachments = crate::media::downloadable(&inbound);
    let late = how_late(inbound.late_by_ms);
    tracing::info!(scope = %inbound.scope, event_id = %inbound.event_id, late_by_ms = inbound.late_by_ms, "a late message is held until its sender runs it");
    let nonce = d.late.hold(inbound.clone(), Instant::now());
    d.replies.send(
        &inbound,
        pb::CommandReply {
            command: pb::CommandName::Late as i32,
            title: format!("This message arrived {late} late (fcx was offline); run it now?"),
            body: format!(
                "It has not run: Codex acts on a message only when it arrives in time. Press **{LABEL}** to run it as if you had just sent it, or send it again."
            ),
            ok: true,
            buttons: vec![pb::Button {
                action: pb::ActionKind::RunLate as i32,
                label: LABEL.into(),
                value: nonce,
                style: pb::ButtonStyle::Primary as i32,
                note: false,
            }],
            ..Default::default()
        },
    );
    Ok(ack)
}

/// A click on a notice's Run button: the gateway verified the signed token
/// (made for the message's sender only); here the sender's access and the
/// scope's policy are checked again, then the held message is taken once
/// and delivered as if just sent.
pub(super) fn run(router: &super::Router, a: &pb::Action) -> pb::ActResult {
    let d = &router.d;
    let refused = |message: &str| pb::ActResult {
        ok: false,
        message: message.into(),
    };
    let Some(pb::action::Kind::RunLate(r)) = &a.kind else {
        return refused("not a run-late action");
    };
    let probe = super::cards::action_inbound(d, a, "");
    let answer = |title: &str, body: &str| {
        d.replies
            .text(&probe, "late", false, title, body.to_string());
    };
    match d.gate.decide(&probe, Need::Run) {
        Decision::Allow => {}
        Decision::Silent(_) | Decision::Hint(_) => return refused(super::cards::NOT_ALLOWED),
        Decision::Deny(t) => {
            answer(t, "");
            return refused(t);
        }
    }
    let actor = actor_id(&probe).to_string();
    let now = Instant::now();
    let current = d
        .ctx
        .policy(&a.scope)
        .map(|p| p.fingerprint)
        .unwrap_or_default();
    if a.fingerprint.is_empty() || current != a.fingerprint {
        // Taken (so nothing runs under rules it was not sent under) and
        // let go; the sender is told to send it again.
        let _ = d.late.take(&r.nonce, &a.scope, &actor, now);
        tracing::warn!(scope = %a.scope, actor, "late message's button refused: the policy changed");
        answer(CHANGED, "");
        return refused(CHANGED);
    }
    let mut inbound = match d.late.take(&r.nonce, &a.scope, &actor, now) {
        Taken::Message(m) => *m,
        Taken::AlreadyRan => {
            answer(ALREADY_RAN, "");
            return refused(ALREADY_RAN);
        }
        Taken::NotYours => {
            tracing::warn!(scope = %a.scope, actor, "late message's button refused: not its sender");
            return refused(NOT_YOURS);
        }
        Taken::Gone => {
            answer(GONE_TITLE, GONE_BODY);
            return refused(GONE_TITLE);
        }
    };
    // Its own de-duplication key: the late delivery's was spent on the
    // notice. Everything else is the message as sent.
    inbound.event_id = format!("late:{}", inbound.event_id);
    inbound.late_by_ms = 0;
    tracing::info!(scope = %inbound.scope, event_id = %inbound.event_id, "a held late message runs at its sender's request");
    match router.deliver(inbound.clone()) {
        Ok(_) => pb::ActResult {
            ok: true,
            message: "running it".into(),
        },
        Err(e) => {
            let why = e.to_string();
            tracing::warn!(scope = %a.scope, error = %why, "a held late message could not be queued");
            d.replies.text(
                &inbound,
                "late",
                false,
                "fcx could not run that message now",
                format!("{why}. Send it again in a moment."),
            );
            refused(&why)
        }
    }
}

/// "7 min", "2 h 5 min", "3 d 4 h": how late, for the notice.
pub(super) fn how_late(ms: i64) -> String {
    let min = (ms.max(0) / 60_000).max(1);
    match (min / (24 * 60), min / 60 % 24, min % 60) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
#[path = "late_tests.rs"]
mod tests;
