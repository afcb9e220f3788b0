//! What a run's final card offers for its Codex thread: Fork and Archive
//! buttons (app-server runner: they need `thread/fork` / `thread/archive`),
//! and, for the owner only, the line that continues the thread in a
//! terminal (it names paths on the host).

use fcx_config::{AuthMode, Home, Profile, RunnerKind};
use fcx_proto::v1::{self as pb, ThreadOp};

use crate::access::{Chat, Lists, Role};
use crate::store::QueuedMessage;

/// The buttons for `thread_id` (none without one, or under exec).
pub(crate) fn buttons(profile: &Profile, thread_id: &str) -> Vec<pb::Button> {
    if thread_id.is_empty() || profile.codex.runner != RunnerKind::AppServer {
        return Vec::new();
    }
    let button = |op: ThreadOp, label: &str, style: pb::ButtonStyle| pb::Button {
        action: pb::ActionKind::Thread as i32,
        label: label.into(),
        value: format!("{}/{thread_id}", op.word()),
        style: style as i32,
        note: false,
    };
    vec![
        button(ThreadOp::Fork, "Fork", pb::ButtonStyle::Default),
        button(ThreadOp::Archive, "Archive", pb::ButtonStyle::Default),
    ]
}

/// `cd <workspace> && CODEX_HOME=<home> codex resume <thread>` when every
/// message of the run is the owner's; "" otherwise. The home is the
/// scope's own, where the thread is.
pub(crate) fn terminal_line(
    profile: &Profile,
    home: &Home,
    scope: &str,
    lists: &Lists,
    messages: &[QueuedMessage],
    workspace: &str,
    thread_id: &str,
) -> String {
    let owners_only = !messages.is_empty()
        && messages.iter().all(|m| {
            let actor = m.inbound.actor.as_ref().map_or("", |a| a.id.as_str());
            lists.role(actor, Chat::from_pb(m.inbound.chat_type())) == Role::Owner
        });
    if !owners_only || thread_id.is_empty() || workspace.is_empty() {
        return String::new();
    }
    let codex_home = match profile.codex.auth {
        AuthMode::ApiKey | AuthMode::CodexHome => Some(
            home.profile(&profile.name)
                .scope_codex_home(&fcx_proto::v1::Scope::continuity_of(scope)),
        ),
        AuthMode::InheritUser => None,
    };
    let mut line = format!("cd {} && ", quote(workspace));
    if let Some(h) = codex_home {
        line.push_str(&format!("CODEX_HOME={} ", quote(&h.display().to_string())));
    }
    line.push_str(&format!(
        "{} resume {}",
        quote(&profile.codex.binary),
        quote(thread_id)
    ));
    line
}

/// One shell word: as is when plainly safe, else single-quoted.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_anything_odd_are_quoted_for_the_shell() {
        assert_eq!(quote("/home/a/ws"), "/home/a/ws");
        assert_eq!(quote("/home/a b/it's"), "'/home/a b/it'\\''s'");
        assert_eq!(quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(quote(""), "''");
    }
}
