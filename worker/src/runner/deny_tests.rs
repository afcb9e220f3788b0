use std::path::Path;
use std::time::Duration;

use super::*;
use crate::runner::ChildEnv;
use crate::runner::overrides::{overrides as all_overrides, profile_toml};

/// An `$FCX_HOME` (its name holds a dot, as `~/.fcx` does) with a profile
/// whose Codex home is kept, and what must not be readable beside it.
fn layout(d: &Path) -> (PathBuf, PathBuf) {
    let root = d.join(".fcx");
    let keep = root.join("profiles/p/codex-home");
    for dir in [
        keep.clone(),
        root.join("secrets"),
        root.join("run"),
        root.join("profiles/q/codex-home"),
        root.join("profiles/p/media"),
    ] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    for f in [
        root.join("config.toml"),
        root.join("secrets/keystore.key"),
        root.join("profiles/p/state.db"),
        root.join("profiles/p/callback-keys.json"),
        keep.join("auth.json"),
    ] {
        std::fs::write(f, "x").expect("write");
    }
    (root, keep)
}

fn hide(root: &Path, keep: &Path, also: Vec<PathBuf>) -> Hide {
    Hide {
        root: root.to_path_buf(),
        keep: vec![keep.to_path_buf()],
        only: None,
        also,
    }
}

fn p(s: PathBuf) -> Entry {
    Entry::Path(s)
}

#[test]
fn everything_beside_the_way_to_the_codex_home_is_denied_and_missing_paths_never_are() {
    let d = tempfile::tempdir().expect("tempdir");
    let (root, keep) = layout(d.path());
    let dot_codex = d.path().join("dot-codex");
    std::fs::create_dir_all(&dot_codex).expect("mkdir");
    let missing = d.path().join("no-lark-cli");
    let h = hide(&root, &keep, vec![dot_codex.clone(), missing]);

    // Path by path (macOS, Windows): every file and directory beside.
    assert_eq!(
        entries(&h, false),
        vec![
            p(root.join("config.toml")),
            p(root.join("profiles/p/callback-keys.json")),
            p(root.join("profiles/p/media")),
            p(root.join("profiles/p/state.db")),
            p(root.join("profiles/q")),
            p(root.join("run")),
            p(root.join("secrets")),
            p(dot_codex.clone()),
        ]
    );
    // Linux: directories by path, files as one glob per directory on the
    // way (matched again before each command).
    let r = root.display();
    assert_eq!(
        entries(&h, true),
        vec![
            Entry::Glob(format!("{r}/*")),
            Entry::Glob(format!("{r}/profiles/*")),
            Entry::Glob(format!("{r}/profiles/p/*")),
            p(root.join("profiles/p/media")),
            p(root.join("profiles/q")),
            p(root.join("run")),
            p(root.join("secrets")),
            p(dot_codex),
        ]
    );
}

#[test]
fn with_nothing_kept_inside_the_whole_home_is_denied() {
    let d = tempfile::tempdir().expect("tempdir");
    let (root, _) = layout(d.path());
    let h = Hide {
        root: root.clone(),
        keep: vec![d.path().join("elsewhere")],
        only: None,
        also: vec![],
    };
    assert_eq!(entries(&h, true), vec![p(root)]);
}

fn spec(sandbox: Sandbox, network: bool, env: ChildEnv) -> RunSpec {
    RunSpec {
        run_id: "r".into(),
        prompt: "p".into(),
        cwd: PathBuf::from("/w"),
        sandbox,
        network,
        model: None,
        resume_thread: None,
        images: vec![],
        overrides: vec![("model_provider".into(), "\"mock\"".into())],
        binary: PathBuf::from("codex"),
        env,
        stop_grace: Duration::from_millis(10),
        approval: Default::default(),
        warm_key: None,
    }
}

/// A run's environment hiding `root` but for the run's Codex home `keep`
/// (as the spec has it; `hide` does not list it), in fcx's namespace or not.
fn home_env(root: &Path, keep: &Path, namespace: bool) -> ChildEnv {
    ChildEnv {
        codex_home: Some(keep.to_path_buf()),
        hide: Some(Hide {
            root: root.to_path_buf(),
            keep: vec![],
            only: None,
            also: vec![],
        }),
        namespace,
        ..Default::default()
    }
}

#[test]
fn the_profile_file_selects_fcx_profile_with_the_mode_network_and_deny_entries() {
    let d = tempfile::tempdir().expect("tempdir");
    let (root, keep) = layout(d.path());
    let env = home_env(&root, &keep, false);
    let s = spec(Sandbox::WorkspaceWrite, true, env.clone());
    let text = profile_toml(&all_overrides(&s));
    let t: toml::Table = toml::from_str(&text).expect("valid toml");
    assert_eq!(t["model_provider"].as_str(), Some("mock"));
    assert_eq!(t["default_permissions"].as_str(), Some("fcx"));
    let fcx = &t["permissions"]["fcx"];
    assert_eq!(fcx["extends"].as_str(), Some(":workspace"), "{text}");
    assert_eq!(fcx["network"]["enabled"].as_bool(), Some(true), "{text}");
    // The legacy network key would be ignored beside the profile.
    assert!(t.get("sandbox_workspace_write").is_none(), "{text}");
    let fs = fcx["filesystem"].as_table().expect("filesystem table");
    // Paths with dots stay whole keys (a dotted key would split them).
    let secrets = root.join("secrets").display().to_string();
    assert_eq!(fs[&secrets].as_str(), Some("deny"), "{text}");
    assert!(
        !fs.keys().any(|k| k.contains("codex-home")),
        "the run's Codex home stays readable: {text}"
    );
    if cfg!(target_os = "linux") {
        assert_eq!(
            fs[&format!("{}/profiles/p/*", root.display())].as_str(),
            Some("deny"),
            "{text}"
        );
    } else {
        let db = root.join("profiles/p/state.db").display().to_string();
        assert_eq!(fs[&db].as_str(), Some("deny"), "{text}");
    }
    // Read-only: the read-only parent, no network switch (always off).
    let ro = toml::from_str::<toml::Table>(&profile_toml(&all_overrides(&spec(
        Sandbox::ReadOnly,
        true,
        env.clone(),
    ))))
    .expect("toml");
    assert_eq!(
        ro["permissions"]["fcx"]["extends"].as_str(),
        Some(":read-only")
    );
    assert!(ro["permissions"]["fcx"].get("network").is_none());
}

#[test]
fn the_operators_writable_roots_become_write_entries_of_the_profile() {
    let d = tempfile::tempdir().expect("tempdir");
    let (root, keep) = layout(d.path());
    let env = ChildEnv {
        codex_home: Some(keep.clone()),
        hide: Some(hide(&root, &keep, vec![])),
        ..Default::default()
    };
    let mut s = spec(Sandbox::WorkspaceWrite, false, env);
    s.overrides.push((
        "sandbox_workspace_write.writable_roots".into(),
        "[\"/var/tmp/extra.d\"]".into(),
    ));
    let t: toml::Table = toml::from_str(&profile_toml(&all_overrides(&s))).expect("toml");
    assert_eq!(
        t["permissions"]["fcx"]["filesystem"]["/var/tmp/extra.d"].as_str(),
        Some("write"),
        "{t}"
    );
    // Read-only has no writable roots.
    s.sandbox = Sandbox::ReadOnly;
    let t: toml::Table = toml::from_str(&profile_toml(&all_overrides(&s))).expect("toml");
    assert!(
        t["permissions"]["fcx"]["filesystem"]
            .get("/var/tmp/extra.d")
            .is_none()
    );
}

#[test]
fn a_profile_run_has_no_legacy_sandbox_and_full_access_keeps_it() {
    let d = tempfile::tempdir().expect("tempdir");
    let (root, keep) = layout(d.path());
    let env = ChildEnv {
        codex_home: Some(keep.clone()),
        hide: Some(hide(&root, &keep, vec![])),
        ..Default::default()
    };
    let s = spec(Sandbox::ReadOnly, false, env.clone());
    // `--sandbox` would replace the profile (measured, 0.169.0).
    let argv = crate::runner::exec::child::build_args(&s, Some("fcx-1"));
    assert!(!argv.iter().any(|a| a == "--sandbox"), "{argv:?}");
    let start = crate::runner::app_server::protocol::thread_start(&s);
    assert!(start.get("sandbox").is_none(), "{start}");
    assert_eq!(start["config"]["default_permissions"], "fcx");
    assert_eq!(
        start["config"]["permissions.fcx"]["extends"], ":read-only",
        "{start}"
    );
    let secrets = root.join("secrets").display().to_string();
    assert_eq!(
        start["config"]["permissions.fcx"]["filesystem"][&secrets], "deny",
        "{start}"
    );

    // Full access: no sandbox to hold the entries; the legacy flag stays.
    let full = spec(Sandbox::DangerFullAccess, false, env);
    assert!(!applies(&full));
    let argv = crate::runner::exec::child::build_args(&full, None);
    let i = argv
        .iter()
        .position(|a| a == "--sandbox")
        .expect("--sandbox");
    assert_eq!(argv[i + 1], "danger-full-access");
    let text = profile_toml(&all_overrides(&full));
    assert!(!text.contains("permissions"), "{text}");
    let start = crate::runner::app_server::protocol::thread_start(&full);
    assert_eq!(start["sandbox"], "danger-full-access");
}

/// Inside fcx's namespace the denied paths are gone from Codex's view
/// already; listing them made Codex create and bind a file at each (and
/// bwrap sometimes failed the bind under load). The profile stays, with
/// its mode and network, and no entries.
#[test]
fn inside_the_namespace_the_profile_lists_no_deny_entries() {
    let d = tempfile::tempdir().expect("tempdir");
    let (root, keep) = layout(d.path());
    let env = home_env(&root, &keep, true);
    let text = profile_toml(&all_overrides(&spec(Sandbox::WorkspaceWrite, false, env)));
    let t: toml::Table = toml::from_str(&text).expect("valid toml");
    assert_eq!(t["default_permissions"].as_str(), Some("fcx"), "{text}");
    let fcx = &t["permissions"]["fcx"];
    assert_eq!(fcx["extends"].as_str(), Some(":workspace"), "{text}");
    assert_eq!(fcx["network"]["enabled"].as_bool(), Some(false), "{text}");
    let fs = fcx["filesystem"].as_table().expect("filesystem table");
    assert!(fs.values().all(|v| v.as_str() != Some("deny")), "{text}");
}
