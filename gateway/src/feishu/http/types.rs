//! Request and answer types of the Open Platform calls.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiveIdType {
    #[cfg_attr(not(test), allow(dead_code))]
    OpenId,
    ChatId,
}

impl ReceiveIdType {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            ReceiveIdType::OpenId => "open_id",
            ReceiveIdType::ChatId => "chat_id",
        }
    }
}

/// A message to send or reply with. `content` is the JSON *string* the
/// platform expects (e.g. `{"text":"hi"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutgoingMessage {
    pub(crate) msg_type: String,
    pub(crate) content: String,
    /// Idempotency key (≤ 50 chars, deduped by the platform for 1 h).
    /// `None` = generate one per call. Pass your own to make a retry at a
    /// higher level idempotent too.
    pub(crate) uuid: Option<String>,
    /// The chat the message lands in, when the caller knows it (a reply
    /// names only the parent message): paces it under the chat's 5 QPS.
    /// Not sent.
    pub(crate) chat: Option<String>,
}

impl OutgoingMessage {
    pub(crate) fn new(msg_type: impl Into<String>, content: impl Into<String>) -> Self {
        OutgoingMessage {
            msg_type: msg_type.into(),
            content: content.into(),
            uuid: None,
            chat: None,
        }
    }
    /// A `text` message.
    #[cfg(test)]
    pub(crate) fn text(text: &str) -> Self {
        Self::new("text", serde_json::json!({ "text": text }).to_string())
    }
    pub(crate) fn with_uuid(mut self, uuid: impl Into<String>) -> Self {
        self.uuid = Some(uuid.into());
        self
    }
    pub(crate) fn in_chat(mut self, chat_id: impl Into<String>) -> Self {
        let c = chat_id.into();
        self.chat = (!c.is_empty()).then_some(c);
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct BotInfo {
    #[serde(default)]
    pub(crate) open_id: String,
    #[serde(default)]
    pub(crate) app_name: String,
    pub(crate) activate_status: Option<i64>,
    pub(crate) avatar_url: Option<String>,
    #[serde(default)]
    pub(crate) ip_white_list: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct MessageSender {
    pub(crate) id: Option<String>,
    pub(crate) id_type: Option<String>,
    pub(crate) sender_type: Option<String>,
    pub(crate) tenant_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct MessageBody {
    #[serde(default)]
    pub(crate) content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct MessageMention {
    pub(crate) key: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) id_type: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) tenant_key: Option<String>,
}

/// A message as the IM API returns it (send, reply, get).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub(crate) message_id: String,
    pub(crate) root_id: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) thread_id: Option<String>,
    pub(crate) msg_type: Option<String>,
    pub(crate) create_time: Option<String>,
    pub(crate) update_time: Option<String>,
    pub(crate) deleted: Option<bool>,
    pub(crate) updated: Option<bool>,
    pub(crate) chat_id: Option<String>,
    pub(crate) sender: Option<MessageSender>,
    pub(crate) body: Option<MessageBody>,
    #[serde(default)]
    pub(crate) mentions: Vec<MessageMention>,
    pub(crate) upper_message_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Reaction {
    #[serde(default)]
    pub(crate) reaction_id: String,
    pub(crate) action_time: Option<String>,
}

/// Body of `POST /open-apis/im/v1/chats` (ids are open_ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct CreateChat {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) owner_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) user_id_list: Vec<String>,
    /// `private` (default) or `public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chat_type: Option<String>,
    /// Sent as the `uuid` query parameter, not in the body.
    #[serde(skip)]
    pub(crate) uuid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct CreatedChat {
    #[serde(default)]
    pub(crate) chat_id: String,
    pub(crate) name: Option<String>,
}
