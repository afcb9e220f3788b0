//! The worker's brain over its real socket, with the scripted fake codex:
//! access decisions for real senders, workspaces and `/cd`, access modes,
//! `/resume` refused after a policy change, persisted access lists, and
//! kill -9 crash rounds under load.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{Actor, ChatType, EventsRequest, Inbound, StatusRequest, WorkerEvent};
use fcx_tests::harness::{TestHome, WorkerProc, bin};
use tonic::transport::Channel;

type Client = WorkerClient<Channel>;

/// A profile with a platform app (so access is enforced, not local-only).
fn app_config(h: &TestHome, access: &str) -> String {
    format!(
        "{}\n[profiles.default.app]\napp_id = \"cli_test\"\napp_secret = \"env:FCX_TEST_NO_SUCH_SECRET\"\nbase_url = \"http://127.0.0.1:9\"\n[profiles.default.access]\n{access}\n",
        h.fake_codex_config("")
    )
}

async fn start(h: &TestHome) -> (WorkerProc, Client) {
    WorkerProc::start(h, &[]).await
}

struct Msg<'a> {
    id: &'a str,
    actor: &'a str,
    chat: ChatType,
    chat_id: &'a str,
    mentioned: bool,
    text: &'a str,
}

fn inbound(m: &Msg<'_>) -> Inbound {
    let scope = format!("chat:{}", m.chat_id);
    Inbound {
        event_id: m.id.into(),
        scope,
        actor: Some(Actor {
            id: m.actor.into(),
            name: m.actor.into(),
        }),
        text: m.text.into(),
        chat_type: m.chat as i32,
        mentioned: m.mentioned,
        chat_id: m.chat_id.into(),
        message_id: m.id.into(),
        ..Default::default()
    }
}

/// Events follower: every event from its creation on, remembered.
struct Events {
    stream: tonic::Streaming<WorkerEvent>,
    seen: Vec<WorkerEvent>,
}

impl Events {
    async fn new(c: &mut Client) -> Self {
        // Only what happens from now on.
        let from_seq = c
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .last_seq
            + 1;
        let stream = c
            .events(EventsRequest { from_seq })
            .await
            .expect("events")
            .into_inner();
        Events {
            stream,
            seen: Vec::new(),
        }
    }

    /// The next event (in seq order) answering `reply_to`, bounded.
    async fn next_for(&mut self, reply_to: &str) -> WorkerEvent {
        if let Some(i) = self.seen.iter().position(|e| e.reply_to == reply_to) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ev = tokio::time::timeout_at(deadline.into(), self.stream.message())
                .await
                .unwrap_or_else(|_| panic!("no event for {reply_to}; seen {:?}", self.seen))
                .expect("stream ok")
                .expect("stream open");
            if ev.reply_to == reply_to {
                return ev;
            }
            self.seen.push(ev);
        }
    }

    /// The first event of `scope` (in seq order), bounded.
    async fn first_in_scope(&mut self, scope: &str) -> WorkerEvent {
        if let Some(i) = self.seen.iter().position(|e| e.scope == scope) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ev = tokio::time::timeout_at(deadline.into(), self.stream.message())
                .await
                .unwrap_or_else(|_| panic!("no event in {scope}"))
                .expect("stream ok")
                .expect("stream open");
            if ev.scope == scope {
                return ev;
            }
            self.seen.push(ev);
        }
    }

    async fn done_for(&mut self, reply_to: &str) -> fcx_proto::v1::Done {
        loop {
            if let Some(Kind::Done(d)) = self.next_for(reply_to).await.kind {
                return d;
            }
        }
    }
}

fn reply(ev: &WorkerEvent) -> (String, String, bool) {
    match &ev.kind {
        Some(Kind::CommandReply(c)) => (c.title.clone(), c.body.clone(), c.ok),
        other => panic!("expected a command reply, got {other:?}"),
    }
}

async fn deliver(c: &mut Client, m: Msg<'_>) {
    let ack = c.deliver(inbound(&m)).await.expect("deliver").into_inner();
    assert!(ack.accepted && !ack.duplicate, "{}", m.id);
}

const OWNER: &str = "ou_owner";
const USER: &str = "ou_user";
const STRANGER: &str = "ou_stranger";

#[tokio::test]
async fn access_is_enforced_for_real_senders_and_changes_persist() {
    let h = TestHome::new();
    h.write_config(&app_config(
        &h,
        &format!("owner = \"{OWNER}\"\nallowed_users = [\"{USER}\"]\nallowed_chats = [\"oc_ok\"]"),
    ));
    let (mut w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    let p = ChatType::Private;

    // A stranger in a private chat: acknowledged, then silence. The owner's
    // /status in the same chat is the first thing said there.
    deliver(
        &mut c,
        Msg {
            id: "s1",
            actor: STRANGER,
            chat: p,
            chat_id: "p_s",
            mentioned: false,
            text: "run rm -rf",
        },
    )
    .await;
    deliver(
        &mut c,
        Msg {
            id: "s2",
            actor: STRANGER,
            chat: p,
            chat_id: "p_s",
            mentioned: false,
            text: "/status",
        },
    )
    .await;
    deliver(
        &mut c,
        Msg {
            id: "o1",
            actor: OWNER,
            chat: p,
            chat_id: "p_s",
            mentioned: false,
            text: "/status",
        },
    )
    .await;
    let first = ev.first_in_scope("chat:p_s").await;
    assert_eq!(first.reply_to, "o1", "a stranger got an answer: {first:?}");

    // An allowed user: runs, but admin commands are refused with a reason.
    deliver(
        &mut c,
        Msg {
            id: "u1",
            actor: USER,
            chat: p,
            chat_id: "p_u",
            mentioned: false,
            text: "/cd /",
        },
    )
    .await;
    let (title, _, ok) = reply(&ev.next_for("u1").await);
    assert!(!ok && title.contains("Only an admin"), "{title}");
    deliver(
        &mut c,
        Msg {
            id: "u2",
            actor: USER,
            chat: p,
            chat_id: "p_u",
            mentioned: false,
            text: "hello from a user",
        },
    )
    .await;
    assert_eq!(
        ev.done_for("u2").await.reason,
        fcx_proto::v1::DoneReason::Completed as i32
    );

    // Groups: no mention → silence; a mention in a group that is not
    // enabled → a one-line hint; an enabled group → any member runs.
    let g = ChatType::Group;
    deliver(
        &mut c,
        Msg {
            id: "g1",
            actor: STRANGER,
            chat: g,
            chat_id: "oc_new",
            mentioned: false,
            text: "hi all",
        },
    )
    .await;
    deliver(
        &mut c,
        Msg {
            id: "g2",
            actor: STRANGER,
            chat: g,
            chat_id: "oc_new",
            mentioned: true,
            text: "do it",
        },
    )
    .await;
    let first = ev.first_in_scope("chat:oc_new").await;
    assert_eq!(first.reply_to, "g2");
    assert!(reply(&first).0.contains("not enabled"));
    deliver(
        &mut c,
        Msg {
            id: "g3",
            actor: STRANGER,
            chat: g,
            chat_id: "oc_ok",
            mentioned: true,
            text: "member request",
        },
    )
    .await;
    assert_eq!(
        ev.done_for("g3").await.reason,
        fcx_proto::v1::DoneReason::Completed as i32
    );

    // The owner enables the new group from inside it, and invites a user.
    deliver(
        &mut c,
        Msg {
            id: "o2",
            actor: OWNER,
            chat: g,
            chat_id: "oc_new",
            mentioned: true,
            text: "/invite group",
        },
    )
    .await;
    assert!(reply(&ev.next_for("o2").await).2);
    deliver(
        &mut c,
        Msg {
            id: "o3",
            actor: OWNER,
            chat: p,
            chat_id: "p_o",
            mentioned: false,
            text: "/invite user ou_new",
        },
    )
    .await;
    assert!(reply(&ev.next_for("o3").await).2);
    // A user cannot make admins; the owner cannot be removed.
    deliver(
        &mut c,
        Msg {
            id: "u3",
            actor: USER,
            chat: p,
            chat_id: "p_u",
            mentioned: false,
            text: "/invite admin ou_user",
        },
    )
    .await;
    assert!(!reply(&ev.next_for("u3").await).2);
    deliver(
        &mut c,
        Msg {
            id: "o4",
            actor: OWNER,
            chat: p,
            chat_id: "p_o",
            mentioned: false,
            text: "/remove user ou_user",
        },
    )
    .await;
    assert!(reply(&ev.next_for("o4").await).2);

    // Changes survive a restart (even a kill -9).
    w.kill9();
    drop(ev);
    let (_w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    deliver(
        &mut c,
        Msg {
            id: "n1",
            actor: "ou_new",
            chat: p,
            chat_id: "p_n",
            mentioned: false,
            text: "hello, I was invited",
        },
    )
    .await;
    assert_eq!(
        ev.done_for("n1").await.reason,
        fcx_proto::v1::DoneReason::Completed as i32
    );
    deliver(
        &mut c,
        Msg {
            id: "g4",
            actor: STRANGER,
            chat: g,
            chat_id: "oc_new",
            mentioned: true,
            text: "now enabled",
        },
    )
    .await;
    assert_eq!(
        ev.done_for("g4").await.reason,
        fcx_proto::v1::DoneReason::Completed as i32
    );
    deliver(
        &mut c,
        Msg {
            id: "u4",
            actor: USER,
            chat: p,
            chat_id: "p_u",
            mentioned: false,
            text: "am I still here",
        },
    )
    .await;
    deliver(
        &mut c,
        Msg {
            id: "o5",
            actor: OWNER,
            chat: p,
            chat_id: "p_u",
            mentioned: false,
            text: "/status",
        },
    )
    .await;
    let first = ev.first_in_scope("chat:p_u").await;
    assert_eq!(first.reply_to, "o5", "a removed user still got through");
}

#[tokio::test]
async fn workspaces_access_modes_and_resume_across_a_policy_change() {
    let h = TestHome::new();
    std::fs::create_dir_all(h.workspace.join("sub")).expect("mkdir");
    std::fs::create_dir_all(h.root.join("other")).expect("mkdir");
    std::os::unix::fs::symlink(h.root.join("other"), h.workspace.join("out")).expect("symlink");
    h.write_config(&format!(
        "{}\n[profiles.default.permissions]\nmax_access = \"full\"\n",
        app_config(&h, &format!("owner = \"{OWNER}\"\nadmins = [\"ou_admin\"]"))
    ));
    let (_w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    let p = ChatType::Private;
    let o = |id: &'static str, text: &'static str| Msg {
        id,
        actor: OWNER,
        chat: p,
        chat_id: "p_o",
        mentioned: false,
        text,
    };

    deliver(&mut c, o("m1", "first message in the default workspace")).await;
    ev.done_for("m1").await;
    deliver(&mut c, o("r1", "/resume")).await;
    let (_, body, ok) = reply(&ev.next_for("r1").await);
    assert!(ok, "{body}");
    let code = body.split('`').nth(1).expect("a /resume code").to_string();

    // Broad roots, missing directories and symlink escapes are refused, each
    // with its reason.
    for (id, text, why) in [
        ("c1", "/cd /", "filesystem root"),
        ("c2", "/cd /etc", "system directory"),
        ("c3", "/cd missing", "does not exist"),
        ("c4", "/cd out", "symbolic link"),
        ("c5", "/cd /tmp", "temporary directory"),
    ] {
        deliver(&mut c, o(id, text)).await;
        let (title, body, ok) = reply(&ev.next_for(id).await);
        assert!(!ok && body.contains(why), "{text}: {title} / {body}");
    }
    deliver(&mut c, o("c6", "/cd sub")).await;
    let (title, _, ok) = reply(&ev.next_for("c6").await);
    assert!(ok && title.ends_with("/ws/sub"), "{title}");
    deliver(&mut c, o("m2", "second message in sub")).await;
    ev.done_for("m2").await;
    let last = h.fake_records().pop().expect("a record");
    assert!(
        last["args"]["cd"]
            .as_str()
            .unwrap_or("")
            .ends_with("/ws/sub"),
        "{last}"
    );

    // The session from the old workspace must not continue here.
    deliver(
        &mut c,
        Msg {
            text: Box::leak(format!("/resume use {code}").into_boxed_str()),
            ..o("r2", "")
        },
    )
    .await;
    let (title, body, ok) = reply(&ev.next_for("r2").await);
    assert!(!ok && title.contains("Refused"), "{title}: {body}");

    // Named workspaces.
    deliver(&mut c, o("w1", "/ws save sub")).await;
    assert!(reply(&ev.next_for("w1").await).2);
    deliver(&mut c, o("w2", "/ws list")).await;
    assert!(reply(&ev.next_for("w2").await).1.contains("`sub`"));

    // Access modes: read-only maps to the read-only sandbox; full is owner-only.
    deliver(&mut c, o("a1", "/config access read-only")).await;
    assert!(reply(&ev.next_for("a1").await).2);
    deliver(&mut c, o("m3", "read-only now")).await;
    ev.done_for("m3").await;
    let last = h.fake_records().pop().expect("a record");
    assert_eq!(last["args"]["sandbox"], "read-only", "{last}");
    deliver(
        &mut c,
        Msg {
            id: "a2",
            actor: "ou_admin",
            chat: p,
            chat_id: "p_a",
            mentioned: false,
            text: "/config access full",
        },
    )
    .await;
    let (_, body, ok) = reply(&ev.next_for("a2").await);
    assert!(!ok && body.contains("only the owner"), "{body}");

    // /help documents everything; /timeout is per scope.
    deliver(&mut c, o("h1", "/help")).await;
    let (_, body, _) = reply(&ev.next_for("h1").await);
    for cmd in [
        "/resume", "/cd", "/ws", "/invite", "/doctor", "/timeout", "/config",
    ] {
        assert!(body.contains(cmd), "{cmd}");
    }
    deliver(&mut c, o("t1", "/timeout 5")).await;
    assert!(reply(&ev.next_for("t1").await).0.contains("5 minutes"));
    deliver(&mut c, o("d1", "/doctor")).await;
    let (_, body, _) = reply(&ev.next_for("d1").await);
    assert!(!body.contains("sk-fake"), "doctor leaked a secret: {body}");
    deliver(&mut c, o("d2", "/doctor")).await;
    assert!(reply(&ev.next_for("d2").await).0.contains("moments ago"));

    // fcxctl reads the state without disturbing the worker.
    for what in ["sessions", "runs"] {
        let out = Command::new(bin("fcxctl"))
            .args([what, "list", "--json"])
            .env("FCX_HOME", &h.home)
            .output()
            .expect("fcxctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert!(
            !v.as_array().map(Vec::is_empty).unwrap_or(true),
            "{what}: {v}"
        );
    }
}

/// kill -9 the worker at random points while messages arrive, 20 rounds;
/// then every acknowledged message ran exactly once or was reported as
/// interrupted, and the database opened cleanly every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_and_duplicates_nothing() {
    let h = TestHome::new();
    h.write_config(&h.fake_codex_config("max_concurrent = 3"));
    let mut acked: Vec<String> = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let db = h.home.join("profiles/default/state.db");
    for round in 0..20 {
        let (mut w, mut c) = start(&h).await;
        let kill_after = 2 + rnd(10);
        for i in 0..12u64 {
            if i == kill_after {
                break;
            }
            let id = format!("k{round}-{i}");
            let m = Inbound {
                event_id: id.clone(),
                scope: format!("chat:c{}", i % 4),
                actor: Some(Actor {
                    id: "ou".into(),
                    name: "ou".into(),
                }),
                text: format!("token {id} end"),
                chat_type: ChatType::Private as i32,
                chat_id: format!("c{}", i % 4),
                message_id: id.clone(),
                ..Default::default()
            };
            if c.deliver(m).await.is_ok_and(|a| a.get_ref().accepted) {
                acked.push(id);
            }
            if rnd(3) == 0 {
                tokio::time::sleep(Duration::from_millis(rnd(60))).await;
            }
        }
        w.kill9();
        let conn = fcx_worker::store::Store::open_read_only(&db).expect("db opens after kill -9");
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .expect("quick_check");
        assert_eq!(check, "ok", "round {round}");
    }
    // A last worker finishes what was accepted.
    let (_w, mut c) = start(&h).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = c
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if s.queued == 0 && s.active_runs.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "runs did not finish: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let conn = fcx_worker::store::Store::open_read_only(&db).expect("db");
    let mut st = conn
        .prepare(
            "SELECT i.event_id, i.state, COALESCE(r.state, '') FROM inbox i
             LEFT JOIN runs r ON r.run_id = i.run_id WHERE i.kind = 'message'",
        )
        .expect("query");
    let rows: HashMap<String, (String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut ran: HashMap<String, usize> = HashMap::new();
    for rec in h.fake_records() {
        let prompt = rec["prompt"].as_str().unwrap_or("").to_string();
        for id in &acked {
            if prompt.contains(&format!("token {id} end")) {
                *ran.entry(id.clone()).or_default() += 1;
            }
        }
    }
    let mut interrupted = 0;
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len());
    for id in &acked {
        let (inbox_state, run_state) = rows.get(id).unwrap_or_else(|| panic!("{id} lost"));
        assert_eq!(inbox_state, "done", "{id} not finished");
        let n = ran.get(id).copied().unwrap_or(0);
        assert!(n <= 1, "{id} ran {n} times");
        match run_state.as_str() {
            "completed" => assert_eq!(n, 1, "{id} completed without running"),
            "interrupted" => interrupted += 1,
            other => panic!("{id}: run state {other}"),
        }
    }
    eprintln!(
        "crash rounds: {} acknowledged, {} interrupted and reported, the rest ran once",
        acked.len(),
        interrupted
    );
}
