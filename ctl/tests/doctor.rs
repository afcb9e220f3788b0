//! `fcxctl doctor` against the fake Feishu platform: a healthy setup passes,
//! a wrong app secret and a missing scope fail with exit 1 and the fix, and
//! no secret value is ever printed.
// Test support: a failed expectation is the failing test's message.
#![allow(clippy::expect_used)]

mod common;

use common::{Scratch, assert_exit, closed_model_api, model_api_section};
use fcx_tests::fake_feishu::FakeFeishu;
use serde_json::Value;

const API_KEY: &str = "sk-test-DO-NOT-PRINT-4242";

fn config(s: &Scratch, base_url: &str, app_id: &str, secret: &str) -> String {
    let key = s.secret_file("api-key", API_KEY, 0o600);
    let app_secret = s.secret_file("app-secret", secret, 0o600);
    format!(
        "[profiles.work.codex]\nbinary = \"{}\"\napi_key = \"file:{}\"\n\
         [profiles.work.workspaces]\ndefault = \"{}\"\n\
         [profiles.work.app]\napp_id = \"{app_id}\"\napp_secret = \"file:{}\"\nbase_url = \"{base_url}\"\n{}",
        s.fake_codex().display(),
        key.display(),
        s.workspace().display(),
        app_secret.display(),
        // Any HTTP server answers for the model API check: the platform's.
        common::model_api_section("work", base_url),
    )
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).expect("doctor --json prints JSON")
}

fn checks<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

fn assert_no_secret(out: &str, fake: &FakeFeishu) {
    assert!(!out.contains(API_KEY), "API key printed:\n{out}");
    assert!(
        !out.contains(fake.app_secret()),
        "app secret printed:\n{out}"
    );
}

#[tokio::test]
async fn doctor_passes_a_healthy_setup_and_checks_the_app_live() {
    let fake = FakeFeishu::start().await.expect("fake feishu");
    let s = Scratch::new();
    s.write_config(&config(
        &s,
        &fake.base_url(),
        fake.app_id(),
        fake.app_secret(),
    ));
    let o = s.run_async(&["doctor", "--json"]).await;
    let (out, _) = assert_exit(&o, 0);
    assert_no_secret(&out, &fake);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{out}");
    for name in [
        "feishu token",
        "feishu bot",
        "feishu scopes",
        "long connection",
        "codex version",
        "workspace",
    ] {
        let c = checks(&v, name);
        assert!(!c.is_empty(), "no `{name}` check: {out}");
        assert!(c.iter().all(|c| c["status"] == "ok"), "{name}: {out}");
    }
    assert!(out.contains(fake.bot_name()), "{out}");
    let events = checks(&v, "feishu events");
    assert!(
        events[0]["detail"].as_str().is_some_and(
            |d| d.contains("im.message.receive_v1") && d.contains("card.action.trigger")
        ),
        "{out}"
    );
    // The live checks went to the platform: token, bot info, scopes, endpoint.
    assert!(
        !fake
            .requests_to("GET", "/open-apis/application/v6/scopes")
            .is_empty()
    );
    assert!(!fake.requests_to("POST", "/callback/ws/endpoint").is_empty());
}

#[tokio::test]
async fn doctor_fails_a_wrong_app_secret_with_the_fix() {
    let fake = FakeFeishu::start().await.expect("fake feishu");
    let s = Scratch::new();
    let wrong = "wrong-secret-DO-NOT-PRINT";
    s.write_config(&config(&s, &fake.base_url(), fake.app_id(), wrong));
    let o = s.run_async(&["doctor"]).await;
    let (out, _) = assert_exit(&o, 1);
    assert_no_secret(&out, &fake);
    assert!(!out.contains(wrong), "wrong secret printed:\n{out}");
    assert!(out.contains("[FAIL] feishu token"), "{out}");
    assert!(out.contains("code 10014"), "{out}");
    assert!(out.contains("Credentials & Basic Info"), "{out}");
    assert!(out.contains("doctor: 1 problem"), "{out}");
}

#[tokio::test]
async fn doctor_names_a_missing_scope_and_where_to_add_it() {
    let fake = FakeFeishu::builder()
        .without_scope("im:resource")
        .ungranted_scope("cardkit:card:write")
        .start()
        .await
        .expect("fake feishu");
    let s = Scratch::new();
    s.write_config(&config(
        &s,
        &fake.base_url(),
        fake.app_id(),
        fake.app_secret(),
    ));
    let o = s
        .run_async(&["doctor", "--json", "--profile", "work"])
        .await;
    let (out, _) = assert_exit(&o, 1);
    assert_no_secret(&out, &fake);
    let v = json(&out);
    assert_eq!(v["failed"], 2, "{out}");
    let scope = checks(&v, "feishu scope");
    let missing = scope
        .iter()
        .find(|c| {
            c["detail"]
                .as_str()
                .is_some_and(|d| d.contains("`im:resource`"))
        })
        .expect("im:resource named");
    assert_eq!(missing["status"], "fail");
    assert!(
        missing["fix"]
            .as_str()
            .is_some_and(|f| f.contains("Permissions & Scopes") && f.contains("publish a version")),
        "{out}"
    );
    let pending = scope
        .iter()
        .find(|c| {
            c["detail"]
                .as_str()
                .is_some_and(|d| d.contains("cardkit:card:write"))
        })
        .expect("cardkit named");
    assert!(
        pending["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not granted yet")),
        "{out}"
    );
}

#[test]
fn doctor_reports_config_errors_with_the_line_and_an_unknown_profile() {
    let s = Scratch::new();
    s.write_config("[profiles.work.codex]\nbinary = \n");
    let (out, _) = assert_exit(&s.run(&["doctor"]), 1);
    assert!(out.contains("[FAIL] config"), "{out}");
    assert!(out.contains("line 2"), "{out}");

    s.write_config(&format!(
        "[profiles.work.codex]\nbinary = \"{}\"\napi_key = \"env:FCX_DOCTOR_UNSET\"\n\
         [profiles.work.workspaces]\ndefault = \"{}\"\n",
        s.fake_codex().display(),
        s.workspace().display()
    ));
    let (out, _) = assert_exit(&s.run(&["doctor", "--profile", "nope"]), 1);
    assert!(out.contains("no profile named `nope`"), "{out}");
    let (out, _) = assert_exit(&s.run(&["doctor"]), 1);
    assert!(out.contains("FCX_DOCTOR_UNSET"), "{out}");
    assert!(out.contains("fix: export FCX_DOCTOR_UNSET"), "{out}");
    assert!(out.contains("[ok  ] codex version: 0.169.0"), "{out}");
}

#[cfg(unix)]
#[test]
fn doctor_fails_open_permissions_with_chmod_fixes() {
    let s = Scratch::new();
    let key = s.secret_file("api-key", API_KEY, 0o644);
    s.write_config(&format!(
        "[profiles.work.codex]\nbinary = \"{}\"\napi_key = \"file:{}\"\n\
         [profiles.work.workspaces]\ndefault = \"{}\"\n",
        s.fake_codex().display(),
        key.display(),
        s.workspace().display()
    ));
    common::set_mode(&s.fcx_home(), 0o755);
    // Files fcx keeps, copied in or chmodded with open modes.
    let state = s.fcx_home().join("profiles/work/state.db");
    let log = s.fcx_home().join("logs/fcxd.log");
    for f in [&state, &log] {
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, b"x").expect("write");
        common::set_mode(f, 0o644);
    }
    let (out, _) = assert_exit(&s.run(&["doctor"]), 1);
    for f in [&state, &log] {
        assert!(
            out.contains(&format!("chmod 600 {}", f.display())),
            "{}: {out}",
            f.display()
        );
    }
    assert!(!out.contains(API_KEY), "{out}");
    assert!(
        out.contains(&format!("chmod 700 {}", s.fcx_home().display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("chmod 600 {}", key.display())),
        "{out}"
    );
}

#[tokio::test]
async fn doctor_warns_when_document_comments_cannot_be_read() {
    let fake = FakeFeishu::builder()
        .without_scope("docs:document.comment:read")
        .start()
        .await
        .expect("fake feishu");
    let s = Scratch::new();
    s.write_config(&config(
        &s,
        &fake.base_url(),
        fake.app_id(),
        fake.app_secret(),
    ));
    let o = s
        .run_async(&["doctor", "--json", "--profile", "work"])
        .await;
    let (out, _) = assert_exit(&o, 0);
    let v = json(&out);
    let missing = checks(&v, "feishu scope")
        .into_iter()
        .find(|c| {
            c["detail"]
                .as_str()
                .is_some_and(|d| d.contains("`docs:document.comment:read`"))
        })
        .expect("the comment scope named");
    assert_eq!(missing["status"], "warn", "optional: {out}");
    let events = checks(&v, "feishu events");
    assert!(
        events[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("drive.notice.comment_add_v1")),
        "{out}"
    );
}

#[tokio::test]
async fn doctor_fails_an_app_served_by_another_home() {
    let fake = FakeFeishu::start().await.expect("fake feishu");
    let s = Scratch::new();
    s.write_config(&config(
        &s,
        &fake.base_url(),
        fake.app_id(),
        fake.app_secret(),
    ));
    let o = s.run_async(&["doctor", "--json"]).await;
    let (out, _) = assert_exit(&o, 0);
    let v = json(&out);
    assert!(
        checks(&v, "app lock").iter().all(|c| c["status"] == "ok"),
        "{out}"
    );

    // Another home's fcxd holds the app (the lock dir every home shares).
    let held = fcx_config::app_lock::AppLock::acquire(
        &s.user_home().join(".cache/fcx/locks"),
        fake.app_id(),
        "profile `other` in /srv/other-home (fcxd pid 1)",
    )
    .expect("hold the app");
    let o = s.run_async(&["doctor"]).await;
    let (out, _) = assert_exit(&o, 1);
    assert!(out.contains("[FAIL] app lock"), "{out}");
    assert!(out.contains("profile `other` in /srv/other-home"), "{out}");
    drop(held);
}

#[tokio::test]
async fn doctor_fails_a_model_api_that_does_not_answer_and_says_where_it_is_set() {
    let fake = FakeFeishu::start().await.expect("fake feishu");
    let s = Scratch::new();
    let closed = closed_model_api();
    let text = config(&s, &fake.base_url(), fake.app_id(), fake.app_secret());
    let text = text.replace(
        &model_api_section("work", &fake.base_url()),
        &model_api_section("work", &closed),
    );
    s.write_config(&text);
    let o = s.run_async(&["doctor"]).await;
    let (out, _) = assert_exit(&o, 1);
    assert!(
        out.contains(&format!("[FAIL] model api: {closed} does not answer")),
        "{out}"
    );
    assert!(
        out.contains("fix: check this machine's network and proxy")
            && out.contains("profiles.work.codex.config: openai_base_url"),
        "{out}"
    );
    assert_no_secret(&out, &fake);

    // Pointed at a server that answers, the same check passes.
    s.write_config(&config(
        &s,
        &fake.base_url(),
        fake.app_id(),
        fake.app_secret(),
    ));
    let o = s.run_async(&["doctor", "--json"]).await;
    let (out, _) = assert_exit(&o, 0);
    let v = json(&out);
    let model = checks(&v, "model api");
    assert_eq!(model[0]["status"], "ok", "{out}");
}
