//! Command cards: the replies that offer more than text (`/help`, `/status`,
//! `/config` with its form), and the clicks that come back from them
//! (`Act` with COMMAND, CONFIG or RESUME). A click is checked exactly like
//! the typed command it stands for, plus the policy fingerprint the card
//! was made under. A child module of the orchestrator, like the router.

use fcx_config::AccessMode;
use fcx_proto::v1::{self as pb, Inbound};

use super::router::{actor_id, field, short_thread};
use super::{Inner, StopReason};
use crate::access::{self, Chat, Decision, Role};
use crate::commands::{self, Command};
use crate::policy;
use crate::settings::{self, Change, Current, Idle, Key, Source};
use crate::store::ScopeSettings;
use crate::util::{now_ms, short_id};

/// What a click on a card made before the scope's policy changed gets.
pub const STALE_CARD: &str =
    "This card is out of date: the workspace or access changed. Send the command again.";
const NOT_ALLOWED: &str = "You may not use fcx here.";
const NOT_A_COMMAND: &str = "Only a command (starting with /) can run from a card.";

/// Argument-less commands `/help` offers as buttons, in this order; each
/// shown only to those who may use it.
const HELP_BUTTONS: &[(&str, &str)] = &[
    ("/status", "Status"),
    ("/new", "New session"),
    ("/stop", "Stop"),
    ("/resume", "Sessions"),
    ("/config", "Config"),
    ("/ws list", "Workspaces"),
    ("/ps", "Runs"),
    ("/doctor", "Doctor"),
];

fn command_button(command: &str, label: &str, style: &str) -> pb::Button {
    pb::Button {
        action: pb::ActionKind::Command as i32,
        label: label.into(),
        value: command.into(),
        style: style.into(),
    }
}

fn bullets(fields: &[pb::Field]) -> String {
    fields
        .iter()
        .map(|f| format!("- **{}**: {}", f.name, f.value))
        .collect::<Vec<_>>()
        .join("\n")
}

/// "45s", "2m 05s", "1h 02m".
fn elapsed(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl Inner {
    /// Whether `inbound`'s sender could type `line` in its chat.
    fn may_use(&self, facts: access::Facts, line: &str) -> bool {
        commands::parse(line).is_some_and(|c| access::decide(facts, c.need()) == Decision::Allow)
    }

    pub(super) fn help_reply(&self, inbound: &Inbound) {
        let facts = self.facts(inbound);
        let buttons = HELP_BUTTONS
            .iter()
            .filter(|(line, _)| self.may_use(facts, line))
            .map(|(line, label)| {
                let style = if *line == "/status" {
                    "primary"
                } else {
                    "default"
                };
                command_button(line, label, style)
            })
            .collect();
        self.send_reply(
            inbound,
            pb::CommandReply {
                command: "help".into(),
                title: "Help".into(),
                body: commands::help_markdown(),
                ok: true,
                buttons,
                ..Default::default()
            },
        );
    }

    pub(super) fn status_reply(&self, inbound: &Inbound) {
        let scope = inbound.scope.as_str();
        let policy = self.policy(scope);
        let settings = self.settings(scope);
        let session = self.store.session(scope).ok().flatten();
        let (active, queued_here, queued_all) = {
            let st = self.lock();
            let sc = st.scopes.get(scope);
            (
                sc.and_then(|s| s.active.as_ref())
                    .map(|a| (a.run_id.clone(), a.started_at_ms)),
                sc.map_or(0, |s| s.queued.len()),
                st.queued,
            )
        };
        let mut fields = vec![field("profile", &self.profile.name)];
        match &policy {
            Ok(p) => {
                fields.push(field("workspace", &p.cwd.display().to_string()));
                fields.push(field("access", p.access.as_str()));
                fields.push(field(
                    "sandbox",
                    &format!(
                        "{}, network {}",
                        p.sandbox.as_str(),
                        if p.network { "on" } else { "off" }
                    ),
                ));
            }
            Err(e) => fields.push(field("workspace", &e.to_string())),
        }
        fields.push(field(
            "session",
            &session
                .map(|s| short_thread(&s.thread_id))
                .unwrap_or_else(|| "new session".into()),
        ));
        fields.push(field("runner", self.runner.name()));
        fields.push(field("identity", &policy::identity(&self.profile)));
        fields.push(field(
            "model",
            self.profile
                .codex
                .model
                .as_deref()
                .unwrap_or("Codex default"),
        ));
        fields.push(field(
            "queued",
            &format!("{queued_here} here, {queued_all} in the profile"),
        ));
        fields.push(field(
            "active run",
            &match &active {
                Some((id, at)) => format!("{id}, running for {}", elapsed(now_ms() - at)),
                None => "none".into(),
            },
        ));
        fields.push(field(
            "reply mode",
            settings::reply_mode(&self.profile, &settings),
        ));
        fields.push(field("tool display", settings::tool_display(&settings)));
        fields.push(field(
            "idle timeout",
            &match self.idle_timeout(scope) {
                None => "off".into(),
                Some(d) => settings::minutes_label(d.as_secs().div_ceil(60)),
            },
        ));
        let mut buttons = Vec::new();
        if let Some((id, _)) = &active {
            buttons.push(pb::Button {
                action: pb::ActionKind::Stop as i32,
                label: "Stop".into(),
                value: id.clone(),
                style: "danger".into(),
            });
        }
        let facts = self.facts(inbound);
        if self.may_use(facts, "/new") {
            buttons.push(command_button("/new", "New session", "default"));
        }
        if self.may_use(facts, "/config") {
            buttons.push(command_button("/config", "Config", "default"));
        }
        self.send_reply(
            inbound,
            pb::CommandReply {
                command: "status".into(),
                title: "Status".into(),
                body: bullets(&fields),
                ok: true,
                fields,
                buttons,
                ..Default::default()
            },
        );
    }

    /// The row that holds a group's mention choice: `chat:<chat_id>`, also
    /// for its topics. `None` outside groups.
    fn group_row(&self, inbound: &Inbound) -> Option<String> {
        if Chat::from_pb(inbound.chat_type()) != Some(Chat::Group) {
            return None;
        }
        let chat_id = if inbound.chat_id.is_empty() {
            chat_id_of_scope(&inbound.scope)
        } else {
            inbound.chat_id.clone()
        };
        (!chat_id.is_empty()).then(|| format!("chat:{chat_id}"))
    }

    fn config_facts(&self, inbound: &Inbound) -> settings::Facts<'_> {
        let scope_settings = self.settings(&inbound.scope);
        let chat = self.group_row(inbound).map(|row| self.settings(&row));
        settings::Facts {
            profile: &self.profile,
            is_owner: self.role_of(inbound) == Role::Owner,
            group: chat.is_some(),
            topic: inbound.chat_type() == pb::ChatType::Topic,
            current: Current::of(&self.profile, &scope_settings, chat.as_ref()),
        }
    }

    /// The `/config` text (it must stand on its own in markdown and text
    /// modes) and its fields.
    fn config_text(&self, f: &settings::Facts<'_>) -> (String, Vec<pb::Field>) {
        let perms = &self.profile.permissions;
        let cur = f.current;
        let l = self.lists();
        let mut fields = vec![
            field("access here", cur.access.as_str()),
            field("default access", perms.default_access.as_str()),
            field("max access", perms.max_access.as_str()),
            field("network", if perms.network { "on" } else { "off" }),
            field("reply mode", cur.reply_mode),
            field("tool display", cur.tool_display),
            field(
                "idle timeout",
                &match cur.idle {
                    Idle::Default => match self.profile.runs.idle_timeout_secs {
                        0 => "default (off)".to_string(),
                        s => format!("default ({})", settings::minutes_label(s.div_ceil(60))),
                    },
                    Idle::Off => "off".into(),
                    Idle::Minutes(m) => settings::minutes_label(m),
                },
            ),
        ];
        if f.group {
            fields.push(field(
                "mention in this group",
                &settings::mention_str(cur.mention).replace('_', " "),
            ));
        }
        fields.extend([
            field(
                "owner",
                match l.owner_source {
                    "none" => "not known yet",
                    "config" => "set in config.toml",
                    _ => "learned from the platform",
                },
            ),
            field("admins", &l.admins.len().to_string()),
            field("allowed users", &l.users.len().to_string()),
            field("enabled groups", &l.chats.len().to_string()),
            field(
                "mention required in groups (default)",
                if l.require_mention { "yes" } else { "no" },
            ),
            field("debounce", &format!("{} ms", self.profile.runs.debounce_ms)),
            field(
                "max concurrent runs",
                &self.profile.runs.max_concurrent.to_string(),
            ),
        ]);
        drop(l);
        let mut body = bullets(&fields);
        body.push_str("\n\nChange one for this chat with /config <key> <value>:");
        for key in Key::ALL {
            if key == Key::Mention && !f.group {
                continue;
            }
            body.push_str(&format!("\n- `/config {} {}`", key.as_str(), key.usage()));
        }
        (body, fields)
    }

    fn config_reply(&self, inbound: &Inbound, ok: bool, title: &str, notes: &str) {
        let f = self.config_facts(inbound);
        let (text, fields) = self.config_text(&f);
        let body = if notes.is_empty() {
            text
        } else {
            format!("{notes}\n\n{text}")
        };
        self.send_reply(
            inbound,
            pb::CommandReply {
                command: "config".into(),
                title: title.into(),
                body,
                ok,
                fields,
                form: Some(settings::form(&f)),
                ..Default::default()
            },
        );
    }

    pub(super) fn config_show(&self, inbound: &Inbound) {
        self.config_reply(inbound, true, "Configuration", "");
    }

    /// Check and apply settings for `inbound`'s scope (typed `/config <key>
    /// <value>` or a form submit): all or nothing. Returns whether they
    /// were applied and the reply's title.
    pub(super) fn config_apply(
        &self,
        inbound: &Inbound,
        values: &[(String, String)],
        source: Source,
    ) -> (bool, String) {
        let facts = self.config_facts(inbound);
        let changes = match settings::validate(&facts, values, source) {
            Ok(c) => c,
            Err(errors) => {
                let title = "Settings not changed";
                let mut body = errors
                    .iter()
                    .map(|e| format!("- {e}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                body.push_str("\n\nNothing was applied. Send /config for the settings.");
                self.reply(inbound, "config", false, title, body);
                return (false, format!("{title}: {}", errors.join("; ")));
            }
        };
        if changes.is_empty() {
            let title = "Nothing changed";
            self.config_reply(inbound, true, title, "");
            return (true, title.into());
        }
        let scope = inbound.scope.as_str();
        let mut s = self.settings(scope);
        settings::apply(&mut s, &changes);
        let mention = changes.iter().find_map(|c| match c {
            Change::Mention(r) => Some(*r),
            _ => None,
        });
        let access = changes.iter().find_map(|c| match c {
            Change::Access(m) => Some(*m),
            _ => None,
        });
        if let (Some(required), Some(row)) = (mention, self.group_row(inbound)) {
            if row == scope {
                s.require_mention = Some(required);
            } else {
                let mut g: ScopeSettings = self.settings(&row);
                g.require_mention = Some(required);
                if let Err(e) = self.store.set_scope_settings(&row, &g, now_ms()) {
                    self.store_failed(inbound, "config", e);
                    return (false, "fcx could not save that change".into());
                }
            }
        }
        if let Err(e) = self.store.set_scope_settings(scope, &s, now_ms()) {
            self.store_failed(inbound, "config", e);
            return (false, "fcx could not save that change".into());
        }
        if mention.is_some()
            && let Err(e) = self.reload_lists()
        {
            tracing::error!(error = %e, "cannot reload the access lists");
        }
        let mut notes = Vec::new();
        if let Some(mode) = access {
            // The sandbox is part of the fingerprint: the current thread
            // cannot continue under the new rules.
            let stopped = self.stop_scope(scope, None, StopReason::NewSession);
            let _ = self.store.clear_session(scope);
            self.archive_incompatible(scope);
            if stopped {
                notes.push("The running turn was stopped.".to_string());
            }
            notes.push(format!(
                "Codex runs here with sandbox `{}`. The next message starts a new session.",
                policy::sandbox_for(mode).as_str()
            ));
            if mode == AccessMode::Full {
                notes.push("Full access: Codex can change anything your user can.".into());
            }
        }
        if changes.iter().any(|c| matches!(c, Change::Idle(_))) {
            notes.push("The idle timeout applies from the next run.".into());
        }
        tracing::info!(
            scope,
            by = actor_id(inbound),
            changes = ?changes,
            "chat settings changed"
        );
        let title = format!(
            "Changed: {}",
            changes
                .iter()
                .map(Change::describe)
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.config_reply(inbound, true, &title, &notes.join(" "));
        (true, title)
    }

    /// The chat type of a scope an action names (actions carry none): a
    /// topic by its scope, else what the newest message journaled there
    /// said, else a group when the chat is an enabled group, else a private
    /// chat.
    fn chat_type_of(&self, scope: &str, chat_id: &str) -> pb::ChatType {
        if scope.starts_with("topic:") {
            return pb::ChatType::Topic;
        }
        match self.store.last_chat_type(scope) {
            Ok(Some(t)) => {
                let t = pb::ChatType::try_from(t).unwrap_or(pb::ChatType::Unspecified);
                if t != pb::ChatType::Unspecified {
                    return t;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(scope, error = %e, "cannot read the scope's chat type"),
        }
        if !chat_id.is_empty() && self.lists().chats.contains(chat_id) {
            pb::ChatType::Group
        } else {
            pb::ChatType::Private
        }
    }

    /// The message a click stands for: the clicking user writing `text` in
    /// the card's scope, addressed to the bot, answered under the card.
    pub(super) fn action_inbound(&self, a: &pb::Action, text: &str) -> Inbound {
        let chat_id = if a.chat_id.is_empty() {
            chat_id_of_scope(&a.scope)
        } else {
            a.chat_id.clone()
        };
        Inbound {
            event_id: format!("act:{}", short_id('a')),
            scope: a.scope.clone(),
            actor: a.actor.clone(),
            text: text.into(),
            chat_type: self.chat_type_of(&a.scope, &chat_id) as i32,
            // A click is addressed to the bot by construction.
            mentioned: true,
            chat_id,
            message_id: a.message_id.clone(),
            sent_at_ms: now_ms(),
            ..Default::default()
        }
    }

    pub(super) fn card_action(&self, a: &pb::Action) -> pb::ActResult {
        let refused = |message: &str| pb::ActResult {
            ok: false,
            message: message.into(),
        };
        let kind = a.kind();
        let (text, cmd) = match kind {
            pb::ActionKind::Command => {
                let line = a.command.trim();
                match commands::parse(line) {
                    Some(c) => (line.to_string(), c),
                    None => {
                        tracing::warn!(scope = %a.scope, "card command refused: not a command");
                        return refused(NOT_A_COMMAND);
                    }
                }
            }
            pb::ActionKind::Config => ("/config".to_string(), Command::Config(None)),
            pb::ActionKind::Resume => (
                format!("/resume use {}", a.nonce),
                Command::ResumeUse(a.nonce.clone()),
            ),
            _ => return refused("not a command-card action"),
        };
        let probe = self.action_inbound(a, &text);
        let decision = self.decide(&probe, cmd.need());
        match decision {
            Decision::Silent(_) => return refused(NOT_ALLOWED),
            Decision::Hint(t) => {
                self.reply(&probe, cmd.name(), false, t, String::new());
                return refused(t);
            }
            Decision::Allow | Decision::Deny(_) => {}
        }
        if !a.fingerprint.is_empty() {
            let current = self
                .policy(&a.scope)
                .map(|p| p.fingerprint)
                .unwrap_or_default();
            if current != a.fingerprint {
                tracing::warn!(scope = %a.scope, actor = actor_id(&probe), "stale card refused");
                // Answered under the card, like every refusal a user may
                // see (strangers get silence above).
                self.reply(&probe, cmd.name(), false, STALE_CARD, String::new());
                return refused(STALE_CARD);
            }
        }
        if let Decision::Deny(t) = decision {
            self.reply(&probe, cmd.name(), false, t, String::new());
            return refused(t);
        }
        match kind {
            pb::ActionKind::Config => {
                let values: Vec<(String, String)> = a
                    .values
                    .iter()
                    .map(|f| (f.name.clone(), f.value.clone()))
                    .collect();
                let (ok, message) = self.config_apply(&probe, &values, Source::Form);
                pb::ActResult { ok, message }
            }
            pb::ActionKind::Resume => {
                let (ok, message) = self.resume_use(&probe, &a.nonce);
                pb::ActResult { ok, message }
            }
            _ => {
                self.command(&probe, cmd);
                pb::ActResult {
                    ok: true,
                    message: format!("ran {text}"),
                }
            }
        }
    }
}

/// `chat:<id>` → `<id>`, `topic:<id>:<thread>` → `<id>`, else empty.
fn chat_id_of_scope(scope: &str) -> String {
    if let Some(id) = scope.strip_prefix("chat:") {
        return id.to_string();
    }
    if let Some(rest) = scope.strip_prefix("topic:") {
        return rest.split(':').next().unwrap_or("").to_string();
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn help_buttons_are_argument_less_commands() {
        assert!(HELP_BUTTONS.len() <= 8);
        for (line, _) in HELP_BUTTONS {
            let c = commands::parse(line).expect("a command");
            assert!(
                !matches!(c, Command::Usage { .. } | Command::Unknown(_)),
                "{line}"
            );
        }
    }
}
