//! tonic over local sockets: a Unix domain socket on Unix, a named pipe on
//! Windows (both through `interprocess`).
//!
//! Sockets live in `$FCX_HOME/run/`, a 0700 directory, and are created 0600, so
//! only the owner can reach the worker and admin services. A socket file left
//! behind by a crashed process is detected (nobody answers on it) and replaced;
//! a socket that answers belongs to a live process and is never stolen.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use hyper_util::rt::TokioIo;
use interprocess::local_socket::tokio::{Listener, Stream as LocalStream};
use interprocess::local_socket::traits::tokio::{Listener as _, Stream as _};
use interprocess::local_socket::{GenericFilePath, ListenerOptions, Name, ToFsName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("another live process is already serving {0}")]
    InUse(PathBuf),
    #[error("cannot prepare the run directory {path}: {source}")]
    RunDir { path: PathBuf, source: io::Error },
    #[error("cannot bind {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot connect to {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
}

/// Where a local socket lives. On Unix this is the socket file itself; on
/// Windows the path only seeds a pipe name that is unique per `FCX_HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAddr {
    path: PathBuf,
}

impl SocketAddr {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn name(&self) -> io::Result<Name<'static>> {
        #[cfg(windows)]
        {
            // Named pipes live in their own namespace: derive a stable name
            // from the full path so two FCX_HOMEs never collide.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in self.path.to_string_lossy().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            let stem = self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let pipe = format!(r"\\.\pipe\fcx-{h:016x}-{stem}");
            pipe.to_fs_name::<GenericFilePath>().map(|n| n.into_owned())
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

/// A bound listener; removes its socket file when dropped.
pub struct IpcListener {
    inner: Listener,
    addr: SocketAddr,
}

impl IpcListener {
    pub fn addr(&self) -> &SocketAddr {
        &self.addr
    }

    /// The accept loop as a stream for `serve_with_incoming*`.
    pub fn incoming(self) -> impl Stream<Item = io::Result<IpcStream>> + Send + 'static {
        futures::stream::unfold(self, |l| async move {
            let r = l.inner.accept().await.map(IpcStream);
            Some((r, l))
        })
    }
}

impl Drop for IpcListener {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = std::fs::remove_file(&self.addr.path);
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
    let name = addr.name().map_err(bind_err)?;
    let opts = ListenerOptions::new().name(name);
    #[cfg(unix)]
    let opts = {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        opts.mode(0o600)
    };
    let inner = opts.create_tokio().map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            IpcError::InUse(addr.path.clone())
        } else {
            bind_err(e)
        }
    })?;
    Ok(IpcListener {
        inner,
        addr: addr.clone(),
    })
}

/// Whether something answers on `addr`.
pub async fn is_live(addr: &SocketAddr) -> bool {
    match addr.name() {
        Ok(name) => LocalStream::connect(name).await.is_ok(),
        Err(_) => false,
    }
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
                let name = target.name()?;
                let s = LocalStream::connect(name).await?;
                Ok::<_, io::Error>(TokioIo::new(s))
            }
        }))
        .await
        .map_err(|e| IpcError::Connect {
            path: addr.path.clone(),
            source: io::Error::other(e.to_string()),
        })
}

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
}
