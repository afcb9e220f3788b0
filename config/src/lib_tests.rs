use super::*;
use std::path::Path;

fn home() -> (tempfile::TempDir, Home) {
    let d = tempfile::tempdir().expect("tempdir");
    let h = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
    (d, h)
}

#[test]
fn no_file_gives_a_default_profile() {
    let (_d, h) = home();
    let c = Config::load(&h).expect("default config");
    assert!(!c.from_file);
    let p = c.profile(DEFAULT_PROFILE).expect("default profile");
    assert!(p.enabled);
    assert_eq!(p.codex.auth, AuthMode::ApiKey);
    assert_eq!(
        p.codex.api_key,
        Some(SecretRef::Env("OPENAI_API_KEY".into()))
    );
    assert_eq!(p.workspaces.default, h.user_home().join("fcx-work"));
}

#[test]
fn runner_defaults_to_app_server_and_accepts_exec() {
    let (_d, h) = home();
    let c = Config::load(&h).expect("default config");
    let p = c.profile(DEFAULT_PROFILE).expect("default profile");
    assert_eq!(p.codex.runner, RunnerKind::AppServer);
    let file = Path::new("/x/config.toml");
    for (value, want) in [
        ("exec", RunnerKind::Exec),
        ("app-server", RunnerKind::AppServer),
    ] {
        let text = format!("[profiles.p.codex]\nrunner = \"{value}\"\n");
        let c = Config::parse(file, &text, &h).expect("config");
        assert_eq!(c.profile("p").expect("p").codex.runner, want);
        assert_eq!(want.as_str(), value);
    }
    assert!(Config::parse(file, "[profiles.p.codex]\nrunner = \"tui\"\n", &h).is_err());
}

#[test]
fn full_profile_parses_and_flattens_overrides() {
    let (_d, h) = home();
    let text = r#"
[profiles.work]
enabled = true
[profiles.work.codex]
binary = "/opt/codex/bin/codex"
auth = "api-key"
api_key = "file:~/key.txt"
model = "gpt-5.5"
config = { model_provider = "mock", model_providers = { mock = { base_url = "http://127.0.0.1:1/v1", stream_max_retries = 0 } }, "sandbox_workspace_write.network_access" = false }
[profiles.work.workspaces]
default = "~/src"
"#;
    let c = Config::parse(Path::new("c.toml"), text, &h).expect("parse");
    let p = c.profile("work").expect("profile");
    assert_eq!(p.codex.binary, "/opt/codex/bin/codex");
    assert_eq!(
        p.codex.api_key,
        Some(SecretRef::File(h.user_home().join("key.txt")))
    );
    assert_eq!(p.codex.model.as_deref(), Some("gpt-5.5"));
    let o: BTreeMap<_, _> = p.codex.overrides.iter().cloned().collect();
    assert_eq!(o["model_provider"], "\"mock\"");
    assert_eq!(
        o["model_providers.mock.base_url"],
        "\"http://127.0.0.1:1/v1\""
    );
    assert_eq!(o["model_providers.mock.stream_max_retries"], "0");
    assert_eq!(o["sandbox_workspace_write.network_access"], "false");
    assert_eq!(p.workspaces.default, h.user_home().join("src"));
}

#[test]
fn app_access_and_permissions_parse() {
    let (_d, h) = home();
    let text = r#"
[profiles.bot.app]
tenant = "lark"
app_id = "cli_0123456789abcdef"
app_secret = "env:LARK_SECRET"
[profiles.bot.access]
owner = "ou_owner"
admins = ["ou_a", "ou_a"]
allowed_chats = ["oc_1"]
require_mention_in_group = false
[profiles.bot.permissions]
max_access = "full"
network = true
"#;
    let c = Config::parse(Path::new("c.toml"), text, &h).expect("parse");
    let p = c.profile("bot").expect("profile");
    let app = p.app.as_ref().expect("app");
    assert_eq!(app.tenant, Tenant::Lark);
    assert_eq!(app.base_url, "https://open.larksuite.com");
    assert_eq!(app.app_secret, SecretRef::Env("LARK_SECRET".into()));
    assert!(app.webhook.is_none());
    assert_eq!(app.stale_after_secs, 1800);
    assert_eq!(p.access.owner.as_deref(), Some("ou_owner"));
    assert_eq!(p.access.admins, vec!["ou_a".to_string()]);
    assert!(!p.access.require_mention_in_group);
    assert_eq!(p.permissions.default_access, AccessMode::Workspace);
    assert_eq!(p.permissions.max_access, AccessMode::Full);
    assert!(p.permissions.network);
    let d = Config::load(&h).expect("default");
    let dp = d.profile(DEFAULT_PROFILE).expect("default profile");
    assert!(dp.app.is_none());
    assert!(dp.access.require_mention_in_group);
    let hook = "[profiles.w.app]\napp_id = \"cli_1\"\napp_secret = \"env:S\"\n[profiles.w.app.webhook]\nlisten = \"0.0.0.0:8787\"\n";
    let e = Config::parse(Path::new("c.toml"), hook, &h)
        .expect_err("public listener")
        .to_string();
    assert!(e.contains("loopback"), "{e}");
    let ok = Config::parse(
        Path::new("c.toml"),
        &hook.replace("0.0.0.0", "127.0.0.1").replace(
            "8787\"\n",
            "8787\"\nencrypt_key = \"env:EK\"\nverification_token = \"env:VT\"\n",
        ),
        &h,
    )
    .expect("webhook");
    let w = ok
        .profile("w")
        .expect("w")
        .app
        .as_ref()
        .and_then(|a| a.webhook.clone())
        .expect("hook");
    assert_eq!(w.encrypt_key, Some(SecretRef::Env("EK".into())));
    let e = Config::parse(
        Path::new("c.toml"),
        "[profiles.a.permissions]\ndefault_access = \"full\"\n",
        &h,
    )
    .expect_err("default above max")
    .to_string();
    assert!(e.contains("profiles.a.permissions.default_access"), "{e}");
}

#[test]
fn unknown_key_names_file_and_key() {
    let (_d, h) = home();
    let text = "[profiles.a.codex]\nbinnary = \"codex\"\n";
    let e = Config::parse(Path::new("/x/config.toml"), text, &h)
        .expect_err("unknown key")
        .to_string();
    assert!(e.contains("/x/config.toml"), "{e}");
    assert!(e.contains("binnary"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn bad_values_are_explained() {
    let (_d, h) = home();
    let cases = [
        (
            "[profiles.a.codex]\nauth = \"password\"\n",
            "auth",
            "unknown variant",
        ),
        (
            "[profiles.a.codex]\napi_key = \"sk-plain\"\n",
            "profiles.a.codex.api_key",
            "env:VAR or file:PATH",
        ),
        (
            "[profiles.a.codex]\nauth = \"codex-home\"\napi_key = \"env:X\"\n",
            "profiles.a.codex.api_key",
            "only used with",
        ),
        (
            "[profiles.a.workspaces]\ndefault = \"rel/path\"\n",
            "profiles.a.workspaces.default",
            "not an absolute path",
        ),
        (
            "[profiles.A]\nenabled = true\n",
            "profiles.A",
            "profile name",
        ),
        (
            "[profiles.a.runs]\nmax_concurrent = 0\n",
            "profiles.a.runs.max_concurrent",
            "between 1 and 256",
        ),
        (
            "[profiles.a.runs]\nattachment_wait_ms = 600001\n",
            "profiles.a.runs.attachment_wait_ms",
            "at most 600000",
        ),
        (
            "[profiles.a.runs]\nmodel_unreachable_secs = 86401\n",
            "profiles.a.runs.model_unreachable_secs",
            "at most 86400",
        ),
    ];
    for (text, key, what) in cases {
        let e = Config::parse(Path::new("c.toml"), text, &h)
            .expect_err(text)
            .to_string();
        assert!(e.contains(key), "{text}: {e}");
        assert!(e.contains(what), "{text}: {e}");
        assert!(!e.contains("sk-plain"), "secret echoed: {e}");
    }
}

#[test]
fn during_run_and_approval_default_to_steer_and_never() {
    let (_d, h) = home();
    let file = Path::new("/x/config.toml");
    let c = Config::parse(file, "[profiles.p.codex]\n", &h).expect("config");
    let p = c.profile("p").expect("p");
    assert_eq!(p.codex.during_run, DuringRun::Steer);
    assert_eq!(p.codex.approval, ApprovalPolicy::Never);
    assert_eq!(p.codex.approval_timeout_secs, 600);
    assert_eq!(p.codex.app_server_idle_secs, 300);
    assert_eq!(p.codex.app_server_max_idle, 4);
    for d in DuringRun::ALL {
        let text = format!("[profiles.p.codex]\nduring_run = \"{}\"\n", d.as_str());
        let c = Config::parse(file, &text, &h).expect("config");
        assert_eq!(c.profile("p").expect("p").codex.during_run, d);
    }
    let text = "[profiles.p.codex]\nrunner = \"app-server\"\napproval = \"on-request\"\napproval_timeout_secs = 5\napp_server_idle_secs = 0\napp_server_max_idle = 2\n";
    let c = Config::parse(file, text, &h).expect("config");
    let p = c.profile("p").expect("p");
    assert_eq!(p.codex.approval, ApprovalPolicy::OnRequest);
    assert_eq!(p.codex.approval_timeout_secs, 5);
    assert_eq!(p.codex.app_server_idle_secs, 0);
    assert_eq!(p.codex.app_server_max_idle, 2);
}

#[test]
fn approvers_default_to_the_actor_plus_admins_and_take_each_word() {
    let (_d, h) = home();
    let file = Path::new("/x/config.toml");
    let c = Config::parse(file, "[profiles.p.codex]\n", &h).expect("config");
    assert_eq!(
        c.profile("p").expect("p").codex.approvers,
        Approvers::Admins
    );
    for a in [Approvers::Actor, Approvers::Admins, Approvers::Owner] {
        let text = format!("[profiles.p.codex]\napprovers = \"{}\"\n", a.as_str());
        let c = Config::parse(file, &text, &h).expect("config");
        assert_eq!(c.profile("p").expect("p").codex.approvers, a);
    }
    assert!(Config::parse(file, "[profiles.p.codex]\napprovers = \"anyone\"\n", &h).is_err());
}

#[test]
fn approvals_with_the_exec_runner_are_a_config_error_naming_the_fix() {
    let (_d, h) = home();
    let file = Path::new("/x/config.toml");
    let text = "[profiles.p.codex]\nrunner = \"exec\"\napproval = \"untrusted\"\n";
    let e = Config::parse(file, text, &h)
        .expect_err("exec cannot ask")
        .to_string();
    assert!(e.contains("approval"), "{e}");
    assert!(e.contains("runner = \"app-server\""), "{e}");
    // The default runner, app-server, can.
    let c = Config::parse(file, "[profiles.p.codex]\napproval = \"untrusted\"\n", &h)
        .expect("app-server asks");
    assert_eq!(
        c.profile("p").expect("p").codex.approval,
        ApprovalPolicy::Untrusted
    );
}

#[test]
fn attachment_wait_defaults_to_thirty_seconds_and_can_be_set() {
    let (_d, h) = home();
    let c = Config::load(&h).expect("default config");
    let p = c.profile(DEFAULT_PROFILE).expect("default profile");
    assert_eq!(p.runs.attachment_wait_ms, 30_000);
    assert_eq!(p.runs.model_unreachable_secs, 90);
    let c = Config::parse(
        Path::new("c.toml"),
        "[profiles.a.runs]\nattachment_wait_ms = 250\nmodel_unreachable_secs = 0\n",
        &h,
    )
    .expect("parse");
    assert_eq!(c.profile("a").expect("a").runs.attachment_wait_ms, 250);
    assert_eq!(c.profile("a").expect("a").runs.model_unreachable_secs, 0);
}

#[test]
fn no_file_and_no_key_uses_the_operators_codex_login_when_there_is_one() {
    let (_d, h) = home();
    std::fs::create_dir_all(h.user_home().join(".codex")).expect("codex dir");
    std::fs::write(h.user_home().join(".codex/auth.json"), "{}").expect("login");
    let c = Config::load(&h).expect("default config");
    let p = c.profile(DEFAULT_PROFILE).expect("default profile");
    let keyed = std::env::var("OPENAI_API_KEY").is_ok_and(|v| !v.trim().is_empty());
    if keyed {
        assert_eq!(p.codex.auth, AuthMode::ApiKey);
    } else {
        assert_eq!(p.codex.auth, AuthMode::InheritUser);
        assert_eq!(p.codex.api_key, None);
    }
}

#[test]
fn metrics_is_off_by_default_and_loopback_only() {
    let (_d, h) = home();
    let p = h.config_path();
    let c = Config::parse(&p, "", &h).expect("empty");
    assert_eq!(c.metrics, None);
    let c = Config::parse(&p, "metrics = \"127.0.0.1:9464\"\n", &h).expect("loopback");
    assert_eq!(c.metrics, Some("127.0.0.1:9464".parse().expect("addr")));
    let e = Config::parse(&p, "metrics = \"0.0.0.0:9464\"\n", &h).expect_err("public");
    assert!(
        e.to_string()
            .contains("key `metrics`: 0.0.0.0 is not a loopback"),
        "{e}"
    );
    let e = Config::parse(&p, "metrics = \"localhost\"\n", &h).expect_err("no port");
    assert!(e.to_string().contains("key `metrics`"), "{e}");
}

#[test]
fn logs_retention_defaults_and_bounds() {
    let (_d, h) = home();
    let p = h.config_path();
    let c = Config::parse(&p, "", &h).expect("empty");
    assert_eq!(c.logs, LogRetention::default());
    assert_eq!(c.logs.max_bytes, 20 << 20);
    assert_eq!(c.logs.keep, 1);
    let c = Config::parse(
        &p,
        "[logs]\nmax_size_mib = 5\nkeep = 4\nmax_age_days = 14\n",
        &h,
    )
    .expect("set");
    assert_eq!(
        c.logs,
        LogRetention {
            max_bytes: 5 << 20,
            keep: 4,
            max_age: Some(std::time::Duration::from_secs(14 * 86_400)),
        }
    );
    for (text, key) in [
        ("[logs]\nmax_size_mib = 0\n", "logs.max_size_mib"),
        ("[logs]\nkeep = 1000\n", "logs.keep"),
        ("[logs]\nmax_age_days = 0\n", "logs.max_age_days"),
    ] {
        let e = Config::parse(&p, text, &h).expect_err(text);
        assert!(e.to_string().contains(&format!("key `{key}`")), "{e}");
    }
    let e = Config::parse(&p, "[logs]\nsize = 1\n", &h).expect_err("unknown key");
    assert!(e.to_string().contains("size"), "{e}");
}

#[test]
fn the_readmes_logs_block_is_a_valid_config() {
    let (_d, h) = home();
    let readme = include_str!("../../README.md");
    let block = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.starts_with("[logs]"))
        .expect("README shows [logs]");
    let c = Config::parse(&h.config_path(), block, &h).expect("README's [logs] parses");
    assert_eq!(
        c.logs.max_age,
        Some(std::time::Duration::from_secs(14 * 86_400))
    );
}

#[test]
fn a_toml_error_names_line_and_column_but_not_the_line() {
    let (_d, h) = home();
    let p = h.config_path();
    let text = "[profiles.work]\nenabled = true\n  oops = sk-pasted-secret-0001\n";
    let e = Config::parse(&p, text, &h).expect_err("bad TOML");
    let m = e.to_string();
    assert!(m.contains("line 3, column 10"), "{m}");
    assert!(!m.contains("sk-pasted-secret-0001"), "{m}");
}
