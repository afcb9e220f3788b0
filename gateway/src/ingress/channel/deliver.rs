//! Handing a message to the worker inside the ACK window, in its scope's
//! order, and the ACK that follows from the worker's answer.

use fcx_proto::v1 as pb;
use tokio::time::{Duration, Instant};

use super::Handler;
use crate::egress::deferred::Deferred;
use crate::feishu::frame::AckReply;
use crate::ingress::order::{Refused, Ticket};
use crate::link::supervisor::DeliverError;

/// Told once per message when the worker cannot store it.
const STORAGE_NOTICE: &str = "⚠️ fcx cannot save messages right now (its disk is full or its state directory is not writable). This message is kept by the platform and will run once fcx can save it.";

impl Handler {
    /// Hands `inbound` to the worker within the ACK window, after the
    /// events before it in its scope (`ticket`): acknowledged once the
    /// worker committed it (or the sender was told why not).
    pub(super) async fn deliver(
        &self,
        inbound: pb::Inbound,
        deadline: Instant,
        ticket: Option<Ticket>,
    ) -> AckReply {
        let id = inbound.event_id.clone();
        let message_id = inbound.message_id.clone();
        let attachments = inbound.attachments.clone();
        // Leave room to send the ACK itself before the deadline.
        let until = deadline - Duration::from_millis(150);
        let deliver = async {
            if let Some(t) = &ticket {
                t.turn().await?;
            }
            // Only fails once closed, which this one never is.
            let Ok(_slot) = self.deliver_slots.acquire().await else {
                return Ok(None);
            };
            Ok(Some(self.worker.deliver(inbound).await))
        };
        let delivered = match tokio::time::timeout_at(until, deliver).await {
            Ok(Ok(d)) => d,
            Ok(Err(Refused::Behind | Refused::Full)) => {
                tracing::warn!(profile = %self.profile, %id, "an earlier message of its chat was not taken; not acknowledging so the platform redelivers both, in order");
                return AckReply::NoAck;
            }
            Err(_) => None,
        };
        let reply = self
            .settle(id, message_id, attachments, delivered, deadline)
            .await;
        // Answered for good: the scope's next event may go.
        if let (Some(t), AckReply::Ok) = (ticket, &reply) {
            t.committed();
        }
        reply
    }

    /// The ACK for a delivery (`None`: the worker did not answer in time).
    async fn settle(
        &self,
        id: String,
        message_id: String,
        attachments: Vec<pb::Attachment>,
        delivered: Option<Result<pb::Ack, DeliverError>>,
        deadline: Instant,
    ) -> AckReply {
        match delivered {
            Some(Ok(ack)) => {
                self.remember(&id);
                // After the worker has the message (its Queued feedback is
                // out) and without holding the ACK.
                if ack.fetch_attachments {
                    self.fetch(message_id, attachments);
                }
                AckReply::Ok
            }
            // The user is told either way; a notice that cannot be
            // queued in time leaves the event for a redelivery.
            Some(Err(DeliverError::Busy(text))) => {
                let notice = Deferred::Notice {
                    message_id,
                    text: format!("⏳ {text}"),
                };
                if !self.defer(notice, deadline).await {
                    return AckReply::NoAck;
                }
                self.remember(&id);
                AckReply::Ok
            }
            Some(Err(DeliverError::Refused(why))) => {
                tracing::warn!(profile = %self.profile, %id, %why, "the worker refused a message");
                let notice = Deferred::Notice {
                    message_id,
                    text: format!("⚠️ fcx could not take this message: {why}"),
                };
                if !self.defer(notice, deadline).await {
                    return AckReply::NoAck;
                }
                self.remember(&id);
                AckReply::Ok
            }
            Some(Err(DeliverError::Storage(why))) => {
                tracing::error!(profile = %self.profile, %id, %why, "the worker cannot store messages; not acknowledging so the platform redelivers");
                let first = self
                    .told_storage
                    .lock()
                    .map(|mut t| t.insert(&id, Instant::now()))
                    .unwrap_or(false);
                if first {
                    let notice = Deferred::Notice {
                        message_id,
                        text: STORAGE_NOTICE.to_string(),
                    };
                    // Not acknowledged either way: the platform brings the
                    // message back, and it runs once writes work again.
                    let _ = self.defer(notice, deadline).await;
                }
                AckReply::NoAck
            }
            Some(Err(DeliverError::Unavailable(_))) | None => {
                tracing::warn!(profile = %self.profile, %id, "the worker could not accept in time; not acknowledging so the platform redelivers");
                AckReply::NoAck
            }
        }
    }
}
