//! The merged catalogs: each upstream's tools, prompts and resource templates, under
//! the names the client sees.
//!
//! Definitions are kept as the JSON text the upstream sent, with only the `name` value
//! replaced (tools and prompts; templates keep their URI), so everything else in a
//! definition (schemas, annotations, `_meta`, fields of newer protocol versions, number
//! formatting) reaches the client unchanged. Catalogs are what pinning will check, so
//! they are fetched by mcp-warden itself and refreshed on `list_changed`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{Namespace, ServerName};
use crate::jsonrpc::message::span_in;
use crate::names::exposed_name;

/// The kinds of list mcp-warden keeps a catalog of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Templates,
}

impl ListKind {
    /// Every kind, in the order of their index.
    pub const ALL: [Self; 3] = [Self::Tools, Self::Prompts, Self::Templates];

    /// Index into per-kind arrays.
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The method that lists this kind.
    #[must_use]
    pub fn method(self) -> &'static str {
        match self {
            Self::Tools => "tools/list",
            Self::Prompts => "prompts/list",
            Self::Templates => "resources/templates/list",
        }
    }

    /// The field of a list result that holds the items.
    #[must_use]
    pub fn field(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Templates => "resourceTemplates",
        }
    }

    /// The server capability that says the kind exists.
    #[must_use]
    pub fn capability(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Templates => "resources",
        }
    }

    /// The kinds a server's `capabilities` offer, in the order of their index.
    #[must_use]
    pub fn offered(capabilities: &serde_json::Value) -> impl DoubleEndedIterator<Item = Self> + '_ {
        Self::ALL
            .into_iter()
            .filter(|k| capabilities.get(k.capability()).is_some())
    }

    /// The notification that tells the client this kind changed.
    #[must_use]
    pub fn changed_notification(self) -> &'static str {
        match self {
            Self::Tools => "notifications/tools/list_changed",
            Self::Prompts => "notifications/prompts/list_changed",
            Self::Templates => "notifications/resources/list_changed",
        }
    }

    /// What one item is called in messages to people.
    #[must_use]
    pub fn noun(self) -> &'static str {
        match self {
            Self::Tools => "tool name",
            Self::Prompts => "prompt name",
            Self::Templates => "resource template",
        }
    }
}

/// One item of one upstream.
#[derive(Debug, Clone)]
pub struct Item {
    /// The upstream's own name (for templates: the URI template).
    pub name: String,
    /// What the client sees.
    pub exposed: String,
    /// The definition as sent, with `name` replaced by `exposed`.
    pub definition: Box<str>,
    /// The definition exactly as sent: what is pinned and scanned.
    pub source: Box<str>,
}

impl Item {
    /// Whether the exposed name is not simply `<namespace>__<name>` (it was mapped).
    #[must_use]
    pub fn is_mapped(&self, namespace: &Namespace) -> bool {
        let plain = self.exposed.strip_prefix(namespace.as_str());
        let plain = if namespace.as_str().is_empty() {
            plain
        } else {
            plain.and_then(|p| p.strip_prefix("__"))
        };
        plain != Some(self.name.as_str())
    }
}

/// One page of a list result, borrowed from the response text. Each kind has its own
/// field ([`Page::items`]), so a page carrying another kind's field is not taken for
/// this one.
#[derive(Debug, Deserialize)]
pub struct Page<'a> {
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    prompts: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, rename = "resourceTemplates")]
    templates: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    resources: Option<Vec<&'a RawValue>>,
    #[serde(rename = "nextCursor", default)]
    pub next_cursor: Option<String>,
    /// A modern server's caching hint for this page.
    #[serde(rename = "ttlMs", default)]
    pub ttl_ms: Option<u64>,
}

impl<'a> Page<'a> {
    /// The items in `field` (`tools`, `prompts`, `resourceTemplates`, `resources`);
    /// `None` when the page has no such field.
    #[must_use]
    pub fn items(&self, field: &str) -> Option<&[&'a RawValue]> {
        match field {
            "tools" => self.tools.as_deref(),
            "prompts" => self.prompts.as_deref(),
            "resourceTemplates" => self.templates.as_deref(),
            "resources" => self.resources.as_deref(),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct NameHead<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
}

#[derive(Deserialize)]
struct TemplateHead {
    #[serde(rename = "uriTemplate")]
    uri_template: String,
}

/// Reads one item of `kind`; `None` when it lacks its string key.
#[must_use]
pub fn read_item(kind: ListKind, namespace: &Namespace, raw: &RawValue) -> Option<Item> {
    let text = raw.get();
    if kind == ListKind::Templates {
        let head: TemplateHead = serde_json::from_str(text).ok()?;
        return Some(Item {
            exposed: head.uri_template.clone(),
            name: head.uri_template,
            definition: text.into(),
            source: text.into(),
        });
    }
    let head: NameHead<'_> = serde_json::from_str(text).ok()?;
    let name: String = serde_json::from_str(head.name.get()).ok()?;
    let exposed = exposed_name(namespace, &name);
    let span = span_in(text, head.name.get());
    let quoted = serde_json::to_string(&exposed).ok()?;
    let definition =
        format!("{}{quoted}{}", &text[..span.start], &text[span.end..]).into_boxed_str();
    Some(Item {
        name,
        exposed,
        definition,
        source: text.into(),
    })
}

/// Where an exposed name leads.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index of the upstream's slot in the session.
    pub slot: usize,
    /// The upstream's own name for the item.
    pub name: String,
}

/// One merged catalog, rebuilt whenever an upstream's items change.
#[derive(Debug, Default)]
pub struct Catalog {
    routes: BTreeMap<String, Route>,
    /// The list result text, cached between changes.
    listing: String,
}

/// Two servers exposing the same name: neither is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub kind: &'static str,
    pub exposed: String,
    pub servers: Vec<ServerName>,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.servers.iter().map(|s| format!("`{s}`")).collect();
        write!(
            f,
            "{} `{}` is exposed by servers {}; neither is served (set a distinct `namespace`)",
            self.kind,
            self.exposed,
            names.join(" and ")
        )
    }
}

impl Catalog {
    /// Builds a catalog from each slot's items (`(slot, server, items)`, in slot order),
    /// leaving out those `admit` refuses (held by pinning): they take no part in
    /// collisions either.
    pub fn build<'a>(
        kind: ListKind,
        servers: impl IntoIterator<Item = (usize, &'a ServerName, &'a [Item])>,
        admit: impl Fn(usize, &Item) -> bool,
    ) -> (Self, Vec<Collision>) {
        let mut owners: BTreeMap<&str, Vec<(usize, &ServerName, &Item)>> = BTreeMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (slot, server, items) in servers {
            for item in items.iter().filter(|item| admit(slot, item)) {
                let entry = owners.entry(item.exposed.as_str()).or_default();
                if entry.is_empty() {
                    order.push(item.exposed.as_str());
                }
                entry.push((slot, server, item));
            }
        }
        // Tools in byte order of their exposed names (S/changelog.mdx minor 3): the
        // same servers give the same list, whatever order they started in.
        if kind == ListKind::Tools {
            order.sort_unstable();
        }
        let mut catalog = Self::default();
        let mut collisions = Vec::new();
        let mut listing = format!("{{\"{}\":[", kind.field());
        let mut first = true;
        for exposed in order {
            let entries = &owners[exposed];
            if let [(slot, _, item)] = entries.as_slice() {
                catalog.routes.insert(
                    exposed.to_owned(),
                    Route {
                        slot: *slot,
                        name: item.name.clone(),
                    },
                );
                if !first {
                    listing.push(',');
                }
                first = false;
                listing.push_str(&item.definition);
            } else {
                let mut servers: Vec<ServerName> =
                    entries.iter().map(|(_, s, _)| (*s).clone()).collect();
                servers.dedup();
                collisions.push(Collision {
                    kind: kind.noun(),
                    exposed: exposed.to_owned(),
                    servers,
                });
            }
        }
        listing.push_str("]}");
        catalog.listing = listing;
        (catalog, collisions)
    }

    /// Where `exposed` leads, if it is served.
    #[must_use]
    pub fn route(&self, exposed: &str) -> Option<&Route> {
        self.routes.get(exposed)
    }

    /// Every route (for templates: URI template → owner).
    pub fn routes(&self) -> impl Iterator<Item = (&String, &Route)> {
        self.routes.iter()
    }

    /// The merged list result as JSON text.
    #[must_use]
    pub fn listing(&self) -> &str {
        &self.listing
    }
}

pub use super::uri::template_matches;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_offered_are_read_from_the_capabilities_in_index_order() {
        let caps =
            serde_json::json!({"resources": {}, "tools": {"listChanged": true}, "logging": {}});
        let offered: Vec<ListKind> = ListKind::offered(&caps).collect();
        assert_eq!(offered, [ListKind::Tools, ListKind::Templates]);
        assert_eq!(ListKind::offered(&serde_json::Value::Null).count(), 0);
    }

    fn items(kind: ListKind, ns: &str, json: &str) -> Vec<Item> {
        let page: Page<'_> = serde_json::from_str(json).expect("page");
        let ns = Namespace::new(ns).expect("ns");
        page.items(kind.field())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| read_item(kind, &ns, t))
            .collect()
    }

    fn name(s: &str) -> ServerName {
        ServerName::new(s).expect("name")
    }

    #[test]
    fn definitions_keep_every_byte_but_the_name() {
        let t = items(
            ListKind::Tools,
            "a",
            r#"{"tools":[{"name":"echo","inputSchema":{"type":"object","x":1.50},"_meta":{"k":[]},"future":true}]}"#,
        );
        assert_eq!(
            &*t[0].definition,
            r#"{"name":"a__echo","inputSchema":{"type":"object","x":1.50},"_meta":{"k":[]},"future":true}"#
        );
        let p = items(
            ListKind::Prompts,
            "a",
            r#"{"prompts":[{"name":"greet","arguments":[]}]}"#,
        );
        assert_eq!(&*p[0].definition, r#"{"name":"a__greet","arguments":[]}"#);
        let r = items(
            ListKind::Templates,
            "a",
            r#"{"resourceTemplates":[{"uriTemplate":"x://{id}","name":"n"}]}"#,
        );
        assert_eq!(
            (r[0].exposed.as_str(), &*r[0].definition),
            ("x://{id}", r#"{"uriTemplate":"x://{id}","name":"n"}"#)
        );
    }

    #[test]
    fn collisions_name_both_servers_and_serve_neither() {
        let a = items(
            ListKind::Tools,
            "",
            r#"{"tools":[{"name":"x"},{"name":"y"}]}"#,
        );
        let b = items(ListKind::Tools, "", r#"{"tools":[{"name":"x"}]}"#);
        let (sa, sb) = (name("one"), name("two"));
        let (catalog, collisions) = Catalog::build(
            ListKind::Tools,
            [(0, &sa, a.as_slice()), (1, &sb, b.as_slice())],
            |_, _| true,
        );
        assert_eq!(collisions.len(), 1);
        let text = collisions[0].to_string();
        assert!(text.contains("`one`") && text.contains("`two`"), "{text}");
        assert!(catalog.route("x").is_none());
        assert_eq!(catalog.route("y").map(|r| r.slot), Some(0));
        assert_eq!(catalog.listing(), r#"{"tools":[{"name":"y"}]}"#);
    }

    #[test]
    fn same_upstream_name_under_two_namespaces_is_fine() {
        let a = items(ListKind::Prompts, "a", r#"{"prompts":[{"name":"x"}]}"#);
        let b = items(ListKind::Prompts, "b", r#"{"prompts":[{"name":"x"}]}"#);
        let (sa, sb) = (name("a"), name("b"));
        let (catalog, collisions) = Catalog::build(
            ListKind::Prompts,
            [(0, &sa, a.as_slice()), (1, &sb, b.as_slice())],
            |_, _| true,
        );
        assert!(collisions.is_empty());
        assert_eq!(
            catalog.route("b__x").map(|r| (r.slot, r.name.as_str())),
            Some((1, "x"))
        );
        assert_eq!(
            catalog.listing(),
            r#"{"prompts":[{"name":"a__x"},{"name":"b__x"}]}"#
        );
    }

    #[test]
    fn uri_templates_match_their_expansions() {
        assert!(template_matches(
            "test://static/resource/{id}",
            "test://static/resource/7"
        ));
        assert!(!template_matches(
            "test://static/resource/{id}",
            "test://static/resource/7/x"
        ));
        assert!(template_matches("file:///{+path}", "file:///a/b/c.txt"));
        assert!(template_matches("x://{a}/{b}", "x://1/2"));
        assert!(!template_matches("x://{a}/{b}", "y://1/2"));
        assert!(template_matches("no-vars", "no-vars"));
        assert!(!template_matches("broken{", "broken{"));
    }
}
