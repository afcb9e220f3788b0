use super::*;

fn blob(dir: &Path, bytes: &[u8]) -> (PathBuf, String) {
    let sha = fcx_proto::media::content_hash(bytes);
    let p = dir.join(&sha);
    std::fs::write(&p, bytes).expect("blob");
    (p, sha)
}

#[test]
fn hostile_names_become_one_safe_file_name() {
    for (hostile, want) in [
        ("../x", "x"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("..", "file"),
        ("...", "file"),
        (".bashrc", "bashrc"),
        ("", "file"),
        ("a\0b", "a_b"),
        ("line\nbreak.txt", "line_break.txt"),
        ("C:evil?.txt", "C_evil_.txt"),
        ("报告 final.pdf", "报告 final.pdf"),
        ("\u{202e}gpj.exe", "_gpj.exe"),
    ] {
        assert_eq!(sanitize(hostile, "file"), want, "{hostile:?}");
    }
    let long = format!("{}.log", "é".repeat(300));
    let s = sanitize(&long, "file");
    assert!(s.len() <= MAX_NAME, "{}", s.len());
    assert!(s.ends_with(".log"), "{s}");
    assert!(s.starts_with('é'));
    for name in ["../x", "/etc/passwd", "a/../../b", "\u{202e}gpj.exe", &long] {
        let s = sanitize(name, "file");
        assert!(
            !s.contains('/') && !s.contains('\\') && !s.contains('\0'),
            "{s:?}"
        );
        assert!(!s.starts_with('.'), "{s:?}");
        assert_eq!(Path::new(&s).components().count(), 1, "{s:?}");
    }
}

#[test]
fn files_land_in_the_inbox_and_collisions_get_new_names() {
    let d = tempfile::tempdir().expect("tmp");
    let ws = d.path().join("ws");
    std::fs::create_dir(&ws).expect("ws");
    let (a, sha_a) = blob(d.path(), b"first");
    let (b, sha_b) = blob(d.path(), b"second");
    let p = place(&ws, "log.txt", &a, 5, &sha_a).expect("place");
    assert_eq!(p, Path::new(".fcx/inbox/log.txt"));
    assert_eq!(std::fs::read(ws.join(&p)).expect("read"), b"first");
    // The same content again: the same file, no copy.
    assert_eq!(place(&ws, "log.txt", &a, 5, &sha_a).expect("again"), p);
    // Other content under the same name: a new name, the old file kept.
    let q = place(&ws, "log.txt", &b, 6, &sha_b).expect("other");
    assert_eq!(q, Path::new(".fcx/inbox/log (2).txt"));
    assert_eq!(std::fs::read(ws.join(&p)).expect("read"), b"first");
    assert_eq!(std::fs::read(ws.join(&q)).expect("read"), b"second");
}

#[cfg(unix)]
#[test]
fn symlinks_in_the_workspace_do_not_lead_out_of_it() {
    let d = tempfile::tempdir().expect("tmp");
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).expect("outside");
    let (a, sha) = blob(d.path(), b"data");

    // .fcx itself a link out of the workspace.
    let ws = d.path().join("ws1");
    std::fs::create_dir(&ws).expect("ws");
    std::os::unix::fs::symlink(&outside, ws.join(".fcx")).expect("link");
    assert!(matches!(
        place(&ws, "x.txt", &a, 4, &sha),
        Err(InboxError::NotAFolder(_))
    ));

    // The inbox a link.
    let ws = d.path().join("ws2");
    std::fs::create_dir_all(ws.join(".fcx")).expect("ws");
    std::os::unix::fs::symlink(&outside, ws.join(".fcx/inbox")).expect("link");
    assert!(place(&ws, "x.txt", &a, 4, &sha).is_err());

    // The file name a link: never written through, another name is used.
    let ws = d.path().join("ws3");
    std::fs::create_dir_all(ws.join(".fcx/inbox")).expect("ws");
    let victim = outside.join("victim");
    std::fs::write(&victim, b"keep").expect("victim");
    std::os::unix::fs::symlink(&victim, ws.join(".fcx/inbox/x.txt")).expect("link");
    let p = place(&ws, "x.txt", &a, 4, &sha).expect("place");
    assert_eq!(p, Path::new(".fcx/inbox/x (2).txt"));
    assert_eq!(std::fs::read(&victim).expect("victim"), b"keep");
    assert!(std::fs::read_dir(&outside).expect("ls").count() == 1);
}
