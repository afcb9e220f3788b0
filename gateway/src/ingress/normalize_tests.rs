use super::*;
use serde_json::json;

fn bot() -> BotIdentity {
    BotIdentity {
        open_id: "ou_bot".into(),
        name: "fcx".into(),
    }
}

fn opts() -> Options {
    Options {
        stale_after_ms: 30 * 60 * 1000,
        now_ms: 1_700_000_100_000,
        platform_now_ms: None,
    }
}

fn envelope(message: Value, sender: &str) -> Vec<u8> {
    json!({
        "schema": "2.0",
        "header": {"event_id": "ev1", "event_type": "im.message.receive_v1",
                    "create_time": "1700000000000", "token": "t", "app_id": "cli_x", "tenant_key": "tk"},
        "event": {"sender": {"sender_id": {"open_id": sender}, "sender_type": "user", "tenant_key": "tk"},
                  "message": message}
    })
    .to_string()
    .into_bytes()
}

fn msg(chat_type: &str, content: Value, mentions: Value) -> Value {
    json!({"message_id": "om_1", "chat_id": "oc_1", "chat_type": chat_type,
           "message_type": "text", "create_time": "1700000000000",
           "content": content.to_string(), "mentions": mentions})
}

fn inbound(n: Normalized) -> Inbound {
    match n {
        Normalized::Message { inbound, .. } => *inbound,
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn private_text_keeps_every_line() {
    let n = normalize(
        &envelope(
            msg(
                "p2p",
                json!({"text": "line 1\nline 2\n\nline 4"}),
                json!([]),
            ),
            "ou_u",
        ),
        &bot(),
        &opts(),
    )
    .expect("normalize");
    let i = inbound(n);
    assert_eq!(i.scope, "chat:oc_1");
    assert_eq!(i.event_id, "msg:om_1");
    assert_eq!(i.text, "line 1\nline 2\n\nline 4");
    assert_eq!(i.chat_type(), ChatType::Private);
    assert_eq!(i.actor.map(|a| a.id), Some("ou_u".to_string()));
}

#[test]
fn group_mentions_are_resolved_and_the_bot_is_stripped() {
    let m = json!([
        {"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "fcx"},
        {"key": "@_user_2", "id": {"open_id": "ou_ann"}, "name": "Ann"}
    ]);
    let n = normalize(
        &envelope(
            msg(
                "group",
                json!({"text": "@_user_1 ask @_user_2 and @_all"}),
                m,
            ),
            "ou_u",
        ),
        &bot(),
        &opts(),
    )
    .expect("normalize");
    let i = inbound(n);
    assert!(i.mentioned);
    assert_eq!(i.text, "ask @Ann and");
    assert_eq!(i.chat_type(), ChatType::Group);
    assert_eq!(i.mentions.len(), 1);
    assert_eq!(i.mentions[0].id, "ou_ann");
}

#[test]
fn crafted_names_cannot_blow_up_the_text() {
    // Each name holds the next key twice: sequential replacement would
    // double the text per mention.
    let m: Vec<Value> = (1..=20)
        .map(|i| {
            json!({"key": format!("@_user_{i}"), "id": {"open_id": format!("ou_{i}")},
                   "name": format!("@_user_{0}@_user_{0}", i + 1)})
        })
        .collect();
    let n = normalize(
        &envelope(msg("p2p", json!({"text": "hi @_user_1"}), json!(m)), "ou_u"),
        &bot(),
        &opts(),
    )
    .expect("normalize");
    let i = inbound(n);
    assert_eq!(i.text, "hi @@_user_2@_user_2");
}

#[test]
fn topic_messages_get_their_own_scope() {
    let mut m = msg("group", json!({"text": "hi"}), json!([]));
    m["thread_id"] = json!("omt_9");
    let i = inbound(normalize(&envelope(m, "ou_u"), &bot(), &opts()).expect("ok"));
    assert_eq!(i.scope, "topic:oc_1:omt_9");
    assert_eq!(i.chat_type(), ChatType::Topic);
}

#[test]
fn a_live_message_is_not_stale_when_only_fcx_clock_is_an_hour_ahead() {
    // Sent 100 s before the push by the platform's clock; fcx's clock reads
    // an hour later (it jumped ahead, or drifts): the message is live.
    let mut m = msg("p2p", json!({"text": "x"}), json!([]));
    let pushed = 1_700_000_100_000 - 3_600_000;
    m["create_time"] = json!((pushed - 100_000).to_string());
    let o = Options {
        platform_now_ms: Some(pushed),
        ..opts()
    };
    let n = normalize(&envelope(m.clone(), "ou_u"), &bot(), &o).expect("ok");
    assert_eq!(inbound(n).late_by_ms, 0, "a live message is on time");
    // Without the platform's push time the local clock alone decides.
    let n = normalize(&envelope(m, "ou_u"), &bot(), &opts()).expect("ok");
    assert_eq!(inbound(n).late_by_ms, 3_700_000);
    // Old by both clocks (a replay after fcx was offline): late by the
    // platform's own measure.
    let mut old = msg("p2p", json!({"text": "x"}), json!([]));
    old["create_time"] = json!("1600000000000");
    let o = Options {
        platform_now_ms: Some(1_700_000_050_000),
        ..opts()
    };
    let n = normalize(&envelope(old, "ou_u"), &bot(), &o).expect("ok");
    assert_eq!(inbound(n).late_by_ms, 100_000_050_000);
}

#[test]
fn a_message_just_inside_the_window_is_on_time_and_stale_after_0_marks_none_late() {
    let window = opts().stale_after_ms;
    let mut m = msg("p2p", json!({"text": "x"}), json!([]));
    m["create_time"] = json!((opts().now_ms - window).to_string());
    let n = normalize(&envelope(m.clone(), "ou_u"), &bot(), &opts()).expect("ok");
    assert_eq!(inbound(n).late_by_ms, 0);
    m["create_time"] = json!((opts().now_ms - window - 1).to_string());
    let n = normalize(&envelope(m.clone(), "ou_u"), &bot(), &opts()).expect("ok");
    assert_eq!(inbound(n).late_by_ms, window + 1);
    let keep_all = Options {
        stale_after_ms: 0,
        ..opts()
    };
    let n = normalize(&envelope(m, "ou_u"), &bot(), &keep_all).expect("ok");
    assert_eq!(inbound(n).late_by_ms, 0);
}

#[test]
fn own_messages_and_unknown_events_are_ignored_and_stale_replays_marked_late() {
    let own = normalize(
        &envelope(msg("p2p", json!({"text": "x"}), json!([])), "ou_bot"),
        &bot(),
        &opts(),
    )
    .expect("ok");
    assert!(matches!(own, Normalized::Ignored { .. }));
    // A message delivered after the stale window is not ignored: it goes
    // on marked late (the worker asks its sender before running it).
    let mut old = msg("p2p", json!({"text": "x"}), json!([]));
    old["create_time"] = json!("1600000000000");
    let late = inbound(normalize(&envelope(old, "ou_u"), &bot(), &opts()).expect("ok"));
    assert_eq!(late.late_by_ms, 100_000_100_000);
    assert_eq!(late.text, "x");
    let other = normalize(
        br#"{"schema":"2.0","header":{"event_id":"e","event_type":"x.y"},"event":{}}"#,
        &bot(),
        &opts(),
    )
    .expect("ok");
    assert!(matches!(other, Normalized::Ignored { .. }));
}

#[test]
fn post_is_flattened_with_links_code_and_images() {
    let content = json!({"title": "Title", "content": [
        [{"tag": "text", "text": "see "}, {"tag": "a", "text": "docs", "href": "https://x"}],
        [{"tag": "at", "user_id": "@_user_1"}, {"tag": "text", "text": " please"}],
        [{"tag": "img", "image_key": "img_1"}],
        [{"tag": "code_block", "language": "RUST", "text": "fn main() {}\n"}]
    ]});
    let mut m = msg(
        "group",
        content,
        json!([{"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "fcx"}]),
    );
    m["message_type"] = json!("post");
    let i = inbound(normalize(&envelope(m, "ou_u"), &bot(), &opts()).expect("ok"));
    assert_eq!(
        i.text,
        "Title\nsee [docs](https://x)\n please\n\n```rust\nfn main() {}\n```"
    );
    assert!(i.mentioned);
    assert_eq!(i.attachments.len(), 1);
    assert_eq!(i.attachments[0].key, "img_1");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for p in [
        &b"not json"[..],
        b"{}",
        b"[]",
        b"{\"header\":{}}",
        &[0xff, 0xfe],
    ] {
        let _ = normalize(p, &bot(), &opts());
    }
    assert!(matches!(
        normalize(b"nope", &bot(), &opts()),
        Err(NormalizeError::NotJson(_))
    ));
}

/// xorshift64*: no dependency, and a fixed seed replays a failure exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One valid envelope of every shape the normalizer handles.
fn fuzz_seeds() -> Vec<Value> {
    let envelope = |event_type: &str, event: Value| {
        json!({"schema": "2.0",
               "header": {"event_id": "ev-fuzz", "event_type": event_type,
                          "create_time": "1700000000000", "token": "t",
                          "app_id": "cli_x", "tenant_key": "tk"},
               "event": event})
    };
    let sender = json!({"sender_id": {"open_id": "ou_user", "union_id": "on_u", "user_id": "u1"},
                        "sender_type": "user", "tenant_key": "tk"});
    let mentions = json!([
        {"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "fcx", "tenant_key": "tk"},
        {"key": "@_user_2", "id": {"open_id": "ou_ann"}, "name": "Ann", "tenant_key": "tk"},
        {"key": "@_user_10", "id": {"open_id": "ou_bob"}, "name": "Bob", "tenant_key": "tk"}
    ]);
    let message = |chat_type: &str, msg_type: &str, content: Value| {
        json!({"message_id": "om_fuzz", "root_id": "", "parent_id": "",
               "create_time": "1700000000000", "update_time": "1700000000000",
               "chat_id": "oc_fuzz", "chat_type": chat_type, "message_type": msg_type,
               "content": content.to_string(), "mentions": mentions.clone(),
               "user_agent": "Lark"})
    };
    let received = |m: Value| {
        envelope(
            "im.message.receive_v1",
            json!({"sender": sender.clone(), "message": m}),
        )
    };
    let post = json!({"title": "T", "content": [
        [{"tag": "text", "text": "hi @_user_1 ", "style": ["bold"]},
         {"tag": "a", "text": "docs", "href": "https://x"}, {"tag": "a", "text": "bare"}],
        [{"tag": "at", "user_id": "@_user_2"}, {"tag": "at", "user_id": "@_all"},
         {"tag": "at", "user_id": "ou_x", "user_name": "Zed"}],
        [{"tag": "img", "image_key": "img_1"}, {"tag": "media", "file_key": "f_1", "image_key": "img_2"},
         {"tag": "emotion", "emoji_type": "SMILE"}],
        [{"tag": "hr"}],
        [{"tag": "code_block", "language": "RUST", "text": "fn main() {}\n"}],
        [{"tag": "md", "text": "**b**"}],
        [{"tag": "unknown"}]
    ]});
    let mut topic = message("group", "text", json!({"text": "@_user_1 in a topic"}));
    topic["thread_id"] = json!("omt_1");
    topic["root_id"] = json!("om_root");
    let mut quote = message("p2p", "text", json!({"text": "quoting"}));
    quote["parent_id"] = json!("om_parent");
    quote["root_id"] = json!("om_parent");
    vec![
        received(message("p2p", "text", json!({"text": "line 1\nline 2"}))),
        received(message(
            "group",
            "text",
            json!({"text": "@_user_1 ask @_user_2 and @_user_10 @_all"}),
        )),
        received(topic),
        received(quote),
        received(message("group", "post", post.clone())),
        received(message("p2p", "post", json!({ "zh_cn": post }))),
        received(message("p2p", "image", json!({"image_key": "img_1"}))),
        received(message(
            "p2p",
            "file",
            json!({"file_key": "f_1", "file_name": "a.txt"}),
        )),
        received(message(
            "p2p",
            "media",
            json!({"file_key": "f_2", "image_key": "img_3"}),
        )),
        received(message(
            "p2p",
            "audio",
            json!({"file_key": "f_3", "duration": 3}),
        )),
        received(message("p2p", "sticker", json!({"file_key": "s_1"}))),
        received(message("p2p", "merge_forward", json!({}))),
        received(message("p2p", "interactive", json!({"elements": []}))),
        envelope(
            "im.chat.member.bot.added_v1",
            json!({"chat_id": "oc_new", "operator_id": {"open_id": "ou_user"}, "name": "team"}),
        ),
        envelope(
            "card.action.trigger",
            json!({"operator": {"open_id": "ou_user"}, "token": "c-1",
                   "action": {"value": {"k": "v"}, "tag": "button"},
                   "context": {"open_message_id": "om_1", "open_chat_id": "oc_1"}}),
        ),
        envelope(
            "im.message.reaction.created_v1",
            json!({"message_id": "om_1"}),
        ),
        // v1 envelope: the type in the event, the id in `uuid`.
        json!({"uuid": "u-1", "token": "t", "ts": "1", "type": "event_callback",
               "event": {"type": "im.message.receive_v1"}}),
    ]
}

const FUZZ_KEYS: &[&str] = &[
    "event_id",
    "event_type",
    "header",
    "event",
    "message",
    "message_id",
    "chat_id",
    "chat_type",
    "message_type",
    "content",
    "mentions",
    "thread_id",
    "parent_id",
    "root_id",
    "create_time",
    "sender",
    "sender_id",
    "open_id",
    "sender_type",
    "key",
    "id",
    "name",
    "tag",
    "text",
    "href",
    "user_id",
    "user_name",
    "image_key",
    "file_key",
    "file_name",
    "emoji_type",
    "language",
    "title",
    "zh_cn",
    "en_us",
    "uuid",
    "type",
];

const FUZZ_STRINGS: &[&str] = &[
    "",
    "p2p",
    "group",
    "text",
    "post",
    "image",
    "file",
    "media",
    "sticker",
    "app",
    "ou_bot",
    "@_user_1",
    "@_user_10",
    "@_all",
    "all",
    "im.message.receive_v1",
    "im.chat.member.bot.added_v1",
    "card.action.trigger",
    "-1",
    "0",
    "1e400",
    "99999999999999999999",
    "9223372036854775807",
    "-9223372036854775808",
    "{",
    "[]",
    "{\"text\":",
    "\u{0}",
    "ünï©ødé 🎉",
    "\u{202e}rtl",
    "\n\n\n",
    "line\r\nline",
];

/// A value of a random type (the "wrong type for every field" case).
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 8 } else { 10 }) {
        0 => Value::Null,
        1 => json!(rng.one_in(2)),
        2 => json!(*rng.pick(&[0i64, -1, 1, i64::MIN, i64::MAX, 1_700_000_000_000])),
        3 => json!(*rng.pick(&[u64::MAX, 1u64 << 53])),
        4 => json!(*rng.pick(&[1.5e308f64, -0.0, 3.25])),
        5 | 6 => json!(rng.pick(FUZZ_STRINGS)),
        7 => json!(huge_string(rng)),
        8 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| {
                    (
                        rng.pick(FUZZ_KEYS).to_string(),
                        random_value(rng, depth + 1),
                    )
                })
                .collect(),
        ),
    }
}

fn huge_string(rng: &mut Rng) -> String {
    let unit = *rng.pick(&["x", "@_user_1 ", "ü", "🎉", "\n", "@_all"]);
    let max = if rng.one_in(16) { 40_000 } else { 300 };
    unit.repeat(rng.below(max))
}

/// Wraps `v` in `depth` arrays or objects (serde_json refuses to parse
/// beyond 128 levels, so both sides of that limit are covered).
fn nest(v: Value, depth: usize, rng: &mut Rng) -> Value {
    let as_array = rng.one_in(2);
    // Built by hand: `json!` would deep-copy `inner` at every level.
    (0..depth).fold(v, |inner, _| {
        if as_array {
            Value::Array(vec![inner])
        } else {
            Value::Object(std::iter::once(("content".to_string(), inner)).collect())
        }
    })
}

/// A random node of `v` (the root included).
fn random_node<'a>(v: &'a mut Value, rng: &mut Rng) -> &'a mut Value {
    let n = match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    if n == 0 || rng.one_in(4) {
        return v;
    }
    let i = rng.below(n);
    match v {
        Value::Array(a) => random_node(&mut a[i], rng),
        Value::Object(m) => {
            let child = m.values_mut().nth(i).expect("index below the length");
            random_node(child, rng)
        }
        _ => v,
    }
}

fn mutate(v: &mut Value, rng: &mut Rng) {
    let node = random_node(v, rng);
    match rng.below(8) {
        0 | 1 => *node = random_value(rng, 0),
        2 => {
            if let Value::Object(m) = node {
                let n = m.len();
                if let Some(k) = m.keys().nth(rng.below(n)).cloned() {
                    m.remove(&k);
                }
            }
        }
        3 => {
            if let Value::Object(m) = node {
                m.insert(rng.pick(FUZZ_KEYS).to_string(), random_value(rng, 0));
            }
        }
        4 => *node = json!(huge_string(rng)),
        5 => {
            let depth = rng.below(300);
            *node = nest(node.take(), depth, rng);
        }
        6 => {
            if let Value::Array(a) = node {
                match rng.below(3) {
                    0 => a.clear(),
                    1 => {
                        let copy = a.clone();
                        a.extend(copy);
                    }
                    _ => a.push(random_value(rng, 0)),
                }
            }
        }
        _ => {
            // Strings that hold JSON (`content`) are mutated inside.
            if let Value::String(text) = node {
                match text.parse::<Value>() {
                    Ok(mut inner) if rng.one_in(2) => {
                        for _ in 0..=rng.below(3) {
                            mutate(&mut inner, rng);
                        }
                        *text = inner.to_string();
                    }
                    _ => {
                        let cut = rng.below(text.len() + 1);
                        let cut = (0..=cut)
                            .rev()
                            .find(|c| text.is_char_boundary(*c))
                            .unwrap_or(0);
                        text.truncate(cut);
                        let tail: &&str = rng.pick(FUZZ_STRINGS);
                        text.push_str(tail);
                    }
                }
            }
        }
    }
}

/// Byte-level damage: flips (often to bytes that are never UTF-8),
/// truncation, inserted and deleted runs, lone surrogate escapes.
fn mangle(bytes: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..=rng.below(4) {
        let len = bytes.len();
        match rng.below(6) {
            0 if len > 0 => {
                let at = rng.below(len);
                bytes[at] =
                    *rng.pick(&[0xff, 0xfe, 0xc0, 0x80, 0xed, 0x00, b'"', b'\\', b'{', b']']);
            }
            1 => bytes.truncate(rng.below(len + 1)),
            2 => {
                let at = rng.below(len + 1);
                let junk: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, junk);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + rng.below(32)).min(len);
                bytes.drain(at..end);
            }
            4 => {
                let at = rng.below(len + 1);
                bytes.splice(at..at, br"\ud800\udfff\u0000".iter().copied());
            }
            _ if len > 0 => {
                let at = rng.below(len);
                let end = (at + rng.below(64)).min(len);
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => {}
        }
    }
}

/// Asserts the invariants and counts (messages, errors), so the test
/// can tell that the cases reached both outcomes.
fn check(
    r: &Result<Normalized, NormalizeError>,
    seen: &mut (usize, usize),
    input: &dyn Fn() -> String,
) {
    match r {
        Ok(Normalized::Message { inbound, .. }) => {
            seen.0 += 1;
            assert!(!inbound.scope.is_empty(), "empty scope from {}", input());
            assert!(
                !inbound.event_id.is_empty(),
                "empty event_id from {}",
                input()
            );
        }
        Ok(_) => {}
        Err(_) => seen.1 += 1,
    }
}

#[test]
fn random_and_mutated_envelopes_never_panic() {
    let seeds = fuzz_seeds();
    // The unmutated seeds are valid: the fuzz starts from real shapes.
    for v in &seeds[..13] {
        assert!(
            matches!(
                normalize_value(v, &bot(), &opts()),
                Ok(Normalized::Message { .. } | Normalized::Ignored { .. })
            ),
            "{v}"
        );
    }
    let bots = [
        bot(),
        BotIdentity::default(),
        BotIdentity {
            open_id: "ou_user".into(),
            name: String::new(),
        },
    ];
    let mut rng = Rng(0x5EED_F00D_CAFE_0001);
    let mut seen = (0usize, 0usize);
    for i in 0..20_000usize {
        let mut v = seeds[i % seeds.len()].clone();
        for _ in 0..rng.below(5) {
            mutate(&mut v, &mut rng);
        }
        let bot = rng.pick(&bots);
        let opts = Options {
            stale_after_ms: if rng.one_in(4) { 0 } else { 30 * 60 * 1000 },
            now_ms: *rng.pick(&[0, 1_700_000_100_000, 4_000_000_000_000]),
            platform_now_ms: *rng.pick(&[None, Some(0), Some(1_700_000_100_000)]),
        };
        check(&normalize_value(&v, bot, &opts), &mut seen, &|| {
            format!("value #{i}: {v}")
        });
        // The byte path (parse errors, non-UTF-8, depth limits) on a
        // third of the cases: serde_json is slow in debug builds.
        if rng.one_in(3) {
            let mut bytes = serde_json::to_vec(&v).expect("a Value serializes");
            if !rng.one_in(3) {
                mangle(&mut bytes, &mut rng);
            }
            check(&normalize(&bytes, bot, &opts), &mut seen, &|| {
                format!("bytes #{i}: {}", String::from_utf8_lossy(&bytes))
            });
        }
        // Quoted parents go through the same flattening.
        if let Some(content) = v.pointer("/event/message/content").and_then(Value::as_str) {
            let kind = rng.pick(&["text", "post", "image", "file", "audio", "x"]);
            let _ = message_text(kind, content);
        }
    }
    // Mutations must neither always break the envelope nor never do.
    assert!(
        seen.0 > 1_000 && seen.1 > 1_000,
        "(messages, errors) = {seen:?}"
    );
}

#[test]
fn attachments_carry_their_kind_and_stickers_travel_as_stickers() {
    use fcx_proto::v1::AttachmentKind as K;
    let one = |t: &str, c: Value| {
        let mut m = msg("p2p", c, json!([]));
        m["message_type"] = json!(t);
        inbound(normalize(&envelope(m, "ou_u"), &bot(), &opts()).expect("ok"))
    };
    let i = one("image", json!({"image_key": "img_1"}));
    assert_eq!(i.attachments[0].kind(), K::Image);
    let i = one("file", json!({"file_key": "f_1", "file_name": "a.log"}));
    assert_eq!(
        (i.attachments[0].kind(), i.attachments[0].name.as_str()),
        (K::File, "a.log")
    );
    let i = one("audio", json!({"file_key": "f_2", "duration": 2000}));
    assert_eq!(i.attachments[0].kind(), K::Audio);
    let i = one(
        "media",
        json!({"file_key": "f_3", "image_key": "img_3", "file_name": "v.mp4"}),
    );
    assert_eq!(i.attachments[0].kind(), K::Video);
    let i = one("sticker", json!({"file_key": "s_1"}));
    assert_eq!(i.attachments[0].kind(), K::Sticker);
    assert!(i.text.is_empty());
    let i = one("folder", json!({"file_key": "d_1", "file_name": "docs"}));
    assert!(i.attachments.is_empty());
    assert_eq!(i.text, "[a folder: docs]");
}
