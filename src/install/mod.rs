//! `mcp-warden install` and `uninstall`: put mcp-warden into an MCP client in place of
//! the client's own stdio servers, and take it out again.
//!
//! `install` reads the client's file, moves each stdio server it can carry over
//! faithfully into mcp-warden, keeping its scope ([`Layer`]): a user-level file's into
//! the **user** `config.toml` (`env` values included: it is private), a project's file
//! and Claude Code's `local` entries into the workspace's `mcp-warden.toml` (trusted
//! after the write only where [`destination`] says so; a server whose `env` may hold a
//! secret stays with the client, since that file is committed), puts one `mcp-warden` entry (this binary,
//! `serve`) where the first of them was, and leaves everything else alone: remote
//! (`url`) servers, which mcp-warden does not proxy, entries it cannot express, and every
//! other key, comment and blank line of the file. Before the first change it copies the
//! file to `<file>.mcp-warden-backup-<UTC timestamp>` (mode 0600; in the data dir when the
//! file is inside a git work tree: [`backup`]), and it records what it did in the data
//! dir's `installs.toml` ([`record`]). Running it again changes
//! nothing. `uninstall` restores the newest backup byte for byte (only while the file is
//! still as `install` left it, unless forced, and only the backup it made) and takes out of `config.toml` the servers
//! that install added, while they are unchanged and no other install relies on them.
//!
//! Files are edited in place, never re-serialized: JSON and JSONC with `jsonc-parser`'s
//! concrete syntax tree ([`json`]), TOML with `toml_edit` ([`toml_file`],
//! [`user_config`]). A client file that cannot be parsed is an error with its
//! `file:line:col` and is never written.
//!
//! This module must never write a file the user did not name or that its own records do
//! not point at, and never write anything before the plan has been shown or confirmed
//! (the CLI asks; [`apply_install`] and [`apply_uninstall`] check that neither file
//! changed since the plan was made).
//!
//! # Clients
//!
//! | `--client` | scope | file | servers under | syntax | mcp-warden's entry |
//! | --- | --- | --- | --- | --- | --- |
//! | `claude-desktop` | user | `~/.config/Claude/claude_desktop_config.json` (Linux), `~/Library/Application Support/Claude/claude_desktop_config.json` (macOS), `%APPDATA%\Claude\...` (Windows) | `mcpServers` | JSON | `{"command": ..., "args": ["serve"]}` |
//! | `claude-code` | user | `~/.claude.json` (`$CLAUDE_CONFIG_DIR/.claude.json` when set) | `mcpServers` | JSON | `{"type": "stdio", "command": ..., "args": ["serve"]}` |
//! | `claude-code` | project | `.mcp.json` | `mcpServers` | JSON | same |
//! | `claude-code` | local | `~/.claude.json` | `projects["<dir>"].mcpServers` | JSON | same |
//! | `cursor` | user / project | `~/.cursor/mcp.json` / `.cursor/mcp.json` | `mcpServers` | JSON | `{"command": ..., "args": ["serve"]}` |
//! | `vscode` | user | `~/.config/Code/User/mcp.json` (macOS: `~/Library/Application Support/Code/User/mcp.json`); `settings.json` there when only it has servers (before VS Code 1.102) | `servers` (`mcp.servers` in `settings.json`) | JSONC | `{"type": "stdio", "command": ..., "args": ["serve"]}` |
//! | `vscode` | project | `.vscode/mcp.json` | `servers` | JSONC | same |
//! | `windsurf` | user | `~/.codeium/windsurf/mcp_config.json` | `mcpServers` | JSON | `{"command": ..., "args": ["serve"]}` |
//! | `zed` | user / project | `~/.config/zed/settings.json` (`$XDG_CONFIG_HOME/zed` on Linux) / `.zed/settings.json` | `context_servers` | JSONC | `{"command": ..., "args": ["serve"]}`, or `{"command": {"path": ..., "args": [...]}}` where the file's entries use that older form |
//! | `codex` | user / project | `~/.codex/config.toml` (`$CODEX_HOME/config.toml` when set) / `.codex/config.toml` (trusted projects) | `[mcp_servers.NAME]` | TOML | `command = ...`, `args = ["serve"]` |
//! | `gemini` | user / project | `~/.gemini/settings.json` / `.gemini/settings.json` | `mcpServers` | JSON with comments | `{"command": ..., "args": ["serve"]}` |
//!
//! `--config PATH` replaces the file (for `vscode`, a file named `settings.json` means
//! the `mcp.servers` layout); the project is `--workspace DIR`, else the current
//! directory. A user-level file is created only where the client's directory exists; a
//! project's file (and its directory) always. Remote entries are those with `url`,
//! `serverUrl` (Windsurf) or `httpUrl` (Gemini), or a `type` other than `stdio`. Which
//! entries move, and how their variables are carried over, is [`entry`]'s to say.

pub mod backup;
pub mod client;
pub mod entry;
pub mod json;
pub mod record;
pub mod rules;
pub mod survey;
pub mod toml_file;
pub mod user_config;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use client::{Client, Environment, Scope, Target, client_name_budget, locate};
pub use entry::{Disposition, OURS, ServerDef};

use crate::config::Diagnostic;
use crate::file_error::FileError;
use crate::paths::Paths;
use crate::time::Timestamp;
use json::JsonFile;
use record::Record;
use toml_file::TomlFile;
use user_config::UserConfig;

/// Why `install` or `uninstall` cannot go on. Nothing has been written when one of these
/// is returned, except where a [`FileError::Write`] says which write failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file is not what it should be (syntax or shape), at a position; never written.
    #[error("{0}")]
    Invalid(Diagnostic),
    /// A file that could not be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// The client has no file for this scope.
    #[error("{client} has no {scope}-level configuration file")]
    NoScope { client: Client, scope: Scope },
    /// The client's user-level file and its directory do not exist.
    #[error("no `{}`, and its directory does not exist either", path.display())]
    NoClientFile { client: Client, path: PathBuf },
    /// Claude Code's local scope, for a directory Claude Code has not seen.
    #[error("`{}` has no entry for the project `{project}`", path.display())]
    NoLocalProject { path: PathBuf, project: String },
    /// An entry called `mcp-warden` that is not mcp-warden's.
    #[error("`{}` already has an entry named `{OURS}` that is not mcp-warden's", path.display())]
    NameTaken { path: PathBuf },
    /// A server that would move is already in `config.toml`, defined differently.
    #[error(
        "server `{table}`{} is already defined differently in `{}`",
        if name == table { String::new() } else { format!(" (from `{name}`)") },
        path.display()
    )]
    Conflict {
        table: String,
        name: String,
        path: PathBuf,
    },
    /// `uninstall` without a record of an install into that file.
    #[error("no `mcp-warden install` into `{}` is recorded", path.display())]
    NotInstalled {
        path: PathBuf,
        /// Backups of the file found (beside it or in the data dir), newest first.
        backups: Vec<PathBuf>,
    },
    /// The client file is no longer as `install` left it.
    #[error("`{}` changed since `mcp-warden install` wrote it", path.display())]
    ChangedSinceInstall {
        path: PathBuf,
        backup: Option<PathBuf>,
    },
    /// The recorded backup is gone.
    #[error("the backup `{}` is missing", path.display())]
    BackupMissing { path: PathBuf },
    /// What stands at the backup's path is not the backup `install` made.
    #[error("the backup `{}` is not restored: {why}", path.display())]
    BackupUnsafe { path: PathBuf, why: &'static str },
    /// A file changed between the plan (what was shown) and the write.
    #[error("`{}` changed while mcp-warden was waiting; nothing was written", path.display())]
    ChangedMeanwhile { path: PathBuf },
    /// Records keep paths as text.
    #[error("path `{}` is not valid UTF-8", path.display())]
    NotUnicode { path: PathBuf },
    /// A project's servers would go to a workspace file in the home directory, which is
    /// never a workspace.
    #[error("the project directory `{}` is the home directory, which is never a workspace", path.display())]
    HomeIsNoWorkspace { path: PathBuf },
    /// A rule `install` would write is already in the file, written differently.
    #[error("rule `{id}` is already in `{}`, written differently", path.display())]
    RuleConflict { id: String, path: PathBuf },
    /// The trust store could not record the workspace `install` wrote.
    #[error("{0}")]
    Trust(crate::config::trust::TrustError),
}

impl InstallError {
    /// Whether this is a failure of the machine (exit 3) rather than of the input (2).
    #[must_use]
    pub fn is_runtime(&self) -> bool {
        matches!(self, Self::File(_) | Self::Trust(_))
    }

    /// What to do about it, when there is something to say.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NoScope { client, .. } => format!(
                "{client} has {} files",
                client
                    .scopes()
                    .iter()
                    .map(|s| format!("`--scope {s}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            Self::NoClientFile { client, .. } => format!(
                "is {client} installed? pass `--config PATH` if it keeps its file elsewhere"
            ),
            Self::NoLocalProject { .. } => {
                "run it in the project directory (or pass `--workspace DIR`), or use `--scope user`"
                    .to_owned()
            }
            Self::NameTaken { .. } => "rename that entry, then run `install` again".to_owned(),
            Self::RuleConflict { id, .. } => {
                format!("rename or remove the rule `{id}`, then run `install` again")
            }
            Self::Conflict { table, .. } => format!(
                "rename the server in the client's file, or remove or rename `[servers.{table}]` \
                 in config.toml"
            ),
            Self::NotInstalled { backups, .. } => match backups.first() {
                Some(b) => format!(
                    "a backup of it is `{}`; copy it back by hand if it is the one",
                    b.display()
                ),
                None => "check `--client`, `--scope` and `--config`".to_owned(),
            },
            Self::ChangedSinceInstall { backup, .. } => match backup {
                Some(b) => format!(
                    "the client (or you) changed it since; `--force` restores the backup `{}` \
                     anyway, losing those changes",
                    b.display()
                ),
                None => "`--force` removes it anyway, losing those changes".to_owned(),
            },
            Self::ChangedMeanwhile { .. } => "run the command again".to_owned(),
            Self::HomeIsNoWorkspace { .. } => {
                "run it in the project's directory, or pass `--workspace DIR`".to_owned()
            }
            Self::BackupUnsafe { .. } => "something replaced it since install (a process that \
                can write this directory?); look at it, and restore the client's file by hand"
                .to_owned(),
            _ => return None,
        })
    }
}

/// A client's file, parsed.
#[derive(Debug)]
pub(crate) enum ClientFile {
    Json(JsonFile),
    Toml(TomlFile),
}

impl ClientFile {
    pub(crate) fn parse(target: &Target, text: &str) -> Result<Self, InstallError> {
        Ok(match target.syntax {
            client::Syntax::Toml => Self::Toml(TomlFile::parse(&target.file, text, target)?),
            _ => Self::Json(JsonFile::parse(&target.file, text, target)?),
        })
    }

    pub(crate) fn entries(&self) -> &[(String, Value)] {
        match self {
            Self::Json(f) => &f.entries,
            Self::Toml(f) => &f.entries,
        }
    }

    fn edited(self, remove: &[String], add: Option<(&str, &Value)>) -> String {
        match self {
            Self::Json(f) => f.edited(remove, add),
            Self::Toml(f) => f.edited(remove, add),
        }
    }
}

/// Which mcp-warden file the moved servers go to: a server keeps the scope it had in
/// the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// The user `config.toml`: servers of a client's user-level file, for every
    /// workspace.
    User,
    /// The workspace's `mcp-warden.toml`: servers of a project's file (and Claude Code's
    /// `local` entries), which start only in that workspace.
    Workspace {
        root: PathBuf,
        /// Whether `install` trusts the workspace after writing its file: only when it
        /// is trusted now at its current files, or has neither `mcp-warden.toml` nor
        /// `mcp-warden.lock` yet. Anything else (a cloned repository's own file or
        /// lock) is left for `mcp-warden trust` to show first.
        trust: bool,
    },
}

/// Where `install` puts a client's servers, and how long their exposed names may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The mcp-warden file: the user `config.toml` or a workspace's `mcp-warden.toml`.
    pub path: PathBuf,
    pub layer: Layer,
    /// The smallest name budget of the clients mcp-warden is (or is being) installed
    /// into ([`client_name_budget`]): written as each moved server's `max_name_len` when
    /// under 64, so that every installed client sees every name whole.
    pub max_name_len: usize,
}

impl Destination {
    /// The user config at `path`, with names of up to 64 characters.
    #[must_use]
    pub fn user(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            layer: Layer::User,
            max_name_len: crate::names::MAX_EXPOSED_LEN,
        }
    }
}

/// Where `install` puts `target`'s servers: the user config for a user-level file, the
/// workspace's `mcp-warden.toml` for a project's file or a Claude Code `local` entry.
/// Their name budget is the smallest of `target`'s client and every client an install
/// is recorded for.
pub fn destination(paths: &Paths, target: &Target) -> Result<Destination, InstallError> {
    let max_name_len = record::read(paths)?
        .iter()
        .filter_map(|r| Client::from_name(&r.client))
        .chain([target.client])
        .map(|c| client_name_budget(c, OURS))
        .min()
        .unwrap_or(crate::names::MAX_EXPOSED_LEN);
    let Some(root) = target
        .project
        .as_ref()
        .filter(|_| target.scope != Scope::User)
    else {
        return Ok(Destination {
            max_name_len,
            ..Destination::user(&paths.user_config())
        });
    };
    let home = paths
        .home
        .canonicalize()
        .unwrap_or_else(|_| paths.home.clone());
    if root.canonicalize().unwrap_or_else(|_| root.clone()) == home {
        return Err(InstallError::HomeIsNoWorkspace { path: root.clone() });
    }
    let trust = may_trust(paths, root);
    Ok(Destination {
        path: crate::paths::workspace_file(root),
        layer: Layer::Workspace {
            root: root.clone(),
            trust,
        },
        max_name_len,
    })
}

/// Whether writing the workspace file at `root` may leave it trusted: it is trusted at
/// its current files, or it has none of them (nothing a repository shipped gets
/// approved along with the servers the user moved).
fn may_trust(paths: &Paths, root: &Path) -> bool {
    let absent = |p: PathBuf| matches!(fs::symlink_metadata(p), Err(e) if e.kind() == io::ErrorKind::NotFound);
    is_trusted(paths, root)
        || (absent(crate::paths::workspace_file(root))
            && absent(root.join(crate::paths::LOCK_FILE)))
}

/// Whether the workspace at `root` is trusted at its current files (an unreadable store
/// reads as not trusted).
fn is_trusted(paths: &Paths, root: &Path) -> bool {
    crate::config::trust::state(paths, root) == crate::config::TrustState::Trusted
}

/// The one place `install` and `uninstall` record trust: after their own write to a
/// workspace file that [`may_trust`] allowed (checked again under the install lock).
fn retrust(paths: &Paths, layer: &Layer) -> Result<bool, InstallError> {
    match layer {
        Layer::Workspace { root, trust: true } => {
            crate::config::trust::trust(paths, root).map_err(InstallError::Trust)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A server that moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Its name in the client's file.
    pub name: String,
    /// Its table name in `config.toml`.
    pub table: String,
    pub server: ServerDef,
    pub notes: Vec<String>,
    /// `config.toml` already has it, defined the same way: not added again.
    pub already: bool,
    /// The policy rules its own tool lists become, not in the file yet.
    pub rules: Vec<rules::PolicyRule>,
}

/// What `install` would do; nothing is written until [`apply_install`].
#[derive(Debug, Clone)]
pub struct InstallPlan {
    pub target: Target,
    /// The client file now; `None` when it does not exist.
    pub client_before: Option<String>,
    pub client_after: String,
    /// The mcp-warden file the servers go to ([`Layer`]).
    pub config_path: PathBuf,
    pub layer: Layer,
    pub config_before: Option<String>,
    /// `None`: that file stays as it is.
    pub config_after: Option<String>,
    pub moved: Vec<Moved>,
    /// Remote servers, left in the client's file.
    pub remote: Vec<String>,
    /// Other entries left in the client's file, with the reason.
    pub kept: Vec<(String, String)>,
    /// The name budget of the moved servers ([`Destination::max_name_len`]).
    pub max_name_len: usize,
    /// Servers already in the mcp-warden file whose names may be longer than that
    /// budget: install leaves them as they are, and says so.
    pub over_budget: Vec<String>,
    /// mcp-warden's entry was there already.
    pub ours_present: bool,
    /// The program mcp-warden's existing entry runs (it may be another copy).
    pub ours_program: Option<String>,
    /// The entry written for mcp-warden.
    pub exe: String,
}

impl InstallPlan {
    /// Whether applying it would change no file.
    #[must_use]
    pub fn changes_nothing(&self) -> bool {
        self.client_before.as_deref() == Some(self.client_after.as_str())
            && self.config_after.is_none()
    }

    /// The unified diffs of both files.
    #[must_use]
    pub fn diffs(&self) -> String {
        let mut out = diff(
            &self.target.file,
            self.client_before.as_deref(),
            Some(&self.client_after),
        );
        let config = match &self.config_after {
            Some(after) => diff(
                &self.config_path,
                self.config_before.as_deref(),
                Some(after),
            ),
            None => String::new(),
        };
        if !config.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&config);
        }
        out
    }
}

/// Reads the client's file and the mcp-warden file of `layer` (at `config_path`, as
/// [`destination`] says), and works out what `install` would do. `exe` is the absolute
/// path of the running mcp-warden.
pub fn plan_install(
    target: Target,
    exe: &str,
    dest: &Destination,
) -> Result<InstallPlan, InstallError> {
    let client_text = read_optional(&target.file)?;
    let config_text = read_optional(&dest.path)?;
    if client_text.is_none() && !target.may_create() {
        return Err(InstallError::NoClientFile {
            client: target.client,
            path: target.file.clone(),
        });
    }
    plan_install_from(
        target,
        exe,
        client_text.as_deref(),
        dest,
        config_text.as_deref(),
    )
}

/// [`plan_install`] over given file contents (`None`: the file does not exist).
pub fn plan_install_from(
    target: Target,
    exe: &str,
    client_text: Option<&str>,
    dest: &Destination,
    config_text: Option<&str>,
) -> Result<InstallPlan, InstallError> {
    let config_path = dest.path.as_path();
    let budget = (dest.max_name_len < crate::names::MAX_EXPOSED_LEN).then_some(dest.max_name_len);
    let file = ClientFile::parse(&target, client_text.unwrap_or(""))?;
    if let ClientFile::Json(json) = &file
        && target.scope == Scope::Local
        && json.depth_found < 2
    {
        return Err(InstallError::NoLocalProject {
            path: target.file.clone(),
            project: target.container.get(1).cloned().unwrap_or_default(),
        });
    }
    let mut config = UserConfig::parse(config_path, config_text)?;
    if matches!(dest.layer, Layer::Workspace { .. }) {
        config = config.for_workspace();
    }
    let mut moved = Vec::new();
    let mut remote = Vec::new();
    let mut kept = Vec::new();
    let mut ours_present = false;
    let mut ours_program = None;
    let mut like = None;
    let mut tables: Vec<String> = Vec::new();
    for (name, value) in file.entries() {
        let disposition = entry::classify(target.client, value, exe, target.project.as_deref());
        if name == OURS && !matches!(disposition, Disposition::Ours | Disposition::Move { .. }) {
            return Err(InstallError::NameTaken {
                path: target.file.clone(),
            });
        }
        match disposition {
            Disposition::Ours => {
                ours_present = true;
                ours_program = entry::program(value);
            }
            Disposition::Remote => remote.push(name.clone()),
            Disposition::Keep { reason } => kept.push((name.clone(), reason)),
            Disposition::Move { server, .. }
                if matches!(dest.layer, Layer::Workspace { .. })
                    && server.secret_env().is_some() =>
            {
                let key = server.secret_env().unwrap_or_default();
                kept.push((name.clone(), format!("`env.{key}` {SECRET_ENV}")));
            }
            Disposition::Move {
                mut server,
                filter,
                notes,
            } => {
                server.max_name_len = budget;
                let table = unique(entry::table_name(name), &tables);
                match place(name, table, server, &filter, notes, &config, config_path)? {
                    Ok(m) => {
                        like.get_or_insert(value);
                        tables.push(m.table.clone());
                        moved.push(m);
                    }
                    Err(reason) => kept.push((name.clone(), reason)),
                }
            }
        }
    }
    let leaving: Vec<String> = moved.iter().map(|m| m.name.clone()).collect();
    let our_entry = entry::our_entry(target.style, exe, like);
    let add = (!ours_present).then_some((OURS, &our_entry));
    let client_after = file.edited(&leaving, add);
    let origin = format!(
        "{} ({}): {}",
        target.client,
        target.scope,
        target.file.display()
    );
    let mut added = false;
    for m in &moved {
        if !m.already {
            config.add(&m.table, &m.server, &origin);
            added = true;
        }
        for rule in &m.rules {
            added |= config.add_rule(rule, &origin);
        }
    }
    let config_after = added.then(|| config.text());
    Ok(InstallPlan {
        target,
        client_before: client_text.map(str::to_owned),
        client_after,
        config_path: config_path.to_path_buf(),
        layer: dest.layer.clone(),
        config_before: config_text.map(str::to_owned),
        config_after,
        moved,
        remote,
        kept,
        max_name_len: dest.max_name_len,
        over_budget: config.servers_over(dest.max_name_len),
        ours_present,
        ours_program,
        exe: exe.to_owned(),
    })
}

/// Why a project's server whose `env` holds a secret stays with the client.
const SECRET_ENV: &str = "may be a secret, and a project's servers go to the workspace's \
                          mcp-warden.toml, which is committed; write `${env:NAME}` in its \
                          place (set outside the repository), then install again";

/// Server `name` of the client's file as it would move to `table` of the mcp-warden
/// file `config`, with the rules its own tool lists become; `Ok(Err(reason))` when it
/// cannot move faithfully and stays with the client.
fn place(
    name: &str,
    table: String,
    server: ServerDef,
    filter: &entry::ToolFilter,
    mut notes: Vec<String>,
    config: &UserConfig,
    config_path: &Path,
) -> Result<Result<Moved, String>, InstallError> {
    // The budget the server's names have in the file: its own there when it is there.
    let mut budget = server.max_name_len;
    let already = match config.server(&table) {
        None => false,
        Some(Some(existing)) if existing.same_as(&server) => {
            budget = existing.max_name_len;
            true
        }
        Some(_) => {
            return Err(InstallError::Conflict {
                table,
                name: name.to_owned(),
                path: config_path.to_path_buf(),
            });
        }
    };
    let Some(all) = rules::rules_for(&table, budget, filter) else {
        return Ok(Err(format!(
            "its tool lists cannot be written as rules for the server `{table}`"
        )));
    };
    if !all.is_empty() && !config.takes_rules() {
        return Ok(Err(format!(
            "its tool lists ({}) become policy rules, and `{}` writes `policy.rules` in a \
             form install does not edit",
            quoted(&filter.keys),
            config_path.display()
        )));
    }
    let mut rules = Vec::new();
    let deny_only = config.denies_by_default();
    for rule in all
        .into_iter()
        .filter(|r| !deny_only || r.action == rules::Action::Deny)
    {
        match config.rule(&rule.id) {
            None => rules.push(rule),
            Some(Some(same)) if same == rule => {}
            Some(_) => {
                return Err(InstallError::RuleConflict {
                    id: rule.id,
                    path: config_path.to_path_buf(),
                });
            }
        }
    }
    if !filter.is_empty() {
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        notes.push(format!(
            "its {} become{} policy rules in `{}`{}",
            quoted(&filter.keys),
            if filter.keys.len() == 1 { "s" } else { "" },
            config_path.display(),
            if ids.is_empty() {
                " (there already)".to_owned()
            } else {
                format!(": {}", quoted(&ids))
            }
        ));
    }
    Ok(Ok(Moved {
        name: name.to_owned(),
        table,
        server,
        notes,
        already,
        rules,
    }))
}

/// `a`, `b` as the plan shows names.
fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `base`, or `base-2`, `base-3`, ... when it is taken.
fn unique(base: String, taken: &[String]) -> String {
    if !taken.contains(&base) {
        return base;
    }
    // `taken` has fewer names than this range: one of them is free.
    (2..=taken.len() + 2)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken.contains(n))
        .unwrap_or(base)
}

/// What [`apply_install`] wrote.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The backup; `None` when the client file was created.
    pub backup: Option<PathBuf>,
    /// The workspace the servers went to was trusted at its new contents.
    pub trusted: bool,
}

/// Carries out `plan`: backup, user config, record, client file, in that order (a crash
/// part-way leaves the servers in both places rather than in neither).
pub fn apply_install(paths: &Paths, plan: &InstallPlan) -> Result<Installed, InstallError> {
    let _lock = lock(paths)?;
    unchanged(&plan.target.file, plan.client_before.as_deref())?;
    unchanged(&plan.config_path, plan.config_before.as_deref())?;
    let file = &plan.target.file;
    let file_str = utf8(file)?;
    // The bytes shown in the plan and just checked unchanged: read once.
    let backup = match &plan.client_before {
        Some(before) => Some(backup::create(
            paths,
            file,
            before.as_bytes(),
            &Timestamp::now().compact(),
        )?),
        None => None,
    };
    let mode = fs::symlink_metadata(file).ok().map(|m| permissions(&m));
    // Decided again under the lock: what the plan saw may have changed (a lock file
    // dropped in meanwhile must not be trusted along with the servers).
    let layer = match &plan.layer {
        Layer::Workspace { root, trust } => Layer::Workspace {
            root: root.clone(),
            trust: *trust && may_trust(paths, root),
        },
        Layer::User => Layer::User,
    };
    let mut trusted = false;
    if let Some(after) = &plan.config_after {
        create_dir(paths.config_dir.as_path(), &plan.config_path)?;
        // The workspace file is committed and read by others: the umask's mode.
        let file_mode = match layer {
            Layer::User => 0o600,
            Layer::Workspace { .. } => fs::symlink_metadata(&plan.config_path)
                .ok()
                .map_or(0o644, |m| permissions(&m)),
        };
        write(&plan.config_path, after.as_bytes(), file_mode)?;
        trusted = retrust(paths, &layer)?;
    }
    let mut records = record::read(paths)?;
    records.push(Record {
        client: plan.target.client.name().to_owned(),
        scope: plan.target.scope.name().to_owned(),
        file: file_str.to_owned(),
        backup: backup
            .as_ref()
            .map(|b| utf8(&b.path))
            .transpose()?
            .map(str::to_owned),
        backup_digest: backup.as_ref().map(|b| b.digest.clone()),
        mode,
        written: crate::config::trust::digest(plan.client_after.as_bytes()),
        at: Timestamp::now().to_seconds(),
        config: match &plan.layer {
            Layer::User => None,
            Layer::Workspace { .. } => Some(utf8(&plan.config_path)?.to_owned()),
        },
        servers: plan
            .moved
            .iter()
            .filter(|m| !m.already)
            .map(|m| (m.table.clone(), m.server.digest()))
            .collect(),
        uses: plan
            .moved
            .iter()
            .filter(|m| m.already)
            .map(|m| (m.table.clone(), m.server.digest()))
            .collect(),
        rules: plan
            .moved
            .iter()
            .flat_map(|m| m.rules.iter().map(|r| r.id.clone()))
            .collect(),
    });
    record::write(paths, &records)?;
    let mode = if let Some(mode) = mode {
        mode
    } else {
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).map_err(|cause| {
                InstallError::File(FileError::Write {
                    path: dir.to_path_buf(),
                    cause,
                })
            })?;
        }
        0o600
    };
    write(file, plan.client_after.as_bytes(), mode)?;
    Ok(Installed {
        backup: backup.map(|b| b.path),
        trusted,
    })
}

/// What `uninstall` would do; nothing is written until [`apply_uninstall`].
#[derive(Debug, Clone)]
pub struct UninstallPlan {
    pub target: Target,
    pub record: Record,
    pub client_before: Option<String>,
    /// The backup's bytes; `None`: install created the file, so it is removed.
    pub client_after: Option<Vec<u8>>,
    /// The mcp-warden file install added the servers to (the user config, or the
    /// workspace's `mcp-warden.toml`).
    pub config_path: PathBuf,
    pub layer: Layer,
    pub config_before: Option<String>,
    pub config_after: Option<String>,
    /// Servers taken out of `config.toml`.
    pub removed: Vec<String>,
    /// Servers left in `config.toml` because they changed since install.
    pub changed: Vec<String>,
    /// Policy rules install added, left because they were edited since (a key added).
    pub changed_rules: Vec<String>,
    /// Servers left because another recorded install relies on them.
    pub shared: Vec<String>,
    /// Earlier installs into the same file still recorded.
    pub earlier: usize,
    /// The mode the client file is restored with: its own, from before install.
    pub restore_mode: u32,
}

impl UninstallPlan {
    /// The unified diffs of both files.
    #[must_use]
    pub fn diffs(&self) -> String {
        let after = self
            .client_after
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let mut out = diff(
            &self.target.file,
            self.client_before.as_deref(),
            after.as_deref(),
        );
        let config = diff(
            &self.config_path,
            self.config_before.as_deref(),
            self.config_after.as_deref(),
        );
        if !config.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&config);
        }
        out
    }
}

/// Works out what `uninstall` would do for the newest install into `target`'s file.
/// `user_config` is the user `config.toml` (the servers' file unless the record names a
/// workspace's). `force`: restore even when the file changed since install.
pub fn plan_uninstall(
    paths: &Paths,
    target: Target,
    user_config: &Path,
    force: bool,
) -> Result<UninstallPlan, InstallError> {
    let records = record::read(paths)?;
    let file = &target.file;
    let mine: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.file() == *file)
        .map(|(i, _)| i)
        .collect();
    let Some(&index) = mine.last() else {
        return Err(InstallError::NotInstalled {
            path: file.clone(),
            backups: backup::all_of(paths, file),
        });
    };
    let record = records[index].clone();
    let client_before = read_optional(file)?;
    let written = client_before
        .as_deref()
        .map(|t| crate::config::trust::digest(t.as_bytes()));
    if written.as_deref() != Some(record.written.as_str()) && !force {
        return Err(InstallError::ChangedSinceInstall {
            path: file.clone(),
            backup: record.backup(),
        });
    }
    let restore = match record.backup() {
        Some(b) => Some(backup::read(&b, record.backup_digest.as_deref())?),
        None => None,
    };
    // Records made before the mode was kept: the backup had the file's mode then.
    let restore_mode = record
        .mode
        .or_else(|| restore.as_ref().map(|(_, mode)| *mode))
        .unwrap_or(0o600);
    let client_after = restore.map(|(bytes, _)| bytes);
    let (config_path, layer) = match &record.config {
        None => (user_config.to_path_buf(), Layer::User),
        Some(file) => {
            let file = PathBuf::from(file);
            let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
            // Trusted before this edit: trusted after it (the user asked for it).
            let trust = is_trusted(paths, &root);
            (file, Layer::Workspace { root, trust })
        }
    };
    let config_path = config_path.as_path();
    let config_before = read_optional(config_path)?;
    let mut config = UserConfig::parse(config_path, config_before.as_deref())?;
    let others: Vec<&Record> = records
        .iter()
        .enumerate()
        // Other installs into the same mcp-warden file.
        .filter(|(i, r)| *i != index && r.config == record.config)
        .map(|(_, r)| r)
        .collect();
    let (mut removed, mut changed, mut shared) = (Vec::new(), Vec::new(), Vec::new());
    for (table, digest) in &record.servers {
        if others
            .iter()
            .any(|r| r.servers.contains_key(table) || r.uses.contains_key(table))
        {
            shared.push(table.clone());
            continue;
        }
        match config.server(table) {
            None => {}
            Some(Some(def)) if def.digest() == *digest => {
                config.remove(table);
                removed.push(table.clone());
            }
            Some(_) => changed.push(table.clone()),
        }
    }
    let mut changed_rules = Vec::new();
    for id in &record.rules {
        if others.iter().any(|r| r.rules.contains(id)) {
            continue;
        }
        match config.rule(id) {
            // Still in the shape install writes: its own.
            Some(Some(_)) => config.remove_rule(id),
            Some(None) => changed_rules.push(id.clone()),
            None => {}
        }
    }
    let config_after = config_before.as_ref().map(|_| config.text());
    Ok(UninstallPlan {
        target,
        record,
        client_before,
        client_after,
        config_path: config_path.to_path_buf(),
        layer,
        config_before,
        config_after,
        removed,
        changed,
        changed_rules,
        shared,
        earlier: mine.len() - 1,
        restore_mode,
    })
}

/// Carries out `plan`: the client file restored (or removed), the servers taken out of
/// `config.toml`, the record and the backup dropped.
pub fn apply_uninstall(paths: &Paths, plan: &UninstallPlan) -> Result<(), InstallError> {
    let _lock = lock(paths)?;
    let file = &plan.target.file;
    unchanged(file, plan.client_before.as_deref())?;
    unchanged(&plan.config_path, plan.config_before.as_deref())?;
    match (&plan.client_after, plan.record.backup()) {
        // The bytes read (and checked) when the plan was made; never read again.
        (Some(bytes), Some(_)) => write(file, bytes, plan.restore_mode)?,
        _ => match fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(cause) => {
                return Err(InstallError::File(FileError::Write {
                    path: file.clone(),
                    cause,
                }));
            }
        },
    }
    if let Some(after) = &plan.config_after
        && plan.config_before.as_deref() != Some(after.as_str())
    {
        let mode = match plan.layer {
            Layer::User => 0o600,
            Layer::Workspace { .. } => fs::symlink_metadata(&plan.config_path)
                .ok()
                .map_or(0o644, |m| permissions(&m)),
        };
        write(&plan.config_path, after.as_bytes(), mode)?;
        retrust(paths, &plan.layer)?;
    }
    let mut records = record::read(paths)?;
    if let Some(i) = records.iter().rposition(|r| *r == plan.record) {
        records.remove(i);
    }
    record::write(paths, &records)?;
    if let Some(backup) = plan.record.backup() {
        // The file now holds exactly these bytes; the copy has done its job.
        let _ = fs::remove_file(backup);
    }
    Ok(())
}

/// A unified diff of a file's text before and after (`None`: no file); empty when equal.
#[must_use]
pub fn diff(path: &Path, before: Option<&str>, after: Option<&str>) -> String {
    if before == after {
        return String::new();
    }
    let label = |text: Option<&str>| match text {
        Some(_) => path.display().to_string(),
        None => "/dev/null".to_owned(),
    };
    let (old, new) = (before.unwrap_or(""), after.unwrap_or(""));
    let mut text = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&label(before), &label(after))
        .to_string();
    while text.ends_with('\n') {
        text.pop();
    }
    text
}

/// The file's text; `None` when it does not exist. Not UTF-8 is an error with the
/// position of the first bad byte.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, InstallError> {
    match fs::read(path) {
        Ok(bytes) => crate::config::error::utf8_text(path, bytes)
            .map(Some)
            .map_err(InstallError::Invalid),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(InstallError::File(FileError::Read {
            path: path.to_path_buf(),
            cause,
        })),
    }
}

fn unchanged(path: &Path, expected: Option<&str>) -> Result<(), InstallError> {
    if read_optional(path)?.as_deref() == expected {
        Ok(())
    } else {
        Err(InstallError::ChangedMeanwhile {
            path: path.to_path_buf(),
        })
    }
}

fn utf8(path: &Path) -> Result<&str, InstallError> {
    path.to_str().ok_or_else(|| InstallError::NotUnicode {
        path: path.to_path_buf(),
    })
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    crate::durable::replace(path, bytes, mode).map_err(|cause| {
        InstallError::File(FileError::Write {
            path: path.to_path_buf(),
            cause,
        })
    })
}

#[cfg(unix)]
fn permissions(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permissions(_meta: &fs::Metadata) -> u32 {
    0o600
}

/// Creates the directory `path` lives in (mode 0700 when it is `private`).
fn create_dir(private: &Path, path: &Path) -> Result<(), InstallError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    if dir == private {
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    }
    builder.create(dir).map_err(|cause| {
        InstallError::File(FileError::Write {
            path: dir.to_path_buf(),
            cause,
        })
    })
}

/// Holds `installs.toml.lock` in the data dir (created 0700) until dropped.
fn lock(paths: &Paths) -> Result<crate::durable::ExclusiveLock, InstallError> {
    let lock = paths.data_dir.join("installs.toml.lock");
    create_dir(&paths.data_dir, &lock)?;
    crate::durable::lock_exclusive(&lock, 0o600)
        .map_err(|cause| InstallError::File(FileError::Write { path: lock, cause }))
}

pub use backup::BACKUP_INFIX;

#[cfg(test)]
mod tests {
    use super::*;
    use client::{Style, Syntax};

    const EXE: &str = "/opt/mcp-warden";

    fn cursor() -> Target {
        Target {
            client: Client::Cursor,
            scope: Scope::User,
            file: PathBuf::from("/h/.cursor/mcp.json"),
            syntax: Syntax::Json,
            container: vec!["mcpServers".into()],
            style: Style::Plain,
            project: None,
        }
    }

    const CURSOR: &str = r#"{
  "mcpServers": {
    "gh": {"command": "npx", "args": ["-y", "gh@1"], "env": {"TOKEN": "t"}},
    "remote": {"url": "https://r"},
    "fs": {"command": "fs"}
  },
  "x": 1
}
"#;

    fn plan(config: Option<&str>) -> Result<InstallPlan, InstallError> {
        plan_install_from(
            cursor(),
            EXE,
            Some(CURSOR),
            &Destination::user(Path::new("/c.toml")),
            config,
        )
    }

    #[test]
    fn install_moves_stdio_servers_and_keeps_remote_ones() {
        let p = plan(None).expect("plan");
        assert_eq!(
            p.moved.iter().map(|m| m.table.as_str()).collect::<Vec<_>>(),
            ["gh", "fs"]
        );
        assert_eq!(p.remote, ["remote"]);
        assert_eq!(
            p.client_after,
            "{\n  \"mcpServers\": {\n    \"mcp-warden\": {\n      \"command\": \"/opt/mcp-warden\",\n      \"args\": [\"serve\"]\n    },\n    \"remote\": {\"url\": \"https://r\"}\n  },\n  \"x\": 1\n}\n"
        );
        let config = p.config_after.clone().unwrap_or_default();
        assert!(
            config.contains("[servers.gh]\ncommand = \"npx\""),
            "{config}"
        );
        assert!(!p.changes_nothing());
        // Installing into the result changes nothing.
        let again = plan_install_from(
            cursor(),
            EXE,
            Some(&p.client_after),
            &Destination::user(Path::new("/c.toml")),
            Some(&config),
        )
        .expect("plan");
        assert!(again.ours_present && again.moved.is_empty());
        assert!(again.changes_nothing());
    }

    #[test]
    fn the_same_definition_already_in_the_config_is_fine_a_different_one_is_not() {
        let same = "[servers.fs]\ncommand = \"fs\"\n";
        let p = plan(Some(same)).expect("plan");
        assert!(p.moved.iter().any(|m| m.table == "fs" && m.already));
        let other = "[servers.fs]\ncommand = \"other\"\n";
        let err = plan(Some(other)).expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "server `fs` is already defined differently in `/c.toml`"
        );
    }

    #[test]
    fn an_entry_named_like_ours_that_is_remote_is_refused() {
        let text = r#"{"mcpServers": {"mcp-warden": {"url": "https://x"}}}"#;
        let err = plan_install_from(
            cursor(),
            EXE,
            Some(text),
            &Destination::user(Path::new("/c")),
            None,
        )
        .expect_err("taken");
        assert!(matches!(err, InstallError::NameTaken { .. }));
    }

    #[test]
    fn names_that_map_to_the_same_table_get_suffixes() {
        let text = r#"{"mcpServers": {"a.b": {"command": "x"}, "a b": {"command": "y"}}}"#;
        let p = plan_install_from(
            cursor(),
            EXE,
            Some(text),
            &Destination::user(Path::new("/c")),
            None,
        )
        .expect("plan");
        assert_eq!(
            p.moved.iter().map(|m| m.table.as_str()).collect::<Vec<_>>(),
            ["a-b", "a-b-2"]
        );
    }

    #[test]
    fn an_allow_list_writes_no_allow_rule_into_a_layer_that_denies_by_default() {
        let text = r#"{"mcpServers": {"x": {"command": "x", "includeTools": ["a"]}}}"#;
        let plan_with = |config: Option<&str>| {
            plan_install_from(
                cursor(),
                EXE,
                Some(text),
                &Destination::user(Path::new("/c")),
                config,
            )
            .expect("plan")
            .config_after
            .unwrap_or_default()
        };
        let open = plan_with(None);
        assert!(open.contains("\"x.included-tools\"") && open.contains("\"x.other-tools\""));
        let closed = plan_with(Some("[policy]\ndefault = \"deny\"\n"));
        assert!(!closed.contains("x.included-tools"), "{closed}");
        assert!(closed.contains("\"x.other-tools\""), "{closed}");
    }

    #[test]
    fn diffs_are_unified_with_the_paths() {
        let d = diff(Path::new("/f"), Some("a\nb\n"), Some("a\nc\n"));
        assert_eq!(d, "--- /f\n+++ /f\n@@ -1,2 +1,2 @@\n a\n-b\n+c");
        assert!(diff(Path::new("/f"), None, Some("x\n")).starts_with("--- /dev/null\n+++ /f"));
        assert!(diff(Path::new("/f"), Some("x"), Some("x")).is_empty());
    }
}
