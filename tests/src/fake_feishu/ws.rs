//! The long-connection WebSocket: handshake (and its refusals), pbbp2
//! frames, ping/pong, pushes with fragments, ACK checking, redelivery.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use base64::Engine as _;
use fcx_proto::pbbp2::{Frame, Header};
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prost::Message as _;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::http::{Resp, parse_query};
use super::state::{Conn, Delivery, Outbound, Shared, lock};
use super::{HandshakeRefusal, RecordedAck, RecordedCall};

/// `service_id` in every endpoint URL and pushed frame.
pub(crate) const SERVICE_ID: i32 = 33_554_678;

fn refuse(status: u16, msg: &str, autherrcode: Option<i64>) -> Resp {
    let code = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::FORBIDDEN);
    let mut b = Response::builder()
        .status(code)
        .header("Handshake-Status", status.to_string())
        .header("Handshake-Msg", msg);
    if let Some(c) = autherrcode {
        b = b.header("Handshake-Autherrcode", c.to_string());
    }
    b.body(Full::new(bytes::Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(bytes::Bytes::new())))
}

fn refusal_response(how: HandshakeRefusal) -> Resp {
    match how {
        HandshakeRefusal::Forbidden => refuse(403, "forbidden", None),
        HandshakeRefusal::ConnectionLimit => {
            refuse(514, "exceed connection limit", Some(1_000_040_350))
        }
        HandshakeRefusal::AuthFailed(c) => refuse(514, "auth failed", Some(c)),
        HandshakeRefusal::Status(s) => refuse(s, "refused", None),
    }
}

pub(crate) fn upgrade(req: Request<Incoming>, shared: &Arc<Shared>) -> Resp {
    let query = parse_query(req.uri().query());
    let headers: std::collections::BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let resp = decide(&req, shared, &query);
    let status = resp.status().as_u16();
    lock(&shared.inner).calls.push(RecordedCall {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: query.clone(),
        headers,
        body: Value::Null,
        status,
        response: Value::Null,
        received_unix_ns: super::state::unix_ns(),
        rate_limit: None,
    });
    shared.bump();
    if status != 101 {
        return resp;
    }
    let service_id = query
        .get("service_id")
        .and_then(|s| s.parse::<i32>().ok())
        .unwrap_or(SERVICE_ID);
    let s = Arc::clone(shared);
    shared.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                session(ws, s, service_id).await;
            }
            Err(e) => eprintln!("fake-feishu: WebSocket upgrade failed: {e}"),
        }
    });
    resp
}

fn decide(
    req: &Request<Incoming>,
    shared: &Shared,
    query: &std::collections::BTreeMap<String, String>,
) -> Resp {
    if let Some(how) = lock(&shared.inner).faults.handshake.pop_front() {
        return refusal_response(how);
    }
    // The URL is single-use: a reconnect must fetch a fresh one from the
    // endpoint, as every official SDK does. Guess: a stale ticket is an auth
    // failure without the connection-limit code (clients retry).
    let ticket_ok = query
        .get("ticket")
        .is_some_and(|t| lock(&shared.inner).tickets.remove(t).is_some());
    if !ticket_ok {
        return refuse(514, "invalid or reused ticket", None);
    }
    if lock(&shared.conns).len() >= shared.cfg.max_connections {
        return refusal_response(HandshakeRefusal::ConnectionLimit);
    }
    let key = req.headers().get("sec-websocket-key");
    let is_ws = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = key.filter(|_| is_ws) else {
        return refuse(400, "not a websocket request", None);
    };
    Response::builder()
        .status(hyper::StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(Full::new(bytes::Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(bytes::Bytes::new())))
}

async fn session(
    ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    shared: Arc<Shared>,
    service_id: i32,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = shared.next();
    lock(&shared.conns).push(Conn { id, tx });
    lock(&shared.inner).connects += 1;
    shared.bump();
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let received = Instant::now();
                    if let Some(reply) = client_frame(&shared, id, service_id, &b, received)
                        && sink.send(Message::Binary(reply.into())).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Text(t))) => violation(&shared, format!("text WebSocket message (only binary frames are protocol): {t}")),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outbound::Binary(b)) => {
                    if sink.send(Message::Binary(b.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Tagged(b, message_id)) => {
                    stamp_pushed(&shared, &message_id);
                    if sink.send(Message::Binary(b.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Freeze) => {
                    half_open(&shared, &mut stream, &mut rx).await;
                    break;
                }
                Some(Outbound::Drop) | None => break,
            },
        }
    }
    lock(&shared.conns).retain(|c| c.id != id);
    shared.bump();
}

/// A half-open session: the socket stays up, nothing reaches the client and
/// nothing from it is acted on (pings go unanswered, ACKs are lost, pushes
/// routed here vanish and only redelivery recovers them). It ends when the
/// client gives up and closes, or the fake drops it.
async fn half_open(
    shared: &Shared,
    stream: &mut futures::stream::SplitStream<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>>,
    rx: &mut mpsc::UnboundedReceiver<Outbound>,
) {
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => lock(&shared.inner).unanswered_frames += 1,
            },
            out = rx.recv() => match out {
                Some(Outbound::Drop) | None => return,
                Some(_) => {}
            },
        }
    }
}

/// First write of a pushed message; redeliveries keep the original stamp.
fn stamp_pushed(shared: &Shared, message_id: &str) {
    let now = Instant::now();
    let mut inner = lock(&shared.inner);
    let t = inner.timings.entry(message_id.to_owned()).or_default();
    if t.pushed_at.is_none() {
        t.pushed_at = Some(now);
    }
}

fn violation(shared: &Shared, what: String) {
    lock(&shared.inner).violations.push(what);
    shared.bump();
}

fn header<'a>(f: &'a Frame, key: &str) -> Option<&'a str> {
    f.headers
        .iter()
        .find(|h| h.key == key)
        .map(|h| h.value.as_str())
}

/// Handles one binary message from the client; returns a frame to send back.
fn client_frame(
    shared: &Shared,
    conn: u64,
    service_id: i32,
    bytes: &[u8],
    received: Instant,
) -> Option<Vec<u8>> {
    if let Some(problem) = super::wire::required_problem(bytes) {
        violation(shared, problem);
        return None;
    }
    let frame = match Frame::decode(bytes) {
        Ok(f) => f,
        Err(e) => {
            violation(shared, format!("undecodable frame: {e}"));
            return None;
        }
    };
    match (frame.method, header(&frame, "type")) {
        (0, Some("ping")) => {
            let config = {
                let mut inner = lock(&shared.inner);
                inner.pings += 1;
                inner.pong_config
            };
            shared.bump();
            if frame.service != service_id {
                violation(
                    shared,
                    format!(
                        "ping with service {} on a service_id {service_id} connection",
                        frame.service
                    ),
                );
            }
            // Guess: the pong echoes the ping's ids, as ACKs echo data frames.
            let pong = Frame {
                seq_id: frame.seq_id,
                log_id: frame.log_id,
                service: service_id,
                method: 0,
                headers: vec![Header {
                    key: "type".into(),
                    value: "pong".into(),
                }],
                payload: config.and_then(|c| serde_json::to_vec(&c).ok()),
                ..Default::default()
            };
            Some(pong.encode_to_vec())
        }
        (1, _) => {
            ack(shared, conn, frame, received);
            None
        }
        (m, t) => {
            violation(
                shared,
                format!("unexpected client frame method={m} type={t:?}"),
            );
            None
        }
    }
}

fn ack(shared: &Shared, conn: u64, frame: Frame, received: Instant) {
    let message_id = header(&frame, "message_id").unwrap_or("").to_owned();
    let payload: Value = frame
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_slice(p).ok())
        .unwrap_or(Value::Null);
    let code = payload.get("code").and_then(Value::as_i64);
    let mut problems = Vec::new();
    let data = match payload.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::String(b64)) => match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(raw) => match serde_json::from_slice::<Value>(&raw) {
                Ok(v) => Some(v),
                Err(_) => {
                    problems.push("ACK data is not base64 of JSON".to_owned());
                    None
                }
            },
            Err(_) => {
                problems.push("ACK data is not base64".to_owned());
                None
            }
        },
        Some(_) => {
            problems.push("ACK data must be a base64 string".to_owned());
            None
        }
    };
    if payload.is_null() {
        problems.push("ACK payload is not JSON".to_owned());
    }
    let biz_rt = header(&frame, "biz_rt").map(str::to_owned);
    if biz_rt.is_none() {
        problems.push("ACK lacks the biz_rt header".to_owned());
    }
    let mut inner = lock(&shared.inner);
    if inner.deliveries.contains_key(&message_id) {
        let t = inner.timings.entry(message_id.clone()).or_default();
        if t.acked_at.is_none() {
            t.acked_at = Some(received);
            inner.timed_acks += 1;
        }
    }
    match inner.deliveries.get_mut(&message_id) {
        None => problems.push(format!("ACK for unknown message_id {message_id:?}")),
        Some(d) => {
            let matches = d.sent.iter().any(|s| {
                s.seq_id == frame.seq_id
                    && s.log_id == frame.log_id
                    && s.service == frame.service
                    && s.method == frame.method
                    && s.headers
                        .iter()
                        .all(|h| header(&frame, &h.key) == Some(h.value.as_str()))
            });
            if !matches {
                problems.push(
                    "ACK does not echo SeqID/LogID/service/method/headers of a pushed frame"
                        .to_owned(),
                );
            }
            // Guess: only a faithful ACK with code 200 stops redelivery.
            if matches && code == Some(200) {
                d.acked = true;
            }
        }
    }
    inner.acks.push(RecordedAck {
        message_id,
        seq_id: frame.seq_id,
        log_id: frame.log_id,
        service: frame.service,
        method: frame.method,
        headers: frame
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect(),
        biz_rt,
        payload,
        code,
        data,
        problems,
        connection: conn,
    });
    drop(inner);
    shared.bump();
}

/// Sends `frames` to one open connection (round-robin); false when none is
/// open. With `message_id`, the session stamps the message's first write.
fn send_to_one(shared: &Shared, frames: &[Vec<u8>], message_id: Option<&Arc<str>>) -> bool {
    // Take the turn before locking `conns`: waiters hold `inner` while
    // reading `conns`, so the opposite order here could deadlock.
    let start = {
        let mut inner = lock(&shared.inner);
        inner.round_robin = inner.round_robin.wrapping_add(1);
        inner.round_robin
    };
    let conns = lock(&shared.conns);
    for k in 0..conns.len() {
        let c = &conns[(start + k) % conns.len()];
        let last = frames.len().saturating_sub(1);
        if frames.iter().enumerate().all(|(i, f)| {
            let out = match message_id {
                Some(id) if i == last => Outbound::Tagged(f.clone(), Arc::clone(id)),
                _ => Outbound::Binary(f.clone()),
            };
            c.tx.send(out).is_ok()
        }) {
            return true;
        }
    }
    false
}

fn note_send(shared: &Shared, message_id: &str) {
    if let Some(d) = lock(&shared.inner).deliveries.get_mut(message_id) {
        d.sends += 1;
    }
    shared.bump();
}

pub(crate) fn push(
    shared: &Arc<Shared>,
    event: &Value,
    parts: usize,
    kind: &str,
) -> Result<String> {
    let payload = serde_json::to_vec(event)?;
    if parts > payload.len() {
        bail!(
            "cannot split {} bytes into {parts} fragments",
            payload.len()
        );
    }
    shared.register_event_message(event);
    let message_id = shared.new_id("");
    let trace_id = shared.new_id("");
    let chunk = payload.len().div_ceil(parts);
    let mut sent = Vec::new();
    for (seq, piece) in payload.chunks(chunk).enumerate() {
        sent.push(Frame {
            seq_id: shared.next(),
            log_id: 7_000_000_000_000_000_000u64 + shared.next(),
            service: SERVICE_ID,
            method: 1,
            headers: [
                ("type", kind.to_owned()),
                ("message_id", message_id.clone()),
                ("sum", parts.to_string()),
                ("seq", seq.to_string()),
                ("trace_id", trace_id.clone()),
                ("timestamp", shared.now_ms().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| Header {
                key: k.to_owned(),
                value: v,
            })
            .collect(),
            payload: Some(piece.to_vec()),
            ..Default::default()
        });
    }
    if sent.len() != parts {
        bail!(
            "payload of {} bytes does not split into {parts} non-empty fragments",
            payload.len()
        );
    }
    let frames: Vec<Vec<u8>> = sent.iter().map(prost::Message::encode_to_vec).collect();
    lock(&shared.inner).deliveries.insert(
        message_id.clone(),
        Delivery {
            frames,
            sent,
            acked: false,
            sends: 0,
        },
    );
    let s = Arc::clone(shared);
    let id = message_id.clone();
    shared.spawn(async move { deliver(s, id).await });
    Ok(message_id)
}

fn frames_of(shared: &Shared, message_id: &str) -> Option<(Vec<Vec<u8>>, bool)> {
    lock(&shared.inner)
        .deliveries
        .get(message_id)
        .map(|d| (d.frames.clone(), d.acked))
}

/// First delivery as soon as a client is connected, then the redelivery
/// schedule until ACKed. Guess: a late ACK (after the timeout) still stops
/// further retries.
async fn deliver(shared: Arc<Shared>, message_id: String) {
    let Some((frames, _)) = frames_of(&shared, &message_id) else {
        return;
    };
    let tag: Arc<str> = Arc::from(message_id.as_str());
    let mut rx = shared.changed.subscribe();
    while !send_to_one(&shared, &frames, Some(&tag)) {
        if rx.changed().await.is_err() {
            return;
        }
    }
    note_send(&shared, &message_id);
    let policy = shared.cfg.redelivery.clone();
    for delay in policy.retry_delays {
        tokio::time::sleep(policy.ack_timeout).await;
        if frames_of(&shared, &message_id).is_none_or(|(_, acked)| acked) {
            return;
        }
        tokio::time::sleep(delay).await;
        if frames_of(&shared, &message_id).is_none_or(|(_, acked)| acked) {
            return;
        }
        if send_to_one(&shared, &frames, None) {
            note_send(&shared, &message_id);
        }
    }
}

pub(crate) fn resend(shared: &Shared, message_id: &str) -> Result<()> {
    let Some((frames, _)) = frames_of(shared, message_id) else {
        bail!("no pushed message {message_id}");
    };
    if !send_to_one(shared, &frames, None) {
        bail!("no open connection");
    }
    note_send(shared, message_id);
    Ok(())
}

pub(crate) fn broadcast_raw(shared: &Shared, bytes: Vec<u8>) -> Result<()> {
    let conns = lock(&shared.conns);
    if conns.is_empty() {
        bail!("no open connection");
    }
    for c in conns.iter() {
        let _ = c.tx.send(Outbound::Binary(bytes.clone()));
    }
    Ok(())
}

pub(crate) fn freeze_all(shared: &Shared) {
    for c in lock(&shared.conns).iter() {
        let _ = c.tx.send(Outbound::Freeze);
    }
}

pub(crate) fn drop_all(shared: &Shared) {
    for c in lock(&shared.conns).iter() {
        // A closed channel means the session is already gone.
        let _ = c.tx.send(Outbound::Drop);
    }
}
