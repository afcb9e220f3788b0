//! Following gives up on a worker whose event stream keeps failing: the
//! supervisor restarts that worker (its runs would otherwise go on with no
//! answer reaching anyone), the feed follows the new incarnation from the
//! cursor, and the supervisor still obeys a stop afterwards.

use std::pin::Pin;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fcx_config::Home;
use fcx_ipc::SocketAddr;
use fcx_proto::PROTOCOL_VERSION;
use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::worker_server::{Worker, WorkerServer};
use fcx_proto::v1::{
    Ack, ActResult, Action, EventsRequest, HelloRequest, HelloResponse, Inbound, PlatformInfo,
    PlatformInfoAck, ShutdownRequest, ShutdownResponse, StatusRequest, WorkerEvent, WorkerStatus,
};
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::link::supervisor::WorkerHandle;

/// What the fake worker saw. Its "process" is a `sleep` child, so the
/// supervisor has a real pid to watch; `Shutdown` ends it.
#[derive(Default)]
struct Seen {
    hellos: u32,
    event_calls: u32,
    shutdowns: Vec<String>,
    process: Option<Child>,
}

impl Seen {
    fn end_process(&mut self) {
        if let Some(mut c) = self.process.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        self.end_process();
    }
}

/// A worker whose first incarnation cannot stream its events (every
/// `Events` call fails); after a restart it streams one event.
#[derive(Clone)]
struct FakeWorker(Arc<Mutex<Seen>>);

impl FakeWorker {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn nope<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("fake"))
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<WorkerEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Worker for FakeWorker {
    async fn hello(&self, _: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        let mut s = self.seen();
        s.hellos += 1;
        if s.process.is_none() {
            let child = Command::new("sleep")
                .arg("600")
                .spawn()
                .map_err(|e| Status::internal(e.to_string()))?;
            s.process = Some(child);
        }
        let pid = s.process.as_ref().map(|c| c.id()).unwrap_or(0);
        Ok(Response::new(HelloResponse {
            protocol_version: PROTOCOL_VERSION,
            last_seq: 0,
            pid,
            ..Default::default()
        }))
    }
    async fn deliver(&self, _: Request<Inbound>) -> Result<Response<Ack>, Status> {
        nope()
    }
    type EventsStream = EventStream;
    async fn events(
        &self,
        r: Request<EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let mut s = self.seen();
        s.event_calls += 1;
        if s.hellos < 2 {
            return Err(Status::unavailable("the event log cannot be read"));
        }
        let ev = WorkerEvent {
            seq: r.into_inner().from_seq,
            scope: "chat:a".into(),
            kind: Some(Kind::Notice(Default::default())),
            ..Default::default()
        };
        let stream = tokio_stream::iter([Ok(ev)]).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }
    async fn act(&self, _: Request<Action>) -> Result<Response<ActResult>, Status> {
        nope()
    }
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<WorkerStatus>, Status> {
        nope()
    }
    async fn shutdown(
        &self,
        r: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        let mut s = self.seen();
        s.shutdowns.push(r.into_inner().reason);
        s.end_process();
        Ok(Response::new(ShutdownResponse::default()))
    }
    async fn set_platform(
        &self,
        _: Request<PlatformInfo>,
    ) -> Result<Response<PlatformInfoAck>, Status> {
        nope()
    }
}

#[tokio::test]
async fn a_worker_whose_events_cannot_be_followed_is_restarted_and_followed_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path());
    let fake = FakeWorker(Arc::default());
    let addr = SocketAddr::new(home.worker_socket("p"));
    let listener = fcx_ipc::bind(&addr).await.expect("bind");
    let server_stop = CancellationToken::new();
    let server = tokio::spawn({
        let fake = fake.clone();
        let s = server_stop.clone();
        async move {
            let _ = tonic::transport::Server::builder()
                .add_service(WorkerServer::new(fake))
                .serve_with_incoming_shutdown(listener.incoming(), s.cancelled_owned())
                .await;
        }
    });

    let stop = CancellationToken::new();
    let worker = WorkerHandle::new("p", &home, "/nonexistent/fcx-worker".into(), stop.clone());
    let supervise = tokio::spawn(worker.clone().supervise());
    let mut feed = worker.feed();

    let ev = tokio::time::timeout(Duration::from_secs(60), feed.next())
        .await
        .expect("following never recovered: the worker was not restarted")
        .expect("the feed ended");
    assert_eq!(ev.seq, 1, "followed from the cursor");
    {
        let s = fake.seen();
        assert_eq!(s.shutdowns, vec!["restart requested".to_string()]);
        assert_eq!(s.hellos, 2, "one restart");
        assert!(s.event_calls > 20, "gave up only after repeated failures");
    }

    // The supervisor still watches for a stop.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), supervise)
        .await
        .expect("the supervisor did not stop")
        .expect("supervisor task");
    assert_eq!(
        fake.seen().shutdowns.last().map(String::as_str),
        Some("fcxd is stopping")
    );
    // Not a graceful stop: the handle's connection stays open.
    server_stop.cancel();
    server.abort();
}
