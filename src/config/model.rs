//! The validated configuration: what `serve` and the other commands work with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Which file a setting or server came from: the policy's own type (its rules are
/// per layer), used by configuration as it is.
pub use crate::policy::Layer;

/// A server's table name (`[servers.NAME]`): `^[A-Za-z0-9_-]{1,64}$`. Shared, not
/// copied: the session takes a clone of it for every call it forwards.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerName(std::sync::Arc<str>);

impl ServerName {
    /// Checks the name; `None` when it has characters outside `[A-Za-z0-9_-]` or is
    /// empty or longer than 64.
    #[must_use]
    pub fn new(name: &str) -> Option<Self> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| Self(name.into()))
    }

    /// The name as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The prefix of a server's exposed names. Empty means "no prefix". A non-empty
/// namespace is `[A-Za-z0-9-]` words joined by single `_`, so it can never contain the
/// `__` separator or end in `_` (which would make `a_` + `_b` ambiguous). It carries the
/// server's name budget (`max_name_len`, 64 unless set), so every place that maps a
/// name (`crate::names`) maps it the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    name: String,
    max_len: usize,
}

impl Namespace {
    /// Checks the namespace; `None` when it would be ambiguous next to `__`.
    #[must_use]
    pub fn new(ns: &str) -> Option<Self> {
        let ok = ns.is_empty()
            || (ns.len() <= 48
                && ns.split('_').all(|w| {
                    !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }));
        ok.then(|| Self {
            name: ns.to_owned(),
            max_len: crate::names::MAX_EXPOSED_LEN,
        })
    }

    /// The same namespace with exposed names of at most `max_len` characters.
    #[must_use]
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The namespace as written (may be empty).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The longest exposed name of this server.
    #[must_use]
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

/// One upstream server, variables expanded, ready to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub name: ServerName,
    /// The layer the server was taken from.
    pub layer: Layer,
    /// The command, variables expanded.
    pub command: String,
    /// The arguments, variables expanded.
    pub args: Vec<String>,
    /// Command and arguments exactly as written (the server's identity for pinning).
    pub raw_command: String,
    pub raw_args: Vec<String>,
    /// Set for the child, values expanded.
    pub env: BTreeMap<String, String>,
    /// Copied from mcp-warden's own environment when set there.
    pub env_passthrough: Vec<String>,
    /// The child's working directory (default: the workspace, else mcp-warden's own).
    pub cwd: Option<PathBuf>,
    pub namespace: Namespace,
    /// How long one request to this server may take.
    pub request_timeout: Duration,
    /// May the server ask the user questions (`elicitation/create`)? Default yes.
    pub elicitation: bool,
    /// May the server ask the client's model (`sampling/createMessage`)? Default no.
    pub sampling: bool,
    /// `[servers.NAME.sandbox]`, paths expanded.
    pub sandbox: crate::sandbox::SandboxSettings,
}

impl ServerConfig {
    /// The server as the sandbox sees it, its program resolved to `program`: the one
    /// place configuration turns into the sandbox's own type.
    #[must_use]
    pub fn sandboxed<'a>(&'a self, program: &'a Path) -> crate::sandbox::plan::Server<'a> {
        crate::sandbox::plan::Server {
            name: self.name.as_str(),
            program,
            args: &self.args,
            cwd: self.cwd.as_deref(),
            path: self.env.get("PATH").map(String::as_str),
            settings: &self.sandbox,
        }
    }
}

/// Whether the user trusts a workspace at its current file digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustState {
    /// Trusted, and neither `mcp-warden.toml` nor `mcp-warden.lock` changed since.
    Trusted,
    /// Never trusted (or trust withdrawn).
    NotTrusted,
    /// Trusted once, but a file changed since; `changed` names the files.
    Changed { changed: Vec<PathBuf> },
}

impl TrustState {
    #[must_use]
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::Trusted)
    }
}

/// The workspace this invocation works in.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory that holds `mcp-warden.toml` (canonicalized), or the directory
    /// given with `--workspace` even without one.
    pub root: PathBuf,
    /// `root/mcp-warden.toml`, when it exists.
    pub file: Option<PathBuf>,
    pub trust: TrustState,
    /// `sha256:<hex>` of the `mcp-warden.toml` bytes this configuration was parsed
    /// from (`None`: no file). A later reading of the lock is judged against it, never
    /// against a fresh read of the file (SPEC "Reading the files").
    pub config_digest: Option<String>,
}

/// How the workspace is to be found; first that applies (SPEC "Workspace discovery").
#[derive(Debug, Clone)]
pub enum WorkspaceChoice {
    /// `--workspace DIR`: taken as it is, file or not.
    Flag(PathBuf),
    /// The client's roots: the first that holds, or lies below, an `mcp-warden.toml`;
    /// when none does, fall back to `cwd`.
    Roots { roots: Vec<PathBuf>, cwd: PathBuf },
    /// The current directory, walking up to the home directory or `/`.
    Cwd(PathBuf),
}

/// A server that is configured but will not be started, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub server: String,
    pub layer: Layer,
    pub reason: String,
}

/// `pinning.mode`: what happens to a tool definition that is new or changed since it
/// was pinned (SPEC "Pinning").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinningMode {
    /// New and changed definitions are held until `mcp-warden pin` (the default).
    Strict,
    /// Trust on first use: new definitions are pinned when first seen; changed and
    /// flagged ones are held.
    Tofu,
    /// Nothing is held; scan findings are only logged.
    Off,
}

impl PinningMode {
    /// Every mode, strictest first.
    pub const ALL: [Self; 3] = [Self::Strict, Self::Tofu, Self::Off];

    /// The name as written in a configuration file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Tofu => "tofu",
            Self::Off => "off",
        }
    }

    /// How strict the mode is, for merging layers: higher is stricter
    /// (`strict` > `tofu` > `off`).
    #[must_use]
    pub fn strictness(self) -> u8 {
        match self {
            Self::Strict => 2,
            Self::Tofu => 1,
            Self::Off => 0,
        }
    }

    /// The stricter of two modes.
    #[must_use]
    pub fn stricter(self, other: Self) -> Self {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }
}

impl std::fmt::Display for PinningMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[pinning]`, merged over the layers (see [`super::layers::merge_pinning`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinningSettings {
    /// What happens to new and changed definitions. Default `strict`.
    pub mode: PinningMode,
    /// Whether a call to a held tool asks the user (through the client's elicitation)
    /// to review and pin it. Default `false`.
    pub ask: bool,
}

impl Default for PinningSettings {
    fn default() -> Self {
        Self {
            mode: PinningMode::Strict,
            ask: false,
        }
    }
}

/// The merged configuration of every layer. `Default` is what no configuration file at
/// all gives: no workspace, no servers, default settings.
#[derive(Debug, Clone, Default)]
pub struct Effective {
    pub workspace: Option<Workspace>,
    /// The servers to start: enabled, trusted, variables resolved; sorted by name.
    pub servers: Vec<ServerConfig>,
    /// Servers configured but not started (disabled, untrusted workspace, a variable
    /// that cannot be resolved).
    pub skipped: Vec<Skipped>,
    /// Every configuration file that was read (for reload watching).
    pub files: Vec<PathBuf>,
    /// `[pinning]`, merged over the layers.
    pub pinning: PinningSettings,
    /// `[policy]`, `[labels]`, `[flows]`, `[output]` and `[limits]`: every layer's
    /// rules (managed → user → workspace) and the merged settings (see
    /// [`super::layers::build_policy`]).
    pub policy: crate::policy::PolicySet,
    /// `[audit.syslog]`: the managed policy's, else the user's (see
    /// [`crate::audit::syslog`]).
    pub audit_syslog: Option<crate::audit::syslog::SyslogTarget>,
    /// What the load left out, and why, for the person and the client (a broken
    /// untrusted workspace file).
    pub notes: Vec<String>,
}
