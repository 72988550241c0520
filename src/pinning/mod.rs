//! Pinning (SPEC "Pinning"): every tool, prompt and resource template definition, and
//! each server's identity and instructions, pinned by digest so that a poisoned or
//! silently changed definition is held before the model ever sees it.
//!
//! Built in steps: [`canonical`] (RFC 8785 canonical JSON and digests) first, then
//! [`lock`] (the `mcp-warden.lock` file: model, text, locked atomic update).

pub mod canonical;
pub mod collect;
pub mod files;
pub mod judge;
pub mod lock;
pub mod machine;
pub mod review;
