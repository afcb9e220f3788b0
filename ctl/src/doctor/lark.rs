//! The Feishu/Lark CLI identity a profile hands Codex (`lark_cli`): which
//! one, where its config lives, and what the operator still has to do.
//! Words and paths only, never a secret or a token.

use fcx_config::{Home, LarkCli, Profile};

use super::Checks;

pub(super) fn lark_cli(home: &Home, p: &Profile, c: &mut Checks) {
    let Some(app) = &p.app else {
        c.info("lark-cli", "disabled (no Feishu/Lark app in this profile)");
        return;
    };
    let dir = |preset| {
        fcx_config::lark_cli::config_dir(home, &p.name, preset)
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    };
    let installed = if fcx_config::codex::find_on_path("lark-cli").is_some() {
        "lark-cli is on PATH"
    } else {
        "lark-cli is not on PATH (npm install -g @larksuite/cli to let Codex use it)"
    };
    let detail = match p.lark_cli {
        LarkCli::Disabled => "disabled: Codex gets no lark-cli configuration".to_string(),
        LarkCli::BotOnly => format!(
            "bot-only, as the app {} (config {}); {installed}",
            app.app_id,
            dir(LarkCli::BotOnly)
        ),
        LarkCli::UserDefault => format!(
            "user-default in private chats (config {}; log the user in once with \
             `LARKSUITE_CLI_CONFIG_DIR={} lark-cli auth login`), bot-only as the app {} in groups; {installed}",
            dir(LarkCli::UserDefault),
            dir(LarkCli::UserDefault),
            app.app_id
        ),
    };
    c.info("lark-cli", detail);
}
