//! A finished run's thread buttons (Fork, Archive) signed for the user the
//! run answered, with the fingerprint the run started under.

use super::*;
use crate::ingress::click::ACTION_THREAD;

/// How long a final card's buttons stay valid.
const FINAL_BUTTON_TTL_SECS: i64 = 24 * 3600;

impl CardSurface {
    /// `Done.buttons` as (label, token); none the worker cannot carry out,
    /// none without the run's requester or fingerprint.
    pub(crate) fn sign_final(
        &self,
        ev: &pb::WorkerEvent,
        state: &RunState,
    ) -> Vec<(String, String)> {
        let Some(Kind::Done(d)) = &ev.kind else {
            return Vec::new();
        };
        let operator = &state.requester;
        if d.buttons.is_empty() || state.fingerprint.is_empty() || operator.is_empty() {
            return Vec::new();
        }
        let chat = pb::Scope::chat_of(&ev.scope);
        let expires = now_ms() / 1000 + FINAL_BUTTON_TTL_SECS;
        d.buttons
            .iter()
            .filter(|b| b.action() == pb::ActionKind::Thread && self.caps.offers(b.action()))
            .filter(|b| !b.value.is_empty() && !b.label.trim().is_empty())
            .filter_map(|b| {
                let claims = Claims::new(
                    ev.run_id.clone(),
                    ev.scope.clone(),
                    chat.clone(),
                    operator.clone(),
                    format!("{ACTION_THREAD}{}", b.value),
                    state.fingerprint.clone(),
                    expires,
                );
                match self.keys.sign(&claims) {
                    Ok(t) => Some((b.label.chars().take(40).collect(), t)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot sign a final-card button; it is left out");
                        None
                    }
                }
            })
            .collect()
    }
}
