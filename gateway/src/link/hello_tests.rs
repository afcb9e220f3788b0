//! The gateway's half of `Hello`: a worker that speaks another protocol
//! version is refused with the shared sentence, and what a worker announces
//! is what the gateway gets back.

use fcx_proto::v1::worker_server::{Worker, WorkerServer};
use fcx_proto::v1::{
    Ack, ActResult, Action, EventsRequest, HelloResponse, Inbound, PlatformInfo, PlatformInfoAck,
    ShutdownRequest, ShutdownResponse, StatusRequest, WorkerEvent, WorkerStatus,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::*;

/// A worker that answers Hello with a fixed version and capabilities.
struct FakeWorker {
    version: u32,
    caps: Vec<String>,
}

fn nope<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("fake"))
}

#[tonic::async_trait]
impl Worker for FakeWorker {
    async fn hello(&self, _: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        Ok(Response::new(HelloResponse {
            protocol_version: self.version,
            capabilities: self.caps.clone(),
            last_seq: 7,
            ..Default::default()
        }))
    }
    async fn deliver(&self, _: Request<Inbound>) -> Result<Response<Ack>, Status> {
        nope()
    }
    type EventsStream = tokio_stream::Empty<Result<WorkerEvent, Status>>;
    async fn events(
        &self,
        _: Request<EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        nope()
    }
    async fn act(&self, _: Request<Action>) -> Result<Response<ActResult>, Status> {
        nope()
    }
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<WorkerStatus>, Status> {
        nope()
    }
    async fn shutdown(
        &self,
        _: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        nope()
    }
    async fn set_platform(
        &self,
        _: Request<PlatformInfo>,
    ) -> Result<Response<PlatformInfoAck>, Status> {
        nope()
    }
}

async fn serve(dir: &tempfile::TempDir, w: FakeWorker) -> (SocketAddr, CancellationToken) {
    let addr = SocketAddr::new(dir.path().join("w.sock"));
    let listener = fcx_ipc::bind(&addr).await.expect("bind");
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(WorkerServer::new(w))
            .serve_with_incoming_shutdown(listener.incoming(), s.cancelled_owned())
            .await;
    });
    (addr, stop)
}

#[tokio::test]
async fn a_worker_with_another_protocol_version_is_refused_with_the_shared_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, stop) = serve(
        &dir,
        FakeWorker {
            version: PROTOCOL_VERSION + 1,
            caps: vec![],
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = match connect_and_hello(&addr, "p", deadline).await {
        Ok(_) => panic!("a mismatched worker was accepted"),
        Err(ConnectError::Mismatch(e)) => e,
        Err(e) => panic!("not refused as a mismatch: {}", e.into_message()),
    };
    stop.cancel();
    assert_eq!(
        err,
        version_mismatch_message(PROTOCOL_VERSION, PROTOCOL_VERSION + 1, "worker")
    );
    assert!(err.contains("protocol version mismatch"), "{err}");
}

#[tokio::test]
async fn a_matching_worker_is_accepted_with_what_it_announced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, stop) = serve(
        &dir,
        FakeWorker {
            version: PROTOCOL_VERSION,
            caps: vec![fcx_proto::caps::STOP.into()],
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let hello = match connect_and_hello(&addr, "p", deadline).await {
        Ok(h) => h,
        Err(e) => panic!("refused: {}", e.into_message()),
    };
    stop.cancel();
    assert_eq!(hello.last_seq, 7);
    assert_eq!(hello.caps, vec![fcx_proto::caps::STOP.to_string()]);
}
