//! Inbound card clicks: a `card.action.trigger` event checked against the
//! signed token its button carries (see [`callback`]), turned into the
//! worker action it asks for. Runs in the ACK path: pure and fast.
//!
//! The maps it checks against ([`Requesters`], [`Carriers`]) are filled by
//! the egress side as it sends cards; used nonces are persisted by
//! [`FileNonceStore`] so a replay after a restart is still refused.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use fcx_proto::v1::{self as pb};
use serde_json::Value;

use crate::egress::render::CALLBACK_VALUE_KEY;
use crate::ingress::callback::{self, Claims, Denied, Expected, MemoryNonceStore, NonceStore};
use crate::ingress::keys::SharedKeys;
use crate::link::supervisor::now_ms;

/// Who asked for each message, so a run's stop button is signed for them.
#[derive(Clone, Default)]
pub(crate) struct Requesters(Arc<Mutex<HashMap<String, String>>>);

impl Requesters {
    pub(crate) fn remember(&self, message_id: &str, open_id: &str) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(message_id.to_string(), open_id.to_string());
        }
    }
    pub(crate) fn get(&self, message_id: &str) -> Option<String> {
        self.0.lock().ok().and_then(|m| m.get(message_id).cloned())
    }
}

/// Card messages this gateway sent: carrier message id → (scope, chat id).
#[derive(Clone, Default)]
pub(crate) struct Carriers(Arc<Mutex<HashMap<String, (String, String)>>>, FormTokens);

/// The submit token of each `/config` form sent, by card message: a form
/// submit is answered with it when the platform does not echo the submit
/// button's callback value.
#[derive(Clone, Default)]
struct FormTokens(Arc<Mutex<HashMap<String, String>>>);

impl Carriers {
    pub(crate) fn insert_form(&self, message_id: &str, token: &str) {
        if let Ok(mut m) = self.1.0.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(message_id.to_string(), token.to_string());
        }
    }
    pub(crate) fn form_token(&self, message_id: &str) -> Option<String> {
        self.1
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(message_id).cloned())
    }
    pub(crate) fn insert(&self, message_id: &str, scope: &str, chat_id: &str) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(
                message_id.to_string(),
                (scope.to_string(), chat_id.to_string()),
            );
        }
    }
    pub(crate) fn get(&self, message_id: &str) -> Option<(String, String)> {
        self.0.lock().ok().and_then(|m| m.get(message_id).cloned())
    }
}

/// Used button nonces, kept until their token expires and persisted, so a
/// click replayed after an fcxd restart is still refused. An append-only
/// log (`used-nonces`, one `hex expiry` line each), compacted on open.
pub(crate) struct FileNonceStore {
    memory: MemoryNonceStore,
    log: Mutex<Option<std::fs::File>>,
}

impl FileNonceStore {
    pub(crate) fn open(path: &Path, now: i64) -> std::io::Result<Self> {
        let memory = MemoryNonceStore::default();
        let mut live = Vec::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                let mut it = line.split_whitespace();
                let (Some(n), Some(exp)) = (it.next(), it.next()) else {
                    continue;
                };
                let (Some(bytes), Ok(exp)) = (hex::decode(n).ok(), exp.parse::<i64>()) else {
                    continue;
                };
                let Ok(nonce) = <[u8; 16]>::try_from(bytes.as_slice()) else {
                    continue;
                };
                if exp > now && memory.consume(&nonce, exp, now).is_ok() {
                    live.push(format!("{n} {exp}\n"));
                }
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, live.concat())?;
        std::fs::rename(&tmp, path)?;
        let log = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(FileNonceStore {
            memory,
            log: Mutex::new(Some(log)),
        })
    }
}

impl NonceStore for FileNonceStore {
    fn consume(&self, nonce: &[u8; 16], expires_at: i64, now: i64) -> Result<(), Denied> {
        self.memory.consume(nonce, expires_at, now)?;
        // Written before the click is answered; if the disk refuses, the
        // in-memory record still blocks a replay until fcxd restarts.
        if let Ok(mut log) = self.log.lock()
            && let Some(f) = log.as_mut()
        {
            use std::io::Write as _;
            if let Err(e) = writeln!(f, "{} {expires_at}", hex::encode(nonce)) {
                tracing::error!(error = %e, "cannot persist a used button nonce");
            }
        }
        Ok(())
    }
}

/// Verifies card clicks (in the ACK path: pure and fast).
pub(crate) struct Callbacks {
    pub(crate) keys: SharedKeys,
    pub(crate) nonces: Box<dyn NonceStore>,
    pub(crate) carriers: Carriers,
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
            chat_id: c.chat_id.clone(),
            message_id: self.message_id.clone(),
            ..Default::default()
        };
        if c.action == ACTION_STOP {
            a.kind = pb::ActionKind::Stop as i32;
            a.run_id = c.run_id.clone();
        } else if let Some(cmd) = c.action.strip_prefix(ACTION_COMMAND) {
            a.kind = pb::ActionKind::Command as i32;
            a.command = cmd.to_string();
        } else if let Some(nonce) = c.action.strip_prefix(ACTION_RESUME) {
            a.kind = pb::ActionKind::Resume as i32;
            a.nonce = nonce.to_string();
        } else if c.action == ACTION_CONFIG {
            a.kind = pb::ActionKind::Config as i32;
            a.values = form_values(event);
        } else {
            return None;
        }
        Some(a)
    }
}

/// Signed action names: what a button's token says it does.
pub(crate) const ACTION_STOP: &str = "stop";
pub(crate) const ACTION_COMMAND: &str = "cmd:";
pub(crate) const ACTION_RESUME: &str = "resume:";
pub(crate) const ACTION_CONFIG: &str = "config";

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
            tracing::warn!(reason = ?d, "card action denied");
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
                self.carriers.form_token(message_id).unwrap_or_default()
            }
            _ => String::new(),
        };
        let (scope, carrier_chat) = match self.carriers.get(message_id) {
            Some(c) => c,
            // A card sent before this process started: the signed token
            // says where it belongs, and the platform says where it was
            // clicked; they must agree.
            None => match callback::peek(&token, &self.keys.ring()) {
                Ok(c) if !chat_id.is_empty() && c.chat_id == chat_id => (c.scope, c.chat_id),
                Ok(_) => return deny(Denied::WrongChat),
                Err(d) => return deny(d),
            },
        };
        if !chat_id.is_empty() && chat_id != carrier_chat {
            return deny(Denied::WrongChat);
        }
        // Any action this gateway signs: the signature binds the action to
        // the card it was drawn on, and the caller maps it to what the
        // worker is asked (which re-checks policy).
        let expected = Expected {
            operator,
            scope: &scope,
            chat_id: &carrier_chat,
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
