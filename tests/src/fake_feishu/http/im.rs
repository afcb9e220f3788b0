//! IM v1: messages (send, reply, patch, get, recall), reactions, resources, chats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    Answer, FIELD_VALIDATION, IM_CARD_ENTITY_INVALID, IM_INVALID_CONTENT, IM_MESSAGE_NOT_FOUND,
    IM_TOO_LARGE, Req, not_found,
};
use crate::fake_feishu::card;
use crate::fake_feishu::state::{Bound, Shared, StoredMessage, lock};
use crate::fake_feishu::{CARD_LIMIT_BYTES, PATCH_PER_MESSAGE_QPS, TEXT_LIMIT_BYTES};

const UUID_WINDOW: Duration = Duration::from_secs(3600);

pub(super) fn route(shared: &Arc<Shared>, r: &Req, m: &str, rest: &[&str]) -> Answer {
    match (m, rest) {
        ("POST", ["messages"]) => send(shared, r),
        ("POST", ["messages", id, "reply"]) => reply(shared, r, id),
        ("PATCH", ["messages", id]) => patch(shared, r, id),
        ("GET", ["messages", id]) => get(shared, id),
        ("DELETE", ["messages", id]) => recall(shared, id),
        ("POST", ["messages", id, "reactions"]) => add_reaction(shared, r, id),
        ("GET", ["messages", id, "reactions"]) => list_reactions(shared, r, id),
        ("DELETE", ["messages", id, "reactions", rid]) => delete_reaction(shared, id, rid),
        ("GET", ["messages", id, "resources", key]) => resource(shared, r, id, key),
        ("POST", ["chats"]) => create_chat(shared, r),
        _ => not_found(),
    }
}

fn field_error(what: &str) -> Answer {
    Answer::err(FIELD_VALIDATION, format!("field validation failed: {what}"))
}

/// Validates `msg_type` + `content` (a JSON string) as the send/reply APIs
/// do; returns the card entity id when the content references one.
fn validate_content(
    shared: &Shared,
    msg_type: &str,
    content: &str,
    send_side: bool,
) -> Result<Option<String>, Answer> {
    let limit = match msg_type {
        "text" => TEXT_LIMIT_BYTES,
        "post" | "interactive" => CARD_LIMIT_BYTES,
        _ => TEXT_LIMIT_BYTES,
    };
    if content.len() > limit {
        return Err(Answer::err(
            IM_TOO_LARGE,
            "The message is too large. Text messages must not exceed 150KB; card and post messages must not exceed 30KB.",
        ));
    }
    let invalid = |why: &str| {
        Answer::err(
            IM_INVALID_CONTENT,
            format!("invalid message content: {why}"),
        )
    };
    let v: Value =
        serde_json::from_str(content).map_err(|_| invalid("content is not a JSON string"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("content must be a JSON object"))?;
    let has_str = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    match msg_type {
        "text" => {
            if !obj.get("text").is_some_and(Value::is_string) {
                return Err(invalid("text content needs a \"text\" string"));
            }
        }
        "post" => {
            // Send side requires the locale wrapper {"zh_cn": {title, content}}.
            let bodies: Vec<&Value> = if send_side {
                if obj.is_empty() || obj.contains_key("content") || obj.contains_key("title") {
                    return Err(invalid(
                        "post content must be wrapped in a locale such as zh_cn",
                    ));
                }
                obj.values().collect()
            } else {
                vec![&v]
            };
            for b in bodies {
                let rows = b.get("content").and_then(Value::as_array);
                let ok = rows.is_some_and(|rows| {
                    rows.iter().all(|row| {
                        row.as_array().is_some_and(|items| {
                            items
                                .iter()
                                .all(|i| i.get("tag").and_then(Value::as_str).is_some())
                        })
                    })
                });
                if !ok {
                    return Err(invalid(
                        "post content must be an array of paragraphs of tagged elements",
                    ));
                }
            }
        }
        "interactive" => return validate_card_content(shared, obj),
        "image" => {
            if !has_str("image_key") {
                return Err(invalid("image content needs image_key"));
            }
            // Guess: a bot sends only what it uploaded; an unknown key is
            // refused like other invalid content.
            if !uploaded(shared, obj, "image_key", "image") {
                return Err(invalid("image_key was not uploaded by this app"));
            }
        }
        "file" => {
            if !has_str("file_key") {
                return Err(invalid("content needs file_key"));
            }
            if !uploaded(shared, obj, "file_key", "file") {
                return Err(invalid("file_key was not uploaded by this app"));
            }
        }
        "audio" | "media" | "sticker" => {
            if !has_str("file_key") {
                return Err(invalid("content needs file_key"));
            }
        }
        "share_chat" => {
            if !has_str("chat_id") {
                return Err(invalid("share_chat content needs chat_id"));
            }
        }
        "share_user" => {
            if !has_str("user_id") {
                return Err(invalid("share_user content needs user_id"));
            }
        }
        "system" => {}
        other => return Err(field_error(&format!("unknown msg_type {other:?}"))),
    }
    Ok(None)
}

fn uploaded(
    shared: &Shared,
    obj: &serde_json::Map<String, Value>,
    field: &str,
    kind: &str,
) -> bool {
    let key = obj.get(field).and_then(Value::as_str).unwrap_or("");
    lock(&shared.inner)
        .uploads
        .get(key)
        .is_some_and(|u| u.kind == kind)
}

fn validate_card_content(
    shared: &Shared,
    obj: &serde_json::Map<String, Value>,
) -> Result<Option<String>, Answer> {
    let invalid =
        |why: &str| Answer::err(IM_INVALID_CONTENT, format!("invalid card content: {why}"));
    match obj.get("type").and_then(Value::as_str) {
        Some("card") => {
            let Some(card_id) = obj.pointer_str("data", "card_id") else {
                return Err(invalid("card entity content needs data.card_id"));
            };
            let inner = lock(&shared.inner);
            match inner.cards.get(&card_id) {
                // Guess: the code for an unknown or already-sent entity.
                None => Err(Answer::err(IM_CARD_ENTITY_INVALID, "card entity not found")),
                Some(c) if c.message_id.is_some() => Err(Answer::err(
                    IM_CARD_ENTITY_INVALID,
                    "card entity can only be sent once",
                )),
                Some(_) => Ok(Some(card_id)),
            }
        }
        Some("template") => {
            if obj.pointer_str("data", "template_id").is_none() {
                return Err(invalid("template content needs data.template_id"));
            }
            Ok(None)
        }
        _ => {
            // The reference gives no code for a structurally invalid card;
            // 230001 is what the fake answers every malformed content with.
            card::validate(obj).map_err(|w| invalid(&w))?;
            Ok(None)
        }
    }
}

trait PointerStr {
    fn pointer_str(&self, a: &str, b: &str) -> Option<String>;
}

impl PointerStr for serde_json::Map<String, Value> {
    fn pointer_str(&self, a: &str, b: &str) -> Option<String> {
        self.get(a)
            .and_then(|v| v.get(b))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

pub(crate) fn message_json(shared: &Shared, m: &StoredMessage) -> Value {
    let content = match &m.card_id {
        Some(id) => lock(&shared.inner)
            .cards
            .get(id)
            .map_or_else(|| m.content.clone(), |c| simplified_card(&c.json)),
        None if m.msg_type == "interactive" => serde_json::from_str::<Value>(&m.content)
            .map_or_else(|_| m.content.clone(), |v| simplified_card(&v)),
        None => m.content.clone(),
    };
    json!({
        "message_id": m.message_id,
        "root_id": m.root_id,
        "parent_id": m.parent_id,
        "thread_id": m.thread_id,
        "msg_type": m.msg_type,
        "create_time": m.create_time,
        "update_time": m.update_time,
        "deleted": m.deleted,
        "updated": m.updated,
        "chat_id": m.chat_id,
        "sender": {
            "id": if m.sender_type == "app" { shared.cfg.app_id.clone() } else { m.sender_id.clone() },
            "id_type": if m.sender_type == "app" { "app_id" } else { "open_id" },
            "sender_type": m.sender_type,
            "tenant_key": shared.cfg.tenant_key,
        },
        "body": {"content": content},
        "mentions": [],
        "upper_message_id": m.upper_message_id,
    })
}

/// Reading a card back gives a simplified `{title, elements}` form, not the
/// JSON that was sent (reference §2.2).
fn simplified_card(card: &Value) -> String {
    let title = card
        .pointer("/header/title/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut texts = Vec::new();
    collect_texts(card.get("body").unwrap_or(card), &mut texts);
    let elements: Vec<Value> = texts
        .into_iter()
        .map(|t| json!([{"tag": "text", "text": t}]))
        .collect();
    json!({"title": title, "elements": elements}).to_string()
}

fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(c) = map.get("content").and_then(Value::as_str) {
                out.push(c.to_owned());
            }
            for (k, child) in map {
                if k != "content" {
                    collect_texts(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_texts(i, out)),
        _ => {}
    }
}

struct Outgoing {
    msg_type: String,
    content: String,
    uuid: Option<String>,
}

fn parse_outgoing(r: &Req) -> Result<Outgoing, Answer> {
    let msg_type = r
        .body
        .get("msg_type")
        .and_then(Value::as_str)
        .ok_or_else(|| field_error("msg_type is required"))?;
    let content = r
        .body
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| field_error("content is required and must be a string"))?;
    let uuid = match r.body.get("uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if !u.is_empty() && u.len() <= 50 => Some(u.clone()),
        Some(_) => return Err(field_error("uuid must be a string of 1-50 characters")),
    };
    Ok(Outgoing {
        msg_type: msg_type.to_owned(),
        content: content.to_owned(),
        uuid,
    })
}

/// The uuid rule: the same uuid within 1 h yields the first message again.
fn replay_uuid(shared: &Shared, scope: &str, uuid: Option<&str>) -> Option<Answer> {
    let uuid = uuid?;
    let inner = lock(&shared.inner);
    let (id, at) = inner.uuids.get(&format!("{scope}:{uuid}"))?;
    if at.elapsed() >= UUID_WINDOW {
        return None;
    }
    let m = inner.messages.iter().find(|m| &m.message_id == id)?.clone();
    drop(inner);
    Some(Answer::ok(message_json(shared, &m)))
}

fn new_message(
    shared: &Shared,
    out: &Outgoing,
    chat_id: &str,
    card_id: Option<String>,
) -> StoredMessage {
    let ms = shared.now_ms().to_string();
    StoredMessage {
        message_id: shared.new_id("om_"),
        chat_id: chat_id.to_owned(),
        receive_id_type: String::new(),
        receive_id: String::new(),
        msg_type: out.msg_type.clone(),
        content: out.content.clone(),
        root_id: String::new(),
        parent_id: String::new(),
        thread_id: String::new(),
        sender_type: "app".to_owned(),
        sender_id: shared.cfg.app_id.clone(),
        create_time: ms.clone(),
        update_time: ms,
        updated: false,
        deleted: false,
        card_id,
        uuid: out.uuid.clone(),
        patches: 0,
        upper_message_id: String::new(),
    }
}

fn store(shared: &Shared, scope: &str, m: StoredMessage) -> Answer {
    let mut inner = lock(&shared.inner);
    if let Some(card_id) = &m.card_id
        && let Some(card) = inner.cards.get_mut(card_id)
    {
        card.message_id = Some(m.message_id.clone());
    }
    if let Some(u) = &m.uuid {
        inner.uuids.insert(
            format!("{scope}:{u}"),
            (m.message_id.clone(), Instant::now()),
        );
    }
    inner.messages.push(m.clone());
    drop(inner);
    Answer::ok(message_json(shared, &m))
}

/// The per-recipient limit (reference §3.9: "5 QPS to the same user, 5 QPS
/// per group shared by all bots in it", code 230020). Checked after the
/// request is valid: the platform needs the resolved recipient for it.
fn recipient_check(shared: &Shared, chat_id: &str) -> Result<(), Answer> {
    let mut inner = lock(&shared.inner);
    let bound = inner.recipient_bound(chat_id);
    inner
        .admit_all(&[bound])
        .map_err(|e| Answer::over_frequency(&e))
}

fn send(shared: &Arc<Shared>, r: &Req) -> Answer {
    const TYPES: [&str; 5] = ["open_id", "union_id", "user_id", "email", "chat_id"];
    // Guess: the open-platform gateway counts a call against the app's
    // windows before the API looks at it, so invalid calls count too.
    if let Err(a) = super::app_limit(shared, "im.send") {
        return a;
    }
    let Some(id_type) = r.q("receive_id_type").filter(|t| TYPES.contains(t)) else {
        return field_error("receive_id_type is required: open_id|union_id|user_id|email|chat_id");
    };
    let Some(receive_id) = r
        .body
        .get("receive_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return field_error("receive_id is required");
    };
    let out = match parse_outgoing(r) {
        Ok(o) => o,
        Err(a) => return a,
    };
    if let Some(a) = replay_uuid(shared, "send", out.uuid.as_deref()) {
        return a;
    }
    let card_id = match validate_content(shared, &out.msg_type, &out.content, true) {
        Ok(c) => c,
        Err(a) => return a,
    };
    let chat_id = if id_type == "chat_id" {
        receive_id.to_owned()
    } else {
        // A stable p2p chat per user, known as theirs so sends by chat_id
        // and by user id share the user's 5 QPS.
        let chat = format!("oc_p2p_{receive_id}");
        lock(&shared.inner)
            .p2p_chats
            .insert(chat.clone(), receive_id.to_owned());
        chat
    };
    if let Err(a) = recipient_check(shared, &chat_id) {
        return a;
    }
    let mut m = new_message(shared, &out, &chat_id, card_id);
    m.receive_id_type = id_type.to_owned();
    m.receive_id = receive_id.to_owned();
    store(shared, "send", m)
}

fn find_message(shared: &Shared, id: &str) -> Result<StoredMessage, Answer> {
    lock(&shared.inner)
        .messages
        .iter()
        .find(|m| m.message_id == id && !m.deleted)
        .cloned()
        .ok_or_else(|| {
            Answer::err(
                IM_MESSAGE_NOT_FOUND,
                "The message is not found or has been recalled.",
            )
        })
}

fn reply(shared: &Arc<Shared>, r: &Req, id: &str) -> Answer {
    if let Err(a) = super::app_limit(shared, "im.reply") {
        return a;
    }
    let out = match parse_outgoing(r) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let in_thread = match r.body.get("reply_in_thread") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return field_error("reply_in_thread must be a boolean"),
    };
    if let Some(a) = replay_uuid(shared, "reply", out.uuid.as_deref()) {
        return a;
    }
    let target = match find_message(shared, id) {
        Ok(t) => t,
        Err(a) => return a,
    };
    let card_id = match validate_content(shared, &out.msg_type, &out.content, true) {
        Ok(c) => c,
        Err(a) => return a,
    };
    if let Err(a) = recipient_check(shared, &target.chat_id) {
        return a;
    }
    let mut m = new_message(shared, &out, &target.chat_id, card_id);
    m.parent_id = target.message_id.clone();
    m.root_id = if target.root_id.is_empty() {
        target.message_id.clone()
    } else {
        target.root_id.clone()
    };
    // A reply to a thread message lands in the thread whatever the flag says.
    if !target.thread_id.is_empty() {
        m.thread_id = target.thread_id.clone();
    } else if in_thread {
        let thread = shared.new_id("omt_");
        m.thread_id = thread.clone();
        let mut inner = lock(&shared.inner);
        if let Some(t) = inner
            .messages
            .iter_mut()
            .find(|x| x.message_id == target.message_id)
        {
            t.thread_id = thread;
        }
    }
    store(shared, "reply", m)
}

fn patch(shared: &Arc<Shared>, r: &Req, id: &str) -> Answer {
    let Some(content) = r.body.get("content").and_then(Value::as_str) else {
        return field_error("content is required and must be a string");
    };
    let target = match find_message(shared, id) {
        Ok(t) => t,
        Err(a) => return a,
    };
    // Guess: 230001-family answers for patching what cannot be patched.
    if target.sender_type != "app" || target.msg_type != "interactive" {
        return Answer::err(
            IM_INVALID_CONTENT,
            "only cards sent by this bot can be updated",
        );
    }
    if content.len() > CARD_LIMIT_BYTES {
        return Answer::err(
            IM_TOO_LARGE,
            "The message is too large. Cards must not exceed 30KB.",
        );
    }
    let Ok(Value::Object(card)) = serde_json::from_str::<Value>(content) else {
        return Answer::err(
            IM_INVALID_CONTENT,
            "invalid card content: not a JSON object",
        );
    };
    if let Err(why) = card::validate(&card) {
        return Answer::err(IM_INVALID_CONTENT, format!("invalid card content: {why}"));
    }
    let is_v2 = card.get("schema").and_then(Value::as_str) == Some("2.0");
    let shared_card = card
        .get("config")
        .and_then(|c| c.get("update_multi"))
        .and_then(Value::as_bool);
    // 2.0 cards are shared unless they say otherwise; 1.0 only when asked.
    if shared_card == Some(false) || (!is_v2 && shared_card != Some(true)) {
        return Answer::err(
            IM_INVALID_CONTENT,
            "only shared cards (config.update_multi: true) can be updated",
        );
    }
    let mut inner = lock(&shared.inner);
    if let Err(e) = inner.admit_all(&[Bound::per_second(
        format!("im.patch:{id}"),
        PATCH_PER_MESSAGE_QPS,
    )]) {
        return Answer::over_frequency(&e);
    }
    if let Some(m) = inner.messages.iter_mut().find(|m| m.message_id == id) {
        m.content = content.to_owned();
        m.card_id = None;
        m.updated = true;
        m.patches += 1;
        m.update_time = shared.now_ms().to_string();
    }
    Answer::ok(json!({}))
}

/// The message, and for a merged and forwarded one its children after it,
/// each naming it in `upper_message_id` (feishu.md §3.4).
fn get(shared: &Shared, id: &str) -> Answer {
    let m = match find_message(shared, id) {
        Ok(m) => m,
        Err(a) => return a,
    };
    let children: Vec<StoredMessage> = lock(&shared.inner)
        .messages
        .iter()
        .filter(|c| c.upper_message_id == id && !c.deleted)
        .cloned()
        .collect();
    let items: Vec<Value> = std::iter::once(&m)
        .chain(&children)
        .map(|x| message_json(shared, x))
        .collect();
    Answer::ok(json!({"items": items}))
}

fn recall(shared: &Shared, id: &str) -> Answer {
    let target = match find_message(shared, id) {
        Ok(t) => t,
        Err(a) => return a,
    };
    if target.sender_type != "app" {
        return Answer::err(230026, "No permission to recall this message.");
    }
    let mut inner = lock(&shared.inner);
    if let Some(m) = inner.messages.iter_mut().find(|m| m.message_id == id) {
        m.deleted = true;
    }
    Answer::ok(json!({}))
}

fn reaction_json(x: &crate::fake_feishu::Reaction) -> Value {
    json!({
        "reaction_id": x.reaction_id,
        "operator": {"operator_id": x.operator_id, "operator_type": x.operator_type},
        "action_time": x.action_time,
        "reaction_type": {"emoji_type": x.emoji_type},
    })
}

fn add_reaction(shared: &Shared, r: &Req, id: &str) -> Answer {
    let Some(emoji) = r
        .body
        .pointer("/reaction_type/emoji_type")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return field_error("reaction_type.emoji_type is required");
    };
    if let Err(a) = find_message(shared, id) {
        return a;
    }
    let x = crate::fake_feishu::Reaction {
        reaction_id: shared.new_id("ZCaCIjUBVVWSrm5L-"),
        message_id: id.to_owned(),
        emoji_type: emoji.to_owned(),
        operator_type: "app".to_owned(),
        operator_id: shared.cfg.app_id.clone(),
        action_time: shared.now_ms().to_string(),
    };
    let out = reaction_json(&x);
    lock(&shared.inner).reactions.push(x);
    Answer::ok(out)
}

fn list_reactions(shared: &Shared, r: &Req, id: &str) -> Answer {
    if let Err(a) = find_message(shared, id) {
        return a;
    }
    let filter = r.q("reaction_type");
    let items: Vec<Value> = lock(&shared.inner)
        .reactions
        .iter()
        .filter(|x| x.message_id == id && filter.is_none_or(|f| f == x.emoji_type))
        .map(reaction_json)
        .collect();
    Answer::ok(json!({"items": items, "has_more": false, "page_token": ""}))
}

fn delete_reaction(shared: &Shared, id: &str, rid: &str) -> Answer {
    let mut inner = lock(&shared.inner);
    let Some(pos) = inner
        .reactions
        .iter()
        .position(|x| x.message_id == id && x.reaction_id == rid)
    else {
        // Guess: the code for an unknown reaction.
        return Answer::err(231003, "The reaction is not found.");
    };
    if inner.reactions[pos].operator_type != "app" {
        return Answer::err(231004, "Only your own reactions can be deleted.");
    }
    let x = inner.reactions.remove(pos);
    Answer::ok(reaction_json(&x))
}

/// The platform's cap on one resource (feishu.md §3.6).
const RESOURCE_MAX_BYTES: usize = 100 * 1024 * 1024;

fn resource(shared: &Shared, r: &Req, id: &str, key: &str) -> Answer {
    let Some(kind) = r.q("type").filter(|t| *t == "image" || *t == "file") else {
        return field_error("type is required: image|file");
    };
    let inner = lock(&shared.inner);
    // Nothing inside a merged and forwarded message is downloadable, by
    // the child's id or the forward's (feishu.md §3.6).
    let forwarded = inner.messages.iter().any(|m| {
        m.message_id == id && (!m.upper_message_id.is_empty() || m.msg_type == "merge_forward")
    });
    if forwarded {
        return Answer::err(234043, "unsupported message type or resource");
    }
    let at = (id.to_owned(), key.to_owned());
    if let Some(code) = inner.refused_resources.get(&at) {
        // 234043: inside a merge-forward child or a card (feishu.md §3.6).
        return Answer::err(*code, "unsupported message type or resource");
    }
    match inner.resources.get(&at) {
        // Stickers are not downloadable (feishu.md §3.6); guessed code.
        Some((k, _)) if k == "sticker" => Answer::err(234043, "unsupported resource: sticker"),
        // Guess: the code and text for a file over the 100 MB cap.
        Some((_, bytes)) if bytes.len() > RESOURCE_MAX_BYTES => {
            Answer::err(234037, "file size exceeds the limit")
        }
        // The type is not sniffed or named: the client must look at the bytes.
        Some((k, bytes)) if k == kind => Answer::bytes(bytes.clone(), "application/octet-stream"),
        // Guess: the code for a missing resource / wrong type.
        _ => Answer::err(234003, "File not in msg."),
    }
}

fn create_chat(shared: &Shared, r: &Req) -> Answer {
    let strings = |k: &str| -> Vec<String> {
        r.body
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let name = r
        .body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let description = r
        .body
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let chat = crate::fake_feishu::ChatInfo {
        chat_id: shared.new_id("oc_"),
        name,
        description,
        members: strings("user_id_list"),
        bot_ids: strings("bot_id_list"),
        body: r.body.clone(),
    };
    let data = json!({
        "chat_id": chat.chat_id,
        "name": chat.name,
        "description": chat.description,
        "owner_id": shared.cfg.app_id,
        "owner_id_type": "app_id",
        "chat_mode": r.body.get("chat_mode").cloned().unwrap_or(json!("group")),
        "chat_type": r.body.get("chat_type").cloned().unwrap_or(json!("private")),
        "external": false,
        "tenant_key": shared.cfg.tenant_key,
    });
    lock(&shared.inner).chats.push(chat);
    Answer::ok(data)
}
