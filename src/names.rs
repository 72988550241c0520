//! Exposed names (SPEC "Names"): how an upstream's tool or prompt name becomes the name
//! the client sees.
//!
//! `<namespace>__<tool>`, every character outside `[A-Za-z0-9_-]` replaced by one `_`;
//! a name that had to be changed, or is longer than the budget (64 unless the server's
//! `max_name_len` says less), becomes its first `budget - 9` characters, then `_`, then
//! the first 8 hex digits of the SHA-256 of the unmapped name (at 64: 55 + `_` + 8). The
//! hash keeps two names that map alike (`a b`, `a/b`), or that share their first
//! characters, apart, deterministically; a name within the budget is left alone, so a
//! smaller budget changes only the names that do not fit it.

use sha2::{Digest, Sha256};

use crate::config::Namespace;

/// The longest exposed name clients accept (`^[a-zA-Z0-9_-]{1,64}$`).
pub const MAX_EXPOSED_LEN: usize = 64;
/// The smallest budget `max_name_len` may set: the hash suffix (`_` + 8 hex digits) and
/// a few readable characters before it.
pub const MIN_EXPOSED_LEN: usize = 16;
/// `_` + 8 hex digits.
const HASH_SUFFIX_LEN: usize = 9;
const SEPARATOR: &str = "__";

/// The name the client sees for upstream name `name` under `namespace`, within the
/// namespace's budget ([`Namespace::max_len`]).
#[must_use]
pub fn exposed_name(namespace: &Namespace, name: &str) -> String {
    exposed_name_within(namespace, name, namespace.max_len())
}

/// [`exposed_name`] within `budget` characters (clamped to
/// [`MIN_EXPOSED_LEN`]..=[`MAX_EXPOSED_LEN`]).
#[must_use]
pub fn exposed_name_within(namespace: &Namespace, name: &str, budget: usize) -> String {
    let budget = budget.clamp(MIN_EXPOSED_LEN, MAX_EXPOSED_LEN);
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
    if !changed && !mapped.is_empty() && mapped.len() <= budget {
        return mapped;
    }
    // `mapped` is ASCII, so byte truncation is character truncation.
    mapped.truncate(budget - HASH_SUFFIX_LEN);
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
    fn a_smaller_budget_generalises_the_rule_and_changes_only_names_over_it() {
        let long = "create_or_update_file_in_repository_branch";
        let e = exposed_name_within(&ns("github"), long, 47);
        assert_eq!(e.len(), 47);
        assert!(is_client_valid(&e));
        // The same prefix and hash as at 64, cut shorter: 38 + `_` + 8 hex.
        let full = exposed_name_within(&ns("github"), &"x".repeat(80), 64);
        let short = exposed_name_within(&ns("github"), &"x".repeat(80), 47);
        assert_eq!(&short[..38], &full[..38]);
        assert_eq!(short[39..], full[56..]);
        // Within the budget: untouched.
        assert_eq!(
            exposed_name_within(&ns("fs"), "read_file", 20),
            "fs__read_file"
        );
        // Stable, and distinct for names that share their first characters.
        let a = exposed_name_within(&ns("srv"), &format!("{}_a", "p".repeat(50)), 30);
        let b = exposed_name_within(&ns("srv"), &format!("{}_b", "p".repeat(50)), 30);
        assert_ne!(a, b);
        assert_eq!(
            a,
            exposed_name_within(&ns("srv"), &format!("{}_a", "p".repeat(50)), 30)
        );
        // Out-of-range budgets are clamped.
        assert_eq!(
            exposed_name_within(&ns("srv"), &"t".repeat(90), 3).len(),
            MIN_EXPOSED_LEN
        );
        assert_eq!(
            exposed_name_within(&ns("srv"), &"t".repeat(90), 99).len(),
            64
        );
        // The namespace's own budget is the default.
        let budgeted = ns("github").with_max_len(47);
        assert_eq!(exposed_name(&budgeted, long), e);
    }

    #[test]
    fn exactly_64_unchanged_characters_are_kept() {
        let name = format!("ab__{}", "c".repeat(60));
        assert_eq!(exposed_name(&ns("ab"), &"c".repeat(60)), name);
    }
}
