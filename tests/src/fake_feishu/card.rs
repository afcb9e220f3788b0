//! Card JSON: the structural rules the platform enforces when a card is sent
//! (IM interactive content, message PATCH, delayed update) or stored as a
//! CardKit entity, and the card as a user sees it (buttons, form fields,
//! their current values) for tests that click and submit.
//!
//! Sources: reference §4 (Card JSON 2.0: button, form, collapsible_panel,
//! element_id, sizes) and the official 2.0 component pages it summarises
//! (form container: "只可放在卡片根节点下", "不支持内嵌表格（table）和表单容器",
//! "必须至少有一个带有提交属性的按钮", field `name` "必填且需在卡片全局内唯一";
//! select_static options `text{tag:plain_text,content}` + `value`).

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Containers may nest at most this deep (reference §4 collapsible_panel:
/// "containers nest ≤5 levels"; form page: "容器类组件最多支持嵌套五层组件").
const MAX_CONTAINER_DEPTH: usize = 5;
/// Components per card (reference §4: "≤ 200 elements").
const MAX_ELEMENTS: usize = 200;
/// `element_id`: letters, digits, underscore, starts with a letter, ≤ 20.
const ELEMENT_ID_MAX: usize = 20;

/// Components a user fills in or operates; inside a form each needs a
/// `name` (the key of its value in `action.form_value`).
const INTERACTIVE: [&str; 13] = [
    "button",
    "input",
    "select_static",
    "multi_select_static",
    "select_person",
    "multi_select_person",
    "date_picker",
    "picker_time",
    "picker_datetime",
    "select_img",
    "checker",
    "overflow",
    "textarea",
];

/// Raw card JSON: 2.0 needs `body.elements`, rejects unknown top-level
/// properties and breaks the component rules below; 1.0 needs elements.
/// The caller answers a failure with its API's malformed-card code.
pub(crate) fn validate(obj: &Map<String, Value>) -> Result<(), String> {
    if obj.get("schema").and_then(Value::as_str) == Some("2.0") {
        const KNOWN: [&str; 5] = ["schema", "config", "card_link", "header", "body"];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("unknown property {k:?} in a schema 2.0 card"));
        }
        let Some(elements) = obj
            .get("body")
            .and_then(|b| b.get("elements"))
            .and_then(Value::as_array)
        else {
            return Err("schema 2.0 card needs body.elements".to_owned());
        };
        let mut walk = Walk::default();
        for (i, el) in elements.iter().enumerate() {
            walk.element(el, &format!("body.elements[{i}]"), &Place::root())?;
        }
        return Ok(());
    }
    // Guess: 1.0 cards (no `element_id`, forms rarely used) keep the loose
    // check; fcx only sends 2.0.
    if obj.contains_key("elements")
        || obj.contains_key("i18n_elements")
        || obj.contains_key("header")
    {
        Ok(())
    } else {
        Err("card JSON has no elements".to_owned())
    }
}

/// Where a component sits.
#[derive(Debug, Clone)]
struct Place {
    /// Directly in `body.elements`.
    at_root: bool,
    /// Containers around it.
    depth: usize,
    /// The enclosing form's name.
    form: Option<String>,
}

impl Place {
    fn root() -> Self {
        Self {
            at_root: true,
            depth: 0,
            form: None,
        }
    }

    fn inside(&self, form: Option<String>) -> Self {
        Self {
            at_root: false,
            depth: self.depth + 1,
            form: form.or_else(|| self.form.clone()),
        }
    }
}

#[derive(Debug, Default)]
struct Walk {
    element_ids: HashSet<String>,
    /// Form names and the names of components inside forms: unique in the
    /// whole card (form page: "在同一张卡片内，该字段的值全局唯一").
    names: HashSet<String>,
    count: usize,
    /// Submit buttons seen in the form being walked.
    submits: usize,
}

fn str_of<'a>(el: &'a Value, key: &str) -> Option<&'a str> {
    el.get(key).and_then(Value::as_str)
}

fn element_id_ok(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= ELEMENT_ID_MAX
}

/// A `{tag: plain_text, content: string}` text object (or `lark_md` when
/// `md_ok`).
fn text_ok(v: Option<&Value>, md_ok: bool) -> bool {
    let Some(v) = v else { return false };
    let tag_ok = match str_of(v, "tag") {
        Some("plain_text") => true,
        Some("lark_md") => md_ok,
        _ => false,
    };
    tag_ok && v.get("content").is_some_and(Value::is_string)
}

impl Walk {
    fn element(&mut self, el: &Value, at: &str, place: &Place) -> Result<(), String> {
        let Some(tag) = str_of(el, "tag") else {
            return Err(format!("{at}: a component needs a string \"tag\""));
        };
        self.count += 1;
        if self.count > MAX_ELEMENTS {
            return Err(format!("a card holds at most {MAX_ELEMENTS} components"));
        }
        if let Some(id) = el.get("element_id") {
            let id = id.as_str().unwrap_or("");
            if !element_id_ok(id) {
                return Err(format!(
                    "{at}: element_id {id:?} must be letters, digits and underscores, start with a letter and have at most {ELEMENT_ID_MAX} characters"
                ));
            }
            if !self.element_ids.insert(id.to_owned()) {
                return Err(format!("{at}: element_id {id:?} is not unique in the card"));
            }
        }
        if place.form.is_some() && INTERACTIVE.contains(&tag) {
            let name = str_of(el, "name").filter(|n| !n.is_empty());
            let Some(name) = name else {
                return Err(format!(
                    "{at}: {tag} inside a form needs a \"name\" (its key in form_value)"
                ));
            };
            if !self.names.insert(name.to_owned()) {
                return Err(format!("{at}: name {name:?} is not unique in the card"));
            }
        }
        match tag {
            "form" => self.form(el, at, place),
            "table" if place.form.is_some() => Err(format!("{at}: a form cannot contain a table")),
            "button" => {
                if !text_ok(el.get("text"), true) {
                    return Err(format!(
                        "{at}: a button needs text {{\"tag\":\"plain_text\",\"content\":…}}"
                    ));
                }
                if place.form.is_some() && str_of(el, "form_action_type") == Some("submit") {
                    self.submits += 1;
                }
                Ok(())
            }
            // The multi-select page: "仅支持内嵌在表单容器中使用".
            "multi_select_static" if place.form.is_none() => Err(format!(
                "{at}: multi_select_static can only be used inside a form"
            )),
            "select_static" | "multi_select_static" => options_ok(el, at, tag),
            "column_set" => {
                let inner = self.enter(at, place, None)?;
                let columns = match el.get("columns") {
                    None => return Ok(()),
                    Some(Value::Array(c)) => c,
                    Some(_) => return Err(format!("{at}: columns must be an array")),
                };
                for (i, col) in columns.iter().enumerate() {
                    let col_at = format!("{at}.columns[{i}]");
                    if str_of(col, "tag") != Some("column") {
                        return Err(format!("{col_at}: a column_set holds only columns"));
                    }
                    // A column is part of its column_set, not a level of
                    // its own. Guess: the docs do not say how columns count.
                    self.children(col, &col_at, &inner)?;
                }
                Ok(())
            }
            "collapsible_panel" | "interactive_container" | "column" => {
                let inner = self.enter(at, place, None)?;
                self.children(el, at, &inner)
            }
            _ => Ok(()),
        }
    }

    /// Steps into a container, refusing a sixth level.
    fn enter(&self, at: &str, place: &Place, form: Option<String>) -> Result<Place, String> {
        let inner = place.inside(form);
        if inner.depth > MAX_CONTAINER_DEPTH {
            return Err(format!(
                "{at}: containers nest at most {MAX_CONTAINER_DEPTH} levels"
            ));
        }
        Ok(inner)
    }

    fn children(&mut self, el: &Value, at: &str, inner: &Place) -> Result<(), String> {
        match el.get("elements") {
            None => Ok(()),
            Some(Value::Array(items)) => {
                for (i, child) in items.iter().enumerate() {
                    self.element(child, &format!("{at}.elements[{i}]"), inner)?;
                }
                Ok(())
            }
            Some(_) => Err(format!("{at}: elements must be an array")),
        }
    }

    fn form(&mut self, el: &Value, at: &str, place: &Place) -> Result<(), String> {
        if place.form.is_some() {
            return Err(format!("{at}: a form cannot contain another form"));
        }
        if !place.at_root {
            return Err(format!(
                "{at}: a form can only sit directly in body.elements, not inside another component"
            ));
        }
        let Some(name) = str_of(el, "name").filter(|n| !n.is_empty()) else {
            return Err(format!("{at}: a form needs a \"name\""));
        };
        if !self.names.insert(name.to_owned()) {
            return Err(format!("{at}: name {name:?} is not unique in the card"));
        }
        let inner = self.enter(at, place, Some(name.to_owned()))?;
        let outer_submits = std::mem::take(&mut self.submits);
        self.children(el, at, &inner)?;
        let submits = std::mem::replace(&mut self.submits, outer_submits);
        if submits == 0 {
            return Err(format!(
                "{at}: form {name:?} needs a button with form_action_type \"submit\""
            ));
        }
        Ok(())
    }
}

fn options_ok(el: &Value, at: &str, tag: &str) -> Result<(), String> {
    let Some(options) = el.get("options").and_then(Value::as_array) else {
        return Err(format!("{at}: {tag} needs an options array"));
    };
    for (i, o) in options.iter().enumerate() {
        if !text_ok(o.get("text"), false) {
            return Err(format!(
                "{at}.options[{i}]: an option needs text {{\"tag\":\"plain_text\",\"content\":…}}"
            ));
        }
        if !o.get("value").is_some_and(Value::is_string) {
            return Err(format!("{at}.options[{i}]: an option needs a string value"));
        }
    }
    Ok(())
}

// ---- the card as a user sees it ------------------------------------------

/// A select option as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOption {
    /// `text.content`.
    pub label: String,
    pub value: String,
}

/// A button as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct CardButton {
    /// `text.content`.
    pub label: String,
    pub name: Option<String>,
    pub element_id: Option<String>,
    /// The `callback` behavior's value (or a 1.0 top-level `value`); `None`
    /// when clicking calls nothing back (a link, a reset).
    pub value: Option<Value>,
    /// The `open_url` behavior's `default_url` (or a 1.0 `url`).
    pub url: Option<String>,
    /// The form it submits or resets, if it sits in one.
    pub form: Option<String>,
    /// `form_action_type`: `submit` or `reset`.
    pub form_action: Option<String>,
    pub disabled: bool,
}

/// A component that holds a value (input, selects, pickers, checker).
#[derive(Debug, Clone, PartialEq)]
pub struct CardField {
    pub tag: String,
    pub name: Option<String>,
    pub element_id: Option<String>,
    /// The form it belongs to, if any.
    pub form: Option<String>,
    /// `label.content` (inputs) or `text.content` (checkers).
    pub label: Option<String>,
    pub placeholder: Option<String>,
    /// Choices of a select.
    pub options: Vec<CardOption>,
    /// The value shown now: `default_value`, the initial option's value,
    /// `initial_options`, `checked`, a picker's initial date/time; `None`
    /// when empty.
    pub value: Option<Value>,
    pub required: bool,
    pub disabled: bool,
}

/// A form with everything in it.
#[derive(Debug, Clone, PartialEq)]
pub struct CardForm {
    pub name: String,
    pub fields: Vec<CardField>,
    pub buttons: Vec<CardButton>,
}

/// What a user can see and operate on a card, in document order
/// (collapsed panels included: a user can expand them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardView {
    /// `header.title.content`.
    pub title: Option<String>,
    /// Every button, in forms or not.
    pub buttons: Vec<CardButton>,
    /// Every value-holding component, in forms or not.
    pub fields: Vec<CardField>,
    pub forms: Vec<CardForm>,
}

impl CardView {
    /// Reads a card JSON (2.0 `body.elements`, or 1.0 `elements` /
    /// `action.actions`).
    pub fn from_json(card: &Value) -> Self {
        let mut view = CardView {
            title: card
                .pointer("/header/title/content")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ..CardView::default()
        };
        let root = card
            .pointer("/body/elements")
            .or_else(|| card.get("elements"));
        if let Some(Value::Array(items)) = root {
            for el in items {
                view.collect(el, None);
            }
        }
        view
    }

    /// Buttons whose label is `label`.
    pub fn buttons_labelled(&self, label: &str) -> Vec<&CardButton> {
        self.buttons.iter().filter(|b| b.label == label).collect()
    }

    /// The one button labelled `label`, if exactly one is.
    pub fn button(&self, label: &str) -> Option<&CardButton> {
        match self.buttons_labelled(label).as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&CardField> {
        self.fields.iter().find(|f| f.name.as_deref() == Some(name))
    }

    pub fn form(&self, name: &str) -> Option<&CardForm> {
        self.forms.iter().find(|f| f.name == name)
    }

    /// Every button label, in order (for assertion messages).
    pub fn labels(&self) -> Vec<String> {
        self.buttons.iter().map(|b| b.label.clone()).collect()
    }

    fn collect(&mut self, el: &Value, form: Option<&str>) {
        let tag = str_of(el, "tag").unwrap_or("");
        match tag {
            "form" => {
                let name = str_of(el, "name").unwrap_or("").to_owned();
                self.forms.push(CardForm {
                    name: name.clone(),
                    fields: Vec::new(),
                    buttons: Vec::new(),
                });
                self.children(el, Some(&name));
            }
            "button" => {
                let b = button(el, form);
                if let Some(f) = self.form_mut(form) {
                    f.buttons.push(b.clone());
                }
                self.buttons.push(b);
            }
            "column_set" => {
                for col in el
                    .get("columns")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.children(col, form);
                }
            }
            // 1.0 action blocks hold their buttons in `actions`.
            "action" => {
                for a in el
                    .get("actions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.collect(a, form);
                }
            }
            t if INTERACTIVE.contains(&t) && t != "overflow" => {
                let f = field(el, form);
                if let Some(fm) = self.form_mut(form) {
                    fm.fields.push(f.clone());
                }
                self.fields.push(f);
            }
            _ => self.children(el, form),
        }
    }

    fn children(&mut self, el: &Value, form: Option<&str>) {
        for child in el
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.collect(child, form);
        }
    }

    fn form_mut(&mut self, form: Option<&str>) -> Option<&mut CardForm> {
        let form = form?;
        self.forms.iter_mut().rev().find(|f| f.name == form)
    }
}

fn owned(el: &Value, key: &str) -> Option<String> {
    str_of(el, key).map(str::to_owned)
}

fn content_of(el: &Value, key: &str) -> Option<String> {
    el.get(key)
        .and_then(|t| t.get("content"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn button(el: &Value, form: Option<&str>) -> CardButton {
    let behaviors = el
        .get("behaviors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let of_type = |t: &str| behaviors.iter().find(|b| str_of(b, "type") == Some(t));
    let value = of_type("callback")
        .map(|b| b.get("value").cloned().unwrap_or(Value::Null))
        .or_else(|| el.get("value").cloned());
    let url = of_type("open_url")
        .and_then(|b| owned(b, "default_url"))
        .or_else(|| owned(el, "url"));
    CardButton {
        label: content_of(el, "text").unwrap_or_default(),
        name: owned(el, "name"),
        element_id: owned(el, "element_id"),
        value,
        url,
        form: form.map(str::to_owned),
        form_action: owned(el, "form_action_type"),
        disabled: el.get("disabled").and_then(Value::as_bool).unwrap_or(false),
    }
}

fn field(el: &Value, form: Option<&str>) -> CardField {
    let tag = str_of(el, "tag").unwrap_or("").to_owned();
    let options: Vec<CardOption> = el
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| {
            Some(CardOption {
                label: content_of(o, "text").unwrap_or_default(),
                value: owned(o, "value")?,
            })
        })
        .collect();
    let non_empty = |v: Option<&Value>| {
        v.filter(|v| !matches!(v, Value::Null) && v.as_str() != Some(""))
            .cloned()
    };
    let value = match tag.as_str() {
        "input" | "textarea" => non_empty(el.get("default_value")),
        "select_static" | "select_person" => non_empty(el.get("initial_option")).or_else(|| {
            // `initial_index` is 1-based; 0 shows no option.
            let i = el.get("initial_index").and_then(Value::as_u64)?;
            let i = usize::try_from(i).ok()?.checked_sub(1)?;
            options.get(i).map(|o| Value::String(o.value.clone()))
        }),
        "multi_select_static" | "multi_select_person" => el
            .get("selected_values")
            .or_else(|| el.get("initial_options"))
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            .cloned(),
        "checker" => Some(Value::Bool(
            el.get("checked").and_then(Value::as_bool).unwrap_or(false),
        )),
        "date_picker" => non_empty(el.get("initial_date")),
        "picker_time" => non_empty(el.get("initial_time")),
        "picker_datetime" => non_empty(el.get("initial_datetime")),
        _ => None,
    };
    let label = content_of(el, "label").or_else(|| content_of(el, "text"));
    // The multi-select page documents `required` defaulting to true.
    let required = el
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(tag == "multi_select_static");
    CardField {
        tag,
        name: owned(el, "name"),
        element_id: owned(el, "element_id"),
        form: form.map(str::to_owned),
        label,
        placeholder: content_of(el, "placeholder"),
        options,
        value,
        required,
        disabled: el.get("disabled").and_then(Value::as_bool).unwrap_or(false),
    }
}
