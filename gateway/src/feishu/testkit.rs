//! In-test fakes: a minimal HTTP server (hyper) with a routing closure and
//! a WebSocket acceptor (tokio-tungstenite) that hands each accepted
//! connection to the test. Both tasks are aborted on drop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(status: u16, v: serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![
                (
                    "content-type".into(),
                    "application/json; charset=utf-8".into(),
                ),
                ("x-tt-logid".into(), "log-123".into()),
            ],
            body: v.to_string().into_bytes(),
        }
    }
    pub(crate) fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Route = Arc<dyn Fn(&Recorded, &[Recorded]) -> Reply + Send + Sync>;

pub(crate) struct FakeHttp {
    pub(crate) base: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl FakeHttp {
    /// `route(request, earlier requests)` answers every request.
    pub(crate) async fn start(
        route: impl Fn(&Recorded, &[Recorded]) -> Reply + Send + Sync + 'static,
    ) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let route: Route = Arc::new(route);
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let route = route.clone();
                let log = log2.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let route = route.clone();
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let rec = Recorded {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                query: parts.uri.query().unwrap_or_default().to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let reply = {
                                let mut l = log.lock().expect("lock");
                                let r = route(&rec, &l);
                                l.push(rec);
                                r
                            };
                            let mut b = hyper::Response::builder().status(reply.status);
                            for (k, v) in &reply.headers {
                                b = b.header(k.as_str(), v.as_str());
                            }
                            Ok::<_, Infallible>(
                                b.body(Full::new(Bytes::from(reply.body)))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeHttp {
            base: format!("http://{addr}"),
            log,
            task,
        }
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.log.lock().expect("lock").clone()
    }

    pub(crate) fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the fake WS server answers the next handshakes.
#[derive(Debug, Clone, Default)]
pub(crate) enum Handshake {
    #[default]
    Accept,
    /// Refuse with this HTTP status and headers.
    Refuse(u16, Vec<(String, String)>),
}

pub(crate) struct Accepted {
    pub(crate) uri: String,
    pub(crate) ws: WebSocketStream<TcpStream>,
}

pub(crate) struct FakeWs {
    pub(crate) addr: SocketAddr,
    pub(crate) mode: Arc<Mutex<Handshake>>,
    pub(crate) accepted: mpsc::UnboundedReceiver<Accepted>,
    pub(crate) attempts: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl FakeWs {
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    pub(crate) async fn start() -> FakeWs {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mode: Arc<Mutex<Handshake>> = Arc::default();
        let attempts: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let (mode2, attempts2) = (mode.clone(), attempts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let m = mode2.lock().expect("lock").clone();
                let seen = Arc::new(Mutex::new(String::new()));
                let seen2 = seen.clone();
                let cb = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    *seen2.lock().expect("lock") = req.uri().to_string();
                    match m {
                        Handshake::Accept => Ok(resp),
                        Handshake::Refuse(status, headers) => {
                            let mut b = hyper::Response::builder().status(status);
                            for (k, v) in &headers {
                                b = b.header(k.as_str(), v.as_str());
                            }
                            Err(b.body(None).expect("response"))
                        }
                    }
                };
                let res = tokio_tungstenite::accept_hdr_async(stream, cb).await;
                let uri = seen.lock().expect("lock").clone();
                attempts2.lock().expect("lock").push(uri.clone());
                if let Ok(ws) = res {
                    let _ = tx.send(Accepted { uri, ws });
                }
            }
        });
        FakeWs {
            addr,
            mode,
            accepted: rx,
            attempts,
            task,
        }
    }

    pub(crate) fn url(&self, service_id: i32) -> String {
        format!(
            "ws://{}/ws?device_id=dev-1&service_id={service_id}&ticket=SECRET-TICKET",
            self.addr
        )
    }
}

impl Drop for FakeWs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A long-connection data frame carrying one fragment (`seq` of `sum`) of
/// the event `id`, as the platform sends it.
pub(crate) fn data_frame(
    id: &str,
    seq_id: u64,
    sum: u32,
    seq: u32,
    trace: &str,
    payload: &[u8],
) -> fcx_proto::pbbp2::Frame {
    use fcx_proto::pbbp2::{Frame, Header};
    let header = |key: &str, value: String| Header {
        key: key.into(),
        value,
    };
    Frame {
        seq_id,
        log_id: seq_id + 1000,
        service: 7,
        method: super::frame::METHOD_DATA,
        headers: vec![
            header("type", "event".into()),
            header("message_id", id.into()),
            header("sum", sum.to_string()),
            header("seq", seq.to_string()),
            header("trace_id", trace.into()),
        ],
        payload: Some(payload.to_vec()),
        ..Default::default()
    }
}
