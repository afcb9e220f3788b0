//! Small pieces of reply text shared by the command handlers.

use fcx_proto::v1::{self as pb, Inbound};

pub(super) fn field(name: &str, value: &str) -> pb::Field {
    pb::Field {
        name: name.into(),
        value: value.into(),
    }
}

/// Fields as a markdown list, for the modes that show no card.
pub(super) fn bullets(fields: &[pb::Field]) -> String {
    fields
        .iter()
        .map(|f| format!("- **{}**: {}", f.name, f.value))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn command_button(command: &str, label: &str, style: pb::ButtonStyle) -> pb::Button {
    pb::Button {
        action: pb::ActionKind::Command as i32,
        label: label.into(),
        value: command.into(),
        style: style as i32,
        note: false,
    }
}

pub(super) fn actor_id(inbound: &Inbound) -> &str {
    inbound.actor.as_ref().map_or("", |a| a.id.as_str())
}

/// "just now", "5 min ago", "3 h ago", "2 d ago".
pub(super) fn ago(ms: i64) -> String {
    let min = ms.max(0) / 60_000;
    match min {
        0 => "just now".into(),
        1..=59 => format!("{min} min ago"),
        60..=2879 => format!("{} h ago", min / 60),
        _ => format!("{} d ago", min / 1440),
    }
}

/// "45s", "2m 05s", "1h 02m".
pub(super) fn elapsed(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A thread id as people read it: its first 8 characters.
pub(super) fn short_thread(id: &str) -> String {
    id.chars().take(8).collect()
}

/// A `/resume` button: the first words of the session's title (or its
/// thread id, short) and its age.
pub(super) fn resume_label(title: &str, thread: &str, age: &str, current: bool) -> String {
    let mut words = String::new();
    for w in title.split_whitespace() {
        if !words.is_empty() && words.chars().count() + 1 + w.chars().count() > 28 {
            words.push('…');
            break;
        }
        if !words.is_empty() {
            words.push(' ');
        }
        words.push_str(w);
    }
    if words.chars().count() > 29 {
        words = words.chars().take(28).collect::<String>() + "…";
    }
    if words.is_empty() {
        words = short_thread(thread);
    }
    let mark = if current { ", current" } else { "" };
    format!("{words} · {age}{mark}")
}

/// Subjects written as ids plus the users the message @mentioned (the
/// gateway leaves the bot out).
pub(super) fn with_mentions(mut ids: Vec<String>, inbound: &Inbound) -> Vec<String> {
    for m in inbound.mentions.iter().filter(|a| !a.id.is_empty()) {
        if !ids.contains(&m.id) {
            ids.push(m.id.clone());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use fcx_proto::v1::Scope;

    fn chat_id_of_scope(scope: &str) -> String {
        Scope::chat_of(scope)
    }

    #[test]
    fn scopes_name_their_chat() {
        assert_eq!(chat_id_of_scope("chat:oc_1"), "oc_1");
        assert_eq!(chat_id_of_scope("topic:oc_2:omt_9"), "oc_2");
        assert_eq!(chat_id_of_scope("comment:x:y:z"), "");
    }

    #[test]
    fn elapsed_reads_naturally() {
        assert_eq!(elapsed(4_200), "4s");
        assert_eq!(elapsed(125_000), "2m 05s");
        assert_eq!(elapsed(3_720_000), "1h 02m");
    }

    #[test]
    fn ages_and_labels_read_naturally() {
        assert_eq!(ago(-5), "just now");
        assert_eq!(ago(5 * 60_000), "5 min ago");
        assert_eq!(ago(3 * 3_600_000), "3 h ago");
        assert_eq!(ago(49 * 3_600_000), "2 d ago");
        assert_eq!(
            resume_label("", "0123456789abcdef", "just now", true),
            "01234567 · just now, current"
        );
        let long = resume_label(
            "fix the flaky login test in the payments service please",
            "t",
            "5 min ago",
            false,
        );
        assert_eq!(long, "fix the flaky login test in… · 5 min ago");
    }

    #[test]
    fn mentions_join_named_ids_once() {
        let inbound = Inbound {
            mentions: vec![
                pb::Actor {
                    id: "ou_b".into(),
                    ..Default::default()
                },
                pb::Actor {
                    id: "ou_a".into(),
                    ..Default::default()
                },
                pb::Actor::default(),
            ],
            ..Default::default()
        };
        assert_eq!(
            with_mentions(vec!["ou_a".into()], &inbound),
            vec!["ou_a".to_string(), "ou_b".to_string()]
        );
    }
}
