//! The IM calls fcx makes: messages (send, reply, read, recall), reactions
//! and chats. A view of [`OpenApiClient`] of their own, so the client stays
//! the transport (token, code checks, budgets, retries) and each family of
//! calls stays small.

use super::*;

/// Messages, reactions and chats ([`OpenApiClient::im`]). Its calls take
/// it by value, so a call's future may outlive the `im()` expression.
#[derive(Clone, Copy)]
pub(crate) struct Im<'a>(&'a OpenApiClient);

impl OpenApiClient {
    /// The IM calls.
    pub(crate) fn im(&self) -> Im<'_> {
        Im(self)
    }
}

impl Im<'_> {
    /// `POST /open-apis/im/v1/messages?receive_id_type=…`. A `uuid` is
    /// generated when `msg.uuid` is `None`; retries reuse it.
    pub(crate) async fn send_message(
        self,
        id_type: ReceiveIdType,
        receive_id: &str,
        msg: &OutgoingMessage,
    ) -> Result<Message, ApiError> {
        let uuid = msg.uuid.clone().unwrap_or_else(new_uuid);
        check_uuid(&uuid)?;
        let chat = match id_type {
            ReceiveIdType::ChatId => Some(receive_id.to_string()),
            _ => msg.chat.clone().or_else(|| Some(receive_id.to_string())),
        };
        let mut spec = Spec {
            idempotent: true,
            ..Spec::new(Method::POST, "/open-apis/im/v1/messages")
        }
        .budget("im.send", budget::IM_SEND);
        if let Some(c) = chat {
            spec = spec.budget(format!("chat:{c}"), budget::IM_CHAT);
        }
        let spec = spec
            .query("receive_id_type", id_type.as_str())
            .json(serde_json::json!({
                "receive_id": receive_id,
                "msg_type": msg.msg_type,
                "content": msg.content,
                "uuid": uuid,
            }));
        self.0.inner.call_field(&spec, "data").await
    }

    /// `POST /open-apis/im/v1/messages/{id}/reply`.
    pub(crate) async fn reply_message(
        self,
        message_id: &str,
        msg: &OutgoingMessage,
        reply_in_thread: bool,
    ) -> Result<Message, ApiError> {
        let uuid = msg.uuid.clone().unwrap_or_else(new_uuid);
        check_uuid(&uuid)?;
        let path = format!("/open-apis/im/v1/messages/{}/reply", segment(message_id)?);
        let mut spec = Spec {
            idempotent: true,
            ..Spec::new(Method::POST, path)
        }
        .budget("im.send", budget::IM_SEND);
        if let Some(c) = &msg.chat {
            spec = spec.budget(format!("chat:{c}"), budget::IM_CHAT);
        }
        let spec = spec.json(serde_json::json!({
            "msg_type": msg.msg_type,
            "content": msg.content,
            "reply_in_thread": reply_in_thread,
            "uuid": uuid,
        }));
        self.0.inner.call_field(&spec, "data").await
    }

    /// `GET /open-apis/im/v1/messages/{id}` → `data.items` (a merge-forward
    /// returns its children too).
    pub(crate) async fn get_message(self, message_id: &str) -> Result<Vec<Message>, ApiError> {
        #[derive(Deserialize)]
        struct Items {
            #[serde(default)]
            items: Vec<Message>,
        }
        let path = format!("/open-apis/im/v1/messages/{}", segment(message_id)?);
        let items: Items = self
            .0
            .inner
            .call_field(&Spec::new(Method::GET, path), "data")
            .await?;
        Ok(items.items)
    }

    /// `DELETE /open-apis/im/v1/messages/{id}`: recall a message the bot
    /// sent. Resending is harmless (a second recall of the same message
    /// changes nothing).
    pub(crate) async fn recall_message(self, message_id: &str) -> Result<(), ApiError> {
        let path = format!("/open-apis/im/v1/messages/{}", segment(message_id)?);
        let spec = Spec {
            idempotent: true,
            ..Spec::new(Method::DELETE, path)
        }
        .budget("im.recall", budget::IM_SEND);
        self.0
            .inner
            .call_field::<serde_json::Value>(&spec, "data")
            .await
            .map(|_| ())
    }

    /// `POST /open-apis/im/v1/messages/{id}/reactions`. Not idempotent: a
    /// timed-out request is not resent (only connect failures are).
    pub(crate) async fn add_reaction(
        self,
        message_id: &str,
        emoji_type: &str,
    ) -> Result<Reaction, ApiError> {
        let path = format!(
            "/open-apis/im/v1/messages/{}/reactions",
            segment(message_id)?
        );
        let spec = Spec::new(Method::POST, path)
            .json(serde_json::json!({ "reaction_type": { "emoji_type": emoji_type } }));
        self.0.inner.call_field(&spec, "data").await
    }

    /// `DELETE /open-apis/im/v1/messages/{id}/reactions/{reaction_id}`:
    /// take back a reaction the bot added. Resending is harmless.
    pub(crate) async fn remove_reaction(
        self,
        message_id: &str,
        reaction_id: &str,
    ) -> Result<(), ApiError> {
        let path = format!(
            "/open-apis/im/v1/messages/{}/reactions/{}",
            segment(message_id)?,
            segment(reaction_id)?
        );
        let spec = Spec {
            idempotent: true,
            ..Spec::new(Method::DELETE, path)
        };
        self.0
            .inner
            .call_field::<serde_json::Value>(&spec, "data")
            .await
            .map(|_| ())
    }

    /// `POST /open-apis/im/v1/chats?user_id_type=open_id&uuid=…` → chat id.
    pub(crate) async fn create_chat(self, req: &CreateChat) -> Result<CreatedChat, ApiError> {
        let uuid = req.uuid.clone().unwrap_or_else(new_uuid);
        check_uuid(&uuid)?;
        let body =
            serde_json::to_value(req).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let spec = Spec {
            idempotent: true,
            ..Spec::new(Method::POST, "/open-apis/im/v1/chats")
        }
        .query("user_id_type", "open_id")
        .query("uuid", uuid)
        .json(body);
        self.0.inner.call_field(&spec, "data").await
    }
}
