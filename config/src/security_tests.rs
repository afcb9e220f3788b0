//! Config checks that keep secrets out of logs and off unauthenticated paths.

use super::*;
use std::path::Path;

fn home() -> (tempfile::TempDir, Home) {
    let d = tempfile::tempdir().expect("tempdir");
    let h = Home::with_user_home(d.path().join("fcx"), d.path().to_path_buf());
    (d, h)
}

#[test]
fn a_webhook_needs_both_keys() {
    let (_d, h) = home();
    let base = "[profiles.w.app]\napp_id = \"cli_1\"\napp_secret = \"env:S\"\n[profiles.w.app.webhook]\nlisten = \"127.0.0.1:8787\"\n";
    for extra in [
        "",
        "encrypt_key = \"env:EK\"\n",
        "verification_token = \"env:VT\"\n",
    ] {
        let e = Config::parse(Path::new("c.toml"), &format!("{base}{extra}"), &h)
            .expect_err("keyless webhook")
            .to_string();
        assert!(e.contains("profiles.w.app.webhook"), "{e}");
        assert!(
            e.contains("encrypt_key") && e.contains("verification_token"),
            "{e}"
        );
    }
    let both = format!("{base}encrypt_key = \"env:EK\"\nverification_token = \"env:VT\"\n");
    Config::parse(Path::new("c.toml"), &both, &h).expect("both keys");
}

#[test]
fn parse_errors_never_echo_the_line() {
    let (_d, h) = home();
    for text in [
        "[profiles.a.app]\napp_id = \"cli_1\"\napp_secret = sk-live-abcdef123\n",
        "[profiles.a.codex]\napi_key = \"sk-live-abcdef123\n",
        "[profiles.a]\nenabled = sk-live-abcdef123\n",
    ] {
        let e = Config::parse(Path::new("/x/config.toml"), text, &h)
            .expect_err(text)
            .to_string();
        assert!(!e.contains("sk-live"), "secret echoed: {e}");
        assert!(e.contains("/x/config.toml"), "{e}");
        assert!(e.contains("line "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    let e = Config::parse(Path::new("c.toml"), "a\n\nx = = 1\n", &h)
        .expect_err("bad")
        .to_string();
    assert!(e.contains("line "), "{e}");
}

#[test]
fn base_url_is_https_or_loopback_http() {
    let (_d, h) = home();
    let cfg = |url: &str| {
        format!(
            "[profiles.a.app]\napp_id = \"cli_1\"\napp_secret = \"env:S\"\nbase_url = \"{url}\"\n"
        )
    };
    for ok in [
        "https://open.feishu.cn",
        "http://127.0.0.1:8080",
        "http://localhost:1/",
        "http://[::1]:9",
    ] {
        Config::parse(Path::new("c.toml"), &cfg(ok), &h).expect(ok);
    }
    for bad in [
        "http://open.feishu.cn",
        "http://10.0.0.1:80",
        "http://127.0.0.1.evil.example",
        "http://127.0.0.1@evil.example",
        "ftp://127.0.0.1",
    ] {
        let e = Config::parse(Path::new("c.toml"), &cfg(bad), &h)
            .expect_err(bad)
            .to_string();
        assert!(e.contains("profiles.a.app.base_url"), "{bad}: {e}");
    }
}
