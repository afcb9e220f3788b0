//! Everything that writes to a surface: the worker-event loop, the
//! per-scope lanes, run cards, message replies, files, and the console's
//! terminal.

pub(crate) mod approval_post;
pub(crate) mod cards;
pub(crate) mod comment;
pub(crate) mod console;
pub(crate) mod deferred;
pub(crate) mod dispatch;
pub(crate) mod files;
pub(crate) mod lanes;
pub(crate) mod render;
pub(crate) mod reply;
pub(crate) mod surface;
