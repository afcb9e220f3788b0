//! fcx-worker: one process per profile. It never talks to Feishu: it
//! receives normalized `Inbound` messages and emits semantic run events.
//!
//! The data path, one module per step: [`service`](crate::service) (gRPC in)
//! → `router` (access, commands) → `scheduler` (queues, pool) → `run` (one
//! run's lifecycle over a `runner`) → `store` (the `fcx-state` crate). `context` is what they
//! share; `catalog` decides which Codex thread continues where.

#![warn(missing_docs)]

mod access;
pub mod app;
mod catalog;
mod commands;
mod context;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod lark_cli;
mod lifetime;
mod media;
mod pin;
#[cfg(windows)]
mod pin_win;
mod pipeline;
mod policy;
mod prompt;
mod replies;
mod router;
mod run;
mod runner;
mod scheduler;
mod service;
mod settings;
mod staging;
#[cfg(test)]
mod testkit;
mod util;
#[cfg_attr(not(windows), allow(dead_code))]
mod win_acl;

/// Durable state lives in its own crate (schema, migrations, queries); the
/// old path keeps working for the worker's modules.
use fcx_state as store;
