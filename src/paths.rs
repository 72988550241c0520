//! Where mcp-warden keeps its files: the managed policy, the user config dir and the
//! user data dir. Only this module reads `MCP_WARDEN_HOME` and friends.

use std::path::{Path, PathBuf};

/// Replaces both user dirs: `DIR/config.toml` and `DIR/data/...`.
pub const HOME_VAR: &str = "MCP_WARDEN_HOME";
/// Replaces `/etc/mcp-warden` (for packaging and tests; `doctor` reports it when set).
pub const MANAGED_VAR: &str = "MCP_WARDEN_MANAGED_DIR";
const MANAGED_DEFAULT: &str = "/etc/mcp-warden";

/// The directories one invocation works with.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Holds `policy.toml`, the organisation's layer.
    pub managed_dir: PathBuf,
    /// Holds `config.toml`, the user's layer.
    pub config_dir: PathBuf,
    /// Holds `trust.toml`, `logs/`, `audit/` and machine-specific state.
    pub data_dir: PathBuf,
    /// The user's home directory: `${home}`, and where workspace discovery stops.
    pub home: PathBuf,
}

impl Paths {
    /// Finds the directories from the environment and the platform's conventions.
    #[must_use]
    pub fn from_env() -> Self {
        let home = directories::BaseDirs::new()
            .map_or_else(|| PathBuf::from("/"), |b| b.home_dir().to_path_buf());
        let managed_dir = std::env::var_os(MANAGED_VAR)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(MANAGED_DEFAULT), PathBuf::from);
        if let Some(dir) = std::env::var_os(HOME_VAR).filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            return Self {
                managed_dir,
                data_dir: dir.join("data"),
                config_dir: dir,
                home,
            };
        }
        let (config_dir, data_dir) = directories::ProjectDirs::from("", "", "mcp-warden")
            .map_or_else(
                || {
                    (
                        home.join(".config/mcp-warden"),
                        home.join(".local/share/mcp-warden"),
                    )
                },
                |p| (p.config_dir().to_path_buf(), p.data_dir().to_path_buf()),
            );
        Self {
            managed_dir,
            config_dir,
            data_dir,
            home,
        }
    }

    /// The managed layer's file.
    #[must_use]
    pub fn managed_policy(&self) -> PathBuf {
        self.managed_dir.join("policy.toml")
    }

    /// The user layer's file.
    #[must_use]
    pub fn user_config(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// The trust store.
    #[must_use]
    pub fn trust_file(&self) -> PathBuf {
        self.data_dir.join("trust.toml")
    }

    /// Where `serve` writes its operator log (upstream stderr included).
    #[must_use]
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// The workspace file's name.
pub const WORKSPACE_FILE: &str = "mcp-warden.toml";
/// The lock file's name, beside the workspace file.
pub const LOCK_FILE: &str = "mcp-warden.lock";

/// The workspace file inside `root`.
#[must_use]
pub fn workspace_file(root: &Path) -> PathBuf {
    root.join(WORKSPACE_FILE)
}
