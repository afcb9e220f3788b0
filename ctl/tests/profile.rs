//! `fcxctl profile add|list|show|remove|enable|disable` on config.toml:
//! comments and other profiles stay as written, every edit validates, and
//! an edit that cannot be made safely changes nothing.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

mod common;

use common::{Scratch, assert_exit};
use fcx_tests::fake_feishu::FakeFeishu;
use serde_json::Value;

fn base(s: &Scratch) -> String {
    format!(
        "# my notes: keep me\nschema_version = 1\n\n[profiles.main]\nenabled = true # the first\n\n\
         # main's codex\n[profiles.main.codex]\nauth = \"inherit-user\"\n\n\
         [profiles.main.workspaces]\ndefault = \"{ws}\"\n",
        ws = s.workspace().display()
    )
}

fn config(s: &Scratch) -> String {
    std::fs::read_to_string(s.fcx_home().join("config.toml")).expect("config")
}

#[test]
fn add_disable_enable_remove_keep_comments_and_the_other_profile() {
    let s = Scratch::new();
    s.fake_codex();
    s.write_config(&base(&s));
    let ws = s.workspace().display().to_string();
    let (out, _) = assert_exit(
        &s.run(&[
            "profile",
            "add",
            "side",
            "--non-interactive",
            "--workspace",
            &ws,
            "--codex-auth",
            "codex-home",
            "--no-app",
        ]),
        0,
    );
    assert!(out.contains("added profile `side`"), "{out}");
    let text = config(&s);
    assert!(
        text.starts_with(&base(&s)),
        "the old text is kept as is:\n{text}"
    );
    assert!(
        text.contains("[profiles.side.codex]\nauth = \"codex-home\"\n"),
        "{text}"
    );

    let (out, _) = assert_exit(&s.run(&["profile", "list", "--json"]), 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    let names: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["main", "side"]);

    let (out, _) = assert_exit(&s.run(&["profile", "disable", "main"]), 0);
    assert!(out.contains("disabled profile `main`"), "{out}");
    let text = config(&s);
    assert!(
        text.contains("[profiles.main]\nenabled = false\n"),
        "{text}"
    );
    assert!(text.contains("# my notes: keep me\n") && text.contains("# main's codex\n"));
    let (out, _) = assert_exit(&s.run(&["profile", "list"]), 0);
    let main_line = out.lines().find(|l| l.starts_with("main")).expect("main");
    assert!(main_line.contains("no"), "{out}");

    assert_exit(&s.run(&["profile", "enable", "main"]), 0);
    assert!(config(&s).contains("[profiles.main]\nenabled = true\n"));

    let (out, _) = assert_exit(&s.run(&["profile", "remove", "side"]), 0);
    assert!(out.contains("removed profile `side`"), "{out}");
    let text = config(&s);
    assert!(!text.contains("side"), "{text}");
    assert!(
        text.contains("# main's codex\n[profiles.main.codex]"),
        "{text}"
    );

    // The last profile is disabled, not removed.
    let (_, err) = assert_exit(&s.run(&["profile", "remove", "main"]), 1);
    assert!(err.contains("the only profile"), "{err}");
}

#[test]
fn show_names_references_never_values() {
    let s = Scratch::new();
    let key = s.secret_file("key", "sk-never-shown-0001", 0o600);
    s.write_config(&format!(
        "[profiles.main.codex]\nauth = \"api-key\"\napi_key = \"file:{}\"\n\
         [profiles.main.workspaces]\ndefault = \"{}\"\n",
        key.display(),
        s.workspace().display()
    ));
    let (out, _) = assert_exit(&s.run(&["profile", "show", "main"]), 0);
    assert!(out.contains("codex.api_key"), "{out}");
    assert!(out.contains(&format!("file:{}", key.display())), "{out}");
    assert!(!out.contains("sk-never-shown"), "{out}");
    let (out, _) = assert_exit(&s.run(&["profile", "show", "main", "--json"]), 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["codex"]["auth"], "api-key");
    let (_, err) = assert_exit(&s.run(&["profile", "show", "nope"]), 1);
    assert!(err.contains("no profile named `nope`"), "{err}");
}

#[test]
fn an_edit_that_cannot_be_made_safely_changes_nothing() {
    let s = Scratch::new();
    // Profile `a` lives in an inline table: no [profiles.a] header to edit.
    let text = format!(
        "[profiles]\na = {{ enabled = true, workspaces = {{ default = \"{ws}\" }}, codex = {{ auth = \"inherit-user\" }} }}\n\
         [profiles.b.workspaces]\ndefault = \"{ws}\"\n[profiles.b.codex]\nauth = \"inherit-user\"\n",
        ws = s.workspace().display()
    );
    s.write_config(&text);
    let (_, err) = assert_exit(&s.run(&["profile", "disable", "a"]), 1);
    assert!(err.contains("cannot edit profile `a`"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(config(&s), text);
    let (_, err) = assert_exit(&s.run(&["profile", "remove", "a"]), 1);
    assert!(err.contains("cannot edit profile `a`"), "{err}");
    assert_eq!(config(&s), text);
}

#[tokio::test]
async fn add_checks_the_app_live_and_refuses_a_name_in_use() {
    let fake = FakeFeishu::start().await.expect("fake feishu");
    let s = Scratch::new();
    s.write_config(&base(&s));
    let secret = s.secret_file("app-secret", fake.app_secret(), 0o600);
    let secret_ref = format!("file:{}", secret.display());
    let ws = s.workspace().display().to_string();
    let url = fake.base_url();
    let args = |name: &'static str, secret: String| {
        vec![
            "profile".to_string(),
            "add".into(),
            name.into(),
            "--non-interactive".into(),
            "--workspace".into(),
            ws.clone(),
            "--codex-auth".into(),
            "inherit-user".into(),
            "--tenant".into(),
            "feishu".into(),
            "--app-id".into(),
            fake.app_id().into(),
            "--app-secret".into(),
            secret,
            "--base-url".into(),
            url.clone(),
        ]
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        s.run_async_owned(&a)
    };
    let wrong = s.secret_file("wrong", "not-the-secret", 0o600);
    let o = run(args("bot", format!("file:{}", wrong.display()))).await;
    let (_, err) = assert_exit(&o, 1);
    assert!(err.contains("refused these credentials"), "{err}");
    assert!(!config(&s).contains("bot"), "nothing written on refusal");

    let o = run(args("bot", secret_ref.clone())).await;
    let (out, _) = assert_exit(&o, 0);
    assert!(out.contains("credentials ok"), "{out}");
    let text = config(&s);
    assert!(
        text.contains(&format!("app_id = \"{}\"", fake.app_id())),
        "{text}"
    );

    let o = run(args("main", secret_ref)).await;
    let (_, err) = assert_exit(&o, 1);
    assert!(err.contains("already has a profile `main`"), "{err}");
}
