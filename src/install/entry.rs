//! One client entry, read: is it mcp-warden itself, a stdio server mcp-warden can run in
//! its place, a remote server (left to the client), or something it cannot carry over
//! faithfully (left to the client, with the reason)? Pure functions over JSON values
//! (a Codex TOML table is converted to JSON first).
//!
//! What is carried over: `command`, `args`, `env` (values move into the user config;
//! secrets never belong in the committed workspace file), `cwd`, `enabled`/`disabled`,
//! Codex's `env_vars` (as `env_passthrough`) and the tool-call timeout (as
//! `request_timeout`). Variables the client expands become mcp-warden's own
//! (`${env:NAME}`, `${workspace}`, `${home}`); text the client does not expand is
//! escaped so it stays literal. An entry is left in place, never half-moved, when it
//! uses something mcp-warden cannot express: a variable only the client can resolve
//! (`${input:...}`, `${VAR:-default}`), an `envFile`, or a tool list whose meaning it
//! does not translate (`tools`). The tool lists it does translate (Gemini CLI's
//! `includeTools`/`excludeTools`, Codex's `enabled_tools`/`disabled_tools`, Windsurf's
//! `disabledTools`) are read into a [`ToolFilter`], which [`super::rules`] turns into
//! policy rules: dropping one would widen what the model may call. Settings that only concern the
//! client's own prompts (`autoApprove`, `trust`, ...) are dropped with a note.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::client::{Client, Style, Variables};
use crate::config::ServerName;
use crate::config::vars::{Template, is_env_name};

/// The name mcp-warden's own entry has in a client's file.
pub const OURS: &str = "mcp-warden";

/// A stdio server as it will be written into `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerDef {
    pub command: String,
    pub args: Vec<String>,
    /// In the client's order.
    pub env: Vec<(String, String)>,
    pub env_passthrough: Vec<String>,
    pub cwd: Option<String>,
    pub enabled: bool,
    pub request_timeout: Option<String>,
    /// The longest exposed name, when the clients mcp-warden is installed into take
    /// fewer than 64 characters ([`super::client_name_budget`]).
    pub max_name_len: Option<usize>,
}

impl ServerDef {
    /// `sha256:<hex>` of the definition (env compared as a set), recorded so that
    /// `uninstall` removes a server only while it is as `install` wrote it.
    #[must_use]
    pub fn digest(&self) -> String {
        let env: BTreeMap<_, _> = self.env.iter().cloned().collect();
        let mut canonical = serde_json::json!({
            "command": self.command,
            "args": self.args,
            "env": env,
            "env_passthrough": self.env_passthrough,
            "cwd": self.cwd,
            "enabled": self.enabled,
            "request_timeout": self.request_timeout,
        });
        // Only when set, so that records made before the budget existed still match.
        if let (Some(max), Some(map)) = (self.max_name_len, canonical.as_object_mut()) {
            map.insert("max_name_len".to_owned(), max.into());
        }
        crate::config::trust::digest(canonical.to_string().as_bytes())
    }

    /// The first `env` name whose value is written out (not `${env:NAME}`) and may be a
    /// secret: a token's shape, or a name such as `*TOKEN*`, `*KEY*`, `*PASSWORD*`.
    #[must_use]
    pub fn secret_env(&self) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, v)| !v.contains("${") && crate::config::findings::may_be_secret(k, v))
            .map(|(k, _)| k.as_str())
    }

    /// Whether two definitions run the same thing (env order does not matter; nor does
    /// the name budget, which changes what a client sees, not what runs).
    #[must_use]
    pub fn same_as(&self, other: &Self) -> bool {
        let unbudgeted = |d: &Self| Self {
            max_name_len: None,
            ..d.clone()
        };
        unbudgeted(self).digest() == unbudgeted(other).digest()
    }
}

/// What `install` does with one entry of the client's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// mcp-warden's own entry: nothing to do.
    Ours,
    /// A stdio server that moves into mcp-warden's user config.
    Move {
        server: ServerDef,
        /// The tools it restricts itself to: policy rules where it goes (boxed: most
        /// entries have none).
        filter: Box<ToolFilter>,
        /// Things worth saying (dropped keys), one line each.
        notes: Vec<String>,
    },
    /// A remote (`url`) server: out of scope, left in the client's file.
    Remote,
    /// Left in the client's file, for this reason.
    Keep { reason: String },
}

/// Keys that only concern the client's own behaviour (its prompts, its start-up
/// wait): dropping them loses nothing mcp-warden enforces.
const CLIENT_ONLY: &[&str] = &[
    "autoApprove",
    "alwaysAllow",
    "trust",
    "description",
    "startup_timeout_sec",
    "startup_timeout_ms",
    "dev",
    "settings",
];

/// Allow lists of tool names: only these tools are offered (Gemini CLI, Codex).
const INCLUDE_KEYS: &[&str] = &["includeTools", "enabled_tools"];

/// Deny lists of tool names, which win over an allow list (Gemini CLI, Codex, Windsurf).
const EXCLUDE_KEYS: &[&str] = &["excludeTools", "disabled_tools", "disabledTools"];

/// Other keys that restrict which tools the client offers, with meanings mcp-warden
/// does not translate: such a server stays with the client rather than gain tools.
const TOOL_FILTERS: &[&str] = &["tools"];

/// The tools an entry restricts itself to, by their upstream names: they become policy
/// rules in the layer the server moves to, so moving it never widens what the model may
/// call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolFilter {
    /// Only these tools (`None`: no allow list). An empty list offers none.
    pub include: Option<Vec<String>>,
    /// Never these tools.
    pub exclude: Vec<String>,
    /// The keys they were read from, for the plan.
    pub keys: Vec<&'static str>,
}

impl ToolFilter {
    /// Whether the entry restricts nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Reads the allow and deny lists; `Err` names a list that is not all strings.
    fn read(obj: &Map<String, Value>) -> Result<Self, String> {
        let mut filter = Self::default();
        let names = |key: &str, value: &Value| -> Result<Vec<String>, String> {
            value
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|i| i.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| format!("its `{key}` is not a list of tool names"))
        };
        for key in INCLUDE_KEYS {
            if let Some(value) = obj.get(*key) {
                let mut list = names(key, value)?;
                // Two allow lists: a tool must be on both.
                if let Some(before) = filter.include.take() {
                    list.retain(|t| before.contains(t));
                }
                filter.include = Some(list);
                filter.keys.push(key);
            }
        }
        for key in EXCLUDE_KEYS {
            if let Some(value) = obj.get(*key) {
                for name in names(key, value)? {
                    if !filter.exclude.contains(&name) {
                        filter.exclude.push(name);
                    }
                }
                filter.keys.push(key);
            }
        }
        Ok(filter)
    }
}

/// Keys that mark a remote server.
const REMOTE_KEYS: &[&str] = &["url", "serverUrl", "httpUrl"];

/// Reads one entry of `client`'s file. `exe` is the running mcp-warden binary;
/// `project` resolves relative `cwd` values (project and local scope).
#[must_use]
pub fn classify(
    client: Client,
    entry: &Value,
    exe: &str,
    project: Option<&std::path::Path>,
) -> Disposition {
    let Some(obj) = entry.as_object() else {
        return keep("the entry is not an object");
    };
    if is_remote(obj) {
        return Disposition::Remote;
    }
    let Some(command) = Command::read(obj) else {
        return match obj.get("command") {
            Some(_) => keep("its `command` is neither a string nor a `{path, args, env}` object"),
            None if client == Client::Zed => {
                keep("it has no command (a Zed extension provides it)")
            }
            None => keep("it has neither a `command` nor a `url`"),
        };
    };
    // Whatever its name: moving an entry that runs `mcp-warden serve` into the config
    // would make mcp-warden start itself as one of its servers.
    if is_ours(&command, exe) {
        return Disposition::Ours;
    }
    match read_server(client, obj, &command, project) {
        Ok((server, filter, notes)) => Disposition::Move {
            server,
            filter: Box::new(filter),
            notes,
        },
        Err(reason) => Disposition::Keep { reason },
    }
}

fn keep(reason: &str) -> Disposition {
    Disposition::Keep {
        reason: reason.to_owned(),
    }
}

fn is_remote(obj: &Map<String, Value>) -> bool {
    REMOTE_KEYS.iter().any(|k| obj.contains_key(*k))
        || obj
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "stdio")
}

/// A command line as the entry writes it (Zed's older form nests it in an object).
struct Command<'a> {
    program: &'a str,
    args: Option<&'a Value>,
    env: Option<&'a Value>,
}

impl<'a> Command<'a> {
    fn read(obj: &'a Map<String, Value>) -> Option<Self> {
        match obj.get("command")? {
            Value::String(program) => Some(Self {
                program,
                args: obj.get("args"),
                env: obj.get("env"),
            }),
            Value::Object(nested) => Some(Self {
                program: nested.get("path")?.as_str()?,
                args: nested.get("args"),
                env: nested.get("env"),
            }),
            _ => None,
        }
    }
}

/// The program an entry runs, when it has one.
#[must_use]
pub fn program(entry: &Value) -> Option<String> {
    entry
        .as_object()
        .and_then(Command::read)
        .map(|c| c.program.to_owned())
}

/// mcp-warden's own entry: this binary (or another `mcp-warden`) with `serve`.
fn is_ours(command: &Command<'_>, exe: &str) -> bool {
    let program = std::path::Path::new(command.program);
    let named = program.file_name().is_some_and(|n| n == OURS) || command.program == exe;
    let serve = command
        .args
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        == Some("serve");
    named && serve
}

fn read_server(
    client: Client,
    obj: &Map<String, Value>,
    command: &Command<'_>,
    project: Option<&std::path::Path>,
) -> Result<(ServerDef, ToolFilter, Vec<String>), String> {
    let filter = ToolFilter::read(obj)?;
    for key in TOOL_FILTERS {
        if obj.contains_key(*key) {
            return Err(format!(
                "it limits its tools with `{key}`, which mcp-warden cannot express yet"
            ));
        }
    }
    if obj.contains_key("envFile") {
        return Err("it reads an `envFile`, which mcp-warden does not read".to_owned());
    }
    let vars = client.variables();
    let program = translate(vars, command.program).map_err(|e| format!("`command`: {e}"))?;
    if program.trim().is_empty() {
        return Err("its `command` is empty".to_owned());
    }
    let cwd = match obj.get("cwd") {
        None | Some(Value::Null) => None,
        Some(Value::String(dir)) => Some(cwd(vars, dir, project)?),
        Some(_) => return Err("its `cwd` is not a string".to_owned()),
    };
    let server = ServerDef {
        command: program,
        args: args(vars, command.args)?,
        env: env(vars, command.env)?,
        env_passthrough: env_passthrough(obj.get("env_vars"))?,
        cwd,
        enabled: !matches!(obj.get("disabled"), Some(Value::Bool(true)))
            && !matches!(obj.get("enabled"), Some(Value::Bool(false))),
        request_timeout: timeout(client, obj)?,
        max_name_len: None,
    };
    Ok((server, filter, dropped_keys(obj)))
}

fn args(vars: Variables, args: Option<&Value>) -> Result<Vec<String>, String> {
    match args {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| {
                let a = a
                    .as_str()
                    .ok_or_else(|| "its `args` are not all strings".to_owned())?;
                translate(vars, a).map_err(|e| format!("`args`: {e}"))
            })
            .collect(),
        Some(_) => Err("its `args` is not a list".to_owned()),
    }
}

fn env(vars: Variables, env: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let map = match env {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err("its `env` is not an object".to_owned()),
    };
    map.iter()
        .map(|(key, value)| {
            if !is_env_name(key) {
                return Err(format!(
                    "its `env` has the name `{key}`, which is not portable"
                ));
            }
            let value = match value {
                Value::String(s) => translate(vars, s).map_err(|e| format!("`env.{key}`: {e}"))?,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(format!("its `env.{key}` is not a string")),
            };
            Ok((key.clone(), value))
        })
        .collect()
}

/// Codex's `env_vars`: names passed through from the client's environment.
fn env_passthrough(names: Option<&Value>) -> Result<Vec<String>, String> {
    match names {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| match n.as_str() {
                Some(n) if is_env_name(n) => Ok(n.to_owned()),
                _ => Err("its `env_vars` are not all variable names".to_owned()),
            })
            .collect(),
        Some(_) => Err("its `env_vars` is not a list".to_owned()),
    }
}

/// Keys read above; every other key is dropped, and said so.
const CARRIED: &[&str] = &[
    "command",
    "includeTools",
    "enabled_tools",
    "excludeTools",
    "disabled_tools",
    "disabledTools",
    "args",
    "env",
    "env_vars",
    "cwd",
    "enabled",
    "disabled",
    "timeout",
    "tool_timeout_sec",
    // Checked by `classify`: `stdio`, and Zed's `custom`.
    "type",
    "source",
];

fn dropped_keys(obj: &Map<String, Value>) -> Vec<String> {
    let dropped: Vec<&String> = obj
        .keys()
        .filter(|k| !CARRIED.contains(&k.as_str()))
        .collect();
    if dropped.is_empty() {
        return Vec::new();
    }
    let client_only = dropped.iter().all(|k| CLIENT_ONLY.contains(&k.as_str()));
    let list: Vec<String> = dropped.iter().map(|k| format!("`{k}`")).collect();
    vec![format!(
        "not carried over: {}{}",
        list.join(", "),
        if client_only {
            " (the client's own settings)"
        } else {
            ""
        }
    )]
}

/// A `cwd` as mcp-warden's user config needs it: absolute (a relative one is resolved
/// against the project, where there is one).
fn cwd(vars: Variables, dir: &str, project: Option<&std::path::Path>) -> Result<String, String> {
    let translated = translate(vars, dir).map_err(|e| format!("`cwd`: {e}"))?;
    let literal = Template::parse(&translated).is_ok_and(|t| t.is_literal());
    if !literal || std::path::Path::new(dir).is_absolute() {
        return Ok(translated);
    }
    match project {
        Some(p) => translate(Variables::None, &p.join(dir).to_string_lossy()),
        None => Err(format!(
            "its `cwd` `{dir}` is relative, and mcp-warden's user config needs an absolute one"
        )),
    }
}

/// The client's tool-call timeout as `request_timeout`: Gemini and Zed write
/// milliseconds in `timeout`, Codex seconds in `tool_timeout_sec`.
fn timeout(client: Client, obj: &Map<String, Value>) -> Result<Option<String>, String> {
    let (key, unit) = match client {
        Client::Gemini | Client::Zed => ("timeout", "ms"),
        Client::Codex => ("tool_timeout_sec", "s"),
        _ => {
            return Ok(None);
        }
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(whole) = n.as_u64().filter(|v| *v > 0) {
                Ok(Some(format!("{whole}{unit}")))
            } else if let Some(secs) = n.as_f64().filter(|v| *v > 0.0 && unit == "s") {
                // Codex accepts fractions of a second; mcp-warden takes whole ms.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ms = (secs * 1000.0).round() as u64;
                Ok(Some(format!("{}ms", ms.max(1))))
            } else {
                Err(format!("its `{key}` is not a positive number"))
            }
        }
        Some(_) => Err(format!("its `{key}` is not a number")),
    }
}

/// `text` as an mcp-warden template: the client's variables become ours, everything
/// else stays literal (`${` written `$${`). `Err` names a variable only the client can
/// resolve.
pub fn translate(vars: Variables, text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(after) = at.strip_prefix("${")
            && let Some(end) = after.find('}')
        {
            let name = &after[..end];
            if let Some(ours) = variable(vars, name)? {
                out.push_str(&ours);
            } else {
                out.push_str("$${");
                out.push_str(name);
                out.push('}');
            }
            rest = &after[end + 1..];
        } else if let Some(after) = at.strip_prefix("${") {
            // Unclosed: literal in every client.
            out.push_str("$${");
            rest = after;
        } else if vars == Variables::Gemini {
            let name_len = at[1..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name = &at[1..=name_len];
            if is_env_name(name) {
                out.push_str("${env:");
                out.push_str(name);
                out.push('}');
            } else {
                out.push('$');
                out.push_str(name);
            }
            rest = &at[1 + name_len..];
        } else {
            out.push('$');
            rest = &at[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// What `${name}` becomes: `Some(text)` for a variable the client expands, `None` for
/// literal text, `Err` for one mcp-warden cannot resolve.
fn variable(vars: Variables, name: &str) -> Result<Option<String>, String> {
    let unsupported = || Err(format!("`${{{name}}}` is resolved by the client only"));
    match vars {
        Variables::None => Ok(None),
        Variables::Shell | Variables::Gemini => {
            if is_env_name(name) {
                Ok(Some(format!("${{env:{name}}}")))
            } else if vars == Variables::Shell
                && name.split_once(":-").is_some_and(|(n, _)| is_env_name(n))
            {
                unsupported()
            } else {
                Ok(None)
            }
        }
        Variables::Editor => match name {
            "workspaceFolder" => Ok(Some("${workspace}".to_owned())),
            "userHome" => Ok(Some("${home}".to_owned())),
            "pathSeparator" | "/" => Ok(Some(std::path::MAIN_SEPARATOR.to_string())),
            _ => match name.strip_prefix("env:") {
                Some(env) if is_env_name(env) => Ok(Some(format!("${{env:{env}}}"))),
                _ => unsupported(),
            },
        },
    }
}

/// The table name a client's server gets in `config.toml`: the name itself when it is a
/// valid server name and namespace, else each character outside `[A-Za-z0-9-]`
/// becomes `-` (runs of `_` kept single, none at the ends), at most 48 characters.
#[must_use]
pub fn table_name(name: &str) -> String {
    if ServerName::new(name).is_some() && crate::config::Namespace::new(name).is_some() {
        return name.to_owned();
    }
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '-'
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(48);
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("server");
    }
    out
}

/// mcp-warden's entry in `style`, as JSON (Codex's is converted to a TOML table).
/// `like` is one of the file's own stdio entries, whose form Zed's entry follows.
#[must_use]
pub fn our_entry(style: Style, exe: &str, like: Option<&Value>) -> Value {
    let args = serde_json::json!(["serve"]);
    let mut entry = Map::new();
    match style {
        Style::Typed => {
            entry.insert("type".into(), "stdio".into());
            entry.insert("command".into(), exe.into());
            entry.insert("args".into(), args);
        }
        Style::Zed => {
            let like = like.and_then(Value::as_object);
            if like.and_then(|l| l.get("source")).and_then(Value::as_str) == Some("custom") {
                entry.insert("source".into(), "custom".into());
            }
            if like
                .and_then(|l| l.get("command"))
                .is_some_and(Value::is_object)
            {
                entry.insert(
                    "command".into(),
                    serde_json::json!({"path": exe, "args": args}),
                );
            } else {
                entry.insert("command".into(), exe.into());
                entry.insert("args".into(), args);
            }
        }
        Style::Plain | Style::Codex => {
            entry.insert("command".into(), exe.into());
            entry.insert("args".into(), args);
        }
    }
    Value::Object(entry)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const EXE: &str = "/opt/bin/mcp-warden";

    fn moved(client: Client, entry: &Value) -> ServerDef {
        match classify(client, entry, EXE, None) {
            Disposition::Move { server, .. } => server,
            other => panic!("not moved: {other:?}"),
        }
    }

    fn reason(client: Client, entry: &Value) -> String {
        match classify(client, entry, EXE, None) {
            Disposition::Keep { reason } => reason,
            other => panic!("not kept: {other:?}"),
        }
    }

    #[test]
    fn a_plain_stdio_entry_moves_with_its_env() {
        let s = moved(
            Client::Cursor,
            &json!({"command": "npx", "args": ["-y", "pkg"], "env": {"B": "2", "A": "1"}}),
        );
        assert_eq!(s.command, "npx");
        assert_eq!(s.args, ["-y", "pkg"]);
        assert_eq!(s.env, [("B".into(), "2".into()), ("A".into(), "1".into())]);
        assert!(s.enabled);
    }

    #[test]
    fn remote_entries_are_recognised_in_every_spelling() {
        for entry in [
            json!({"url": "https://x"}),
            json!({"serverUrl": "https://x"}),
            json!({"httpUrl": "https://x"}),
            json!({"type": "http", "url": "https://x"}),
            json!({"type": "sse", "command": "x"}),
        ] {
            assert_eq!(
                classify(Client::Gemini, &entry, EXE, None),
                Disposition::Remote,
                "{entry}"
            );
        }
    }

    #[test]
    fn our_own_entry_is_recognised() {
        let ours = our_entry(Style::Typed, EXE, None);
        assert_eq!(
            classify(Client::Vscode, &ours, EXE, None),
            Disposition::Ours
        );
        let zed_old = our_entry(Style::Zed, EXE, Some(&json!({"command": {"path": "x"}})));
        assert_eq!(
            zed_old,
            json!({"command": {"path": EXE, "args": ["serve"]}})
        );
        assert_eq!(
            classify(Client::Zed, &zed_old, EXE, None),
            Disposition::Ours
        );
        // mcp-warden's entry is recognised by what it runs, whatever its name: moving
        // it into the config would make mcp-warden start itself.
        assert_eq!(
            classify(
                Client::Cursor,
                &json!({"command": EXE, "args": ["serve"]}),
                EXE,
                None
            ),
            Disposition::Ours
        );
        // The same name running something else is an ordinary server.
        assert!(matches!(
            classify(Client::Cursor, &json!({"command": "npx"}), EXE, None),
            Disposition::Move { .. }
        ));
    }

    #[test]
    fn zed_entries_in_both_forms() {
        let new = moved(
            Client::Zed,
            &json!({"source": "custom", "command": "uvx", "args": ["a"], "env": {"K": "v"}, "timeout": 90000}),
        );
        assert_eq!((new.command.as_str(), new.args.len()), ("uvx", 1));
        assert_eq!(new.request_timeout.as_deref(), Some("90000ms"));
        let old = moved(
            Client::Zed,
            &json!({"command": {"path": "uvx", "args": ["a"], "env": {"K": "v"}}, "settings": {}}),
        );
        assert_eq!(old.env, [("K".into(), "v".into())]);
        assert!(reason(Client::Zed, &json!({"settings": {"k": 1}})).contains("extension"));
    }

    #[test]
    fn codex_fields_map_to_ours() {
        let s = moved(
            Client::Codex,
            &json!({"command": "x", "env_vars": ["TOKEN"], "enabled": false, "tool_timeout_sec": 2.5}),
        );
        assert_eq!(s.env_passthrough, ["TOKEN"]);
        assert!(!s.enabled);
        assert_eq!(s.request_timeout.as_deref(), Some("2500ms"));
    }

    #[test]
    fn allow_and_deny_lists_move_with_the_server() {
        let entry = json!({"command": "x", "includeTools": ["a", "b"], "excludeTools": ["b", "c"]});
        let Disposition::Move { filter, notes, .. } = classify(Client::Gemini, &entry, EXE, None)
        else {
            panic!("not moved");
        };
        assert_eq!(filter.include, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(filter.exclude, ["b", "c"]);
        assert_eq!(filter.keys, ["includeTools", "excludeTools"]);
        assert!(notes.is_empty(), "{notes:?}");
        let codex = json!({"command": "x", "enabled_tools": ["a", "b"], "disabled_tools": ["a"]});
        let Disposition::Move { filter, .. } = classify(Client::Codex, &codex, EXE, None) else {
            panic!("not moved");
        };
        assert_eq!(
            filter.include.as_deref(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!(filter.exclude, ["a"]);
        let plain = classify(Client::Cursor, &json!({"command": "x"}), EXE, None);
        assert!(matches!(plain, Disposition::Move { filter, .. } if filter.is_empty()));
    }

    #[test]
    fn tool_filters_and_env_files_keep_the_server_with_the_client() {
        assert!(
            reason(Client::Cursor, &json!({"command": "x", "tools": ["rm"]})).contains("`tools`")
        );
        assert!(
            reason(
                Client::Gemini,
                &json!({"command": "x", "excludeTools": "rm"})
            )
            .contains("`excludeTools` is not a list of tool names")
        );
        assert!(
            reason(Client::Vscode, &json!({"command": "x", "envFile": ".env"})).contains("envFile")
        );
        assert!(reason(Client::Cursor, &json!({"command": 3})).contains("command"));
        assert!(reason(Client::Cursor, &json!({"command": "x", "args": [1]})).contains("args"));
    }

    #[test]
    fn variables_become_ours_or_stay_literal() {
        let t = |v, s| translate(v, s);
        assert_eq!(
            t(Variables::Editor, "${workspaceFolder}/a"),
            Ok("${workspace}/a".into())
        );
        assert_eq!(
            t(Variables::Editor, "${env:TOKEN}"),
            Ok("${env:TOKEN}".into())
        );
        assert_eq!(t(Variables::Editor, "${userHome}"), Ok("${home}".into()));
        assert!(t(Variables::Editor, "${input:token}").is_err());
        assert_eq!(
            t(Variables::Shell, "Bearer ${TOKEN}"),
            Ok("Bearer ${env:TOKEN}".into())
        );
        assert!(t(Variables::Shell, "${TOKEN:-x}").is_err());
        assert_eq!(
            t(Variables::Gemini, "$TOKEN and ${B}"),
            Ok("${env:TOKEN} and ${env:B}".into())
        );
        assert_eq!(t(Variables::Gemini, "cost $5"), Ok("cost $5".into()));
        assert_eq!(t(Variables::None, "a${b}c $x"), Ok("a$${b}c $x".into()));
        assert_eq!(t(Variables::None, "$${x}"), Ok("$$${x}".into()));
        assert_eq!(t(Variables::None, "${open"), Ok("$${open".into()));
    }

    #[test]
    fn literal_text_survives_our_template_parser() {
        for text in ["a${b}c", "$${x}", "${open", "plain $HOME", "end$"] {
            let ours = translate(Variables::None, text).expect("translates");
            let template = Template::parse(&ours).expect("parses");
            assert!(template.is_literal(), "{text}");
            let vars = crate::config::vars::Vars {
                workspace: None,
                home: std::path::Path::new("/h"),
                env: &|_| None,
            };
            assert_eq!(template.expand(&vars).as_deref(), Ok(text));
        }
    }

    #[test]
    fn relative_cwd_needs_a_project() {
        let entry = json!({"command": "x", "cwd": "sub"});
        assert!(reason(Client::Gemini, &entry).contains("relative"));
        let Disposition::Move { server, .. } = classify(
            Client::Gemini,
            &entry,
            EXE,
            Some(std::path::Path::new("/p")),
        ) else {
            panic!("not moved");
        };
        assert_eq!(server.cwd.as_deref(), Some("/p/sub"));
    }

    #[test]
    fn dropped_keys_are_noted() {
        let Disposition::Move { notes, .. } = classify(
            Client::Cursor,
            &json!({"command": "x", "autoApprove": ["a"]}),
            EXE,
            None,
        ) else {
            panic!("not moved");
        };
        assert_eq!(
            notes,
            ["not carried over: `autoApprove` (the client's own settings)"]
        );
    }

    #[test]
    fn table_names_are_valid_server_names_and_namespaces() {
        assert_eq!(table_name("github"), "github");
        assert_eq!(table_name("my_server"), "my_server");
        assert_eq!(table_name("my.server"), "my-server");
        assert_eq!(table_name("@scope/pkg"), "-scope-pkg");
        assert_eq!(table_name("a__b_"), "a_b");
        assert_eq!(table_name("..."), "---");
        assert_eq!(table_name("_"), "server");
        for name in ["x y", "é", &"a".repeat(80), "__a__b__"] {
            let t = table_name(name);
            assert!(ServerName::new(&t).is_some(), "{t}");
            assert!(crate::config::Namespace::new(&t).is_some(), "{t}");
        }
    }

    #[test]
    fn digest_ignores_env_order() {
        let a = moved(
            Client::Cursor,
            &json!({"command": "x", "env": {"A": "1", "B": "2"}}),
        );
        let b = moved(
            Client::Cursor,
            &json!({"command": "x", "env": {"B": "2", "A": "1"}}),
        );
        assert!(a.same_as(&b));
        let c = moved(
            Client::Cursor,
            &json!({"command": "y", "env": {"B": "2", "A": "1"}}),
        );
        assert!(!a.same_as(&c));
    }
}
