//! What the MCP clients that run mcp-warden can take (issue 16 items 7 and 8; see
//! FIELD-NOTES "clients"): how many tools each one uses, and how long a tool name may
//! be, checked against what `serve` would expose here. Read from the configuration and
//! the lock files: nothing is started, so the counts are of pinned tools (what `serve`
//! lists in `strict` and `tofu` once pinned). `doctor`, `status` and `usage` share it.
//!
//! Must never: start a server, or guess a client's limit that is not documented.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::query::{ToolUsage, Usage};
use crate::config::Effective;
use crate::install::client::{Client, client_name_budget};
use crate::install::survey::{ClientStatus, State};
use crate::names::exposed_name;
use crate::paths::Paths;
use crate::pinning::lock::Kind;

/// A client's limit on the tools it takes from its servers, and what happens above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolCap {
    pub limit: usize,
    /// What the client does with more, for a person.
    pub effect: &'static str,
}

/// The documented tool limit of `client`, if it has one (FIELD-NOTES: Cursor sends
/// only the first 40 tools, VS Code/Copilot refuses more than 128 per request,
/// Windsurf takes 50).
#[must_use]
pub fn tool_cap(client: Client) -> Option<ToolCap> {
    match client {
        Client::Cursor => Some(ToolCap {
            limit: 40,
            effect: "it sends only the first 40 to the model",
        }),
        Client::Vscode => Some(ToolCap {
            limit: 128,
            effect: "it refuses a request with more than 128",
        }),
        Client::Windsurf => Some(ToolCap {
            limit: 50,
            effect: "it uses at most 50",
        }),
        _ => None,
    }
}

/// One client that runs mcp-warden, its tool limit, and the merged tool count.
#[derive(Debug, Clone, Serialize)]
pub struct ToolFit {
    pub client: String,
    pub scope: String,
    pub tools: usize,
    pub cap: usize,
    pub fits: bool,
    pub effect: &'static str,
}

impl ToolFit {
    /// `cursor (user): 57 tools, over its cap of 40: it sends only the first 40 …`.
    #[must_use]
    pub fn describe(&self) -> String {
        if self.fits {
            format!(
                "client `{}` ({}): {} of its {} tools",
                self.client, self.scope, self.tools, self.cap
            )
        } else {
            format!(
                "client `{}` ({}): {} tools, over its cap of {}: {}; `mcp-warden usage` says which grants to drop",
                self.client, self.scope, self.tools, self.cap, self.effect
            )
        }
    }
}

/// The clients whose files point at mcp-warden, with their entry's key.
fn ours(clients: &[ClientStatus]) -> impl Iterator<Item = (&ClientStatus, &str)> {
    clients.iter().filter_map(|c| match &c.state {
        State::Configured(servers) => servers.mcp_warden.as_ref().map(|e| (c, e.key.as_str())),
        _ => None,
    })
}

/// For each client that runs mcp-warden and has a tool limit: `tools` against it.
#[must_use]
pub fn tool_fits(clients: &[ClientStatus], tools: usize) -> Vec<ToolFit> {
    ours(clients)
        .filter_map(|(c, _)| {
            let cap = tool_cap(c.client)?;
            Some(ToolFit {
                client: c.client.name().to_owned(),
                scope: c.scope.name().to_owned(),
                tools,
                cap: cap.limit,
                fits: tools <= cap.limit,
                effect: cap.effect,
            })
        })
        .collect()
}

/// One exposed tool name, and the server table it belongs to.
#[derive(Debug, Clone)]
pub struct ExposedTool {
    pub server: String,
    pub exposed: String,
}

/// The exposed names of the tools pinned for the servers `serve` would start here, as
/// their server's namespace and name budget map them now (a pin keeps the name it was
/// made under, which a changed `max_name_len` has since changed).
#[must_use]
pub fn exposed_tools(paths: &Paths, effective: &Effective) -> Vec<ExposedTool> {
    super::inventory::pinned(paths, effective)
        .items
        .into_keys()
        .filter(|key| key.kind == Kind::Tool)
        .filter_map(|key| {
            let config = effective
                .servers
                .iter()
                .find(|s| s.name.as_str() == key.server)?;
            Some(ExposedTool {
                exposed: exposed_name(&config.namespace, &key.name),
                server: key.server,
            })
        })
        .collect()
}

/// The exposed names of one server too long for one client's name budget.
#[derive(Debug, Clone, Serialize)]
pub struct NameMisfit {
    pub client: String,
    pub scope: String,
    /// The client's key for mcp-warden, which it prefixes to each name.
    pub key: String,
    pub budget: usize,
    pub server: String,
    pub names: Vec<String>,
}

impl NameMisfit {
    /// What is wrong, with the fix.
    #[must_use]
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.names.iter().map(|n| format!("`{n}`")).collect();
        format!(
            "client `{}` ({}): {} tool name(s) of server `{}` are longer than its budget of {} characters \
             (under the key `{}`), so it drops or refuses them: {}; set `max_name_len = {}` in `[servers.{}]`",
            self.client,
            self.scope,
            self.names.len(),
            self.server,
            self.budget,
            self.key,
            names.join(", "),
            self.budget,
            self.server
        )
    }
}

/// For each client that runs mcp-warden, the exposed names longer than its budget
/// ([`client_name_budget`]), per server.
#[must_use]
pub fn name_misfits(clients: &[ClientStatus], tools: &[ExposedTool]) -> Vec<NameMisfit> {
    let mut out = Vec::new();
    for (c, key) in ours(clients) {
        let budget = client_name_budget(c.client, key);
        let mut by_server: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for t in tools.iter().filter(|t| t.exposed.chars().count() > budget) {
            by_server
                .entry(t.server.as_str())
                .or_default()
                .push(t.exposed.clone());
        }
        out.extend(by_server.into_iter().map(|(server, names)| NameMisfit {
            client: c.client.name().to_owned(),
            scope: c.scope.name().to_owned(),
            key: key.to_owned(),
            budget,
            server: server.to_owned(),
            names,
        }));
    }
    out
}

/// The `over` tools to drop so that the rest fit: never called first, then the least
/// called, then the longest unused; ties by name.
#[must_use]
pub fn to_drop(usage: &Usage, over: usize) -> Vec<&ToolUsage> {
    let mut listed: Vec<&ToolUsage> = usage.tools().filter(|t| t.listed > 0).collect();
    listed.sort_by(|a, b| {
        (a.called, a.last_called, &a.tool).cmp(&(b.called, b.last_called, &b.tool))
    });
    listed.truncate(over);
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_caps_only() {
        assert_eq!(tool_cap(Client::Cursor).map(|c| c.limit), Some(40));
        assert_eq!(tool_cap(Client::Vscode).map(|c| c.limit), Some(128));
        assert_eq!(tool_cap(Client::Windsurf).map(|c| c.limit), Some(50));
        assert_eq!(tool_cap(Client::ClaudeCode), None);
    }
}
