//! Upstream servers under dropped privileges: the layered sandbox each server's
//! launcher applies before it execs the server (see [`launcher`]).
//!
//! - [`launcher`]: `mcp-warden __launch`, the process every server runs under: its
//!   namespaces, its init, then the layers below.
//! - [`access`]: whether a dropped uid can reach a path (for `doctor`).
//! - [`diagnose`]: which path a server's uid cannot reach, and the fix (every
//!   command that starts servers says it).
//! - [`settings`]: `[servers.NAME.sandbox]`, as the user wrote it.
//! - [`plan`]: what one server gets on this machine (built in `serve`).
//! - [`presets`]: what a runtime (Node.js, Python) needs to read.
//! - [`uid`]: the uid a server runs as when mcp-warden is root.
//! - [`apply`]: the layers, applied in the launcher's child, in order.
//! - [`seccomp`]: the socket filter used when there is no network namespace.
//! - [`support`]: what the kernel offers (Landlock ABI, user namespaces).
//! - [`report`]: what was applied, layer by layer, carried back to `serve`.

pub mod access;
pub mod apply;
pub mod diagnose;
pub mod launcher;
pub mod plan;
pub mod presets;
pub mod report;
pub mod seccomp;
pub mod settings;
pub mod support;
pub mod uid;

pub use plan::{Plan, PlanError};
pub use report::Report;
pub use settings::{Preset, SandboxSettings, UserChoice, parse_size};
