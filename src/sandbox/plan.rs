//! Turning a server's settings into the plan its launcher applies: who it runs as,
//! what it may read and write, whether it may reach the network, its limits. Built in
//! `serve` (which knows the config and the workspace), carried to the launcher as
//! JSON, applied there in [`super::apply`].

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::presets::{self, SYSTEM_READ, SYSTEM_WRITE};
use super::settings::SandboxSettings;
use super::uid::{Ids, UserError, ids_for};

/// Where servers run as another uid keep their private HOME and TMPDIR: the data dir
/// is private to mcp-warden's user (and usually under root's home), out of their reach.
pub const DROPPED_BASE: &str = "/tmp/mcp-warden-sandbox";

/// Open files a server may have (capped by mcp-warden's own hard limit).
pub const OPEN_FILES: u64 = 8192;

/// What the launcher applies to one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub server: String,
    /// Refuse to start when a layer is missing.
    pub required: bool,
    /// Drop to these ids; `None` with `user_note` saying why not.
    pub ids: Option<Ids>,
    pub user_note: String,
    /// Read and execute.
    pub read: Vec<PathBuf>,
    /// Read and write.
    pub write: Vec<PathBuf>,
    pub network: bool,
    pub network_ports: Vec<u16>,
    pub open_files: u64,
    pub memory: Option<u64>,
    pub cpu_seconds: Option<u64>,
    /// The server's private HOME and TMPDIR (made by the launcher after the uid drop).
    pub home: PathBuf,
    /// The configured working directory; `None`: the private HOME, so code a
    /// repository ships (`node_modules/`, a Python package of the server's name) is
    /// never picked up from the workspace by accident (SPEC "Servers").
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    pub tmp: PathBuf,
    /// The preset in effect, for reports.
    pub runtime: Option<String>,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("sandbox.user: {0}")]
    User(#[from] UserError),
    #[error("cannot prepare the private directory `{path}`: {why}")]
    Dir { path: PathBuf, why: String },
}

/// One server as the sandbox sees it: its program (resolved), what it is started with,
/// and its `[servers.NAME.sandbox]` table. The sandbox takes this rather than the
/// configuration's server type; configuration converts at its edge
/// (`ServerConfig::sandboxed`), so this room does not depend on `config/`.
#[derive(Debug, Clone, Copy)]
pub struct Server<'a> {
    pub name: &'a str,
    /// The program as resolved with the server's own PATH.
    pub program: &'a Path,
    pub args: &'a [String],
    /// The configured working directory.
    pub cwd: Option<&'a Path>,
    /// The server's own `env.PATH`, when it sets one (else mcp-warden's is used).
    pub path: Option<&'a str>,
    pub settings: &'a SandboxSettings,
}

/// Makes the plan for `server`. `workspace` is readable by default; `state_dir` holds
/// private directories of servers that keep mcp-warden's uid.
pub fn prepare(
    server: &Server<'_>,
    workspace: Option<&Path>,
    state_dir: &Path,
) -> Result<Plan, PlanError> {
    let settings = server.settings;
    let name = server.name;
    let root = nix::unistd::geteuid().is_root();
    let (ids, user_note) = if root {
        match ids_for(name, &settings.user)? {
            Some(ids) => (Some(ids), format!("uid {} gid {}", ids.uid, ids.gid)),
            None => (None, "stays root (`user = \"root\"`)".to_owned()),
        }
    } else {
        (
            None,
            "mcp-warden is not root: the server runs as this user".to_owned(),
        )
    };
    let private = match ids {
        Some(ids) => dropped_dir(Path::new(DROPPED_BASE), name, ids)?,
        None => state_dir.join("servers").join(name),
    };
    if ids.is_none() {
        make_dir(&private, 0o700)?;
    }
    let home_dir = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf());
    let path_env = server
        .path
        .map(std::ffi::OsString::from)
        .or_else(|| std::env::var_os("PATH"));
    let cwd = server.cwd;
    let home = home_dir.as_deref().unwrap_or(Path::new("/root"));
    let needs = presets::needs(
        settings.preset,
        server.program,
        server.args,
        cwd,
        path_env.as_deref(),
        home,
    );
    let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
    read.extend(needs.read);
    read.extend(workspace.map(Path::to_path_buf));
    // A working directory is readable, unless it is `/` or the home directory (or
    // above it): a `cwd` is not a grant of everything under it; `fs_read` is.
    read.extend(
        cwd.filter(|c| *c != Path::new("/") && !home.starts_with(c))
            .map(Path::to_path_buf),
    );
    read.extend(settings.fs_read.iter().cloned());
    let mut write: Vec<PathBuf> = SYSTEM_WRITE.iter().map(PathBuf::from).collect();
    write.push(private.clone());
    write.extend(settings.fs_write.iter().cloned());
    read.sort();
    read.dedup();
    write.sort();
    write.dedup();
    Ok(Plan {
        server: name.to_owned(),
        required: settings.required,
        ids,
        user_note,
        read,
        write,
        network: settings.network,
        network_ports: settings.network_ports.clone(),
        open_files: OPEN_FILES,
        memory: settings.memory,
        cpu_seconds: settings.cpu_time.map(|d| d.as_secs().max(1)),
        home: private.join("home"),
        tmp: private.join("tmp"),
        cwd: server.cwd.map(Path::to_path_buf),
        runtime: needs.runtime.map(str::to_owned),
    })
}

/// `<base>/<server>.<uid>`, owned by the server's ids. The base is root's and not
/// writable by others, so a server cannot swap its directory for a link; the
/// directory itself is checked not to be one before it is handed over.
fn dropped_dir(base: &Path, server: &str, ids: Ids) -> Result<PathBuf, PlanError> {
    make_dir(base, 0o711)?;
    let meta = std::fs::symlink_metadata(base).map_err(|e| dir_error(base, &e.to_string()))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(dir_error(
            base,
            "it is not a directory owned by root and closed to others; remove it",
        ));
    }
    // The umask may have narrowed the mode; every server's uid must be able to enter.
    if meta.mode() & 0o111 != 0o111 {
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| dir_error(base, &e.to_string()))?;
    }
    let dir = base.join(format!("{server}.{}", ids.uid));
    make_dir(&dir, 0o700)?;
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| dir_error(&dir, &e.to_string()))?;
    if !meta.is_dir() {
        return Err(dir_error(&dir, "it is not a directory"));
    }
    std::os::unix::fs::lchown(&dir, Some(ids.uid), Some(ids.gid))
        .map_err(|e| dir_error(&dir, &e.to_string()))?;
    Ok(dir)
}

fn make_dir(path: &Path, mode: u32) -> Result<(), PlanError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| dir_error(path, &e.to_string()))
}

fn dir_error(path: &Path, why: &str) -> PlanError {
    PlanError::Dir {
        path: path.to_owned(),
        why: why.to_owned(),
    }
}
