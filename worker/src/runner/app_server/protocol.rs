//! The app-server messages fcx sends, and the parts of what it receives that
//! fcx reads (field names as in `codex app-server generate-ts`, 0.169.0).

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::runner::RunSpec;

pub(crate) const INITIALIZE: &str = "initialize";
pub(crate) const INITIALIZED: &str = "initialized";
pub(crate) const THREAD_START: &str = "thread/start";
pub(crate) const THREAD_RESUME: &str = "thread/resume";
pub(crate) const TURN_START: &str = "turn/start";
pub(crate) const TURN_STEER: &str = "turn/steer";
pub(crate) const TURN_INTERRUPT: &str = "turn/interrupt";

/// `clientInfo.name` becomes the `originator` of Codex's model requests.
pub(crate) const CLIENT_NAME: &str = "fcx";

pub(crate) fn initialize() -> Value {
    json!({
        "clientInfo": {"name": CLIENT_NAME, "title": null, "version": env!("CARGO_PKG_VERSION")},
        "capabilities": null,
    })
}

/// Settings both `thread/start` and `thread/resume` take: the thread runs
/// with this run's workspace, sandbox and model even when resumed.
fn thread_settings(spec: &RunSpec) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("cwd".into(), json!(spec.cwd));
    if !crate::runner::deny::applies(spec) {
        // Otherwise the permissions profile in `config` stands for it (a
        // `sandbox` here would replace it, deny entries and all).
        m.insert("sandbox".into(), json!(spec.sandbox.as_str()));
    }
    m.insert("approvalPolicy".into(), json!(spec.approval.as_str()));
    if let Some(model) = &spec.model {
        m.insert("model".into(), json!(model));
    }
    let config = crate::runner::overrides::as_json(&crate::runner::overrides::overrides(spec));
    if !config.is_empty() {
        m.insert("config".into(), Value::Object(config));
    }
    m
}

pub(crate) fn thread_start(spec: &RunSpec) -> Value {
    Value::Object(thread_settings(spec))
}

pub(crate) fn thread_resume(spec: &RunSpec, thread_id: &str) -> Value {
    let mut m = thread_settings(spec);
    m.insert("threadId".into(), json!(thread_id));
    // The history stays in the rollout; only the live state is needed.
    m.insert("excludeTurns".into(), json!(true));
    Value::Object(m)
}

/// `thread/fork`: a new thread with `thread_id`'s history, under this
/// spec's workspace, sandbox, model and overrides (as a resume would run).
pub(crate) fn thread_fork(spec: &RunSpec, thread_id: &str) -> Value {
    thread_resume(spec, thread_id)
}

fn input(text: &str, images: &[std::path::PathBuf]) -> Value {
    let mut items: Vec<Value> = images
        .iter()
        .map(|p| json!({"type": "localImage", "path": p}))
        .collect();
    items.push(json!({"type": "text", "text": text, "text_elements": []}));
    Value::Array(items)
}

pub(crate) fn turn_start(thread_id: &str, text: &str, images: &[std::path::PathBuf]) -> Value {
    json!({"threadId": thread_id, "input": input(text, images)})
}

pub(crate) fn turn_steer(
    thread_id: &str,
    turn_id: &str,
    text: &str,
    images: &[std::path::PathBuf],
) -> Value {
    json!({"threadId": thread_id, "expectedTurnId": turn_id, "input": input(text, images)})
}

/// The answer to an approval request.
pub(crate) fn approval_answer(decision: &crate::runner::ApprovalDecision) -> Value {
    use crate::runner::ApprovalDecision as D;
    json!({"decision": match decision {
        D::Accept => "accept",
        D::AcceptForSession => "acceptForSession",
        D::Decline => "decline",
        D::Cancel => "cancel",
    }})
}

pub(crate) fn turn_interrupt(thread_id: &str, turn_id: &str) -> Value {
    json!({"threadId": thread_id, "turnId": turn_id})
}

/// `result.thread.id` of `thread/start` and `thread/resume`.
pub(crate) fn thread_id_of(result: &Value) -> Option<String> {
    non_empty(result.pointer("/thread/id"))
}

/// `result.turn.id` of `turn/start`.
pub(crate) fn turn_id_of(result: &Value) -> Option<String> {
    non_empty(result.pointer("/turn/id"))
}

fn non_empty(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whether a `thread/resume` error means the thread cannot be resumed at
/// all (as opposed to a transient failure): unknown id, unparsable id.
pub(crate) fn is_thread_gone(message: &str) -> bool {
    message.contains("no rollout found") || message.contains("invalid session id")
}

/// The app-server `ThreadItem`, flattened to the fields fcx reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Item {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) text: Option<String>,
    pub(crate) summary: Option<Vec<String>>,
    pub(crate) command: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) aggregated_output: Option<String>,
    pub(crate) exit_code: Option<i64>,
    pub(crate) changes: Option<Vec<Change>>,
    pub(crate) server: Option<String>,
    pub(crate) tool: Option<String>,
    pub(crate) result: Option<Value>,
    pub(crate) error: Option<Value>,
    pub(crate) query: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Change {
    pub(crate) path: String,
    /// `{"type": "add" | "delete" | "update", …}`
    pub(crate) kind: Value,
}

/// The relative form of `path` when it lies under `cwd`.
pub(crate) fn relative(cwd: &Path, path: &str) -> String {
    match Path::new(path).strip_prefix(cwd) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_ride_with_a_turn_and_with_a_steer_as_local_images() {
        let imgs = [std::path::PathBuf::from("/ws/.fcx/inbox/image-1.png")];
        for v in [
            turn_start("t", "look", &imgs),
            turn_steer("t", "tu", "look", &imgs),
        ] {
            let input = &v["input"];
            assert_eq!(
                input[0],
                json!({"type": "localImage", "path": "/ws/.fcx/inbox/image-1.png"})
            );
            assert_eq!(input[1]["type"], "text");
            assert_eq!(input[1]["text"], "look");
        }
        assert_eq!(turn_steer("t", "tu", "x", &[])["input"][0]["text"], "x");
    }
}
