//! Secrets scan: a whole conversation over a signed, encrypted webhook with
//! every kind of secret reference in play (`keystore:` Codex API key,
//! `env:` app secret, `file:` encrypt key and verification token, the
//! callback signing keys fcx makes itself), then every place fcx writes or
//! sends is searched for every secret value. The Codex API key may appear
//! only as `CODEX_API_KEY` in the Codex child's environment; the app secret
//! only in the one token request to the platform; nothing else anywhere.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use fcx_tests::fake_feishu::FakeFeishu;
use fcx_tests::harness::{FEISHU_USER as USER, Fcxd, TestHome, bin, eventually};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(60);
const API_KEY: &str = "sk-proof-KEYSTORE-codex-5150aa";
const APP_SECRET: &str = "proof-ENV-app-secret-77d1c9";
const EK: &str = "proof-FILE-encrypt-key-3be02f";
const VT: &str = "proof-FILE-verification-token-91ac4e";

fn encrypt(plain: &[u8]) -> String {
    let k: [u8; 32] = Sha256::digest(EK.as_bytes()).into();
    let iv = [7u8; 16];
    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&k, &iv).expect("key");
    let mut out = iv.to_vec();
    out.extend(enc.encrypt_padded_vec_mut::<Pkcs7>(plain));
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// One signed POST of an encrypted event; returns the HTTP status (0: not listening).
fn post(port: u16, event: &serde_json::Value, nonce: &str) -> u16 {
    let body = serde_json::json!({ "encrypt": encrypt(event.to_string().as_bytes()) }).to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let mut h = Sha256::new();
    h.update(ts.as_bytes());
    h.update(nonce.as_bytes());
    h.update(EK.as_bytes());
    h.update(body.as_bytes());
    let req = format!(
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         X-Lark-Request-Timestamp: {ts}\r\nX-Lark-Request-Nonce: {nonce}\r\nX-Lark-Signature: {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        hex::encode(h.finalize()),
        body.len()
    );
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `fcxctl secret set ID` with the value on stdin (the key-file master key).
fn keystore_set(h: &TestHome, id: &str, value: &str) {
    let mut child = std::process::Command::new(bin("fcxctl"))
        .arg("--home")
        .arg(&h.home)
        .args(["secret", "set", id])
        .env("FCX_KEYSTORE_NO_KEYRING", "1")
        .env_remove("FCX_KEYSTORE_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fcxctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{value}\n").as_bytes())
        .expect("write the value");
    let out = child.wait_with_output().expect("fcxctl");
    assert!(out.status.success(), "{out:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(value), "fcxctl printed the value");
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&p)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_value_appears_in_logs_state_platform_traffic_or_codex_argv() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt
        .block_on(
            FakeFeishu::builder()
                .app_secret(APP_SECRET)
                .verification_token(VT)
                .start(),
        )
        .expect("fake platform");
    let h = TestHome::new();
    keystore_set(&h, "openai", API_KEY);
    std::fs::write(h.root.join("ek"), EK).expect("ek");
    std::fs::write(h.root.join("vt"), VT).expect("vt");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    // lark_cli's bot-only preset stores the app secret for lark-cli on
    // purpose (README: "The Feishu/Lark CLI in runs"); this proof is about
    // everything else.
    let cfg = format!(
        r#"[profiles.default]
enabled = true
lark_cli = "disabled"
[profiles.default.codex]
binary = "{codex}"
auth = "api-key"
api_key = "keystore:openai"
{keep}
[profiles.default.workspaces]
default = "{ws}"
[profiles.default.runs]
debounce_ms = 50
stop_grace_ms = 300
[profiles.default.app]
tenant = "feishu"
base_url = "{base}"
app_id = "{app_id}"
app_secret = "env:FCX_PROOF_APP_SECRET"
reply_mode = "card"
[profiles.default.app.webhook]
listen = "127.0.0.1:{port}"
encrypt_key = "file:{ek}"
verification_token = "file:{vt}"
[profiles.default.access]
owner = "{USER}"
allowed_chats = ["oc_grp1"]
"#,
        codex = bin("fake-codex").display(),
        // A kept child has the key in its environment as a running one
        // does; this proof looks at the processes once the runs are over.
        keep = fcx_tests::harness::KEEP_NO_CHILD,
        ws = h.workspace.display(),
        base = fake.base_url(),
        app_id = fake.app_id(),
        ek = h.root.join("ek").display(),
        vt = h.root.join("vt").display(),
    );
    h.write_config(&cfg);
    let fcxd = Fcxd::daemon_with(
        &h,
        &[
            ("FCX_PROOF_APP_SECRET", APP_SECRET),
            ("FCX_KEYSTORE_NO_KEYRING", "1"),
        ],
    );

    // The conversation: answers, tools, a stopped run, /status, /doctor,
    // a group mention.
    let events = fake.events();
    let mut n = 0;
    let mut send = |ev: serde_json::Value| {
        n += 1;
        let nonce = format!("nonce-{n}");
        let deadline = Instant::now() + WAIT;
        loop {
            let st = post(port, &ev, &nonce);
            if st == 200 {
                return;
            }
            assert!(
                st == 0 && Instant::now() < deadline,
                "webhook answered {st}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let bot_said = |chat: &str, needle: &str| {
        eventually(
            WAIT,
            || {
                let in_messages = fake.messages().into_iter().any(|m| {
                    m.sender_type == "app" && m.chat_id == chat && m.content.contains(needle)
                });
                let in_cards = fake
                    .requests()
                    .iter()
                    .any(|c| c.path.contains("/cardkit/") && c.body.to_string().contains(needle));
                (in_messages || in_cards).then_some(())
            },
            || format!("the bot never said {needle:?} in {chat}\n{}", h.read_logs()),
        )
    };
    send(events.p2p_text("oc_p1", USER, "hello with secrets around"));
    bot_said("oc_p1", "hello from fake codex");
    send(events.p2p_text("oc_p1", USER, "FAKE:tools please"));
    eventually(
        WAIT,
        || (h.fake_records().len() >= 2).then_some(()),
        || "the second run never started".into(),
    );
    send(events.p2p_text("oc_p2", USER, "FAKE:stall for a while"));
    eventually(
        WAIT,
        || (h.fake_records().len() >= 3).then_some(()),
        || "the stalled run never started".into(),
    );
    send(events.p2p_text("oc_p2", USER, "/stop"));
    bot_said("oc_p2", "Stopping");
    send(events.p2p_text("oc_p1", USER, "/status"));
    bot_said("oc_p1", "workspace-write");
    send(events.p2p_text("oc_p1", USER, "/doctor"));
    bot_said("oc_p1", "Codex");
    send(events.group_text("oc_grp1", USER, "hi from the group", true));
    bot_said("oc_grp1", "hello from fake codex");
    eventually(
        WAIT,
        || {
            let log = h.read_logs();
            (log.matches("\"run summary\"").count() >= 4).then_some(())
        },
        || format!("the runs never all ended\n{}", h.read_logs()),
    );

    // Keys fcx made itself are secrets too.
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("codex api key".into(), API_KEY.into()),
        ("app secret".into(), APP_SECRET.into()),
        ("encrypt key".into(), EK.into()),
        ("verification token".into(), VT.into()),
    ];
    let keys_path = h.home.join("profiles/default/callback-keys.json");
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keys_path).expect("callback keys made"))
            .expect("callback keys json");
    for (v, k) in keys["keys"].as_object().expect("keys").iter() {
        let hexed = k.as_str().expect("hex key").to_string();
        secrets.push((
            format!("callback key v{v} (raw)"),
            hex::decode(&hexed).expect("hex"),
        ));
        secrets.push((format!("callback key v{v}"), hexed.into_bytes()));
    }
    let master_path = h.home.join("secrets/keystore.key");
    let master = std::fs::read(&master_path).expect("keystore master key file");
    let master_text = String::from_utf8_lossy(&master).trim().to_string();
    if master_text.len() >= 16 {
        secrets.push(("keystore master key".into(), master_text.into_bytes()));
    }

    // 1. Every file fcx wrote under FCX_HOME: logs, state.db (journal, event
    // log, runs, sessions) and its WAL, cursors, open cards, nonces, the
    // socket keys, stderr captures, the Codex home. Only the two files that
    // hold keys by design are left out.
    let skip = [keys_path.clone(), master_path.clone()];
    let mut scanned = 0;
    for f in files_under(&h.home) {
        if skip.contains(&f) {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap_or_default();
        scanned += 1;
        for (what, s) in &secrets {
            assert!(!contains(&bytes, s), "the {what} is in {}", f.display());
        }
    }
    assert!(
        files_under(&h.home).iter().any(|f| f.ends_with("state.db")),
        "state.db was scanned"
    );
    assert!(scanned >= 5, "only {scanned} files scanned");

    // 2. The Codex children: argv, prompt and environment. The API key only
    // as CODEX_API_KEY; nothing else secret at all.
    let recs = h.fake_records();
    assert!(recs.len() >= 4, "{} codex runs", recs.len());
    for r in &recs {
        assert_eq!(r["env"]["CODEX_API_KEY"], API_KEY, "the key reached codex");
        let mut r = r.clone();
        r["env"]
            .as_object_mut()
            .expect("env")
            .remove("CODEX_API_KEY");
        let s = r.to_string();
        for (what, v) in &secrets {
            assert!(
                !contains(s.as_bytes(), v),
                "the {what} is in a codex child's argv/env/prompt"
            );
        }
    }

    // 3. Everything sent to the platform (messages, cards, reactions), and
    // what it answered; the app secret only in the token request.
    let calls = fake.requests();
    assert!(calls.len() > 5);
    for c in &calls {
        let token_call =
            c.path.contains("tenant_access_token") || c.path.contains("app_access_token");
        let s = serde_json::to_string(&(&c.path, &c.query, &c.headers, &c.body, &c.response))
            .expect("call json");
        for (what, v) in &secrets {
            if token_call && what == "app secret" {
                continue;
            }
            assert!(
                !contains(s.as_bytes(), v),
                "the {what} was sent to the platform: {} {}",
                c.method,
                c.path
            );
        }
    }

    // 4. fcxd's own output, and the environments of fcxd and the worker
    // where readable (they are not dumpable, so only root reads them): no
    // value is in a process environment, not even the `env:` app secret,
    // which fcxd read and removed at start.
    let out = format!("{}{}", fcxd.output(), fcxd.stderr());
    for (what, v) in &secrets {
        assert!(
            !contains(out.as_bytes(), v),
            "the {what} is in fcxd's output"
        );
    }
    let home_s = h.home.display().to_string();
    let mut read = Vec::new();
    for pid in fcx_tests::harness::processes_mentioning(&home_s) {
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            read.push(pid);
            for (what, v) in &secrets {
                assert!(
                    !contains(&env, v),
                    "the {what} is in pid {pid}'s environment"
                );
            }
        }
    }
    // Not a vacuous scan: as root, fcxd's and its worker's environments
    // were read.
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        assert!(
            read.contains(&fcxd.pid()) && read.len() >= 2,
            "the environment scan read only pids {read:?} (fcxd is {})",
            fcxd.pid()
        );
    } else {
        eprintln!("not root: fcxd's and the worker's environments are unreadable; not scanned");
    }
    drop(fcxd);
}
