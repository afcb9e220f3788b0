//! Merged-and-forwarded messages: a user forwards several chat messages as
//! one `merge_forward` message, whose content only says that it is one
//! (feishu.md §2.2). Its children come from `GET /open-apis/im/v1/messages/
//! {id}` (§3.4): `data.items` holds the message itself and its children,
//! each child's `upper_message_id` naming it. Resources inside the children
//! cannot be downloaded by a bot (234043, §3.6), so they are named, not
//! fetched.

use std::time::Duration;

use fcx_proto::v1::Inbound;

use crate::feishu::http::{ApiError, Message, OpenApiClient};
use crate::ingress::normalize;

/// The text a merge-forward carries until (or when) its children cannot be
/// read.
pub(crate) const PLACEHOLDER: &str = "[merged and forwarded messages]";

/// Children rendered at most; the rest are counted.
pub(crate) const MAX_CHILDREN: usize = 50;

/// Rendered text at most, below the worker's 64 KiB per message so the
/// note on what was left out still fits.
pub(crate) const MAX_TEXT_BYTES: usize = 60 * 1024;

/// Why a resource inside a child is not there.
const NOT_AVAILABLE: &str = "not available: the platform does not let bots download files inside forwarded messages (234043)";

/// Puts the children of merge-forward `inbound` into its text, within
/// `budget`. When they cannot be read the placeholder stays, and the line
/// to tell the sender why is returned.
pub(crate) async fn expand(
    http: &OpenApiClient,
    inbound: &mut Inbound,
    budget: Duration,
) -> Option<String> {
    match tokio::time::timeout(budget, fetch(http, &inbound.message_id)).await {
        Ok(Ok(text)) => {
            inbound.text = text;
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(message = %inbound.message_id, error = %e, "cannot read a merged and forwarded message's contents");
            Some(unread_text(Some(&e)))
        }
        Err(_) => {
            tracing::warn!(message = %inbound.message_id, "reading a merged and forwarded message's contents took too long");
            Some(unread_text(None))
        }
    }
}

/// The children of merge-forward `message_id` rendered as text.
pub(crate) async fn fetch(http: &OpenApiClient, message_id: &str) -> Result<String, ApiError> {
    let items = http.im().get_message(message_id).await?;
    Ok(render(message_id, &items))
}

/// "Forwarded messages:" and one block per child of `message_id`, in the
/// platform's order; capped at [`MAX_CHILDREN`] and [`MAX_TEXT_BYTES`].
pub(crate) fn render(message_id: &str, items: &[Message]) -> String {
    let children: Vec<&Message> = items
        .iter()
        .filter(|m| m.upper_message_id.as_deref() == Some(message_id))
        .collect();
    if children.is_empty() {
        return format!("{PLACEHOLDER} (the platform listed no messages inside)");
    }
    let mut out = String::from("Forwarded messages:");
    let mut shown = 0;
    for (i, m) in children.iter().take(MAX_CHILDREN).enumerate() {
        let block = format!("\n\n[{}] {}:\n{}", i + 1, sender(m), child_text(m));
        if out.len() + block.len() > MAX_TEXT_BYTES {
            break;
        }
        out.push_str(&block);
        shown += 1;
    }
    if shown < children.len() {
        let left = children.len() - shown;
        out.push_str(&format!(
            "\n\n[{left} more forwarded message(s) not shown: fcx reads at most {MAX_CHILDREN} messages or {} KiB of a forward]",
            MAX_TEXT_BYTES / 1024
        ));
    }
    out
}

fn sender(m: &Message) -> String {
    let s = m.sender.as_ref();
    let id = s.and_then(|s| s.id.as_deref()).unwrap_or("");
    match s.and_then(|s| s.sender_type.as_deref()) {
        Some("app") => format!("a bot ({id})"),
        _ if id.is_empty() => "someone".to_string(),
        _ => id.to_string(),
    }
}

/// One child's text: text and posts as in a quote; anything that would be
/// a download is named as not available, with the reason.
fn child_text(m: &Message) -> String {
    let msg_type = m.msg_type.as_deref().unwrap_or("");
    let content = m.body.as_ref().map(|b| b.content.as_str()).unwrap_or("");
    let field = |k: &str| {
        serde_json::from_str::<serde_json::Value>(content)
            .ok()
            .and_then(|v| v.get(k).and_then(|x| x.as_str()).map(str::to_string))
            .unwrap_or_default()
    };
    let named = |what: String| format!("[{what} — {NOT_AVAILABLE}]");
    match msg_type {
        "image" => named("an image".into()),
        "file" => named(format!("a file: {}", field("file_name"))),
        "audio" => named("an audio message".into()),
        "media" => named(format!("a video: {}", field("file_name"))),
        "sticker" => "[a sticker]".into(),
        "merge_forward" => format!("{PLACEHOLDER} (nested forwards are not expanded)"),
        _ => {
            let (text, dropped) = normalize::content_text(msg_type, content);
            if dropped == 0 {
                text
            } else {
                let what = format!("{dropped} image(s) or video(s) in this message");
                format!("{text}\n{}", named(what)).trim().to_string()
            }
        }
    }
}

/// The one line a user reads when the children could not be read
/// (`None`: it took too long).
pub(crate) fn unread_text(e: Option<&ApiError>) -> String {
    let why = match e {
        None => "reading them took too long".to_string(),
        Some(ApiError::RateLimited { .. }) => "the platform's rate limit".to_string(),
        Some(e) => match e.code() {
            Some(code) => format!("the platform refused to show them (code {code})"),
            None => "the platform could not be reached".to_string(),
        },
    };
    format!(
        "⚠️ fcx could not read the forwarded messages ({why}); Codex only sees that messages were forwarded. Paste the text instead if it matters."
    )
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
