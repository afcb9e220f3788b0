//! The bench's exit verdict on the many-scope loads (issue 14's fairness
//! target): what fails the run, and what the failure names.

use serde_json::json;

use super::load_verdict;

fn clean() -> serde_json::Value {
    json!({
        "out_of_order_starts": 0, "out_of_order_seen": [],
        "lost": 0, "lost_seen": [],
        "duplicated": 0, "duplicated_seen": [],
    })
}

#[test]
fn clean_loads_and_skipped_sections_pass() {
    let out = json!({
        "many_scopes": clean(),
        "many_scopes_even_runs": clean(),
        "many_scopes_instant_runs": "skipped",
    });
    assert_eq!(load_verdict(&out), Vec::<String>::new());
}

#[test]
fn an_out_of_order_start_fails_and_names_its_scope() {
    let mut l = clean();
    l["out_of_order_starts"] = json!(1);
    l["out_of_order_seen"] =
        json!([{ "scope": "chat:load17", "passed_by": { "scope": "chat:load40" } }]);
    let out = json!({ "many_scopes": l, "many_scopes_even_runs": clean() });
    let v = load_verdict(&out);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].starts_with("many_scopes: 1 out-of-order starts"),
        "{v:?}"
    );
    assert!(
        v[0].contains("chat:load17") && v[0].contains("chat:load40"),
        "{v:?}"
    );
}

#[test]
fn lost_and_duplicated_messages_fail_each_with_their_scopes() {
    let mut l = clean();
    l["lost"] = json!(1);
    l["lost_seen"] = json!([{ "message": "m7", "scope": "chat:load2" }]);
    l["duplicated"] = json!(2);
    l["duplicated_seen"] = json!([{ "message": "m9", "scope": "chat:load3" }]);
    let out = json!({ "many_scopes_instant_runs": l });
    let v = load_verdict(&out);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v[0].contains("1 messages lost") && v[0].contains("chat:load2"),
        "{v:?}"
    );
    assert!(
        v[1].contains("2 messages run twice") && v[1].contains("chat:load3"),
        "{v:?}"
    );
}
