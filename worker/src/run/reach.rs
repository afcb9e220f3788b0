//! The model-API watchdog. Codex retries an endpoint it cannot reach
//! without end (`Reconnecting... waiting for network`, with a growing
//! backoff), and every retry is an event, so the idle timeout never fires:
//! a run against an unreachable API would spin for ever. This bounds the
//! time Codex may spend retrying with nothing else happening.

use std::time::{Duration, Instant};

use super::end::span;
use crate::runner::RunnerEvent;

pub(super) struct ModelWatch {
    /// `runs.model_unreachable_secs`; `None` when it is 0 (off).
    limit: Option<Duration>,
    /// When Codex last did something other than retry or warn.
    last_progress: Instant,
    /// The latest retry since then.
    retrying: Option<String>,
}

impl ModelWatch {
    pub(super) fn new(limit_secs: u64, now: Instant) -> Self {
        ModelWatch {
            limit: (limit_secs > 0).then(|| Duration::from_secs(limit_secs)),
            last_progress: now,
            retrying: None,
        }
    }

    pub(super) fn saw(&mut self, ev: &RunnerEvent, now: Instant) {
        match ev {
            RunnerEvent::Retrying { message } => self.retrying = Some(message.clone()),
            // A warning (e.g. codex falling back from WebSockets to HTTPS
            // between two retries) is no sign the API answered.
            RunnerEvent::Warning { .. } => {}
            _ => {
                self.last_progress = now;
                self.retrying = None;
            }
        }
    }

    /// When the run is to fail, if Codex is retrying.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.retrying.as_ref()?;
        Some(self.last_progress + self.limit?)
    }

    /// The run's failure, for the user: what happened, Codex's own words,
    /// and where to look. `endpoint` is the API the profile's Codex uses,
    /// when fcx can tell.
    pub(super) fn failure(&self, endpoint: Option<&str>) -> String {
        let limit = self.limit.map(span).unwrap_or_default();
        let at = endpoint.map(|e| format!(" at {e}")).unwrap_or_default();
        let last = self.retrying.as_deref().unwrap_or("no answer");
        format!(
            "Codex could not reach the model API{at} for {limit} ({last}). Check the network, a proxy, and the model endpoint; /doctor checks whether it answers (runs.model_unreachable_secs sets this limit)."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> RunnerEvent {
        RunnerEvent::Retrying {
            message:
                "Reconnecting... waiting for network (Connection failed: error sending request)"
                    .into(),
        }
    }

    #[test]
    fn only_retries_without_progress_start_the_clock() {
        let t0 = Instant::now();
        let mut w = ModelWatch::new(90, t0);
        assert_eq!(w.deadline(), None);
        w.saw(&retry(), t0 + Duration::from_secs(1));
        // Counted from the last progress, not from the first retry.
        assert_eq!(w.deadline(), Some(t0 + Duration::from_secs(90)));
        w.saw(
            &RunnerEvent::Warning {
                message: "Falling back from WebSockets to HTTPS transport.".into(),
            },
            t0 + Duration::from_secs(6),
        );
        w.saw(&retry(), t0 + Duration::from_secs(60));
        assert_eq!(w.deadline(), Some(t0 + Duration::from_secs(90)));
        // The API answered: the clock stops until the next retry.
        w.saw(&RunnerEvent::TurnStarted, t0 + Duration::from_secs(70));
        assert_eq!(w.deadline(), None);
        w.saw(&retry(), t0 + Duration::from_secs(80));
        assert_eq!(w.deadline(), Some(t0 + Duration::from_secs(160)));
    }

    #[test]
    fn zero_turns_it_off_and_the_failure_names_the_cause() {
        let t0 = Instant::now();
        let mut w = ModelWatch::new(0, t0);
        w.saw(&retry(), t0);
        assert_eq!(w.deadline(), None);

        let mut w = ModelWatch::new(90, t0);
        w.saw(&retry(), t0);
        let m = w.failure(Some("http://127.0.0.1:9/v1"));
        assert!(
            m.starts_with(
                "Codex could not reach the model API at http://127.0.0.1:9/v1 for 90 seconds (Reconnecting... waiting for network"
            ),
            "{m}"
        );
        assert!(m.contains("/doctor"), "{m}");
    }
}
