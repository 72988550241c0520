//! The anchor (SPEC "Audit"): `audit/anchor.jsonl`, one keyed line per sealed session,
//! so that `audit verify` finds a whole session, or a whole day file, that was removed:
//! each chain proves its own lines, the anchor proves the chains.
//!
//! ```json
//! {"n":1,"session":"…","day":"2026-12-07","records":12,"hash":"hmac-sha256:…","prev":"sha256:000…","mac":"hmac-sha256:…"}
//! ```
//!
//! `n` counts from 1, `hash` is the session's seal hash, `prev` the previous line's `mac`
//! ([`GENESIS`] for the first), and `mac` the keyed chain hash (as a record's `hash`)
//! over `prev` and the line's canonical JSON without `mac`. Lines are appended under an
//! exclusive lock on `.anchor.jsonl.lck` (several `serve` processes seal into one
//! anchor), the file is 0600 and opened without following a symlink. Sessions sealed
//! before the anchor existed are simply not in it.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AuditError;
use super::key::PreparedKey;
use super::record::GENESIS;
use crate::canonical;
use crate::time::Day;

/// The anchor's file name in the audit directory.
pub const FILE: &str = "anchor.jsonl";

/// Private, like every audit file.
const MODE: u32 = 0o600;

/// One anchored seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub n: u64,
    pub session: String,
    /// The day file (`YYYY-MM-DD`) the seal is in.
    pub day: String,
    /// The session's records, the seal included.
    pub records: u64,
    /// The seal's chain hash.
    pub hash: String,
    pub prev: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
}

/// The anchor file of the audit directory `dir`.
#[must_use]
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The keyed hash of `entry` (its `mac` left out).
fn mac_of(key: &PreparedKey, entry: &Entry) -> Result<String, String> {
    let mut bare = entry.clone();
    bare.mac = String::new();
    let text = serde_json::to_string(&bare).map_err(|e| e.to_string())?;
    let body = canonical::canonicalize(&text).map_err(|e| e.to_string())?;
    let mut out = String::new();
    key.chain_hash_into(&entry.prev, body.as_bytes(), &mut out);
    Ok(out)
}

/// Appends the seal of `session` (in `day`'s file, after `records` records, with chain
/// hash `hash`) to the anchor in `dir`. Blocking.
pub(crate) fn append(
    dir: &Path,
    key: &PreparedKey,
    session: &str,
    day: Day,
    records: u64,
    hash: &str,
) -> Result<(), AuditError> {
    let file = path(dir);
    let io = |e: std::io::Error| AuditError::io(&file, e);
    let _guard =
        crate::durable::lock_exclusive(&dir.join(format!(".{FILE}.lck")), MODE).map_err(io)?;
    let (n, prev) = match read(dir).map_err(io)?.last() {
        Some((_, Ok(last))) => (last.n + 1, last.mac.clone()),
        // An anchor whose last line does not read is not continued from a guess:
        // verify reports that line; the new one starts over from its own genesis.
        Some((line, Err(_))) => (*line as u64 + 1, GENESIS.to_owned()),
        None => (1, GENESIS.to_owned()),
    };
    let mut entry = Entry {
        n,
        session: session.to_owned(),
        day: day.to_string(),
        records,
        hash: hash.to_owned(),
        prev,
        mac: String::new(),
    };
    entry.mac = mac_of(key, &entry).map_err(|e| io(std::io::Error::other(e)))?;
    let mut line = serde_json::to_string(&entry).map_err(|e| io(std::io::Error::other(e)))?;
    line.push('\n');
    let mut out = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(MODE)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(&file)
        .map_err(io)?;
    out.write_all(line.as_bytes()).map_err(io)?;
    out.sync_data().map_err(io)
}

/// The anchor's lines (1-based line number, the entry or why it does not read); empty
/// when there is no anchor.
pub(crate) fn read(dir: &Path) -> std::io::Result<Vec<(usize, Result<Entry, String>)>> {
    let Some(bytes) = crate::durable::read_regular(&path(dir))? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, serde_json::from_str(l).map_err(|e| e.to_string())))
        .collect())
}

/// What is wrong with anchor line `entry` following `prev` (the previous line's `mac`
/// and `n`), under `key`; `None` when it is whole.
pub(crate) fn check(entry: &Entry, prev: (&str, u64), key: Option<&PreparedKey>) -> Option<String> {
    let Some(key) = key else {
        return Some("the anchor cannot be checked without the audit key".to_owned());
    };
    match mac_of(key, entry) {
        Ok(mac) if mac == entry.mac => {}
        Ok(_) => return Some("edited: the anchor line's mac does not match it".to_owned()),
        Err(e) => return Some(format!("not an anchor line: {e}")),
    }
    if entry.prev != prev.0 || entry.n != prev.1 + 1 {
        return Some(format!(
            "broken anchor: line {} does not follow anchor entry {} (a line was removed or reordered)",
            entry.n, prev.1
        ));
    }
    None
}
