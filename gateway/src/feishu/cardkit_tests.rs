use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use fcx_config::Secret;
use serde_json::json;

use super::*;
use crate::feishu::http::RetryPolicy;
use crate::feishu::testkit::{FakeHttp, Recorded, Reply};

const TOKEN: &str = "/open-apis/auth/v3/tenant_access_token/internal";

fn kit(fake: &FakeHttp) -> CardKit {
    let policy = RetryPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        max_server_retries: 1,
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let c =
        OpenApiClient::new(&fake.base, "cli_test", Secret::new("s3cr3t"), policy).expect("client");
    CardKit::new(c)
}

fn ok(data: Value) -> Reply {
    Reply::json(200, json!({"code": 0, "msg": "success", "data": data}))
}

fn token() -> Reply {
    Reply::json(
        200,
        json!({"code": 0, "msg": "ok", "tenant_access_token": "t-1", "expire": 7200}),
    )
}

/// A CardKit fake that enforces the per-card sequence rule and keeps the
/// latest content per element.
#[derive(Default)]
struct Cards {
    last_seq: HashMap<String, i64>,
    content: HashMap<String, String>,
}

fn cardkit_route(
    cards: Arc<StdMutex<Cards>>,
) -> impl Fn(&Recorded, &[Recorded]) -> Reply + Send + Sync + 'static {
    move |r, _| {
        if r.path == TOKEN {
            return token();
        }
        let b = r.json();
        let mut c = cards.lock().expect("lock");
        if r.method == "POST" && r.path == CARDS_PATH {
            assert_eq!(b["type"], "card_json");
            assert!(b["data"].as_str().is_some_and(|d| d.contains("\"2.0\"")));
            return ok(json!({"card_id": "7355000000000000001"}));
        }
        let parts: Vec<&str> = r.path.trim_start_matches(CARDS_PATH).split('/').collect();
        let card = parts.get(1).copied().unwrap_or_default().to_string();
        let seq = b["sequence"].as_i64().unwrap_or(0);
        assert!(
            b["uuid"]
                .as_str()
                .is_some_and(|u| !u.is_empty() && u.len() <= 64)
        );
        let last = c.last_seq.get(&card).copied().unwrap_or(0);
        if seq <= last {
            return Reply::json(400, json!({"code": 300317, "msg": "sequence"}));
        }
        c.last_seq.insert(card, seq);
        if let (Some(&"elements"), Some(el)) = (parts.get(2), parts.get(3)) {
            let content = b["content"].as_str().unwrap_or_default().to_string();
            c.content.insert((*el).to_string(), content);
        }
        ok(json!({}))
    }
}

fn ops(fake: &FakeHttp) -> Vec<Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path.starts_with(CARDS_PATH) && r.path != CARDS_PATH)
        .collect()
}

#[tokio::test]
async fn raw_calls_have_the_documented_shapes() {
    let cards = Arc::new(StdMutex::new(Cards::default()));
    let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
    let k = kit(&fake);
    let card = json!({"schema": "2.0", "body": {"elements": []}}).to_string();
    let id = k.create_card(&card).await.expect("create");
    assert_eq!(id, "7355000000000000001");
    k.stream_content(&id, "answer", "hi", 1, "u-1")
        .await
        .expect("content");
    k.update_settings(&id, &close_streaming_settings("done"), 2, "u-2")
        .await
        .expect("settings");
    k.update_card(&id, &card, 3, "u-3").await.expect("update");
    let reqs = ops(&fake);
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(
        reqs[0].path,
        format!("{CARDS_PATH}/{id}/elements/answer/content")
    );
    assert_eq!(
        reqs[0].json(),
        json!({"content": "hi", "sequence": 1, "uuid": "u-1"})
    );
    assert_eq!(reqs[1].method, "PATCH");
    assert_eq!(reqs[1].path, format!("{CARDS_PATH}/{id}/settings"));
    let settings: Value =
        serde_json::from_str(reqs[1].json()["settings"].as_str().unwrap_or("")).expect("json");
    assert_eq!(
        settings,
        json!({"config": {"streaming_mode": false, "summary": {"content": "done"}}})
    );
    assert_eq!(reqs[2].method, "PUT");
    assert_eq!(reqs[2].path, format!("{CARDS_PATH}/{id}"));
    assert_eq!(reqs[2].json()["card"]["type"], "card_json");
    assert_eq!(reqs[2].json()["card"]["data"], card.as_str());
    // Bad input never reaches the wire.
    assert!(k.stream_content(&id, "1bad", "x", 4, "u").await.is_err());
    assert!(k.stream_content(&id, "answer", "", 4, "u").await.is_err());
    assert!(
        k.stream_content("../x", "answer", "x", 4, "u")
            .await
            .is_err()
    );
    assert!(k.stream_content(&id, "answer", "x", 0, "u").await.is_err());
    assert!(
        k.stream_content(&id, "answer", "x", u32::MAX, "u")
            .await
            .is_err()
    );
    assert_eq!(ops(&fake).len(), 3);
    let m = card_message(&id);
    assert_eq!(m.msg_type, "interactive");
    let content: Value = serde_json::from_str(&m.content).expect("json");
    assert_eq!(content, json!({"type": "card", "data": {"card_id": id}}));
}

#[tokio::test]
async fn sequence_is_strictly_increasing_across_mixed_ops() {
    let cards = Arc::new(StdMutex::new(Cards::default()));
    let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
    let cfg = WriterConfig {
        max_ops_per_sec: 100,
        ..Default::default()
    };
    let w = CardWriter::spawn(kit(&fake), "c1".into(), 5, cfg);
    w.set_content("answer", "a");
    w.flush().await.expect("flush");
    w.update_card(json!({"schema": "2.0"}).to_string());
    w.flush().await.expect("flush");
    w.set_content("answer", "ab");
    w.set_content("reasoning", "r");
    w.update_settings(close_streaming_settings("x"));
    let report = w.finish().await.expect("finish");
    let seqs: Vec<i64> = ops(&fake)
        .iter()
        .map(|r| r.json()["sequence"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(seqs.len(), 5, "{seqs:?}");
    assert!(seqs[0] > 5, "starts above the given sequence: {seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(report.ops, 5);
    assert_eq!(i64::from(report.last_sequence), seqs[4]);
    // Settings came last, after the text.
    assert!(ops(&fake)[4].path.ends_with("/settings"));
    assert_eq!(cards.lock().expect("lock").content["answer"], "ab");
}

#[tokio::test]
async fn a_burst_of_updates_is_coalesced() {
    let cards = Arc::new(StdMutex::new(Cards::default()));
    let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
    let cfg = WriterConfig {
        max_ops_per_sec: 40,
        ..Default::default()
    };
    let w = CardWriter::spawn(kit(&fake), "c2".into(), 0, cfg);
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("词{i} "));
        w.set_content("answer", text.clone());
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let report = w.finish().await.expect("finish");
    let n = ops(&fake).len();
    assert!((2..100).contains(&n), "{n} ops for 1000 updates");
    assert_eq!(report.ops as usize, n);
    let c = cards.lock().expect("lock");
    assert_eq!(c.content["answer"], text);
    // Paced: the writer never started two operations closer than its
    // interval (measured where it sends; arrival times at the fake jitter
    // under load, so they cannot show this).
    let gap = report.min_op_gap.expect("more than one operation");
    assert!(gap >= Duration::from_secs(1) / 40, "{gap:?}");
}

#[tokio::test]
async fn a_permanent_error_is_surfaced() {
    for (code, kind) in [
        (300309, FailureKind::StreamingClosed),
        (200740, FailureKind::Gone),
        (200860, FailureKind::TooLarge),
        (300317, FailureKind::Sequence),
    ] {
        let fake = FakeHttp::start(move |r, _| {
            if r.path == TOKEN {
                token()
            } else {
                Reply::json(400, json!({"code": code, "msg": "no"}))
            }
        })
        .await;
        let w = CardWriter::spawn(kit(&fake), "c3".into(), 0, WriterConfig::default());
        let mut watch = w.watch_failure();
        w.set_content("answer", "x");
        let f = watch
            .wait_for(Option::is_some)
            .await
            .expect("watch")
            .clone()
            .expect("failure");
        assert_eq!(f.kind, kind);
        assert_eq!(f.code, Some(code));
        assert_eq!(w.failure().map(|f| f.kind), Some(kind));
        assert!(w.flush().await.is_err());
        w.set_content("answer", "more");
        let e = w.finish().await.expect_err("finish reports the failure");
        assert_eq!(e.kind, kind);
        assert_eq!(ops(&fake).len(), 1, "no retries after a permanent error");
    }
}

#[tokio::test]
async fn repeated_server_errors_give_up() {
    let fake = FakeHttp::start(|r, _| {
        if r.path == TOKEN {
            token()
        } else {
            Reply::json(503, json!({"code": 1, "msg": "unavailable"}))
        }
    })
    .await;
    let cfg = WriterConfig {
        max_transient_failures: 2,
        failure_backoff: Duration::from_millis(5),
        max_ops_per_sec: 100,
    };
    let w = CardWriter::spawn(kit(&fake), "c4".into(), 0, cfg);
    w.set_content("answer", "x");
    let e = w.finish().await.expect_err("gives up");
    assert_eq!(e.kind, FailureKind::Unavailable);
    // 2 writer attempts × (1 + 1 client retry).
    assert_eq!(ops(&fake).len(), 4);
}

/// A fake platform whose first `n` card operations fail as server
/// errors after consuming their sequence; the rest succeed.
async fn failing_first(n: usize) -> (FakeHttp, Arc<StdMutex<Cards>>) {
    let cards = Arc::new(StdMutex::new(Cards::default()));
    let inner = cardkit_route(cards.clone());
    let fake = FakeHttp::start(move |r, earlier| {
        let seen = earlier
            .iter()
            .filter(|e| e.path.starts_with(CARDS_PATH))
            .count();
        let answer = inner(r, earlier);
        if r.path.starts_with(CARDS_PATH) && seen < n {
            return Reply::json(503, json!({"code": 1, "msg": "unavailable"}));
        }
        answer
    })
    .await;
    (fake, cards)
}

#[tokio::test]
async fn a_new_writer_continues_above_a_failed_ones_sequence() {
    // The first four card operations fail as server errors, after the
    // platform consumed their sequence (the worst case).
    let (fake, cards) = failing_first(4).await;
    let cfg = WriterConfig {
        max_transient_failures: 2,
        failure_backoff: Duration::from_millis(5),
        max_ops_per_sec: 100,
    };
    let w = CardWriter::spawn(kit(&fake), "c6".into(), 3, cfg.clone());
    w.set_content("answer", "x");
    let f = w.finish().await.expect_err("gives up");
    assert_eq!(f.kind, FailureKind::Unavailable);
    assert_eq!(f.last_sequence, 5, "two attempts above 3");
    let w = CardWriter::spawn(kit(&fake), "c6".into(), f.last_sequence, cfg);
    w.set_content("answer", "final");
    let report = w.finish().await.expect("the next writer succeeds");
    assert_eq!(report.last_sequence, 6);
    assert_eq!(cards.lock().expect("lock").content["answer"], "final");
}

#[tokio::test]
async fn rate_limit_waits_and_succeeds() {
    let cards = Arc::new(StdMutex::new(Cards::default()));
    let inner = cardkit_route(cards.clone());
    let fake = FakeHttp::start(move |r, earlier| {
        let limited = earlier
            .iter()
            .filter(|e| e.path.contains("/elements/"))
            .count()
            == 0;
        if r.path.contains("/elements/") && limited {
            return Reply::json(429, json!({"code": 99991400, "msg": "frequency limit"}))
                .header("x-ogw-ratelimit-reset", "1");
        }
        inner(r, earlier)
    })
    .await;
    let started = Instant::now();
    let w = CardWriter::spawn(kit(&fake), "c5".into(), 0, WriterConfig::default());
    w.set_content("answer", "hello");
    let report = w.finish().await.expect("succeeds after waiting");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(report.ops, 1);
    assert_eq!(ops(&fake).len(), 2);
    assert_eq!(cards.lock().expect("lock").content["answer"], "hello");
}

/// A source whose state is one text; records its pulls and settles.
#[derive(Default)]
struct TextSource {
    text: StdMutex<String>,
    sent: StdMutex<String>,
    /// What the last pull returned: what a settle confirms (the text may
    /// have moved on while the operation was in flight).
    in_flight: StdMutex<Option<String>>,
    pulls: AtomicU32,
    settles: StdMutex<Vec<bool>>,
}

impl TextSource {
    fn set(&self, t: &str) {
        *self.text.lock().expect("lock") = t.to_string();
    }
}

impl CardSource for TextSource {
    fn pull(&self) -> Option<LiveUpdate> {
        self.pulls.fetch_add(1, Ordering::SeqCst);
        let text = self.text.lock().expect("lock").clone();
        if text == *self.sent.lock().expect("lock") {
            return None;
        }
        *self.in_flight.lock().expect("lock") = Some(text.clone());
        Some(LiveUpdate::Content {
            element_id: "answer".into(),
            content: text,
        })
    }

    fn settle(&self, accepted: bool) {
        self.settles.lock().expect("lock").push(accepted);
        let pulled = self.in_flight.lock().expect("lock").take();
        if let Some(t) = pulled.filter(|_| accepted) {
            *self.sent.lock().expect("lock") = t;
        }
    }
}

#[tokio::test]
async fn a_live_writer_pulls_once_per_operation_and_sends_the_newest_state() {
    let cards = Arc::new(StdMutex::new(Cards::default()));
    let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
    let cfg = WriterConfig {
        max_ops_per_sec: 20,
        ..Default::default()
    };
    let src = Arc::new(TextSource::default());
    let w = CardWriter::spawn_live(kit(&fake), "c7".into(), 2, cfg, src.clone());
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&format!("{i} "));
        src.set(&text);
        w.mark_dirty();
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    w.flush().await.expect("flush");
    let n = ops(&fake).len();
    assert!((1..40).contains(&n), "{n} ops for 300 changes");
    assert_eq!(
        src.pulls.load(Ordering::SeqCst) as usize,
        n,
        "one render per op"
    );
    assert_eq!(cards.lock().expect("lock").content["answer"], text);
    // Nothing changed: marked dirty, pulled, nothing sent.
    w.mark_dirty();
    let report = w.finish().await.expect("finish");
    assert_eq!(report.ops as usize, n);
    assert_eq!(ops(&fake).len(), n);
    let seqs: Vec<i64> = ops(&fake)
        .iter()
        .map(|r| r.json()["sequence"].as_i64().unwrap_or(0))
        .collect();
    assert!(
        seqs[0] > 2 && seqs.windows(2).all(|w| w[0] < w[1]),
        "{seqs:?}"
    );
    assert!(src.settles.lock().expect("lock").iter().all(|a| *a));
}

#[tokio::test]
async fn a_pulled_update_that_failed_is_pulled_again() {
    let (fake, cards) = failing_first(2).await;
    let cfg = WriterConfig {
        max_transient_failures: 3,
        failure_backoff: Duration::from_millis(5),
        max_ops_per_sec: 100,
    };
    let src = Arc::new(TextSource::default());
    let w = CardWriter::spawn_live(kit(&fake), "c8".into(), 0, cfg, src.clone());
    src.set("first");
    w.mark_dirty();
    let report = w.finish().await.expect("the retry succeeds");
    assert_eq!(report.ops, 1);
    assert_eq!(*src.settles.lock().expect("lock"), vec![false, true]);
    assert_eq!(cards.lock().expect("lock").content["answer"], "first");
}

#[tokio::test]
async fn a_queued_card_supersedes_a_pending_pull() {
    let cards = Arc::new(StdMutex::new(Cards::default()));
    let fake = FakeHttp::start(cardkit_route(cards.clone())).await;
    let cfg = WriterConfig {
        max_ops_per_sec: 5,
        ..Default::default()
    };
    let src = Arc::new(TextSource::default());
    let w = CardWriter::spawn_live(kit(&fake), "c9".into(), 0, cfg, src.clone());
    src.set("live");
    w.mark_dirty();
    w.flush().await.expect("flush");
    assert_eq!(src.pulls.load(Ordering::SeqCst), 1);
    // The writer now waits out its pacing with a pull in hand; the
    // final card arrives meanwhile and goes out instead.
    src.set("live, more");
    w.mark_dirty();
    tokio::time::sleep(Duration::from_millis(20)).await;
    w.update_card(json!({"schema": "2.0"}).to_string());
    w.update_settings(close_streaming_settings("done"));
    w.finish().await.expect("finish");
    assert_eq!(
        src.pulls.load(Ordering::SeqCst),
        1,
        "no pull after the card"
    );
    let reqs = ops(&fake);
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[1].path, format!("{CARDS_PATH}/c9"));
    assert!(reqs[2].path.ends_with("/settings"));
}

#[tokio::test]
async fn a_writer_without_a_source_ignores_dirty_marks() {
    let fake = FakeHttp::start(cardkit_route(Arc::new(StdMutex::new(Cards::default())))).await;
    let w = CardWriter::spawn(kit(&fake), "c10".into(), 0, WriterConfig::default());
    w.mark_dirty();
    w.flush().await.expect("nothing to flush");
    let report = w.finish().await.expect("finish");
    assert_eq!(report.ops, 0);
    assert!(ops(&fake).is_empty());
}
