//! Signed card-callback tokens (DESIGN §5 "Card callbacks").
//!
//! A card button's callback `value` is visible to every member of the chat
//! and comes back to us verbatim, so it cannot be trusted by itself: every
//! button carries a token HMAC-SHA256-signed by fcxd over the run, scope,
//! chat, operator, action, policy fingerprint, expiry, a nonce and the key
//! version.
//!
//! Wire form: `base64url(payload) "." base64url(mac)` (no padding), where
//! `payload` is a canonical byte encoding (format byte, key version,
//! expiry, nonce, then length-prefixed UTF-8 fields) and the MAC covers a
//! domain-separation prefix plus the payload. The MAC is checked (in
//! constant time) before any field is parsed, so forged input only ever
//! reaches the header reader.
//!
//! The operator claim is one open_id, or several joined by `,` (an
//! approval card's buttons are signed for everyone config `approvers` lets
//! decide; open_ids never hold a comma): the clicking user must be one of
//! them.
//!
//! Checks, in order: shape and size, key version known and not retired,
//! signature, strict decode, expiry, operator, scope, chat, action,
//! fingerprint; then, for a click that will act, the single-use nonce
//! ([`verify_once`]). The nonce is burnt only after everything else passed,
//! so another chat member clicking someone else's button cannot use up the
//! operator's token.
//!
//! Keys and tokens are never logged; `Debug` of [`KeyRing`] is redacted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Payload format; bump when the encoding changes.
const FORMAT: u8 = 1;
/// Separates these MACs from any other use of the same key.
const DOMAIN: &[u8] = b"fcx card callback v1\0";
const MAC_LEN: usize = 32;
const NONCE_LEN: usize = 16;
/// Fixed header: format, key version, expiry, nonce.
const HEADER_LEN: usize = 1 + 4 + 8 + NONCE_LEN;
/// Bytes per field. Ids on the platform are far shorter; the bound keeps
/// tokens small enough for a button value.
pub const MAX_FIELD_BYTES: usize = 512;
/// Longest token accepted (checked before decoding anything).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Shortest key accepted: HMAC-SHA256 wants at least the output size.
pub const MIN_KEY_BYTES: usize = 32;

/// What a token authorizes.
#[derive(Clone, PartialEq, Eq)]
pub struct Claims {
    /// The run the button acts on ("" for buttons not tied to a run).
    pub run_id: String,
    /// The scope key the card was posted in.
    pub scope: String,
    /// The chat the card was posted in.
    pub chat_id: String,
    /// The open_id of the only user allowed to click, or several joined by
    /// `,` (see [`operator_list`]).
    pub operator: String,
    /// e.g. "stop".
    pub action: String,
    /// The worker's policy fingerprint when the card was made; a changed
    /// policy invalidates the button.
    pub fingerprint: String,
    /// Unix seconds; the token is refused at and after this instant.
    pub expires_at: i64,
    /// Makes each token single-use: a used nonce is refused again.
    pub nonce: [u8; NONCE_LEN],
}

impl fmt::Debug for Claims {
    // The nonce is part of the bearer value; keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("run_id", &self.run_id)
            .field("scope", &self.scope)
            .field("chat_id", &self.chat_id)
            .field("operator", &self.operator)
            .field("action", &self.action)
            .field("fingerprint", &self.fingerprint)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Claims {
    /// Claims with a fresh random nonce.
    pub fn new(
        run_id: impl Into<String>,
        scope: impl Into<String>,
        chat_id: impl Into<String>,
        operator: impl Into<String>,
        action: impl Into<String>,
        fingerprint: impl Into<String>,
        expires_at: i64,
    ) -> Self {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        Claims {
            run_id: run_id.into(),
            scope: scope.into(),
            chat_id: chat_id.into(),
            operator: operator.into(),
            action: action.into(),
            fingerprint: fingerprint.into(),
            expires_at,
            nonce,
        }
    }

    fn fields(&self) -> [&str; 6] {
        [
            &self.run_id,
            &self.scope,
            &self.chat_id,
            &self.operator,
            &self.action,
            &self.fingerprint,
        ]
    }
}

/// Several users as one operator claim: open_ids joined by `,`, as many
/// as fit in a claim field (in the order given: put who matters most
/// first). Empty ids and ids holding the separator are left out.
pub fn operator_list(ids: &[String]) -> String {
    let mut out = String::new();
    for id in ids {
        if id.is_empty() || id.contains(',') {
            continue;
        }
        let extra = id.len() + usize::from(!out.is_empty());
        if out.len() + extra > MAX_FIELD_BYTES {
            tracing::warn!(
                left_out = ids.len(),
                "too many users to sign a button for; the first ones are kept"
            );
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(id);
    }
    out
}

/// What the click must match: the clicking user and the card's carrier.
/// `None` skips a check the caller cannot make.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// The clicking user's open_id (`event.operator.open_id`).
    pub operator: &'a str,
    /// The scope the carrier message belongs to.
    pub scope: &'a str,
    /// `event.context.open_chat_id`.
    pub chat_id: &'a str,
    /// The action the click asks for, when it must match the token's.
    pub action: Option<&'a str>,
    /// The run the click names, when it must match the token's.
    pub run_id: Option<&'a str>,
    /// The worker's current fingerprint, when known here (the worker checks
    /// it again on `Act`).
    pub fingerprint: Option<&'a str>,
}

/// Why a click was refused. The log gets the reason; the user gets only
/// [`Denied::toast`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Not a token this build writes.
    #[error("malformed token")]
    Malformed,
    /// Signed with a key version the ring does not hold.
    #[error("unknown key version")]
    UnknownKey,
    /// Signed with a key an operator retired.
    #[error("retired key version")]
    RetiredKey,
    /// The signature does not match the claims.
    #[error("bad signature")]
    BadSignature,
    /// Past its expiry.
    #[error("expired")]
    Expired,
    /// Clicked by someone other than the user it was made for.
    #[error("operator mismatch")]
    WrongOperator,
    /// Clicked in another scope than it was made for.
    #[error("scope mismatch")]
    WrongScope,
    /// Clicked in another chat than it was made for.
    #[error("chat mismatch")]
    WrongChat,
    /// The click asks for another action than the token allows.
    #[error("action mismatch")]
    WrongAction,
    /// The click names another run than the token's.
    #[error("run mismatch")]
    WrongRun,
    /// The scope's policy changed since the card was made.
    #[error("policy changed")]
    StaleFingerprint,
    /// The token was used before.
    #[error("already used")]
    Replayed,
    /// The nonce store is full of live nonces: refuse rather than forget.
    #[error("nonce store full")]
    Busy,
}

impl Denied {
    /// The text shown to the clicking user. Deliberately vague about
    /// anything an attacker could learn from (keys, signatures, formats).
    pub fn toast(&self) -> &'static str {
        match self {
            Denied::Expired => "This button has expired.",
            Denied::Replayed => "This button was already used.",
            Denied::WrongOperator => "Only the person who started this run can do that.",
            Denied::StaleFingerprint => "Settings changed since this card was sent.",
            Denied::Busy => "Busy, please try again shortly.",
            _ => "This action is not available.",
        }
    }

    /// The callback answer body (feishu.md §1.8): a warning toast.
    pub fn answer(&self) -> serde_json::Value {
        serde_json::json!({"toast": {"type": "warning", "content": self.toast()}})
    }
}

/// Why the key ring refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Shorter than [`MIN_KEY_BYTES`].
    #[error("a callback key needs at least {MIN_KEY_BYTES} bytes")]
    TooShort,
    /// The version is in the ring already.
    #[error("key version {0} is already in the ring")]
    Duplicate(u32),
    /// No such version in the ring.
    #[error("key version {0} is not in the ring")]
    Unknown(u32),
    /// The signing key cannot be retired while it signs.
    #[error("the current key version cannot be retired")]
    RetiringCurrent,
}

/// Why a token could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A claim exceeds [`MAX_FIELD_BYTES`].
    #[error("claim field longer than {MAX_FIELD_BYTES} bytes")]
    FieldTooLong,
    /// The key cannot sign.
    #[error("invalid key: {0}")]
    Key(#[from] KeyError),
}

#[derive(Clone)]
struct KeyEntry {
    key: Vec<u8>,
    retired: bool,
}

/// Signing keys by version: the current one signs; older ones still verify
/// until retired (so cards already in chats keep working across a
/// rotation). A retired version's key material is dropped.
#[derive(Clone)]
pub struct KeyRing {
    current: u32,
    keys: BTreeMap<u32, KeyEntry>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: Vec<(u32, bool)> = self.keys.iter().map(|(v, e)| (*v, e.retired)).collect();
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("versions(retired)", &versions)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A ring whose only key, `version`, signs.
    pub fn new(version: u32, key: Vec<u8>) -> Result<Self, KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort);
        }
        let mut keys = BTreeMap::new();
        keys.insert(
            version,
            KeyEntry {
                key,
                retired: false,
            },
        );
        Ok(KeyRing {
            current: version,
            keys,
        })
    }

    /// Accepts an older (or pre-staged) key for verification only.
    pub fn accept(&mut self, version: u32, key: Vec<u8>) -> Result<(), KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort);
        }
        if self.keys.contains_key(&version) {
            return Err(KeyError::Duplicate(version));
        }
        self.keys.insert(
            version,
            KeyEntry {
                key,
                retired: false,
            },
        );
        Ok(())
    }

    /// Makes `version` (with `key`) the signing key; the previous one keeps
    /// verifying until retired.
    pub fn rotate(&mut self, version: u32, key: Vec<u8>) -> Result<(), KeyError> {
        self.accept(version, key)?;
        self.current = version;
        Ok(())
    }

    /// Stops accepting `version` and drops its key.
    pub fn retire(&mut self, version: u32) -> Result<(), KeyError> {
        if version == self.current {
            return Err(KeyError::RetiringCurrent);
        }
        let e = self
            .keys
            .get_mut(&version)
            .ok_or(KeyError::Unknown(version))?;
        e.retired = true;
        e.key.clear();
        Ok(())
    }

    /// Records `version` as retired without ever holding its key (it was
    /// retired before this ring was built), so its tokens are refused as
    /// retired rather than unknown.
    pub fn add_retired(&mut self, version: u32) -> Result<(), KeyError> {
        if version == self.current {
            return Err(KeyError::RetiringCurrent);
        }
        self.keys.insert(
            version,
            KeyEntry {
                key: Vec::new(),
                retired: true,
            },
        );
        Ok(())
    }

    /// The version new tokens are signed with.
    pub fn current_version(&self) -> u32 {
        self.current
    }

    /// Signs with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let e = self
            .keys
            .get(&self.current)
            .ok_or(KeyError::Unknown(self.current))?;
        sign(claims, &e.key, self.current)
    }

    fn key_for(&self, version: u32) -> Result<&[u8], Denied> {
        match self.keys.get(&version) {
            None => Err(Denied::UnknownKey),
            Some(e) if e.retired => Err(Denied::RetiredKey),
            Some(e) => Ok(&e.key),
        }
    }
}

fn mac_for(key: &[u8], payload: &[u8]) -> Result<HmacSha256, KeyError> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| KeyError::TooShort)?;
    mac.update(DOMAIN);
    mac.update(payload);
    Ok(mac)
}

fn encode_payload(c: &Claims, key_version: u32) -> Result<Vec<u8>, SignError> {
    let mut p = Vec::with_capacity(HEADER_LEN + 128);
    p.push(FORMAT);
    p.extend_from_slice(&key_version.to_be_bytes());
    p.extend_from_slice(&c.expires_at.to_be_bytes());
    p.extend_from_slice(&c.nonce);
    for f in c.fields() {
        if f.len() > MAX_FIELD_BYTES {
            return Err(SignError::FieldTooLong);
        }
        // MAX_FIELD_BYTES < u16::MAX, so the cast is exact.
        p.extend_from_slice(&(f.len() as u16).to_be_bytes());
        p.extend_from_slice(f.as_bytes());
    }
    Ok(p)
}

/// Signs `claims` with `key` as version `key_version`.
pub fn sign(claims: &Claims, key: &[u8], key_version: u32) -> Result<String, SignError> {
    if key.len() < MIN_KEY_BYTES {
        return Err(KeyError::TooShort.into());
    }
    let payload = encode_payload(claims, key_version)?;
    let tag = mac_for(key, &payload)?.finalize().into_bytes();
    let mut t = URL_SAFE_NO_PAD.encode(&payload);
    t.push('.');
    t.push_str(&URL_SAFE_NO_PAD.encode(tag));
    Ok(t)
}

/// A token for an arbitrary payload, validly signed: lets the fuzz target
/// (`fuzz/`) reach the strict decoder that the MAC normally shields. fcx
/// itself never signs anything but [`Claims`].
#[doc(hidden)]
pub fn sign_raw_for_fuzzing(payload: &[u8], key: &[u8]) -> Option<String> {
    let tag = mac_for(key, payload).ok()?.finalize().into_bytes();
    let mut t = URL_SAFE_NO_PAD.encode(payload);
    t.push('.');
    t.push_str(&URL_SAFE_NO_PAD.encode(tag));
    Some(t)
}

/// The claims of a validly signed token (known, unretired key; signature;
/// strict decode), before any expectation is checked: for a click on a card
/// this process did not send (it was sent before a restart), whose chat and
/// scope can only come from the token itself.
pub fn peek(token: &str, keys: &KeyRing) -> Result<Claims, Denied> {
    let (payload, tag) = split_token(token)?;
    let version_bytes: [u8; 4] = payload
        .get(1..5)
        .and_then(|b| b.try_into().ok())
        .ok_or(Denied::Malformed)?;
    let key = keys.key_for(u32::from_be_bytes(version_bytes))?;
    mac_for(key, &payload)
        .map_err(|_| Denied::UnknownKey)?
        .verify_slice(&tag)
        .map_err(|_| Denied::BadSignature)?;
    parse_payload(&payload).map(|(_, c)| c)
}

/// [`peek`] for the fuzz target's round-trip property.
#[doc(hidden)]
pub fn decode_for_fuzzing(token: &str, keys: &KeyRing) -> Option<Claims> {
    peek(token, keys).ok()
}

/// Splits and decodes a token: payload and tag bytes. Shape only.
fn split_token(token: &str) -> Result<(Vec<u8>, Vec<u8>), Denied> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(Denied::Malformed);
    }
    let (p, m) = token.split_once('.').ok_or(Denied::Malformed)?;
    if p.is_empty() || m.is_empty() || m.contains('.') {
        return Err(Denied::Malformed);
    }
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| Denied::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(m).map_err(|_| Denied::Malformed)?;
    if tag.len() != MAC_LEN || payload.len() < HEADER_LEN {
        return Err(Denied::Malformed);
    }
    Ok((payload, tag))
}

/// Strict decode of a (signature-checked) payload: every byte accounted
/// for, UTF-8 fields within bounds.
fn parse_payload(p: &[u8]) -> Result<(u32, Claims), Denied> {
    let mut r = Reader(p);
    if r.take(1)? != [FORMAT] {
        return Err(Denied::Malformed);
    }
    let version = u32::from_be_bytes(r.array()?);
    let expires_at = i64::from_be_bytes(r.array()?);
    let nonce: [u8; NONCE_LEN] = r.array()?;
    let mut fields: [String; 6] = Default::default();
    for f in &mut fields {
        let len = u16::from_be_bytes(r.array()?) as usize;
        if len > MAX_FIELD_BYTES {
            return Err(Denied::Malformed);
        }
        *f = std::str::from_utf8(r.take(len)?)
            .map_err(|_| Denied::Malformed)?
            .to_string();
    }
    if !r.0.is_empty() {
        return Err(Denied::Malformed);
    }
    let [run_id, scope, chat_id, operator, action, fingerprint] = fields;
    Ok((
        version,
        Claims {
            run_id,
            scope,
            chat_id,
            operator,
            action,
            fingerprint,
            expires_at,
            nonce,
        },
    ))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Denied> {
        if self.0.len() < n {
            return Err(Denied::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Denied> {
        self.take(N)?.try_into().map_err(|_| Denied::Malformed)
    }
}

/// Checks a token without consuming it (for a click that only asks, or
/// before [`NonceStore::consume`]). `now` is unix seconds.
pub fn verify(
    token: &str,
    keys: &KeyRing,
    now: i64,
    expected: &Expected<'_>,
) -> Result<Claims, Denied> {
    let claims = peek(token, keys)?;
    if now >= claims.expires_at {
        return Err(Denied::Expired);
    }
    if expected.operator.is_empty() || !claims.operator.split(',').any(|o| o == expected.operator) {
        return Err(Denied::WrongOperator);
    }
    if claims.scope != expected.scope {
        return Err(Denied::WrongScope);
    }
    if claims.chat_id != expected.chat_id {
        return Err(Denied::WrongChat);
    }
    if expected.action.is_some_and(|a| a != claims.action) {
        return Err(Denied::WrongAction);
    }
    if expected.run_id.is_some_and(|r| r != claims.run_id) {
        return Err(Denied::WrongRun);
    }
    // An empty fingerprint is never valid: the worker would skip its check.
    if claims.fingerprint.is_empty()
        || expected
            .fingerprint
            .is_some_and(|f| f != claims.fingerprint)
    {
        return Err(Denied::StaleFingerprint);
    }
    Ok(claims)
}

/// [`verify`], then burns the nonce: a token acts at most once.
pub fn verify_once(
    token: &str,
    keys: &KeyRing,
    now: i64,
    expected: &Expected<'_>,
    nonces: &dyn NonceStore,
) -> Result<Claims, Denied> {
    let claims = verify(token, keys, now, expected)?;
    // Counted against the clicking user (one of the claim's operators).
    nonces.consume(expected.operator, &claims.nonce, claims.expires_at, now)?;
    Ok(claims)
}

/// Single-use memory for nonces. A nonce only needs remembering until its
/// token expires; after that the expiry check refuses it anyway.
pub trait NonceStore: Send + Sync {
    /// Records `nonce`, used by `actor` (the token's operator), as used;
    /// `Err(Replayed)` if it already was.
    fn consume(
        &self,
        actor: &str,
        nonce: &[u8; NONCE_LEN],
        expires_at: i64,
        now: i64,
    ) -> Result<(), Denied>;
}

/// An in-process [`NonceStore`]. Bounded per actor: someone who mints and
/// clicks buttons without end fills only their own quota and is refused
/// (fails closed) rather than forgetting a nonce that could be replayed;
/// everyone else's buttons keep working.
pub struct MemoryNonceStore {
    seen: Mutex<Seen>,
    per_actor: usize,
    /// Tests move the store's monotonic clock on with this.
    #[cfg(test)]
    mono_skew: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Seen {
    by_nonce: HashMap<[u8; NONCE_LEN], Used>,
    per_actor: HashMap<std::sync::Arc<str>, usize>,
    /// Sweep expired nonces when the map reaches this size.
    next_sweep: usize,
}

/// How long past its token's expiry a used nonce is still remembered: a
/// wall clock stepped back (NTP, an operator) by up to this much makes an
/// expired token valid again by its expiry, and its nonce must still refuse
/// it.
pub(crate) const CLOCK_STEP_GRACE_SECS: i64 = 2 * 3600;

/// One used nonce: who used it, and until when it must be remembered.
struct Used {
    expires_at: i64,
    /// The token's remaining life (plus the grace) when it was used, on the
    /// monotonic clock: a wall clock stepped ahead must not let a sweep
    /// forget a nonce whose token is still live by real time. A nonce is
    /// forgotten only once both clocks say its token expired a grace ago.
    until: Instant,
    actor: std::sync::Arc<str>,
}

impl Used {
    fn new(expires_at: i64, now: i64, mono: Instant, actor: std::sync::Arc<str>) -> Self {
        let left = expires_at
            .saturating_sub(now)
            .saturating_add(CLOCK_STEP_GRACE_SECS);
        let left = u64::try_from(left).unwrap_or(0);
        Used {
            expires_at,
            until: mono.checked_add(Duration::from_secs(left)).unwrap_or(mono),
            actor,
        }
    }

    fn live(&self, now: i64, mono: Instant) -> bool {
        self.expires_at.saturating_add(CLOCK_STEP_GRACE_SECS) > now || mono < self.until
    }
}

impl Seen {
    fn sweep(&mut self, now: i64, mono: Instant) {
        let per_actor = &mut self.per_actor;
        self.by_nonce.retain(|_, u| {
            let live = u.live(now, mono);
            if !live && let Some(n) = per_actor.get_mut(&u.actor) {
                *n = n.saturating_sub(1);
            }
            live
        });
        per_actor.retain(|_, n| *n > 0);
        self.next_sweep = (self.by_nonce.len() * 2).max(1024);
    }
}

impl MemoryNonceStore {
    /// `per_actor`: live nonces one actor may hold.
    pub fn new(per_actor: usize) -> Self {
        MemoryNonceStore {
            seen: Mutex::new(Seen::default()),
            per_actor: per_actor.max(1),
            #[cfg(test)]
            mono_skew: std::sync::atomic::AtomicU64::new(0),
        }
    }

    #[cfg(not(test))]
    fn mono(&self) -> Instant {
        Instant::now()
    }

    #[cfg(test)]
    fn mono(&self) -> Instant {
        let skew = self.mono_skew.load(std::sync::atomic::Ordering::Relaxed);
        Instant::now() + Duration::from_secs(skew)
    }

    /// Moves the store's monotonic clock `secs` on (tests).
    #[cfg(test)]
    pub(crate) fn advance(&self, secs: u64) {
        self.mono_skew
            .fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Live nonces held.
    pub fn len(&self) -> usize {
        self.seen.lock().map_or(0, |m| m.by_nonce.len())
    }

    /// No live nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryNonceStore {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl NonceStore for MemoryNonceStore {
    fn consume(
        &self,
        actor: &str,
        nonce: &[u8; NONCE_LEN],
        expires_at: i64,
        now: i64,
    ) -> Result<(), Denied> {
        // A poisoned lock only means another thread panicked mid-insert;
        // the map itself is still consistent.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.by_nonce.contains_key(nonce) {
            return Err(Denied::Replayed);
        }
        let used = |s: &Seen| s.per_actor.get(actor).copied().unwrap_or(0);
        if used(&seen) >= self.per_actor || seen.by_nonce.len() >= seen.next_sweep {
            seen.sweep(now, self.mono());
            if used(&seen) >= self.per_actor {
                return Err(Denied::Busy);
            }
        }
        let key: std::sync::Arc<str> = match seen.per_actor.get_key_value(actor) {
            Some((k, _)) => k.clone(),
            None => actor.into(),
        };
        *seen.per_actor.entry(key.clone()).or_insert(0) += 1;
        seen.by_nonce
            .insert(*nonce, Used::new(expires_at, now, self.mono(), key));
        Ok(())
    }
}

#[cfg(test)]
#[path = "callback_tests.rs"]
mod tests;
