//! App-server notifications → runner events, the same semantic events the
//! exec runner emits, plus the live deltas exec cannot give. Keeps what the
//! run's result needs. Never fails: what it cannot use it logs and skips.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;

use super::protocol::{Item, relative};
use crate::runner::exec::translate::mcp_output;
use crate::runner::{FileChange, RunnerEvent, TokenUsage, ToolKind, ToolStatus};

/// How the turn ended, from `turn/completed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TurnEnd {
    Completed,
    Interrupted,
    Failed(String),
}

#[derive(Debug)]
pub(crate) struct Mapper {
    cwd: PathBuf,
    pub(crate) thread_id: Option<String>,
    /// The turn this run started; notifications of other turns are ignored.
    pub(crate) turn_id: Option<String>,
    pub(crate) final_text: Option<String>,
    pub(crate) usage: Option<TokenUsage>,
    pub(crate) turn_end: Option<TurnEnd>,
    /// The last non-retried `error` notification: the failure's best words.
    pub(crate) last_error: Option<String>,
    /// Agent message text already sent as deltas, per item.
    streamed: HashMap<String, String>,
    /// Reasoning items whose summary was streamed.
    reasoning_streamed: HashSet<String>,
    /// Tool items that got a ToolStarted.
    started: HashSet<String>,
}

impl Mapper {
    pub(crate) fn new(cwd: PathBuf) -> Self {
        Mapper {
            cwd,
            thread_id: None,
            turn_id: None,
            final_text: None,
            usage: None,
            turn_end: None,
            last_error: None,
            streamed: HashMap::new(),
            reasoning_streamed: HashSet::new(),
            started: HashSet::new(),
        }
    }

    /// Whether a notification about `turn` concerns this run's turn.
    fn ours(&self, params: &Value) -> bool {
        match (params.get("turnId").and_then(Value::as_str), &self.turn_id) {
            (Some(t), Some(mine)) => t == mine,
            _ => true,
        }
    }

    pub(crate) fn notification(&mut self, method: &str, params: &Value) -> Vec<RunnerEvent> {
        let mut out = Vec::new();
        let s = |k: &str| {
            params
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match method {
            "turn/started" => {
                if self.turn_matches(params) {
                    out.push(RunnerEvent::TurnStarted);
                }
            }
            "turn/completed" => {
                if self.turn_matches(params) {
                    self.turn_completed(params);
                }
            }
            "item/started" | "item/completed" => {
                if !self.ours(params) {
                    return out;
                }
                let item = params.get("item").cloned().unwrap_or(Value::Null);
                match serde_json::from_value::<Item>(item) {
                    Ok(item) => self.item(method == "item/completed", item, &mut out),
                    Err(e) => {
                        tracing::warn!(error = %e, "codex app-server sent an item of unexpected shape; skipping it")
                    }
                }
            }
            "item/agentMessage/delta" => {
                let (item_id, delta) = (s("itemId"), s("delta"));
                if self.ours(params) && !delta.is_empty() {
                    self.streamed
                        .entry(item_id.clone())
                        .or_default()
                        .push_str(&delta);
                    out.push(RunnerEvent::TextDelta { item_id, delta });
                }
            }
            "item/reasoning/summaryTextDelta" => {
                let (item_id, delta) = (s("itemId"), s("delta"));
                if self.ours(params) && !delta.is_empty() {
                    self.reasoning_streamed.insert(item_id.clone());
                    out.push(RunnerEvent::ReasoningDelta { item_id, delta });
                }
            }
            "item/reasoning/summaryPartAdded" => {
                // A new summary paragraph after the first one.
                let item_id = s("itemId");
                if self.ours(params) && self.reasoning_streamed.contains(&item_id) {
                    out.push(RunnerEvent::ReasoningDelta {
                        item_id,
                        delta: "\n\n".into(),
                    });
                }
            }
            "item/commandExecution/outputDelta" => {
                let (item_id, delta) = (s("itemId"), s("delta"));
                if self.ours(params) && !delta.is_empty() {
                    out.push(RunnerEvent::ToolOutputDelta { item_id, delta });
                }
            }
            "thread/tokenUsage/updated" => {
                if let Some(t) = params.pointer("/tokenUsage/total") {
                    let n = |k: &str| t.get(k).and_then(Value::as_u64).unwrap_or(0);
                    let usage = TokenUsage {
                        input_tokens: n("inputTokens"),
                        cached_input_tokens: n("cachedInputTokens"),
                        output_tokens: n("outputTokens"),
                        reasoning_output_tokens: n("reasoningOutputTokens"),
                    };
                    self.usage = Some(usage);
                    out.push(RunnerEvent::Usage(usage));
                }
            }
            "error" => {
                let message = params
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("codex reported an error")
                    .to_string();
                let retrying = params
                    .get("willRetry")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if retrying {
                    // The cause is in `additionalDetails` ("Reconnecting...
                    // waiting for network" + "Connection failed: ...").
                    let message = match params
                        .pointer("/error/additionalDetails")
                        .and_then(Value::as_str)
                        .filter(|d| !d.is_empty())
                    {
                        Some(d) => format!("{message} ({d})"),
                        None => message,
                    };
                    out.push(RunnerEvent::Retrying { message });
                } else {
                    self.last_error = Some(message.clone());
                    out.push(RunnerEvent::Warning { message });
                }
            }
            "warning" => {
                let message = s("message");
                if !message.is_empty() {
                    out.push(RunnerEvent::Warning { message });
                }
            }
            "configWarning" => {
                // Setup remarks (e.g. bubblewrap not on PATH): for the log.
                tracing::debug!(summary = %s("summary"), "codex app-server config warning");
            }
            other => tracing::trace!(method = other, "skipping app-server notification"),
        }
        out
    }

    fn turn_matches(&self, params: &Value) -> bool {
        match (
            params.pointer("/turn/id").and_then(Value::as_str),
            &self.turn_id,
        ) {
            (Some(t), Some(mine)) => t == mine,
            // Before turn/start answered, the only turn is ours.
            _ => true,
        }
    }

    fn turn_completed(&mut self, params: &Value) {
        let status = params
            .pointer("/turn/status")
            .and_then(Value::as_str)
            .unwrap_or("");
        let end = match status {
            "completed" => TurnEnd::Completed,
            "interrupted" => TurnEnd::Interrupted,
            _ => {
                let message = params
                    .pointer("/turn/error/message")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .or_else(|| self.last_error.clone())
                    .unwrap_or_else(|| format!("codex reported that the turn ended as {status:?}"));
                TurnEnd::Failed(message)
            }
        };
        self.turn_end = Some(end);
    }

    fn item(&mut self, completed: bool, item: Item, out: &mut Vec<RunnerEvent>) {
        match item.kind.as_str() {
            "agentMessage" => {
                if completed {
                    let text = item.text.unwrap_or_default();
                    let sent = self.streamed.remove(&item.id).unwrap_or_default();
                    // Deltas carry the text as it came; send what they missed
                    // (all of it when the server streamed none).
                    match text.strip_prefix(sent.as_str()) {
                        Some(rest) if !rest.is_empty() => out.push(RunnerEvent::TextDelta {
                            item_id: item.id.clone(),
                            delta: rest.to_string(),
                        }),
                        Some(_) => {}
                        None => tracing::warn!(
                            item_id = %item.id,
                            "the streamed answer differs from the completed one; the final text wins"
                        ),
                    }
                    out.push(RunnerEvent::AgentMessage {
                        item_id: item.id,
                        text: text.clone(),
                    });
                    self.final_text = Some(text);
                }
            }
            "reasoning" => {
                if completed && !self.reasoning_streamed.remove(&item.id) {
                    let text = item.summary.unwrap_or_default().join("\n\n");
                    if !text.is_empty() {
                        out.push(RunnerEvent::ReasoningDelta {
                            item_id: item.id,
                            delta: text,
                        });
                    }
                }
            }
            "commandExecution" | "fileChange" | "mcpToolCall" | "webSearch" => {
                self.tool(completed, item, out)
            }
            other => tracing::debug!(item_type = other, "skipping app-server item type"),
        }
    }

    fn tool(&mut self, completed: bool, item: Item, out: &mut Vec<RunnerEvent>) {
        let changes: Vec<FileChange> = item
            .changes
            .iter()
            .flatten()
            .map(|c| FileChange {
                path: c.path.clone(),
                kind: c
                    .kind
                    .get("type")
                    .or(Some(&c.kind))
                    .and_then(Value::as_str)
                    .unwrap_or("update")
                    .to_string(),
            })
            .collect();
        let (kind, title) = match item.kind.as_str() {
            "commandExecution" => (ToolKind::Command, item.command.clone().unwrap_or_default()),
            "fileChange" => (ToolKind::FileChange, self.changes_title(&changes)),
            "mcpToolCall" => (
                ToolKind::Mcp,
                format!(
                    "{}.{}",
                    item.server.as_deref().unwrap_or("?"),
                    item.tool.as_deref().unwrap_or("?")
                ),
            ),
            _ => (
                ToolKind::WebSearch,
                item.query
                    .clone()
                    .filter(|q| !q.is_empty())
                    .unwrap_or_else(|| "web search".into()),
            ),
        };
        if self.started.insert(item.id.clone()) {
            // A completed item with no earlier start still opens first.
            out.push(RunnerEvent::ToolStarted {
                item_id: item.id.clone(),
                kind,
                title: title.clone(),
                changes: changes.clone(),
            });
        }
        if !completed {
            return;
        }
        let error = item.error.as_ref().and_then(|e| match e {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => other
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        let exit_code = item.exit_code.and_then(|c| i32::try_from(c).ok());
        let output = match kind {
            ToolKind::Command => item.aggregated_output.unwrap_or_default(),
            ToolKind::Mcp => item.result.as_ref().map(mcp_output).unwrap_or_default(),
            _ => String::new(),
        };
        let status = match item.status.as_deref() {
            Some("completed") if exit_code.is_none_or(|c| c == 0) => ToolStatus::Ok,
            Some("declined") => ToolStatus::Declined,
            Some("completed") | Some("failed") => ToolStatus::Failed,
            _ if error.is_some() || exit_code.is_some_and(|c| c != 0) => ToolStatus::Failed,
            _ => ToolStatus::Ok,
        };
        out.push(RunnerEvent::ToolCompleted {
            item_id: item.id,
            kind,
            title,
            status,
            exit_code,
            output,
            changes,
            error,
        });
    }

    fn changes_title(&self, changes: &[FileChange]) -> String {
        const SHOWN: usize = 3;
        if changes.is_empty() {
            return "file changes".into();
        }
        let mut t = changes
            .iter()
            .take(SHOWN)
            .map(|c| format!("{} {}", c.kind, relative(&self.cwd, &c.path)))
            .collect::<Vec<_>>()
            .join(", ");
        if changes.len() > SHOWN {
            t.push_str(&format!(" and {} more", changes.len() - SHOWN));
        }
        t
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
