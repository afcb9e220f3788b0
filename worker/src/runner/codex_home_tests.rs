use super::*;

#[cfg(unix)]
#[test]
fn a_scope_home_links_the_profiles_login_and_config() {
    let d = tempfile::tempdir().expect("tempdir");
    let shared = d.path().join("codex-home");
    let home = d.path().join("codex-homes/abc");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::write(shared.join("auth.json"), "login").expect("write");
    std::fs::write(shared.join("config.toml"), "model = \"m\"").expect("write");
    prepare(&home, Some(&shared)).expect("prepare");
    for name in SHARED {
        assert_eq!(
            std::fs::read_link(home.join(name)).expect("a link"),
            shared.join(name)
        );
    }
    assert_eq!(
        std::fs::read_to_string(home.join("auth.json")).expect("read"),
        "login"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&home).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // Again: nothing changes; a link pointing elsewhere is put right; a
    // file of the scope's own is kept.
    std::fs::remove_file(home.join("config.toml")).expect("rm");
    std::os::unix::fs::symlink("/elsewhere", home.join("config.toml")).expect("link");
    std::fs::remove_file(home.join("AGENTS.md")).expect("rm");
    std::fs::write(home.join("AGENTS.md"), "own").expect("write");
    prepare(&home, Some(&shared)).expect("prepare again");
    assert_eq!(
        std::fs::read_link(home.join("config.toml")).expect("a link"),
        shared.join("config.toml")
    );
    assert_eq!(
        std::fs::read_to_string(home.join("AGENTS.md")).expect("kept"),
        "own"
    );
}

#[test]
fn without_a_shared_home_only_the_directory_is_made() {
    let d = tempfile::tempdir().expect("tempdir");
    let home = d.path().join("h");
    prepare(&home, None).expect("prepare");
    assert_eq!(std::fs::read_dir(&home).expect("dir").count(), 0);
}

#[test]
fn a_legacy_thread_is_copied_once_and_the_original_stays() {
    let d = tempfile::tempdir().expect("tempdir");
    let shared = d.path().join("codex-home");
    let home = d.path().join("codex-homes/abc");
    let day = shared.join("sessions/2026/11/30");
    std::fs::create_dir_all(&day).expect("mkdir");
    let id = "01a21593-f5a9-7a22-883a-1427a06edf66";
    let name = format!("rollout-2026-11-30T01-59-07-{id}.jsonl");
    std::fs::write(day.join(&name), "{\"history\":1}\n").expect("write");
    std::fs::write(day.join("rollout-2026-11-30T02-00-00-other.jsonl"), "x").expect("write");
    let want = home.join("sessions/2026/11/30").join(&name);
    assert_eq!(
        adopt(&home, &shared, id).expect("adopt"),
        Adopted::Copied(want.clone())
    );
    assert_eq!(
        std::fs::read_to_string(&want).expect("copied"),
        "{\"history\":1}\n"
    );
    assert!(day.join(&name).is_file(), "the original stays");
    assert_eq!(adopt(&home, &shared, id).expect("again"), Adopted::Present);
    assert_eq!(
        adopt(&home, &shared, "01a2-unknown").expect("unknown"),
        Adopted::Missing
    );
    assert_eq!(
        adopt(&home, &shared, "../x").expect("odd id"),
        Adopted::Missing
    );
    // Only that thread came along.
    assert_eq!(
        std::fs::read_dir(home.join("sessions/2026/11/30"))
            .expect("dir")
            .count(),
        1
    );
}

#[test]
fn status_says_whether_a_chat_has_its_own_codex_home() {
    use fcx_config::AuthMode;
    assert!(describe(&AuthMode::ApiKey).starts_with("this chat's own"));
    assert!(describe(&AuthMode::CodexHome).starts_with("this chat's own"));
    assert!(describe(&AuthMode::InheritUser).contains("shared by every chat"));
}
