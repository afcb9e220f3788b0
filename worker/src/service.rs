//! The `fcx.v1.Worker` gRPC service, served on the profile's local socket.

use std::sync::Arc;

use fcx_proto::v1::action::Kind;
use fcx_proto::v1::worker_server::Worker;
use fcx_proto::v1::{
    Ack, ActResult, Action, EventsRequest, HelloRequest, HelloResponse, Inbound, PlatformInfo,
    PlatformInfoAck, ShutdownRequest, ShutdownResponse, StatusRequest, WorkerEvent, WorkerStatus,
};
use fcx_proto::{BUILD_VERSION, PROTOCOL_VERSION, version_mismatch_message};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::events::EventBus;
use crate::router::Router;
use crate::scheduler::{DeliverError, Scheduler};

pub(crate) struct WorkerService {
    pub(crate) profile: String,
    pub(crate) runner: &'static str,
    pub(crate) router: Arc<Router>,
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) bus: EventBus,
    /// Cancelled by `Shutdown`; the main loop then stops runs and exits.
    pub(crate) shutdown_requested: CancellationToken,
}

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        let r = req.into_inner();
        if r.protocol_version != PROTOCOL_VERSION {
            tracing::error!(
                ours = PROTOCOL_VERSION,
                theirs = r.protocol_version,
                "refusing a gateway with another protocol version"
            );
            return Err(Status::failed_precondition(version_mismatch_message(
                PROTOCOL_VERSION,
                r.protocol_version,
                "gateway",
            )));
        }
        self.router.set_gateway_caps(r.capabilities);
        Ok(Response::new(HelloResponse {
            protocol_version: PROTOCOL_VERSION,
            worker_version: BUILD_VERSION.into(),
            profile: self.profile.clone(),
            capabilities: fcx_proto::caps::WORKER
                .iter()
                .map(|s| s.to_string())
                .collect(),
            pid: std::process::id(),
            last_seq: self.bus.last_seq().map_err(internal)?,
            runner: runner_kind(self.runner) as i32,
            media: Some(crate::media::limits()),
        }))
    }

    async fn deliver(&self, req: Request<Inbound>) -> Result<Response<Ack>, Status> {
        match self.router.deliver(req.into_inner()) {
            Ok(ack) => Ok(Response::new(ack)),
            Err(DeliverError::Invalid(m)) => Err(Status::invalid_argument(m)),
            Err(DeliverError::Busy(m)) => Err(Status::resource_exhausted(m)),
            Err(DeliverError::ShuttingDown) => {
                Err(Status::unavailable("the worker is shutting down"))
            }
            // Its own code, so fcxd can tell the user (disk full,
            // read-only state directory) while leaving the message for the
            // platform to redeliver once writes work again.
            Err(DeliverError::Store(e)) => {
                tracing::error!(error = %e, "cannot store an incoming message");
                Err(Status::failed_precondition(
                    "fcx cannot save messages right now",
                ))
            }
        }
    }

    type EventsStream = ReceiverStream<Result<WorkerEvent, Status>>;

    async fn events(
        &self,
        req: Request<EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        Ok(Response::new(
            self.bus.subscribe_from(req.into_inner().from_seq),
        ))
    }

    async fn act(&self, req: Request<Action>) -> Result<Response<ActResult>, Status> {
        let a = req.into_inner();
        match &a.kind {
            Some(Kind::Stop(stop)) if !a.fingerprint.is_empty() => {
                // From a card button: policy is checked again here.
                match self.router.stop_checked(&a) {
                    Ok(ok) => Ok(Response::new(ActResult {
                        ok,
                        message: if ok {
                            "stopping".into()
                        } else {
                            "that run is no longer active".into()
                        },
                    })),
                    Err(why) => {
                        tracing::warn!(scope = %a.scope, run_id = %stop.run_id, %why, "card stop refused");
                        Ok(Response::new(ActResult {
                            ok: false,
                            message: why,
                        }))
                    }
                }
            }
            // An empty fingerprint would skip every check: invalid.
            Some(Kind::Stop(_)) => Err(Status::invalid_argument(
                "a stop action needs the card's policy fingerprint",
            )),
            Some(Kind::Command(_) | Kind::Config(_) | Kind::Resume(_)) => {
                if a.scope.is_empty() {
                    return Err(Status::invalid_argument("a card action needs a scope"));
                }
                let r = self.router.card_action(&a);
                if !r.ok {
                    tracing::info!(scope = %a.scope, kind = ?a.action_kind(), message = %r.message, "card action not carried out");
                }
                Ok(Response::new(r))
            }
            Some(Kind::Approval(_)) => {
                if a.scope.is_empty() {
                    return Err(Status::invalid_argument("an approval needs a scope"));
                }
                let r = self.router.approval_action(&a);
                if !r.ok {
                    tracing::info!(scope = %a.scope, message = %r.message, "approval not carried out");
                }
                Ok(Response::new(r))
            }
            Some(Kind::Thread(_)) => {
                if a.scope.is_empty() {
                    return Err(Status::invalid_argument("a thread action needs a scope"));
                }
                let r = self.router.thread_action(&a);
                if !r.ok {
                    tracing::info!(scope = %a.scope, message = %r.message, "thread action not carried out");
                }
                Ok(Response::new(r))
            }
            Some(Kind::RunLate(_)) => {
                if a.scope.is_empty() {
                    return Err(Status::invalid_argument("a run-late action needs a scope"));
                }
                let r = self.router.run_late(&a);
                if !r.ok {
                    tracing::info!(scope = %a.scope, message = %r.message, "late message not run");
                }
                Ok(Response::new(r))
            }
            Some(Kind::GroupCreated(g)) => {
                if a.scope.is_empty() || g.source_scope.is_empty() {
                    return Err(Status::invalid_argument(
                        "GROUP_CREATED needs scope and source_scope",
                    ));
                }
                let by = a.actor.as_ref().map_or("", |x| x.id.as_str());
                self.router
                    .group_created(&a.scope, &g.chat_id, &g.source_scope, by)
                    .map_err(internal)?;
                Ok(Response::new(ActResult {
                    ok: true,
                    message: "the group is enabled".into(),
                }))
            }
            None => Err(Status::invalid_argument("unknown action")),
        }
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<WorkerStatus>, Status> {
        let s = self.scheduler.snapshot();
        Ok(Response::new(WorkerStatus {
            profile: self.profile.clone(),
            pid: std::process::id(),
            started_at_ms: s.started_at_ms,
            runner: runner_kind(self.runner) as i32,
            active_runs: s.active,
            queued: s.queued,
            last_seq: self.bus.last_seq().map_err(internal)?,
            version: BUILD_VERSION.into(),
        }))
    }

    async fn set_platform(
        &self,
        req: Request<PlatformInfo>,
    ) -> Result<Response<PlatformInfoAck>, Status> {
        let (owner_id, owner_source) = self
            .router
            .set_platform(&req.into_inner())
            .map_err(internal)?;
        Ok(Response::new(PlatformInfoAck {
            owner_id,
            owner_source: fcx_proto::v1::OwnerSource::from_word(&owner_source).unwrap_or_default()
                as i32,
        }))
    }

    async fn shutdown(
        &self,
        req: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        tracing::info!(reason = %req.into_inner().reason, "shutdown requested by the gateway");
        self.shutdown_requested.cancel();
        Ok(Response::new(ShutdownResponse {}))
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "internal error");
    Status::internal(e.to_string())
}

/// The contract's name for the runner in use (`Runner::name`).
fn runner_kind(name: &str) -> fcx_proto::v1::RunnerKind {
    fcx_proto::v1::RunnerKind::from_word(name).unwrap_or_default()
}
