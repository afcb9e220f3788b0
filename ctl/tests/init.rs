//! `fcxctl init` against the fake Feishu platform, with flags and at a terminal: the
//! credentials are checked live before anything is written, the App Secret
//! goes to the keystore, the written config validates (doctor passes), and
//! an existing config is kept unless --force.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::{Scratch, assert_exit};
use fcx_tests::fake_feishu::FakeFeishu;

const OWNER: &str = "ou_owner0000000000000000000000001";

async fn init(s: &Scratch, args: &[&str], stdin: &str) -> std::process::Output {
    let mut full = vec!["init", "--non-interactive"];
    full.extend_from_slice(args);
    let mut child = tokio::process::Command::from(s.command(&full))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    // fcxctl may finish (or refuse) before it reads all of stdin: a closed
    // pipe is its answer, which the output assertions judge.
    if let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut input, stdin.as_bytes()).await {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "stdin: {e}");
    }
    drop(input);
    child.wait_with_output().await.expect("wait")
}

fn app_args<'a>(fake: &'a FakeFeishu, ws: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "--profile",
        "work",
        "--workspace",
        ws,
        "--codex-auth",
        "api-key",
        "--api-key",
        "env:OPENAI_API_KEY",
        "--tenant",
        "feishu",
        "--app-id",
        fake.app_id(),
        "--app-secret-stdin",
        "--base-url",
        url,
    ]
}

#[tokio::test]
async fn init_checks_credentials_live_then_writes_a_config_doctor_accepts() {
    let fake = FakeFeishu::builder()
        .app_owner(OWNER)
        .start()
        .await
        .expect("fake feishu");
    let s = Scratch::new();
    s.fake_codex();
    let ws = s.workspace().display().to_string();
    let url = fake.base_url();
    let o = init(&s, &app_args(&fake, &ws, &url), fake.app_secret()).await;
    let (out, err) = assert_exit(&o, 0);
    assert!(!out.contains(fake.app_secret()) && !err.contains(fake.app_secret()));
    assert!(out.contains(&format!("bot `{}`", fake.bot_name())), "{out}");
    assert!(out.contains("keystore:work-app-secret"), "{out}");
    assert!(out.contains("next: fcxctl doctor"), "{out}");

    let path = s.fcx_home().join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config written");
    assert!(text.contains("schema_version = 1"), "{text}");
    assert!(
        text.contains("app_secret = \"keystore:work-app-secret\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("owner = \"{OWNER}\"")),
        "owner learned: {text}"
    );
    assert!(!text.contains(fake.app_secret()), "{text}");
    #[cfg(unix)]
    assert_eq!(common::file_mode(&path), 0o600);
    let store = std::fs::read_to_string(s.fcx_home().join("secrets/keystore.json")).expect("ks");
    assert!(!store.contains(fake.app_secret()));

    // What init wrote is what doctor checks: everything passes (the API key
    // is an env: reference, given here; the model API is pointed at a
    // server that answers).
    let mut with_api = text.clone();
    with_api.push_str(&common::model_api_section("work", &url));
    std::fs::write(&path, &with_api).expect("model api");
    let o = tokio::process::Command::from(s.command(&["doctor"]))
        .env("OPENAI_API_KEY", "sk-test-init")
        .output()
        .await
        .expect("doctor");
    let (out, _) = assert_exit(&o, 0);
    assert!(out.contains("[ok  ] feishu token"), "{out}");
    assert!(out.contains("keystore:work-app-secret resolves"), "{out}");
    // The env: key works here, not in the service installed next: said.
    assert!(
        out.contains(
            "[warn] secret: profiles.work.codex.api_key = env:OPENAI_API_KEY resolves in this shell"
        ) && out.contains("`fcxctl secret set ID`"),
        "{out}"
    );

    // A second init keeps the file unless --force, which keeps a backup.
    let o = init(&s, &app_args(&fake, &ws, &url), fake.app_secret()).await;
    let (_, err) = assert_exit(&o, 1);
    assert!(
        err.contains("does not overwrite") && err.contains("--force"),
        "{err}"
    );
    let mut forced = app_args(&fake, &ws, &url);
    forced.push("--force");
    assert_exit(&init(&s, &forced, fake.app_secret()).await, 0);
    assert_eq!(
        std::fs::read_to_string(s.fcx_home().join("config.toml.bak")).expect("backup"),
        with_api
    );
}

#[tokio::test]
async fn init_writes_nothing_when_the_platform_refuses_the_credentials() {
    let fake = FakeFeishu::start().await.expect("fake feishu");
    let s = Scratch::new();
    let ws = s.workspace().display().to_string();
    let url = fake.base_url();
    let o = init(&s, &app_args(&fake, &ws, &url), "wrong-secret-NOT-PRINTED").await;
    let (out, err) = assert_exit(&o, 1);
    assert!(err.contains("refused these credentials"), "{err}");
    assert!(err.contains("Credentials & Basic Info"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!out.contains("wrong-secret") && !err.contains("wrong-secret"));
    assert!(!s.fcx_home().join("config.toml").exists());
    assert!(!s.fcx_home().join("secrets/keystore.json").exists());
}

#[test]
fn init_names_missing_flags_and_a_missing_workspace() {
    let s = Scratch::new();
    let o = s
        .command(&["init", "--non-interactive"])
        .output()
        .expect("run");
    let (_, err) = assert_exit(&o, 1);
    assert!(err.contains("--workspace is required"), "{err}");
    let gone = s.path().join("gone").display().to_string();
    let o = s
        .command(&[
            "init",
            "--non-interactive",
            "--workspace",
            &gone,
            "--no-app",
        ])
        .output()
        .expect("run");
    let (_, err) = assert_exit(&o, 1);
    assert!(err.contains("mkdir -p"), "{err}");
    // Console only: no app, no network; the written file validates.
    let ws = s.workspace().display().to_string();
    let o = s
        .command(&[
            "init",
            "--non-interactive",
            "--workspace",
            &ws,
            "--no-app",
            "--codex-auth",
            "inherit-user",
        ])
        .output()
        .expect("run");
    assert_exit(&o, 0);
    let text = std::fs::read_to_string(s.fcx_home().join("config.toml")).expect("config");
    assert!(text.contains("auth = \"inherit-user\""), "{text}");
    assert!(!text.contains("[profiles.default.app]"), "{text}");
}

#[test]
fn a_config_from_a_newer_layout_is_refused_with_its_version() {
    let s = Scratch::new();
    s.write_config("schema_version = 2\n");
    let (_, err) = assert_exit(&s.run(&["config", "check"]), 1);
    assert!(err.contains("schema_version"), "{err}");
    assert!(err.contains("2 is not a layout this fcx reads"), "{err}");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(s.fcx_home().join("config.toml"))
        .expect("open");
    f.write_all(b"schema_version = 1\n").expect("write");
    let o = s.run(&["config", "check"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        all.contains("profile `default`"),
        "version 1 is read: {all}"
    );
    assert!(!all.contains("schema_version"), "{all}");
}

/// README's `fcxctl init` as typed at a terminal: every question asked in
/// turn (defaults taken with Enter), the App Secret read without echo,
/// checked live, kept in the keystore. `--base-url` is the one flag,
/// pointing at the fake platform.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn init_at_a_terminal_asks_each_question_and_never_echoes_the_secret() {
    let fake = FakeFeishu::builder()
        .app_owner(OWNER)
        .start()
        .await
        .expect("fake feishu");
    let s = Scratch::new();
    s.fake_codex();
    let ws = s.workspace().display().to_string();
    let url = fake.base_url();
    let (ok, seen) = common::at_terminal(
        &s,
        &["init", "--profile", "work", "--base-url", &url],
        &[
            ("Codex workspace (an existing directory): ", ws.as_str()),
            (
                "Codex auth: api-key, codex-home or inherit-user [api-key]: ",
                "",
            ),
            ("[env:OPENAI_API_KEY]: ", ""),
            ("Connect a Feishu/Lark app? (yes/no) [yes]: ", ""),
            ("Domain: feishu or lark [feishu]: ", ""),
            ("App ID (cli_…): ", fake.app_id()),
            ("App Secret (not shown): ", fake.app_secret()),
        ],
    )
    .await;
    assert!(ok, "{seen}");
    assert!(
        !seen.contains(fake.app_secret()),
        "the secret was echoed: {seen}"
    );
    assert!(
        seen.contains(&format!("bot `{}`", fake.bot_name())),
        "{seen}"
    );
    assert!(seen.contains("keystore:work-app-secret"), "{seen}");
    let text = std::fs::read_to_string(s.fcx_home().join("config.toml")).expect("config");
    assert!(text.contains("api_key = \"env:OPENAI_API_KEY\""), "{text}");
    assert!(
        text.contains(&format!("app_id = \"{}\"", fake.app_id())),
        "{text}"
    );
    assert!(text.contains(&format!("owner = \"{OWNER}\"")), "{text}");
    assert!(!text.contains(fake.app_secret()), "{text}");
}
