//! Message replies: a run's final state and answer and command answers, as
//! markdown `post` messages (reply mode `markdown`, and the fallback of every
//! card) or plain `text` messages (reply mode `text`, and the fallback when
//! the platform refuses a post), split so that no message exceeds the
//! platform's limit.
//!
//! The limit applies to the request's `content` string (post ≤ 30 KB,
//! error 230025; feishu.md §3.2), which is JSON: quotes, backslashes,
//! newlines and control characters grow when escaped. So pieces are measured
//! as encoded content, never as characters. Splits fall on line boundaries
//! where possible and never inside a UTF-8 sequence, so CJK text is safe.

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb};
use serde_json::json;

use crate::feishu::http::{ApiError, OpenApiClient, OutgoingMessage, ReceiveIdType};

/// Bytes of `content` per post, with headroom under the 30 KB limit for the
/// platform's own accounting of style tags.
pub(crate) const POST_CONTENT_BUDGET: usize = 28 * 1024;

/// A post's `content` JSON string for one markdown piece (send side: the
/// post must be locale-wrapped; the `md` tag carries markdown).
pub(crate) fn post_content(markdown: &str) -> String {
    json!({"zh_cn": {"title": "", "content": [[{"tag": "md", "text": markdown}]]}}).to_string()
}

/// Bytes of `content` per text message (the platform allows 150 KB; pieces
/// the size of a post keep a long answer readable in the chat).
pub(crate) const TEXT_CONTENT_BUDGET: usize = 28 * 1024;

/// A text message's `content` JSON string.
pub(crate) fn text_content(text: &str) -> String {
    json!({ "text": text }).to_string()
}

/// Split `markdown` into pieces whose `post_content` fits `budget` bytes.
/// Every character is kept, in order.
pub(crate) fn split_markdown(markdown: &str, budget: usize) -> Vec<String> {
    split_encoded(markdown, budget, post_content("").len())
}

/// Split plain `text` into pieces whose `text_content` fits `budget` bytes.
pub(crate) fn split_text(text: &str, budget: usize) -> Vec<String> {
    split_encoded(text, budget, text_content("").len())
}

fn split_encoded(markdown: &str, budget: usize, overhead: usize) -> Vec<String> {
    let room = budget.saturating_sub(overhead).max(64);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0usize;
    for line in markdown.split_inclusive('\n') {
        let l = encoded_len(line);
        if cur_len + l <= room {
            cur.push_str(line);
            cur_len += l;
            continue;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            cur_len = 0;
        }
        if l <= room {
            cur.push_str(line);
            cur_len = l;
            continue;
        }
        // One line longer than a message: cut it on char boundaries.
        for ch in line.chars() {
            let mut b = [0u8; 4];
            let cl = encoded_len(ch.encode_utf8(&mut b));
            if cur_len + cl > room {
                out.push(std::mem::take(&mut cur));
                cur_len = 0;
            }
            cur.push(ch);
            cur_len += cl;
        }
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// Length of `s` once JSON-encoded inside a string (without the quotes).
fn encoded_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// How a message path writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Markdown,
    /// Markdown input, sent as plain text (syntax removed).
    Text,
    /// Plain input, sent as plain text unchanged.
    Plain,
}

impl Format {
    /// Reply mode "text" → Text; anything else that reaches messages
    /// (markdown, or a card that fell back) → Markdown.
    pub(crate) fn of_mode(mode: &str) -> Self {
        if mode == "text" {
            Format::Text
        } else {
            Format::Markdown
        }
    }
}

/// Delivers `md` in reply to `reply_to` (in thread for topics), split to fit.
/// The chain never leaves the user without it: a reply whose parent is gone
/// goes to the chat instead; a post the platform refuses goes again as plain
/// text. `uuid` keys every piece (a replay is de-duplicated by the
/// platform). Failures are logged; there is nothing left to try.
pub(crate) async fn deliver_markdown(
    http: &OpenApiClient,
    reply_to: &str,
    chat: &str,
    in_thread: bool,
    md: &str,
    uuid: &str,
    format: Format,
) {
    let md = &*crate::egress::render::text::defuse_mentions(md);
    let send_text = |text: String, key: String| async move {
        for (i, piece) in split_text(&text, TEXT_CONTENT_BUDGET).iter().enumerate() {
            let msg = OutgoingMessage::new("text", text_content(piece));
            let _ = send_one(http, reply_to, chat, in_thread, msg, &format!("{key}t{i}")).await;
        }
    };
    match format {
        Format::Plain => return send_text(md.to_string(), format!("{uuid}-")).await,
        Format::Text => {
            return send_text(
                crate::egress::render::markdown_to_plain(md),
                format!("{uuid}-"),
            )
            .await;
        }
        Format::Markdown => {}
    }
    for (i, piece) in split_markdown(md, POST_CONTENT_BUDGET).iter().enumerate() {
        let msg = OutgoingMessage::new("post", post_content(piece));
        if let Err(e) = send_one(http, reply_to, chat, in_thread, msg, &format!("{uuid}-{i}")).await
            && refused_content(&e)
        {
            tracing::warn!(error = %e, "the platform refused a markdown message; sending it as text");
            send_text(
                crate::egress::render::markdown_to_plain(piece),
                format!("{uuid}-{i}"),
            )
            .await;
        }
    }
}

/// A business refusal of the content itself (not a rate limit, outage or
/// missing target), which another format may get past.
fn refused_content(e: &ApiError) -> bool {
    matches!(e, ApiError::Api { status, .. } if *status < 500)
}

/// One message: as a reply, else (parent recalled or gone) into the chat.
pub(crate) async fn send_one(
    http: &OpenApiClient,
    reply_to: &str,
    chat: &str,
    in_thread: bool,
    msg: OutgoingMessage,
    uuid: &str,
) -> Result<(), ApiError> {
    let msg = msg.with_uuid(short_uuid(uuid)).in_chat(chat);
    let first = if reply_to.is_empty() {
        None
    } else {
        match http.im().reply_message(reply_to, &msg, in_thread).await {
            Ok(_) => return Ok(()),
            Err(e) => Some(e),
        }
    };
    if let Some(e) = &first {
        tracing::warn!(error = %e, "reply failed; posting to the chat instead");
    }
    if chat.is_empty() {
        return first.map_or(Ok(()), Err);
    }
    match http
        .im()
        .send_message(ReceiveIdType::ChatId, chat, &msg)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "cannot deliver a reply");
            Err(e)
        }
    }
}

/// The platform takes uuids of at most 50 characters.
fn short_uuid(u: &str) -> String {
    if u.len() <= 50 {
        return u.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in u.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let head: String = u.chars().take(32).collect();
    format!("{head}-{h:016x}")
}

/// What a chat shows for one worker event, as markdown; `None` for events
/// that only matter to live cards (deltas, tool starts).
pub(crate) fn event_markdown(ev: &pb::WorkerEvent) -> Option<String> {
    match ev.kind.as_ref()? {
        Kind::Done(d) => {
            let reason = pb::DoneReason::try_from(d.reason).unwrap_or(pb::DoneReason::Unspecified);
            let mut s = d.final_text.clone();
            let status = match reason {
                pb::DoneReason::Completed => None,
                pb::DoneReason::Interrupted => Some(if d.detail.is_empty() {
                    "⏹ Interrupted".to_string()
                } else {
                    format!("⏹ Interrupted ({})", d.detail)
                }),
                pb::DoneReason::TimedOut => Some(format!("⏱ Timed out: {}", d.detail)),
                pb::DoneReason::Failed => Some(format!("❌ Failed: {}", d.detail)),
                pb::DoneReason::Unspecified => Some("Ended".to_string()),
            };
            if let Some(st) = status {
                if !s.is_empty() {
                    s.push_str("\n\n");
                }
                s.push_str(&format!("**{st}**"));
            }
            if s.trim().is_empty() {
                s = "✅ Done (no text answer).".into();
            }
            Some(s)
        }
        // Title, body and fields; what a card's buttons would do is named
        // as commands to type.
        Kind::CommandReply(c) => Some(crate::egress::render::command_markdown(c)),
        Kind::Notice(n) => Some(n.text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_fit_the_budget_and_keep_every_character() {
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!("行 {i}: \"quoted\" \\ 飞书消息 emoji 🚀\n"));
        }
        text.push_str(&"长".repeat(20_000));
        let pieces = split_markdown(&text, POST_CONTENT_BUDGET);
        assert!(pieces.len() > 3);
        for p in &pieces {
            assert!(
                post_content(p).len() <= POST_CONTENT_BUDGET,
                "{}",
                post_content(p).len()
            );
        }
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_markdown("hello", POST_CONTENT_BUDGET), vec!["hello"]);
        assert_eq!(split_markdown("", POST_CONTENT_BUDGET), vec![""]);
    }

    #[test]
    fn done_shows_the_answer_and_the_state() {
        let ev = pb::WorkerEvent {
            kind: Some(Kind::Done(pb::Done {
                reason: pb::DoneReason::Interrupted as i32,
                detail: "stopped".into(),
                final_text: "partial".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            event_markdown(&ev).as_deref(),
            Some("partial\n\n**⏹ Interrupted (stopped)**")
        );
    }
}
