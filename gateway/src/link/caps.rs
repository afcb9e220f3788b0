//! What the connected worker announced at `Hello`: the gateway offers a
//! feature (a Stop button, command-card buttons, a `/config` form) only when
//! the worker said it can carry it out.

use std::sync::{Arc, RwLock};

use fcx_proto::caps;
use fcx_proto::v1::{ActionKind, MediaLimits};

/// Shared by the supervisor (which replaces the set at every `Hello`) and
/// the surfaces (which read it). Empty before the first `Hello`.
#[derive(Clone, Default, Debug)]
pub(crate) struct WorkerCaps(Arc<RwLock<Vec<String>>>, Arc<RwLock<Option<MediaLimits>>>);

impl WorkerCaps {
    /// A set fixed from the start.
    #[cfg(test)]
    pub(crate) fn of(caps: &[&str]) -> Self {
        let c = WorkerCaps::default();
        c.set(caps.iter().map(|s| s.to_string()).collect());
        c
    }

    pub(crate) fn set(&self, caps: Vec<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = caps;
    }

    pub(crate) fn set_media(&self, media: Option<MediaLimits>) {
        *self.1.write().unwrap_or_else(|p| p.into_inner()) = media;
    }

    /// The attachment limits the worker stated (`None`: it takes none).
    pub(crate) fn media(&self) -> Option<MediaLimits> {
        self.1.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn has(&self, cap: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|c| c == cap)
    }

    /// Whether a button of this kind may be offered.
    pub(crate) fn offers(&self, action: ActionKind) -> bool {
        match action {
            ActionKind::Stop => self.has(caps::STOP),
            ActionKind::Command | ActionKind::Config | ActionKind::Resume | ActionKind::RunLate => {
                self.has(caps::COMMAND_CARDS)
            }
            ActionKind::GroupCreated => self.has(caps::GROUP_CREATED),
            ActionKind::Approval => self.has(caps::APPROVALS),
            ActionKind::Thread => self.has(caps::THREADS),
            ActionKind::Unspecified => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_announced_actions_are_offered() {
        let none = WorkerCaps::default();
        assert!(!none.offers(ActionKind::Stop));
        let stop_only = WorkerCaps::of(&[caps::STOP]);
        assert!(stop_only.offers(ActionKind::Stop));
        assert!(!stop_only.offers(ActionKind::Command));
        assert!(!stop_only.offers(ActionKind::Config));
        let all = WorkerCaps::of(caps::WORKER);
        for k in [
            ActionKind::Stop,
            ActionKind::Command,
            ActionKind::Config,
            ActionKind::Resume,
            ActionKind::GroupCreated,
            ActionKind::Approval,
            ActionKind::Thread,
            ActionKind::RunLate,
        ] {
            assert!(all.offers(k), "{k:?}");
        }
        all.set(vec![]);
        assert!(
            !all.offers(ActionKind::Stop),
            "a new Hello replaces the set"
        );
    }
}
