//! Hiding fcx's own files from the Codex child (Linux).
//!
//! Codex's sandbox restricts writes, not reads: a command it runs could read
//! `$FCX_HOME` (secrets, every chat's messages in `state.db`, other scopes'
//! sessions, the socket keys) and the operator's `~/.codex`. So, between fork
//! and exec, the child enters a new user and mount namespace (same uid and
//! gid, mapped 1:1) where `$FCX_HOME` is an empty tmpfs with only the
//! scope's own Codex home bound back, the profile's Codex home with nothing
//! but its login and config showing (see [`Hide::only`]), and `~/.codex`
//! (unless the profile uses it) is an empty tmpfs too. No extra process:
//! codex keeps its pid, process group and signals. Codex's own sandbox
//! nests inside it.
//!
//! It needs unprivileged user namespaces; where the kernel refuses them (or
//! on other platforms) runs go on without it and `/status` and `/doctor` say
//! so. Codex's own sandbox denies the same files as a second layer (the
//! only one there), except in full access: see [`crate::runner::deny`].

use std::path::{Path, PathBuf};

/// What to hide from one child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hide {
    /// Replaced by an empty tmpfs (`$FCX_HOME`).
    pub(crate) root: PathBuf,
    /// Bound back inside `root` (the profile's Codex home, its `lark-cli`
    /// directory); at most [`MAX_KEEP`].
    pub(crate) keep: Vec<PathBuf>,
    /// Also replaced by an empty tmpfs when they exist (`~/.codex`).
    pub(crate) also: Vec<PathBuf>,
    /// A directory inside `root` bound back (it counts against
    /// [`MAX_KEEP`]) of which only the named entries show; every other
    /// entry it has when the child starts is hidden again (a directory
    /// under an empty tmpfs, a file under `/dev/null`). The profile's Codex
    /// home: the scope homes link to its `auth.json` and `config.toml`, and
    /// Codex 0.169 replaces those by writing a temporary file beside the
    /// link's target and renaming it over (measured), which needs the
    /// directory itself, not a file bound on its own (a rename onto a bind
    /// mount fails with EBUSY). What else it holds (the threads of every
    /// chat from before per-scope homes, Codex's stores) stays hidden.
    pub(crate) only: Option<(PathBuf, &'static [&'static str])>,
}

/// The entries of `dir` to hide again when only `names` may show:
/// (directories, other files). Symbolic links are left alone (a mount
/// would land on their target).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn masks(dir: &Path, names: &[&str]) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((dirs, files)),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        if names.iter().any(|n| e.file_name() == *n) {
            continue;
        }
        let t = e.file_type()?;
        if t.is_dir() {
            dirs.push(e.path());
        } else if !t.is_symlink() {
            files.push(e.path());
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

/// How many directories one child may have bound back, [`Hide::only`]'s
/// included (the pre-exec hook holds their handles in a fixed array: it may
/// not allocate).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const MAX_KEEP: usize = 4;

/// Codex's own sandbox as it holds fcx's deny entries here.
const CODEX_LAYER: &str = if cfg!(target_os = "linux") {
    "denied by Codex's sandbox (bubblewrap)"
} else if cfg!(target_os = "macos") {
    "denied by Codex's sandbox (Seatbelt)"
} else if cfg!(windows) {
    "denied by Codex's sandbox (Windows sandbox, unverified)"
} else {
    "denied by Codex's sandbox"
};

/// Which layers keep `$FCX_HOME` from Codex's commands, for `/status` and
/// `/doctor`: the namespace (`namespace`, from [`available`]) and Codex's
/// sandbox, which holds fcx's deny entries in every mode but full access
/// (`sandbox`: the chat's, when known). `Err`: no layer holds.
pub(crate) fn describe(
    namespace: &Result<(), String>,
    sandbox: Option<crate::runner::Sandbox>,
) -> Result<String, String> {
    use crate::runner::Sandbox;
    let ns = "FCX_HOME hidden from Codex (user + mount namespace)";
    match (namespace, sandbox) {
        (Ok(()), Some(Sandbox::DangerFullAccess)) => {
            Ok(format!("{ns}; Codex's sandbox is off in full access"))
        }
        (Ok(()), Some(_)) => Ok(format!("{ns} + {CODEX_LAYER}")),
        (Ok(()), None) => Ok(format!("{ns} + {CODEX_LAYER} except in full access")),
        (Err(why), Some(Sandbox::DangerFullAccess)) => Err(format!(
            "none: FCX_HOME is readable by Codex's commands (full access; no namespace: {why})"
        )),
        (Err(why), Some(_)) => Ok(format!(
            "FCX_HOME {CODEX_LAYER} only; nothing in full access (no namespace: {why})"
        )),
        (Err(why), None) => Ok(format!(
            "FCX_HOME {CODEX_LAYER} only, nothing in full access (no namespace: {why})"
        )),
    }
}

/// Whether hiding works on this machine: tried once on a trivial child.
pub(crate) fn available() -> Result<(), String> {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| match turned_off_for_tests() {
            Some(why) => Err(why),
            None => probe(),
        })
        .clone()
}

/// Debug builds only: `FCX_TEST_NO_NAMESPACE=1` in the worker's
/// environment turns the namespace off, so the end-to-end tests can show
/// what Codex's own sandbox holds by itself. Release builds ignore it.
fn turned_off_for_tests() -> Option<String> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var_os("FCX_TEST_NO_NAMESPACE")
        .filter(|v| !v.is_empty())
        .map(|_| "turned off by FCX_TEST_NO_NAMESPACE (a debug build's test switch)".into())
}

#[cfg(target_os = "linux")]
fn probe() -> Result<(), String> {
    let dir = tempfile_dir().map_err(|e| format!("probe: {e}"))?;
    let hide = Hide {
        root: dir.join("home"),
        keep: vec![dir.join("home/keep")],
        also: vec![],
        only: None,
    };
    std::fs::create_dir_all(dir.join("home/keep")).map_err(|e| format!("probe: {e}"))?;
    std::fs::write(dir.join("home/secret"), "x").map_err(|e| format!("probe: {e}"))?;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("test ! -e \"$1/secret\" && test -d \"$1/keep\"")
        .arg("probe")
        .arg(&hide.root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let r = linux::apply(&mut cmd, &hide)
        .and_then(|()| cmd.status().map_err(|e| e.to_string()))
        .and_then(|s| {
            if s.success() {
                Ok(())
            } else {
                Err("the namespace did not hide the directory".into())
            }
        });
    let _ = std::fs::remove_dir_all(&dir);
    r.map_err(|e| format!("user namespaces unavailable: {e}"))
}

#[cfg(target_os = "linux")]
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let mut raw = [0u8; 8];
    rand::fill(&mut raw[..]);
    let dir = std::env::temp_dir().join(format!("fcx-confine-{}", hex::encode(raw)));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Result<(), String> {
    Err("not available on this platform".into())
}

/// Set `cmd` up to start inside the namespace. The caller keeps the
/// returned guard (an open handle on the kept directory) until it spawned.
#[cfg(target_os = "linux")]
pub(crate) use linux::apply;

#[cfg(not(target_os = "linux"))]
pub(crate) fn apply<C>(_cmd: &mut C, _hide: &Hide) -> Result<(), String> {
    Err("not available on this platform".into())
}

/// The directories to create inside the tmpfs before binding `keep` back,
/// outermost first.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn dirs_between(root: &Path, keep: &Path) -> Option<Vec<PathBuf>> {
    let rel = keep.strip_prefix(root).ok()?;
    let mut out = Vec::new();
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        out.push(at.clone());
    }
    Some(out)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt as _;

    use super::{Hide, dirs_between};

    fn cstr(p: &std::path::Path) -> Result<CString, String> {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| "a path contains NUL".to_string())
    }

    /// Everything the pre-exec hook needs, prepared before fork (the hook
    /// may not allocate).
    struct Plan {
        root: CString,
        mkdirs: Vec<CString>,
        /// The kept directories (opened inside the new namespace: a bind
        /// needs a source from the caller's own mount namespace).
        keep: Vec<CString>,
        /// Inside a kept directory, hidden again: directories (tmpfs) and
        /// files (`/dev/null` bound over them).
        mask_dirs: Vec<CString>,
        mask_files: Vec<CString>,
        also: Vec<CString>,
        uid_map: Vec<u8>,
        gid_map: Vec<u8>,
    }

    /// Works for both `std::process::Command` and tokio's (which derefs to
    /// its own `pre_exec`); see [`Confinable`].
    pub(crate) fn apply<C: Confinable>(cmd: &mut C, hide: &Hide) -> Result<(), String> {
        let plan = plan(hide)?;
        // SAFETY: the hook only makes system calls (open, write, unshare,
        // mount, mkdir) on data prepared above; it allocates nothing.
        unsafe { cmd.hook(Box::new(move || run(&plan))) };
        Ok(())
    }

    pub(crate) trait Confinable {
        /// # Safety
        /// As `CommandExt::pre_exec`.
        unsafe fn hook(&mut self, f: Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>);
    }

    impl Confinable for std::process::Command {
        unsafe fn hook(&mut self, f: Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>) {
            // SAFETY: forwarded from the caller.
            unsafe {
                self.pre_exec(f);
            }
        }
    }

    impl Confinable for tokio::process::Command {
        unsafe fn hook(&mut self, f: Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>) {
            // SAFETY: forwarded from the caller.
            unsafe {
                self.pre_exec(f);
            }
        }
    }

    fn plan(hide: &Hide) -> Result<Plan, String> {
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut kept = hide.keep.clone();
        let (mut mask_dirs, mut mask_files) = (Vec::new(), Vec::new());
        if let Some((dir, names)) = &hide.only
            && dir.is_dir()
        {
            let (d, f) = super::masks(dir, names)
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            mask_dirs = d.iter().map(|p| cstr(p)).collect::<Result<_, _>>()?;
            mask_files = f.iter().map(|p| cstr(p)).collect::<Result<_, _>>()?;
            kept.push(dir.clone());
        }
        if kept.len() > super::MAX_KEEP {
            return Err("too many directories to keep".into());
        }
        let keep = kept.iter().map(|k| cstr(k)).collect::<Result<_, _>>()?;
        let mut mkdirs = Vec::new();
        for k in &kept {
            for d in dirs_between(&hide.root, k)
                .ok_or_else(|| format!("{} is not inside FCX_HOME", k.display()))?
            {
                let d = cstr(&d)?;
                if !mkdirs.contains(&d) {
                    mkdirs.push(d);
                }
            }
        }
        Ok(Plan {
            root: cstr(&hide.root)?,
            mkdirs,
            keep,
            mask_dirs,
            mask_files,
            also: hide
                .also
                .iter()
                .filter(|p| p.is_dir())
                .map(|p| cstr(p))
                .collect::<Result<_, _>>()?,
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        })
    }

    fn check(r: libc::c_int) -> std::io::Result<()> {
        if r == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn write_file(path: &[u8], data: &[u8]) -> std::io::Result<()> {
        // SAFETY: `path` is NUL-terminated; plain system calls.
        unsafe {
            let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
            check(fd)?;
            let n = libc::write(fd, data.as_ptr().cast(), data.len());
            libc::close(fd);
            if n < 0 || n as usize != data.len() {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    fn tmpfs(at: &CString) -> std::io::Result<()> {
        // SAFETY: NUL-terminated strings; a plain system call.
        check(unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                at.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=0700".as_ptr().cast(),
            )
        })
    }

    /// `/proc/self/fd/N` NUL-terminated into `buf`, without allocating.
    pub(super) fn fd_path(fd: libc::c_int, buf: &mut [u8; 32]) {
        const PREFIX: &[u8] = b"/proc/self/fd/";
        buf[..PREFIX.len()].copy_from_slice(PREFIX);
        let mut digits = [0u8; 10];
        let mut n = fd.unsigned_abs();
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 || len == digits.len() {
                break;
            }
        }
        for i in 0..len {
            buf[PREFIX.len() + i] = digits[len - 1 - i];
        }
        buf[PREFIX.len() + len] = 0;
    }

    /// Runs in the child between fork and exec.
    fn run(p: &Plan) -> std::io::Result<()> {
        // SAFETY (all blocks below): plain system calls on prepared,
        // NUL-terminated data.
        check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) })?;
        write_file(b"/proc/self/setgroups\0", b"deny")?;
        write_file(b"/proc/self/uid_map\0", &p.uid_map)?;
        write_file(b"/proc/self/gid_map\0", &p.gid_map)?;
        // Nothing done here may reach the host's mount table.
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;
        // Opened before the tmpfs hides it.
        let mut fds: [libc::c_int; super::MAX_KEEP] = [-1; super::MAX_KEEP];
        for (i, k) in p.keep.iter().enumerate() {
            let fd = unsafe {
                libc::open(
                    k.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            check(fd)?;
            fds[i] = fd;
        }
        tmpfs(&p.root)?;
        for d in &p.mkdirs {
            let r = unsafe { libc::mkdir(d.as_ptr(), 0o700) };
            if r == -1 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e);
                }
            }
        }
        for (fd, dst) in fds.iter().copied().zip(p.keep.iter()) {
            let mut src = [0u8; 32];
            fd_path(fd, &mut src);
            let r = check(unsafe {
                libc::mount(
                    src.as_ptr().cast(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )
            });
            unsafe { libc::close(fd) };
            r?;
        }
        // Gone since the plan was made: nothing left to hide.
        let tolerate_gone = |r: std::io::Result<()>| match r {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        };
        for d in &p.mask_dirs {
            tolerate_gone(tmpfs(d))?;
        }
        for f in &p.mask_files {
            tolerate_gone(check(unsafe {
                libc::mount(
                    c"/dev/null".as_ptr(),
                    f.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            }))?;
        }
        for a in &p.also {
            tmpfs(a)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn fd_paths_are_spelled_without_allocating() {
        for (fd, want) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1234, "/proc/self/fd/1234"),
        ] {
            let mut b = [0u8; 32];
            linux::fd_path(fd, &mut b);
            let end = b.iter().position(|c| *c == 0).expect("nul");
            assert_eq!(std::str::from_utf8(&b[..end]).expect("utf8"), want);
        }
    }

    #[test]
    fn status_and_doctor_name_each_layer_and_say_none_only_when_none_holds() {
        use crate::runner::Sandbox;
        let off: Result<(), String> = Err("not available on this platform".into());
        assert_eq!(
            describe(&off, Some(Sandbox::DangerFullAccess)),
            Err("none: FCX_HOME is readable by Codex's commands (full access; no namespace: not available on this platform)".into())
        );
        let only = describe(&off, Some(Sandbox::WorkspaceWrite)).expect("one layer");
        assert!(
            only.starts_with("FCX_HOME denied by Codex's sandbox (")
                && only.contains("only; nothing in full access (no namespace: not available"),
            "{only}"
        );
        let both = describe(&Ok(()), Some(Sandbox::ReadOnly)).expect("two layers");
        assert!(
            both.starts_with(
                "FCX_HOME hidden from Codex (user + mount namespace) + denied by Codex's sandbox ("
            ),
            "{both}"
        );
        assert_eq!(
            describe(&Ok(()), Some(Sandbox::DangerFullAccess)),
            Ok("FCX_HOME hidden from Codex (user + mount namespace); Codex's sandbox is off in full access".into())
        );
        assert!(
            describe(&Ok(()), None)
                .expect("unknown mode")
                .ends_with("except in full access")
        );
    }

    #[test]
    fn dirs_between_lists_each_level() {
        assert_eq!(
            dirs_between(Path::new("/h"), Path::new("/h/profiles/p/codex-home")),
            Some(vec![
                PathBuf::from("/h/profiles"),
                PathBuf::from("/h/profiles/p"),
                PathBuf::from("/h/profiles/p/codex-home"),
            ])
        );
        assert_eq!(dirs_between(Path::new("/h"), Path::new("/x")), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_hidden_home_shows_only_what_is_kept() {
        if let Err(why) = available() {
            // Measured on the CI machine: available. Elsewhere say why.
            panic!("confinement unavailable here: {why}");
        }
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("fcx");
        let keep = root.join("profiles/p/codex-home");
        std::fs::create_dir_all(&keep).expect("mkdir");
        std::fs::write(keep.join("auth.json"), "kept").expect("write");
        std::fs::write(root.join("secret"), "s3cret").expect("write");
        let other = d.path().join("dot-codex");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join("auth.json"), "user-auth").expect("write");
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(format!(
            "cat {root}/secret; cat {other}/auth.json; cat {keep}/auth.json; echo done > {keep}/w",
            root = root.display(),
            other = other.display(),
            keep = keep.display()
        ));
        apply(
            &mut cmd,
            &Hide {
                root: root.clone(),
                keep: vec![keep.clone()],
                also: vec![other.clone()],
                only: None,
            },
        )
        .expect("apply");
        let out = cmd.output().expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout, "kept", "{out:?}");
        // Writes to the kept directory land in the real one.
        assert_eq!(
            std::fs::read_to_string(keep.join("w")).expect("written through"),
            "done\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn only_the_named_entries_of_the_shared_home_stay_visible() {
        let d = tempfile::tempdir().expect("tempdir");
        let h = d.path();
        for dir in ["sessions/2026/01/01", "memories"] {
            std::fs::create_dir_all(h.join(dir)).expect("mkdir");
        }
        for f in [
            "auth.json",
            "config.toml",
            "state_5.sqlite",
            "history.jsonl",
        ] {
            std::fs::write(h.join(f), "x").expect("write");
        }
        std::os::unix::fs::symlink("/nowhere", h.join("link")).expect("symlink");
        let (dirs, files) = masks(h, &["auth.json", "config.toml"]).expect("masks");
        assert_eq!(dirs, vec![h.join("memories"), h.join("sessions")]);
        assert_eq!(
            files,
            vec![h.join("history.jsonl"), h.join("state_5.sqlite")]
        );
        let (dirs, files) = masks(&h.join("absent"), &[]).expect("absent dir");
        assert!(dirs.is_empty() && files.is_empty());
    }

    /// The profile's Codex home shows its login and config and nothing
    /// else; Codex's way of replacing the login (a temporary file beside
    /// it renamed over it) still reaches the real file.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_shared_home_shows_login_and_config_and_takes_a_renamed_login() {
        if let Err(why) = available() {
            panic!("confinement unavailable here: {why}");
        }
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("fcx");
        let shared = root.join("profiles/p/codex-home");
        let scope = root.join("profiles/p/codex-homes/abc");
        std::fs::create_dir_all(shared.join("sessions/2026/01/01")).expect("mkdir");
        std::fs::create_dir_all(&scope).expect("mkdir");
        std::fs::write(shared.join("auth.json"), "old-login").expect("write");
        std::fs::write(shared.join("config.toml"), "model = \"m\"").expect("write");
        std::fs::write(shared.join("state_5.sqlite"), "other chats").expect("write");
        std::fs::write(
            shared.join("sessions/2026/01/01/rollout-x-OTHERCHAT.jsonl"),
            "other chat",
        )
        .expect("write");
        std::os::unix::fs::symlink(shared.join("auth.json"), scope.join("auth.json"))
            .expect("link");
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(format!(
            "cat {scope}/auth.json; cat {shared}/config.toml; cat {shared}/state_5.sqlite; \
             ls -R {shared}/sessions; printf new-login > {shared}/.auth-tmp && mv {shared}/.auth-tmp {shared}/auth.json && echo renamed",
            scope = scope.display(),
            shared = shared.display(),
        ));
        apply(
            &mut cmd,
            &Hide {
                root: root.clone(),
                keep: vec![scope.clone()],
                also: vec![],
                only: Some((shared.clone(), &["auth.json", "config.toml"])),
            },
        )
        .expect("apply");
        let out = cmd.output().expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("old-loginmodel = \"m\""), "{out:?}");
        assert!(!stdout.contains("other chat"), "{out:?}");
        assert!(!stdout.contains("OTHERCHAT"), "{out:?}");
        assert!(stdout.ends_with("renamed\n"), "{out:?}");
        assert_eq!(
            std::fs::read_to_string(shared.join("auth.json")).expect("read"),
            "new-login"
        );
        // Hidden in the child only.
        assert_eq!(
            std::fs::read_to_string(shared.join("state_5.sqlite")).expect("read"),
            "other chats"
        );
    }
}
