use std::collections::HashSet;

use fcx_proto::v1::{self as pb, ActionKind};
use serde_json::Value;

use super::command::valid_name;
use super::tests::XorShift;
use super::*;

fn button(action: ActionKind, label: &str, value: &str, style: &str) -> pb::Button {
    pb::Button {
        action: action as i32,
        label: label.into(),
        value: value.into(),
        style: pb::ButtonStyle::from_word(style).unwrap_or_default() as i32,
        note: false,
    }
}

fn field(name: &str, value: &str) -> pb::Field {
    pb::Field {
        name: name.into(),
        value: value.into(),
    }
}

fn choice(value: &str, label: &str) -> pb::Choice {
    pb::Choice {
        value: value.into(),
        label: label.into(),
    }
}

fn option(key: &str, label: &str, current: &str, choices: &[(&str, &str)]) -> pb::ConfigOption {
    pb::ConfigOption {
        // A key this build does not know stays UNSPECIFIED (an unusable key).
        key: pb::ConfigKey::from_word(key).unwrap_or_default() as i32,
        label: label.into(),
        current: current.into(),
        choices: choices.iter().map(|(v, l)| choice(v, l)).collect(),
        help: format!("How {label} works."),
    }
}

fn status_reply() -> pb::CommandReply {
    pb::CommandReply {
        command: pb::CommandName::Status as i32,
        title: "Status".into(),
        body: "Everything is **fine**.".into(),
        ok: true,
        fields: vec![
            field("profile", "work"),
            field("workspace", "/home/me/my_project"),
            field("sandbox", "workspace-write"),
        ],
        buttons: vec![
            button(ActionKind::Command, "New session", "/new", "primary"),
            button(ActionKind::Command, "Help", "/help", "default"),
            button(ActionKind::Stop, "Stop", "run-7", "danger"),
        ],
        actor: Some(pb::Actor {
            id: "ou_1".into(),
            name: "Ada".into(),
        }),
        fingerprint: "fp".into(),
        reply_mode: pb::ReplyMode::Card as i32,
        ..Default::default()
    }
}

fn config_reply() -> pb::CommandReply {
    pb::CommandReply {
        command: pb::CommandName::Config as i32,
        title: "Settings".into(),
        body: "Choose how this chat works.".into(),
        ok: true,
        form: Some(pb::ConfigForm {
            options: vec![
                option(
                    "reply_mode",
                    "Reply mode",
                    "markdown",
                    &[("card", "Card"), ("markdown", "Markdown"), ("text", "Text")],
                ),
                option(
                    "tool_display",
                    "Tool calls",
                    "full",
                    &[("full", "Full"), ("summary", "Summary"), ("off", "Off")],
                ),
                option(
                    "access",
                    "Access",
                    "workspace",
                    &[("read-only", "Read only"), ("workspace", "Workspace")],
                ),
            ],
        }),
        actor: Some(pb::Actor {
            id: "ou_1".into(),
            name: "Ada".into(),
        }),
        ..Default::default()
    }
}

fn sign_all(b: &pb::Button) -> Option<String> {
    Some(format!("tok:{}", b.value))
}

fn body_elements(card: &Value) -> Vec<Value> {
    super::tests::elements(card)
}

/// Every object with a `tag`, depth first.
fn components(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("tag") {
                out.push(v.clone());
            }
            m.values().for_each(|v| components(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| components(v, out)),
        _ => {}
    }
}

fn all_components(card: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    components(card.get("body").unwrap_or(&Value::Null), &mut out);
    out
}

/// Components with `tag` anywhere inside `v`.
fn tagged(v: &Value, tag: &str) -> Vec<Value> {
    let mut all = Vec::new();
    components(v, &mut all);
    all.into_iter()
        .filter(|c| c.get("tag").and_then(Value::as_str) == Some(tag))
        .collect()
}

fn token_of(button: &Value) -> Option<&str> {
    button
        .pointer(&format!("/behaviors/0/value/{CALLBACK_VALUE_KEY}"))
        .and_then(Value::as_str)
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The card rules every command card must meet, whatever the input.
fn assert_card_ok(c: &RenderedCommandCard) {
    assert!(c.fits, "{} bytes, {} elements", c.bytes, c.elements);
    assert!(c.bytes <= CARD_BUDGET_BYTES, "{}", c.bytes);
    assert_eq!(c.bytes, c.json.len());
    assert!(c.elements <= MAX_ELEMENTS, "{}", c.elements);
    let reparsed: Value = serde_json::from_str(&c.json).unwrap_or(Value::Null);
    assert_eq!(reparsed, c.card);
    assert_eq!(s(&c.card, "/schema"), "2.0");
    for k in c
        .card
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        assert!(
            ["schema", "config", "header", "body"].contains(&k.as_str()),
            "{k}"
        );
    }
    // Identifiers: element ids and form names, valid and unique together.
    let mut seen = HashSet::new();
    for comp in all_components(&c.card) {
        for key in ["element_id", "name"] {
            if let Some(id) = comp.get(key).and_then(Value::as_str) {
                assert!(valid_name(id), "bad {key} {id:?}");
                assert!(seen.insert(id.to_string()), "duplicate identifier {id}");
            }
        }
        let tag = s(&comp, "/tag");
        if tag == "button" {
            let t = token_of(&comp);
            assert!(
                t.is_some_and(|t| !t.is_empty()),
                "button without a token: {comp}"
            );
        }
        if matches!(tag, "select_static" | "form") {
            assert!(comp.get("name").is_some(), "{tag} needs a name");
        }
    }
    // A form only at the root, and nothing but the root holds one.
    let root_forms = body_elements(&c.card)
        .iter()
        .filter(|e| s(e, "/tag") == "form")
        .count();
    assert_eq!(
        tagged(&c.card, "form").len(),
        root_forms,
        "form nested below the root"
    );
    assert!(root_forms <= 1);
    for f in tagged(&c.card, "form") {
        let mut inner = Vec::new();
        components(f.get("elements").unwrap_or(&Value::Null), &mut inner);
        assert!(inner.iter().all(|e| s(e, "/tag") != "form"));
    }
}

#[test]
fn status_card_shows_header_body_fields_and_signed_buttons() {
    let mut signed = Vec::new();
    let mut sign = |b: &pb::Button| {
        signed.push(b.value.clone());
        sign_all(b)
    };
    let c = command_card(&status_reply(), &mut sign, None);
    assert_card_ok(&c);
    assert_eq!(
        signed,
        ["/new", "/help", "run-7"],
        "each button signed once"
    );
    assert_eq!(s(&c.card, "/header/title/content"), "Status");
    assert_eq!(s(&c.card, "/header/template"), "blue");
    assert_eq!(s(&c.card, "/config/summary/content"), "Status");
    let els = body_elements(&c.card);
    let body = super::tests::by_id(&els, "fcx_body").expect("body");
    assert_eq!(s(body, "/content"), "Everything is **fine**.");

    // Fields: one two-column row each, name then value.
    let rows: Vec<&Value> = els
        .iter()
        .filter(|e| s(e, "/element_id").starts_with("fcx_field_"))
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(s(rows[1], "/tag"), "column_set");
    assert_eq!(s(rows[1], "/columns/0/elements/0/content"), "**workspace**");
    assert_eq!(
        s(rows[1], "/columns/1/elements/0/content"),
        "/home/me/my\\_project"
    );

    // Buttons: types from the style, callback value carries the token.
    let buttons = tagged(&c.card, "button");
    assert_eq!(buttons.len(), 3);
    assert_eq!(c.buttons, 3);
    let want = [
        ("New session", "primary", "tok:/new"),
        ("Help", "default", "tok:/help"),
        ("Stop", "danger", "tok:run-7"),
    ];
    for (b, (label, ty, tok)) in buttons.iter().zip(want) {
        assert_eq!(s(b, "/text/content"), label);
        assert_eq!(s(b, "/type"), ty);
        assert_eq!(s(b, "/behaviors/0/type"), "callback");
        assert_eq!(token_of(b), Some(tok));
    }
    // Short labels share one row.
    let row = els
        .iter()
        .find(|e| s(e, "/tag") == "column_set" && s(e, "/element_id").starts_with("fcx_row_"))
        .expect("button row");
    assert_eq!(
        row.pointer("/columns")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(3)
    );
    let note = super::tests::by_id(&els, "fcx_note").expect("note");
    assert!(s(note, "/content").contains("Ada"));
}

#[test]
fn unsigned_buttons_are_left_out() {
    let mut sign = |b: &pb::Button| (b.value != "/help").then(|| format!("t-{}", b.value));
    let c = command_card(&status_reply(), &mut sign, None);
    assert_card_ok(&c);
    assert_eq!(c.buttons, 2);
    assert!(!c.json.contains("\"Help\""), "{}", c.json);
    let labels: Vec<String> = tagged(&c.card, "button")
        .iter()
        .map(|b| s(b, "/text/content").to_string())
        .collect();
    assert_eq!(labels, ["New session", "Stop"]);

    // Nothing signed: no buttons and no note about who may use them.
    let c = command_card(&status_reply(), &mut |_| None, None);
    assert_card_ok(&c);
    assert_eq!(c.buttons, 0);
    assert!(tagged(&c.card, "button").is_empty());
    assert!(super::tests::by_id(&body_elements(&c.card), "fcx_note").is_none());
}

#[test]
fn long_button_labels_get_their_own_full_width_row() {
    let mut r = status_reply();
    r.buttons = vec![
        button(
            ActionKind::Resume,
            "Resume: fix the flaky parser test",
            "n1",
            "",
        ),
        button(ActionKind::Command, "A", "/a", ""),
    ];
    let c = command_card(&r, &mut sign_all, None);
    assert_card_ok(&c);
    let els = body_elements(&c.card);
    let long = els
        .iter()
        .find(|e| s(e, "/tag") == "button")
        .expect("a root-level button");
    assert_eq!(s(long, "/width"), "fill");
    assert_eq!(s(long, "/type"), "default");
    assert_eq!(token_of(long), Some("tok:n1"));
}

#[test]
fn config_form_sits_at_the_root_with_one_named_select_per_option() {
    let mut sign = |_: &pb::Button| -> Option<String> { panic!("no buttons to sign") };
    let c = command_card(&config_reply(), &mut sign, Some("FORM.TOKEN"));
    assert_card_ok(&c);
    assert_eq!(c.form_fields, 3);
    assert_eq!(s(&c.card, "/header/template"), "blue");
    let els = body_elements(&c.card);
    let form = els
        .iter()
        .find(|e| s(e, "/tag") == "form")
        .expect("form at the root");
    assert!(valid_name(s(form, "/name")));
    let selects = tagged(form, "select_static");
    let names: Vec<&str> = selects.iter().map(|x| s(x, "/name")).collect();
    assert_eq!(names, ["reply_mode", "tool_display", "access"]);
    let first = &selects[0];
    assert_eq!(s(first, "/initial_option"), "markdown");
    assert_eq!(s(first, "/placeholder/content"), "Reply mode");
    assert_eq!(s(first, "/options/2/value"), "text");
    assert_eq!(s(first, "/options/2/text/content"), "Text");
    assert_eq!(s(first, "/options/2/text/tag"), "plain_text");
    // A help line under each select.
    let inner = form
        .get("elements")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let at = inner
        .iter()
        .position(|e| s(e, "/name") == "access")
        .expect("access select");
    assert_eq!(s(&inner[at + 1], "/content"), "How Access works.");
    assert!(s(&inner[at - 1], "/content").contains("Access"));
    // The submit button is last, named, and carries the form token.
    let submit = inner.last().expect("submit");
    assert_eq!(s(submit, "/tag"), "button");
    assert_eq!(s(submit, "/form_action_type"), "submit");
    assert!(valid_name(s(submit, "/name")));
    assert_eq!(token_of(submit), Some("FORM.TOKEN"));
}

#[test]
fn without_a_form_token_settings_are_shown_read_only() {
    let c = command_card(&config_reply(), &mut sign_all, None);
    assert_card_ok(&c);
    assert_eq!(c.form_fields, 0);
    assert!(tagged(&c.card, "form").is_empty());
    assert!(tagged(&c.card, "select_static").is_empty());
    let els = body_elements(&c.card);
    let text = s(
        super::tests::by_id(&els, "fcx_settings").expect("settings"),
        "/content",
    );
    assert!(text.contains("**Reply mode**: Markdown"), "{text}");
    assert!(text.contains("**Access**: Workspace"), "{text}");
}

#[test]
fn unusable_option_keys_and_choices_stay_off_the_form() {
    let mut r = config_reply();
    let form = r.form.get_or_insert_with(Default::default);
    let ok = [("a", "A"), ("b", "B")];
    let k21 = "k".repeat(21);
    for key in [
        "bad key",
        "1abc",
        "fcx_body",
        "reply_mode",
        k21.as_str(),
        "",
    ] {
        form.options.push(option(key, "X", "a", &ok));
    }
    // Duplicate, empty and oversized choice values are dropped; the current
    // value is kept even beyond the shown choices.
    let long = "v".repeat(300);
    let mut choices: Vec<(&str, &str)> = vec![
        ("", "empty"),
        ("dup", "one"),
        ("dup", "two"),
        (&long, "long"),
    ];
    let many: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    choices.extend(many.iter().map(|m| (m.as_str(), "")));
    form.options
        .push(option("idle_timeout", "Idle timeout", "c99", &choices));
    form.options.push(option("mention", "Mention", "x", &[]));
    let c = command_card(&r, &mut sign_all, Some("T"));
    assert_card_ok(&c);
    let selects = tagged(&c.card, "select_static");
    let names: Vec<&str> = selects.iter().map(|x| s(x, "/name")).collect();
    assert_eq!(
        names,
        ["reply_mode", "tool_display", "access", "idle_timeout"]
    );
    let idle = &selects[3];
    let values: Vec<&str> = idle
        .get("options")
        .and_then(Value::as_array)
        .map(|o| o.iter().map(|x| s(x, "/value")).collect())
        .unwrap_or_default();
    assert_eq!(values.first(), Some(&"dup"));
    assert_eq!(values.iter().filter(|v| **v == "dup").count(), 1);
    assert!(!values.contains(&"") && !values.contains(&long.as_str()));
    assert_eq!(values.last(), Some(&"c99"));
    assert_eq!(s(idle, "/initial_option"), "c99");
    // A choice without a label shows its value.
    assert_eq!(s(idle, "/options/1/text/content"), "c0");
    let form = tagged(&c.card, "form");
    assert!(form[0].to_string().contains("more settings not shown"));
}

#[test]
fn header_colour_follows_the_outcome() {
    let mut r = status_reply();
    r.buttons.clear();
    for (command, ok, colour) in [
        (pb::CommandName::New, true, "green"),
        (pb::CommandName::Cd, false, "red"),
        (pb::CommandName::Help, true, "blue"),
        (pb::CommandName::Status, true, "blue"),
        (pb::CommandName::Status, false, "red"),
        (pb::CommandName::Config, true, "green"),
    ] {
        r.set_command(command);
        r.ok = ok;
        let c = command_card(&r, &mut sign_all, None);
        assert_eq!(s(&c.card, "/header/template"), colour, "{command:?} {ok}");
    }
    r.title.clear();
    r.set_command(pb::CommandName::Ps);
    let c = command_card(&r, &mut sign_all, None);
    assert_eq!(s(&c.card, "/header/title/content"), "ps");
}

#[test]
fn a_long_body_is_cut_with_a_marker_and_closed_fences() {
    let mut r = status_reply();
    r.body = format!("intro\n```\n{}", "代码 \"line\" 😀\n".repeat(5_000));
    let c = command_card(&r, &mut sign_all, None);
    assert_card_ok(&c);
    let els = body_elements(&c.card);
    let body = s(
        super::tests::by_id(&els, "fcx_body").expect("body"),
        "/content",
    );
    assert!(body.starts_with("intro\n```\n"), "{body:.40}");
    assert!(body.ends_with("*… (cut to fit the card)*"));
    let fences = body.lines().filter(|l| l.starts_with("```")).count();
    assert_eq!(fences % 2, 0, "the cut closes the code block");
    assert!(text::json_escaped_len(body) <= 12 * 1024 + 64);
}

#[test]
fn many_fields_fall_back_to_lines_then_a_count() {
    let mut r = status_reply();
    r.fields = (0..100).map(|i| field(&format!("f{i}"), "v_1")).collect();
    let c = command_card(&r, &mut sign_all, None);
    assert_card_ok(&c);
    let els = body_elements(&c.card);
    let rows = els
        .iter()
        .filter(|e| s(e, "/element_id").starts_with("fcx_field_"))
        .count();
    assert!(rows > 0);
    let lines = s(
        super::tests::by_id(&els, "fcx_fields").expect("lines"),
        "/content",
    );
    assert!(lines.contains(&format!("**f{rows}**: v\\_1")), "{lines}");
    assert!(lines.contains("more*"), "{lines}");
}

#[test]
fn command_markdown_shows_title_body_fields_and_command_hints() {
    let md = command_markdown(&status_reply());
    assert_eq!(
        md,
        "**Status**\n\nEverything is **fine**.\n\n**profile**: work\n**workspace**: /home/me/my\\_project\n**sandbox**: workspace-write\n\nAlso: /new · /help"
    );
    let mut r = config_reply();
    r.buttons.clear();
    let md = command_markdown(&r);
    assert_eq!(md, "**Settings**\n\nChoose how this chat works.");
    assert!(!md.contains("Also:"));
}

#[test]
fn command_text_has_no_markdown_syntax() {
    let mut r = status_reply();
    r.body = "# Commands\n\n- **/new**: start over\n- `/stop` stops [the run](https://x.example/run)\n\n```\nfcxctl status\n```".into();
    let t = command_text(&r);
    assert_eq!(
        t,
        "Status\n\nCommands\n\n• /new: start over\n• /stop stops the run (https://x.example/run)\n\nfcxctl status\n\nprofile: work\nworkspace: /home/me/my_project\nsandbox: workspace-write\n\nAlso: /new · /help"
    );
    for syntax in ["**", "`", "# ", "](", "- "] {
        assert!(!t.contains(syntax), "{syntax:?} in {t}");
    }
}

/// A random reply: `huge` means 10,000 fields, buttons and options of
/// short strings (and a megabyte body); otherwise a few items with long
/// strings.
fn hostile_reply(rng: &mut XorShift, huge: bool) -> pb::CommandReply {
    let count = |rng: &mut XorShift| {
        if huge { 10_000 } else { rng.below(30) as usize }
    };
    let len = |long: usize| if huge { 60 } else { long };
    let fields = (0..count(rng))
        .map(|_| field(&rng.string(len(200)), &rng.string(len(3_000))))
        .collect();
    let buttons = (0..count(rng))
        .map(|_| {
            let kind =
                [ActionKind::Command, ActionKind::Resume, ActionKind::Stop][rng.below(3) as usize];
            button(
                kind,
                &rng.string(len(300)),
                &rng.string(100),
                &rng.string(10),
            )
        })
        .collect();
    let options = (0..count(rng))
        .map(|i| hostile_option(rng, i, huge))
        .collect();
    pb::CommandReply {
        // Out-of-range values too: an unknown enum number must render.
        command: rng.below(40) as i32,
        title: rng.string(500),
        body: if huge {
            "长文本 😀 \"q\" \\ ```\n".repeat(50_000)
        } else {
            rng.string(40_000)
        },
        ok: rng.below(2) == 0,
        fields,
        buttons,
        form: (rng.below(4) != 0).then_some(pb::ConfigForm { options }),
        actor: Some(pb::Actor {
            id: "ou".into(),
            name: rng.string(100),
        }),
        ..Default::default()
    }
}

fn hostile_option(rng: &mut XorShift, i: usize, huge: bool) -> pb::ConfigOption {
    // Any key, the unknown (UNSPECIFIED) one included; `i` picks most.
    let key = if rng.below(3) == 0 {
        rng.below(6) as i32
    } else {
        (i % 6) as i32
    };
    let (n, label) = if huge { (8, 40) } else { (200, 300) };
    let choices: Vec<pb::Choice> = (0..rng.below(n))
        .map(|_| choice(&rng.string(40), &rng.string(label)))
        .collect();
    let current = choices.first().map(|c| c.value.clone()).unwrap_or_default();
    pb::ConfigOption {
        key,
        label: rng.string(label),
        current,
        choices,
        help: rng.string(if huge { 60 } else { 2_000 }),
    }
}

#[test]
fn hostile_replies_always_give_a_card_within_limits() {
    let mut rng = XorShift(0x0BAD_5EED_1234_5678);
    let mut max_level = 0;
    for round in 0..60 {
        let huge = round % 15 == 0;
        let r = hostile_reply(&mut rng, huge);
        let token = "t".repeat(rng.below(400) as usize + 1);
        let mut sign = |b: &pb::Button| (!b.label.len().is_multiple_of(5)).then(|| token.clone());
        let form_token = (round % 3 != 0).then_some("F".repeat(300));
        let c = command_card(&r, &mut sign, form_token.as_deref());
        assert_card_ok(&c);
        max_level = max_level.max(c.degrade_level);
        if huge {
            assert!(c.buttons <= 24);
        }
        // The other modes never panic and keep the title.
        let md = command_markdown(&r);
        let txt = command_text(&r);
        assert!(md.len() + txt.len() > 0);
    }
    assert!(max_level >= 2, "hostile input should force degrading");
}

#[test]
fn ten_thousand_valid_options_are_capped_and_counted() {
    let opts: Vec<pb::ConfigOption> = (0..10_000)
        .map(|i| {
            option(
                [
                    "reply_mode",
                    "tool_display",
                    "access",
                    "mention",
                    "idle_timeout",
                ][i % 5],
                &format!("设置 {i} 😀"),
                "b",
                &[("a", "A"), ("b", "B")],
            )
        })
        .collect();
    let r = pb::CommandReply {
        command: pb::CommandName::Config as i32,
        title: "Settings".into(),
        ok: true,
        form: Some(pb::ConfigForm { options: opts }),
        ..Default::default()
    };
    let c = command_card(&r, &mut sign_all, Some("T"));
    assert_card_ok(&c);
    assert!(
        c.form_fields >= 4 && c.form_fields <= 12,
        "{}",
        c.form_fields
    );
    assert!(c.json.contains(&format!(
        "{} more settings not shown",
        10_000 - c.form_fields
    )));
}

#[test]
fn a_note_button_is_a_form_with_one_input_and_the_button_as_its_submit() {
    let mut deny_note = button(
        ActionKind::Approval,
        "Deny with a note",
        "r/0/deny",
        "danger",
    );
    deny_note.note = true;
    let reply = pb::CommandReply {
        command: pb::CommandName::Approval as i32,
        title: "Codex asks to run a command".into(),
        ok: true,
        buttons: vec![
            button(ActionKind::Approval, "Approve", "r/0/approve", "primary"),
            deny_note,
        ],
        ..Default::default()
    };
    let c = command_card(&reply, &mut sign_all, None);
    assert_card_ok(&c);
    let forms = tagged(&c.card, "form");
    assert_eq!(forms.len(), 1, "{}", c.json);
    let inputs = tagged(&forms[0], "input");
    assert_eq!(inputs.len(), 1);
    assert_eq!(s(&inputs[0], "/name"), crate::ingress::click::NOTE_FIELD);
    let submit = tagged(&forms[0], "button");
    assert_eq!(submit.len(), 1);
    assert_eq!(s(&submit[0], "/form_action_type"), "submit");
    assert_eq!(token_of(&submit[0]), Some("tok:r/0/deny"));
    // The plain button stays outside the form.
    let all_buttons = tagged(&c.card, "button");
    assert_eq!(all_buttons.len(), 2);
}
