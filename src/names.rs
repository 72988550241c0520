//! Exposed names (SPEC "Names"): how an upstream's tool or prompt name becomes the name
//! the client sees.
//!
//! `<namespace>__<tool>`, every character outside `[A-Za-z0-9_-]` replaced by one `_`;
//! a name that had to be changed, or is longer than 64, becomes its first 55 characters,
//! then `_`, then the first 8 hex digits of the SHA-256 of the unmapped name. The hash
//! keeps two names that map alike (`a b`, `a/b`) apart, deterministically.

use sha2::{Digest, Sha256};

use crate::config::Namespace;

/// The longest exposed name clients accept (`^[a-zA-Z0-9_-]{1,64}$`).
pub const MAX_EXPOSED_LEN: usize = 64;
const KEEP_BEFORE_HASH: usize = 55;
const SEPARATOR: &str = "__";

/// The name the client sees for upstream name `name` under `namespace`.
#[must_use]
pub fn exposed_name(namespace: &Namespace, name: &str) -> String {
    let unmapped = if namespace.as_str().is_empty() {
        name.to_owned()
    } else {
        format!("{}{SEPARATOR}{name}", namespace.as_str())
    };
    let mut changed = false;
    let mut mapped = String::with_capacity(unmapped.len());
    for c in unmapped.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            mapped.push(c);
        } else {
            mapped.push('_');
            changed = true;
        }
    }
    if !changed && !mapped.is_empty() && mapped.len() <= MAX_EXPOSED_LEN {
        return mapped;
    }
    // `mapped` is ASCII, so byte truncation is character truncation.
    mapped.truncate(KEEP_BEFORE_HASH);
    let digest = Sha256::digest(unmapped.as_bytes());
    let [a, b, c, d, ..] = digest[..] else {
        unreachable!("SHA-256 has 32 bytes")
    };
    format!("{mapped}_{a:02x}{b:02x}{c:02x}{d:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> Namespace {
        Namespace::new(s).expect("valid namespace")
    }

    fn is_client_valid(name: &str) -> bool {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn plain_names_are_prefixed() {
        assert_eq!(exposed_name(&ns("fs"), "read_file"), "fs__read_file");
        assert_eq!(exposed_name(&ns(""), "read_file"), "read_file");
    }

    #[test]
    fn changed_names_get_a_hash_suffix() {
        let a = exposed_name(&ns("x"), "a b");
        let b = exposed_name(&ns("x"), "a/b");
        assert!(a.starts_with("x__a_b_") && b.starts_with("x__a_b_"));
        assert_ne!(a, b);
        assert!(is_client_valid(&a) && is_client_valid(&b));
        // Dots are valid in the MCP spec but not for every client.
        assert!(exposed_name(&ns("git"), "git.status").starts_with("git__git_status_"));
    }

    #[test]
    fn long_and_unicode_names_stay_valid_and_deterministic() {
        let long = "t".repeat(200);
        let e = exposed_name(&ns("srv"), &long);
        assert_eq!(e.len(), 64);
        assert!(is_client_valid(&e));
        assert_eq!(e, exposed_name(&ns("srv"), &long));
        let u = exposed_name(&ns("srv"), "wetter_für_köln");
        assert!(is_client_valid(&u), "{u}");
        assert!(is_client_valid(&exposed_name(&ns(""), "")));
    }

    #[test]
    fn exactly_64_unchanged_characters_are_kept() {
        let name = format!("ab__{}", "c".repeat(60));
        assert_eq!(exposed_name(&ns("ab"), &"c".repeat(60)), name);
    }
}
