//! `env:` secrets leave fcxd's and the worker's environment at start (issue
//! 10 item 3): `/proc/PID/environ` shows neither the variable nor its value,
//! runs still get the key, and a reload that names a variable fcxd did not
//! read at start is refused with the restart hint.

use fcx_tests::fake_feishu::FakeFeishu;
use fcx_tests::harness::{
    FEISHU_USER as USER, Fcxd, TestHome, WAIT, bin, eventually, fcxctl, message_id,
    processes_mentioning,
};

/// The start-up environment of `pid` as the kernel shows it; `None` when
/// this test may not read it (fcx's processes are not dumpable: only root,
/// or a process with CAP_SYS_PTRACE, reads them).
fn environ(pid: u32) -> Option<String> {
    match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("SKIP: /proc/{pid}/environ is not readable by this user: {e}");
            None
        }
        Err(e) => panic!("/proc/{pid}/environ: {e}"),
    }
}

fn worker_pids(h: &TestHome, fcxd: u32) -> Vec<u32> {
    processes_mentioning(&h.home.display().to_string())
        .into_iter()
        .filter(|p| *p != fcxd)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("fcx-worker"))
        })
        .collect()
}

const CODEX_KEY: &str = "sk-envsec-codex-3391";
const APP_SECRET: &str = "envsec-app-secret-4402";
const PASSPHRASE: &str = "envsec-passphrase-5513";
const UNRELATED: &str = "envsec-unrelated-6624";

#[test]
fn fcxd_and_the_worker_drop_env_secrets_from_their_environment_and_runs_still_get_the_key() {
    let h = TestHome::new();
    let key_line = format!(
        "api_key = \"file:{}\"",
        h.key_file("sk-fake-test-secret-0001").display()
    );
    let base = h
        .fake_codex_config("")
        .replace(&key_line, "api_key = \"env:ENVSEC_CODEX_KEY\"");
    h.write_config(&format!(
        "{base}\n[profiles.other]\nenabled = false\n[profiles.other.app]\napp_id = \"cli_other\"\napp_secret = \"env:ENVSEC_APP_SECRET\"\n"
    ));
    let mut f = Fcxd::console_with(
        &h,
        &[
            ("ENVSEC_CODEX_KEY", CODEX_KEY),
            ("ENVSEC_APP_SECRET", APP_SECRET),
            ("FCX_KEYSTORE_PASSPHRASE", PASSPHRASE),
            ("ENVSEC_UNRELATED", UNRELATED),
        ],
    );
    f.wait_for("fcx console");
    f.send("hello");
    f.wait_for("] completed");
    f.send("again");
    f.wait_for("] completed");
    // The key reached Codex, for every run, read from memory.
    let recs = h.fake_records();
    assert_eq!(recs.len(), 2, "two runs");
    for r in &recs {
        assert_eq!(r["env"]["CODEX_API_KEY"], CODEX_KEY);
    }

    let Some(env) = environ(f.pid()) else {
        return;
    };
    assert!(env.contains("FCX_HOME="), "read fcxd's environment: {env}");
    // Not named in the config: not a secret fcx reads, left alone.
    assert!(env.contains(UNRELATED), "{env}");
    for taken in [
        "ENVSEC_CODEX_KEY",
        CODEX_KEY,
        "ENVSEC_APP_SECRET",
        APP_SECRET,
        "FCX_KEYSTORE_PASSPHRASE",
        PASSPHRASE,
    ] {
        assert!(!env.contains(taken), "{taken} is in fcxd's environment");
    }
    let workers = worker_pids(&h, f.pid());
    assert_eq!(workers.len(), 1, "one worker: {workers:?}");
    let env = environ(workers[0]).expect("the worker's environment is readable like fcxd's");
    assert!(
        env.contains("PATH="),
        "read the worker's environment: {env}"
    );
    for taken in [
        "ENVSEC_CODEX_KEY",
        CODEX_KEY,
        APP_SECRET,
        PASSPHRASE,
        UNRELATED,
    ] {
        assert!(
            !env.contains(taken),
            "{taken} is in the worker's environment"
        );
    }
}

#[test]
fn a_reload_reads_env_secrets_from_start_and_refuses_one_named_later() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt.block_on(FakeFeishu::start()).expect("fake platform");
    let h = TestHome::new();
    let key_line = format!(
        "api_key = \"file:{}\"",
        h.key_file("sk-fake-test-secret-0001").display()
    );
    // `default` (the app's profile) is disabled at start and reads its Codex
    // key from ENVSEC_LATE_KEY; `base` keeps fcxd serving meanwhile.
    let app = h
        .feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER)
        .replace(&key_line, "api_key = \"env:ENVSEC_LATE_KEY\"");
    assert!(app.contains("env:ENVSEC_LATE_KEY"), "{app}");
    let base = format!(
        "[profiles.base]\nenabled = true\n[profiles.base.codex]\nbinary = \"{}\"\nauth = \"api-key\"\napi_key = \"file:{}\"\n[profiles.base.workspaces]\ndefault = \"{}\"\n",
        bin("fake-codex").display(),
        h.root.join("api-key").display(),
        h.workspace.display()
    );
    let disabled = app.replacen("enabled = true", "enabled = false", 1);
    h.write_config(&format!("{base}\n{disabled}"));
    let fcxd = Fcxd::daemon_with(
        &h,
        &[
            ("ENVSEC_LATE_KEY", "sk-envsec-late-7735"),
            ("ENVSEC_NEVER_KEY", "sk-envsec-never-8846"),
        ],
    );
    eventually(
        WAIT,
        || {
            rt.block_on(h.status())
                .profiles
                .iter()
                .any(|p| p.name == "base" && p.worker_pid != 0)
                .then_some(())
        },
        || h.read_logs(),
    );
    if let Some(env) = environ(fcxd.pid()) {
        assert!(!env.contains("sk-envsec-late-7735"), "taken at start");
        assert!(env.contains("sk-envsec-never-8846"), "named by no profile");
    }

    // Enabled by a reload: its key was read at start, and its runs get it.
    h.write_config(&format!("{base}\n{app}"));
    let (code, out, err) = fcxctl(&h, &["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("added: default"), "{out}");
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("the enabled profile connects");
    let ev = fake.events().p2p_text("oc_envsec1", USER, "hello");
    let om = message_id(&ev);
    rt.block_on(fake.push(&ev)).expect("push");
    eventually(
        WAIT,
        || {
            fake.messages()
                .iter()
                .any(|m| {
                    m.sender_type == "app"
                        && m.parent_id == om
                        && m.content.contains("hello from fake codex")
                })
                .then_some(())
        },
        || format!("no answer\n{}", h.read_logs()),
    );
    let recs = h.fake_records();
    assert_eq!(recs.len(), 1, "one run");
    let worker_pid = || {
        rt.block_on(h.status())
            .profiles
            .iter()
            .find(|p| p.name == "default" && p.worker_pid != 0)
            .map(|p| p.worker_pid)
    };
    let pid = worker_pid().expect("default's worker");
    assert_eq!(recs[0]["env"]["CODEX_API_KEY"], "sk-envsec-late-7735");

    // A variable no profile named at start is refused, though fcxd's
    // environment still holds it: fcxd reads env: secrets only then.
    h.write_config(&format!(
        "{base}\n{}",
        app.replace("env:ENVSEC_LATE_KEY", "env:ENVSEC_NEVER_KEY")
    ));
    let (code, out, err) = fcxctl(&h, &["reload"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("was not applied (nothing changed)"), "{err}");
    assert!(
        err.contains(
            "env: references are read when fcxd starts; restart fcxd to pick up ENVSEC_NEVER_KEY"
        ),
        "{err}"
    );
    assert_eq!(
        worker_pid(),
        Some(pid),
        "the refused reload touched nothing"
    );
}
