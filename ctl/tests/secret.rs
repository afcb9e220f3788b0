//! `fcxctl secret set|list|remove` and keystore:ID references end to end:
//! values go in through stdin (as scripts pipe them), never come out, and
//! resolve for config check and doctor.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::{Scratch, assert_exit};

const VALUE: &str = "sk-live-KEYSTORE-never-printed-9876";

fn set(s: &Scratch, id: &str, value: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = s.command(&["secret", "set", id]);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // fcxctl refuses a bad id before it reads the value: a closed pipe is
    // its answer, which the output assertions judge.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{value}\n").as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write value: {e}");
    }
    child.wait_with_output().expect("wait")
}

fn keystore_config(s: &Scratch, id: &str) -> String {
    format!(
        "[profiles.work.codex]\nbinary = \"{}\"\napi_key = \"keystore:{id}\"\n\
         [profiles.work.workspaces]\ndefault = \"{}\"\n{}",
        s.fake_codex().display(),
        s.workspace().display(),
        common::model_api_section("work", &common::answering_model_api()),
    )
}

#[test]
fn secret_set_list_remove_round_trip_and_resolve_for_config() {
    let s = Scratch::new();
    let (out, err) = assert_exit(&set(&s, "openai", VALUE, &[]), 0);
    assert!(
        out.contains("use it in config.toml as \"keystore:openai\""),
        "{out}"
    );
    assert!(out.contains("master key: key file"), "{out}");
    assert!(!out.contains(VALUE) && !err.contains(VALUE));

    let store = s.fcx_home().join("secrets/keystore.json");
    let text = std::fs::read_to_string(&store).expect("keystore file");
    assert!(!text.contains(VALUE), "plain value on disk");
    #[cfg(unix)]
    {
        assert_eq!(common::file_mode(&store), 0o600);
        assert_eq!(
            common::file_mode(&s.fcx_home().join("secrets/keystore.key")),
            0o600
        );
        assert_eq!(common::file_mode(&s.fcx_home().join("secrets")), 0o700);
    }

    let (out, _) = assert_exit(&s.run(&["secret", "list"]), 0);
    assert!(out.contains("keystore:openai"), "{out}");
    assert!(!out.contains(VALUE), "{out}");
    let (out, _) = assert_exit(&s.run(&["secret", "list", "--json"]), 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["secrets"][0]["id"], "openai", "{out}");
    assert_eq!(v["master"], "key file", "{out}");

    // The reference resolves where fcxd would resolve it.
    s.write_config(&keystore_config(&s, "openai"));
    let (out, err) = assert_exit(&s.run(&["config", "check"]), 0);
    assert!(out.contains("api key: ok (keystore:openai)"), "{out}");
    assert!(!out.contains(VALUE) && !err.contains(VALUE));
    let (out, _) = assert_exit(&s.run(&["doctor", "--json"]), 0);
    assert!(out.contains("keystore:openai resolves"), "{out}");
    assert!(!out.contains(VALUE));

    let (out, _) = assert_exit(&s.run(&["secret", "remove", "openai"]), 0);
    assert!(out.contains("removed `openai`"), "{out}");
    let (out, _) = assert_exit(&s.run(&["secret", "list"]), 0);
    assert!(!out.contains("keystore:openai"), "{out}");
    let (out, _) = assert_exit(&s.run(&["config", "check"]), 1);
    assert!(out.contains("fcxctl secret set openai"), "{out}");
    let (_, err) = assert_exit(&s.run(&["secret", "remove", "openai"]), 1);
    assert!(err.contains("no secret `openai`"), "{err}");
}

#[test]
fn secret_set_refuses_bad_ids_and_empty_values() {
    let s = Scratch::new();
    let (_, err) = assert_exit(&set(&s, "a/b", VALUE, &[]), 1);
    assert!(err.contains("not a valid id"), "{err}");
    let (_, err) = assert_exit(&set(&s, "empty", "", &[]), 1);
    assert!(err.contains("empty value"), "{err}");
    assert!(!s.fcx_home().join("secrets/keystore.json").exists());
}

#[test]
fn a_passphrase_keystore_needs_the_passphrase_to_resolve() {
    let s = Scratch::new();
    let env = [("FCX_KEYSTORE_PASSPHRASE", "correct horse battery staple")];
    let (out, _) = assert_exit(&set(&s, "app", VALUE, &env), 0);
    assert!(out.contains("master key: FCX_KEYSTORE_PASSPHRASE"), "{out}");
    assert!(!s.fcx_home().join("secrets/keystore.key").exists());
    s.write_config(&keystore_config(&s, "app"));
    let (out, _) = assert_exit(
        &s.command(&["config", "check"])
            .envs(env)
            .output()
            .expect("run"),
        0,
    );
    assert!(out.contains("api key: ok (keystore:app)"), "{out}");
    // Without it (a service whose unit lacks it) the fix is named.
    let (out, _) = assert_exit(&s.run(&["config", "check"]), 1);
    assert!(out.contains("set FCX_KEYSTORE_PASSPHRASE"), "{out}");
    let wrong = [("FCX_KEYSTORE_PASSPHRASE", "wrong")];
    let (out, _) = assert_exit(
        &s.command(&["config", "check"])
            .envs(wrong)
            .output()
            .expect("run"),
        1,
    );
    assert!(out.contains("does not open"), "{out}");
}

#[cfg(unix)]
#[test]
fn exec_references_resolve_with_their_output_and_fail_with_their_reason() {
    let s = Scratch::new();
    let script = s.script("get-key", &format!("echo {VALUE}"));
    s.write_config(&format!(
        "[profiles.work.codex]\nbinary = \"{}\"\napi_key = \"exec:{}\"\n\
         [profiles.work.workspaces]\ndefault = \"{}\"\n",
        s.fake_codex().display(),
        script.display(),
        s.workspace().display()
    ));
    let (out, err) = assert_exit(&s.run(&["config", "check"]), 0);
    assert!(!out.contains(VALUE) && !err.contains(VALUE), "{out}");
    s.script("get-key", "echo 'vault sealed' >&2; exit 2");
    let (out, _) = assert_exit(&s.run(&["config", "check"]), 1);
    assert!(out.contains("vault sealed"), "{out}");
}

/// README's `fcxctl secret set openai` typed at a terminal: the value is
/// asked for without echo and never shown or stored in plain text.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn secret_set_at_a_terminal_reads_the_value_without_echo() {
    let s = Scratch::new();
    let value = "sk-typed-at-a-terminal-0001";
    let (ok, seen) = common::at_terminal(
        &s,
        &["secret", "set", "openai"],
        &[("value for openai (not shown): ", value)],
    )
    .await;
    assert!(ok, "{seen}");
    assert!(!seen.contains(value), "the value was echoed: {seen}");
    let (out, _) = assert_exit(&s.run(&["secret", "list"]), 0);
    assert!(out.contains("openai"), "{out}");
    let store = std::fs::read_to_string(s.fcx_home().join("secrets/keystore.json")).expect("ks");
    assert!(!store.contains(value));
}
