//! Routing a resource URI to the one server that serves it (SPEC "Names"): a URI
//! listed by one server goes there; listed by two, it is a collision (neither serves
//! it, the error names both). A URI no server listed goes to the server whose
//! template matches it most specifically; two servers' templates matching it equally
//! is a collision too. Template matching is linear in the URI, whatever the template:
//! a template is compiled to a regular expression, which the `regex` crate matches
//! without backtracking.

use std::cmp::Reverse;

use regex::{Regex, RegexBuilder};

use super::catalog::Catalog;

/// The most compiled size a template's expression may take: a template longer than
/// any real one (thousands of parts) matches nothing rather than costing memory.
const TEMPLATE_REGEX_LIMIT: usize = 1 << 20;

/// Where a URI goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriRoute {
    /// To this slot.
    Slot(usize),
    /// Two slots claim it equally: neither serves it.
    Collision(usize, usize),
    /// Nobody serves it.
    Unknown,
}

/// The servers that listed one URI in `resources/list`: the first, and another one
/// when a second server listed it too (a collision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listers {
    first: usize,
    second: Option<usize>,
}

impl Listers {
    /// Listed by `slot`.
    #[must_use]
    pub fn new(slot: usize) -> Self {
        Self {
            first: slot,
            second: None,
        }
    }

    /// Listed by `slot` too (again by the same slot: no change).
    pub fn add(&mut self, slot: usize) {
        if slot != self.first && self.second.is_none() {
            self.second = Some(slot);
        }
    }

    /// `slot` went away; `false` when nobody lists the URI any more.
    pub fn remove(&mut self, slot: usize) -> bool {
        if self.second == Some(slot) {
            self.second = None;
        } else if self.first == slot {
            match self.second.take() {
                Some(other) => self.first = other,
                None => return false,
            }
        }
        true
    }

    fn route(self) -> UriRoute {
        match self.second {
            Some(other) => UriRoute::Collision(self.first, other),
            None => UriRoute::Slot(self.first),
        }
    }
}

/// The route of `uri`: `listed`, the servers that listed it, else the most specific
/// matching template's, else `only`, the one server that offers resources (when only
/// one does).
pub fn route_uri(
    uri: &str,
    listed: Option<Listers>,
    templates: &Catalog,
    only: impl FnOnce() -> Option<usize>,
) -> UriRoute {
    if let Some(listers) = listed {
        return listers.route();
    }
    // The best match so far: its specificity, its slot, and a rival slot as specific.
    let mut best: Option<(Specificity, usize, Option<usize>)> = None;
    for (template, route) in templates.routes() {
        if !template_matches(template, uri) {
            continue;
        }
        let rank = specificity(template);
        best = match best {
            Some((b, slot, rival)) if b > rank => Some((b, slot, rival)),
            Some((b, slot, rival)) if b == rank => {
                let rival = rival.or((slot != route.slot).then_some(route.slot));
                Some((b, slot, rival))
            }
            _ => Some((rank, route.slot, None)),
        };
    }
    match best {
        Some((_, slot, Some(rival))) => UriRoute::Collision(slot, rival),
        Some((_, slot, None)) => UriRoute::Slot(slot),
        None => only().map_or(UriRoute::Unknown, UriRoute::Slot),
    }
}

/// How specific a template is: more literal characters first, then fewer reserved
/// expressions (`{+x}` matches more than `{x}`).
type Specificity = (usize, Reverse<usize>);

fn specificity(template: &str) -> Specificity {
    let parts = parts(template).unwrap_or_default();
    let literal = parts
        .iter()
        .map(|p| match p {
            Part::Literal(l) => l.chars().count(),
            Part::Expr { .. } => 0,
        })
        .sum();
    let reserved = parts
        .iter()
        .filter(|p| matches!(p, Part::Expr { reserved: true }))
        .count();
    (literal, Reverse(reserved))
}

/// One piece of a URI template.
enum Part<'a> {
    Literal(&'a str),
    /// `{var}` matches anything but `/`, `?` and `#`; the operators `+ # / ? & ; .`
    /// match anything.
    Expr {
        reserved: bool,
    },
}

/// The pieces of `template`; `None` when a `{` is not closed.
fn parts(template: &str) -> Option<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Literal(&rest[..open]));
        }
        let close = rest[open..].find('}')?;
        let expr = &rest[open + 1..open + close];
        parts.push(Part::Expr {
            reserved: expr.starts_with(['+', '#', '/', '?', '&', ';', '.']),
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Some(parts)
}

/// The regular expression a template stands for, anchored at both ends.
fn compile(template: &str) -> Option<Regex> {
    let mut pattern = String::from(r"(?s)\A");
    for part in parts(template)? {
        match part {
            Part::Literal(l) => pattern.push_str(&regex::escape(l)),
            Part::Expr { reserved: true } => pattern.push_str(".*"),
            Part::Expr { reserved: false } => pattern.push_str("[^/?#]*"),
        }
    }
    pattern.push_str(r"\z");
    RegexBuilder::new(&pattern)
        .size_limit(TEMPLATE_REGEX_LIMIT)
        .build()
        .ok()
}

/// Whether `uri` could come from `template` (RFC 6570, as far as routing needs: a
/// `{var}` matches anything but `/`, `?` and `#`; `{+var}`, `{#var}`, `{/var}`,
/// `{?var}`, `{&var}` and `{;var}` match anything). Linear in the URI.
#[must_use]
pub fn template_matches(template: &str, uri: &str) -> bool {
    compile(template).is_some_and(|re| re.is_match(uri))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    #[test]
    fn listers_collide_and_survive_a_server_going_away() {
        let mut l = Listers::new(1);
        l.add(1);
        assert_eq!(l.route(), UriRoute::Slot(1));
        l.add(2);
        assert_eq!(l.route(), UriRoute::Collision(1, 2));
        assert!(l.remove(1));
        assert_eq!(l.route(), UriRoute::Slot(2));
        assert!(!l.remove(2));
    }

    #[test]
    fn the_more_specific_template_is_the_more_specific() {
        assert!(specificity("file:///docs/{name}") > specificity("file:///{+path}"));
        assert!(specificity("file:///{path}") > specificity("file:///{+path}"));
    }

    #[test]
    fn a_dozen_reserved_parts_and_an_unlisted_uri_are_quick() {
        let template = "x://{+a}{+b}{+c}{+d}{+e}{+f}{+g}{+h}{+i}{+j}{+k}{+l}/end";
        let uri = format!("x://{}", "a".repeat(60));
        let started = Instant::now();
        assert!(!template_matches(template, &uri));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// Pieces of a template: literals and both kinds of expression.
    fn template() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "[a-z/:.?#]{0,3}",
                Just("{x}".to_owned()),
                Just("{+x}".to_owned()),
                Just("{#x}".to_owned()),
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matching_any_template_against_a_10k_uri_takes_bounded_time(
            template in template(),
            unit in "[a-z/?#.]{1,4}",
        ) {
            let mut uri = String::new();
            while uri.len() < 10_000 {
                uri.push_str(&unit);
            }
            let started = Instant::now();
            let _ = template_matches(&template, &uri);
            prop_assert!(started.elapsed() < Duration::from_millis(500), "{template}");
        }
    }
}
