//! What comes in: the Feishu/Lark long connection and webhook, the console,
//! normalisation into the contract's `Inbound`, de-duplication, and the
//! verification of card clicks.

pub mod callback;
pub(crate) mod channel;
pub(crate) mod click;
pub(crate) mod comment;
pub(crate) mod console;
pub(crate) mod forward;
pub(crate) mod keys;
pub(crate) mod normalize;
pub(crate) mod recent;
pub(crate) mod secrets;
pub(crate) mod warn_limit;
pub(crate) mod webhook;
