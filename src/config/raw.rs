//! The serde mirror of a configuration file: every key the SPEC documents, nothing
//! else (`deny_unknown_fields` everywhere), values kept as written. Nothing here decides
//! what a value means; [`super::validate`] does, into the types of [`super::model`].
//!
//! Values that a later check must point at are [`Spanned`]. Keys the program does not
//! act on yet are still mirrored here, so that a typo in them is reported as a typo and
//! a correct key as "not supported yet" rather than as unknown.
//!
//! [`parse`] reads one file section by section (each server on its own), so that one
//! mistake does not hide the others: serde stops at the first error of a value.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::{Diagnostic, Source, suggestion};
/// `pinning.mode`: a validated type already, so the mirror uses it as it is.
pub use super::model::PinningMode;
/// The policy's enums are validated types already, so the mirror uses them as they are.
pub use crate::policy::{Action, InjectionAction, PolicyMode, SecretsAction, Trifecta};

/// The top-level tables a configuration file may have, in the order the SPEC lists
/// them.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "servers", "policy", "labels", "flows", "output", "limits", "pinning", "audit",
];

/// One configuration file (`policy.toml`, `config.toml` or `mcp-warden.toml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    #[serde(default)]
    pub servers: BTreeMap<String, RawServer>,
    pub policy: Option<RawPolicy>,
    /// Label name → globs over exposed tool names, or over tools, resources and
    /// prompts.
    pub labels: Option<BTreeMap<String, RawLabel>>,
    pub flows: Option<RawFlows>,
    pub output: Option<RawOutput>,
    pub limits: Option<RawLimits>,
    pub pinning: Option<RawPinning>,
    pub audit: Option<RawAudit>,
}

/// `[servers.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub command: Spanned<String>,
    #[serde(default)]
    pub args: Vec<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub env_passthrough: Vec<Spanned<String>>,
    pub cwd: Option<Spanned<String>>,
    pub namespace: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub sampling: Option<Spanned<Permission>>,
    pub elicitation: Option<Spanned<Permission>>,
    pub request_timeout: Option<Spanned<String>>,
    /// The longest exposed name (`install` writes the budget of the client it installs
    /// into: Cursor and Claude Code count the server key too).
    pub max_name_len: Option<Spanned<u64>>,
    pub sandbox: Option<RawSandbox>,
}

/// `allow` / `deny` for the requests a server may send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Allow,
    Deny,
}

/// `[servers.NAME.sandbox]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    pub preset: Option<Preset>,
    pub fs_read: Option<Vec<Spanned<String>>>,
    pub fs_write: Option<Vec<Spanned<String>>>,
    pub network: Option<bool>,
    pub network_ports: Option<Spanned<Vec<u16>>>,
    pub user: Option<Spanned<String>>,
    pub required: Option<bool>,
    /// Largest data segment: `512M`, `2G`.
    pub memory: Option<Spanned<String>>,
    /// CPU time: `10m`.
    pub cpu_time: Option<Spanned<String>>,
}

/// `sandbox.preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Auto,
    Node,
    Python,
    /// `"none"`: no preset, only what the table lists.
    #[serde(rename = "none")]
    Bare,
}

/// One label of `[labels]`: an array of globs over exposed tool names (the short
/// form), or a table `{ tools = [...], resources = [...], prompts = [...] }` (SPEC
/// "Policy": a resource read can be `private`, a URL template `egress`).
#[derive(Debug, Default)]
pub struct RawLabel {
    pub tools: Vec<Spanned<String>>,
    /// Globs over resource URIs.
    pub resources: Vec<Spanned<String>>,
    /// Globs over exposed prompt names.
    pub prompts: Vec<Spanned<String>>,
}

/// The table form of a label, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabelTable {
    #[serde(default)]
    tools: Vec<Spanned<String>>,
    #[serde(default)]
    resources: Vec<Spanned<String>>,
    #[serde(default)]
    prompts: Vec<Spanned<String>>,
}

// Written by hand rather than `#[serde(untagged)]`: an untagged enum buffers the value
// and loses the spans `Spanned` needs.
impl<'de> Deserialize<'de> for RawLabel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawLabel;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of tool globs, or a table of `tools`, `resources` and `prompts` globs")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawLabel, A::Error> {
                let tools = Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(RawLabel {
                    tools,
                    ..RawLabel::default()
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawLabel, A::Error> {
                let table =
                    RawLabelTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawLabel {
                    tools: table.tools,
                    resources: table.resources,
                    prompts: table.prompts,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `[policy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub default: Option<Action>,
    pub mode: Option<PolicyMode>,
    pub scan_arguments: Option<bool>,
    pub rules: Option<Vec<RawRule>>,
}

/// `[[policy.rules]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: Spanned<String>,
    /// Globs over exposed tool names.
    pub tools: Option<Spanned<Vec<Spanned<String>>>>,
    /// Globs over resource URIs.
    pub resources: Option<Spanned<Vec<Spanned<String>>>>,
    /// Globs over exposed prompt names.
    pub prompts: Option<Spanned<Vec<Spanned<String>>>>,
    pub when: Option<Spanned<RawWhen>>,
    pub action: Action,
    pub message: Option<String>,
}

/// A rule's `when` table: every condition must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    /// A top-level argument name, or a JSON pointer (`/a/b`).
    pub arg: Option<Spanned<String>>,
    pub under: Option<Spanned<Vec<Spanned<String>>>>,
    pub not_under: Option<Spanned<Vec<Spanned<String>>>>,
    /// A regex.
    pub matches: Option<Spanned<String>>,
    pub not_matches: Option<Spanned<String>>,
    pub equals: Option<Spanned<toml::Value>>,
    pub one_of: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    pub max_len: Option<u64>,
    /// A tool annotation's name (with `equals`); counts only for pinned tools.
    pub annotation: Option<Spanned<String>>,
}

/// `[flows]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlows {
    pub trifecta: Option<Trifecta>,
    pub rules: Option<Vec<RawFlowRule>>,
}

/// `[[flows.rules]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlowRule {
    pub id: Spanned<String>,
    /// Every label listed was seen earlier in the session.
    pub after: Spanned<Vec<Spanned<String>>>,
    /// Labels denied once `after` holds.
    pub deny: Spanned<Vec<Spanned<String>>>,
}

/// `[output]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub secrets: Option<SecretsAction>,
    pub injection: Option<InjectionAction>,
    pub strip_invisible: Option<bool>,
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub calls_per_minute: Option<Spanned<u64>>,
    pub tool_calls_per_minute: Option<Spanned<u64>>,
    pub max_message_bytes: Option<Spanned<u64>>,
    pub max_result_bytes: Option<Spanned<u64>>,
}

/// `[pinning]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPinning {
    pub mode: Option<PinningMode>,
    pub ask: Option<bool>,
}

/// `[audit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Log raw (redacted) arguments as well as their HMAC.
    pub arguments: Option<bool>,
    /// Forward every record to a syslog collector as well.
    pub syslog: Option<Spanned<RawSyslog>>,
}

/// `[audit.syslog]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyslog {
    /// `tcp://HOST:PORT` or `unix:///PATH`.
    pub address: Spanned<String>,
    pub facility: Option<Spanned<String>>,
    /// Most records kept while the collector is unreachable.
    pub buffer: Option<Spanned<u64>>,
}

/// A file parsed: the raw mirror of what could be read, the spanned TOML tree (for the
/// positions of keys, which serde does not give), and every problem found.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub raw: RawFile,
    pub table: DeTable<'a>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses one file. Syntax errors are all reported (the TOML parser recovers); a file
/// with syntax errors yields an empty [`RawFile`]. Otherwise each top-level table, and
/// each server, is read on its own, so every broken one is reported; a broken server
/// is left out of `raw.servers`.
#[must_use]
pub fn parse<'a>(source: &Source<'a>) -> Parsed<'a> {
    let (table, errors) = DeTable::parse_recoverable(source.text);
    let table = table.into_inner();
    if !errors.is_empty() {
        let mut diagnostics: Vec<_> = errors.iter().map(|e| source.toml_error(e, None)).collect();
        diagnostics.sort_by_key(|d| d.position);
        diagnostics.dedup();
        return Parsed {
            raw: RawFile::default(),
            table,
            diagnostics,
        };
    }
    let mut raw = RawFile::default();
    let mut diagnostics = Vec::new();
    for (key, value) in &table {
        let d = &mut diagnostics;
        match key.get_ref().as_ref() {
            "servers" => {
                if let Some(servers) = read_servers(source, value, d) {
                    raw.servers = servers;
                }
            }
            "policy" => {
                raw.policy = read_with_rules::<RawPolicy, _>(source, "policy", value, d).map(
                    |(mut p, rules)| {
                        p.rules = rules;
                        p
                    },
                );
            }
            "labels" => raw.labels = read_section(source, "labels", value, d),
            "flows" => {
                raw.flows = read_with_rules::<RawFlows, _>(source, "flows", value, d).map(
                    |(mut f, rules)| {
                        f.rules = rules;
                        f
                    },
                );
            }
            "output" => raw.output = read_section(source, "output", value, d),
            "limits" => raw.limits = read_section(source, "limits", value, d),
            "pinning" => raw.pinning = read_section(source, "pinning", value, d),
            "audit" => raw.audit = read_section(source, "audit", value, d),
            other => {
                let mut d = source.error(&key.span(), format!("unknown key `{other}`"));
                d.hint = suggestion(other, TOP_LEVEL_KEYS).or_else(|| {
                    let list: Vec<_> = TOP_LEVEL_KEYS.iter().map(|k| format!("`{k}`")).collect();
                    Some(format!("the top-level tables are {}", list.join(", ")))
                });
                diagnostics.push(d);
            }
        }
    }
    diagnostics.sort_by_key(|d| d.position);
    Parsed {
        raw,
        table,
        diagnostics,
    }
}

fn read_section<T: DeserializeOwned>(
    source: &Source<'_>,
    name: &str,
    value: &Spanned<DeValue<'_>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    T::deserialize(ValueDeserializer::from(value.clone()))
        .map_err(|e| diagnostics.push(source.toml_error(&e, Some(name))))
        .ok()
}

/// Reads a section that holds a `rules` array (`[policy]`, `[flows]`): each rule on
/// its own, as `NAME.rules[i]`, so that every broken rule is reported and the good ones
/// kept, then the rest of the section (whose `rules` is then `None`).
fn read_with_rules<S: DeserializeOwned, R: DeserializeOwned>(
    source: &Source<'_>,
    name: &str,
    value: &Spanned<DeValue<'_>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(S, Option<Vec<R>>)> {
    let mut value = value.clone();
    let rules = match value.get_mut() {
        DeValue::Table(table) => table.remove("rules"),
        _ => None,
    };
    let rules = rules.map(|rules| {
        if let DeValue::Array(items) = rules.get_ref() {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    read_section(source, &format!("{name}.rules[{i}]"), item, diagnostics)
                })
                .collect()
        } else {
            diagnostics.push(
                source
                    .error(
                        &rules.span(),
                        format!("`{name}.rules` must be an array of tables"),
                    )
                    .with_hint(format!("write each rule as `[[{name}.rules]]`")),
            );
            Vec::new()
        }
    });
    read_section(source, name, &value, diagnostics).map(|section| (section, rules))
}

fn read_servers(
    source: &Source<'_>,
    value: &Spanned<DeValue<'_>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<BTreeMap<String, RawServer>> {
    let Some(table) = value.get_ref().as_table() else {
        diagnostics.push(
            source
                .error(&value.span(), "`servers` must be a table")
                .with_hint("write each server as `[servers.NAME]`"),
        );
        return None;
    };
    let mut servers = BTreeMap::new();
    for (name, server) in table {
        let name = name.get_ref().as_ref();
        let context = format!("servers.{name}");
        if let Some(raw) = read_section(source, &context, server, diagnostics) {
            servers.insert(name.to_owned(), raw);
        }
    }
    Some(servers)
}

/// The span of the key at `path` (table names from the top), when it is written in the
/// file. Keys of inline and dotted tables are found as well as those of `[headers]`.
#[must_use]
pub fn key_span(table: &DeTable<'_>, path: &[&str]) -> Option<Range<usize>> {
    let (last, parents) = path.split_last()?;
    let mut current = table;
    for p in parents {
        current = current.get(*p)?.get_ref().as_table()?;
    }
    current.get_key_value(*last).map(|(k, _)| k.span())
}

/// The keys written directly in the table at `path`, with their spans, in file order.
#[must_use]
pub fn keys_at(table: &DeTable<'_>, path: &[&str]) -> Vec<(String, Range<usize>)> {
    let mut current = table;
    for p in path {
        match current.get(*p).and_then(|v| v.get_ref().as_table()) {
            Some(t) => current = t,
            None => return Vec::new(),
        }
    }
    let mut keys: Vec<_> = current
        .iter()
        .map(|(k, _)| (k.get_ref().to_string(), k.span()))
        .collect();
    keys.sort_by_key(|(_, span)| span.start);
    keys
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse_str(text: &str) -> (RawFile, Vec<String>) {
        let source = Source::new(Path::new("t.toml"), text);
        let parsed = parse(&source);
        (
            parsed.raw,
            parsed.diagnostics.iter().map(ToString::to_string).collect(),
        )
    }

    /// Every key the SPEC documents parses: the mirror is complete.
    #[test]
    fn every_documented_key_parses() {
        let text = r#"
[servers.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem@2026.8.31", "${workspace}"]
env = { LOG_LEVEL = "info" }
env_passthrough = ["GITHUB_TOKEN"]
cwd = "${workspace}"
namespace = "fs"
enabled = true
sampling = "deny"
elicitation = "allow"
request_timeout = "60s"

[servers.fs.sandbox]
preset = "auto"
fs_read = []
fs_write = ["${workspace}"]
network = true
network_ports = []
user = "auto"
required = false

[policy]
default = "allow"
mode = "enforce"
scan_arguments = true

[[policy.rules]]
id = "writes-stay-in-workspace"
tools = ["fs__write_file", "fs__edit_file"]
when = { arg = "path", not_under = ["${workspace}"], under = ["/tmp"], matches = "x", not_matches = "y", equals = "z", one_of = ["a", 1], max_len = 10, annotation = "readOnlyHint" }
action = "deny"
message = "writes outside the workspace are not allowed"

[[policy.rules]]
id = "no-secret-resources"
resources = ["file:///**/.env"]
prompts = ["x"]
action = "deny"

[labels]
private = ["fs__read_*", "github__get_*"]
untrusted = ["fetch__*"]
egress = ["fetch__*"]

[flows]
trifecta = "deny"
[[flows.rules]]
id = "no-upload-after-secrets"
after = ["secrets"]
deny = ["egress"]

[output]
secrets = "redact"
injection = "flag"
strip_invisible = true

[limits]
calls_per_minute = 120
tool_calls_per_minute = 60
max_message_bytes = 8388608
max_result_bytes = 4194304

[pinning]
mode = "strict"
ask = true

[audit]
arguments = false
"#;
        assert!(toml::from_str::<RawFile>(text).is_ok());
        let (raw, diags) = parse_str(text);
        assert!(diags.is_empty(), "{diags:?}");
        let fs = &raw.servers["fs"];
        assert_eq!(fs.command.get_ref(), "npx");
        assert_eq!(fs.sandbox.as_ref().and_then(|s| s.network), Some(true));
        let rules = raw.policy.and_then(|p| p.rules).unwrap_or_default();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0].when.as_ref().and_then(|w| w.get_ref().max_len),
            Some(10)
        );
        assert_eq!(raw.flows.and_then(|f| f.rules).map(|r| r.len()), Some(1));
        assert_eq!(raw.pinning.and_then(|p| p.mode), Some(PinningMode::Strict));
        assert_eq!(raw.audit.and_then(|a| a.arguments), Some(false));
        assert!(raw.labels.is_some() && raw.output.is_some() && raw.limits.is_some());
    }

    /// The section-by-section reader and the derived whole-file mirror agree on the
    /// top-level keys.
    #[test]
    fn top_level_keys_are_the_mirror_fields() {
        for key in TOP_LEVEL_KEYS {
            let text = format!("[{key}]\n");
            assert!(toml::from_str::<RawFile>(&text).is_ok(), "{key}");
            assert!(parse_str(&text).1.is_empty(), "{key}");
        }
        let err = toml::from_str::<RawFile>("[x]\n")
            .err()
            .map(|e| e.message().to_owned());
        let expected = err
            .as_deref()
            .map(|m| m.split('`').skip(3).step_by(2).collect::<Vec<_>>());
        assert_eq!(expected.as_deref(), Some(TOP_LEVEL_KEYS));
    }

    #[test]
    fn unknown_server_key_points_at_the_key_and_suggests() {
        let (_, diags) = parse_str("[servers.fs]\ncomand = \"npx\"\n");
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].starts_with("t.toml:2:1: error: unknown key `comand` in `servers.fs`"));
        assert!(diags[0].contains("did you mean `command`?"));
    }

    #[test]
    fn unknown_key_in_a_when_condition_is_reported() {
        let text =
            "[[policy.rules]]\nid = \"x\"\naction = \"deny\"\nwhen = { arg = \"p\", undr = [] }\n";
        let (_, diags) = parse_str(text);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].contains("unknown key `undr`"), "{diags:?}");
        assert!(diags[0].contains("did you mean `under`?"), "{diags:?}");
    }

    #[test]
    fn unknown_top_level_table_suggests() {
        let (_, diags) = parse_str("[server.fs]\ncommand = \"x\"\n");
        assert_eq!(diags.len(), 1);
        assert!(
            diags[0].starts_with("t.toml:1:2: error: unknown key `server`"),
            "{diags:?}"
        );
        assert!(diags[0].contains("did you mean `servers`?"));
    }

    #[test]
    fn every_broken_server_is_reported_and_good_ones_kept() {
        let text = "[servers.a]\ncomand = \"x\"\n[servers.b]\ncommand = \"ok\"\n[servers.c]\ncommand = 1\n";
        let (raw, diags) = parse_str(text);
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert!(diags[0].starts_with("t.toml:2:1:"));
        assert!(diags[1].starts_with("t.toml:6:11:"));
        assert_eq!(raw.servers.keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn missing_command_is_an_error() {
        let (_, diags) = parse_str("[servers.a]\nargs = []\n");
        assert!(
            diags[0].contains("missing key `command` in `servers.a`"),
            "{diags:?}"
        );
    }

    #[test]
    fn syntax_errors_all_have_positions() {
        let (_, diags) = parse_str("[servers.a]\ncommand = = 1\n[x\n");
        assert!(diags.len() >= 2, "{diags:?}");
        assert!(diags[0].starts_with("t.toml:2:"), "{diags:?}");
    }

    #[test]
    fn bad_enum_value_points_at_the_value() {
        let (_, diags) = parse_str("[servers.a]\ncommand = \"x\"\nsampling = \"alow\"\n");
        assert!(
            diags[0].starts_with("t.toml:3:12: error: unknown value `alow`"),
            "{diags:?}"
        );
        assert!(diags[0].contains("did you mean `allow`?"));
    }

    #[test]
    fn key_span_finds_nested_keys() {
        let text = "[servers.a]\ncommand = \"x\"\n[servers.a.sandbox]\nnetwork = false\n";
        let source = Source::new(Path::new("t"), text);
        let parsed = parse(&source);
        let span = key_span(&parsed.table, &["servers", "a", "sandbox", "network"]);
        assert_eq!(span.map(|s| &text[s]), Some("network"));
        let keys = keys_at(&parsed.table, &["servers", "a"]);
        assert_eq!(
            keys.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["command", "sandbox"]
        );
    }
}
