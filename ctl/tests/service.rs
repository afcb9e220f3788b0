//! `fcxctl service …` on Linux: the systemd user unit rendered from
//! deploy/ with real paths (verified by systemd-analyze when present), and
//! install/status/start/stop/uninstall driving stand-in systemctl and
//! loginctl that record their arguments (CI has no user manager). Units for
//! launchd and Task Scheduler are rendered on every OS.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, assert_exit};

/// Stand-in fcxd and fcx-worker, where scripts/install.sh would put them.
fn installed(s: &Scratch) -> PathBuf {
    let dir = s.path().join("inst");
    std::fs::create_dir_all(&dir).expect("inst dir");
    for name in ["fcxd", "fcx-worker"] {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("stand-in");
        common::set_mode(&p, 0o755);
    }
    dir.join("fcxd")
}

/// systemctl, loginctl and systemd-analyze that append `name args` to a log.
fn fake_tools(s: &Scratch, linger: &str, systemctl_fails: bool) -> PathBuf {
    let log = s.path().join("calls.log");
    let rec = format!("echo \"${{0##*/}} $*\" >> {}", log.display());
    let systemctl = if systemctl_fails {
        format!("{rec}\necho 'Failed to connect to bus: No medium found' >&2\nexit 1")
    } else {
        format!(
            "{rec}\ncase \"$2\" in is-enabled) echo enabled;; is-active) echo active;; esac\nexit 0"
        )
    };
    s.script("systemctl", &systemctl);
    s.script("loginctl", &format!("{rec}\necho {linger}"));
    s.script("systemd-analyze", &format!("{rec}\nexit 0"));
    log
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn unit(s: &Scratch) -> PathBuf {
    s.user_home().join(".config/systemd/user/fcxd.service")
}

#[test]
fn install_print_renders_the_deploy_template_with_real_paths() {
    let s = Scratch::new();
    let o = s.run(&["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("[info] service: not installed"), "{out}");
    let fcxd = installed(&s);
    let fcxd_arg = fcxd.display().to_string();
    let (out, _) = assert_exit(
        &s.run(&["service", "install", "--print", "--fcxd", &fcxd_arg]),
        0,
    );
    assert!(
        out.contains(&format!("ExecStart=\"{}\"", fcxd.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Environment=\"FCX_HOME={}\"",
            s.fcx_home().display()
        )),
        "{out}"
    );
    assert!(out.contains("Restart=on-failure"), "{out}");
    assert!(out.contains("WantedBy=default.target"), "{out}");
    assert!(!out.contains("ExecStart=%h"), "{out}");
    // Nothing was written.
    assert!(!unit(&s).exists());

    // The real systemd-analyze, when this machine has one.
    let file = s.path().join("fcxd.service");
    std::fs::write(&file, &out).expect("unit file");
    match std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
    {
        Ok(o) => assert!(
            o.status.success(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("systemd-analyze not available ({e}); unit not verified"),
    }
}

#[test]
fn install_writes_verifies_enables_and_explains_linger_then_uninstall_removes() {
    let s = Scratch::new();
    let fcxd = installed(&s);
    let log = fake_tools(&s, "no", false);
    let fcxd_arg = fcxd.display().to_string();
    let (out, _) = assert_exit(&s.run(&["service", "install", "--fcxd", &fcxd_arg]), 0);
    let path = unit(&s);
    let text = std::fs::read_to_string(&path).expect("unit written");
    assert!(text.contains(&format!("ExecStart=\"{}\"", fcxd.display())));
    assert_eq!(
        calls(&log),
        vec![
            format!("systemd-analyze verify {}", path.display()),
            "systemctl --user daemon-reload".to_string(),
            "systemctl --user enable --now fcxd.service".to_string(),
            "loginctl show-user tester --property=Linger --value".to_string(),
        ]
    );
    assert!(out.contains("linger is off"), "{out}");
    assert!(out.contains("loginctl enable-linger tester"), "{out}");

    let (out, _) = assert_exit(&s.run(&["service", "status", "--json"]), 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["installed"], true, "{out}");
    assert_eq!(v["enabled"], "enabled", "{out}");
    assert_eq!(v["active"], "active", "{out}");
    assert_eq!(v["fcxd"], "not running", "{out}");
    // doctor reports the installed unit and the linger it lacks, with the fix.
    let o = s.run(&["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!(
            "[ok  ] service: {} installed, active",
            path.display()
        )),
        "{out}"
    );
    assert!(out.contains("[warn] linger"), "{out}");
    assert!(out.contains("fix: loginctl enable-linger tester"), "{out}");

    std::fs::remove_file(&log).expect("reset log");
    assert_exit(&s.run(&["service", "restart"]), 0);
    assert_exit(&s.run(&["service", "stop"]), 0);
    assert_exit(&s.run(&["service", "start"]), 0);
    assert_exit(&s.run(&["service", "uninstall"]), 0);
    assert!(!path.exists(), "unit removed");
    let c = calls(&log);
    for want in [
        "systemctl --user restart fcxd.service",
        "systemctl --user stop fcxd.service",
        "systemctl --user start fcxd.service",
        "systemctl --user disable --now fcxd.service",
    ] {
        assert!(c.iter().any(|l| l == want), "{want} missing: {c:?}");
    }
    assert_eq!(
        c.last().map(String::as_str),
        Some("systemctl --user daemon-reload")
    );
}

#[test]
fn install_explains_a_missing_user_manager_and_missing_binaries() {
    let s = Scratch::new();
    let fcxd = installed(&s);
    fake_tools(&s, "yes", true);
    let fcxd_arg = fcxd.display().to_string();
    let (_, err) = assert_exit(&s.run(&["service", "install", "--fcxd", &fcxd_arg]), 1);
    assert!(err.contains("cannot reach your user manager"), "{err}");
    assert!(err.contains("su or sudo"), "{err}");

    let gone = s.path().join("nowhere/fcxd").display().to_string();
    let (_, err) = assert_exit(&s.run(&["service", "install", "--fcxd", &gone]), 1);
    assert!(err.contains("scripts/install.sh"), "{err}");
    std::fs::remove_file(s.path().join("inst/fcx-worker")).expect("rm worker");
    let (_, err) = assert_exit(&s.run(&["service", "install", "--fcxd", &fcxd_arg]), 1);
    assert!(err.contains("fcx-worker"), "{err}");
}

#[test]
fn launchd_and_task_scheduler_units_render_with_real_paths() {
    let s = Scratch::new();
    let fcxd = installed(&s);
    let fcxd_arg = fcxd.display().to_string();
    let (plist, _) = assert_exit(
        &s.run(&[
            "service",
            "install",
            "--print",
            "--manager",
            "launchd",
            "--fcxd",
            &fcxd_arg,
        ]),
        0,
    );
    assert!(!plist.contains("__HOME__"), "{plist}");
    assert!(
        plist.contains(&format!("<string>{}</string>", fcxd.display())),
        "{plist}"
    );
    assert!(
        plist.contains(&format!(
            "<string>{}/logs/launchd.stderr.log</string>",
            s.fcx_home().display()
        )),
        "{plist}"
    );
    let (xml, _) = assert_exit(
        &s.run(&[
            "service",
            "install",
            "--print",
            "--manager",
            "task-scheduler",
            "--fcxd",
            &fcxd_arg,
        ]),
        0,
    );
    assert!(!xml.contains("__USER__"), "{xml}");
    assert!(
        xml.contains(&format!("<Command>{}</Command>", fcxd.display())),
        "{xml}"
    );
    assert!(xml.contains("<Arguments>--home &quot;"), "{xml}");
    // Only --print may target another OS's manager.
    let (_, err) = assert_exit(
        &s.run(&[
            "service",
            "install",
            "--manager",
            "launchd",
            "--fcxd",
            &fcxd_arg,
        ]),
        1,
    );
    assert!(err.contains("--print"), "{err}");
}
