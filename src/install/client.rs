//! The clients `install` knows: where each keeps its MCP servers, in which syntax, and
//! in which shape. Pure data and path arithmetic; the only file this module reads is a
//! VS Code `settings.json`, to tell its older `mcp.servers` layout from `mcp.json`.

use std::path::{Path, PathBuf};

use super::InstallError;

/// An MCP client whose configuration file `install` edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Client {
    /// Claude Desktop.
    #[value(name = "claude-desktop")]
    ClaudeDesktop,
    /// Claude Code.
    #[value(name = "claude-code")]
    ClaudeCode,
    /// Cursor.
    #[value(name = "cursor")]
    Cursor,
    /// Visual Studio Code.
    #[value(name = "vscode", alias = "code")]
    Vscode,
    /// Windsurf.
    #[value(name = "windsurf")]
    Windsurf,
    /// Zed.
    #[value(name = "zed")]
    Zed,
    /// Codex (its CLI, IDE extension and app share one file).
    #[value(name = "codex")]
    Codex,
    /// Gemini CLI.
    #[value(name = "gemini", alias = "gemini-cli")]
    Gemini,
}

impl Client {
    /// Every client, in the order the docs list them.
    pub const ALL: [Self; 8] = [
        Self::ClaudeDesktop,
        Self::ClaudeCode,
        Self::Cursor,
        Self::Vscode,
        Self::Windsurf,
        Self::Zed,
        Self::Codex,
        Self::Gemini,
    ];

    /// The name `--client` takes (and `installs.toml` records).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::ClaudeDesktop => "claude-desktop",
            Self::ClaudeCode => "claude-code",
            Self::Cursor => "cursor",
            Self::Vscode => "vscode",
            Self::Windsurf => "windsurf",
            Self::Zed => "zed",
            Self::Codex => "codex",
            Self::Gemini => "gemini",
        }
    }

    /// The client named `name` (as [`Client::name`] writes it).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The scopes this client has a file for.
    #[must_use]
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Self::ClaudeDesktop | Self::Windsurf => &[Scope::User],
            Self::ClaudeCode => &[Scope::User, Scope::Project, Scope::Local],
            Self::Cursor | Self::Vscode | Self::Zed | Self::Codex | Self::Gemini => {
                &[Scope::User, Scope::Project]
            }
        }
    }

    /// Which `${...}` variables the client expands in a server's strings.
    #[must_use]
    pub fn variables(self) -> Variables {
        match self {
            Self::ClaudeDesktop | Self::Zed | Self::Codex => Variables::None,
            Self::ClaudeCode => Variables::Shell,
            Self::Cursor | Self::Vscode | Self::Windsurf => Variables::Editor,
            Self::Gemini => Variables::Gemini,
        }
    }
}

/// The longest exposed name `client` takes from a server it knows as `key` (the name of
/// mcp-warden's entry in its file), within mcp-warden's own 16..=64:
/// - Claude Code names a tool `mcp__<key>__<tool>`, and the model's API takes 64
///   characters: 57 minus the key (47 for `mcp-warden`).
/// - Cursor drops a tool whose key and name together exceed 60 characters: 60 minus the
///   key (50 for `mcp-warden`).
/// - The others take the 64 of the common `^[A-Za-z0-9_-]{1,64}$` rule.
///
/// Below 16 no name fits usefully; the client then drops what is longer, and `doctor`
/// is the place to say so.
#[must_use]
pub fn client_name_budget(client: Client, key: &str) -> usize {
    use crate::names::{MAX_EXPOSED_LEN, MIN_EXPOSED_LEN};
    let key = key.chars().count();
    let budget = match client {
        Client::ClaudeCode => MAX_EXPOSED_LEN.saturating_sub("mcp__".len() + key + "__".len()),
        Client::Cursor => 60_usize.saturating_sub(key),
        _ => MAX_EXPOSED_LEN,
    };
    budget.clamp(MIN_EXPOSED_LEN, MAX_EXPOSED_LEN)
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of a client's files: the user's own, the project's (committed with it), or
/// Claude Code's per-project entry in the user's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Scope {
    /// The user's file, for every project.
    User,
    /// The project's file, in the workspace (or current) directory.
    Project,
    /// Claude Code only: `projects["<dir>"].mcpServers` in `~/.claude.json` (what
    /// `claude mcp add` writes by default).
    Local,
}

impl Scope {
    /// The name `--scope` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Project => "project",
            Self::Local => "local",
        }
    }

    /// The scope named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::User, Self::Project, Self::Local]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a client's file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Strict JSON (RFC 8259).
    Json,
    /// JSON with `//` and `/* */` comments, no trailing commas (Gemini CLI strips
    /// comments, then parses JSON).
    JsonComments,
    /// JSONC as VS Code and Zed read it: comments and trailing commas.
    Jsonc,
    /// TOML (Codex).
    Toml,
}

impl Syntax {
    /// The parser options that accept exactly this syntax (for the JSON family).
    #[must_use]
    pub fn parse_options(self) -> jsonc_parser::ParseOptions {
        let comments = matches!(self, Self::JsonComments | Self::Jsonc);
        jsonc_parser::ParseOptions {
            allow_comments: comments,
            allow_loose_object_property_names: false,
            allow_trailing_commas: self == Self::Jsonc,
            allow_missing_commas: false,
            allow_single_quoted_strings: false,
            allow_hexadecimal_numbers: false,
            allow_unary_plus_numbers: false,
            allow_bare_decimal_point_numbers: false,
            allow_non_finite_numbers: false,
            allow_extended_string_escapes: false,
        }
    }
}

/// How a client writes one stdio server entry, so ours is written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `{"command": ..., "args": [...]}`.
    Plain,
    /// `{"type": "stdio", "command": ..., "args": [...]}` (VS Code, Claude Code).
    Typed,
    /// Zed's `context_servers` entry: `{"command": ..., "args": [...]}` in current
    /// versions, `{"command": {"path": ..., "args": [...]}}` in older ones (the style of
    /// the file's own entries is followed).
    Zed,
    /// A Codex `[mcp_servers.NAME]` table.
    Codex,
}

/// Which `${...}` forms a client expands in a server's strings, so they can be
/// carried over into mcp-warden's variables (`${env:NAME}`, `${workspace}`, `${home}`)
/// or, where the client expands nothing, kept literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variables {
    /// None: `${` is literal text.
    None,
    /// `${VAR}` and `${VAR:-default}` from the environment (Claude Code).
    Shell,
    /// `${env:NAME}`, `${workspaceFolder}`, `${userHome}`, `${pathSeparator}`, `${/}`,
    /// `${input:...}` (VS Code, Cursor, Windsurf).
    Editor,
    /// `$VAR` and `${VAR}` from the environment (Gemini CLI).
    Gemini,
}

/// The directories client files are found under, read from the environment once.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `$HOME`.
    pub home: PathBuf,
    /// Where desktop apps keep their settings: `$XDG_CONFIG_HOME` or `~/.config` on
    /// Linux, `~/Library/Application Support` on macOS, `%APPDATA%` on Windows.
    pub app_config: PathBuf,
    /// Zed's settings directory: `$XDG_CONFIG_HOME/zed` or `~/.config/zed` (macOS
    /// too), `%APPDATA%\Zed` on Windows.
    pub zed_config: PathBuf,
    /// `$CODEX_HOME`, else `~/.codex`.
    pub codex_home: PathBuf,
    /// `$CLAUDE_CONFIG_DIR` (where Claude Code then keeps `.claude.json`), else `~`.
    pub claude_code_dir: PathBuf,
}

impl Environment {
    /// The directories for a user whose home is `home`, with the variables above.
    #[must_use]
    pub fn from_env(home: &Path) -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let xdg = var("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
        let (app_config, zed_config) = if cfg!(target_os = "macos") {
            (
                home.join("Library/Application Support"),
                home.join(".config/zed"),
            )
        } else if cfg!(windows) {
            let appdata = var("APPDATA").unwrap_or_else(|| home.join("AppData/Roaming"));
            (appdata.clone(), appdata.join("Zed"))
        } else {
            (xdg.clone(), xdg.join("zed"))
        };
        Self {
            home: home.to_path_buf(),
            app_config,
            zed_config,
            codex_home: var("CODEX_HOME").unwrap_or_else(|| home.join(".codex")),
            claude_code_dir: var("CLAUDE_CONFIG_DIR").unwrap_or_else(|| home.to_path_buf()),
        }
    }
}

/// One client file and where in it the servers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub client: Client,
    pub scope: Scope,
    /// The file (absolute).
    pub file: PathBuf,
    pub syntax: Syntax,
    /// Keys from the top of the file to the servers' object or table.
    pub container: Vec<String>,
    pub style: Style,
    /// The project directory for project and local scope (relative `cwd` values are
    /// resolved against it).
    pub project: Option<PathBuf>,
}

impl Target {
    /// `mcpServers`, `mcp.servers`, ... as a person reads it.
    #[must_use]
    pub fn container_name(&self) -> String {
        self.container
            .iter()
            .map(|k| {
                if k.contains(['.', '/']) {
                    format!("\"{k}\"")
                } else {
                    k.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Whether a missing file may be created: a project's file always (its directory
    /// is created too), a user's file only where the client's directory exists (else
    /// the client is not installed, or keeps its file elsewhere).
    #[must_use]
    pub fn may_create(&self) -> bool {
        match self.scope {
            Scope::Project => true,
            Scope::User | Scope::Local => self.file.parent().is_some_and(Path::is_dir),
        }
    }
}

/// Where `client`'s file for `scope` is. `config` (`--config PATH`) replaces the
/// standard location; `project` is the workspace (or current) directory.
// One arm per client and scope: the table reads best in one place.
#[allow(clippy::too_many_lines)]
pub fn locate(
    client: Client,
    scope: Scope,
    config: Option<&Path>,
    project: &Path,
    env: &Environment,
) -> Result<Target, InstallError> {
    if !client.scopes().contains(&scope) {
        return Err(InstallError::NoScope { client, scope });
    }
    let project = std::path::absolute(project).unwrap_or_else(|_| project.to_path_buf());
    let servers = |key: &str| vec![key.to_owned()];
    let (file, syntax, container, style) = match (client, scope) {
        (Client::ClaudeDesktop, _) => (
            env.app_config.join("Claude/claude_desktop_config.json"),
            Syntax::Json,
            servers("mcpServers"),
            Style::Plain,
        ),
        (Client::ClaudeCode, Scope::Project) => (
            project.join(".mcp.json"),
            Syntax::Json,
            servers("mcpServers"),
            Style::Typed,
        ),
        (Client::ClaudeCode, Scope::Local) => {
            // Claude Code keys its projects by the directory's real path.
            let dir = project.canonicalize().unwrap_or_else(|_| project.clone());
            (
                env.claude_code_dir.join(".claude.json"),
                Syntax::Json,
                vec![
                    "projects".to_owned(),
                    dir.to_string_lossy().into_owned(),
                    "mcpServers".to_owned(),
                ],
                Style::Typed,
            )
        }
        (Client::ClaudeCode, Scope::User) => (
            env.claude_code_dir.join(".claude.json"),
            Syntax::Json,
            servers("mcpServers"),
            Style::Typed,
        ),
        (Client::Cursor, Scope::User) => (
            env.home.join(".cursor/mcp.json"),
            Syntax::Json,
            servers("mcpServers"),
            Style::Plain,
        ),
        (Client::Cursor, _) => (
            project.join(".cursor/mcp.json"),
            Syntax::Json,
            servers("mcpServers"),
            Style::Plain,
        ),
        (Client::Vscode, Scope::User) => {
            let dir = env.app_config.join("Code/User");
            let file = config.map_or_else(|| vscode_user_file(&dir), Path::to_path_buf);
            let container = vscode_container(&file);
            (file, Syntax::Jsonc, container, Style::Typed)
        }
        (Client::Vscode, _) => {
            let file = config.map_or_else(|| project.join(".vscode/mcp.json"), Path::to_path_buf);
            let container = vscode_container(&file);
            (file, Syntax::Jsonc, container, Style::Typed)
        }
        (Client::Windsurf, _) => (
            env.home.join(".codeium/windsurf/mcp_config.json"),
            Syntax::Json,
            servers("mcpServers"),
            Style::Plain,
        ),
        (Client::Zed, Scope::User) => (
            env.zed_config.join("settings.json"),
            Syntax::Jsonc,
            servers("context_servers"),
            Style::Zed,
        ),
        (Client::Zed, _) => (
            project.join(".zed/settings.json"),
            Syntax::Jsonc,
            servers("context_servers"),
            Style::Zed,
        ),
        (Client::Codex, Scope::User) => (
            env.codex_home.join("config.toml"),
            Syntax::Toml,
            servers("mcp_servers"),
            Style::Codex,
        ),
        (Client::Codex, _) => (
            project.join(".codex/config.toml"),
            Syntax::Toml,
            servers("mcp_servers"),
            Style::Codex,
        ),
        (Client::Gemini, Scope::User) => (
            env.home.join(".gemini/settings.json"),
            Syntax::JsonComments,
            servers("mcpServers"),
            Style::Plain,
        ),
        (Client::Gemini, _) => (
            project.join(".gemini/settings.json"),
            Syntax::JsonComments,
            servers("mcpServers"),
            Style::Plain,
        ),
    };
    let file = config.map_or(file, Path::to_path_buf);
    let file = std::path::absolute(&file).unwrap_or(file);
    // A symlinked file (dotfiles) is edited where it really is, so the link survives.
    let file = file.canonicalize().unwrap_or(file);
    Ok(Target {
        client,
        scope,
        file,
        syntax,
        container,
        style,
        project: (scope != Scope::User).then_some(project),
    })
}

/// VS Code's user-level servers: `mcp.json` (VS Code 1.102 and later) unless only the
/// older `settings.json` `"mcp": {"servers": ...}` exists.
fn vscode_user_file(dir: &Path) -> PathBuf {
    let mcp = dir.join("mcp.json");
    let settings = dir.join("settings.json");
    if !mcp.exists()
        && let Ok(text) = std::fs::read_to_string(&settings)
        && settings_has_mcp_servers(&text)
    {
        return settings;
    }
    mcp
}

fn settings_has_mcp_servers(text: &str) -> bool {
    let collect = jsonc_parser::CollectOptions::default();
    let Ok(parsed) = jsonc_parser::parse_to_ast(text, &collect, &Syntax::Jsonc.parse_options())
    else {
        return false;
    };
    parsed
        .value
        .as_ref()
        .and_then(|v| v.as_object())
        .and_then(|o| o.get_object("mcp"))
        .and_then(|o| o.get_object("servers"))
        .is_some()
}

/// `settings.json` keeps the servers under `mcp.servers`; `mcp.json` under `servers`.
fn vscode_container(file: &Path) -> Vec<String> {
    if file.file_name().is_some_and(|n| n == "settings.json") {
        vec!["mcp".to_owned(), "servers".to_owned()]
    } else {
        vec!["servers".to_owned()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            home: PathBuf::from("/h"),
            app_config: PathBuf::from("/h/.config"),
            zed_config: PathBuf::from("/h/.config/zed"),
            codex_home: PathBuf::from("/h/.codex"),
            claude_code_dir: PathBuf::from("/h"),
        }
    }

    fn file(client: Client, scope: Scope) -> String {
        locate(client, scope, None, Path::new("/nonexistent-p"), &env())
            .map_or_else(|e| e.to_string(), |t| t.file.to_string_lossy().into_owned())
    }

    #[test]
    fn every_client_has_its_documented_user_file() {
        assert_eq!(
            file(Client::ClaudeDesktop, Scope::User),
            "/h/.config/Claude/claude_desktop_config.json"
        );
        assert_eq!(file(Client::ClaudeCode, Scope::User), "/h/.claude.json");
        assert_eq!(file(Client::Cursor, Scope::User), "/h/.cursor/mcp.json");
        assert_eq!(
            file(Client::Vscode, Scope::User),
            "/h/.config/Code/User/mcp.json"
        );
        assert_eq!(
            file(Client::Windsurf, Scope::User),
            "/h/.codeium/windsurf/mcp_config.json"
        );
        assert_eq!(
            file(Client::Zed, Scope::User),
            "/h/.config/zed/settings.json"
        );
        assert_eq!(file(Client::Codex, Scope::User), "/h/.codex/config.toml");
        assert_eq!(
            file(Client::Gemini, Scope::User),
            "/h/.gemini/settings.json"
        );
    }

    #[test]
    fn project_files_are_in_the_project() {
        assert_eq!(
            file(Client::ClaudeCode, Scope::Project),
            "/nonexistent-p/.mcp.json"
        );
        assert_eq!(
            file(Client::Cursor, Scope::Project),
            "/nonexistent-p/.cursor/mcp.json"
        );
        assert_eq!(
            file(Client::Vscode, Scope::Project),
            "/nonexistent-p/.vscode/mcp.json"
        );
        assert_eq!(
            file(Client::Zed, Scope::Project),
            "/nonexistent-p/.zed/settings.json"
        );
        assert_eq!(
            file(Client::Codex, Scope::Project),
            "/nonexistent-p/.codex/config.toml"
        );
        assert_eq!(
            file(Client::Gemini, Scope::Project),
            "/nonexistent-p/.gemini/settings.json"
        );
    }

    #[test]
    fn clients_without_a_project_file_say_so() {
        assert_eq!(
            file(Client::ClaudeDesktop, Scope::Project),
            "claude-desktop has no project-level configuration file"
        );
        assert!(file(Client::Windsurf, Scope::Project).contains("no project-level"));
        assert!(file(Client::Cursor, Scope::Local).contains("no local-level"));
    }

    #[test]
    fn claude_code_local_scope_is_the_project_entry_of_the_user_file() {
        let t = locate(
            Client::ClaudeCode,
            Scope::Local,
            None,
            Path::new("/nonexistent-p"),
            &env(),
        )
        .expect("local scope");
        assert_eq!(t.file, Path::new("/h/.claude.json"));
        assert_eq!(t.container, ["projects", "/nonexistent-p", "mcpServers"]);
        assert_eq!(t.container_name(), "projects.\"/nonexistent-p\".mcpServers");
    }

    #[test]
    fn vscode_settings_json_keeps_servers_under_mcp() {
        let t = locate(
            Client::Vscode,
            Scope::User,
            Some(Path::new("/x/settings.json")),
            Path::new("/p"),
            &env(),
        )
        .expect("vscode");
        assert_eq!(t.container, ["mcp", "servers"]);
        assert!(settings_has_mcp_servers(
            "// c\n{\"mcp\": {\"servers\": {},},}"
        ));
        assert!(!settings_has_mcp_servers("{\"editor.fontSize\": 12}"));
    }

    #[test]
    fn names_round_trip() {
        for c in Client::ALL {
            assert_eq!(Client::from_name(c.name()), Some(c));
        }
        for s in [Scope::User, Scope::Project, Scope::Local] {
            assert_eq!(Scope::from_name(s.name()), Some(s));
        }
    }

    #[test]
    fn name_budgets_count_the_clients_own_prefixes() {
        assert_eq!(client_name_budget(Client::ClaudeCode, "mcp-warden"), 47);
        assert_eq!(client_name_budget(Client::Cursor, "mcp-warden"), 50);
        assert_eq!(client_name_budget(Client::Cursor, "w"), 59);
        for client in [Client::Vscode, Client::Gemini, Client::Codex, Client::Zed] {
            assert_eq!(client_name_budget(client, "mcp-warden"), 64);
        }
        // A key so long that nothing fits: the smallest budget names can have.
        assert_eq!(client_name_budget(Client::ClaudeCode, &"k".repeat(60)), 16);
    }
}
