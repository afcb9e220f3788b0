//! A finished run's card offers its Codex thread: Fork (`thread/fork`: the
//! chat continues a copy) and Archive (`thread/archive`: Codex files it
//! away, the chat starts anew), signed like every button; and, on the
//! owner's runs only, the line that continues the thread in a terminal.
//! The REAL Codex CLI under the app-server runner, the mock model.

use super::approvals::env;
use fcx_tests::harness::{FEISHU_USER as USER, eventually};

const OTHER: &str = "ou_other000000000000000000000000009";
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

#[test]
fn the_final_card_forks_and_archives_its_thread_and_shows_only_the_owner_the_terminal_line() {
    let env = env("");
    let thread_at = |i: usize| {
        env.mock.requests()[i]
            .headers
            .get("thread-id")
            .cloned()
            .unwrap_or_default()
    };
    let om = env.say("first words before a fork");
    let (msg, card) = env.run_card(&om);
    env.wait_card(&card, "Fork", true);
    let original = thread_at(0);
    assert!(!original.is_empty());
    let json = env.card_json(&card);
    assert!(json.contains("Archive"), "{json}");
    assert!(
        json.contains(&format!("resume {original}")) && json.contains("CODEX_HOME="),
        "the owner gets the terminal line: {json}"
    );

    // Someone else may not use the owner's buttons.
    let toast = env.click(OTHER, &msg, "Fork");
    assert!(toast.contains("warning"), "{toast}");
    let toast = env.click(USER, &msg, "Fork");
    assert!(toast.contains("info"), "{toast}");
    env.wait_reply_under(&msg, "Forked");
    let n = env.mock.requests().len();
    let om2 = env.say("second words after the fork");
    let (msg2, card2) = env.run_card(&om2);
    env.wait_card(&card2, "Archive", true);
    let forked = thread_at(n);
    assert!(
        !forked.is_empty() && forked != original,
        "{forked} vs {original}"
    );
    assert!(
        env.replies_under(&msg).contains(&forked),
        "the reply names the fork"
    );

    let toast = env.click(USER, &msg2, "Archive");
    assert!(toast.contains("info"), "{toast}");
    env.wait_reply_under(&msg2, "Archived");
    // The chat's own Codex home (the only one: one chat ran).
    let homes: Vec<_> = std::fs::read_dir(env.e.home.home.join("profiles/default/codex-homes"))
        .expect("scope homes")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(homes.len(), 1, "{homes:?}");
    assert!(
        json.contains(&format!("CODEX_HOME={} ", homes[0].display())),
        "the terminal line names the chat's Codex home: {json}"
    );
    let archived = homes[0].join("archived_sessions");
    let names = || -> Vec<String> { walk(&archived) };
    eventually(
        WAIT,
        || names().iter().any(|n| n.contains(&forked)).then_some(()),
        || format!("Codex did not archive {forked}: {:?}", names()),
    );
    // The chat starts anew.
    let n = env.mock.requests().len();
    let om3 = env.say("third words after the archive");
    let (_, card3) = env.run_card(&om3);
    env.wait_card(&card3, "Fork", true);
    let fresh = thread_at(n);
    assert!(fresh != forked && fresh != original, "{fresh}");

    // Another user's run: Fork and Archive, but no terminal line.
    let om4 = env.say_as("oc_other1", OTHER, "a question from someone else");
    let (_, card4) = env.run_card(&om4);
    env.wait_card(&card4, "Fork", true);
    let json = env.card_json(&card4);
    assert!(
        !json.contains("codex resume") && !json.contains("CODEX_HOME"),
        "{json}"
    );
    drop(env);
}

/// File names under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}
