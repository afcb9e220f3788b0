//! How a run ends: the end state from what stopped it and what the runner
//! reported, and the per-run usage arithmetic.

use std::time::Duration;

use fcx_proto::v1 as pb;

use super::StopReason;
use crate::runner::{Outcome, TokenUsage};
use crate::store::RunTotals;

pub(crate) struct Finished {
    pub(crate) reason: pb::DoneReason,
    pub(crate) detail: String,
    pub(crate) final_text: String,
    pub(crate) totals: RunTotals,
    /// Codex reported token usage for this run (else `totals` is zero
    /// because nothing was known, not because nothing was used).
    pub(crate) usage_known: bool,
}

pub(crate) fn failed(detail: String) -> Finished {
    Finished {
        reason: pb::DoneReason::Failed,
        detail,
        final_text: String::new(),
        totals: RunTotals::default(),
        usage_known: false,
    }
}

/// What the per-run log line says about one ended run.
pub(crate) struct Summary<'a> {
    pub(crate) scope: &'a str,
    pub(crate) run_id: &'a str,
    pub(crate) runner: &'a str,
    pub(crate) outcome: &'static str,
    pub(crate) duration_ms: u64,
    pub(crate) messages: usize,
    pub(crate) usage: Option<RunTotals>,
}

/// The log target of the per-run line, so tooling can select it.
pub(crate) const SUMMARY_TARGET: &str = "fcx::run";

/// One structured line per ended run (`"message":"run summary"`): figures
/// an operator can aggregate. Never the prompt, the answer or the failure
/// detail (those are chat text; the detail has its own line).
pub(crate) fn log_summary(s: &Summary<'_>) {
    // A `None` field is left out of the line, as a run without usage has
    // no token figures to report.
    let u = s.usage;
    tracing::info!(
        target: SUMMARY_TARGET,
        scope = s.scope,
        run_id = s.run_id,
        runner = s.runner,
        outcome = s.outcome,
        duration_ms = s.duration_ms,
        messages = s.messages,
        input_tokens = u.map(|u| u.input_tokens),
        cached_input_tokens = u.map(|u| u.cached_input_tokens),
        output_tokens = u.map(|u| u.output_tokens),
        reasoning_output_tokens = u.map(|u| u.reasoning_output_tokens),
        "run summary"
    );
}

/// How a run that was stopped before it could start ends.
pub(crate) fn stopped_before_start(stop: Option<StopReason>) -> Finished {
    let (reason, detail) = end_state(stop, &Outcome::Interrupted, Duration::ZERO);
    Finished {
        reason,
        detail,
        final_text: String::new(),
        totals: RunTotals::default(),
        usage_known: false,
    }
}

/// The reason and detail a run ends with: a stop from outside wins over
/// what the runner says. `idle` is the scope's idle timeout, for its text.
pub(crate) fn end_state(
    stop: Option<StopReason>,
    outcome: &Outcome,
    idle: Duration,
) -> (pb::DoneReason, String) {
    match (stop, outcome) {
        (Some(StopReason::TimedOut), _) => (
            pb::DoneReason::TimedOut,
            format!("no activity from Codex for {}", span(idle)),
        ),
        (Some(StopReason::User), _) => (pb::DoneReason::Interrupted, "stopped".to_string()),
        (Some(StopReason::NewSession), _) => (
            pb::DoneReason::Interrupted,
            "stopped for a new session".to_string(),
        ),
        (Some(StopReason::Superseded), _) => (
            pb::DoneReason::Interrupted,
            "stopped to answer the newer messages".to_string(),
        ),
        (Some(StopReason::ModelUnreachable), Outcome::Failed { message }) => {
            (pb::DoneReason::Failed, message.clone())
        }
        (Some(StopReason::ModelUnreachable), _) => (
            pb::DoneReason::Failed,
            "Codex could not reach the model API".to_string(),
        ),
        (Some(StopReason::Shutdown), _) => (
            pb::DoneReason::Interrupted,
            "fcx is shutting down".to_string(),
        ),
        (None, Outcome::Completed) => (pb::DoneReason::Completed, String::new()),
        (None, Outcome::Interrupted) => (pb::DoneReason::Interrupted, "stopped".to_string()),
        (None, Outcome::Failed { message }) | (None, Outcome::ThreadNotFound { message }) => {
            (pb::DoneReason::Failed, message.clone())
        }
    }
}

/// The run's state as the store records it.
pub(crate) fn state_name(reason: pb::DoneReason) -> &'static str {
    match reason {
        pb::DoneReason::Completed => "completed",
        pb::DoneReason::Interrupted => "interrupted",
        pb::DoneReason::TimedOut => "timed_out",
        _ => "failed",
    }
}

pub(crate) fn totals(u: TokenUsage) -> RunTotals {
    RunTotals {
        input_tokens: u.input_tokens,
        cached_input_tokens: u.cached_input_tokens,
        output_tokens: u.output_tokens,
        reasoning_output_tokens: u.reasoning_output_tokens,
    }
}

/// Per-run usage from thread totals (Codex reports cumulative figures).
pub(crate) fn diff(cum: RunTotals, base: RunTotals) -> RunTotals {
    RunTotals {
        input_tokens: cum.input_tokens.saturating_sub(base.input_tokens),
        cached_input_tokens: cum
            .cached_input_tokens
            .saturating_sub(base.cached_input_tokens),
        output_tokens: cum.output_tokens.saturating_sub(base.output_tokens),
        reasoning_output_tokens: cum
            .reasoning_output_tokens
            .saturating_sub(base.reasoning_output_tokens),
    }
}

pub(crate) fn usage_pb(t: RunTotals) -> pb::Usage {
    pb::Usage {
        input_tokens: t.input_tokens,
        cached_input_tokens: t.cached_input_tokens,
        output_tokens: t.output_tokens,
        reasoning_output_tokens: t.reasoning_output_tokens,
    }
}

/// "45 seconds", "1 minute", "30 minutes": how long, as a user reads it.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s < 120 && !s.is_multiple_of(60) {
        (s, "second")
    } else {
        (s.div_ceil(60), "minute")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_from_outside_wins_over_the_outcome() {
        let idle = Duration::from_secs(90);
        let (r, d) = end_state(Some(StopReason::TimedOut), &Outcome::Completed, idle);
        assert_eq!(r, pb::DoneReason::TimedOut);
        assert_eq!(d, "no activity from Codex for 90 seconds");
        let (r, d) = end_state(Some(StopReason::Shutdown), &Outcome::Interrupted, idle);
        assert_eq!(
            (r, d.as_str()),
            (pb::DoneReason::Interrupted, "fcx is shutting down")
        );
        let (r, d) = end_state(Some(StopReason::NewSession), &Outcome::Completed, idle);
        assert_eq!(
            (r, d.as_str()),
            (pb::DoneReason::Interrupted, "stopped for a new session")
        );
        let (r, d) = end_state(
            None,
            &Outcome::Failed {
                message: "boom".into(),
            },
            idle,
        );
        assert_eq!((r, d.as_str()), (pb::DoneReason::Failed, "boom"));
        let (r, d) = end_state(None, &Outcome::Completed, idle);
        assert_eq!((r, d.as_str()), (pb::DoneReason::Completed, ""));
        assert_eq!(state_name(pb::DoneReason::TimedOut), "timed_out");
        assert_eq!(state_name(pb::DoneReason::Unspecified), "failed");
    }

    #[test]
    fn usage_is_per_run_and_never_negative() {
        let cum = RunTotals {
            input_tokens: 100,
            cached_input_tokens: 10,
            output_tokens: 7,
            reasoning_output_tokens: 1,
        };
        let base = RunTotals {
            input_tokens: 60,
            cached_input_tokens: 20,
            output_tokens: 2,
            reasoning_output_tokens: 0,
        };
        let d = diff(cum, base);
        assert_eq!(
            (d.input_tokens, d.cached_input_tokens, d.output_tokens),
            (40, 0, 5)
        );
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(Duration::from_secs(45)), "45 seconds");
        assert_eq!(span(Duration::from_secs(60)), "1 minute");
        assert_eq!(span(Duration::from_secs(30 * 60)), "30 minutes");
    }
}
