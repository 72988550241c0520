//! Configuration: the raw TOML mirror ([`raw`]), validation into the types the program
//! uses ([`validate`], [`model`]; the policy sections into [`crate::policy`]'s compiled
//! types by [`policy`]), the managed → user → workspace layers, their merging and
//! workspace discovery ([`layers`]), which workspaces the user trusts at which file
//! digests ([`trust`]), variables ([`vars`]), findings for `check` ([`findings`]) and
//! positioned errors ([`error`]). Everything after start-up sees only the validated
//! types.

pub mod error;
pub mod findings;
pub mod layers;
pub mod model;
pub mod policy;
pub mod raw;
pub mod trust;
pub mod validate;
pub mod vars;

pub use error::{ConfigError, Diagnostic, Position, Severity, Source};
pub use layers::{Report, check, discover_workspace, load, load_serving};
pub use model::*;
