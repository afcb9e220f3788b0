//! The turn conversation against a scripted server over in-memory pipes
//! (message shapes from codex.md §5), and the runner's own helpers. The
//! real binary is exercised end to end in tests/tests/e2e/app_server.rs.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::rpc::{Reader, Writer};
use super::*;
use crate::runner::{ApprovalDecision, ChildEnv, ControlError, RunControl, Sandbox};

fn spec(resume: Option<&str>) -> RunSpec {
    RunSpec {
        run_id: "r1".into(),
        prompt: "say hi".into(),
        cwd: PathBuf::from("/w"),
        sandbox: Sandbox::WorkspaceWrite,
        network: false,
        model: Some("gpt-5.5".into()),
        resume_thread: resume.map(str::to_string),
        images: Vec::new(),
        overrides: vec![("model_provider".into(), "\"mock\"".into())],
        binary: PathBuf::from("codex"),
        env: ChildEnv::default(),
        stop_grace: Duration::from_millis(500),
        approval: Default::default(),
        warm_key: None,
    }
}

/// The server's end of the pipes.
struct Server {
    lines: tokio::io::Lines<BufReader<DuplexStream>>,
    out: DuplexStream,
}

impl Server {
    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .expect("the client wrote in time")
            .expect("read")
            .expect("a line");
        serde_json::from_str(&line).expect("json")
    }

    async fn send(&mut self, v: Value) {
        self.out
            .write_all(format!("{v}\n").as_bytes())
            .await
            .expect("write");
    }

    /// Expects a request for `method`; answers it with `result`.
    async fn answer(&mut self, method: &str, result: Value) -> Value {
        let req = self.recv().await;
        assert_eq!(req["method"], method, "{req}");
        self.send(json!({"id": req["id"], "result": result})).await;
        req
    }

    /// Plays the handshake and thread/start; returns the turn/start request.
    async fn up_to_turn(&mut self) -> Value {
        self.answer("initialize", json!({"userAgent": "fcx/0.169.0"}))
            .await;
        assert_eq!(self.recv().await["method"], "initialized");
        self.send(json!({"method": "configWarning", "params": {"summary": "no bwrap"}}))
            .await;
        self.answer("thread/start", json!({"thread": {"id": "th"}}))
            .await;
        self.answer(
            "turn/start",
            json!({"turn": {"id": "tu", "status": "inProgress"}}),
        )
        .await
    }
}

struct Client {
    session: Session<DuplexStream, DuplexStream>,
    events: mpsc::Receiver<RunnerEvent>,
    control: mpsc::Sender<RunControl>,
    cancel: CancellationToken,
}

fn pair(grace: Duration) -> (Client, Server) {
    pair_with(grace, Duration::from_secs(5))
}

fn pair_with(grace: Duration, request_timeout: Duration) -> (Client, Server) {
    let (client_out, server_in) = tokio::io::duplex(1 << 16);
    let (server_out, client_in) = tokio::io::duplex(1 << 16);
    let (ev_tx, ev_rx) = mpsc::channel(256);
    let (ctl_tx, ctl_rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let session = Session::new(
        Reader::new(client_in, 1 << 20),
        Writer::new(client_out),
        Mapper::new(PathBuf::from("/w")),
        ev_tx,
        ctl_rx,
        cancel.clone(),
        request_timeout,
        grace,
        "r1".into(),
    );
    (
        Client {
            session,
            events: ev_rx,
            control: ctl_tx,
            cancel,
        },
        Server {
            lines: BufReader::new(server_in).lines(),
            out: server_out,
        },
    )
}

fn drain(rx: &mut mpsc::Receiver<RunnerEvent>) -> Vec<RunnerEvent> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e);
    }
    v
}

#[tokio::test]
async fn handshake_thread_and_turn_requests_carry_the_run_settings() {
    let (mut c, mut s) = pair(Duration::from_millis(500));
    let server = tokio::spawn(async move {
        let init = s.answer("initialize", json!({})).await;
        assert_eq!(init["params"]["clientInfo"]["name"], "fcx");
        assert_eq!(s.recv().await["method"], "initialized");
        let start = s
            .answer("thread/start", json!({"thread": {"id": "th"}}))
            .await;
        assert_eq!(start["params"]["cwd"], "/w");
        assert_eq!(start["params"]["sandbox"], "workspace-write");
        assert_eq!(start["params"]["approvalPolicy"], "never");
        assert_eq!(start["params"]["model"], "gpt-5.5");
        // The config overrides travel here, not on argv.
        assert_eq!(
            start["params"]["config"],
            json!({"model_provider": "mock", "sandbox_workspace_write.network_access": false})
        );
        let turn = s.answer("turn/start", json!({"turn": {"id": "tu"}})).await;
        assert_eq!(turn["params"]["threadId"], "th");
        assert_eq!(turn["params"]["input"][0]["type"], "text");
        assert_eq!(turn["params"]["input"][0]["text"], "say hi");
        s.send(json!({"method": "item/agentMessage/delta", "params": {"turnId": "tu", "itemId": "m", "delta": "hi"}}))
            .await;
        s.send(json!({"method": "item/completed", "params": {"turnId": "tu", "item": {"type": "agentMessage", "id": "m", "text": "hi"}}}))
            .await;
        s.send(json!({"method": "turn/completed", "params": {"turn": {"id": "tu", "status": "completed"}}}))
            .await;
        s
    });
    let end = c.session.drive(&spec(None)).await;
    assert_eq!(end, End::TurnEnded);
    let _s = server.await.expect("server");
    let evs = drain(&mut c.events);
    assert_eq!(
        evs[0],
        RunnerEvent::ThreadStarted {
            thread_id: "th".into()
        }
    );
    assert!(evs.contains(&RunnerEvent::TextDelta {
        item_id: "m".into(),
        delta: "hi".into()
    }));
    assert_eq!(c.session.map.final_text.as_deref(), Some("hi"));
}

#[tokio::test]
async fn resume_sends_thread_resume_and_a_gone_thread_is_told_apart() {
    let (mut c, mut s) = pair(Duration::from_millis(500));
    let server = tokio::spawn(async move {
        s.answer("initialize", json!({})).await;
        s.recv().await;
        let req = s.recv().await;
        assert_eq!(req["method"], "thread/resume");
        assert_eq!(req["params"]["threadId"], "01a2-gone");
        assert_eq!(req["params"]["excludeTurns"], true);
        s.send(json!({"error": {"code": -32600, "message": "no rollout found for thread id 01a2-gone"}, "id": req["id"]}))
            .await;
        s
    });
    let end = c.session.drive(&spec(Some("01a2-gone"))).await;
    let _s = server.await.expect("server");
    assert_eq!(
        end,
        End::ThreadGone("no rollout found for thread id 01a2-gone".into())
    );
    let out = classify(
        &end,
        &c.session.map,
        None,
        &StderrState::default(),
        Some("01a2-gone"),
    );
    assert!(
        matches!(&out, Outcome::ThreadNotFound { message } if message.contains("01a2-gone")),
        "{out:?}"
    );
}

#[tokio::test]
async fn an_approval_request_is_declined_and_said_in_the_events() {
    let (mut c, mut s) = pair(Duration::from_millis(500));
    let server = tokio::spawn(async move {
        s.up_to_turn().await;
        s.send(
            json!({"method": "item/commandExecution/requestApproval", "id": 0, "params": {
            "kind": "command", "threadId": "th", "turnId": "tu", "itemId": "call_16",
            "command": "/bin/bash -lc 'touch approved.txt'", "cwd": "/w"}}),
        )
        .await;
        let answer = s.recv().await;
        s.send(json!({"method": "item/tool/requestUserInput", "id": 1, "params": {}}))
            .await;
        let unsupported = s.recv().await;
        s.send(json!({"method": "turn/completed", "params": {"turn": {"id": "tu", "status": "completed"}}}))
            .await;
        (answer, unsupported)
    });
    let end = c.session.drive(&spec(None)).await;
    assert_eq!(end, End::TurnEnded);
    let (answer, unsupported) = server.await.expect("server");
    assert_eq!(answer, json!({"id": 0, "result": {"decision": "decline"}}));
    assert_eq!(unsupported["id"], 1);
    assert!(unsupported["error"]["message"].is_string(), "{unsupported}");
    let warned = drain(&mut c.events).into_iter().any(|e| {
        matches!(e, RunnerEvent::Warning { message }
            if message.contains("touch approved.txt") && message.contains("declined"))
    });
    assert!(warned);
}

#[tokio::test]
async fn with_approval_on_a_request_waits_for_the_decision_and_carries_it_back() {
    let (mut c, mut s) = pair(Duration::from_millis(500));
    let server = tokio::spawn(async move {
        let start = {
            s.answer("initialize", json!({})).await;
            assert_eq!(s.recv().await["method"], "initialized");
            let start = s
                .answer("thread/start", json!({"thread": {"id": "th"}}))
                .await;
            s.answer(
                "turn/start",
                json!({"turn": {"id": "tu", "status": "inProgress"}}),
            )
            .await;
            start
        };
        s.send(
            json!({"method": "item/commandExecution/requestApproval", "id": 7, "params": {
            "kind": "command", "threadId": "th", "turnId": "tu", "itemId": "call_16",
            "command": "/bin/bash -lc 'touch a.txt'", "cwd": "/w", "reason": "needs write"}}),
        )
        .await;
        s.send(
            json!({"method": "item/fileChange/requestApproval", "id": 8, "params": {
            "threadId": "th", "turnId": "tu", "itemId": "call_patch"}}),
        )
        .await;
        let first = s.recv().await;
        let second = s.recv().await;
        s.send(json!({"method": "turn/completed", "params": {"turn": {"id": "tu", "status": "completed"}}}))
            .await;
        (start, first, second)
    });
    let mut sp = spec(None);
    sp.approval = fcx_config::ApprovalPolicy::OnRequest;
    let control = c.control.clone();
    let mut events = c.events;
    let decider = tokio::spawn(async move {
        let mut asked = Vec::new();
        while asked.len() < 2 {
            if let Some(RunnerEvent::ApprovalRequested {
                approval_id,
                kind,
                command,
                reason,
                ..
            }) = events.recv().await
            {
                asked.push((approval_id, kind, command, reason));
            }
        }
        for (id, decision) in [
            ("8", ApprovalDecision::AcceptForSession),
            ("7", ApprovalDecision::Decline),
            ("7", ApprovalDecision::Accept),
        ] {
            let again = id == "7" && decision == ApprovalDecision::Accept;
            let (reply, answer) = oneshot::channel();
            control
                .send(RunControl::Approve {
                    request_id: id.into(),
                    decision,
                    reply,
                })
                .await
                .expect("control");
            let got = answer.await.expect("answered");
            // A request is decided once.
            assert_eq!(got.is_ok(), !again);
        }
        asked
    });
    let end = c.session.drive(&sp).await;
    assert_eq!(end, End::TurnEnded);
    let (start, first, second) = server.await.expect("server");
    assert_eq!(start["params"]["approvalPolicy"], "on-request");
    assert_eq!(
        first,
        json!({"id": 8, "result": {"decision": "acceptForSession"}})
    );
    assert_eq!(second, json!({"id": 7, "result": {"decision": "decline"}}));
    let asked = decider.await.expect("decider");
    assert_eq!(
        asked[0],
        (
            "7".to_string(),
            crate::runner::ToolKind::Command,
            "/bin/bash -lc 'touch a.txt'".to_string(),
            "needs write".to_string()
        )
    );
    assert_eq!(asked[1].1, crate::runner::ToolKind::FileChange);
}

#[tokio::test]
async fn cancel_sends_turn_interrupt_and_waits_for_the_turn_to_end() {
    let (mut c, mut s) = pair(Duration::from_secs(5));
    let cancel = c.cancel.clone();
    let server = tokio::spawn(async move {
        s.up_to_turn().await;
        s.send(json!({"method": "item/started", "params": {"turnId": "tu", "item": {
            "type": "commandExecution", "id": "call_1", "command": "sleep 30", "status": "inProgress"}}}))
            .await;
        cancel.cancel();
        let req = s.recv().await;
        assert_eq!(req["method"], "turn/interrupt");
        assert_eq!(req["params"], json!({"threadId": "th", "turnId": "tu"}));
        s.send(json!({"id": req["id"], "result": {}})).await;
        // As 0.169.0 does: no item/completed for the running command.
        s.send(json!({"method": "turn/completed", "params": {"turn": {"id": "tu", "status": "interrupted"}}}))
            .await;
        s
    });
    let end = c.session.drive(&spec(None)).await;
    let _s = server.await.expect("server");
    assert_eq!(end, End::Cancelled);
    assert_eq!(c.session.map.turn_end, Some(mapping::TurnEnd::Interrupted));
}

#[tokio::test]
async fn an_interrupt_left_unanswered_ends_after_the_grace() {
    let (mut c, mut s) = pair(Duration::from_millis(100));
    let cancel = c.cancel.clone();
    let server = tokio::spawn(async move {
        s.up_to_turn().await;
        cancel.cancel();
        assert_eq!(s.recv().await["method"], "turn/interrupt");
        // Hangs: never answers, never completes the turn.
        s
    });
    let end = c.session.drive(&spec(None)).await;
    assert_eq!(end, End::Cancelled);
    drop(server.await.expect("server"));
}

#[tokio::test]
async fn a_server_that_goes_away_mid_turn_is_child_gone() {
    let (mut c, mut s) = pair(Duration::from_millis(500));
    let server = tokio::spawn(async move {
        s.up_to_turn().await;
        s.send(json!({"method": "error", "params": {"error": {"message": "boom"}, "willRetry": false}}))
            .await;
        // Dropping the server closes its stdout.
    });
    let end = c.session.drive(&spec(None)).await;
    server.await.expect("server");
    assert_eq!(end, End::ChildGone);
    let out = classify(&end, &c.session.map, None, &StderrState::default(), None);
    match out {
        Outcome::Failed { message } => {
            assert!(message.contains("codex app-server stopped"), "{message}");
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn steer_goes_into_the_running_turn() {
    let (mut c, mut s) = pair(Duration::from_millis(500));
    let control = c.control.clone();
    let server = tokio::spawn(async move {
        s.up_to_turn().await;
        let (tx, rx) = oneshot::channel();
        control
            .send(RunControl::Steer {
                text: "also this".into(),
                images: Vec::new(),
                reply: tx,
            })
            .await
            .expect("control");
        let req = s.recv().await;
        assert_eq!(req["method"], "turn/steer");
        assert_eq!(req["params"]["expectedTurnId"], "tu");
        assert_eq!(req["params"]["input"][0]["text"], "also this");
        s.send(json!({"id": req["id"], "result": {"turnId": "tu"}}))
            .await;
        let steered = rx.await.expect("reply");
        let (tx, rx) = oneshot::channel();
        control
            .send(RunControl::Approve {
                request_id: "0".into(),
                decision: crate::runner::ApprovalDecision::Accept,
                reply: tx,
            })
            .await
            .expect("control");
        let approve = rx.await.expect("reply");
        s.send(json!({"method": "turn/completed", "params": {"turn": {"id": "tu", "status": "completed"}}}))
            .await;
        (steered, approve)
    });
    let end = c.session.drive(&spec(None)).await;
    assert_eq!(end, End::TurnEnded);
    let (steered, approve) = server.await.expect("server");
    assert_eq!(steered, Ok(()));
    assert!(matches!(approve, Err(ControlError::NotSupported { .. })));
}

#[tokio::test]
async fn a_request_left_unanswered_fails_with_the_method_named() {
    let (mut c, mut s) = pair_with(Duration::from_millis(500), Duration::from_millis(100));
    let server = tokio::spawn(async move {
        assert_eq!(s.recv().await["method"], "initialize");
        s
    });
    let end = c.session.drive(&spec(None)).await;
    drop(server.await.expect("server"));
    assert!(
        matches!(&end, End::Failed(m) if m.contains("initialize")),
        "{end:?}"
    );
}

#[test]
fn argv_is_only_the_subcommand_and_overrides_go_to_thread_start() {
    let a: Vec<String> = build_args(&spec(None))
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    assert_eq!(a, ["app-server"]);
    let start = protocol::thread_start(&spec(None));
    assert_eq!(start["config"]["model_provider"], "mock");
    assert_eq!(
        start["config"]["sandbox_workspace_write.network_access"],
        false
    );
    let resume = protocol::thread_resume(&spec(None), "th");
    assert_eq!(resume["config"], start["config"]);
}

#[test]
fn an_api_key_is_hidden_from_commands_as_under_exec() {
    let mut s = spec(None);
    s.env.api_key = Some(fcx_config::Secret::new("sk-x"));
    let start = protocol::thread_start(&s);
    assert_eq!(
        start["config"]["shell_environment_policy.exclude"],
        json!(["CODEX_API_KEY"])
    );
    assert!(!start.to_string().contains("sk-x"), "{start}");
    let a: Vec<String> = build_args(&s)
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    assert!(!a.iter().any(|x| x.contains("sk-x")), "{a:?}");
}

#[test]
fn crash_sentences_say_how_the_child_ended() {
    use std::os::unix::process::ExitStatusExt;
    let killed = crash_sentence(Some(ExitStatus::from_raw(9)), None);
    assert_eq!(
        killed,
        "codex app-server stopped before the turn ended: it was killed by signal 9 (SIGKILL)"
    );
    let exited = crash_sentence(Some(ExitStatus::from_raw(1 << 8)), Some("Error: bad"));
    assert_eq!(
        exited,
        "codex app-server stopped before the turn ended: it exited with code 1: Error: bad"
    );
}
