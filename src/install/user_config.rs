//! mcp-warden's user `config.toml`, as `install` adds servers to it and `uninstall`
//! takes them out again: edited with `toml_edit`, so the user's own comments, order and
//! formatting stay as they were. Only `[servers.NAME]` tables are ever touched.

use std::path::Path;

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

use super::InstallError;
use super::entry::ServerDef;
use super::rules::{Action, PolicyRule};
use crate::config::Source;

/// The first lines of a `config.toml` that `install` creates.
const HEADER: &str = "# mcp-warden's user configuration: servers and policy for every workspace.\n\
                      # `mcp-warden check` validates it. It holds the servers' `env` values:\n\
                      # keep it private (mode 0600).\n";

/// The first lines of a workspace `mcp-warden.toml` that `install` creates.
const WORKSPACE_HEADER: &str = "# mcp-warden's workspace configuration: servers and policy for this project only.\n\
                                # Commit it with the project; `mcp-warden check` validates it, and any edit\n\
                                # by hand needs `mcp-warden trust` again before its servers start.\n";

/// How the comment line above each added server begins.
pub const ORIGIN: &str = "moved here from ";

/// The user config, parsed for editing.
#[derive(Debug)]
pub struct UserConfig {
    doc: DocumentMut,
    /// The file does not exist yet: it starts with `header`.
    new: bool,
    header: &'static str,
}

impl UserConfig {
    /// Parses the file at `path` (`text` is `None` when it does not exist yet).
    pub fn parse(path: &Path, text: Option<&str>) -> Result<Self, InstallError> {
        let Some(text) = text else {
            return Ok(Self {
                doc: DocumentMut::new(),
                new: true,
                header: HEADER,
            });
        };
        let source = Source::new(path, text);
        let parsed = toml_edit::Document::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            InstallError::Invalid(
                source
                    .error(&span, e.message().trim().to_owned())
                    .with_hint("fix it first (`mcp-warden check` shows every problem)"),
            )
        })?;
        if let Some(item) = parsed.get("servers")
            && !item.is_table_like()
        {
            let span = item.span().unwrap_or(0..0);
            return Err(InstallError::Invalid(
                source
                    .error(&span, "`servers` must be a table")
                    .with_hint("write each server as `[servers.NAME]`"),
            ));
        }
        Ok(Self {
            doc: parsed.into_mut(),
            new: false,
            header: HEADER,
        })
    }

    /// The same file as a workspace's `mcp-warden.toml` (the same `[servers.NAME]`
    /// syntax; a new file gets a header saying what it is).
    #[must_use]
    pub fn for_workspace(mut self) -> Self {
        self.header = WORKSPACE_HEADER;
        self
    }

    /// The server `name` as defined here: `None` when there is none, `Some(None)` when
    /// there is one that is not a plain definition `install` could have written.
    #[must_use]
    pub fn server(&self, name: &str) -> Option<Option<ServerDef>> {
        let item = self.doc.get("servers")?.as_table_like()?.get(name)?;
        Some(read_def(item))
    }

    /// The servers whose exposed names may be longer than `budget` (their own
    /// `max_name_len`, 64 when unset, is larger), in file order.
    #[must_use]
    pub fn servers_over(&self, budget: usize) -> Vec<String> {
        let Some(servers) = self.doc.get("servers").and_then(Item::as_table_like) else {
            return Vec::new();
        };
        servers
            .iter()
            .filter(|(_, server)| {
                let own = server
                    .get("max_name_len")
                    .and_then(Item::as_integer)
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(crate::names::MAX_EXPOSED_LEN);
                own > budget
            })
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Adds `[servers.NAME]` with a comment line above it: `# moved here from ...`
    /// (`from` says where).
    pub fn add(&mut self, name: &str, def: &ServerDef, from: &str) {
        let servers = self.doc.entry("servers").or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        let Some(servers) = servers.as_table_like_mut() else {
            // `parse` refused anything else.
            return;
        };
        let mut table = Table::new();
        table.insert("command", Item::Value(def.command.as_str().into()));
        if !def.args.is_empty() {
            table.insert("args", Item::Value(strings(&def.args)));
        }
        if !def.env.is_empty() {
            let mut env = InlineTable::new();
            for (k, v) in &def.env {
                env.insert(k, v.as_str().into());
            }
            table.insert("env", Item::Value(env.into()));
        }
        if !def.env_passthrough.is_empty() {
            table.insert(
                "env_passthrough",
                Item::Value(strings(&def.env_passthrough)),
            );
        }
        if let Some(cwd) = &def.cwd {
            table.insert("cwd", Item::Value(cwd.as_str().into()));
        }
        if !def.enabled {
            table.insert("enabled", Item::Value(false.into()));
        }
        if let Some(timeout) = &def.request_timeout {
            table.insert("request_timeout", Item::Value(timeout.as_str().into()));
        }
        if let Some(max) = def.max_name_len.and_then(|m| i64::try_from(m).ok()) {
            table.insert("max_name_len", Item::Value(max.into()));
        }
        // `from` names a client file, whose path a cloned repository chooses: a newline
        // in it would end the comment and start TOML of its own. TOML comments may not
        // hold control characters at all, so every one is written as a visible escape.
        let from = crate::textclass::escape_hidden(from);
        table
            .decor_mut()
            .set_prefix(format!("\n# {ORIGIN}{from}\n"));
        servers.insert(name, Item::Table(table));
    }

    /// Removes `[servers.NAME]` and the comment line `add` wrote above it. Other text
    /// above it (a file's opening comments, which TOML editors keep with the first
    /// table) moves to whatever follows, so removing what `install` added gives back the
    /// file as it was.
    pub fn remove(&mut self, name: &str) {
        let Some(removed) = self
            .doc
            .get_mut("servers")
            .and_then(Item::as_table_like_mut)
            .and_then(|servers| servers.remove(name))
        else {
            return;
        };
        let Some(table) = removed.as_table() else {
            return;
        };
        let prefix = table
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default();
        let before = prefix
            .rfind(&format!("# {ORIGIN}"))
            .map_or(prefix, |i| &prefix[..i]);
        // `add` wrote a blank line before its comment.
        let keep = before.strip_suffix('\n').unwrap_or(before);
        if keep.is_empty() {
            return;
        }
        let at = table.position();
        keep_before_next(&mut self.doc, at, keep);
    }

    /// The rule `id` of `[[policy.rules]]` as written here, when there is one: `Some(None)`
    /// when it is not one `install` could have written.
    #[must_use]
    pub fn rule(&self, id: &str) -> Option<Option<PolicyRule>> {
        let rules = self.doc.get("policy")?.get("rules")?.as_array_of_tables()?;
        let table = rules
            .iter()
            .find(|t| t.get("id").and_then(Item::as_str) == Some(id))?;
        Some(read_rule(table))
    }

    /// Appends `rule` to `[[policy.rules]]` (after the file's own rules), with the same
    /// `# moved here from ...` comment as a server. `false` when the file writes its
    /// rules in a form `install` does not edit (an inline array).
    pub fn add_rule(&mut self, rule: &PolicyRule, from: &str) -> bool {
        let policy = self.doc.entry("policy").or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        let Some(policy) = policy.as_table_like_mut() else {
            return false;
        };
        let rules = policy
            .entry("rules")
            .or_insert_with(|| Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
        let Some(rules) = rules.as_array_of_tables_mut() else {
            return false;
        };
        let mut table = Table::new();
        table.insert("id", Item::Value(rule.id.as_str().into()));
        table.insert("tools", Item::Value(strings(&rule.tools)));
        table.insert("action", Item::Value(rule.action.name().into()));
        let from = crate::textclass::escape_hidden(from);
        table
            .decor_mut()
            .set_prefix(format!("\n# {ORIGIN}{from}\n"));
        rules.push(table);
        true
    }

    /// Whether the file's `[policy] default` is `"deny"`: then an allow rule `install`
    /// wrote would open what the user closed, so it writes none.
    #[must_use]
    pub fn denies_by_default(&self) -> bool {
        self.doc
            .get("policy")
            .and_then(|p| p.get("default"))
            .and_then(Item::as_str)
            == Some("deny")
    }

    /// Whether rules can be added here ([`UserConfig::add_rule`]).
    #[must_use]
    pub fn takes_rules(&self) -> bool {
        match self.doc.get("policy") {
            None => true,
            Some(policy) => match policy.as_table_like().map(|p| p.get("rules")) {
                Some(None) => true,
                Some(Some(rules)) => rules.is_array_of_tables(),
                None => false,
            },
        }
    }

    /// Removes the rule `id` from `[[policy.rules]]`, and `[policy]` when `install` made
    /// it and nothing else is left in it.
    pub fn remove_rule(&mut self, id: &str) {
        let Some(policy) = self.doc.get_mut("policy").and_then(Item::as_table_like_mut) else {
            return;
        };
        let Some(rules) = policy
            .get_mut("rules")
            .and_then(Item::as_array_of_tables_mut)
        else {
            return;
        };
        rules.retain(|t| t.get("id").and_then(Item::as_str) != Some(id));
        if rules.is_empty() {
            policy.remove("rules");
        }
        let empty_implicit = self
            .doc
            .get("policy")
            .and_then(Item::as_table)
            .is_some_and(|t| t.is_implicit() && t.is_empty());
        if empty_implicit {
            self.doc.remove("policy");
        }
    }

    /// The file's text.
    #[must_use]
    pub fn text(&self) -> String {
        if self.new {
            format!("{}{}", self.header, self.doc)
        } else {
            self.doc.to_string()
        }
    }
}

/// Puts `text` (comment lines) in front of the table that follows position `at` in the
/// document, or at its end when none does: what a removed table leaves behind.
pub(super) fn keep_before_next(doc: &mut DocumentMut, at: Option<isize>, text: &str) {
    let next = at.and_then(|at| next_position(doc.as_table(), at));
    if let Some(next) = next.and_then(|n| table_at(doc.as_table_mut(), n)) {
        let rest = next
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_owned();
        // One blank line between the two, not two.
        let text = match (text.strip_suffix('\n'), rest.starts_with('\n')) {
            (Some(shorter), true) if shorter.ends_with('\n') => shorter,
            _ => text,
        };
        next.decor_mut().set_prefix(format!("{text}{rest}"));
    } else {
        let trailing = doc.trailing().as_str().unwrap_or_default().to_owned();
        doc.set_trailing(format!("{text}{trailing}"));
    }
}

/// The smallest table position after `at`, anywhere in the document.
fn next_position(table: &Table, at: isize) -> Option<isize> {
    table
        .iter()
        .filter_map(|(_, item)| item.as_table())
        .flat_map(|t| {
            let own = t.position().filter(|p| *p > at);
            own.into_iter().chain(next_position(t, at))
        })
        .min()
}

/// The table at document position `at`.
fn table_at(table: &mut Table, at: isize) -> Option<&mut Table> {
    for (_, item) in table.iter_mut() {
        if let Some(t) = item.as_table_mut() {
            if t.position() == Some(at) {
                return Some(t);
            }
            if let Some(found) = table_at(t, at) {
                return Some(found);
            }
        }
    }
    None
}

fn strings(items: &[String]) -> Value {
    let mut array = Array::new();
    for item in items {
        array.push(item.as_str());
    }
    Value::Array(array)
}

/// A `[[policy.rules]]` entry as a rule `install` writes, when it is one.
fn read_rule(table: &Table) -> Option<PolicyRule> {
    if table
        .iter()
        .any(|(k, _)| !matches!(k, "id" | "tools" | "action"))
    {
        return None;
    }
    let action = match table.get("action")?.as_str()? {
        "allow" => Action::Allow,
        "deny" => Action::Deny,
        _ => return None,
    };
    Some(PolicyRule {
        id: table.get("id")?.as_str()?.to_owned(),
        tools: table
            .get("tools")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()?,
        action,
    })
}

/// A `[servers.NAME]` table as a definition, when it has only keys `install` writes.
fn read_def(item: &Item) -> Option<ServerDef> {
    let table = item.as_table_like()?;
    let known = [
        "command",
        "args",
        "env",
        "env_passthrough",
        "cwd",
        "enabled",
        "request_timeout",
        "max_name_len",
    ];
    let str_list = |key: &str| -> Option<Vec<String>> {
        match table.get(key) {
            None => Some(Vec::new()),
            Some(i) => i
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect(),
        }
    };
    let opt_str = |key: &str| -> Option<Option<String>> {
        match table.get(key) {
            None => Some(None),
            Some(i) => Some(Some(i.as_str()?.to_owned())),
        }
    };
    let env = match table.get("env") {
        None => Vec::new(),
        Some(i) => i
            .as_table_like()?
            .iter()
            .map(|(k, v)| Some((k.to_owned(), v.as_str()?.to_owned())))
            .collect::<Option<_>>()?,
    };
    let extra = table.iter().any(|(k, _)| !known.contains(&k));
    let def = ServerDef {
        command: table.get("command")?.as_str()?.to_owned(),
        args: str_list("args")?,
        env,
        env_passthrough: str_list("env_passthrough")?,
        cwd: opt_str("cwd")?,
        enabled: match table.get("enabled") {
            None => true,
            Some(i) => i.as_bool()?,
        },
        request_timeout: opt_str("request_timeout")?,
        max_name_len: match table.get("max_name_len") {
            None => None,
            Some(i) => Some(usize::try_from(i.as_integer()?).ok()?),
        },
    };
    // Keys added by hand (a namespace, a sandbox) make it the user's own definition.
    (!extra).then_some(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ServerDef {
        ServerDef {
            command: "npx".into(),
            args: vec!["-y".into(), "pkg@1".into()],
            env: vec![("TOKEN".into(), "t".into())],
            env_passthrough: vec![],
            cwd: None,
            enabled: true,
            request_timeout: None,
            max_name_len: None,
        }
    }

    #[test]
    fn adds_keep_the_users_comments_and_read_back_the_same() {
        let text = "# mine\n[servers.a]\ncommand = \"x\" # why\n\n[pinning]\nmode = \"off\"\n";
        let mut c = UserConfig::parse(Path::new("/c.toml"), Some(text)).expect("parses");
        c.add("gh", &def(), "cursor");
        assert_eq!(
            c.text(),
            "# mine\n[servers.a]\ncommand = \"x\" # why\n\n# moved here from cursor\n[servers.gh]\ncommand = \"npx\"\nargs = [\"-y\", \"pkg@1\"]\nenv = { TOKEN = \"t\" }\n\n[pinning]\nmode = \"off\"\n"
        );
        assert_eq!(c.server("gh"), Some(Some(def())));
        assert_eq!(
            c.server("a").map(|d| d.map(|d| d.command)),
            Some(Some("x".into()))
        );
        assert_eq!(c.server("zz"), None);
        c.remove("gh");
        assert_eq!(c.text(), text);
    }

    #[test]
    fn text_from_outside_is_escaped_for_toml() {
        let inject =
            "\n[pinning]\nmode = \"off\"\n[servers.root]\ncommand = \"sh\"\r\u{1b}[2J\u{202e}";
        let hostile = ServerDef {
            command: format!("x{inject}"),
            args: vec![inject.to_owned(), r#"'''"""\"#.to_owned()],
            env: vec![("K".into(), inject.to_owned())],
            ..def()
        };
        let mut c = UserConfig::parse(Path::new("/c.toml"), None).expect("new");
        c.add(
            "gh",
            &hostile,
            &format!("cursor (project): /p{inject}/.cursor/mcp.json"),
        );
        let text = c.text();
        let table: toml::Table = toml::from_str(&text).expect("valid TOML");
        assert_eq!(table.keys().collect::<Vec<_>>(), ["servers"], "{text}");
        assert_eq!(
            table["servers"].as_table().map(toml::Table::len),
            Some(1),
            "{text}"
        );
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "no raw control character: {text}"
        );
        let reread = UserConfig::parse(Path::new("/c.toml"), Some(&text)).expect("parses");
        assert_eq!(reread.server("gh"), Some(Some(hostile)));
        assert!(
            text.contains(r"# moved here from cursor (project): /p\n[pinning]"),
            "{text}"
        );
    }

    #[test]
    fn a_new_file_starts_with_a_header() {
        let mut c = UserConfig::parse(Path::new("/c.toml"), None).expect("new");
        c.add("gh", &def(), "cursor");
        let text = c.text();
        assert!(text.starts_with(HEADER), "{text}");
        assert!(
            text.contains("\n# moved here from cursor\n[servers.gh]\n"),
            "{text}"
        );
        assert!(toml::from_str::<toml::Table>(&text).is_ok());
        // Read again and removed: the header stays.
        let mut again = UserConfig::parse(Path::new("/c.toml"), Some(&text)).expect("parses");
        again.remove("gh");
        assert_eq!(again.text(), HEADER);
    }

    #[test]
    fn removing_what_was_added_gives_back_the_file_as_it_was() {
        for text in [
            "# only comments\n",
            "# top\n\n[servers.a]\ncommand = \"x\"\n\n# about pinning\n[pinning]\nmode = \"off\"\n",
            "[pinning]\nmode = \"off\" # trailing\n",
            "x = 1\n",
        ] {
            let mut c = UserConfig::parse(Path::new("/c.toml"), Some(text)).expect("parses");
            c.add("gh", &def(), "cursor");
            c.add("fs", &def(), "cursor");
            let added = c.text();
            let mut c = UserConfig::parse(Path::new("/c.toml"), Some(&added)).expect("parses");
            c.remove("gh");
            c.remove("fs");
            assert_eq!(c.text(), text, "added:\n{added}");
        }
    }

    #[test]
    fn a_hand_tuned_server_is_not_ours() {
        let c = UserConfig::parse(
            Path::new("/c.toml"),
            Some("[servers.gh]\ncommand = \"npx\"\nnamespace = \"g\"\n"),
        )
        .expect("parses");
        assert_eq!(c.server("gh"), Some(None));
    }

    #[test]
    fn broken_files_are_errors_with_positions() {
        let err = UserConfig::parse(Path::new("/c.toml"), Some("[servers\n")).expect_err("bad");
        assert!(err.to_string().starts_with("/c.toml:1:"), "{err}");
        let err = UserConfig::parse(Path::new("/c.toml"), Some("servers = 1\n")).expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("/c.toml:1:11: error: `servers` must be a table")
        );
    }
}
