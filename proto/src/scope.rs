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
            ..Default::default()
        }
    }

    /// One topic of a topic group: `topic:<chat_id>:<thread_id>`.
    pub fn topic(chat_id: impl Into<String>, thread_id: impl Into<String>) -> Self {
        Scope {
            kind: ScopeKind::Topic as i32,
            chat_id: chat_id.into(),
            thread_id: thread_id.into(),
            ..Default::default()
        }
    }

    /// One run answering a mention in a document comment:
    /// `comment:<document>:<comment>:<nonce>` (the parts are hashes and a
    /// nonce the gateway chose, never platform tokens).
    pub fn comment(
        document: impl Into<String>,
        comment: impl Into<String>,
        nonce: impl Into<String>,
    ) -> Self {
        Scope {
            kind: ScopeKind::Comment as i32,
            document: document.into(),
            comment: comment.into(),
            nonce: nonce.into(),
            ..Default::default()
        }
    }

    /// A document's continuity: `doc:<document>`.
    pub fn doc(document: impl Into<String>) -> Self {
        Scope {
            kind: ScopeKind::Doc as i32,
            document: document.into(),
            ..Default::default()
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
        if let Some(rest) = key.strip_prefix("comment:") {
            let mut parts = rest.split(':');
            let (Some(d), Some(c), Some(n), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            return (!d.is_empty() && !c.is_empty() && !n.is_empty())
                .then(|| Scope::comment(d, c, n));
        }
        if let Some(doc) = key.strip_prefix("doc:") {
            return (!doc.is_empty() && !doc.contains(':')).then(|| Scope::doc(doc));
        }
        None
    }

    /// The wire and storage form; `parse(key())` gives the scope back.
    pub fn key(&self) -> String {
        match self.kind() {
            ScopeKind::Topic => format!("topic:{}:{}", self.chat_id, self.thread_id),
            ScopeKind::Comment => {
                format!("comment:{}:{}:{}", self.document, self.comment, self.nonce)
            }
            ScopeKind::Doc => format!("doc:{}", self.document),
            ScopeKind::Chat | ScopeKind::Unspecified => format!("chat:{}", self.chat_id),
        }
    }

    /// The scope whose Codex thread (and settings) a run in this scope
    /// continues: a comment run continues its document's; every other
    /// scope its own.
    pub fn continuity(&self) -> Scope {
        match self.kind() {
            ScopeKind::Comment => Scope::doc(&self.document),
            _ => self.clone(),
        }
    }

    /// [`Scope::continuity`] of a key, as a key; an unknown key is its own.
    pub fn continuity_of(key: &str) -> String {
        match Scope::parse(key) {
            Some(s) => s.continuity().key(),
            None => key.to_string(),
        }
    }

    /// Whether a key names a document-comment run.
    pub fn key_is_comment(key: &str) -> bool {
        Scope::parse(key).is_some_and(|s| s.kind() == ScopeKind::Comment)
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
        let c = Scope::parse("comment:d1:c2:n3").expect("comment");
        assert_eq!(c.key(), "comment:d1:c2:n3");
        assert_eq!(c.continuity().key(), "doc:d1");
        assert_eq!(Scope::continuity_of("comment:d1:c2:n3"), "doc:d1");
        assert_eq!(Scope::continuity_of("chat:oc_1"), "chat:oc_1");
        assert!(Scope::key_is_comment("comment:d1:c2:n3"));
        assert!(!Scope::key_is_comment("doc:d1"));
        assert_eq!(Scope::parse("doc:d1").expect("doc").key(), "doc:d1");
        assert_eq!(Scope::chat_of("comment:d1:c2:n3"), "");
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
            "doc:",
            "doc:x:y",
            "comment:a:b",
            "comment:a:b:c:d",
            "comment::b:c",
            "comment:a:b:",
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
