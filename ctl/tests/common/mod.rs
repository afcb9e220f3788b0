//! Shared by the doctor, service, secret and init tests: a scratch FCX_HOME
//! with a short path, a stand-in Codex, and fcxctl run with an environment
//! the test controls entirely.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_fcxctl");

pub(crate) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        // Unix socket paths must stay under ~100 bytes.
        let base = if cfg!(unix) {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("fcx")
            .tempdir_in(base)
            .expect("scratch dir");
        for d in ["u", "bin", "ws"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("scratch subdir");
        }
        Scratch { dir }
    }
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
    pub(crate) fn fcx_home(&self) -> PathBuf {
        self.path().join("h")
    }
    pub(crate) fn user_home(&self) -> PathBuf {
        self.path().join("u")
    }
    pub(crate) fn workspace(&self) -> PathBuf {
        self.path().join("ws")
    }
    pub(crate) fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.fcx_home()).expect("fcx home");
        set_mode(&self.fcx_home(), 0o700);
        std::fs::write(self.fcx_home().join("config.toml"), text).expect("config");
    }
    /// A stand-in Codex that answers `--version` like the pinned CLI.
    pub(crate) fn fake_codex(&self) -> PathBuf {
        let p = self.path().join("bin").join("codex");
        std::fs::write(&p, "#!/bin/sh\necho 'codex-cli 0.169.0'\n").expect("fake codex");
        set_mode(&p, 0o755);
        p
    }
    /// A secret file holding `value`, with `mode`.
    pub(crate) fn secret_file(&self, name: &str, value: &str, mode: u32) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, format!("{value}\n")).expect("secret file");
        set_mode(&p, mode);
        p
    }
    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(BIN);
        c.arg("--home")
            .arg(self.fcx_home())
            .args(args)
            .env("HOME", self.user_home())
            .env("PATH", self.path().join("bin"))
            .env("USER", "tester")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("FCX_HOME")
            .env_remove("FCX_CODEX_BINARY")
            .env_remove("FCX_KEYSTORE_PASSPHRASE")
            .env_remove("OPENAI_API_KEY");
        c
    }
    /// An executable shell script in the scratch bin directory (on the PATH
    /// fcxctl sees).
    pub(crate) fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path().join("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("script");
        set_mode(&p, 0o755);
        p
    }
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run fcxctl")
    }
    /// `run_async` whose future owns its command (for closures).
    pub(crate) fn run_async_owned(
        &self,
        args: &[&str],
    ) -> impl std::future::Future<Output = Output> + use<> {
        let mut c = tokio::process::Command::from(self.command(args));
        async move { c.output().await.expect("run fcxctl") }
    }
    pub(crate) async fn run_async(&self, args: &[&str]) -> Output {
        tokio::process::Command::from(self.command(args))
            .output()
            .await
            .expect("run fcxctl")
    }
}

/// `[profiles.NAME.codex.config]` pointing Codex's model API at `base`
/// (doctor checks that it answers), to append to a config.
pub(crate) fn model_api_section(profile: &str, base: &str) -> String {
    format!("\n[profiles.{profile}.codex.config]\nopenai_base_url = \"{base}\"\n")
}

/// A model API that answers every request with 401 (doctor only asks
/// whether it answers), for the test process's lifetime.
pub(crate) fn answering_model_api() -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    format!("http://127.0.0.1:{port}/v1")
}

/// A base URL on a 127.0.0.1 port nothing listens on.
pub(crate) fn closed_model_api() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/v1")
}

#[cfg(unix)]
pub(crate) fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(not(unix))]
pub(crate) fn set_mode(_: &Path, _: u32) {}

#[cfg(unix)]
pub(crate) fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

pub(crate) fn assert_exit(o: &Output, code: i32) -> (String, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    (out, err)
}

/// `fcxctl ARGS` at a terminal (a pty from util-linux `script`): waits for
/// each question, then types its answer and Enter. A question ending in
/// "(not shown): " is answered only once the terminal's echo is off (the
/// prompt is printed before echo is turned off). Returns (success, all the
/// terminal showed).
#[cfg(target_os = "linux")]
pub(crate) async fn at_terminal(s: &Scratch, args: &[&str], qa: &[(&str, &str)]) -> (bool, String) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut line = BIN.to_string();
    for a in ["--home".to_string(), s.fcx_home().display().to_string()]
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
    {
        line.push_str(" '");
        line.push_str(&a.replace('\'', "'\\''"));
        line.push('\'');
    }
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in s.command(&[]).get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    // script itself needs to find a shell.
    cmd.env(
        "PATH",
        format!("{}:/usr/bin:/bin", s.path().join("bin").display()),
    );
    let mut child = cmd.spawn().expect("util-linux script");
    let mut input = child.stdin.take().expect("stdin");
    let mut output = child.stdout.take().expect("stdout");
    let mut seen = String::new();
    for (question, answer) in qa {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !seen.ends_with(question) {
            assert!(Instant::now() < deadline, "no {question:?} in {seen}");
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(60), output.read(&mut buf))
                .await
                .expect("fcxctl stopped asking")
                .expect("read");
            assert!(n > 0, "fcxctl ended before {question:?}: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        if question.ends_with("(not shown): ") {
            let pid = child.id().expect("script's pid");
            while !echo_off_below(pid) {
                assert!(Instant::now() < deadline, "echo never off: {seen}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        input
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .expect("answer");
    }
    let mut rest = String::new();
    output.read_to_string(&mut rest).await.expect("rest");
    seen.push_str(&rest);
    drop(input);
    let status = child.wait().await.expect("wait");
    (status.success(), seen)
}

/// Whether the terminal of the fcxctl under `pid` has echo off (`stty -a`).
#[cfg(target_os = "linux")]
fn echo_off_below(pid: u32) -> bool {
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        if comm.trim() == "fcxctl" {
            let Ok(tty) = std::fs::read_link(format!("/proc/{p}/fd/0")) else {
                return false;
            };
            let o = std::process::Command::new("stty")
                .arg("-F")
                .arg(&tty)
                .arg("-a")
                .output();
            return o.is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .any(|w| w == "-echo")
            });
        }
        let kids =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        todo.extend(
            kids.split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok()),
        );
    }
    false
}
