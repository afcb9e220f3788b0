//! Another local user cannot read fcx's state, logs or keys, nor connect
//! to its sockets (a real connect(2) as that user) (issue 14). Needs a
//! second user: as root the test acts as `nobody` (uid 65534); otherwise it
//! says so and skips.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fcx_tests::harness::{Fcxd, TestHome};

const NOBODY: u32 = 65534;

/// `sh -c script` as `nobody`; true when it succeeded.
fn as_nobody(script: &str) -> bool {
    Command::new("/bin/sh")
        .args(["-c", script])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// connect(2) to the Unix socket at `path` as `nobody` (or as this user
/// when `as_nobody` is false, the control): made between fork and exec,
/// after the uid switch, so its error is what `spawn` returns.
fn connect_as(path: &Path, as_nobody: bool) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < sun.sun_path.len(), "socket path too long");
    for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let mut cmd = Command::new("/bin/true");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if as_nobody {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    // SAFETY: runs between fork and exec; only async-signal-safe system
    // calls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // No SOCK_CLOEXEC (macOS lacks it): the fd is closed before
            // exec, and on an error the child ends without exec.
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let r = libc::connect(
                fd,
                (&raw const sun).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            );
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    cmd.spawn()?.wait().map(|_| ())
}

/// `nobody`'s connect to `sock` is refused by the file system's
/// permissions (EACCES), while this user's gets through.
fn assert_unconnectable(sock: &Path) {
    connect_as(sock, false)
        .unwrap_or_else(|e| panic!("the control connect to {}: {e}", sock.display()));
    match connect_as(sock, true) {
        Ok(()) => panic!("nobody connected to {}", sock.display()),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EACCES),
            "nobody's connect to {}: {e}",
            sock.display()
        ),
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn another_user_can_read_no_state_log_key_or_socket() {
    let h = TestHome::new();
    // Whoever owns what this process creates is who it runs as.
    if std::fs::metadata(&h.workspace)
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        eprintln!("not root: no second user to act as; skipped");
        return;
    }
    h.write_config(&h.fake_codex_config(""));
    let mut f = Fcxd::console(&h);
    f.wait_for("fcx console");
    f.send("leave some state behind");
    f.wait_for("] completed");

    // Only fcx's own modes stand in the way: the test's temp dir is opened.
    std::fs::set_permissions(&h.root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(
        as_nobody(&format!("test -d {}", q(&h.root))),
        "nobody is usable"
    );
    let private: Vec<PathBuf> = vec![
        h.home.join("profiles/default/state.db"),
        h.home.join("logs/worker-default.log"),
        h.home.join("logs/fcxd.log"),
        h.home.join("config.toml"),
        h.home.join("run/fcxd.sock.key"),
        h.home.join("run/worker-default.sock.key"),
    ];
    let sockets = [
        h.home.join("run/fcxd.sock"),
        h.home.join("run/worker-default.sock"),
    ];
    for p in private.iter().chain(&sockets) {
        assert!(p.exists(), "{} was not made", p.display());
    }
    // FCX_HOME as fcx made it: nobody cannot even look inside.
    assert_eq!(mode(&h.home), 0o700);
    assert!(!as_nobody(&format!("ls {}", q(&h.home))));
    for p in private.iter().chain(&sockets) {
        assert!(!as_nobody(&format!("test -e {}", q(p))), "{}", p.display());
    }
    for s in &sockets {
        assert_unconnectable(s);
    }
    // Even with the directories opened by mistake, the files themselves
    // are private and the sockets refuse a connect (0600: no write bit).
    for d in ["", "profiles", "profiles/default", "logs", "run"] {
        std::fs::set_permissions(h.home.join(d), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    for p in &private {
        assert!(as_nobody(&format!("test -e {}", q(p))), "{}", p.display());
        assert!(
            !as_nobody(&format!("cat {} >/dev/null", q(p))),
            "{} is readable",
            p.display()
        );
    }
    for s in &sockets {
        assert_eq!(mode(s) & 0o077, 0, "{} is open to others", s.display());
        assert!(!as_nobody(&format!("test -w {}", q(s))), "{}", s.display());
        assert_unconnectable(s);
    }
    for d in ["", "profiles", "profiles/default", "logs", "run"] {
        std::fs::set_permissions(h.home.join(d), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
    }
}
