//! The fcx.v1 contract over the real local socket, against a real
//! `fcx-worker` process: version refusal, idempotent Deliver, resumable
//! Events. Also fcxctl against a real fcxd, and the bench in quick mode.

use std::process::Command;
use std::time::{Duration, Instant};

use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{Actor, ChatType, EventsRequest, HelloRequest, Inbound};
use fcx_tests::harness::{Fcxd, TestHome, WorkerProc, bin};

async fn worker(h: &TestHome) -> (WorkerProc, WorkerClient<tonic::transport::Channel>) {
    h.write_config(&h.fake_codex_config(""));
    WorkerProc::start(h, &[]).await
}

fn msg(id: &str, text: &str) -> Inbound {
    Inbound {
        event_id: id.into(),
        scope: "chat:contract".into(),
        actor: Some(Actor {
            id: "ou_1".into(),
            name: "Ann".into(),
        }),
        text: text.into(),
        chat_type: ChatType::Private as i32,
        message_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn hello_refuses_another_protocol_version() {
    let h = TestHome::new();
    let (_w, mut c) = worker(&h).await;
    let err = c
        .hello(HelloRequest {
            protocol_version: 999,
            gateway_version: "test".into(),
            capabilities: vec![],
        })
        .await
        .expect_err("version 999 refused");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("protocol version mismatch"), "{err}");
    assert!(err.message().contains("999"), "{err}");
    let ok = c
        .hello(HelloRequest {
            protocol_version: fcx_proto::PROTOCOL_VERSION,
            gateway_version: "test".into(),
            capabilities: vec![],
        })
        .await
        .expect("matching version")
        .into_inner();
    assert_eq!(ok.profile, "default");
    // The default runner.
    assert_eq!(ok.runner(), fcx_proto::v1::RunnerKind::AppServer);
    // What the worker states is what the gateway will offer.
    let want: Vec<String> = fcx_proto::caps::WORKER
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ok.capabilities, want);
}

#[tokio::test]
async fn deliver_is_idempotent_and_events_resume_from_any_seq() {
    let h = TestHome::new();
    let (_w, mut c) = worker(&h).await;
    let a = c
        .deliver(msg("e-1", "hello"))
        .await
        .expect("deliver")
        .into_inner();
    assert!(a.accepted && !a.duplicate);
    let b = c
        .deliver(msg("e-1", "hello"))
        .await
        .expect("again")
        .into_inner();
    assert!(b.accepted && b.duplicate);
    assert_eq!(a.inbox_id, b.inbox_id);
    let bad = c.deliver(msg("", "no id")).await.expect_err("no event id");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // Follow until the run is done.
    let mut stream = c
        .events(EventsRequest { from_seq: 0 })
        .await
        .expect("events")
        .into_inner();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), stream.message())
            .await
            .expect("events in time")
            .expect("stream ok")
            .expect("stream open");
        let done = matches!(ev.kind, Some(Kind::Done(_)));
        seen.push(ev);
        if done {
            break;
        }
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // Announced at accept (once: the duplicate is not announced again),
    // then started under the announced run id.
    assert!(matches!(seen[0].kind, Some(Kind::Queued(_))), "{seen:?}");
    assert!(
        matches!(seen[1].kind, Some(Kind::RunStarted(_))),
        "{seen:?}"
    );
    assert_eq!(seen[0].run_id, seen[1].run_id);
    let announced = seen
        .iter()
        .filter(|e| matches!(e.kind, Some(Kind::Queued(_))))
        .count();
    assert_eq!(announced, 1, "{seen:?}");
    // A reconnect from the middle replays exactly the rest.
    let mid = seqs[seqs.len() / 2];
    let mut again = c
        .events(EventsRequest { from_seq: mid })
        .await
        .expect("events")
        .into_inner();
    let mut replay = Vec::new();
    while replay.len() < seqs.iter().filter(|s| **s >= mid).count() {
        let ev = tokio::time::timeout(Duration::from_secs(10), again.message())
            .await
            .expect("replay in time")
            .expect("ok")
            .expect("open");
        replay.push(ev.seq);
    }
    assert_eq!(
        replay,
        seqs.into_iter().filter(|s| *s >= mid).collect::<Vec<_>>()
    );
    // The duplicate delivery did not run twice.
    assert_eq!(h.fake_records().len(), 1);
}

#[test]
fn fcxctl_reports_a_running_fcxd() {
    let h = TestHome::new();
    h.write_config(&h.fake_codex_config(""));
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    let status = || {
        let out = Command::new(bin("fcxctl"))
            .args(["status", "--json"])
            .env("FCX_HOME", &h.home)
            .output()
            .expect("fcxctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut v = status();
    while v["profiles"][0]["worker_state"] != "ready" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        v = status();
    }
    assert_eq!(v["pid"], f.pid());
    assert_eq!(v["profiles"][0]["name"], "default");
    assert_eq!(v["profiles"][0]["worker_state"], "ready");
    let out = Command::new(bin("fcxctl"))
        .args(["ps", "--json"])
        .env("FCX_HOME", &h.home)
        .output()
        .expect("fcxctl ps");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[1]["kind"], "worker");
    // And stop brings everything down cleanly.
    let out = Command::new(bin("fcxctl"))
        .arg("stop")
        .env("FCX_HOME", &h.home)
        .output()
        .expect("fcxctl stop");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(f.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn the_bench_runs_and_prints_its_figures() {
    // README's command in its short form (the test build, not a release
    // one); the fault matrix has its test below, so the two stay well
    // inside the time limit.
    let v = quick_bench(&["--skip", "faults"]);
    assert!(v["deliver_round_trip_us"]["p99"].as_f64().is_some(), "{v}");
    assert!(
        v["spawn"]["accepted_to_spawned_ms"]["p99"]
            .as_f64()
            .is_some(),
        "{v}"
    );
    assert!(v["idle_rss_kib"]["total"].as_u64().unwrap_or(0) > 0, "{v}");
    let child = &v["app_server_child"];
    for design in ["fresh", "per_scope_warm", "per_profile_shared"] {
        assert!(
            child["first_token_ms"][design]["p50"].as_f64().is_some(),
            "{v}"
        );
    }
    let feishu = &v["feishu"];
    assert!(feishu["ack_latency_ms"]["p50"].as_f64().is_some(), "{v}");
    assert!(feishu["ack_latency_ms"]["p99"].as_f64().is_some(), "{v}");
    assert!(
        feishu["sustained"]["events_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{v}"
    );
    assert!(feishu["sustained"]["unacked"].as_u64().is_some(), "{v}");
    // Every event of the small burst is ACKed, and only after its commit.
    assert_eq!(
        feishu["sustained"]["acked"], feishu["sustained"]["events"],
        "{v}"
    );
    assert_eq!(
        feishu["sustained"]["committed"], feishu["sustained"]["events"],
        "{v}"
    );
    assert!(v["targets"]["feishu.ack_latency_ms.p99"].is_number(), "{v}");
    // Fairness, counted (issue 14): the many-scope load, scaled to more
    // scopes than run slots, starts no scope ahead of one accepted earlier,
    // and runs every message exactly once. Waits are printed, not asserted.
    for load in [
        "many_scopes",
        "many_scopes_even_runs",
        "many_scopes_instant_runs",
    ] {
        let l = &v[load];
        assert!(l["scopes"].as_u64().unwrap_or(0) > 32, "{load}: {l}");
        assert_eq!(l["out_of_order_starts"], 0, "{load}: {l}");
        assert_eq!(l["lost"], 0, "{load}: {l}");
        assert_eq!(l["duplicated"], 0, "{load}: {l}");
        assert_eq!(
            l["messages"],
            l["scopes"].as_u64().unwrap_or(0) * 3,
            "{load}: {l}"
        );
        assert!(l["queue_wait_ms"]["p99"].as_f64().is_some(), "{load}: {l}");
    }
    assert_eq!(v["targets"]["many_scopes.out_of_order_starts"], 0, "{v}");
    // Feedback at accept (issue 11), under app-server (the default) and
    // exec side by side; printed, not judged.
    for (name, runner) in [
        ("card", "app-server"),
        ("markdown", "app-server"),
        ("card_exec", "exec"),
    ] {
        let f = &v["feedback"][name];
        assert_eq!(f["runner"], runner, "{name}: {f}");
        for figure in [
            "delivered_to_first_feedback_ms",
            "lone_message_answer_overhead_ms",
        ] {
            assert!(f[figure]["p50"].as_f64().is_some(), "{name}: {f}");
            assert!(f[figure]["p99"].as_f64().is_some(), "{name}: {f}");
        }
    }
    // Run cards under a text burst: latency, pacing, rate limits, coalescing.
    let single = &v["cards"]["single_run"];
    assert!(single["delta_to_card_ms"]["p50"].as_f64().is_some(), "{v}");
    assert!(single["delta_to_card_ms"]["p99"].as_f64().is_some(), "{v}");
    assert!(single["ops_per_s"].as_f64().is_some(), "{v}");
    assert!(single["ops_saved_by_coalescing"].as_u64().is_some(), "{v}");
    assert_eq!(single["rate_limit_hits"], 0, "{v}");
    assert_eq!(single["sequence_refusals"], 0, "{v}");
    let many = &v["cards"]["many_runs"];
    assert!(many["ops_per_s_per_card"]["p50"].as_f64().is_some(), "{v}");
    assert!(many["app_ops_per_s"].as_f64().is_some(), "{v}");
    assert!(many["rate_limit_hits"].as_u64().is_some(), "{v}");
    assert!(
        v["targets"]["cards.single_run.rate_limit_hits"].is_number(),
        "{v}"
    );
    // Soak (issue 14): 8 profiles; resources of fcxd and of every worker
    // sampled over time, and run throughput; growth after warm-up judged
    // (the bench exits 1 on it).
    let soak = &v["soak"];
    assert_eq!(soak["profiles"], 8, "{soak}");
    let samples = soak["samples"].as_array().cloned().unwrap_or_default();
    assert!(samples.len() >= 3, "{soak}");
    for s in &samples {
        let workers = s["workers"].as_array().cloned().unwrap_or_default();
        assert_eq!(workers.len(), 8, "{s}");
        for u in std::iter::once(&s["fcxd"]).chain(&workers) {
            for what in ["rss_kib", "fds", "threads"] {
                assert!(u[what].as_u64().unwrap_or(0) > 0, "{what}: {s}");
            }
        }
    }
    assert_eq!(soak["leak_suspected"], serde_json::json!([]), "{soak}");
    assert!(soak["runs"].as_u64().unwrap_or(0) > 0, "{soak}");
    assert!(soak["runs_per_s"].as_f64().is_some(), "{soak}");
    assert!(soak["leak_suspected"].is_array(), "{soak}");
    // Clicks under load (issue 14 item 9): with the pool full and a queue
    // waiting, and across kill -9 of the worker; every click ACKed once,
    // its latency printed, not asserted.
    let clicks = &v["clicks"];
    assert!(
        clicks["busy_ms"]["n"].as_u64().unwrap_or(0) >= 10,
        "{clicks}"
    );
    assert!(
        clicks["restarting_ms"]["n"].as_u64().unwrap_or(0) >= 4,
        "{clicks}"
    );
    assert!(
        clicks["worker_kills"].as_u64().unwrap_or(0) >= 1,
        "{clicks}"
    );
    for when in ["busy_ms", "restarting_ms"] {
        assert!(clicks[when]["p99"].as_f64().is_some(), "{clicks}");
    }
    for bad in ["unacknowledged", "acked_twice", "refused"] {
        assert_eq!(clicks[bad], 0, "{bad}: {clicks}");
    }
}

/// `scripts/bench.sh --quick ARGS`: the figures it prints.
fn quick_bench(args: &[&str]) -> serde_json::Value {
    let out = fcx_tests::harness::repo_script("bench.sh")
        .arg("--quick")
        .args(args)
        .output()
        .expect("scripts/bench.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// The fault matrix (issue 14), one round of each row: no message lost or
/// answered twice; where Codex failed, the user was told.
#[test]
fn the_fault_matrix_loses_and_duplicates_nothing() {
    let v = quick_bench(&["--only", "faults"]);
    // Card click → ACK, timed (issue 14 asks for 1 s p99; printed, not asserted).
    for when in ["run_in_flight", "worker_restarting"] {
        assert!(
            v["faults"]["click_ack_ms"][when]["p99"].as_f64().is_some(),
            "{}",
            v["faults"]
        );
    }
    let rows = v["faults"]["rows"].as_array().cloned().unwrap_or_default();
    assert!(rows.len() >= 15, "{}", v["faults"]);
    // The rows' runs are the real Codex CLI and the mock model (issue 14,
    // point 1), but the one row only a scripted codex can stage.
    assert_eq!(
        v["faults"]["codex"], "codex-cli 0.169.0 + mock model",
        "{}",
        v["faults"]
    );
    for fault in [
        "http_storm_resource_download",
        "http_storm_upload",
        "http_storm_comment_reply",
        "http_storm_read_apis",
        "ws_half_open_pings_unanswered",
        "platform_slow_2s_every_call",
        "wall_clock_jump_1h_both_ways",
        "own_wall_clock_steps_1h_both_ways",
        "disk_full_then_space_returns",
        "state_dir_read_only_under_running_worker",
        "read_only_state_dir_then_writable",
        "worker_frozen_mid_run",
    ] {
        assert!(
            rows.iter().any(|r| r["fault"] == fault),
            "{fault}: {}",
            v["faults"]
        );
    }
    for r in &rows {
        // A row the machine cannot stage (mounts not permitted) says why.
        // The fault shim's rows need only a C compiler, which the test
        // command assumes: they always run here.
        if r["fault"].as_str().is_some_and(|f| {
            f.starts_with("own_wall_clock") || f.starts_with("state_dir_read_only")
        }) {
            assert!(r.get("skipped").is_none(), "{r}");
        }
        if let Some(why) = r.get("skipped") {
            eprintln!("fault row {} skipped: {why}", r["fault"]);
            continue;
        }
        assert_eq!(r["lost"], 0, "{r}");
        assert_eq!(r["duplicated"], 0, "{r}");
        assert!(r["messages"].as_u64().unwrap_or(0) > 0, "{r}");
        let f = r["fault"].as_str().unwrap_or("");
        // Every row replies with run cards (the full queue's busy answer
        // is a reply message): no card left running, a failed run's card
        // included.
        if !f.starts_with("queue_full") {
            assert_eq!(r["cards_left_running"], 0, "{r}");
        }
        // The kills met real Codex runs: each killed run started a turn.
        if f.ends_with("kill9_mid_run") {
            assert!(r["codex_turns"].as_u64() >= r["messages"].as_u64(), "{r}");
        }
        // The storms reached the IM message and CardKit APIs and the
        // token endpoint, not only a run's first calls.
        if f.ends_with("_storm_all_apis") {
            for api in [
                "/open-apis/im/v1/messages",
                "/open-apis/cardkit/v1/cards",
                "/open-apis/auth/v3/tenant_access_token",
            ] {
                assert!(
                    r["apis_struck"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|p| p == api)),
                    "{api}: {r}"
                );
            }
        }
        // The storms on the media and document APIs met them, both kinds,
        // and what outlasts a call's retries is said, never silence.
        if let Some(apis) = storm_apis(f) {
            for api in apis {
                assert!(
                    r["apis_struck"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|p| p == api)),
                    "{api}: {r}"
                );
            }
            for status in ["429", "5xx"] {
                assert!(r["calls_struck"][status].as_u64() > Some(0), "{r}");
            }
            let past = &r["past_retries"];
            if !past.is_null() {
                assert!(past["messages"].as_u64() > Some(0), "{r}");
                assert_eq!(past["told_user"], past["messages"], "{r}");
                assert_eq!(past["lost"], 0, "{r}");
                assert_eq!(past["duplicated"], 0, "{r}");
            }
        }
        if f == "http_storm_resource_download" {
            assert_eq!(r["attachments_received"], r["messages"], "{r}");
        }
        // A forward whose children could not be read within the ACK
        // window is answered from the placeholder and its sender told.
        if f == "http_storm_read_apis" {
            let read = r["forward_children_read"].as_u64().unwrap_or(0);
            assert_eq!(
                r["forwards_told"].as_u64().map(|t| t + read),
                r["forwards"].as_u64(),
                "{r}"
            );
            assert_eq!(r["comment_replies_once"], r["comments"], "{r}");
            assert!(r["fcxd_starts"].as_u64() > Some(0), "{r}");
            assert!(r["quotes"].as_u64() > Some(0), "{r}");
            // Each quote reached Codex, or its sender was told it did not.
            assert_eq!(
                r["quotes_read"].as_u64().unwrap_or(0) + r["quotes_told"].as_u64().unwrap_or(0),
                r["quotes"].as_u64().unwrap_or(u64::MAX),
                "{r}"
            );
        }
        if f.starts_with("codex_crash")
            || f.starts_with("codex_hang")
            || f.starts_with("queue_full")
        {
            assert_eq!(r["told_user"], r["messages"], "{r}");
        } else {
            assert_eq!(r["answered_once"], r["messages"], "{r}");
        }
        // A full disk or a read-only state directory is said, and the
        // message still runs once the worker can write again.
        if f.starts_with("disk_full") || f.starts_with("read_only_state") {
            assert_eq!(r["told_user"], r["messages"], "{r}");
        }
        // fcx's own clock stepped (the fault shim in fcxd and the worker):
        // the step reached both processes, every click on a button made
        // before a step acted, and the worker lived through it.
        if f.starts_with("own_wall_clock") {
            assert_eq!(r["shim_loaded"], true, "{r}");
            for who in ["fcxd_clock_offset_s", "worker_clock_offset_s"] {
                let off = r[who].as_i64().unwrap_or(0);
                assert!((3500..=3700).contains(&off), "{who}: {r}");
            }
            assert_eq!(r["clicks_acted"], r["clicks"], "{r}");
            assert_eq!(r["worker_restarted"], false, "{r}");
            // A run's length on its card is not off by the step.
            assert_eq!(r["elapsed_an_hour_off"], 0, "{r}");
        }
        // The running worker's state directory read-only, then writable:
        // the message sent meanwhile is said at once, left unacknowledged
        // with the platform (which redelivers it) and answered once later;
        // the run in progress ends final once writes work (counted above).
        if f.starts_with("state_dir_read_only") {
            assert_eq!(r["shim_loaded"], true, "{r}");
            let rounds = &r["rounds"];
            assert_eq!(&r["told_before_writable"], rounds, "{r}");
            assert_eq!(&r["redelivered_while_read_only"], rounds, "{r}");
            assert_eq!(r["acked_while_read_only"], 0, "{r}");
            assert_eq!(r["worker_restarted"], false, "{r}");
        }
    }
}

/// The APIs a media, document or read storm row must show it struck.
fn storm_apis(fault: &str) -> Option<&'static [&'static str]> {
    Some(match fault {
        "http_storm_resource_download" => &["GET /open-apis/im/v1/messages/:id/resources/:id"],
        "http_storm_upload" => &[
            "POST /open-apis/im/v1/files",
            "POST /open-apis/im/v1/images",
        ],
        "http_storm_comment_reply" => &["POST /open-apis/drive/v1/files/:id/comments/:id/replies"],
        "http_storm_read_apis" => &[
            "GET /open-apis/im/v1/messages/:id",
            "GET /open-apis/drive/v1/files/:id/comments/:id",
            "POST /open-apis/drive/v1/metas/batch_query",
            "GET /open-apis/bot/v3/info",
            "GET /open-apis/application/v6/applications/me",
        ],
        _ => return None,
    })
}
