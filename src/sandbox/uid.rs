//! Which uid and gid a server runs as when mcp-warden runs as root.
//!
//! `user = "auto"` gives every server a uid of its own, so servers cannot read each
//! other's files, signal or trace each other, derived from the server's name so it stays the
//! same from one run to the next (its private HOME keeps its owner):
//! `AUTO_UID_BASE + fnv1a(name) % AUTO_UID_SPAN`, gid the same number. Those ids belong
//! to no account; one that does on this machine (in `/etc/passwd` or `/etc/group`) is
//! stepped over.

use nix::unistd::User;
use serde::{Deserialize, Serialize};

use super::UserChoice;

/// First uid of the range `user = "auto"` takes from (documented in the README).
pub const AUTO_UID_BASE: u32 = 1_900_000_000;
/// How many uids the range has.
pub const AUTO_UID_SPAN: u32 = 100_000;

/// The ids a server is dropped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// Why `sandbox.user` names no usable user.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no user `{0}` on this machine")]
    Unknown(String),
    #[error("cannot look up user `{name}`: {source}")]
    Lookup { name: String, source: nix::Error },
}

/// The ids for `choice`, for a server named `server`, when running as root. `None`:
/// stay root (`user = "root"`).
pub fn ids_for(server: &str, choice: &UserChoice) -> Result<Option<Ids>, UserError> {
    match choice {
        UserChoice::Auto => Ok(Some(auto_ids(server))),
        UserChoice::Named(name) => {
            // `/etc/passwd` first: the NSS lookup loads shared modules (systemd's,
            // LDAP's) into a long-running `serve` for good; it is kept for users only
            // a directory service knows.
            let ids = if let Some(ids) = passwd_entry(|fields| fields[0] == name.as_str()) {
                ids
            } else {
                let user = User::from_name(name)
                    .map_err(|source| UserError::Lookup {
                        name: name.clone(),
                        source,
                    })?
                    .ok_or_else(|| UserError::Unknown(name.clone()))?;
                Ids {
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                }
            };
            Ok((ids.uid != 0).then_some(ids))
        }
    }
}

/// The `auto` ids of `server`: stable, in the documented range, owned by no account.
#[must_use]
pub fn auto_ids(server: &str) -> Ids {
    let mut offset = fnv1a(server) % AUTO_UID_SPAN;
    for _ in 0..64 {
        let uid = AUTO_UID_BASE + offset;
        // The local account files only (see `ids_for`): a directory service that hands
        // out uids this high is not something this range can guard against anyway.
        let id = uid.to_string();
        let taken = passwd_entry(|fields| fields[2] == id).is_some()
            || account_file_has("/etc/group", |fields| fields[2] == id);
        if !taken {
            return Ids { uid, gid: uid };
        }
        offset = (offset + 1) % AUTO_UID_SPAN;
    }
    let uid = AUTO_UID_BASE + offset;
    Ids { uid, gid: uid }
}

/// The ids of the first `/etc/passwd` entry `pick` accepts (its fields split on `:`).
fn passwd_entry(pick: impl Fn(&[&str]) -> bool) -> Option<Ids> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || !pick(&fields) {
            return None;
        }
        Some(Ids {
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
        })
    })
}

/// Whether an entry of the account file at `path` satisfies `pick`.
fn account_file_has(path: &str, pick: impl Fn(&[&str]) -> bool) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines().any(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            fields.len() >= 3 && pick(&fields)
        })
    })
}

/// 32-bit FNV-1a: small, stable across releases and platforms (unlike `DefaultHasher`).
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn auto_ids_are_stable_distinct_and_in_range() {
        let a = auto_ids("fs");
        assert_eq!(a, auto_ids("fs"));
        assert_ne!(a.uid, auto_ids("git").uid);
        assert!((AUTO_UID_BASE..AUTO_UID_BASE + AUTO_UID_SPAN).contains(&a.uid));
        assert_eq!(a.uid, a.gid);
        // The function is part of the documented contract: keep it stable.
        assert_eq!(fnv1a("a"), 0xe40c_292c);
    }

    #[test]
    fn root_stays_root_and_unknown_users_are_errors() {
        assert_eq!(
            ids_for("x", &UserChoice::Named("root".into())).unwrap(),
            None
        );
        assert!(matches!(
            ids_for("x", &UserChoice::Named("no-such-user-here".into())),
            Err(UserError::Unknown(_))
        ));
        let nobody = ids_for("x", &UserChoice::Named("nobody".into())).unwrap();
        assert_eq!(nobody.map(|i| i.uid), Some(65534));
    }
}
