use super::*;
use crate::feishu::testkit::{FakeHttp, Recorded, Reply};
use serde_json::json;

fn policy() -> RetryPolicy {
    RetryPolicy {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn client(fake: &FakeHttp) -> OpenApiClient {
    OpenApiClient::new(
        &fake.base,
        "cli_0123456789abcdef",
        Secret::new("s3cr3t-value"),
        policy(),
    )
    .expect("client")
}

fn token_reply(earlier: &[Recorded], expire: u64) -> Reply {
    let n = earlier.iter().filter(|r| r.path == TOKEN_PATH).count() + 1;
    Reply::json(
        200,
        json!({"code": 0, "msg": "ok", "tenant_access_token": format!("t-{n}"), "expire": expire}),
    )
}

fn auth(r: &Recorded) -> String {
    r.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn bot_ok() -> Reply {
    Reply::json(
        200,
        json!({"code": 0, "msg": "ok", "bot": {"open_id": "ou_bot", "app_name": "fcx", "activate_status": 2}}),
    )
}

#[tokio::test]
async fn token_is_cached_single_flight_and_refreshed() {
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => {
            assert_eq!(
                r.json(),
                json!({"app_id": "cli_0123456789abcdef", "app_secret": "s3cr3t-value"})
            );
            assert!(r.headers.get("authorization").is_none());
            token_reply(earlier, 7200)
        }
        "/open-apis/bot/v3/info" => {
            assert_eq!(auth(r), "Bearer t-1");
            bot_ok()
        }
        _ => Reply::json(404, json!({})),
    })
    .await;
    let c = client(&fake);
    let info = c.bot_info().await.expect("bot info");
    assert_eq!(info.open_id, "ou_bot");
    assert_eq!(info.app_name, "fcx");
    let calls: Vec<_> = (0..8).map(|_| c.bot_info()).collect();
    for r in futures::future::join_all(calls).await {
        r.expect("bot info");
    }
    assert_eq!(fake.count(TOKEN_PATH), 1);
    assert_eq!(fake.count("/open-apis/bot/v3/info"), 9);
    // The secret never shows in Debug.
    assert!(!format!("{c:?}").contains("s3cr3t"));

    // A token within the refresh margin of expiry is refetched each time.
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 180),
        _ => bot_ok(),
    })
    .await;
    let c = client(&fake);
    c.bot_info().await.expect("bot info");
    c.bot_info().await.expect("bot info");
    assert_eq!(fake.count(TOKEN_PATH), 2);
    let auths: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path != TOKEN_PATH)
        .map(auth)
        .collect();
    assert_eq!(auths, vec!["Bearer t-1", "Bearer t-2"]);
}

#[tokio::test]
async fn invalid_token_is_retried_once_with_a_fresh_token() {
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 7200),
        _ if auth(r) == "Bearer t-1" => {
            Reply::json(200, json!({"code": 99991663, "msg": "invalid token"}))
        }
        _ => bot_ok(),
    })
    .await;
    let c = client(&fake);
    assert_eq!(c.bot_info().await.expect("bot info").open_id, "ou_bot");
    assert_eq!(fake.count(TOKEN_PATH), 2);
    assert_eq!(fake.count("/open-apis/bot/v3/info"), 2);

    // Always invalid: exactly one retry, then the error.
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 7200),
        _ => Reply::json(200, json!({"code": 99991671, "msg": "invalid"})),
    })
    .await;
    let c = client(&fake);
    let e = c.bot_info().await.expect_err("must fail");
    assert_eq!(e.code(), Some(99991671));
    assert_eq!(fake.count("/open-apis/bot/v3/info"), 2);
}

#[tokio::test]
async fn business_code_with_http_200_is_an_error() {
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 7200),
        _ => Reply::json(
            200,
            json!({"code": 230002, "msg": "bot is not in the chat"}),
        ),
    })
    .await;
    let c = client(&fake);
    let e = c
        .im()
        .send_message(ReceiveIdType::ChatId, "oc_1", &OutgoingMessage::text("hi"))
        .await
        .expect_err("must fail");
    match &e {
        ApiError::Api {
            code, msg, log_id, ..
        } => {
            assert_eq!(*code, 230002);
            assert_eq!(msg, "bot is not in the chat");
            assert_eq!(log_id.as_deref(), Some("log-123"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().contains("log-123"));
    // Not retried.
    assert_eq!(fake.count("/open-apis/im/v1/messages"), 1);
}

#[tokio::test]
async fn rate_limits_wait_then_succeed_or_give_up() {
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 7200),
        p => {
            let n = earlier.iter().filter(|e| e.path == p).count();
            match n {
                0 => Reply::json(429, json!({"code": 99991400, "msg": "frequency limit"}))
                    .header("x-ogw-ratelimit-reset", "1"),
                1 => Reply::json(200, json!({"code": 230020, "msg": "frequency limit"})),
                _ => Reply::json(
                    200,
                    json!({"code": 0, "msg": "ok", "data": {"message_id": "om_1", "chat_id": "oc_1"}}),
                ),
            }
        }
    })
    .await;
    let c = client(&fake);
    let m = c
        .im()
        .send_message(ReceiveIdType::ChatId, "oc_1", &OutgoingMessage::text("hi"))
        .await
        .expect("sent after waiting");
    assert_eq!(m.message_id, "om_1");
    let sends: Vec<Recorded> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/open-apis/im/v1/messages")
        .collect();
    assert_eq!(sends.len(), 3);
    let uuids: Vec<serde_json::Value> = sends.iter().map(|r| r.json()["uuid"].clone()).collect();
    assert!(
        uuids[0]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 50)
    );
    assert!(uuids.iter().all(|u| *u == uuids[0]));

    // A reset beyond the budget fails at once.
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 7200),
        _ => Reply::json(429, json!({"code": 99991400, "msg": "limit"}))
            .header("x-ogw-ratelimit-reset", "3600"),
    })
    .await;
    let c = client(&fake);
    let e = c.bot_info().await.expect_err("must give up");
    assert!(
        matches!(e, ApiError::RateLimited { code: 99991400, .. }),
        "{e:?}"
    );
    assert_eq!(fake.count("/open-apis/bot/v3/info"), 1);
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_uuid() {
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 7200),
        p => {
            let n = earlier.iter().filter(|e| e.path == p).count();
            match n {
                0 => Reply {
                    status: 502,
                    headers: vec![],
                    body: b"bad gateway".to_vec(),
                },
                1 => Reply::json(503, json!({"code": 1, "msg": "busy"})),
                _ => Reply::json(
                    200,
                    json!({"code": 0, "msg": "ok", "data": {"message_id": "om_2", "parent_id": "om_1"}}),
                ),
            }
        }
    })
    .await;
    let c = client(&fake);
    let msg = OutgoingMessage::text("hello").with_uuid("my-key-1");
    let m = c
        .im()
        .reply_message("om_1", &msg, true)
        .await
        .expect("reply");
    assert_eq!(m.message_id, "om_2");
    let replies: Vec<Recorded> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/open-apis/im/v1/messages/om_1/reply")
        .collect();
    assert_eq!(replies.len(), 3);
    for r in &replies {
        let b = r.json();
        assert_eq!(b["uuid"], "my-key-1");
        assert_eq!(b["reply_in_thread"], true);
        assert_eq!(b["msg_type"], "text");
        assert_eq!(b["content"], r#"{"text":"hello"}"#);
    }

    // Retries are bounded.
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 7200),
        _ => Reply::json(500, json!({"code": 2200, "msg": "internal"})),
    })
    .await;
    let c = client(&fake);
    let e = c.bot_info().await.expect_err("must fail");
    assert_eq!(e.code(), Some(2200));
    assert_eq!(fake.count("/open-apis/bot/v3/info"), 4);
}

#[tokio::test]
async fn send_query_get_reaction_chat_and_download() {
    let fake = FakeHttp::start(|r, earlier| match r.path.as_str() {
        TOKEN_PATH => token_reply(earlier, 7200),
        "/open-apis/im/v1/messages" => {
            assert_eq!(r.query, "receive_id_type=open_id");
            Reply::json(200, json!({"code": 0, "data": {"message_id": "om_9"}}))
        }
        "/open-apis/im/v1/messages/om_9" => Reply::json(
            200,
            json!({"code": 0, "data": {"items": [{"message_id": "om_9", "msg_type": "text",
                "body": {"content": "{\"text\":\"x\"}"}, "mentions": [{"key": "@_user_1", "id": "ou_1"}]}]}}),
        ),
        "/open-apis/im/v1/messages/om_9/reactions" => {
            assert_eq!(r.json(), json!({"reaction_type": {"emoji_type": "OK"}}));
            Reply::json(200, json!({"code": 0, "data": {"reaction_id": "r1"}}))
        }
        "/open-apis/im/v1/chats" => {
            assert!(r.query.contains("user_id_type=open_id"));
            assert!(r.query.contains("uuid=chat-key"));
            assert_eq!(r.json(), json!({"name": "fcx", "user_id_list": ["ou_1"]}));
            Reply::json(200, json!({"code": 0, "data": {"chat_id": "oc_new"}}))
        }
        "/open-apis/im/v1/messages/om_9/resources/file_k" => {
            assert_eq!(r.query, "type=file");
            Reply {
                status: 200,
                headers: vec![("content-type".into(), "application/octet-stream".into())],
                body: vec![7u8; 100],
            }
        }
        "/open-apis/im/v1/messages/om_9/resources/gone" => {
            Reply::json(400, json!({"code": 234043, "msg": "unsupported"}))
        }
        _ => Reply::json(404, json!({})),
    })
    .await;
    let c = client(&fake);
    let m = c
        .im()
        .send_message(ReceiveIdType::OpenId, "ou_1", &OutgoingMessage::text("x"))
        .await
        .expect("send");
    assert_eq!(m.message_id, "om_9");
    let items = c.im().get_message("om_9").await.expect("get");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].mentions[0].key.as_deref(), Some("@_user_1"));
    assert_eq!(
        c.im()
            .add_reaction("om_9", "OK")
            .await
            .expect("react")
            .reaction_id,
        "r1"
    );
    let chat = c
        .im()
        .create_chat(&CreateChat {
            name: Some("fcx".into()),
            user_id_list: vec!["ou_1".into()],
            uuid: Some("chat-key".into()),
            ..Default::default()
        })
        .await
        .expect("chat");
    assert_eq!(chat.chat_id, "oc_new");
    let res = crate::feishu::resources::Resources::new(c.clone());
    let file = crate::feishu::resources::ResourceType::File;
    let bytes = res
        .download("om_9", "file_k", file, 1000)
        .await
        .expect("download");
    assert_eq!(bytes.len(), 100);
    let e = res
        .download("om_9", "file_k", file, 99)
        .await
        .expect_err("too large");
    assert!(matches!(e, ApiError::TooLarge { limit: 99, .. }), "{e:?}");
    let e = res
        .download("om_9", "gone", file, 1000)
        .await
        .expect_err("api error");
    assert_eq!(e.code(), Some(234043));
    // Ids that would escape the path are refused before any request.
    let e = c
        .im()
        .get_message("../bot/v3/info")
        .await
        .expect_err("bad id");
    assert!(matches!(e, ApiError::InvalidArgument(_)));
    let e = c
        .im()
        .send_message(
            ReceiveIdType::OpenId,
            "ou_1",
            &OutgoingMessage::text("x").with_uuid("x".repeat(51)),
        )
        .await
        .expect_err("bad uuid");
    assert!(matches!(e, ApiError::InvalidArgument(_)));
}

#[tokio::test]
async fn ws_endpoint_codes_are_classified() {
    async fn one(reply: Reply) -> Result<WsEndpoint, EndpointError> {
        let fake = FakeHttp::start(move |_, _| reply.clone()).await;
        client(&fake).ws_endpoint().await
    }
    let ok = one(Reply::json(
        200,
        json!({"code": 0, "msg": "ok", "data": {"URL": "wss://x.example/ws?device_id=d&service_id=7&ticket=T0P",
            "ClientConfig": {"ReconnectCount": -1, "ReconnectInterval": 120, "ReconnectNonce": 30, "PingInterval": 90}}}),
    ))
    .await
    .expect("ok");
    assert_eq!(ok.client_config.ping_interval, Some(90));
    assert!(ok.url().contains("ticket=T0P"));
    assert!(!format!("{ok:?}").contains("T0P"));
    assert_eq!(ok.redacted(), "wss://x.example/ws");

    for code in [1, 1000040343] {
        let e = one(Reply::json(200, json!({"code": code, "msg": "busy"})))
            .await
            .expect_err("retryable");
        assert!(matches!(e, EndpointError::Retryable(_)), "{e:?}");
    }
    let e = one(Reply::json(500, json!({"code": 0})))
        .await
        .expect_err("retryable");
    assert!(matches!(e, EndpointError::Retryable(_)));
    let e = one(Reply::json(
        200,
        json!({"code": 10003, "msg": "bad secret"}),
    ))
    .await
    .expect_err("fatal");
    assert_eq!(
        e,
        EndpointError::Fatal {
            code: 10003,
            msg: "bad secret".into()
        }
    );
    assert!(!e.to_string().contains("s3cr3t"));

    // Request shape.
    let fake = FakeHttp::start(|_, _| {
        Reply::json(
            200,
            json!({"code": 0, "data": {"URL": "ws://h/ws?service_id=1"}}),
        )
    })
    .await;
    client(&fake).ws_endpoint().await.expect("ok");
    let r = &fake.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/callback/ws/endpoint");
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(
        r.json(),
        json!({"AppID": "cli_0123456789abcdef", "AppSecret": "s3cr3t-value"})
    );
}
