//! fcxd: the gateway. It owns every chat surface (the local console now; the
//! Feishu/Lark long connection next), spawns and supervises one fcx-worker per
//! profile, and serves the admin socket for fcxctl. It knows nothing about
//! Codex: workers do.
//!
//! Along the data path:
//! - [`ingress`]: what comes in (long connection, webhook, console input),
//!   normalised and de-duplicated, and inbound card-click verification;
//! - [`link`]: the workers (spawn, supervise, connect, resume cursor);
//! - [`egress`]: everything that writes to a surface (run cards, replies,
//!   the per-scope outbound lanes);
//! - [`feishu`]: the platform client library both ends use.

#![warn(missing_docs)]

// The library exists for `main.rs` (the `app` entry point) and the fuzz
// target (`ingress::callback`); everything else is the crate's own.
pub(crate) mod admin;
pub mod app;
pub(crate) mod egress;
pub(crate) mod feishu;
pub(crate) mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod ingress;
pub(crate) mod link;
pub(crate) mod media;
