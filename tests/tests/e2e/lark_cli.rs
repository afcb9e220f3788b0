//! The Feishu/Lark CLI identity a Codex child gets (issue 13 item 7): only
//! `LARKSUITE_CLI_CONFIG_DIR`, naming a profile-local `lark-cli` config the
//! child can read through fcx's hiding of `$FCX_HOME`; the user identity in
//! private chats only, bot-only in groups; shown by `/status`.

use fcx_tests::fake_feishu::FakeFeishu;
use fcx_tests::harness::{FEISHU_USER as USER, Fcxd, TestHome, WAIT, eventually, message_id};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bot_said(fake: &FakeFeishu, parent: &str, needle: &str) -> Option<String> {
    fake.messages()
        .into_iter()
        .find(|m| m.sender_type == "app" && m.parent_id == parent && m.content.contains(needle))
        .map(|m| m.content)
}

/// A home serving the fake platform with `lark_cli = preset`.
fn start(rt: &tokio::runtime::Runtime, preset: &str) -> (FakeFeishu, TestHome, Fcxd) {
    let fake = rt.block_on(FakeFeishu::start()).expect("fake platform");
    let home = TestHome::new();
    let cfg = home.feishu_config(&fake.base_url(), fake.app_id(), fake.app_secret(), USER);
    assert!(cfg.contains("enabled = true\n"));
    home.write_config(&cfg.replacen(
        "enabled = true\n",
        &format!("enabled = true\nlark_cli = \"{preset}\"\n"),
        1,
    ));
    let fcxd = Fcxd::daemon(&home);
    rt.block_on(fake.wait_for_connections(1, WAIT))
        .expect("connects");
    (fake, home, fcxd)
}

/// Sends `ev` and waits for the bot's answer to it containing `needle`.
fn ask(
    rt: &tokio::runtime::Runtime,
    fake: &FakeFeishu,
    home: &TestHome,
    ev: serde_json::Value,
    needle: &str,
) -> String {
    let om = message_id(&ev);
    rt.block_on(fake.push(&ev)).expect("push");
    eventually(
        WAIT,
        || bot_said(fake, &om, needle),
        || format!("no answer with {needle}\n{}", home.read_logs()),
    )
}

/// The record of the Codex child whose prompt holds `text`.
fn record(home: &TestHome, text: &str) -> serde_json::Value {
    home.fake_records()
        .into_iter()
        .find(|r| r["prompt"].as_str().is_some_and(|p| p.contains(text)))
        .unwrap_or_else(|| panic!("no codex run for {text}"))
}

#[test]
fn user_default_gives_private_chats_the_user_and_groups_the_bot_with_only_a_config_dir() {
    let rt = runtime();
    let (fake, home, _fcxd) = start(&rt, "user-default");
    let ev = fake.events();
    ask(
        &rt,
        &fake,
        &home,
        ev.p2p_text("oc_lark_p2p", USER, "private lark question"),
        "hello from fake codex",
    );
    ask(
        &rt,
        &fake,
        &home,
        ev.group_text("oc_grp1", USER, "group lark question", true),
        "hello from fake codex",
    );
    let profile = home.home.join("profiles/default/lark-cli");
    for (text, leaf, default_as, strict) in [
        ("private lark question", "user", "user", "off"),
        ("group lark question", "bot", "bot", "bot"),
    ] {
        let r = record(&home, text);
        let env = r["env"].as_object().expect("env");
        assert_eq!(
            env.get("LARKSUITE_CLI_CONFIG_DIR").and_then(|v| v.as_str()),
            Some(profile.join(leaf).to_str().expect("utf-8")),
            "{text}: {r}"
        );
        // Nothing else of lark-cli's in the environment, and no secret.
        let lark_vars: Vec<_> = env.keys().filter(|k| k.starts_with("LARKSUITE")).collect();
        assert_eq!(lark_vars.len(), 1, "{lark_vars:?}");
        assert!(!r["env"].to_string().contains(fake.app_secret()), "{text}");
        // What lark-cli run by Codex reads, read from inside the child.
        let c = &r["lark_cli_config"];
        assert_eq!(c["apps"][0]["appId"], fake.app_id(), "{text}: {c}");
        assert_eq!(c["apps"][0]["defaultAs"], default_as, "{text}: {c}");
        assert_eq!(c["strictMode"], strict, "{text}: {c}");
        assert_eq!(c["secret_readable"], true, "{text}: {c}");
        assert!(!c.to_string().contains(fake.app_secret()), "{text}: {c}");
    }
    let st = ask(
        &rt,
        &fake,
        &home,
        ev.p2p_text("oc_lark_p2p", USER, "/status"),
        "lark-cli",
    );
    assert!(st.contains("user-default"), "{st}");
    let st = ask(
        &rt,
        &fake,
        &home,
        ev.group_text("oc_grp1", USER, "/status", true),
        "lark-cli",
    );
    assert!(st.contains("bot-only here"), "{st}");
    assert!(!st.contains(fake.app_secret()), "{st}");
}

#[test]
fn disabled_gives_codex_no_lark_cli_config() {
    let rt = runtime();
    let (fake, home, _fcxd) = start(&rt, "disabled");
    ask(
        &rt,
        &fake,
        &home,
        fake.events().p2p_text("oc_lark_off", USER, "no lark here"),
        "hello from fake codex",
    );
    let r = record(&home, "no lark here");
    assert!(
        r["env"].get("LARKSUITE_CLI_CONFIG_DIR").is_none(),
        "{}",
        r["env"]
    );
    assert!(r["lark_cli_config"].is_null());
    assert!(!home.home.join("profiles/default/lark-cli").exists());
    let st = ask(
        &rt,
        &fake,
        &home,
        fake.events().p2p_text("oc_lark_off", USER, "/status"),
        "lark-cli",
    );
    assert!(st.contains("disabled"), "{st}");
}
