use super::*;
use fcx_config::{
    AccessConfig, AppConfig, AuthMode, CodexConfig, PermissionsConfig, ReplyMode, RunsConfig,
    SecretRef, Tenant, WorkspacesConfig,
};

fn profile(max: AccessMode, app: Option<ReplyMode>) -> Profile {
    Profile {
        name: "p".into(),
        enabled: true,
        codex: CodexConfig {
            binary: "codex".into(),
            auth: AuthMode::InheritUser,
            api_key: None,
            model: None,
            overrides: Vec::new(),
            runner: Default::default(),
            during_run: Default::default(),
            approval: Default::default(),
            approval_timeout_secs: 600,
            app_server_idle_secs: 0,
            app_server_max_idle: 0,
            approvers: Default::default(),
        },
        workspaces: WorkspacesConfig {
            default: "/w".into(),
        },
        runs: RunsConfig::default(),
        app: app.map(|reply_mode| AppConfig {
            tenant: Tenant::Feishu,
            base_url: String::new(),
            app_id: "cli_x".into(),
            app_secret: SecretRef::parse("env:X").expect("secret ref"),
            webhook: None,
            stale_after_secs: 60,
            reply_mode,
        }),
        access: AccessConfig::default(),
        permissions: PermissionsConfig {
            default_access: AccessMode::Workspace,
            max_access: max,
            network: false,
        },
        lark_cli: Default::default(),
    }
}

fn facts(p: &Profile, is_owner: bool, group: bool) -> Facts<'_> {
    Facts {
        profile: p,
        is_owner,
        group,
        topic: false,
        current: Current::of(p, &ScopeSettings::default(), None),
    }
}

fn option<'a>(f: &'a pb::ConfigForm, key: &str) -> Option<&'a pb::ConfigOption> {
    f.options.iter().find(|o| o.key().word() == key)
}

fn values(o: &pb::ConfigOption) -> Vec<&str> {
    o.choices.iter().map(|c| c.value.as_str()).collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_follow_the_profile() {
    let p = profile(AccessMode::Workspace, None);
    assert_eq!(default_reply_mode(&p), "card");
    let p = profile(AccessMode::Workspace, Some(ReplyMode::Markdown));
    let s = ScopeSettings::default();
    assert_eq!(reply_mode(&p, &s), "markdown");
    assert_eq!(tool_display(&s), "full");
    let s = ScopeSettings {
        reply_mode: Some("text".into()),
        tool_display: Some("bogus".into()),
        ..Default::default()
    };
    assert_eq!(reply_mode(&p, &s), "text");
    assert_eq!(tool_display(&s), "full");
}

#[test]
fn during_run_follows_the_profile_until_a_chat_chooses() {
    let p = profile(AccessMode::Workspace, None);
    let f = facts(&p, false, false);
    assert_eq!(f.current.during_run, DuringRun::Steer);
    let shown = form(&f);
    let o = option(&shown, "during_run").expect("during_run in the form");
    assert_eq!(values(o), ["steer", "queue", "interrupt"]);
    assert_eq!(o.current, "steer");
    let ch = validate(&f, &kv(&[("during-run", "interrupt")]), Source::Typed).expect("valid");
    assert_eq!(ch, vec![Change::DuringRun(DuringRun::Interrupt)]);
    let mut s = ScopeSettings::default();
    apply(&mut s, &ch);
    assert_eq!(during_run(&p, &s), DuringRun::Interrupt);
    assert!(validate(&f, &kv(&[("during_run", "wait")]), Source::Typed).is_err());
    s.during_run = Some("from-a-newer-worker".into());
    assert_eq!(during_run(&p, &s), DuringRun::Steer);
}

#[test]
fn form_choices_depend_on_role_maximum_and_chat() {
    let full = profile(AccessMode::Full, Some(ReplyMode::Card));
    let owner = form(&facts(&full, true, true));
    let admin = form(&facts(&full, false, true));
    let access = |f: &pb::ConfigForm| values(option(f, "access").expect("access")).join(",");
    assert_eq!(access(&owner), "read-only,workspace,full");
    assert_eq!(access(&admin), "read-only,workspace");
    let capped = profile(AccessMode::ReadOnly, Some(ReplyMode::Card));
    let mut f = facts(&capped, true, false);
    f.current.access = AccessMode::ReadOnly;
    let form_capped = form(&f);
    assert_eq!(access(&form_capped), "read-only");
    // Mention only in groups.
    assert!(option(&owner, "mention").is_some());
    assert!(option(&form_capped, "mention").is_none());
    for o in owner.options.iter().chain(&admin.options) {
        assert!(
            o.choices.iter().any(|c| c.value == o.current),
            "{}: current {} not a choice",
            o.key,
            o.current
        );
    }
    let idle = option(&owner, "idle_timeout").expect("idle");
    assert_eq!(
        values(idle),
        ["default", "off", "5", "10", "30", "60", "120"]
    );
    assert_eq!(idle.current, "default");
}

#[test]
fn current_values_an_actor_cannot_choose_stay_selectable() {
    let full = profile(AccessMode::Full, None);
    let mut f = facts(&full, false, false);
    f.current.access = AccessMode::Full;
    f.current.idle = Idle::Minutes(45);
    let form = form(&f);
    let access = option(&form, "access").expect("access");
    assert_eq!(access.current, "full");
    assert!(values(access).contains(&"full"));
    let idle = option(&form, "idle_timeout").expect("idle");
    assert_eq!(idle.current, "45");
    assert!(values(idle).contains(&"45"));
    // Submitting it unchanged is fine; choosing it is not.
    assert_eq!(
        validate(
            &f,
            &kv(&[("access", "full"), ("idle_timeout", "45")]),
            Source::Form
        ),
        Ok(vec![])
    );
    f.current.access = AccessMode::Workspace;
    let e = validate(&f, &kv(&[("access", "full")]), Source::Form).expect_err("admin full");
    assert!(e[0].contains("only the owner"), "{e:?}");
}

#[test]
fn validation_is_all_or_nothing_and_names_every_problem() {
    let p = profile(AccessMode::Workspace, None);
    let f = facts(&p, true, false);
    let ok = validate(
        &f,
        &kv(&[
            ("reply_mode", "markdown"),
            ("tool-display", "summary"),
            ("access", "read-only"),
            ("idle_timeout", "off"),
        ]),
        Source::Form,
    )
    .expect("valid");
    assert_eq!(
        ok,
        vec![
            Change::ReplyMode("markdown"),
            Change::ToolDisplay("summary"),
            Change::Access(AccessMode::ReadOnly),
            Change::Idle(Idle::Off)
        ]
    );
    let e = validate(
        &f,
        &kv(&[
            ("reply_mode", "markdown"),
            ("colour", "blue"),
            ("tool_display", "loud"),
            ("access", "full"),
            ("mention", "required"),
            ("idle_timeout", "7"),
        ]),
        Source::Form,
    )
    .expect_err("invalid");
    assert_eq!(e.len(), 5, "{e:?}");
    assert!(e[0].contains("`colour`"), "{e:?}");
    assert!(e[1].contains("`loud`"), "{e:?}");
    assert!(e[2].contains("maximum"), "{e:?}");
    assert!(e[3].contains("group chats only"), "{e:?}");
    assert!(e[4].contains("`7`"), "{e:?}");
    // Typed, any minutes /timeout takes are fine.
    assert_eq!(
        validate(&f, &kv(&[("idle_timeout", "7")]), Source::Typed),
        Ok(vec![Change::Idle(Idle::Minutes(7))])
    );
    assert!(validate(&f, &kv(&[("idle_timeout", "0")]), Source::Typed).is_err());
    assert!(
        validate(
            &f,
            &kv(&[("access", "ro"), ("access", "ro")]),
            Source::Typed
        )
        .is_err()
    );
}

#[test]
fn apply_writes_scope_settings() {
    let mut s = ScopeSettings::default();
    apply(
        &mut s,
        &[
            Change::ReplyMode("text"),
            Change::ToolDisplay("off"),
            Change::Access(AccessMode::ReadOnly),
            Change::Idle(Idle::Minutes(10)),
            Change::Mention(false),
        ],
    );
    assert_eq!(s.reply_mode.as_deref(), Some("text"));
    assert_eq!(s.tool_display.as_deref(), Some("off"));
    assert_eq!(s.access.as_deref(), Some("read-only"));
    assert_eq!(s.timeout_secs, Some(600));
    assert_eq!(s.require_mention, None);
    apply(&mut s, &[Change::Idle(Idle::Default)]);
    assert_eq!(s.timeout_secs, None);
}
