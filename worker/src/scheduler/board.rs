//! The scheduler's queue board: the per-scope queues behind the one lock
//! every accept and every run start takes, the schedule loop's wake-up, and
//! the `Queued` announcement each accepted message gets at once.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{self as pb};
use tokio::sync::Notify;

use super::batch_run_id;
use super::queue::Queues;
use crate::context::Ctx;
use crate::store::QueuedMessage;

pub(super) struct Board {
    ctx: Arc<Ctx>,
    queues: Mutex<Queues>,
    /// Wakes the schedule loop: something may start now.
    pub(super) wake: Notify,
}

impl Board {
    pub(super) fn new(ctx: Arc<Ctx>) -> Self {
        Board {
            ctx,
            queues: Mutex::new(Queues::default()),
            wake: Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic while holding the lock is a bug; keep serving with the state
        // as it was rather than taking every scope down with it.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `message` for its scope's next run and announce it. Under the
    /// lock that starts runs: the run's RunStarted cannot overtake the
    /// announcement.
    pub(super) fn queue(
        &self,
        q: &mut Queues,
        message: QueuedMessage,
        reply_mode: &str,
        interrupting: bool,
        arrived: Instant,
    ) {
        let scope = message.scope.clone();
        let message_id = message.inbound.message_id.clone();
        q.push(message, Some(arrived));
        self.announce(q, &scope, message_id, reply_mode, interrupting);
    }

    /// Queue `message` for the next run after all (its steer did not
    /// happen), unless the worker is draining: it is accepted and
    /// committed, so the next worker runs it.
    pub(super) fn requeue(&self, message: QueuedMessage, reply_mode: &str) {
        {
            let mut q = self.lock();
            if q.draining {
                return;
            }
            // Its first arrival was spent on a steer that did not happen:
            // it waits from now, like a message just sent.
            self.queue(&mut q, message, reply_mode, false, Instant::now());
        }
        self.wake.notify_one();
    }

    /// Tell the chat at once that `message_id` was accepted, for which run
    /// and what (if anything) holds that run back.
    fn announce(
        &self,
        q: &Queues,
        scope: &str,
        message_id: String,
        reply_mode: &str,
        interrupting: bool,
    ) {
        let Some((first, count)) = q.batch(scope) else {
            return;
        };
        let runs = &self.ctx.profile.runs;
        let reason = if interrupting {
            pb::QueueReason::Interrupting
        } else if q.active(scope).is_some() {
            pb::QueueReason::ScopeBusy
        } else if q.active_count() >= runs.max_concurrent {
            pb::QueueReason::PoolFull
        } else if runs.debounce_ms > 0 {
            pb::QueueReason::QuietWindow
        } else {
            pb::QueueReason::None
        };
        self.ctx.emit(
            scope,
            &batch_run_id(first),
            &first.inbound.message_id,
            Kind::Queued(pb::Queued {
                message_id,
                message_count: count as u32,
                reason: reason as i32,
                reply_mode: pb::ReplyMode::from_word(reply_mode).unwrap_or_default() as i32,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fcx_config::RunsConfig;

    use super::*;
    use crate::testkit::{self, Kit};

    fn message(scope: &str, id: i64) -> QueuedMessage {
        QueuedMessage {
            inbox_id: id,
            scope: scope.into(),
            inbound: pb::Inbound {
                scope: scope.into(),
                ..testkit::private(&format!("e{id}"), testkit::USER, "t")
            },
            accepted_at_ms: id,
        }
    }

    fn announced(kit: &Kit) -> Vec<pb::Queued> {
        kit.events()
            .into_iter()
            .filter_map(|e| match e.kind {
                Some(Kind::Queued(q)) => Some(q),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_requeued_message_waits_is_announced_and_wakes_the_loop_unless_draining() {
        let kit = testkit::kit(RunsConfig::default());
        let board = Board::new(kit.ctx.clone());
        let first = message("chat:a", 1);
        let first_id = first.inbound.message_id.clone();
        board.requeue(first, "card");
        assert_eq!(board.lock().waiting_in("chat:a"), 1);
        // notify_one leaves a permit: the loop's next wait returns at once.
        tokio::time::timeout(Duration::from_secs(10), board.wake.notified())
            .await
            .expect("the schedule loop is woken");
        let q = announced(&kit);
        assert_eq!(q.len(), 1, "{q:?}");
        assert_eq!(
            (q[0].message_id.as_str(), q[0].message_count),
            (first_id.as_str(), 1)
        );
        assert_eq!(q[0].reason, pb::QueueReason::None as i32);

        // Draining: it stays committed for the next worker, not queued here.
        board.lock().draining = true;
        board.requeue(message("chat:a", 2), "card");
        assert_eq!(board.lock().waiting_in("chat:a"), 1);
        assert_eq!(announced(&kit).len(), 1);
    }
}
