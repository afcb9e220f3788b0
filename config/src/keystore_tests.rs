use super::*;

fn store() -> (tempfile::TempDir, Keystore) {
    let d = tempfile::tempdir().expect("tempdir");
    let ks = Keystore::in_home(&d.path().join("h"));
    (d, ks)
}

const VALUE: &str = "sk-live-PLAINTEXT-must-not-appear-0123456789";

#[test]
fn set_get_list_remove_round_trip_without_the_plain_value_on_disk() {
    // This test process has no keyring session and no passphrase: key file.
    let (_d, ks) = store();
    assert_eq!(ks.list().expect("empty").1, Vec::new());
    let master = ks.set("openai", &Secret::new(VALUE)).expect("set");
    assert_eq!(master, Master::KeyFile);
    ks.set("app", &Secret::new("other")).expect("set");
    assert_eq!(ks.get("openai").expect("get").expose(), VALUE);
    let ids: Vec<_> = ks
        .list()
        .expect("list")
        .1
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["app", "openai"]);
    let text = std::fs::read(ks.path()).expect("keystore file");
    let text = String::from_utf8_lossy(&text);
    assert!(!text.contains(VALUE), "plain value in the keystore file");
    assert!(
        !text.contains(&hex::encode(VALUE)),
        "hex value in the keystore file"
    );
    let key = std::fs::read_to_string(ks.key_file()).expect("key file");
    assert!(
        !text.contains(key.trim()),
        "master key in the keystore file"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [ks.path(), ks.key_file()] {
            let mode = std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
    // Replacing keeps the creation time.
    let before = ks.list().expect("list").1;
    ks.set("openai", &Secret::new("rotated")).expect("replace");
    assert_eq!(ks.get("openai").expect("get").expose(), "rotated");
    let after = ks.list().expect("list").1;
    assert_eq!(before[1].created_ms, after[1].created_ms);
    assert!(ks.remove("openai").expect("remove"));
    assert!(!ks.remove("openai").expect("remove again"));
    let e = ks.get("openai").expect_err("removed").to_string();
    assert!(e.contains("fcxctl secret set openai"), "{e}");
    assert!(matches!(
        ks.set("bad/id", &Secret::new("x")),
        Err(KeystoreError::BadId)
    ));
}

#[test]
fn a_different_key_file_is_told_apart_from_damage() {
    let (_d, ks) = store();
    ks.set("a", &Secret::new(VALUE)).expect("set");
    write_private(&ks.dir, &ks.key_file(), hex::encode([7u8; 32]).as_bytes()).expect("swap key");
    assert!(matches!(ks.get("a"), Err(KeystoreError::WrongKey { .. })));
    std::fs::remove_file(ks.key_file()).expect("rm key");
    let e = ks.get("a").expect_err("no key").to_string();
    assert!(e.contains("key file") && e.contains("missing"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_keystore_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, ks) = store();
    ks.set("a", &Secret::new(VALUE)).expect("set");
    std::fs::set_permissions(ks.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = ks.get("a").expect_err("open").to_string();
    assert!(e.contains("chmod 600"), "{e}");
}
