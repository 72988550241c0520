//! A Codex `config.toml`, edited in place with `toml_edit`: the moved
//! `[mcp_servers.NAME]` tables go, with the comment lines directly above their header
//! (`toml_edit` keeps them with the table); comments that a blank line sets apart (a
//! section's heading) are not the server's and stay, in front of what follows.
//! `[mcp_servers.mcp-warden]` takes the first one's place, and every other table, key,
//! comment and blank line stays as written.

use std::path::Path;

use serde_json::Value;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table};

use super::InstallError;
use super::client::Target;
use super::user_config::keep_before_next;
use crate::config::Source;

/// A parsed TOML client file and its servers.
#[derive(Debug)]
pub struct TomlFile {
    doc: DocumentMut,
    key: String,
    /// The servers, in file order.
    pub entries: Vec<(String, Value)>,
}

impl TomlFile {
    /// Parses `text` (the file at `path`, empty when it does not exist yet).
    pub fn parse(path: &Path, text: &str, target: &Target) -> Result<Self, InstallError> {
        let source = Source::new(path, text);
        let key = target.container.join(".");
        let parsed = toml_edit::Document::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            InstallError::Invalid(
                source
                    .error(&span, e.message().trim().to_owned())
                    .with_hint("mcp-warden never writes a file it cannot read"),
            )
        })?;
        let mut entries = Vec::new();
        if let Some(item) = parsed.get(&key) {
            let Some(servers) = item.as_table_like() else {
                let span = item.span().unwrap_or(0..0);
                return Err(InstallError::Invalid(
                    source
                        .error(&span, format!("`{key}` is not a table"))
                        .with_hint("write each server as `[mcp_servers.NAME]`"),
                ));
            };
            for (name, server) in servers.iter() {
                entries.push((name.to_owned(), item_to_json(server)));
            }
        }
        Ok(Self {
            doc: parsed.into_mut(),
            key,
            entries,
        })
    }

    /// The file with the servers named in `remove` taken out and `add` put where the
    /// first removed one was (or after the others).
    #[must_use]
    pub fn edited(mut self, remove: &[String], add: Option<(&str, &Value)>) -> String {
        let servers = self.doc.entry(&self.key).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        let Some(servers) = servers.as_table_like_mut() else {
            // `parse` refused anything else.
            return self.doc.to_string();
        };
        let position = remove
            .first()
            .and_then(|n| servers.get(n))
            .and_then(Item::as_table)
            .and_then(Table::position);
        // Comments above a moved table that a blank line keeps apart from its header
        // (a section's heading, the file's opening lines) are not the server's: they
        // stay, each with the table that follows.
        let mut detached: Vec<(isize, String)> = Vec::new();
        for name in remove {
            if let Some(Item::Table(table)) = servers.remove(name)
                && let (Some(at), Some(text)) = (table.position(), detached_comments(&table))
            {
                detached.push((at, text));
            }
        }
        if let Some((name, value)) = add {
            let mut table = json_to_table(value);
            table.set_position(position);
            if let Some(first) = detached.iter().position(|(at, _)| Some(*at) == position) {
                table.decor_mut().set_prefix(detached.remove(first).1);
            }
            servers.insert(name, Item::Table(table));
        }
        detached.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (at, text) in detached {
            keep_before_next(&mut self.doc, Some(at), &text);
        }
        self.doc.to_string()
    }
}

/// The part of `table`'s leading comments that a blank line separates from its header,
/// when it holds a comment: everything up to and including the last blank line.
fn detached_comments(table: &Table) -> Option<String> {
    let prefix = table.decor().prefix().and_then(|p| p.as_str())?;
    let mut end = None;
    let mut start = 0;
    for line in prefix.split_inclusive('\n') {
        start += line.len();
        if line.trim().is_empty() && line.ends_with('\n') {
            end = Some(start);
        }
    }
    let detached = &prefix[..end?];
    detached.contains('#').then(|| detached.to_owned())
}

/// A TOML item as JSON (dates as their text).
fn item_to_json(item: &Item) -> Value {
    match item {
        Item::None => Value::Null,
        Item::Value(v) => value_to_json(v),
        Item::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), item_to_json(v)))
                .collect(),
        ),
        Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .map(|t| {
                    Value::Object(
                        t.iter()
                            .map(|(k, v)| (k.to_owned(), item_to_json(v)))
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

fn value_to_json(value: &toml_edit::Value) -> Value {
    match value {
        toml_edit::Value::String(s) => Value::String(s.value().clone()),
        toml_edit::Value::Integer(i) => Value::from(*i.value()),
        toml_edit::Value::Float(f) => {
            serde_json::Number::from_f64(*f.value()).map_or(Value::Null, Value::Number)
        }
        toml_edit::Value::Boolean(b) => Value::Bool(*b.value()),
        toml_edit::Value::Datetime(d) => Value::String(d.value().to_string()),
        toml_edit::Value::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        toml_edit::Value::InlineTable(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.to_owned(), value_to_json(v)))
                .collect(),
        ),
    }
}

/// A JSON object as a `[table]` (nested objects inline).
fn json_to_table(value: &Value) -> Table {
    let mut table = Table::new();
    if let Value::Object(map) = value {
        for (k, v) in map {
            if let Some(v) = json_to_value(v) {
                table.insert(k, Item::Value(v));
            }
        }
    }
    table
}

fn json_to_value(value: &Value) -> Option<toml_edit::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut array = Array::new();
            for item in items.iter().filter_map(json_to_value) {
                array.push(item);
            }
            array.into()
        }
        Value::Object(map) => {
            let mut table = InlineTable::new();
            for (k, v) in map {
                if let Some(v) = json_to_value(v) {
                    table.insert(k, v);
                }
            }
            table.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::install::client::{Client, Scope, Style, Syntax};

    fn target() -> Target {
        Target {
            client: Client::Codex,
            scope: Scope::User,
            file: PathBuf::from("/c.toml"),
            syntax: Syntax::Toml,
            container: vec!["mcp_servers".to_owned()],
            style: Style::Codex,
            project: None,
        }
    }

    const TEXT: &str = "# Codex\nmodel = \"o3\" # the model\n\n# GitHub\n[mcp_servers.github]\ncommand = \"npx\"\nargs = [\"-y\", \"gh\"]\n\n[mcp_servers.github.env]\nTOKEN = \"t\"\n\n[mcp_servers.remote]\nurl = \"https://r\"\n\n# files\n[mcp_servers.fs]\ncommand = \"fs\"\n\n[profiles.x]\nmodel = \"m\" # kept\n";

    #[test]
    fn entries_are_read_as_json() {
        let file = TomlFile::parse(Path::new("/c.toml"), TEXT, &target()).expect("parses");
        assert_eq!(
            file.entries,
            [
                (
                    "github".to_owned(),
                    json!({"command": "npx", "args": ["-y", "gh"], "env": {"TOKEN": "t"}})
                ),
                ("remote".to_owned(), json!({"url": "https://r"})),
                ("fs".to_owned(), json!({"command": "fs"})),
            ]
        );
    }

    #[test]
    fn moved_tables_go_and_ours_takes_the_first_ones_place() {
        let file = TomlFile::parse(Path::new("/c.toml"), TEXT, &target()).expect("parses");
        let ours = json!({"command": "/bin/mcp-warden", "args": ["serve"]});
        let out = file.edited(
            &["github".to_owned(), "fs".to_owned()],
            Some(("mcp-warden", &ours)),
        );
        assert_eq!(
            out,
            "# Codex\nmodel = \"o3\" # the model\n\n[mcp_servers.mcp-warden]\ncommand = \"/bin/mcp-warden\"\nargs = [\"serve\"]\n\n[mcp_servers.remote]\nurl = \"https://r\"\n\n[profiles.x]\nmodel = \"m\" # kept\n"
        );
    }

    // Issue 16, item 11: a comment set apart from a moved table by a blank line is not
    // the server's, and stays.
    #[test]
    fn comments_set_apart_from_a_moved_table_stay() {
        let text = "model = \"o3\"\n\n# ---- MCP servers ----\n\n# docs\n[mcp_servers.docs]\ncommand = \"d\"\n\n# ---- more ----\n\n# fs\n[mcp_servers.fs]\ncommand = \"fs\"\n\n# remote\n[mcp_servers.r]\nurl = \"u\"\n";
        let ours = json!({"command": "/bin/w", "args": ["serve"]});
        let file = TomlFile::parse(Path::new("/c.toml"), text, &target()).expect("parses");
        let out = file.edited(
            &["docs".to_owned(), "fs".to_owned()],
            Some(("mcp-warden", &ours)),
        );
        assert_eq!(
            out,
            "model = \"o3\"\n\n# ---- MCP servers ----\n\n[mcp_servers.mcp-warden]\ncommand = \"/bin/w\"\nargs = [\"serve\"]\n\n# ---- more ----\n\n# remote\n[mcp_servers.r]\nurl = \"u\"\n"
        );
        // Without an entry of ours to take the place, and with nothing after: the end.
        let text = "a = 1\n\n# section\n\n[mcp_servers.fs]\ncommand = \"fs\"\n";
        let file = TomlFile::parse(Path::new("/c.toml"), text, &target()).expect("parses");
        assert_eq!(
            file.edited(&["fs".to_owned()], None),
            "a = 1\n\n# section\n\n"
        );
    }

    #[test]
    fn nothing_changed_is_byte_identical_and_errors_have_positions() {
        let file = TomlFile::parse(Path::new("/c.toml"), TEXT, &target()).expect("parses");
        assert_eq!(file.edited(&[], None), TEXT);
        let err = TomlFile::parse(Path::new("/c.toml"), "a = 1\nb = \n", &target())
            .map(|_| ())
            .expect_err("invalid");
        assert!(err.to_string().starts_with("/c.toml:2:"), "{err}");
        let err = TomlFile::parse(Path::new("/c.toml"), "mcp_servers = 3\n", &target())
            .map(|_| ())
            .expect_err("invalid");
        assert!(
            err.to_string()
                .starts_with("/c.toml:1:15: error: `mcp_servers` is not a table"),
            "{err}"
        );
    }
}
