//! Workspace commands: `/cd`, `/ws …`, `/timeout`, `/new group`.

use std::path::{Path, PathBuf};

use fcx_proto::v1::{self as pb, Inbound};

use super::text::actor_id;
use super::{Deps, NOT_ON_CONSOLE, on_console};
use crate::commands::Timeout;
use crate::run::StopReason;
use crate::util::now_ms;
use crate::{pin, policy};

pub(super) struct Workspace<'a>(pub(super) &'a Deps);

impl Workspace<'_> {
    pub(super) fn cd(&self, inbound: &Inbound, path: &str) {
        let d = self.0;
        let current = match d.ctx.policy(&inbound.scope) {
            Ok(p) => p.cwd,
            Err(_) => d.ctx.profile.workspaces.default.clone(),
        };
        match policy::resolve_cd(&current, path, &d.ctx.home) {
            Ok(real) => self.switch(inbound, "cd", real),
            Err(e) => d
                .replies
                .text(inbound, "cd", false, "Workspace not changed", e.to_string()),
        }
    }

    pub(super) fn list(&self, inbound: &Inbound) {
        let d = self.0;
        let current = d
            .ctx
            .policy(&inbound.scope)
            .map(|p| p.cwd.display().to_string())
            .unwrap_or_else(|e| e.to_string());
        let mut body = format!(
            "- **current**: {current}\n- **default**: {}\n",
            d.ctx.profile.workspaces.default.display()
        );
        match d.ctx.store.settings().aliases() {
            Ok(list) if list.is_empty() => {
                body.push_str("\nNo saved workspaces yet: /ws save <name> saves the current one.")
            }
            Ok(list) => {
                for (name, path) in list {
                    body.push_str(&format!("- `{name}`: {path}\n"));
                }
            }
            Err(e) => return d.replies.store_failed(inbound, "ws", e),
        }
        d.replies.text(inbound, "ws", true, "Workspaces", body);
    }

    pub(super) fn save(&self, inbound: &Inbound, name: &str) {
        let d = self.0;
        match d.ctx.policy(&inbound.scope) {
            Ok(p) => {
                let path = p.cwd.display().to_string();
                let by = actor_id(inbound);
                match d.ctx.store.settings().set_alias(name, &path, by, now_ms()) {
                    Ok(()) => d.replies.text(
                        inbound,
                        "ws",
                        true,
                        &format!("Saved workspace `{name}`"),
                        path,
                    ),
                    Err(e) => d.replies.store_failed(inbound, "ws", e),
                }
            }
            Err(e) => d
                .replies
                .text(inbound, "ws", false, "Nothing to save", e.to_string()),
        }
    }

    pub(super) fn use_alias(&self, inbound: &Inbound, name: &str) {
        let d = self.0;
        match d.ctx.store.settings().alias(name) {
            Ok(Some(path)) => match policy::workspace(Path::new(&path), &d.ctx.home) {
                Ok(real) => self.switch(inbound, "ws", real),
                Err(e) => d.replies.text(
                    inbound,
                    "ws",
                    false,
                    &format!("Workspace `{name}` cannot be used"),
                    e.to_string(),
                ),
            },
            Ok(None) => d.replies.text(
                inbound,
                "ws",
                false,
                &format!("No workspace named `{name}`"),
                "Send /ws list for the saved ones.".into(),
            ),
            Err(e) => d.replies.store_failed(inbound, "ws", e),
        }
    }

    pub(super) fn remove(&self, inbound: &Inbound, name: &str) {
        let d = self.0;
        match d.ctx.store.settings().remove_alias(name) {
            Ok(true) => d.replies.text(
                inbound,
                "ws",
                true,
                &format!("Removed workspace `{name}`"),
                "The directory itself is untouched.".into(),
            ),
            Ok(false) => d.replies.text(
                inbound,
                "ws",
                false,
                &format!("No workspace named `{name}`"),
                String::new(),
            ),
            Err(e) => d.replies.store_failed(inbound, "ws", e),
        }
    }

    /// Move the scope to `real`: its session cannot follow (the workspace
    /// is part of the fingerprint).
    fn switch(&self, inbound: &Inbound, cmd: &str, real: PathBuf) {
        let d = self.0;
        let scope = inbound.scope.as_str();
        let mut settings = d.ctx.settings(scope);
        let path = real.display().to_string();
        let id = match pin::identity(&real) {
            Ok(id) => id,
            Err(e) => {
                return d
                    .replies
                    .text(inbound, cmd, false, "Workspace not changed", e.to_string());
            }
        };
        settings.workspace = Some(path.clone());
        settings.workspace_id = Some(id);
        if let Err(e) = d
            .ctx
            .store
            .settings()
            .set_scope_settings(scope, &settings, now_ms())
        {
            return d.replies.store_failed(inbound, cmd, e);
        }
        let stopped = d.sched.stop(scope, None, StopReason::NewSession);
        if let Err(e) = d.ctx.store.sessions().clear_session(scope) {
            tracing::error!(scope, error = %e, "cannot clear the session");
        }
        d.catalog.archive_incompatible(scope);
        let mut body = String::new();
        if stopped {
            body.push_str("The running turn was stopped. ");
        }
        body.push_str("The next message starts a new Codex session there.");
        d.replies
            .text(inbound, cmd, true, &format!("Workspace: {path}"), body);
    }

    pub(super) fn timeout(&self, inbound: &Inbound, t: Timeout) {
        let d = self.0;
        let scope = inbound.scope.as_str();
        let minutes = || match d.ctx.idle_timeout(scope) {
            None => "off".to_string(),
            Some(t) => format!("{} minutes", t.as_secs().div_ceil(60)),
        };
        let mut settings = d.ctx.settings(scope);
        settings.timeout_secs = match t {
            Timeout::Show => {
                return d.replies.text(
                    inbound,
                    "timeout",
                    true,
                    &format!("Idle timeout: {}", minutes()),
                    "A run that hears nothing from Codex for that long is stopped.".into(),
                );
            }
            Timeout::Minutes(m) => Some(m * 60),
            Timeout::Off => Some(0),
            Timeout::Default => None,
        };
        if let Err(e) = d
            .ctx
            .store
            .settings()
            .set_scope_settings(scope, &settings, now_ms())
        {
            return d.replies.store_failed(inbound, "timeout", e);
        }
        d.replies.text(
            inbound,
            "timeout",
            true,
            &format!("Idle timeout here: {}", minutes()),
            "Applies from the next run.".into(),
        );
    }

    /// `/new group [name]`: ask the gateway for a group that starts in this
    /// scope's workspace.
    pub(super) fn new_group(&self, inbound: &Inbound, name: Option<String>) {
        let d = self.0;
        if on_console(inbound) {
            return d
                .replies
                .text(inbound, "new", false, NOT_ON_CONSOLE, String::new());
        }
        let workspace = match d.ctx.policy(&inbound.scope) {
            Ok(p) => p.cwd.display().to_string(),
            Err(e) => {
                return d
                    .replies
                    .text(inbound, "new", false, "No group created", e.to_string());
            }
        };
        let name = name.filter(|n| !n.is_empty()).unwrap_or_else(|| {
            let base = Path::new(&workspace)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "workspace".into());
            format!("fcx: {base}")
        });
        let welcome = format!(
            "This group works in {workspace}. Mention me with a request; /help lists the commands."
        );
        d.replies.request(
            inbound,
            "new",
            &format!("Creating group \"{name}\""),
            format!("It starts in {workspace}."),
            pb::gateway_request::Kind::CreateGroup(pb::CreateGroup {
                name,
                requester: inbound.actor.clone(),
                inherit_from_scope: inbound.scope.clone(),
                workspace,
                welcome,
            }),
        );
    }
}
