//! One Codex home per chat: what Codex keeps for one chat (its threads,
//! its stores) is out of reach of the commands Codex runs in another, and a
//! chat whose thread is in the profile's Codex home from before per-chat
//! homes still continues it. The REAL Codex CLI, the mock model, the fake
//! platform.

use super::approvals::{Env, env_codex};
use fcx_tests::harness::FEISHU_USER as USER;

fn env(runner: &str) -> Env {
    env_codex(&format!("runner = \"{runner}\"\n"), "card")
}

impl Env {
    /// `text` in the private chat `chat`, until its run card is final.
    fn run_in(&self, chat: &str, text: &str) -> String {
        let om = self.say_as(chat, USER, text);
        let (_, card) = self.run_card(&om);
        self.wait_card(&card, "from mock", true);
        card
    }

    /// The thread of the model request at `i`.
    fn thread_at(&self, i: usize) -> String {
        self.mock.requests()[i]
            .headers
            .get("thread-id")
            .cloned()
            .unwrap_or_default()
    }
}

#[test]
fn commands_codex_runs_in_one_chat_see_none_of_another_chats_threads() {
    let env = env("app-server");
    let home = env.e.home.home.display().to_string();
    env.run_in("oc_iso_b", "beta-private-words-5531 stay in this chat");
    let b_thread = env.thread_at(0);
    assert!(!b_thread.is_empty());
    let n = env.mock.requests().len();
    // The pattern is spelled so it does not match itself in chat A's own
    // rollout (which records this command).
    env.say_as(
        "oc_iso_a",
        USER,
        &format!(
            "RUN: ls -R $CODEX_HOME {home}/profiles/default ~/.codex 2>&1 | sed 's/^/LS:/'; \
             grep -rahoE 'beta-private-word[s]-[0-9]+' $CODEX_HOME {home} ~/.codex 2>/dev/null; \
             echo iso-probe-done"
        ),
    );
    env.wait_tool_output("iso-probe-done");
    let a_thread = env.thread_at(n);
    assert!(!a_thread.is_empty() && a_thread != b_thread);
    let out = env.tool_outputs();
    // The probe did look: its own thread is there.
    assert!(out.contains(&a_thread), "chat A's own thread listed: {out}");
    assert!(out.contains("LS:"), "{out}");
    assert!(
        !out.contains(&b_thread),
        "chat B's thread visible from chat A: {out}"
    );
    assert!(
        !out.contains("beta-private-words-5531"),
        "chat B's words readable from chat A: {out}"
    );
    // Codex's own record of chat B is intact, in B's home.
    let b_home = env.e.home.scope_codex_home("chat:oc_iso_b");
    assert!(
        walk(&b_home.join("sessions"))
            .iter()
            .any(|f| f.contains(&b_thread)),
        "chat B's thread is in B's Codex home"
    );
    drop(env);
}

/// A thread from before per-chat homes: its rollout in the profile's
/// `codex-home/sessions`, none in the chat's home. The chat's next message
/// continues it (the model sees the first message again), no "could not be
/// found", and the original file stays.
fn a_thread_in_the_old_shared_home_continues(runner: &str) {
    let env = env(runner);
    env.run_in("oc_legacy", "first words kiwi-legacy-3371");
    let thread = env.thread_at(0);
    assert!(!thread.is_empty());
    // Back to the layout of an older fcx: the thread in the profile's
    // Codex home, no home of the chat's own (no sqlite rows either).
    let scope_home = env.e.home.scope_codex_home("chat:oc_legacy");
    let shared = env.e.home.home.join("profiles/default/codex-home");
    let rollout = walk_paths(&scope_home.join("sessions"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&thread))
        .expect("the thread's rollout in the chat's home");
    let rel = rollout
        .strip_prefix(scope_home.join("sessions"))
        .expect("under sessions")
        .to_path_buf();
    let old = shared.join("sessions").join(&rel);
    std::fs::create_dir_all(old.parent().expect("day dir")).expect("mkdir");
    std::fs::copy(&rollout, &old).expect("copy to the old place");
    std::fs::remove_dir_all(&scope_home).expect("forget the chat's home");

    if runner == "app-server" {
        // /resume asks Codex (thread/list in the chat's home): the old
        // thread is offered, not reported gone.
        let om = env.say_as("oc_legacy", USER, "/resume");
        env.wait_reply_under(&om, "(current)");
        let listed = env.replies_under(&om);
        assert!(!listed.contains("no longer in Codex"), "{listed}");
        assert!(!listed.contains("No earlier session"), "{listed}");
    }
    let n = env.mock.requests().len();
    let card = env.run_in("oc_legacy", "second words after the upgrade");
    let req = &env.mock.requests()[n];
    assert_eq!(
        req.header("thread-id").unwrap_or_default(),
        thread,
        "the same thread continues"
    );
    assert!(
        req.body.to_string().contains("kiwi-legacy-3371"),
        "the model sees the first message again: {}",
        req.body
    );
    assert!(
        env.card_json(&card).contains("from mock"),
        "the run ended well"
    );
    assert!(
        !env.fcx_said("could not be found") && !env.fcx_said("starting a new session"),
        "no 'new session' notice"
    );
    assert!(old.is_file(), "the original stays for the operator");
    assert!(
        scope_home.join("sessions").join(&rel).is_file(),
        "copied into the chat's home at the same place"
    );
    drop(env);
}

#[test]
fn a_thread_in_the_old_shared_home_continues_under_app_server() {
    a_thread_in_the_old_shared_home_continues("app-server");
}

#[test]
fn a_thread_in_the_old_shared_home_continues_under_exec() {
    a_thread_in_the_old_shared_home_continues("exec");
}

impl Env {
    /// Whether anything fcx sent (messages, cards) says `needle`.
    fn fcx_said(&self, needle: &str) -> bool {
        self.e.fake.messages().iter().any(|m| {
            m.sender_type == "app"
                && (m.content.contains(needle)
                    || m.card_id
                        .as_deref()
                        .is_some_and(|c| self.card_json(c).contains(needle)))
        })
    }
}

fn walk_paths(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_paths(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    walk_paths(dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}
