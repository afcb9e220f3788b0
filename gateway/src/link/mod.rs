//! The gateway's side of the workers: reattach or spawn, supervise, connect
//! (`process`), and the events they say, pulled by the surfaces from a resume
//! cursor that only the consumer moves (`feed`). Workers outlive fcxd.

pub mod caps;
mod env;
pub mod feed;
mod process;
pub mod supervisor;
