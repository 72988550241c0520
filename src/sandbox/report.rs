//! What the launcher could apply, layer by layer: written by the launcher as one line
//! on the server's stderr just before it execs the server, read back by `serve`,
//! `doctor` and the logs. A layer the machine cannot apply is said, never hidden.

use serde::{Deserialize, Serialize};

/// Starts the report line on the server's stderr. Only the first stderr line of an
/// instance can be the report: the server has not started before it is written.
pub const MARKER: &str = "mcp-warden-sandbox: ";

/// The launcher's exit code when it refuses to start a server (`required = true` and
/// a layer is missing, or a uid drop that did not hold).
pub const REFUSED_EXIT: u8 = 126;

/// One layer of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Scrubbed environment, private HOME and TMPDIR.
    Environment,
    /// A session of its own: no controlling terminal.
    Session,
    /// Inherited file descriptors closed.
    Descriptors,
    NoNewPrivs,
    /// The launcher (which holds the server's environment) cannot be read by others.
    NotDumpable,
    /// Open files, core dumps, memory and CPU limits.
    Limits,
    /// A uid and gid of its own (when mcp-warden runs as root).
    User,
    /// A PID namespace (else a subreaper) so no descendant outlives the server.
    Processes,
    /// Landlock file-system rules.
    Filesystem,
    /// No network (an empty network namespace, or Landlock TCP rules plus seccomp).
    Network,
    /// Landlock scoping: no signals to, no abstract sockets of, processes outside.
    Scope,
}

impl Layer {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::Session => "session",
            Self::Descriptors => "descriptors",
            Self::NoNewPrivs => "no_new_privs",
            Self::NotDumpable => "not_dumpable",
            Self::Limits => "limits",
            Self::User => "user",
            Self::Processes => "processes",
            Self::Filesystem => "filesystem",
            Self::Network => "network",
            Self::Scope => "scope",
        }
    }
}

/// How one layer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Applied,
    /// Configured (or on by default) but this machine could not apply it.
    Missing,
    /// Not asked for (`network = true`), or nothing to do (not root: no uid to drop).
    Off,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerReport {
    pub layer: Layer,
    pub state: State,
    /// How it was applied, or why not.
    pub detail: String,
}

/// Every layer, in the order applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub layers: Vec<LayerReport>,
    /// Set when the launcher refused to start the server, with why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl Report {
    pub fn push(&mut self, layer: Layer, state: State, detail: impl Into<String>) {
        self.layers.push(LayerReport {
            layer,
            state,
            detail: detail.into(),
        });
    }

    /// The layers that were wanted and could not be applied.
    pub fn missing(&self) -> impl Iterator<Item = &LayerReport> {
        self.layers.iter().filter(|l| l.state == State::Missing)
    }

    /// The line the launcher writes (with the marker, without the newline).
    #[must_use]
    pub fn to_line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        format!("{MARKER}{json}")
    }

    /// A report line read back; `None` when `line` is not one.
    #[must_use]
    pub fn from_line(line: &str) -> Option<Self> {
        serde_json::from_str(line.strip_prefix(MARKER)?).ok()
    }

    /// One line for people: what is missing, or that every layer holds.
    #[must_use]
    pub fn summary(&self) -> String {
        let missing: Vec<String> = self
            .missing()
            .map(|l| format!("{} ({})", l.layer.name(), l.detail))
            .collect();
        if missing.is_empty() {
            let applied: Vec<&str> = self
                .layers
                .iter()
                .filter(|l| l.state == State::Applied)
                .map(|l| l.layer.name())
                .collect();
            format!("sandbox applied: {}", applied.join(", "))
        } else {
            format!("sandbox layers missing: {}", missing.join("; "))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_line() {
        let mut report = Report::default();
        report.push(Layer::Filesystem, State::Applied, "landlock ABI 7");
        report.push(Layer::Network, State::Missing, "no network namespace");
        let back = Report::from_line(&report.to_line()).unwrap();
        assert_eq!(back, report);
        assert_eq!(
            back.summary(),
            "sandbox layers missing: network (no network namespace)"
        );
        assert!(Report::from_line("hello").is_none());
    }
}
