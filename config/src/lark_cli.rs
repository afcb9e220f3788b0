//! The Feishu/Lark CLI identity a profile hands its Codex children (the
//! official `lark-cli`, npm `@larksuite/cli`): `lark_cli = "bot-only"`
//! (default), `"user-default"` (explicit opt-in) or `"disabled"` in
//! `[profiles.NAME]`. The worker projects it as a profile-local config
//! directory named by `LARKSUITE_CLI_CONFIG_DIR` in the child's environment,
//! and nothing else (no token, no secret in any environment).

use std::path::PathBuf;

use serde::Deserialize;

use crate::Home;

/// What `lark-cli` run by Codex may act as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LarkCli {
    /// The bot (the profile's app, tenant token); `lark-cli`'s strict mode
    /// `bot` hides its user commands.
    #[default]
    BotOnly,
    /// A user the operator logged in for the profile (`lark-cli auth login`
    /// with the profile's user directory), in private chats and the console;
    /// everywhere else bot-only.
    UserDefault,
    /// No projection: the child gets no `LARKSUITE_CLI_CONFIG_DIR`.
    Disabled,
}

impl LarkCli {
    /// The word config.toml, `/status` and doctor use.
    pub fn as_str(&self) -> &'static str {
        match self {
            LarkCli::BotOnly => "bot-only",
            LarkCli::UserDefault => "user-default",
            LarkCli::Disabled => "disabled",
        }
    }

    /// What a run in a chat of this kind gets: user identity only in a
    /// one-to-one chat (or the console), bot-only in groups, topics and
    /// document comments whatever the preset says.
    pub fn for_chat(self, one_to_one: bool) -> LarkCli {
        match self {
            LarkCli::UserDefault if !one_to_one => LarkCli::BotOnly,
            other => other,
        }
    }
}

/// The `lark-cli` config directory for `preset` in `profile`
/// (`$FCX_HOME/profiles/NAME/lark-cli/bot|user`); `None` when disabled.
/// The bot and user directories are apart so that a group's runs never
/// see the user's configuration.
pub fn config_dir(home: &Home, profile: &str, preset: LarkCli) -> Option<PathBuf> {
    let leaf = match preset {
        LarkCli::BotOnly => "bot",
        LarkCli::UserDefault => "user",
        LarkCli::Disabled => return None,
    };
    Some(home.profile(profile).dir().join("lark-cli").join(leaf))
}

/// Where `lark-cli` keeps its own state for the operator outside fcx
/// (`~/.lark-cli`: its default config; `~/.local/share/lark-cli`: its
/// encrypted store, holding user tokens, on Linux). Hidden from runs that
/// must not act as a user.
pub fn user_state_dirs(home: &Home) -> Vec<PathBuf> {
    vec![
        home.user_home().join(".lark-cli"),
        home.user_home().join(".local/share/lark-cli"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_always_bot_only_and_disabled_has_no_dir() {
        assert_eq!(LarkCli::UserDefault.for_chat(false), LarkCli::BotOnly);
        assert_eq!(LarkCli::UserDefault.for_chat(true), LarkCli::UserDefault);
        assert_eq!(LarkCli::Disabled.for_chat(true), LarkCli::Disabled);
        assert_eq!(LarkCli::BotOnly.for_chat(true), LarkCli::BotOnly);
        let home = Home::new("/h");
        assert_eq!(config_dir(&home, "p", LarkCli::Disabled), None);
        assert_eq!(
            config_dir(&home, "p", LarkCli::BotOnly),
            Some(PathBuf::from("/h/profiles/p/lark-cli/bot"))
        );
        assert_ne!(
            config_dir(&home, "p", LarkCli::BotOnly),
            config_dir(&home, "p", LarkCli::UserDefault)
        );
    }
}
