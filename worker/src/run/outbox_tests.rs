use super::*;

/// The chat's folder these tests use.
const F: &str = ".fcx/outbox/0123456789ab";

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join(F)).expect("outbox");
    let staging = dir.path().join("outgoing");
    (dir, ws, staging)
}

#[test]
fn files_are_staged_in_name_order_and_the_outbox_is_emptied() {
    let (_d, ws, staging) = setup();
    let ob = ws.join(F);
    std::fs::write(ob.join("b.png"), b"png").expect("write");
    std::fs::write(ob.join("a.txt"), b"hello").expect("write");
    let c = collect(&ws, F, &staging);
    let names: Vec<_> = c.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a.txt", "b.png"]);
    assert_eq!(c.files[0].source, ".fcx/outbox/0123456789ab/a.txt");
    assert_eq!(
        std::fs::read(staging.join(&c.files[0].staged)).expect("staged"),
        b"hello"
    );
    assert!(c.refused.is_empty() && c.notice().is_none());
    assert_eq!(std::fs::read_dir(&ob).expect("outbox").count(), 0);
}

#[test]
fn no_outbox_means_nothing_to_send() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = collect(dir.path(), F, &dir.path().join("outgoing"));
    assert!(c.files.is_empty() && c.refused.is_empty());
}

#[cfg(unix)]
#[test]
fn hostile_entries_are_refused_reported_and_removed_not_followed() {
    let (d, ws, staging) = setup();
    let ob = ws.join(F);
    let secret = d.path().join("secret.txt");
    std::fs::write(&secret, b"top secret").expect("write");
    std::os::unix::fs::symlink(&secret, ob.join("link.txt")).expect("symlink");
    nix::unistd::mkfifo(&ob.join("pipe"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    std::fs::create_dir(ob.join("folder")).expect("dir");
    std::fs::write(ob.join("folder/inner.txt"), b"x").expect("write");
    let big = std::fs::File::create(ob.join("huge.bin")).expect("create");
    big.set_len(crate::staging::MAX_FILE_BYTES + 1)
        .expect("sparse");
    std::fs::write(ob.join("ok.txt"), b"fine").expect("write");
    let c = collect(&ws, F, &staging);
    assert_eq!(c.files.len(), 1, "{c:?}");
    assert_eq!(c.files[0].name, "ok.txt");
    let why = |n: &str| {
        c.refused
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| panic!("{n} not refused: {c:?}"))
    };
    assert!(why("link.txt").contains("symbolic link"));
    assert!(why("pipe").contains("named pipe"));
    assert!(why("folder").contains("folder"));
    assert!(why("huge.bin").contains("too large"));
    let notice = c.notice().expect("a notice");
    assert!(
        notice.contains("`link.txt`") && notice.contains("too large"),
        "{notice}"
    );
    // Emptied; the link's target untouched and never copied.
    assert_eq!(std::fs::read_dir(&ob).expect("outbox").count(), 0);
    assert_eq!(std::fs::read(&secret).expect("secret"), b"top secret");
    for e in std::fs::read_dir(&staging).expect("staging").flatten() {
        assert_ne!(std::fs::read(e.path()).expect("staged"), b"top secret");
    }
}

#[cfg(unix)]
#[test]
fn an_outbox_that_is_a_link_is_not_entered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(ws.join(".fcx")).expect("ws");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::fs::write(elsewhere.join("private.txt"), b"p").expect("write");
    std::os::unix::fs::symlink(&elsewhere, ws.join(OUTBOX)).expect("symlink");
    let c = collect(&ws, F, &dir.path().join("outgoing"));
    assert!(c.files.is_empty(), "{c:?}");
    assert_eq!(c.refused.len(), 1, "{c:?}");
    assert!(
        elsewhere.join("private.txt").exists(),
        "the target is left alone"
    );
    assert!(!ws.join(OUTBOX).exists(), "the link is removed");
}

#[test]
fn at_most_max_files_are_sent_and_the_rest_named() {
    let (_d, ws, staging) = setup();
    for i in 0..MAX_FILES + 2 {
        std::fs::write(ws.join(F).join(format!("f{i:02}.txt")), b"x").expect("write");
    }
    let c = collect(&ws, F, &staging);
    assert_eq!(c.files.len(), MAX_FILES);
    assert_eq!(c.refused.len(), 2);
    assert!(c.refused[0].1.contains("more than"), "{c:?}");
}

/// Two chats sharing a workspace: a run takes only its own chat's folder,
/// whichever ends first (one folder for all sent a chat's files to
/// another chat).
#[test]
fn a_run_takes_only_its_own_chats_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let staging = dir.path().join("outgoing");
    let a = folder("default", "chat:oc_a");
    let b = folder("default", "chat:oc_b");
    assert_ne!(a, b);
    assert_ne!(a, folder("other-bot", "chat:oc_a"));
    assert_eq!(a, folder("default", "chat:oc_a"), "stable across runs");
    assert!(a.starts_with(".fcx/outbox/") && a.len() == ".fcx/outbox/".len() + 12);
    for f in [&a, &b] {
        std::fs::create_dir_all(ws.join(f)).expect("folder");
    }
    std::fs::write(ws.join(&a).join("a.txt"), b"for a").expect("write");
    std::fs::write(ws.join(".fcx/outbox/loose.txt"), b"whose?").expect("write");
    let got_b = collect(&ws, &b, &staging);
    assert!(
        got_b.files.is_empty() && got_b.refused.is_empty(),
        "{got_b:?}"
    );
    assert!(
        ws.join(&a).join("a.txt").exists(),
        "a's file waits for a's run"
    );
    let got_a = collect(&ws, &a, &staging);
    assert_eq!(got_a.files.len(), 1, "{got_a:?}");
    assert_eq!(got_a.files[0].name, "a.txt");
    // A file directly in the parent belongs to no chat: never sent.
    assert!(ws.join(".fcx/outbox/loose.txt").exists());
}

#[cfg(unix)]
#[test]
fn a_chats_folder_that_is_a_link_is_not_entered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(ws.join(OUTBOX)).expect("ws");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::fs::write(elsewhere.join("private.txt"), b"p").expect("write");
    std::os::unix::fs::symlink(&elsewhere, ws.join(F)).expect("symlink");
    let c = collect(&ws, F, &dir.path().join("outgoing"));
    assert!(c.files.is_empty(), "{c:?}");
    assert_eq!(c.refused.len(), 1, "{c:?}");
    assert!(elsewhere.join("private.txt").exists());
    assert!(!ws.join(F).exists(), "the link is removed");
}
