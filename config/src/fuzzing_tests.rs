//! The config and callback-key loaders against random input, run briefly on
//! every test run: 0 panics. The coverage-guided version lives in `fuzz/`.

use std::path::Path;

use proptest::prelude::*;

use crate::callback_keys::KeyFile;
use crate::{Config, Home};

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_string()),
        Just("\"\"".to_string()),
        Just("\"default\"".to_string()),
        Just("\"../..\"".to_string()),
        Just("\"~/x\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[\"ou_a\", 1]".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "\"[^\"\\\\]{0,12}\"",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "enabled",
                "app_id",
                "app_secret",
                "tenant",
                "workspace_roots",
                "default_workspace",
                "admins",
                "owners",
                "max_concurrent",
                "timeout",
                "debounce_ms",
                "reply_mode",
                "codex",
                "model",
                "sandbox",
                "auth",
                "binary",
                "env",
                "queue_max",
                "domain",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-z_]{1,10}",
    ]
}

fn toml_doc() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![
                Just(String::new()),
                Just("[profiles.default]\n".to_string()),
                Just("[profiles.work]\n".to_string()),
                Just("[profiles.default.app]\n".to_string()),
                Just("[profiles.default.codex]\n".to_string()),
                "\\[profiles\\.[a-zA-Z0-9._-]{0,6}\\]\n",
            ],
            key(),
            value(),
        ),
        0..8,
    )
    .prop_map(|entries| {
        entries
            .into_iter()
            .map(|(table, k, v)| format!("{table}{k} = {v}\n"))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_config_loader_survives_random_text(text in "\\PC{0,120}") {
        let home = Home::new("/nonexistent/fcx-home");
        let _ = Config::parse(Path::new("/nonexistent/config.toml"), &text, &home);
    }

    #[test]
    fn the_config_loader_survives_random_documents(text in toml_doc()) {
        let home = Home::new("/nonexistent/fcx-home");
        let _ = Config::parse(Path::new("/nonexistent/config.toml"), &text, &home);
    }

    #[test]
    fn the_key_file_loader_survives_random_text(text in "\\PC{0,120}") {
        let _ = KeyFile::parse(&text, Path::new("/nonexistent/callback-keys.json"));
    }
}
