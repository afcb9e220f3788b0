//! Plain replies (until run cards land): a run's final state and answer, and
//! command answers, as markdown `post` messages, split so that no message
//! exceeds the platform's limit.
//!
//! The limit applies to the request's `content` string (post ≤ 30 KB,
//! error 230025; feishu.md §3.2), which is JSON: quotes, backslashes,
//! newlines and control characters grow when escaped. So pieces are measured
//! as encoded content, never as characters. Splits fall on line boundaries
//! where possible and never inside a UTF-8 sequence, so CJK text is safe.

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb};
use serde_json::json;

/// Bytes of `content` per post, with headroom under the 30 KB limit for the
/// platform's own accounting of style tags.
pub const POST_CONTENT_BUDGET: usize = 28 * 1024;

/// A post's `content` JSON string for one markdown piece (send side: the
/// post must be locale-wrapped; the `md` tag carries markdown).
pub fn post_content(markdown: &str) -> String {
    json!({"zh_cn": {"title": "", "content": [[{"tag": "md", "text": markdown}]]}}).to_string()
}

/// Split `markdown` into pieces whose `post_content` fits `budget` bytes.
/// Every character is kept, in order.
pub fn split_markdown(markdown: &str, budget: usize) -> Vec<String> {
    let overhead = post_content("").len();
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

/// What a chat shows for one worker event, as markdown; `None` for events
/// that only matter to live cards (deltas, tool starts).
pub fn event_markdown(ev: &pb::WorkerEvent) -> Option<String> {
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
        Kind::CommandReply(c) => {
            let mut s = format!("**{}**", c.title);
            if !c.body.is_empty() {
                s.push_str("\n\n");
                s.push_str(&c.body);
            }
            Some(s)
        }
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
