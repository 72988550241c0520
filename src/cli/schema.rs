//! `mcp-warden schema`: the JSON Schema (draft 2020-12) of the configuration files
//! (`policy.toml`, `config.toml`, `mcp-warden.toml`: one format), for editors that
//! validate TOML against a schema (Taplo / Even Better TOML, `#:schema` comments).
//!
//! It is written out here rather than derived, because the serde mirror
//! ([`crate::config::raw`]) wraps values in `toml::Spanned` for positions and shares
//! enums with the policy engine; a test keeps the two in step: every table's keys and
//! every enum's values here are exactly the ones the mirror accepts.

use clap::Args;
use serde_json::{Value, json};

use crate::ExitStatus;
use crate::output;

/// Print the JSON Schema of mcp-warden's configuration files. Save it and point your
/// editor at it: with Taplo (Even Better TOML), a first line
/// `#:schema /path/to/mcp-warden.schema.json` in the file.
#[derive(Debug, Args)]
pub struct SchemaArgs {}

/// Runs `schema`.
pub fn run(_args: &SchemaArgs) -> ExitStatus {
    match serde_json::to_string_pretty(&schema()) {
        Ok(text) => {
            output::json(&text);
            ExitStatus::Success
        }
        Err(e) => {
            output::diag(&format!("error: {e}"));
            ExitStatus::Failure
        }
    }
}

/// A string whose value is one of `values`.
fn one_of(values: &[&str], description: &str) -> Value {
    json!({"type": "string", "enum": values, "description": description})
}

fn strings(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": description})
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

fn count(description: &str) -> Value {
    json!({"type": "integer", "minimum": 0, "description": description})
}

/// A table that allows only `properties` (the mirror's `deny_unknown_fields`).
fn table(description: &str, properties: &Value, required: &[&str]) -> Value {
    let mut t = json!({
        "type": "object",
        "description": description,
        "additionalProperties": false,
        "properties": properties,
    });
    if !required.is_empty() {
        t["required"] = json!(required);
    }
    t
}

/// `[servers.NAME]`, with its sandbox table.
fn server() -> Value {
    let sandbox = table(
        "The server's sandbox; defaults shown in the README, section Sandbox.",
        &json!({
            "preset": one_of(&["auto", "node", "python", "none"], "What the runtime needs to read; `auto` from the command."),
            "fs_read": strings("Read-only paths beyond the preset and the workspace."),
            "fs_write": strings("Writable paths (default: the workspace)."),
            "network": boolean("false: no network at all."),
            "network_ports": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}, "description": "With network = false: TCP ports still allowed to connect."},
            "user": string("As root: `auto` (a uid of its own), a user name or a uid."),
            "required": boolean("Refuse to start when a configured layer is missing."),
            "memory": string("Largest data segment, e.g. `512M`, `2G`."),
            "cpu_time": string("CPU time, e.g. `10m`."),
        }),
        &[],
    );
    table(
        "One upstream stdio MCP server.",
        &json!({
            "command": string("The program; `${workspace}`, `${home}`, `${env:NAME}` are expanded."),
            "args": strings("Its arguments."),
            "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Set for the child."},
            "env_passthrough": strings("Names copied from mcp-warden's own environment."),
            "cwd": string("Working directory (default: the server's private directory)."),
            "namespace": string("Prefix of its exposed names (default: the table name; \"\" = none)."),
            "enabled": boolean("false: configured but not started."),
            "sampling": one_of(&["allow", "deny"], "May it ask the client's model? (default deny)"),
            "elicitation": one_of(&["allow", "deny"], "May it ask the user questions? (default allow, inspected)"),
            "request_timeout": string("How long one request may take, e.g. `60s`."),
            "max_name_len": {"type": "integer", "minimum": 16, "maximum": 64, "description": "The longest exposed name of its tools and prompts (default 64); `install` sets it to fit the client's name budget."},
            "sandbox": sandbox,
        }),
        &["command"],
    )
}

/// The schema of one configuration file.
#[must_use]
pub fn schema() -> Value {
    let scalar = json!({"type": ["string", "integer", "number", "boolean"]});
    let when = table(
        "Conditions on the call's arguments; all must hold.",
        &json!({
            "arg": string("A top-level argument name, or a JSON pointer (`/a/b`)."),
            "under": strings("Paths the argument must be under."),
            "not_under": strings("Paths the argument must not be under."),
            "matches": string("A regex the argument matches."),
            "not_matches": string("A regex the argument does not match."),
            "equals": scalar,
            "one_of": {"type": "array", "items": scalar},
            "max_len": count("Longest value, in characters."),
            "annotation": string("A tool annotation's name (with `equals`); counts only for pinned tools."),
        }),
        &[],
    );
    let rule = table(
        "A rule; the first that matches decides within its layer.",
        &json!({
            "id": string("Stable id, named in decisions and the audit."),
            "tools": strings("Globs over exposed tool names."),
            "resources": strings("Globs over resource URIs."),
            "prompts": strings("Globs over exposed prompt names."),
            "when": when,
            "action": one_of(&["allow", "deny", "ask"], "What the rule does."),
            "message": string("The reason shown (not from an untrusted workspace)."),
        }),
        &["id", "action"],
    );
    let flow_rule = table(
        "A sequence rule.",
        &json!({
            "id": string("Stable id (`flow:<id>` in decisions)."),
            "after": strings("Every label listed was seen earlier in the session."),
            "deny": strings("Labels denied once `after` holds."),
        }),
        &["id", "after", "deny"],
    );
    let mut root = table(
        "An mcp-warden configuration file: policy.toml (managed), config.toml (user) or mcp-warden.toml (workspace).",
        &json!({
            "servers": {"type": "object", "description": "Upstream servers by table name.", "additionalProperties": server()},
            "policy": table("The policy of this layer.", &json!({
                "default": one_of(&["allow", "deny", "ask"], "For calls no rule of this layer matches."),
                "mode": one_of(&["enforce", "monitor"], "monitor: decide and audit, block nothing."),
                "scan_arguments": boolean("Check tool inputs for secrets too."),
                "rules": {"type": "array", "items": rule},
            }), &[]),
            "labels": {"type": "object", "description": "Label name -> globs over exposed tool names, or a table of tools, resources (URI globs) and prompts globs.", "additionalProperties": {"oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "additionalProperties": false, "properties": {
                    "tools": {"type": "array", "items": {"type": "string"}},
                    "resources": {"type": "array", "items": {"type": "string"}},
                    "prompts": {"type": "array", "items": {"type": "string"}},
                }},
            ]}},
            "flows": table("Sequence rules.", &json!({
                "trifecta": one_of(&["deny", "off"], "Once a session used private AND untrusted, deny egress."),
                "rules": {"type": "array", "items": flow_rule},
            }), &[]),
            "output": table("Filters on everything servers send.", &json!({
                "secrets": one_of(&["redact", "block", "off"], "Secrets in results."),
                "injection": one_of(&["flag", "block", "off"], "Prompt injection in results."),
                "strip_invisible": boolean("Remove invisible and bidirectional characters."),
            }), &[]),
            "limits": table("Limits.", &json!({
                "calls_per_minute": count("Per session."),
                "tool_calls_per_minute": count("Per tool."),
                "max_message_bytes": count("Largest message."),
                "max_result_bytes": count("Largest result."),
            }), &[]),
            "pinning": table("Pinning of definitions.", &json!({
                "mode": one_of(&["strict", "tofu", "off"], "strict (default): new and changed items are held."),
                "ask": boolean("Review a held tool from inside the client."),
            }), &[]),
            "audit": table("The audit trail.", &json!({
                "arguments": boolean("Log raw (redacted) arguments as well as their HMAC."),
                "syslog": table("Forward every record to a syslog collector (RFC 5424); not in a workspace's file.", &json!({
                    "address": {"type": "string", "pattern": "^(tcp://.+:[0-9]+|unix:(//)?/.+)$", "description": "`tcp://HOST:PORT` or `unix:///PATH`."},
                    "facility": one_of(&crate::audit::syslog::FACILITIES.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "The facility (default authpriv)."),
                    "buffer": {"type": "integer", "minimum": 1, "maximum": crate::audit::syslog::MAX_BUFFER, "description": "Most records kept while the collector is unreachable (default 10000)."},
                }), &["address"]),
            }), &[]),
        }),
        &[],
    );
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["$id"] = json!("https://github.com/mcp-warden/mcp-warden/config.schema.json");
    root["title"] = json!("mcp-warden configuration");
    root
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::raw::RawFile;

    /// What the mirror says it expected, from serde's message: the names in backticks
    /// after "expected".
    fn expected(toml_text: &str) -> BTreeSet<String> {
        let err = toml::from_str::<RawFile>(toml_text)
            .err()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        let tail = err
            .split_once("expected")
            .map(|(_, t)| t)
            .unwrap_or_default();
        tail.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    fn at<'a>(schema: &'a Value, pointer: &str) -> &'a Value {
        schema
            .pointer(pointer)
            .unwrap_or_else(|| panic!("no {pointer} in the schema"))
    }

    fn keys(node: &Value) -> BTreeSet<String> {
        node["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every table's keys are exactly those the mirror accepts: an unknown key makes
    /// serde list them.
    #[test]
    fn every_table_has_exactly_the_mirrors_keys() {
        let schema = schema();
        let servers = "/properties/servers/additionalProperties";
        let rules = "/properties/policy/properties/rules/items";
        let cases = [
            ("", "zz = 1\n".to_owned()),
            (servers, "[servers.a]\ncommand = \"x\"\nzz = 1\n".to_owned()),
            (
                &format!("{servers}/properties/sandbox"),
                "[servers.a]\ncommand = \"x\"\n[servers.a.sandbox]\nzz = 1\n".to_owned(),
            ),
            ("/properties/policy", "[policy]\nzz = 1\n".to_owned()),
            (
                rules,
                "[[policy.rules]]\nid = \"x\"\naction = \"deny\"\nzz = 1\n".to_owned(),
            ),
            (
                &format!("{rules}/properties/when"),
                "[[policy.rules]]\nid = \"x\"\naction = \"deny\"\nwhen = { zz = 1 }\n".to_owned(),
            ),
            ("/properties/flows", "[flows]\nzz = 1\n".to_owned()),
            (
                "/properties/flows/properties/rules/items",
                "[[flows.rules]]\nid = \"x\"\nafter = []\ndeny = []\nzz = 1\n".to_owned(),
            ),
            ("/properties/output", "[output]\nzz = 1\n".to_owned()),
            ("/properties/limits", "[limits]\nzz = 1\n".to_owned()),
            ("/properties/pinning", "[pinning]\nzz = 1\n".to_owned()),
            ("/properties/audit", "[audit]\nzz = 1\n".to_owned()),
            (
                "/properties/audit/properties/syslog",
                "[audit.syslog]\naddress = \"tcp://h:1\"\nzz = 1\n".to_owned(),
            ),
        ];
        for (pointer, text) in cases {
            let node = at(&schema, pointer);
            assert_eq!(keys(node), expected(&text), "{pointer}");
            assert_eq!(node["additionalProperties"], false, "{pointer}");
        }
    }

    /// Every enum's values are exactly those the mirror accepts.
    #[test]
    fn every_enum_has_exactly_the_mirrors_values() {
        let schema = schema();
        let servers = "/properties/servers/additionalProperties/properties";
        let cases = [
            (
                format!("{servers}/sampling"),
                "[servers.a]\ncommand = \"x\"\nsampling = \"zz\"\n",
            ),
            (
                format!("{servers}/sandbox/properties/preset"),
                "[servers.a]\ncommand = \"x\"\nsandbox = { preset = \"zz\" }\n",
            ),
            (
                "/properties/policy/properties/default".to_owned(),
                "[policy]\ndefault = \"zz\"\n",
            ),
            (
                "/properties/policy/properties/mode".to_owned(),
                "[policy]\nmode = \"zz\"\n",
            ),
            (
                "/properties/policy/properties/rules/items/properties/action".to_owned(),
                "[[policy.rules]]\nid = \"x\"\naction = \"zz\"\n",
            ),
            (
                "/properties/flows/properties/trifecta".to_owned(),
                "[flows]\ntrifecta = \"zz\"\n",
            ),
            (
                "/properties/output/properties/secrets".to_owned(),
                "[output]\nsecrets = \"zz\"\n",
            ),
            (
                "/properties/output/properties/injection".to_owned(),
                "[output]\ninjection = \"zz\"\n",
            ),
            (
                "/properties/pinning/properties/mode".to_owned(),
                "[pinning]\nmode = \"zz\"\n",
            ),
        ];
        for (pointer, text) in cases {
            let values: BTreeSet<String> = at(&schema, &pointer)["enum"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(values, expected(text), "{pointer}");
        }
    }
}
