//! What a server listed, as pinning and the scan judge it: each definition as the
//! raw JSON text of its array element (number formatting, key order, unknown fields
//! and `_meta` included), with the server's instructions and identity.
//!
//! Data only. The servers are started and listed by [`crate::upstream::inventory`]
//! (`pin`, `pins`, `scan`, `doctor`) and by the session (`serve`); pinning knows no
//! processes.

use crate::config::ServerName;
use crate::pinning::lock::Kind;

/// One definition as the upstream sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub kind: Kind,
    /// The upstream's own name (`name`; for templates: `uriTemplate`).
    pub name: String,
    /// The object exactly as the server sent it (raw JSON text of the array element).
    pub json: String,
}

/// What one server offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// `instructions` from the server's `initialize` answer.
    pub instructions: Option<String>,
    /// In the order listed: tools, then prompts, then resource templates.
    pub items: Vec<Definition>,
    /// The era the probe found, with the version agreed (for `doctor`).
    pub era: crate::era::Era,
    /// The server's `serverInfo` as `name version`, when it gave one.
    pub server_info: Option<String>,
}

/// One configured server's inventory, or why it could not be taken.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub server: ServerName,
    pub outcome: Result<Listing, String>,
}
