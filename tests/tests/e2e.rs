//! End-to-end: the real fcxd and fcx-worker binaries, driven through the
//! console surface, against the scripted fake codex and the REAL Codex CLI.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

mod e2e {
    pub(crate) mod access_per_sender;
    pub(crate) mod app_server;
    pub(crate) mod approvals;
    pub(crate) mod attachments;
    pub(crate) mod command_cards;
    pub(crate) mod comments;
    pub(crate) mod console_fake;
    pub(crate) mod contract;
    pub(crate) mod delivery;
    pub(crate) mod during_run;
    pub(crate) mod env_secrets;
    pub(crate) mod feedback;
    pub(crate) mod feishu_channel;
    pub(crate) mod files_out;
    pub(crate) mod forwards;
    pub(crate) mod hardening;
    pub(crate) mod lark_cli;
    pub(crate) mod link;
    pub(crate) mod ops;
    pub(crate) mod ordering;
    pub(crate) mod proof_commands;
    pub(crate) mod proof_edges;
    pub(crate) mod proof_perms;
    pub(crate) mod proof_secrets;
    pub(crate) mod readme_commands;
    pub(crate) mod real_codex;
    pub(crate) mod run_cards;
    pub(crate) mod scope_homes;
    pub(crate) mod threads;
}
