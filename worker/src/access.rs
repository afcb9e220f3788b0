//! Who may do what, fail-closed. The decision for one message is a pure
//! function of the sender's role, the chat type, whether the bot was
//! mentioned, whether the chat is enabled, and what the message asks for, so
//! it can be tested as a table.
//!
//! - the owner (configured, or learned from the platform) and admins may use
//!   every command; only the owner manages admins and chooses `full` access,
//!   and a run gets `full` only when every message in it is the owner's
//!   ([`run_cap`]);
//! - private chats: the owner, admins and allowed users; anyone else gets
//!   silence;
//! - groups: only chats on the allowed list, and only when the bot is
//!   mentioned unless the group chose otherwise (`/config mention`); every member of an enabled group is a user there; a
//!   mention in a group that is not enabled gets a one-line hint;
//! - the console surface is the operator at the terminal: the owner;
//! - document comments (only those that mention the bot reach the worker):
//!   the owner, admins and allowed users; anyone else is told, in one line,
//!   that they may not (a comment thread has no "silence" that reads as an
//!   answer).

use std::collections::{BTreeMap, BTreeSet};

use fcx_config::{AccessConfig, AccessMode};
use fcx_proto::v1::ChatType;

use crate::store::AccessOp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    Stranger,
    /// On the allowed-users list (or a member of an enabled group).
    User,
    Admin,
    Owner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chat {
    Private,
    /// Normal group or topic group.
    Group,
    Console,
    /// A comment on a document.
    Document,
}

impl Chat {
    pub(crate) fn from_pb(t: ChatType) -> Option<Chat> {
        match t {
            ChatType::Private => Some(Chat::Private),
            ChatType::Group | ChatType::Topic => Some(Chat::Group),
            ChatType::Console => Some(Chat::Console),
            ChatType::Comment => Some(Chat::Document),
            ChatType::Unspecified => None,
        }
    }
}

/// What a message asks for, as far as access is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// A prompt for Codex.
    Run,
    /// A command any authorized user may use (`/help`, `/status`, `/new`,
    /// `/stop` of the own scope, ...).
    User,
    /// Admin-only commands (`/cd /ws /config /invite user /remove user
    /// /doctor /ps /exit /reconnect`, `/stop` of another scope).
    Admin,
    /// Owner-only (`/invite admin`, `/remove admin`).
    Owner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    /// Acknowledge and do nothing at all; the reason is only logged.
    Silent(&'static str),
    /// Answer with this one line and do nothing else.
    Hint(&'static str),
    /// An authorized user asked for more than their role allows.
    Deny(&'static str),
}

pub(crate) const HINT_GROUP_NOT_ENABLED: &str =
    "This group is not enabled for fcx. An admin can enable it with /invite group.";
pub(crate) const DENY_ADMIN: &str = "Only an admin can use this command here.";
pub(crate) const DENY_OWNER: &str = "Only the owner can use this command.";
pub(crate) const DENY_COMMENT: &str =
    "You are not allowed to use fcx. Ask its owner or an admin to add you.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    pub(crate) role: Role,
    pub(crate) chat: Option<Chat>,
    pub(crate) mentioned: bool,
    /// The group is on the allowed-chats list (ignored outside groups).
    pub(crate) chat_enabled: bool,
    pub(crate) require_mention: bool,
}

/// The decision for one message. Pure: no I/O, no clock.
pub(crate) fn decide(f: Facts, need: Need) -> Decision {
    let Some(chat) = f.chat else {
        return Decision::Silent("unknown chat type");
    };
    let role = match chat {
        Chat::Console => {
            if f.role != Role::Owner {
                return Decision::Silent("the console surface serves only the operator");
            }
            Role::Owner
        }
        Chat::Private => {
            if f.role == Role::Stranger {
                return Decision::Silent("private chat from a user who is not allowed");
            }
            f.role
        }
        Chat::Document => {
            if f.role == Role::Stranger {
                return Decision::Deny(DENY_COMMENT);
            }
            f.role
        }
        Chat::Group => {
            if f.require_mention && !f.mentioned {
                return Decision::Silent("group message without a mention");
            }
            if !f.chat_enabled {
                // Admins must be able to enable the group from inside it;
                // everything else gets the hint.
                if f.role >= Role::Admin && need != Need::Run {
                    f.role
                } else {
                    return Decision::Hint(HINT_GROUP_NOT_ENABLED);
                }
            } else {
                f.role.max(Role::User)
            }
        }
    };
    match need {
        Need::Run | Need::User => Decision::Allow,
        Need::Admin if role >= Role::Admin => Decision::Allow,
        Need::Admin => Decision::Deny(DENY_ADMIN),
        Need::Owner if role == Role::Owner => Decision::Allow,
        Need::Owner => Decision::Deny(DENY_OWNER),
    }
}

/// The most access a run may have given the lowest role among the senders
/// whose text is in it (a merged burst can hold several): `full` only when
/// every one of them is the owner, whatever the scope chose; at most
/// `workspace` otherwise. Pure.
pub(crate) fn run_cap(lowest: Role) -> AccessMode {
    if lowest == Role::Owner {
        AccessMode::Full
    } else {
        AccessMode::Workspace
    }
}

/// Access lists in force: `config ∪ added − removed`, plus the owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lists {
    pub(crate) owner: Option<String>,
    pub(crate) owner_source: &'static str,
    pub(crate) admins: BTreeSet<String>,
    pub(crate) users: BTreeSet<String>,
    pub(crate) chats: BTreeSet<String>,
    /// The profile's default for groups (`access.require_mention_in_group`).
    pub(crate) require_mention: bool,
    /// Groups' own choices (`/config mention`), by chat id.
    pub(crate) mention: BTreeMap<String, bool>,
    /// The profile has no chat platform: every sender reached the worker
    /// through the operator's own local socket.
    pub(crate) local_only: bool,
}

pub(crate) const LIST_ADMINS: &str = "admins";
pub(crate) const LIST_USERS: &str = "users";
pub(crate) const LIST_CHATS: &str = "chats";

impl Lists {
    /// `learned_owner` comes from the platform's app info; the configured
    /// owner wins when both exist.
    pub(crate) fn build(
        cfg: &AccessConfig,
        learned_owner: Option<String>,
        changes: &[(String, String, AccessOp)],
    ) -> Lists {
        let (owner, owner_source) = match (&cfg.owner, learned_owner) {
            (Some(o), _) if !o.is_empty() => (Some(o.clone()), "config"),
            (_, Some(o)) if !o.is_empty() => (Some(o), "platform"),
            _ => (None, "none"),
        };
        let mut l = Lists {
            owner,
            owner_source,
            admins: cfg.admins.iter().cloned().collect(),
            users: cfg.allowed_users.iter().cloned().collect(),
            chats: cfg.allowed_chats.iter().cloned().collect(),
            require_mention: cfg.require_mention_in_group,
            mention: BTreeMap::new(),
            local_only: false,
        };
        for (list, subject, op) in changes {
            let set = match list.as_str() {
                LIST_ADMINS => &mut l.admins,
                LIST_USERS => &mut l.users,
                LIST_CHATS => &mut l.chats,
                _ => continue,
            };
            match op {
                AccessOp::Add => {
                    set.insert(subject.clone());
                }
                AccessOp::Remove => {
                    set.remove(subject);
                }
            }
        }
        l
    }

    /// Whether a message in the group `chat_id` must mention the bot: the
    /// group's own choice, else the profile's.
    pub(crate) fn require_mention_in(&self, chat_id: &str) -> bool {
        self.mention
            .get(chat_id)
            .copied()
            .unwrap_or(self.require_mention)
    }

    pub(crate) fn role(&self, actor_id: &str, chat: Option<Chat>) -> Role {
        // The console surface is reachable only from the operator's terminal
        // (a 0700 socket directory): whoever types there owns the profile.
        if chat == Some(Chat::Console) && actor_id == "console" {
            return Role::Owner;
        }
        if self.local_only {
            return Role::Owner;
        }
        if actor_id.is_empty() {
            return Role::Stranger;
        }
        if self.owner.as_deref() == Some(actor_id) {
            Role::Owner
        } else if self.admins.contains(actor_id) {
            Role::Admin
        } else if self.users.contains(actor_id) {
            Role::User
        } else {
            Role::Stranger
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_alone_runs_with_full_access() {
        assert_eq!(run_cap(Role::Owner), AccessMode::Full);
        for r in [Role::Admin, Role::User, Role::Stranger] {
            assert_eq!(run_cap(r), AccessMode::Workspace, "{r:?}");
        }
    }

    const ROLES: [Role; 4] = [Role::Stranger, Role::User, Role::Admin, Role::Owner];
    const NEEDS: [Need; 4] = [Need::Run, Need::User, Need::Admin, Need::Owner];

    fn rank(n: Need) -> Role {
        match n {
            Need::Run | Need::User => Role::User,
            Need::Admin => Role::Admin,
            Need::Owner => Role::Owner,
        }
    }

    /// Every role × chat type × mention × enabled × need, against the rules
    /// written out independently of `decide`.
    #[test]
    fn table_every_role_chat_mention_and_need() {
        let chats = [
            Some(Chat::Private),
            Some(Chat::Group),
            Some(Chat::Console),
            Some(Chat::Document),
            None,
        ];
        let mut cases = 0;
        for role in ROLES {
            for chat in chats {
                for mentioned in [false, true] {
                    for chat_enabled in [false, true] {
                        for require_mention in [false, true] {
                            for need in NEEDS {
                                let f = Facts {
                                    role,
                                    chat,
                                    mentioned,
                                    chat_enabled,
                                    require_mention,
                                };
                                let got = decide(f, need);
                                let want = expected(f, need);
                                assert_eq!(got, want, "{f:?} {need:?}");
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 5 * 2 * 2 * 2 * 4);
    }

    fn expected(f: Facts, need: Need) -> Decision {
        let by_rank = |effective: Role| {
            if effective >= rank(need) {
                Decision::Allow
            } else if need == Need::Owner {
                Decision::Deny(DENY_OWNER)
            } else {
                Decision::Deny(DENY_ADMIN)
            }
        };
        match f.chat {
            None => Decision::Silent("unknown chat type"),
            Some(Chat::Console) if f.role == Role::Owner => Decision::Allow,
            Some(Chat::Console) => Decision::Silent("the console surface serves only the operator"),
            Some(Chat::Private) if f.role == Role::Stranger => {
                Decision::Silent("private chat from a user who is not allowed")
            }
            Some(Chat::Private) => by_rank(f.role),
            Some(Chat::Document) if f.role == Role::Stranger => Decision::Deny(DENY_COMMENT),
            Some(Chat::Document) => by_rank(f.role),
            Some(Chat::Group) if f.require_mention && !f.mentioned => {
                Decision::Silent("group message without a mention")
            }
            Some(Chat::Group) if !f.chat_enabled => {
                if f.role >= Role::Admin && need != Need::Run {
                    by_rank(f.role)
                } else {
                    Decision::Hint(HINT_GROUP_NOT_ENABLED)
                }
            }
            Some(Chat::Group) => by_rank(f.role.max(Role::User)),
        }
    }

    #[test]
    fn spot_checks() {
        let f = |role, chat, mentioned, enabled| Facts {
            role,
            chat: Some(chat),
            mentioned,
            chat_enabled: enabled,
            require_mention: true,
        };
        // Strangers: silence in private chats, allowed as members of an
        // enabled group, never admin.
        assert!(matches!(
            decide(f(Role::Stranger, Chat::Private, false, false), Need::Run),
            Decision::Silent(_)
        ));
        assert_eq!(
            decide(f(Role::Stranger, Chat::Group, true, true), Need::Run),
            Decision::Allow
        );
        assert_eq!(
            decide(f(Role::Stranger, Chat::Group, true, true), Need::Admin),
            Decision::Deny(DENY_ADMIN)
        );
        assert_eq!(
            decide(f(Role::Stranger, Chat::Group, true, false), Need::Run),
            Decision::Hint(HINT_GROUP_NOT_ENABLED)
        );
        // The owner is never locked out: an admin command in a group that
        // is not enabled yet works, so /invite group can enable it.
        assert_eq!(
            decide(f(Role::Owner, Chat::Group, true, false), Need::Admin),
            Decision::Allow
        );
        assert_eq!(
            decide(f(Role::Owner, Chat::Private, false, false), Need::Owner),
            Decision::Allow
        );
        assert_eq!(
            decide(f(Role::Admin, Chat::Private, false, false), Need::Owner),
            Decision::Deny(DENY_OWNER)
        );
    }

    #[test]
    fn lists_merge_config_with_changes_and_roles_follow() {
        let cfg = AccessConfig {
            owner: None,
            admins: vec!["a1".into()],
            allowed_users: vec!["u1".into(), "u2".into()],
            allowed_chats: vec!["c1".into()],
            require_mention_in_group: true,
        };
        let changes = vec![
            ("users".to_string(), "u3".to_string(), AccessOp::Add),
            ("users".to_string(), "u2".to_string(), AccessOp::Remove),
            ("chats".to_string(), "c2".to_string(), AccessOp::Add),
            ("admins".to_string(), "a1".to_string(), AccessOp::Remove),
        ];
        let l = Lists::build(&cfg, Some("own".into()), &changes);
        assert_eq!(l.owner_source, "platform");
        assert_eq!(l.role("own", Some(Chat::Private)), Role::Owner);
        assert_eq!(l.role("a1", Some(Chat::Private)), Role::Stranger);
        assert_eq!(l.role("u1", Some(Chat::Private)), Role::User);
        assert_eq!(l.role("u2", Some(Chat::Private)), Role::Stranger);
        assert_eq!(l.role("u3", Some(Chat::Private)), Role::User);
        assert!(l.chats.contains("c2") && l.chats.contains("c1"));
        assert_eq!(l.role("console", Some(Chat::Console)), Role::Owner);
        assert_eq!(l.role("console", Some(Chat::Private)), Role::Stranger);
        assert_eq!(l.role("", Some(Chat::Private)), Role::Stranger);
        let cfg_owner = AccessConfig {
            owner: Some("cfg".into()),
            ..cfg
        };
        let l = Lists::build(&cfg_owner, Some("own".into()), &[]);
        assert_eq!(l.owner.as_deref(), Some("cfg"));
        assert_eq!(l.owner_source, "config");
    }

    #[test]
    fn a_groups_own_mention_choice_wins_over_the_profile() {
        let mut l = Lists::build(&AccessConfig::default(), None, &[]);
        assert!(l.require_mention_in("oc_a"));
        l.mention.insert("oc_a".into(), false);
        assert!(!l.require_mention_in("oc_a"));
        assert!(l.require_mention_in("oc_b"));
        l.require_mention = false;
        l.mention.insert("oc_b".into(), true);
        assert!(l.require_mention_in("oc_b"));
        assert!(!l.require_mention_in("oc_c"));
    }
}
