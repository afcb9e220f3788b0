//! fcxd: the gateway. It owns every chat surface (the local console now; the
//! Feishu/Lark long connection next), spawns and supervises one fcx-worker per
//! profile, and serves the admin socket for fcxctl. It knows nothing about
//! Codex: workers do.

pub mod admin;
pub mod app;
pub mod callback;
pub mod cards;
pub mod channel;
pub mod console;
pub mod feishu;
pub mod keys;
pub mod normalize;
pub mod outbound;
pub mod render;
pub mod reply;
pub mod supervisor;
pub mod webhook;
