//! The codex child as a process: its argv and environment, spawning it,
//! feeding it the prompt, and stopping it with everything it started.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::lines::{BoundedLines, Line};
use super::translate::Translator;
use crate::runner::RunSpec;
use crate::runner::overrides::{self, API_KEY_VAR};
use crate::runner::process::{self, ProcId, StopSignal};

/// After SIGKILL the child should be reapable at once; this only bounds a
/// child stuck in the kernel.
const REAP_AFTER_KILL: Duration = Duration::from_secs(10);

/// The argv after the binary, in the order the official SDK uses. Flags go
/// before `resume` because `exec resume` has no `--sandbox` of its own;
/// images use `--image=` because the spaced form is greedy and would swallow
/// the trailing `-`; `-` makes codex read the prompt from stdin (verified
/// with 0.169.0 both for new threads and after `resume <id>`). `profile`
/// names the file holding the config overrides (see `runner::overrides`);
/// the workspace is the child's working directory: neither the overrides'
/// values nor the workspace path are on argv, where `ps` shows them.
pub(crate) fn build_args(spec: &RunSpec, profile: Option<&str>) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["exec".into(), "--json".into()];
    if let Some(p) = profile {
        a.push("-p".into());
        a.push(p.into());
    }
    if let Some(m) = &spec.model {
        a.push("-m".into());
        a.push(m.into());
    }
    if !crate::runner::deny::applies(spec) {
        // With the permissions profile (in the `-p` file) a `--sandbox`
        // would replace it, deny entries and all (0.169.0).
        a.push("--sandbox".into());
        a.push(spec.sandbox.as_str().into());
    }
    a.push("--skip-git-repo-check".into());
    if let Some(t) = &spec.resume_thread {
        a.push("resume".into());
        a.push(t.into());
    }
    for img in &spec.images {
        let mut s = OsString::from("--image=");
        // Relative to the child's working directory (the workspace), as
        // codex 0.169.0 reads it (checked by hand: the model got the
        // image): the workspace path stays off argv.
        s.push(img.strip_prefix(&spec.cwd).unwrap_or(img));
        a.push(s);
    }
    a.push("-".into());
    a
}

/// Stops the child: SIGINT (codex exec handles it cleanly and kills its
/// commands), then SIGTERM, then SIGKILL to the process group, each after
/// `grace`; finally sweeps the descendants recorded while codex was alive,
/// which catches `setsid()`'d commands that no group signal reaches.
pub(super) async fn stop_child(
    child: &mut Child,
    pid: u32,
    exit: &mut Option<ExitStatus>,
    stdout: &mut BoundedLines<ChildStdout>,
    tr: &mut Translator,
    grace: Duration,
    run_id: &str,
) {
    if exit.is_some() {
        // Exited on its own; only stragglers left in its group remain.
        process::signal_group(pid, StopSignal::Kill);
        return;
    }
    let mut recorded: Vec<ProcId> = Vec::new();
    for sig in [
        StopSignal::Interrupt,
        StopSignal::Terminate,
        StopSignal::Kill,
    ] {
        // Re-snapshot at each step: codex may have started commands since.
        merge(&mut recorded, snapshot(pid).await);
        tracing::debug!(run_id, pid, signal = ?sig, "stopping codex");
        if !process::signal_group(pid, sig) && sig == StopSignal::Kill {
            // No process groups on this platform (or the group is gone).
            let _ = child.start_kill();
        }
        let limit = if sig == StopSignal::Kill {
            REAP_AFTER_KILL
        } else {
            grace
        };
        match wait_exit(child, stdout, tr, limit).await {
            Some(Ok(s)) => {
                *exit = Some(s);
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(run_id, pid, error = %e, "waiting for codex failed");
                break;
            }
            None => {}
        }
    }
    if exit.is_none() {
        tracing::error!(run_id, pid, "codex did not exit after SIGKILL");
    }
    // The group id cannot be reused while any member is left, so one more
    // group SIGKILL right after reaping only hits our stragglers.
    let sweep = tokio::task::spawn_blocking(move || {
        process::signal_group(pid, StopSignal::Kill);
        process::kill_tree(&recorded);
    });
    if let Err(e) = sweep.await {
        tracing::warn!(run_id, error = %e, "sweeping codex's commands failed");
    }
}

/// Waits up to `limit` for the child to exit, meanwhile reading stdout so a
/// full pipe cannot keep codex from exiting. Events seen now are not sent: the
/// run is being stopped, but the state (thread id, usage) is still updated.
pub(super) async fn wait_exit(
    child: &mut Child,
    stdout: &mut BoundedLines<ChildStdout>,
    tr: &mut Translator,
    limit: Duration,
) -> Option<io::Result<ExitStatus>> {
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            s = child.wait() => return Some(s),
            line = stdout.next(), if !stdout.done() => {
                if let Ok(Some(Line::Text(bytes))) = line {
                    let _ = tr.line(&bytes);
                }
            }
            _ = &mut deadline => return None,
        }
    }
}

pub(crate) async fn snapshot(pid: u32) -> Vec<ProcId> {
    tokio::task::spawn_blocking(move || process::descendants(pid))
        .await
        .unwrap_or_default()
}

pub(crate) fn merge(into: &mut Vec<ProcId>, more: Vec<ProcId>) {
    for p in more {
        if !into.contains(&p) {
            into.push(p);
        }
    }
}

/// Kills the child's group and tree if the run future is dropped before it
/// could stop the child itself (the orchestrator aborted the task). Blocking,
/// but it only runs on that abnormal path.
pub(crate) struct TreeGuard {
    pub(crate) pid: Option<u32>,
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let tree = process::descendants(pid);
            process::signal_group(pid, StopSignal::Kill);
            process::kill_tree(&tree);
        }
    }
}

pub(super) async fn prepare_command(spec: &RunSpec) -> Result<Command, String> {
    let ov = overrides::overrides(spec);
    let profile = if ov.is_empty() {
        None
    } else {
        let home = overrides::codex_home_of(spec).ok_or_else(|| {
            "Could not tell where Codex reads its config (no CODEX_HOME and no HOME).".to_string()
        })?;
        Some(overrides::write_profile(&home, &ov).await.map_err(|e| {
            format!(
                "Could not write the Codex settings file in {}: {e}.",
                home.display()
            )
        })?)
    };
    prepare_codex_command(spec, build_args(spec, profile.as_deref())).await
}

/// The codex child with `args`, its environment, pipes, process group and
/// parent-death signal: shared by every runner, so each gets the same
/// environment and containment.
pub(crate) async fn prepare_codex_command(
    spec: &RunSpec,
    args: Vec<OsString>,
) -> Result<Command, String> {
    let mut cmd = Command::new(&spec.binary);
    cmd.args(args);
    // An allow-list, not the worker's whole environment: secrets fcxd was
    // started with must not reach Codex or what it runs.
    cmd.env_clear().envs(super::allow_env::allowed(
        std::env::vars_os(),
        std::env::var_os(super::allow_env::PASS_ENV).as_deref(),
    ));
    for name in &spec.env.remove {
        if !name.is_empty() {
            cmd.env_remove(name);
        }
    }
    if let Some(home) = &spec.env.codex_home {
        ensure_codex_home(home, spec.env.shared_home.as_deref())
            .await
            .map_err(|e| {
                format!(
                    "Could not create the Codex home directory {}: {e}.",
                    home.display()
                )
            })?;
        cmd.env("CODEX_HOME", home);
    }
    if let Some(hide) = spec.env.hide.as_ref().filter(|_| spec.env.namespace) {
        super::confine::apply(&mut cmd, hide)
            .map_err(|e| format!("Could not hide fcx's files from Codex: {e}."))?;
    }
    set_working_dir(&mut cmd, &spec.cwd).await?;
    if let Some(key) = &spec.env.api_key {
        cmd.env(API_KEY_VAR, key.expose());
    }
    for (k, v) in &spec.env.set {
        cmd.env(k, v);
    }
    if let Some(dir) = codex_path_dir(&spec.binary).await {
        // The npm package ships rg there and the SDK puts it first on PATH.
        let current = child_path(spec);
        let parts = std::iter::once(dir.clone()).chain(
            current
                .as_deref()
                .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        match std::env::join_paths(parts) {
            Ok(p) => {
                cmd.env("PATH", p);
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "not adding codex-path to PATH")
            }
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Only a last resort if everything else is bypassed; it reaches the
        // direct child only.
        .kill_on_drop(true);
    #[cfg(unix)]
    {
        // Own group, so one killpg reaches codex and the commands it starts.
        cmd.process_group(0);
        // The operator's umask, not fcx's private one, for workspace files.
        if let Some(mask) = fcx_config::inherited_umask() {
            // SAFETY: umask is async-signal-safe and allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask as libc::mode_t);
                    Ok(())
                });
            }
        }
    }
    #[cfg(target_os = "linux")]
    set_parent_death_signal(&mut cmd);
    Ok(cmd)
}

/// Starts the child in `dir` (instead of `--cd DIR`, which `ps` shows).
/// On Unix the change happens after the hiding namespace is entered, so the
/// directory is looked up in the child's own view of the file system.
async fn set_working_dir(cmd: &mut Command, dir: &Path) -> Result<(), String> {
    if !tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir()) {
        return Err(format!(
            "The workspace {} is not a directory any more.",
            dir.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| format!("The workspace path {} contains a NUL byte.", dir.display()))?;
        // SAFETY: chdir is async-signal-safe; the path was allocated before
        // the fork and the closure allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::chdir(path.as_ptr()) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    cmd.current_dir(dir);
    Ok(())
}

/// Makes the kernel SIGKILL codex when the worker dies, even by SIGKILL.
///
/// Caveat: PR_SET_PDEATHSIG fires when the *thread* that forked the child
/// exits, not the process. tokio spawns from the runtime thread polling this
/// future; runtime worker threads live as long as the runtime, so this holds
/// for the worker, but a run driven from a short-lived thread (or a runtime
/// shut down while the process goes on) kills its codex when that thread ends.
/// It also reaches codex only: commands codex `setsid()`s survive a worker
/// SIGKILL, which `process::kill_leftover` can only partly repair.
#[cfg(target_os = "linux")]
pub(super) fn set_parent_death_signal(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The worker may have died before prctl took effect.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// PATH as the child will see it before the codex-path prefix.
pub(super) fn child_path(spec: &RunSpec) -> Option<OsString> {
    if let Some((_, v)) = spec.env.set.iter().rev().find(|(k, _)| k == "PATH") {
        return Some(v.into());
    }
    if spec.env.remove.iter().any(|k| k == "PATH") {
        return None;
    }
    std::env::var_os("PATH")
}

/// `<vendor>/<triple>/codex-path` for a binary at `<vendor>/<triple>/bin/codex`.
pub(super) async fn codex_path_dir(binary: &Path) -> Option<PathBuf> {
    let bin = binary.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let dir = bin.parent()?.join("codex-path");
    tokio::fs::metadata(&dir)
        .await
        .ok()
        .filter(|m| m.is_dir())
        .map(|_| dir)
}

/// The scope's Codex home, ready: see [`crate::runner::codex_home::prepare`].
pub(super) async fn ensure_codex_home(home: &Path, shared: Option<&Path>) -> io::Result<()> {
    let (home, shared) = (home.to_path_buf(), shared.map(Path::to_path_buf));
    tokio::task::spawn_blocking(move || {
        crate::runner::codex_home::prepare(&home, shared.as_deref())
    })
    .await
    .map_err(io::Error::other)?
}

pub(crate) async fn spawn_with_retry(cmd: &mut Command) -> io::Result<Child> {
    // ETXTBSY: another thread of this process forked while the binary was
    // open for writing (a just-installed codex, test fakes). It clears as
    // soon as that fork execs.
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if is_text_busy(&e) && tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

pub(super) fn is_text_busy(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ETXTBSY)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

pub(crate) fn spawn_error_message(binary: &Path, e: &io::Error) -> String {
    let b = binary.display();
    match e.kind() {
        io::ErrorKind::NotFound => format!(
            "The codex binary `{b}` was not found; set profiles.<name>.codex.binary in config.toml or install it ({}).",
            fcx_config::codex::INSTALL_HINT
        ),
        io::ErrorKind::PermissionDenied => format!(
            "The codex binary `{b}` cannot be executed (permission denied); set profiles.<name>.codex.binary in config.toml to an executable codex or install it ({}).",
            fcx_config::codex::INSTALL_HINT
        ),
        _ => format!("Could not start the codex binary `{b}`: {e}."),
    }
}

pub(super) async fn write_prompt(mut stdin: ChildStdin, prompt: String, run_id: String) {
    if let Err(e) = stdin.write_all(prompt.as_bytes()).await {
        // codex exited (or was stopped) before reading it all; the exit
        // status tells the real story.
        tracing::debug!(run_id, error = %e, "writing the prompt to codex stdin failed");
        return;
    }
    if let Err(e) = stdin.shutdown().await {
        tracing::debug!(run_id, error = %e, "closing codex stdin failed");
    }
    // Dropping `stdin` closes the pipe: codex reads until EOF.
}
