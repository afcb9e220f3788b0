//! The typed Open Platform calls fcx makes (bot and app info, messages,
//! reactions, resources, chats) and the raw JSON door `cardkit` uses.

use super::*;

impl OpenApiClient {
    /// `GET /open-apis/bot/v3/info` (the answer is under `bot`, not `data`).
    /// The app owner's open_id (`GET /open-apis/application/v6/applications/me`:
    /// `data.app.owner.owner_id`, else `data.app.creator_id`). Needs the
    /// `application:application:self_manage` (or `admin:app.info:readonly`)
    /// scope; `Ok(None)` when the platform names nobody.
    pub(crate) async fn app_owner(&self) -> Result<Option<String>, ApiError> {
        let spec = Spec::new(Method::GET, "/open-apis/application/v6/applications/me")
            .query("lang", "en_us")
            .query("user_id_type", "open_id");
        let data: serde_json::Value = self.call_field(&spec, "data").await?;
        let app = &data["app"];
        let owner = app["owner"]["owner_id"]
            .as_str()
            .or_else(|| app["creator_id"].as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(owner)
    }

    pub(crate) async fn bot_info(&self) -> Result<BotInfo, ApiError> {
        self.call_field(&Spec::new(Method::GET, "/open-apis/bot/v3/info"), "bot")
            .await
    }

    /// `POST /open-apis/im/v1/messages?receive_id_type=…`. A `uuid` is
    /// generated when `msg.uuid` is `None`; retries reuse it.
    pub(crate) async fn send_message(
        &self,
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
        self.call_field(&spec, "data").await
    }

    /// `POST /open-apis/im/v1/messages/{id}/reply`.
    pub(crate) async fn reply_message(
        &self,
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
        self.call_field(&spec, "data").await
    }

    /// `GET /open-apis/im/v1/messages/{id}` → `data.items` (a merge-forward
    /// returns its children too).
    pub(crate) async fn get_message(&self, message_id: &str) -> Result<Vec<Message>, ApiError> {
        #[derive(Deserialize)]
        struct Items {
            #[serde(default)]
            items: Vec<Message>,
        }
        let path = format!("/open-apis/im/v1/messages/{}", segment(message_id)?);
        let items: Items = self
            .call_field(&Spec::new(Method::GET, path), "data")
            .await?;
        Ok(items.items)
    }

    /// `DELETE /open-apis/im/v1/messages/{id}`: recall a message the bot
    /// sent. Resending is harmless (a second recall of the same message
    /// changes nothing).
    pub(crate) async fn recall_message(&self, message_id: &str) -> Result<(), ApiError> {
        let path = format!("/open-apis/im/v1/messages/{}", segment(message_id)?);
        let spec = Spec {
            idempotent: true,
            ..Spec::new(Method::DELETE, path)
        }
        .budget("im.recall", budget::IM_SEND);
        self.call_field::<serde_json::Value>(&spec, "data")
            .await
            .map(|_| ())
    }

    /// `POST /open-apis/im/v1/messages/{id}/reactions`. Not idempotent: a
    /// timed-out request is not resent (only connect failures are).
    pub(crate) async fn add_reaction(
        &self,
        message_id: &str,
        emoji_type: &str,
    ) -> Result<Reaction, ApiError> {
        let path = format!(
            "/open-apis/im/v1/messages/{}/reactions",
            segment(message_id)?
        );
        let spec = Spec::new(Method::POST, path)
            .json(serde_json::json!({ "reaction_type": { "emoji_type": emoji_type } }));
        self.call_field(&spec, "data").await
    }

    /// `DELETE /open-apis/im/v1/messages/{id}/reactions/{reaction_id}`:
    /// take back a reaction the bot added. Resending is harmless.
    pub(crate) async fn remove_reaction(
        &self,
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
        self.call_field::<serde_json::Value>(&spec, "data")
            .await
            .map(|_| ())
    }

    // No caller yet: attachment download (the next issue) uses it.
    #[allow(dead_code)]
    /// `GET /open-apis/im/v1/messages/{id}/resources/{key}?type=…`: the
    /// bytes of a user-sent image/file, refused above `max_bytes`.
    pub(crate) async fn download_resource(
        &self,
        message_id: &str,
        file_key: &str,
        kind: ResourceType,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let path = format!(
            "/open-apis/im/v1/messages/{}/resources/{}",
            segment(message_id)?,
            segment(file_key)?
        );
        let spec = Spec {
            binary: Some(max_bytes),
            ..Spec::new(Method::GET, path)
        }
        .query("type", kind.as_str());
        match self.call(&spec).await? {
            Answer::Bytes(b) => Ok(b),
            Answer::Json(_) => Err(self.decode_err(&spec.path, "expected a file, got JSON", None)),
        }
    }

    /// `POST /open-apis/im/v1/chats?user_id_type=open_id&uuid=…` → chat id.
    pub(crate) async fn create_chat(&self, req: &CreateChat) -> Result<CreatedChat, ApiError> {
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
        self.call_field(&spec, "data").await
    }

    /// Any JSON call under `/open-apis/` with the same token handling,
    /// code checks, rate-limit waits and retries as the typed calls (used
    /// by `cardkit`). Returns the answer's `data` (`Null` when absent).
    /// `idempotent`: the request may be resent after a timeout (only say so
    /// when a resend cannot apply twice).
    pub(crate) async fn call_json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        idempotent: bool,
    ) -> Result<serde_json::Value, ApiError> {
        self.call_json_budgeted(method, path, body, idempotent, Vec::new())
            .await
    }

    /// [`Self::call_json`], each attempt first waiting for a slot in the
    /// given budget windows.
    pub(crate) async fn call_json_budgeted(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        idempotent: bool,
        budget: Vec<(String, &'static [Window])>,
    ) -> Result<serde_json::Value, ApiError> {
        if !path.starts_with("/open-apis/")
            || path.contains("..")
            || path.contains(['?', '#'])
            || !path.is_ascii()
        {
            return Err(ApiError::InvalidArgument(format!(
                "not an Open Platform path: {:?}",
                path.chars().take(64).collect::<String>()
            )));
        }
        let mut spec = Spec {
            idempotent: idempotent || method == Method::GET,
            budget,
            ..Spec::new(method, path)
        };
        if let Some(b) = body {
            spec = spec.json(b);
        }
        self.call_field(&spec, "data").await
    }

    /// [`OpenApiClient::call_json_budgeted`] with query parameters (the
    /// Drive APIs take `file_type` in the query).
    pub(crate) async fn call_json_query(
        &self,
        method: Method,
        path: &str,
        query: &[(&'static str, String)],
        body: Option<serde_json::Value>,
        budget: Vec<(String, &'static [Window])>,
    ) -> Result<serde_json::Value, ApiError> {
        if !path.starts_with("/open-apis/")
            || path.contains("..")
            || path.contains(['?', '#'])
            || !path.is_ascii()
        {
            return Err(ApiError::InvalidArgument(format!(
                "not an Open Platform path: {:?}",
                path.chars().take(64).collect::<String>()
            )));
        }
        let mut spec = Spec {
            budget,
            ..Spec::new(method, path)
        };
        for (k, v) in query {
            spec = spec.query(k, v.clone());
        }
        if let Some(b) = body {
            spec = spec.json(b);
        }
        self.call_field(&spec, "data").await
    }
}
