//! Every command reply leaves through here: addressed to the sender in the
//! scope's reply mode, carrying the policy fingerprint its buttons are
//! signed for.

use std::sync::{Arc, RwLock};

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb, Inbound};

use crate::context::Ctx;
use crate::store::StoreError;

/// The wire name of a command word (`Command::name`); the contract's
/// `CommandName` is the closed set, a word outside it goes as UNSPECIFIED
/// (the gateway then shows the reply's title alone).
pub(crate) fn command_name(word: &str) -> pb::CommandName {
    pb::CommandName::from_word(word).unwrap_or_default()
}

pub(crate) struct Replies {
    ctx: Arc<Ctx>,
    /// What the gateway announced at its last Hello; `None` before any
    /// Hello (a local client), when every request is passed on.
    gateway_caps: RwLock<Option<Vec<String>>>,
}

impl Replies {
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Replies {
            ctx,
            gateway_caps: RwLock::new(None),
        }
    }

    pub(crate) fn set_gateway_caps(&self, caps: Vec<String>) {
        *self.gateway_caps.write().unwrap_or_else(|p| p.into_inner()) = Some(caps);
    }

    /// Whether the connected gateway can carry out `request`.
    fn gateway_can(&self, request: &pb::gateway_request::Kind) -> bool {
        let cap = match request {
            pb::gateway_request::Kind::CreateGroup(_) => fcx_proto::caps::CREATE_GROUP,
            pb::gateway_request::Kind::Reconnect(_) => fcx_proto::caps::RECONNECT,
        };
        self.gateway_has(cap)
    }

    /// Whether the connected gateway announced `cap` (a local client that
    /// said no Hello is assumed able).
    pub(crate) fn gateway_has(&self, cap: &str) -> bool {
        match &*self.gateway_caps.read().unwrap_or_else(|p| p.into_inner()) {
            Some(caps) => caps.iter().any(|c| c == cap),
            None => true,
        }
    }

    /// A plain answer: title and markdown body.
    pub(crate) fn text(
        &self,
        inbound: &Inbound,
        command: &str,
        ok: bool,
        title: &str,
        body: String,
    ) {
        self.send(
            inbound,
            pb::CommandReply {
                command: command_name(command) as i32,
                title: title.into(),
                body,
                ok,
                ..Default::default()
            },
        );
    }

    /// An answer that also asks the gateway to do something (create a
    /// group, reconnect).
    pub(crate) fn request(
        &self,
        inbound: &Inbound,
        command: &str,
        title: &str,
        body: String,
        request: pb::gateway_request::Kind,
    ) {
        if !self.gateway_can(&request) {
            return self.text(
                inbound,
                command,
                false,
                "Not available",
                "The fcx gateway serving this chat cannot do that; upgrade fcxd.".into(),
            );
        }
        self.send(
            inbound,
            pb::CommandReply {
                command: command_name(command) as i32,
                title: title.into(),
                body,
                ok: true,
                gateway_request: Some(pb::GatewayRequest {
                    kind: Some(request),
                }),
                ..Default::default()
            },
        );
    }

    /// Answer `inbound`'s sender in the scope's reply mode, with the policy
    /// fingerprint its buttons are signed for (empty when the policy cannot
    /// be resolved, so no button of it can act).
    pub(crate) fn send(&self, inbound: &Inbound, mut reply: pb::CommandReply) {
        let scope = inbound.scope.as_str();
        reply.actor = inbound.actor.clone();
        let mode = crate::settings::reply_mode(&self.ctx.profile, &self.ctx.settings(scope));
        reply.reply_mode = pb::ReplyMode::from_word(mode).unwrap_or_default() as i32;
        reply.fingerprint = self
            .ctx
            .policy(scope)
            .map(|p| p.fingerprint)
            .unwrap_or_default();
        self.ctx
            .emit(scope, "", &inbound.message_id, Kind::CommandReply(reply));
    }

    /// A change could not be saved: logged, and the user told.
    pub(crate) fn store_failed(&self, inbound: &Inbound, cmd: &str, e: StoreError) {
        tracing::error!(error = %e, "state update failed");
        self.text(
            inbound,
            cmd,
            false,
            "fcx could not save that change",
            "The worker's state could not be updated; see the worker log.".into(),
        );
    }
}
