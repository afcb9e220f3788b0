//! The pool with a stand-in child (a shell loop that, like app-server,
//! ends at stdin EOF): what is kept, what is handed back, what is shut
//! down and when. The real server is exercised end to end (tests/).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Pool;
use crate::runner::app_server::live::{Live, launch_of};
use crate::runner::{ChildEnv, RunSpec, Sandbox};

const BOUND: Duration = Duration::from_secs(30);

fn stand_in(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-app-server");
    std::fs::write(&p, "#!/bin/sh\nwhile read -r line; do :; done\n").expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

fn spec(dir: &Path, model: &str) -> RunSpec {
    RunSpec {
        run_id: "r".into(),
        prompt: String::new(),
        cwd: dir.to_path_buf(),
        sandbox: Sandbox::ReadOnly,
        network: false,
        model: Some(model.into()),
        resume_thread: None,
        images: Vec::new(),
        overrides: Vec::new(),
        binary: stand_in(dir),
        env: ChildEnv::default(),
        stop_grace: Duration::from_millis(300),
        approval: Default::default(),
        warm_key: None,
    }
}

async fn child(dir: &Path, model: &str, thread: &str) -> Live {
    let mut l = Live::spawn(&spec(dir, model), Duration::from_millis(300), 1 << 20)
        .await
        .expect("spawn");
    l.thread = Some(thread.into());
    l
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

async fn gone(pid: u32) {
    tokio::time::timeout(BOUND, async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the child ended");
}

fn pool(idle: Duration, max: usize) -> Arc<Pool> {
    Pool::new(idle, max, None, CancellationToken::new())
}

#[tokio::test]
async fn the_same_launch_and_thread_get_the_same_child_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = pool(Duration::from_secs(600), 4);
    let live = child(dir.path(), "m", "th1").await;
    let pid = live.pid;
    assert!(p.put("chat:a", live).is_none(), "kept");
    assert_eq!(p.idle_count(), 1);
    // Another scope does not get it.
    let launch = launch_of(&spec(dir.path(), "m"));
    assert!(p.take("chat:b", launch, Some("th1")).await.is_none());
    let back = p.take("chat:a", launch, Some("th1")).await.expect("reused");
    assert_eq!(back.pid, pid);
    assert!(alive(pid));
    assert_eq!(p.idle_count(), 0);
    let mut back = back;
    let mut exit = None;
    back.shutdown(&mut exit, None, "test").await;
    assert!(exit.is_some());
    gone(pid).await;
}

#[tokio::test]
async fn another_launch_or_thread_shuts_the_kept_child_down() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = pool(Duration::from_secs(600), 4);
    let other_model = launch_of(&spec(dir.path(), "other"));
    let same = launch_of(&spec(dir.path(), "m"));
    for (launch, thread) in [
        (other_model, Some("th1")),
        (same, Some("th2")),
        (same, None),
    ] {
        let live = child(dir.path(), "m", "th1").await;
        let pid = live.pid;
        assert!(p.put("chat:a", live).is_none());
        assert!(p.take("chat:a", launch, thread).await.is_none());
        gone(pid).await;
        assert_eq!(p.idle_count(), 0);
    }
}

#[tokio::test]
async fn idle_timeout_eviction_release_crash_and_shutdown_end_children() {
    let dir = tempfile::tempdir().expect("tmp");
    // The idle timeout.
    let p = pool(Duration::from_millis(50), 4);
    let live = child(dir.path(), "m", "t").await;
    let pid = live.pid;
    assert!(p.put("chat:a", live).is_none());
    gone(pid).await;
    tokio::time::timeout(BOUND, async {
        while p.idle_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("forgotten");

    // At most max_idle: the oldest goes.
    let p = pool(Duration::from_secs(600), 1);
    let a = child(dir.path(), "m", "t").await;
    let b = child(dir.path(), "m", "t").await;
    let (pa, pb) = (a.pid, b.pid);
    assert!(p.put("chat:a", a).is_none());
    assert!(p.put("chat:b", b).is_none());
    gone(pa).await;
    assert!(alive(pb));
    assert_eq!(p.idle_count(), 1);

    // A new session.
    p.release("chat:b");
    gone(pb).await;

    // A child that dies while idle is only dropped.
    let c = child(dir.path(), "m", "t").await;
    let pc = c.pid;
    assert!(p.put("chat:c", c).is_none());
    crate::runner::process::signal_group(pc, crate::runner::process::StopSignal::Kill);
    gone(pc).await;
    let launch = launch_of(&spec(dir.path(), "m"));
    assert!(p.take("chat:c", launch, Some("t")).await.is_none());

    // The worker's end.
    let d = child(dir.path(), "m", "t").await;
    let pd = d.pid;
    assert!(p.put("chat:d", d).is_none());
    tokio::time::timeout(BOUND, p.shutdown())
        .await
        .expect("shut down");
    assert!(!alive(pd));
    // Nothing is kept after that.
    let e = child(dir.path(), "m", "t").await;
    let mut e = p.put("chat:e", e).expect("not kept after shutdown");
    let mut exit = None;
    e.shutdown(&mut exit, None, "test").await;
}

#[tokio::test]
async fn nothing_is_kept_with_idle_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = pool(Duration::ZERO, 4);
    let live = child(dir.path(), "m", "t").await;
    let mut back = p.put("chat:a", live).expect("given back");
    let mut exit = None;
    back.shutdown(&mut exit, None, "test").await;
    assert!(exit.is_some());
}
