use std::os::unix::fs::PermissionsExt;

use fcx_config::Secret;
use tokio::sync::oneshot;

use std::path::{Path, PathBuf};

use super::child::build_args;
use super::stderr::{TAIL_BYTES, TAIL_LINES};
use super::*;
use crate::runner::{ChildEnv, FileChange, Sandbox, TokenUsage, ToolKind, ToolStatus};

const NEW_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-3f3c-7380-b9c2-cfb0d5de89e4"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"hi from mock (turn 1)"}}
{"type":"turn.completed","usage":{"input_tokens":11,"cached_input_tokens":3,"cache_write_input_tokens":0,"output_tokens":7,"reasoning_output_tokens":2}}
"#;

const COMMAND_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-4068-70f2-9551-650ddf186346"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'echo hello-from-codex && ls'","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'echo hello-from-codex && ls'","aggregated_output":"pyenv: cannot rehash: ~/.pyenv/shims isn't writable\nhello-from-codex\na.txt\nesc.txt\nhello.txt\nred.png\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Command done. Output: Chunk ID: cde089\nWall time: 0.0330 seconds\nProcess exited with code 0\nOriginal token count: 27\nOutput:\npyenv: cannot rehash: ~/.pyenv/shims isn't writable\nhello-from-codex\na.txt\nesc.txt\nhello.txt\nred.png\n"}}
{"type":"turn.completed","usage":{"input_tokens":22,"cached_input_tokens":6,"cache_write_input_tokens":0,"output_tokens":14,"reasoning_output_tokens":4}}
"#;

const RESUME_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-4068-70f2-9551-650ddf186346"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"hi from mock (turn 4)"}}
{"type":"turn.completed","usage":{"input_tokens":33,"cached_input_tokens":9,"cache_write_input_tokens":0,"output_tokens":21,"reasoning_output_tokens":6}}
"#;

const PATCH_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-4381-7432-ba4f-01cd855ee23c"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_0","type":"file_change","changes":[{"path":"/w/hello.txt","kind":"add"}],"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"/w/hello.txt","kind":"add"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Command done. Output: Exit code: 0\nWall time: 0.1 seconds\nOutput:\nSuccess. Updated the following files:\nA hello.txt\n"}}
{"type":"turn.completed","usage":{"input_tokens":22,"cached_input_tokens":6,"cache_write_input_tokens":0,"output_tokens":14,"reasoning_output_tokens":4}}
"#;

const FAILED_TURN: &str = r#"{"type":"thread.started","thread_id":"01a21596-44be-7813-96fc-18cff26cfeb1"}
{"type":"turn.started"}
{"type":"error","message":"stream disconnected before completion: mock says the model failed"}
{"type":"turn.failed","error":{"message":"stream disconnected before completion: mock says the model failed"}}
"#;

const NO_ROLLOUT_STDERR: &str = "Error: thread/resume: thread/resume failed: no rollout found for thread id 01a215b8-0000-7000-8000-000000000000 (code -32600)\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>\n   2: <unknown>\n   3: <unknown>\n   4: <unknown>\n   5: <unknown>\n   6: <unknown>\n   7: <unknown>\n   8: <unknown>\n   9: <unknown>\n  10: <unknown>\n  11: <unknown>\n  12: <unknown>\n  13: <unknown>\n  14: <unknown>\n  15: <unknown>\n  16: <unknown>\n  17: <unknown>\n  18: <unknown>\n  19: <unknown>\n  20: <unknown>\n  21: <unknown>\n";

fn translate(cwd: &str, jsonl: &str) -> (Translator, Vec<RunnerEvent>) {
    let mut tr = Translator::new(PathBuf::from(cwd));
    let mut out = Vec::new();
    for line in jsonl.lines() {
        out.extend(tr.line(line.as_bytes()));
    }
    (tr, out)
}

fn usage(i: u64, c: u64, o: u64, r: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: i,
        cached_input_tokens: c,
        output_tokens: o,
        reasoning_output_tokens: r,
    }
}

fn message(id: &str, text: &str) -> [RunnerEvent; 2] {
    [
        RunnerEvent::TextDelta {
            item_id: id.into(),
            delta: text.into(),
        },
        RunnerEvent::AgentMessage {
            item_id: id.into(),
            text: text.into(),
        },
    ]
}

fn new_turn_events() -> Vec<RunnerEvent> {
    let mut v = vec![
        RunnerEvent::ThreadStarted {
            thread_id: "01a21596-3f3c-7380-b9c2-cfb0d5de89e4".into(),
        },
        RunnerEvent::TurnStarted,
    ];
    v.extend(message("item_0", "hi from mock (turn 1)"));
    v.push(RunnerEvent::Usage(usage(11, 3, 7, 2)));
    v
}

#[test]
fn translates_new_turn() {
    let (tr, events) = translate("/w", NEW_TURN);
    assert_eq!(events, new_turn_events());
    assert!(tr.turn_completed);
    assert_eq!(tr.final_text.as_deref(), Some("hi from mock (turn 1)"));
    assert_eq!(
        tr.thread_id.as_deref(),
        Some("01a21596-3f3c-7380-b9c2-cfb0d5de89e4")
    );
}

#[test]
fn translates_command_turn() {
    let (tr, events) = translate("/w", COMMAND_TURN);
    let cmd = "/bin/bash -lc 'echo hello-from-codex && ls'";
    let output = "pyenv: cannot rehash: ~/.pyenv/shims isn't writable\nhello-from-codex\na.txt\nesc.txt\nhello.txt\nred.png\n";
    let answer = "Command done. Output: Chunk ID: cde089\nWall time: 0.0330 seconds\nProcess exited with code 0\nOriginal token count: 27\nOutput:\npyenv: cannot rehash: ~/.pyenv/shims isn't writable\nhello-from-codex\na.txt\nesc.txt\nhello.txt\nred.png\n";
    let mut want = vec![
        RunnerEvent::ThreadStarted {
            thread_id: "01a21596-4068-70f2-9551-650ddf186346".into(),
        },
        RunnerEvent::TurnStarted,
        RunnerEvent::ToolStarted {
            item_id: "item_0".into(),
            kind: ToolKind::Command,
            title: cmd.into(),
            changes: vec![],
        },
        RunnerEvent::ToolCompleted {
            item_id: "item_0".into(),
            kind: ToolKind::Command,
            title: cmd.into(),
            status: ToolStatus::Ok,
            exit_code: Some(0),
            output: output.into(),
            changes: vec![],
            error: None,
        },
    ];
    want.extend(message("item_1", answer));
    want.push(RunnerEvent::Usage(usage(22, 6, 14, 4)));
    assert_eq!(events, want);
    assert_eq!(tr.final_text.as_deref(), Some(answer));
}

#[test]
fn translates_resume_with_cumulative_usage() {
    let (tr, events) = translate("/w", RESUME_TURN);
    let mut want = vec![
        RunnerEvent::ThreadStarted {
            thread_id: "01a21596-4068-70f2-9551-650ddf186346".into(),
        },
        RunnerEvent::TurnStarted,
    ];
    want.extend(message("item_0", "hi from mock (turn 4)"));
    want.push(RunnerEvent::Usage(usage(33, 9, 21, 6)));
    assert_eq!(events, want);
    // Passed on as given (thread-cumulative); the orchestrator subtracts.
    assert_eq!(tr.usage, Some(usage(33, 9, 21, 6)));
}

#[test]
fn translates_patch_turn() {
    let (_, events) = translate("/w", PATCH_TURN);
    let changes = vec![FileChange {
        path: "/w/hello.txt".into(),
        kind: "add".into(),
    }];
    let answer = "Command done. Output: Exit code: 0\nWall time: 0.1 seconds\nOutput:\nSuccess. Updated the following files:\nA hello.txt\n";
    let mut want = vec![
        RunnerEvent::ThreadStarted {
            thread_id: "01a21596-4381-7432-ba4f-01cd855ee23c".into(),
        },
        RunnerEvent::TurnStarted,
        RunnerEvent::ToolStarted {
            item_id: "item_0".into(),
            kind: ToolKind::FileChange,
            title: "add hello.txt".into(),
            changes: changes.clone(),
        },
        RunnerEvent::ToolCompleted {
            item_id: "item_0".into(),
            kind: ToolKind::FileChange,
            title: "add hello.txt".into(),
            status: ToolStatus::Ok,
            exit_code: None,
            output: String::new(),
            changes,
            error: None,
        },
    ];
    want.extend(message("item_1", answer));
    want.push(RunnerEvent::Usage(usage(22, 6, 14, 4)));
    assert_eq!(events, want);
}

#[test]
fn translates_failed_turn() {
    let (tr, events) = translate("/w", FAILED_TURN);
    let msg = "stream disconnected before completion: mock says the model failed";
    assert_eq!(
        events,
        vec![
            RunnerEvent::ThreadStarted {
                thread_id: "01a21596-44be-7813-96fc-18cff26cfeb1".into(),
            },
            RunnerEvent::TurnStarted,
            RunnerEvent::Warning {
                message: msg.into()
            },
        ]
    );
    assert_eq!(tr.turn_failed.as_deref(), Some(msg));
    assert!(!tr.turn_completed);
}

#[test]
fn reconnects_are_retries_not_warnings() {
    // Recorded from codex 0.169 exec with its base URL on a closed port.
    let lines = r#"{"type":"error","message":"Reconnecting... 2/5 (stream disconnected before completion: Connection refused (os error 111))"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Falling back from WebSockets to HTTPS transport. stream disconnected before completion: Connection refused (os error 111)"}}
{"type":"error","message":"Reconnecting... waiting for network (Connection failed: error sending request)"}"#;
    let (_, events) = translate("/w", lines);
    assert_eq!(
        events,
        vec![
            RunnerEvent::Retrying {
                message: "Reconnecting... 2/5 (stream disconnected before completion: Connection refused (os error 111))".into()
            },
            RunnerEvent::Warning {
                message: "Falling back from WebSockets to HTTPS transport. stream disconnected before completion: Connection refused (os error 111)".into()
            },
            RunnerEvent::Retrying {
                message: "Reconnecting... waiting for network (Connection failed: error sending request)".into()
            },
        ]
    );
}

#[test]
fn translates_other_items() {
    let lines = r#"{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Thinking** about the mock"}}
{"type":"item.completed","item":{"id":"item_1","type":"error","message":"Model metadata for `mock-model` not found."}}
{"type":"item.completed","item":{"id":"item_2","type":"command_execution","command":"false","aggregated_output":"","exit_code":3,"status":"failed"}}
{"type":"item.started","item":{"id":"item_3","type":"mcp_tool_call","server":"docs","tool":"lookup","arguments":{},"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_3","type":"mcp_tool_call","server":"docs","tool":"lookup","arguments":{},"result":null,"error":{"message":"server gone"},"status":"failed"}}
{"type":"item.completed","item":{"id":"item_4","type":"web_search","query":"rust tokio select"}}
{"type":"item.started","item":{"id":"item_5","type":"todo_list","items":[{"text":"a","completed":false},{"text":"b","completed":false}]}}
{"type":"item.updated","item":{"id":"item_5","type":"todo_list","items":[{"text":"a","completed":true},{"text":"b","completed":false}]}}
{"type":"item.completed","item":{"id":"item_5","type":"todo_list","items":[{"text":"a","completed":true},{"text":"b","completed":true}]}}
{"type":"item.completed","item":{"id":"item_6","type":"file_change","changes":[{"path":"/w/a","kind":"update"},{"path":"/w/b","kind":"add"},{"path":"/elsewhere/c","kind":"delete"},{"path":"/w/d","kind":"add"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_7","type":"mcp_tool_call","server":"s","tool":"t","result":{"content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},"status":"completed"}}
{"type":"item.completed","item":{"id":"item_8","type":"command_execution","command":"rm -rf /","aggregated_output":"","exit_code":null,"status":"declined"}}"#;
    let (_, events) = translate("/w", lines);
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            RunnerEvent::ToolStarted { item_id, title, .. } => {
                format!("start {item_id} {title}")
            }
            RunnerEvent::ToolCompleted {
                item_id,
                title,
                status,
                error,
                output,
                ..
            } => format!("done {item_id} {title} {status:?} {error:?} {output:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            r#"ReasoningDelta { item_id: "item_0", delta: "**Thinking** about the mock" }"#,
            r#"Warning { message: "Model metadata for `mock-model` not found." }"#,
            "start item_2 false",
            r#"done item_2 false Failed None """#,
            "start item_3 docs.lookup",
            r#"done item_3 docs.lookup Failed Some("server gone") """#,
            "start item_4 rust tokio select",
            r#"done item_4 rust tokio select Ok None """#,
            "start item_5 todo list: 0/2 done",
            r#"done item_5 todo list: 2/2 done Ok None "[x] a\n[x] b""#,
            "start item_6 update a, add b, delete /elsewhere/c and 1 more",
            r#"done item_6 update a, add b, delete /elsewhere/c and 1 more Ok None """#,
            "start item_7 s.t",
            r#"done item_7 s.t Ok None "one\ntwo""#,
            "start item_8 rm -rf /",
            r#"done item_8 rm -rf / Declined None """#,
        ]
    );
}

#[test]
fn skips_garbage() {
    let lines = "not json at all\n\n   \n[1,2]\n\"str\"\n{\"type\":\"mystery.event\"}\n{\"type\":\"item.completed\",\"item\":{\"id\":\"x\",\"type\":\"hologram\"}}\n{\"type\":\"item.completed\",\"item\":\"not an object\"}\n{\"type\":\"thread.started\",\"thread_id\":42}\n{\"no_type\":true}\n\u{fffd}\u{0}";
    let (tr, events) = translate("/w", lines);
    assert!(events.is_empty(), "{events:?}");
    assert!(tr.thread_id.is_none());

    // A malformed usage still completes the turn.
    let (tr, events) = translate(
        "/w",
        "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":-1,\"output_tokens\":5}}",
    );
    assert!(tr.turn_completed);
    assert_eq!(events, vec![RunnerEvent::Usage(usage(0, 0, 5, 0))]);
}

#[test]
fn stderr_tail_and_meaningful_line() {
    let mut st = StderrState::default();
    for line in NO_ROLLOUT_STDERR.lines() {
        st.push(line);
    }
    assert!(st.no_rollout);
    assert_eq!(
        st.meaningful(),
        Some(
            "thread/resume: thread/resume failed: no rollout found for thread id 01a215b8-0000-7000-8000-000000000000 (code -32600)"
        )
    );
    assert!(!st.tail_string().contains("<unknown>"));

    let mut st = StderrState::default();
    st.push("Reading prompt from stdin...");
    st.push("\u{1b}[2m2026-11-26T01:58:06Z\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m codex_core: it broke");
    assert_eq!(
        st.meaningful(),
        Some("2026-11-26T01:58:06Z ERROR codex_core: it broke")
    );
    for i in 0..100 {
        st.push(&format!("line {i} {}", "x".repeat(500)));
    }
    assert!(st.tail.len() <= TAIL_LINES);
    assert!(st.tail_string().len() <= TAIL_BYTES + TAIL_LINES);
    assert!(st.tail_string().ends_with(&"x".repeat(500)));
}

#[tokio::test]
async fn bounded_lines_split_and_drop_overlong() {
    let data: &[u8] = b"short\r\nthis line is far too long\nok\nno-newline";
    let mut lines = BoundedLines::new(data, 10);
    let mut got = Vec::new();
    while let Some(l) = lines.next().await.expect("read") {
        got.push(match l {
            Line::Text(t) => String::from_utf8(t).expect("utf8"),
            Line::TooLong(n) => format!("<{n}>"),
        });
    }
    assert_eq!(got, vec!["short", "<25>", "ok", "no-newline"]);
    assert!(lines.done());
}

#[test]
fn argv_for_new_thread() {
    let spec = spec_for(PathBuf::from("codex"), Path::new("/w"));
    let args: Vec<String> = build_args(&spec, None)
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // The workspace is the child's working directory, not on argv.
    assert_eq!(
        args,
        [
            "exec",
            "--json",
            "--sandbox",
            "read-only",
            "--skip-git-repo-check",
            "-"
        ]
    );
}

#[test]
fn images_in_the_workspace_go_on_argv_without_the_workspace_path() {
    let ws = Path::new("/srv/secret-project");
    let mut spec = spec_for(PathBuf::from("codex"), ws);
    spec.images = vec![
        ws.join(".fcx/inbox/image-0a1b2c3d.png"),
        PathBuf::from("/elsewhere/pic.png"),
    ];
    let args: Vec<String> = build_args(&spec, None)
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        args.contains(&"--image=.fcx/inbox/image-0a1b2c3d.png".to_string()),
        "{args:?}"
    );
    // Outside the workspace a relative path would not resolve: kept whole.
    assert!(
        args.contains(&"--image=/elsewhere/pic.png".to_string()),
        "{args:?}"
    );
    assert!(
        args.iter().all(|a| !a.contains("secret-project")),
        "the workspace path is on argv: {args:?}"
    );
}

// --- end to end against fake binaries ---------------------------------

/// A fake codex: dumps argv, stdin and env next to itself, then prints
/// `stdout`/`stderr` files from its directory and exits with `code`.
const FAKE: &str = r#"#!/bin/sh
d=$(dirname "$0")
for a in "$@"; do printf '%s\n' "$a"; done > "$d/argv"
pwd > "$d/cwd"
cat > "$d/stdin"
env > "$d/env"
if [ -f "$d/stdout" ]; then cat "$d/stdout"; fi
if [ -f "$d/stderr" ]; then cat "$d/stderr" >&2; fi
if [ -f "$d/code" ]; then exit "$(cat "$d/code")"; fi
exit 0
"#;

fn write_exe(path: &Path, body: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, body).expect("write fake");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn fake(dir: &Path, stdout: &str, stderr: &str, code: i32) -> PathBuf {
    let bin = dir.join("codex");
    write_exe(&bin, FAKE);
    std::fs::write(dir.join("stdout"), stdout).expect("write stdout");
    std::fs::write(dir.join("stderr"), stderr).expect("write stderr");
    std::fs::write(dir.join("code"), code.to_string()).expect("write code");
    bin
}

fn spec_for(binary: PathBuf, cwd: &Path) -> RunSpec {
    RunSpec {
        run_id: "run-test".into(),
        prompt: "say hi".into(),
        cwd: cwd.to_path_buf(),
        sandbox: Sandbox::ReadOnly,
        network: false,
        model: None,
        resume_thread: None,
        images: vec![],
        overrides: vec![],
        binary,
        env: ChildEnv::default(),
        stop_grace: Duration::from_millis(200),
        approval: Default::default(),
        warm_key: None,
    }
}

struct Harness {
    cancel: CancellationToken,
    control: mpsc::Sender<RunControl>,
}

/// Runs one turn, collecting every event; `on_event` may cancel or send
/// controls.
async fn run_with(
    runner: &ExecRunner,
    spec: RunSpec,
    mut on_event: impl FnMut(&RunnerEvent, &Harness),
) -> (RunResult, Vec<RunnerEvent>) {
    let (tx, mut rx) = mpsc::channel(4);
    let (ctl_tx, ctl_rx) = mpsc::channel(4);
    let h = Harness {
        cancel: CancellationToken::new(),
        control: ctl_tx,
    };
    let fut = runner.run(
        spec,
        RunIo {
            events: tx,
            control: ctl_rx,
            cancel: h.cancel.clone(),
        },
    );
    let collect = async {
        let mut v = Vec::new();
        while let Some(e) = rx.recv().await {
            on_event(&e, &h);
            v.push(e);
        }
        v
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(fut, collect)
    })
    .await
    .expect("run did not finish within 30 s")
}

async fn run(spec: RunSpec) -> (RunResult, Vec<RunnerEvent>) {
    run_with(&ExecRunner::new(), spec, |_, _| {}).await
}

fn without_spawned(events: Vec<RunnerEvent>) -> Vec<RunnerEvent> {
    assert!(
        matches!(events.first(), Some(RunnerEvent::Spawned { pid }) if *pid > 0),
        "first event must be Spawned: {events:?}"
    );
    events.into_iter().skip(1).collect()
}

#[tokio::test]
async fn new_turn_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = fake(dir.path(), NEW_TURN, "Reading prompt from stdin...\n", 0);
    let (res, events) = run(spec_for(bin, dir.path())).await;
    assert_eq!(without_spawned(events), new_turn_events());
    assert_eq!(res.outcome, Outcome::Completed);
    assert_eq!(res.final_text.as_deref(), Some("hi from mock (turn 1)"));
    assert_eq!(
        res.thread_id.as_deref(),
        Some("01a21596-3f3c-7380-b9c2-cfb0d5de89e4")
    );
    assert_eq!(res.usage, Some(usage(11, 3, 7, 2)));
    assert_eq!(res.exit_code, Some(0));
    assert_eq!(res.stderr_tail, "Reading prompt from stdin...");
}

#[tokio::test]
async fn argv_stdin_and_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The npm layout: <vendor>/<triple>/bin/codex next to codex-path/.
    let triple = dir.path().join("vendor/x86_64-unknown-linux-musl");
    let bin = triple.join("bin/codex");
    write_exe(&bin, FAKE);
    std::fs::create_dir_all(triple.join("codex-path")).expect("mkdir codex-path");
    std::fs::write(triple.join("bin/stdout"), RESUME_TURN).expect("write");
    let work = dir.path().join("work dir");
    std::fs::create_dir_all(&work).expect("mkdir");
    let home = dir.path().join("state/codex-home");

    let prompt = "line one\nline two with ünïcode and \"quotes\" and $HOME\n- not a flag\n";
    let mut spec = spec_for(bin.clone(), &work);
    spec.prompt = prompt.into();
    spec.sandbox = Sandbox::WorkspaceWrite;
    spec.network = true;
    spec.model = Some("gpt-5.5".into());
    spec.resume_thread = Some("01a21596-4068-70f2-9551-650ddf186346".into());
    spec.images = vec![dir.path().join("a b.png"), dir.path().join("c.png")];
    spec.overrides = vec![
        ("model_provider".into(), "\"mock\"".into()),
        ("model_providers.mock.stream_max_retries".into(), "0".into()),
    ];
    spec.env = ChildEnv {
        codex_home: Some(home.clone()),
        api_key: Some(Secret::new("sk-test-secret")),
        remove: vec!["HOME".into()],
        set: vec![("MOCK_API_KEY".into(), "sk-mock".into())],
        hide: None,
        namespace: false,
        shared_home: None,
    };

    let (res, _) = run(spec).await;
    assert_eq!(res.outcome, Outcome::Completed);

    let bin_dir = triple.join("bin");
    let argv = std::fs::read_to_string(bin_dir.join("argv")).expect("argv");
    let argv: Vec<&str> = argv.lines().collect();
    // The overrides are in a profile file in CODEX_HOME, named on argv.
    let profile = argv.get(3).copied().unwrap_or_default();
    let want = [
        "exec".to_string(),
        "--json".into(),
        "-p".into(),
        profile.into(),
        "-m".into(),
        "gpt-5.5".into(),
        "--sandbox".into(),
        "workspace-write".into(),
        "--skip-git-repo-check".into(),
        "resume".into(),
        "01a21596-4068-70f2-9551-650ddf186346".into(),
        format!("--image={}", dir.path().join("a b.png").display()),
        format!("--image={}", dir.path().join("c.png").display()),
        "-".into(),
    ];
    let settings =
        std::fs::read_to_string(home.join(format!("{profile}.config.toml"))).expect("profile file");
    let settings: toml::Table = toml::from_str(&settings).expect("toml");
    assert_eq!(settings["model_provider"].as_str(), Some("mock"));
    assert_eq!(
        settings["model_providers"]["mock"]["stream_max_retries"].as_integer(),
        Some(0)
    );
    assert_eq!(
        settings["sandbox_workspace_write"]["network_access"].as_bool(),
        Some(true)
    );
    // With an API key, Codex's commands do not inherit it.
    assert_eq!(
        settings["shell_environment_policy"]["exclude"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>()),
        Some(vec!["CODEX_API_KEY"])
    );
    assert_eq!(
        std::fs::read_to_string(bin_dir.join("cwd"))
            .expect("cwd")
            .trim_end(),
        work.display().to_string()
    );
    assert!(
        !argv
            .iter()
            .any(|a| a.contains("work dir") || a.contains("mock")),
        "{argv:?}"
    );
    assert_eq!(argv, want);
    assert_eq!(
        std::fs::read_to_string(bin_dir.join("stdin")).expect("stdin"),
        prompt
    );

    let env = std::fs::read_to_string(bin_dir.join("env")).expect("env");
    let env: Vec<&str> = env.lines().collect();
    assert!(env.contains(&format!("CODEX_HOME={}", home.display()).as_str()));
    assert!(env.contains(&"CODEX_API_KEY=sk-test-secret"));
    assert!(env.contains(&"MOCK_API_KEY=sk-mock"));
    assert!(
        !env.iter().any(|l| l.starts_with("HOME=")),
        "HOME was not removed"
    );
    let path = env
        .iter()
        .find_map(|l| l.strip_prefix("PATH="))
        .expect("PATH inherited");
    assert!(
        path.starts_with(&format!("{}:", triple.join("codex-path").display())),
        "{path}"
    );
    let mode = std::fs::metadata(&home)
        .expect("codex home")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[tokio::test]
async fn huge_prompt_does_not_deadlock() {
    // The fake floods stdout before it reads stdin: writing the prompt
    // inline before reading stdout would deadlock both pipes.
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("codex");
    write_exe(
        &bin,
        &format!(
            "#!/bin/sh\nyes '{{\"type\":\"noise\"}}' | head -n 50000\ncat > {d}/stdin\ncat {d}/stdout\n",
            d = dir.path().display()
        ),
    );
    std::fs::write(dir.path().join("stdout"), NEW_TURN).expect("write");
    let mut spec = spec_for(bin, dir.path());
    spec.prompt = "p".repeat(3 << 20);
    let (res, _) = run(spec).await;
    assert_eq!(res.outcome, Outcome::Completed);
    let got = std::fs::metadata(dir.path().join("stdin"))
        .expect("stdin")
        .len();
    assert_eq!(got, 3 << 20);
}

#[tokio::test]
async fn garbage_and_overlong_lines_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = format!(
        "{{\"type\":\"error\",\"message\":\"{}\"}}\n",
        "x".repeat(5000)
    );
    let stdout = format!(
        "garbage before\n{{\"type\":\"mystery\"}}\n{long}{{\"type\":\"item.completed\",\"item\":{{\"id\":\"z\",\"type\":\"hologram\"}}}}\n{NEW_TURN}trailing garbage"
    );
    let bin = fake(dir.path(), &stdout, "", 0);
    let runner = ExecRunner {
        max_line: 1024,
        ..ExecRunner::new()
    };
    let (res, events) = run_with(&runner, spec_for(bin, dir.path()), |_, _| {}).await;
    assert_eq!(without_spawned(events), new_turn_events());
    assert_eq!(res.outcome, Outcome::Completed);
}

#[tokio::test]
async fn failed_turn_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = fake(dir.path(), FAILED_TURN, "", 1);
    let (res, _) = run(spec_for(bin, dir.path())).await;
    assert_eq!(
        res.outcome,
        Outcome::Failed {
            message: "stream disconnected before completion: mock says the model failed".into()
        }
    );
    assert_eq!(res.exit_code, Some(1));
}

#[tokio::test]
async fn nonzero_exit_names_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = "Reading prompt from stdin...\nsome log line\nError: boom happened\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>\n";
    let bin = fake(dir.path(), "", stderr, 3);
    let (res, _) = run(spec_for(bin, dir.path())).await;
    assert_eq!(
        res.outcome,
        Outcome::Failed {
            message: "codex exited with code 3: boom happened".into()
        }
    );
    assert_eq!(res.exit_code, Some(3));
    assert!(res.stderr_tail.contains("Error: boom happened"));
    assert!(!res.stderr_tail.contains("<unknown>"));
}

#[tokio::test]
async fn unknown_thread_is_thread_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = fake(dir.path(), "", NO_ROLLOUT_STDERR, 1);
    let mut spec = spec_for(bin, dir.path());
    spec.resume_thread = Some("01a215b8-0000-7000-8000-000000000000".into());
    let (res, _) = run(spec).await;
    match res.outcome {
        Outcome::ThreadNotFound { message } => {
            assert!(
                message.contains("01a215b8-0000-7000-8000-000000000000"),
                "{message}"
            )
        }
        other => panic!("expected ThreadNotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn clean_exit_without_turn_end_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout =
        "{\"type\":\"thread.started\",\"thread_id\":\"t1\"}\n{\"type\":\"turn.started\"}\n";
    let bin = fake(dir.path(), stdout, "", 0);
    let (res, _) = run(spec_for(bin, dir.path())).await;
    assert_eq!(
        res.outcome,
        Outcome::Failed {
            message: "codex ended without finishing the turn".into()
        }
    );
    assert_eq!(res.thread_id.as_deref(), Some("t1"));
}

#[tokio::test]
async fn killed_by_signal_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("codex");
    write_exe(&bin, "#!/bin/sh\ncat > /dev/null\nkill -9 $$\n");
    let (res, _) = run(spec_for(bin, dir.path())).await;
    assert_eq!(
        res.outcome,
        Outcome::Failed {
            message: "codex was killed by signal 9 (SIGKILL)".into()
        }
    );
    assert_eq!(res.exit_code, None);
}

#[tokio::test]
async fn missing_binary_is_a_clear_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("nowhere/codex");
    let (res, events) = run(spec_for(bin.clone(), dir.path())).await;
    assert!(events.is_empty(), "{events:?}");
    let Outcome::Failed { message } = res.outcome else {
        panic!("expected Failed, got {:?}", res.outcome);
    };
    assert_eq!(
        message,
        format!(
            "The codex binary `{}` was not found; set profiles.<name>.codex.binary in config.toml or install it ({}).",
            bin.display(),
            fcx_config::codex::INSTALL_HINT
        )
    );
}

#[tokio::test]
async fn cancelled_before_start_spawns_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = fake(dir.path(), NEW_TURN, "", 0);
    let (tx, _rx) = mpsc::channel(4);
    let (_ctl_tx, ctl_rx) = mpsc::channel(1);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let res = ExecRunner::new()
        .run(
            spec_for(bin, dir.path()),
            RunIo {
                events: tx,
                control: ctl_rx,
                cancel,
            },
        )
        .await;
    assert_eq!(res.outcome, Outcome::Interrupted);
    assert!(!dir.path().join("argv").exists());
}

#[tokio::test]
async fn steer_and_approve_are_not_supported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("codex");
    let d = dir.path().display();
    write_exe(
        &bin,
        &format!(
            "#!/bin/sh\ncat > /dev/null\necho '{{\"type\":\"thread.started\",\"thread_id\":\"t-ctl\"}}'\nwhile [ ! -f {d}/go ]; do sleep 0.01; done\ncat {d}/stdout\n"
        ),
    );
    std::fs::write(dir.path().join("stdout"), NEW_TURN).expect("write");
    let go = dir.path().join("go");
    let replies = Arc::new(Mutex::new(Vec::new()));
    let r2 = Arc::clone(&replies);
    let (res, _) = run_with(
        &ExecRunner::new(),
        spec_for(bin, dir.path()),
        move |e, h| {
            if matches!(e, RunnerEvent::ThreadStarted { thread_id } if thread_id == "t-ctl") {
                let (steer_tx, steer_rx) = oneshot::channel();
                let (approve_tx, approve_rx) = oneshot::channel();
                h.control
                    .try_send(RunControl::Steer {
                        text: "also this".into(),
                        images: Vec::new(),
                        reply: steer_tx,
                    })
                    .expect("send steer");
                h.control
                    .try_send(RunControl::Approve {
                        request_id: "0".into(),
                        decision: super::super::ApprovalDecision::Accept,
                        reply: approve_tx,
                    })
                    .expect("send approve");
                let go = go.clone();
                let r2 = Arc::clone(&r2);
                // Owned by the test runtime; it ends when both replies are in.
                tokio::spawn(async move {
                    let s = steer_rx.await.expect("steer reply");
                    let a = approve_rx.await.expect("approve reply");
                    r2.lock().expect("lock").extend([s, a]);
                    std::fs::write(go, "").expect("write go");
                });
            }
        },
    )
    .await;
    assert_eq!(res.outcome, Outcome::Completed);
    assert_eq!(
        *replies.lock().expect("lock"),
        vec![
            Err(ControlError::NotSupported {
                runner: "exec",
                what: "steering"
            }),
            Err(ControlError::NotSupported {
                runner: "exec",
                what: "approvals"
            }),
        ]
    );
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

async fn gone_soon(pid: u32) -> bool {
    for _ in 0..200 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn stop_escalates_past_ignored_sigint_and_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("codex");
    let d = dir.path().display();
    write_exe(
        &bin,
        &format!(
            "#!/bin/sh\ntrap '' INT TERM\necho $$ > {d}/pid\necho '{{\"type\":\"thread.started\",\"thread_id\":\"t-stop\"}}'\nwhile :; do sleep 0.05; done\n"
        ),
    );
    let started = std::time::Instant::now();
    let (res, events) = run_with(&ExecRunner::new(), spec_for(bin, dir.path()), |e, h| {
        if matches!(e, RunnerEvent::ThreadStarted { .. }) {
            h.cancel.cancel();
        }
    })
    .await;
    assert_eq!(res.outcome, Outcome::Interrupted);
    assert_eq!(res.thread_id.as_deref(), Some("t-stop"));
    let Some(RunnerEvent::Spawned { pid }) = events.first() else {
        panic!("no Spawned event: {events:?}");
    };
    let recorded: u32 = std::fs::read_to_string(dir.path().join("pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(recorded, *pid);
    assert!(!alive(*pid), "the fake survived the stop");
    // Two grace periods of 200 ms plus the kill; anything near this
    // bound means a hang, not a slow machine.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn stop_kills_setsid_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("codex");
    let d = dir.path().display();
    // Like codex under danger-full-access: the command runs in its own
    // session, out of reach of any signal to our process group.
    write_exe(
        &bin,
        &format!(
            "#!/bin/sh\ncat > /dev/null\nsetsid sh -c 'echo $$ > {d}/detached; exec sleep 300' &\nwhile [ ! -s {d}/detached ]; do sleep 0.01; done\necho '{{\"type\":\"thread.started\",\"thread_id\":\"t-setsid\"}}'\nwait\n"
        ),
    );
    let detached = dir.path().join("detached");
    let seen_alive = Arc::new(Mutex::new(None));
    let s2 = Arc::clone(&seen_alive);
    let (res, _) = run_with(
        &ExecRunner::new(),
        spec_for(bin, dir.path()),
        move |e, h| {
            if matches!(e, RunnerEvent::ThreadStarted { .. }) {
                let pid: u32 = std::fs::read_to_string(&detached)
                    .expect("detached pid")
                    .trim()
                    .parse()
                    .expect("pid");
                *s2.lock().expect("lock") = Some((pid, alive(pid)));
                h.cancel.cancel();
            }
        },
    )
    .await;
    assert_eq!(res.outcome, Outcome::Interrupted);
    let (pid, was_alive) = seen_alive
        .lock()
        .expect("lock")
        .take()
        .expect("saw the detached pid");
    assert!(
        was_alive,
        "the setsid sleep was not running before the stop"
    );
    assert!(
        gone_soon(pid).await,
        "the setsid sleep {pid} survived the stop"
    );
}

#[tokio::test]
async fn dropped_event_receiver_stops_the_child() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("codex");
    let d = dir.path().display();
    write_exe(
        &bin,
        &format!("#!/bin/sh\necho $$ > {d}/pid\nwhile :; do sleep 0.05; done\n"),
    );
    let (tx, rx) = mpsc::channel(4);
    drop(rx);
    let (_ctl_tx, ctl_rx) = mpsc::channel(1);
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        ExecRunner::new().run(
            spec_for(bin, dir.path()),
            RunIo {
                events: tx,
                control: ctl_rx,
                cancel: CancellationToken::new(),
            },
        ),
    )
    .await
    .expect("finished");
    assert_eq!(res.outcome, Outcome::Interrupted);
    if let Ok(p) = std::fs::read_to_string(dir.path().join("pid")) {
        let pid: u32 = p.trim().parse().expect("pid");
        assert!(!alive(pid));
    }
}

#[test]
fn the_api_key_is_excluded_from_codex_commands() {
    let mut spec = spec_for(PathBuf::from("codex"), Path::new("/w"));
    let args = |spec: &RunSpec| -> Vec<String> {
        crate::runner::overrides::overrides(spec)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    };
    assert!(
        !args(&spec)
            .iter()
            .any(|a| a.contains("shell_environment_policy")),
        "no key, nothing to hide"
    );
    spec.env.api_key = Some(fcx_config::Secret::new("sk-x"));
    let a = args(&spec);
    assert!(
        a.contains(&"shell_environment_policy.exclude=[\"CODEX_API_KEY\"]".to_string()),
        "{a:?}"
    );
    // The operator's own list is kept, with the key added, and given once.
    spec.overrides = vec![(
        "shell_environment_policy.exclude".into(),
        "[\"AWS_*\", ]".into(),
    )];
    let a = args(&spec);
    let ex: Vec<_> = a
        .iter()
        .filter(|x| x.starts_with("shell_environment_policy.exclude="))
        .collect();
    assert_eq!(
        ex,
        ["shell_environment_policy.exclude=[\"AWS_*\", \"CODEX_API_KEY\"]"],
        "{a:?}"
    );
}
