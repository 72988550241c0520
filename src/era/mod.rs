//! The two eras of MCP and the adapter between them (issue 15, `docs/dual-era.md`).
//!
//! The legacy era (2024-11-05 … 2025-11-25) opens a connection with `initialize`; the
//! modern era (2026-07-28) carries version, capabilities and client info in every
//! request's `params._meta` and has no handshake. mcp-warden speaks both on both
//! edges: the era is per request at the client edge (a request with the modern
//! envelope is modern) and per process at the upstream edge (one `server/discover`
//! probe per start). Everything here is pure (no I/O), so the session's edges stay
//! thin and the rules are unit-tested: [`envelope`] reads a client request's era,
//! [`meta`] edits `_meta` and results on the raw bytes, [`probe`] reads an upstream's
//! answer to the probe, [`errors`] maps error codes between the eras.

pub mod envelope;
pub mod errors;
pub mod meta;
pub mod mrtr;
pub mod probe;
pub mod state;
pub mod subscriptions;
pub mod task_shapes;
pub mod tasks;

/// The legacy revisions mcp-warden speaks, newest first.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// The modern revisions mcp-warden speaks, newest first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// The revision that allowed JSON-RPC batches.
pub const BATCH_VERSION: &str = "2025-03-26";

/// The prefix of the `_meta` keys the protocol reserves for itself.
pub const RESERVED_PREFIX: &str = "io.modelcontextprotocol/";
/// `_meta` key: the request's protocol version (required in a modern request).
pub const KEY_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: the client's capabilities (required in a modern request).
pub const KEY_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: who the client is.
pub const KEY_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key: the lowest log level the client wants for this request.
pub const KEY_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of a result: who the server is.
pub const KEY_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// The per-request keys of the modern envelope: set by mcp-warden toward a modern
/// upstream, removed toward a legacy one (the Python SDK's dual server refuses an
/// enveloped request on a connection opened with `initialize`). Other reserved keys
/// (2025-11-25's `related-task`) belong to the legacy era too and pass.
pub const ENVELOPE_KEYS: [&str; 4] = [
    KEY_VERSION,
    KEY_CAPABILITIES,
    KEY_CLIENT_INFO,
    KEY_LOG_LEVEL,
];

/// The era of a peer, with the revision agreed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Opened with `initialize` at this revision.
    Legacy(&'static str),
    /// Stateless, at this revision.
    Modern(&'static str),
}

impl Era {
    /// The revision agreed.
    #[must_use]
    pub fn version(self) -> &'static str {
        match self {
            Self::Legacy(v) | Self::Modern(v) => v,
        }
    }

    /// Whether it is the modern era.
    #[must_use]
    pub fn is_modern(self) -> bool {
        matches!(self, Self::Modern(_))
    }

    /// `"legacy"` or `"modern"`, for `doctor`, `status` and the log.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Legacy(_) => "legacy",
            Self::Modern(_) => "modern",
        }
    }
}

/// The syslog levels of `notifications/message`, lowest first.
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Where `level` ranks among [`LOG_LEVELS`] (`None`: not a level).
#[must_use]
pub fn log_rank(level: &str) -> Option<usize> {
    LOG_LEVELS.iter().position(|l| *l == level)
}

/// Every revision mcp-warden speaks, newest first (the modern ones, then the legacy
/// ones): what a discover result and a -32022 list.
pub fn all_versions() -> impl Iterator<Item = &'static str> {
    MODERN_VERSIONS.iter().chain(LEGACY_VERSIONS).copied()
}

/// The legacy revision to answer an `initialize` that asked for `requested`: the same
/// when we speak it, else our newest (the client then decides whether it can go on).
#[must_use]
pub fn negotiate_legacy(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| LEGACY_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(LEGACY_VERSIONS[0])
}

/// The modern revision `requested` names, when mcp-warden speaks it.
#[must_use]
pub fn negotiate_modern(requested: &str) -> Option<&'static str> {
    MODERN_VERSIONS.iter().find(|v| **v == requested).copied()
}

/// The newest modern revision both sides speak, from the peer's list.
#[must_use]
pub fn newest_common_modern<'a>(theirs: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    let theirs: Vec<&str> = theirs.into_iter().collect();
    MODERN_VERSIONS.iter().find(|v| theirs.contains(v)).copied()
}

/// Whether `version` is a legacy revision mcp-warden speaks.
#[must_use]
pub fn is_legacy_version(version: &str) -> bool {
    LEGACY_VERSIONS.contains(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_listed_newest_first_modern_before_legacy() {
        let all: Vec<&str> = all_versions().collect();
        assert_eq!(
            all,
            [
                "2026-07-28",
                "2025-11-25",
                "2025-06-18",
                "2025-03-26",
                "2024-11-05"
            ]
        );
        let mut sorted = all.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(all, sorted);
    }

    #[test]
    fn legacy_negotiation_echoes_known_versions_and_falls_back_to_the_newest() {
        assert_eq!(negotiate_legacy(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate_legacy(Some("2099-01-01")), "2025-11-25");
        // A modern version is not a legacy one: `initialize` answers the newest legacy.
        assert_eq!(negotiate_legacy(Some("2026-07-28")), "2025-11-25");
        assert_eq!(negotiate_legacy(None), "2025-11-25");
    }

    #[test]
    fn log_levels_rank_from_debug_to_emergency() {
        assert!(log_rank("debug") < log_rank("warning"));
        assert_eq!(log_rank("emergency"), Some(7));
        assert_eq!(log_rank("loud"), None);
    }

    #[test]
    fn modern_negotiation_finds_the_newest_common_version() {
        assert_eq!(negotiate_modern("2026-07-28"), Some("2026-07-28"));
        assert_eq!(negotiate_modern("2025-11-25"), None);
        assert_eq!(
            newest_common_modern(["2027-01-01", "2026-07-28"]),
            Some("2026-07-28")
        );
        assert_eq!(newest_common_modern(["2027-01-01"]), None);
    }
}
