//! Command replies (`/help`, `/status`, `/resume`, `/config`, …) in each
//! reply mode: a Card JSON 2.0 card with signed buttons and the `/config`
//! form (feishu.md §4), a markdown message, or plain text.
//!
//! Like run cards, the card is measured after it is built and rebuilt with
//! less detail until it fits the byte and element budgets, so no reply,
//! however long or hostile, produces a card the platform refuses.

use std::collections::HashSet;

use fcx_proto::v1::{self as pb, ActionKind};
use serde_json::{Value, json};

use super::card::count_elements;
#[cfg(test)]
use super::plain::markdown_to_plain;
use super::text::{escape_md, one_line, split_pieces, truncate_head, utf16_len};
use super::{CALLBACK_VALUE_KEY, CARD_BUDGET_BYTES, MAX_ELEMENTS};

/// Buttons signed per reply: more than any level shows, so signing (which
/// may cost a nonce each) is bounded even for a hostile reply.
const MAX_SIGNED_BUTTONS: usize = 24;
/// Buttons sharing one row; longer labels get a row of their own.
const BUTTONS_PER_ROW: usize = 3;
const SHORT_LABEL: usize = 14;
/// A choice value longer than this is not a setting value; it could not
/// be submitted back meaningfully, so it is not offered.
const MAX_CHOICE_VALUE_BYTES: usize = 256;
/// Commands whose replies inform rather than change something: a blue
/// header instead of green.
const NEUTRAL_COMMANDS: [pb::CommandName; 4] = [
    pb::CommandName::Help,
    pb::CommandName::Status,
    pb::CommandName::Resume,
    pb::CommandName::Ps,
];
/// Prefix of every identifier this module makes, so an option key (which
/// must be the field's `name`) can never collide with one.
const ID_PREFIX: &str = "fcx_";

#[derive(Debug, Clone)]
pub(crate) struct RenderedCommandCard {
    /// Card JSON 2.0.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) card: Value,
    /// `card` serialized, as a message or CardKit `data` carries it.
    pub(crate) json: String,
    /// `json.len()`.
    pub(crate) bytes: usize,
    /// Components, nested ones included.
    pub(crate) elements: usize,
    /// Signed buttons shown.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) buttons: usize,
    /// Form fields (select menus) shown; their `name`s are the option keys.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) form_fields: usize,
    /// 0 = everything shown; higher = detail dropped to fit.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) degrade_level: u8,
    /// False only if even the barest card exceeded a budget.
    pub(crate) fits: bool,
}

/// Per-level limits; level 0 shows the most.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Body, bytes of JSON-escaped markdown.
    body: usize,
    /// Fields laid out as name/value columns.
    field_rows: usize,
    /// Further fields as "**name**: value" lines.
    field_lines: usize,
    /// Field value, UTF-16 units.
    value_chars: usize,
    options: usize,
    choices: usize,
    buttons: usize,
}

const LEVELS: [Limits; 6] = [
    Limits {
        body: 12 * 1024,
        field_rows: 12,
        field_lines: 40,
        value_chars: 300,
        options: 12,
        choices: 40,
        buttons: 24,
    },
    Limits {
        body: 8 * 1024,
        field_rows: 8,
        field_lines: 30,
        value_chars: 200,
        options: 8,
        choices: 20,
        buttons: 16,
    },
    Limits {
        body: 4 * 1024,
        field_rows: 4,
        field_lines: 20,
        value_chars: 120,
        options: 6,
        choices: 10,
        buttons: 8,
    },
    Limits {
        body: 2 * 1024,
        field_rows: 0,
        field_lines: 12,
        value_chars: 80,
        options: 4,
        choices: 6,
        buttons: 4,
    },
    Limits {
        body: 1024,
        field_rows: 0,
        field_lines: 6,
        value_chars: 60,
        options: 2,
        choices: 4,
        buttons: 2,
    },
    Limits {
        body: 512,
        field_rows: 0,
        field_lines: 3,
        value_chars: 40,
        options: 0,
        choices: 0,
        buttons: 0,
    },
];

/// A signed button ready for the card.
struct Signed<'a> {
    button: &'a pb::Button,
    token: String,
}

/// The card for `reply`. `sign` gives each button's callback token (`None`
/// leaves the button out: it could not be verified when clicked);
/// `form_token` is the submit token of the `/config` form (`None` shows
/// the settings read-only).
pub(crate) fn command_card(
    reply: &pb::CommandReply,
    sign: &mut dyn FnMut(&pb::Button) -> Option<String>,
    form_token: Option<&str>,
) -> RenderedCommandCard {
    let signed = sign_buttons(reply, sign);
    let options = form_options(reply.form.as_ref());
    let mut last = None;
    for (level, l) in LEVELS.iter().enumerate() {
        let out = build(reply, &signed, &options, form_token, l, level);
        if out.fits {
            return out;
        }
        last = Some(out);
    }
    let fallback =
        last.unwrap_or_else(|| build(reply, &signed, &options, form_token, &LEVELS[0], 0));
    tracing::warn!(
        bytes = fallback.bytes,
        elements = fallback.elements,
        "command card exceeds its budget even at the lowest detail"
    );
    fallback
}

/// `reply` as one markdown message: title, body, fields, and the commands
/// the card's buttons would have run as a hint.
pub(crate) fn command_markdown(reply: &pb::CommandReply) -> String {
    let mut parts = Vec::new();
    if !reply.title.trim().is_empty() {
        parts.push(format!("**{}**", escape_md(&one_line(&reply.title, 200))));
    }
    if !reply.body.trim().is_empty() {
        parts.push(reply.body.trim_end().to_string());
    }
    let fields: Vec<String> = reply
        .fields
        .iter()
        .map(|f| {
            format!(
                "**{}**: {}",
                escape_md(&one_line(&f.name, 80)),
                escape_md(&f.value)
            )
        })
        .collect();
    if !fields.is_empty() {
        parts.push(fields.join("\n"));
    }
    if let Some(hint) = command_hint(reply) {
        parts.push(escape_md(&hint));
    }
    parts.join("\n\n")
}

/// `reply` as plain text (no markdown syntax). Reply mode text converts
/// [`command_markdown`] instead; this stays for its tests until one of
/// the two goes.
#[cfg(test)]
pub(crate) fn command_text(reply: &pb::CommandReply) -> String {
    let mut parts = Vec::new();
    if !reply.title.trim().is_empty() {
        parts.push(one_line(&reply.title, 200));
    }
    let body = markdown_to_plain(&reply.body);
    if !body.trim().is_empty() {
        parts.push(body.trim_end().to_string());
    }
    let fields: Vec<String> = reply
        .fields
        .iter()
        .map(|f| format!("{}: {}", one_line(&f.name, 80), f.value))
        .collect();
    if !fields.is_empty() {
        parts.push(fields.join("\n"));
    }
    parts.extend(command_hint(reply));
    parts.join("\n\n")
}

/// "Also: /status · /new" from the COMMAND buttons (what the card would
/// have offered), or `None`.
fn command_hint(reply: &pb::CommandReply) -> Option<String> {
    let mut seen = HashSet::new();
    let cmds: Vec<String> = reply
        .buttons
        .iter()
        .filter(|b| b.action == ActionKind::Command as i32)
        .map(|b| one_line(&b.value, 80))
        .filter(|v| !v.is_empty() && seen.insert(v.clone()))
        .take(12)
        .collect();
    (!cmds.is_empty()).then(|| format!("Also: {}", cmds.join(" · ")))
}

fn sign_buttons<'a>(
    reply: &'a pb::CommandReply,
    sign: &mut dyn FnMut(&pb::Button) -> Option<String>,
) -> Vec<Signed<'a>> {
    let mut out = Vec::new();
    for button in &reply.buttons {
        if out.len() >= MAX_SIGNED_BUTTONS {
            break;
        }
        if let Some(token) = sign(button) {
            out.push(Signed { button, token });
        }
    }
    out
}

/// An option the form can carry: a key usable as the field's `name`, and
/// the choices a select menu can offer.
struct FormOption<'a> {
    opt: &'a pb::ConfigOption,
    choices: Vec<&'a pb::Choice>,
}

/// The options in reply order, with duplicate or unusable keys and
/// choices left out; the second value counts the options left out.
fn form_options(form: Option<&pb::ConfigForm>) -> (Vec<FormOption<'_>>, usize) {
    let Some(form) = form else {
        return (Vec::new(), 0);
    };
    let mut keys = HashSet::new();
    let mut usable = Vec::new();
    for opt in &form.options {
        let key = opt.key().word();
        if !valid_name(key) || key.starts_with(ID_PREFIX) || !keys.insert(key) {
            continue;
        }
        let mut values = HashSet::new();
        let choices: Vec<&pb::Choice> = opt
            .choices
            .iter()
            .filter(|c| !c.value.is_empty() && c.value.len() <= MAX_CHOICE_VALUE_BYTES)
            .filter(|c| values.insert(c.value.as_str()))
            .collect();
        if !choices.is_empty() {
            usable.push(FormOption { opt, choices });
        }
    }
    let dropped = form.options.len() - usable.len();
    (usable, dropped)
}

/// Card rules for `element_id` and form field `name`: letters, digits and
/// underscores, starting with a letter, at most 20 characters.
pub(super) fn valid_name(s: &str) -> bool {
    s.len() <= 20
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn build(
    reply: &pb::CommandReply,
    signed: &[Signed<'_>],
    options: &(Vec<FormOption<'_>>, usize),
    form_token: Option<&str>,
    l: &Limits,
    level: usize,
) -> RenderedCommandCard {
    let mut els = Vec::new();
    if let Some(b) = body_element(&reply.body, l) {
        els.push(b);
    }
    field_elements(&reply.fields, l, &mut els);
    let form_fields = settings_elements(options, form_token, l, &mut els);
    let shown = &signed[..signed.len().min(l.buttons)];
    let (with_note, plain_buttons): (Vec<&Signed<'_>>, Vec<&Signed<'_>>) =
        shown.iter().partition(|s| s.button.note);
    els.extend(button_rows(&plain_buttons));
    for (i, s) in with_note.iter().enumerate() {
        els.push(super::note_form::note_form(
            i,
            &button_label(s.button),
            &s.token,
        ));
    }
    if signed.len() > shown.len() {
        els.push(md(
            "fcx_btn_more",
            format!("*… {} more buttons not shown*", signed.len() - shown.len()),
        ));
    }
    if let Some(note) = actor_note(reply, !shown.is_empty() || form_fields > 0) {
        els.push(note);
    }
    let card = json!({
        "schema": "2.0",
        "config": {
            "update_multi": true,
            "summary": {"content": one_line(&title(reply), 60)},
        },
        "header": {
            "title": plain(&one_line(&title(reply), 100)),
            "template": template(reply),
        },
        "body": {"elements": els},
    });
    let json = card.to_string();
    let elements = count_elements(&card);
    RenderedCommandCard {
        bytes: json.len(),
        fits: json.len() <= CARD_BUDGET_BYTES && elements <= MAX_ELEMENTS,
        card,
        json,
        elements,
        buttons: shown.len(),
        form_fields,
        degrade_level: u8::try_from(level).unwrap_or(u8::MAX),
    }
}

fn title(reply: &pb::CommandReply) -> String {
    [reply.title.as_str(), reply.command().word()]
        .into_iter()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .unwrap_or("fcx")
        .to_string()
}

fn template(reply: &pb::CommandReply) -> &'static str {
    if !reply.ok {
        "red"
    } else if reply.form.is_some() || NEUTRAL_COMMANDS.contains(&reply.command()) {
        "blue"
    } else {
        "green"
    }
}

fn plain(s: &str) -> Value {
    json!({"tag": "plain_text", "content": s})
}

fn md(id: &str, content: String) -> Value {
    json!({"tag": "markdown", "element_id": id, "content": content})
}

fn md_bare(content: String) -> Value {
    json!({"tag": "markdown", "content": content})
}

fn note(content: String) -> Value {
    json!({"tag": "markdown", "content": content, "text_size": "notation"})
}

/// The body cut to the level's budget; a cut closes any open code fence
/// (the answer splitter's first piece) and says so.
fn body_element(body: &str, l: &Limits) -> Option<Value> {
    let body = body.trim_end();
    if body.trim().is_empty() {
        return None;
    }
    // Splitting looks at every line; a hostile megabyte body only needs
    // its head looked at.
    let head = prefix(body, l.body.saturating_mul(4));
    let pieces = split_pieces(head, l.body);
    let mut text = pieces.first().map(|p| p.render(head)).unwrap_or_default();
    if pieces.len() > 1 || head.len() < body.len() {
        text.push_str("\n\n*… (cut to fit the card)*");
    }
    Some(md("fcx_body", text))
}

/// At most `max` bytes of `s`, cut on a char boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A field value for markdown: bounded, literal, line breaks kept.
fn field_value(v: &str, max: usize) -> String {
    let flat: String = v
        .trim()
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    escape_md(&truncate_head(&flat, max))
}

fn field_elements(fields: &[pb::Field], l: &Limits, els: &mut Vec<Value>) {
    let rows = fields.len().min(l.field_rows);
    for (i, f) in fields.iter().take(rows).enumerate() {
        els.push(field_row(i, f, l));
    }
    let rest = &fields[rows..];
    if rest.is_empty() {
        return;
    }
    let mut lines: Vec<String> = rest
        .iter()
        .take(l.field_lines)
        .map(|f| {
            format!(
                "**{}**: {}",
                escape_md(&one_line(&f.name, 40)),
                escape_md(&one_line(&f.value, l.value_chars))
            )
        })
        .collect();
    let hidden = rest.len() - lines.len();
    if hidden > 0 {
        lines.push(format!("*… and {hidden} more*"));
    }
    els.push(md("fcx_fields", lines.join("\n")));
}

/// One field as a name column and a wider value column.
fn field_row(i: usize, f: &pb::Field, l: &Limits) -> Value {
    let column = |weight: u32, content: String| {
        json!({
            "tag": "column",
            "width": "weighted",
            "weight": weight,
            "vertical_align": "top",
            "elements": [md_bare(content)],
        })
    };
    json!({
        "tag": "column_set",
        "element_id": format!("fcx_field_{i}"),
        "flex_mode": "none",
        "horizontal_spacing": "8px",
        "columns": [
            column(1, format!("**{}**", escape_md(&one_line(&f.name, 40)))),
            column(3, field_value(&f.value, l.value_chars)),
        ],
    })
}

/// The `/config` options: a form with one select menu each when there is a
/// submit token, else read-only lines. Returns the select menus shown.
fn settings_elements(
    options: &(Vec<FormOption<'_>>, usize),
    form_token: Option<&str>,
    l: &Limits,
    els: &mut Vec<Value>,
) -> usize {
    let (opts, dropped) = options;
    if opts.is_empty() && *dropped == 0 {
        return 0;
    }
    let shown = opts.len().min(l.options);
    let hidden = dropped + opts.len() - shown;
    match form_token {
        Some(token) if shown > 0 => {
            els.push(form(&opts[..shown], token, l, hidden));
            shown
        }
        _ => {
            els.push(read_only_settings(opts, l, *dropped));
            0
        }
    }
}

fn option_label(o: &pb::ConfigOption) -> String {
    let label = one_line(&o.label, 60);
    if label.is_empty() {
        one_line(o.key().word(), 60)
    } else {
        label
    }
}

fn choice_label(c: &pb::Choice) -> String {
    let label = one_line(&c.label, 60);
    if label.is_empty() {
        one_line(&c.value, 60)
    } else {
        label
    }
}

fn read_only_settings(opts: &[FormOption<'_>], l: &Limits, dropped: usize) -> Value {
    let mut lines: Vec<String> = opts
        .iter()
        .take(l.field_lines)
        .map(|o| {
            let current = o
                .choices
                .iter()
                .find(|c| c.value == o.opt.current)
                .map_or_else(|| one_line(&o.opt.current, 60), |c| choice_label(c));
            format!(
                "**{}**: {}",
                escape_md(&option_label(o.opt)),
                escape_md(&current)
            )
        })
        .collect();
    let hidden = dropped + opts.len() - lines.len();
    if hidden > 0 {
        lines.push(format!("*… and {hidden} more settings*"));
    }
    md("fcx_settings", lines.join("\n"))
}

/// The form container (allowed only at the card root): per option a label,
/// a select menu named by the option key, a help line; then the submit
/// button carrying `token`.
fn form(opts: &[FormOption<'_>], token: &str, l: &Limits, hidden: usize) -> Value {
    let mut inner = Vec::new();
    for o in opts {
        inner.push(md_bare(format!("**{}**", escape_md(&option_label(o.opt)))));
        inner.push(select(o, l));
        let help = one_line(&o.opt.help, 200);
        if !help.is_empty() {
            inner.push(note(help));
        }
    }
    if hidden > 0 {
        inner.push(note(format!("*… {hidden} more settings not shown*")));
    }
    inner.push(json!({
        "tag": "button",
        "element_id": "fcx_submit",
        "name": "fcx_apply",
        "text": plain("Apply"),
        "type": "primary",
        "form_action_type": "submit",
        "behaviors": [{"type": "callback", "value": {CALLBACK_VALUE_KEY: token}}],
    }));
    json!({
        "tag": "form",
        "element_id": "fcx_form",
        "name": "fcx_config",
        "elements": inner,
    })
}

fn select(o: &FormOption<'_>, l: &Limits) -> Value {
    let current = o.choices.iter().find(|c| c.value == o.opt.current);
    let mut shown: Vec<&pb::Choice> = o.choices.iter().take(l.choices).copied().collect();
    // The value in force is always offered, so the menu never shows a
    // choice other than the current one as selected.
    if let Some(cur) = current
        && !shown.iter().any(|c| c.value == cur.value)
    {
        shown.truncate(l.choices.saturating_sub(1));
        shown.push(cur);
    }
    let options: Vec<Value> = shown
        .iter()
        .map(|c| json!({"text": plain(&choice_label(c)), "value": c.value}))
        .collect();
    let mut v = json!({
        "tag": "select_static",
        "name": o.opt.key().word(),
        "placeholder": plain(&option_label(o.opt)),
        "options": options,
        "width": "fill",
    });
    if let (Some(cur), Some(obj)) = (current, v.as_object_mut()) {
        obj.insert("initial_option".into(), json!(cur.value));
    }
    v
}

fn button_type(style: &str) -> &'static str {
    match style.trim() {
        "primary" => "primary",
        "danger" => "danger",
        _ => "default",
    }
}

fn button_label(b: &pb::Button) -> String {
    let label = one_line(&b.label, 40);
    if !label.is_empty() {
        return label;
    }
    let value = one_line(&b.value, 40);
    if value.is_empty() {
        "…".to_string()
    } else {
        value
    }
}

fn button(i: usize, s: &Signed<'_>, label: &str, fill: bool) -> Value {
    json!({
        "tag": "button",
        "element_id": format!("fcx_btn_{i}"),
        "text": plain(label),
        "type": button_type(s.button.style().word()),
        "width": if fill { "fill" } else { "default" },
        "behaviors": [{"type": "callback", "value": {CALLBACK_VALUE_KEY: s.token}}],
    })
}

/// Short-labelled buttons share rows of up to three (a column set that
/// wraps on narrow screens); a long label gets a full-width row.
fn button_rows(signed: &[&Signed<'_>]) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    for (i, s) in signed.iter().enumerate() {
        let label = button_label(s.button);
        if utf16_len(&label) > SHORT_LABEL {
            flush_row(&mut row, &mut rows);
            rows.push(button(i, s, &label, true));
            continue;
        }
        row.push(button(i, s, &label, false));
        if row.len() == BUTTONS_PER_ROW {
            flush_row(&mut row, &mut rows);
        }
    }
    flush_row(&mut row, &mut rows);
    rows
}

fn flush_row(row: &mut Vec<Value>, rows: &mut Vec<Value>) {
    match row.len() {
        0 => {}
        1 => rows.append(row),
        _ => {
            let columns: Vec<Value> = row
                .drain(..)
                .map(|b| json!({"tag": "column", "width": "auto", "elements": [b]}))
                .collect();
            rows.push(json!({
                "tag": "column_set",
                "element_id": format!("fcx_row_{}", rows.len()),
                "flex_mode": "flow",
                "horizontal_spacing": "8px",
                "columns": columns,
            }));
        }
    }
}

/// Who the controls answer: they are signed for one person, and a click by
/// anyone else is refused, so say so up front.
fn actor_note(reply: &pb::CommandReply, interactive: bool) -> Option<Value> {
    let name = reply.actor.as_ref().map(|a| one_line(&a.name, 40))?;
    if !interactive || name.is_empty() {
        return None;
    }
    Some(json!({
        "tag": "markdown",
        "element_id": "fcx_note",
        "content": format!("Only {} can use these controls.", escape_md(&name)),
        "text_size": "notation",
    }))
}
