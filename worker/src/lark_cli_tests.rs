use super::*;
use crate::runner::exec::confine::Hide;
use fcx_config::{RunsConfig, SecretRef};

fn setup(preset: LarkCli) -> (tempfile::TempDir, Home, Profile) {
    let d = tempfile::tempdir().expect("tempdir");
    let home = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
    let mut p = crate::testkit::profile(d.path(), RunsConfig::default());
    let secret = d.path().join("app-secret.txt");
    std::fs::write(&secret, "s3cret-app-value").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    if let Some(app) = p.app.as_mut() {
        app.app_secret =
            SecretRef::parse(&format!("file:{}", secret.display())).expect("secret ref");
    }
    p.lark_cli = preset;
    (d, home, p)
}

fn env_with_hide(home: &Home) -> ChildEnv {
    ChildEnv {
        hide: Some(Hide {
            root: home.root().to_path_buf(),
            keep: vec![],
            also: vec![],
            only: None,
        }),
        ..Default::default()
    }
}

#[test]
fn bot_only_writes_a_bot_config_with_a_file_secret_and_sets_only_the_dir() {
    let (_d, home, p) = setup(LarkCli::BotOnly);
    let mut env = env_with_hide(&home);
    project(&p, &home, LarkCli::BotOnly, &mut env).expect("project");
    let dir = home.profile("p").dir().join("lark-cli/bot");
    assert_eq!(
        env.set,
        vec![(CONFIG_DIR_VAR.to_string(), dir.display().to_string())]
    );
    assert!(env.api_key.is_none());
    let text = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
    assert!(!text.contains("s3cret"), "no plain secret in config.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let app = &v["apps"][0];
    assert_eq!(app["appId"], "cli_x");
    assert_eq!(app["defaultAs"], "bot");
    assert_eq!(app["strictMode"], "bot");
    assert_eq!(v["strictMode"], "bot");
    assert_eq!(app["brand"], "feishu");
    assert_eq!(app["appSecret"]["source"], "file");
    let secret_path = app["appSecret"]["id"].as_str().expect("id");
    assert_eq!(
        std::fs::read_to_string(secret_path).expect("secret"),
        "s3cret-app-value"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [PathBuf::from(secret_path), dir.join("config.json")] {
            let mode = std::fs::metadata(&f).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", f.display());
        }
    }
    let hide = env.hide.expect("hide");
    assert_eq!(hide.keep, vec![dir]);
    assert!(
        hide.also
            .contains(&home.user_home().join(".local/share/lark-cli")),
        "the operator's own lark-cli store is hidden from a bot-only run"
    );
}

#[test]
fn disabled_and_app_less_profiles_get_no_variable() {
    let (_d, home, mut p) = setup(LarkCli::Disabled);
    let mut env = env_with_hide(&home);
    assert_eq!(effective(&p, true), LarkCli::Disabled);
    project(&p, &home, LarkCli::Disabled, &mut env).expect("project");
    assert!(env.set.is_empty());
    assert!(!home.profile("p").dir().join("lark-cli").exists());
    p.lark_cli = LarkCli::BotOnly;
    p.app = None;
    assert_eq!(effective(&p, true), LarkCli::Disabled);
}

#[test]
fn user_default_applies_to_one_to_one_chats_only_and_keeps_the_logged_in_user() {
    let (_d, home, p) = setup(LarkCli::UserDefault);
    assert_eq!(effective(&p, false), LarkCli::BotOnly);
    assert_eq!(effective(&p, true), LarkCli::UserDefault);
    let mut env = env_with_hide(&home);
    project(&p, &home, LarkCli::UserDefault, &mut env).expect("project");
    let dir = home.profile("p").dir().join("lark-cli/user");
    // The operator logs a user in with lark-cli itself; fcx's rewrite keeps it.
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    assert_eq!(v["apps"][0]["defaultAs"], "user");
    v["apps"][0]["users"] = serde_json::json!([{"userOpenId": "ou_1", "userName": "Ann"}]);
    std::fs::write(&path, serde_json::to_vec(&v).expect("ser")).expect("write");
    let mut env = env_with_hide(&home);
    project(&p, &home, LarkCli::UserDefault, &mut env).expect("project");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    assert_eq!(v["apps"][0]["users"][0]["userOpenId"], "ou_1");
    let hide = env.hide.expect("hide");
    assert!(hide.also.is_empty(), "a user run sees lark-cli's own store");
    assert_eq!(hide.keep, vec![dir]);
}
