//! `fcxctl codex login`: the CLI's own login with the profile's CODEX_HOME.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]
#![cfg(unix)]

mod common;

use common::{Scratch, assert_exit};

fn config(s: &Scratch, auth: &str) {
    s.write_config(&format!(
        "[profiles.work.codex]\nauth = \"{auth}\"\n[profiles.work.workspaces]\ndefault = \"{}\"\n",
        s.workspace().display()
    ));
}

#[test]
fn login_runs_codex_with_the_profiles_own_home() {
    let s = Scratch::new();
    let log = s.path().join("login.log");
    s.script(
        "codex",
        &format!(
            "echo \"$@|$CODEX_HOME|${{CODEX_API_KEY:-none}}\" > {}",
            log.display()
        ),
    );
    config(&s, "codex-home");
    let o = s
        .command(&["codex", "login", "--", "--device-auth"])
        .env("CODEX_API_KEY", "sk-should-not-pass")
        .output()
        .expect("run");
    let (out, _) = assert_exit(&o, 0);
    let dir = s.fcx_home().join("profiles/work/codex-home");
    assert!(
        out.contains(&format!("CODEX_HOME={}", dir.display())),
        "{out}"
    );
    let seen = std::fs::read_to_string(&log).expect("codex ran");
    assert_eq!(
        seen.trim(),
        format!("login --device-auth|{}|none", dir.display())
    );
    assert_eq!(common::file_mode(&dir), 0o700);
}

#[test]
fn login_is_refused_for_a_profile_without_a_home_of_its_own() {
    let s = Scratch::new();
    s.fake_codex();
    config(&s, "inherit-user");
    let (_, err) = assert_exit(&s.run(&["codex", "login"]), 1);
    assert!(err.contains("needs auth = \"codex-home\""), "{err}");
}
