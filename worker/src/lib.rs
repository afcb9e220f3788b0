//! fcx-worker: one process per profile. Access and policy, the command
//! router, per-scope queues and the run orchestrator, the prompt builder, the
//! Codex child runners and durable state. It never talks to Feishu: it receives
//! normalized `Inbound` messages and emits semantic run events.

pub mod access;
pub mod app;
pub mod commands;
pub mod events;
pub mod orchestrator;
pub mod policy;
pub mod prompt;
pub mod runner;
pub mod service;
pub mod settings;
pub mod util;

/// Durable state lives in its own crate (schema, migrations, queries); the
/// old path keeps working for the worker's modules.
pub(crate) use fcx_state as store;
