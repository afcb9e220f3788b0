//! Request and answer types of the Open Platform calls.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveIdType {
    #[cfg_attr(not(test), allow(dead_code))]
    OpenId,
    ChatId,
}

impl ReceiveIdType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiveIdType::OpenId => "open_id",
            ReceiveIdType::ChatId => "chat_id",
        }
    }
}

// For `download_resource` (attachments, next).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// Images, including `img` keys inside posts.
    Image,
    /// Files, audio and video.
    File,
}

#[allow(dead_code)]
impl ResourceType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ResourceType::Image => "image",
            ResourceType::File => "file",
        }
    }
}

/// A message to send or reply with. `content` is the JSON *string* the
/// platform expects (e.g. `{"text":"hi"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub msg_type: String,
    pub content: String,
    /// Idempotency key (≤ 50 chars, deduped by the platform for 1 h).
    /// `None` = generate one per call. Pass your own to make a retry at a
    /// higher level idempotent too.
    pub uuid: Option<String>,
    /// The chat the message lands in, when the caller knows it (a reply
    /// names only the parent message): paces it under the chat's 5 QPS.
    /// Not sent.
    pub chat: Option<String>,
}

impl OutgoingMessage {
    pub fn new(msg_type: impl Into<String>, content: impl Into<String>) -> Self {
        OutgoingMessage {
            msg_type: msg_type.into(),
            content: content.into(),
            uuid: None,
            chat: None,
        }
    }
    /// A `text` message.
    #[cfg(test)]
    pub fn text(text: &str) -> Self {
        Self::new("text", serde_json::json!({ "text": text }).to_string())
    }
    pub fn with_uuid(mut self, uuid: impl Into<String>) -> Self {
        self.uuid = Some(uuid.into());
        self
    }
    pub fn in_chat(mut self, chat_id: impl Into<String>) -> Self {
        let c = chat_id.into();
        self.chat = (!c.is_empty()).then_some(c);
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BotInfo {
    #[serde(default)]
    pub open_id: String,
    #[serde(default)]
    pub app_name: String,
    pub activate_status: Option<i64>,
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub ip_white_list: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MessageSender {
    pub id: Option<String>,
    pub id_type: Option<String>,
    pub sender_type: Option<String>,
    pub tenant_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MessageBody {
    #[serde(default)]
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MessageMention {
    pub key: Option<String>,
    pub id: Option<String>,
    pub id_type: Option<String>,
    pub name: Option<String>,
    pub tenant_key: Option<String>,
}

/// A message as the IM API returns it (send, reply, get).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub message_id: String,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
    pub thread_id: Option<String>,
    pub msg_type: Option<String>,
    pub create_time: Option<String>,
    pub update_time: Option<String>,
    pub deleted: Option<bool>,
    pub updated: Option<bool>,
    pub chat_id: Option<String>,
    pub sender: Option<MessageSender>,
    pub body: Option<MessageBody>,
    #[serde(default)]
    pub mentions: Vec<MessageMention>,
    pub upper_message_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct Reaction {
    #[serde(default)]
    pub reaction_id: String,
    pub action_time: Option<String>,
}

/// Body of `POST /open-apis/im/v1/chats` (ids are open_ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateChat {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_id_list: Vec<String>,
    /// `private` (default) or `public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_type: Option<String>,
    /// Sent as the `uuid` query parameter, not in the body.
    #[serde(skip)]
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CreatedChat {
    #[serde(default)]
    pub chat_id: String,
    pub name: Option<String>,
}
