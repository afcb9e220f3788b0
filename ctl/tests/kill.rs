//! `fcxctl kill`: only processes in the registry are signalled.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]
#![cfg(unix)]

mod common;

use common::{Scratch, assert_exit};
use fcx_config::registry::{self, Entry};

fn sleeper() -> std::process::Child {
    std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .expect("sleep")
}

fn entry(id: &str, kind: &str, pid: u32) -> Entry {
    Entry {
        id: id.into(),
        kind: kind.into(),
        pid,
        profile: "work".into(),
        started_at_ms: 1,
        start_ticks: registry::start_ticks(pid),
    }
}

#[test]
fn kill_refuses_a_pid_fcx_did_not_register() {
    let s = Scratch::new();
    let mut child = sleeper();
    let pid = child.id().to_string();
    let (out, err) = assert_exit(&s.run(&["kill", &pid]), 1);
    assert!(out.is_empty());
    assert!(err.contains("is not a running fcx process"), "{err}");
    assert!(child.try_wait().expect("wait").is_none(), "left alone");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kill_signals_a_registered_process_by_id_or_pid_and_forgets_dead_ones() {
    let s = Scratch::new();
    let home = fcx_config::Home::new(s.fcx_home());
    let mut a = sleeper();
    let _ra = registry::register(&home, &entry("w:work", "worker", a.id())).expect("register");
    let (out, _) = assert_exit(&s.run(&["kill", "w:work"]), 0);
    assert!(
        out.contains(&format!("sent SIGTERM to worker w:work (pid {})", a.id())),
        "{out}"
    );
    let status = a.wait().expect("wait");
    assert!(!status.success(), "terminated by the signal");

    let mut b = sleeper();
    let _rb = registry::register(&home, &entry("w:dev", "worker", b.id())).expect("register");
    let (out, _) = assert_exit(&s.run(&["kill", "--force", &b.id().to_string()]), 0);
    assert!(out.contains("SIGKILL"), "{out}");
    b.wait().expect("wait");

    // fcxd killed outright cannot stop its workers: the output says so.
    let mut c = sleeper();
    let _rc = registry::register(&home, &entry("g", "fcxd", c.id())).expect("register");
    let (out, _) = assert_exit(&s.run(&["kill", "--force", "g"]), 0);
    assert!(out.contains("sent SIGKILL to fcxd g"), "{out}");
    assert!(out.contains("its workers go on"), "{out}");
    assert!(!out.contains("it stops its workers"), "{out}");
    c.wait().expect("wait");

    // All are dead now: their entries are pruned, and a kill is refused.
    let (_, err) = assert_exit(&s.run(&["kill", "w:work"]), 1);
    assert!(err.contains("is not a running fcx process"), "{err}");
    assert!(registry::list(&home).is_empty());
}
