//! JSONL events → runner events, keeping what the run's result needs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::jsonl::{Phase, RawEvent, RawItem, RawTodo, message_of, snippet};
use crate::runner::{FileChange, RunnerEvent, TokenUsage, ToolKind, ToolStatus};

/// Turns `codex exec --json` lines into runner events and keeps what the
/// result needs. Never fails: what it cannot use it logs and skips.
#[derive(Debug)]
pub(super) struct Translator {
    pub(super) cwd: PathBuf,
    pub(super) thread_id: Option<String>,
    pub(super) final_text: Option<String>,
    pub(super) usage: Option<TokenUsage>,
    pub(super) turn_completed: bool,
    pub(super) turn_failed: Option<String>,
    /// Tool items that already got a ToolStarted.
    pub(super) started: HashSet<String>,
}

impl Translator {
    pub(super) fn new(cwd: PathBuf) -> Self {
        Translator {
            cwd,
            thread_id: None,
            final_text: None,
            usage: None,
            turn_completed: false,
            turn_failed: None,
            started: HashSet::new(),
        }
    }

    pub(super) fn line(&mut self, line: &[u8]) -> Vec<RunnerEvent> {
        let mut out = Vec::new();
        if line.iter().all(u8::is_ascii_whitespace) {
            return out;
        }
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                tracing::warn!(line = %snippet(line), "codex printed a line that is not JSON; skipping it");
                return out;
            }
        };
        let ev: RawEvent = match serde_json::from_value(value) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(line = %snippet(line), error = %e, "codex printed an event of unexpected shape; skipping it");
                return out;
            }
        };
        let kind = ev.kind.as_deref().unwrap_or("");
        match kind {
            "thread.started" => {
                if let Some(id) = ev.thread_id.filter(|t| !t.is_empty()) {
                    self.thread_id = Some(id.clone());
                    out.push(RunnerEvent::ThreadStarted { thread_id: id });
                }
            }
            "turn.started" => out.push(RunnerEvent::TurnStarted),
            "item.started" | "item.updated" | "item.completed" => {
                let phase = match kind {
                    "item.started" => Phase::Started,
                    "item.updated" => Phase::Updated,
                    _ => Phase::Completed,
                };
                match ev.item.map(serde_json::from_value::<RawItem>) {
                    Some(Ok(item)) => self.item(phase, item, &mut out),
                    Some(Err(e)) => {
                        tracing::warn!(line = %snippet(line), error = %e, "codex printed an item of unexpected shape; skipping it");
                    }
                    None => tracing::debug!(event = kind, "codex item event without an item"),
                }
            }
            "turn.completed" => {
                self.turn_completed = true;
                if let Some(u) = ev.usage.filter(Value::is_object) {
                    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                    let usage = TokenUsage {
                        input_tokens: n("input_tokens"),
                        cached_input_tokens: n("cached_input_tokens"),
                        output_tokens: n("output_tokens"),
                        reasoning_output_tokens: n("reasoning_output_tokens"),
                    };
                    self.usage = Some(usage);
                    out.push(RunnerEvent::Usage(usage));
                }
            }
            "turn.failed" => {
                let message = ev
                    .error
                    .as_ref()
                    .and_then(message_of)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "codex reported that the turn failed".into());
                self.turn_failed = Some(message);
            }
            "error" => {
                if let Some(message) = ev.message.as_ref().and_then(message_of) {
                    // Codex 0.169 says `Reconnecting... 2/5 (...)` and, once
                    // it gives up counting, `Reconnecting... waiting for
                    // network (...)`, forever.
                    if message.starts_with("Reconnecting") {
                        out.push(RunnerEvent::Retrying { message });
                    } else {
                        out.push(RunnerEvent::Warning { message });
                    }
                }
            }
            other => tracing::debug!(event = other, "skipping unknown codex event type"),
        }
        out
    }

    pub(super) fn item(&mut self, phase: Phase, item: RawItem, out: &mut Vec<RunnerEvent>) {
        let item_id = item.id.clone().unwrap_or_default();
        match item.kind.as_deref().unwrap_or("") {
            "agent_message" => {
                if phase == Phase::Completed {
                    let text = item.text.unwrap_or_default();
                    out.push(RunnerEvent::TextDelta {
                        item_id: item_id.clone(),
                        delta: text.clone(),
                    });
                    out.push(RunnerEvent::AgentMessage {
                        item_id,
                        text: text.clone(),
                    });
                    self.final_text = Some(text);
                }
            }
            "reasoning" => {
                if phase == Phase::Completed
                    && let Some(text) = item.text.filter(|t| !t.is_empty())
                {
                    out.push(RunnerEvent::ReasoningDelta {
                        item_id,
                        delta: text,
                    });
                }
            }
            "error" => {
                if phase == Phase::Completed
                    && let Some(message) = item.message.or(item.text)
                {
                    out.push(RunnerEvent::Warning { message });
                }
            }
            "command_execution" | "file_change" | "mcp_tool_call" | "web_search" | "todo_list" => {
                self.tool(phase, item_id, item, out)
            }
            other => tracing::debug!(item_type = other, "skipping unknown codex item type"),
        }
    }

    pub(super) fn tool(
        &mut self,
        phase: Phase,
        item_id: String,
        item: RawItem,
        out: &mut Vec<RunnerEvent>,
    ) {
        let changes: Vec<FileChange> = item
            .changes
            .iter()
            .flatten()
            .map(|c| FileChange {
                path: c.path.clone().unwrap_or_default(),
                kind: c
                    .kind
                    .as_ref()
                    .and_then(|k| match k {
                        Value::String(s) => Some(s.clone()),
                        Value::Object(m) => {
                            m.get("type").and_then(Value::as_str).map(str::to_string)
                        }
                        _ => None,
                    })
                    .unwrap_or_else(|| "update".into()),
            })
            .collect();
        let (kind, title) = match item.kind.as_deref().unwrap_or("") {
            "command_execution" => (ToolKind::Command, item.command.clone().unwrap_or_default()),
            "file_change" => (ToolKind::FileChange, self.changes_title(&changes)),
            "mcp_tool_call" => (
                ToolKind::Mcp,
                format!(
                    "{}.{}",
                    item.server.as_deref().unwrap_or("?"),
                    item.tool.as_deref().unwrap_or("?")
                ),
            ),
            "web_search" => (
                ToolKind::WebSearch,
                item.query
                    .clone()
                    .filter(|q| !q.is_empty())
                    .unwrap_or_else(|| "web search".into()),
            ),
            _ => (
                ToolKind::Todo,
                todo_title(item.items.as_deref().unwrap_or_default()),
            ),
        };
        let first_sight = self.started.insert(item_id.clone());
        if first_sight {
            // A completed item with no earlier start still opens first, so
            // consumers always see start before end.
            out.push(RunnerEvent::ToolStarted {
                item_id: item_id.clone(),
                kind,
                title: title.clone(),
                changes: changes.clone(),
            });
        }
        if phase != Phase::Completed {
            return;
        }
        let error = item.error.as_ref().and_then(message_of);
        let exit_code = item.exit_code.and_then(|c| i32::try_from(c).ok());
        let output = match kind {
            ToolKind::Command => item.aggregated_output.unwrap_or_default(),
            ToolKind::Mcp => item.result.as_ref().map(mcp_output).unwrap_or_default(),
            ToolKind::Todo => todo_output(item.items.as_deref().unwrap_or_default()),
            ToolKind::FileChange | ToolKind::WebSearch => String::new(),
        };
        out.push(RunnerEvent::ToolCompleted {
            item_id,
            kind,
            title,
            status: tool_status(item.status.as_deref(), exit_code, error.is_some()),
            exit_code,
            output,
            changes,
            error,
        });
    }

    pub(super) fn changes_title(&self, changes: &[FileChange]) -> String {
        const SHOWN: usize = 3;
        if changes.is_empty() {
            return "file changes".into();
        }
        let mut t = changes
            .iter()
            .take(SHOWN)
            .map(|c| format!("{} {}", c.kind, self.relative(&c.path)))
            .collect::<Vec<_>>()
            .join(", ");
        if changes.len() > SHOWN {
            t.push_str(&format!(" and {} more", changes.len() - SHOWN));
        }
        t
    }

    /// Paths under the workspace read better without it.
    pub(super) fn relative(&self, path: &str) -> String {
        match Path::new(path).strip_prefix(&self.cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.to_string(),
        }
    }
}

pub(super) fn tool_status(
    status: Option<&str>,
    exit_code: Option<i32>,
    has_error: bool,
) -> ToolStatus {
    match status {
        Some("completed") => ToolStatus::Ok,
        Some("failed") => ToolStatus::Failed,
        Some("declined") => ToolStatus::Declined,
        _ if has_error || exit_code.is_some_and(|c| c != 0) => ToolStatus::Failed,
        _ => ToolStatus::Ok,
    }
}

pub(super) fn todo_title(items: &[RawTodo]) -> String {
    let done = items.iter().filter(|t| t.completed).count();
    format!("todo list: {done}/{} done", items.len())
}

pub(super) fn todo_output(items: &[RawTodo]) -> String {
    items
        .iter()
        .map(|t| {
            format!(
                "[{}] {}",
                if t.completed { "x" } else { " " },
                t.text.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text blocks of an MCP result, or the result as JSON if it has none.
pub(crate) fn mcp_output(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if !texts.is_empty() {
        return texts.join("\n");
    }
    if result.is_null() {
        return String::new();
    }
    result.to_string()
}
