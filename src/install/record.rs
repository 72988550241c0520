//! `installs.toml` in the data dir: what each `install` did, so `uninstall` knows which
//! backup to restore and which servers it may take out of `config.toml`.
//!
//! ```toml
//! [[install]]
//! client = "cursor"
//! scope = "user"
//! file = "/home/u/.cursor/mcp.json"
//! backup = "/home/u/.cursor/mcp.json.mcp-warden-backup-20260901T120000Z"  # absent: install created the file
//! backup_digest = "sha256:<hex>"  # the backup as made (mode 0600)
//! mode = 420                      # the client file's own mode, given back by uninstall
//! written = "sha256:<hex>"        # the client file as install left it
//! at = "2026-09-01T12:00:00Z"
//! config = "/home/u/src/app/mcp-warden.toml"  # a project's servers went there; absent: config.toml
//! servers = { github = "sha256:<hex>" }  # added to config.toml: table name → definition digest
//! uses = { fs = "sha256:<hex>" }         # already there with the same definition
//! rules = ["fs.excluded-tools"]          # [[policy.rules]] added from the entries' tool lists
//! ```
//!
//! Records of one file are kept oldest first; `uninstall` undoes the newest. Like the
//! trust store, a file this module cannot read is an error with its position and is
//! never replaced; writes are atomic and serialized by the caller's lock.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::InstallError;
use crate::config::Source;
use crate::file_error::FileError;
use crate::paths::Paths;

/// The record file's name in the data dir.
pub const FILE: &str = "installs.toml";

/// One `install` that changed a client's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub client: String,
    pub scope: String,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// `sha256:<hex>` of the backup as made: `uninstall` restores only those bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_digest: Option<String>,
    /// The client file's mode before install (backups are 0600 whatever it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    pub written: String,
    pub at: String,
    /// The workspace `mcp-warden.toml` the servers went to; absent: the user config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub uses: BTreeMap<String, String>,
    /// Ids of the `[[policy.rules]]` added (from the entries' own tool lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

impl Record {
    /// The client file.
    #[must_use]
    pub fn file(&self) -> PathBuf {
        PathBuf::from(&self.file)
    }

    /// The backup, when the file existed before.
    #[must_use]
    pub fn backup(&self) -> Option<PathBuf> {
        self.backup.as_ref().map(PathBuf::from)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Store {
    #[serde(default)]
    install: Vec<Record>,
}

/// The record file.
#[must_use]
pub fn path(paths: &Paths) -> PathBuf {
    paths.data_dir.join(FILE)
}

/// Every record, oldest first; none when the file does not exist.
pub fn read(paths: &Paths) -> Result<Vec<Record>, InstallError> {
    let path = path(paths);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(cause) => return Err(InstallError::File(FileError::Read { path, cause })),
    };
    let text = crate::config::error::utf8_text(&path, bytes)
        .map_err(|d| InstallError::Invalid(corrupt(d)))?;
    parse(&path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Vec<Record>, InstallError> {
    let source = Source::new(path, text);
    toml::from_str::<Store>(text)
        .map(|s| s.install)
        .map_err(|e| InstallError::Invalid(corrupt(source.toml_error(&e, None))))
}

fn corrupt(d: crate::config::Diagnostic) -> crate::config::Diagnostic {
    d.with_hint(
        "mcp-warden never replaces a record it cannot read: fix it by hand (the backups \
         beside each client file are still there)",
    )
}

/// Replaces the record file with `records` (mode 0600).
pub fn write(paths: &Paths, records: &[Record]) -> Result<(), InstallError> {
    let path = path(paths);
    let store = Store {
        install: records.to_vec(),
    };
    let body = toml::to_string(&store).map_err(|e| {
        InstallError::File(FileError::Write {
            path: path.clone(),
            cause: io::Error::other(e.to_string()),
        })
    })?;
    let text = format!(
        "# What `mcp-warden install` did, newest last; `mcp-warden uninstall` reads it.\n\n{body}"
    );
    crate::durable::replace(&path, text.as_bytes(), 0o600)
        .map_err(|cause| InstallError::File(FileError::Write { path, cause }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = Record {
            client: "cursor".into(),
            scope: "user".into(),
            file: "/h/.cursor/mcp.json".into(),
            backup: Some("/h/.cursor/mcp.json.mcp-warden-backup-20260901T120000Z".into()),
            backup_digest: Some("sha256:22".into()),
            mode: Some(0o644),
            written: "sha256:00".into(),
            at: "2026-09-01T12:00:00Z".into(),
            config: None,
            rules: Vec::new(),
            servers: BTreeMap::from([("gh".into(), "sha256:11".into())]),
            uses: BTreeMap::new(),
        };
        let text = toml::to_string(&Store {
            install: vec![record.clone()],
        })
        .expect("serializes");
        assert_eq!(parse(Path::new("/r"), &text).expect("parses"), [record]);
    }

    #[test]
    fn a_corrupt_record_file_is_an_error_with_a_position() {
        let err = parse(Path::new("/r.toml"), "[[install]]\nclient = 1\n").expect_err("bad");
        assert!(err.to_string().starts_with("/r.toml:2:"), "{err}");
    }
}
