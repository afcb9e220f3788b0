use super::*;
use crate::feishu::frame::{METHOD_CONTROL, METHOD_DATA, header, set_header};
use crate::feishu::http::RetryPolicy;
use crate::feishu::testkit::{Accepted, FakeHttp, FakeWs, Handshake, Reply};
use fcx_config::Secret;
use serde_json::json;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

async fn endpoint_fake(ws: &FakeWs, code: i64) -> FakeHttp {
    let url = ws.url(7);
    FakeHttp::start(move |_, _| {
        Reply::json(
            200,
            json!({"code": code, "msg": if code == 0 { "ok" } else { "bad app secret" }, "data": {"URL": url,
                "ClientConfig": {"PingInterval": 60, "ReconnectNonce": 0, "ReconnectInterval": 1, "ReconnectCount": -1}}}),
        )
    })
    .await
}

fn api(http: &FakeHttp) -> Arc<dyn EndpointSource> {
    Arc::new(
        OpenApiClient::new(
            &http.base,
            "cli_0123456789abcdef",
            Secret::new("sec"),
            RetryPolicy::default(),
        )
        .expect("client"),
    )
}

fn opts() -> WsOptions {
    WsOptions {
        ack_budget: Duration::from_millis(400),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        max_reconnect_nonce: Duration::ZERO,
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A handler that reports every event and decides by `payload.decision`.
fn handler() -> (Arc<dyn EventHandler>, mpsc::UnboundedReceiver<InboundEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let h = move |ev: InboundEvent, _deadline: Instant| {
        let _ = tx.send(ev.clone());
        async move {
            match ev.payload["decision"].as_str() {
                Some("noack") => AckReply::NoAck,
                Some("error") => AckReply::Error,
                Some("slow") => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    AckReply::Ok
                }
                Some("card") => {
                    AckReply::OkWithData(json!({"toast": {"type": "info", "content": "ok"}}))
                }
                _ => AckReply::Ok,
            }
        }
    };
    (Arc::new(h), rx)
}

async fn accept(ws: &mut FakeWs) -> Accepted {
    tokio::time::timeout(WAIT, ws.accepted.recv())
        .await
        .expect("accept in time")
        .expect("accepted")
}

async fn next_frame(a: &mut Accepted, within: Duration) -> Option<Frame> {
    let deadline = Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, a.ws.next())
            .await
            .ok()??;
        if let Ok(Message::Binary(b)) = m {
            return Some(frame::decode(&b).expect("client frames decode"));
        }
    }
}

/// The next data frame (an ACK), skipping pings.
async fn next_ack(a: &mut Accepted, within: Duration) -> Option<Frame> {
    let deadline = Instant::now() + within;
    loop {
        let f = next_frame(a, deadline.saturating_duration_since(Instant::now())).await?;
        if f.method == METHOD_DATA {
            return Some(f);
        }
    }
}

fn event(id: &str, seq_id: u64, sum: u32, seq: u32, payload: &[u8]) -> Message {
    let f =
        crate::feishu::testkit::data_frame(id, seq_id, sum, seq, &format!("trace-{id}"), payload);
    Message::Binary(frame::encode(&f).into())
}

fn pong(config: Option<serde_json::Value>) -> Message {
    let mut f = frame::ping(7);
    set_header(&mut f, "type", "pong");
    f.payload = config.map(|c| c.to_string().into_bytes());
    Message::Binary(frame::encode(&f).into())
}

fn ack_code(f: &Frame) -> serde_json::Value {
    serde_json::from_slice(f.payload.as_deref().expect("payload")).expect("json")
}

async fn wait_status(
    rx: &mut watch::Receiver<WsStatus>,
    what: impl Fn(&WsStatus) -> bool,
) -> WsStatus {
    tokio::time::timeout(WAIT, rx.wait_for(|s| what(s)))
        .await
        .expect("status in time")
        .expect("status channel")
        .clone()
}

#[tokio::test]
async fn connects_pings_dispatches_and_acks() {
    let mut fws = FakeWs::start().await;
    let http = endpoint_fake(&fws, 0).await;
    let (h, mut events) = handler();
    let (client, mut status) = WsClient::new(api(&http), h, opts());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(client.run(cancel.clone()));

    let mut a = accept(&mut fws).await;
    assert!(a.uri.contains("service_id=7"));
    let p = next_frame(&mut a, WAIT).await.expect("first ping");
    assert_eq!(
        (p.method, p.service, p.seq_id, p.log_id),
        (METHOD_CONTROL, 7, 0, 0)
    );
    assert_eq!(header(&p, "type"), Some("ping"));
    a.ws.send(pong(Some(json!({"PingInterval": 30}))))
        .await
        .expect("pong");

    // A whole event.
    a.ws.send(event("m1", 5, 1, 0, br#"{"schema":"2.0","decision":"ok"}"#))
        .await
        .expect("send");
    let ack = next_ack(&mut a, WAIT).await.expect("ack");
    assert_eq!((ack.seq_id, ack.log_id, ack.service), (5, 1005, 7));
    assert_eq!(header(&ack, "message_id"), Some("m1"));
    assert_eq!(header(&ack, "trace_id"), Some("trace-m1"));
    assert!(header(&ack, "biz_rt").is_some_and(|v| v.parse::<u64>().is_ok()));
    assert_eq!(ack_code(&ack), json!({"code": 200}));
    let ev = events.recv().await.expect("event");
    assert_eq!(ev.message_id, "m1");
    assert_eq!(ev.payload["schema"], "2.0");

    // Two fragments out of order: one ACK, for the completing frame.
    a.ws.send(event("f1", 6, 2, 1, br#"on":"card"}"#))
        .await
        .expect("send");
    a.ws.send(event("f1", 7, 2, 0, br#"{"decisi"#))
        .await
        .expect("send");
    let ack = next_ack(&mut a, WAIT).await.expect("ack");
    assert_eq!(header(&ack, "message_id"), Some("f1"));
    assert_eq!(ack.seq_id, 7);
    let body = ack_code(&ack);
    assert_eq!(body["code"], 200);
    assert!(body["data"].is_string());
    // Garbage is skipped and the connection stays up.
    a.ws.send(Message::Binary(vec![0xff, 0x01, 0x02].into()))
        .await
        .expect("send");
    a.ws.send(event("m2", 8, 1, 0, br#"{"decision":"ok"}"#))
        .await
        .expect("send");
    let ack = next_ack(&mut a, WAIT).await.expect("ack");
    assert_eq!(header(&ack, "message_id"), Some("m2"));

    let s = wait_status(&mut status, |s| s.acks_sent >= 3).await;
    assert_eq!(s.state, WsState::Connected);
    assert_eq!(s.conn_id.as_deref(), Some("dev-1"));
    assert_eq!(s.service_id, Some(7));
    assert_eq!(s.events, 3);
    assert_eq!(s.client_config.ping_interval, Some(30));
    assert!(s.last_event_at.is_some() && s.last_frame_at.is_some());

    cancel.cancel();
    let r = tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("join");
    assert_eq!(r, StopReason::Cancelled);
    assert_eq!(
        status.borrow().state,
        WsState::Stopped(StopReason::Cancelled)
    );
}

#[tokio::test]
async fn no_ack_decisions_and_missed_deadlines_send_nothing() {
    let mut fws = FakeWs::start().await;
    let http = endpoint_fake(&fws, 0).await;
    let (h, _events) = handler();
    let (client, _status) = WsClient::new(api(&http), h, opts());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(client.run(cancel.clone()));
    let mut a = accept(&mut fws).await;

    // The slow handler must not hold back the others (or pings).
    for (i, d) in ["slow", "noack", "ok", "error"].iter().enumerate() {
        let body = json!({"decision": d}).to_string();
        a.ws.send(event(d, i as u64 + 1, 1, 0, body.as_bytes()))
            .await
            .expect("send");
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let ack = next_ack(&mut a, WAIT).await.expect("ack");
        got.push((
            header(&ack, "message_id").unwrap_or_default().to_string(),
            ack_code(&ack)["code"].clone(),
        ));
    }
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![("error".into(), json!(500)), ("ok".into(), json!(200))]
    );
    // Nothing else arrives: not for "noack", not for "slow" (deadline 400 ms).
    assert!(
        next_ack(&mut a, Duration::from_millis(1200))
            .await
            .is_none()
    );

    cancel.cancel();
    let r = tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("join");
    assert_eq!(r, StopReason::Cancelled);
}

#[tokio::test]
async fn reconnects_with_a_fresh_endpoint_after_a_drop() {
    let mut fws = FakeWs::start().await;
    let http = endpoint_fake(&fws, 0).await;
    let (h, _events) = handler();
    let (client, mut status) = WsClient::new(api(&http), h, opts());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(client.run(cancel.clone()));

    let mut a = accept(&mut fws).await;
    next_frame(&mut a, WAIT).await.expect("ping");
    drop(a);
    let mut b = accept(&mut fws).await;
    next_frame(&mut b, WAIT)
        .await
        .expect("ping on the new connection");
    assert_eq!(http.count("/callback/ws/endpoint"), 2);
    let s = wait_status(&mut status, |s| {
        s.reconnects == 1 && s.state == WsState::Connected
    })
    .await;
    assert!(s.last_error.is_some());

    cancel.cancel();
    let r = tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("join");
    assert_eq!(r, StopReason::Cancelled);
}

#[tokio::test]
async fn fatal_handshake_refusals_stop_with_the_reason() {
    let cases = [
        (
            vec![
                ("Handshake-Status", "514"),
                ("Handshake-Autherrcode", EXCEED_CONN_LIMIT),
                ("Handshake-Msg", "exceed"),
            ],
            "connection limit",
        ),
        (vec![("Handshake-Status", "403")], "forbidden"),
    ];
    for (headers, want) in cases {
        let fws = FakeWs::start().await;
        *fws.mode.lock().expect("lock") = Handshake::Refuse(
            400,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let http = endpoint_fake(&fws, 0).await;
        let (h, _events) = handler();
        let (client, status) = WsClient::new(api(&http), h, opts());
        let r = tokio::time::timeout(WAIT, client.run(CancellationToken::new()))
            .await
            .expect("stops by itself");
        match &r {
            StopReason::Fatal(reason) => assert!(reason.contains(want), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(status.borrow().state, WsState::Stopped(r.clone()));
        assert_eq!(http.count("/callback/ws/endpoint"), 1);
        // Never logs or reports the ticket.
        assert!(!r.to_string().contains("SECRET-TICKET"));
    }

    // A retryable refusal (514 with another code) keeps trying.
    let fws = FakeWs::start().await;
    *fws.mode.lock().expect("lock") = Handshake::Refuse(
        400,
        vec![
            ("Handshake-Status".into(), "514".into()),
            ("Handshake-Autherrcode".into(), "1".into()),
        ],
    );
    let http = endpoint_fake(&fws, 0).await;
    let (h, _events) = handler();
    let (client, mut status) = WsClient::new(api(&http), h, opts());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(client.run(cancel.clone()));
    let s = wait_status(&mut status, |s| s.consecutive_failures >= 3).await;
    assert!(!s.last_error.unwrap_or_default().contains("SECRET-TICKET"));
    assert!(http.count("/callback/ws/endpoint") >= 3);
    cancel.cancel();
    let r = tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("join");
    assert_eq!(r, StopReason::Cancelled);
}

#[tokio::test]
async fn bad_credentials_stop_at_the_endpoint() {
    let fws = FakeWs::start().await;
    let http = endpoint_fake(&fws, 10003).await;
    let (h, _events) = handler();
    let (client, _status) = WsClient::new(api(&http), h, opts());
    let r = tokio::time::timeout(WAIT, client.run(CancellationToken::new()))
        .await
        .expect("stops by itself");
    assert!(
        matches!(&r, StopReason::Fatal(m) if m.contains("10003")),
        "{r:?}"
    );
    assert!(fws.attempts.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn watchdog_reconnects_a_silent_connection() {
    let mut fws = FakeWs::start().await;
    let http = endpoint_fake(&fws, 0).await;
    let (h, _events) = handler();
    let o = WsOptions {
        ping_interval_override: Some(Duration::from_millis(50)),
        ..opts()
    };
    let (client, mut status) = WsClient::new(api(&http), h, o);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(client.run(cancel.clone()));

    // Accept and keep the socket open but never answer.
    let _silent = accept(&mut fws).await;
    let mut b = accept(&mut fws).await;
    let s = wait_status(&mut status, |s| s.reconnects >= 1).await;
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no frame"),
        "{s:?}"
    );
    // Pings keep coming on the new connection at the short interval.
    next_frame(&mut b, WAIT).await.expect("ping");
    next_frame(&mut b, WAIT).await.expect("ping");

    cancel.cancel();
    let r = tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("join");
    assert_eq!(r, StopReason::Cancelled);
}

#[test]
fn url_query_and_redaction() {
    let q = parse_query("wss://h/ws?device_id=abc&service_id=42&ticket=t");
    assert_eq!(q.service_id, Some(42));
    assert_eq!(q.device_id.as_deref(), Some("abc"));
    assert_eq!(parse_query("wss://h/ws?service_id=x").service_id, None);
    assert_eq!(parse_query("wss://h/ws").service_id, None);
    assert_eq!(redacted("wss://h/ws?ticket=t"), "wss://h/ws");
}

#[test]
fn backoff_honours_server_config() {
    let (h, _rx) = handler();
    struct Never;
    impl EndpointSource for Never {
        fn endpoint(&self) -> BoxFuture<'_, Result<WsEndpoint, EndpointError>> {
            Box::pin(async { Err(EndpointError::Retryable("never".into())) })
        }
    }
    let o = WsOptions {
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        max_reconnect_nonce: Duration::from_secs(30),
        ..Default::default()
    };
    let (c, _s) = WsClient::new(Arc::new(Never), h, o);
    let cfg = ClientConfig {
        reconnect_interval: Some(5),
        reconnect_nonce: Some(2),
        ..ClientConfig::SDK_DEFAULT
    };
    for _ in 0..50 {
        assert!(c.reconnect_delay(&cfg, 0) <= Duration::from_secs(2));
        let d1 = c.reconnect_delay(&cfg, 1);
        assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1));
        assert!(c.reconnect_delay(&cfg, 30) <= Duration::from_secs(5));
    }
}
