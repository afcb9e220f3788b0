//! Which variables are taken at start, and how later reads are answered.
//! (`take` itself changes the process environment, which a multi-threaded
//! test binary must not do: the end-to-end tests run it in fcxd.)

use super::*;
use crate::Home;
use std::path::Path;

fn config(text: &str) -> (tempfile::TempDir, Config) {
    let d = tempfile::tempdir().expect("tempdir");
    let h = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
    let c = Config::parse(Path::new("c.toml"), text, &h).expect("config");
    (d, c)
}

const TWO: &str = r#"
[profiles.a.codex]
auth = "api-key"
api_key = "env:A_KEY"
[profiles.a.app]
app_id = "cli_a"
app_secret = "env:A_SECRET"
[profiles.a.app.webhook]
listen = "127.0.0.1:9000"
encrypt_key = "env:A_EK"
verification_token = "file:/x/vt"
[profiles.b]
enabled = false
[profiles.b.codex]
auth = "api-key"
api_key = "keystore:b"
[profiles.b.app]
app_id = "cli_b"
app_secret = "env:B_SECRET"
"#;

#[test]
fn every_profile_enabled_or_not_and_the_passphrase_are_taken() {
    let (_d, c) = config(TWO);
    let names: Vec<String> = referenced(Some(&c)).into_iter().collect();
    assert_eq!(
        names,
        [
            "A_EK",
            "A_KEY",
            "A_SECRET",
            "B_SECRET",
            "FCX_KEYSTORE_PASSPHRASE"
        ]
    );
    let none: Vec<String> = referenced(None).into_iter().collect();
    assert_eq!(none, ["FCX_KEYSTORE_PASSPHRASE"]);
}

fn taken(names: &[&str], values: &[(&str, &str)]) -> Taken {
    Taken {
        process: "fcxd",
        names: names.iter().map(|s| s.to_string()).collect(),
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn a_variable_named_after_start_is_refused_with_the_restart_hint() {
    let (_d, c) = config(TWO);
    let t = taken(
        &["A_EK", "A_KEY", "A_SECRET", "B_SECRET"],
        &[("A_KEY", "k")],
    );
    check_in(Some(&t), c.profiles.values()).expect("all taken");
    check_in(None, c.profiles.values()).expect("nothing taken: nothing to check");
    let (_d2, changed) = config(&TWO.replace("env:B_SECRET", "env:NEW_SECRET"));
    let e = check_in(Some(&t), changed.profiles.values()).expect_err("not taken");
    assert_eq!(
        e,
        "env: references are read when fcxd starts; restart fcxd to pick up NEW_SECRET"
    );
    assert!(matches!(t.lookup("A_KEY"), Lookup::Taken(Some("k"))));
    assert!(matches!(t.lookup("A_SECRET"), Lookup::Taken(None)));
    assert!(matches!(
        t.lookup("NEW_SECRET"),
        Lookup::NotTaken { process: "fcxd" }
    ));
}
