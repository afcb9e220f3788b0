//! The `fcxctl` binary end to end: config checks against real files, admin
//! verbs against no fcxd, a stale socket, and a fake Gateway served here.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use fcx_config::Home;
use fcx_proto::v1::gateway_server::{Gateway, GatewayServer};
use fcx_proto::v1::{
    GatewayStatus, GatewayStatusRequest, ProcessEntry, ProfileStatus, PsRequest, PsResponse,
    ReloadRequest, ReloadResponse, RestartWorkerRequest, RestartWorkerResponse, StopRequest,
    StopResponse,
};
use serde_json::Value;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

const BIN: &str = env!("CARGO_BIN_EXE_fcxctl");
const SECRET: &str = "sk-test-DO-NOT-PRINT-4242";

/// A scratch area with a short path: Unix socket paths must stay under ~100
/// bytes, and the platform temp dir can be long (macOS).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let base = if cfg!(unix) {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("fcx")
            .tempdir_in(base)
            .expect("scratch dir");
        std::fs::create_dir_all(dir.path().join("u")).expect("user home");
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin dir");
        Scratch { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn fcx_home(&self) -> PathBuf {
        self.path().join("h")
    }
    fn home(&self) -> Home {
        Home::with_user_home(self.fcx_home(), self.path().join("u"))
    }
    fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.fcx_home()).expect("fcx home");
        set_mode(&self.fcx_home(), 0o700);
        std::fs::write(self.fcx_home().join("config.toml"), text).expect("config");
    }
    /// An executable file that stands in for Codex.
    fn fake_codex(&self, name: &str) -> PathBuf {
        let p = self.path().join("bin").join(name);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("fake codex");
        set_mode(&p, 0o755);
        p
    }
    fn key_file(&self, mode: u32) -> PathBuf {
        let p = self.path().join("key.txt");
        std::fs::write(&p, format!("{SECRET}\n")).expect("key file");
        set_mode(&p, mode);
        p
    }
    fn workspace(&self) -> PathBuf {
        let p = self.path().join("ws");
        std::fs::create_dir_all(&p).expect("workspace");
        p
    }
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

/// Run fcxctl with an environment this test controls entirely.
fn command(s: &Scratch, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.arg("--home")
        .arg(s.fcx_home())
        .args(args)
        .env("HOME", s.path().join("u"))
        .env("PATH", s.path().join("bin"))
        .env_remove("FCX_HOME")
        .env_remove("FCX_CODEX_BINARY")
        .env_remove("OPENAI_API_KEY");
    c
}

fn run(s: &Scratch, args: &[&str]) -> Output {
    command(s, args).output().expect("run fcxctl")
}

async fn run_async(s: &Scratch, args: &[&str]) -> Output {
    tokio::process::Command::from(command(s, args))
        .output()
        .await
        .expect("run fcxctl")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_exit(o: &Output, code: i32) -> (String, String) {
    let (out, err) = text(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    (out, err)
}

fn good_config(s: &Scratch) -> String {
    format!(
        "[profiles.work.codex]\nbinary = \"{}\"\napi_key = \"file:{}\"\n\
         [profiles.work.workspaces]\ndefault = \"{}\"\n",
        s.fake_codex("codex").display(),
        s.key_file(0o600).display(),
        s.workspace().display()
    )
}

// ---- config ----

#[test]
fn config_check_passes_a_good_config_without_printing_the_key() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    let (out, err) = assert_exit(&run(&s, &["config", "check"]), 0);
    let key = s.path().join("key.txt");
    assert!(out.contains("profile `work`: enabled"), "{out}");
    assert!(out.contains("codex binary: ok ("), "{out}");
    assert!(out.contains("auth: api-key"), "{out}");
    assert!(
        out.contains(&format!("api key: ok (file:{})", key.display())),
        "{out}"
    );
    assert!(out.contains("workspace: ok ("), "{out}");
    assert!(out.contains("config check: ok (1 profile)"), "{out}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "key leaked");
}

#[test]
fn config_check_reports_the_built_in_default_profile() {
    let s = Scratch::new();
    s.fake_codex("codex");
    std::fs::create_dir_all(s.path().join("u/fcx-work")).expect("default workspace");
    let o = command(&s, &["config", "check"])
        .env("OPENAI_API_KEY", SECRET)
        .output()
        .expect("run");
    let (out, err) = assert_exit(&o, 0);
    assert!(
        out.contains("does not exist; the built-in default profile `default` is in use"),
        "{out}"
    );
    assert!(out.contains("profile `default`: enabled"), "{out}");
    assert!(out.contains("api key: ok (env:OPENAI_API_KEY)"), "{out}");
    assert!(out.contains("`codex` found on PATH"), "{out}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "key leaked");
}

#[test]
fn config_check_without_a_key_says_which_variable() {
    let s = Scratch::new();
    s.fake_codex("codex");
    std::fs::create_dir_all(s.path().join("u/fcx-work")).expect("default workspace");
    let (out, _) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(
        out.contains("environment variable OPENAI_API_KEY is not set"),
        "{out}"
    );
    assert!(
        out.contains("config check: 1 problem in 1 profile"),
        "{out}"
    );
}

#[test]
fn config_check_names_file_and_key_on_an_unknown_key() {
    let s = Scratch::new();
    s.write_config("[profiles.work.codex]\nbinnary = \"codex\"\n");
    let (_, err) = assert_exit(&run(&s, &["config", "check"]), 1);
    let path = s.fcx_home().join("config.toml");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("binnary"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
}

#[test]
fn config_check_never_echoes_a_pasted_key() {
    let s = Scratch::new();
    s.write_config(&format!("[profiles.work.codex]\napi_key = \"{SECRET}\"\n"));
    let (out, err) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(err.contains("profiles.work.codex.api_key"), "{err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "key leaked");
}

#[test]
fn config_check_reports_an_unreadable_secret_file() {
    let s = Scratch::new();
    let missing = s.path().join("no-such-key");
    let cfg = good_config(&s).replace(
        &format!("file:{}", s.path().join("key.txt").display()),
        &format!("file:{}", missing.display()),
    );
    s.write_config(&cfg);
    let (out, err) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(
        out.contains(&format!(
            "api key: error: secret file:{}: cannot read {}",
            missing.display(),
            missing.display()
        )),
        "{out}"
    );
    assert!(out.contains("profiles.work.codex.api_key"), "{out}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn config_check_reports_a_missing_binary() {
    let s = Scratch::new();
    let cfg = good_config(&s).replace(
        &s.path().join("bin/codex").display().to_string(),
        &s.path().join("nope/codex").display().to_string(),
    );
    s.write_config(&cfg);
    let (out, _) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(
        out.contains(&format!(
            "codex binary: error: {} does not exist",
            s.path().join("nope/codex").display()
        )),
        "{out}"
    );
    assert!(out.contains("set profiles.work.codex.binary"), "{out}");
}

#[test]
fn config_check_reports_a_binary_missing_from_path() {
    let s = Scratch::new();
    let cfg = good_config(&s).replace(
        &s.path().join("bin/codex").display().to_string(),
        "codex-not-installed",
    );
    s.write_config(&cfg);
    let (out, _) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(
        out.contains("`codex-not-installed` was not found on PATH"),
        "{out}"
    );
    assert!(out.contains("set profiles.work.codex.binary"), "{out}");
}

#[cfg(unix)]
#[test]
fn config_check_reports_a_binary_that_is_not_executable() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    set_mode(&s.path().join("bin/codex"), 0o644);
    let (out, _) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(out.contains("is not executable"), "{out}");
}

#[test]
fn config_check_reports_a_missing_workspace() {
    let s = Scratch::new();
    let cfg = good_config(&s).replace(
        &s.path().join("ws").display().to_string(),
        &s.path().join("gone").display().to_string(),
    );
    s.write_config(&cfg);
    let (out, _) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(
        out.contains(&format!(
            "workspace: error: {} does not exist",
            s.path().join("gone").display()
        )),
        "{out}"
    );
    assert!(out.contains("profiles.work.workspaces.default"), "{out}");
}

#[test]
fn config_check_reports_a_workspace_that_is_a_file() {
    let s = Scratch::new();
    let file = s.path().join("file-ws");
    std::fs::write(&file, "").expect("file");
    let cfg = good_config(&s).replace(
        &s.path().join("ws").display().to_string(),
        &file.display().to_string(),
    );
    s.write_config(&cfg);
    let (out, _) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(out.contains("is not a directory"), "{out}");
}

#[test]
fn config_check_only_warns_about_a_disabled_profile() {
    let s = Scratch::new();
    let cfg = format!(
        "{}[profiles.old]\nenabled = false\n[profiles.old.codex]\nbinary = \"/nonexistent/codex\"\n\
         auth = \"codex-home\"\n",
        good_config(&s)
    );
    s.write_config(&cfg);
    let (out, _) = assert_exit(&run(&s, &["config", "check"]), 0);
    assert!(out.contains("profile `old`: disabled"), "{out}");
    assert!(
        out.contains("codex binary: warning: /nonexistent/codex"),
        "{out}"
    );
    let codex_home = s.home().profile("old").codex_home();
    assert!(
        out.contains(&format!("codex home: {}", codex_home.display())),
        "{out}"
    );
    assert!(out.contains("config check: ok (2 profiles,"), "{out}");
}

#[cfg(unix)]
#[test]
fn config_check_refuses_a_readable_key_file() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    set_mode(&s.path().join("key.txt"), 0o644);
    let (out, err) = assert_exit(&run(&s, &["config", "check"]), 1);
    assert!(out.contains("readable by other users (mode 644)"), "{out}");
    assert!(
        out.contains(&format!("chmod 600 {}", s.path().join("key.txt").display())),
        "{out}"
    );
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "key leaked");
}

#[cfg(unix)]
#[test]
fn config_check_warns_about_an_open_fcx_home() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    set_mode(&s.fcx_home(), 0o755);
    let (out, _) = assert_exit(&run(&s, &["config", "check"]), 0);
    assert!(
        out.contains("is accessible to other users (mode 755); chmod 700"),
        "{out}"
    );
}

#[test]
fn config_path_prints_the_file() {
    let s = Scratch::new();
    let (out, _) = assert_exit(&run(&s, &["config", "path"]), 0);
    assert_eq!(
        out.trim(),
        s.fcx_home().join("config.toml").display().to_string()
    );
}

#[test]
fn home_defaults_to_the_environment() {
    let s = Scratch::new();
    let o = std::process::Command::new(BIN)
        .args(["config", "path"])
        .env("FCX_HOME", s.fcx_home())
        .output()
        .expect("run");
    let (out, _) = assert_exit(&o, 0);
    assert_eq!(
        out.trim(),
        s.fcx_home().join("config.toml").display().to_string()
    );
}

// ---- keys ----

fn key_file(s: &Scratch, profile: &str) -> PathBuf {
    s.home().profile(profile).callback_keys()
}

fn key_json(s: &Scratch, profile: &str) -> Value {
    let text = std::fs::read_to_string(key_file(s, profile)).expect("key file");
    serde_json::from_str(&text).expect("json")
}

/// The hex key of `version` in the file, to check it never reaches output.
fn key_hex(s: &Scratch, profile: &str, version: u32) -> String {
    key_json(s, profile)["keys"][version.to_string()]
        .as_str()
        .expect("key")
        .to_string()
}

#[cfg(unix)]
fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

#[test]
fn keys_rotate_creates_then_adds_versions_and_list_shows_them() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    let (out, _) = assert_exit(&run(&s, &["keys", "list"]), 0);
    assert!(out.contains("work: no signing keys exist yet"), "{out}");
    let (out, _) = assert_exit(&run(&s, &["keys", "list", "--json"]), 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["profile"], "work");
    assert_eq!(v[0]["exists"], false);
    assert_eq!(v[0]["versions"], serde_json::json!([]));
    assert!(!key_file(&s, "work").exists(), "list never creates keys");

    let (out, _) = assert_exit(&run(&s, &["keys", "rotate"]), 0);
    assert!(
        out.starts_with("work: key version 1 is now current."),
        "{out}"
    );
    #[cfg(unix)]
    assert_eq!(file_mode(&key_file(&s, "work")), 0o600);
    let k1 = key_hex(&s, "work", 1);
    let (out, _) = assert_exit(&run(&s, &["keys", "rotate", "--profile", "work"]), 0);
    assert!(
        out.starts_with(
            "work: key version 2 is now current; version 1 is still accepted until retired"
        ),
        "{out}"
    );
    assert_eq!(
        key_hex(&s, "work", 1),
        k1,
        "older keys are kept as they were"
    );
    #[cfg(unix)]
    assert_eq!(file_mode(&key_file(&s, "work")), 0o600);

    let (out, err) = assert_exit(&run(&s, &["keys", "list"]), 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("PROFILE  VERSION  STATE"), "{out}");
    assert!(
        lines[1].starts_with("work     1        accepted  20"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("work     2        current   20"),
        "{out}"
    );
    let (json, _) = assert_exit(&run(&s, &["keys", "list", "--json"]), 0);
    let v: Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v[0]["exists"], true);
    assert_eq!(v[0]["current"], 2);
    assert_eq!(v[0]["versions"][0]["state"], "accepted");
    assert_eq!(v[0]["versions"][1]["state"], "current");
    assert!(v[0]["versions"][1]["created"].as_i64().expect("created") > 1_600_000_000);
    for text in [&out, &err, &json] {
        for ver in [1, 2] {
            let k = key_hex(&s, "work", ver);
            assert!(!text.contains(&k[..16]), "key material printed: {text}");
        }
    }
}

#[test]
fn keys_retire_refuses_current_and_unknown_and_never_reuses_a_number() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    let (_, err) = assert_exit(&run(&s, &["keys", "retire", "1"]), 1);
    assert_eq!(
        err.trim(),
        "work: there is no key version 1 (versions: none yet)"
    );
    for _ in 0..3 {
        assert_exit(&run(&s, &["keys", "rotate"]), 0);
    }
    let before = std::fs::read(key_file(&s, "work")).expect("read");
    let (_, err) = assert_exit(&run(&s, &["keys", "retire", "3"]), 1);
    assert_eq!(
        err.trim(),
        "work: version 3 is the current signing key and cannot be retired; rotate to a new key \
         first (`fcxctl keys rotate --profile work`)"
    );
    let (_, err) = assert_exit(&run(&s, &["keys", "retire", "7"]), 1);
    assert_eq!(
        err.trim(),
        "work: there is no key version 7 (versions: 1 (accepted), 2 (accepted), 3 (current))"
    );
    assert_exit(&run(&s, &["keys", "retire", "-1"]), 2);
    assert_eq!(
        std::fs::read(key_file(&s, "work")).expect("read"),
        before,
        "a refusal changes nothing"
    );

    let k1 = key_hex(&s, "work", 1);
    let (out, _) = assert_exit(&run(&s, &["keys", "retire", "1", "--profile", "work"]), 0);
    assert!(out.starts_with("work: key version 1 retired"), "{out}");
    let f = key_json(&s, "work");
    assert_eq!(f["retired"], serde_json::json!([1]));
    assert!(f["keys"].get("1").is_none(), "retired key material is gone");
    let text = std::fs::read_to_string(key_file(&s, "work")).expect("read");
    assert!(!text.contains(&k1));
    #[cfg(unix)]
    assert_eq!(file_mode(&key_file(&s, "work")), 0o600);
    let (out, _) = assert_exit(&run(&s, &["keys", "retire", "1"]), 0);
    assert_eq!(out.trim(), "work: key version 1 was already retired.");

    // Retire 2 as well, then rotate: the new number is above retired ones.
    assert_exit(&run(&s, &["keys", "retire", "2"]), 0);
    let (out, _) = assert_exit(&run(&s, &["keys", "rotate"]), 0);
    assert!(
        out.starts_with("work: key version 4 is now current; version 3 is"),
        "{out}"
    );
    let (out, _) = assert_exit(&run(&s, &["keys", "list"]), 0);
    let states: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        ["retired", "retired", "accepted", "current"],
        "{out}"
    );
}

#[test]
fn keys_load_files_written_before_creation_times_were_kept() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    let p = key_file(&s, "work");
    std::fs::create_dir_all(p.parent().expect("dir")).expect("profile dir");
    let k1 = "ab".repeat(32);
    std::fs::write(
        &p,
        format!(r#"{{"current":1,"keys":{{"1":"{k1}"}},"retired":[]}}"#),
    )
    .expect("old file");
    let (out, _) = assert_exit(&run(&s, &["keys", "list"]), 0);
    assert!(
        out.lines().nth(1).expect("row").ends_with("current  -"),
        "{out}"
    );
    assert_exit(&run(&s, &["keys", "rotate"]), 0);
    let f = key_json(&s, "work");
    assert_eq!(f["keys"]["1"], k1.as_str());
    assert_eq!(f["current"], 2);
    assert!(f["created"].get("1").is_none());
    assert!(f["created"]["2"].is_i64());
}

#[test]
fn keys_refuse_a_corrupt_file_without_touching_it() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    let p = key_file(&s, "work");
    std::fs::create_dir_all(p.parent().expect("dir")).expect("profile dir");
    std::fs::write(&p, "{\"current\": 1, \"ke").expect("corrupt");
    for args in [
        &["keys", "rotate"][..],
        &["keys", "retire", "1"],
        &["keys", "list"],
    ] {
        let (_, err) = assert_exit(&run(&s, args), 1);
        assert!(
            err.contains("callback-keys.json is not a valid callback key file"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&p).expect("read"),
        "{\"current\": 1, \"ke"
    );
}

#[test]
fn keys_need_a_known_profile() {
    let s = Scratch::new();
    s.write_config("[profiles.a]\n[profiles.b]\n");
    let (_, err) = assert_exit(&run(&s, &["keys", "rotate"]), 1);
    assert!(
        err.contains("has several profiles (a, b): choose one with --profile"),
        "{err}"
    );
    let (_, err) = assert_exit(&run(&s, &["keys", "rotate", "--profile", "c"]), 1);
    assert!(err.contains("no profile named `c`"), "{err}");
    let (_, err) = assert_exit(&run(&s, &["keys", "list", "--profile", "../a"]), 1);
    assert!(err.contains("`../a` is not a profile name"), "{err}");
    assert!(!s.home().profile("c").dir().exists());
    assert_exit(&run(&s, &["keys", "rotate", "--profile", "b"]), 0);
    let (out, _) = assert_exit(&run(&s, &["keys", "list"]), 0);
    assert!(out.contains("b        1        current"), "{out}");
    assert!(out.contains("a: no signing keys exist yet"), "{out}");
}

#[test]
fn keys_concurrent_rotations_lose_no_version() {
    let s = Scratch::new();
    s.write_config(&good_config(&s));
    let children: Vec<_> = (0..6)
        .map(|_| {
            command(&s, &["keys", "rotate"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        assert_exit(&c.wait_with_output().expect("wait"), 0);
    }
    let f = key_json(&s, "work");
    assert_eq!(f["current"], 6);
    let mut versions: Vec<u32> = f["keys"]
        .as_object()
        .expect("keys")
        .keys()
        .map(|k| k.parse().expect("version"))
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    #[cfg(unix)]
    assert_eq!(file_mode(&key_file(&s, "work")), 0o600);
}

// ---- admin verbs without fcxd ----

fn assert_not_running(s: &Scratch, args: &[&str]) {
    let (out, err) = assert_exit(&run(s, args), 3);
    let socket = s.home().gateway_socket();
    assert!(
        err.contains(&format!(
            "fcxd is not running (nothing answers on {}); start it with `fcxd`",
            socket.display()
        )),
        "{args:?}: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn admin_verbs_without_fcxd_exit_3() {
    let s = Scratch::new();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["ps"],
        &["ps", "--json"],
        &["stop"],
        &["restart-worker", "work"],
        &["reload"],
    ] {
        assert_not_running(&s, args);
    }
}

#[cfg(unix)]
#[test]
fn a_stale_socket_is_not_a_running_fcxd() {
    let s = Scratch::new();
    let socket = s.home().gateway_socket();
    std::fs::create_dir_all(socket.parent().expect("run dir")).expect("run dir");
    // What kill -9 leaves behind: the file, with nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    assert!(socket.exists());
    assert_not_running(&s, &["status"]);
    assert_not_running(&s, &["ps", "--json"]);
}

// ---- admin verbs against a fake Gateway ----

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Fake {
    started: i64,
    home: String,
    shutdown: Arc<Notify>,
}

#[tonic::async_trait]
impl Gateway for Fake {
    async fn status(
        &self,
        _: Request<GatewayStatusRequest>,
    ) -> Result<Response<GatewayStatus>, Status> {
        Ok(Response::new(GatewayStatus {
            pid: 4242,
            version: "9.9.9".into(),
            started_at_ms: self.started,
            home: self.home.clone(),
            protocol_version: fcx_proto::PROTOCOL_VERSION,
            profiles: vec![
                ProfileStatus {
                    name: "work".into(),
                    worker_state: fcx_proto::v1::WorkerState::Ready as i32,
                    worker_pid: 4250,
                    restarts: 2,
                    last_error: String::new(),
                    surfaces: vec!["feishu".into()],
                    active_runs: 1,
                    queued: 3,
                    worker_started_at_ms: self.started,
                    channel_state: "connected".into(),
                    last_frame_at_ms: now_ms() - 2_000,
                    last_event_at_ms: now_ms() - 60_000,
                    reconnects: 1,
                    bot_name: "fcx bot".into(),
                },
                ProfileStatus {
                    name: "dev".into(),
                    worker_state: fcx_proto::v1::WorkerState::Backoff as i32,
                    restarts: 5,
                    last_error: "codex binary not found".into(),
                    surfaces: vec!["console".into()],
                    channel_state: "n/a".into(),
                    ..Default::default()
                },
            ],
        }))
    }

    async fn ps(&self, _: Request<PsRequest>) -> Result<Response<PsResponse>, Status> {
        let entry =
            |id: &str, kind: &str, pid, profile: &str, scope: &str, detail: &str| ProcessEntry {
                id: id.into(),
                kind: fcx_proto::v1::ProcessKind::from_word(kind).unwrap_or_default() as i32,
                pid,
                profile: profile.into(),
                started_at_ms: self.started,
                scope: scope.into(),
                detail: detail.into(),
            };
        Ok(Response::new(PsResponse {
            processes: vec![
                entry("g", "fcxd", 4242, "", "", ""),
                entry("w:work", "worker", 4250, "work", "", ""),
                entry(
                    "r:7f3a",
                    "codex",
                    4300,
                    "work",
                    "chat:oc_1",
                    "exec, 2 tools",
                ),
            ],
        }))
    }

    async fn restart_worker(
        &self,
        req: Request<RestartWorkerRequest>,
    ) -> Result<Response<RestartWorkerResponse>, Status> {
        let profile = req.into_inner().profile;
        if profile != "work" {
            return Err(Status::not_found(format!("no profile named `{profile}`")));
        }
        Ok(Response::new(RestartWorkerResponse {
            message: "worker of profile `work` restarted (pid 4251)".into(),
        }))
    }

    async fn reload(&self, _: Request<ReloadRequest>) -> Result<Response<ReloadResponse>, Status> {
        Ok(Response::new(ReloadResponse {
            added: vec!["new".into()],
            removed: vec![],
            restarted: vec!["work".into()],
            unchanged: vec!["dev".into()],
            failed: vec!["bad: app cli_x is served by another fcx home".into()],
        }))
    }

    async fn stop(&self, _: Request<StopRequest>) -> Result<Response<StopResponse>, Status> {
        self.shutdown.notify_one();
        Ok(Response::new(StopResponse {}))
    }
}

/// Serve a [`Fake`] on the scratch home's gateway socket until `shutdown`.
async fn serve(s: &Scratch) -> (Arc<Notify>, tokio::task::JoinHandle<()>) {
    let home = s.home();
    let listener = fcx_ipc::bind(&fcx_ipc::SocketAddr::new(home.gateway_socket()))
        .await
        .expect("bind gateway socket");
    let shutdown = Arc::new(Notify::new());
    let fake = Fake {
        started: now_ms() - 65_000,
        home: home.root().display().to_string(),
        shutdown: shutdown.clone(),
    };
    let signal = shutdown.clone();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(GatewayServer::new(fake))
            .serve_with_incoming_shutdown(
                listener.incoming(),
                async move { signal.notified().await },
            )
            .await
            .expect("serve");
    });
    (shutdown, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reports_fcxd_and_each_profile() {
    let s = Scratch::new();
    let (shutdown, task) = serve(&s).await;
    let o = run_async(&s, &["status", "--json"]).await;
    shutdown.notify_one();
    let (out, _) = assert_exit(&o, 0);
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["pid"], 4242);
    assert_eq!(v["version"], "9.9.9");
    assert_eq!(v["protocol_version"], fcx_proto::PROTOCOL_VERSION);
    assert_eq!(v["home"], s.fcx_home().display().to_string());
    let up = v["uptime_secs"].as_u64().expect("uptime");
    assert!((65..120).contains(&up), "{up}");
    let work = &v["profiles"][0];
    assert_eq!(work["name"], "work");
    assert_eq!(work["worker_state"], "ready");
    assert_eq!(work["worker_pid"], 4250);
    assert_eq!(work["restarts"], 2);
    assert_eq!(work["active_runs"], 1);
    assert_eq!(work["queued"], 3);
    assert_eq!(work["channel_state"], "connected");
    assert!(work["last_frame_age_secs"].as_u64().expect("frame age") < 60);
    assert_eq!(work["surfaces"][0], "feishu");
    assert_eq!(work["last_error"], Value::Null);
    let dev = &v["profiles"][1];
    assert_eq!(dev["worker_state"], "backoff");
    assert_eq!(dev["worker_pid"], Value::Null);
    assert_eq!(dev["last_frame_at_ms"], Value::Null);
    assert_eq!(dev["last_error"], "codex binary not found");
    task.await.expect("server task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_text_has_a_line_per_profile() {
    let s = Scratch::new();
    let (shutdown, task) = serve(&s).await;
    let o = run_async(&s, &["status"]).await;
    shutdown.notify_one();
    let (out, _) = assert_exit(&o, 0);
    assert!(out.starts_with("fcxd 9.9.9  pid 4242  up 1m0"), "{out}");
    let work = out
        .lines()
        .find(|l| l.starts_with("work "))
        .expect("work line");
    for want in ["ready", "4250", "connected, last frame"] {
        assert!(work.contains(want), "{work}");
    }
    assert!(
        out.contains("dev: last error: codex binary not found"),
        "{out}"
    );
    task.await.expect("server task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_json_lists_every_process() {
    let s = Scratch::new();
    let (shutdown, task) = serve(&s).await;
    let json = run_async(&s, &["ps", "--json"]).await;
    let table = run_async(&s, &["ps"]).await;
    shutdown.notify_one();
    let (out, _) = assert_exit(&json, 0);
    let v: Value = serde_json::from_str(&out).expect("a JSON array");
    let procs = v.as_array().expect("array");
    assert_eq!(procs.len(), 3);
    assert_eq!(procs[0]["id"], "g");
    assert_eq!(procs[0]["kind"], "fcxd");
    assert_eq!(procs[0]["profile"], Value::Null);
    assert_eq!(procs[2]["id"], "r:7f3a");
    assert_eq!(procs[2]["kind"], "codex");
    assert_eq!(procs[2]["pid"], 4300);
    assert_eq!(procs[2]["profile"], "work");
    assert_eq!(procs[2]["scope"], "chat:oc_1");
    assert_eq!(procs[2]["detail"], "exec, 2 tools");
    assert!(procs[2]["age_secs"].as_u64().expect("age") >= 65);
    let (out, _) = assert_exit(&table, 0);
    assert!(out.starts_with("ID "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("r:7f3a") && l.contains("chat:oc_1") && l.contains("ago")),
        "{out}"
    );
    task.await.expect("server task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_worker_prints_the_answer_or_the_refusal() {
    let s = Scratch::new();
    let (shutdown, task) = serve(&s).await;
    let ok = run_async(&s, &["restart-worker", "work"]).await;
    let refused = run_async(&s, &["restart-worker", "nope"]).await;
    shutdown.notify_one();
    let (out, _) = assert_exit(&ok, 0);
    assert_eq!(out.trim(), "worker of profile `work` restarted (pid 4251)");
    let (_, err) = assert_exit(&refused, 1);
    assert_eq!(
        err.trim(),
        "fcxd could not restart the worker of profile `nope`: no profile named `nope`"
    );
    task.await.expect("server task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_lists_what_changed_and_fails_when_a_profile_could_not_start() {
    let s = Scratch::new();
    let (shutdown, task) = serve(&s).await;
    let text = run_async(&s, &["reload"]).await;
    let json = run_async(&s, &["reload", "--json"]).await;
    shutdown.notify_one();
    let (out, _) = assert_exit(&text, 1);
    assert_eq!(
        out,
        "added: new\nrestarted: work\nunchanged: dev\nfailed: bad: app cli_x is served by another fcx home\n"
    );
    let (out, _) = assert_exit(&json, 1);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["added"][0], "new");
    assert_eq!(v["removed"].as_array().map(Vec::len), Some(0));
    task.await.expect("server task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_until_fcxd_is_gone() {
    let s = Scratch::new();
    let (_shutdown, task) = serve(&s).await;
    let o = run_async(&s, &["stop"]).await;
    let (out, _) = assert_exit(&o, 0);
    assert_eq!(out.trim(), "fcxd is stopping... stopped");
    task.await.expect("server task");
    assert_not_running(&s, &["status"]);
}
