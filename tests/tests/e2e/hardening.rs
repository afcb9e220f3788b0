//! Issue 10's hardening, end to end: what `ps` and `/proc` show of fcx's
//! processes, and the bounds on what outsiders can make fcx hold.

use fcx_tests::harness::{Fcxd, TestHome, codex_setting, processes_mentioning};

/// A profile `default` whose Codex key is an `env:` reference, and a
/// disabled profile whose app secret is one: both variables are in fcxd's
/// environment.
fn env_secret_config(h: &TestHome) -> String {
    let key_line = format!(
        "api_key = \"file:{}\"",
        h.key_file("sk-fake-test-secret-0001").display()
    );
    let base = h
        .fake_codex_config("")
        .replace(&key_line, "api_key = \"env:HARDEN_CODEX_KEY\"");
    assert!(base.contains("env:HARDEN_CODEX_KEY"), "{base}");
    format!(
        "{base}\n[profiles.other]\nenabled = false\n[profiles.other.app]\napp_id = \"cli_other\"\napp_secret = \"env:HARDEN_APP_SECRET\"\n"
    )
}

#[test]
fn a_worker_inherits_no_secret_of_fcxd_but_its_own_codex_key() {
    let h = TestHome::new();
    h.write_config(&env_secret_config(&h));
    let mut f = Fcxd::console_with(
        &h,
        &[
            ("HARDEN_CODEX_KEY", "sk-harden-codex-4471"),
            ("HARDEN_APP_SECRET", "app-secret-harden-5582"),
            ("HARDEN_UNRELATED_TOKEN", "tok-harden-6693"),
        ],
    );
    f.wait_for("fcx console");
    f.send("hello");
    f.wait_for("] completed");
    let recs = h.fake_records();
    assert_eq!(recs[0]["env"]["CODEX_API_KEY"], "sk-harden-codex-4471");
    let workers: Vec<u32> = processes_mentioning(&h.home.display().to_string())
        .into_iter()
        .filter(|p| *p != f.pid())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("fcx-worker"))
        })
        .collect();
    assert_eq!(workers.len(), 1, "one worker: {workers:?}");
    let environ = match std::fs::read(format!("/proc/{}/environ", workers[0])) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        // A worker made not dumpable keeps its environment from everyone.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return,
        Err(e) => panic!("environ: {e}"),
    };
    assert!(environ.contains("PATH="), "read something: {environ}");
    for secret in ["app-secret-harden-5582", "tok-harden-6693"] {
        assert!(!environ.contains(secret), "{secret} reached the worker");
    }
}

#[test]
fn codex_argv_holds_neither_config_overrides_nor_the_workspace() {
    for runner in ["exec", "app-server"] {
        argv_keeps_overrides_and_workspace_off(runner);
    }
}

fn argv_keeps_overrides_and_workspace_off(runner: &str) {
    let h = TestHome::new();
    let config = h.fake_codex_config("").replace(
        "[profiles.default.workspaces]",
        "[profiles.default.codex.config]\n\"model_providers.corp.base_url\" = \"https://override-value-7781.example\"\n[profiles.default.workspaces]",
    );
    h.write_config(&codex_setting(&config, &format!("runner = \"{runner}\"")));
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    f.send("hello");
    f.wait_for("] completed");
    let recs = h.fake_records();
    let rec = &recs[0];
    let argv: Vec<String> = rec["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let ws = h.workspace.display().to_string();
    for a in &argv {
        assert!(
            !a.contains("override-value-7781"),
            "override on argv: {argv:?}"
        );
        assert!(!a.contains(&ws), "workspace on argv: {argv:?}");
        assert!(
            !a.contains("CODEX_API_KEY"),
            "exclude list on argv: {argv:?}"
        );
    }
    // Codex still gets both: the workspace as its working directory, the
    // overrides in the profile file `-p` names (exec) or in thread/start's
    // `config` (app-server, recorded as `configs`).
    assert_eq!(rec["cwd"], ws.as_str());
    let settings = if runner == "exec" {
        rec["profile_config"]
            .as_str()
            .expect("profile file read")
            .to_string()
    } else {
        assert_eq!(rec["args"]["cd"], ws.as_str(), "thread/start's cwd");
        rec["args"]["configs"].to_string()
    };
    assert!(settings.contains("override-value-7781"), "{settings}");
    assert!(settings.contains("CODEX_API_KEY"), "{settings}");
}
