//! The merged tool table: each upstream's tools under their exposed names.
//!
//! Tool definitions are kept as the JSON text the upstream sent, with only the `name`
//! value replaced, so everything else in a definition (schemas, annotations, `_meta`,
//! fields of newer protocol versions, number formatting) reaches the client unchanged.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{Namespace, ServerName};
use crate::jsonrpc::message::span_in;
use crate::names::exposed_name;

/// Most tools one upstream may list; past this the rest are dropped with a warning.
pub const MAX_TOOLS_PER_SERVER: usize = 10_000;
/// Most `tools/list` pages fetched from one upstream in one listing.
pub const MAX_PAGES: u32 = 100;

/// One tool of one upstream.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The name the upstream uses.
    pub name: String,
    /// The name the client sees.
    pub exposed: String,
    /// The definition as sent, with `name` replaced by `exposed`.
    pub definition: Box<str>,
}

impl Tool {
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

/// One page of a `tools/list` result, borrowed from the response text.
#[derive(Deserialize)]
pub struct Page<'a> {
    #[serde(borrow)]
    pub tools: Vec<&'a RawValue>,
    #[serde(rename = "nextCursor", default)]
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ToolHead<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
}

/// Reads one tool definition; `None` when it has no string `name`.
#[must_use]
pub fn read_tool(namespace: &Namespace, raw: &RawValue) -> Option<Tool> {
    let text = raw.get();
    let head: ToolHead<'_> = serde_json::from_str(text).ok()?;
    let name: String = serde_json::from_str(head.name.get()).ok()?;
    let exposed = exposed_name(namespace, &name);
    let span = span_in(text, head.name.get());
    let quoted = serde_json::to_string(&exposed).ok()?;
    let definition =
        format!("{}{quoted}{}", &text[..span.start], &text[span.end..]).into_boxed_str();
    Some(Tool {
        name,
        exposed,
        definition,
    })
}

/// Where an exposed tool name leads.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index of the upstream's slot in the session.
    pub slot: usize,
    /// The upstream's own name for the tool.
    pub name: String,
}

/// The merged table, rebuilt whenever an upstream's tools change.
#[derive(Debug, Default)]
pub struct ToolTable {
    routes: BTreeMap<String, Route>,
    /// The `tools/list` result text, cached between changes.
    listing: String,
}

/// Two servers exposing the same name: neither is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub exposed: String,
    pub servers: Vec<ServerName>,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.servers.iter().map(|s| format!("`{s}`")).collect();
        write!(
            f,
            "tool name `{}` is exposed by servers {}; neither is served (set a distinct `namespace`)",
            self.exposed,
            names.join(" and ")
        )
    }
}

impl ToolTable {
    /// Builds the table from each slot's tools (`(slot, server, tools)`, in slot order).
    pub fn build<'a>(
        servers: impl IntoIterator<Item = (usize, &'a ServerName, &'a [Tool])>,
    ) -> (Self, Vec<Collision>) {
        let mut owners: BTreeMap<&str, Vec<(usize, &ServerName, &Tool)>> = BTreeMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (slot, server, tools) in servers {
            for tool in tools {
                let entry = owners.entry(tool.exposed.as_str()).or_default();
                if entry.is_empty() {
                    order.push(tool.exposed.as_str());
                }
                entry.push((slot, server, tool));
            }
        }
        let mut table = Self::default();
        let mut collisions = Vec::new();
        let mut listing = String::from("{\"tools\":[");
        let mut first = true;
        for exposed in order {
            let entries = &owners[exposed];
            if let [(slot, _, tool)] = entries.as_slice() {
                table.routes.insert(
                    exposed.to_owned(),
                    Route {
                        slot: *slot,
                        name: tool.name.clone(),
                    },
                );
                if !first {
                    listing.push(',');
                }
                first = false;
                listing.push_str(&tool.definition);
            } else {
                let mut servers: Vec<ServerName> =
                    entries.iter().map(|(_, s, _)| (*s).clone()).collect();
                servers.dedup();
                collisions.push(Collision {
                    exposed: exposed.to_owned(),
                    servers,
                });
            }
        }
        listing.push_str("]}");
        table.listing = listing;
        (table, collisions)
    }

    /// Where `exposed` leads, if it is served.
    #[must_use]
    pub fn route(&self, exposed: &str) -> Option<&Route> {
        self.routes.get(exposed)
    }

    /// The merged `tools/list` result as JSON text.
    #[must_use]
    pub fn listing(&self) -> &str {
        &self.listing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(ns: &str, json: &str) -> Vec<Tool> {
        let page: Page<'_> = serde_json::from_str(json).expect("page");
        let ns = Namespace::new(ns).expect("ns");
        page.tools
            .iter()
            .filter_map(|t| read_tool(&ns, t))
            .collect()
    }

    #[test]
    fn definitions_keep_every_byte_but_the_name() {
        let t = tools(
            "a",
            r#"{"tools":[{"name":"echo","inputSchema":{"type":"object","x":1.50},"_meta":{"k":[]},"future":true}]}"#,
        );
        assert_eq!(
            &*t[0].definition,
            r#"{"name":"a__echo","inputSchema":{"type":"object","x":1.50},"_meta":{"k":[]},"future":true}"#
        );
    }

    #[test]
    fn collisions_name_both_servers_and_serve_neither() {
        let a = tools("", r#"{"tools":[{"name":"x"},{"name":"y"}]}"#);
        let b = tools("", r#"{"tools":[{"name":"x"}]}"#);
        let (sa, sb) = (
            ServerName::new("one").expect("name"),
            ServerName::new("two").expect("name"),
        );
        let (table, collisions) =
            ToolTable::build([(0, &sa, a.as_slice()), (1, &sb, b.as_slice())]);
        assert_eq!(collisions.len(), 1);
        let text = collisions[0].to_string();
        assert!(text.contains("`one`") && text.contains("`two`"), "{text}");
        assert!(table.route("x").is_none());
        assert_eq!(table.route("y").map(|r| r.slot), Some(0));
        assert_eq!(table.listing(), r#"{"tools":[{"name":"y"}]}"#);
    }

    #[test]
    fn same_upstream_name_under_two_namespaces_is_fine() {
        let a = tools("a", r#"{"tools":[{"name":"x"}]}"#);
        let b = tools("b", r#"{"tools":[{"name":"x"}]}"#);
        let (sa, sb) = (
            ServerName::new("a").expect("name"),
            ServerName::new("b").expect("name"),
        );
        let (table, collisions) =
            ToolTable::build([(0, &sa, a.as_slice()), (1, &sb, b.as_slice())]);
        assert!(collisions.is_empty());
        assert_eq!(
            table.route("b__x").map(|r| (r.slot, r.name.as_str())),
            Some((1, "x"))
        );
    }
}
