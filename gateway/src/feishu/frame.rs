//! The long-connection frame (`pbbp2.Frame`, feishu.md §1.4–§1.7): header
//! helpers, ping and ACK construction, control-frame parsing and fragment
//! reassembly.
//!
//! Everything here is pure (no I/O, no clock reads: callers pass `now`), and
//! nothing panics on bytes from the wire: decoding garbage yields a
//! [`FrameError`] that the caller logs and skips.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use fcx_proto::pbbp2::{Frame, Header};
use prost::Message as _;
use serde::Deserialize;
use tokio::time::Instant;

/// Frame `method` of ping/pong frames.
pub(crate) const METHOD_CONTROL: i32 = 0;
/// Frame `method` of event/card frames.
pub(crate) const METHOD_DATA: i32 = 1;

/// Header keys (feishu.md §1.4).
pub(crate) mod keys {
    pub(crate) const TYPE: &str = "type";
    pub(crate) const MESSAGE_ID: &str = "message_id";
    pub(crate) const SUM: &str = "sum";
    pub(crate) const SEQ: &str = "seq";
    pub(crate) const TRACE_ID: &str = "trace_id";
    pub(crate) const BIZ_RT: &str = "biz_rt";
}

/// Values of the `type` header.
pub(crate) mod types {
    pub(crate) const PING: &str = "ping";
    pub(crate) const PONG: &str = "pong";
    pub(crate) const EVENT: &str = "event";
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("frame has no `{0}` header")]
    MissingHeader(&'static str),
    #[error("frame header `{key}` has a bad value {value:?}")]
    BadHeader { key: &'static str, value: String },
    #[error("fragment of {message_id}: {reason}")]
    Fragment { message_id: String, reason: String },
    #[error("bad control payload: {0}")]
    ControlPayload(String),
}

/// Decodes one binary WebSocket message. Never panics.
pub(crate) fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    Ok(Frame::decode(bytes)?)
}

/// Encodes a frame (fields 1–4 are `required`, so always present).
pub(crate) fn encode(frame: &Frame) -> Vec<u8> {
    frame.encode_to_vec()
}

/// The first header named `key`.
pub(crate) fn header<'a>(frame: &'a Frame, key: &str) -> Option<&'a str> {
    frame
        .headers
        .iter()
        .find(|h| h.key == key)
        .map(|h| h.value.as_str())
}

/// Sets `key` to `value`, replacing an existing header of that name.
pub(crate) fn set_header(frame: &mut Frame, key: &str, value: impl Into<String>) {
    let value = value.into();
    match frame.headers.iter_mut().find(|h| h.key == key) {
        Some(h) => h.value = value,
        None => frame.headers.push(Header {
            key: key.to_string(),
            value,
        }),
    }
}

/// The client's ping: method 0, SeqID 0, LogID 0, `type=ping`, no payload
/// (feishu.md §1.5).
pub(crate) fn ping(service: i32) -> Frame {
    Frame {
        seq_id: 0,
        log_id: 0,
        service,
        method: METHOD_CONTROL,
        headers: vec![Header {
            key: keys::TYPE.to_string(),
            value: types::PING.to_string(),
        }],
        ..Default::default()
    }
}

/// What the event handler decided about one delivered message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AckReply {
    /// ACK with `{"code":200}`.
    Ok,
    /// ACK with `{"code":200,"data":"<base64 of the JSON>"}`: how a
    /// `card.action.trigger` answer (toast / card) is returned (§1.8).
    OkWithData(serde_json::Value),
    /// ACK with `{"code":500}`: the handler failed. Part of the ACK
    /// protocol; no handler of fcx fails this way yet.
    #[cfg_attr(not(test), allow(dead_code))]
    Error,
    /// Send nothing: the platform redelivers (at 15 s, 5 min, 1 h, 6 h).
    NoAck,
}

/// The ACK payload for `reply`; `None` for [`AckReply::NoAck`].
pub(crate) fn ack_payload(reply: &AckReply) -> Option<Vec<u8>> {
    let v = match reply {
        AckReply::Ok => serde_json::json!({ "code": 200 }),
        AckReply::OkWithData(data) => {
            let json = serde_json::to_vec(data).unwrap_or_else(|_| b"{}".to_vec());
            let b64 = base64::engine::general_purpose::STANDARD.encode(json);
            serde_json::json!({ "code": 200, "data": b64 })
        }
        AckReply::Error => serde_json::json!({ "code": 500 }),
        AckReply::NoAck => return None,
    };
    Some(v.to_string().into_bytes())
}

/// The ACK for `request`: the same SeqID/LogID/service/method and every
/// received header, plus `biz_rt` (handler time in ms), with the payload
/// replaced (§1.7). `None` for [`AckReply::NoAck`].
pub(crate) fn ack(request: &Frame, reply: &AckReply, biz_rt_ms: u64) -> Option<Frame> {
    let payload = ack_payload(reply)?;
    let mut f = Frame {
        seq_id: request.seq_id,
        log_id: request.log_id,
        service: request.service,
        method: request.method,
        headers: request.headers.clone(),
        payload_encoding: None,
        payload_type: None,
        payload: Some(payload),
        log_id_new: request.log_id_new.clone(),
    };
    set_header(&mut f, keys::BIZ_RT, biz_rt_ms.to_string());
    Some(f)
}

/// Server-provided connection settings, all in **seconds** (§1.2, §1.5).
/// Every field is optional so a partial pong payload only updates what it
/// carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ClientConfig {
    /// Negative = unlimited.
    pub(crate) reconnect_count: Option<i64>,
    pub(crate) reconnect_interval: Option<i64>,
    pub(crate) reconnect_nonce: Option<i64>,
    pub(crate) ping_interval: Option<i64>,
}

impl ClientConfig {
    /// The SDK defaults used until the server says otherwise (§1.2).
    pub(crate) const SDK_DEFAULT: ClientConfig = ClientConfig {
        reconnect_count: Some(-1),
        reconnect_interval: Some(120),
        reconnect_nonce: Some(30),
        ping_interval: Some(120),
    };

    /// Overlays the fields `other` carries.
    pub(crate) fn merge(&mut self, other: &ClientConfig) {
        if other.reconnect_count.is_some() {
            self.reconnect_count = other.reconnect_count;
        }
        if other.reconnect_interval.is_some() {
            self.reconnect_interval = other.reconnect_interval;
        }
        if other.reconnect_nonce.is_some() {
            self.reconnect_nonce = other.reconnect_nonce;
        }
        if other.ping_interval.is_some() {
            self.ping_interval = other.ping_interval;
        }
    }

    fn secs(v: Option<i64>) -> Option<Duration> {
        v.filter(|s| *s >= 0)
            .map(|s| Duration::from_secs(s.unsigned_abs()))
    }
    pub(crate) fn ping_interval(&self) -> Option<Duration> {
        Self::secs(self.ping_interval).filter(|d| !d.is_zero())
    }
    pub(crate) fn reconnect_interval(&self) -> Option<Duration> {
        Self::secs(self.reconnect_interval)
    }
    pub(crate) fn reconnect_nonce(&self) -> Option<Duration> {
        Self::secs(self.reconnect_nonce)
    }
    /// `None` = unlimited.
    pub(crate) fn reconnect_limit(&self) -> Option<u64> {
        self.reconnect_count
            .filter(|c| *c >= 0)
            .map(|c| c.unsigned_abs())
    }
}

/// A parsed control frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Control {
    /// Server ping: ignored by the SDKs (no reply).
    Ping,
    /// Pong, with a replacement config when the payload is non-empty.
    Pong(Option<ClientConfig>),
    /// Some other `type`.
    Other(String),
}

/// Parses a `method=0` frame.
pub(crate) fn parse_control(frame: &Frame) -> Result<Control, FrameError> {
    let kind = header(frame, keys::TYPE).ok_or(FrameError::MissingHeader(keys::TYPE))?;
    match kind {
        types::PING => Ok(Control::Ping),
        types::PONG => match frame.payload.as_deref() {
            None | Some([]) => Ok(Control::Pong(None)),
            Some(p) => serde_json::from_slice::<ClientConfig>(p)
                .map(|c| Control::Pong(Some(c)))
                .map_err(|e| FrameError::ControlPayload(e.to_string())),
        },
        other => Ok(Control::Other(other.to_string())),
    }
}

/// The headers of a `method=1` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DataHeaders {
    /// `event` or `card`.
    pub(crate) kind: String,
    /// Shared by every fragment of a message (may be empty when `sum` is 1).
    pub(crate) message_id: String,
    /// Number of fragments, ≥ 1 (a missing header means 1).
    pub(crate) sum: u32,
    /// 0-based fragment index (a missing header means 0).
    pub(crate) seq: u32,
    pub(crate) trace_id: Option<String>,
}

fn int_header(frame: &Frame, key: &'static str, default: u32) -> Result<u32, FrameError> {
    match header(frame, key) {
        None => Ok(default),
        Some(v) => v.trim().parse::<u32>().map_err(|_| FrameError::BadHeader {
            key,
            value: v.chars().take(32).collect(),
        }),
    }
}

/// Reads the data headers; checks `sum ≥ 1` and `seq < sum`.
pub(crate) fn parse_data_headers(frame: &Frame) -> Result<DataHeaders, FrameError> {
    let kind = header(frame, keys::TYPE).ok_or(FrameError::MissingHeader(keys::TYPE))?;
    let message_id = header(frame, keys::MESSAGE_ID).unwrap_or_default();
    let sum = int_header(frame, keys::SUM, 1)?;
    let seq = int_header(frame, keys::SEQ, 0)?;
    if sum == 0 {
        return Err(FrameError::BadHeader {
            key: keys::SUM,
            value: "0".into(),
        });
    }
    if seq >= sum {
        return Err(FrameError::Fragment {
            message_id: message_id.to_string(),
            reason: format!("seq {seq} out of range for sum {sum}"),
        });
    }
    if sum > 1 && message_id.is_empty() {
        return Err(FrameError::MissingHeader(keys::MESSAGE_ID));
    }
    Ok(DataHeaders {
        kind: kind.to_string(),
        message_id: message_id.to_string(),
        sum,
        seq,
        trace_id: header(frame, keys::TRACE_ID).map(str::to_string),
    })
}

/// Bounds for [`Reassembler`].
#[derive(Debug, Clone)]
pub(crate) struct ReassemblerConfig {
    /// Largest accepted `sum`.
    pub(crate) max_fragments: u32,
    /// Largest reassembled message, in bytes.
    pub(crate) max_message_bytes: usize,
    /// Incomplete messages older than this (since their first fragment)
    /// are dropped.
    pub(crate) ttl: Duration,
    /// Most incomplete messages kept at once; the oldest is evicted.
    pub(crate) max_pending: usize,
}

impl Default for ReassemblerConfig {
    fn default() -> Self {
        ReassemblerConfig {
            max_fragments: 64,
            max_message_bytes: 16 * 1024 * 1024,
            ttl: Duration::from_secs(10),
            max_pending: 256,
        }
    }
}

struct Pending {
    sum: u32,
    parts: Vec<Option<Vec<u8>>>,
    received: u32,
    bytes: usize,
    first_seen: Instant,
}

/// Reassembles fragmented data frames keyed by `message_id` (§1.6). Only
/// the fragment that completes a message yields it; the caller ACKs that
/// frame only.
pub(crate) struct Reassembler {
    cfg: ReassemblerConfig,
    pending: HashMap<String, Pending>,
}

impl Reassembler {
    pub(crate) fn new(cfg: ReassemblerConfig) -> Self {
        Reassembler {
            cfg,
            pending: HashMap::new(),
        }
    }

    /// Number of incomplete messages held.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    fn err(message_id: &str, reason: impl Into<String>) -> FrameError {
        FrameError::Fragment {
            message_id: message_id.to_string(),
            reason: reason.into(),
        }
    }

    /// Adds one fragment. `Ok(Some(bytes))` = the message is complete;
    /// `Ok(None)` = waiting for more (send no ACK); `Err` = fragment
    /// rejected (log it; send no ACK).
    pub(crate) fn push(
        &mut self,
        h: &DataHeaders,
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<Option<Vec<u8>>, FrameError> {
        let id = h.message_id.as_str();
        if h.sum == 0 || h.seq >= h.sum {
            return Err(Self::err(id, format!("bad seq {}/sum {}", h.seq, h.sum)));
        }
        if h.sum > self.cfg.max_fragments {
            return Err(Self::err(
                id,
                format!("sum {} exceeds the cap {}", h.sum, self.cfg.max_fragments),
            ));
        }
        if payload.len() > self.cfg.max_message_bytes {
            self.pending.remove(id);
            return Err(Self::err(id, "fragment exceeds the message size cap"));
        }
        if h.sum == 1 {
            return Ok(Some(payload));
        }
        if !self.pending.contains_key(id) {
            if self.pending.len() >= self.cfg.max_pending {
                self.evict_oldest();
            }
            self.pending.insert(
                id.to_string(),
                Pending {
                    sum: h.sum,
                    parts: vec![None; h.sum as usize],
                    received: 0,
                    bytes: 0,
                    first_seen: now,
                },
            );
        }
        let Some(p) = self.pending.get_mut(id) else {
            return Err(Self::err(id, "internal: slot vanished"));
        };
        if p.sum != h.sum {
            return Err(Self::err(
                id,
                format!("sum {} disagrees with earlier sum {}", h.sum, p.sum),
            ));
        }
        let Some(slot) = p.parts.get_mut(h.seq as usize) else {
            return Err(Self::err(id, format!("seq {} out of range", h.seq)));
        };
        if slot.is_some() {
            // A duplicate fragment: keep the first copy.
            return Ok(None);
        }
        if p.bytes + payload.len() > self.cfg.max_message_bytes {
            self.pending.remove(id);
            return Err(Self::err(id, "message exceeds the size cap; dropped"));
        }
        p.bytes += payload.len();
        p.received += 1;
        *slot = Some(payload);
        if p.received < p.sum {
            return Ok(None);
        }
        let Some(p) = self.pending.remove(id) else {
            return Err(Self::err(id, "internal: slot vanished"));
        };
        let mut out = Vec::with_capacity(p.bytes);
        for part in p.parts.into_iter().flatten() {
            out.extend_from_slice(&part);
        }
        Ok(Some(out))
    }

    /// Drops incomplete messages older than the TTL; returns their ids.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<String> {
        let ttl = self.cfg.ttl;
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first_seen) >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.pending.remove(k);
        }
        expired
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.first_seen)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            tracing::warn!(message_id = %k, "too many incomplete messages; evicting the oldest");
            self.pending.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_frame(id: &str, sum: u32, seq: u32, payload: &[u8]) -> Frame {
        Frame {
            seq_id: 42,
            log_id: 99,
            service: 7,
            method: METHOD_DATA,
            headers: vec![
                Header {
                    key: "type".into(),
                    value: "event".into(),
                },
                Header {
                    key: "message_id".into(),
                    value: id.into(),
                },
                Header {
                    key: "sum".into(),
                    value: sum.to_string(),
                },
                Header {
                    key: "seq".into(),
                    value: seq.to_string(),
                },
                Header {
                    key: "trace_id".into(),
                    value: "tr-1".into(),
                },
            ],
            payload: Some(payload.to_vec()),
            ..Default::default()
        }
    }

    #[test]
    fn ping_byte_layout() {
        let b = encode(&ping(7));
        assert_eq!(
            &b[..9],
            &[0x08, 0x00, 0x10, 0x00, 0x18, 0x07, 0x20, 0x00, 0x2a]
        );
        let f = decode(&b).expect("decode");
        assert_eq!(header(&f, "type"), Some("ping"));
        assert_eq!(f.payload, None);
    }

    #[test]
    fn ack_mirrors_request_and_adds_biz_rt() {
        let req = data_frame("m1", 1, 0, br#"{"schema":"2.0"}"#);
        let a = ack(&req, &AckReply::Ok, 12).expect("ack");
        assert_eq!(
            (a.seq_id, a.log_id, a.service, a.method),
            (42, 99, 7, METHOD_DATA)
        );
        for h in &req.headers {
            assert_eq!(header(&a, &h.key), Some(h.value.as_str()));
        }
        assert_eq!(header(&a, "biz_rt"), Some("12"));
        assert_eq!(a.headers.len(), req.headers.len() + 1);
        let v: serde_json::Value =
            serde_json::from_slice(a.payload.as_deref().expect("payload")).expect("json");
        assert_eq!(v, serde_json::json!({"code": 200}));

        let a = ack(&req, &AckReply::Error, 1).expect("ack");
        let v: serde_json::Value =
            serde_json::from_slice(a.payload.as_deref().expect("payload")).expect("json");
        assert_eq!(v, serde_json::json!({"code": 500}));

        let data = serde_json::json!({"toast": {"type": "info", "content": "ok"}});
        let a = ack(&req, &AckReply::OkWithData(data.clone()), 1).expect("ack");
        let v: serde_json::Value =
            serde_json::from_slice(a.payload.as_deref().expect("payload")).expect("json");
        assert_eq!(v["code"], 200);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().expect("data"))
            .expect("b64");
        let back: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(back, data);

        assert!(ack(&req, &AckReply::NoAck, 1).is_none());
        // Re-encoding keeps fields 1-4 even when zero-valued.
        let b = encode(&ack(&ping(3), &AckReply::Ok, 0).expect("ack"));
        assert_eq!(&b[..8], &[0x08, 0x00, 0x10, 0x00, 0x18, 0x03, 0x20, 0x00]);
    }

    #[test]
    fn control_parsing() {
        let mut pong = ping(7);
        set_header(&mut pong, "type", "pong");
        assert_eq!(parse_control(&pong).expect("pong"), Control::Pong(None));
        pong.payload = Some(br#"{"PingInterval":3,"ReconnectCount":-1}"#.to_vec());
        let Control::Pong(Some(c)) = parse_control(&pong).expect("pong") else {
            panic!("expected config");
        };
        assert_eq!(c.ping_interval(), Some(Duration::from_secs(3)));
        assert_eq!(c.reconnect_limit(), None);
        let mut cur = ClientConfig::SDK_DEFAULT;
        cur.merge(&c);
        assert_eq!(cur.ping_interval, Some(3));
        assert_eq!(cur.reconnect_interval, Some(120));
        pong.payload = Some(b"\xff\x00".to_vec());
        assert!(parse_control(&pong).is_err());
        assert_eq!(parse_control(&ping(1)).expect("ping"), Control::Ping);
        pong.headers.clear();
        assert!(matches!(
            parse_control(&pong),
            Err(FrameError::MissingHeader("type"))
        ));
    }

    fn push(r: &mut Reassembler, f: &Frame, now: Instant) -> Result<Option<Vec<u8>>, FrameError> {
        let h = parse_data_headers(f)?;
        r.push(&h, f.payload.clone().unwrap_or_default(), now)
    }

    #[test]
    fn three_fragments_out_of_order() {
        let mut r = Reassembler::new(ReassemblerConfig::default());
        let now = Instant::now();
        assert_eq!(
            push(&mut r, &data_frame("m", 3, 2, b"c\"}"), now).expect("ok"),
            None
        );
        assert_eq!(
            push(&mut r, &data_frame("m", 3, 0, b"{\"a"), now).expect("ok"),
            None
        );
        // Duplicate is ignored.
        assert_eq!(
            push(&mut r, &data_frame("m", 3, 0, b"XXX"), now).expect("ok"),
            None
        );
        assert_eq!(r.pending(), 1);
        let out = push(&mut r, &data_frame("m", 3, 1, b"\":\"b"), now)
            .expect("ok")
            .expect("complete");
        assert_eq!(out, br#"{"a":"bc"}"#);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn incomplete_expires() {
        let cfg = ReassemblerConfig {
            ttl: Duration::from_secs(10),
            ..Default::default()
        };
        let mut r = Reassembler::new(cfg);
        let t0 = Instant::now();
        assert_eq!(
            push(&mut r, &data_frame("m", 2, 0, b"x"), t0).expect("ok"),
            None
        );
        assert!(r.expire(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(
            r.expire(t0 + Duration::from_secs(10)),
            vec!["m".to_string()]
        );
        assert_eq!(r.pending(), 0);
        // A late fragment starts a fresh (incomplete) buffer: never completes.
        assert_eq!(
            push(
                &mut r,
                &data_frame("m", 2, 1, b"y"),
                t0 + Duration::from_secs(11)
            )
            .expect("ok"),
            None
        );
    }

    #[test]
    fn bounds_are_checked() {
        let mut r = Reassembler::new(ReassemblerConfig {
            max_fragments: 4,
            max_message_bytes: 8,
            ..Default::default()
        });
        let now = Instant::now();
        assert!(push(&mut r, &data_frame("a", 0, 0, b"x"), now).is_err());
        assert!(push(&mut r, &data_frame("a", 2, 2, b"x"), now).is_err());
        assert!(push(&mut r, &data_frame("a", 5, 0, b"x"), now).is_err());
        assert_eq!(
            push(&mut r, &data_frame("b", 2, 0, b"x"), now).expect("ok"),
            None
        );
        assert!(push(&mut r, &data_frame("b", 3, 1, b"x"), now).is_err());
        assert_eq!(
            push(&mut r, &data_frame("c", 2, 0, b"12345"), now).expect("ok"),
            None
        );
        assert!(push(&mut r, &data_frame("c", 2, 1, b"67890"), now).is_err());
        assert!(push(&mut r, &data_frame("d", 1, 0, b"123456789"), now).is_err());
        let mut f = data_frame("e", 2, 0, b"x");
        set_header(&mut f, "sum", "two");
        assert!(push(&mut r, &f, now).is_err());
        let mut f = data_frame("", 2, 0, b"x");
        set_header(&mut f, "message_id", "");
        assert!(push(&mut r, &f, now).is_err());
    }

    #[test]
    fn pending_is_bounded() {
        let mut r = Reassembler::new(ReassemblerConfig {
            max_pending: 3,
            ..Default::default()
        });
        let t = Instant::now();
        for i in 0..10u64 {
            let f = data_frame(&format!("m{i}"), 2, 0, b"x");
            push(&mut r, &f, t + Duration::from_millis(i)).expect("ok");
        }
        assert_eq!(r.pending(), 3);
    }

    /// Fuzz-style: random bytes and mutated valid frames never panic the
    /// decoder, the header parsers or the reassembler.
    #[test]
    fn garbage_never_panics() {
        use rand::RngExt as _;
        let mut rng = rand::rng();
        let mut r = Reassembler::new(ReassemblerConfig {
            max_fragments: 8,
            max_message_bytes: 4096,
            ttl: Duration::from_millis(5),
            max_pending: 16,
        });
        let seed = encode(&data_frame("m", 3, 1, br#"{"x":1}"#));
        let now = Instant::now();
        for i in 0..20_000u32 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let n = rng.random_range(0..64usize);
                (0..n).map(|_| rng.random::<u8>()).collect()
            } else {
                let mut b = seed.clone();
                let flips = rng.random_range(1..4usize);
                for _ in 0..flips {
                    let at = rng.random_range(0..b.len());
                    b[at] = rng.random();
                }
                let cut = rng.random_range(0..=b.len());
                b.truncate(cut);
                b
            };
            let Ok(f) = decode(&bytes) else { continue };
            let _ = parse_control(&f);
            if let Ok(h) = parse_data_headers(&f) {
                let _ = r.push(
                    &h,
                    f.payload.clone().unwrap_or_default(),
                    now + Duration::from_millis(u64::from(i)),
                );
            }
            let _ = r.expire(now + Duration::from_millis(u64::from(i)));
            let _ = ack(&f, &AckReply::Ok, 0);
        }
        // Non-UTF-8 header strings are a decode error, not a panic.
        let mut bad = seed.clone();
        if let Some(pos) = bad.windows(5).position(|w| w == b"event") {
            bad[pos] = 0xff;
        }
        assert!(decode(&bad).is_err());
        // Truncated protobuf.
        assert!(decode(&seed[..seed.len() / 2]).is_err() || decode(&seed[..3]).is_err());
        let _ = rng.random::<u32>();
    }
}
