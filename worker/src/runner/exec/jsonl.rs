//! The shapes of `codex exec --json` lines, parsed loosely: a field that
//! changed type between codex versions must not cost a turn.

use serde::Deserialize;
use serde_json::Value;

use crate::util::truncate_chars;

const LOG_SNIPPET_CHARS: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawEvent {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) thread_id: Option<String>,
    pub(super) item: Option<Value>,
    /// Loose, so an odd usage field cannot cost us the turn's completion.
    pub(super) usage: Option<Value>,
    pub(super) error: Option<Value>,
    pub(super) message: Option<Value>,
}

/// One flat shape for every item type; fields a type lacks stay `None`.
/// Loose types (`Value`) where codex versions have differed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawItem {
    pub(super) id: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) text: Option<String>,
    pub(super) message: Option<String>,
    pub(super) command: Option<String>,
    pub(super) aggregated_output: Option<String>,
    pub(super) exit_code: Option<i64>,
    pub(super) status: Option<String>,
    pub(super) changes: Option<Vec<RawChange>>,
    pub(super) server: Option<String>,
    pub(super) tool: Option<String>,
    pub(super) result: Option<Value>,
    pub(super) error: Option<Value>,
    pub(super) query: Option<String>,
    pub(super) items: Option<Vec<RawTodo>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawChange {
    pub(super) path: Option<String>,
    pub(super) kind: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawTodo {
    pub(super) text: Option<String>,
    pub(super) completed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Started,
    Updated,
    Completed,
}

/// A message from `{"message": ".."}`, a bare string, or the object itself.
pub(super) fn message_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("message").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

pub(super) fn snippet(bytes: &[u8]) -> String {
    truncate_chars(&String::from_utf8_lossy(bytes), LOG_SNIPPET_CHARS)
}
