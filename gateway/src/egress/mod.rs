//! Everything that writes to a surface: the worker-event loop, the
//! per-scope lanes, run cards, and message replies.

pub mod cards;
pub mod deferred;
pub mod dispatch;
pub mod lanes;
pub mod render;
pub mod reply;
pub mod surface;
