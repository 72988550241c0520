//! Pinning (SPEC "Pinning"): every tool, prompt and resource template definition, and
//! each server's identity and instructions, pinned by digest so that a poisoned or
//! silently changed definition is held before the model ever sees it.
//!
//! Built on [`crate::canonical`] (RFC 8785 canonical JSON and digests, shared with the
//! audit trail), then [`lock`] (the `mcp-warden.lock` file: model, text, locked atomic
//! update). Pure: what it judges ([`listed`]) is listed by the upstream room
//! ([`crate::upstream::inventory`] for `pin`, `pins`, `scan`, `doctor`; the session
//! for `serve`), which alone starts processes.

pub mod files;
pub mod judge;
pub mod listed;
pub mod lock;
pub mod machine;
pub mod review;
