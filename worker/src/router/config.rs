//! `/config`: the chat's settings as text and a form, and applying a typed
//! change or a form submit (all or nothing).

use fcx_config::AccessMode;
use fcx_proto::v1::{self as pb, Inbound};

use super::text::{actor_id, bullets, field};
use super::{Deps, NOT_ON_CONSOLE, on_console};
use crate::access::{Chat, Role};
use crate::commands;
use crate::policy;
use crate::run::StopReason;
use crate::settings::{self, Change, Current, Idle, Key, Source};
use crate::util::now_ms;

pub(super) struct Config<'a>(pub(super) &'a Deps);

impl Config<'_> {
    /// The row that holds a group's mention choice: `chat:<chat_id>`, also
    /// for its topics. `None` outside groups.
    fn group_row(&self, inbound: &Inbound) -> Option<String> {
        if Chat::from_pb(inbound.chat_type()) != Some(Chat::Group) {
            return None;
        }
        let chat_id = if inbound.chat_id.is_empty() {
            fcx_proto::v1::Scope::chat_of(&inbound.scope)
        } else {
            inbound.chat_id.clone()
        };
        (!chat_id.is_empty()).then(|| fcx_proto::v1::Scope::chat(chat_id).key())
    }

    fn facts(&self, inbound: &Inbound) -> settings::Facts<'_> {
        let d = self.0;
        let scope_settings = d.ctx.settings(&inbound.scope);
        let chat = self.group_row(inbound).map(|row| d.ctx.settings(&row));
        settings::Facts {
            profile: &d.ctx.profile,
            is_owner: d.gate.role_of(inbound) == Role::Owner,
            group: chat.is_some(),
            topic: inbound.chat_type() == pb::ChatType::Topic,
            current: Current::of(&d.ctx.profile, &scope_settings, chat.as_ref()),
        }
    }

    /// The `/config` text (it must stand on its own in markdown and text
    /// modes) and its fields.
    /// On the console (`console`) what means nothing there is left out and
    /// the owner is the console's user.
    fn text(&self, f: &settings::Facts<'_>, console: bool) -> (String, Vec<pb::Field>) {
        let profile = &self.0.ctx.profile;
        let perms = &profile.permissions;
        let cur = f.current;
        let l = self.0.gate.lists();
        let mut fields = vec![
            field("access here", cur.access.as_str()),
            field("default access", perms.default_access.as_str()),
            field("max access", perms.max_access.as_str()),
            field("network", if perms.network { "on" } else { "off" }),
        ];
        if !console {
            fields.extend([
                field("reply mode", cur.reply_mode),
                field("tool display", cur.tool_display),
            ]);
        }
        fields.extend([
            field(
                "idle timeout",
                &match cur.idle {
                    Idle::Default => match profile.runs.idle_timeout_secs {
                        0 => "default (off)".to_string(),
                        s => format!("default ({})", settings::minutes_label(s.div_ceil(60))),
                    },
                    Idle::Off => "off".into(),
                    Idle::Minutes(m) => settings::minutes_label(m),
                },
            ),
            field("messages during a run", cur.during_run.as_str()),
        ]);
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
                    _ if console => "you (the console's user)",
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
            field("debounce", &format!("{} ms", profile.runs.debounce_ms)),
            field(
                "max concurrent runs",
                &profile.runs.max_concurrent.to_string(),
            ),
        ]);
        drop(l);
        let mut body = bullets(&fields);
        body.push_str("\n\nChange one for this chat with /config <key> <value>:");
        for key in Key::ALL {
            if (key == Key::Mention && !f.group)
                || (console && commands::not_on_console(&format!("/config {}", key.as_str())))
            {
                continue;
            }
            body.push_str(&format!("\n- `/config {} {}`", key.as_str(), key.usage()));
        }
        (body, fields)
    }

    fn reply(&self, inbound: &Inbound, ok: bool, title: &str, notes: &str) {
        let f = self.facts(inbound);
        let console = on_console(inbound);
        let (text, fields) = self.text(&f, console);
        let body = if notes.is_empty() {
            text
        } else {
            format!("{notes}\n\n{text}")
        };
        self.0.replies.send(
            inbound,
            pb::CommandReply {
                command: pb::CommandName::Config as i32,
                title: title.into(),
                body,
                ok,
                fields,
                // The terminal shows no forms.
                form: (!console).then(|| settings::form(&f)),
                ..Default::default()
            },
        );
    }

    pub(super) fn show(&self, inbound: &Inbound) {
        self.reply(inbound, true, "Configuration", "");
    }

    /// Check and apply settings for `inbound`'s scope (typed `/config <key>
    /// <value>` or a form submit): all or nothing. Returns whether they
    /// were applied and the reply's title.
    pub(super) fn apply(
        &self,
        inbound: &Inbound,
        values: &[(String, String)],
        source: Source,
    ) -> (bool, String) {
        let d = self.0;
        if on_console(inbound)
            && let Some((key, _)) = values
                .iter()
                .find(|(k, _)| commands::not_on_console(&format!("/config {k}")))
        {
            let title = "Settings not changed";
            d.replies.text(
                inbound,
                "config",
                false,
                title,
                format!("`{key}`: {NOT_ON_CONSOLE} The terminal shows every run as it happens."),
            );
            return (
                false,
                format!("{title}: {key} is not available on the console"),
            );
        }
        let facts = self.facts(inbound);
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
                d.replies.text(inbound, "config", false, title, body);
                return (false, format!("{title}: {}", errors.join("; ")));
            }
        };
        if changes.is_empty() {
            let title = "Nothing changed";
            self.reply(inbound, true, title, "");
            return (true, title.into());
        }
        let scope = inbound.scope.as_str();
        let mut s = d.ctx.settings(scope);
        settings::apply(&mut s, &changes);
        let mention = changes.iter().find_map(|c| match c {
            Change::Mention(r) => Some(*r),
            _ => None,
        });
        let access = changes.iter().find_map(|c| match c {
            Change::Access(m) => Some(*m),
            _ => None,
        });
        let store_failed = |e| {
            d.replies.store_failed(inbound, "config", e);
            (false, "fcx could not save that change".to_string())
        };
        if let (Some(required), Some(row)) = (mention, self.group_row(inbound)) {
            if row == scope {
                s.require_mention = Some(required);
            } else {
                let mut g = d.ctx.settings(&row);
                g.require_mention = Some(required);
                if let Err(e) = d
                    .ctx
                    .store
                    .settings()
                    .set_scope_settings(&row, &g, now_ms())
                {
                    return store_failed(e);
                }
            }
        }
        if let Err(e) = d
            .ctx
            .store
            .settings()
            .set_scope_settings(scope, &s, now_ms())
        {
            return store_failed(e);
        }
        if mention.is_some()
            && let Err(e) = d.gate.reload()
        {
            tracing::error!(error = %e, "cannot reload the access lists");
        }
        let mut notes = Vec::new();
        if let Some(mode) = access {
            // The sandbox is part of the fingerprint: the current thread
            // cannot continue under the new rules.
            let stopped = d.sched.stop(scope, None, StopReason::NewSession);
            let _ = d.ctx.store.sessions().clear_session(scope);
            d.catalog.archive_incompatible(scope);
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
        if changes
            .iter()
            .any(|c| matches!(c, Change::DuringRun(fcx_config::DuringRun::Steer)))
            && d.ctx.profile.codex.runner != fcx_config::RunnerKind::AppServer
        {
            notes.push("This profile runs Codex with the exec runner, which cannot add a message to a running turn: such messages wait for the next run.".into());
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
        self.reply(inbound, true, &title, &notes.join(" "));
        (true, title)
    }
}
