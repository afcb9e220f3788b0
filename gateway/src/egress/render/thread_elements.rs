//! The final run card's offer for the run's Codex thread: the line that
//! continues it in a terminal (the owner's runs only; the worker decides)
//! and the signed Fork / Archive buttons.

use serde_json::{Value, json};

use super::CALLBACK_VALUE_KEY;
use super::state::RunState;
use super::text::fenced;

/// Elements after the footer of a finished run's card.
pub(super) fn final_elements(state: &RunState) -> Vec<Value> {
    let mut els = Vec::new();
    let line = state.terminal_line.trim();
    if !line.is_empty() {
        els.push(json!({
            "tag": "markdown",
            "element_id": "terminal_line",
            "text_size": "notation",
            "content": format!("Continue in a terminal:\n{}", fenced(line, "sh")),
        }));
    }
    if !state.final_buttons.is_empty() {
        let columns: Vec<Value> = state
            .final_buttons
            .iter()
            .enumerate()
            .map(|(i, (label, token))| {
                json!({"tag": "column", "width": "auto", "elements": [{
                    "tag": "button",
                    "element_id": format!("thread_btn_{i}"),
                    "text": {"tag": "plain_text", "content": label},
                    "type": "default",
                    "size": "small",
                    "behaviors": [{"type": "callback", "value": {CALLBACK_VALUE_KEY: token}}],
                }]})
            })
            .collect();
        els.push(json!({
            "tag": "column_set",
            "element_id": "thread_buttons",
            "flex_mode": "none",
            "horizontal_spacing": "8px",
            "columns": columns,
        }));
    }
    els
}
