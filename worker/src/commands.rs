//! The command router's parser. Commands are recognised before anything
//! reaches the queue, so `/stop` acts at once even while the scope is busy.
//!
//! A message is a command when its first word is `/` followed by letters only
//! (`/stop`, `/new`): `/etc/hosts is broken` stays an ordinary message.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/new` or `/reset`: stop the scope's run and start a fresh Codex thread.
    New,
    /// `/stop`: stop the scope's active run.
    Stop,
    Help,
    Status,
    /// A `/word` that is not a command: answered with a hint, never run.
    Unknown(String),
    /// A known command with arguments it does not take.
    Usage {
        command: String,
        usage: String,
    },
}

/// One line per command, as `/help` shows it.
pub const HELP: &[(&str, &str)] = &[
    (
        "/new",
        "stop the current run and start a fresh Codex session",
    ),
    ("/reset", "same as /new"),
    ("/stop", "stop the current run; what it did so far is kept"),
    (
        "/status",
        "profile, workspace, session, sandbox, queue and active run",
    ),
    ("/help", "this list"),
];

pub fn parse(text: &str) -> Option<Command> {
    let t = text.trim_start();
    let rest = t.strip_prefix('/')?;
    let word_len = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let word = &rest[..word_len];
    if word.is_empty() || !word.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let args = rest[word_len..].trim();
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
        "new" | "reset" => no_args(Command::New, &word),
        "stop" => no_args(Command::Stop, "stop"),
        "help" => Command::Help,
        "status" => no_args(Command::Status, "status"),
        _ => Command::Unknown(word),
    })
}

pub fn help_markdown() -> String {
    let mut s = String::from("**Commands**\n");
    for (cmd, what) in HELP {
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
        assert_eq!(parse("/stop"), Some(Command::Stop));
        assert_eq!(parse("  /STOP  "), Some(Command::Stop));
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
        assert!(matches!(parse("/stop now"), Some(Command::Usage { .. })));
    }
}
