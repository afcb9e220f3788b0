//! CardKit v1 card entities and the delayed card update.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Answer, FIELD_VALIDATION, Req, not_found};
use crate::fake_feishu::state::{Bound, CardState, Shared, find_element_mut, lock};
use crate::fake_feishu::{CARD_LIMIT_BYTES, CARD_OPS_PER_SEC};

const PARAM: i64 = 10002;
const UNKNOWN_CARD: i64 = 200740;
const STREAMING_TIMEOUT: i64 = 200850;
const TOO_LARGE: i64 = 200860;
const UPDATE_MULTI_FALSE: i64 = 300302;
const STREAMING_CLOSED: i64 = 300309;
const ONLY_TEXT: i64 = 300310;
const SEQUENCE: i64 = 300317;
/// Streaming mode closes itself this long after it was last enabled.
const STREAMING_WINDOW: Duration = Duration::from_secs(600);
const CALLBACK_TOKEN_LIFE: Duration = Duration::from_secs(30 * 60);

pub(super) fn route(shared: &Arc<Shared>, r: &Req, m: &str, rest: &[&str]) -> Answer {
    match (m, rest) {
        ("POST", ["cards"]) => create(shared, r),
        ("PUT", ["cards", id]) => card_op(shared, r, id, "update", update),
        ("PATCH", ["cards", id, "settings"]) => card_op(shared, r, id, "settings", settings),
        ("PUT", ["cards", id, "elements", eid, "content"]) => {
            let eid = (*eid).to_owned();
            card_op(shared, r, id, "content", move |card, r| {
                stream_content(card, r, &eid)
            })
        }
        _ => not_found(),
    }
}

/// Parses and checks a `card_json` document: schema 2.0, ≤ 30 KB,
/// update_multi not false.
fn parse_card(kind: Option<&Value>, data: Option<&Value>) -> Result<Value, Answer> {
    if kind.and_then(Value::as_str) != Some("card_json") {
        return Err(Answer::err(PARAM, "type must be card_json"));
    }
    let Some(data) = data.and_then(Value::as_str) else {
        return Err(Answer::err(PARAM, "data must be a card JSON string"));
    };
    if data.len() > CARD_LIMIT_BYTES {
        return Err(Answer::err(
            TOO_LARGE,
            "card content exceeds the 30KB limit",
        ));
    }
    let Ok(Value::Object(card)) = serde_json::from_str::<Value>(data) else {
        return Err(Answer::err(PARAM, "data is not a JSON object"));
    };
    // Guess: a non-2.0 card is a parameter error (10002).
    if card.get("schema").and_then(Value::as_str) != Some("2.0") {
        return Err(Answer::err(PARAM, "card entities require schema 2.0"));
    }
    if card.pointer_bool("config", "update_multi") == Some(false) {
        return Err(Answer::err(
            UPDATE_MULTI_FALSE,
            "update_multi must be true for card entities",
        ));
    }
    // The reference's CardKit error table has no code for a structurally
    // invalid card (300307 is an empty DSL); 10002 "bad param" is what the
    // fake answers every malformed card_json with.
    if let Err(why) = crate::fake_feishu::card::validate(&card) {
        return Err(Answer::err(PARAM, why));
    }
    Ok(Value::Object(card))
}

trait PointerBool {
    fn pointer_bool(&self, a: &str, b: &str) -> Option<bool>;
}

impl PointerBool for Map<String, Value> {
    fn pointer_bool(&self, a: &str, b: &str) -> Option<bool> {
        self.get(a).and_then(|v| v.get(b)).and_then(Value::as_bool)
    }
}

/// Streaming mode is on and has not yet closed itself (10 min after it was
/// last enabled).
fn streaming_active(card: &CardState) -> bool {
    card.streaming_mode
        && card
            .streaming_since
            .is_none_or(|t| t.elapsed() < STREAMING_WINDOW)
}

fn streaming_of(card: &Value) -> bool {
    card.pointer("/config/streaming_mode")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn create(shared: &Shared, r: &Req) -> Answer {
    // Creating is never "in streaming mode": it always counts.
    if let Err(a) = super::app_limit(shared, "cardkit.create") {
        return a;
    }
    let card = match parse_card(r.body.get("type"), r.body.get("data")) {
        Ok(c) => c,
        Err(a) => return a,
    };
    let card_id = format!("{}", 7_355_000_000_000_000_000u64 + shared.next());
    let streaming = streaming_of(&card);
    lock(&shared.inner).cards.insert(
        card_id.clone(),
        CardState {
            card_id: card_id.clone(),
            json: card,
            sequence: 0,
            streaming_mode: streaming,
            message_id: None,
            ops: vec!["create".to_owned()],
            streaming_since: streaming.then(Instant::now),
        },
    );
    Answer::ok(json!({"card_id": card_id}))
}

/// The checks every sequenced card operation shares: entity exists, per-card
/// rate, strictly increasing `sequence`; `apply` runs only when they pass and
/// the sequence is consumed only when it succeeds.
fn card_op(
    shared: &Shared,
    r: &Req,
    card_id: &str,
    name: &str,
    apply: impl FnOnce(&mut CardState, &Req) -> Result<(), Answer>,
) -> Answer {
    let mut inner = lock(&shared.inner);
    // "In streaming mode the card/element APIs do not trigger the API QPS
    // limit" (reference §3.7): only calls on a card whose streaming mode is
    // on (and not yet timed out) skip the per-app windows; they still count
    // against the card's own 10 ops/s below. Calls on an unknown card are
    // not streaming, so they count.
    let streaming = inner.cards.get(card_id).is_some_and(streaming_active);
    if !streaming && let Err(e) = inner.admit_all(&super::app_bounds(&format!("cardkit.{name}"))) {
        return Answer::over_limit(&e);
    }
    if !inner.cards.contains_key(card_id) {
        return Answer::err(UNKNOWN_CARD, "card entity not found");
    }
    // Guess: the per-card limit answers like the platform-wide one.
    if let Err(e) = inner.admit_all(&[Bound::per_second(
        format!("card:{card_id}"),
        CARD_OPS_PER_SEC,
    )]) {
        return Answer::over_limit(&e);
    }
    let Some(seq) = r
        .body
        .get("sequence")
        .and_then(Value::as_i64)
        .filter(|s| (1..=i64::from(i32::MAX)).contains(s))
    else {
        return Answer::err(
            FIELD_VALIDATION,
            "sequence must be an integer in 1..2147483647",
        );
    };
    if let Some(u) = r.body.get("uuid")
        && !u.as_str().is_some_and(|u| (1..=64).contains(&u.len()))
    {
        return Answer::err(FIELD_VALIDATION, "uuid must be 1-64 characters");
    }
    let Some(card) = inner.cards.get_mut(card_id) else {
        return Answer::err(UNKNOWN_CARD, "card entity not found");
    };
    if seq <= card.sequence {
        return Answer::err(
            SEQUENCE,
            format!(
                "sequence {seq} is not greater than the card's last sequence {}",
                card.sequence
            ),
        );
    }
    let before = card.json.clone();
    if let Err(a) = apply(card, r) {
        card.json = before;
        return a;
    }
    if card.json.to_string().len() > CARD_LIMIT_BYTES {
        card.json = before;
        return Answer::err(TOO_LARGE, "card content exceeds the 30KB limit");
    }
    card.sequence = seq;
    card.ops.push(name.to_owned());
    Answer::ok(json!({}))
}

fn update(card: &mut CardState, r: &Req) -> Result<(), Answer> {
    let new = parse_card(r.body.pointer("/card/type"), r.body.pointer("/card/data"))?;
    let streaming = streaming_of(&new);
    if streaming && !card.streaming_mode {
        card.streaming_since = Some(Instant::now());
    }
    card.streaming_mode = streaming;
    card.json = new;
    Ok(())
}

fn settings(card: &mut CardState, r: &Req) -> Result<(), Answer> {
    let Some(raw) = r.body.get("settings").and_then(Value::as_str) else {
        return Err(Answer::err(PARAM, "settings must be a JSON string"));
    };
    let Ok(Value::Object(settings)) = serde_json::from_str::<Value>(raw) else {
        return Err(Answer::err(PARAM, "settings is not a JSON object"));
    };
    if let Some(k) = settings
        .keys()
        .find(|k| *k != "config" && *k != "card_link")
    {
        return Err(Answer::err(
            PARAM,
            format!("unknown settings property {k:?}"),
        ));
    }
    if settings.pointer_bool("config", "update_multi") == Some(false) {
        return Err(Answer::err(UPDATE_MULTI_FALSE, "update_multi must be true"));
    }
    let Some(obj) = card.json.as_object_mut() else {
        return Err(Answer::err(PARAM, "card is not an object"));
    };
    if let Some(Value::Object(cfg)) = settings.get("config") {
        let target = obj
            .entry("config")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(t) = target {
            for (k, v) in cfg {
                t.insert(k.clone(), v.clone());
            }
        }
        if let Some(on) = cfg.get("streaming_mode").and_then(Value::as_bool) {
            if on {
                card.streaming_since = Some(Instant::now());
            }
            card.streaming_mode = on;
        }
    }
    if let Some(link) = settings.get("card_link") {
        obj.insert("card_link".to_owned(), link.clone());
    }
    Ok(())
}

fn stream_content(card: &mut CardState, r: &Req, element_id: &str) -> Result<(), Answer> {
    let Some(content) = r.body.get("content").and_then(Value::as_str) else {
        return Err(Answer::err(PARAM, "content is required"));
    };
    let chars = content.chars().count();
    if !(1..=100_000).contains(&chars) {
        return Err(Answer::err(PARAM, "content must be 1-100000 characters"));
    }
    if card.streaming_mode
        && card
            .streaming_since
            .is_some_and(|t| t.elapsed() >= STREAMING_WINDOW)
    {
        card.streaming_mode = false;
        if let Some(cfg) = card.json.get_mut("config").and_then(Value::as_object_mut) {
            cfg.insert("streaming_mode".to_owned(), json!(false));
        }
        return Err(Answer::err(STREAMING_TIMEOUT, "streaming timeout"));
    }
    if !card.streaming_mode {
        return Err(Answer::err(STREAMING_CLOSED, "streaming mode is closed"));
    }
    // Guess: an unknown element id is a parameter error.
    let Some(el) = find_element_mut(&mut card.json, element_id) else {
        return Err(Answer::err(
            PARAM,
            format!("element {element_id:?} not found"),
        ));
    };
    let tag = el.get("tag").and_then(Value::as_str).unwrap_or("");
    if tag != "markdown" && tag != "plain_text" {
        return Err(Answer::err(
            ONLY_TEXT,
            "only markdown and plain_text elements can be streamed",
        ));
    }
    if let Some(obj) = el.as_object_mut() {
        obj.insert("content".to_owned(), json!(content));
    }
    Ok(())
}

/// `POST /open-apis/interactive/v1/card/update` with a callback token.
pub(super) fn delayed_update(shared: &Shared, r: &Req) -> Answer {
    let Some(token) = r.body.get("token").and_then(Value::as_str) else {
        return Answer::err(FIELD_VALIDATION, "token is required");
    };
    let Some(Value::Object(card)) = r.body.get("card") else {
        return Answer::err(FIELD_VALIDATION, "card must be a card JSON object");
    };
    let is_v2 = card.get("schema").and_then(Value::as_str) == Some("2.0");
    if !is_v2 && !card.contains_key("open_ids") {
        return Answer::err(300090, "card.open_ids is required for card 1.0");
    }
    if let Err(why) = crate::fake_feishu::card::validate(card) {
        return Answer::err(PARAM, why);
    }
    let content = Value::Object(card.clone()).to_string();
    if content.len() > CARD_LIMIT_BYTES {
        return Answer::err(TOO_LARGE, "card content exceeds the 30KB limit");
    }
    let mut inner = lock(&shared.inner);
    // Guess: expired or used-up tokens answer a parameter error.
    let message_id = match inner.callback_tokens.get_mut(token) {
        Some((mid, issued, uses)) if issued.elapsed() < CALLBACK_TOKEN_LIFE && *uses < 2 => {
            *uses += 1;
            mid.clone()
        }
        _ => return Answer::err(PARAM, "token is invalid, expired or used up"),
    };
    if let Some(m) = inner
        .messages
        .iter_mut()
        .find(|m| m.message_id == message_id)
    {
        m.content = content;
        m.card_id = None;
        m.updated = true;
        m.update_time = shared.now_ms().to_string();
    }
    Answer::ok(json!({}))
}
