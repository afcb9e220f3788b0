//! A server killed while one of its children was between fork and exec:
//! the child still holds a copy of the listening socket, so the socket takes
//! connections, but its listening process is gone and nobody will accept.
//! Its successor must replace it, and clients must not wait on it.

// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

use super::*;

/// Kills the process holding the leftover copy, even when an assertion fails.
struct Holder(i32);

impl Drop for Holder {
    fn drop(&mut self) {
        // SAFETY: kill touches no memory; the pid is our own sleep child's.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
        }
    }
}

/// `sh` listens on `path` (made between fork and exec, without
/// close-on-exec, as the server's own socket in a child that has not yet
/// exec'd), leaves a `sleep` holding a copy of it, and exits: the listening
/// process is gone, the socket still listens.
fn leave_a_listening_copy(path: &Path) -> Holder {
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < sun.sun_path.len(), "socket path too long");
    for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "sleep 60 </dev/null >/dev/null 2>&1 & echo $!"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0
                || libc::bind(
                    fd,
                    (&raw const sun).cast::<libc::sockaddr>(),
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                ) != 0
                || libc::listen(fd, 16) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("sh");
    assert!(out.status.success(), "sh: {:?}", out.status);
    let pid: i32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the sleep's pid");
    Holder(pid)
}

#[tokio::test]
async fn a_socket_only_a_dead_servers_child_holds_is_replaced_and_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    ensure_private_dir(&dir.path().join("run")).expect("run dir");
    let addr = SocketAddr::new(dir.path().join("run/w.sock"));
    let _holder = leave_a_listening_copy(addr.path());
    let name = addr.name().expect("name");
    assert!(
        LocalStream::connect(name).await.is_ok(),
        "the leftover copy still takes connections"
    );
    assert!(!is_live(&addr).await, "no process serves there");
    // A client finds out at once, instead of waiting for an answer that
    // never comes.
    std::fs::write(addr.key_path(), "a".repeat(KEY_LEN)).expect("key");
    let e = dial(&addr).await.expect_err("nobody serves");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    // The successor replaces it, and it is the successor that answers.
    let l = bind(&addr).await.expect("the leftover is replaced");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let mut incoming = std::pin::pin!(l.incoming());
        while let Some(s) = incoming.next().await {
            if tx.send(s.is_ok()).is_err() {
                break;
            }
        }
    });
    assert!(is_live(&addr).await, "the successor serves");
    let _s = dial(&addr).await.expect("dial the successor");
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("accepted in time");
    assert_eq!(got, Some(true));
    server.abort();
}
