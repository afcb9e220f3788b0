//! `fake-codex`: a deterministic, scriptable stand-in for `codex exec --json`
//! and `codex app-server` (see `fake_codex/app_server.rs` for the latter: the
//! same scenarios, spoken as JSON-RPC).
//!
//! It parses argv like codex 0.169.0 (including the greedy `-i/--image` and
//! `resume` taking no `-s`/`-C`), reads the prompt from stdin the same way,
//! then runs a scenario chosen by a `FAKE:<name>` marker in the prompt: a file
//! `$FAKE_CODEX_SCENARIOS/<name>.jsonl` or a built-in. Signals behave like the
//! real `exec`: SIGINT prints nothing more, kills the children in its process
//! group and exits 1; SIGTERM is not handled, so the process dies by signal.
//!
//! Scenario lines (one JSON object each, run in order):
//! `{"emit": any}` `{"raw": "text"}` `{"stderr": "text"}` `{"sleep_ms": N}`
//! `{"exit": CODE}` `{"hang": true}` `{"spawn_child": "cmd"}`
//! `{"spawn_orphan": "cmd"}` `{"ignore_sigint": true}` `{"ignore_sigterm": true}`
//! `{"thread_started": true}` `{"turn_started": true}` `{"turn_completed": true}`
//! `{"sh": "cmd"}` (runs `sh -c cmd` in the working directory and waits:
//! a scenario's deterministic way to leave files behind)
//! `{"agent_message": "text"}` (with `FAKE_CODEX_EMIT_TIMES=FILE`, each one
//! appends "<unix ns>\t<item id>" to FILE). Strings may use `{{thread_id}}`, `{{turn}}`,
//! `{{cwd}}` and `{{outbox}}` (the chat's outbox folder the prompt names).

#[path = "fake_codex/app_server.rs"]
mod app_server;
#[path = "fake_codex/permissions.rs"]
mod permissions;

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::unistd::{Pid, getpgrp, setsid};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal as tokio_signal};

const VERSION: &str = "codex-cli 0.169.0-fake";
const SANDBOX_MODES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

/// Usage a single turn adds, matching the mock Responses server's per-request numbers.
const TURN_USAGE: Usage = Usage {
    input_tokens: 11,
    cached_input_tokens: 3,
    output_tokens: 7,
    reasoning_output_tokens: 2,
};

/// Which record of this process is being written (app-server: one per turn).
static RECORD_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Wall clock at process start, for the bench's accepted → spawned figure.
static STARTED_UNIX_NS: std::sync::OnceLock<u128> = std::sync::OnceLock::new();

fn main() {
    STARTED_UNIX_NS.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fake-codex: cannot start tokio: {e}");
            std::process::exit(70);
        }
    };
    let code = runtime.block_on(run());
    // Exit without dropping the runtime: a blocking stdin read may still be
    // parked on a worker thread, and the runtime would wait for it.
    std::process::exit(code);
}

// ---------------------------------------------------------------------------
// argv

#[derive(Debug, Default, Serialize)]
struct Cli {
    json: bool,
    configs: Vec<String>,
    /// `-p NAME`: `$CODEX_HOME/NAME.config.toml` layered on the config.
    profile: Option<String>,
    model: Option<String>,
    sandbox: Option<String>,
    cd: Option<String>,
    skip_git_repo_check: bool,
    images: Vec<String>,
    add_dirs: Vec<String>,
    output_last_message: Option<String>,
    ephemeral: bool,
    ignore_user_config: bool,
    dangerously_bypass_approvals_and_sandbox: bool,
    resume: Option<String>,
    prompt: Option<String>,
}

enum Parsed {
    Version,
    Exec(Box<Cli>),
    /// `app-server [-c key=value]…`
    AppServer(Vec<String>),
}

/// A parse failure: message and exit code (2 for usage errors like clap, 1
/// for codex's own validation).
struct ArgError(String, i32);

fn usage_error(msg: impl Into<String>) -> ArgError {
    ArgError(msg.into(), 2)
}

/// `codex app-server` takes `-c` overrides and nothing else fcx uses.
fn parse_app_server(args: &[String]) -> Result<Parsed, ArgError> {
    let mut configs = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let kv = match arg.as_str() {
            "-c" | "--config" => it.next().cloned().ok_or_else(|| {
                usage_error(
                    "error: a value is required for '--config <key=value>' but none was supplied",
                )
            })?,
            other => match other.strip_prefix("--config=") {
                Some(kv) => kv.to_owned(),
                None => {
                    return Err(usage_error(format!(
                        "error: unexpected argument '{other}' found\n\nUsage: codex app-server [OPTIONS] [COMMAND]"
                    )));
                }
            },
        };
        configs.push(kv);
    }
    Ok(Parsed::AppServer(configs))
}

fn parse_args(args: &[String]) -> Result<Parsed, ArgError> {
    let Some(first) = args.first() else {
        return Err(usage_error(
            "error: fake-codex only implements `exec`, `app-server` and `--version`",
        ));
    };
    match first.as_str() {
        "--version" | "-V" => return Ok(Parsed::Version),
        "exec" | "e" => {}
        "app-server" => return parse_app_server(&args[1..]),
        other => {
            return Err(usage_error(format!(
                "error: unrecognized subcommand '{other}' (fake-codex only implements `exec`)"
            )));
        }
    }

    let mut cli = Cli::default();
    let mut positionals: Vec<String> = Vec::new();
    let mut in_resume = false;
    let mut only_positionals = false;
    let mut i = 1;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if only_positionals || arg == "-" || !arg.starts_with('-') {
            if !only_positionals && !in_resume && positionals.is_empty() && arg == "resume" {
                in_resume = true;
            } else {
                positionals.push(arg.to_owned());
            }
            continue;
        }
        if arg == "--" {
            only_positionals = true;
            continue;
        }
        // Split `--flag=value` and `-xVALUE` forms.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ if !arg.starts_with("--") && arg.len() > 2 && arg.is_char_boundary(2) => {
                (&arg[..2], Some(arg[2..].to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = |name: &str| -> Result<String, ArgError> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            match args.get(i) {
                Some(v) => {
                    i += 1;
                    Ok(v.clone())
                }
                None => Err(usage_error(format!(
                    "error: a value is required for '{name}' but none was supplied"
                ))),
            }
        };
        let exec_only = |cli_flag: &str| -> Result<(), ArgError> {
            if in_resume {
                Err(usage_error(format!(
                    "error: unexpected argument '{cli_flag}' found\n\nUsage: codex exec resume [OPTIONS] [SESSION_ID] [PROMPT]"
                )))
            } else {
                Ok(())
            }
        };
        match flag {
            "--json" | "--experimental-json" if inline.is_none() => cli.json = true,
            "--skip-git-repo-check" if inline.is_none() => cli.skip_git_repo_check = true,
            "-c" | "--config" => {
                let kv = value("--config <key=value>")?;
                if !kv.contains('=') {
                    return Err(ArgError(
                        format!("Error parsing -c overrides: Invalid override (missing '='): {kv}"),
                        1,
                    ));
                }
                cli.configs.push(kv);
            }
            "-p" | "--profile" => cli.profile = Some(value("--profile <CONFIG_PROFILE_V2>")?),
            "-m" | "--model" => cli.model = Some(value("--model <MODEL>")?),
            "-s" | "--sandbox" => {
                exec_only(arg)?;
                let mode = value("--sandbox <SANDBOX_MODE>")?;
                if !SANDBOX_MODES.contains(&mode.as_str()) {
                    return Err(usage_error(format!(
                        "error: invalid value '{mode}' for '--sandbox <SANDBOX_MODE>'\n  [possible values: read-only, workspace-write, danger-full-access]"
                    )));
                }
                cli.sandbox = Some(mode);
            }
            "-C" | "--cd" => {
                exec_only(arg)?;
                cli.cd = Some(value("--cd <DIR>")?);
            }
            "-i" | "--image" => {
                if let Some(v) = inline {
                    cli.images.push(v);
                } else {
                    // Greedy like the real `-i, --image <FILE>...`: it swallows
                    // every following value, including a prompt placed after it.
                    let start = i;
                    while let Some(v) = args.get(i) {
                        if v.starts_with('-') && v != "-" {
                            break;
                        }
                        cli.images.push(v.clone());
                        i += 1;
                    }
                    if i == start {
                        return Err(usage_error(
                            "error: a value is required for '--image <FILE>...' but none was supplied",
                        ));
                    }
                }
            }
            "--add-dir" => {
                exec_only(arg)?;
                cli.add_dirs.push(value("--add-dir <DIR>")?);
            }
            "-o" | "--output-last-message" => {
                cli.output_last_message = Some(value("--output-last-message <FILE>")?);
            }
            "--ephemeral" if inline.is_none() => cli.ephemeral = true,
            "--ignore-user-config" if inline.is_none() => cli.ignore_user_config = true,
            "--dangerously-bypass-approvals-and-sandbox" if inline.is_none() => {
                cli.dangerously_bypass_approvals_and_sandbox = true;
            }
            _ => {
                return Err(usage_error(format!(
                    "error: unexpected argument '{arg}' found\n\n  tip: to pass '{arg}' as a value, use '-- {arg}'"
                )));
            }
        }
    }

    let mut positionals = positionals.into_iter();
    if in_resume {
        let Some(id) = positionals.next() else {
            return Err(usage_error(
                "error: fake-codex needs `resume <SESSION_ID>` (--last is not implemented)",
            ));
        };
        cli.resume = Some(id);
    }
    cli.prompt = positionals.next();
    if let Some(extra) = positionals.next() {
        let usage = if in_resume {
            "codex exec resume [OPTIONS] [SESSION_ID] [PROMPT]"
        } else {
            "codex exec [OPTIONS] [PROMPT]"
        };
        return Err(usage_error(format!(
            "error: unexpected argument '{extra}' found\n\nUsage: {usage}"
        )));
    }
    Ok(Parsed::Exec(Box::new(cli)))
}

// ---------------------------------------------------------------------------
// output helpers

fn stdout_line(line: &str) {
    let mut out = std::io::stdout().lock();
    // A reader that went away is the caller's problem; keep behaving.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Keys the real codex prints first, in its order; serde_json's map sorts
/// alphabetically, which would put `thread_id` before `type`.
const KEY_ORDER: [&str; 18] = [
    "type",
    "id",
    "thread_id",
    "item",
    "message",
    "error",
    "usage",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
    "text",
    "command",
    "aggregated_output",
    "exit_code",
    "changes",
    "status",
];

/// Serializes like codex: one line, known keys in codex's order, other keys
/// after them alphabetically.
fn codex_json(value: &Value) -> String {
    let mut out = String::new();
    write_codex_json(value, &mut out);
    out
}

fn write_codex_json(value: &Value, out: &mut String) {
    let Value::Object(map) = value else {
        out.push_str(&value.to_string());
        return;
    };
    // Items put their id before their type; events have no id.
    let order: &[&str] = if map.contains_key("id") && map.contains_key("type") {
        &["id", "type"]
    } else {
        &[]
    };
    let mut keys: Vec<&String> = map.keys().collect();
    let rank = |k: &str| {
        order
            .iter()
            .position(|o| *o == k)
            .or_else(|| {
                KEY_ORDER
                    .iter()
                    .position(|o| *o == k)
                    .map(|p| p + order.len())
            })
            .unwrap_or(usize::MAX)
    };
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    out.push('{');
    for (n, key) in keys.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key.clone()).to_string());
        out.push(':');
        if let Some(v) = map.get(key) {
            write_codex_json(v, out);
        }
    }
    out.push('}');
}

fn stderr_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}").and_then(|()| err.flush());
}

/// Writes `contents` to `path` via a temporary file and rename, so readers
/// polling the path never see half a file.
fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write call, so concurrent appenders never interleave within a line.
    file.write_all(format!("{line}\n").as_bytes())
}

// ---------------------------------------------------------------------------
// the invocation record for tests

fn log_dir() -> Option<PathBuf> {
    std::env::var_os("FAKE_CODEX_LOG_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// This process's umask as Linux reports it (`None` elsewhere).
fn umask() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|v| v.trim().to_string())
}

/// The text of the `-p` profile file, as codex would read it.
fn profile_config(cli: &Cli) -> Option<String> {
    let name = cli.profile.as_deref()?;
    let home = std::env::var_os("CODEX_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".codex")))?;
    std::fs::read_to_string(home.join(format!("{name}.config.toml"))).ok()
}

/// `lark-cli`'s config file as a command Codex runs would read it (the
/// directory fcx names in `LARKSUITE_CLI_CONFIG_DIR`), and whether the app
/// secret file it points at is readable there.
fn lark_cli_config() -> Option<serde_json::Value> {
    let dir = std::env::var_os("LARKSUITE_CLI_CONFIG_DIR").filter(|v| !v.is_empty())?;
    let text = std::fs::read_to_string(PathBuf::from(dir).join("config.json")).ok()?;
    let mut v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let secret_path = v["apps"][0]["appSecret"]["id"].as_str().map(PathBuf::from);
    v["secret_readable"] = json!(secret_path.is_some_and(|p| std::fs::metadata(p).is_ok()));
    Some(v)
}

fn write_record(cli: &Cli, argv: &[String], cwd: &str, prompt: Option<&str>) {
    write_record_with(cli, argv, cwd, prompt, &[]);
}

/// The record, with `extra` top-level fields.
fn write_record_with(
    cli: &Cli,
    argv: &[String],
    cwd: &str,
    prompt: Option<&str>,
    extra: &[(&str, Value)],
) {
    let Some(dir) = log_dir() else { return };
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let mut record = json!({
        "pid": std::process::id(),
        "started_unix_ns": STARTED_UNIX_NS.get().copied().unwrap_or(0).to_string(),
        "argv": argv,
        "cwd": cwd,
        "env": env,
        "prompt": prompt,
        "prompt_read": prompt.is_some(),
        "resume_id": cli.resume,
        "args": cli,
        "profile_config": profile_config(cli),
        "lark_cli_config": lark_cli_config(),
        "umask": umask(),
    });
    for (k, v) in extra {
        record[*k] = v.clone();
    }
    // Pid and start time: a pid the system reuses must not overwrite an
    // earlier run's record; an app-server child kept between runs writes
    // one record per turn (`RECORD_SEQ`).
    let seq = RECORD_SEQ.load(Ordering::SeqCst);
    let stem = format!(
        "{}-{}",
        std::process::id(),
        STARTED_UNIX_NS.get().copied().unwrap_or(0)
    );
    let path = dir.join(if seq == 0 {
        format!("{stem}.json")
    } else {
        format!("{stem}-{seq}.json")
    });
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    if let Err(e) = write_atomic(&path, &bytes) {
        stderr_line(&format!("fake-codex: writing {}: {e}", path.display()));
    }
}

// ---------------------------------------------------------------------------
// scenarios

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Step {
    Emit(Value),
    SleepMs(u64),
    Raw(String),
    Stderr(String),
    Exit(i32),
    Hang(bool),
    SpawnChild(String),
    SpawnOrphan(String),
    IgnoreSigint(bool),
    IgnoreSigterm(bool),
    ThreadStarted(bool),
    TurnStarted(bool),
    TurnCompleted(bool),
    AgentMessage(String),
    Sh(String),
}

fn builtin(name: &str) -> Option<Value> {
    let command = |id: &str, cmd: &str, output: &str, exit: i32| {
        let status = if exit == 0 { "completed" } else { "failed" };
        [
            json!({"emit": {"type": "item.started", "item": {"id": id, "type": "command_execution", "command": cmd, "aggregated_output": "", "exit_code": null, "status": "in_progress"}}}),
            json!({"emit": {"type": "item.completed", "item": {"id": id, "type": "command_execution", "command": cmd, "aggregated_output": output, "exit_code": exit, "status": status}}}),
        ]
    };
    let start = [
        json!({"thread_started": true}),
        json!({"turn_started": true}),
    ];
    let steps: Vec<Value> = match name {
        "hello" => [
            &start[..],
            &[
                json!({"agent_message": "hello from fake codex"}),
                json!({"turn_completed": true}),
            ],
        ]
        .concat(),
        "slow" => [
            &start[..],
            &[
                json!({"sleep_ms": 300}),
                json!({"agent_message": "slow hello from fake codex"}),
                json!({"turn_completed": true}),
            ],
        ]
        .concat(),
        "tools" => {
            let mut steps = start.to_vec();
            steps.extend(command(
                "item_0",
                "/bin/bash -lc 'echo fake-tool-output'",
                "fake-tool-output\n",
                0,
            ));
            steps.extend(command(
                "item_1",
                "/bin/bash -lc 'echo oops >&2; exit 3'",
                "oops\n",
                3,
            ));
            let changes = json!([{"path": "{{cwd}}/hello.txt", "kind": "add"}]);
            steps.push(json!({"emit": {"type": "item.started", "item": {"id": "item_2", "type": "file_change", "changes": changes, "status": "in_progress"}}}));
            steps.push(json!({"emit": {"type": "item.completed", "item": {"id": "item_2", "type": "file_change", "changes": changes, "status": "completed"}}}));
            steps.push(json!({"emit": {"type": "item.completed", "item": {"id": "item_3", "type": "reasoning", "text": "**Thinking** about fake tools"}}}));
            steps.push(json!({"agent_message": "tools done"}));
            steps.push(json!({"turn_completed": true}));
            steps
        }
        "stall" => [&start[..], &[json!({"hang": true})]].concat(),
        "fail" => [
            &start[..],
            &[
                json!({"emit": {"type": "error", "message": "fake failure"}}),
                json!({"emit": {"type": "turn.failed", "error": {"message": "fake failure"}}}),
                json!({"exit": 1}),
            ],
        ]
        .concat(),
        "crash" => vec![
            json!({"thread_started": true}),
            json!({"stderr": "fatal: fake crash"}),
            json!({"exit": 3}),
        ],
        "garbage" => vec![
            json!({"raw": "this line is not json"}),
            json!({"thread_started": true}),
            json!({"raw": ""}),
            json!({"raw": "{\"type\":\"turn.started\""}),
            json!({"turn_started": true}),
            json!({"emit": {"type": "fake.unknown_event", "payload": {"x": 1}}}),
            json!({"emit": ["an", "array", "not", "an", "object"]}),
            json!({"emit": {"no_type": true}}),
            json!({"emit": {"type": "item.completed", "item": {"id": "item_0", "type": "fake_unknown_item", "blob": 7}}}),
            json!({"raw": "\u{1b}[31mcolour codes\u{1b}[0m and a tab\t"}),
            json!({"agent_message": "garbage survived"}),
            json!({"turn_completed": true}),
        ],
        "orphan" => [
            &start[..],
            &[
                json!({"emit": {"type": "item.started", "item": {"id": "item_0", "type": "command_execution", "command": "/bin/bash -lc 'sleep 300'", "aggregated_output": "", "exit_code": null, "status": "in_progress"}}}),
                json!({"spawn_orphan": "sleep 300"}),
                json!({"hang": true}),
            ],
        ]
        .concat(),
        "child" => [
            &start[..],
            &[
                json!({"emit": {"type": "item.started", "item": {"id": "item_0", "type": "command_execution", "command": "/bin/bash -lc 'sleep 300'", "aggregated_output": "", "exit_code": null, "status": "in_progress"}}}),
                json!({"spawn_child": "sleep 300"}),
                json!({"hang": true}),
            ],
        ]
        .concat(),
        _ => return None,
    };
    Some(Value::Array(steps))
}

/// Built-in scenario names, for the usage error on an unknown one.
const BUILTINS: &str = "hello, tools, stall, fail, crash, garbage, slow, orphan, child";

fn scenario_name(prompt: &str) -> Option<&str> {
    let at = prompt.find("FAKE:")?;
    let rest = &prompt[at + "FAKE:".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    let name = &rest[..end];
    (!name.is_empty()).then_some(name)
}

fn load_scenario(name: &str) -> Result<Vec<Step>, String> {
    if let Some(dir) = std::env::var_os("FAKE_CODEX_SCENARIOS").filter(|v| !v.is_empty()) {
        let path = Path::new(&dir).join(format!("{name}.jsonl"));
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading scenario {}: {e}", path.display()))?;
            let mut steps = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let step = serde_json::from_str::<Step>(line).map_err(|e| {
                    format!(
                        "{}:{}: bad scenario line {line:?}: {e}",
                        path.display(),
                        n + 1
                    )
                })?;
                steps.push(step);
            }
            return Ok(steps);
        }
    }
    let Some(value) = builtin(name) else {
        return Err(format!(
            "unknown scenario {name:?}: no FAKE_CODEX_SCENARIOS/{name}.jsonl and no built-in ({BUILTINS})"
        ));
    };
    serde_json::from_value(value).map_err(|e| format!("built-in scenario {name}: {e}"))
}

// ---------------------------------------------------------------------------
// per-thread state (cumulative usage like the real codex)

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Usage {
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
    reasoning_output_tokens: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ThreadState {
    thread_id: String,
    turns: u64,
    usage: Usage,
    /// What `thread/list` shows: the session's cwd, first prompt, last write.
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    preview: Option<String>,
    #[serde(default)]
    updated_at_ms: u64,
}

fn thread_file(thread_id: &str) -> Option<PathBuf> {
    let home = std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty())?;
    // The id comes from argv; keep it from naming a path outside the store.
    let safe: String = thread_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(
        Path::new(&home)
            .join("fake-threads")
            .join(format!("{safe}.json")),
    )
}

fn load_thread(thread_id: &str) -> ThreadState {
    let loaded = thread_file(thread_id)
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice::<ThreadState>(&bytes).ok());
    loaded.unwrap_or_else(|| ThreadState {
        thread_id: thread_id.to_owned(),
        ..ThreadState::default()
    })
}

fn save_thread(state: &ThreadState) {
    let Some(path) = thread_file(&state.thread_id) else {
        return;
    };
    let state = &ThreadState {
        thread_id: state.thread_id.clone(),
        cwd: state.cwd.clone(),
        preview: state.preview.clone(),
        updated_at_ms: u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
        )
        .unwrap_or(u64::MAX),
        ..*state
    };
    let result = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| write_atomic(&path, &serde_json::to_vec(state).unwrap_or_default()));
    if let Err(e) = result {
        stderr_line(&format!("fake-codex: saving {}: {e}", path.display()));
    }
}

/// Every thread this CODEX_HOME has, newest first.
fn all_threads() -> Vec<ThreadState> {
    let Some(home) = std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir(Path::new(&home).join("fake-threads")) else {
        return Vec::new();
    };
    let mut threads: Vec<ThreadState> = dir
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    threads.sort_by_key(|t| std::cmp::Reverse(t.updated_at_ms));
    threads
}

fn new_thread_id() -> String {
    let mut random = [0u8; 10];
    let got = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random));
    if got.is_err() {
        // Still unique enough for tests: mix the clock and pid.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mixed = nanos ^ (u128::from(std::process::id()) << 64);
        random.copy_from_slice(&mixed.to_le_bytes()[..10]);
    }
    // Shaped like the real ids (UUIDv7: millisecond clock first, then random).
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{:08x}-{:04x}-7{}-{}-{}",
        (millis >> 16) & 0xffff_ffff,
        millis & 0xffff,
        &hex[..3],
        &hex[3..7],
        &hex[7..19]
    )
}

// ---------------------------------------------------------------------------
// children and signals

fn reset_signals_in_child(cmd: &mut Command, new_session: bool) {
    // SAFETY: runs between fork and exec; setsid and signal(SIG_DFL) are
    // async-signal-safe and touch no memory shared with the parent.
    unsafe {
        cmd.pre_exec(move || {
            // An ignored disposition survives exec; children should behave
            // like ordinary commands whatever the fake was told to ignore.
            for sig in [Signal::SIGINT, Signal::SIGTERM] {
                signal(sig, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            }
            if new_session {
                setsid().map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

fn spawn_shell(cmd: &str, new_session: bool) -> std::io::Result<u32> {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        // Not our stdout: a command holding the JSONL pipe open would keep
        // readers waiting for EOF, which the real codex never does.
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    reset_signals_in_child(&mut command, new_session);
    let child = command.spawn()?;
    Ok(child.id())
}

/// (pid, ppid, pgrp) of every process, from /proc.
fn process_table() -> Vec<(i32, i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name is parenthesised and may contain anything, so
            // parse from the last ')'.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace();
            let _state = fields.next()?;
            let ppid: i32 = fields.next()?.parse().ok()?;
            let pgrp: i32 = fields.next()?.parse().ok()?;
            Some((pid, ppid, pgrp))
        })
        .collect()
}

/// Kills our descendants that are still in our process group, as `codex exec`
/// does on SIGINT. setsid() orphans are in another group and survive.
fn kill_group_descendants() {
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let group = getpgrp().as_raw();
    let table = process_table();
    let mut descendants = Vec::new();
    let mut frontier = vec![me];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, pgrp) in &table {
            if ppid == parent && pid != me {
                frontier.push(pid);
                if pgrp == group {
                    descendants.push(pid);
                }
            }
        }
    }
    for pid in descendants {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

async fn next_sigint(sigint: &mut tokio::signal::unix::Signal, ignore: &AtomicBool) {
    loop {
        if sigint.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
        if !ignore.load(Ordering::SeqCst) {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// running

struct Runner {
    thread: ThreadState,
    turn: u64,
    cwd: String,
    next_item: u64,
    last_message: Option<String>,
    ignore_sigint: &'static AtomicBool,
    /// Set when speaking app-server: the turn the scenario plays.
    app: Option<app_server::AppTurn>,
    /// The outbox folder the prompt names (`{{outbox}}`), as a model reads
    /// it from fcx's instructions.
    outbox: String,
}

enum Flow {
    Continue,
    Exit(i32),
}

impl Runner {
    fn expand(&self, s: &str) -> String {
        s.replace("{{thread_id}}", &self.thread.thread_id)
            .replace("{{turn}}", &self.turn.to_string())
            .replace("{{cwd}}", &self.cwd)
            .replace("{{outbox}}", &self.outbox)
    }

    fn expand_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.expand(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.expand_value(i)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.expand_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn emit(&mut self, value: &Value) {
        // Keep later agent_message ids clear of ids a scenario emitted itself.
        if let Some(n) = value
            .pointer("/item/id")
            .and_then(Value::as_str)
            .and_then(|id| id.strip_prefix("item_"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            self.next_item = self.next_item.max(n + 1);
        }
        stdout_line(&codex_json(value));
    }

    async fn step(&mut self, step: &Step) -> Flow {
        if self.app.is_some()
            && let Some(flow) = self.app_step(step)
        {
            return flow;
        }
        match step {
            Step::Emit(v) => {
                let v = self.expand_value(v);
                self.emit(&v);
            }
            Step::SleepMs(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::Raw(text) => stdout_line(&self.expand(text)),
            Step::Stderr(text) => stderr_line(&self.expand(text)),
            Step::Exit(code) => return Flow::Exit(*code),
            Step::Hang(true) => std::future::pending::<()>().await,
            Step::SpawnChild(cmd) => self.spawn(cmd, false),
            Step::Sh(cmd) => {
                let cmd = self.expand(cmd);
                match Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .current_dir(&self.cwd)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                {
                    Ok(st) if st.success() => {}
                    Ok(st) => stderr_line(&format!("fake-codex: {cmd:?} ended with {st}")),
                    Err(e) => stderr_line(&format!("fake-codex: running {cmd:?}: {e}")),
                }
            }
            Step::SpawnOrphan(cmd) => self.spawn(cmd, true),
            Step::IgnoreSigint(on) => self.ignore_sigint.store(*on, Ordering::SeqCst),
            Step::IgnoreSigterm(on) => {
                let handler = if *on {
                    SigHandler::SigIgn
                } else {
                    SigHandler::SigDfl
                };
                // SAFETY: installs no Rust handler, only SIG_IGN/SIG_DFL.
                if let Err(e) = unsafe { signal(Signal::SIGTERM, handler) } {
                    stderr_line(&format!("fake-codex: setting SIGTERM disposition: {e}"));
                }
            }
            Step::ThreadStarted(true) => {
                let v = json!({"type": "thread.started", "thread_id": self.thread.thread_id});
                self.emit(&v);
            }
            Step::TurnStarted(true) => self.emit(&json!({"type": "turn.started"})),
            Step::TurnCompleted(true) => {
                self.add_turn_usage();
                let u = self.thread.usage;
                self.emit(&json!({
                    "type": "turn.completed",
                    "usage": {
                        "input_tokens": u.input_tokens,
                        "cached_input_tokens": u.cached_input_tokens,
                        "cache_write_input_tokens": 0,
                        "output_tokens": u.output_tokens,
                        "reasoning_output_tokens": u.reasoning_output_tokens,
                    }
                }));
                self.turn += 1;
            }
            Step::AgentMessage(text) => {
                let text = self.expand(text);
                let id = format!("item_{}", self.next_item);
                self.emit(&json!({
                    "type": "item.completed",
                    "item": {"id": id, "type": "agent_message", "text": text}
                }));
                self.note_emit_time(&id);
                self.last_message = Some(text);
            }
            Step::Hang(false)
            | Step::ThreadStarted(false)
            | Step::TurnStarted(false)
            | Step::TurnCompleted(false) => {}
        }
        Flow::Continue
    }

    /// The steps whose output differs under app-server; `None` for the
    /// rest, which behave as under exec.
    fn app_step(&mut self, step: &Step) -> Option<Flow> {
        let turn = self.app.clone()?;
        match step {
            Step::Emit(v) => {
                let v = self.expand_value(v);
                turn.exec_event(&v);
            }
            // The thread and turn were announced when they were asked for.
            Step::ThreadStarted(_) | Step::TurnStarted(_) => {}
            Step::TurnCompleted(true) => {
                if turn.is_over() {
                    return Some(Flow::Continue);
                }
                self.add_turn_usage();
                turn.usage(self.thread.usage);
                turn.completed();
                self.turn += 1;
            }
            Step::AgentMessage(text) => {
                let text = self.expand(text);
                let id = format!("msg_{}", self.next_item);
                self.next_item += 1;
                turn.agent_message(&id, &text);
                self.note_emit_time(&id);
                self.last_message = Some(text);
            }
            _ => return None,
        }
        Some(Flow::Continue)
    }

    /// Adds one turn's usage to the thread and saves it.
    fn add_turn_usage(&mut self) {
        let total = &mut self.thread.usage;
        total.input_tokens += TURN_USAGE.input_tokens;
        total.cached_input_tokens += TURN_USAGE.cached_input_tokens;
        total.output_tokens += TURN_USAGE.output_tokens;
        total.reasoning_output_tokens += TURN_USAGE.reasoning_output_tokens;
        self.thread.turns = self.turn;
        save_thread(&self.thread);
    }

    /// The bench's delta → card latency starts here.
    fn note_emit_time(&self, id: &str) {
        if let Some(path) = std::env::var_os("FAKE_CODEX_EMIT_TIMES").filter(|v| !v.is_empty()) {
            let ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            if let Err(e) = append_line(Path::new(&path), &format!("{ns}\t{id}")) {
                stderr_line(&format!("fake-codex: writing emit times: {e}"));
            }
        }
    }

    fn spawn(&self, cmd: &str, orphan: bool) {
        let cmd = self.expand(cmd);
        match spawn_shell(&cmd, orphan) {
            Ok(pid) => {
                if let Some(dir) = log_dir() {
                    let kind = if orphan { "orphan" } else { "child" };
                    let path = dir.join(format!("{kind}-{}.pid", std::process::id()));
                    if let Err(e) = append_line(&path, &pid.to_string()) {
                        stderr_line(&format!("fake-codex: writing {}: {e}", path.display()));
                    }
                }
            }
            Err(e) => stderr_line(&format!("fake-codex: spawning {cmd:?}: {e}")),
        }
    }

    async fn run(&mut self, steps: &[Step]) -> i32 {
        for step in steps {
            if let Flow::Exit(code) = self.step(step).await {
                return code;
            }
        }
        0
    }
}

async fn read_stdin() -> std::io::Result<String> {
    let read = tokio::task::spawn_blocking(|| {
        let mut bytes = Vec::new();
        std::io::stdin().lock().read_to_end(&mut bytes)?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&bytes).into_owned())
    });
    read.await.map_err(std::io::Error::other)?
}

async fn run() -> i32 {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // app-server keeps SIGINT's default (it dies by it), so it is told
    // apart before the exec handler goes in.
    if let Ok(Parsed::AppServer(configs)) = parse_args(argv.get(1..).unwrap_or_default()) {
        return app_server::serve(argv, configs).await;
    }
    // Installed first so SIGINT at any point, even while blocked on stdin,
    // takes the codex-like path instead of the default death by signal.
    let mut sigint = match tokio_signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(e) => {
            stderr_line(&format!("fake-codex: installing SIGINT handler: {e}"));
            return 70;
        }
    };
    static IGNORE_SIGINT: AtomicBool = AtomicBool::new(false);

    let cli = match parse_args(argv.get(1..).unwrap_or_default()) {
        Ok(Parsed::Version) => {
            stdout_line(VERSION);
            return 0;
        }
        Ok(Parsed::Exec(mut cli)) => {
            if cli.sandbox.is_none() {
                cli.sandbox = profile_config(&cli)
                    .and_then(|t| permissions::from_toml(&t))
                    .and_then(|c| permissions::sandbox_of(&c));
            }
            cli
        }
        Ok(Parsed::AppServer(_)) => return 2,
        Err(ArgError(msg, code)) => {
            stderr_line(&msg);
            return code;
        }
    };
    let start_cwd = std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_record(&cli, &argv, &start_cwd, None);

    let prompt_from_stdin = matches!(cli.prompt.as_deref(), None | Some("-"));
    let stdin_is_tty = std::io::stdin().is_terminal();
    let read_prompt = async {
        if prompt_from_stdin {
            stderr_line("Reading prompt from stdin...");
            let text = read_stdin().await.map_err(|e| e.to_string())?;
            if text.trim().is_empty() {
                return Err("No prompt provided via stdin.".to_owned());
            }
            Ok(text)
        } else {
            let prompt = cli.prompt.clone().unwrap_or_default();
            if stdin_is_tty {
                return Ok(prompt);
            }
            // The real exec also drains a non-terminal stdin before starting,
            // so a caller that leaves the pipe open hangs it.
            stderr_line("Reading additional input from stdin...");
            let extra = read_stdin().await.map_err(|e| e.to_string())?;
            if extra.trim().is_empty() {
                Ok(prompt)
            } else {
                Ok(format!(
                    "{prompt}\n\n<stdin>\n{}\n</stdin>",
                    extra.trim_end_matches('\n')
                ))
            }
        }
    };
    let prompt = tokio::select! {
        read = read_prompt => match read {
            Ok(p) => p,
            Err(msg) => {
                stderr_line(&msg);
                return 1;
            }
        },
        () = next_sigint(&mut sigint, &IGNORE_SIGINT) => return 1,
    };
    write_record(&cli, &argv, &start_cwd, Some(&prompt));

    let cwd = match &cli.cd {
        Some(dir) => {
            if let Err(e) = std::env::set_current_dir(dir) {
                stderr_line(&format!("Error: {e}"));
                return 1;
            }
            std::env::current_dir()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| dir.clone())
        }
        None => start_cwd,
    };

    if let Some(id) = cli
        .resume
        .as_deref()
        .filter(|id| id.starts_with("missing-"))
    {
        stderr_line(&format!(
            "Error: thread/resume: thread/resume failed: no rollout found for thread id {id} (code -32600)"
        ));
        return 1;
    }

    let name = scenario_name(&prompt).unwrap_or("hello");
    let steps = match load_scenario(name) {
        Ok(steps) => steps,
        Err(msg) => {
            stderr_line(&format!("fake-codex: {msg}"));
            return 2;
        }
    };

    let thread_id = cli.resume.clone().unwrap_or_else(new_thread_id);
    let mut thread = load_thread(&thread_id);
    // What `app-server`'s thread/list reports of an exec thread.
    thread.cwd = Some(cwd.clone());
    if thread.preview.is_none() {
        thread.preview = Some(prompt.chars().take(100).collect());
    }
    let mut runner = Runner {
        turn: thread.turns + 1,
        thread,
        cwd,
        next_item: 0,
        last_message: None,
        ignore_sigint: &IGNORE_SIGINT,
        app: None,
        outbox: fcx_tests::outbox_in(&prompt),
    };
    if !cli.ephemeral {
        save_thread(&runner.thread);
    }

    let code = tokio::select! {
        code = runner.run(&steps) => code,
        () = next_sigint(&mut sigint, &IGNORE_SIGINT) => {
            kill_group_descendants();
            return 1;
        }
    };
    if let (Some(path), Some(text)) = (&cli.output_last_message, &runner.last_message)
        && let Err(e) = std::fs::write(path, text)
    {
        stderr_line(&format!("fake-codex: writing {path}: {e}"));
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| (*a).to_owned()).collect()
    }

    fn exec(s: &[&str]) -> Cli {
        match parse_args(&args(s)) {
            Ok(Parsed::Exec(cli)) => *cli,
            Ok(Parsed::Version | Parsed::AppServer(_)) => panic!("not exec"),
            Err(ArgError(msg, code)) => panic!("{s:?} failed ({code}): {msg}"),
        }
    }

    fn err_code(s: &[&str]) -> i32 {
        match parse_args(&args(s)) {
            Err(ArgError(_, code)) => code,
            Ok(_) => panic!("{s:?} parsed"),
        }
    }

    #[test]
    fn flags_any_order_then_resume() {
        let cli = exec(&[
            "exec",
            "-c",
            "a=1",
            "--json",
            "-m",
            "gpt-5.5",
            "--config=b=2",
            "-s",
            "read-only",
            "-C",
            "/w",
            "--skip-git-repo-check",
            "resume",
            "tid",
            "-i",
            "x.png",
            "--",
            "hi",
        ]);
        assert!(cli.json && cli.skip_git_repo_check);
        assert_eq!(cli.configs, ["a=1", "b=2"]);
        assert_eq!(cli.model.as_deref(), Some("gpt-5.5"));
        assert_eq!(cli.sandbox.as_deref(), Some("read-only"));
        assert_eq!(cli.cd.as_deref(), Some("/w"));
        assert_eq!(cli.resume.as_deref(), Some("tid"));
        assert_eq!(cli.images, ["x.png"]);
        assert_eq!(cli.prompt.as_deref(), Some("hi"));
    }

    #[test]
    fn image_is_greedy_like_the_real_one() {
        let cli = exec(&["exec", "--image", "a.png", "prompt"]);
        assert_eq!(cli.images, ["a.png", "prompt"]);
        assert_eq!(cli.prompt, None);
        let cli = exec(&["exec", "--image=a.png", "prompt"]);
        assert_eq!(cli.prompt.as_deref(), Some("prompt"));
    }

    #[test]
    fn usage_errors() {
        assert_eq!(err_code(&["exec", "--bogus"]), 2);
        assert_eq!(err_code(&["exec", "a", "b"]), 2);
        assert_eq!(err_code(&["exec", "resume", "id", "-s", "read-only"]), 2);
        assert_eq!(err_code(&["exec", "-s", "bogus"]), 2);
        assert_eq!(err_code(&["exec", "-c", "novalue"]), 1);
        assert_eq!(err_code(&["exec", "-m"]), 2);
        assert_eq!(err_code(&["chat"]), 2);
        assert_eq!(err_code(&["exec", "-é"]), 2);
        assert_eq!(err_code(&["exec", "--json=yes"]), 2);
    }

    #[test]
    fn scenario_marker() {
        assert_eq!(scenario_name("please FAKE:tools now"), Some("tools"));
        assert_eq!(scenario_name("FAKE:my-case_2."), Some("my-case_2"));
        assert_eq!(scenario_name("FAKE: x"), None);
        assert_eq!(scenario_name("hi"), None);
    }

    #[test]
    fn builtins_parse() {
        for name in BUILTINS.split(", ") {
            let steps = load_scenario(name);
            assert!(steps.is_ok(), "{name}: {steps:?}");
        }
    }

    #[test]
    fn output_key_order_matches_codex() {
        let event = json!({"type": "item.completed", "item": {"text": "t", "type": "agent_message", "id": "item_0"}});
        assert_eq!(
            codex_json(&event),
            r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"t"}}"#
        );
        let event = json!({"usage": {"reasoning_output_tokens": 2, "input_tokens": 11, "output_tokens": 7, "cached_input_tokens": 3, "cache_write_input_tokens": 0}, "type": "turn.completed"});
        assert_eq!(
            codex_json(&event),
            r#"{"type":"turn.completed","usage":{"input_tokens":11,"cached_input_tokens":3,"cache_write_input_tokens":0,"output_tokens":7,"reasoning_output_tokens":2}}"#
        );
    }

    #[test]
    fn thread_ids_look_like_uuids() {
        let id = new_thread_id();
        let lens: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
    }
}
