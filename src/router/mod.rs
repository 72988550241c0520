//! Routing: which upstream a message goes to, under which name, and how the answer
//! finds its way back. The first column of the pipeline (`shared/PIPELINE.md`): the
//! session routes a message here, then runs the stages ([`crate::stages`]) over it.
//!
//! - [`catalog`]: the merged catalogs of tools, prompts and resource templates, under
//!   the exposed (namespaced) names, and routing by exposed name;
//! - [`cursor`]: mcp-warden's own `resources/list` cursors, which page across
//!   upstreams;
//! - [`uri`]: routing a resource URI to the one server that serves it (collisions,
//!   the most specific template, matching linear in the URI);
//! - [`ids`]: the id and progress-token maps (our ids per upstream and for requests
//!   to the client, the client's ids in flight, batches), and where a request's
//!   progress token sits, for remapping.
//!
//! Nothing here does I/O or spawns anything: the session holds these tables and URIs
//! seen in listings, and wires them to the stages and the upstreams.

pub mod catalog;
pub mod cursor;
pub mod ids;
pub mod uri;

pub use ids::progress_token;
pub use uri::{Listers, UriRoute, route_uri};

#[cfg(test)]
mod tests {
    use super::catalog::{Catalog, ListKind, Page, read_item};
    use super::*;
    use crate::config::{Namespace, ServerName};

    fn templates(slot: usize, json: &str) -> Catalog {
        let page: Page<'_> = serde_json::from_str(json).expect("page");
        let ns = Namespace::new("a").expect("namespace");
        let items: Vec<_> = page
            .items("resourceTemplates")
            .unwrap_or_default()
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
        let one = Some(Listers::new(1));
        assert_eq!(
            route_uri("db://users/rows", one, &t, || Some(9)),
            UriRoute::Slot(1)
        );
        assert_eq!(
            route_uri("db://users/rows", None, &t, || Some(9)),
            UriRoute::Slot(3)
        );
        assert_eq!(
            route_uri("file:///x", None, &t, || Some(9)),
            UriRoute::Slot(9)
        );
        assert_eq!(route_uri("file:///x", None, &t, || None), UriRoute::Unknown);
    }

    #[test]
    fn the_most_specific_template_wins_and_equals_across_servers_collide() {
        let t = two_servers(&[
            (1, "file:///{+path}"),
            (2, "file:///docs/{name}"),
            (1, "x://{a}"),
            (2, "x://{b}"),
        ]);
        assert_eq!(
            route_uri("file:///docs/a.md", None, &t, || None),
            UriRoute::Slot(2)
        );
        assert_eq!(
            route_uri("file:///etc/passwd", None, &t, || None),
            UriRoute::Slot(1)
        );
        assert_eq!(
            route_uri("x://y", None, &t, || None),
            UriRoute::Collision(1, 2)
        );
    }

    /// A templates catalog over two servers, `a` (slot 1) and `b` (slot 2).
    fn two_servers(templates: &[(usize, &str)]) -> Catalog {
        let a = ServerName::new("a").expect("name");
        let b = ServerName::new("b").expect("name");
        let items = |slot: usize| {
            let list: Vec<String> = templates
                .iter()
                .filter(|(s, _)| *s == slot)
                .map(|(_, t)| format!(r#"{{"uriTemplate":"{t}","name":"n"}}"#))
                .collect();
            let json = format!(r#"{{"resourceTemplates":[{}]}}"#, list.join(","));
            let page: Page<'_> = serde_json::from_str(&json).expect("page");
            let ns = Namespace::new(if slot == 1 { "a" } else { "b" }).expect("namespace");
            page.items("resourceTemplates")
                .unwrap_or_default()
                .iter()
                .filter_map(|t| read_item(ListKind::Templates, &ns, t))
                .collect::<Vec<_>>()
        };
        let (one, two) = (items(1), items(2));
        Catalog::build(
            ListKind::Templates,
            [(1, &a, one.as_slice()), (2, &b, two.as_slice())],
            |_, _| true,
        )
        .0
    }
}
