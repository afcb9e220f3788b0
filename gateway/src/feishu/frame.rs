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
    pub(crate) const TIMESTAMP: &str = "timestamp";
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
    /// The platform's clock when it pushed the frame (ms since the epoch;
    /// None when absent or unreadable: only the stale check reads it).
    pub(crate) timestamp_ms: Option<i64>,
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
        timestamp_ms: header(frame, keys::TIMESTAMP).and_then(|t| t.trim().parse().ok()),
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
    /// Most bytes held across all incomplete messages; the oldest others
    /// are evicted to make room, else the fragment's message is dropped.
    pub(crate) max_pending_bytes: usize,
}

impl Default for ReassemblerConfig {
    fn default() -> Self {
        ReassemblerConfig {
            max_fragments: 64,
            max_message_bytes: 16 * 1024 * 1024,
            ttl: Duration::from_secs(10),
            max_pending: 256,
            // Without it, 256 incomplete messages of 16 MiB each could hold
            // 4 GiB.
            max_pending_bytes: 32 * 1024 * 1024,
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
    /// Bytes held across `pending`.
    held: usize,
}

impl Reassembler {
    pub(crate) fn new(cfg: ReassemblerConfig) -> Self {
        Reassembler {
            cfg,
            pending: HashMap::new(),
            held: 0,
        }
    }

    /// Bytes held across incomplete messages.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    fn remove(&mut self, id: &str) -> Option<Pending> {
        let p = self.pending.remove(id)?;
        self.held -= p.bytes;
        Some(p)
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
            self.remove(id);
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
            self.remove(id);
            return Err(Self::err(id, "message exceeds the size cap; dropped"));
        }
        while self.held + payload.len() > self.cfg.max_pending_bytes {
            if !self.evict_oldest_other_than(id) {
                self.remove(id);
                return Err(Self::err(
                    id,
                    "incomplete messages exceed the memory cap; dropped",
                ));
            }
        }
        let Some(p) = self.pending.get_mut(id) else {
            return Err(Self::err(id, "internal: slot vanished"));
        };
        let Some(slot) = p.parts.get_mut(h.seq as usize) else {
            return Err(Self::err(id, format!("seq {} out of range", h.seq)));
        };
        self.held += payload.len();
        p.bytes += payload.len();
        p.received += 1;
        *slot = Some(payload);
        if p.received < p.sum {
            return Ok(None);
        }
        let Some(p) = self.remove(id) else {
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
            self.remove(k);
        }
        expired
    }

    fn evict_oldest(&mut self) {
        self.evict_oldest_other_than("");
    }

    /// Evicts the oldest incomplete message other than `keep`; false when
    /// there is none.
    fn evict_oldest_other_than(&mut self, keep: &str) -> bool {
        let oldest = self
            .pending
            .iter()
            .filter(|(k, _)| k.as_str() != keep)
            .min_by_key(|(_, p)| p.first_seen)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => {
                tracing::warn!(message_id = %k, "too many incomplete messages; evicting the oldest");
                self.remove(&k);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
