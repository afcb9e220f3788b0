//! What comes in: the Feishu/Lark long connection and webhook, the console,
//! normalisation into the contract's `Inbound`, de-duplication, and the
//! verification of card clicks.

pub mod callback;
pub mod channel;
pub mod click;
pub mod console;
pub mod keys;
pub mod normalize;
pub mod webhook;
