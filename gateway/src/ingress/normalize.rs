//! Feishu/Lark event envelopes → the contract's semantic `Inbound`.
//!
//! Pure functions: bytes in, a decision out. Nothing here talks to the
//! network; fetching a quoted parent or downloading a resource is the
//! channel's job, from the ids this module extracts. Facts: feishu.md §2.

use fcx_proto::v1::{Actor, Attachment, AttachmentKind, ChatType, Inbound};
use serde_json::Value;

/// Who the bot is, from `GET /open-apis/bot/v3/info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BotIdentity {
    pub(crate) open_id: String,
    pub(crate) name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Normalized {
    /// A user message for the worker. `parent_id` names a quoted message the
    /// channel should fetch and attach.
    Message {
        inbound: Box<Inbound>,
        parent_id: Option<String>,
        /// A merged-and-forwarded message: the channel fetches its
        /// children and puts them in the text (see `ingress::forward`).
        merge_forward: bool,
    },
    /// A document comment that mentions the bot: the channel fetches its
    /// text and builds the `Inbound` (see `ingress::comment`).
    Comment(Box<crate::ingress::comment::CommentEvent>),
    /// The bot was added to a chat: post a short welcome.
    BotAdded { event_id: String, chat_id: String },
    /// A card button or form (answered in the ACK; see the card layer).
    CardAction { event_id: String, event: Value },
    /// Nothing to do, with the reason for the log line.
    Ignored { event_id: String, reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum NormalizeError {
    #[error("the event payload is not JSON: {0}")]
    NotJson(String),
    #[error("the event envelope has no {0}")]
    Missing(&'static str),
}

pub(crate) struct Options {
    /// Messages older than this (milliseconds) are marked late; 0: none is.
    pub(crate) stale_after_ms: i64,
    pub(crate) now_ms: i64,
    /// The platform's clock when it pushed the event, when the transport
    /// says (the long connection's frame `timestamp`).
    pub(crate) platform_now_ms: Option<i64>,
}

#[cfg(test)]
/// Normalize one complete event payload (the reassembled frame payload, or
/// the decrypted webhook body).
pub(crate) fn normalize(
    payload: &[u8],
    bot: &BotIdentity,
    opts: &Options,
) -> Result<Normalized, NormalizeError> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
    normalize_value(&v, bot, opts)
}

/// [`normalize`] for an envelope that is already parsed (the long
/// connection hands events over as JSON values).
pub(crate) fn normalize_value(
    v: &Value,
    bot: &BotIdentity,
    opts: &Options,
) -> Result<Normalized, NormalizeError> {
    if !v.is_object() {
        return Err(NormalizeError::NotJson("not a JSON object".into()));
    }
    // v2 envelopes carry header.event_type; v1 ones event.type.
    let header = v.get("header");
    let event_type = header
        .and_then(|h| h.get("event_type"))
        .or_else(|| v.get("event").and_then(|e| e.get("type")))
        .and_then(Value::as_str)
        .ok_or(NormalizeError::Missing("event type"))?;
    let event_id = header
        .and_then(|h| h.get("event_id"))
        .or_else(|| v.get("uuid"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let event = v.get("event").cloned().unwrap_or(Value::Null);
    let event_type = event_type.to_string();
    match event_type.as_str() {
        "im.message.receive_v1" => message(&event_id, &event, bot, opts),
        "im.chat.member.bot.added_v1" => {
            let chat_id = s(&event, &["chat_id"]);
            if chat_id.is_empty() {
                return Err(NormalizeError::Missing("chat_id"));
            }
            Ok(Normalized::BotAdded { event_id, chat_id })
        }
        "card.action.trigger" => Ok(Normalized::CardAction { event_id, event }),
        "drive.notice.comment_add_v1" => crate::ingress::comment::normalize(&event_id, &event, bot),
        other => Ok(Normalized::Ignored {
            event_id,
            reason: format!("event type {other} is not handled"),
        }),
    }
}

fn s(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return String::new(),
        }
    }
    cur.as_str().unwrap_or("").to_string()
}

fn message(
    event_id: &str,
    ev: &Value,
    bot: &BotIdentity,
    opts: &Options,
) -> Result<Normalized, NormalizeError> {
    let msg = ev
        .get("message")
        .ok_or(NormalizeError::Missing("message"))?;
    let message_id = s(msg, &["message_id"]);
    if message_id.is_empty() {
        return Err(NormalizeError::Missing("message.message_id"));
    }
    // The platform may push the same message under several event ids; the
    // message id is the de-duplication key (feishu.md §2.2).
    let dedup = format!("msg:{message_id}");
    let ignored = |reason: &str| {
        Ok(Normalized::Ignored {
            event_id: dedup.clone(),
            reason: reason.to_string(),
        })
    };
    let sender_open_id = s(ev, &["sender", "sender_id", "open_id"]);
    let sender_type = s(ev, &["sender", "sender_type"]);
    if sender_type == "app" || (!bot.open_id.is_empty() && sender_open_id == bot.open_id) {
        return ignored("a message from the bot itself");
    }
    let sent_at_ms: i64 = s(msg, &["create_time"]).parse().unwrap_or(0);
    // Late only when old by fcx's clock and, where the platform stamped
    // the push, by the platform's too: a replay after fcx was offline is
    // old by both, while a live message seen through a host clock that
    // jumped ahead (or drifted an hour off) is old only by fcx's and must
    // still run. A late message is not dropped: it goes to the worker
    // marked, which asks its sender before running it.
    let old = |now: i64| now - sent_at_ms > opts.stale_after_ms;
    let late_by_ms = if opts.stale_after_ms > 0
        && sent_at_ms > 0
        && old(opts.now_ms)
        && opts.platform_now_ms.is_none_or(old)
    {
        // The platform's own delay where it stamped the push (its clock
        // made create_time); else fcx's.
        opts.platform_now_ms.unwrap_or(opts.now_ms) - sent_at_ms
    } else {
        0
    };
    let chat_id = s(msg, &["chat_id"]);
    if chat_id.is_empty() {
        return Err(NormalizeError::Missing("message.chat_id"));
    }
    let thread_id = s(msg, &["thread_id"]);
    let chat_type = match (s(msg, &["chat_type"]).as_str(), thread_id.is_empty()) {
        ("p2p", _) => ChatType::Private,
        (_, false) => ChatType::Topic,
        _ => ChatType::Group,
    };
    let scope = if chat_type == ChatType::Topic {
        fcx_proto::v1::Scope::topic(&chat_id, &thread_id).key()
    } else {
        fcx_proto::v1::Scope::chat(&chat_id).key()
    };

    let mut mentions = Mentions::parse(msg.get("mentions"), bot);
    let content: Value = s(msg, &["content"]).parse::<Value>().unwrap_or(Value::Null);
    let msg_type = s(msg, &["message_type"]);
    let mut attachments = Vec::new();
    let text = match msg_type.as_str() {
        "text" => mentions.resolve(content.get("text").and_then(Value::as_str).unwrap_or("")),
        "post" => post_text(&content, &mentions, &mut attachments),
        "image" => {
            attachments.push(att(AttachmentKind::Image, &s(&content, &["image_key"]), ""));
            String::new()
        }
        "file" | "audio" | "media" => {
            let kind = match msg_type.as_str() {
                "media" => AttachmentKind::Video,
                "audio" => AttachmentKind::Audio,
                _ => AttachmentKind::File,
            };
            attachments.push(att(
                kind,
                &s(&content, &["file_key"]),
                &s(&content, &["file_name"]),
            ));
            String::new()
        }
        // Not downloadable: the worker answers it in one line (after the
        // access check), so it travels as what it is.
        "sticker" => {
            attachments.push(att(
                AttachmentKind::Sticker,
                &s(&content, &["file_key"]),
                "",
            ));
            String::new()
        }
        "folder" => format!("[a folder: {}]", s(&content, &["file_name"])),
        "merge_forward" => crate::ingress::forward::PLACEHOLDER.to_string(),
        "interactive" => "[a card]".to_string(),
        other => format!("[a {other} message]"),
    };
    let text = trim_lines(&text);
    if text.is_empty() && attachments.is_empty() {
        return ignored("an empty message (only mentions)");
    }
    let parent_id = Some(s(msg, &["parent_id"])).filter(|p| !p.is_empty());
    let inbound = Inbound {
        event_id: dedup,
        scope,
        actor: Some(Actor {
            id: sender_open_id,
            name: String::new(),
        }),
        text,
        attachments,
        chat_type: chat_type as i32,
        mentioned: mentions.bot_mentioned,
        chat_id,
        message_id,
        thread_id,
        sent_at_ms,
        quoted: Vec::new(),
        mentions: std::mem::take(&mut mentions.users),
        comment: None,
        late_by_ms,
    };
    let _ = event_id;
    Ok(Normalized::Message {
        inbound: Box::new(inbound),
        parent_id,
        merge_forward: msg_type == "merge_forward",
    })
}

/// The text of a fetched message (`GET /open-apis/im/v1/messages/{id}`), for
/// a quote: text and post flattened the same way as live messages.
pub(crate) fn message_text(msg_type: &str, content: &str) -> String {
    content_text(msg_type, content).0
}

/// [`message_text`], and how many images or videos inside a post it
/// left out (they are attachments of their own in a live message).
pub(crate) fn content_text(msg_type: &str, content: &str) -> (String, usize) {
    let v: Value = content.parse().unwrap_or(Value::Null);
    let none = Mentions {
        keys: Vec::new(),
        bot_mentioned: false,
        users: Vec::new(),
    };
    let mut atts = Vec::new();
    let t = match msg_type {
        "text" => none.resolve(v.get("text").and_then(Value::as_str).unwrap_or("")),
        "post" => post_text(&v, &none, &mut atts),
        "image" => "[an image]".to_string(),
        "file" => format!("[a file: {}]", s(&v, &["file_name"])),
        other => format!("[a {other} message]"),
    };
    (trim_lines(&t), atts.len())
}

fn att(kind: AttachmentKind, key: &str, name: &str) -> Attachment {
    Attachment {
        kind: kind as i32,
        key: key.into(),
        name: name.into(),
        local_path: String::new(),
        size: 0,
        skipped: String::new(),
    }
}

/// Mention placeholders (`@_user_1`) and what they stand for.
struct Mentions {
    /// (key, replacement): the bot's own mention is replaced by nothing.
    keys: Vec<(String, String)>,
    bot_mentioned: bool,
    /// Everyone mentioned but the bot.
    users: Vec<Actor>,
}

impl Mentions {
    fn parse(v: Option<&Value>, bot: &BotIdentity) -> Self {
        let mut keys = Vec::new();
        let mut users: Vec<Actor> = Vec::new();
        let mut bot_mentioned = false;
        for m in v.and_then(Value::as_array).into_iter().flatten() {
            let key = s(m, &["key"]);
            if key.is_empty() {
                continue;
            }
            let open_id = s(m, &["id", "open_id"]);
            let is_bot = !bot.open_id.is_empty() && open_id == bot.open_id;
            bot_mentioned |= is_bot;
            let repl = if is_bot {
                String::new()
            } else {
                if !open_id.is_empty() && !users.iter().any(|u| u.id == open_id) {
                    users.push(Actor {
                        id: open_id.clone(),
                        name: s(m, &["name"]),
                    });
                }
                format!("@{}", s(m, &["name"]))
            };
            keys.push((key, repl));
        }
        // Longest keys first, so `@_user_1` never eats the start of `@_user_10`.
        keys.sort_by_key(|k| std::cmp::Reverse(k.0.len()));
        Mentions {
            keys,
            bot_mentioned,
            users,
        }
    }

    /// One pass over the original text: a replacement is never scanned
    /// again, so a display name that contains another mention key cannot
    /// make the text grow (sequential `replace` calls would let crafted names
    /// double it per mention).
    fn resolve(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('@') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            // Keys are sorted longest first, so `@_user_10` wins over `@_user_1`.
            if let Some((k, r)) = self.keys.iter().find(|(k, _)| tail.starts_with(k.as_str())) {
                out.push_str(r);
                rest = &tail[k.len()..];
            } else if let Some(after) = tail.strip_prefix("@_all") {
                // @all is not a request to the bot.
                rest = after;
            } else {
                out.push('@');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    }

    fn name_for(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| r.as_str())
    }
}

/// A `post` flattened to text: the title, then one line per paragraph,
/// every line kept; images and media become attachments.
fn post_text(content: &Value, mentions: &Mentions, atts: &mut Vec<Attachment>) -> String {
    // Received posts are not locale-wrapped, but be lenient (Node unwraps).
    let body = if content.get("content").is_some() {
        content
    } else {
        ["zh_cn", "en_us", "ja_jp"]
            .iter()
            .find_map(|l| content.get(l))
            .unwrap_or(content)
    };
    let mut lines = Vec::new();
    let title = s(body, &["title"]);
    if !title.is_empty() {
        lines.push(title);
    }
    for para in body
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut line = String::new();
        for el in para.as_array().into_iter().flatten() {
            match s(el, &["tag"]).as_str() {
                "text" => line.push_str(&mentions.resolve(&s(el, &["text"]))),
                "a" => {
                    let text = s(el, &["text"]);
                    let href = s(el, &["href"]);
                    if href.is_empty() {
                        line.push_str(&text);
                    } else {
                        line.push_str(&format!("[{text}]({href})"));
                    }
                }
                "at" => {
                    let key = s(el, &["user_id"]);
                    match mentions.name_for(&key) {
                        Some(name) => line.push_str(name),
                        None if key == "@_all" || key == "all" => {}
                        None => {
                            let name = s(el, &["user_name"]);
                            if !name.is_empty() {
                                line.push('@');
                                line.push_str(&name);
                            }
                        }
                    }
                }
                "img" => atts.push(att(AttachmentKind::Image, &s(el, &["image_key"]), "")),
                "media" => atts.push(att(AttachmentKind::Video, &s(el, &["file_key"]), "")),
                "emotion" => line.push_str(&format!(":{}:", s(el, &["emoji_type"]))),
                "hr" => line.push_str("---"),
                "code_block" => {
                    let lang = s(el, &["language"]).to_ascii_lowercase();
                    let code = s(el, &["text"]);
                    line.push_str(&format!("```{lang}\n{}\n```", code.trim_end_matches('\n')));
                }
                "md" => line.push_str(&s(el, &["text"])),
                _ => {}
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Trim the whole text and trailing spaces per line, keeping every line and
/// blank lines between them.
fn trim_lines(t: &str) -> String {
    t.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
