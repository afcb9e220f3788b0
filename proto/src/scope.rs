//! The scope grammar (DESIGN.md §3), read and written only here: the gateway
//! builds keys with [`Scope::key`] and both sides read them with
//! [`Scope::parse`].

use crate::v1::{Scope, ScopeKind};

impl Scope {
    /// A whole chat: `chat:<chat_id>`.
    pub fn chat(chat_id: impl Into<String>) -> Self {
        Scope {
            kind: ScopeKind::Chat as i32,
            chat_id: chat_id.into(),
            thread_id: String::new(),
        }
    }

    /// One topic of a topic group: `topic:<chat_id>:<thread_id>`.
    pub fn topic(chat_id: impl Into<String>, thread_id: impl Into<String>) -> Self {
        Scope {
            kind: ScopeKind::Topic as i32,
            chat_id: chat_id.into(),
            thread_id: thread_id.into(),
        }
    }

    /// The scope a key names; `None` for anything that is not a well-formed
    /// key of a kind this build knows.
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(chat) = key.strip_prefix("chat:") {
            return (!chat.is_empty() && !chat.contains(':')).then(|| Scope::chat(chat));
        }
        if let Some(rest) = key.strip_prefix("topic:") {
            let (chat, thread) = rest.split_once(':')?;
            return (!chat.is_empty() && !thread.is_empty() && !thread.contains(':'))
                .then(|| Scope::topic(chat, thread));
        }
        None
    }

    /// The wire and storage form; `parse(key())` gives the scope back.
    pub fn key(&self) -> String {
        match self.kind() {
            ScopeKind::Topic => format!("topic:{}:{}", self.chat_id, self.thread_id),
            ScopeKind::Chat | ScopeKind::Unspecified => format!("chat:{}", self.chat_id),
        }
    }

    /// A topic (thread) scope: replies go into the thread.
    pub fn is_topic(&self) -> bool {
        self.kind() == ScopeKind::Topic
    }

    /// The chat id inside a key, or "" when the key is not a chat scope.
    pub fn chat_of(key: &str) -> String {
        Scope::parse(key).map(|s| s.chat_id).unwrap_or_default()
    }

    /// Whether a key names a topic scope.
    pub fn key_is_topic(key: &str) -> bool {
        Scope::parse(key).is_some_and(|s| s.is_topic())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for key in ["chat:oc_1", "chat:console", "topic:oc_1:omt_2"] {
            let s = Scope::parse(key).expect(key);
            assert_eq!(s.key(), key);
        }
        let t = Scope::parse("topic:oc_1:omt_2").expect("topic");
        assert!(t.is_topic());
        assert_eq!(
            (t.chat_id.as_str(), t.thread_id.as_str()),
            ("oc_1", "omt_2")
        );
        assert!(!Scope::parse("chat:oc_1").expect("chat").is_topic());
        assert_eq!(Scope::topic("a", "b").key(), "topic:a:b");
        assert_eq!(Scope::chat("a").key(), "chat:a");
    }

    #[test]
    fn malformed_keys_are_refused() {
        for key in [
            "",
            "chat:",
            "chat:a:b",
            "topic:",
            "topic:a",
            "topic::b",
            "topic:a:",
            "topic:a:b:c",
            "doc:x",
            "oc_1",
        ] {
            assert_eq!(Scope::parse(key), None, "{key}");
        }
        assert_eq!(Scope::chat_of("topic:oc_1:omt_2"), "oc_1");
        assert_eq!(Scope::chat_of("chat:oc_1"), "oc_1");
        assert_eq!(Scope::chat_of("nonsense"), "");
        assert!(Scope::key_is_topic("topic:a:b"));
        assert!(!Scope::key_is_topic("chat:a"));
    }
}
