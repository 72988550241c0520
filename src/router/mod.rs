//! Routing: which upstream a message goes to, under which name, and how the answer
//! finds its way back. The first column of the pipeline (`shared/PIPELINE.md`): the
//! session routes a message here, then runs the stages ([`crate::stages`]) over it.
//!
//! - [`catalog`]: the merged catalogs of tools, prompts and resource templates, under
//!   the exposed (namespaced) names, and routing by exposed name;
//! - [`cursor`]: mcp-warden's own `resources/list` cursors, which page across
//!   upstreams;
//! - [`route_uri`]: routing a resource URI to the server that serves it;
//! - [`progress_token`]: where a request's progress token sits, for remapping.
//!
//! Nothing here does I/O or holds session state: the session keeps the maps (ids in
//! flight, URIs seen in listings) and asks these functions.

pub mod catalog;
pub mod cursor;

use std::ops::Range;

use catalog::{Catalog, template_matches};

use crate::jsonrpc::Message;

/// The slot serving `uri`: `listed`, the one that listed it, else the one whose
/// template matches it, else `only`, the one server that offers resources (when only
/// one does).
pub fn route_uri(
    uri: &str,
    listed: Option<usize>,
    templates: &Catalog,
    only: impl FnOnce() -> Option<usize>,
) -> Option<usize> {
    if listed.is_some() {
        return listed;
    }
    templates
        .routes()
        .find(|(t, _)| template_matches(t, uri))
        .map(|(_, route)| route.slot)
        .or_else(only)
}

/// The span and text of `params._meta.progressToken`, when the request has one.
#[must_use]
pub fn progress_token(msg: &Message) -> Option<(Range<usize>, Box<str>)> {
    // Most requests carry none: skip parsing their params for it.
    if !msg
        .raw()
        .windows(b"progressToken".len())
        .any(|w| w == b"progressToken")
    {
        return None;
    }
    let (token, span) = msg.param(&["_meta", "progressToken"])?;
    Some((span, token.into()))
}

#[cfg(test)]
mod tests {
    use super::catalog::{ListKind, Page, read_item};
    use super::*;
    use crate::config::{Namespace, ServerName};

    fn templates(slot: usize, json: &str) -> Catalog {
        let page: Page<'_> = serde_json::from_str(json).expect("page");
        let ns = Namespace::new("a").expect("namespace");
        let items: Vec<_> = page
            .items
            .iter()
            .filter_map(|t| read_item(ListKind::Templates, &ns, t))
            .collect();
        let server = ServerName::new("a").expect("name");
        Catalog::build(
            ListKind::Templates,
            [(slot, &server, items.as_slice())],
            |_, _| true,
        )
        .0
    }

    #[test]
    fn a_uri_goes_to_its_lister_then_its_template_then_the_only_resource_server() {
        let t = templates(
            3,
            r#"{"resourceTemplates":[{"uriTemplate":"db://{table}/rows","name":"rows"}]}"#,
        );
        assert_eq!(
            route_uri("db://users/rows", Some(1), &t, || Some(9)),
            Some(1)
        );
        assert_eq!(route_uri("db://users/rows", None, &t, || Some(9)), Some(3));
        assert_eq!(route_uri("file:///x", None, &t, || Some(9)), Some(9));
        assert_eq!(route_uri("file:///x", None, &t, || None), None);
    }
}
