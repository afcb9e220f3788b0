//! The Feishu/Lark protocol layer, written against the platform's wire
//! protocol directly (there is no Rust SDK; see
//! `shared/reference/feishu.md`):
//!
//! - [`frame`]: the long-connection `pbbp2.Frame` helpers, ACKs and
//!   fragment reassembly;
//! - [`budget`]: the app's request budget (per-app and per-chat windows);
//! - [`http`]: the Open Platform HTTP client (tenant token, business-code
//!   checks, rate limits, retries, idempotent sends) and the long-connection
//!   endpoint request;
//! - [`drive`]: document comments and document metadata (Drive v1);
//! - [`resources`]: downloads of the images and files users send;
//! - [`ws`]: the long-connection client task (connect, ping, dispatch,
//!   ACK, reconnect, watchdog, status).
//!
//! Nothing here knows about fcx's chat model: normalization lives elsewhere.

pub(crate) mod budget;
pub(crate) mod cardkit;
pub(crate) mod drive;
pub(crate) mod frame;
pub(crate) mod http;
pub(crate) mod resources;
pub(crate) mod ws;

#[cfg(test)]
mod testkit;

/// Installs the aws-lc-rs rustls provider as the process default so reqwest
/// and tokio-tungstenite share it. Idempotent; call early in `main`.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
