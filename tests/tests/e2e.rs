//! End-to-end: the real fcxd and fcx-worker binaries, driven through the
//! console surface, against the scripted fake codex and the REAL Codex CLI.

mod e2e {
    pub mod app_server;
    pub mod command_cards;
    pub mod console_fake;
    pub mod contract;
    pub mod delivery;
    pub mod feedback;
    pub mod feishu_channel;
    pub mod link;
    pub mod real_codex;
    pub mod run_cards;
}
