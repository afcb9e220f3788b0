//! The gateway's side of the workers: spawn, supervise, connect, and the
//! resume cursor of their event streams.

pub mod feed;
mod process;
pub mod supervisor;
