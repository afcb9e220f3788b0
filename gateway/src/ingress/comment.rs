//! `drive.notice.comment_add_v1` (feishu.md §2.4): a mention of the bot in
//! a document comment becomes an `Inbound` for the worker.
//!
//! The event carries no text, so the channel fetches the comment (with its
//! thread and the document text it is anchored to) and the document's
//! title inside the ACK window. Only comments that mention the bot count;
//! the bot's own comments never do. The scope is
//! `comment:<document hash>:<comment hash>:<nonce>` (DESIGN.md §3), one per
//! mention: each mention is its own run, and the worker continues the
//! document's Codex thread (`doc:<document hash>`). Where to answer travels
//! as the carrier message id ([`Target`]).

use fcx_proto::v1::{self as pb, Actor, ChatType, DocumentComment, Inbound, QuotedMessage};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::egress::comment::Target;
use crate::feishu::drive::{Comment, Drive};
use crate::feishu::http::ApiError;
use crate::ingress::normalize::{BotIdentity, NormalizeError, Normalized};

/// Earlier replies of a thread shown to Codex (the newest).
const MAX_THREAD: usize = 20;
/// Characters kept of the anchor text and of each earlier reply.
const MAX_QUOTE_CHARS: usize = 4000;

/// A comment notice that mentions the bot, before its text is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommentEvent {
    pub(crate) file_token: String,
    pub(crate) kind: String,
    pub(crate) comment_id: String,
    /// Set when the mention is a reply in an existing thread.
    pub(crate) reply_id: String,
    /// The commenting user's open_id.
    pub(crate) from: String,
}

impl CommentEvent {
    /// The de-duplication key: one per mention (the platform may push a
    /// notice more than once, under new event ids).
    pub(crate) fn dedup_key(&self) -> String {
        format!(
            "cmt:{}:{}:{}",
            hash(&self.file_token),
            self.comment_id,
            if self.reply_id.is_empty() {
                "0"
            } else {
                &self.reply_id
            }
        )
    }
}

/// 16 hex digits of SHA-256: scope keys name documents and comments
/// without carrying their platform tokens.
fn hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

fn s(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The notice as a [`Normalized`]: a [`CommentEvent`] to fetch, or why it
/// is ignored.
pub(crate) fn normalize(
    event_id: &str,
    ev: &Value,
    bot: &BotIdentity,
) -> Result<Normalized, NormalizeError> {
    let meta = ev.get("notice_meta").unwrap_or(&Value::Null);
    // Node's normaliser also finds these at the top level (feishu.md §2.4).
    let pick = |key: &str| {
        Some(s(meta, &[key]))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| s(ev, &[key]))
    };
    let c = CommentEvent {
        file_token: pick("file_token"),
        kind: pick("file_type"),
        comment_id: s(ev, &["comment_id"]),
        reply_id: s(ev, &["reply_id"]),
        from: Some(s(meta, &["from_user_id", "open_id"]))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| s(ev, &["user_id", "open_id"])),
    };
    if c.file_token.is_empty() {
        return Err(NormalizeError::Missing("notice_meta.file_token"));
    }
    if c.comment_id.is_empty() {
        return Err(NormalizeError::Missing("comment_id"));
    }
    let ignored = |reason: &str| {
        Ok(Normalized::Ignored {
            event_id: if event_id.is_empty() {
                c.dedup_key()
            } else {
                event_id.to_string()
            },
            reason: reason.to_string(),
        })
    };
    if !bot.open_id.is_empty() && c.from == bot.open_id {
        return ignored("a comment by the bot itself");
    }
    let mentioned = [ev.get("is_mentioned"), ev.get("is_mention")]
        .into_iter()
        .flatten()
        .any(|v| v.as_bool() == Some(true));
    if !mentioned {
        return ignored("a comment that does not mention the bot");
    }
    Ok(Normalized::Comment(Box::new(c)))
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

/// `text` without the bot's own mention, trimmed.
fn question(text: &str, bot: &BotIdentity) -> String {
    let t = if bot.open_id.is_empty() {
        text.to_string()
    } else {
        text.replace(&format!("@{}", bot.open_id), "")
    };
    t.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// What the worker gets for a fetched comment; `None` when there is no
/// question in it (the mentioning reply is gone).
pub(crate) fn inbound(
    ev: &CommentEvent,
    comment: &Comment,
    title: &str,
    bot: &BotIdentity,
) -> Option<Inbound> {
    let at = if ev.reply_id.is_empty() {
        // A new comment: its first reply is its body.
        Some(0).filter(|_| !comment.replies.is_empty())
    } else {
        comment
            .replies
            .iter()
            .position(|r| r.reply_id == ev.reply_id)
    }?;
    let asked = &comment.replies[at];
    let mut text = question(&asked.text, bot);
    if text.is_empty() {
        if comment.quote.trim().is_empty() {
            return None;
        }
        text = "(The comment only mentions you: look at the quoted document text.)".into();
    }
    let thread = comment.replies[..at]
        .iter()
        .rev()
        .take(MAX_THREAD)
        .rev()
        .map(|r| QuotedMessage {
            message_id: r.reply_id.clone(),
            author: Some(Actor {
                id: r.user_id.clone(),
                name: if r.user_id == bot.open_id {
                    "you (the bot)".into()
                } else {
                    String::new()
                },
            }),
            text: clip(&question(&r.text, bot), MAX_QUOTE_CHARS),
        })
        .collect();
    let target = Target {
        kind: ev.kind.clone(),
        file_token: ev.file_token.clone(),
        comment_id: ev.comment_id.clone(),
        reply_id: asked.reply_id.clone(),
        whole: comment.is_whole,
        user: ev.from.clone(),
    };
    let key = ev.dedup_key();
    Some(Inbound {
        scope: pb::Scope::comment(hash(&ev.file_token), hash(&ev.comment_id), hash(&key)).key(),
        event_id: key,
        actor: Some(Actor {
            id: ev.from.clone(),
            name: String::new(),
        }),
        text,
        chat_type: ChatType::Comment as i32,
        mentioned: true,
        message_id: target.carrier(),
        sent_at_ms: asked.create_time.saturating_mul(1000),
        comment: Some(DocumentComment {
            title: title.to_string(),
            kind: ev.kind.clone(),
            quote: clip(comment.quote.trim(), MAX_QUOTE_CHARS),
            thread,
        }),
        ..Default::default()
    })
}

/// Where to tell the asker that their comment could not be read: the
/// thread they wrote in (a refused reply becomes a new comment).
pub(crate) fn unread_target(ev: &CommentEvent) -> Target {
    Target {
        kind: ev.kind.clone(),
        file_token: ev.file_token.clone(),
        comment_id: ev.comment_id.clone(),
        reply_id: ev.reply_id.clone(),
        whole: false,
        user: ev.from.clone(),
    }
}

/// The one line the asker reads when fcx cannot read their comment.
pub(crate) fn unread_text(e: &ApiError) -> String {
    let why = match e.code() {
        Some(code) => format!("the platform refused it, code {code}"),
        None => "it could not be fetched".to_string(),
    };
    format!(
        "fcx could not read this comment ({why}). The app needs the docs:document.comment:read permission and access to this document."
    )
}

/// Fetches what [`inbound`] needs: the comment (required) and the
/// document's title (best effort: a document without a readable title
/// is still answered).
pub(crate) async fn fetch(
    drive: &Drive,
    ev: &CommentEvent,
    bot: &BotIdentity,
) -> Result<Option<Inbound>, ApiError> {
    let (comment, title) = tokio::join!(
        drive.comment(&ev.file_token, &ev.kind, &ev.comment_id),
        drive.title(&ev.file_token, &ev.kind)
    );
    let title = title.unwrap_or_else(|e| {
        tracing::info!(error = %e, "the document's title could not be read");
        String::new()
    });
    Ok(inbound(ev, &comment?, &title, bot))
}

#[cfg(test)]
#[path = "comment_tests.rs"]
mod tests;
