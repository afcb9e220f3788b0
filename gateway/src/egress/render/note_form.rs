//! A button that carries a short typed text (an approval's "Deny with a
//! note"): a form holding one text input named [`NOTE_FIELD`] and the
//! button as its submit, the click's token in the submit's callback value
//! (so the click is checked like any other button's).

use serde_json::{Value, json};

use super::CALLBACK_VALUE_KEY;
use crate::ingress::click::NOTE_FIELD;

/// Longest note the input takes (the gateway cuts longer ones anyway).
const NOTE_MAX_CHARS: usize = 500;

/// The form for button `i` labelled `label` with callback `token`.
pub(super) fn note_form(i: usize, label: &str, token: &str) -> Value {
    json!({
        "tag": "form",
        "element_id": format!("fcx_note_{i}"),
        "name": format!("fcx_noteform_{i}"),
        "elements": [
            {
                "tag": "input",
                "element_id": format!("fcx_note_in_{i}"),
                "name": NOTE_FIELD,
                "placeholder": {"tag": "plain_text", "content": "A short note for Codex (why not, what instead)"},
                "max_length": NOTE_MAX_CHARS,
                "width": "fill",
            },
            {
                "tag": "button",
                "element_id": format!("fcx_note_btn_{i}"),
                "name": format!("fcx_note_submit_{i}"),
                "text": {"tag": "plain_text", "content": label},
                "type": "danger",
                "form_action_type": "submit",
                "behaviors": [{"type": "callback", "value": {CALLBACK_VALUE_KEY: token}}],
            },
        ],
    })
}
