//! README's first command, `scripts/console.sh`, run as a new user runs it:
//! a fresh HOME without `~/.fcx`, `OPENAI_API_KEY` exported, no `codex` on
//! PATH. The script finds the pinned Codex CLI in its cache (a stand-in
//! there that runs the fake codex), creates the default workspace, builds
//! (`PROFILE=debug`: the test build's own command, see
//! scripts/lib/build.sh) and starts the console, which answers. The bench
//! command, `scripts/bench.sh --quick`, goes the same way in
//! `contract::the_bench_runs_and_prints_its_figures`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fcx_tests::harness::{Fcxd, TestHome, bin, repo_script};

/// A build bound, not a speed assertion: the script's cargo step is a
/// no-op after the test build, but checks every unit on a loaded machine.
const BUILD_WAIT: Duration = Duration::from_secs(300);

/// Where scripts/lib/codex.sh looks for the pinned CLI under `cache`.
fn pinned_codex(cache: &Path) -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(". scripts/lib/codex.sh && printf %s \"$CODEX_BIN\"")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("FCX_CACHE", cache)
        .output()
        .expect("source codex.sh");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// PATH without any directory that holds a `codex`.
fn path_without_codex() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("codex").exists())
        .collect();
    std::env::join_paths(dirs)
        .expect("PATH")
        .to_string_lossy()
        .into_owned()
}

/// `scripts/console.sh ARGS` as a new user with a fresh HOME (`user`).
fn console_sh(h: &TestHome, user: &Path, cache: &Path, args: &[&str]) -> Fcxd {
    let mut cmd = repo_script("console.sh");
    cmd.args(args)
        .env("HOME", user)
        .env("PATH", path_without_codex())
        .env("OPENAI_API_KEY", "sk-fake-readme-0001")
        .env("FCX_CACHE", cache)
        .env_remove("FCX_HOME")
        .env_remove("FCX_CODEX_BINARY")
        .env_remove("CODEX_HOME")
        .env("FAKE_CODEX_LOG_DIR", &h.logs)
        .env("FCX_CODEX_PASS_ENV", "FAKE_CODEX_*")
        .env(fcx_config::app_lock::LOCK_DIR_ENV, h.root.join("locks"));
    Fcxd::spawn(cmd)
}

#[test]
fn console_sh_from_a_fresh_home_answers_the_first_message() {
    let h = TestHome::new();
    let user = h.root.join("u");
    std::fs::create_dir_all(&user).expect("user home");
    // The pinned CLI, already in the cache: a stand-in at the exact path
    // that says the pinned version and otherwise runs the fake codex.
    let cache = h.root.join("cache");
    let codex = pinned_codex(&cache);
    assert!(
        codex.ends_with("bin/codex") && codex.starts_with(&cache),
        "{}",
        codex.display()
    );
    std::fs::create_dir_all(codex.parent().expect("bin dir")).expect("cache dirs");
    std::fs::write(
        &codex,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'codex-cli 0.169.0'; exit 0; }}\nexec {} \"$@\"\n",
            bin("fake-codex").display()
        ),
    )
    .expect("stand-in codex");
    std::fs::set_permissions(&codex, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // Arguments reach fcxd: an unknown profile is refused by name.
    let mut f = console_sh(&h, &user, &cache, &["--profile", "nosuch"]);
    let st = f.wait_exit(BUILD_WAIT);
    let err = f.stderr();
    assert!(!st.success(), "{err}");
    assert!(err.contains("nosuch"), "{err}");
    let ws = user.join("fcx-work");
    assert!(
        err.contains(&format!("Created {}, the default workspace.", ws.display())),
        "{err}"
    );
    assert!(!err.contains("Installing the Codex CLI"), "{err}");
    // The test build's own command, not a release build.
    assert!(err.contains("Finished `dev` profile"), "{err}");
    assert!(!err.contains("release"), "{err}");

    let mut f = console_sh(&h, &user, &cache, &["--profile", "default"]);
    let banner = f.wait_for_within("fcx console", BUILD_WAIT);
    assert!(
        banner.contains(&format!("profile default · workspace {}", ws.display())),
        "{banner}"
    );
    f.send("hello there");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("hello from fake codex"), "{seen}");
    // The pinned CLI from the cache ran it, with the exported key.
    let recs = h.fake_records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["env"]["CODEX_API_KEY"], "sk-fake-readme-0001");
    // Ctrl-D: the console waits for nothing more and quits.
    f.close_stdin();
    let st = f.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "{}", f.stderr());
    assert!(!f.stderr().contains("Created"), "{}", f.stderr());
}
