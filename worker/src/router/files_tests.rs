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
