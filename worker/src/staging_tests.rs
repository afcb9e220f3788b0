use super::*;

fn within(d: &Path) -> Bounds<'_> {
    Bounds {
        within: d,
        not_in: None,
    }
}

/// A directory above the file swapped for a link after the path was
/// checked: the open follows it, so where the file really is decides. Out
/// of the workspace, or into fcx's own home, it is refused.
#[cfg(target_os = "linux")]
#[test]
fn a_directory_swapped_for_a_link_after_the_check_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ws = d.join("ws");
    let home = ws.join("fcx-home");
    std::fs::create_dir_all(&home).expect("dirs");
    std::fs::create_dir(d.join("elsewhere")).expect("dir");
    std::fs::write(d.join("elsewhere/secret"), b"s").expect("write");
    std::fs::write(home.join("app-secret"), b"s").expect("write");
    // What `/sendfile sub/secret` resolved while `sub` was a folder.
    std::os::unix::fs::symlink(d.join("elsewhere"), ws.join("sub")).expect("symlink");
    let out = d.join("outgoing");
    assert_eq!(
        file_out(&out, &ws.join("sub/secret"), "sub/secret", &within(&ws)).err(),
        Some(Refused::Outside)
    );
    std::os::unix::fs::symlink(&home, ws.join("inner")).expect("symlink");
    let bounds = Bounds {
        within: &ws,
        not_in: Some(&home),
    };
    assert_eq!(
        file_out(
            &out,
            &ws.join("inner/app-secret"),
            "inner/app-secret",
            &bounds
        )
        .err(),
        Some(Refused::Private)
    );
    // Nothing was staged.
    assert!(std::fs::read_dir(&out).map_or(true, |mut r| r.next().is_none()));
    // A real folder inside the workspace is fine.
    std::fs::create_dir(ws.join("docs")).expect("dir");
    std::fs::write(ws.join("docs/notes.txt"), b"n").expect("write");
    assert!(file_out(&out, &ws.join("docs/notes.txt"), "docs/notes.txt", &bounds).is_ok());
}

#[test]
fn a_regular_file_is_staged_byte_for_byte_under_a_fresh_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("report.txt");
    std::fs::write(&src, b"hello\x00world").expect("write");
    let out = dir.path().join("outgoing");
    let f = file_out(&out, &src, "report.txt", &within(dir.path())).expect("staged");
    assert_eq!((f.name.as_str(), f.size), ("report.txt", 11));
    assert!(f.staged.chars().all(|c| c.is_ascii_hexdigit()), "{f:?}");
    assert_eq!(
        std::fs::read(out.join(&f.staged)).expect("staged copy"),
        b"hello\x00world"
    );
    let again = file_out(&out, &src, "report.txt", &within(dir.path())).expect("staged");
    assert_ne!(again.staged, f.staged);
}

#[cfg(unix)]
#[test]
fn links_fifos_folders_and_empty_files_are_refused_without_being_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("secret"), b"s").expect("write");
    std::os::unix::fs::symlink(d.join("secret"), d.join("link")).expect("symlink");
    nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    std::fs::create_dir(d.join("sub")).expect("dir");
    std::fs::write(d.join("empty"), b"").expect("write");
    assert_eq!(open_regular(&d.join("link")).err(), Some(Refused::Link));
    // Opening a FIFO for reading would block forever without O_NONBLOCK.
    assert_eq!(
        open_regular(&d.join("fifo")).err(),
        Some(Refused::Special("a named pipe"))
    );
    assert_eq!(open_regular(&d.join("sub")).err(), Some(Refused::Directory));
    assert_eq!(open_regular(&d.join("empty")).err(), Some(Refused::Empty));
    assert_eq!(open_regular(&d.join("nope")).err(), Some(Refused::Missing));
}

#[test]
fn a_file_over_the_limit_is_refused_with_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.bin");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(MAX_FILE_BYTES + 1).expect("sparse file");
    let r = open_regular(&big).expect_err("refused");
    assert_eq!(r, Refused::TooLarge(MAX_FILE_BYTES + 1));
    assert_eq!(
        r.to_string(),
        "it is too large: 30.0 MB (fcx sends files up to 30.0 MB)"
    );
}

#[test]
fn sizes_read_naturally() {
    assert_eq!(human_size(1), "1 byte");
    assert_eq!(human_size(17), "17 bytes");
    assert_eq!(human_size(2048), "2 KB");
    assert_eq!(human_size(5 * 1024 * 1024 / 2), "2.5 MB");
}

#[test]
fn display_names_drop_directories_and_control_characters() {
    assert_eq!(display_name(Path::new("/a/b/c.txt")), "c.txt");
    assert_eq!(display_name(Path::new("/a/x\ny.txt")), "x_y.txt");
}

#[test]
fn old_staged_copies_are_collected() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a"), b"x").expect("write");
    collect_garbage(dir.path(), Duration::from_secs(3600));
    assert!(dir.path().join("a").exists(), "a fresh copy stays");
    std::thread::sleep(Duration::from_millis(20));
    collect_garbage(dir.path(), Duration::from_millis(1));
    assert!(!dir.path().join("a").exists(), "an old copy goes");
}
