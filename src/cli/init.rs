//! `mcp-warden init`: write a commented starter `mcp-warden.toml`.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;

use crate::ExitStatus;
use crate::output;
use crate::paths::{self, Paths};

/// Write a commented `mcp-warden.toml` into the workspace (`--workspace DIR`, else the
/// current directory). An existing file is never overwritten without `--force`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing `mcp-warden.toml`.
    #[arg(long)]
    pub force: bool,
}

/// The starter file. Every setting is a comment, so the file passes `mcp-warden check`
/// as written; its `[pinning]` block, uncommented, is the default (tests hold it to
/// both).
pub const STARTER: &str = r#"# mcp-warden.toml: the MCP servers of this workspace, for mcp-warden.
#
# This file is meant to be committed and reviewed. Its servers start only after you
# have read it and run `mcp-warden trust` in this directory; any later edit makes the
# workspace untrusted again until you trust it anew. `mcp-warden check` validates it.
#
# Never write secrets here. Pass them from your own environment instead:
#   env_passthrough = ["GITHUB_TOKEN"]              # copied from mcp-warden's environment
#   env = { API_TOKEN = "${env:MY_API_TOKEN}" }     # or renamed on the way
#
# Variables: ${workspace} (this directory), ${home}, ${env:NAME}. `$${` is a literal `${`.
# Pin package versions (`pkg@1.2.3`, `pkg==1.2.3`): an unversioned package can change
# under you, and `mcp-warden check` warns about it.

# [servers.fs]
# command = "npx"
# args = ["-y", "@modelcontextprotocol/server-filesystem@2026.8.31", "${workspace}"]
# env = { LOG_LEVEL = "info" }      # set for the server
# env_passthrough = []              # names copied from mcp-warden's own environment
# cwd = "${workspace}"              # default: the workspace
# namespace = "fs"                  # tools are exposed as fs__<tool>; default: the table name
# enabled = true
# request_timeout = "60s"           # "500ms", "60s", "2m", "1h"
# sampling = "deny"                 # the only value for now

# Tool definitions are pinned by hash in `mcp-warden.lock`, beside this file. This
# file can make pinning stricter than your own config; it loosens it only once the
# workspace is trusted, and never below the managed policy.
# [pinning]
# mode = "strict"   # default: new and changed definitions are held (hidden from the
#                   #   client) until you review them and run `mcp-warden pin`
#                   # "tofu": trust on first use: new ones are pinned when first
#                   #   seen; changed or flagged ones are still held
#                   # "off": nothing is held; scan findings are only logged
# ask = false       # true: where the client supports it, calling a held tool asks
#                   #   you to review the change and pin it from the client

# The policy. Every layer (yours, this file's, your organisation's) decides on its
# own, first matching rule wins within a layer, and a call passes only if every layer
# allows it: this file can tighten your policy, never loosen it.
# [policy]
# default = "allow"                 # for calls no rule of this file matches
# mode = "enforce"                  # "monitor": decide and audit, block nothing
#
# [[policy.rules]]
# id = "writes-stay-in-workspace"
# tools = ["fs__write_file", "fs__edit_file"]
# when = { arg = "path", not_under = ["${workspace}"] }
# action = "deny"                   # "allow" | "deny" | "ask"
# message = "writes outside the workspace are not allowed"
#
# [labels]                          # for sequence rules
# private = ["fs__read_*"]
# untrusted = ["fetch__*"]
# egress = ["fetch__*"]
#
# [flows]
# trifecta = "deny"                 # private + untrusted seen: egress is denied
#
# [output]
# secrets = "redact"                # "redact" | "block" | "off"
# injection = "flag"                # "flag" | "block" | "off"
#
# [limits]
# calls_per_minute = 120

# Each server runs sandboxed (README "Sandbox"); to let one read or write more, or
# take its network away:
# [servers.NAME.sandbox]
# fs_read = ["${home}/datasets"]
# fs_write = ["${workspace}"]
# network = false
#
# Planned, not supported yet (`mcp-warden check` rejects these keys until they are):
# [audit].
"#;

/// Runs `init`.
pub fn run(
    _paths: &Paths,
    workspace: Option<PathBuf>,
    args: &InitArgs,
) -> anyhow::Result<ExitStatus> {
    let dir = match workspace {
        Some(dir) => dir,
        None => std::env::current_dir()?,
    };
    if !dir.is_dir() {
        output::diag(&format!(
            "error: workspace `{}` is not a directory",
            dir.display()
        ));
        return Ok(ExitStatus::Usage);
    }
    let path = paths::workspace_file(&dir);
    let mut options = OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let written = options
        .open(&path)
        .and_then(|mut f| f.write_all(STARTER.as_bytes()));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            output::diag(&format!(
                "error: `{}` already exists; use `--force` to overwrite it",
                path.display()
            ));
            return Ok(ExitStatus::Usage);
        }
        Err(e) => return Err(anyhow::anyhow!("cannot write `{}`: {e}", path.display())),
    }
    output::line(&format!("wrote `{}`", path.display()));
    output::line(
        "next: add servers, run `mcp-warden check`, then `mcp-warden trust` to let them start",
    );
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::STARTER;
    use crate::config::validate::{PinningKeys, validate};
    use crate::config::{Layer, PinningMode, Source, raw};

    /// The `[pinning]` block of the starter file with its leading `#` removed.
    fn pinning_block() -> String {
        let mut text = String::new();
        let block = STARTER
            .lines()
            .skip_while(|l| *l != "# [pinning]")
            .take_while(|l| !l.is_empty());
        for line in block {
            text.push_str(line.strip_prefix('#').unwrap_or(line));
            text.push('\n');
        }
        text
    }

    #[test]
    fn the_pinning_block_uncommented_is_valid_and_the_default() {
        let text = pinning_block();
        assert!(text.starts_with(" [pinning]\n mode = \"strict\""), "{text}");
        let source = Source::new(Path::new("mcp-warden.toml"), &text);
        let (file, diagnostics) = validate(Layer::Workspace, &source, raw::parse(&source));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(
            file.pinning,
            PinningKeys {
                mode: Some(PinningMode::Strict),
                ask: Some(false),
            }
        );
    }

    #[test]
    fn the_starter_names_every_pinning_mode() {
        let text = pinning_block();
        for mode in PinningMode::ALL {
            assert!(text.contains(&format!("\"{mode}\"")), "{mode}: {text}");
        }
    }
}
