use super::*;

fn data_frame(id: &str, sum: u32, seq: u32, payload: &[u8]) -> Frame {
    Frame {
        log_id: 99,
        ..crate::feishu::testkit::data_frame(id, 42, sum, seq, "tr-1", payload)
    }
}

#[test]
fn ping_byte_layout() {
    let b = encode(&ping(7));
    assert_eq!(
        &b[..9],
        &[0x08, 0x00, 0x10, 0x00, 0x18, 0x07, 0x20, 0x00, 0x2a]
    );
    let f = decode(&b).expect("decode");
    assert_eq!(header(&f, "type"), Some("ping"));
    assert_eq!(f.payload, None);
}

#[test]
fn ack_mirrors_request_and_adds_biz_rt() {
    let req = data_frame("m1", 1, 0, br#"{"schema":"2.0"}"#);
    let a = ack(&req, &AckReply::Ok, 12).expect("ack");
    assert_eq!(
        (a.seq_id, a.log_id, a.service, a.method),
        (42, 99, 7, METHOD_DATA)
    );
    for h in &req.headers {
        assert_eq!(header(&a, &h.key), Some(h.value.as_str()));
    }
    assert_eq!(header(&a, "biz_rt"), Some("12"));
    assert_eq!(a.headers.len(), req.headers.len() + 1);
    let v: serde_json::Value =
        serde_json::from_slice(a.payload.as_deref().expect("payload")).expect("json");
    assert_eq!(v, serde_json::json!({"code": 200}));

    let a = ack(&req, &AckReply::Error, 1).expect("ack");
    let v: serde_json::Value =
        serde_json::from_slice(a.payload.as_deref().expect("payload")).expect("json");
    assert_eq!(v, serde_json::json!({"code": 500}));

    let data = serde_json::json!({"toast": {"type": "info", "content": "ok"}});
    let a = ack(&req, &AckReply::OkWithData(data.clone()), 1).expect("ack");
    let v: serde_json::Value =
        serde_json::from_slice(a.payload.as_deref().expect("payload")).expect("json");
    assert_eq!(v["code"], 200);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"].as_str().expect("data"))
        .expect("b64");
    let back: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(back, data);

    assert!(ack(&req, &AckReply::NoAck, 1).is_none());
    // Re-encoding keeps fields 1-4 even when zero-valued.
    let b = encode(&ack(&ping(3), &AckReply::Ok, 0).expect("ack"));
    assert_eq!(&b[..8], &[0x08, 0x00, 0x10, 0x00, 0x18, 0x03, 0x20, 0x00]);
}

#[test]
fn control_parsing() {
    let mut pong = ping(7);
    set_header(&mut pong, "type", "pong");
    assert_eq!(parse_control(&pong).expect("pong"), Control::Pong(None));
    pong.payload = Some(br#"{"PingInterval":3,"ReconnectCount":-1}"#.to_vec());
    let Control::Pong(Some(c)) = parse_control(&pong).expect("pong") else {
        panic!("expected config");
    };
    assert_eq!(c.ping_interval(), Some(Duration::from_secs(3)));
    assert_eq!(c.reconnect_limit(), None);
    let mut cur = ClientConfig::SDK_DEFAULT;
    cur.merge(&c);
    assert_eq!(cur.ping_interval, Some(3));
    assert_eq!(cur.reconnect_interval, Some(120));
    pong.payload = Some(b"\xff\x00".to_vec());
    assert!(parse_control(&pong).is_err());
    assert_eq!(parse_control(&ping(1)).expect("ping"), Control::Ping);
    pong.headers.clear();
    assert!(matches!(
        parse_control(&pong),
        Err(FrameError::MissingHeader("type"))
    ));
}

fn push(r: &mut Reassembler, f: &Frame, now: Instant) -> Result<Option<Vec<u8>>, FrameError> {
    let h = parse_data_headers(f)?;
    r.push(&h, f.payload.clone().unwrap_or_default(), now)
}

#[test]
fn three_fragments_out_of_order() {
    let mut r = Reassembler::new(ReassemblerConfig::default());
    let now = Instant::now();
    assert_eq!(
        push(&mut r, &data_frame("m", 3, 2, b"c\"}"), now).expect("ok"),
        None
    );
    assert_eq!(
        push(&mut r, &data_frame("m", 3, 0, b"{\"a"), now).expect("ok"),
        None
    );
    // Duplicate is ignored.
    assert_eq!(
        push(&mut r, &data_frame("m", 3, 0, b"XXX"), now).expect("ok"),
        None
    );
    assert_eq!(r.pending(), 1);
    let out = push(&mut r, &data_frame("m", 3, 1, b"\":\"b"), now)
        .expect("ok")
        .expect("complete");
    assert_eq!(out, br#"{"a":"bc"}"#);
    assert_eq!(r.pending(), 0);
}

#[test]
fn incomplete_expires() {
    let cfg = ReassemblerConfig {
        ttl: Duration::from_secs(10),
        ..Default::default()
    };
    let mut r = Reassembler::new(cfg);
    let t0 = Instant::now();
    assert_eq!(
        push(&mut r, &data_frame("m", 2, 0, b"x"), t0).expect("ok"),
        None
    );
    assert!(r.expire(t0 + Duration::from_secs(9)).is_empty());
    assert_eq!(
        r.expire(t0 + Duration::from_secs(10)),
        vec!["m".to_string()]
    );
    assert_eq!(r.pending(), 0);
    // A late fragment starts a fresh (incomplete) buffer: never completes.
    assert_eq!(
        push(
            &mut r,
            &data_frame("m", 2, 1, b"y"),
            t0 + Duration::from_secs(11)
        )
        .expect("ok"),
        None
    );
}

#[test]
fn bounds_are_checked() {
    let mut r = Reassembler::new(ReassemblerConfig {
        max_fragments: 4,
        max_message_bytes: 8,
        ..Default::default()
    });
    let now = Instant::now();
    assert!(push(&mut r, &data_frame("a", 0, 0, b"x"), now).is_err());
    assert!(push(&mut r, &data_frame("a", 2, 2, b"x"), now).is_err());
    assert!(push(&mut r, &data_frame("a", 5, 0, b"x"), now).is_err());
    assert_eq!(
        push(&mut r, &data_frame("b", 2, 0, b"x"), now).expect("ok"),
        None
    );
    assert!(push(&mut r, &data_frame("b", 3, 1, b"x"), now).is_err());
    assert_eq!(
        push(&mut r, &data_frame("c", 2, 0, b"12345"), now).expect("ok"),
        None
    );
    assert!(push(&mut r, &data_frame("c", 2, 1, b"67890"), now).is_err());
    assert!(push(&mut r, &data_frame("d", 1, 0, b"123456789"), now).is_err());
    let mut f = data_frame("e", 2, 0, b"x");
    set_header(&mut f, "sum", "two");
    assert!(push(&mut r, &f, now).is_err());
    let mut f = data_frame("", 2, 0, b"x");
    set_header(&mut f, "message_id", "");
    assert!(push(&mut r, &f, now).is_err());
}

#[test]
fn pending_is_bounded() {
    let mut r = Reassembler::new(ReassemblerConfig {
        max_pending: 3,
        ..Default::default()
    });
    let t = Instant::now();
    for i in 0..10u64 {
        let f = data_frame(&format!("m{i}"), 2, 0, b"x");
        push(&mut r, &f, t + Duration::from_millis(i)).expect("ok");
    }
    assert_eq!(r.pending(), 3);
}

#[test]
fn bytes_held_across_incomplete_messages_are_bounded() {
    let mut r = Reassembler::new(ReassemblerConfig {
        max_message_bytes: 8,
        max_pending_bytes: 10,
        ..Default::default()
    });
    let t = Instant::now();
    for i in 0..5u64 {
        let f = data_frame(&format!("m{i}"), 3, 0, b"1234");
        push(&mut r, &f, t + Duration::from_millis(i)).expect("ok");
        assert!(r.held() <= 10, "{}", r.held());
    }
    // The newest two are kept; the older ones made room.
    assert_eq!(r.pending(), 2);
    // One message alone above the shared cap is dropped.
    let mut r = Reassembler::new(ReassemblerConfig {
        max_message_bytes: 8,
        max_pending_bytes: 6,
        ..Default::default()
    });
    push(&mut r, &data_frame("a", 3, 0, b"1234"), t).expect("ok");
    assert!(push(&mut r, &data_frame("a", 3, 1, b"5678"), t).is_err());
    assert_eq!((r.pending(), r.held()), (0, 0));
    // A completed message releases what it held.
    push(&mut r, &data_frame("b", 2, 0, b"12"), t).expect("ok");
    let done = push(&mut r, &data_frame("b", 2, 1, b"34"), t).expect("ok");
    assert_eq!(done.as_deref(), Some(&b"1234"[..]));
    assert_eq!(r.held(), 0);
}

/// Fuzz-style: random bytes and mutated valid frames never panic the
/// decoder, the header parsers or the reassembler.
#[test]
fn garbage_never_panics() {
    use rand::RngExt as _;
    let mut rng = rand::rng();
    let mut r = Reassembler::new(ReassemblerConfig {
        max_fragments: 8,
        max_message_bytes: 4096,
        ttl: Duration::from_millis(5),
        max_pending: 16,
        max_pending_bytes: 16 * 1024,
    });
    let seed = encode(&data_frame("m", 3, 1, br#"{"x":1}"#));
    let now = Instant::now();
    for i in 0..20_000u32 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let n = rng.random_range(0..64usize);
            (0..n).map(|_| rng.random::<u8>()).collect()
        } else {
            let mut b = seed.clone();
            let flips = rng.random_range(1..4usize);
            for _ in 0..flips {
                let at = rng.random_range(0..b.len());
                b[at] = rng.random();
            }
            let cut = rng.random_range(0..=b.len());
            b.truncate(cut);
            b
        };
        let Ok(f) = decode(&bytes) else { continue };
        let _ = parse_control(&f);
        if let Ok(h) = parse_data_headers(&f) {
            let _ = r.push(
                &h,
                f.payload.clone().unwrap_or_default(),
                now + Duration::from_millis(u64::from(i)),
            );
        }
        let _ = r.expire(now + Duration::from_millis(u64::from(i)));
        let _ = ack(&f, &AckReply::Ok, 0);
    }
    // Non-UTF-8 header strings are a decode error, not a panic.
    let mut bad = seed.clone();
    if let Some(pos) = bad.windows(5).position(|w| w == b"event") {
        bad[pos] = 0xff;
    }
    assert!(decode(&bad).is_err());
    // Truncated protobuf.
    assert!(decode(&seed[..seed.len() / 2]).is_err() || decode(&seed[..3]).is_err());
    let _ = rng.random::<u32>();
}
