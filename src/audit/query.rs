//! Selecting records (`audit`'s filters) and summing them up (`usage`, `review`).
//! Pure: functions over records already read.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::read::Location;
use super::record::{Decision, Direction, Record};
use crate::time::Timestamp;

/// The method of a tool call; `usage` counts records with it as calls.
pub const CALL_METHOD: &str = "tools/call";
/// The method of a tool listing; `usage` counts the names in its records as listed.
pub const LIST_METHOD: &str = "tools/list";

/// A shell-style pattern over names: `*` matches any run of characters (also none),
/// `?` exactly one, everything else itself (case-sensitive, as exposed names are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<char>);

impl Glob {
    /// The pattern `pattern`.
    #[must_use]
    pub fn new(pattern: &str) -> Self {
        Self(pattern.chars().collect())
    }

    /// Whether `name` matches the whole pattern.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        let (pattern, name): (&[char], Vec<char>) = (&self.0, name.chars().collect());
        let (mut p, mut n) = (0, 0);
        // Where the last `*` was, and the name position it is currently matched up to.
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match pattern.get(p) {
                Some('*') => {
                    star = Some((p, n));
                    p += 1;
                }
                Some(&c) if c == '?' || c == name[n] => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    // Let the last `*` take one more character and try again.
                    Some((sp, sn)) => {
                        p = sp + 1;
                        n = sn + 1;
                        star = Some((sp, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

/// Which records `audit` shows. Every condition set must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// At or after this moment.
    pub since: Option<Timestamp>,
    /// The tool (exposed name) matches; for `list` records, any name listed does.
    pub tool: Option<Glob>,
    /// The server's table name is this.
    pub server: Option<String>,
    /// The decision is one of these (any, when empty).
    pub decisions: Vec<Decision>,
    /// The session id is this, or starts with it.
    pub session: Option<String>,
}

impl Filter {
    /// Whether `record` is selected.
    #[must_use]
    pub fn matches(&self, record: &Record) -> bool {
        self.since.is_none_or(|since| record.ts >= since)
            && self.tool.as_ref().is_none_or(|glob| {
                record.tool.as_deref().is_some_and(|t| glob.matches(t))
                    || record
                        .tools
                        .as_ref()
                        .is_some_and(|names| names.iter().any(|t| glob.matches(t)))
            })
            && self
                .server
                .as_ref()
                .is_none_or(|s| record.server.as_deref() == Some(s.as_str()))
            && (self.decisions.is_empty() || self.decisions.contains(&record.decision))
            && self
                .session
                .as_ref()
                .is_none_or(|s| record.session.starts_with(s.as_str()))
    }
}

/// Whether a record stands for one tool call the client made. `serve` writes exactly
/// one record per call: `to_server` when it refused the call before forwarding it
/// (deny, hold), `to_client` when the answer went back (allow, redact, flag, monitor,
/// or deny by an output filter). Counting only one direction would miss every call
/// that succeeded. Records without a method (an older format) count only as calls the
/// client made, as they were written then.
fn is_call(record: &Record) -> bool {
    record.tool.is_some()
        && match record.method.as_deref() {
            Some(method) => method == CALL_METHOD,
            None => {
                record.direction == Direction::ToServer
                    && !matches!(record.decision, Decision::List | Decision::Seal)
            }
        }
}

/// One tool's use over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ToolUsage {
    /// The exposed name.
    pub tool: String,
    /// The server it belongs to, when a record said.
    pub server: Option<String>,
    /// List answers that offered it.
    pub listed: u64,
    /// Calls the client made (whatever was decided).
    pub called: u64,
    /// Of those, denied or held.
    pub denied: u64,
    /// The last call.
    pub last_called: Option<Timestamp>,
}

/// Per-tool counts for `usage`.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    tools: BTreeMap<String, ToolUsage>,
    /// `tools/list` answers seen.
    pub lists: u64,
    /// Tool calls seen.
    pub calls: u64,
}

impl Usage {
    /// Counts one record.
    pub fn add(&mut self, record: &Record) {
        if record.decision == Decision::List {
            if record.method.as_deref().is_none_or(|m| m == LIST_METHOD) {
                self.lists += 1;
                let names: BTreeSet<&String> = record.tools.iter().flatten().collect();
                for name in names {
                    self.entry(name).listed += 1;
                }
            }
            return;
        }
        if !is_call(record) {
            return;
        }
        let Some(tool) = &record.tool else {
            return;
        };
        self.calls += 1;
        let entry = self.entry(tool);
        entry.called += 1;
        if matches!(record.decision, Decision::Deny | Decision::Hold) {
            entry.denied += 1;
        }
        entry.last_called = entry.last_called.max(Some(record.ts));
        if entry.server.is_none() {
            entry.server.clone_from(&record.server);
        }
    }

    fn entry(&mut self, tool: &str) -> &mut ToolUsage {
        self.tools
            .entry(tool.to_owned())
            .or_insert_with(|| ToolUsage {
                tool: tool.to_owned(),
                ..ToolUsage::default()
            })
    }

    /// Every tool seen, by name.
    pub fn tools(&self) -> impl Iterator<Item = &ToolUsage> {
        self.tools.values()
    }

    /// Tools listed but never called: candidates to deny.
    pub fn unused(&self) -> impl Iterator<Item = &ToolUsage> {
        self.tools().filter(|t| t.listed > 0 && t.called == 0)
    }

    /// The `[[policy.rules]]` table that denies every unused tool, ready to paste into
    /// `mcp-warden.toml`; `None` when every listed tool was called.
    #[must_use]
    pub fn deny_rule(&self, window: &str) -> Option<String> {
        let names: Vec<&str> = self.unused().map(|t| t.tool.as_str()).collect();
        deny_rule_for(
            "unused-tools",
            &format!("listed but not called in {window} (mcp-warden usage)"),
            &names,
        )
    }
}

/// A `[[policy.rules]]` table with id `id` and comment `why` that denies `tools`, ready
/// to paste into `mcp-warden.toml`; `None` when `tools` is empty.
#[must_use]
pub fn deny_rule_for(id: &str, why: &str, tools: &[&str]) -> Option<String> {
    if tools.is_empty() {
        return None;
    }
    let mut rule = format!("[[policy.rules]]\n# {why}\nid = \"{id}\"\ntools = [\n");
    for name in tools {
        rule.push_str("  ");
        rule.push_str(&toml::Value::String((*name).to_owned()).to_string());
        rule.push_str(",\n");
    }
    rule.push_str("]\naction = \"deny\"\n");
    Some(rule)
}

/// One example of a near-miss: the most recent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// When.
    pub ts: Timestamp,
    /// Where in the log.
    pub at: String,
    /// The session.
    pub session: String,
    /// The server.
    pub server: Option<String>,
    /// What was decided.
    pub decision: Decision,
    /// The arguments' HMAC (never the arguments).
    pub args_hmac: Option<String>,
    /// The record's reason.
    pub detail: Option<String>,
}

/// Near-misses of one rule on one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NearMiss {
    /// The rule.
    pub rule: Option<String>,
    /// The tool.
    pub tool: Option<String>,
    /// How many.
    pub count: u64,
    /// How many of each decision.
    pub decisions: BTreeMap<Decision, u64>,
    /// The first and the last.
    pub first: Timestamp,
    /// The last.
    pub last: Timestamp,
    /// The most recent one.
    pub example: Example,
}

/// Near-misses grouped by rule and tool, for `review`.
#[derive(Debug, Clone, Default)]
pub struct Review {
    groups: BTreeMap<(Option<String>, Option<String>), NearMiss>,
}

impl Review {
    /// Counts one record, if it is a near-miss ([`Decision::is_near_miss`]).
    pub fn add(&mut self, at: &Location, record: &Record) {
        if !record.decision.is_near_miss() {
            return;
        }
        let example = Example {
            ts: record.ts,
            at: at.to_string(),
            session: record.session.clone(),
            server: record.server.clone(),
            decision: record.decision,
            args_hmac: record.args_hmac.clone(),
            detail: record.detail.clone(),
        };
        let key = (record.rule.clone(), record.tool.clone());
        let group = self.groups.entry(key).or_insert_with(|| NearMiss {
            rule: record.rule.clone(),
            tool: record.tool.clone(),
            count: 0,
            decisions: BTreeMap::new(),
            first: record.ts,
            last: record.ts,
            example: example.clone(),
        });
        group.count += 1;
        *group.decisions.entry(record.decision).or_default() += 1;
        group.first = group.first.min(record.ts);
        if record.ts >= group.last {
            group.last = record.ts;
            group.example = example;
        }
    }

    /// The groups, most frequent first (then by rule and tool).
    #[must_use]
    pub fn groups(&self) -> Vec<&NearMiss> {
        let mut groups: Vec<_> = self.groups.values().collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.count));
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let cases = [
            ("fs__*", "fs__read_file", true),
            ("fs__*", "git__status", false),
            ("*file", "fs__read_file", true),
            ("*read*", "fs__read_file", true),
            ("fs__read_fil?", "fs__read_file", true),
            ("fs__read_fil?", "fs__read_fil", false),
            ("*", "", true),
            ("", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("fs__read_file", "fs__read_file", true),
            ("fs__read_file", "FS__read_file", false),
            ("**x", "abx", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(name),
                expected,
                "{pattern} {name}"
            );
        }
    }
}
