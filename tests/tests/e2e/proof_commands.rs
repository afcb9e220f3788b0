//! Commands end to end through the real fcxd and fcx-worker: `/ws use` and
//! `/ws remove` on the console, `/exit <run>` and `/stop <scope>` across
//! Feishu chats, the structured per-run log line each run leaves, and the
//! Codex child's login under `auth = "codex-home"` and `"inherit-user"`.

use std::time::Duration;

use fcx_tests::fake_feishu::Redelivery;
use fcx_tests::harness::{FEISHU_USER as USER, Fcxd, FeishuEnv, TestHome, eventually, message_id};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// The worker's "run summary" lines, parsed.
fn run_summaries(h: &TestHome) -> Vec<Value> {
    let log = std::fs::read_to_string(h.home.join("logs/worker-default.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|j| j["message"] == "run summary")
        .collect()
}

fn summary_of(h: &TestHome, run_id: &str) -> Value {
    eventually(
        WAIT,
        || run_summaries(h).into_iter().find(|j| j["run_id"] == run_id),
        || format!("no run summary for {run_id}\n{}", h.read_logs()),
    )
}

#[test]
fn ws_use_switches_the_workspace_and_ws_remove_forgets_the_name() {
    let h = TestHome::new();
    let other = h.root.join("other-ws");
    std::fs::create_dir_all(&other).expect("second workspace");
    let other_real = std::fs::canonicalize(&other).expect("realpath");
    h.write_config(&h.fake_codex_config(""));
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");

    f.send(&format!("/cd {}", other.display()));
    f.wait_for(&format!("Workspace: {}", other_real.display()));
    f.send("/ws save other");
    f.wait_for("Saved workspace `other`");
    f.send(&format!("/cd {}", h.workspace.display()));
    f.wait_for("Workspace: ");

    // A run in the default workspace, stalled, so /ws use has to stop it.
    f.send("FAKE:stall until the workspace changes");
    f.wait_for("started");
    f.send("/ws use other");
    let seen = f.wait_for(&format!("Workspace: {}", other_real.display()));
    f.wait_for("] interrupted");
    assert!(!seen.contains("cannot be used"), "{seen}");

    f.send("where am I");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("new session"), "{seen}");
    let recs = h.fake_records();
    let last = recs.last().expect("a codex record");
    assert_eq!(
        // The workspace is codex's working directory (not on its argv).
        last["cwd"].as_str().map(std::path::PathBuf::from),
        Some(other_real.clone()),
        "{last}"
    );

    f.send("/ws remove other");
    f.wait_for("Removed workspace `other`");
    f.send("/ws use other");
    f.wait_for("No workspace named `other`");
    f.send("/ws remove other");
    f.wait_for("No workspace named `other`");
    f.send("/ws list");
    let seen = f.wait_for("default");
    assert!(!seen.contains("`other`"), "{seen}");
    // The directory itself is untouched.
    assert!(other.is_dir());
}

#[test]
fn every_run_leaves_one_structured_summary_line_without_chat_text() {
    let h = TestHome::new();
    h.write_config(&h.fake_codex_config(""));
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    f.send("a secret-looking prompt ZEBRA-7731");
    f.wait_for("] completed");
    f.send("FAKE:stall then stopped QUAGGA-4410");
    f.wait_for("started");
    f.send("/stop");
    f.wait_for("] interrupted");

    let lines = eventually(
        WAIT,
        || Some(run_summaries(&h)).filter(|v| v.len() >= 2),
        || format!("fewer than two run summaries\n{}", h.read_logs()),
    );
    assert_eq!(lines.len(), 2, "one line per run: {lines:?}");
    let (done, stopped) = (&lines[0], &lines[1]);
    for l in [done, stopped] {
        assert_eq!(l["scope"], "chat:console", "{l}");
        assert_eq!(l["runner"], "app-server", "{l}");
        assert_eq!(l["target"], "fcx::run", "{l}");
        assert_eq!(l["messages"], 1, "{l}");
        assert!(l["duration_ms"].is_u64(), "{l}");
        assert!(l["run_id"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
    }
    assert_ne!(done["run_id"], stopped["run_id"]);
    assert_eq!(done["outcome"], "completed", "{done}");
    assert_eq!(stopped["outcome"], "interrupted", "{stopped}");
    // The fake codex reports one turn's usage (11 in, 3 cached, 7 out, 2 reasoning).
    assert_eq!(done["input_tokens"], 11, "{done}");
    assert_eq!(done["cached_input_tokens"], 3, "{done}");
    assert_eq!(done["output_tokens"], 7, "{done}");
    assert_eq!(done["reasoning_output_tokens"], 2, "{done}");
    // A stalled run never reported usage: no token fields rather than zeros.
    assert!(stopped.get("input_tokens").is_none(), "{stopped}");
    // No chat text in the summary lines (nor the answer).
    for l in &lines {
        let s = l.to_string();
        for word in ["ZEBRA-7731", "QUAGGA-4410", "hello from fake codex"] {
            assert!(!s.contains(word), "{word} in {s}");
        }
    }
}

fn feishu() -> FeishuEnv {
    FeishuEnv::start(
        "markdown",
        Redelivery::fast(Duration::from_secs(3), Duration::from_millis(500), 6),
        &[],
    )
}

/// Starts a stalled run in group `chat`; returns its run id once /ps shows it.
fn stalled_group_run(e: &FeishuEnv, chat: &str) -> String {
    let ev = e
        .fake
        .events()
        .group_text(chat, USER, "FAKE:stall a long job", true);
    e.push(&ev);
    let scope = format!("chat:{chat}");
    eventually(
        WAIT,
        || {
            e.rt.block_on(e.home.ps())
                .processes
                .into_iter()
                .find(|p| p.scope == scope && p.id.starts_with("r:"))
                .map(|p| p.id["r:".len()..].to_string())
        },
        || format!("no run in {scope}\n{}", e.home.read_logs()),
    )
}

/// Sends `text` in the owner's private chat and waits for the reply with `needle`.
fn admin_says(e: &FeishuEnv, text: &str, needle: &str) -> String {
    let ev = e.fake.events().p2p_text("oc_p2p_admin", USER, text);
    let om = message_id(&ev);
    e.push(&ev);
    eventually(
        WAIT,
        || {
            e.fake
                .messages()
                .into_iter()
                .find(|m| m.sender_type == "app" && m.parent_id == om && m.content.contains(needle))
                .map(|m| m.content)
        },
        || {
            format!(
                "no reply to {text:?} with {needle:?}: {:?}\n{}",
                e.fake
                    .messages()
                    .into_iter()
                    .filter(|m| m.parent_id == om)
                    .map(|m| m.content)
                    .collect::<Vec<_>>(),
                e.home.read_logs()
            )
        },
    )
}

#[test]
fn an_admin_stops_runs_in_other_chats_by_run_id_and_by_scope() {
    let e = feishu();
    let run1 = stalled_group_run(&e, "oc_grp1");
    let run2 = stalled_group_run(&e, "oc_grp2");
    assert_ne!(run1, run2);

    let reply = admin_says(&e, "/exit r-nonexistent", "No active run");
    assert!(reply.contains("/ps"), "{reply}");

    let reply = admin_says(&e, &format!("/exit {run1}"), "Stopping run");
    assert!(reply.contains(&run1), "{reply}");
    assert!(reply.contains("chat:oc_grp1"), "{reply}");
    assert_eq!(summary_of(&e.home, &run1)["outcome"], "interrupted");
    // Only that run: the other chat's run goes on.
    let ps = e.rt.block_on(e.home.ps());
    assert!(
        ps.processes.iter().any(|p| p.id == format!("r:{run2}")),
        "{ps:?}"
    );

    let reply = admin_says(&e, "/stop chat:oc_grp2", "Stopping run");
    assert!(reply.contains(&run2), "{reply}");
    assert_eq!(summary_of(&e.home, &run2)["outcome"], "interrupted");
    // Each group is told its run ended.
    for chat in ["oc_grp1", "oc_grp2"] {
        eventually(
            WAIT,
            || {
                e.fake
                    .messages()
                    .into_iter()
                    .find(|m| {
                        m.sender_type == "app" && m.chat_id == chat && m.content.contains("stopped")
                    })
                    .map(|_| ())
            },
            || format!("{chat} was not told: {:?}", e.fake.messages()),
        );
    }
}

/// The Codex child's environment under `auth = "<mode>"` (no API key).
fn child_env_with_auth(mode: &str) -> (TestHome, serde_json::Map<String, Value>) {
    let h = TestHome::new();
    let cfg: String = h
        .fake_codex_config("")
        .lines()
        .filter(|l| !l.starts_with("api_key"))
        .map(|l| {
            if l.starts_with("auth = ") {
                format!("auth = \"{mode}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    h.write_config(&cfg);
    let mut f = Fcxd::console_with(&h, &[("CODEX_API_KEY", ""), ("OPENAI_API_KEY", "")]);
    f.wait_for("fcx console");
    f.send("which login");
    f.wait_for("] completed");
    let env = h.fake_records()[0]["env"]
        .as_object()
        .cloned()
        .expect("env recorded");
    (h, env)
}

#[test]
fn codex_home_auth_gives_the_profile_its_own_codex_home_and_no_key() {
    let (h, env) = child_env_with_auth("codex-home");
    assert_eq!(
        env.get("CODEX_HOME")
            .and_then(Value::as_str)
            .map(std::path::PathBuf::from),
        Some(h.console_codex_home()),
        "{env:?}"
    );
    assert!(
        env.get("CODEX_API_KEY")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty(),
        "{env:?}"
    );
}

#[test]
fn inherit_user_auth_leaves_codex_home_unset_and_passes_no_key() {
    let (_h, env) = child_env_with_auth("inherit-user");
    assert!(env.get("CODEX_HOME").is_none(), "{env:?}");
    assert!(
        env.get("CODEX_API_KEY")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty(),
        "{env:?}"
    );
    assert!(env.get("HOME").is_some(), "{env:?}");
}
