//! The gateway's side of the workers: reattach or spawn, supervise, connect
//! (`process`), and the events they say, pulled by the surfaces from a resume
//! cursor that only the consumer moves (`feed`). Workers outlive fcxd.

pub(crate) mod caps;
pub(crate) mod cursor;
mod env;
pub(crate) mod feed;
mod liveness;
mod process;
pub(crate) mod supervisor;
