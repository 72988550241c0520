//! `[servers.NAME.sandbox]` once validated and its variables expanded: what the user
//! asked for. What the machine can give is decided later, in [`super::plan`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which runtime's files a server may read besides its own (`sandbox.preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Guessed from the command (and a script's `#!` line).
    #[default]
    Auto,
    Node,
    Python,
    /// Only the system's libraries, the program and what the table lists.
    None,
}

impl Preset {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Node => "node",
            Self::Python => "python",
            Self::None => "none",
        }
    }
}

/// Which user a server runs as when mcp-warden runs as root (`sandbox.user`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum UserChoice {
    /// A uid of its own per server, from [`super::uid::AUTO_UID_BASE`] on.
    #[default]
    Auto,
    /// A user of this machine, by name (`"root"` keeps root).
    Named(String),
}

/// A server's sandbox settings, paths absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSettings {
    pub preset: Preset,
    /// Read-only paths beyond the preset and the workspace.
    pub fs_read: Vec<PathBuf>,
    /// Read-write paths (default: the workspace, when there is one).
    pub fs_write: Vec<PathBuf>,
    /// `false`: no network at all (except `network_ports`).
    pub network: bool,
    /// With `network = false`: TCP ports the server may still connect to.
    pub network_ports: Vec<u16>,
    pub user: UserChoice,
    /// Refuse to start the server when a layer cannot be applied.
    pub required: bool,
    /// Largest data segment (`RLIMIT_DATA`), bytes.
    pub memory: Option<u64>,
    /// CPU time (`RLIMIT_CPU`).
    pub cpu_time: Option<Duration>,
}

impl Default for SandboxSettings {
    /// The defaults of the SPEC, for a server with no workspace to write to.
    fn default() -> Self {
        Self {
            preset: Preset::Auto,
            fs_read: Vec::new(),
            fs_write: Vec::new(),
            network: true,
            network_ports: Vec::new(),
            user: UserChoice::Auto,
            required: false,
            memory: None,
            cpu_time: None,
        }
    }
}

/// Parses a size written as a whole number and an optional unit: `512M`, `2G`, `1GiB`,
/// `4096` (bytes). Units are powers of 1024 either way, as `ulimit` reads them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| "it does not start with a whole number".to_owned())?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KB" | "KiB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        other => return Err(format!("unknown unit `{other}`")),
    };
    number
        .checked_mul(1 << shift)
        .filter(|&n| n > 0)
        .ok_or_else(|| "it is zero or too large".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ulimit() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1 KB"), Ok(1024));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5T").is_err());
        assert!(parse_size("0").is_err());
    }
}
