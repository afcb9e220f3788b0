//! `fcxctl completions SHELL` for the four shells, and `--json` on every
//! read verb that works without fcxd (status and ps: tests/cli.rs) giving one
//! parseable JSON document.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

mod common;

use common::{Scratch, assert_exit};

#[test]
fn completions_cover_every_verb_for_each_shell() {
    let s = Scratch::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef fcxctl"),
        ("fish", "complete -c fcxctl"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (out, _) = assert_exit(&s.run(&["completions", shell]), 0);
        assert!(out.contains(marker), "{shell}: {out}");
        for verb in ["doctor", "service", "secret", "init", "logs"] {
            assert!(out.contains(verb), "{shell} lacks {verb}");
        }
    }
    assert_exit(&s.run(&["completions", "tcsh"]), 2);
}

#[test]
fn every_read_verb_prints_json() {
    let s = Scratch::new();
    s.write_config(&format!(
        "[profiles.work.codex]\nbinary = \"{}\"\napi_key = \"env:FCX_JSON_TEST_KEY\"\n\
         [profiles.work.workspaces]\ndefault = \"{}\"\n",
        s.fake_codex().display(),
        s.workspace().display()
    ));
    std::fs::create_dir_all(s.fcx_home().join("logs")).expect("logs");
    std::fs::write(
        s.fcx_home().join("logs/fcxd.log"),
        "{\"timestamp\":\"2026-01-01T00:00:00Z\",\"level\":\"INFO\",\"message\":\"x\"}\n",
    )
    .expect("log");
    let verbs: &[&[&str]] = &[
        &["doctor", "--json"],
        &["config", "check", "--json"],
        &["config", "path", "--json"],
        &["secret", "list", "--json"],
        &["keys", "list", "--json"],
        &["sessions", "list", "--json"],
        &["runs", "list", "--json"],
        &["service", "status", "--json"],
    ];
    for args in verbs {
        let o = s
            .command(args)
            .env("FCX_JSON_TEST_KEY", "sk-json-test")
            .output()
            .expect("run");
        let out = String::from_utf8_lossy(&o.stdout);
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{args:?} is not JSON ({e}): {out}"));
        assert!(!out.contains("sk-json-test"), "{args:?} printed the key");
    }
    let (out, _) = assert_exit(&s.run(&["logs", "--json"]), 0);
    for l in out.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("logs --json: JSON lines");
    }
    let (out, _) = assert_exit(
        &s.command(&["config", "check", "--json"])
            .env("FCX_JSON_TEST_KEY", "sk-json-test")
            .output()
            .expect("run"),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["ok"], true, "{out}");
    assert!(
        v["checks"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["check"] == "workspace" && c["status"] == "ok")),
        "{out}"
    );
}
