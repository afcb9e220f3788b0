//! Inbound card clicks: a `card.action.trigger` event checked against the
//! signed token its button carries (see [`callback`]), turned into the
//! worker action it asks for. Runs in the ACK path: pure and fast.
//!
//! A click is checked against its token alone (and the chat the platform
//! says it came from), whether or not this process sent the card; the
//! one table the egress side fills for it is [`FormTokens`]. Used nonces
//! are persisted by [`FileNonceStore`] so a replay after a restart is
//! still refused.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use fcx_proto::v1::action::Kind;
use fcx_proto::v1::{self as pb};
use serde_json::Value;

use crate::egress::render::CALLBACK_VALUE_KEY;
use crate::ingress::callback::{
    self, CLOCK_STEP_GRACE_SECS, Claims, Denied, Expected, MemoryNonceStore, NonceStore,
};
use crate::ingress::keys::SharedKeys;
use crate::link::supervisor::now_ms;

/// Forms whose token [`FormTokens`] keeps at most, per profile: a safety
/// bound (entries leave when their token expires, and only `/config` cards
/// add any, one per card, not one per message).
pub(crate) const FORMS_KEPT: usize = 10_000;

/// The submit token of each `/config` form sent, by card message: a form
/// submit is answered with it when the platform does not echo the submit
/// button's callback value. An entry is kept while its token may still be
/// clicked (until it expires: a used one stays, so a second submit is
/// told "already used", not "unknown"); the oldest go first past
/// [`FORMS_KEPT`].
///
/// No other table is kept per card or per message for clicks: a button's
/// token names its scope and chat (signed), and the platform says in which
/// chat it was clicked; the run's requester travels in the worker's
/// `RunStarted`, so a card re-rendered after a restart is signed alike.
#[derive(Clone, Default)]
pub(crate) struct FormTokens(Arc<Mutex<Forms>>);

#[derive(Default)]
struct Forms {
    /// (expiry, card message id) in the order sent, which is also the
    /// order of expiry: every form token lives as long.
    order: VecDeque<(i64, Arc<str>)>,
    map: HashMap<Arc<str>, (String, i64)>,
}

impl FormTokens {
    /// `expires_at`: the token's expiry, unix seconds.
    pub(crate) fn insert(&self, message_id: &str, token: &str, expires_at: i64, now: i64) {
        let Ok(mut f) = self.0.lock() else {
            return;
        };
        while let Some((exp, id)) = f.order.front().cloned() {
            if exp > now && f.order.len() < FORMS_KEPT {
                break;
            }
            f.order.pop_front();
            if f.map.get(&id).is_some_and(|(_, e)| *e == exp) {
                f.map.remove(&id);
            }
        }
        let id: Arc<str> = message_id.into();
        f.order.push_back((expires_at, id.clone()));
        f.map.insert(id, (token.to_string(), expires_at));
    }

    pub(crate) fn get(&self, message_id: &str) -> Option<String> {
        self.0
            .lock()
            .ok()
            .and_then(|f| f.map.get(message_id).map(|(t, _)| t.clone()))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().map_or(0, |f| f.map.len())
    }
}

/// Used button nonces, kept until their token expires and persisted, so a
/// click replayed after an fcxd restart is still refused. An append-only
/// log (`used-nonces`, one `hex expiry actor` line each), compacted on open.
///
/// If the log exists but cannot be read, it is left as it is (never
/// rewritten empty) and every button made before this start is refused until
/// it would have expired anyway: which of them were used is unknown.
pub(crate) struct FileNonceStore {
    memory: MemoryNonceStore,
    log: Mutex<Option<std::fs::File>>,
    /// Tokens expiring at or before this may predate an unreadable log.
    refuse_until: Option<i64>,
}

/// The longest a button token lives: command cards'
/// (`COMMAND_BUTTON_TTL_SECS` in egress/cards/command.rs); run cards' is
/// shorter.
const MAX_TOKEN_TTL_SECS: i64 = 24 * 3600;

impl FileNonceStore {
    pub(crate) fn open(path: &Path, now: i64) -> std::io::Result<Self> {
        let memory = MemoryNonceStore::default();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Vec::new()),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the used button nonces; refusing buttons made before this start");
                None
            }
        };
        let Some(bytes) = bytes else {
            let log = std::fs::OpenOptions::new().append(true).open(path).ok();
            return Ok(FileNonceStore {
                memory,
                log: Mutex::new(log),
                refuse_until: Some(now + MAX_TOKEN_TTL_SECS),
            });
        };
        let mut live = Vec::new();
        for line in String::from_utf8_lossy(&bytes).lines() {
            let mut it = line.split_whitespace();
            let (Some(n), Some(exp)) = (it.next(), it.next()) else {
                continue;
            };
            // Lines from before actors were recorded share one bucket.
            let actor = it.next().unwrap_or("");
            let (Some(bytes), Ok(exp)) = (hex::decode(n).ok(), exp.parse::<i64>()) else {
                continue;
            };
            let Ok(nonce) = <[u8; 16]>::try_from(bytes.as_slice()) else {
                continue;
            };
            // Kept a grace past expiry: the clock may since have stepped.
            if exp.saturating_add(CLOCK_STEP_GRACE_SECS) > now
                && memory.consume(actor, &nonce, exp, now).is_ok()
            {
                live.push(format!("{n} {exp} {actor}\n"));
            }
        }
        let compact = || -> std::io::Result<std::fs::File> {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, live.concat())?;
            std::fs::rename(&tmp, path)?;
            std::fs::OpenOptions::new().append(true).open(path)
        };
        // What was read is enforced either way; only new uses go unsaved.
        let log = compact()
            .map_err(|e| {
                tracing::error!(path = %path.display(), error = %e, "cannot rewrite the used button nonces; new ones are remembered until fcxd stops");
            })
            .ok();
        Ok(FileNonceStore {
            memory,
            log: Mutex::new(log),
            refuse_until: None,
        })
    }
}

impl NonceStore for FileNonceStore {
    fn consume(
        &self,
        actor: &str,
        nonce: &[u8; 16],
        expires_at: i64,
        now: i64,
    ) -> Result<(), Denied> {
        if self.refuse_until.is_some_and(|t| expires_at <= t) {
            return Err(Denied::Busy);
        }
        self.memory.consume(actor, nonce, expires_at, now)?;
        // Written before the click is answered; if the disk refuses, the
        // in-memory record still blocks a replay until fcxd restarts.
        if let Ok(mut log) = self.log.lock()
            && let Some(f) = log.as_mut()
        {
            use std::io::Write as _;
            // Actor ids are the platform's (`ou_…`); anything with spaces
            // is kept out of the line format.
            let actor = if actor.chars().any(char::is_whitespace) {
                ""
            } else {
                actor
            };
            if let Err(e) = writeln!(f, "{} {expires_at} {actor}", hex::encode(nonce)) {
                tracing::error!(error = %e, "cannot persist a used button nonce");
            }
        }
        Ok(())
    }
}

/// Verifies card clicks (in the ACK path: pure and fast).
pub(crate) struct Callbacks {
    /// The profile whose cards these are (for the denial metric).
    pub(crate) profile: String,
    pub(crate) keys: SharedKeys,
    pub(crate) nonces: Box<dyn NonceStore>,
    pub(crate) forms: FormTokens,
}

/// A verified click: what to ask the worker.
pub(crate) struct Click {
    pub(crate) claims: Claims,
    pub(crate) operator: String,
    /// The card message clicked (the worker's answer replies to it).
    pub(crate) message_id: String,
}

impl Click {
    /// The worker action this click asks for; `None` for an action this
    /// gateway never signs (cannot happen with a valid signature, but the
    /// mapping is total).
    pub(crate) fn action(&self, event: &Value) -> Option<pb::Action> {
        let c = &self.claims;
        let mut a = pb::Action {
            scope: c.scope.clone(),
            actor: Some(pb::Actor {
                id: self.operator.clone(),
                name: String::new(),
            }),
            fingerprint: c.fingerprint.clone(),
            message_id: self.message_id.clone(),
            ..Default::default()
        };
        let kind = if c.action == ACTION_STOP {
            Kind::Stop(pb::StopAction {
                run_id: c.run_id.clone(),
            })
        } else if let Some(cmd) = c.action.strip_prefix(ACTION_COMMAND) {
            Kind::Command(pb::CommandAction {
                line: cmd.to_string(),
            })
        } else if let Some(nonce) = c.action.strip_prefix(ACTION_RESUME) {
            Kind::Resume(pb::ResumeAction {
                nonce: nonce.to_string(),
            })
        } else if let Some(v) = c.action.strip_prefix(ACTION_APPROVAL) {
            // `<run_id>/<approval_id>/<decision>`, as the worker's button
            // value said; the signed run id must be the one it names.
            let mut parts = v.splitn(3, '/');
            let (run_id, approval_id, decision) = (parts.next()?, parts.next()?, parts.next()?);
            if run_id != c.run_id {
                return None;
            }
            let decision = pb::ApprovalDecision::from_word(decision)?;
            // A deny's note, typed in the card's form (only a deny has one).
            let note = if decision == pb::ApprovalDecision::Deny {
                form_note(event)
            } else {
                String::new()
            };
            Kind::Approval(pb::ApprovalAction {
                run_id: run_id.to_string(),
                approval_id: approval_id.to_string(),
                decision: decision as i32,
                note,
                // Only fcxd's own report sets it, never a click.
                undeliverable: false,
            })
        } else if let Some(v) = c.action.strip_prefix(ACTION_THREAD) {
            // `<op>/<thread_id>`, bound to the run whose card it was.
            let (op, thread_id) = v.split_once('/')?;
            if thread_id.is_empty() {
                return None;
            }
            Kind::Thread(pb::ThreadAction {
                op: pb::ThreadOp::from_word(op)? as i32,
                thread_id: thread_id.to_string(),
                run_id: c.run_id.clone(),
            })
        } else if let Some(nonce) = c.action.strip_prefix(ACTION_RUN_LATE) {
            Kind::RunLate(pb::RunLateAction {
                nonce: nonce.to_string(),
            })
        } else if c.action == ACTION_CONFIG {
            Kind::Config(pb::ConfigAction {
                values: form_values(event),
            })
        } else {
            return None;
        };
        a.kind = Some(kind);
        Some(a)
    }
}

/// Signed action names: what a button's token says it does.
pub(crate) const ACTION_STOP: &str = "stop";
pub(crate) const ACTION_COMMAND: &str = "cmd:";
pub(crate) const ACTION_RESUME: &str = "resume:";
pub(crate) const ACTION_CONFIG: &str = "config";
pub(crate) const ACTION_APPROVAL: &str = "approval:";
pub(crate) const ACTION_THREAD: &str = "thread:";
pub(crate) const ACTION_RUN_LATE: &str = "late:";
/// The form field of an approval card's deny note.
pub(crate) const NOTE_FIELD: &str = "note";
/// Longest note passed on (a short reason, not a prompt).
const NOTE_MAX_CHARS: usize = 500;

/// The note typed in a submitted form, trimmed and bounded.
fn form_note(event: &Value) -> String {
    event["action"]["form_value"][NOTE_FIELD]
        .as_str()
        .unwrap_or("")
        .trim()
        .chars()
        .take(NOTE_MAX_CHARS)
        .collect()
}

/// A submitted form's values, one field per component name (strings only:
/// a select answers with its option's value).
fn form_values(event: &Value) -> Vec<pb::Field> {
    let mut out: Vec<pb::Field> = event["action"]["form_value"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            Some(pb::Field {
                name: k.chars().take(64).collect(),
                value: v.as_str()?.chars().take(256).collect(),
            })
        })
        .take(32)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

impl Callbacks {
    /// Check a `card.action.trigger` event. `Err` carries the ACK answer (a
    /// low-detail toast); the reason is logged once.
    pub(crate) fn check(&self, event: &Value) -> Result<Click, Value> {
        let deny = |d: Denied| {
            crate::metrics::callback_denied(&self.profile, &d.to_string());
            if let Some(held_back) = super::warn_limit::admit("card action denied") {
                tracing::warn!(reason = ?d, held_back, "card action denied");
            }
            Err(d.answer())
        };
        let operator = event["operator"]["open_id"].as_str().unwrap_or("");
        let message_id = event["context"]["open_message_id"].as_str().unwrap_or("");
        let chat_id = event["context"]["open_chat_id"].as_str().unwrap_or("");
        let token = match event["action"]["value"][CALLBACK_VALUE_KEY].as_str() {
            Some(t) if !t.is_empty() => t.to_string(),
            // A form submit without the button's value: the token the form
            // was sent with.
            _ if event["action"]["form_value"].is_object() => {
                self.forms.get(message_id).unwrap_or_default()
            }
            _ => String::new(),
        };
        // The signed token says where its card belongs (a scope, in the
        // chat it names), and the platform says where it was clicked; all
        // must agree. No table of sent cards is consulted: a card sent
        // before this process started is checked the same way.
        let (scope, chat) = match callback::peek(&token, &self.keys.ring()) {
            Ok(c)
                if !chat_id.is_empty()
                    && c.chat_id == chat_id
                    && pb::Scope::chat_of(&c.scope) == c.chat_id =>
            {
                (c.scope, c.chat_id)
            }
            Ok(_) => return deny(Denied::WrongChat),
            Err(d) => return deny(d),
        };
        // Any action this gateway signs: the signature binds the action to
        // the card it was drawn on, and the caller maps it to what the
        // worker is asked (which re-checks policy).
        let expected = Expected {
            operator,
            scope: &scope,
            chat_id: &chat,
            action: None,
            run_id: None,
            fingerprint: None,
        };
        match self
            .keys
            .verify_once(&token, now_ms() / 1000, &expected, self.nonces.as_ref())
        {
            Ok(claims) => Ok(Click {
                claims,
                operator: operator.to_string(),
                message_id: message_id.to_string(),
            }),
            Err(d) => deny(d),
        }
    }
}

#[cfg(test)]
#[path = "click_tests.rs"]
mod tests;
