//! Machine-specific identity (SPEC "Pinning"): the digest of the executable each
//! server runs. Paths and binaries differ from one machine to the next, so these live
//! in the data dir (`executables.toml`), never in the committed lock.
//!
//! Trust on first use, per machine and per file: the first digest seen for a path is
//! recorded; a later different one means the file was replaced under a pin (an
//! upgraded `node`, or a swapped server binary), and holds the tools of every server
//! that runs it until `mcp-warden pin SERVER` records the new digest. A file is hashed
//! again only when its size, inode, modification time or status-change time changed,
//! so a 100 MB runtime costs one read per change, not one per start. The change time
//! is what makes that safe: a writer can put back the length and the modification
//! time (`utimes`), but any write moves `ctime`, which only the clock sets.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::paths::Paths;

/// The file in the data dir.
pub const FILE: &str = "executables.toml";

/// Private local state, like the trust store.
const MODE: u32 = 0o600;

/// What is recorded of one executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    digest: String,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    inode: u64,
    /// Absent in records written before it was kept: such a record is hashed again.
    #[serde(default)]
    ctime: i64,
    #[serde(default)]
    ctime_nsec: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Store {
    #[serde(default)]
    executables: BTreeMap<String, Record>,
}

/// An executable's state on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// As recorded (or recorded now, on first sight).
    Known,
    /// Replaced since it was recorded.
    Changed { recorded: String, now: String },
}

/// Checks each program against the record, recording those seen for the first time;
/// a program that cannot be read is left out (the server will fail to start anyway).
/// Blocking: reads and may hash files.
pub fn check(paths: &Paths, programs: &[PathBuf]) -> anyhow::Result<BTreeMap<PathBuf, Seen>> {
    update(paths, |store| {
        let mut out = BTreeMap::new();
        for program in programs {
            let Ok(current) = measure(program, store.executables.get(&key(program))) else {
                continue;
            };
            let seen = match store.executables.get(&key(program)) {
                Some(r) if r.digest != current.digest => Seen::Changed {
                    recorded: r.digest.clone(),
                    now: current.digest.clone(),
                },
                _ => {
                    store.executables.insert(key(program), current);
                    Seen::Known
                }
            };
            out.insert(program.clone(), seen);
        }
        out
    })
}

/// Records the current digest of each program (the user pinned its server).
pub fn accept(paths: &Paths, programs: &[PathBuf]) -> anyhow::Result<()> {
    update(paths, |store| {
        for program in programs {
            if let Ok(current) = measure(program, None) {
                store.executables.insert(key(program), current);
            }
        }
    })
}

/// The servers among `servers` whose executable was replaced since this machine first
/// ran it: table name → the executable's path. A store that cannot be read is said
/// once (through `warn`) and checks nothing.
#[must_use]
pub fn replaced(
    paths: &Paths,
    servers: &[crate::config::ServerConfig],
    warn: impl FnOnce(String),
) -> BTreeMap<String, String> {
    let programs: Vec<(String, PathBuf)> = servers
        .iter()
        .filter_map(|s| {
            let program = crate::upstream::program_of(s).ok()?;
            Some((s.name.as_str().to_owned(), program))
        })
        .collect();
    let files: Vec<PathBuf> = programs.iter().map(|(_, p)| p.clone()).collect();
    let seen = match check(paths, &files) {
        Ok(seen) => seen,
        Err(e) => {
            warn(format!("cannot check the servers' executables: {e}"));
            return BTreeMap::new();
        }
    };
    programs
        .into_iter()
        .filter(|(_, p)| matches!(seen.get(p), Some(Seen::Changed { .. })))
        .map(|(name, p)| (name, p.to_string_lossy().into_owned()))
        .collect()
}

fn key(program: &Path) -> String {
    program.to_string_lossy().into_owned()
}

/// The record of `program` now; `known` is reused when the file's stamp did not change.
fn measure(program: &Path, known: Option<&Record>) -> std::io::Result<Record> {
    let meta = std::fs::metadata(program)?;
    let stamp = (
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino(),
        meta.ctime(),
        meta.ctime_nsec(),
    );
    if let Some(r) = known
        && (
            r.size,
            r.mtime,
            r.mtime_nsec,
            r.inode,
            r.ctime,
            r.ctime_nsec,
        ) == stamp
    {
        return Ok(r.clone());
    }
    let mut file = std::fs::File::open(program)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Record {
        digest: format!("sha256:{}", hex(&hasher.finalize())),
        size: stamp.0,
        mtime: stamp.1,
        mtime_nsec: stamp.2,
        inode: stamp.3,
        ctime: stamp.4,
        ctime_nsec: stamp.5,
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads the store under its lock, applies `f`, writes it back if it changed. A store
/// that cannot be parsed is an error and is left alone.
fn update<T>(paths: &Paths, f: impl FnOnce(&mut Store) -> T) -> anyhow::Result<T> {
    let path = paths.data_dir.join(FILE);
    std::fs::create_dir_all(&paths.data_dir)?;
    let _guard =
        crate::durable::lock_exclusive(&paths.data_dir.join(format!(".{FILE}.lck")), MODE)?;
    let before = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut store: Store = toml::from_str(&before).map_err(|e| {
        anyhow::anyhow!(
            "`{}` is not valid: {e}; fix it, or delete it to record every executable afresh",
            path.display()
        )
    })?;
    let out = f(&mut store);
    let after = format!(
        "# mcp-warden: digests of the executables servers run on this machine (not committed).\n{}",
        toml::to_string(&store)?
    );
    if after != before {
        crate::durable::replace(&path, after.as_bytes(), MODE)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> Paths {
        Paths {
            managed_dir: dir.join("managed"),
            config_dir: dir.to_path_buf(),
            data_dir: dir.join("data"),
            home: dir.to_path_buf(),
        }
    }

    #[test]
    fn first_sight_is_recorded_and_a_replacement_is_seen_until_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        let program = dir.path().join("server");
        std::fs::write(&program, b"#!/bin/sh\necho one\n").expect("write");
        let programs = [program.clone()];
        let seen = check(&paths, &programs).expect("check");
        assert_eq!(seen[&program], Seen::Known);
        assert_eq!(
            check(&paths, &programs).expect("check")[&program],
            Seen::Known
        );

        std::fs::write(&program, b"#!/bin/sh\necho two, longer\n").expect("write");
        let seen = check(&paths, &programs).expect("check");
        assert!(matches!(seen[&program], Seen::Changed { .. }), "{seen:?}");
        // Still changed: a check never records a replacement by itself.
        assert!(matches!(
            check(&paths, &programs).expect("check")[&program],
            Seen::Changed { .. }
        ));
        accept(&paths, &programs).expect("accept");
        assert_eq!(
            check(&paths, &programs).expect("check")[&program],
            Seen::Known
        );
    }

    #[test]
    fn a_touched_but_identical_file_is_still_known() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        let program = dir.path().join("server");
        std::fs::write(&program, b"same").expect("write");
        check(&paths, std::slice::from_ref(&program)).expect("check");
        std::fs::remove_file(&program).expect("rm");
        std::fs::write(&program, b"same").expect("write");
        let seen = check(&paths, std::slice::from_ref(&program)).expect("check");
        assert_eq!(seen[&program], Seen::Known);
    }

    #[test]
    fn a_rewrite_that_puts_back_size_mtime_and_inode_is_still_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        let program = dir.path().join("server");
        std::fs::write(&program, b"#!/bin/sh\necho good\n").expect("write");
        let before = std::fs::metadata(&program).expect("meta");
        check(&paths, std::slice::from_ref(&program)).expect("check");
        // Same length, same inode (written in place), modification time put back.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&program, b"#!/bin/sh\necho evil\n").expect("write");
        let file = std::fs::File::options()
            .write(true)
            .open(&program)
            .expect("open");
        file.set_modified(before.modified().expect("mtime"))
            .expect("utimes");
        let after = std::fs::metadata(&program).expect("meta");
        assert_eq!(
            (before.len(), before.ino(), before.mtime_nsec()),
            (after.len(), after.ino(), after.mtime_nsec())
        );
        let seen = check(&paths, std::slice::from_ref(&program)).expect("check");
        assert!(matches!(seen[&program], Seen::Changed { .. }), "{seen:?}");
    }

    #[test]
    fn a_broken_store_is_an_error_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        std::fs::create_dir_all(&paths.data_dir).expect("mkdir");
        std::fs::write(paths.data_dir.join(FILE), "executables = 3 [").expect("write");
        let err = check(&paths, &[]).expect_err("broken");
        assert!(err.to_string().contains("is not valid"), "{err}");
        assert_eq!(
            std::fs::read_to_string(paths.data_dir.join(FILE)).expect("read"),
            "executables = 3 ["
        );
    }
}
