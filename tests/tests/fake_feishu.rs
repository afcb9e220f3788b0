//! The fake Feishu Open Platform, exercised the way a gateway would use it:
//! raw HTTP/1.1 for the APIs and a tokio-tungstenite client for the long
//! connection.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

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

#[tokio::test]
async fn comments_and_resources_refuse_like_the_platform() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let text =
        |t: &str| json!({"content": {"elements": [{"type": "text_run", "text_run": {"text": t}}]}});
    let reply_path = |cid: &str| {
        format!("/open-apis/drive/v1/files/doxcnF/comments/{cid}/replies?file_type=docx")
    };
    // Solved and whole-document comments take no reply (1069302).
    let (open, _) = fake.add_comment_mentioning_bot("doxcnF", "ou_u", "q", "quote", false);
    let (solved, _) = fake.add_comment_mentioning_bot("doxcnF", "ou_u", "q", "quote", false);
    fake.solve_comment(&solved);
    let whole = fake.add_comment("doxcnF", "ou_u", "q", true);
    for cid in [&solved, &whole] {
        let a = call(
            &fake,
            "POST",
            &reply_path(cid),
            Some(&tok),
            Some(&text("a")),
        )
        .await?;
        assert_eq!(a.body["code"], 1069302, "{}", a.body);
    }
    // Only the documented element types.
    let odd =
        json!({"content": {"elements": [{"type": "markdown", "markdown": {"text": "**a**"}}]}});
    let a = call(&fake, "POST", &reply_path(&open), Some(&tok), Some(&odd)).await?;
    assert_eq!(a.body["code"], 99992402, "{}", a.body);
    // New whole-document comments: doc and docx only.
    let body = json!({"reply_list": {"replies": [text("x")]}});
    let a = call(
        &fake,
        "POST",
        "/open-apis/drive/v1/files/shtcnF/comments?file_type=sheet",
        Some(&tok),
        Some(&body),
    )
    .await?;
    assert_eq!(a.body["code"], 99992402, "{}", a.body);
    // Drive APIs are rate limited per API and app: the sixth reply within
    // a second is refused with HTTP 429 / 99991400 (its reset header set).
    // (The calls above are moved out of the window first.)
    fake.age_rate_windows(Duration::from_secs(2));
    // Calls until the first refusal (bounded; a slow machine only takes
    // more calls to get there): the first five always pass.
    let mut answers = Vec::new();
    for i in 0..100 {
        let a = call(
            &fake,
            "POST",
            &reply_path(&open),
            Some(&tok),
            Some(&text(&format!("r{i}"))),
        )
        .await?;
        let refused = a.status != 200;
        answers.push((
            a.status,
            a.body["code"].clone(),
            a.header("x-ogw-ratelimit-reset").map(str::to_owned),
        ));
        if refused {
            break;
        }
    }
    assert!(
        answers.len() > 5 && answers[..5].iter().all(|(s, c, _)| *s == 200 && *c == 0),
        "{answers:?}"
    );
    let last = answers.last().cloned().context("answers")?;
    assert_eq!((last.0, &last.1), (429, &json!(99991400)), "{answers:?}");
    assert!(last.2.is_some(), "{answers:?}");

    // Resources: inside a forward (234043), a sticker, and `type` required.
    fake.add_resource("om_r", "img_ok", "image", b"\x89PNG\r\n\x1a\n".to_vec());
    fake.refuse_resource("om_r", "img_fwd", 234043);
    fake.add_resource("om_r", "stk", "sticker", b"x".to_vec());
    let get = |key: &str, q: &str| format!("/open-apis/im/v1/messages/om_r/resources/{key}{q}");
    let a = call(
        &fake,
        "GET",
        &get("img_fwd", "?type=image"),
        Some(&tok),
        None,
    )
    .await?;
    assert_eq!(a.body["code"], 234043, "{}", a.body);
    let a = call(&fake, "GET", &get("stk", "?type=file"), Some(&tok), None).await?;
    assert_eq!(a.body["code"], 234043, "{}", a.body);
    let a = call(&fake, "GET", &get("img_ok", ""), Some(&tok), None).await?;
    assert_eq!(a.body["code"], 99992402, "{}", a.body);
    let a = call(
        &fake,
        "GET",
        &get("img_ok", "?type=image"),
        Some(&tok),
        None,
    )
    .await?;
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

// ---- app, recipient and card rate windows ------------------------------

const SEND_TO_CHAT: &str = "/open-apis/im/v1/messages?receive_id_type=chat_id";
const SEND_TO_USER: &str = "/open-apis/im/v1/messages?receive_id_type=open_id";

fn text_to(receive_id: &str) -> Value {
    json!({"receive_id": receive_id, "msg_type": "text", "content": "{\"text\":\"x\"}"})
}

/// The same request `n` times at once (each on its own connection).
async fn burst(
    fake: &FakeFeishu,
    tok: &str,
    reqs: Vec<(&str, String, Value)>,
) -> Result<Vec<HttpAnswer>> {
    futures::future::join_all(
        reqs.iter()
            .map(|(m, p, b)| call(fake, m, p, Some(tok), Some(b))),
    )
    .await
    .into_iter()
    .collect()
}

fn codes(answers: &[HttpAnswer]) -> Vec<i64> {
    answers
        .iter()
        .map(|a| a.body["code"].as_i64().unwrap_or(-1))
        .collect()
}

#[tokio::test]
async fn im_send_has_a_per_second_and_a_per_minute_app_window() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let mut first = String::new();
    // Twenty seconds of full per-second windows (the limiter's clock is
    // aged a second after each), every message to its own chat so the
    // 5-per-chat limit stays out of the way.
    for second in 0..20 {
        let reqs = (0..50)
            .map(|i| {
                let body = text_to(&format!("oc_m{second}_{i}"));
                ("POST", SEND_TO_CHAT.to_owned(), body)
            })
            .collect();
        let answers = burst(&fake, &tok, reqs).await?;
        assert!(
            codes(&answers).iter().all(|c| *c == 0),
            "second {second}: {:?}",
            codes(&answers)
        );
        if second == 0 {
            first = answers[0].body["data"]["message_id"]
                .as_str()
                .context("id")?
                .to_owned();
            let a = call(
                &fake,
                "POST",
                SEND_TO_CHAT,
                Some(&tok),
                Some(&text_to("oc_x")),
            )
            .await?;
            assert_eq!((a.status, a.body["code"].clone()), (429, json!(99991400)));
            assert_eq!(a.header("x-ogw-ratelimit-limit"), Some("50"));
            assert_eq!(a.header("x-ogw-ratelimit-reset"), Some("1"));
        }
        fake.age_rate_windows(Duration::from_secs(1));
    }
    // 1000 admitted within a minute: the 1001st is refused by the minute
    // window, which frees up when the first second's calls are 60 s old.
    let a = call(
        &fake,
        "POST",
        SEND_TO_CHAT,
        Some(&tok),
        Some(&text_to("oc_x")),
    )
    .await?;
    assert_eq!((a.status, a.body["code"].clone()), (429, json!(99991400)));
    assert_eq!(a.header("x-ogw-ratelimit-limit"), Some("1000"));
    let reset: u64 = a
        .header("x-ogw-ratelimit-reset")
        .context("reset")?
        .parse()?;
    assert!((30..=40).contains(&reset), "reset {reset}");
    // Per API: replies have their own windows.
    let a = call(
        &fake,
        "POST",
        &format!("/open-apis/im/v1/messages/{first}/reply"),
        Some(&tok),
        Some(&json!({"msg_type": "text", "content": "{\"text\":\"r\"}"})),
    )
    .await?;
    assert_eq!(a.body["code"], 0, "{}", a.body);

    fake.age_rate_windows(Duration::from_secs(40));
    let a = call(
        &fake,
        "POST",
        SEND_TO_CHAT,
        Some(&tok),
        Some(&text_to("oc_x")),
    )
    .await?;
    assert_eq!(a.body["code"], 0, "{}", a.body);

    let limited = fake.rate_limited();
    let labels: Vec<_> = limited.iter().map(|c| c.rate_limit.clone()).collect();
    assert_eq!(
        labels,
        [
            Some("app:im.send 50/1s".to_owned()),
            Some("app:im.send 1000/60s".to_owned())
        ]
    );
    assert!(limited.iter().all(|c| c.is_rate_limited()));
    Ok(())
}

#[tokio::test]
async fn im_five_per_second_to_one_user_spans_open_id_and_their_p2p_chat() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let ev = fake.events().p2p_text("oc_dm_ann", "ou_ann", "hi");
    let om = ev["event"]["message"]["message_id"]
        .as_str()
        .context("om")?
        .to_owned();
    // Pushing registers the p2p chat (no client has to be connected).
    fake.push(&ev).await?;
    let reply = format!("/open-apis/im/v1/messages/{om}/reply");
    let r = json!({"msg_type": "text", "content": "{\"text\":\"r\"}"});
    let mut got = Vec::new();
    for (path, body) in [
        (SEND_TO_USER, text_to("ou_ann")),
        (SEND_TO_USER, text_to("ou_ann")),
        (reply.as_str(), r.clone()),
        (reply.as_str(), r.clone()),
        (SEND_TO_CHAT, text_to("oc_dm_ann")),
        (SEND_TO_USER, text_to("ou_ann")),
        (reply.as_str(), r.clone()),
    ] {
        got.push(call(&fake, "POST", path, Some(&tok), Some(&body)).await?);
    }
    assert_eq!(codes(&got), [0, 0, 0, 0, 0, 230020, 230020]);
    assert_eq!(got[5].status, 400);
    // Other users and groups have their own 5.
    let a = call(
        &fake,
        "POST",
        SEND_TO_USER,
        Some(&tok),
        Some(&text_to("ou_bob")),
    )
    .await?;
    assert_eq!(a.body["code"], 0);
    let labels: Vec<_> = fake
        .rate_limited()
        .into_iter()
        .map(|c| c.rate_limit)
        .collect();
    assert_eq!(labels, vec![Some("im.user:ou_ann 5/1s".to_owned()); 2]);
    Ok(())
}

async fn create_card(fake: &FakeFeishu, tok: &str, card: &Value) -> Result<String> {
    let a = call(
        fake,
        "POST",
        "/open-apis/cardkit/v1/cards",
        Some(tok),
        Some(&json!({"type": "card_json", "data": card.to_string()})),
    )
    .await?;
    ensure!(a.body["code"] == 0, "create refused: {}", a.body);
    Ok(a.body["data"]["card_id"]
        .as_str()
        .context("card_id")?
        .to_owned())
}

fn plain_card(streaming: bool) -> Value {
    json!({
        "schema": "2.0",
        "config": {"streaming_mode": streaming},
        "body": {"elements": [{"tag": "markdown", "content": "", "element_id": "md"}]},
    })
}

/// `n` settings calls (summary only, streaming unchanged) on card `id`,
/// one after another with sequences `from..from+n`.
async fn settings_ops(
    fake: &FakeFeishu,
    tok: &str,
    id: &str,
    from: i64,
    n: i64,
) -> Result<Vec<HttpAnswer>> {
    let path = format!("/open-apis/cardkit/v1/cards/{id}/settings");
    let mut out = Vec::new();
    for seq in from..from + n {
        let settings = json!({"config": {"summary": {"content": format!("s{seq}")}}});
        let body = json!({"settings": settings.to_string(), "sequence": seq});
        out.push(call(fake, "PATCH", &path, Some(tok), Some(&body)).await?);
    }
    Ok(out)
}

#[tokio::test]
async fn cardkit_ops_on_streaming_cards_skip_the_app_window_others_count() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let mut streaming = Vec::new();
    let mut still = Vec::new();
    for _ in 0..6 {
        streaming.push(create_card(&fake, &tok, &plain_card(true)).await?);
        still.push(create_card(&fake, &tok, &plain_card(false)).await?);
    }
    // 60 settings calls on streaming cards at once: above the app's 50/s,
    // and all admitted (10 per card, the per-card limit).
    let runs = futures::future::join_all(
        streaming
            .iter()
            .map(|id| settings_ops(&fake, &tok, id, 1, 10)),
    )
    .await;
    for run in runs {
        assert!(codes(&run?).iter().all(|c| *c == 0));
    }
    // The per-card 10 ops/s still stands in streaming mode.
    let a = settings_ops(&fake, &tok, &streaming[0], 11, 1).await?;
    assert_eq!(
        (a[0].status, a[0].body["code"].clone()),
        (429, json!(99991400))
    );
    assert_eq!(a[0].header("x-ogw-ratelimit-limit"), Some("10"));

    // On non-streaming cards the same API counts: 50 pass, the 51st not.
    let runs = futures::future::join_all(
        still[..5]
            .iter()
            .map(|id| settings_ops(&fake, &tok, id, 1, 10)),
    )
    .await;
    for run in runs {
        assert!(codes(&run?).iter().all(|c| *c == 0));
    }
    let a = settings_ops(&fake, &tok, &still[5], 1, 1).await?;
    assert_eq!(
        (a[0].status, a[0].body["code"].clone()),
        (429, json!(99991400))
    );
    assert_eq!(a[0].header("x-ogw-ratelimit-limit"), Some("50"));

    // Creating counts even for a streaming card.
    fake.age_rate_windows(Duration::from_secs(1));
    let reqs = (0..51)
        .map(|_| {
            let body = json!({"type": "card_json", "data": plain_card(true).to_string()});
            ("POST", "/open-apis/cardkit/v1/cards".to_owned(), body)
        })
        .collect();
    let mut got = codes(&burst(&fake, &tok, reqs).await?);
    got.sort_unstable();
    assert_eq!(got.iter().filter(|c| **c == 0).count(), 50);
    assert_eq!(got.last(), Some(&99991400));

    let labels: Vec<String> = fake
        .rate_limited()
        .into_iter()
        .filter_map(|c| c.rate_limit)
        .collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert!(labels[0].starts_with("card:") && labels[0].ends_with(" 10/1s"));
    assert_eq!(labels[1], "app:cardkit.settings 50/1s");
    assert_eq!(labels[2], "app:cardkit.create 50/1s");
    Ok(())
}

// ---- command cards: validation, view, click and submit ------------------

fn pt(s: &str) -> Value {
    json!({"tag": "plain_text", "content": s})
}

fn opt(label: &str, value: &str) -> Value {
    json!({"text": pt(label), "value": value})
}

fn submit_button() -> Value {
    json!({"tag": "button", "name": "go", "text": pt("Go"), "form_action_type": "submit"})
}

fn form_of(elements: Vec<Value>) -> Value {
    json!({"tag": "form", "name": "f", "elements": elements})
}

fn panel_of(elements: Vec<Value>) -> Value {
    json!({"tag": "collapsible_panel", "header": {"title": pt("More")}, "elements": elements})
}

fn card_of(elements: Vec<Value>) -> Value {
    json!({"schema": "2.0", "body": {"elements": elements}})
}

/// A `/config`-style command card: a form (input, single and multi select,
/// optional input, submit and reset in a column_set) and, in a panel, a
/// callback button and a link button.
fn command_card(model: &str) -> Value {
    json!({
        "schema": "2.0",
        "config": {"update_multi": true},
        "header": {"title": pt("/config")},
        "body": {"elements": [
            {"tag": "markdown", "content": "Settings", "element_id": "intro"},
            {"tag": "form", "name": "config_form", "element_id": "config_form", "elements": [
                {"tag": "input", "name": "title", "label": pt("Title"), "default_value": "my chat", "required": true},
                {"tag": "select_static", "name": "model", "placeholder": pt("Model"), "initial_option": model,
                 "options": [opt("GPT-5", "gpt-5"), opt("GPT-5 mini", "gpt-5-mini")]},
                {"tag": "multi_select_static", "name": "tools", "required": false, "selected_values": ["shell"],
                 "options": [opt("Shell", "shell"), opt("Web", "web")]},
                {"tag": "input", "name": "note", "placeholder": pt("Note")},
                {"tag": "column_set", "columns": [
                    {"tag": "column", "elements": [
                        {"tag": "button", "name": "apply", "text": pt("Apply"), "type": "primary",
                         "form_action_type": "submit",
                         "behaviors": [{"type": "callback", "value": {"cmd": "config", "fp": "abc"}}]}]},
                    {"tag": "column", "elements": [
                        {"tag": "button", "name": "reset", "text": pt("Reset"), "form_action_type": "reset"}]},
                ]},
            ]},
            {"tag": "collapsible_panel", "element_id": "more", "header": {"title": pt("More")}, "elements": [
                {"tag": "button", "element_id": "stop", "text": pt("Stop"),
                 "behaviors": [{"type": "callback", "value": {"cmd": "stop"}}]},
                {"tag": "button", "text": pt("Docs"),
                 "behaviors": [{"type": "open_url", "default_url": "https://example.com/docs"}]},
            ]},
        ]},
    })
}

/// IM send (→ 230001) and CardKit create (→ 10002) of `card`: the codes.
async fn send_and_create(
    fake: &FakeFeishu,
    tok: &str,
    card: &Value,
    chat: &str,
) -> Result<(Value, Value)> {
    let msg = json!({"receive_id": chat, "msg_type": "interactive", "content": card.to_string()});
    let im = call(fake, "POST", SEND_TO_CHAT, Some(tok), Some(&msg)).await?;
    let kit = call(
        fake,
        "POST",
        "/open-apis/cardkit/v1/cards",
        Some(tok),
        Some(&json!({"type": "card_json", "data": card.to_string()})),
    )
    .await?;
    Ok((im.body, kit.body))
}

#[tokio::test]
async fn command_cards_are_validated_like_the_platform() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let nest = |depth: usize| {
        let mut v = json!({"tag": "markdown", "content": "deep"});
        for _ in 0..depth {
            v = panel_of(vec![v]);
        }
        card_of(vec![v])
    };
    let accepted = [
        ("the command card", command_card("gpt-5")),
        ("5 nested containers", nest(5)),
        (
            "a 20-character element_id",
            card_of(vec![
                json!({"tag": "markdown", "content": "x", "element_id": "a1234567890123456789"}),
            ]),
        ),
    ];
    for (i, (what, card)) in accepted.iter().enumerate() {
        let (im, kit) = send_and_create(&fake, &tok, card, &format!("oc_ok{i}")).await?;
        assert_eq!(
            (im["code"].clone(), kit["code"].clone()),
            (json!(0), json!(0)),
            "{what}: {im} / {kit}"
        );
    }

    let input = |name: &str| json!({"tag": "input", "name": name});
    let refused = [
        (
            "form inside collapsible_panel",
            card_of(vec![panel_of(vec![form_of(vec![submit_button()])])]),
            "body.elements",
        ),
        (
            "form inside column_set",
            card_of(vec![
                json!({"tag": "column_set", "columns": [{"tag": "column", "elements": [form_of(vec![submit_button()])]}]}),
            ]),
            "form",
        ),
        (
            "form inside form",
            card_of(vec![form_of(vec![
                submit_button(),
                json!({"tag": "form", "name": "g", "elements": []}),
            ])]),
            "another form",
        ),
        (
            "form without a name",
            card_of(vec![json!({"tag": "form", "elements": [submit_button()]})]),
            "name",
        ),
        (
            "table inside form",
            card_of(vec![form_of(vec![
                json!({"tag": "table", "columns": [], "rows": []}),
                submit_button(),
            ])]),
            "table",
        ),
        (
            "field without name",
            card_of(vec![form_of(vec![
                json!({"tag": "input"}),
                submit_button(),
            ])]),
            "name",
        ),
        (
            "duplicate field names",
            card_of(vec![form_of(vec![input("x"), input("x"), submit_button()])]),
            "unique",
        ),
        (
            "field named like its form",
            card_of(vec![form_of(vec![input("f"), submit_button()])]),
            "unique",
        ),
        (
            "submit button without name",
            card_of(vec![form_of(vec![
                json!({"tag": "button", "text": pt("Go"), "form_action_type": "submit"}),
            ])]),
            "name",
        ),
        (
            "form without a submit button",
            card_of(vec![form_of(vec![
                input("x"),
                json!({"tag": "button", "name": "r", "text": pt("R"), "form_action_type": "reset"}),
            ])]),
            "submit",
        ),
        (
            "option text not plain_text",
            card_of(vec![form_of(vec![
                json!({"tag": "select_static", "name": "s", "options": [{"text": {"tag": "lark_md", "content": "a"}, "value": "a"}]}),
                submit_button(),
            ])]),
            "option",
        ),
        (
            "option without value",
            card_of(vec![form_of(vec![
                json!({"tag": "select_static", "name": "s", "options": [{"text": pt("a")}]}),
                submit_button(),
            ])]),
            "value",
        ),
        (
            "select without options",
            card_of(vec![json!({"tag": "select_static", "name": "s"})]),
            "options",
        ),
        (
            "multi_select_static outside a form",
            card_of(vec![
                json!({"tag": "multi_select_static", "name": "m", "options": [opt("a", "a")]}),
            ]),
            "inside a form",
        ),
        (
            "button without text",
            card_of(vec![
                json!({"tag": "button", "behaviors": [{"type": "callback", "value": {}}]}),
            ]),
            "text",
        ),
        (
            "element_id starting with a digit",
            card_of(vec![json!({"tag": "hr", "element_id": "1st"})]),
            "element_id",
        ),
        (
            "element_id with a hyphen",
            card_of(vec![json!({"tag": "hr", "element_id": "a-b"})]),
            "element_id",
        ),
        (
            "21-character element_id",
            card_of(vec![
                json!({"tag": "hr", "element_id": "a12345678901234567890"}),
            ]),
            "element_id",
        ),
        (
            "duplicate element_id",
            card_of(vec![
                json!({"tag": "hr", "element_id": "x"}),
                panel_of(vec![json!({"tag": "hr", "element_id": "x"})]),
            ]),
            "unique",
        ),
        ("6 nested containers", nest(6), "5 levels"),
    ];
    for (i, (what, card, why)) in refused.iter().enumerate() {
        let (im, kit) = send_and_create(&fake, &tok, card, &format!("oc_bad{i}")).await?;
        assert_eq!(im["code"], 230001, "{what}: {im}");
        assert_eq!(kit["code"], 10002, "{what}: {kit}");
        for body in [&im, &kit] {
            let msg = body["msg"].as_str().unwrap_or("");
            assert!(msg.contains(why), "{what}: {msg:?} lacks {why:?}");
        }
    }

    // The same validator guards message PATCH and CardKit full updates.
    let bad = card_of(vec![panel_of(vec![form_of(vec![submit_button()])])]);
    let msg = json!({"receive_id": "oc_patch", "msg_type": "interactive", "content": command_card("gpt-5").to_string()});
    let sent = call(&fake, "POST", SEND_TO_CHAT, Some(&tok), Some(&msg)).await?;
    let om = sent.body["data"]["message_id"].as_str().context("om")?;
    let a = call(
        &fake,
        "PATCH",
        &format!("/open-apis/im/v1/messages/{om}"),
        Some(&tok),
        Some(&json!({"content": bad.to_string()})),
    )
    .await?;
    assert_eq!(a.body["code"], 230001, "{}", a.body);
    let id = create_card(&fake, &tok, &command_card("gpt-5")).await?;
    let a = call(
        &fake,
        "PUT",
        &format!("/open-apis/cardkit/v1/cards/{id}"),
        Some(&tok),
        Some(&json!({"card": {"type": "card_json", "data": bad.to_string()}, "sequence": 1})),
    )
    .await?;
    assert_eq!(a.body["code"], 10002, "{}", a.body);
    Ok(())
}

const CLICKER: &str = "ou_clicker00000000000000000000001";

#[tokio::test]
async fn clicks_and_form_submits_produce_the_platform_events() -> Result<()> {
    let fake = FakeFeishu::start().await?;
    let tok = token(&fake).await?;
    let msg = json!({"receive_id": "oc_cmd", "msg_type": "interactive", "content": command_card("gpt-5").to_string()});
    let sent = call(&fake, "POST", SEND_TO_CHAT, Some(&tok), Some(&msg)).await?;
    let om = sent.body["data"]["message_id"]
        .as_str()
        .context("om")?
        .to_owned();

    // What the user sees.
    let view = fake.card_view(&om).context("a card")?;
    assert_eq!(view.title.as_deref(), Some("/config"));
    assert_eq!(view.labels(), ["Apply", "Reset", "Stop", "Docs"]);
    let form = view.form("config_form").context("form")?;
    let names: Vec<_> = form.fields.iter().filter_map(|f| f.name.clone()).collect();
    assert_eq!(names, ["title", "model", "tools", "note"]);
    let model = view.field("model").context("model")?;
    let offered: Vec<_> = model
        .options
        .iter()
        .map(|o| (o.label.as_str(), o.value.as_str()))
        .collect();
    assert_eq!(offered, [("GPT-5", "gpt-5"), ("GPT-5 mini", "gpt-5-mini")]);
    assert_eq!(model.value, Some(json!("gpt-5")));
    assert_eq!(
        view.field("tools").context("tools")?.value,
        Some(json!(["shell"]))
    );
    let title = view.field("title").context("title")?;
    assert_eq!(
        (title.label.as_deref(), title.required),
        (Some("Title"), true)
    );
    assert_eq!(title.value, Some(json!("my chat")));
    assert_eq!(view.field("note").context("note")?.value, None);
    let docs = view.button("Docs").context("docs")?;
    assert_eq!(
        (docs.value.clone(), docs.url.as_deref()),
        (None, Some("https://example.com/docs"))
    );

    // A plain click: the callback value, tag button, no name / form_value.
    let ev = fake.events().click(CLICKER, &om, "Stop")?;
    assert_eq!(ev["header"]["event_type"], "card.action.trigger");
    assert_eq!(
        ev["event"]["action"],
        json!({"value": {"cmd": "stop"}, "tag": "button"})
    );
    assert_eq!(
        ev["event"]["context"],
        json!({"open_message_id": om, "open_chat_id": "oc_cmd"})
    );
    assert_eq!(ev["event"]["operator"]["open_id"], CLICKER);
    assert!(
        ev["event"]["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("c-"))
    );

    // A submit: changed fields, the rest as shown, empty optional ones left out.
    let ev = fake.events().submit_form(
        CLICKER,
        &om,
        "Apply",
        &[
            ("model", json!("gpt-5-mini")),
            ("tools", json!(["shell", "web"])),
        ],
    )?;
    assert_eq!(
        ev["event"]["action"],
        json!({
            "tag": "button",
            "name": "apply",
            "value": {"cmd": "config", "fp": "abc"},
            "timezone": "Asia/Shanghai",
            "form_value": {"title": "my chat", "model": "gpt-5-mini", "tools": ["shell", "web"]},
        })
    );
    assert_eq!(ev["event"]["context"]["open_chat_id"], "oc_cmd");
    // Clicking the submit button submits the form as shown.
    let ev = fake.events().click(CLICKER, &om, "Apply")?;
    assert_eq!(
        ev["event"]["action"]["form_value"],
        json!({"title": "my chat", "model": "gpt-5", "tools": ["shell"]})
    );
    assert_eq!(ev["event"]["action"]["name"], "apply");

    // What a client would not let a user do.
    let events = fake.events();
    for (what, r) in [
        (
            "not an option",
            events.submit_form(CLICKER, &om, "Apply", &[("model", json!("o3"))]),
        ),
        (
            "required left empty",
            events.submit_form(CLICKER, &om, "Apply", &[("title", json!(""))]),
        ),
        (
            "unknown field",
            events.submit_form(CLICKER, &om, "Apply", &[("nope", json!("x"))]),
        ),
        (
            "not a submit button",
            events.submit_form(CLICKER, &om, "Stop", &[]),
        ),
        ("reset button", events.click(CLICKER, &om, "Reset")),
        ("link button", events.click(CLICKER, &om, "Docs")),
        ("no such button", events.click(CLICKER, &om, "Cancel")),
    ] {
        assert!(r.is_err(), "{what}: {r:?}");
    }

    // The view follows the card as patched.
    let a = call(
        &fake,
        "PATCH",
        &format!("/open-apis/im/v1/messages/{om}"),
        Some(&tok),
        Some(&json!({"content": command_card("gpt-5-mini").to_string()})),
    )
    .await?;
    assert_eq!(a.body["code"], 0, "{}", a.body);
    let view = fake.card_view(&om).context("a card")?;
    assert_eq!(
        view.field("model").context("model")?.value,
        Some(json!("gpt-5-mini"))
    );

    // A CardKit entity sent by reference works the same way.
    let id = create_card(&fake, &tok, &command_card("gpt-5")).await?;
    assert_eq!(
        fake.card(&id).context("card")?.view().labels(),
        ["Apply", "Reset", "Stop", "Docs"]
    );
    let msg = json!({"receive_id": "oc_kit", "msg_type": "interactive", "content": json!({"type": "card", "data": {"card_id": id}}).to_string()});
    let sent = call(&fake, "POST", SEND_TO_CHAT, Some(&tok), Some(&msg)).await?;
    let om2 = sent.body["data"]["message_id"].as_str().context("om2")?;
    let ev = fake
        .events()
        .submit_form(CLICKER, om2, "Apply", &[("note", json!("hi"))])?;
    assert_eq!(
        ev["event"]["context"],
        json!({"open_message_id": om2, "open_chat_id": "oc_kit"})
    );
    assert_eq!(ev["event"]["action"]["form_value"]["note"], "hi");
    assert!(fake.card_view("om_missing").is_none());

    // The low-level builder is unchanged.
    let ev = fake
        .events()
        .card_action(CLICKER, &om, "oc_cmd", json!({"k": 1}), None);
    assert_eq!(
        ev["event"]["action"],
        json!({"value": {"k": 1}, "tag": "button"})
    );
    Ok(())
}
