//! Command replies as cards: buttons signed for the user they answer, the
//! `/config` form signed as one submit.

use super::*;
use crate::ingress::callback;

/// How long a command card's buttons stay valid.
const COMMAND_BUTTON_TTL_SECS: i64 = 24 * 3600;

impl CardSurface {
    /// Sends a command reply as a card (buttons signed for the user it
    /// answers, the `/config` form signed as one submit). `false`: it could
    /// not be sent and the caller answers with a message.
    pub(crate) async fn command_card(&self, ev: &pb::WorkerEvent, c: &pb::CommandReply) -> bool {
        if ev.reply_to.is_empty() {
            return false;
        }
        let chat = pb::Scope::chat_of(&ev.scope);
        let operator = c.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default();
        // An approval's buttons: for everyone the worker lets decide.
        let deciders = callback::operator_list(&c.deciders);
        let expires = now_ms() / 1000 + COMMAND_BUTTON_TTL_SECS;
        let sign_as = |run_id: String, action: String| -> Option<String> {
            let operator = if action.starts_with(ACTION_APPROVAL) && !deciders.is_empty() {
                &deciders
            } else {
                &operator
            };
            // No fingerprint (the scope's policy could not be resolved): a
            // button could not be checked for staleness, so there is none.
            if operator.is_empty() || c.fingerprint.is_empty() {
                return None;
            }
            let claims = Claims::new(
                run_id,
                ev.scope.clone(),
                chat.clone(),
                operator.clone(),
                action,
                c.fingerprint.clone(),
                expires,
            );
            self.keys
                .sign(&claims)
                .map_err(|e| tracing::warn!(error = %e, "cannot sign a command-card button"))
                .ok()
        };
        let mut sign = |b: &pb::Button| -> Option<String> {
            if !self.caps.offers(b.action()) {
                return None;
            }
            let (run_id, action) = match b.action() {
                pb::ActionKind::Stop if !b.value.is_empty() => {
                    (b.value.clone(), ACTION_STOP.to_string())
                }
                pb::ActionKind::Command if b.value.starts_with('/') => {
                    (String::new(), format!("{ACTION_COMMAND}{}", b.value))
                }
                pb::ActionKind::Resume if !b.value.is_empty() => {
                    (String::new(), format!("{ACTION_RESUME}{}", b.value))
                }
                pb::ActionKind::RunLate if !b.value.is_empty() => {
                    (String::new(), format!("{ACTION_RUN_LATE}{}", b.value))
                }
                pb::ActionKind::Approval => {
                    let run_id = b.value.split('/').next().unwrap_or_default();
                    if run_id.is_empty() {
                        return None;
                    }
                    (run_id.to_string(), format!("{ACTION_APPROVAL}{}", b.value))
                }
                _ => return None,
            };
            sign_as(run_id, action)
        };
        let form_token = c
            .form
            .as_ref()
            .filter(|f| !f.options.is_empty() && self.caps.offers(pb::ActionKind::Config))
            .and_then(|_| sign_as(String::new(), ACTION_CONFIG.to_string()));
        let card = render::command_card(c, &mut sign, form_token.as_deref());
        let msg = OutgoingMessage::new("interactive", card.json)
            .with_uuid(format!("fcxk{}-{}", self.tag, ev.seq))
            .in_chat(chat.clone());
        match self
            .http
            .im()
            .reply_message(&ev.reply_to, &msg, pb::Scope::key_is_topic(&ev.scope))
            .await
        {
            Ok(m) => {
                if let Some(t) = &form_token {
                    self.forms
                        .insert(&m.message_id, t, expires, now_ms() / 1000);
                }
                true
            }
            Err(e) => {
                tracing::warn!(scope = %ev.scope, command = c.command().word(), error = %e, "cannot send a command card; answering with a message");
                false
            }
        }
    }
}
