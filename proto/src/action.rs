//! Small readers over `Action`'s oneof, so callers that only log or route
//! by kind need not match every variant.

use crate::v1::{Action, ActionKind, action};

impl Action {
    /// Which kind of action this is (UNSPECIFIED when `kind` is unset).
    pub fn action_kind(&self) -> ActionKind {
        match &self.kind {
            Some(action::Kind::Stop(_)) => ActionKind::Stop,
            Some(action::Kind::GroupCreated(_)) => ActionKind::GroupCreated,
            Some(action::Kind::Command(_)) => ActionKind::Command,
            Some(action::Kind::Config(_)) => ActionKind::Config,
            Some(action::Kind::Resume(_)) => ActionKind::Resume,
            Some(action::Kind::Approval(_)) => ActionKind::Approval,
            Some(action::Kind::Thread(_)) => ActionKind::Thread,
            Some(action::Kind::RunLate(_)) => ActionKind::RunLate,
            None => ActionKind::Unspecified,
        }
    }

    /// The run a STOP names ("" for any other kind, or a scope-wide stop).
    pub fn stop_run_id(&self) -> &str {
        match &self.kind {
            Some(action::Kind::Stop(s)) => &s.run_id,
            _ => "",
        }
    }

    /// The chat a GROUP_CREATED names ("" for any other kind).
    pub fn created_chat_id(&self) -> &str {
        match &self.kind {
            Some(action::Kind::GroupCreated(g)) => &g.chat_id,
            _ => "",
        }
    }
}
