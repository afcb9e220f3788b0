//! The command router: access decisions for every message, and every chat
//! command. A child module of the orchestrator so commands can stop runs and
//! read the queues without widening the orchestrator's API.

use std::time::{Duration, Instant};

use fcx_proto::v1::{self as pb, Inbound};

use super::{Inner, Orchestrator, StopReason};
use crate::access::{self, Chat, Decision, Facts, LIST_ADMINS, LIST_CHATS, LIST_USERS, Need, Role};
use crate::commands::{Command, Target, Timeout};
use crate::policy::{self, PolicyError, RunPolicy};
use crate::store::{AccessOp, ScopeSettings, SessionRow, StoreError};
use crate::util::now_ms;

/// How long a `/resume` code stays valid.
const NONCE_TTL: Duration = Duration::from_secs(10 * 60);
/// `/doctor` at most this often per scope.
const DOCTOR_INTERVAL: Duration = Duration::from_secs(30);
const KV_PLATFORM_OWNER: &str = "platform.owner";
const NOT_ON_CONSOLE: &str = "Not available on the console.";

impl Orchestrator {
    /// What the gateway learned from the platform. Returns the owner in use
    /// and where it came from.
    pub fn set_platform(&self, info: &pb::PlatformInfo) -> Result<(String, String), StoreError> {
        let inner = &self.inner;
        if !info.owner_id.is_empty() {
            inner.store.set_kv(KV_PLATFORM_OWNER, &info.owner_id)?;
        }
        inner.reload_lists()?;
        let l = inner.lists();
        tracing::info!(platform = %info.platform, app_id = %info.app_id, owner_source = l.owner_source, "platform info");
        Ok((l.owner.clone().unwrap_or_default(), l.owner_source.into()))
    }

    /// The group a `/new group` asked for exists: enable it and let it start
    /// in the requesting scope's workspace and access mode.
    pub fn group_created(
        &self,
        scope: &str,
        chat_id: &str,
        source_scope: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        if !chat_id.is_empty() {
            inner
                .store
                .access_change(LIST_CHATS, chat_id, AccessOp::Add, by, now_ms())?;
        }
        // Only the workspace and the access mode carry over; display and
        // mention choices start from the profile's defaults in a new group.
        let source = inner.store.scope_settings(source_scope)?;
        let mut settings = ScopeSettings {
            workspace: source.workspace,
            access: source.access,
            ..Default::default()
        };
        if settings.workspace.is_none()
            && let Ok(p) = inner.policy(source_scope)
        {
            settings.workspace = Some(p.cwd.display().to_string());
        }
        inner.store.set_scope_settings(scope, &settings, now_ms())?;
        inner.reload_lists()?;
        tracing::info!(scope, chat_id, source_scope, "group created and enabled");
        Ok(())
    }
}

impl Inner {
    pub(super) fn lists(&self) -> std::sync::MutexGuard<'_, access::Lists> {
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn reload_lists(&self) -> Result<(), StoreError> {
        let learned = self.store.kv(KV_PLATFORM_OWNER)?;
        let changes = self.store.access_changes()?;
        let mut l = access::Lists::build(&self.profile.access, learned, &changes);
        for (scope, required) in self.store.mention_overrides()? {
            if let Some(chat_id) = scope.strip_prefix("chat:") {
                l.mention.insert(chat_id.to_string(), required);
            }
        }
        // Without a platform app the only way in is the local worker socket,
        // in the operator's 0700 run directory: whoever reaches it is the
        // operator.
        l.local_only = self.profile.app.is_none();
        *self.lists() = l;
        Ok(())
    }

    pub(super) fn role_of(&self, inbound: &Inbound) -> Role {
        let chat = Chat::from_pb(inbound.chat_type());
        self.lists().role(actor_id(inbound), chat)
    }

    /// What the access decision for a message from `inbound`'s sender in
    /// its chat depends on.
    pub(super) fn facts(&self, inbound: &Inbound) -> Facts {
        let chat = Chat::from_pb(inbound.chat_type());
        let l = self.lists();
        Facts {
            role: l.role(actor_id(inbound), chat),
            chat,
            mentioned: inbound.mentioned,
            chat_enabled: !inbound.chat_id.is_empty() && l.chats.contains(&inbound.chat_id),
            require_mention: l.require_mention_in(&inbound.chat_id),
        }
    }

    /// The access decision for one message, logged with its reason.
    pub(super) fn decide(&self, inbound: &Inbound, need: Need) -> Decision {
        let f = self.facts(inbound);
        let (actor, role, chat) = (actor_id(inbound), f.role, f.chat);
        let d = access::decide(f, need);
        let reason = match &d {
            Decision::Allow => "allowed",
            Decision::Silent(r) | Decision::Hint(r) | Decision::Deny(r) => r,
        };
        tracing::info!(
            scope = %inbound.scope,
            actor,
            event_id = %inbound.event_id,
            role = ?role,
            chat = ?chat,
            need = ?need,
            decision = match d {
                Decision::Allow => "allow",
                Decision::Silent(_) => "silent",
                Decision::Hint(_) => "hint",
                Decision::Deny(_) => "deny",
            },
            reason,
            "access decision"
        );
        d
    }

    pub(super) fn settings(&self, scope: &str) -> ScopeSettings {
        self.store.scope_settings(scope).unwrap_or_else(|e| {
            tracing::error!(scope, error = %e, "cannot read scope settings; using defaults");
            ScopeSettings::default()
        })
    }

    pub(super) fn policy(&self, scope: &str) -> Result<RunPolicy, PolicyError> {
        policy::resolve(&self.profile, &self.home, scope, &self.settings(scope))
    }

    pub(super) fn idle_timeout(&self, scope: &str) -> Option<Duration> {
        let secs = self
            .settings(scope)
            .timeout_secs
            .unwrap_or(self.profile.runs.idle_timeout_secs);
        (secs > 0).then(|| Duration::from_secs(secs))
    }

    pub(super) fn command(&self, inbound: &Inbound, cmd: Command) {
        let scope = inbound.scope.as_str();
        match cmd {
            Command::Stop(None) => {
                let title = if self.stop_scope(scope, None, StopReason::User) {
                    "Stopping the current run"
                } else {
                    "Nothing is running here"
                };
                self.reply(inbound, "stop", true, title, String::new());
            }
            Command::Stop(Some(target)) | Command::Exit(target) => {
                let name = if matches!(inbound.text.trim_start().get(..5), Some("/exit")) {
                    "exit"
                } else {
                    "stop"
                };
                match self.find_run(&target) {
                    Some((s, run)) => {
                        self.stop_scope(&s, Some(&run), StopReason::User);
                        self.reply(
                            inbound,
                            name,
                            true,
                            &format!("Stopping run {run}"),
                            format!("in {s}"),
                        );
                    }
                    None => self.reply(
                        inbound,
                        name,
                        false,
                        &format!("No active run {target}"),
                        "Send /ps for the runs in progress.".into(),
                    ),
                }
            }
            Command::New => {
                let stopped = self.stop_scope(scope, None, StopReason::NewSession);
                let cleared = match self.store.clear_session(scope) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(scope, error = %e, "cannot clear the session");
                        false
                    }
                };
                let mut body = String::new();
                if stopped {
                    body.push_str("The running turn was stopped. ");
                }
                body.push_str(if cleared {
                    "The next message starts a new Codex session. /resume brings the previous one back."
                } else {
                    "There was no session yet; the next message starts one."
                });
                self.reply(inbound, "new", true, "New session", body);
            }
            Command::NewGroup(name) => self.new_group(inbound, name),
            Command::Resume => self.resume_list(inbound),
            Command::ResumeUse(code) => {
                self.resume_use(inbound, &code);
            }
            Command::Cd(path) => {
                let current = match self.policy(scope) {
                    Ok(p) => p.cwd,
                    Err(_) => self.profile.workspaces.default.clone(),
                };
                match policy::resolve_cd(&current, &path, &self.home) {
                    Ok(real) => self.switch_workspace(inbound, "cd", real),
                    Err(e) => {
                        self.reply(inbound, "cd", false, "Workspace not changed", e.to_string())
                    }
                }
            }
            Command::WsList => self.ws_list(inbound),
            Command::WsSave(name) => match self.policy(scope) {
                Ok(p) => {
                    let path = p.cwd.display().to_string();
                    let by = actor_id(inbound);
                    match self.store.set_alias(&name, &path, by, now_ms()) {
                        Ok(()) => self.reply(
                            inbound,
                            "ws",
                            true,
                            &format!("Saved workspace `{name}`"),
                            path,
                        ),
                        Err(e) => self.store_failed(inbound, "ws", e),
                    }
                }
                Err(e) => self.reply(inbound, "ws", false, "Nothing to save", e.to_string()),
            },
            Command::WsUse(name) => match self.store.alias(&name) {
                Ok(Some(path)) => {
                    match policy::workspace(std::path::Path::new(&path), &self.home) {
                        Ok(real) => self.switch_workspace(inbound, "ws", real),
                        Err(e) => self.reply(
                            inbound,
                            "ws",
                            false,
                            &format!("Workspace `{name}` cannot be used"),
                            e.to_string(),
                        ),
                    }
                }
                Ok(None) => self.reply(
                    inbound,
                    "ws",
                    false,
                    &format!("No workspace named `{name}`"),
                    "Send /ws list for the saved ones.".into(),
                ),
                Err(e) => self.store_failed(inbound, "ws", e),
            },
            Command::WsRemove(name) => match self.store.remove_alias(&name) {
                Ok(true) => self.reply(
                    inbound,
                    "ws",
                    true,
                    &format!("Removed workspace `{name}`"),
                    "The directory itself is untouched.".into(),
                ),
                Ok(false) => self.reply(
                    inbound,
                    "ws",
                    false,
                    &format!("No workspace named `{name}`"),
                    String::new(),
                ),
                Err(e) => self.store_failed(inbound, "ws", e),
            },
            Command::Timeout(t) => self.timeout(inbound, t),
            Command::Status => self.status_reply(inbound),
            Command::Help => self.help_reply(inbound),
            Command::Invite(t) => self.change_access(inbound, "invite", t, AccessOp::Add),
            Command::Remove(t) => self.change_access(inbound, "remove", t, AccessOp::Remove),
            Command::Ps => self.ps(inbound),
            Command::Reconnect => {
                if Chat::from_pb(inbound.chat_type()) == Some(Chat::Console) {
                    self.reply(inbound, "reconnect", false, NOT_ON_CONSOLE, String::new());
                } else {
                    self.reply_request(
                        inbound,
                        "reconnect",
                        "Reconnecting to the chat platform",
                        "Runs continue.".into(),
                        pb::gateway_request::Kind::Reconnect(pb::Reconnect {}),
                    );
                }
            }
            Command::Doctor => self.doctor(inbound),
            Command::Config(None) => self.config_show(inbound),
            Command::Config(Some((key, value))) => {
                self.config_apply(inbound, &[(key, value)], crate::settings::Source::Typed);
            }
            Command::Unknown(word) => self.reply(
                inbound,
                "unknown",
                false,
                &format!("/{word} is not a command"),
                "Send /help for the list of commands.".into(),
            ),
            Command::Usage { command, usage } => self.reply(
                inbound,
                &command,
                false,
                &usage,
                "Send /help for usage.".into(),
            ),
        }
    }

    pub(super) fn store_failed(&self, inbound: &Inbound, cmd: &str, e: StoreError) {
        tracing::error!(error = %e, "state update failed");
        self.reply(
            inbound,
            cmd,
            false,
            "fcx could not save that change",
            "The worker's state could not be updated; see the worker log.".into(),
        );
    }

    /// The scope and run id of an active run named by run id or by scope.
    fn find_run(&self, target: &str) -> Option<(String, String)> {
        let st = self.lock();
        st.scopes.iter().find_map(|(s, sc)| {
            let a = sc.active.as_ref()?;
            (a.run_id == target || s == target).then(|| (s.clone(), a.run_id.clone()))
        })
    }

    fn switch_workspace(&self, inbound: &Inbound, cmd: &str, real: std::path::PathBuf) {
        let scope = inbound.scope.as_str();
        let mut settings = self.settings(scope);
        let path = real.display().to_string();
        settings.workspace = Some(path.clone());
        if let Err(e) = self.store.set_scope_settings(scope, &settings, now_ms()) {
            return self.store_failed(inbound, cmd, e);
        }
        let stopped = self.stop_scope(scope, None, StopReason::NewSession);
        if let Err(e) = self.store.clear_session(scope) {
            tracing::error!(scope, error = %e, "cannot clear the session");
        }
        self.archive_incompatible(scope);
        let mut body = String::new();
        if stopped {
            body.push_str("The running turn was stopped. ");
        }
        body.push_str("The next message starts a new Codex session there.");
        self.reply(inbound, cmd, true, &format!("Workspace: {path}"), body);
    }

    pub(super) fn archive_incompatible(&self, scope: &str) {
        if let Ok(p) = self.policy(scope) {
            let cwd = p.cwd.display().to_string();
            if let Err(e) = self
                .store
                .catalog_archive_incompatible(scope, &cwd, &p.fingerprint)
                .and_then(|_| {
                    self.store.catalog_prune(
                        crate::store::CATALOG_PER_SCOPE,
                        crate::store::CATALOG_PER_PROFILE,
                    )
                })
            {
                tracing::warn!(scope, error = %e, "cannot maintain the session catalog");
            }
        }
    }

    fn ws_list(&self, inbound: &Inbound) {
        let current = self
            .policy(&inbound.scope)
            .map(|p| p.cwd.display().to_string())
            .unwrap_or_else(|e| e.to_string());
        let mut body = format!(
            "- **current**: {current}\n- **default**: {}\n",
            self.profile.workspaces.default.display()
        );
        match self.store.aliases() {
            Ok(list) if list.is_empty() => {
                body.push_str("\nNo saved workspaces yet: /ws save <name> saves the current one.")
            }
            Ok(list) => {
                for (name, path) in list {
                    body.push_str(&format!("- `{name}`: {path}\n"));
                }
            }
            Err(e) => return self.store_failed(inbound, "ws", e),
        }
        self.reply(inbound, "ws", true, "Workspaces", body);
    }

    fn timeout(&self, inbound: &Inbound, t: Timeout) {
        let scope = inbound.scope.as_str();
        let mut settings = self.settings(scope);
        settings.timeout_secs = match t {
            Timeout::Show => {
                let v = match self.idle_timeout(scope) {
                    None => "off".to_string(),
                    Some(d) => format!("{} minutes", d.as_secs().div_ceil(60)),
                };
                return self.reply(
                    inbound,
                    "timeout",
                    true,
                    &format!("Idle timeout: {v}"),
                    "A run that hears nothing from Codex for that long is stopped.".into(),
                );
            }
            Timeout::Minutes(m) => Some(m * 60),
            Timeout::Off => Some(0),
            Timeout::Default => None,
        };
        if let Err(e) = self.store.set_scope_settings(scope, &settings, now_ms()) {
            return self.store_failed(inbound, "timeout", e);
        }
        let v = match self.idle_timeout(scope) {
            None => "off".to_string(),
            Some(d) => format!("{} minutes", d.as_secs().div_ceil(60)),
        };
        self.reply(
            inbound,
            "timeout",
            true,
            &format!("Idle timeout here: {v}"),
            "Applies from the next run.".into(),
        );
    }

    fn new_group(&self, inbound: &Inbound, name: Option<String>) {
        if Chat::from_pb(inbound.chat_type()) == Some(Chat::Console) {
            return self.reply(inbound, "new", false, NOT_ON_CONSOLE, String::new());
        }
        let workspace = match self.policy(&inbound.scope) {
            Ok(p) => p.cwd.display().to_string(),
            Err(e) => {
                return self.reply(inbound, "new", false, "No group created", e.to_string());
            }
        };
        let name = name.filter(|n| !n.is_empty()).unwrap_or_else(|| {
            let base = std::path::Path::new(&workspace)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "workspace".into());
            format!("fcx: {base}")
        });
        let welcome = format!(
            "This group works in {workspace}. Mention me with a request; /help lists the commands."
        );
        self.reply_request(
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

    fn resume_list(&self, inbound: &Inbound) {
        let scope = inbound.scope.as_str();
        let p = match self.policy(scope) {
            Ok(p) => p,
            Err(e) => return self.reply(inbound, "resume", false, "Cannot resume", e.to_string()),
        };
        let cwd = p.cwd.display().to_string();
        let compatible = match self
            .store
            .catalog(Some(scope), Some((&cwd, &p.fingerprint)), 10)
        {
            Ok(v) => v,
            Err(e) => return self.store_failed(inbound, "resume", e),
        };
        let all = self
            .store
            .catalog(Some(scope), None, crate::store::CATALOG_PER_SCOPE)
            .map(|v| v.len())
            .unwrap_or(0);
        let current = self
            .store
            .session(scope)
            .ok()
            .flatten()
            .map(|s| s.thread_id);
        let now = Instant::now();
        let mut body = String::new();
        let mut buttons = Vec::new();
        {
            let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
            nonces.retain(|_, (_, _, exp)| *exp > now);
            for e in &compatible {
                let code = loop {
                    let c = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
                    if !nonces.contains_key(&c) {
                        break c;
                    }
                };
                nonces.insert(
                    code.clone(),
                    (scope.to_string(), e.thread_id.clone(), now + NONCE_TTL),
                );
                let age = ago(now_ms() - e.updated_at_ms);
                let is_current = current.as_deref() == Some(e.thread_id.as_str());
                let mark = if is_current { " (current)" } else { "" };
                let title = if e.title.is_empty() {
                    "untitled"
                } else {
                    e.title.as_str()
                };
                body.push_str(&format!("- `{code}`: {title}{mark}, {age}\n"));
                buttons.push(pb::Button {
                    action: pb::ActionKind::Resume as i32,
                    label: resume_label(&e.title, &e.thread_id, &age, is_current),
                    value: code,
                    style: "default".into(),
                });
            }
        }
        let hidden = all.saturating_sub(compatible.len());
        if compatible.is_empty() {
            body.push_str("No earlier session can continue here.");
        } else {
            body.push_str("\nSend /resume use <code> within 10 minutes.");
        }
        if hidden > 0 {
            body.push_str(&format!(
                "\n{hidden} other session(s) ran under another workspace, sandbox, access policy or identity and cannot continue here."
            ));
        }
        self.send_reply(
            inbound,
            pb::CommandReply {
                command: "resume".into(),
                title: "Sessions".into(),
                body,
                ok: true,
                buttons,
                ..Default::default()
            },
        );
    }

    /// Continue the session behind a `/resume` code. Returns whether it did,
    /// and the title of the answer.
    pub(super) fn resume_use(&self, inbound: &Inbound, code: &str) -> (bool, String) {
        let scope = inbound.scope.as_str();
        let found = {
            let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            nonces.retain(|_, (_, _, exp)| *exp > now);
            nonces.get(code).cloned()
        };
        let refuse = |title: &str, body: &str| {
            self.reply(inbound, "resume", false, title, body.into());
            (false, title.to_string())
        };
        let thread = match found {
            Some((s, thread, _)) if s == scope => thread,
            _ => {
                return refuse(
                    "That code is unknown or expired",
                    "Send /resume for fresh codes.",
                );
            }
        };
        let entry = match self.store.catalog_entry(scope, &thread) {
            Ok(Some(e)) => e,
            Ok(None) => {
                return refuse(
                    "That session is gone",
                    "Send /resume for the sessions that remain.",
                );
            }
            Err(e) => {
                self.store_failed(inbound, "resume", e);
                return (false, "fcx could not save that change".into());
            }
        };
        let p = match self.policy(scope) {
            Ok(p) => p,
            Err(e) => return refuse("Cannot resume", &e.to_string()),
        };
        let cwd = p.cwd.display().to_string();
        if entry.cwd != cwd || entry.fingerprint != p.fingerprint {
            tracing::info!(scope, thread = %thread, "resume refused: policy changed");
            return refuse(
                "Refused: this session cannot continue here",
                "The workspace, sandbox, access policy or identity changed since it ran, so Codex would continue it under different rules. Send /new or just write to start a fresh session.",
            );
        }
        if self.find_run(scope).is_some() {
            return refuse(
                "A run is in progress here",
                "Send /stop first, then /resume.",
            );
        }
        let row = SessionRow {
            scope: scope.to_string(),
            thread_id: thread.clone(),
            cwd,
            fingerprint: p.fingerprint,
            usage: Default::default(),
        };
        if let Err(e) = self.store.set_session(&row, now_ms()) {
            self.store_failed(inbound, "resume", e);
            return (false, "fcx could not save that change".into());
        }
        let title = if entry.title.is_empty() {
            thread
        } else {
            entry.title
        };
        self.reply(
            inbound,
            "resume",
            true,
            "Session resumed",
            format!("The next message continues \"{title}\"."),
        );
        (true, "Session resumed".into())
    }

    fn change_access(&self, inbound: &Inbound, cmd: &str, target: Target, op: AccessOp) {
        let by = actor_id(inbound).to_string();
        let verb = if op == AccessOp::Add {
            "added to"
        } else {
            "removed from"
        };
        let (list, ids, what) = match target {
            Target::Group => {
                if Chat::from_pb(inbound.chat_type()) != Some(Chat::Group)
                    || inbound.chat_id.is_empty()
                {
                    return self.reply(
                        inbound,
                        cmd,
                        false,
                        "Send this in the group itself",
                        format!("/{cmd} group acts on the group it is sent in."),
                    );
                }
                (LIST_CHATS, vec![inbound.chat_id.clone()], "enabled groups")
            }
            Target::Users(ids) => (LIST_USERS, with_mentions(ids, inbound), "allowed users"),
            Target::Admins(ids) => (LIST_ADMINS, with_mentions(ids, inbound), "admins"),
        };
        if ids.is_empty() {
            return self.reply(
                inbound,
                cmd,
                false,
                "Name someone",
                format!("Usage: /{cmd} user @someone (or their user id)"),
            );
        }
        let owner = self.lists().owner.clone();
        let mut done = Vec::new();
        for id in ids {
            if op == AccessOp::Remove && owner.as_deref() == Some(id.as_str()) {
                self.reply(
                    inbound,
                    cmd,
                    false,
                    "The owner cannot be removed",
                    String::new(),
                );
                continue;
            }
            if let Err(e) = self.store.access_change(list, &id, op, &by, now_ms()) {
                return self.store_failed(inbound, cmd, e);
            }
            tracing::info!(list, subject = %id, op = ?op, by = %by, "access list changed");
            done.push(id);
        }
        if let Err(e) = self.reload_lists() {
            return self.store_failed(inbound, cmd, e);
        }
        if !done.is_empty() {
            let body = if list == LIST_CHATS {
                if op == AccessOp::Add {
                    "Members can now mention me here.".to_string()
                } else {
                    "I will stay silent here.".to_string()
                }
            } else {
                done.join(", ")
            };
            self.reply(
                inbound,
                cmd,
                true,
                &format!("{} {verb} {what}", done.len()),
                body,
            );
        }
    }

    fn ps(&self, inbound: &Inbound) {
        let snap = self.snapshot();
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
        self.reply(
            inbound,
            "ps",
            true,
            &format!("{} run(s) in progress", snap.active.len()),
            body,
        );
    }

    fn doctor(&self, inbound: &Inbound) {
        {
            let mut last = self.doctor_last.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if let Some(t) = last.get(&inbound.scope)
                && now.duration_since(*t) < DOCTOR_INTERVAL
            {
                return self.reply(
                    inbound,
                    "doctor",
                    false,
                    "Doctor ran moments ago",
                    format!(
                        "Try again in {}s.",
                        (DOCTOR_INTERVAL - now.duration_since(*t)).as_secs() + 1
                    ),
                );
            }
            last.insert(inbound.scope.clone(), now);
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
            super::resolve_binary(&self.profile).map(|p| {
                p.file_name()
                    .map(|f| format!("found ({})", f.to_string_lossy()))
                    .unwrap_or_else(|| "found".into())
            }),
        );
        check(
            "credentials",
            match self.child_env() {
                Ok(_) => Ok(format!(
                    "{} (readable; not shown)",
                    self.profile.codex.auth.as_str()
                )),
                Err(_) => Err(format!(
                    "{}: the reference cannot be read; fix profiles.{}.codex",
                    self.profile.codex.auth.as_str(),
                    self.profile.name
                )),
            },
        );
        check(
            "workspace",
            self.policy(&inbound.scope)
                .map(|p| format!("ok, {} access", p.access.as_str()))
                .map_err(|e| e.to_string()),
        );
        check(
            "state",
            self.store
                .last_seq()
                .map(|s| format!("ok ({s} events)"))
                .map_err(|e| e.to_string()),
        );
        let snap = self.snapshot();
        check(
            "runs",
            Ok(format!(
                "{} active of {}, {} waiting",
                snap.active.len(),
                self.profile.runs.max_concurrent,
                snap.queued
            )),
        );
        let title = if ok {
            "All checks passed"
        } else {
            "Some checks failed"
        };
        self.reply(inbound, "doctor", ok, title, lines.join("\n"));
    }
}

pub(super) fn field(name: &str, value: &str) -> pb::Field {
    pb::Field {
        name: name.into(),
        value: value.into(),
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

/// A thread id as people read it: its first 8 characters.
pub(super) fn short_thread(id: &str) -> String {
    id.chars().take(8).collect()
}

/// A `/resume` button: the first words of the session's title (or its
/// thread id, short) and its age.
fn resume_label(title: &str, thread: &str, age: &str, current: bool) -> String {
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

/// Subjects written as ids plus the users the message @mentioned.
fn with_mentions(mut ids: Vec<String>, inbound: &Inbound) -> Vec<String> {
    for m in mention_ids(inbound) {
        if !ids.contains(&m) {
            ids.push(m);
        }
    }
    ids
}

/// Ids of the users a message @mentions (the gateway leaves the bot out).
fn mention_ids(inbound: &Inbound) -> Vec<String> {
    inbound
        .mentions
        .iter()
        .filter(|a| !a.id.is_empty())
        .map(|a| a.id.clone())
        .collect()
}
