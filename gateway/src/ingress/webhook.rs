//! Webhook mode: a second ingress for apps that cannot use the long
//! connection. A loopback-bound HTTP listener (a reverse proxy or tunnel
//! forwards the platform's requests to it) with `url_verification`, the
//! `X-Lark-Signature` check and AES-256-CBC decryption (feishu.md §6). Events
//! then take the same path as long-connection events.
//!
//! A signed request is also checked for freshness: its timestamp must be
//! within the window, and its (timestamp, nonce) pair is remembered for that
//! window, so a captured request cannot be played again.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fcx_config::Secret;

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Bodies above this are refused before they are read in full.
const MAX_BODY: usize = 1 << 20;

/// `Secret` keeps both out of `Debug` output and logs.
#[derive(Debug, Clone)]
pub(crate) struct WebhookKeys {
    pub(crate) encrypt_key: Option<Secret>,
    pub(crate) verification_token: Option<Secret>,
}

/// What the event handler decided.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// Accepted: HTTP 200 with this JSON body (a card action's answer, or
    /// `{"msg":"success"}`).
    Ack(Value),
    /// Not accepted in time (the worker could not commit it): an error status
    /// makes the platform retry later.
    Retry,
}

/// Called with a verified event's payload and, for a signed request, the
/// platform's clock when it sent it (unix milliseconds; see [`stamped_ms`]).
pub(crate) type Handler =
    Arc<dyn Fn(Vec<u8>, Option<i64>) -> BoxFuture<'static, Reply> + Send + Sync>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum WebhookError {
    #[error("the signature headers are missing")]
    Unsigned,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the body is not JSON")]
    NotJson,
    #[error("the encrypted body cannot be decrypted")]
    Undecryptable,
    #[error("the verification token does not match")]
    BadToken,
    #[error("the request timestamp is missing or outside the accepted window")]
    Stale,
    #[error("the request was already received (replay)")]
    Replayed,
}

/// What a request turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// Answer `{"challenge": …}` at once.
    Challenge(String),
    /// A (decrypted) event payload for the event path.
    Event(Vec<u8>),
}

/// Verify, decrypt and classify one request. Pure: the HTTP glue is below.
pub(crate) fn process(
    keys: &WebhookKeys,
    timestamp: Option<&str>,
    nonce: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Incoming, WebhookError> {
    let outer: Value = serde_json::from_slice(body).map_err(|_| WebhookError::NotJson)?;
    let (payload, decrypted) = match (
        &keys.encrypt_key,
        outer.get("encrypt").and_then(Value::as_str),
    ) {
        (Some(key), Some(enc)) => (decrypt(key.expose(), enc)?, true),
        // An encrypted body without a key configured cannot be read.
        (None, Some(_)) => return Err(WebhookError::Undecryptable),
        _ => (body.to_vec(), false),
    };
    let v: Value = serde_json::from_slice(&payload).map_err(|_| WebhookError::NotJson)?;
    let token_ok = |v: &Value| match &keys.verification_token {
        None => true,
        Some(t) => {
            let got = v
                .get("header")
                .and_then(|h| h.get("token"))
                .or_else(|| v.get("token"))
                .and_then(Value::as_str)
                .unwrap_or("");
            ct_eq(got.as_bytes(), t.expose().as_bytes())
        }
    };
    if v.get("type").and_then(Value::as_str) == Some("url_verification") {
        // The platform sends the challenge while the URL is being saved;
        // the SDKs answer it on the token alone (Go: AuthByChallenge comes
        // before VerifySign), so the signature is not required here.
        if !token_ok(&v) {
            return Err(WebhookError::BadToken);
        }
        let c = v.get("challenge").and_then(Value::as_str).unwrap_or("");
        return Ok(Incoming::Challenge(c.to_string()));
    }
    if let Some(key) = &keys.encrypt_key {
        // Signed only when an Encrypt Key is set; over the raw body bytes.
        let (Some(ts), Some(n), Some(sig)) = (timestamp, nonce, signature) else {
            return Err(WebhookError::Unsigned);
        };
        if !ct_eq(
            sign(ts, n, key.expose(), body).as_bytes(),
            sig.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(WebhookError::BadSignature);
        }
    }
    if !token_ok(&v) {
        return Err(WebhookError::BadToken);
    }
    let _ = decrypted;
    Ok(Incoming::Event(payload))
}

/// Remembers the (timestamp, nonce) of signed requests seen within the
/// freshness window. Only signed requests get here, so an outsider cannot
/// fill it; the cap bounds memory should the platform itself flood it.
pub(crate) struct Freshness {
    window_secs: i64,
    seen: Mutex<Seen>,
    /// The wall clock (unix seconds) and the monotonic clock when this was
    /// made: with them, "now" on a clock that does not step.
    started: (i64, std::time::Instant),
}

#[derive(Default)]
struct Seen {
    keys: HashSet<(i64, String)>,
    by_time: BTreeSet<(i64, String)>,
}

const MAX_REMEMBERED: usize = 100_000;

impl Freshness {
    pub(crate) fn new(window_secs: u64) -> Self {
        Freshness {
            window_secs: i64::try_from(window_secs).unwrap_or(i64::MAX),
            seen: Mutex::new(Seen::default()),
            started: (unix_now(), std::time::Instant::now()),
        }
    }

    /// The wall clock as it would read had it not stepped since start.
    fn steady_now(&self) -> i64 {
        let (wall, mono) = self.started;
        wall.saturating_add(i64::try_from(mono.elapsed().as_secs()).unwrap_or(i64::MAX))
    }

    /// Accept a signed request's timestamp (unix seconds) and nonce once.
    /// `now` is unix seconds. Fresh means within the window of the wall
    /// clock or of the start-time clock run on monotonically: a host clock
    /// stepped since start (either way: away from the truth, or back to
    /// it) does not refuse every platform request, and the nonce memory
    /// covers both windows, so a replay is still caught.
    pub(crate) fn admit(&self, timestamp: &str, nonce: &str, now: i64) -> Result<(), WebhookError> {
        let ts: i64 = timestamp.trim().parse().map_err(|_| WebhookError::Stale)?;
        let steady = self.steady_now();
        let fresh = |at: i64| ts.abs_diff(at) <= self.window_secs.unsigned_abs();
        if !fresh(now) && !fresh(steady) {
            return Err(WebhookError::Stale);
        }
        let mut seen = self.seen.lock().map_err(|_| WebhookError::Replayed)?;
        // Anything older than both windows is refused above, so forget it.
        let horizon = now.min(steady).saturating_sub(self.window_secs);
        while let Some(first) = seen.by_time.first().cloned() {
            if first.0 >= horizon && seen.by_time.len() < MAX_REMEMBERED {
                break;
            }
            seen.by_time.remove(&first);
            seen.keys.remove(&first);
        }
        let key = (ts, nonce.to_string());
        if !seen.keys.insert(key.clone()) {
            return Err(WebhookError::Replayed);
        }
        seen.by_time.insert(key);
        Ok(())
    }

    /// Forget a request the handler did not accept, so the platform's retry
    /// of the very same request is not taken for a replay.
    pub(crate) fn forget(&self, timestamp: &str, nonce: &str) {
        let Ok(ts) = timestamp.trim().parse::<i64>() else {
            return;
        };
        if let Ok(mut seen) = self.seen.lock() {
            let key = (ts, nonce.to_string());
            seen.keys.remove(&key);
            seen.by_time.remove(&key);
        }
    }
}

/// Lower-case hex SHA-256 of timestamp + nonce + encrypt key + raw body.
pub(crate) fn sign(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(encrypt_key.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// AES-256-CBC with key = SHA-256(encrypt key), IV = the first 16 bytes of
/// the decoded message, PKCS#7 padding.
pub(crate) fn decrypt(encrypt_key: &str, b64: &str) -> Result<Vec<u8>, WebhookError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| WebhookError::Undecryptable)?;
    if raw.len() < 32 || raw.len() % 16 != 0 {
        return Err(WebhookError::Undecryptable);
    }
    let key: [u8; 32] = Sha256::digest(encrypt_key.as_bytes()).into();
    let (iv, data) = raw.split_at(16);
    let dec = cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv)
        .map_err(|_| WebhookError::Undecryptable)?;
    dec.decrypt_padded_vec_mut::<Pkcs7>(data)
        .map_err(|_| WebhookError::Undecryptable)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serve the webhook on `listen` until `stop`.
pub(crate) async fn serve(
    listen: SocketAddr,
    keys: WebhookKeys,
    freshness_secs: u64,
    handler: Handler,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "webhook listening");
    let keys = Arc::new(Gate {
        keys,
        fresh: Freshness::new(freshness_secs),
    });
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let (sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook accept failed");
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let keys = keys.clone();
        let handler = handler.clone();
        let stop = stop.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let keys = keys.clone();
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &keys, handler).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(sock), svc);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "webhook connection ended") },
                _ = stop.cancelled() => {}
            }
        });
    }
    conns.close();
    conns.wait().await;
    Ok(())
}

/// What every request is checked against.
pub(crate) struct Gate {
    pub(crate) keys: WebhookKeys,
    pub(crate) fresh: Freshness,
}

impl Gate {
    /// [`process`], then, for a signed event, the freshness check.
    pub(crate) fn check(
        &self,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<Incoming, WebhookError> {
        let got = process(&self.keys, timestamp, nonce, signature, body)?;
        if let Incoming::Event(_) = got
            && self.keys.encrypt_key.is_some()
        {
            let (Some(ts), Some(n)) = (timestamp, nonce) else {
                return Err(WebhookError::Unsigned);
            };
            self.fresh.admit(ts, n, now)?;
        }
        Ok(got)
    }
}

/// The platform's clock when it sent a request, as its signed timestamp
/// header says (unix seconds → milliseconds): the long connection's frame
/// timestamp for a webhook, so a message is judged late by the platform's
/// clock too (a host clock that stepped ahead does not hold live messages).
/// Only where requests are signed (an encrypt key): an unsigned header could
/// say anything.
fn stamped_ms(keys: &WebhookKeys, timestamp: Option<&str>) -> Option<i64> {
    keys.encrypt_key.as_ref()?;
    let secs: i64 = timestamp?.trim().parse().ok()?;
    secs.checked_mul(1000)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    keys: &Gate,
    handler: Handler,
) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::POST {
        return respond(StatusCode::METHOD_NOT_ALLOWED, json!({"msg": "POST only"}));
    }
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (ts, nonce, sig) = (
        header("x-lark-request-timestamp"),
        header("x-lark-request-nonce"),
        header("x-lark-signature"),
    );
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return respond(StatusCode::PAYLOAD_TOO_LARGE, json!({"msg": "too large"})),
    };
    let checked = keys.check(
        ts.as_deref(),
        nonce.as_deref(),
        sig.as_deref(),
        &body,
        unix_now(),
    );
    match checked {
        Ok(Incoming::Challenge(c)) => respond(StatusCode::OK, json!({"challenge": c})),
        Ok(Incoming::Event(payload)) => {
            match handler(payload, stamped_ms(&keys.keys, ts.as_deref())).await {
                Reply::Ack(body) => respond(StatusCode::OK, body),
                Reply::Retry => {
                    if let (Some(ts), Some(n)) = (&ts, &nonce) {
                        keys.fresh.forget(ts, n);
                    }
                    respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"msg": "not accepted yet; retry"}),
                    )
                }
            }
        }
        // Already handled once: acknowledged, nothing runs again.
        Err(WebhookError::Replayed) => {
            if let Some(held_back) = super::warn_limit::admit("webhook replayed") {
                tracing::warn!(held_back, "webhook request replayed; ignored");
            }
            respond(StatusCode::OK, json!({"msg": "success"}))
        }
        Err(e) => {
            // One line, no body echo: a forged request learns nothing.
            if let Some(held_back) = super::warn_limit::admit("webhook refused") {
                tracing::warn!(error = %e, held_back, "webhook request refused");
            }
            respond(StatusCode::UNAUTHORIZED, json!({"msg": "refused"}))
        }
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    fn encrypt(key: &str, plain: &[u8], iv: [u8; 16]) -> String {
        let k: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&k, &iv).expect("key");
        let mut out = iv.to_vec();
        out.extend(enc.encrypt_padded_vec_mut::<Pkcs7>(plain));
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    fn keys() -> WebhookKeys {
        WebhookKeys {
            encrypt_key: Some(Secret::new("ek-test")),
            verification_token: Some(Secret::new("vt-test")),
        }
    }

    #[test]
    fn decrypts_and_verifies_a_signed_event() {
        let event = br#"{"schema":"2.0","header":{"event_id":"e","event_type":"x","token":"vt-test"},"event":{}}"#;
        let body = json!({"encrypt": encrypt("ek-test", event, [7; 16])}).to_string();
        let sig = sign("1700000000", "n1", "ek-test", body.as_bytes());
        let got = process(
            &keys(),
            Some("1700000000"),
            Some("n1"),
            Some(&sig),
            body.as_bytes(),
        )
        .expect("valid");
        assert_eq!(got, Incoming::Event(event.to_vec()));
    }

    #[test]
    fn forged_tampered_and_unsigned_requests_are_refused() {
        let event = br#"{"header":{"token":"vt-test","event_type":"x"}}"#;
        let body = json!({"encrypt": encrypt("ek-test", event, [1; 16])}).to_string();
        let sig = sign("1", "n", "ek-test", body.as_bytes());
        assert_eq!(
            process(&keys(), None, None, None, body.as_bytes()),
            Err(WebhookError::Unsigned)
        );
        let mut tampered = body.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] ^= 1;
        assert!(process(&keys(), Some("1"), Some("n"), Some(&sig), &tampered).is_err());
        assert_eq!(
            process(&keys(), Some("1"), Some("n"), Some("00"), body.as_bytes()),
            Err(WebhookError::BadSignature)
        );
        // Right signature, wrong token inside.
        let event = br#"{"header":{"token":"other","event_type":"x"}}"#;
        let body = json!({"encrypt": encrypt("ek-test", event, [1; 16])}).to_string();
        let sig = sign("1", "n", "ek-test", body.as_bytes());
        assert_eq!(
            process(&keys(), Some("1"), Some("n"), Some(&sig), body.as_bytes()),
            Err(WebhookError::BadToken)
        );
        // Garbage.
        for b in [
            &b"nope"[..],
            b"{\"encrypt\":\"!!\"}",
            b"{\"encrypt\":\"AAAA\"}",
        ] {
            assert!(process(&keys(), Some("1"), Some("n"), Some("x"), b).is_err());
        }
    }

    #[test]
    fn url_verification_answers_the_challenge() {
        let plain = br#"{"challenge":"c-123","token":"vt-test","type":"url_verification"}"#;
        let body = json!({"encrypt": encrypt("ek-test", plain, [3; 16])}).to_string();
        assert_eq!(
            process(&keys(), None, None, None, body.as_bytes()),
            Ok(Incoming::Challenge("c-123".into()))
        );
        let plain_keys = WebhookKeys {
            encrypt_key: None,
            verification_token: Some(Secret::new("vt-test")),
        };
        let bad = br#"{"challenge":"c","token":"nope","type":"url_verification"}"#;
        assert_eq!(
            process(&plain_keys, None, None, None, bad),
            Err(WebhookError::BadToken)
        );
    }

    #[test]
    fn a_signed_event_is_fresh_once_and_only_within_the_window() {
        let gate = Gate {
            keys: keys(),
            fresh: Freshness::new(300),
        };
        let event = br#"{"header":{"token":"vt-test","event_type":"x"}}"#;
        let body = json!({"encrypt": encrypt("ek-test", event, [5; 16])}).to_string();
        let now = 1_800_000_000;
        let ts = now.to_string();
        let sig = sign(&ts, "n1", "ek-test", body.as_bytes());
        let check = |ts: &str, n: &str, sig: &str, now: i64| {
            gate.check(Some(ts), Some(n), Some(sig), body.as_bytes(), now)
        };
        assert_eq!(
            check(&ts, "n1", &sig, now),
            Ok(Incoming::Event(event.to_vec()))
        );
        // The very same signed request again is a replay.
        assert_eq!(check(&ts, "n1", &sig, now + 1), Err(WebhookError::Replayed));
        // A correctly signed request from outside the window is stale.
        for off in [-301, 301] {
            let old = (now + off).to_string();
            let sig = sign(&old, "n2", "ek-test", body.as_bytes());
            assert_eq!(check(&old, "n2", &sig, now), Err(WebhookError::Stale));
        }
        let sig = sign("soon", "n3", "ek-test", body.as_bytes());
        assert_eq!(check("soon", "n3", &sig, now), Err(WebhookError::Stale));
        // A request the handler could not take is forgotten: the platform's
        // retry of it goes through.
        gate.fresh.forget(&ts, "n1");
        assert!(check(&ts, "n1", &sig_for(&ts, "n1", &body), now).is_ok());
        // Entries past the window are dropped, and refused as stale anyway.
        assert_eq!(
            check(&ts, "n1", &sig_for(&ts, "n1", &body), now + 400),
            Err(WebhookError::Stale)
        );
    }

    fn sig_for(ts: &str, n: &str, body: &str) -> String {
        sign(ts, n, "ek-test", body.as_bytes())
    }

    #[test]
    fn a_host_clock_stepped_since_start_still_admits_live_requests_once() {
        // The platform's clock is right; fcx's stepped an hour ahead, then
        // an hour behind, after fcxd started.
        let fresh = Freshness::new(300);
        let real = unix_now();
        for (n, wall) in [("n1", real + 3600), ("n2", real - 3600)] {
            let ts = real.to_string();
            assert_eq!(fresh.admit(&ts, n, wall), Ok(()), "{n}");
            assert_eq!(fresh.admit(&ts, n, wall + 1), Err(WebhookError::Replayed));
            // Still refused when old by both clocks.
            let old = (real - 1000).to_string();
            assert_eq!(fresh.admit(&old, n, wall), Err(WebhookError::Stale));
        }
    }

    #[test]
    fn a_signed_timestamp_is_the_platform_clock_and_an_unsigned_one_is_not() {
        assert_eq!(
            stamped_ms(&keys(), Some("1700000000")),
            Some(1_700_000_000_000)
        );
        let unsigned = WebhookKeys {
            encrypt_key: None,
            verification_token: Some(Secret::new("vt-test")),
        };
        assert_eq!(stamped_ms(&unsigned, Some("1700000000")), None);
        assert_eq!(stamped_ms(&keys(), Some("soon")), None);
        assert_eq!(stamped_ms(&keys(), None), None);
    }

    #[test]
    fn keys_never_print() {
        let k = format!("{:?}", keys());
        assert!(!k.contains("ek-test") && !k.contains("vt-test"), "{k}");
    }
}
