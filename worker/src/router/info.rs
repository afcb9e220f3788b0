//! Replies that only report: `/help`, `/status`, `/ps`, `/doctor`, and
//! `/reconnect` (a request to the gateway).

use crate::runner::exec::confine;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fcx_proto::v1::{self as pb, Inbound};

use super::model_probe;
use super::text::{bullets, command_button, elapsed, field, short_thread};
use super::{Deps, Gate, NOT_ON_CONSOLE, on_console};
use crate::commands;
use crate::policy;
use crate::run::{child_env, resolve_binary};
use crate::settings;
use crate::util::now_ms;

/// `/doctor` at most this often per scope.
const DOCTOR_INTERVAL: Duration = Duration::from_secs(30);

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

/// When `/doctor` last ran, per scope.
#[derive(Default)]
pub(super) struct DoctorLimit(Mutex<HashMap<String, Instant>>);

impl DoctorLimit {
    /// `None` when a check may run now (and it is recorded), else how long
    /// to wait.
    fn wait(&self, scope: &str, now: Instant) -> Option<Duration> {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = last.get(scope)
            && now.duration_since(*t) < DOCTOR_INTERVAL
        {
            return Some(DOCTOR_INTERVAL - now.duration_since(*t));
        }
        last.insert(scope.to_string(), now);
        None
    }
}

pub(super) struct Info<'a>(pub(super) &'a Deps);

impl Info<'_> {
    pub(super) fn help(&self, inbound: &Inbound) {
        let facts = self.0.gate.facts(inbound);
        let buttons = HELP_BUTTONS
            .iter()
            .filter(|(line, _)| Gate::may_use(facts, line))
            .map(|(line, label)| {
                let style = if *line == "/status" {
                    pb::ButtonStyle::Primary
                } else {
                    pb::ButtonStyle::Default
                };
                command_button(line, label, style)
            })
            .collect();
        self.0.replies.send(
            inbound,
            pb::CommandReply {
                command: pb::CommandName::Help as i32,
                title: "Help".into(),
                body: commands::help_markdown(on_console(inbound)),
                ok: true,
                buttons,
                ..Default::default()
            },
        );
    }

    pub(super) fn status(&self, inbound: &Inbound) {
        let d = self.0;
        let profile = &d.ctx.profile;
        let scope = inbound.scope.as_str();
        let policy = d.ctx.policy(scope);
        let settings = d.ctx.settings(scope);
        let session = d.ctx.store.sessions().session(scope).ok().flatten();
        let view = d.sched.scope_view(scope);
        let mut fields = vec![field("profile", &profile.name)];
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
        fields.push(field("runner", d.ctx.runner_name));
        let isolation = confine::describe(
            &confine::available(),
            policy.as_ref().ok().map(|p| p.sandbox),
        );
        fields.push(field(
            "isolation",
            match &isolation {
                Ok(s) | Err(s) => s,
            },
        ));
        fields.push(field(
            "codex home",
            crate::runner::codex_home::describe(&profile.codex.auth),
        ));
        fields.push(field("identity", &policy::identity(profile)));
        if let Ok(p) = &policy {
            fields.push(field(
                "lark-cli",
                &crate::lark_cli::describe(profile, p.lark_cli),
            ));
        }
        fields.push(field(
            "model",
            profile.codex.model.as_deref().unwrap_or("Codex default"),
        ));
        fields.push(field(
            "queued",
            &format!(
                "{} here, {} in the profile",
                view.queued_here, view.queued_all
            ),
        ));
        fields.push(field(
            "active run",
            &match &view.active {
                Some((id, at)) => format!("{id}, running for {}", elapsed(now_ms() - at)),
                None => "none".into(),
            },
        ));
        fields.push(field(
            "reply mode",
            settings::reply_mode(profile, &settings),
        ));
        fields.push(field("tool display", settings::tool_display(&settings)));
        fields.push(field(
            "idle timeout",
            &match d.ctx.idle_timeout(scope) {
                None => "off".into(),
                Some(t) => settings::minutes_label(t.as_secs().div_ceil(60)),
            },
        ));
        let mut buttons = Vec::new();
        if let Some((id, _)) = &view.active {
            buttons.push(pb::Button {
                action: pb::ActionKind::Stop as i32,
                label: "Stop".into(),
                value: id.clone(),
                style: pb::ButtonStyle::Danger as i32,
                note: false,
            });
        }
        let facts = d.gate.facts(inbound);
        if Gate::may_use(facts, "/new") {
            buttons.push(command_button(
                "/new",
                "New session",
                pb::ButtonStyle::Default,
            ));
        }
        if Gate::may_use(facts, "/config") {
            buttons.push(command_button(
                "/config",
                "Config",
                pb::ButtonStyle::Default,
            ));
        }
        d.replies.send(
            inbound,
            pb::CommandReply {
                command: pb::CommandName::Status as i32,
                title: "Status".into(),
                body: bullets(&fields),
                ok: true,
                fields,
                buttons,
                ..Default::default()
            },
        );
    }

    pub(super) fn ps(&self, inbound: &Inbound) {
        let snap = self.0.sched.snapshot();
        let mut body = String::new();
        for r in &snap.active {
            body.push_str(&format!(
                "- `{}` in {}: {}s, pid {}, {}\n",
                r.run_id,
                r.scope,
                (now_ms() - r.started_at_ms).max(0) / 1000,
                r.child_pid,
                r.workspace
            ));
        }
        if snap.active.is_empty() {
            body.push_str("No runs in progress.\n");
        }
        body.push_str(&format!("\n{} message(s) waiting.", snap.queued));
        self.0.replies.text(
            inbound,
            "ps",
            true,
            &format!("{} run(s) in progress", snap.active.len()),
            body,
        );
    }

    pub(super) fn reconnect(&self, inbound: &Inbound) {
        if on_console(inbound) {
            self.0
                .replies
                .text(inbound, "reconnect", false, NOT_ON_CONSOLE, String::new());
        } else {
            self.0.replies.request(
                inbound,
                "reconnect",
                "Reconnecting to the chat platform",
                "Runs continue.".into(),
                pb::gateway_request::Kind::Reconnect(pb::Reconnect {}),
            );
        }
    }

    pub(super) fn doctor(&self, inbound: &Inbound) {
        let d = self.0;
        let profile = &d.ctx.profile;
        if let Some(left) = d.doctor.wait(&inbound.scope, Instant::now()) {
            return d.replies.text(
                inbound,
                "doctor",
                false,
                "Doctor ran moments ago",
                format!("Try again in {}s.", left.as_secs() + 1),
            );
        }
        let mut lines = Vec::new();
        let mut ok = true;
        let mut check = |name: &str, r: Result<String, String>| match r {
            Ok(v) => lines.push(format!("- ✓ **{name}**: {v}")),
            Err(v) => {
                ok = false;
                lines.push(format!("- ✗ **{name}**: {v}"))
            }
        };
        // Paths and identities only; a secret's value never appears.
        check(
            "codex",
            resolve_binary(profile).map(|p| {
                p.file_name()
                    .map(|f| format!("found ({})", f.to_string_lossy()))
                    .unwrap_or_else(|| "found".into())
            }),
        );
        check(
            "credentials",
            match child_env(profile, &d.ctx.home, &inbound.scope) {
                Ok(_) => Ok(format!(
                    "{} (readable; not shown)",
                    profile.codex.auth.as_str()
                )),
                Err(_) => Err(format!(
                    "{}: the reference cannot be read; fix profiles.{}.codex",
                    profile.codex.auth.as_str(),
                    profile.name
                )),
            },
        );
        check(
            "isolation",
            confine::describe(
                &confine::available(),
                d.ctx.policy(&inbound.scope).ok().map(|p| p.sandbox),
            ),
        );
        check(
            "codex home",
            Ok(crate::runner::codex_home::describe(&profile.codex.auth).to_string()),
        );
        check(
            "lark-cli",
            Ok(crate::lark_cli::describe(
                profile,
                crate::lark_cli::effective(profile, d.ctx.one_to_one(&inbound.scope)),
            )),
        );
        check(
            "workspace",
            d.ctx
                .policy(&inbound.scope)
                .map(|p| format!("ok, {} access", p.access.as_str()))
                .map_err(|e| e.to_string()),
        );
        check(
            "state",
            d.ctx
                .store
                .events()
                .last_seq()
                .map(|s| format!("ok ({s} events)"))
                .map_err(|e| e.to_string()),
        );
        let snap = d.sched.snapshot();
        check(
            "runs",
            Ok(format!(
                "{} active of {}, {} waiting",
                snap.active.len(),
                profile.runs.max_concurrent,
                snap.queued
            )),
        );
        // The model API is asked over the network: answered from a task
        // the scheduler owns, so the router never waits on it.
        let endpoint = fcx_config::model_endpoint::resolve(profile, &d.ctx.home);
        let (replies, inbound) = (d.replies.clone(), inbound.clone());
        d.sched.spawn_owned(async move {
            match model_probe::check(endpoint).await {
                Ok(v) => lines.push(format!("- ✓ **model api**: {v}")),
                Err(v) => {
                    ok = false;
                    lines.push(format!("- ✗ **model api**: {v}"));
                }
            }
            let title = if ok {
                "All checks passed"
            } else {
                "Some checks failed"
            };
            replies.text(&inbound, "doctor", ok, title, lines.join("\n"));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::Command;

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

    #[test]
    fn doctor_runs_at_most_once_per_interval_per_scope() {
        let limit = DoctorLimit::default();
        let t0 = Instant::now();
        assert_eq!(limit.wait("chat:a", t0), None);
        let left = limit.wait("chat:a", t0 + Duration::from_secs(10));
        assert_eq!(left, Some(Duration::from_secs(20)));
        assert_eq!(limit.wait("chat:b", t0 + Duration::from_secs(10)), None);
        assert_eq!(limit.wait("chat:a", t0 + DOCTOR_INTERVAL), None);
    }
}
