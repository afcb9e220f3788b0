//! CardKit v1 (feishu.md §3.7): card entities and their streaming updates,
//! on top of [`OpenApiClient`].
//!
//! - [`CardKit`]: the raw calls (create entity, stream element content,
//!   settings, full update) and [`card_message`], the IM content that sends
//!   an entity;
//! - [`CardWriter`]: one serialized writer per card. It owns the card's
//!   `sequence` counter (strictly increasing across *all* operations on a
//!   card, else 300317), coalesces content updates (the latest full text per
//!   element wins), paces itself under the platform's 10 ops/s per card, and
//!   reports a permanent failure so the caller can fall back to a plain
//!   markdown message. A live card's writer can instead *pull* its updates
//!   from a [`CardSource`] right before each send
//!   ([`CardWriter::spawn_live`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::budget;
use super::http::{ApiError, OpenApiClient, OutgoingMessage, new_uuid};

const CARDS_PATH: &str = "/open-apis/cardkit/v1/cards";
/// Streamed text limit per element (characters; counted here in UTF-16
/// units, the stricter reading).
pub(crate) const MAX_CONTENT_CHARS: usize = 100_000;

/// Codes worth another try with the next sequence.
const TRANSIENT_CODES: [i64; 4] = [
    200810,   // an interaction is in progress
    300120,   // internal error
    99991400, // rate limit beyond the client's wait
    230020,   // rate limit
];

/// The raw CardKit calls. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct CardKit {
    client: OpenApiClient,
}

/// `msg_type: interactive` content that sends card entity `card_id`.
pub(crate) fn card_message(card_id: &str) -> OutgoingMessage {
    OutgoingMessage::new(
        "interactive",
        json!({"type": "card", "data": {"card_id": card_id}}).to_string(),
    )
}

/// Settings that turn streaming mode on again after the platform closed it
/// (it does so 10 minutes after it was last enabled).
pub(crate) fn open_streaming_settings() -> String {
    json!({"config": {"streaming_mode": true}}).to_string()
}

/// Settings that end streaming mode and set the chat-list preview, so the
/// preview stops saying "generating" and the card can be forwarded.
pub(crate) fn close_streaming_settings(summary: &str) -> String {
    json!({"config": {"streaming_mode": false, "summary": {"content": summary}}}).to_string()
}

fn card_id_ok(s: &str) -> Result<&str, ApiError> {
    if !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
    {
        Ok(s)
    } else {
        Err(ApiError::InvalidArgument("not a valid card id".into()))
    }
}

/// Element ids: letters, digits, underscore; a letter first; ≤ 20 chars.
pub(crate) fn element_id_ok(s: &str) -> bool {
    s.len() <= 20
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn sequence_ok(sequence: u32) -> Result<i32, ApiError> {
    i32::try_from(sequence)
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| ApiError::InvalidArgument("sequence must be 1..2147483647".into()))
}

impl CardKit {
    pub(crate) fn new(client: OpenApiClient) -> Self {
        CardKit { client }
    }

    /// `POST /open-apis/cardkit/v1/cards` → the new entity's `card_id`.
    /// Not resent after a timeout: a second entity would be orphaned, not
    /// harmful, but the caller decides.
    pub(crate) async fn create_card(&self, card_json: &str) -> Result<String, ApiError> {
        let data = self
            .client
            .call_json_budgeted(
                Method::POST,
                CARDS_PATH,
                Some(json!({"type": "card_json", "data": card_json})),
                false,
                vec![
                    ("cardkit".into(), budget::CARDKIT_OPS),
                    ("cardkit.create".into(), budget::CARDKIT_CREATE),
                ],
            )
            .await?;
        data.get("card_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ApiError::Decode {
                path: CARDS_PATH.into(),
                reason: "answer has no card_id".into(),
                log_id: None,
            })
    }

    /// `PUT …/cards/{card_id}/elements/{element_id}/content`: the element's
    /// full text (the platform animates the part that extends the old
    /// text).
    pub(crate) async fn stream_content(
        &self,
        card_id: &str,
        element_id: &str,
        content: &str,
        sequence: u32,
        uuid: &str,
    ) -> Result<(), ApiError> {
        if !element_id_ok(element_id) {
            return Err(ApiError::InvalidArgument("not a valid element id".into()));
        }
        let units: usize = content.chars().map(char::len_utf16).sum();
        if units == 0 || units > MAX_CONTENT_CHARS {
            return Err(ApiError::InvalidArgument(
                "content must be 1-100000 characters".into(),
            ));
        }
        let path = format!(
            "{CARDS_PATH}/{}/elements/{element_id}/content",
            card_id_ok(card_id)?
        );
        let body = json!({"content": content, "sequence": sequence_ok(sequence)?, "uuid": uuid});
        self.sequenced(Method::PUT, &path, body).await
    }

    /// `PATCH …/cards/{card_id}/settings` with `settings` (a JSON string
    /// holding `config` and/or `card_link`).
    pub(crate) async fn update_settings(
        &self,
        card_id: &str,
        settings: &str,
        sequence: u32,
        uuid: &str,
    ) -> Result<(), ApiError> {
        let path = format!("{CARDS_PATH}/{}/settings", card_id_ok(card_id)?);
        let body = json!({"settings": settings, "sequence": sequence_ok(sequence)?, "uuid": uuid});
        self.sequenced(Method::PATCH, &path, body).await
    }

    /// `PUT …/cards/{card_id}`: replaces the whole card.
    pub(crate) async fn update_card(
        &self,
        card_id: &str,
        card_json: &str,
        sequence: u32,
        uuid: &str,
    ) -> Result<(), ApiError> {
        let path = format!("{CARDS_PATH}/{}", card_id_ok(card_id)?);
        let body = json!({
            "card": {"type": "card_json", "data": card_json},
            "sequence": sequence_ok(sequence)?,
            "uuid": uuid,
        });
        self.sequenced(Method::PUT, &path, body).await
    }

    async fn sequenced(&self, method: Method, path: &str, body: Value) -> Result<(), ApiError> {
        if body
            .get("uuid")
            .and_then(Value::as_str)
            .is_none_or(|u| u.is_empty() || u.len() > 64)
        {
            return Err(ApiError::InvalidArgument(
                "uuid must be 1-64 characters".into(),
            ));
        }
        // Not resent after a timeout: the first attempt may have consumed
        // the sequence, and a resend would then fail with 300317. The
        // writer retries with the next sequence instead.
        self.client
            .call_json(method, path, Some(body), false)
            .await?;
        Ok(())
    }
}

mod writer;

pub(crate) use writer::*;

#[cfg(test)]
#[path = "cardkit_tests.rs"]
mod tests;
