//! The lowercase words closed sets are written as where people see or type
//! them (config files, `/config`, fcxctl output). The wire carries the enums;
//! these are the only translations between the two.

use crate::v1::{
    ApprovalDecision, AttachmentKind, ButtonStyle, CommandName, ConfigKey, FileChangeKind,
    OwnerSource, Platform, ProcessKind, ReplyMode, RunnerKind, Sandbox, ThreadOp, ToolDisplay,
    WorkerState,
};

macro_rules! words {
    ($ty:ident { $($variant:ident => $word:literal),* $(,)? }) => {
        impl $ty {
            /// The word for this value ("" for UNSPECIFIED).
            pub fn word(self) -> &'static str {
                match self {
                    $($ty::$variant => $word,)*
                    $ty::Unspecified => "",
                }
            }

            /// The value a word names; `None` for an unknown word.
            pub fn from_word(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($ty::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

words!(ReplyMode { Card => "card", Markdown => "markdown", Text => "text" });
words!(ToolDisplay { Full => "full", Summary => "summary", Off => "off" });
words!(FileChangeKind { Add => "add", Delete => "delete", Update => "update" });
words!(ButtonStyle { Default => "default", Primary => "primary", Danger => "danger" });
words!(OwnerSource { None => "none", Config => "config", Platform => "platform" });
words!(ConfigKey {
    ReplyMode => "reply_mode",
    ToolDisplay => "tool_display",
    Access => "access",
    Mention => "mention",
    IdleTimeout => "idle_timeout",
    DuringRun => "during_run",
});
words!(ApprovalDecision {
    Approve => "approve",
    ApproveForSession => "approve_for_session",
    Deny => "deny",
});
words!(ThreadOp { Fork => "fork", Archive => "archive" });
words!(WorkerState {
    Starting => "starting",
    Ready => "ready",
    Backoff => "backoff",
    Stopping => "stopping",
    Stopped => "stopped",
});
words!(AttachmentKind {
    Image => "image",
    File => "file",
    Audio => "audio",
    Video => "video",
    Sticker => "sticker",
});
words!(ProcessKind { Fcxd => "fcxd", Worker => "worker", Codex => "codex" });
words!(Platform { Feishu => "feishu", Lark => "lark" });
words!(RunnerKind { Exec => "exec", AppServer => "app-server" });
words!(Sandbox {
    ReadOnly => "read-only",
    WorkspaceWrite => "workspace-write",
    DangerFullAccess => "danger-full-access",
});
words!(CommandName {
    Help => "help",
    Status => "status",
    New => "new",
    Resume => "resume",
    Cd => "cd",
    Ws => "ws",
    Stop => "stop",
    Exit => "exit",
    Timeout => "timeout",
    Invite => "invite",
    Remove => "remove",
    Ps => "ps",
    Reconnect => "reconnect",
    Doctor => "doctor",
    Config => "config",
    Unknown => "unknown",
    Message => "message",
    Approval => "approval",
    Sendfile => "sendfile",
    Late => "late",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for m in [ReplyMode::Card, ReplyMode::Markdown, ReplyMode::Text] {
            assert_eq!(ReplyMode::from_word(m.word()), Some(m));
        }
        assert_eq!(ReplyMode::Unspecified.word(), "");
        assert_eq!(ReplyMode::from_word(""), None);
        assert_eq!(
            ConfigKey::from_word("idle_timeout"),
            Some(ConfigKey::IdleTimeout)
        );
        assert_eq!(WorkerState::Ready.word(), "ready");
        assert_eq!(ProcessKind::from_word("codex"), Some(ProcessKind::Codex));
        assert_eq!(ToolDisplay::from_word("loud"), None);
        assert_eq!(Sandbox::from_word("read-only"), Some(Sandbox::ReadOnly));
        assert_eq!(RunnerKind::AppServer.word(), "app-server");
        assert_eq!(Platform::from_word("lark"), Some(Platform::Lark));
        assert_eq!(CommandName::from_word("ws"), Some(CommandName::Ws));
    }
}
