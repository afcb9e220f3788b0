use super::*;

struct Ws {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
    home: PathBuf,
}

fn ws() -> Ws {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canon");
    let ws = root.join("ws");
    let home = root.join("fcx-home");
    std::fs::create_dir_all(ws.join("out")).expect("ws");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(ws.join("out/report.txt"), b"r").expect("write");
    std::fs::write(root.join("outside.txt"), b"o").expect("write");
    Ws {
        _dir: dir,
        root,
        ws,
        home,
    }
}

#[test]
fn paths_resolve_from_the_workspace() {
    let w = ws();
    let (real, rel) = resolve(&w.ws, &w.home, "out/report.txt").expect("inside");
    assert_eq!(real, w.ws.join("out/report.txt"));
    assert_eq!(rel, "out/report.txt");
    // `..` that stays inside, and an absolute path inside, are fine.
    let (real, _) = resolve(&w.ws, &w.home, "out/../out/report.txt").expect("inside");
    assert_eq!(real, w.ws.join("out/report.txt"));
    let abs = w.ws.join("out/report.txt").display().to_string();
    assert!(resolve(&w.ws, &w.home, &abs).is_ok());
}

#[test]
fn paths_outside_the_workspace_are_refused() {
    let w = ws();
    for arg in [
        "../outside.txt".to_string(),
        "out/../../outside.txt".to_string(),
        w.root.join("outside.txt").display().to_string(),
        "/etc/passwd".to_string(),
        "../missing-outside.txt".to_string(),
    ] {
        assert_eq!(
            resolve(&w.ws, &w.home, &arg).err(),
            Some(Refused::Outside),
            "{arg}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_is_judged_by_where_it_points() {
    let w = ws();
    std::os::unix::fs::symlink(w.root.join("outside.txt"), w.ws.join("escape")).expect("link");
    std::os::unix::fs::symlink(&w.root, w.ws.join("up")).expect("link");
    std::os::unix::fs::symlink(w.ws.join("out/report.txt"), w.ws.join("inside")).expect("link");
    assert_eq!(
        resolve(&w.ws, &w.home, "escape").err(),
        Some(Refused::Outside)
    );
    assert_eq!(
        resolve(&w.ws, &w.home, "up/outside.txt").err(),
        Some(Refused::Outside)
    );
    let (real, _) = resolve(&w.ws, &w.home, "inside").expect("a link inside stays inside");
    assert_eq!(real, w.ws.join("out/report.txt"));
}

#[test]
fn missing_files_folders_and_fcx_home_are_refused() {
    let w = ws();
    assert_eq!(
        resolve(&w.ws, &w.home, "out/nope.txt").err(),
        Some(Refused::Missing)
    );
    assert_eq!(resolve(&w.ws, &w.home, ".").err(), Some(Refused::Directory));
    assert_eq!(resolve(&w.ws, &w.home, "").err(), Some(Refused::Missing));
    // A folder resolves; opening it is what refuses it.
    let (real, _) = resolve(&w.ws, &w.home, "out").expect("resolves");
    assert_eq!(
        crate::staging::open_regular(&real).err(),
        Some(Refused::Directory)
    );
    // fcx's home inside a workspace is still fcx's.
    let home_inside = w.ws.join(".fcx-home");
    std::fs::create_dir_all(&home_inside).expect("home");
    std::fs::write(home_inside.join("config.toml"), b"x").expect("write");
    assert_eq!(
        resolve(&w.ws, &home_inside, ".fcx-home/config.toml").err(),
        Some(Refused::Private)
    );
}

mod through_the_router {
    use std::sync::Arc;

    use fcx_config::RunsConfig;
    use fcx_proto::v1 as pb;
    use tokio_util::sync::CancellationToken;

    use crate::catalog::Catalog;
    use crate::router::{Deps, Router};
    use crate::scheduler::Scheduler;
    use crate::testkit::{self, FakeExec, Kit, USER, private};

    fn setup() -> (Kit, Router) {
        let kit = testkit::kit(RunsConfig::default());
        let (exec, _rx) = FakeExec::new();
        let sched = Arc::new(Scheduler::new(
            kit.ctx.clone(),
            exec,
            CancellationToken::new(),
        ));
        let catalog = Arc::new(Catalog::new(kit.ctx.clone()));
        let router = Router::new(Deps::new(kit.ctx.clone(), catalog, sched));
        router.gate().reload().expect("lists");
        (kit, router)
    }

    fn file_outs(kit: &Kit) -> Vec<(pb::WorkerEvent, pb::FileOut)> {
        kit.events()
            .into_iter()
            .filter_map(|e| match &e.kind {
                Some(pb::worker_event::Kind::FileOut(f)) => Some((e.clone(), f.clone())),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_user_sendfile_stages_the_file_and_emits_a_file_out() {
        let (kit, router) = setup();
        std::fs::write(kit.dir.path().join("ws/a.txt"), b"abc").expect("write");
        router
            .deliver(private("e1", USER, "/sendfile a.txt"))
            .expect("handled");
        let outs = file_outs(&kit);
        assert_eq!(outs.len(), 1, "{:?}", kit.events());
        let (ev, f) = &outs[0];
        assert_eq!((ev.reply_to.as_str(), ev.run_id.as_str()), ("om_e1", ""));
        assert_eq!(
            (f.name.as_str(), f.size, f.source.as_str()),
            ("a.txt", 3, "a.txt")
        );
        let staged = kit.ctx.home.profile("p").outgoing_dir().join(&f.staged);
        assert_eq!(std::fs::read(staged).expect("staged"), b"abc");
        assert!(kit.replies().is_empty(), "no extra message on success");
    }

    #[tokio::test]
    async fn without_the_gateway_capability_or_on_the_console_nothing_is_staged() {
        let (kit, router) = setup();
        std::fs::write(kit.dir.path().join("ws/a.txt"), b"abc").expect("write");
        router.set_gateway_caps(vec![fcx_proto::caps::RECONNECT.into()]);
        router
            .deliver(private("e1", USER, "/sendfile a.txt"))
            .expect("handled");
        let r = kit.replies().pop().expect("a reply");
        assert!(!r.ok && r.body.contains("cannot send files"), "{r:?}");
        router.set_gateway_caps(
            fcx_proto::caps::GATEWAY
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        let mut console = private("e2", USER, "/sendfile a.txt");
        console.chat_type = pb::ChatType::Console as i32;
        router.deliver(console).expect("handled");
        let r = kit.replies().pop().expect("a reply");
        assert!(!r.ok, "{r:?}");
        assert!(file_outs(&kit).is_empty());
    }

    #[tokio::test]
    async fn a_refusal_names_the_path_and_the_reason() {
        let (kit, router) = setup();
        router
            .deliver(private("e1", USER, "/sendfile ../state.db"))
            .expect("handled");
        let r = kit.replies().pop().expect("a reply");
        assert_eq!(r.command(), pb::CommandName::Sendfile);
        assert!(!r.ok);
        assert!(
            r.body.contains("`../state.db`") && r.body.contains("outside the workspace"),
            "{r:?}"
        );
        assert!(file_outs(&kit).is_empty());
    }
}
