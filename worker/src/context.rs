//! What every step of the data path shares: the profile, the home, the
//! state and the event log. Read-only apart from the store; each step keeps
//! its own state and receives this explicitly.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fcx_config::{AccessMode, Home, Profile};
use fcx_proto::v1::worker_event::Kind;

use crate::access::Lists;
use crate::events::EventBus;
use crate::pin::{self, Pin};
use crate::policy::{self, PolicyError, RunPolicy};
use crate::store::{ScopeSettings, Store};

pub(crate) struct Ctx {
    pub(crate) profile: Profile,
    pub(crate) home: Home,
    pub(crate) store: Arc<Store>,
    bus: EventBus,
    /// The runner's name, for `/status` and `Hello`.
    pub(crate) runner_name: &'static str,
    /// The profile default workspace as it was at start (or when it first
    /// resolved): runs refuse it once its realpath or directory changes.
    default_pin: OnceLock<Pin>,
    /// The access lists in force: the router's gate rebuilds them, a run
    /// reads its senders' roles from them (its sandbox cap).
    access: std::sync::Mutex<Lists>,
}

impl Ctx {
    pub(crate) fn new(
        profile: Profile,
        home: Home,
        store: Arc<Store>,
        bus: EventBus,
        runner_name: &'static str,
    ) -> Self {
        let ctx = Ctx {
            profile,
            home,
            store,
            bus,
            runner_name,
            default_pin: OnceLock::new(),
            access: std::sync::Mutex::new(Lists::default()),
        };
        ctx.pin_default();
        ctx
    }

    fn pin_default(&self) -> Option<&Pin> {
        if let Some(p) = self.default_pin.get() {
            return Some(p);
        }
        let real = policy::workspace(&self.profile.workspaces.default, &self.home).ok()?;
        let p = pin::pin(&real).ok()?;
        Some(self.default_pin.get_or_init(|| p))
    }

    /// Cancelled when the worker shuts down.
    pub(crate) fn stopping(&self) -> tokio_util::sync::CancellationToken {
        self.bus.stopping()
    }

    /// Record and publish one event; a failure is logged (the caller has
    /// nobody to tell; the event itself is kept and goes out late).
    pub(crate) fn emit(&self, scope: &str, run_id: &str, reply_to: &str, kind: Kind) {
        match self.bus.emit(scope, run_id, reply_to, kind) {
            Ok(_) => {}
            // Behind one already logged: said once, not per event.
            Err(e @ crate::events::EmitError::Waiting(_)) => {
                tracing::debug!(scope, run_id, error = %e, "event kept for the log");
            }
            Err(e) => tracing::error!(scope, run_id, error = %e, "cannot record an event"),
        }
    }

    /// The scope's settings: a comment run's are its document's (see
    /// `Scope::continuity`).
    pub(crate) fn settings(&self, scope: &str) -> ScopeSettings {
        let scope = &fcx_proto::v1::Scope::continuity_of(scope);
        self.store
            .settings()
            .scope_settings(scope)
            .unwrap_or_else(|e| {
                tracing::error!(scope, error = %e, "cannot read scope settings; using defaults");
                ScopeSettings::default()
            })
    }

    /// The run policy of `scope`; a comment run's is its document's, so
    /// the fingerprint matches across comments on the same document.
    pub(crate) fn policy(&self, scope: &str) -> Result<RunPolicy, PolicyError> {
        self.policy_capped(scope, AccessMode::Full)
    }

    /// [`Ctx::policy`] with the access mode at most `cap` (a run's senders'
    /// cap); the fingerprint is the capped policy's.
    pub(crate) fn policy_capped(
        &self,
        scope: &str,
        cap: AccessMode,
    ) -> Result<RunPolicy, PolicyError> {
        let scope = &fcx_proto::v1::Scope::continuity_of(scope);
        let settings = self.settings(scope);
        let default_pin = match settings.workspace {
            Some(_) => None,
            None => self.pin_default(),
        };
        policy::resolve_capped(
            &self.profile,
            &self.home,
            scope,
            &settings,
            default_pin,
            cap,
            self.one_to_one(scope),
        )
    }

    /// Whether `scope` is a one-to-one chat (a private chat or the
    /// console), by the newest message journaled there; anything else, or
    /// a scope whose journal is gone, counts as shared.
    pub(crate) fn one_to_one(&self, scope: &str) -> bool {
        use fcx_proto::v1::ChatType;
        if !scope.starts_with("chat:") {
            return false;
        }
        match self.store.journal().last_chat_type(scope) {
            Ok(Some(t)) => matches!(
                ChatType::try_from(t),
                Ok(ChatType::Private | ChatType::Console)
            ),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(scope, error = %e, "cannot read the scope's chat type");
                false
            }
        }
    }

    pub(crate) fn access_lists(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.access.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The scope's workspace as shown to people: its policy's, else the
    /// profile default (a run that fails on its policy still names one).
    pub(crate) fn workspace_of(&self, scope: &str) -> String {
        match self.policy(scope) {
            Ok(p) => p.cwd.display().to_string(),
            Err(_) => self.profile.workspaces.default.display().to_string(),
        }
    }

    pub(crate) fn idle_timeout(&self, scope: &str) -> Option<Duration> {
        let secs = self
            .settings(scope)
            .timeout_secs
            .unwrap_or(self.profile.runs.idle_timeout_secs);
        (secs > 0).then(|| Duration::from_secs(secs))
    }
}
