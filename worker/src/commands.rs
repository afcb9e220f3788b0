//! The command router's parser. Commands are recognised before anything
//! reaches the queue, so `/stop` acts at once even while the scope is busy.
//!
//! A message is a command when its first word is `/` followed by letters only
//! (`/stop`, `/new`): `/etc/hosts is broken` stays an ordinary message.

use crate::access::Need;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Timeout {
    Show,
    Minutes(u64),
    Off,
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Users named by @mention or by platform id.
    Users(Vec<String>),
    Admins(Vec<String>),
    /// The chat the command was sent in.
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `/new` or `/reset`: stop the scope's run and start a fresh Codex thread.
    New,
    /// `/new group [name]`: ask the gateway for a new group chat.
    NewGroup(Option<String>),
    /// `/resume`: list compatible sessions.
    Resume,
    /// `/resume use <nonce>`.
    ResumeUse(String),
    Cd(String),
    WsList,
    WsSave(String),
    WsUse(String),
    WsRemove(String),
    /// `/stop` (own scope) or `/stop <scope or run id>` (admin).
    Stop(Option<String>),
    Timeout(Timeout),
    Status,
    Help,
    Invite(Target),
    Remove(Target),
    Ps,
    Exit(String),
    Reconnect,
    Doctor,
    /// `/config` shows; `/config <key> <value>` sets.
    Config(Option<(String, String)>),
    /// `/sendfile <path>`: send a file from the workspace to the chat.
    SendFile(String),
    /// A `/word` that is not a command: answered with a hint, never run.
    Unknown(String),
    /// A known command used the wrong way.
    Usage {
        command: String,
        usage: String,
    },
}

impl Command {
    /// The role a command needs (see `access`).
    pub(crate) fn need(&self) -> Need {
        match self {
            Command::Cd(_)
            | Command::WsList
            | Command::WsSave(_)
            | Command::WsUse(_)
            | Command::WsRemove(_)
            | Command::Config(_)
            | Command::Doctor
            | Command::Ps
            | Command::Exit(_)
            | Command::Reconnect
            | Command::Stop(Some(_))
            | Command::Invite(Target::Users(_) | Target::Group)
            | Command::Remove(Target::Users(_) | Target::Group) => Need::Admin,
            Command::Invite(Target::Admins(_)) | Command::Remove(Target::Admins(_)) => Need::Owner,
            _ => Need::User,
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Command::New => "new",
            Command::NewGroup(_) => "new",
            Command::Resume | Command::ResumeUse(_) => "resume",
            Command::Cd(_) => "cd",
            Command::WsList | Command::WsSave(_) | Command::WsUse(_) | Command::WsRemove(_) => "ws",
            Command::Stop(_) => "stop",
            Command::Timeout(_) => "timeout",
            Command::Status => "status",
            Command::Help => "help",
            Command::Invite(_) => "invite",
            Command::Remove(_) => "remove",
            Command::Ps => "ps",
            Command::Exit(_) => "exit",
            Command::Reconnect => "reconnect",
            Command::Doctor => "doctor",
            Command::Config(_) => "config",
            Command::SendFile(_) => "sendfile",
            Command::Unknown(_) => "unknown",
            Command::Usage { command, .. } => command,
        }
    }
}

/// Every command as `/help` shows it: usage, what it does, who may use it.
pub(crate) const HELP: &[(&str, &str)] = &[
    (
        "/new",
        "stop the current run and start a fresh Codex session",
    ),
    ("/reset", "same as /new"),
    (
        "/new group [name]",
        "create a new group chat with you that starts in this workspace",
    ),
    (
        "/resume",
        "list earlier sessions that can continue here (same workspace and policy)",
    ),
    ("/resume use <code>", "continue the session with that code"),
    ("/stop", "stop the current run; what it did so far is kept"),
    (
        "/timeout <minutes>|off|default",
        "stop a run after that long without Codex activity (here only)",
    ),
    (
        "/status",
        "profile, workspace, session, sandbox, queue and active run",
    ),
    ("/help", "this list"),
    (
        "/sendfile <path>",
        "send a file from the workspace to this chat (images show inline)",
    ),
    (
        "/cd <path>",
        "admin: switch this chat's workspace (starts a new session)",
    ),
    (
        "/ws list|save <name>|use <name>|remove <name>",
        "admin: named workspaces",
    ),
    (
        "/config",
        "admin: show this chat's settings (a form on cards)",
    ),
    (
        "/config access read-only|workspace|full",
        "admin: this chat's access (full: owner only; starts a new session)",
    ),
    (
        "/config reply_mode card|markdown|text",
        "admin: how runs and answers appear here",
    ),
    (
        "/config tool_display full|summary|off",
        "admin: tool calls on run cards: each with output, one folded list, or none",
    ),
    (
        "/config mention required|not_required",
        "admin, groups: whether members must @mention me",
    ),
    (
        "/config idle_timeout <minutes>|off|default",
        "admin: same as /timeout",
    ),
    (
        "/invite user|admin @someone",
        "admin: allow someone to use fcx in private chat (admin: owner only)",
    ),
    ("/invite group", "admin: enable fcx in this group"),
    ("/remove user|admin @someone", "admin: take that away again"),
    ("/remove group", "admin: disable fcx in this group"),
    ("/ps", "admin: runs in progress across all chats"),
    ("/exit <run id>", "admin: stop a run in any chat"),
    ("/stop <run id>", "admin: same as /exit"),
    ("/reconnect", "admin: reconnect to the chat platform"),
    (
        "/doctor",
        "admin: check Codex, the model API, workspace and state (redacted)",
    ),
];

fn usage(name: &str, usage: &str) -> Command {
    Command::Usage {
        command: name.into(),
        usage: format!("Usage: {usage}"),
    }
}

/// Names are short, typeable and safe in a message: letters, digits, `-`, `_`.
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
}

pub(crate) fn parse(text: &str) -> Option<Command> {
    let t = text.trim_start();
    let rest = t.strip_prefix('/')?;
    let word_len = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let word = &rest[..word_len];
    if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let args_s = rest[word_len..].trim();
    let args: Vec<&str> = args_s.split_whitespace().collect();
    let word = word.to_ascii_lowercase();
    let no_args = |cmd: Command, name: &str| {
        if args.is_empty() {
            cmd
        } else {
            Command::Usage {
                command: name.to_string(),
                usage: format!("/{name} takes no arguments"),
            }
        }
    };
    Some(match word.as_str() {
        "new" | "reset" => match args.as_slice() {
            [] => Command::New,
            ["group"] if word == "new" => Command::NewGroup(None),
            ["group", ..] if word == "new" => {
                let name = args_s["group".len()..].trim().to_string();
                if name.chars().count() > 60 {
                    usage("new", "/new group [name] (at most 60 characters)")
                } else {
                    Command::NewGroup(Some(name))
                }
            }
            _ => Command::Usage {
                command: "new".into(),
                usage: format!("Usage: /{word} (or /new group [name])"),
            },
        },
        "resume" => match args.as_slice() {
            [] => Command::Resume,
            ["use", code] => Command::ResumeUse(code.to_string()),
            _ => usage("resume", "/resume, then /resume use <code>"),
        },
        "cd" => {
            if args_s.is_empty() {
                usage("cd", "/cd <path>")
            } else {
                Command::Cd(args_s.to_string())
            }
        }
        "ws" => match args.as_slice() {
            [] | ["list"] => Command::WsList,
            ["save", n] if valid_name(n) => Command::WsSave(n.to_string()),
            ["use", n] if valid_name(n) => Command::WsUse(n.to_string()),
            ["remove", n] if valid_name(n) => Command::WsRemove(n.to_string()),
            _ => usage(
                "ws",
                "/ws list | /ws save <name> | /ws use <name> | /ws remove <name> (names: letters, digits, - _ .)",
            ),
        },
        "stop" => match args.as_slice() {
            [] => Command::Stop(None),
            [target] => Command::Stop(Some(target.to_string())),
            _ => usage("stop", "/stop, or /stop <run id> (admin)"),
        },
        "exit" => match args.as_slice() {
            [id] => Command::Exit(id.to_string()),
            _ => usage("exit", "/exit <run id> (see /ps)"),
        },
        "timeout" => match args.as_slice() {
            [] => Command::Timeout(Timeout::Show),
            ["off"] => Command::Timeout(Timeout::Off),
            ["default"] => Command::Timeout(Timeout::Default),
            [m] => match m.parse::<u64>() {
                Ok(n) if (1..=24 * 60).contains(&n) => Command::Timeout(Timeout::Minutes(n)),
                _ => usage("timeout", "/timeout <minutes 1-1440> | off | default"),
            },
            _ => usage("timeout", "/timeout <minutes 1-1440> | off | default"),
        },
        "invite" | "remove" => {
            let target = match args.as_slice() {
                ["group"] => Some(Target::Group),
                ["user", who @ ..] => Some(Target::Users(subjects(who))),
                ["admin", who @ ..] => Some(Target::Admins(subjects(who))),
                _ => None,
            };
            match target {
                Some(t) if word == "invite" => Command::Invite(t),
                Some(t) => Command::Remove(t),
                None => Command::Usage {
                    command: word.clone(),
                    usage: format!(
                        "Usage: /{word} user @someone | /{word} admin @someone | /{word} group"
                    ),
                },
            }
        }
        "config" => match args.as_slice() {
            [] => Command::Config(None),
            [k, v] => Command::Config(Some((k.to_ascii_lowercase(), v.to_string()))),
            _ => usage(
                "config",
                "/config, or /config <access|reply_mode|tool_display|mention|idle_timeout> <value>",
            ),
        },
        "sendfile" => {
            if args_s.is_empty() {
                usage("sendfile", "/sendfile <path inside the workspace>")
            } else {
                Command::SendFile(args_s.to_string())
            }
        }
        "status" => no_args(Command::Status, "status"),
        "help" => Command::Help,
        "ps" => no_args(Command::Ps, "ps"),
        "reconnect" => no_args(Command::Reconnect, "reconnect"),
        "doctor" => no_args(Command::Doctor, "doctor"),
        _ => Command::Unknown(word),
    })
}

/// Raw ids written after `/invite user`; `@name` words are mentions, which
/// the gateway resolves to ids (see the orchestrator).
fn subjects(words: &[&str]) -> Vec<String> {
    words
        .iter()
        .filter(|w| !w.starts_with('@'))
        .map(|w| w.to_string())
        .collect()
}

/// What means nothing on the console, which `/help` leaves out there: no
/// platform to reconnect to, nobody to invite, no groups, nothing to send,
/// and one way of showing a run (the terminal, whatever the reply mode).
pub(crate) const NOT_ON_CONSOLE: &[&str] = &[
    "/new group",
    "/sendfile",
    "/invite",
    "/remove",
    "/reconnect",
    "/config reply_mode",
    "/config tool_display",
    "/config mention",
];

/// Whether the `/help` line `cmd` is one [`NOT_ON_CONSOLE`] names.
pub(crate) fn not_on_console(cmd: &str) -> bool {
    NOT_ON_CONSOLE.iter().any(|p| cmd.starts_with(p))
}

/// `/help`'s list; on the console without what does not work there.
pub(crate) fn help_markdown(console: bool) -> String {
    let mut s = String::from("**Commands**\n");
    for (cmd, what) in HELP {
        if console && not_on_console(cmd) {
            continue;
        }
        s.push_str(&format!("- `{cmd}`: {what}\n"));
    }
    s.push_str("\nAnything else you write goes to Codex.");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_leaves_paths_alone() {
        assert_eq!(parse("/stop"), Some(Command::Stop(None)));
        assert_eq!(parse("  /STOP  "), Some(Command::Stop(None)));
        assert_eq!(parse("/new"), Some(Command::New));
        assert_eq!(parse("/reset"), Some(Command::New));
        assert_eq!(parse("/help me"), Some(Command::Help));
        assert_eq!(parse("/status"), Some(Command::Status));
        assert_eq!(parse("/etc/hosts is broken"), None);
        assert_eq!(parse("please /stop"), None);
        assert_eq!(parse("/"), None);
        assert_eq!(parse("/123"), None);
        assert_eq!(
            parse("/frobnicate"),
            Some(Command::Unknown("frobnicate".into()))
        );
        assert!(matches!(
            parse("/stop now please"),
            Some(Command::Usage { .. })
        ));
        assert!(matches!(parse("/status x"), Some(Command::Usage { .. })));
    }

    #[test]
    fn parses_every_command_with_its_arguments() {
        let cases: Vec<(&str, Command)> = vec![
            ("/new group", Command::NewGroup(None)),
            (
                "/new group Big Plan",
                Command::NewGroup(Some("Big Plan".into())),
            ),
            ("/resume", Command::Resume),
            ("/resume use k3x9", Command::ResumeUse("k3x9".into())),
            ("/cd ../other dir", Command::Cd("../other dir".into())),
            (
                "/sendfile out/report 1.pdf",
                Command::SendFile("out/report 1.pdf".into()),
            ),
            ("/ws", Command::WsList),
            ("/ws list", Command::WsList),
            ("/ws save web", Command::WsSave("web".into())),
            ("/ws use web", Command::WsUse("web".into())),
            ("/ws remove web", Command::WsRemove("web".into())),
            ("/stop r1234", Command::Stop(Some("r1234".into()))),
            ("/timeout 15", Command::Timeout(Timeout::Minutes(15))),
            ("/timeout off", Command::Timeout(Timeout::Off)),
            ("/timeout default", Command::Timeout(Timeout::Default)),
            ("/timeout", Command::Timeout(Timeout::Show)),
            (
                "/invite user @Ann ou_1",
                Command::Invite(Target::Users(vec!["ou_1".into()])),
            ),
            (
                "/invite admin ou_2",
                Command::Invite(Target::Admins(vec!["ou_2".into()])),
            ),
            ("/invite group", Command::Invite(Target::Group)),
            (
                "/remove user ou_1",
                Command::Remove(Target::Users(vec!["ou_1".into()])),
            ),
            ("/remove group", Command::Remove(Target::Group)),
            ("/ps", Command::Ps),
            ("/exit r1", Command::Exit("r1".into())),
            ("/reconnect", Command::Reconnect),
            ("/doctor", Command::Doctor),
            ("/config", Command::Config(None)),
            (
                "/config access read-only",
                Command::Config(Some(("access".into(), "read-only".into()))),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Some(want), "{text}");
            let name = parse(text)
                .map(|c| c.name().to_string())
                .unwrap_or_default();
            assert!(
                fcx_proto::v1::CommandName::from_word(&name).is_some(),
                "{text}: {name} is not a CommandName"
            );
        }
        for bad in [
            "/cd",
            "/sendfile",
            "/ws save",
            "/ws save a/b",
            "/ws frob x",
            "/resume use",
            "/resume x y z",
            "/timeout 0",
            "/timeout soon",
            "/invite",
            "/invite bob",
            "/remove",
            "/exit",
            "/config a b c",
            "/ps now",
            "/doctor x",
            "/reset group",
        ] {
            match parse(bad) {
                Some(Command::Usage { usage, command }) => {
                    assert!(usage.contains('/'), "{bad}");
                    assert!(
                        fcx_proto::v1::CommandName::from_word(&command).is_some(),
                        "{bad}: {command} is not a CommandName"
                    );
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn admin_only_commands_need_admin() {
        for t in [
            "/cd x",
            "/ws",
            "/config",
            "/invite user u",
            "/remove user u",
            "/invite group",
            "/doctor",
            "/ps",
            "/exit r1",
            "/reconnect",
            "/stop r1",
        ] {
            let c = parse(t).expect("command");
            assert_eq!(c.need(), Need::Admin, "{t}");
        }
        for t in ["/invite admin u", "/remove admin u"] {
            assert_eq!(parse(t).expect("command").need(), Need::Owner, "{t}");
        }
        for t in [
            "/new",
            "/stop",
            "/status",
            "/help",
            "/resume",
            "/timeout 5",
            "/new group",
            "/sendfile a.txt",
        ] {
            assert_eq!(parse(t).expect("command").need(), Need::User, "{t}");
        }
    }

    #[test]
    fn the_consoles_help_leaves_out_what_does_not_work_there() {
        let h = help_markdown(true);
        for c in NOT_ON_CONSOLE {
            assert!(!h.contains(&format!("`{c}")), "{c} offered on the console");
        }
        for c in [
            "/new`",
            "/stop`",
            "/cd",
            "/config access",
            "/doctor",
            "/status",
        ] {
            assert!(
                h.contains(&format!("`{c}")),
                "{c} missing from the console's /help"
            );
        }
    }

    #[test]
    fn help_lists_every_command() {
        let h = help_markdown(false);
        for c in [
            "/new",
            "/reset",
            "/new group",
            "/resume",
            "/cd",
            "/ws",
            "/stop",
            "/timeout",
            "/status",
            "/help",
            "/invite",
            "/remove",
            "/ps",
            "/exit",
            "/reconnect",
            "/doctor",
            "/config",
            "/config access",
            "/config reply_mode",
            "/config tool_display",
            "/config mention",
            "/config idle_timeout",
            "/sendfile",
        ] {
            assert!(h.contains(&format!("`{c}")), "{c} missing from /help");
        }
    }
}
