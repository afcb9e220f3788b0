//! The session catalog: which Codex thread a scope continues, which earlier
//! threads may be resumed, and the policy fingerprint that decides both (a
//! thread only ever continues under the rules it started with). Also the
//! short-lived `/resume` codes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::context::Ctx;
use crate::policy::RunPolicy;
use crate::store::{
    CATALOG_PER_PROFILE, CATALOG_PER_SCOPE, CatalogEntry, RunTotals, SessionRow, StoreError,
};
use crate::util::now_ms;

/// How long a `/resume` code stays valid.
const CODE_TTL: Duration = Duration::from_secs(10 * 60);

/// What the next run of a scope continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Continue {
    /// The stored thread, started under the same policy.
    Thread(SessionRow),
    /// A stored thread exists but its policy changed: a new session.
    PolicyChanged,
    /// Nothing stored: a new session.
    Fresh,
}

/// Why a code does not lead to a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResumeRefusal {
    UnknownCode,
    Gone,
}

pub(crate) struct Catalog {
    ctx: Arc<Ctx>,
    /// `/resume` codes: code → (scope, thread id, expiry).
    codes: Mutex<HashMap<String, (String, String, Instant)>>,
}

impl Catalog {
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Catalog {
            ctx,
            codes: Mutex::new(HashMap::new()),
        }
    }

    /// Keep the catalog bounded.
    pub(crate) fn prune(&self) -> Result<usize, StoreError> {
        self.ctx
            .store
            .sessions()
            .catalog_prune(CATALOG_PER_SCOPE, CATALOG_PER_PROFILE)
    }

    /// What a run in `scope` under `policy` continues.
    pub(crate) fn next_run(&self, scope: &str, policy: &RunPolicy) -> Continue {
        // A comment run continues its document's thread.
        let scope = &fcx_proto::v1::Scope::continuity_of(scope);
        match self.ctx.store.sessions().session(scope) {
            Ok(Some(s)) if s.fingerprint == policy.fingerprint => Continue::Thread(s),
            Ok(Some(_)) => Continue::PolicyChanged,
            Ok(None) => Continue::Fresh,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the session");
                Continue::Fresh
            }
        }
    }

    /// `thread` is the scope's session now, with the thread's cumulative
    /// usage; recorded in the catalog under `title` (kept from its first run).
    pub(crate) fn save_session(
        &self,
        scope: &str,
        thread: &str,
        policy: &RunPolicy,
        cum: RunTotals,
        title: &str,
    ) {
        let scope = &fcx_proto::v1::Scope::continuity_of(scope);
        let row = SessionRow {
            scope: scope.to_string(),
            thread_id: thread.to_string(),
            cwd: policy.cwd.display().to_string(),
            fingerprint: policy.fingerprint.clone(),
            usage: cum,
        };
        if let Err(e) = self.ctx.store.sessions().set_session(&row, now_ms()) {
            tracing::error!(scope, error = %e, "cannot save the session");
        }
        if let Err(e) = self
            .ctx
            .store
            .sessions()
            .catalog_touch(&row, title, now_ms())
        {
            tracing::error!(scope, error = %e, "cannot record the session in the catalog");
        }
    }

    /// The scope's policy changed: its old threads can never continue.
    pub(crate) fn archive_incompatible(&self, scope: &str) {
        if let Ok(p) = self.ctx.policy(scope) {
            let cwd = p.cwd.display().to_string();
            if let Err(e) = self
                .ctx
                .store
                .sessions()
                .catalog_archive_incompatible(scope, &cwd, &p.fingerprint)
                .and_then(|_| self.prune())
            {
                tracing::warn!(scope, error = %e, "cannot maintain the session catalog");
            }
        }
    }

    /// Up to 10 threads that may continue in `scope` under `policy`, newest
    /// first, and how many others exist that may not.
    pub(crate) fn resumable(
        &self,
        scope: &str,
        policy: &RunPolicy,
    ) -> Result<(Vec<CatalogEntry>, usize), StoreError> {
        let cwd = policy.cwd.display().to_string();
        let compatible = self.ctx.store.sessions().catalog(
            Some(scope),
            Some((&cwd, &policy.fingerprint)),
            10,
        )?;
        let all = self
            .ctx
            .store
            .sessions()
            .catalog(Some(scope), None, CATALOG_PER_SCOPE)
            .map(|v| v.len())
            .unwrap_or(0);
        Ok((compatible.clone(), all.saturating_sub(compatible.len())))
    }

    /// A fresh code for continuing `thread` in `scope`.
    pub(crate) fn issue_code(&self, scope: &str, thread: &str) -> String {
        let now = Instant::now();
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, (_, _, exp)| *exp > now);
        let code = loop {
            let c = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
            if !codes.contains_key(&c) {
                break c;
            }
        };
        codes.insert(
            code.clone(),
            (scope.to_string(), thread.to_string(), now + CODE_TTL),
        );
        code
    }

    /// The catalog entry a live code of `scope` names.
    pub(crate) fn redeem(
        &self,
        scope: &str,
        code: &str,
    ) -> Result<Result<CatalogEntry, ResumeRefusal>, StoreError> {
        let found = {
            let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            codes.retain(|_, (_, _, exp)| *exp > now);
            codes.get(code).cloned()
        };
        let thread = match found {
            Some((s, thread, _)) if s == scope => thread,
            _ => return Ok(Err(ResumeRefusal::UnknownCode)),
        };
        Ok(self
            .ctx
            .store
            .sessions()
            .catalog_entry(scope, &thread)?
            .ok_or(ResumeRefusal::Gone))
    }

    /// Whether `entry` may continue under `policy`: same workspace and
    /// fingerprint, or Codex would continue it under different rules.
    pub(crate) fn fits(entry: &CatalogEntry, policy: &RunPolicy) -> bool {
        let ok = entry.cwd == policy.cwd.display().to_string()
            && entry.fingerprint == policy.fingerprint;
        if !ok {
            tracing::info!(scope = %entry.scope, thread = %entry.thread_id, "resume refused: policy changed");
        }
        ok
    }

    /// Make `entry` the scope's session: the next message continues it.
    pub(crate) fn resume(
        &self,
        entry: &CatalogEntry,
        policy: &RunPolicy,
    ) -> Result<(), StoreError> {
        let row = SessionRow {
            scope: entry.scope.clone(),
            thread_id: entry.thread_id.clone(),
            cwd: policy.cwd.display().to_string(),
            fingerprint: policy.fingerprint.clone(),
            usage: Default::default(),
        };
        self.ctx.store.sessions().set_session(&row, now_ms())
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
