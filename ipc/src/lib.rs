//! tonic over local sockets: a Unix domain socket on Unix, a named pipe on
//! Windows (both through `interprocess`).
//!
//! Sockets live in `$FCX_HOME/run/`, a 0700 directory, and are created 0600, so
//! only the owner can reach the worker and admin services. A socket file left
//! behind by a crashed process is detected (nobody answers on it, or only a
//! leftover copy of its descriptor does, its listening process gone) and
//! replaced; a socket whose listening process runs is never stolen.
//!
//! Same user is not enough: the commands Codex runs are the same user. So each
//! listener also makes a random key at bind time, kept next to the socket in
//! `NAME.key` (0600), and every connection must present it before anything
//! else: a new fcxd reattaching to a worker that outlived the old one reads it
//! the same way. Whoever cannot read `run/` (the Codex child, once fcx's home
//! is hidden from it) cannot talk to the services. On Unix the peer must also
//! be the socket's owner (`SO_PEERCRED` / `getpeereid`).

#![warn(missing_docs)]

mod pipe_acl;
/// The SID of the account this process runs as (`S-1-5-21-…`): the pipes
/// admit it alone, and the worker's workspace checks compare owners to it.
#[cfg(windows)]
pub use pipe_acl::current_user_sid;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt as _};
use hyper_util::rt::TokioIo;
use interprocess::local_socket::tokio::{Listener, Stream as LocalStream};
use interprocess::local_socket::traits::tokio::{Listener as _, Stream as _};
use interprocess::local_socket::{GenericFilePath, ListenerOptions, Name, ToFsName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// Why a local socket could not be served or reached.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the variants' messages say what each is
pub enum IpcError {
    #[error("another live process is already serving {0}")]
    InUse(PathBuf),
    #[error("cannot prepare the run directory {path}: {source}")]
    RunDir { path: PathBuf, source: io::Error },
    #[error("cannot bind {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot connect to {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("cannot write the socket key {path}: {source}")]
    Key { path: PathBuf, source: io::Error },
}

/// Hex characters of a socket key (32 random bytes).
const KEY_LEN: usize = 64;
/// How long a new connection may take to present the key.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Connections presenting their key at once; more wait to be accepted.
const MAX_HANDSHAKES: usize = 32;

/// Where a local socket lives. On Unix this is the socket file itself; on
/// Windows the path only seeds a pipe name that is unique per `FCX_HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAddr {
    path: PathBuf,
}

impl SocketAddr {
    /// The socket at `path` (on Windows, the pipe named after it).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The path this address was made from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file holding the listener's key: `NAME.key` next to the socket.
    pub fn key_path(&self) -> PathBuf {
        let mut name = self
            .path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".key");
        self.path.with_file_name(name)
    }

    fn name(&self) -> io::Result<Name<'static>> {
        #[cfg(windows)]
        {
            // Named pipes live in their own namespace: a stable name derived
            // from the full path, so two FCX_HOMEs never collide.
            pipe_acl::pipe_name(&self.path)
                .to_fs_name::<GenericFilePath>()
                .map(|n| n.into_owned())
        }
        #[cfg(not(windows))]
        {
            self.path
                .clone()
                .to_fs_name::<GenericFilePath>()
                .map(|n| n.into_owned())
        }
    }
}

impl std::fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.path.display().fmt(f)
    }
}

/// Create `dir` (and parents) and make it private to the owner.
pub fn ensure_private_dir(dir: &Path) -> Result<(), IpcError> {
    let err = |source| IpcError::RunDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// A connection accepted by [`bind`], usable as a tonic server IO.
pub struct IpcStream(LocalStream);

impl tonic::transport::server::Connected for IpcStream {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for IpcStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for IpcStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A bound listener; removes its socket and key files when dropped.
pub struct IpcListener {
    inner: Listener,
    addr: SocketAddr,
    key: Arc<str>,
    /// The uid a peer must have (the socket file's owner: this process).
    #[cfg(unix)]
    owner: u32,
}

impl IpcListener {
    /// Where this listener serves.
    pub fn addr(&self) -> &SocketAddr {
        &self.addr
    }

    /// The accept loop as a stream for `serve_with_incoming*`. Only
    /// connections from the owner that present the key are yielded; the
    /// rest are closed. Keys are checked concurrently, so a peer that sends
    /// nothing delays no one.
    pub fn incoming(self) -> impl Stream<Item = io::Result<IpcStream>> + Send + 'static {
        let key = self.key.clone();
        #[cfg(unix)]
        let owner = self.owner;
        #[cfg(not(unix))]
        let owner = 0;
        futures::stream::unfold(self, |l| async move {
            let r = l.inner.accept().await;
            Some((r, l))
        })
        .map(move |r| {
            let key = key.clone();
            async move {
                match r {
                    Err(e) => Some(Err(e)),
                    Ok(s) => match admit(s, &key, owner).await {
                        Ok(s) => Some(Ok(IpcStream(s))),
                        Err(Refused::Silent) => None,
                        Err(Refused::Because(why)) => {
                            tracing::warn!(%why, "local connection refused");
                            None
                        }
                    },
                }
            }
        })
        .buffer_unordered(MAX_HANDSHAKES)
        .filter_map(futures::future::ready)
    }
}

enum Refused {
    /// Closed before sending anything: a liveness probe.
    Silent,
    Because(String),
}

/// Check a new connection's peer and key.
async fn admit(mut s: LocalStream, key: &str, owner: u32) -> Result<LocalStream, Refused> {
    #[cfg(unix)]
    {
        use interprocess::local_socket::traits::StreamCommon as _;
        let creds = s
            .peer_creds()
            .map_err(|e| Refused::Because(format!("cannot read the peer's credentials: {e}")))?;
        if creds.euid() != Some(owner) {
            return Err(Refused::Because(format!(
                "peer uid {:?} (pid {:?}) is not the owner",
                creds.euid(),
                creds.pid()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = owner;
    let mut got = [0u8; KEY_LEN];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, s.read_exact(&mut got)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(Refused::Silent),
        Ok(Err(e)) => return Err(Refused::Because(format!("reading the key: {e}"))),
        Err(_) => return Err(Refused::Because("no key within 5 s".into())),
    }
    if !ct_eq(&got, key.as_bytes()) {
        return Err(Refused::Because("wrong key".into()));
    }
    Ok(s)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Write a fresh random key to `path`, private to the owner, replacing any
/// old one in one step.
fn write_key(path: &Path) -> io::Result<String> {
    let mut raw = [0u8; KEY_LEN / 2];
    rand::fill(&mut raw[..]);
    let key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    {
        use std::io::Write as _;
        let mut f = opts.open(&tmp)?;
        f.write_all(key.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(key)
}

fn read_key(addr: &SocketAddr) -> io::Result<String> {
    let key = std::fs::read_to_string(addr.key_path())?;
    let key = key.trim();
    if key.len() != KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a socket key", addr.key_path().display()),
        ));
    }
    Ok(key.to_string())
}

impl Drop for IpcListener {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = std::fs::remove_file(&self.addr.path);
        }
        // Only our own key: a successor may have written its own since.
        if read_key(&self.addr).is_ok_and(|k| *k == *self.key) {
            let _ = std::fs::remove_file(self.addr.key_path());
        }
    }
}

/// Bind `addr`, replacing a stale socket file but never a live one.
pub async fn bind(addr: &SocketAddr) -> Result<IpcListener, IpcError> {
    if let Some(parent) = addr.path.parent() {
        ensure_private_dir(parent)?;
    }
    let bind_err = |source| IpcError::Bind {
        path: addr.path.clone(),
        source,
    };
    #[cfg(unix)]
    if std::fs::symlink_metadata(&addr.path).is_ok() {
        if is_live(addr).await {
            return Err(IpcError::InUse(addr.path.clone()));
        }
        tracing::info!(socket = %addr, "replacing a stale socket left by a crashed process");
        std::fs::remove_file(&addr.path).map_err(bind_err)?;
    }
    // The key exists before the socket does, so a client that sees the
    // socket can always read it.
    let key = write_key(&addr.key_path()).map_err(|source| IpcError::Key {
        path: addr.key_path(),
        source,
    })?;
    let name = addr.name().map_err(bind_err)?;
    let opts = ListenerOptions::new().name(name);
    #[cfg(unix)]
    let opts = {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        opts.mode(0o600)
    };
    #[cfg(windows)]
    let opts = {
        use interprocess::os::windows::local_socket::ListenerOptionsExt;
        opts.security_descriptor(pipe_acl::current_user_only().map_err(bind_err)?)
    };
    let inner = opts.create_tokio().map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            IpcError::InUse(addr.path.clone())
        } else {
            bind_err(e)
        }
    })?;
    #[cfg(unix)]
    let owner = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&addr.path).map_err(bind_err)?.uid()
    };
    Ok(IpcListener {
        inner,
        addr: addr.clone(),
        key: key.into(),
        #[cfg(unix)]
        owner,
    })
}

/// Whether a live server listens on `addr`: a connection is taken and the
/// process that listens there still runs (see [`listener_lives`]).
pub async fn is_live(addr: &SocketAddr) -> bool {
    match addr.name() {
        Ok(name) => match LocalStream::connect(name).await {
            Ok(s) => listener_lives(&s),
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// Whether the process that listened on the socket behind the connected `s`
/// is still running.
///
/// A listening socket lives as long as any copy of its descriptor does, not
/// as long as its server. Every child a server starts holds a copy of all
/// its descriptors from fork until exec (close-on-exec acts only then), so a
/// server killed while it was starting one (a worker spawning Codex, under
/// kill -9) leaves its socket listening in that child until the child
/// execs or, its parent gone, exits (after tearing down its namespaces).
/// Nobody accepts there: connections pile up in the backlog. The peer
/// credentials of a connection name the process that called `listen`, so a
/// socket whose listener is gone is a leftover, like a socket file nobody
/// listens on. Where the platform does not say who listens, the connection
/// is taken as an answer.
fn listener_lives(s: &LocalStream) -> bool {
    #[cfg(unix)]
    {
        use interprocess::local_socket::traits::StreamCommon as _;
        match s.peer_creds().ok().and_then(|c| c.pid()) {
            Some(pid) if pid > 0 => process_runs(pid),
            _ => true,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = s;
        true
    }
}

/// Whether `pid` is a running process that is not dying: a zombie has
/// released everything, and one that is exiting (`PF_EXITING`) or has a
/// SIGKILL pending will accept nothing more. Between kill -9 and the zombie
/// its connections are already closed, so a client reconnects at once and
/// must not send its calls into a backlog nobody will accept.
#[cfg(target_os = "linux")]
fn process_runs(pid: i32) -> bool {
    /// `PF_EXITING` in the `flags` field of `/proc/PID/stat`.
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name may hold spaces and parentheses: the state is the
    // first field after the last ')', the flags the sixth after it.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return true;
    };
    let mut fields = rest.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X") | None) {
        return false;
    }
    let flags = fields
        .nth(5)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    flags & PF_EXITING == 0 && !sigkill_pending(pid)
}

/// Whether SIGKILL is pending for `pid` (`SigPnd`, per thread, or `ShdPnd`,
/// the process's, in `/proc/PID/status`): it dies without running again.
#[cfg(target_os = "linux")]
fn sigkill_pending(pid: i32) -> bool {
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status.lines().any(|l| {
        let mask = l
            .strip_prefix("SigPnd:")
            .or_else(|| l.strip_prefix("ShdPnd:"));
        mask.and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & SIGKILL_BIT != 0)
    })
}

/// Whether `pid` exists (a zombie still does: the best this platform says).
#[cfg(all(unix, not(target_os = "linux")))]
fn process_runs(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Connect to `addr` and present its listener's key (read afresh each time:
/// a restarted listener has a new one), once the server has been checked to
/// run as this process's user.
pub async fn dial(addr: &SocketAddr) -> io::Result<LocalStream> {
    let mut s = LocalStream::connect(addr.name()?).await?;
    server_is_ours(&s)?;
    // Told apart from a server that is slow to answer, so a caller waiting
    // for a new server retries instead of waiting on a socket nobody serves.
    if !listener_lives(&s) {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "the process that listened on {addr} has exited (a leftover copy of its socket is still open)"
            ),
        ));
    }
    // Read once connected, not before: a successor writes its key before
    // it creates its socket, so a key read earlier may be its
    // predecessor's, and the successor would close the connection.
    let key = read_key(addr)?;
    s.write_all(key.as_bytes()).await?;
    Ok(s)
}

/// Refuse a server run by another user before anything is sent to it: the
/// key, then every request, would go to whoever made the socket. On Unix
/// `run/` being 0700 already keeps others from making one there; this
/// also holds where it is not (a home on a shared or odd file system). On
/// Windows pipe names are machine-wide, so this is the only guard against
/// another user who took the name while fcx was down (see `pipe_acl`).
fn server_is_ours(s: &LocalStream) -> io::Result<()> {
    use interprocess::local_socket::traits::StreamCommon as _;
    let creds = s.peer_creds()?;
    #[cfg(unix)]
    {
        // SAFETY: geteuid cannot fail and touches no memory.
        let me = unsafe { libc::geteuid() };
        if creds.euid() != Some(me) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the socket is served by uid {:?} (pid {:?}), not by this user",
                    creds.euid(),
                    creds.pid()
                ),
            ));
        }
    }
    #[cfg(windows)]
    {
        let pid = creds.pid().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the pipe's server is unknown",
            )
        })?;
        if pipe_acl::process_user_sid(pid)? != pipe_acl::current_user_sid()? {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the pipe is served by another user's process (pid {pid})"),
            ));
        }
    }
    #[cfg(not(any(unix, windows)))]
    let _ = creds;
    Ok(())
}

/// A tonic channel that dials `addr` for every (re)connection.
///
/// The connection is made eagerly so a missing peer is reported here, with
/// the socket path, rather than on the first call.
pub async fn connect(addr: &SocketAddr) -> Result<Channel, IpcError> {
    let target = addr.clone();
    // The URI is never dialled: the connector below ignores it.
    let endpoint = Endpoint::from_static("http://fcx.local");
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let target = target.clone();
            async move {
                let s = dial(&target).await?;
                Ok::<_, io::Error>(TokioIo::new(s))
            }
        }))
        .await
        .map_err(|e| IpcError::Connect {
            path: addr.path.clone(),
            source: io::Error::other(e.to_string()),
        })
}

#[cfg(all(test, target_os = "linux"))]
#[path = "leftover_tests.rs"]
mod leftover_tests;

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_is_replaced_live_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = SocketAddr::new(dir.path().join("run/a.sock"));
        // A socket file with nobody behind it: what kill -9 leaves.
        {
            let l = std::os::unix::net::UnixListener::bind(dir.path().join("x.sock"));
            drop(l);
        }
        ensure_private_dir(&dir.path().join("run")).expect("run dir");
        std::fs::rename(dir.path().join("x.sock"), addr.path()).expect("stale file");
        let live = bind(&addr).await.expect("stale socket replaced");
        match bind(&addr).await {
            Err(IpcError::InUse(_)) => {}
            Err(e) => panic!("expected InUse, got {e}"),
            Ok(_) => panic!("a live socket was stolen"),
        }
        drop(live);
        assert!(!addr.path().exists(), "socket removed on drop");
    }

    #[tokio::test]
    async fn run_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = SocketAddr::new(dir.path().join("run/b.sock"));
        let _l = bind(&addr).await.expect("bind");
        let mode = std::fs::metadata(dir.path().join("run"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(addr.path())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "socket not reachable by group/others");
    }

    #[tokio::test]
    async fn only_a_peer_with_the_key_gets_through() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = SocketAddr::new(dir.path().join("run/c.sock"));
        let l = bind(&addr).await.expect("bind");
        let mode = std::fs::metadata(addr.key_path())
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key private to the owner");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let mut incoming = std::pin::pin!(l.incoming());
            while let Some(s) = incoming.next().await {
                if tx.send(s).is_err() {
                    break;
                }
            }
        });
        let wait = std::time::Duration::from_secs(10);
        // No key, or the wrong one: closed, never handed to the service.
        for attempt in [&b""[..], &[b'0'; KEY_LEN][..]] {
            let mut s = tokio::net::UnixStream::connect(addr.path())
                .await
                .expect("connect");
            s.write_all(attempt).await.expect("write");
            if attempt.is_empty() {
                s.shutdown().await.expect("half-close");
            }
            let mut buf = [0u8; 1];
            let n = tokio::time::timeout(wait, s.read(&mut buf))
                .await
                .expect("the server closes a connection without the key");
            assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        }
        // With the key: handed over, and it is the first one that was.
        let _s = dial(&addr).await.expect("dial");
        let got = tokio::time::timeout(wait, rx.recv())
            .await
            .expect("accepted in time")
            .expect("a stream");
        assert!(got.is_ok());
        assert!(rx.try_recv().is_err(), "nothing else got through");
        server.abort();
    }

    #[tokio::test]
    async fn a_socket_served_by_another_user_is_sent_nothing() {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt as _;
        const NOBODY: u32 = 65534;
        let python = std::path::Path::new("/usr/bin/python3");
        // Only root can start a server as another user.
        // SAFETY: geteuid cannot fail and touches no memory.
        if unsafe { libc::geteuid() } != 0 || !python.exists() {
            eprintln!("needs root and /usr/bin/python3 to serve as another user; skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let addr = SocketAddr::new(dir.path().join("w.sock"));
        // A key where fcx looks for it, as if the real listener had written
        // it before someone else took the socket's place.
        std::fs::write(addr.key_path(), "a".repeat(KEY_LEN)).expect("key");
        let got = dir.path().join("got");
        let mut server = std::process::Command::new(python)
            // Bound under another name and renamed once listening: a dial
            // between bind and listen would be refused, not checked.
            .args([
                "-c",
                "import os,socket,sys\n\
                 s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]+'.tmp'); s.listen(1)\n\
                 os.rename(sys.argv[1]+'.tmp',sys.argv[1])\n\
                 c,_=s.accept(); c.settimeout(10); d=b''\n\
                 try:\n  d=c.recv(100)\nexcept Exception: pass\n\
                 open(sys.argv[2],'wb').write(d)",
            ])
            .arg(addr.path())
            .arg(&got)
            .uid(NOBODY)
            .gid(NOBODY)
            .spawn()
            .expect("python");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !addr.path().exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server never bound"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let e = dial(&addr).await.expect_err("another user's server");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("uid Some(65534)"), "{e}");
        let _ = server.wait();
        let sent = std::fs::read(&got).expect("the server recorded what it got");
        assert!(sent.is_empty(), "the key reached another user's server");
    }
}
