//! Operating fcxd (issue 13): profiles added and removed with fcxctl and
//! applied by `fcxctl reload` (or SIGHUP) without touching the others.

use fcx_tests::fake_feishu::FakeFeishu;
use fcx_tests::harness::{
    FEISHU_USER as USER, Fcxd, TestHome, WAIT, bin, eventually, fcxctl, message_id,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn worker_pid(rt: &tokio::runtime::Runtime, home: &TestHome, profile: &str) -> Option<u32> {
    rt.block_on(home.status())
        .profiles
        .iter()
        .find(|p| p.name == profile && p.worker_pid != 0)
        .map(|p| p.worker_pid)
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

fn bot_said(fake: &FakeFeishu, parent: &str, needle: &str) -> bool {
    fake.messages()
        .iter()
        .any(|m| m.sender_type == "app" && m.parent_id == parent && m.content.contains(needle))
}

#[test]
fn a_profile_added_then_removed_with_fcxctl_starts_and_stops_alone() {
    let rt = runtime();
    let first = rt.block_on(FakeFeishu::start()).expect("fake platform");
    let second = rt
        .block_on(
            FakeFeishu::builder()
                .app_id("cli_ops_second_000001")
                .start(),
        )
        .expect("second fake platform");
    let home = TestHome::new();
    home.write_config(&home.feishu_config(
        &first.base_url(),
        first.app_id(),
        first.app_secret(),
        USER,
    ));
    let fcxd = Fcxd::daemon(&home);
    rt.block_on(first.wait_for_connections(1, WAIT))
        .expect("the first profile connects");
    let default_pid = eventually(
        WAIT,
        || worker_pid(&rt, &home, "default"),
        || home.read_logs(),
    );

    // A run of the first profile that is still going through both reloads.
    let stall = first.events().p2p_text("oc_ops1", USER, "FAKE:stall");
    rt.block_on(first.push(&stall)).expect("push");
    let codex_pid = eventually(
        WAIT,
        || {
            rt.block_on(home.ps())
                .processes
                .iter()
                .find(|p| p.id.starts_with("r:") && p.profile == "default" && p.pid != 0)
                .map(|p| p.pid)
        },
        || home.read_logs(),
    );

    let secret = home.root.join("second-secret");
    std::fs::write(&secret, second.app_secret()).expect("secret file");
    let ws = home.workspace.display().to_string();
    let fake_codex = bin("fake-codex").display().to_string();
    let key = home.root.join("api-key").display().to_string();
    let (code, out, err) = fcxctl(
        &home,
        &[
            "profile",
            "add",
            "second",
            "--non-interactive",
            "--workspace",
            &ws,
            "--codex-binary",
            &fake_codex,
            "--codex-auth",
            "api-key",
            "--api-key",
            &format!("file:{key}"),
            "--tenant",
            "feishu",
            "--app-id",
            second.app_id(),
            "--app-secret",
            &format!("file:{}", secret.display()),
            "--base-url",
            &second.base_url(),
            "--reply-mode",
            "markdown",
            "--owner",
            USER,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("fcxctl reload"),
        "the running fcxd is named: {out}"
    );

    let (code, out, err) = fcxctl(&home, &["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("added: second"), "{out}");
    assert!(out.contains("unchanged: default"), "{out}");
    rt.block_on(second.wait_for_connections(1, WAIT))
        .expect("the added profile connects");
    let ev = second.events().p2p_text("oc_ops2", USER, "are you there?");
    let om = message_id(&ev);
    rt.block_on(second.push(&ev)).expect("push");
    eventually(
        WAIT,
        || bot_said(&second, &om, "hello from fake codex").then_some(()),
        || format!("the added profile never answered\n{}", home.read_logs()),
    );
    let second_pid = worker_pid(&rt, &home, "second").expect("second worker listed");

    // Removed: its worker stops; SIGHUP does what `fcxctl reload` does.
    let (code, out, err) = fcxctl(&home, &["profile", "remove", "second"]);
    assert_eq!(code, 0, "{out}{err}");
    fcxd.signal(nix::sys::signal::Signal::SIGHUP);
    eventually(
        WAIT,
        || {
            let st = rt.block_on(home.status());
            (!st.profiles.iter().any(|p| p.name == "second") && !alive(second_pid)).then_some(())
        },
        || {
            format!(
                "the removed profile's worker still runs\n{}",
                home.read_logs()
            )
        },
    );

    // The first profile was not touched: same worker, same connection, and
    // its run still going.
    assert_eq!(worker_pid(&rt, &home, "default"), Some(default_pid));
    assert!(alive(codex_pid), "the first profile's run was dropped");
    let st = rt.block_on(home.status());
    let d = st
        .profiles
        .iter()
        .find(|p| p.name == "default")
        .expect("default");
    assert_eq!(d.restarts, 0, "{d:?}");
    assert_eq!(d.reconnects, 0, "{d:?}");
    assert_eq!(d.active_runs, 1, "{d:?}");
    assert_eq!(first.connects(), 1, "one long connection throughout");
    assert!(
        !fcxd.stderr().contains("reload failed"),
        "{}",
        fcxd.stderr()
    );
}

#[test]
fn a_config_that_does_not_load_is_not_applied() {
    let rt = runtime();
    let first = rt.block_on(FakeFeishu::start()).expect("fake platform");
    let home = TestHome::new();
    let good = home.feishu_config(&first.base_url(), first.app_id(), first.app_secret(), USER);
    home.write_config(&good);
    let _fcxd = Fcxd::daemon(&home);
    rt.block_on(first.wait_for_connections(1, WAIT))
        .expect("connects");
    let pid = eventually(
        WAIT,
        || worker_pid(&rt, &home, "default"),
        || home.read_logs(),
    );
    home.write_config(&format!("{good}\n[profiles.default.bogus]\nx = 1\n"));
    let (code, out, err) = fcxctl(&home, &["reload"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("was not applied (nothing changed)"), "{err}");
    assert!(err.contains("bogus"), "{err}");
    assert_eq!(worker_pid(&rt, &home, "default"), Some(pid));

    // Changed: that profile restarts with the new settings and answers.
    home.write_config(&good.replace("reply_mode = \"markdown\"", "reply_mode = \"text\""));
    let (code, out, err) = fcxctl(&home, &["reload", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["restarted"][0], "default", "{out}");
    let new_pid = eventually(
        WAIT,
        || worker_pid(&rt, &home, "default").filter(|p| *p != pid),
        || home.read_logs(),
    );
    assert!(!alive(pid), "the old worker is gone");
    assert!(alive(new_pid));
    eventually(
        WAIT,
        || (first.connects() >= 2 && first.connection_count() == 1).then_some(()),
        || home.read_logs(),
    );
    let ev = first.events().p2p_text("oc_ops3", USER, "after the change");
    let om = message_id(&ev);
    rt.block_on(first.push(&ev)).expect("push");
    eventually(
        WAIT,
        || bot_said(&first, &om, "hello from fake codex").then_some(()),
        || format!("the restarted profile never answered\n{}", home.read_logs()),
    );
}

#[test]
fn a_second_home_with_the_same_app_id_is_refused_and_kill_takes_only_registered_pids() {
    let rt = runtime();
    let fake = rt.block_on(FakeFeishu::start()).expect("fake platform");
    let first = TestHome::new();
    let locks = first.root.join("shared-locks");
    let locks = locks.to_str().expect("utf-8 path");
    first.write_config(&first.feishu_config(
        &fake.base_url(),
        fake.app_id(),
        fake.app_secret(),
        USER,
    ));
    let _a = Fcxd::daemon_with(&first, &[("FCX_LOCK_DIR", locks)]);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("the first home connects");

    let second = TestHome::new();
    second.write_config(&second.feishu_config(
        &fake.base_url(),
        fake.app_id(),
        fake.app_secret(),
        USER,
    ));
    let mut b = Fcxd::daemon_with(&second, &[("FCX_LOCK_DIR", locks)]);
    let status = b.wait_exit(WAIT);
    assert!(!status.success());
    let err = eventually(
        WAIT,
        || Some(b.stderr()).filter(|e| e.ends_with('\n')),
        || b.stderr(),
    );
    assert!(
        err.contains(&format!(
            "app {} is already served by profile `default` in {}",
            fake.app_id(),
            first.home.display()
        )),
        "{err}"
    );
    assert_eq!(err.matches("already served").count(), 1, "said once: {err}");
    assert_eq!(fake.connection_count(), 1);

    // The registry lists fcxd and its worker; kill refuses anything else.
    let worker = eventually(
        WAIT,
        || worker_pid(&rt, &first, "default"),
        || first.read_logs(),
    );
    let (code, _, err) = fcxctl(&first, &["kill", &std::process::id().to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a running fcx process"), "{err}");
    let (code, out, err) = fcxctl(&first, &["kill", "w:default"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("pid {worker}")), "{out}");
    eventually(
        WAIT,
        || worker_pid(&rt, &first, "default").filter(|p| *p != worker),
        || {
            format!(
                "fcxd did not replace the killed worker\n{}",
                first.read_logs()
            )
        },
    );
}

#[test]
fn a_key_that_cannot_be_read_is_reported_at_start_with_the_fixes() {
    let home = TestHome::new();
    let cfg = home.fake_codex_config("");
    let key_line = cfg
        .lines()
        .find(|l| l.starts_with("api_key = "))
        .expect("api_key line")
        .to_string();
    home.write_config(&cfg.replace(&key_line, "api_key = \"env:FCX_OPS_NO_SUCH_KEY\""));
    let fcxd = Fcxd::daemon_with(&home, &[("FCX_OPS_NO_SUCH_KEY", "")]);
    let err = eventually(
        WAIT,
        || Some(fcxd.stderr()).filter(|e| e.contains("cannot be read")),
        || format!("no warning at start\n{}", fcxd.stderr()),
    );
    assert!(err.contains("FCX_OPS_NO_SUCH_KEY"), "{err}");
    assert!(err.contains("fcxctl secret set"), "{err}");
    assert!(err.contains("inherit-user"), "{err}");
    // One sentence, not a source line's indentation.
    assert!(
        err.contains("so every run will fail; export the variable, or store the key"),
        "{err}"
    );
    let line = err
        .lines()
        .find(|l| l.contains("cannot be read"))
        .unwrap_or_default();
    assert!(!line.contains("   "), "{line}");
}

#[test]
fn the_console_without_config_or_key_uses_the_operators_codex_login() {
    let home = TestHome::new();
    let user = home.root.join("u");
    std::fs::create_dir_all(user.join(".codex")).expect("codex dir");
    std::fs::write(user.join(".codex/auth.json"), "{}").expect("login file");
    std::fs::create_dir_all(user.join("fcx-work")).expect("default workspace");
    let fake = bin("fake-codex").display().to_string();
    let user_s = user.display().to_string();
    let mut f = Fcxd::console_with(
        &home,
        &[
            ("HOME", &user_s),
            ("OPENAI_API_KEY", ""),
            ("CODEX_HOME", ""),
            ("FCX_CODEX_BINARY", &fake),
        ],
    );
    f.wait_for("fcx console");
    f.send("hello there");
    let seen = f.wait_for("] completed");
    assert!(seen.contains("hello from fake codex"), "{seen}");
    let err = f.stderr();
    assert!(err.contains("Codex uses your own Codex login"), "{err}");
    assert_eq!(err.matches("own Codex login").count(), 1, "one line: {err}");
    // `fcxctl status` names the console as the profile's channel.
    let st = runtime().block_on(home.status());
    assert_eq!(st.profiles[0].channel_state, "console", "{st:?}");
    let (code, out, _) = fcxctl(&home, &["status"]);
    assert_eq!(code, 0);
    assert!(!out.contains("n/a"), "{out}");
}

/// The Codex child's environment under `auth` (one console run), with the
/// operator's own CODEX_HOME and OPENAI_API_KEY set in fcxd's environment.
fn child_env_with_auth(auth: &str) -> (TestHome, serde_json::Value) {
    let home = TestHome::new();
    let cfg = home.fake_codex_config("");
    let key_line = cfg
        .lines()
        .find(|l| l.starts_with("api_key = "))
        .expect("api_key line")
        .to_string();
    home.write_config(
        &cfg.replace(&key_line, "")
            .replace("auth = \"api-key\"", &format!("auth = \"{auth}\"")),
    );
    let mut f = Fcxd::console_with(
        &home,
        &[
            ("CODEX_HOME", "/nonexistent/operator-codex-home"),
            ("OPENAI_API_KEY", "sk-operator-own-key-0001"),
        ],
    );
    f.wait_for("fcx console");
    f.send("hello there");
    f.wait_for("] completed");
    let env = home.fake_records()[0]["env"].clone();
    (home, env)
}

#[test]
fn codex_home_and_inherit_user_give_codex_the_login_they_name_and_no_key() {
    let (home, env) = child_env_with_auth("codex-home");
    let own = home.console_codex_home();
    assert_eq!(env["CODEX_HOME"], own.display().to_string(), "{env}");
    assert!(
        env.get("CODEX_API_KEY").is_none_or(|v| v.is_null()),
        "{env}"
    );
    assert!(!env.to_string().contains("sk-operator-own-key"), "{env}");

    let (_home, env) = child_env_with_auth("inherit-user");
    assert_eq!(
        env["CODEX_HOME"], "/nonexistent/operator-codex-home",
        "{env}"
    );
    assert!(
        env.get("CODEX_API_KEY").is_none_or(|v| v.is_null()),
        "{env}"
    );
    assert!(!env.to_string().contains("sk-operator-own-key"), "{env}");
}

/// One HTTP GET on loopback: (status line, body).
fn http_get(addr: &str, path: &str) -> Option<(String, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

#[test]
fn the_metrics_endpoint_counts_runs_and_workers() {
    let rt = runtime();
    let fake = rt.block_on(FakeFeishu::start()).expect("fake platform");
    let home = TestHome::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    home.write_config(&format!(
        "metrics = \"{addr}\"\n{}",
        home.feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER)
    ));
    let _fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("connects");
    let ev = fake.events().p2p_text("oc_metrics", USER, "count me");
    let om = message_id(&ev);
    rt.block_on(fake.push(&ev)).expect("push");
    eventually(
        WAIT,
        || bot_said(&fake, &om, "hello from fake codex").then_some(()),
        || home.read_logs(),
    );
    let body = eventually(
        WAIT,
        || {
            http_get(&addr, "/metrics")
                .filter(|(status, _)| status.contains("200"))
                .map(|(_, body)| body)
                .filter(|b| {
                    b.contains("fcx_runs_total{profile=\"default\",outcome=\"completed\"} 1")
                })
        },
        || format!("{:?}\n{}", http_get(&addr, "/metrics"), home.read_logs()),
    );
    for want in [
        "# TYPE fcx_run_duration_seconds histogram",
        "fcx_run_duration_seconds_count{profile=\"default\"} 1",
        "fcx_tokens_total{profile=\"default\",kind=\"output\"} 7",
        "fcx_worker_up{profile=\"default\"} 1",
        "fcx_worker_restarts_total{profile=\"default\"} 0",
        "fcx_active_runs{profile=\"default\"} 0",
        "fcx_channel_reconnects_total{profile=\"default\"} 0",
    ] {
        assert!(body.contains(want), "missing {want}:\n{body}");
    }
    let (status, _) = http_get(&addr, "/other").expect("answer");
    assert!(status.contains("404"), "{status}");

    // Each family moves: a run Codex fails, a forged click, an Open API
    // answer with an error code.
    let scrape_until = |want: &str| {
        eventually(
            WAIT,
            || {
                http_get(&addr, "/metrics")
                    .map(|(_, body)| body)
                    .filter(|b| b.contains(want))
            },
            || format!("no {want}\n{:?}", http_get(&addr, "/metrics")),
        )
    };
    let ev = fake
        .events()
        .p2p_text("oc_metrics", USER, "FAKE:fail please");
    rt.block_on(fake.push(&ev)).expect("push");
    scrape_until("fcx_run_failures_total{profile=\"default\",phase=\"codex\"} 1");
    let forged = fake.events().card_action(
        USER,
        &om,
        "oc_metrics",
        serde_json::json!({"fcx": "forged.token"}),
        None,
    );
    let f = rt.block_on(fake.push(&forged)).expect("push");
    rt.block_on(fake.wait_for_ack(&f, WAIT)).expect("ACK");
    let body = scrape_until("fcx_callback_denials_total{profile=\"default\",reason=");
    assert!(
        body.contains("# TYPE fcx_callback_denials_total counter"),
        "{body}"
    );
    fake.fail_next_code("/open-apis/im/v1/messages/*", 1, 230_099);
    let ev = fake
        .events()
        .p2p_text("oc_metrics", USER, "answer despite an error");
    rt.block_on(fake.push(&ev)).expect("push");
    scrape_until(&format!(
        "fcx_feishu_api_errors_total{{app_id=\"{}\",code=\"230099\"}} 1",
        fake.app_id()
    ));
}

#[test]
fn a_stuck_codex_child_is_registered_and_fcxctl_kill_fails_its_run_with_the_reason() {
    let home = TestHome::new();
    home.write_config(&home.fake_codex_config(""));
    let mut f = Fcxd::console(&home);
    f.wait_for("fcx console");
    f.send("FAKE:stall stuck for good");
    f.wait_for("] started");
    let fcx_home = fcx_config::Home::new(&home.home);
    // The Codex child is listed as `r:RUN` once it is up.
    let child = eventually(
        WAIT,
        || {
            fcx_config::registry::list(&fcx_home)
                .into_iter()
                .find(|e| e.kind == "codex")
        },
        || format!("{:?}", fcx_config::registry::list(&fcx_home)),
    );
    assert!(child.id.starts_with("r:"), "{child:?}");
    assert_eq!(child.profile, "default");
    let (code, out, err) = fcxctl(&home, &["kill", &child.id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("codex {} (pid {})", child.id, child.pid)),
        "{out}"
    );
    let seen = f.wait_for("killed by the operator");
    assert!(seen.contains("] failed"), "{seen}");
    assert!(
        seen.contains(&format!("fcxctl kill {}", child.id)),
        "{seen}"
    );
    // Its entry is gone with the run: the id is refused now.
    eventually(
        WAIT,
        || {
            (!fcx_config::registry::list(&fcx_home)
                .iter()
                .any(|e| e.id == child.id))
            .then_some(())
        },
        || format!("{:?}", fcx_config::registry::list(&fcx_home)),
    );
    let (code, _, err) = fcxctl(&home, &["kill", &child.id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a running fcx process"), "{err}");
    // The next message runs as usual.
    f.send("hello again");
    f.wait_for("] completed");
}

/// An `exec:` app secret runs a command (up to 10 s; a password manager may
/// wait for a touch): fcxd resolves it off its async threads, so with one
/// runtime thread (`TOKIO_WORKER_THREADS=1`) the rest of fcxd, here the
/// admin socket, answers while the command is still running.
#[test]
fn an_exec_secret_that_takes_its_time_does_not_stall_fcxd() {
    let rt = runtime();
    let fake = rt.block_on(FakeFeishu::start()).expect("fake platform");
    let home = TestHome::new();
    let secret = home.root.join("plain-secret");
    std::fs::write(&secret, fake.app_secret()).expect("secret");
    let started = home.root.join("exec-started");
    let gate = home.root.join("gate");
    let cmd = format!(
        "echo $$ > {s}; while [ ! -e {g} ]; do sleep 0.05; done; cat {f}",
        s = started.display(),
        g = gate.display(),
        f = secret.display()
    );
    let cfg = home.feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER);
    let line = cfg
        .lines()
        .find(|l| l.starts_with("app_secret = "))
        .expect("app_secret line")
        .to_string();
    home.write_config(&cfg.replace(&line, &format!("app_secret = {:?}", format!("exec:{cmd}"))));
    let _fcxd = Fcxd::daemon_with(&home, &[("TOKIO_WORKER_THREADS", "1")]);
    let pid: i32 = eventually(
        WAIT,
        || {
            std::fs::read_to_string(&started)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        },
        || home.read_logs(),
    );
    // fcxd answers its admin socket while the command still runs.
    eventually(
        WAIT,
        || {
            let (code, out, _) = fcxctl(&home, &["status", "--json"]);
            (code == 0).then_some(out)
        },
        || home.read_logs(),
    );
    assert!(
        alive(pid as u32),
        "the exec: command ended (its timeout) before fcxd answered"
    );
    std::fs::write(&gate, "").expect("open the gate");
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("the channel connects with the secret the command printed");
}
