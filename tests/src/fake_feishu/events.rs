//! Builders for the event envelopes the platform pushes (schema 2.0).

use std::sync::Arc;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::card::{CardButton, CardField, CardView};
use super::state::Shared;

/// A user as events identify them.
fn user_ids(open_id: &str) -> Value {
    let tail = open_id.strip_prefix("ou_").unwrap_or(open_id);
    json!({
        "open_id": open_id,
        "union_id": format!("on_{tail}"),
        "user_id": format!("u{}", tail.chars().take(8).collect::<String>()),
    })
}

/// A mention entry (`@_user_N` placeholder in the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub key: String,
    pub open_id: String,
    pub name: String,
}

/// Everything `im.message.receive_v1` can vary; see [`EventBuilder::message`].
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSpec {
    pub chat_id: String,
    /// `p2p` or `group`.
    pub chat_type: String,
    pub sender_open_id: String,
    pub message_type: String,
    /// Serialised into the `content` JSON string.
    pub content: Value,
    pub mentions: Vec<Mention>,
    /// Topic (thread) messages carry `omt_…`.
    pub thread_id: Option<String>,
    /// Quotes/replies: the message replied to.
    pub parent_id: Option<String>,
    pub root_id: Option<String>,
    /// None: a fresh `om_…`.
    pub message_id: Option<String>,
}

/// Builds envelopes stamped with the fake's app id, tenant and verification
/// token. Every call gets a fresh `event_id`.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    shared: Arc<Shared>,
}

impl EventBuilder {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// `{"schema":"2.0","header":{…},"event":event}`.
    pub fn envelope(&self, event_type: &str, event: Value) -> Value {
        let cfg = &self.shared.cfg;
        json!({
            "schema": "2.0",
            "header": {
                "event_id": self.shared.new_id(""),
                "event_type": event_type,
                "create_time": self.shared.now_ms().to_string(),
                "token": cfg.verification_token,
                "app_id": cfg.app_id,
                "tenant_key": cfg.tenant_key,
            },
            "event": event,
        })
    }

    /// A mention of the bot, as `@_user_N`.
    pub fn bot_mention(&self, n: usize) -> Mention {
        Mention {
            key: format!("@_user_{n}"),
            open_id: self.shared.cfg.bot_open_id.clone(),
            name: self.shared.cfg.bot_name.clone(),
        }
    }

    pub fn message(&self, spec: &MessageSpec) -> Value {
        let cfg = &self.shared.cfg;
        let ms = self.shared.now_ms().to_string();
        let mut message = json!({
            "message_id": spec.message_id.clone().unwrap_or_else(|| self.shared.new_id("om_")),
            "create_time": ms,
            "update_time": ms,
            "chat_id": spec.chat_id,
            "chat_type": spec.chat_type,
            "message_type": spec.message_type,
            "content": spec.content.to_string(),
            "user_agent": "Mozilla/5.0 Lark/7.30.0",
        });
        if let Some(obj) = message.as_object_mut() {
            let mut put = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    obj.insert(k.to_owned(), json!(v));
                }
            };
            put(
                "root_id",
                &spec.root_id.clone().or_else(|| spec.parent_id.clone()),
            );
            put("parent_id", &spec.parent_id);
            put("thread_id", &spec.thread_id);
            if !spec.mentions.is_empty() {
                let mentions: Vec<Value> = spec
                    .mentions
                    .iter()
                    .map(|m| {
                        json!({
                            "key": m.key,
                            "id": user_ids(&m.open_id),
                            "name": m.name,
                            "tenant_key": cfg.tenant_key,
                        })
                    })
                    .collect();
                obj.insert("mentions".to_owned(), Value::Array(mentions));
            }
        }
        self.envelope(
            "im.message.receive_v1",
            json!({
                "sender": {
                    "sender_id": user_ids(&spec.sender_open_id),
                    "sender_type": "user",
                    "tenant_key": cfg.tenant_key,
                },
                "message": message,
            }),
        )
    }

    fn text_spec(&self, chat_id: &str, chat_type: &str, sender: &str, text: &str) -> MessageSpec {
        MessageSpec {
            chat_id: chat_id.to_owned(),
            chat_type: chat_type.to_owned(),
            sender_open_id: sender.to_owned(),
            message_type: "text".to_owned(),
            content: json!({ "text": text }),
            mentions: Vec::new(),
            thread_id: None,
            parent_id: None,
            root_id: None,
            message_id: None,
        }
    }

    /// A direct (p2p) text message from `sender`.
    pub fn p2p_text(&self, chat_id: &str, sender: &str, text: &str) -> Value {
        self.message(&self.text_spec(chat_id, "p2p", sender, text))
    }

    /// A group text message; with `mention_bot` the text starts with the
    /// `@_user_1` placeholder and a mentions entry names the bot.
    pub fn group_text(&self, chat_id: &str, sender: &str, text: &str, mention_bot: bool) -> Value {
        self.message(&self.group_spec(chat_id, sender, text, mention_bot))
    }

    fn group_spec(
        &self,
        chat_id: &str,
        sender: &str,
        text: &str,
        mention_bot: bool,
    ) -> MessageSpec {
        let mut spec = self.text_spec(chat_id, "group", sender, text);
        if mention_bot {
            spec.content = json!({ "text": format!("@_user_1 {text}") });
            spec.mentions.push(self.bot_mention(1));
        }
        spec
    }

    /// A group message inside a topic (thread `omt_…`).
    pub fn topic_text(
        &self,
        chat_id: &str,
        thread_id: &str,
        root_id: &str,
        sender: &str,
        text: &str,
        mention_bot: bool,
    ) -> Value {
        let mut spec = self.group_spec(chat_id, sender, text, mention_bot);
        spec.thread_id = Some(thread_id.to_owned());
        spec.root_id = Some(root_id.to_owned());
        spec.parent_id = Some(root_id.to_owned());
        self.message(&spec)
    }

    /// A text message quoting (replying to) `parent_id`.
    pub fn quote_text(
        &self,
        chat_id: &str,
        chat_type: &str,
        sender: &str,
        text: &str,
        parent_id: &str,
    ) -> Value {
        let mut spec = self.text_spec(chat_id, chat_type, sender, text);
        spec.parent_id = Some(parent_id.to_owned());
        self.message(&spec)
    }

    /// A merged-and-forwarded message `message_id` in a private chat (its
    /// children are added to the platform's store separately), with the
    /// placeholder content the platform sends.
    pub fn merge_forward(&self, chat_id: &str, sender: &str, message_id: &str) -> Value {
        let mut spec = self.text_spec(chat_id, "p2p", sender, "");
        spec.message_type = "merge_forward".into();
        spec.content = serde_json::json!({"content": "Merged and Forwarded Message"});
        spec.message_id = Some(message_id.to_owned());
        self.message(&spec)
    }

    /// A received post (not locale-wrapped, as the platform delivers them).
    pub fn post(
        &self,
        chat_id: &str,
        chat_type: &str,
        sender: &str,
        title: &str,
        paragraphs: Value,
    ) -> Value {
        let mut spec = self.text_spec(chat_id, chat_type, sender, "");
        spec.message_type = "post".to_owned();
        spec.content = json!({ "title": title, "content": paragraphs });
        self.message(&spec)
    }

    /// `card.action.trigger` for a button click (or a form submit when
    /// `form_value` is set). The callback token is registered with the fake
    /// (30 min, 2 uses) for `open_message_id`. See [`click`](Self::click)
    /// and [`submit_form`](Self::submit_form) to act on a stored card the
    /// way a user does.
    pub fn card_action(
        &self,
        operator: &str,
        open_message_id: &str,
        open_chat_id: &str,
        value: Value,
        form_value: Option<Value>,
    ) -> Value {
        let mut action = json!({ "value": value, "tag": "button" });
        if let (Some(fv), Some(obj)) = (form_value, action.as_object_mut()) {
            obj.insert("form_value".to_owned(), fv);
        }
        self.action_event(operator, open_message_id, open_chat_id, action)
    }

    /// `card.action.trigger` carrying `action` exactly as given.
    pub fn action_event(
        &self,
        operator: &str,
        open_message_id: &str,
        open_chat_id: &str,
        action: Value,
    ) -> Value {
        let token = self.shared.issue_callback_token(open_message_id);
        let mut operator_ids = user_ids(operator);
        if let Some(o) = operator_ids.as_object_mut() {
            o.insert("tenant_key".to_owned(), json!(self.shared.cfg.tenant_key));
        }
        let mut env = self.envelope(
            "card.action.trigger",
            json!({
                "operator": operator_ids,
                "token": token,
                "action": action,
                "host": "im_message",
                "context": {"open_message_id": open_message_id, "open_chat_id": open_chat_id},
            }),
        );
        // The callback doc shows a microsecond create_time here.
        if let Some(h) = env.get_mut("header").and_then(Value::as_object_mut) {
            h.insert(
                "create_time".to_owned(),
                json!(format!("{}", self.shared.now_ms() * 1000)),
            );
        }
        env
    }

    /// What `operator` clicking the button labelled `label` on message
    /// `message_id` produces: `action.tag = "button"`, `action.value` = the
    /// button's `callback` behavior value. A submit button in a form submits
    /// it with the values as shown ([`submit_form`](Self::submit_form) with
    /// no changes). Errors when the click calls nothing back (a link-only or
    /// reset button, a disabled one) or no single button has that label.
    pub fn click(&self, operator: &str, message_id: &str, label: &str) -> Result<Value> {
        let (chat_id, view) = self.shared.card_view_of(message_id)?;
        let button = one_button(&view, label, |_| true)?;
        if button.disabled {
            bail!("button {label:?} is disabled; a click does nothing");
        }
        match button.form_action.as_deref() {
            Some("submit") if button.form.is_some() => {
                return self.submit_form(operator, message_id, label, &[]);
            }
            Some("reset") if button.form.is_some() => {
                bail!("button {label:?} resets its form on the client; no callback")
            }
            _ => {}
        }
        let Some(value) = &button.value else {
            bail!(
                "button {label:?} has no callback behavior (link only?); a click calls nothing back"
            );
        };
        let mut action = json!({ "value": value, "tag": "button" });
        // The form page: `name` "如果按钮内嵌在表单容器中，将返回该值" — only
        // buttons inside a form report it.
        if let (Some(_), Some(name), Some(obj)) =
            (&button.form, &button.name, action.as_object_mut())
        {
            obj.insert("name".to_owned(), json!(name));
        }
        Ok(self.action_event(operator, message_id, &chat_id, action))
    }

    /// What `operator` submitting a form produces: they set the fields named
    /// in `values` (field `name` → value: a string for input / select_static
    /// (one of its option values) / pickers, an array of option values for
    /// multi_select_static, a bool for checker), leave the rest as shown, and
    /// click the submit button labelled `submit_label`.
    ///
    /// The event: `action.tag = "button"`, `action.name` = the submit
    /// button's name, `action.form_value` keyed by field names with every
    /// filled field, `action.value` = the submit button's callback value
    /// (absent when it has none), `action.timezone` (as the form page's
    /// example). Errors the way the client refuses: an unknown or disabled
    /// field, a value that is not an option, a required field left empty.
    pub fn submit_form(
        &self,
        operator: &str,
        message_id: &str,
        submit_label: &str,
        values: &[(&str, Value)],
    ) -> Result<Value> {
        let (chat_id, view) = self.shared.card_view_of(message_id)?;
        let button = one_button(&view, submit_label, |b| {
            b.form.is_some() && b.form_action.as_deref() == Some("submit")
        })?;
        if button.disabled {
            bail!("submit button {submit_label:?} is disabled");
        }
        let form_name = button.form.clone().unwrap_or_default();
        let Some(form) = view.form(&form_name) else {
            bail!("form {form_name:?} not found");
        };
        let mut form_value = Map::new();
        for f in &form.fields {
            if let (Some(name), Some(v)) = (&f.name, &f.value) {
                form_value.insert(name.clone(), v.clone());
            }
        }
        for (name, v) in values {
            let Some(f) = form
                .fields
                .iter()
                .find(|f| f.name.as_deref() == Some(*name))
            else {
                bail!("form {form_name:?} has no field named {name:?}");
            };
            if f.disabled {
                bail!("field {name:?} is disabled; a user cannot change it");
            }
            check_choice(f, v)?;
            if is_empty(v) {
                form_value.remove(*name);
            } else {
                form_value.insert((*name).to_owned(), v.clone());
            }
        }
        // Guess: unfilled optional fields are left out of form_value (the
        // docs only show filled ones); a gateway must not rely on them.
        for f in &form.fields {
            if let Some(name) = &f.name
                && f.required
                && form_value.get(name).is_none_or(is_empty)
            {
                bail!("required field {name:?} is empty; the client refuses to submit");
            }
        }
        let mut action = json!({
            "tag": "button",
            "timezone": "Asia/Shanghai",
            "form_value": form_value,
        });
        if let Some(obj) = action.as_object_mut() {
            if let Some(name) = &button.name {
                obj.insert("name".to_owned(), json!(name));
            }
            if let Some(v) = &button.value {
                obj.insert("value".to_owned(), v.clone());
            }
        }
        Ok(self.action_event(operator, message_id, &chat_id, action))
    }

    /// `im.chat.member.bot.added_v1`.
    pub fn bot_added(&self, chat_id: &str, operator: &str, chat_name: &str) -> Value {
        self.envelope(
            "im.chat.member.bot.added_v1",
            json!({
                "chat_id": chat_id,
                "operator_id": user_ids(operator),
                "external": false,
                "operator_tenant_key": self.shared.cfg.tenant_key,
                "name": chat_name,
                "i18n_names": {"zh_cn": chat_name, "en_us": chat_name},
            }),
        )
    }

    /// `drive.notice.comment_add_v1` (no comment text, as on the platform).
    pub fn comment_add(
        &self,
        file_token: &str,
        file_type: &str,
        comment_id: &str,
        reply_id: Option<&str>,
        from: &str,
        mentions_bot: bool,
    ) -> Value {
        let mut event = json!({
            "comment_id": comment_id,
            "is_mentioned": mentions_bot,
            "notice_meta": {
                "file_type": file_type,
                "file_token": file_token,
                "from_user_id": user_ids(from),
                "to_user_id": user_ids(&self.shared.cfg.bot_open_id),
                "notice_type": if reply_id.is_some() { "add_reply" } else { "add_comment" },
            },
        });
        if let (Some(r), Some(obj)) = (reply_id, event.as_object_mut()) {
            obj.insert("reply_id".to_owned(), json!(r));
        }
        self.envelope("drive.notice.comment_add_v1", event)
    }

    /// `im.message.reaction.created_v1` by a user.
    pub fn reaction_created(&self, message_id: &str, emoji: &str, user: &str) -> Value {
        self.reaction("im.message.reaction.created_v1", message_id, emoji, user)
    }

    /// `im.message.reaction.deleted_v1` by a user.
    pub fn reaction_deleted(&self, message_id: &str, emoji: &str, user: &str) -> Value {
        self.reaction("im.message.reaction.deleted_v1", message_id, emoji, user)
    }

    fn reaction(&self, event_type: &str, message_id: &str, emoji: &str, user: &str) -> Value {
        self.envelope(
            event_type,
            json!({
                "message_id": message_id,
                "reaction_type": {"emoji_type": emoji},
                "operator_type": "user",
                "user_id": user_ids(user),
                "action_time": self.shared.now_ms().to_string(),
            }),
        )
    }
}

/// The one button labelled `label` that `pick` accepts.
fn one_button<'a>(
    view: &'a CardView,
    label: &str,
    pick: impl Fn(&CardButton) -> bool,
) -> Result<&'a CardButton> {
    let found: Vec<&CardButton> = view
        .buttons
        .iter()
        .filter(|b| b.label == label && pick(b))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no such button {label:?} on the card; buttons: {:?}",
            view.labels()
        ),
        _ => bail!("{} buttons are labelled {label:?}", found.len()),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether a user could give field `f` the value `v` (selects only offer
/// their options).
fn check_choice(f: &CardField, v: &Value) -> Result<()> {
    let name = f.name.as_deref().unwrap_or("");
    let offered = |x: &str| f.options.iter().any(|o| o.value == x);
    match f.tag.as_str() {
        "select_static" => match v {
            Value::Null => Ok(()),
            Value::String(x) if offered(x) => Ok(()),
            _ => bail!(
                "{name:?} offers {:?}, not {v}",
                f.options.iter().map(|o| &o.value).collect::<Vec<_>>()
            ),
        },
        "multi_select_static" => match v {
            Value::Array(items) if items.iter().all(|x| x.as_str().is_some_and(&offered)) => Ok(()),
            _ => bail!(
                "{name:?} takes an array of {:?}, not {v}",
                f.options.iter().map(|o| &o.value).collect::<Vec<_>>()
            ),
        },
        "checker" if !v.is_boolean() => bail!("{name:?} is a checker: true or false"),
        "checker" => Ok(()),
        "multi_select_person" if !v.is_array() => bail!("{name:?} takes an array of open_ids"),
        _ if !(v.is_string() || v.is_null() || v.is_array()) => {
            bail!("{name:?} takes a string")
        }
        _ => Ok(()),
    }
}
