//! The fake Feishu Open Platform, exercised the way a gateway would use it:
//! raw HTTP/1.1 for the APIs and a tokio-tungstenite client for the long
//! connection.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine as _;
use fcx_proto::pbbp2::{Frame, Header};
use fcx_tests::fake_feishu::{ClientConfig, FakeFeishu, HandshakeRefusal, Redelivery};
use futures::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Bounds a hang; never a speed assertion.
const WAIT: Duration = Duration::from_secs(10);

struct HttpAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl HttpAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection.
async fn call(
    fake: &FakeFeishu,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<HttpAnswer> {
    let mut stream = TcpStream::connect(fake.addr()).await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json; charset=utf-8\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        fake.addr(),
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no status line")?
        .parse()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    Ok(HttpAnswer {
        status,
        headers,
        body,
    })
}

async fn token(fake: &FakeFeishu) -> Result<String> {
    let a = call(
        fake,
        "POST",
        "/open-apis/auth/v3/tenant_access_token/internal",
        None,
        Some(&json!({"app_id": fake.app_id(), "app_secret": fake.app_secret()})),
    )
    .await?;
    a.body["tenant_access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no token")
}

#[tokio::test]
async fn token_and_bot_info() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    assert!(fake.app_id().starts_with("cli_") && fake.app_id().len() == 20);
    let path = "/open-apis/auth/v3/tenant_access_token/internal";
    let bad = call(
        &fake,
        "POST",
        path,
        None,
        Some(&json!({"app_id": fake.app_id(), "app_secret": "wrong"})),
    )
    .await?;
    assert_eq!(bad.body["code"], 10014);
    assert!(bad.body.get("tenant_access_token").is_none());

    let ok = call(
        &fake,
        "POST",
        path,
        None,
        Some(&json!({"app_id": fake.app_id(), "app_secret": fake.app_secret()})),
    )
    .await?;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["code"], 0);
    assert_eq!(ok.body["expire"], 7200);
    assert!(ok.body.get("data").is_none(), "token fields are top-level");
    let tok = ok.body["tenant_access_token"].as_str().context("token")?;
    assert!(ok.header("x-tt-logid").is_some());

    let missing = call(&fake, "GET", "/open-apis/bot/v3/info", None, None).await?;
    assert_eq!(missing.body["code"], 99991661);
    let info = call(&fake, "GET", "/open-apis/bot/v3/info", Some(tok), None).await?;
    assert_eq!(info.body["code"], 0);
    assert_eq!(info.body["bot"]["open_id"], fake.bot_open_id());
    assert!(info.body.get("data").is_none(), "bot info is under `bot`");

    fake.expire_tokens();
    let expired = call(&fake, "GET", "/open-apis/bot/v3/info", Some(tok), None).await?;
    assert_eq!(expired.body["code"], 99991663);
    let garbage = call(&fake, "GET", "/open-apis/bot/v3/info", Some("nope"), None).await?;
    assert_eq!(garbage.body["code"], 99991671);

    let recorded = fake.requests_to("GET", "/open-apis/bot/v3/info");
    assert_eq!(recorded.len(), 4);
    assert_eq!(
        recorded[1].header("authorization"),
        Some(format!("Bearer {tok}").as_str())
    );
    Ok(())
}

#[tokio::test]
async fn uuid_makes_send_idempotent_and_reply_threads() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let path = "/open-apis/im/v1/messages?receive_id_type=chat_id";
    let body = json!({
        "receive_id": "oc_chat1",
        "msg_type": "text",
        "content": json!({"text": "hello"}).to_string(),
        "uuid": "u-1",
    });
    let a = call(&fake, "POST", path, Some(&tok), Some(&body)).await?;
    let b = call(&fake, "POST", path, Some(&tok), Some(&body)).await?;
    assert_eq!(a.body["code"], 0, "{}", a.body);
    assert_eq!(a.body["data"]["message_id"], b.body["data"]["message_id"]);
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(fake.messages()[0].chat_id, "oc_chat1");

    let id = a.body["data"]["message_id"].as_str().context("id")?;
    let reply = call(
        &fake,
        "POST",
        &format!("/open-apis/im/v1/messages/{id}/reply"),
        Some(&tok),
        Some(&json!({"msg_type": "text", "content": "{\"text\":\"r\"}", "reply_in_thread": true})),
    )
    .await?;
    assert_eq!(reply.body["data"]["parent_id"], id);
    assert!(
        reply.body["data"]["thread_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("omt_"))
    );

    let got = call(
        &fake,
        "GET",
        &format!("/open-apis/im/v1/messages/{id}"),
        Some(&tok),
        None,
    )
    .await?;
    assert_eq!(
        got.body["data"]["items"][0]["body"]["content"],
        "{\"text\":\"hello\"}"
    );
    let unknown = call(
        &fake,
        "GET",
        "/open-apis/im/v1/messages/om_nope",
        Some(&tok),
        None,
    )
    .await?;
    assert_ne!(unknown.body["code"], 0);
    Ok(())
}

#[tokio::test]
async fn content_rules_and_size_limits() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let path = "/open-apis/im/v1/messages?receive_id_type=open_id";
    let send = |msg_type: &str, content: String| json!({"receive_id": "ou_user1", "msg_type": msg_type, "content": content});
    let big = "x".repeat(150 * 1024 + 1);
    let a = call(
        &fake,
        "POST",
        path,
        Some(&tok),
        Some(&send("text", json!({"text": big}).to_string())),
    )
    .await?;
    assert_eq!(a.body["code"], 230025);

    let card = json!({"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "y".repeat(31 * 1024)}]}});
    let a = call(
        &fake,
        "POST",
        path,
        Some(&tok),
        Some(&send("interactive", card.to_string())),
    )
    .await?;
    assert_eq!(a.body["code"], 230025);

    let unwrapped = json!({"title": "t", "content": [[{"tag": "text", "text": "hi"}]]});
    let a = call(
        &fake,
        "POST",
        path,
        Some(&tok),
        Some(&send("post", unwrapped.to_string())),
    )
    .await?;
    assert_eq!(a.body["code"], 230001, "{}", a.body);
    let wrapped = json!({"zh_cn": unwrapped});
    let a = call(
        &fake,
        "POST",
        path,
        Some(&tok),
        Some(&send("post", wrapped.to_string())),
    )
    .await?;
    assert_eq!(a.body["code"], 0, "{}", a.body);

    // content must be a JSON *string*
    let a = call(
        &fake,
        "POST",
        path,
        Some(&tok),
        Some(&json!({"receive_id": "ou_user1", "msg_type": "text", "content": {"text": "x"}})),
    )
    .await?;
    assert_ne!(a.body["code"], 0);
    let a = call(
        &fake,
        "POST",
        "/open-apis/im/v1/messages",
        Some(&tok),
        Some(&send("text", "{\"text\":\"x\"}".to_owned())),
    )
    .await?;
    assert_ne!(a.body["code"], 0, "receive_id_type is required");
    Ok(())
}

#[tokio::test]
async fn cardkit_sequence_streaming_and_errors() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let card = json!({
        "schema": "2.0",
        "config": {"streaming_mode": true, "summary": {"content": "[Generating...]"}},
        "body": {"elements": [{"tag": "markdown", "content": "", "element_id": "stream_md"}]},
    });
    let created = call(
        &fake,
        "POST",
        "/open-apis/cardkit/v1/cards",
        Some(&tok),
        Some(&json!({"type": "card_json", "data": card.to_string()})),
    )
    .await?;
    assert_eq!(created.body["code"], 0, "{}", created.body);
    let id = created.body["data"]["card_id"]
        .as_str()
        .context("card_id")?
        .to_owned();

    let content = |seq: i64, text: &str| json!({"content": text, "sequence": seq});
    let cpath = format!("/open-apis/cardkit/v1/cards/{id}/elements/stream_md/content");
    let a = call(&fake, "PUT", &cpath, Some(&tok), Some(&content(1, "Hel"))).await?;
    assert_eq!(a.body["code"], 0, "{}", a.body);
    let a = call(&fake, "PUT", &cpath, Some(&tok), Some(&content(1, "Hello"))).await?;
    assert_eq!(a.body["code"], 300317);
    // One counter across all operations on the card.
    let settings = json!({"settings": json!({"config": {"streaming_mode": false, "summary": {"content": "done"}}}).to_string(), "sequence": 2});
    let a = call(
        &fake,
        "PATCH",
        &format!("/open-apis/cardkit/v1/cards/{id}/settings"),
        Some(&tok),
        Some(&settings),
    )
    .await?;
    assert_eq!(a.body["code"], 0, "{}", a.body);
    let a = call(&fake, "PUT", &cpath, Some(&tok), Some(&content(2, "Hello"))).await?;
    assert_eq!(a.body["code"], 300317);
    let a = call(&fake, "PUT", &cpath, Some(&tok), Some(&content(3, "Hello"))).await?;
    assert_eq!(a.body["code"], 300309, "streaming is off now");

    let state = fake.card(&id).context("card state")?;
    assert_eq!(state.element_content("stream_md").as_deref(), Some("Hel"));
    assert_eq!(state.summary().as_deref(), Some("done"));
    assert_eq!(state.sequence, 2);

    let a = call(
        &fake,
        "PUT",
        "/open-apis/cardkit/v1/cards/123/elements/x/content",
        Some(&tok),
        Some(&content(1, "x")),
    )
    .await?;
    assert_eq!(a.body["code"], 200740);
    let no_multi =
        json!({"schema": "2.0", "config": {"update_multi": false}, "body": {"elements": []}});
    let a = call(
        &fake,
        "POST",
        "/open-apis/cardkit/v1/cards",
        Some(&tok),
        Some(&json!({"type": "card_json", "data": no_multi.to_string()})),
    )
    .await?;
    assert_eq!(a.body["code"], 300302);
    let huge = json!({"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "z".repeat(31 * 1024)}]}});
    let a = call(
        &fake,
        "POST",
        "/open-apis/cardkit/v1/cards",
        Some(&tok),
        Some(&json!({"type": "card_json", "data": huge.to_string()})),
    )
    .await?;
    assert_eq!(a.body["code"], 200860);

    // Sent once, as an entity reference.
    let msg = json!({"receive_id": "oc_c", "msg_type": "interactive", "content": json!({"type": "card", "data": {"card_id": id}}).to_string()});
    let path = "/open-apis/im/v1/messages?receive_id_type=chat_id";
    let a = call(&fake, "POST", path, Some(&tok), Some(&msg)).await?;
    assert_eq!(a.body["code"], 0, "{}", a.body);
    let a = call(&fake, "POST", path, Some(&tok), Some(&msg)).await?;
    assert_ne!(a.body["code"], 0, "an entity can be sent once");
    Ok(())
}

#[tokio::test]
async fn rate_limits_answer_like_the_platform() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let path = "/open-apis/im/v1/messages?receive_id_type=chat_id";
    let body = json!({"receive_id": "oc_busy", "msg_type": "text", "content": "{\"text\":\"x\"}"});
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(
            call(&fake, "POST", path, Some(&tok), Some(&body))
                .await?
                .body["code"]
                .clone(),
        );
    }
    assert_eq!(
        codes[..5],
        [json!(0), json!(0), json!(0), json!(0), json!(0)]
    );
    assert_eq!(codes[5], 230020, "6th message to one chat within a second");

    fake.rate_limit_storm("/open-apis/im/v1/*", 1, 3);
    let a = call(&fake, "POST", path, Some(&tok), Some(&body)).await?;
    assert_eq!(a.status, 429);
    assert_eq!(a.body["code"], 99991400);
    assert_eq!(a.header("x-ogw-ratelimit-reset"), Some("3"));

    fake.fail_next("/open-apis/bot/v3/info", 1, 503);
    let a = call(&fake, "GET", "/open-apis/bot/v3/info", Some(&tok), None).await?;
    assert_eq!(a.status, 503);
    let a = call(&fake, "GET", "/open-apis/bot/v3/info", Some(&tok), None).await?;
    assert_eq!(a.status, 200);
    Ok(())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn endpoint(fake: &FakeFeishu) -> Result<(String, i32, Value)> {
    let a = call(
        fake,
        "POST",
        "/callback/ws/endpoint",
        None,
        Some(&json!({"AppID": fake.app_id(), "AppSecret": fake.app_secret()})),
    )
    .await?;
    ensure!(a.body["code"] == 0, "endpoint refused: {}", a.body);
    let url = a.body["data"]["URL"].as_str().context("URL")?.to_owned();
    let service_id = url
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("service_id="))
        .context("service_id")?
        .parse()?;
    Ok((url, service_id, a.body["data"]["ClientConfig"].clone()))
}

async fn next_frame(ws: &mut Ws) -> Result<Frame> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await? {
            Some(Ok(Message::Binary(b))) => return Ok(Frame::decode(b.as_ref())?),
            Some(Ok(_)) => continue,
            other => bail!("socket ended: {other:?}"),
        }
    }
}

fn hdr<'a>(f: &'a Frame, k: &str) -> &'a str {
    f.headers
        .iter()
        .find(|h| h.key == k)
        .map_or("", |h| h.value.as_str())
}

fn ack_for(f: &Frame, payload: &Value) -> Vec<u8> {
    let mut ack = f.clone();
    ack.headers.push(Header {
        key: "biz_rt".into(),
        value: "3".into(),
    });
    ack.payload = Some(payload.to_string().into_bytes());
    ack.encode_to_vec()
}

#[tokio::test]
async fn long_connection_ping_push_ack() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let (url, service, config) = endpoint(&fake).await?;
    assert_eq!(config["PingInterval"], 120, "seconds, not ms");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    fake.wait_for_connections(1, WAIT).await?;

    fake.set_pong_config(Some(ClientConfig {
        ping_interval: 5,
        ..ClientConfig::default()
    }));
    let ping = Frame {
        service,
        headers: vec![Header {
            key: "type".into(),
            value: "ping".into(),
        }],
        ..Default::default()
    };
    ws.send(Message::Binary(ping.encode_to_vec().into()))
        .await?;
    let pong = next_frame(&mut ws).await?;
    assert_eq!((pong.method, hdr(&pong, "type")), (0, "pong"));
    let cfg: Value = serde_json::from_slice(pong.payload.as_deref().unwrap_or_default())?;
    assert_eq!(cfg["PingInterval"], 5);
    assert_eq!(fake.pings(), 1);

    let event = fake.events().group_text("oc_g", "ou_alice", "hi", true);
    let id = fake.push(&event).await?;
    let f = next_frame(&mut ws).await?;
    assert_eq!(f.method, 1);
    assert_eq!(f.service, service);
    assert_eq!(hdr(&f, "type"), "event");
    assert_eq!(hdr(&f, "message_id"), id);
    assert_eq!((hdr(&f, "sum"), hdr(&f, "seq")), ("1", "0"));
    let got: Value = serde_json::from_slice(f.payload.as_deref().unwrap_or_default())?;
    assert_eq!(got, event);
    assert_eq!(
        got["event"]["message"]["mentions"][0]["id"]["open_id"],
        fake.bot_open_id()
    );

    let answer = base64::engine::general_purpose::STANDARD
        .encode(b"{\"toast\":{\"type\":\"info\",\"content\":\"ok\"}}");
    ws.send(Message::Binary(
        ack_for(&f, &json!({"code": 200, "data": answer})).into(),
    ))
    .await?;
    let ack = fake.wait_for_ack(&id, WAIT).await?;
    assert!(ack.problems.is_empty(), "{:?}", ack.problems);
    assert_eq!(ack.code, Some(200));
    assert_eq!(
        ack.data,
        Some(json!({"toast": {"type": "info", "content": "ok"}}))
    );

    // A frame that drops the zero-valued required fields is a violation.
    let sloppy = [0x18u8, 0x07, 0x2a, 0x00];
    ws.send(Message::Binary(sloppy.to_vec().into())).await?;
    ws.send(Message::Binary(ping.encode_to_vec().into()))
        .await?;
    next_frame(&mut ws).await?;
    assert_eq!(fake.violations().len(), 1, "{:?}", fake.violations());
    assert_eq!(fake.deliveries(&id), 1);

    fake.drop_connections();
    assert!(
        tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = ws.next().await {} })
            .await
            .is_ok()
    );
    Ok(())
}

#[tokio::test]
async fn unacked_event_is_redelivered() -> Result<()> {
    let fake = FakeFeishu::builder()
        .redelivery(Redelivery::fast(
            Duration::from_millis(100),
            Duration::from_millis(50),
            2,
        ))
        .start()
        .await?;
    // Pushed before any client connects: delivered once one does.
    let id = fake
        .push(&fake.events().p2p_text("oc_p", "ou_bob", "again?"))
        .await?;
    let (url, _, _) = endpoint(&fake).await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let first = next_frame(&mut ws).await?;
    let second = next_frame(&mut ws).await?;
    let third = next_frame(&mut ws).await?;
    for f in [&first, &second, &third] {
        assert_eq!(hdr(f, "message_id"), id);
    }
    assert_eq!(fake.deliveries(&id), 3);
    // Max retries reached: nothing more.
    assert!(
        tokio::time::timeout(Duration::from_millis(400), ws.next())
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn fragmented_push_reassembles_and_only_the_last_is_acked() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let (url, _, _) = endpoint(&fake).await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    fake.wait_for_connections(1, WAIT).await?;
    let event = fake
        .events()
        .p2p_text("oc_p", "ou_bob", &"long ".repeat(200));
    let id = fake.push_fragmented(&event, 3).await?;
    let mut parts = vec![Vec::new(); 3];
    let mut last = None;
    for _ in 0..3 {
        let f = next_frame(&mut ws).await?;
        assert_eq!((hdr(&f, "message_id"), hdr(&f, "sum")), (id.as_str(), "3"));
        let seq: usize = hdr(&f, "seq").parse()?;
        parts[seq] = f.payload.clone().unwrap_or_default();
        last = Some(f);
    }
    let joined: Value = serde_json::from_slice(&parts.concat())?;
    assert_eq!(joined, event);
    let last = last.context("frame")?;
    ws.send(Message::Binary(
        ack_for(&last, &json!({"code": 200})).into(),
    ))
    .await?;
    let ack = fake.wait_for_ack(&id, WAIT).await?;
    assert!(ack.problems.is_empty(), "{:?}", ack.problems);
    Ok(())
}

async fn refused(url: &str) -> Result<(u16, Vec<(String, String)>)> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => bail!("handshake unexpectedly succeeded"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Ok((
            resp.status().as_u16(),
            resp.headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
        )),
        Err(e) => bail!("unexpected error {e}"),
    }
}

fn get<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(k))
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn handshake_refusals_use_the_platform_headers() -> Result<()> {
    let fake = FakeFeishu::builder().max_connections(1).start().await?;

    fake.refuse_handshakes(1, HandshakeRefusal::Forbidden);
    let (url, _, _) = endpoint(&fake).await?;
    let (status, h) = refused(&url).await?;
    assert_eq!(status, 403);
    assert_eq!(get(&h, "handshake-status"), Some("403"));

    // The URL is single-use.
    let (url, _, _) = endpoint(&fake).await?;
    let (_ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let (status, _) = refused(&url).await?;
    assert_eq!(status, 514);

    fake.wait_for_connections(1, WAIT).await?;
    let (url, _, _) = endpoint(&fake).await?;
    let (status, h) = refused(&url).await?;
    assert_eq!(status, 514);
    assert_eq!(get(&h, "handshake-autherrcode"), Some("1000040350"));

    fake.refuse_endpoint(1, fcx_tests::fake_feishu::EndpointRefusal::InternalError);
    let a = call(
        &fake,
        "POST",
        "/callback/ws/endpoint",
        None,
        Some(&json!({"AppID": fake.app_id(), "AppSecret": fake.app_secret()})),
    )
    .await?;
    assert_eq!(a.body["code"], 1000040343);
    let a = call(
        &fake,
        "POST",
        "/callback/ws/endpoint",
        None,
        Some(&json!({"AppID": fake.app_id(), "AppSecret": "bad"})),
    )
    .await?;
    assert!(a.body["code"] != 0 && a.body["code"] != 1 && a.body["code"] != 1000040343);
    Ok(())
}
