//! A client entry's own tool lists (Gemini CLI's `includeTools`/`excludeTools`, Codex's
//! `enabled_tools`/`disabled_tools`, Windsurf's `disabledTools`) as mcp-warden policy
//! rules over exposed names, written into the layer the server moves to. Pure: which
//! rules, never where they go.
//!
//! A deny list becomes one deny rule over the listed tools' exposed names. An allow list
//! becomes an allow rule over its tools followed by a deny rule over every other tool of
//! that server (`<namespace>__*`); the deny list's rule comes first, so it wins, as it
//! does in the clients. Within a layer the first matching rule decides, and these are
//! appended after the layer's own rules: a rule the user wrote earlier in the same file
//! still decides first. In a layer whose `default` is `"deny"` the caller leaves the
//! allow rule out, so install never opens what the user closed.

use crate::config::Namespace;
use crate::names::exposed_name;

/// One `[[policy.rules]]` entry `install` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    pub id: String,
    /// Globs over exposed names (exposed names have no glob characters).
    pub tools: Vec<String>,
    pub action: Action,
}

/// What a rule `install` writes does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    /// As the policy file spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The rules for server `table` (its namespace is its table name, its names at most
/// `max_name_len` long) that keep it to `filter`; `None` when the table name is not a
/// namespace (then the server cannot move faithfully).
#[must_use]
pub fn rules_for(
    table: &str,
    max_name_len: Option<usize>,
    filter: &super::entry::ToolFilter,
) -> Option<Vec<PolicyRule>> {
    let mut namespace = Namespace::new(table)?;
    if let Some(max) = max_name_len {
        namespace = namespace.with_max_len(max);
    }
    let exposed = |tools: &[String]| -> Vec<String> {
        tools.iter().map(|t| exposed_name(&namespace, t)).collect()
    };
    let mut rules = Vec::new();
    if !filter.exclude.is_empty() {
        rules.push(PolicyRule {
            id: format!("{table}.excluded-tools"),
            tools: exposed(&filter.exclude),
            action: Action::Deny,
        });
    }
    if let Some(include) = &filter.include {
        if !include.is_empty() {
            rules.push(PolicyRule {
                id: format!("{table}.included-tools"),
                tools: exposed(include),
                action: Action::Allow,
            });
        }
        rules.push(PolicyRule {
            id: format!("{table}.other-tools"),
            tools: vec![format!("{}__*", namespace.as_str())],
            action: Action::Deny,
        });
    }
    Some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::entry::ToolFilter;

    #[test]
    fn deny_lists_come_first_and_allow_lists_deny_the_rest() {
        let filter = ToolFilter {
            include: Some(vec!["read".into(), "list.all".into()]),
            exclude: vec!["rm".into()],
            keys: vec![],
        };
        let rules = rules_for("fs", None, &filter).expect("a namespace");
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["fs.excluded-tools", "fs.included-tools", "fs.other-tools"]
        );
        assert_eq!(rules[0].tools, ["fs__rm"]);
        assert_eq!(rules[0].action, Action::Deny);
        // Exposed names, mapped as `serve` maps them.
        assert_eq!(rules[1].tools[0], "fs__read");
        assert!(rules[1].tools[1].starts_with("fs__list_all_"), "{rules:?}");
        assert_eq!(rules[2].tools, ["fs__*"]);
        assert_eq!(rules[2].action, Action::Deny);
    }

    #[test]
    fn an_empty_allow_list_offers_nothing_and_no_lists_no_rules() {
        let none = ToolFilter {
            include: Some(vec![]),
            ..ToolFilter::default()
        };
        let rules = rules_for("gh", None, &none).expect("a namespace");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].tools, ["gh__*"]);
        assert!(
            rules_for("gh", None, &ToolFilter::default())
                .expect("a namespace")
                .is_empty()
        );
    }
}
