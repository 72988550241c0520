//! The per-install HMAC key (`audit.key` in the data dir) and argument HMACs.
//!
//! Arguments are not logged in clear by default, only their HMAC-SHA-256 under a key
//! that never leaves this machine: the same arguments give the same value (so a
//! reviewer can see that two calls were identical), but a short secret cannot be
//! recovered by hashing guesses, as it could from a plain SHA-256.
//!
//! The key is 32 bytes from `/dev/urandom`, created once, mode 0600, and never
//! rewritten: a new key would make earlier HMACs incomparable with later ones.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use super::AuditError;
use crate::canonical::{self, CanonicalError};

/// The key's length in bytes: SHA-256's output size, the length RFC 2104 recommends.
pub const KEY_LEN: usize = 32;

/// The per-install key. Its `Debug` does not show the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey([u8; KEY_LEN]);

impl AuditKey {
    /// A key from known bytes (tests, tools that check HMACs).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A key for another use, derived as HMAC-SHA-256(this key, `label`), so that no
    /// MAC made for one use can pass as one made for another (the `requestState`
    /// envelope's key, `crate::era::state`).
    ///
    /// # Panics
    /// Never: HMAC takes keys of any length.
    #[must_use]
    pub fn derive(&self, label: &[u8]) -> [u8; KEY_LEN] {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).expect("hmac accepts any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// Reads the key at `path`, creating it first (32 random bytes, mode 0600) if there
    /// is none. Safe against another process creating it at the same moment: the new
    /// key is written to a private temporary file and hard-linked into place, which
    /// fails if a key appeared meanwhile; then whichever key is in place is read.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        match Self::read(path) {
            Err(AuditError::Key { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let err = |source: io::Error| AuditError::Key {
            path: path.to_path_buf(),
            source: Arc::new(source),
        };
        let mut bytes = [0u8; KEY_LEN];
        random_bytes(&mut bytes).map_err(err)?;
        // Unique even between two sessions of one process starting at once.
        let mut tag = [0u8; 4];
        random_bytes(&mut tag).map_err(err)?;
        let mut name = format!("key.{}.", std::process::id());
        super::record::push_hex(&mut name, &tag);
        let tmp = path.with_extension(name + ".tmp");
        let create = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            match fs::hard_link(&tmp, path) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        };
        let created = create();
        let _ = fs::remove_file(&tmp);
        created.map_err(err)?;
        Self::read(path)
    }

    /// The key's bytes, for [`hmac_hex`] (tests compare with [`PreparedKey`]).
    #[cfg(test)]
    pub(crate) const fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Reads the key at `path` (for `audit verify`, which never creates one).
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        Self::read(path)
    }

    fn read(path: &Path) -> Result<Self, AuditError> {
        let err = |source: io::Error| AuditError::Key {
            path: path.to_path_buf(),
            source: Arc::new(source),
        };
        let file = fs::File::open(path).map_err(err)?;
        let mut bytes = Vec::with_capacity(KEY_LEN + 1);
        file.take(KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(err)?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
            err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the key must be exactly {KEY_LEN} bytes, found {}{}",
                    b.len(),
                    if b.len() > KEY_LEN { " or more" } else { "" }
                ),
            ))
        })?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// Lowercase hex HMAC-SHA-256, under `key`, of the RFC 8785 canonical form of
/// `arguments_json_text` (so key order and whitespace do not change it).
pub fn args_hmac(key: &AuditKey, arguments_json_text: &str) -> Result<String, CanonicalError> {
    let canonical = canonical::canonicalize(arguments_json_text)?;
    Ok(hmac_hex(&key.0, canonical.as_bytes()))
}

/// Lowercase hex HMAC-SHA-256 of `data` under `key`.
///
/// # Panics
/// Never: HMAC takes keys of any length (longer ones are hashed, shorter ones padded).
#[must_use]
pub fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(data);
    let mut out = String::with_capacity(64);
    super::record::push_hex(&mut out, &mac.finalize().into_bytes());
    out
}

/// The key made ready for many HMACs: HMAC's inner and outer padded-key states are
/// computed once here and cloned per message, instead of hashing both pads again for
/// every record (two SHA-256 blocks of the four or five a short message costs).
#[derive(Clone)]
pub(crate) struct PreparedKey(Hmac<Sha256>);

impl PreparedKey {
    pub(crate) fn new(key: &AuditKey) -> Self {
        Self(<Hmac<Sha256>>::new_from_slice(&key.0).expect("hmac accepts any key length"))
    }

    /// [`args_hmac`] under this key; arguments that cannot be canonicalized are
    /// hashed as the bytes they are (as the writer has always done).
    pub(crate) fn args_hmac(&self, arguments_json_text: &str) -> String {
        // Compact, sorted arguments (what most clients send) are their own canonical
        // form: one scan instead of a parse tree and a second text.
        if canonical::is_canonical(arguments_json_text) {
            return self.hex(arguments_json_text.as_bytes());
        }
        match canonical::canonicalize(arguments_json_text) {
            Ok(canonical) => self.hex(canonical.as_bytes()),
            Err(_) => self.hex(arguments_json_text.as_bytes()),
        }
    }

    /// `"hmac-sha256:" + hex(HMAC(prev + "\n" + canonical_body))` into `out`
    /// (cleared first): the keyed chain hash of an audit record.
    pub(crate) fn chain_hash_into(&self, prev: &str, canonical_body: &[u8], out: &mut String) {
        let mut mac = self.0.clone();
        mac.update(prev.as_bytes());
        mac.update(b"\n");
        mac.update(canonical_body);
        out.clear();
        out.push_str(super::record::KEYED_PREFIX);
        super::record::push_hex(out, &mac.finalize().into_bytes());
    }

    /// [`hmac_hex`] under this key.
    fn hex(&self, data: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(data);
        let mut out = String::with_capacity(64);
        super::record::push_hex(&mut out, &mac.finalize().into_bytes());
        out
    }
}

impl fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreparedKey(..)")
    }
}

/// Fills `buf` from the kernel's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    fs::File::open("/dev/urandom")?.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn args_hmac_is_taken_over_the_canonical_arguments() {
        let mut bytes = [0u8; KEY_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i).expect("small");
        }
        let key = AuditKey::from_bytes(bytes);
        // python3: hmac.new(bytes(range(32)), b'{"a":"x","b":1}', hashlib.sha256).hexdigest()
        let expected = "5fc3e786b5697f992a71677b7c1c11e7fe408fe27377e09dc8855907025b0161";
        assert_eq!(
            args_hmac(&key, r#"{"a":"x","b":1}"#).expect("hmac"),
            expected
        );
        assert_eq!(
            args_hmac(&key, "{ \"b\": 1.0, \"a\": \"\\u0078\" }").expect("hmac"),
            expected
        );
        assert_ne!(
            args_hmac(&key, r#"{"a":"x","b":2}"#).expect("hmac"),
            expected
        );
        assert!(args_hmac(&key, r#"{"a":1,"a":2}"#).is_err());
        assert_eq!(format!("{key:?}"), "AuditKey(..)");
    }

    #[test]
    fn a_prepared_key_gives_the_same_hmacs() {
        let key = AuditKey::from_bytes([9; KEY_LEN]);
        let prepared = PreparedKey::new(&key);
        for text in [
            r#"{ "b": 1.0, "a": "x" }"#,
            "{}",
            "not json",
            r#"{"a":1,"a":2}"#,
            r#"{"a":"x","b":1}"#,
            "[[[]]]",
        ] {
            let expected =
                args_hmac(&key, text).unwrap_or_else(|_| hmac_hex(key.bytes(), text.as_bytes()));
            assert_eq!(prepared.args_hmac(text), expected, "{text}");
        }
        // A clone per message: the prepared state is never advanced.
        assert_eq!(prepared.args_hmac("{}"), prepared.args_hmac("{}"));
    }

    #[test]
    fn the_key_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.key");
        let first = AuditKey::load_or_create(&path).expect("create");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read(&path).expect("read").len(), KEY_LEN);
        assert_eq!(AuditKey::load_or_create(&path).expect("load"), first);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("dir").flatten().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
        fs::write(&path, b"short").expect("write");
        let e = AuditKey::load_or_create(&path).expect_err("a short key is refused");
        assert!(e.to_string().contains("exactly 32 bytes, found 5"), "{e}");
    }
}
