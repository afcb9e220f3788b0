//! The worker's brain over its real socket, with the scripted fake codex:
//! access decisions for real senders, workspaces and `/cd`, access modes,
//! `/resume` refused after a policy change, persisted access lists, command
//! cards (buttons, the `/config` form, card actions) and per-chat settings,
//! and kill -9 crash rounds under load.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use fcx_proto::v1::worker_client::WorkerClient;
use fcx_proto::v1::worker_event::Kind;
use fcx_proto::v1::{
    ActResult, Action, ActionKind, Actor, ChatType, CommandReply, EventsRequest, Field, Inbound,
    RunStarted, StatusRequest, WorkerEvent,
};
use fcx_tests::harness::{TestHome, WorkerProc, bin};
use tonic::transport::Channel;

type Client = WorkerClient<Channel>;

/// A profile with a platform app (so access is enforced, not local-only).
fn app_config(h: &TestHome, access: &str) -> String {
    app_config_with(h, "", access)
}

/// `app_config` with more keys in `[profiles.default.app]`.
fn app_config_with(h: &TestHome, app: &str, access: &str) -> String {
    format!(
        "{}\n[profiles.default.app]\napp_id = \"cli_test\"\napp_secret = \"env:FCX_TEST_NO_SUCH_SECRET\"\nbase_url = \"http://127.0.0.1:9\"\n{app}\n[profiles.default.access]\n{access}\n",
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
        // The workspace is codex's working directory (not on its argv).
        last["cwd"].as_str().unwrap_or("").ends_with("/ws/sub"),
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
async fn kill_9_under_load_loses_nothing_and_runs_again_at_most_once() {
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
        let reader = fcx_state::Reader::open(&db).expect("db opens after kill -9");
        let check = reader.quick_check().expect("quick_check");
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
    let reader = fcx_state::Reader::open(&db).expect("db");
    let runs = reader.runs(usize::MAX).expect("runs");
    let run_states: HashMap<String, String> = runs
        .iter()
        .map(|r| (r.run_id.clone(), r.state.clone()))
        .collect();
    // Each message's inbox state and the state of the run that took it.
    let rows: HashMap<String, (String, String)> = reader
        .journal()
        .expect("journal")
        .into_iter()
        .filter(|i| i.kind == "message")
        .map(|i| {
            let run_state = i
                .run_id
                .and_then(|r| run_states.get(&r).cloned())
                .unwrap_or_default();
            (i.event_id, (i.state, run_state))
        })
        .collect();
    let mut ran: HashMap<String, usize> = HashMap::new();
    for rec in h.fake_records() {
        // What reached Codex: the prompt, and what was steered into its turn.
        let mut prompt = rec["prompt"].as_str().unwrap_or("").to_string();
        for steer in rec["steers"].as_array().into_iter().flatten() {
            prompt.push_str(steer.as_str().unwrap_or(""));
        }
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
        // A run a kill interrupted runs once more (its retry, if killed too,
        // does not run a third time).
        let n = ran.get(id).copied().unwrap_or(0);
        assert!(n <= 2, "{id} ran {n} times");
        match run_state.as_str() {
            "completed" => assert!(n >= 1, "{id} completed without running"),
            "interrupted" => interrupted += 1,
            other => panic!(
                "{id}: run state {other}: {:?}",
                runs.iter()
                    .filter(|r| r.state == other)
                    .map(|r| (&r.run_id, &r.detail))
                    .collect::<Vec<_>>()
            ),
        }
    }
    eprintln!(
        "crash rounds: {} acknowledged, {} interrupted twice and reported, the rest completed",
        acked.len(),
        interrupted
    );
}

// ---- command cards and per-chat settings ----

const ADMIN: &str = "ou_admin";
/// What `fake_codex_config` puts in the key file: it must never show.
const API_KEY: &str = "sk-fake-test-secret-0001";

/// A profile with an owner, an admin, an allowed user and an enabled group.
fn cards_config(h: &TestHome, app: &str, max_access: &str) -> String {
    let default_access = if max_access == "read-only" {
        "read-only"
    } else {
        "workspace"
    };
    format!(
        "{}\n[profiles.default.permissions]\nmax_access = \"{max_access}\"\ndefault_access = \"{default_access}\"\n",
        app_config_with(
            h,
            app,
            &format!(
                "owner = \"{OWNER}\"\nadmins = [\"{ADMIN}\"]\nallowed_users = [\"{USER}\"]\nallowed_chats = [\"oc_grp\"]"
            )
        )
    )
}

/// A private-chat message from `actor` in `p_<chat>`.
fn pm(id: &str, actor: &str, chat: &str, text: &str) -> Inbound {
    inbound(&Msg {
        id,
        actor,
        chat: ChatType::Private,
        chat_id: chat,
        mentioned: false,
        text,
    })
}

/// A message in the group `oc_grp`.
fn gm(id: &str, actor: &str, mentioned: bool, text: &str) -> Inbound {
    inbound(&Msg {
        id,
        actor,
        chat: ChatType::Group,
        chat_id: "oc_grp",
        mentioned,
        text,
    })
}

async fn send(c: &mut Client, m: Inbound) {
    let id = m.event_id.clone();
    let ack = c.deliver(m).await.expect("deliver").into_inner();
    assert!(ack.accepted && !ack.duplicate, "{id}");
}

fn card(ev: &WorkerEvent) -> CommandReply {
    match &ev.kind {
        Some(Kind::CommandReply(c)) => c.clone(),
        other => panic!("expected a command reply, got {other:?}"),
    }
}

fn field_of<'a>(c: &'a CommandReply, name: &str) -> &'a str {
    c.fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.value.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {:?}", c.fields))
}

/// (action, value) of every button.
fn buttons(c: &CommandReply) -> Vec<(ActionKind, String)> {
    c.buttons
        .iter()
        .map(|b| {
            (
                ActionKind::try_from(b.action).unwrap_or(ActionKind::Unspecified),
                b.value.clone(),
            )
        })
        .collect()
}

fn command_buttons(c: &CommandReply) -> Vec<String> {
    buttons(c)
        .into_iter()
        .filter(|(k, _)| *k == ActionKind::Command)
        .map(|(_, v)| v)
        .collect()
}

fn choices(c: &CommandReply, key: &str) -> Option<(String, Vec<String>)> {
    let o = c
        .form
        .as_ref()?
        .options
        .iter()
        .find(|o| o.key().word() == key)?;
    Some((
        o.current.clone(),
        o.choices.iter().map(|c| c.value.clone()).collect(),
    ))
}

fn click(kind: ActionKind, scope: &str, actor: &str, message_id: &str) -> Action {
    use fcx_proto::v1::action::Kind as A;
    let kind = match kind {
        ActionKind::Config => A::Config(Default::default()),
        ActionKind::Command => A::Command(Default::default()),
        ActionKind::Resume => A::Resume(Default::default()),
        ActionKind::Stop => A::Stop(Default::default()),
        ActionKind::Approval => A::Approval(Default::default()),
        ActionKind::Thread => A::Thread(Default::default()),
        ActionKind::RunLate => A::RunLate(Default::default()),
        ActionKind::GroupCreated | ActionKind::Unspecified => A::GroupCreated(Default::default()),
    };
    Action {
        kind: Some(kind),
        scope: scope.into(),
        actor: Some(Actor {
            id: actor.into(),
            name: actor.into(),
        }),
        message_id: message_id.into(),
        ..Default::default()
    }
}

fn set_values(a: &mut Action, pairs: &[(&str, &str)]) {
    let values = pairs
        .iter()
        .map(|(k, v)| Field {
            name: k.to_string(),
            value: v.to_string(),
        })
        .collect();
    a.kind = Some(fcx_proto::v1::action::Kind::Config(
        fcx_proto::v1::ConfigAction { values },
    ));
}

fn set_command(a: &mut Action, line: impl Into<String>) {
    a.kind = Some(fcx_proto::v1::action::Kind::Command(
        fcx_proto::v1::CommandAction { line: line.into() },
    ));
}

fn set_stop(a: &mut Action, run_id: &str) {
    a.kind = Some(fcx_proto::v1::action::Kind::Stop(
        fcx_proto::v1::StopAction {
            run_id: run_id.into(),
        },
    ));
}

fn set_nonce(a: &mut Action, nonce: impl Into<String>) {
    a.kind = Some(fcx_proto::v1::action::Kind::Resume(
        fcx_proto::v1::ResumeAction {
            nonce: nonce.into(),
        },
    ));
}

async fn act(c: &mut Client, a: Action) -> ActResult {
    c.act(a).await.expect("act").into_inner()
}

impl Events {
    async fn card_for(&mut self, reply_to: &str) -> CommandReply {
        card(&self.next_for(reply_to).await)
    }

    async fn started_for(&mut self, reply_to: &str) -> RunStarted {
        loop {
            if let Some(Kind::RunStarted(r)) = self.next_for(reply_to).await.kind {
                return r;
            }
        }
    }
}

#[tokio::test]
async fn command_cards_offer_what_each_role_may_use() {
    let h = TestHome::new();
    h.write_config(&cards_config(&h, "", "full"));
    let (_w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;

    // /help: the same text for everyone, buttons by role.
    send(&mut c, pm("h_u", USER, "p_u", "/help")).await;
    let help_u = ev.card_for("h_u").await;
    assert_eq!(
        command_buttons(&help_u),
        ["/status", "/new", "/stop", "/resume"]
    );
    assert_eq!(help_u.actor.as_ref().map(|a| a.id.as_str()), Some(USER));
    assert_eq!(help_u.reply_mode().word(), "card");
    assert_eq!(help_u.fingerprint.len(), 64, "{help_u:?}");
    for key in [
        "access",
        "reply_mode",
        "tool_display",
        "mention",
        "idle_timeout",
    ] {
        assert!(
            help_u.body.contains(&format!("/config {key}")),
            "{key} missing from /help"
        );
    }
    let all = [
        "/status", "/new", "/stop", "/resume", "/config", "/ws list", "/ps", "/doctor",
    ];
    for (id, who) in [("h_o", OWNER), ("h_a", ADMIN)] {
        send(&mut c, pm(id, who, "p_o", "/help")).await;
        let help = ev.card_for(id).await;
        assert_eq!(command_buttons(&help), all, "{who}");
        assert_eq!(help.body, help_u.body);
    }

    // /status: every field, no secret, buttons by role and run state.
    send(&mut c, pm("s_o", OWNER, "p_o", "/status")).await;
    let st = ev.card_for("s_o").await;
    for (name, want) in [
        ("profile", "default"),
        ("session", "new session"),
        ("access", "workspace"),
        ("sandbox", "workspace-write, network off"),
        ("runner", "app-server"),
        ("identity", "feishu:cli_test"),
        ("queued", "0 here, 0 in the profile"),
        ("active run", "none"),
        ("reply mode", "card"),
        ("tool display", "full"),
        ("idle timeout", "30 min"),
    ] {
        assert_eq!(field_of(&st, name), want, "{name}");
        assert!(st.body.contains(&format!("**{name}**: {want}")), "{name}");
    }
    assert!(field_of(&st, "workspace").ends_with("/ws"));
    assert_eq!(
        buttons(&st),
        [
            (ActionKind::Command, "/new".to_string()),
            (ActionKind::Command, "/config".to_string())
        ]
    );
    send(&mut c, pm("s_u", USER, "p_u", "/status")).await;
    let st_u = ev.card_for("s_u").await;
    assert_eq!(command_buttons(&st_u), ["/new"]);
    assert_ne!(
        st_u.fingerprint, st.fingerprint,
        "the fingerprint is the scope's"
    );

    // While a run is active: its id, elapsed time and a Stop button.
    send(&mut c, pm("run1", OWNER, "p_o", "FAKE:stall please")).await;
    let started = ev.started_for("run1").await;
    assert_eq!(
        started.fingerprint, st.fingerprint,
        "runs and replies agree"
    );
    send(&mut c, pm("s_o2", OWNER, "p_o", "/status")).await;
    let st = ev.card_for("s_o2").await;
    let (kind, run_id) = buttons(&st).into_iter().next().expect("a button");
    assert_eq!(kind, ActionKind::Stop);
    assert!(
        field_of(&st, "active run").starts_with(&format!("{run_id}, running for ")),
        "{st:?}"
    );
    send(&mut c, pm("stop1", OWNER, "p_o", "/stop")).await;
    assert!(ev.card_for("stop1").await.ok);
    ev.done_for("run1").await;

    // /config: the form's access choices follow the role and the maximum;
    // mention only where it applies.
    send(&mut c, pm("c_o", OWNER, "p_o", "/config")).await;
    let cfg_o = ev.card_for("c_o").await;
    assert_eq!(
        choices(&cfg_o, "access"),
        Some((
            "workspace".into(),
            vec!["read-only".into(), "workspace".into(), "full".into()]
        ))
    );
    assert_eq!(choices(&cfg_o, "mention"), None, "private chat");
    assert_eq!(
        choices(&cfg_o, "idle_timeout").map(|(cur, ch)| (cur, ch.len())),
        Some(("default".into(), 7))
    );
    assert_eq!(
        choices(&cfg_o, "reply_mode").map(|c| c.0),
        Some("card".into())
    );
    assert_eq!(
        choices(&cfg_o, "tool_display").map(|c| c.0),
        Some("full".into())
    );
    send(&mut c, gm("c_a", ADMIN, true, "/config")).await;
    let cfg_a = ev.card_for("c_a").await;
    assert_eq!(
        choices(&cfg_a, "access").map(|c| c.1),
        Some(vec!["read-only".into(), "workspace".into()])
    );
    assert_eq!(
        choices(&cfg_a, "mention"),
        Some((
            "required".into(),
            vec!["required".into(), "not_required".into()]
        ))
    );
    for r in [&help_u, &st, &st_u, &cfg_o, &cfg_a] {
        assert!(
            !format!("{r:?}").contains(API_KEY),
            "a secret leaked: {r:?}"
        );
    }
    send(&mut c, pm("c_u", USER, "p_u", "/config")).await;
    let denied = ev.card_for("c_u").await;
    assert!(!denied.ok && denied.form.is_none(), "{denied:?}");

    // A profile whose maximum is read-only offers nothing else, even to
    // the owner; its [app] reply_mode is every chat's default.
    let h2 = TestHome::new();
    h2.write_config(&cards_config(&h2, "reply_mode = \"markdown\"", "read-only"));
    let (_w2, mut c2) = start(&h2).await;
    let mut ev2 = Events::new(&mut c2).await;
    send(&mut c2, pm("c2", OWNER, "p_o", "/config")).await;
    let cfg = ev2.card_for("c2").await;
    assert_eq!(
        choices(&cfg, "access"),
        Some(("read-only".into(), vec!["read-only".into()]))
    );
    assert_eq!(cfg.reply_mode().word(), "markdown");
    assert_eq!(
        choices(&cfg, "reply_mode").map(|c| c.0),
        Some("markdown".into())
    );
}

#[tokio::test]
async fn card_actions_apply_settings_run_commands_and_resume() {
    let h = TestHome::new();
    h.write_config(&cards_config(&h, "", "full"));
    let (mut w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    let scope = "chat:p_o";

    // A run first, so there is a session to resume later.
    send(&mut c, pm("m1", OWNER, "p_o", "first session")).await;
    let started = ev.started_for("m1").await;
    assert_eq!(
        (started.reply_mode().word(), started.tool_display().word()),
        ("card", "full")
    );
    ev.done_for("m1").await;
    send(&mut c, pm("cfg", OWNER, "p_o", "/config")).await;
    let fp = ev.card_for("cfg").await.fingerprint;

    // CONFIG: applied, persisted and answered under the card.
    let mut a = click(ActionKind::Config, scope, OWNER, "card1");
    a.fingerprint = fp.clone();
    set_values(
        &mut a,
        &[
            ("reply_mode", "markdown"),
            ("tool_display", "summary"),
            ("idle_timeout", "10"),
            ("access", "workspace"),
        ],
    );
    let r = act(&mut c, a).await;
    assert!(r.ok, "{r:?}");
    let reply = ev.card_for("card1").await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        reply.title,
        "Changed: reply mode → markdown, tool calls → summary, idle timeout → 10 min"
    );
    assert_eq!(reply.reply_mode().word(), "markdown");
    assert_eq!(
        reply.fingerprint, fp,
        "display settings keep the fingerprint"
    );
    assert_eq!(
        choices(&reply, "tool_display").map(|c| c.0),
        Some("summary".into())
    );
    assert_eq!(
        choices(&reply, "idle_timeout").map(|c| c.0),
        Some("10".into())
    );

    // Bad values: each named, nothing applied.
    let mut a = click(ActionKind::Config, scope, OWNER, "card2");
    a.fingerprint = fp.clone();
    set_values(
        &mut a,
        &[
            ("reply_mode", "text"),
            ("colour", "blue"),
            ("tool_display", "loud"),
        ],
    );
    let r = act(&mut c, a).await;
    assert!(
        !r.ok && r.message.contains("`colour`") && r.message.contains("`loud`"),
        "{r:?}"
    );
    let reply = ev.card_for("card2").await;
    assert!(!reply.ok && reply.body.contains("`colour`"), "{reply:?}");
    // Non-admins may not; an admin may not choose `full`.
    let mut fps = std::collections::HashMap::new();
    for (who, chat) in [(USER, "p_u"), (ADMIN, "p_a")] {
        let id = format!("fp_{chat}");
        send(&mut c, pm(&id, who, chat, "/status")).await;
        fps.insert(chat, ev.card_for(&id).await.fingerprint);
    }
    let mut a = click(ActionKind::Config, "chat:p_u", USER, "card3");
    a.fingerprint = fps["p_u"].clone();
    set_values(&mut a, &[("reply_mode", "text")]);
    let r = act(&mut c, a).await;
    assert!(!r.ok && r.message.contains("Only an admin"), "{r:?}");
    assert!(!ev.card_for("card3").await.ok);
    let mut a = click(ActionKind::Config, "chat:p_a", ADMIN, "card4");
    a.fingerprint = fps["p_a"].clone();
    set_values(&mut a, &[("access", "full")]);
    let r = act(&mut c, a).await;
    assert!(!r.ok && r.message.contains("only the owner"), "{r:?}");
    ev.card_for("card4").await;

    // Runs carry the scope's settings.
    send(&mut c, pm("m2", OWNER, "p_o", "second message")).await;
    let started = ev.started_for("m2").await;
    assert_eq!(
        (started.reply_mode().word(), started.tool_display().word()),
        ("markdown", "summary")
    );
    ev.done_for("m2").await;

    // COMMAND: runs like typing it, answered under the card.
    let mut a = click(ActionKind::Command, scope, OWNER, "card5");
    set_command(&mut a, "/status");
    a.fingerprint = fp.clone();
    assert!(act(&mut c, a).await.ok);
    let st = ev.card_for("card5").await;
    assert_eq!(st.command(), fcx_proto::v1::CommandName::Status);
    assert_eq!(field_of(&st, "reply mode"), "markdown");
    assert_eq!(field_of(&st, "tool display"), "summary");
    assert_eq!(field_of(&st, "idle timeout"), "10 min");
    // Role checks apply: a user's /ps button is refused.
    let mut a = click(ActionKind::Command, "chat:p_u", USER, "card6");
    a.fingerprint = fps["p_u"].clone();
    set_command(&mut a, "/ps");
    let r = act(&mut c, a).await;
    assert!(!r.ok && r.message.contains("Only an admin"), "{r:?}");
    ev.card_for("card6").await;
    // Plain text is never queued as a prompt; strangers get nothing.
    let mut a = click(ActionKind::Command, "chat:p_fresh", OWNER, "card7");
    set_command(&mut a, "write a poem");
    let r = act(&mut c, a).await;
    assert!(!r.ok && r.message.contains("Only a command"), "{r:?}");
    let mut a = click(ActionKind::Command, "chat:p_fresh", STRANGER, "card8");
    set_command(&mut a, "/status");
    let r = act(&mut c, a).await;
    assert!(!r.ok, "{r:?}");
    send(&mut c, pm("after", OWNER, "p_fresh", "/status")).await;
    let first = ev.first_in_scope("chat:p_fresh").await;
    assert_eq!(first.reply_to, "after", "{first:?}");
    assert_eq!(
        field_of(&card(&first), "queued"),
        "0 here, 0 in the profile"
    );

    // RESUME: a button per compatible session; the nonce continues it.
    send(&mut c, pm("new1", OWNER, "p_o", "/new")).await;
    ev.card_for("new1").await;
    send(&mut c, pm("r1", OWNER, "p_o", "/resume")).await;
    let list = ev.card_for("r1").await;
    let resumes: Vec<_> = buttons(&list)
        .into_iter()
        .filter(|(k, _)| *k == ActionKind::Resume)
        .collect();
    assert_eq!(resumes.len(), 1, "{list:?}");
    assert!(
        list.buttons[0].label.starts_with("first session"),
        "{list:?}"
    );
    assert!(
        list.body.contains(&format!("`{}`", resumes[0].1)),
        "the text has the code too"
    );
    let mut a = click(ActionKind::Resume, scope, OWNER, "card9");
    set_nonce(&mut a, resumes[0].1.clone());
    a.fingerprint = list.fingerprint.clone();
    let r = act(&mut c, a).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(ev.card_for("card9").await.title, "Session resumed");
    let mut a = click(ActionKind::Resume, scope, OWNER, "card10");
    set_nonce(&mut a, "nope");
    assert!(!act(&mut c, a).await.ok);
    ev.card_for("card10").await;

    // An access change moves the fingerprint: older cards are refused.
    send(&mut c, pm("acc", OWNER, "p_o", "/config access read-only")).await;
    let changed = ev.card_for("acc").await;
    assert!(changed.ok && changed.title.contains("access → read-only"));
    assert_ne!(changed.fingerprint, fp);
    let mut a = click(ActionKind::Command, scope, OWNER, "card11");
    set_command(&mut a, "/new");
    a.fingerprint = fp.clone();
    let r = act(&mut c, a).await;
    assert!(
        !r.ok && r.message.contains("This card is out of date"),
        "{r:?}"
    );

    // Everything persists across a restart (kill -9).
    w.kill9();
    drop(ev);
    let (_w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    send(&mut c, pm("s2", OWNER, "p_o", "/status")).await;
    let st = ev.card_for("s2").await;
    assert_eq!(st.fingerprint, changed.fingerprint);
    for (name, want) in [
        ("reply mode", "markdown"),
        ("tool display", "summary"),
        ("idle timeout", "10 min"),
        ("access", "read-only"),
    ] {
        assert_eq!(field_of(&st, name), want, "{name}");
    }
    // The stale card is still refused; a fresh one works.
    let mut a = click(ActionKind::Command, scope, OWNER, "card12");
    set_command(&mut a, "/status");
    a.fingerprint = fp.clone();
    assert!(!act(&mut c, a).await.ok);
    // Refused with the reason, under the stale card.
    let refusal = ev.first_in_scope(scope).await;
    assert_eq!(refusal.reply_to, "card12", "{refusal:?}");
    assert!(
        format!("{refusal:?}").contains("out of date"),
        "{refusal:?}"
    );
    let mut a = click(ActionKind::Command, scope, OWNER, "card13");
    set_command(&mut a, "/status");
    a.fingerprint = st.fingerprint.clone();
    assert!(act(&mut c, a).await.ok);
    let first = ev.first_in_scope(scope).await;
    assert_eq!(first.reply_to, "card13", "{first:?}");
    send(&mut c, pm("m3", OWNER, "p_o", "after the restart")).await;
    let started = ev.started_for("m3").await;
    assert_eq!(
        (started.reply_mode().word(), started.tool_display().word()),
        ("markdown", "summary")
    );
    assert_eq!(started.sandbox(), fcx_proto::v1::Sandbox::ReadOnly);
    ev.done_for("m3").await;
}

#[tokio::test]
async fn a_groups_mention_setting_gates_its_messages() {
    let h = TestHome::new();
    h.write_config(&cards_config(&h, "", "workspace"));
    let (mut w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    let done = fcx_proto::v1::DoneReason::Completed as i32;

    // The profile default: a member must mention the bot.
    send(&mut c, gm("g1", STRANGER, false, "unmentioned")).await;
    send(
        &mut c,
        gm("g2", ADMIN, true, "/config mention not_required"),
    )
    .await;
    let first = ev.first_in_scope("chat:oc_grp").await;
    assert_eq!(
        first.reply_to, "g2",
        "an unmentioned message ran: {first:?}"
    );
    let reply = card(&first);
    assert!(
        reply.ok && reply.title == "Changed: mention → not required",
        "{reply:?}"
    );
    assert_eq!(
        choices(&reply, "mention").map(|c| c.0),
        Some("not_required".into())
    );
    send(&mut c, gm("g3", STRANGER, false, "no mention needed now")).await;
    assert_eq!(ev.done_for("g3").await.reason, done);
    // Private chats never need a mention.
    send(&mut c, pm("p1", USER, "p_u", "private, unmentioned")).await;
    assert_eq!(ev.done_for("p1").await.reason, done);

    // Persisted across a restart.
    w.kill9();
    drop(ev);
    let (_w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    send(&mut c, gm("g4", STRANGER, false, "still no mention needed")).await;
    let grp_fp = ev.started_for("g4").await.fingerprint;
    assert_eq!(ev.done_for("g4").await.reason, done);

    // Back to required from the form; a card click needs no mention.
    let mut a = click(ActionKind::Config, "chat:oc_grp", ADMIN, "card1");
    a.fingerprint = grp_fp;
    set_values(&mut a, &[("mention", "required")]);
    let r = act(&mut c, a).await;
    assert!(r.ok, "{r:?}");
    assert!(ev.card_for("card1").await.ok);
    send(&mut c, gm("g5", STRANGER, false, "unmentioned again")).await;
    send(&mut c, gm("g6", STRANGER, true, "/status")).await;
    let first = ev.first_in_scope("chat:oc_grp").await;
    assert_eq!(first.reply_to, "g6", "{first:?}");
    // A member who is no admin cannot change it.
    let mut a = click(ActionKind::Config, "chat:oc_grp", STRANGER, "card2");
    set_values(&mut a, &[("mention", "not_required")]);
    assert!(!act(&mut c, a).await.ok);
    // `mention` is refused outside groups.
    send(&mut c, pm("p2", OWNER, "p_o", "/config mention required")).await;
    let r = ev.card_for("p2").await;
    assert!(!r.ok && r.body.contains("group chats only"), "{r:?}");
}

#[tokio::test]
async fn an_action_without_a_policy_fingerprint_is_refused() {
    let h = TestHome::new();
    h.write_config(&cards_config(&h, "", "full"));
    let (_w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    send(&mut c, pm("run1", OWNER, "p_o", "FAKE:stall please")).await;
    let started = ev.started_for("run1").await;
    send(&mut c, pm("st0", OWNER, "p_o", "/status")).await;
    let (_, run_id) = buttons(&ev.card_for("st0").await)
        .into_iter()
        .next()
        .expect("a stop button");
    // A stop with no fingerprint used to skip every check.
    let mut a = click(ActionKind::Stop, "chat:p_o", OWNER, "card1");
    set_stop(&mut a, &run_id);
    let r = c.act(a).await;
    assert!(r.is_err(), "{r:?}");
    let mut a = click(ActionKind::Command, "chat:p_o", OWNER, "card2");
    set_command(&mut a, "/new");
    let r = act(&mut c, a).await;
    assert!(!r.ok && r.message.contains("out of date"), "{r:?}");
    // The run is still going: neither stopped it.
    send(&mut c, pm("st", OWNER, "p_o", "/status")).await;
    let st = ev.card_for("st").await;
    assert!(field_of(&st, "active run").starts_with(&run_id), "{st:?}");
    // Linux with user namespaces (the CI machine): fcx's files are hidden.
    assert!(
        field_of(&st, "isolation").starts_with("FCX_HOME hidden"),
        "{st:?}"
    );
    // api-key auth: the chat has a Codex home of its own.
    assert!(
        field_of(&st, "codex home").starts_with("this chat's own"),
        "{st:?}"
    );
    let mut a = click(ActionKind::Stop, "chat:p_o", OWNER, "card3");
    set_stop(&mut a, &run_id);
    a.fingerprint = started.fingerprint.clone();
    assert!(act(&mut c, a).await.ok);
    ev.done_for("run1").await;
}

#[tokio::test]
async fn a_swapped_workspace_symlink_is_refused_at_the_next_run() {
    let h = TestHome::new();
    let sub = h.workspace.join("sub");
    std::fs::create_dir_all(&sub).expect("mkdir");
    std::fs::create_dir_all(h.root.join("elsewhere")).expect("mkdir");
    h.write_config(&app_config(&h, &format!("owner = \"{OWNER}\"")));
    let (_w, mut c) = start(&h).await;
    let mut ev = Events::new(&mut c).await;
    let o = |id: &'static str, chat_id: &'static str, text: &'static str| Msg {
        id,
        actor: OWNER,
        chat: ChatType::Private,
        chat_id,
        mentioned: false,
        text,
    };

    deliver(&mut c, o("c1", "p_a", "/cd sub")).await;
    assert!(reply(&ev.next_for("c1").await).2);
    deliver(&mut c, o("m1", "p_a", "runs in sub")).await;
    ev.done_for("m1").await;
    deliver(&mut c, o("m2", "p_b", "runs in the default workspace")).await;
    ev.done_for("m2").await;
    let runs = h.fake_records().len();

    // Someone with write access to the parent swaps the chosen workspace
    // for a symlink to somewhere else: the next run is refused, in the chat.
    std::fs::remove_dir(&sub).expect("rm sub");
    std::os::unix::fs::symlink(h.root.join("elsewhere"), &sub).expect("symlink");
    deliver(&mut c, o("m3", "p_a", "where am I now?")).await;
    let done = ev.done_for("m3").await;
    assert!(
        done.detail.contains("changed since it was chosen") && done.detail.contains("elsewhere"),
        "{done:?}"
    );

    // The same for the profile default, pinned at start.
    std::fs::rename(&h.workspace, h.root.join("ws-old")).expect("move ws");
    std::os::unix::fs::symlink(h.root.join("elsewhere"), &h.workspace).expect("symlink");
    deliver(&mut c, o("m4", "p_b", "and here?")).await;
    let done = ev.done_for("m4").await;
    assert!(
        done.detail.contains("changed since it was chosen"),
        "{done:?}"
    );
    assert_eq!(
        h.fake_records().len(),
        runs,
        "codex ran in a swapped workspace"
    );
}
