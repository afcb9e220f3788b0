use super::*;

const TEXT: &str = "# top comment\nschema_version = 1\n\n\
[profiles.a]\nenabled = true # keep a\n\n\
# a's codex\n[profiles.a.codex]\nauth = \"inherit-user\"\n\n\
[profiles.b.workspaces]\ndefault = \"/x\"\n\n\
[profiles.\"a\".app]\ntenant = \"feishu\"\n";

#[test]
fn header_paths_are_read_with_quotes_and_spaces() {
    assert_eq!(
        header_path("[ profiles . \"x\" . app ] # c"),
        Some(vec!["profiles".into(), "x".into(), "app".into()])
    );
    assert_eq!(header_path("[[a.b]]"), Some(vec!["a".into(), "b".into()]));
    assert_eq!(header_path("enabled = true"), None);
}

#[test]
fn remove_takes_every_table_of_the_profile_and_keeps_the_rest() {
    let s = remove_tables(TEXT, "a");
    assert!(s.starts_with("# top comment\nschema_version = 1\n\n"));
    assert!(!s.contains("[profiles.a"));
    assert!(!s.contains("[profiles.\"a\""));
    assert!(s.contains("[profiles.b.workspaces]\ndefault = \"/x\"\n"));
}

#[test]
fn enabled_is_replaced_in_place() {
    let s = set_enabled(TEXT, "a", false);
    assert!(s.contains("[profiles.a]\nenabled = false\n\n# a's codex\n"));
    assert_eq!(s.matches("enabled").count(), 1);
}

#[test]
fn enabled_is_added_under_the_profile_table_or_before_its_first_table() {
    let t = "[profiles.a]\nmodel_note = 1\n";
    assert_eq!(
        set_enabled(t, "a", false),
        "[profiles.a]\nenabled = false\nmodel_note = 1\n"
    );
    let s = set_enabled(TEXT, "b", false);
    assert!(s.contains("[profiles.b]\nenabled = false\n\n[profiles.b.workspaces]\n"));
}
