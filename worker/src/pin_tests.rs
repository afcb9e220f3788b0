use std::path::Path;

use fcx_config::Home;

use super::*;
use crate::policy::{PolicyError, workspace};

fn home_in(d: &Path) -> Home {
    Home::with_user_home(d.join("fcx"), d.to_path_buf())
}

#[test]
fn a_pinned_workspace_swapped_for_a_symlink_or_another_directory_is_refused() {
    let d = tempfile::tempdir().expect("tempdir");
    let ws = d.path().join("proj");
    std::fs::create_dir(&ws).expect("mkdir");
    let real = std::fs::canonicalize(&ws).expect("real");
    let p = pin(&real).expect("pin");
    check(&ws, &p).expect("unchanged");

    // Replaced by a symlink to somewhere else.
    std::fs::create_dir(d.path().join("elsewhere")).expect("mkdir");
    std::fs::remove_dir(&ws).expect("rm");
    std::os::unix::fs::symlink(d.path().join("elsewhere"), &ws).expect("symlink");
    let e = check(&ws, &p).expect_err("swapped for a symlink");
    assert!(
        matches!(&e, PolicyError::Moved { why, .. } if why.contains("elsewhere")),
        "{e}"
    );
    assert!(e.to_string().contains("changed since it was chosen"), "{e}");

    // Replaced by another directory at the same path (made while the
    // pinned one still existed, so it cannot reuse its inode).
    std::fs::remove_file(&ws).expect("rm link");
    std::fs::rename(d.path().join("elsewhere"), &ws).expect("move another one in");
    let e = check(&ws, &p).expect_err("another directory");
    assert!(
        matches!(&e, PolicyError::Moved { why, .. } if why.contains("replaced")),
        "{e}"
    );
}

#[test]
fn workspaces_under_world_writable_parents_are_refused_unless_sticky_and_ours() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().expect("tempdir");
    let home = home_in(d.path());
    let open = d.path().join("open");
    std::fs::create_dir_all(open.join("proj")).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let e = workspace(&open.join("proj"), &home).expect_err("world-writable parent");
    assert!(
        matches!(&e, PolicyError::Unsafe { why, .. } if why.contains("writable by every user")),
        "{e}"
    );
    // Sticky (like /tmp): others cannot rename what is ours in it.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    workspace(&open.join("proj"), &home).expect("sticky and ours");
}

#[test]
fn workspaces_of_other_users_are_refused() {
    use std::os::unix::fs::chown;
    let d = tempfile::tempdir().expect("tempdir");
    let home = home_in(d.path());
    let theirs = d.path().join("theirs");
    std::fs::create_dir_all(theirs.join("proj")).expect("mkdir");
    // Only root can give a directory away; elsewhere this case is untestable.
    if chown(&theirs, Some(4242), None).is_err() {
        eprintln!("not root: cannot hand a directory to another user; skipped");
        return;
    }
    for p in [theirs.clone(), theirs.join("proj")] {
        let e = workspace(&p, &home).expect_err("another user's");
        assert!(
            matches!(&e, PolicyError::Unsafe { why, .. } if why.contains("another user")),
            "{}: {e}",
            p.display()
        );
    }
}

#[test]
fn home_dot_directories_and_path_directories_are_too_broad() {
    let d = tempfile::tempdir().expect("tempdir");
    let home = home_in(d.path());
    for sub in [".ssh", ".config/systemd/user", ".codex", ".local/bin"] {
        let p = d.path().join(sub);
        std::fs::create_dir_all(&p).expect("mkdir");
        let e = workspace(&p, &home).expect_err(sub);
        assert!(e.to_string().contains("hidden directory"), "{sub}: {e}");
    }
    let first_on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.is_dir() && d.is_absolute()));
    if let Some(dir) = first_on_path {
        let e = workspace(&dir, &home).expect_err("on PATH");
        assert!(
            matches!(e, PolicyError::TooBroad { .. }),
            "{}: {e}",
            dir.display()
        );
    }
}
