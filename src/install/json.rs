//! A client's JSON or JSONC file, edited in place.
//!
//! Reading uses `jsonc-parser`'s AST (byte ranges, so a malformed file or entry is
//! reported as `file:line:col`); editing uses its concrete syntax tree, which holds
//! every byte of the file, comments, blank lines and trailing commas included. Only the
//! entries that move are removed (with the comment lines written directly above them)
//! and mcp-warden's entry is inserted where the first of them was, indented like its
//! neighbours; every other byte of the file stays as it was. Plain JSON files go
//! through the same editor with the parser's JSON5 and JSONC extensions turned off, so
//! key order and unknown fields survive there too.

use std::path::Path;

use jsonc_parser::ast;
use jsonc_parser::common::Ranged;
use jsonc_parser::cst::{
    CstComment, CstInputValue, CstNode, CstObject, CstObjectProp, CstRootNode,
};
use serde_json::Value;

use super::InstallError;
use super::client::{Syntax, Target};
use crate::config::Source;

/// A parsed JSON-family client file and its servers.
pub struct JsonFile {
    root: CstRootNode,
    container: Vec<String>,
    /// The servers, in file order.
    pub entries: Vec<(String, Value)>,
    /// How many keys of the container path exist (all of them: the servers' object
    /// is there, maybe empty).
    pub depth_found: usize,
    /// The file had nothing in it (or did not exist).
    was_empty: bool,
}

impl std::fmt::Debug for JsonFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonFile")
            .field("container", &self.container)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl JsonFile {
    /// Parses `text` (the file at `path`, empty when it does not exist yet).
    pub fn parse(path: &Path, text: &str, target: &Target) -> Result<Self, InstallError> {
        let source = Source::new(path, text);
        let options = target.syntax.parse_options();
        let invalid = |e: &jsonc_parser::errors::ParseError| {
            InstallError::Invalid(
                source
                    .error(
                        &(e.range().start..e.range().end),
                        lowercase_first(&e.kind().to_string()),
                    )
                    .with_hint(syntax_hint(target.syntax)),
            )
        };
        let collect = jsonc_parser::CollectOptions {
            tokens: true,
            ..jsonc_parser::CollectOptions::default()
        };
        let parsed =
            jsonc_parser::parse_to_ast(text, &collect, &options).map_err(|e| invalid(&e))?;
        if let Some(at) = raw_control_in_string(text, parsed.tokens.as_deref().unwrap_or(&[])) {
            let c = text[at..].chars().next().unwrap_or_default();
            return Err(InstallError::Invalid(
                source
                    .error(
                        &(at..at + 1),
                        format!("control character U+{:04X} inside a string", u32::from(c)),
                    )
                    .with_hint(
                        "JSON requires control characters in strings to be escaped (`\\u001b`); \
                         raw ones can hide part of the file from a terminal",
                    ),
            ));
        }
        let root = CstRootNode::parse(text, &options).map_err(|e| invalid(&e))?;
        let mut entries = Vec::new();
        let mut depth_found = 0;
        if let Some(value) = &parsed.value {
            let mut current = value.as_object().ok_or_else(|| {
                not_an_object(&source, value, "the file", "a JSON object at the top")
            })?;
            let mut servers = None;
            for (i, key) in target.container.iter().enumerate() {
                let Some(prop) = current.get(key) else {
                    break;
                };
                let name = target.container[..=i].join(".");
                // Clients disagree on which of two equal keys counts: refuse to guess.
                if let Some(again) = current
                    .properties
                    .iter()
                    .filter(|p| p.name.as_str() == key.as_str())
                    .nth(1)
                {
                    return Err(InstallError::Invalid(source.error(
                        &(again.range.start..again.range.end),
                        format!("duplicate key `{name}`"),
                    )));
                }
                current = prop.value.as_object().ok_or_else(|| {
                    not_an_object(&source, &prop.value, &format!("`{name}`"), "an object")
                })?;
                depth_found = i + 1;
                if depth_found == target.container.len() {
                    servers = Some(current);
                }
            }
            if let Some(servers) = servers {
                for prop in &servers.properties {
                    let name = prop.name.as_str().to_owned();
                    if entries.iter().any(|(n, _)| *n == name) {
                        return Err(InstallError::Invalid(source.error(
                            &(prop.range.start..prop.range.end),
                            format!("duplicate server name `{name}`"),
                        )));
                    }
                    entries.push((name, to_serde(&prop.value)));
                }
            }
        }
        Ok(Self {
            root,
            container: target.container.clone(),
            entries,
            depth_found,
            was_empty: text.trim().is_empty(),
        })
    }

    /// The file with the servers named in `remove` taken out and `add` (a name and an
    /// entry) put where the first removed one was, or at the end.
    #[must_use]
    pub fn edited(self, remove: &[String], add: Option<(&str, &Value)>) -> String {
        let mut object = self.root.object_value_or_set();
        for key in &self.container {
            object = object.object_value_or_set(key);
        }
        let props: Vec<CstObjectProp> = remove.iter().filter_map(|n| object.get(n)).collect();
        if let Some((name, value)) = add {
            let at = props.first().map(CstObjectProp::property_index);
            insert(&object, at, name, value);
        }
        for prop in props {
            remove_with_comments(prop);
        }
        let mut text = self.root.to_string();
        if self.was_empty && !text.ends_with('\n') {
            // A file created here ends with a newline, as editors write them.
            text.push('\n');
        }
        text
    }
}

fn insert(object: &CstObject, at: Option<usize>, name: &str, value: &Value) {
    let input = to_input(value);
    match at {
        Some(i) => {
            object.insert(i, name, input);
        }
        None => {
            object.append(name, input);
        }
    }
}

/// Removes an entry and the comment lines written directly above it (no blank line
/// between): they describe it. (A comment after it on the same line goes with it: the
/// tree's own removal takes the rest of the line.)
fn remove_with_comments(prop: CstObjectProp) {
    let node: CstNode = prop.clone().into();
    let before: Vec<CstNode> = node.previous_siblings().collect();
    let is_ws = |i: usize| before.get(i).is_some_and(CstNode::is_whitespace);
    let is_nl = |i: usize| before.get(i).is_some_and(CstNode::is_newline);
    // Each comment line above: (its indentation, the comment, the line break after it).
    let mut lines: Vec<(Option<CstNode>, CstComment, CstNode)> = Vec::new();
    let mut pos = usize::from(is_ws(0));
    while is_nl(pos) {
        let newline = before[pos].clone();
        let Some(comment) = before.get(pos + 1).and_then(CstNode::as_comment) else {
            break;
        };
        let indent = is_ws(pos + 2).then(|| before[pos + 2].clone());
        let next = pos + 2 + usize::from(indent.is_some());
        if !is_nl(next) {
            // The comment shares its line with something else.
            break;
        }
        lines.push((indent, comment, newline));
        pos = next;
    }
    prop.remove();
    for (indent, comment, newline) in lines {
        if comment.is_line_comment() {
            // Takes its indentation and the line break before it along.
            comment.remove();
        } else {
            if let Some(indent) = indent {
                indent.remove();
            }
            comment.remove();
            newline.remove();
        }
    }
}

/// The parser's messages start with a capital; ours do not.
/// The byte offset of the first C0 control character written raw inside a string
/// token. The parser accepts them; JSON does not (RFC 8259 section 7), and a client that
/// shows the file, or our own plan, would let them act on a terminal.
fn raw_control_in_string(
    text: &str,
    tokens: &[jsonc_parser::tokens::TokenAndRange<'_>],
) -> Option<usize> {
    tokens
        .iter()
        .filter(|t| matches!(t.token, jsonc_parser::tokens::Token::String(_)))
        .find_map(|t| {
            let raw = text.get(t.range.start..t.range.end)?;
            let i = raw.find(|c: char| c < ' ')?;
            Some(t.range.start + i)
        })
}

fn lowercase_first(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

fn syntax_hint(syntax: Syntax) -> &'static str {
    match syntax {
        Syntax::Json => {
            "this client reads strict JSON (no comments, no trailing commas); mcp-warden never \
             writes a file it cannot read"
        }
        Syntax::JsonComments => {
            "this client reads JSON with comments (no trailing commas); mcp-warden never \
             writes a file it cannot read"
        }
        Syntax::Jsonc | Syntax::Toml => "mcp-warden never writes a file it cannot read",
    }
}

fn not_an_object(
    source: &Source<'_>,
    value: &ast::Value<'_>,
    what: &str,
    want: &str,
) -> InstallError {
    let r = value.range();
    InstallError::Invalid(
        source
            .error(&(r.start..r.end), format!("{what} is not {want}"))
            .with_hint("mcp-warden never writes a file it cannot read"),
    )
}

/// An AST value as `serde_json` (numbers kept as written when they fit).
fn to_serde(value: &ast::Value<'_>) -> Value {
    match value {
        ast::Value::StringLit(s) => Value::String(s.value.to_string()),
        ast::Value::NumberLit(n) => serde_json::from_str(n.value).unwrap_or(Value::Null),
        ast::Value::BooleanLit(b) => Value::Bool(b.value),
        ast::Value::NullKeyword(_) => Value::Null,
        ast::Value::Array(a) => Value::Array(a.elements.iter().map(to_serde).collect()),
        ast::Value::Object(o) => Value::Object(
            o.properties
                .iter()
                .map(|p| (p.name.as_str().to_owned(), to_serde(&p.value)))
                .collect(),
        ),
    }
}

fn to_input(value: &Value) -> CstInputValue {
    match value {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(items) => CstInputValue::Array(items.iter().map(to_input).collect()),
        Value::Object(map) => {
            CstInputValue::Object(map.iter().map(|(k, v)| (k.clone(), to_input(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::install::client::{Client, Scope, Style};

    fn target(syntax: Syntax, container: &[&str]) -> Target {
        Target {
            client: Client::Vscode,
            scope: Scope::User,
            file: PathBuf::from("/f.json"),
            syntax,
            container: container.iter().map(|s| (*s).to_owned()).collect(),
            style: Style::Typed,
            project: None,
        }
    }

    fn edit(text: &str, syntax: Syntax, remove: &[&str]) -> String {
        let t = target(syntax, &["servers"]);
        let file = JsonFile::parse(Path::new("/f.json"), text, &t).expect("parses");
        let remove: Vec<String> = remove.iter().map(|s| (*s).to_owned()).collect();
        let ours = json!({"command": "/bin/mcp-warden", "args": ["serve"]});
        file.edited(&remove, Some(("mcp-warden", &ours)))
    }

    #[test]
    fn jsonc_keeps_comments_and_trailing_commas_and_drops_the_moved_entries_comments() {
        let text = "// top\n{\n  // servers\n  \"servers\": {\n    // the first\n    \"a\": {\"command\": \"x\"},\n    \"r\": {\"url\": \"https://r\"}, // remote\n    /* the second */\n    \"b\": {\"command\": \"y\"}, // b's note\n  },\n  \"other\": [1, 2,], // kept\n}\n";
        let out = edit(text, Syntax::Jsonc, &["a", "b"]);
        assert_eq!(
            out,
            "// top\n{\n  // servers\n  \"servers\": {\n    \"mcp-warden\": {\n      \"command\": \"/bin/mcp-warden\",\n      \"args\": [\"serve\"],\n    },\n    \"r\": {\"url\": \"https://r\"}, // remote\n  },\n  \"other\": [1, 2,], // kept\n}\n"
        );
    }

    #[test]
    fn plain_json_keeps_key_order_and_unknown_fields() {
        let text = "{\n  \"z\": 1,\n  \"servers\": {\n    \"a\": {\"command\": \"x\"}\n  },\n  \"a\": {\"deep\": [true, null]}\n}\n";
        let out = edit(text, Syntax::Json, &["a"]);
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"servers\": {\n    \"mcp-warden\": {\n      \"command\": \"/bin/mcp-warden\",\n      \"args\": [\"serve\"]\n    }\n  },\n  \"a\": {\"deep\": [true, null]}\n}\n"
        );
    }

    #[test]
    fn strings_written_are_escaped_for_json() {
        let exe = "/opt/a\"b\\c\n},\"evil\": {\"command\": \"sh\"\u{1b}[2J\u{202e}/mcp-warden";
        let t = target(Syntax::Jsonc, &["servers"]);
        let file = JsonFile::parse(Path::new("/f.json"), "{}\n", &t).expect("parses");
        let ours = json!({"command": exe, "args": ["serve"]});
        let out = file.edited(&[], Some(("mcp-warden", &ours)));
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "no raw control character: {out}"
        );
        let back: Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(back, json!({"servers": {"mcp-warden": ours}}));
    }

    #[test]
    fn a_missing_container_is_created() {
        assert_eq!(
            edit("{\"theme\": \"dark\"}\n", Syntax::Json, &[]),
            "{\n  \"theme\": \"dark\",\n  \"servers\": {\n    \"mcp-warden\": {\n      \"command\": \"/bin/mcp-warden\",\n      \"args\": [\"serve\"]\n    }\n  }\n}\n"
        );
        assert!(edit("", Syntax::Json, &[]).starts_with("{\n  \"servers\": {\n"));
    }

    #[test]
    fn an_unchanged_file_is_byte_identical() {
        let text = "// c\r\n{ \"servers\" : { \"a\" : {\"command\":\"x\"} , } , }";
        let t = target(Syntax::Jsonc, &["servers"]);
        let file = JsonFile::parse(Path::new("/f"), text, &t).expect("parses");
        assert_eq!(file.edited(&[], None), text);
    }

    fn error(text: &str, syntax: Syntax) -> String {
        let t = target(syntax, &["mcp", "servers"]);
        match JsonFile::parse(Path::new("/f.json"), text, &t) {
            Ok(_) => panic!("parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_raw_control_character_in_a_string_is_refused() {
        let text = "{\"mcpServers\": {\"a\": {\"command\": \"x\u{1b}[8m\"}}}\n";
        let e = error(text, Syntax::Json);
        assert!(
            e.contains(":1:36: error: control character U+001B inside a string"),
            "{e}"
        );
        let text = "{\n// a comment may say anything \u{1b}[2J\n\"servers\": {\"a\": {\"command\": \"x\\u001b\"}}}\n";
        let target = target(Syntax::Jsonc, &["servers"]);
        assert!(JsonFile::parse(Path::new("f.json"), text, &target).is_ok());
    }

    #[test]
    fn errors_have_positions() {
        let e = error("{\n  \"a\": 1,\n}", Syntax::Json);
        assert_eq!(
            e.lines().next(),
            Some("/f.json:2:9: error: trailing commas are not allowed")
        );
        assert!(error("{\n  // c\n}", Syntax::Json).starts_with("/f.json:2:3: error: "));
        assert!(
            error("{\"mcp\": {\"servers\": []}}", Syntax::Jsonc)
                .starts_with("/f.json:1:21: error: `mcp.servers` is not an object")
        );
        assert!(error("[]", Syntax::Json).contains("1:1: error: the file is not a JSON object"));
        assert!(
            error(
                "{\"mcp\": {\"servers\": {\"a\": {}, \"a\": {}}}}",
                Syntax::Json
            )
            .contains("1:31: error: duplicate server name `a`")
        );
        let e = error(
            "{\"mcp\": {\"servers\": {}, \"servers\": {}}}",
            Syntax::Json,
        );
        assert!(
            e.contains("1:25: error: duplicate key `mcp.servers`"),
            "{e}"
        );
    }

    #[test]
    fn entries_are_read_in_file_order() {
        let t = target(Syntax::Jsonc, &["mcp", "servers"]);
        let file = JsonFile::parse(
            Path::new("/f"),
            "{\"mcp\": {\"servers\": {\"b\": {\"command\": \"x\", \"n\": 1.5}, \"a\": {}}}}",
            &t,
        )
        .expect("parses");
        assert_eq!(file.depth_found, 2);
        assert_eq!(
            file.entries,
            [
                ("b".to_owned(), json!({"command": "x", "n": 1.5})),
                ("a".to_owned(), json!({}))
            ]
        );
    }
}
