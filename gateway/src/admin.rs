//! The `fcx.v1.Gateway` admin service for fcxctl, on `$FCX_HOME/run/fcxd.sock`
//! (a 0700 directory: only the owner reaches it).

use std::sync::Arc;

use fcx_proto::v1::gateway_server::Gateway;
use fcx_proto::v1::{
    GatewayStatus, GatewayStatusRequest, ProcessEntry, ProfileStatus, PsRequest, PsResponse,
    ReloadRequest, ReloadResponse, RestartWorkerRequest, RestartWorkerResponse, StopRequest,
    StopResponse,
};
use fcx_proto::v1::{ProcessKind, WorkerState};
use fcx_proto::{BUILD_VERSION, PROTOCOL_VERSION};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::fleet::Fleet;

/// The channel of a profile served by `fcxd --console`: this terminal.
const CONSOLE: &str = "console";
/// The channel of a profile without `[app]` in daemon mode.
const NO_APP: &str = "none (no app)";

pub(crate) struct AdminService {
    pub(crate) home: String,
    pub(crate) started_at_ms: i64,
    /// The served profiles (changes on reload).
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) stop: CancellationToken,
}

#[tonic::async_trait]
impl Gateway for AdminService {
    async fn status(
        &self,
        _: Request<GatewayStatusRequest>,
    ) -> Result<Response<GatewayStatus>, Status> {
        let mut profiles = Vec::new();
        for unit in self.fleet.units() {
            let w = &unit.worker;
            let v = w.view();
            let st = w.status().await;
            let ch = unit.channel.as_ref().map(|c| c.view());
            profiles.push(ProfileStatus {
                name: v.profile.clone(),
                worker_state: WorkerState::from_word(v.phase.as_str()).unwrap_or_default() as i32,
                worker_pid: v.pid.unwrap_or(0),
                restarts: v.restarts,
                last_error: v.last_error,
                surfaces: unit.surface.iter().cloned().collect(),
                active_runs: st.as_ref().map_or(0, |s| s.active_runs.len() as u64),
                queued: st.as_ref().map_or(0, |s| s.queued),
                worker_started_at_ms: v.started_at_ms,
                channel_state: ch.as_ref().map_or_else(
                    || match unit.surface.as_deref() {
                        Some(CONSOLE) => CONSOLE.to_string(),
                        _ => NO_APP.to_string(),
                    },
                    |c| c.state.clone(),
                ),
                last_frame_at_ms: ch.as_ref().map_or(0, |c| c.last_frame_at_ms),
                last_event_at_ms: ch.as_ref().map_or(0, |c| c.last_event_at_ms),
                reconnects: ch.as_ref().map_or(0, |c| c.reconnects),
                bot_name: ch.map(|c| c.bot).unwrap_or_default(),
            });
        }
        Ok(Response::new(GatewayStatus {
            pid: std::process::id(),
            version: BUILD_VERSION.into(),
            started_at_ms: self.started_at_ms,
            home: self.home.clone(),
            profiles,
            protocol_version: PROTOCOL_VERSION,
        }))
    }

    async fn ps(&self, _: Request<PsRequest>) -> Result<Response<PsResponse>, Status> {
        let mut processes = vec![ProcessEntry {
            id: "g".into(),
            kind: ProcessKind::Fcxd as i32,
            pid: std::process::id(),
            profile: String::new(),
            started_at_ms: self.started_at_ms,
            scope: String::new(),
            detail: format!("fcxd {BUILD_VERSION}"),
        }];
        for unit in self.fleet.units() {
            let w = &unit.worker;
            let v = w.view();
            if let Some(pid) = v.pid {
                processes.push(ProcessEntry {
                    id: format!("w:{}", v.profile),
                    kind: ProcessKind::Worker as i32,
                    pid,
                    profile: v.profile.clone(),
                    started_at_ms: v.started_at_ms,
                    scope: String::new(),
                    detail: v.phase.as_str().into(),
                });
            }
            if let Some(st) = w.status().await {
                for r in st.active_runs {
                    processes.push(ProcessEntry {
                        id: format!("r:{}", r.run_id),
                        kind: ProcessKind::Codex as i32,
                        pid: r.child_pid,
                        profile: v.profile.clone(),
                        started_at_ms: r.started_at_ms,
                        scope: r.scope,
                        detail: r.workspace,
                    });
                }
            }
        }
        Ok(Response::new(PsResponse { processes }))
    }

    async fn restart_worker(
        &self,
        req: Request<RestartWorkerRequest>,
    ) -> Result<Response<RestartWorkerResponse>, Status> {
        let name = req.into_inner().profile;
        let Some(unit) = self.fleet.unit(&name) else {
            return Err(Status::not_found(format!(
                "no worker for profile {name} in this fcxd"
            )));
        };
        unit.worker.request_restart();
        Ok(Response::new(RestartWorkerResponse {
            message: format!(
                "restarting the worker for profile {name}; its running runs end as interrupted"
            ),
        }))
    }

    async fn reload(&self, _: Request<ReloadRequest>) -> Result<Response<ReloadResponse>, Status> {
        tracing::info!("reload requested over the admin socket");
        match self.fleet.reload().await {
            Ok(r) => Ok(Response::new(ReloadResponse {
                added: r.added,
                removed: r.removed,
                restarted: r.restarted,
                unchanged: r.unchanged,
                failed: r.failed,
            })),
            Err(e) => Err(Status::failed_precondition(e.to_string())),
        }
    }

    async fn stop(&self, _: Request<StopRequest>) -> Result<Response<StopResponse>, Status> {
        tracing::info!("stop requested over the admin socket");
        self.stop.cancel();
        Ok(Response::new(StopResponse {}))
    }
}
