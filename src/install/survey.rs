//! Which MCP clients are on this machine, and whether each runs its servers through
//! mcp-warden: what `doctor` lists under "clients".
//!
//! For every client [`install`](super) knows, at user level (and at project level in
//! the workspace, when there is one) the survey reads the file `install` would edit,
//! with the same parsers, and sorts its entries with the same
//! [`classify`](super::entry::classify) that `install` uses: mcp-warden's own entry,
//! stdio servers that still run beside it (added after `install`, or kept by it because
//! they cannot be carried over), and remote servers (out of scope; left to the client).
//! mcp-warden's entry is checked for the program it runs: a binary that has gone since
//! `install` leaves the client with no servers at all.
//!
//! A file that cannot be read or parsed is one [`State`] among the others, with its
//! position; it never stops the survey. This module only reads: it never writes, never
//! creates a directory, and never runs a program it finds.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::client::{Client, Environment, Scope, Target, locate};
use super::entry::{self, Disposition};
use super::{ClientFile, InstallError, read_optional};
use crate::config::Diagnostic;
use crate::file_error::FileError;

/// One client file (or, at user level, one client without a file) and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientStatus {
    #[serde(serialize_with = "client_name")]
    pub client: Client,
    #[serde(serialize_with = "scope_name")]
    pub scope: Scope,
    /// The file `install` would edit for this client and scope.
    pub file: PathBuf,
    /// Where in the file the servers are (`mcpServers`, `projects."/p".mcpServers`).
    pub servers_at: String,
    #[serde(flatten)]
    pub state: State,
}

/// What was found for one client and scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// User level only: neither the file nor the client's own directory exists.
    NotInstalled,
    /// User level only: the client's directory exists, but it has no MCP file yet.
    NoConfig {
        /// The client's directory.
        dir: PathBuf,
    },
    /// The file exists but could not be read (permissions, a directory in its place).
    Unreadable { error: String },
    /// The file cannot be parsed, or its servers are not where the client keeps them;
    /// `install` would refuse it too.
    Broken {
        /// 1-based; `None` when the problem is with the file as a whole.
        line: Option<usize>,
        /// 1-based, in characters.
        column: Option<usize>,
        message: String,
        hint: Option<String>,
    },
    /// The file was read.
    Configured(Servers),
}

/// The servers of a file that could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Servers {
    /// mcp-warden's entry, as `install` writes it.
    pub mcp_warden: Option<OurEntry>,
    /// Stdio servers the client runs itself, beside mcp-warden.
    pub bypassing: Vec<Bypassing>,
    /// Remote (`url`) servers: mcp-warden does not proxy them, so they are not a fault.
    pub remote: Vec<String>,
}

/// mcp-warden's entry in a client's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OurEntry {
    /// Its key in the client's server table (the client prefixes tool names with it).
    pub key: String,
    /// The program it runs, as written.
    pub program: String,
    pub resolved: Program,
    /// Whether that program is the binary that ran the survey (else it is another copy:
    /// worth saying, not a fault).
    pub is_this_binary: bool,
}

/// What a `command` resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Program {
    /// An executable file (found in `PATH` when the command has no `/`).
    Found { path: PathBuf },
    /// Nothing at that path, or no executable of that name in `PATH`.
    Missing,
    /// Something is at that path, but not an executable file.
    NotExecutable { path: PathBuf },
}

/// A stdio server that does not go through mcp-warden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bypassing {
    pub name: String,
    /// The program it runs, as written (none for a Zed extension's server).
    pub program: Option<String>,
    /// `false` when the client is told not to start it.
    pub enabled: bool,
    /// Why `install` leaves it with the client; `None`: `install` would move it.
    pub kept_because: Option<String>,
}

impl ClientStatus {
    /// Whether the client looks installed: its file, or at least its directory, exists.
    #[must_use]
    pub fn is_installed(&self) -> bool {
        !matches!(self.state, State::NotInstalled)
    }

    /// Whether the file has mcp-warden's entry (whether or not its program still exists).
    #[must_use]
    pub fn points_at_mcp_warden(&self) -> bool {
        matches!(&self.state, State::Configured(s) if s.mcp_warden.is_some())
    }

    /// Whether `doctor` should count this as something wrong: a file it cannot read, a
    /// dangling mcp-warden binary, or a stdio server the client starts outside
    /// mcp-warden (which is also what "installed, but not pointing at mcp-warden" comes
    /// to). A client with no stdio servers at all, or only remote ones, has nothing to
    /// protect and is not counted, with or without mcp-warden's entry.
    #[must_use]
    pub fn is_problem(&self) -> bool {
        match &self.state {
            State::NotInstalled | State::NoConfig { .. } => false,
            State::Unreadable { .. } | State::Broken { .. } => true,
            State::Configured(servers) => {
                servers
                    .mcp_warden
                    .as_ref()
                    .is_some_and(|o| !matches!(o.resolved, Program::Found { .. }))
                    || servers.bypassing.iter().any(|b| b.enabled)
            }
        }
    }

    /// One line for a person: `cursor (user): ~/.cursor/mcp.json: points at mcp-warden;
    /// 1 server not behind it: foo`. Paths under `home` are written with `~`.
    #[must_use]
    pub fn describe(&self, home: Option<&Path>) -> String {
        let head = format!("{} ({})", self.client, self.scope);
        let file = shown(&self.file, home);
        // Claude Code's local scope and VS Code's `settings.json` share a file with
        // other things: say which part of it.
        let file = if self.servers_at.contains('.') {
            format!("{file} ({})", self.servers_at)
        } else {
            file
        };
        match &self.state {
            State::NotInstalled => format!("{head}: not installed"),
            State::NoConfig { .. } => {
                format!("{head}: installed, no MCP configuration yet ({file})")
            }
            State::Unreadable { error } => format!("{head}: {file}: cannot be read: {error}"),
            State::Broken {
                line,
                column,
                message,
                ..
            } => {
                let at = match (line, column) {
                    (Some(l), Some(c)) => format!(":{l}:{c}"),
                    _ => String::new(),
                };
                format!("{head}: {file}{at}: broken: {message}")
            }
            State::Configured(servers) => format!("{head}: {file}: {}", servers.describe(home)),
        }
    }
}

impl fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(None))
    }
}

impl Servers {
    fn describe(&self, home: Option<&Path>) -> String {
        let mut parts = Vec::new();
        match &self.mcp_warden {
            Some(ours) => parts.push(ours.describe(home)),
            None if self.bypassing.is_empty() && self.remote.is_empty() => {
                parts.push("no MCP servers".to_owned());
            }
            None => parts.push("does not point at mcp-warden".to_owned()),
        }
        if !self.bypassing.is_empty() {
            let names: Vec<String> = self
                .bypassing
                .iter()
                .map(|b| {
                    let mut name = b.name.clone();
                    if !b.enabled {
                        name.push_str(" (disabled)");
                    } else if b.kept_because.is_some() {
                        name.push_str(" (install cannot move it)");
                    }
                    name
                })
                .collect();
            parts.push(format!(
                "{} not behind it: {}",
                count(self.bypassing.len(), "server"),
                names.join(", ")
            ));
        }
        if !self.remote.is_empty() {
            parts.push(format!(
                "{} left to the client: {}",
                count(self.remote.len(), "remote server"),
                self.remote.join(", ")
            ));
        }
        parts.join("; ")
    }
}

impl OurEntry {
    fn describe(&self, home: Option<&Path>) -> String {
        let program = shown(Path::new(&self.program), home);
        match &self.resolved {
            Program::Found { .. } if self.is_this_binary => "points at mcp-warden".to_owned(),
            Program::Found { path } => format!(
                "points at mcp-warden `{}` (not this binary)",
                shown(path, home)
            ),
            Program::Missing if has_separator(&self.program) => {
                format!("points at mcp-warden `{program}`, which does not exist")
            }
            Program::Missing => format!("points at mcp-warden `{program}`, which is not in PATH"),
            Program::NotExecutable { path } => format!(
                "points at mcp-warden `{}`, which is not an executable file",
                shown(path, home)
            ),
        }
    }
}

/// Surveys every client `install` knows: at user level always (one status per client,
/// [`State::NotInstalled`] included), at project level in `workspace` when given (only
/// the files that exist, and Claude Code's `local` entry for it when `~/.claude.json`
/// has one). `exe` is the running mcp-warden, as `install` is given it. A bare command
/// in mcp-warden's entry is looked up in this process's `PATH`, which may not be the
/// one the client starts it with. Never fails: a file that cannot be read is a status
/// of its own.
#[must_use]
pub fn survey(env: &Environment, workspace: Option<&Path>, exe: &str) -> Vec<ClientStatus> {
    survey_with(env, workspace, exe, std::env::var_os("PATH").as_deref())
}

/// [`survey`], looking up bare commands in `path` (the `PATH` value) rather than this
/// process's own.
fn survey_with(
    env: &Environment,
    workspace: Option<&Path>,
    exe: &str,
    path: Option<&OsStr>,
) -> Vec<ClientStatus> {
    // `locate` wants a project even for user scope, where it does not use it.
    let project = workspace.unwrap_or(&env.home);
    let mut statuses: Vec<ClientStatus> = Vec::new();
    for client in Client::ALL {
        for &scope in client.scopes() {
            if scope != Scope::User && workspace.is_none() {
                continue;
            }
            let Ok(target) = locate(client, scope, None, project, env) else {
                continue;
            };
            // With the workspace at home, a project file can be the user file itself.
            if statuses
                .iter()
                .any(|s| s.file == target.file && s.servers_at == target.container_name())
            {
                continue;
            }
            let Some(state) = state_of(&target, env, exe, path) else {
                continue;
            };
            // Claude Code's local entry lives in its user file: a broken file is said
            // once, at user level.
            let unusable = |s: &State| matches!(s, State::Broken { .. } | State::Unreadable { .. });
            if scope == Scope::Local
                && unusable(&state)
                && statuses
                    .iter()
                    .any(|s| s.file == target.file && unusable(&s.state))
            {
                continue;
            }
            statuses.push(ClientStatus {
                client,
                scope,
                servers_at: target.container_name(),
                file: target.file,
                state,
            });
        }
    }
    statuses
}

/// The state of one target; `None` when there is nothing to say (a project file that
/// does not exist, a project Claude Code has no entry for).
fn state_of(target: &Target, env: &Environment, exe: &str, path: Option<&OsStr>) -> Option<State> {
    let text = match read_optional(&target.file) {
        Ok(Some(text)) => text,
        Ok(None) if target.scope == Scope::User => {
            return Some(match client_dir(target, env) {
                Some(dir) if dir.is_dir() => State::NoConfig { dir },
                _ => State::NotInstalled,
            });
        }
        Ok(None) => return None,
        Err(e) => return Some(unreadable(e)),
    };
    let file = match ClientFile::parse(target, &text) {
        Ok(file) => file,
        Err(e) => return Some(unreadable(e)),
    };
    if let ClientFile::Json(json) = &file
        && target.scope == Scope::Local
        && json.depth_found < 2
    {
        return None;
    }
    let mut servers = Servers {
        mcp_warden: None,
        bypassing: Vec::new(),
        remote: Vec::new(),
    };
    for (name, value) in file.entries() {
        match entry::classify(target.client, value, exe, target.project.as_deref()) {
            Disposition::Ours => {
                let program = entry::program(value).unwrap_or_default();
                let resolved = resolve(&program, path);
                servers.mcp_warden = Some(OurEntry {
                    key: name.clone(),
                    is_this_binary: matches!(&resolved, Program::Found { path } if same_file(path, Path::new(exe))),
                    program,
                    resolved,
                });
            }
            Disposition::Remote => servers.remote.push(name.clone()),
            Disposition::Move { server, .. } => servers.bypassing.push(Bypassing {
                name: name.clone(),
                program: entry::program(value),
                enabled: server.enabled,
                kept_because: None,
            }),
            Disposition::Keep { reason } => servers.bypassing.push(Bypassing {
                name: name.clone(),
                program: entry::program(value),
                // `install` did not read this entry far enough to know; a server that
                // may run outside mcp-warden counts as running.
                enabled: true,
                kept_because: Some(reason),
            }),
        }
    }
    Some(State::Configured(servers))
}

/// The directory whose existence says the client is installed: the file's own, except
/// for Claude Code, whose `.claude.json` sits in the home directory beside `.claude/`.
fn client_dir(target: &Target, env: &Environment) -> Option<PathBuf> {
    let parent = target.file.parent()?;
    if target.client == Client::ClaudeCode && parent == env.home {
        return Some(env.home.join(".claude"));
    }
    Some(parent.to_path_buf())
}

fn unreadable(error: InstallError) -> State {
    match error {
        InstallError::Invalid(d) => broken(d),
        InstallError::File(FileError::Read { cause, .. }) => State::Unreadable {
            error: cause.to_string(),
        },
        other => State::Unreadable {
            error: other.to_string(),
        },
    }
}

fn broken(d: Diagnostic) -> State {
    State::Broken {
        line: d.position.map(|p| p.line),
        column: d.position.map(|p| p.col),
        message: d.message,
        hint: d.hint,
    }
}

/// Finds `command` as `execvp` would: as a path when it has a separator, else in each
/// directory of `path`. (The same lookup as the upstream spawner's, which is private to
/// that module.)
fn resolve(command: &str, path: Option<&OsStr>) -> Program {
    if command.is_empty() {
        return Program::Missing;
    }
    if has_separator(command) {
        let p = PathBuf::from(command);
        return match std::fs::metadata(&p) {
            Err(_) => Program::Missing,
            Ok(meta) if is_executable(&meta) => Program::Found { path: p },
            Ok(_) => Program::NotExecutable { path: p },
        };
    }
    path.map(std::env::split_paths)
        .into_iter()
        .flatten()
        .map(|dir| dir.join(command))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| is_executable(&m)))
        .map_or(Program::Missing, |path| Program::Found { path })
}

/// Whether `command` is a path rather than a name to look up in `PATH`.
fn has_separator(command: &str) -> bool {
    command.contains('/') || command.contains(std::path::MAIN_SEPARATOR)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    meta.is_file()
}

/// Whether two paths name the same file (symlinks followed), falling back to the text.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `path` with `home` written `~`.
fn shown(path: &Path, home: Option<&Path>) -> String {
    match home
        .filter(|h| h.is_absolute())
        .and_then(|h| path.strip_prefix(h).ok())
    {
        Some(rest) if rest.as_os_str().is_empty() => "~".to_owned(),
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

// serde's `serialize_with` hands the field by reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn client_name<S: serde::Serializer>(client: &Client, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(client.name())
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn scope_name<S: serde::Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(scope.name())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;
    use crate::install::{apply_install, plan_install};
    use crate::paths::Paths;

    /// Each client's user file in its real shape (`tests/fixtures/clients/`): two stdio
    /// servers and one remote one.
    const FIXTURES: [(Client, &str); 8] = [
        (
            Client::ClaudeDesktop,
            include_str!("../../tests/fixtures/clients/claude-desktop/claude_desktop_config.json"),
        ),
        (
            Client::ClaudeCode,
            include_str!("../../tests/fixtures/clients/claude-code/claude.json"),
        ),
        (
            Client::Cursor,
            include_str!("../../tests/fixtures/clients/cursor/mcp.json"),
        ),
        (
            Client::Vscode,
            include_str!("../../tests/fixtures/clients/vscode/mcp.json"),
        ),
        (
            Client::Windsurf,
            include_str!("../../tests/fixtures/clients/windsurf/mcp_config.json"),
        ),
        (
            Client::Zed,
            include_str!("../../tests/fixtures/clients/zed/settings.json"),
        ),
        (
            Client::Codex,
            include_str!("../../tests/fixtures/clients/codex/config.toml"),
        ),
        (
            Client::Gemini,
            include_str!("../../tests/fixtures/clients/gemini/settings.json"),
        ),
    ];

    /// A home directory in a temporary directory, with an executable standing in for
    /// mcp-warden and mcp-warden's own dirs beside it.
    struct Home {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        env: Environment,
        paths: Paths,
        exe: PathBuf,
    }

    impl Home {
        fn new() -> Self {
            let tmp = tempfile::tempdir().expect("tempdir");
            // `locate` canonicalizes files that exist; compare like with like.
            let root = tmp.path().canonicalize().expect("canonical tempdir");
            let home = root.join("home");
            fs::create_dir_all(&home).expect("home");
            let exe = root.join("bin/mcp-warden");
            write(&exe, "#!/bin/sh\n");
            fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
            let env = Environment {
                app_config: home.join(".config"),
                zed_config: home.join(".config/zed"),
                codex_home: home.join(".codex"),
                claude_code_dir: home.clone(),
                home: home.clone(),
            };
            let paths = Paths {
                managed_dir: root.join("managed"),
                config_dir: root.join("warden"),
                data_dir: root.join("warden/data"),
                home,
            };
            Self {
                _tmp: tmp,
                root,
                env,
                paths,
                exe,
            }
        }

        fn home(&self) -> &Path {
            &self.env.home
        }

        fn exe(&self) -> &str {
            self.exe.to_str().expect("temp paths are UTF-8")
        }

        fn user_file(&self, client: Client) -> PathBuf {
            locate(client, Scope::User, None, self.home(), &self.env)
                .expect("user scope")
                .file
        }

        /// The survey, with an empty `PATH` so that nothing of this machine is found.
        fn survey(&self, workspace: Option<&Path>) -> Vec<ClientStatus> {
            survey_with(&self.env, workspace, self.exe(), None)
        }

        /// `mcp-warden install --client CLIENT`, through the code the CLI runs. Each
        /// client's servers go to a `config.toml` of their own: the fixtures share names
        /// (`github`) with different definitions, which `install` rightly refuses.
        fn install(&self, client: Client) {
            let target = locate(client, Scope::User, None, self.home(), &self.env).expect("locate");
            let config = self.paths.config_dir.join(format!("{client}.toml"));
            let plan = plan_install(
                target,
                self.exe(),
                &crate::install::Destination::user(&config),
            )
            .expect("install plan");
            apply_install(&self.paths, &plan).expect("install");
        }
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    fn status(all: &[ClientStatus], client: Client, scope: Scope) -> &ClientStatus {
        all.iter()
            .find(|s| s.client == client && s.scope == scope)
            .unwrap_or_else(|| panic!("no status for {client} ({scope}): {all:#?}"))
    }

    fn servers(s: &ClientStatus) -> &Servers {
        match &s.state {
            State::Configured(servers) => servers,
            other => panic!("not read: {other:?}"),
        }
    }

    #[test]
    fn an_empty_home_has_no_client_installed_and_nothing_wrong() {
        let h = Home::new();
        let all = h.survey(None);
        assert_eq!(all.len(), Client::ALL.len());
        for s in &all {
            assert_eq!((s.scope, &s.state), (Scope::User, &State::NotInstalled));
            assert!(!s.is_installed() && !s.is_problem());
        }
        assert_eq!(
            status(&all, Client::Cursor, Scope::User).to_string(),
            "cursor (user): not installed"
        );
    }

    #[test]
    fn a_client_directory_without_its_file_is_installed_without_configuration() {
        let h = Home::new();
        fs::create_dir_all(h.home().join(".cursor")).expect("mkdir");
        // Claude Code's file is in the home directory itself: its `.claude/` tells.
        fs::create_dir_all(h.home().join(".claude")).expect("mkdir");
        let all = h.survey(None);
        let cursor = status(&all, Client::Cursor, Scope::User);
        assert_eq!(
            cursor.state,
            State::NoConfig {
                dir: h.home().join(".cursor")
            }
        );
        assert!(cursor.is_installed() && !cursor.is_problem());
        assert_eq!(
            cursor.describe(Some(h.home())),
            "cursor (user): installed, no MCP configuration yet (~/.cursor/mcp.json)"
        );
        assert_eq!(
            status(&all, Client::ClaudeCode, Scope::User).state,
            State::NoConfig {
                dir: h.home().join(".claude")
            }
        );
        assert_eq!(
            status(&all, Client::Zed, Scope::User).state,
            State::NotInstalled
        );
    }

    #[test]
    fn installed_without_mcp_warden_every_stdio_server_bypasses_it() {
        let h = Home::new();
        for (client, text) in FIXTURES {
            write(&h.user_file(client), text);
        }
        let all = h.survey(None);
        for (client, _) in FIXTURES {
            let s = status(&all, client, Scope::User);
            let servers = servers(s);
            assert!(!s.points_at_mcp_warden() && s.is_problem(), "{s}");
            assert_eq!(
                (servers.bypassing.len(), servers.remote.len()),
                (2, 1),
                "{s}"
            );
            assert!(servers.bypassing.iter().all(|b| b.kept_because.is_none()));
        }
        assert_eq!(
            status(&all, Client::Cursor, Scope::User).describe(Some(h.home())),
            "cursor (user): ~/.cursor/mcp.json: does not point at mcp-warden; 2 servers not \
             behind it: brave-search, git; 1 remote server left to the client: context7"
        );
    }

    #[test]
    fn after_install_every_client_points_at_mcp_warden() {
        let h = Home::new();
        for (client, text) in FIXTURES {
            write(&h.user_file(client), text);
            h.install(client);
        }
        let all = h.survey(None);
        for (client, _) in FIXTURES {
            let s = status(&all, client, Scope::User);
            let servers = servers(s);
            assert!(s.points_at_mcp_warden() && !s.is_problem(), "{s}");
            assert!(servers.bypassing.is_empty(), "{s}");
            assert_eq!(servers.remote.len(), 1, "{s}");
            let ours = servers.mcp_warden.as_ref().expect("ours");
            assert_eq!(ours.program, h.exe());
            assert!(ours.is_this_binary, "{s}");
        }
        assert_eq!(
            status(&all, Client::Codex, Scope::User).describe(Some(h.home())),
            "codex (user): ~/.codex/config.toml: points at mcp-warden; 1 remote server left \
             to the client: figma"
        );
    }

    #[test]
    fn a_server_added_after_install_bypasses_mcp_warden() {
        let h = Home::new();
        let file = h.user_file(Client::Cursor);
        write(&file, FIXTURES[2].1);
        h.install(Client::Cursor);
        let installed = fs::read_to_string(&file).expect("read");
        let added = installed.replacen(
            "\"mcpServers\": {",
            "\"mcpServers\": {\n    \"foo\": {\"command\": \"foo-mcp\"},",
            1,
        );
        assert_ne!(added, installed);
        fs::write(&file, added).expect("write");
        let all = h.survey(None);
        let s = status(&all, Client::Cursor, Scope::User);
        assert!(s.points_at_mcp_warden() && s.is_problem());
        assert_eq!(
            servers(s).bypassing,
            [Bypassing {
                name: "foo".into(),
                program: Some("foo-mcp".into()),
                enabled: true,
                kept_because: None,
            }]
        );
        assert_eq!(
            s.describe(Some(h.home())),
            "cursor (user): ~/.cursor/mcp.json: points at mcp-warden; 1 server not behind it: \
             foo; 1 remote server left to the client: context7"
        );
    }

    #[test]
    fn a_server_install_cannot_move_bypasses_it_a_disabled_one_is_no_problem() {
        let h = Home::new();
        let ours = format!(
            r#""mcp-warden": {{"command": "{}", "args": ["serve"]}}"#,
            h.exe()
        );
        let kept = format!(
            r#"{{"mcpServers": {{{ours}, "shell": {{"command": "sh-mcp", "tools": ["rm"]}}}}}}"#
        );
        write(&h.user_file(Client::Gemini), &kept);
        let off = format!(
            r#"{{"mcpServers": {{{ours}, "old": {{"command": "old-mcp", "disabled": true}}}}}}"#
        );
        write(&h.user_file(Client::Windsurf), &off);
        let all = h.survey(None);

        let gemini = status(&all, Client::Gemini, Scope::User);
        assert!(gemini.is_problem());
        let reason = servers(gemini).bypassing[0].kept_because.clone();
        assert!(reason.is_some_and(|r| r.contains("`tools`")));
        assert!(
            gemini.to_string().ends_with(
                "points at mcp-warden; 1 server not behind it: shell (install cannot move it)"
            ),
            "{gemini}"
        );

        let windsurf = status(&all, Client::Windsurf, Scope::User);
        assert!(!windsurf.is_problem(), "{windsurf}");
        assert!(
            windsurf
                .to_string()
                .ends_with("1 server not behind it: old (disabled)")
        );
    }

    #[test]
    fn a_dangling_mcp_warden_binary_is_a_problem() {
        let h = Home::new();
        write(&h.user_file(Client::Cursor), FIXTURES[2].1);
        h.install(Client::Cursor);
        fs::remove_file(&h.exe).expect("rm");
        let all = h.survey(None);
        let s = status(&all, Client::Cursor, Scope::User);
        let ours = servers(s).mcp_warden.clone().expect("ours");
        assert_eq!(
            (ours.resolved, ours.is_this_binary),
            (Program::Missing, false)
        );
        assert!(s.points_at_mcp_warden() && s.is_problem());
        assert_eq!(
            s.describe(Some(h.home())),
            format!(
                "cursor (user): ~/.cursor/mcp.json: points at mcp-warden `{}`, which does not \
                 exist; 1 remote server left to the client: context7",
                h.exe()
            )
        );

        // Something there, but nothing that runs.
        write(&h.exe, "not a program");
        fs::set_permissions(&h.exe, fs::Permissions::from_mode(0o644)).expect("chmod");
        let all = h.survey(None);
        let s = status(&all, Client::Cursor, Scope::User);
        assert!(s.is_problem());
        assert!(
            s.to_string().contains("which is not an executable file"),
            "{s}"
        );
    }

    #[test]
    fn another_copy_of_mcp_warden_is_said_but_is_no_problem() {
        let h = Home::new();
        let other = h.root.join("elsewhere/mcp-warden");
        write(&other, "#!/bin/sh\n");
        fs::set_permissions(&other, fs::Permissions::from_mode(0o755)).expect("chmod");
        let text = format!(
            r#"{{"mcpServers": {{"mcp-warden": {{"command": "{}", "args": ["serve"]}}}}}}"#,
            other.display()
        );
        write(&h.user_file(Client::Cursor), &text);
        let all = h.survey(None);
        let s = status(&all, Client::Cursor, Scope::User);
        assert!(s.points_at_mcp_warden() && !s.is_problem());
        assert!(
            s.to_string().ends_with(&format!(
                "points at mcp-warden `{}` (not this binary)",
                other.display()
            )),
            "{s}"
        );
    }

    #[test]
    fn a_bare_command_is_looked_up_in_path() {
        let h = Home::new();
        let bin = h.exe.parent().expect("bin dir").as_os_str().to_owned();
        assert_eq!(
            resolve("mcp-warden", Some(&bin)),
            Program::Found {
                path: h.exe.clone()
            }
        );
        assert_eq!(resolve("mcp-warden", None), Program::Missing);
        assert_eq!(resolve("absent", Some(&bin)), Program::Missing);
        assert_eq!(resolve("", Some(&bin)), Program::Missing);

        let text =
            r#"{"mcpServers": {"mcp-warden": {"command": "mcp-warden", "args": ["serve"]}}}"#;
        write(&h.user_file(Client::Cursor), text);
        let all = survey_with(&h.env, None, h.exe(), Some(&bin));
        let s = status(&all, Client::Cursor, Scope::User);
        let ours = servers(s).mcp_warden.clone().expect("ours");
        assert!(ours.is_this_binary && !s.is_problem(), "{s}");
        let all = h.survey(None);
        let s = status(&all, Client::Cursor, Scope::User);
        assert!(s.is_problem());
        assert!(
            s.to_string().contains("`mcp-warden`, which is not in PATH"),
            "{s}"
        );
    }

    fn broken(s: &ClientStatus) -> (Option<usize>, Option<usize>, &str) {
        match &s.state {
            State::Broken {
                line,
                column,
                message,
                ..
            } => (*line, *column, message.as_str()),
            other => panic!("not broken: {other:?}"),
        }
    }

    #[test]
    fn a_broken_jsonc_file_is_reported_at_its_position_and_the_survey_goes_on() {
        let h = Home::new();
        write(
            &h.user_file(Client::Zed),
            "// Zed settings\n{\n  \"context_servers\": {\n    \"a\": {\"command\": \"x\"},,\n  },\n}\n",
        );
        write(&h.user_file(Client::Cursor), FIXTURES[2].1);
        let all = h.survey(None);
        let zed = status(&all, Client::Zed, Scope::User);
        let (line, column, _) = broken(zed);
        assert_eq!((line, column), (Some(4), Some(27)), "{zed}");
        assert!(zed.is_problem());
        assert!(
            zed.describe(Some(h.home()))
                .starts_with("zed (user): ~/.config/zed/settings.json:4:27: broken: "),
            "{zed}"
        );
        // One broken file is one status; the others are read as usual.
        assert_eq!(
            servers(status(&all, Client::Cursor, Scope::User))
                .bypassing
                .len(),
            2
        );
        assert_eq!(all.len(), Client::ALL.len());
    }

    #[test]
    fn a_broken_toml_file_is_reported_at_its_position() {
        let h = Home::new();
        write(
            &h.user_file(Client::Codex),
            "model = \"o3\"\n\n[mcp_servers.docs]\ncommand = \n",
        );
        let all = h.survey(None);
        let codex = status(&all, Client::Codex, Scope::User);
        assert_eq!(broken(codex).0, Some(4), "{codex}");
        assert!(codex.is_problem());
    }

    #[test]
    fn servers_in_the_wrong_shape_are_a_broken_file() {
        let h = Home::new();
        write(&h.user_file(Client::Cursor), "{\n  \"mcpServers\": []\n}\n");
        let all = h.survey(None);
        let cursor = status(&all, Client::Cursor, Scope::User);
        assert_eq!(
            broken(cursor),
            (Some(2), Some(17), "`mcpServers` is not an object")
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_a_status_not_a_failure() {
        let h = Home::new();
        // A directory where the file should be.
        fs::create_dir_all(h.user_file(Client::Cursor)).expect("mkdir");
        let gemini = h.user_file(Client::Gemini);
        fs::create_dir_all(gemini.parent().expect("dir")).expect("mkdir");
        fs::write(&gemini, b"{\n  \"a\": \"\xff\"\n}\n").expect("write");
        let all = h.survey(None);
        let cursor = status(&all, Client::Cursor, Scope::User);
        assert!(matches!(cursor.state, State::Unreadable { .. }), "{cursor}");
        assert!(cursor.is_problem());
        let gemini = status(&all, Client::Gemini, Scope::User);
        assert_eq!(broken(gemini).0, Some(2), "{gemini}");
    }

    #[test]
    fn project_files_are_surveyed_in_the_workspace() {
        let h = Home::new();
        let ws = h.root.join("ws");
        write(
            &ws.join(".cursor/mcp.json"),
            r#"{"mcpServers": {"local": {"command": "./tool"}}}"#,
        );
        write(&ws.join(".mcp.json"), r#"{"mcpServers": {}}"#);
        let all = h.survey(Some(&ws));
        let cursor = status(&all, Client::Cursor, Scope::Project);
        assert_eq!(cursor.file, ws.join(".cursor/mcp.json"));
        assert!(cursor.is_problem());
        let claude = status(&all, Client::ClaudeCode, Scope::Project);
        assert!(!claude.is_problem());
        assert!(
            claude.to_string().ends_with(".mcp.json: no MCP servers"),
            "{claude}"
        );
        // Project files that do not exist say nothing about the client.
        assert!(
            !all.iter()
                .any(|s| s.client == Client::Vscode && s.scope == Scope::Project)
        );
        // Without a workspace, only the user level.
        assert!(h.survey(None).iter().all(|s| s.scope == Scope::User));
    }

    #[test]
    fn with_the_workspace_at_home_a_file_is_surveyed_once() {
        let h = Home::new();
        write(&h.user_file(Client::Cursor), FIXTURES[2].1);
        let all = h.survey(Some(h.home()));
        let cursors: Vec<_> = all.iter().filter(|s| s.client == Client::Cursor).collect();
        assert_eq!(cursors.len(), 1, "{cursors:#?}");
        assert_eq!(cursors[0].scope, Scope::User);
    }

    #[test]
    fn claude_code_local_entry_of_the_workspace() {
        let h = Home::new();
        let ws = h.root.join("ws");
        fs::create_dir_all(&ws).expect("mkdir");
        let text = json!({
            "mcpServers": {},
            "projects": {
                ws.to_string_lossy(): {"mcpServers": {"pg": {"type": "stdio", "command": "uvx"}}},
                "/elsewhere": {"mcpServers": {}}
            }
        })
        .to_string();
        write(&h.user_file(Client::ClaudeCode), &text);
        let all = h.survey(Some(&ws));
        let local = status(&all, Client::ClaudeCode, Scope::Local);
        assert_eq!(servers(local).bypassing[0].name, "pg");
        assert!(local.is_problem());
        assert_eq!(
            local.describe(Some(h.home())),
            format!(
                "claude-code (local): ~/.claude.json (projects.\"{}\".mcpServers): does not \
                 point at mcp-warden; 1 server not behind it: pg",
                ws.display()
            )
        );
        let user = status(&all, Client::ClaudeCode, Scope::User);
        assert!(!user.is_problem(), "{user}");

        // A project Claude Code has not seen has no local entry.
        let other = h.root.join("other");
        fs::create_dir_all(&other).expect("mkdir");
        let all = h.survey(Some(&other));
        assert!(!all.iter().any(|s| s.scope == Scope::Local));
    }

    #[test]
    fn a_broken_claude_json_is_reported_once() {
        let h = Home::new();
        let ws = h.root.join("ws");
        fs::create_dir_all(&ws).expect("mkdir");
        write(&h.user_file(Client::ClaudeCode), "{\"projects\": ");
        let all = h.survey(Some(&ws));
        let claude: Vec<_> = all
            .iter()
            .filter(|s| s.client == Client::ClaudeCode)
            .collect();
        assert_eq!(claude.len(), 1, "{claude:#?}");
        assert!(claude[0].is_problem());

        // A file whose user part reads well but whose project part does not: said there.
        write(
            &h.user_file(Client::ClaudeCode),
            "{\"mcpServers\": {}, \"projects\": []}",
        );
        let all = h.survey(Some(&ws));
        assert!(!status(&all, Client::ClaudeCode, Scope::User).is_problem());
        let local = status(&all, Client::ClaudeCode, Scope::Local);
        assert_eq!(
            broken(local),
            (Some(1), Some(32), "`projects` is not an object")
        );
    }

    #[test]
    fn json_names_the_client_the_scope_and_the_state() {
        let h = Home::new();
        write(&h.user_file(Client::Cursor), FIXTURES[2].1);
        h.install(Client::Cursor);
        let all = h.survey(None);
        let value = serde_json::to_value(status(&all, Client::Cursor, Scope::User)).expect("json");
        assert_eq!(
            value,
            json!({
                "client": "cursor",
                "scope": "user",
                "file": h.user_file(Client::Cursor),
                "servers_at": "mcpServers",
                "state": "configured",
                "mcp_warden": {
                    "key": "mcp-warden",
                    "program": h.exe(),
                    "resolved": {"status": "found", "path": h.exe()},
                    "is_this_binary": true
                },
                "bypassing": [],
                "remote": ["context7"]
            })
        );
        let value = serde_json::to_value(status(&all, Client::Zed, Scope::User)).expect("json");
        assert_eq!(
            value,
            json!({
                "client": "zed",
                "scope": "user",
                "file": h.user_file(Client::Zed),
                "servers_at": "context_servers",
                "state": "not_installed"
            })
        );
    }
}
