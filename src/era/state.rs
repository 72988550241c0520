//! The `requestState` envelope (docs/dual-era.md §3): the only `requestState` a client
//! ever gets from mcp-warden, whatever it wraps (a modern server's own state, a held
//! legacy call, one of our own questions).
//!
//! `mws1.` base64url(payload) `.` base64url(tag), unpadded. The payload is the JCS
//! canonical JSON of [`Payload`]; the tag is HMAC-SHA-256 under [`StateKey`] (derived
//! from the per-install audit key with its own label) over the ASCII of everything
//! before the second dot. The 2026-07-28 spec makes `requestState` attacker-controlled
//! input (basic/patterns/mrtr.mdx "Server Requirements" 4-5): the envelope binds it to
//! this process (boot id), the method, a digest of the params, the server instance,
//! the keys asked, an expiry, and a nonce the [`StateStore`] accepts once.
//!
//! Integrity only, no encryption: the client would see the server's state in the clear
//! on a direct connection anyway. Pure: the clock and the randomness are passed in.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::audit::key::{AuditKey, KEY_LEN};
use crate::canonical;

/// Every envelope starts so. (`mw1.` is already the `resources/list` cursor's prefix.)
pub const PREFIX: &str = "mws1.";
/// The label the envelope's key is derived from the audit key with.
pub const KEY_LABEL: &[u8] = b"mcp-warden requestState v1";
/// How long an envelope is good for: a person answers elicitations, so minutes.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// Envelopes outstanding per session; past it the oldest is forgotten (its retry is
/// then refused as replayed), so a client that never retries costs bounded memory.
pub const MAX_STATES: usize = 1024;
/// The top-level params members a retry changes, left out of the params digest.
pub const RETRY_KEYS: [&str; 3] = ["_meta", "inputResponses", "requestState"];
/// Where the refusal's kind goes in the error's `data`.
pub const DATA_KEY: &str = "mcp-warden/state";

const VERSION: u8 = 1;

/// The envelope's key. Its `Debug` does not show the bytes.
#[derive(Clone)]
pub struct StateKey(Hmac<Sha256>);

impl StateKey {
    /// The key for envelopes from the per-install audit key.
    #[must_use]
    pub fn from_audit_key(key: &AuditKey) -> Self {
        Self::from_bytes(&key.derive(KEY_LABEL))
    }

    /// A key from known bytes (tests; a session without an audit key draws them).
    ///
    /// # Panics
    /// Never: HMAC takes keys of any length.
    #[must_use]
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        Self(<Hmac<Sha256>>::new_from_slice(bytes).expect("hmac accepts any key length"))
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(signed.as_bytes());
        mac
    }
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

/// What an envelope stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    /// Wraps a modern server's own `requestState` (its raw text in `r`).
    Pass,
    /// A legacy server's call held open while the client answers.
    Held,
    /// mcp-warden's own `ask`.
    Ask,
    /// mcp-warden's in-client review of a held item.
    Review,
    /// A legacy -32042 URL elicitation, bridged.
    Url,
}

/// The envelope's content (docs/dual-era.md §3, one letter a member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Format version: 1.
    pub v: u8,
    /// Nonce, base64url of 16 random bytes: the single-use table's key.
    pub n: String,
    /// Boot id, base64url of the 8 random bytes of this session.
    pub b: String,
    pub k: StateKind,
    /// Server name and instance (absent for `ask` and `review`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<u64>,
    /// The method of the request.
    pub m: String,
    /// `sha256:…` of the params without [`RETRY_KEYS`] (see [`params_digest`]).
    pub d: String,
    /// Expiry, Unix milliseconds.
    pub x: u64,
    /// The `inputRequests` keys the client was given, sorted.
    pub q: Vec<String>,
    /// `pass`: the keys of the `roots/list` entries mcp-warden answers itself, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub w: Vec<String>,
    /// `pass`: the server's `requestState`, its raw JSON text (quotes and escapes as
    /// received), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<String>,
    /// `held`/`ask`/`review`: the handle of the session-side record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<u64>,
}

impl Payload {
    /// The server's `requestState` as the raw JSON text it sent, when there was one.
    #[must_use]
    pub fn server_state(&self) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(self.r.as_deref()?).ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// What an envelope is issued for; the store adds nonce, boot id and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub kind: StateKind,
    pub binding: Binding,
    /// The keys the client was given.
    pub issued: Vec<String>,
    /// The keys mcp-warden answers itself at the retry (`roots/list`).
    pub ours: Vec<String>,
    /// The server's `requestState`, its raw JSON text.
    pub server_state: Option<String>,
    pub handle: Option<u64>,
}

/// What a retry must match: the request the envelope was issued on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub method: String,
    /// [`params_digest`] of the request's params.
    pub digest: String,
    pub server: Option<String>,
    pub instance: Option<u64>,
}

/// Why an envelope was refused (docs/dual-era.md §3, in the order checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("requestState was not issued by mcp-warden")]
    Invalid,
    #[error("requestState is from an earlier run of mcp-warden")]
    Stale,
    #[error("requestState has expired; send the request again without it")]
    Expired,
    #[error("requestState belongs to another request")]
    Mismatch,
    #[error("requestState was already used")]
    Replayed,
}

impl StateError {
    /// The word in `data["mcp-warden/state"]`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Stale => "stale",
            Self::Expired => "expired",
            Self::Mismatch => "mismatch",
            Self::Replayed => "replayed",
        }
    }

    /// The audit rule: `state:<kind>`.
    #[must_use]
    pub fn rule(self) -> String {
        format!("state:{}", self.as_str())
    }

    /// The error's `data`.
    #[must_use]
    pub fn data(self) -> Value {
        json!({ DATA_KEY: self.as_str() })
    }
}

/// The digest a `requestState` is bound to: the params without `_meta`,
/// `inputResponses` and `requestState` (absent params digest as `{}`).
pub fn params_digest(params: Option<&str>) -> Result<String, canonical::CanonicalError> {
    canonical::digest_without(params.unwrap_or("{}"), &RETRY_KEYS)
}

/// Seals `payload`: `mws1.<payload>.<tag>`.
#[must_use]
pub fn seal(key: &StateKey, payload: &Payload) -> String {
    // A Payload serializes to JSON without fail and its canonical form exists (strings
    // and small integers only); the fallback is never taken.
    let json = serde_json::to_string(payload).unwrap_or_default();
    let canonical = canonical::canonicalize(&json).unwrap_or(json);
    let mut out = String::with_capacity(PREFIX.len() + canonical.len() * 4 / 3 + 48);
    out.push_str(PREFIX);
    out.push_str(&URL_SAFE_NO_PAD.encode(canonical.as_bytes()));
    let tag = key.mac(&out).finalize().into_bytes();
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(tag));
    out
}

/// Opens an envelope: its tag and format only (the first check of §3). Every byte of
/// the text is covered: the tag by the strict decoding (no padding, no stray bits),
/// the rest by the MAC.
pub fn open(key: &StateKey, text: &str) -> Result<Payload, StateError> {
    let body = text.strip_prefix(PREFIX).ok_or(StateError::Invalid)?;
    let (payload_b64, tag_b64) = body.split_once('.').ok_or(StateError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag_b64)
        .map_err(|_| StateError::Invalid)?;
    let signed = &text[..PREFIX.len() + payload_b64.len()];
    key.mac(signed)
        .verify_slice(&tag)
        .map_err(|_| StateError::Invalid)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| StateError::Invalid)?;
    let payload: Payload = serde_json::from_slice(&json).map_err(|_| StateError::Invalid)?;
    if payload.v != VERSION {
        return Err(StateError::Invalid);
    }
    Ok(payload)
}

/// One session's envelopes: the key, the boot id, and the nonces not yet used.
#[derive(Debug)]
pub struct StateStore {
    key: StateKey,
    boot: String,
    /// Nonce → expiry (Unix ms).
    issued: HashMap<String, u64>,
    /// Nonces oldest first (expiries grow with it: one TTL for all).
    order: VecDeque<String>,
}

impl StateStore {
    /// A store for one session: `boot` is 8 random bytes drawn when it starts.
    #[must_use]
    pub fn new(key: StateKey, boot: [u8; 8]) -> Self {
        Self {
            key,
            boot: URL_SAFE_NO_PAD.encode(boot),
            issued: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Envelopes outstanding.
    #[must_use]
    pub fn len(&self) -> usize {
        self.issued.len()
    }

    /// Whether none is outstanding.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.issued.is_empty()
    }

    /// Issues an envelope for `draft` at `now_ms` with `nonce` (16 random bytes).
    /// Expired entries are forgotten first; past [`MAX_STATES`] the oldest is.
    pub fn issue(&mut self, draft: Draft, nonce: [u8; 16], now_ms: u64) -> String {
        self.purge(now_ms);
        while self.order.len() >= MAX_STATES {
            if let Some(old) = self.order.pop_front() {
                self.issued.remove(&old);
            }
        }
        let n = URL_SAFE_NO_PAD.encode(nonce);
        let ttl = u64::try_from(STATE_TTL.as_millis()).unwrap_or(u64::MAX);
        let expires = now_ms.saturating_add(ttl);
        let mut issued = draft.issued;
        issued.sort();
        let mut ours = draft.ours;
        ours.sort();
        let payload = Payload {
            v: VERSION,
            n: n.clone(),
            b: self.boot.clone(),
            k: draft.kind,
            s: draft.binding.server,
            i: draft.binding.instance,
            m: draft.binding.method,
            d: draft.binding.digest,
            x: expires,
            q: issued,
            w: ours,
            r: draft
                .server_state
                .map(|raw| URL_SAFE_NO_PAD.encode(raw.as_bytes())),
            h: draft.handle,
        };
        self.issued.insert(n.clone(), expires);
        self.order.push_back(n);
        seal(&self.key, &payload)
    }

    /// Checks a retry's envelope against the request it came with, in the order of
    /// docs/dual-era.md §3, and uses it up. An expired one is forgotten; a mismatched
    /// one stays usable (a mismatch proves nothing was used).
    pub fn redeem(
        &mut self,
        text: &str,
        now_ms: u64,
        expect: &Binding,
    ) -> Result<Payload, StateError> {
        let payload = self.check(text, now_ms, expect)?;
        self.order.retain(|n| *n != payload.n);
        self.issued.remove(&payload.n);
        Ok(payload)
    }

    /// The kind of a genuine envelope (its tag checked, nothing else): which request
    /// it belongs to decides what it must match.
    #[must_use]
    pub fn kind_of(&self, text: &str) -> Option<StateKind> {
        open(&self.key, text).ok().map(|p| p.k)
    }

    /// Every check of [`StateStore::redeem`] without using the envelope up (an
    /// expired one is forgotten all the same): for a step that reads the answers
    /// before the request goes on to where it is redeemed.
    pub fn check(
        &mut self,
        text: &str,
        now_ms: u64,
        expect: &Binding,
    ) -> Result<Payload, StateError> {
        let payload = open(&self.key, text)?;
        if payload.b != self.boot {
            return Err(StateError::Stale);
        }
        if now_ms >= payload.x {
            self.forget(&payload.n);
            return Err(StateError::Expired);
        }
        if payload.m != expect.method
            || payload.d != expect.digest
            || payload.s != expect.server
            || payload.i != expect.instance
        {
            return Err(StateError::Mismatch);
        }
        if !self.issued.contains_key(&payload.n) {
            return Err(StateError::Replayed);
        }
        Ok(payload)
    }

    fn forget(&mut self, nonce: &str) {
        if self.issued.remove(nonce).is_some() {
            self.order.retain(|n| n != nonce);
        }
    }

    fn purge(&mut self, now_ms: u64) {
        while let Some(front) = self.order.front() {
            match self.issued.get(front) {
                Some(&expires) if expires > now_ms => break,
                _ => {
                    if let Some(old) = self.order.pop_front() {
                        self.issued.remove(&old);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn store() -> StateStore {
        StateStore::new(StateKey::from_bytes(&[7; KEY_LEN]), [1; 8])
    }

    fn binding() -> Binding {
        Binding {
            method: "tools/call".into(),
            digest: params_digest(Some(r#"{"name":"x","arguments":{"a":1}}"#)).expect("json"),
            server: Some("srv".into()),
            instance: Some(3),
        }
    }

    fn draft(state: Option<&str>) -> Draft {
        Draft {
            kind: StateKind::Pass,
            binding: binding(),
            issued: vec!["b".into(), "a".into()],
            ours: vec!["r".into()],
            server_state: state.map(str::to_owned),
            handle: None,
        }
    }

    #[test]
    fn issued_then_redeemed_once_with_the_servers_bytes() {
        let mut s = store();
        let raw = r#""a\u0022b\/c""#;
        let env = s.issue(draft(Some(raw)), [9; 16], NOW);
        assert!(env.starts_with(PREFIX));
        let payload = s.redeem(&env, NOW + 1, &binding()).expect("valid");
        assert_eq!(payload.server_state().as_deref(), Some(raw));
        assert_eq!(payload.q, ["a", "b"]);
        assert_eq!(payload.w, ["r"]);
        assert_eq!(
            s.redeem(&env, NOW + 2, &binding()),
            Err(StateError::Replayed)
        );
    }

    #[test]
    fn each_check_in_its_order() {
        let mut s = store();
        let env = s.issue(draft(None), [1; 16], NOW);
        assert_eq!(
            s.redeem("mws1.e30.AAAA", NOW, &binding()),
            Err(StateError::Invalid)
        );
        assert_eq!(
            s.redeem("opaque", NOW, &binding()),
            Err(StateError::Invalid)
        );
        // Another process: same key (per install), another boot id.
        let mut other = StateStore::new(StateKey::from_bytes(&[7; KEY_LEN]), [2; 8]);
        assert_eq!(other.redeem(&env, NOW, &binding()), Err(StateError::Stale));
        // Another install's key: not ours at all.
        let mut foreign = StateStore::new(StateKey::from_bytes(&[8; KEY_LEN]), [1; 8]);
        assert_eq!(
            foreign.redeem(&env, NOW, &binding()),
            Err(StateError::Invalid)
        );
        let mut wrong = binding();
        wrong.digest = params_digest(Some(r#"{"name":"x","arguments":{"a":2}}"#)).expect("json");
        assert_eq!(s.redeem(&env, NOW, &wrong), Err(StateError::Mismatch));
        let mut wrong = binding();
        wrong.instance = Some(4);
        assert_eq!(s.redeem(&env, NOW, &wrong), Err(StateError::Mismatch));
        let mut wrong = binding();
        wrong.method = "prompts/get".into();
        assert_eq!(s.redeem(&env, NOW, &wrong), Err(StateError::Mismatch));
        // A mismatch used nothing: the right request still redeems it.
        assert!(s.redeem(&env, NOW, &binding()).is_ok());
    }

    #[test]
    fn expired_is_refused_and_forgotten() {
        let mut s = store();
        let env = s.issue(draft(None), [1; 16], NOW);
        let ttl = u64::try_from(STATE_TTL.as_millis()).expect("small");
        assert_eq!(
            s.redeem(&env, NOW + ttl, &binding()),
            Err(StateError::Expired)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn the_oldest_is_evicted_past_the_bound() {
        let mut s = store();
        let first = s.issue(draft(None), [0; 16], NOW);
        for i in 1..=MAX_STATES {
            let mut nonce = [0; 16];
            nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s.issue(draft(None), nonce, NOW);
        }
        assert_eq!(s.len(), MAX_STATES);
        assert_eq!(s.redeem(&first, NOW, &binding()), Err(StateError::Replayed));
    }

    #[test]
    fn digest_ignores_exactly_the_three_retry_keys() {
        let base = params_digest(Some(r#"{"name":"x","arguments":{"a":1}}"#)).expect("json");
        let retry = params_digest(Some(
            r#"{"arguments":{"a":1},"_meta":{"p":1},"name":"x","inputResponses":{"k":{}},"requestState":"s"}"#,
        ))
        .expect("json");
        assert_eq!(base, retry);
        // Nested ones count; any other member counts.
        let nested = params_digest(Some(r#"{"name":"x","arguments":{"a":1,"_meta":1}}"#));
        assert_ne!(Ok(base.clone()), nested);
        let other = params_digest(Some(r#"{"name":"x","arguments":{"a":1},"task":{}}"#));
        assert_ne!(Ok(base), other);
    }

    proptest! {
        #[test]
        fn round_trip(state in proptest::option::of("\\PC{0,40}"), n in any::<[u8; 16]>(), m in "[a-z/]{1,20}") {
            let mut s = store();
            let mut d = draft(None);
            let raw = state.map(|t| serde_json::to_string(&t).expect("string"));
            d.server_state = raw.clone();
            d.binding.method = m;
            let expect = d.binding.clone();
            let env = s.issue(d, n, NOW);
            let payload = s.redeem(&env, NOW, &expect).expect("valid");
            prop_assert_eq!(payload.server_state(), raw);
        }

        #[test]
        fn any_single_byte_change_is_refused(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut s = store();
            let env = s.issue(draft(Some("\"st\"")), [5; 16], NOW);
            let mut bytes = env.clone().into_bytes();
            let i = at.index(bytes.len());
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(s.redeem(&changed, NOW, &binding()).is_err());
            // The original is still good: nothing was used by the forgery.
            prop_assert!(s.redeem(&env, NOW, &binding()).is_ok());
        }

        #[test]
        fn digest_changes_with_any_other_member(key in "[a-zA-Z]{1,12}", value in any::<i32>()) {
            prop_assume!(!RETRY_KEYS.contains(&key.as_str()) && key != "name");
            let base = params_digest(Some(r#"{"name":"x"}"#)).expect("json");
            let with = format!(r#"{{"name":"x",{}:{value}}}"#, serde_json::to_string(&key).expect("key"));
            prop_assert_ne!(base, params_digest(Some(&with)).expect("json"));
        }
    }
}
