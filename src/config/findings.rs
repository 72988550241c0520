//! Risks in a valid configuration that `check` reports as findings (exit 1), never as
//! errors: nothing stops because of them.
//!
//! - A literal secret in `mcp-warden.toml`: the file is committed, so a token written
//!   there is a leaked token. Detected by well-known token prefixes anywhere in a
//!   server's `env` values and `args`, and by a long, high-entropy value for an `env`
//!   key whose name says it is a secret (`*TOKEN*`, `*KEY*`, `*SECRET*`, `*PASSWORD*`).
//!   The secret itself is never printed.
//! - An unversioned package spec (`npx -y pkg`, `uvx pkg`), in any layer: the package
//!   can change under a pin without the configuration changing.
//! - A sandbox path that gives the server everything: `/` or the whole home directory
//!   in `fs_read` or `fs_write` (keys, other projects, client configs).

use std::collections::HashMap;

use super::error::{Diagnostic, Severity, Source};
use super::model::Layer;
use super::validate::{ServerDef, Value};

/// The findings for the servers of one file, sorted by position.
#[must_use]
pub fn findings(source: &Source<'_>, servers: &[ServerDef]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for server in servers {
        if server.layer == Layer::Workspace {
            secrets(source, server, &mut out);
        }
        if let Some((value, package)) = unversioned_package(server) {
            let message = format!(
                "unversioned package `{package}` in server `{}`",
                server.name
            );
            out.push(source.diagnostic(Severity::Warning, &value.span, message).with_hint(
                "it can change under a pin without the configuration changing; pin a version \
                 (`pkg@1.2.3` for npm, `pkg==1.2.3` for Python)",
            ));
        }
        broad_sandbox_paths(source, server, &mut out);
        code_from_the_workspace(source, server, &mut out);
    }
    out.sort_by_key(|d| d.position);
    out
}

/// Commands that resolve code from their working directory: `node_modules/` (npx and
/// the other package runners, node), a package of the same name or a project
/// environment (Python, uv), a `.env` many of them load.
const RESOLVE_FROM_CWD: &[&str] = &[
    "npx", "npm", "pnpm", "pnpx", "yarn", "bun", "bunx", "node", "deno", "uv", "uvx", "pipx",
    "python", "python3",
];

/// The program's name when `command` is one that resolves code from its working
/// directory ([`RESOLVE_FROM_CWD`], or any `pythonX.Y`).
#[must_use]
pub fn resolves_code_from_cwd(command: &str) -> Option<&str> {
    let program = command.rsplit('/').next().unwrap_or_default();
    let python = program
        .strip_prefix("python")
        .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'));
    (RESOLVE_FROM_CWD.contains(&program) || python).then_some(program)
}

/// A `cwd` inside the workspace for a command that resolves code from it: a
/// repository's `node_modules/` or Python package would run inside the user's server
/// (SPEC "Servers"; the default, the server's private directory, is safe).
fn code_from_the_workspace(source: &Source<'_>, server: &ServerDef, out: &mut Vec<Diagnostic>) {
    let Some(cwd) = &server.cwd else {
        return;
    };
    let in_workspace = cwd.raw.starts_with("${workspace}")
        || (server.layer == Layer::Workspace
            && !cwd.raw.starts_with('/')
            && !cwd.raw.starts_with("${"));
    let Some(program) = resolves_code_from_cwd(&server.command.raw).filter(|_| in_workspace) else {
        return;
    };
    let message = format!(
        "server `{}` runs `{program}` with its `cwd` in the workspace, where `{program}` resolves code",
        server.name
    );
    out.push(source.diagnostic(Severity::Warning, &cwd.span, message).with_hint(
        "a repository's `node_modules/`, Python package or `.env` would run inside this server \
         with its secrets; leave `cwd` out (the server's private directory) unless it needs it",
    ));
}

/// `/` or the home directory itself in a sandbox path list.
fn broad_sandbox_paths(source: &Source<'_>, server: &ServerDef, out: &mut Vec<Diagnostic>) {
    let lists = [
        ("fs_read", server.sandbox.fs_read.as_slice()),
        (
            "fs_write",
            server.sandbox.fs_write.as_deref().unwrap_or_default(),
        ),
    ];
    for (key, values) in lists {
        for value in values {
            let what = match value.raw.trim_end_matches('/') {
                "" => "the whole file system",
                "${home}" => "the whole home directory",
                _ => continue,
            };
            let message = format!(
                "`servers.{}.sandbox.{key}` grants {what} (`{}`)",
                server.name, value.raw
            );
            out.push(
                source
                    .diagnostic(Severity::Warning, &value.span, message)
                    .with_hint(
                        "that includes SSH and cloud keys, other projects and client configs; list \
                 the directories the server needs",
                    ),
            );
        }
    }
}

fn secrets(source: &Source<'_>, server: &ServerDef, out: &mut Vec<Diagnostic>) {
    let mut report =
        |value: &Value, place: String, kind: &str| {
            let message = format!("literal secret in {place} ({kind})");
            out.push(source.diagnostic(Severity::Warning, &value.span, message).with_hint(
            "`mcp-warden.toml` is committed: move the value to the user config, or write \
             `${env:NAME}` and set `NAME` outside the repository; then revoke the leaked one",
        ));
        };
    for (key, value) in &server.env {
        if value.raw.contains("${") {
            continue;
        }
        let place = format!("`servers.{}.env.{key}`", server.name);
        if let Some(kind) = known_token(&value.raw) {
            report(value, place, kind);
        } else if is_secret_name(key) && looks_random(&value.raw) {
            report(value, place, "a long random value");
        }
    }
    for (i, arg) in server.args.iter().enumerate() {
        if let Some(kind) = known_token(&arg.raw) {
            report(arg, format!("`servers.{}.args[{i}]`", server.name), kind);
        }
    }
}

/// Token formats with a recognisable prefix (after the rule sets of gitleaks and Nosey
/// Parker); `None` when `text` holds none of them.
#[must_use]
pub fn known_token(text: &str) -> Option<&'static str> {
    /// (prefix, what it is, minimum length of the body after the prefix, characters
    /// allowed in the body beyond ASCII letters and digits).
    const PREFIXED: &[(&str, &str, usize, &str)] = &[
        ("github_pat_", "a GitHub token", 40, "_"),
        ("ghp_", "a GitHub token", 30, ""),
        ("gho_", "a GitHub token", 30, ""),
        ("ghu_", "a GitHub token", 30, ""),
        ("ghs_", "a GitHub token", 30, ""),
        ("ghr_", "a GitHub token", 30, ""),
        ("glpat-", "a GitLab token", 20, "-_"),
        ("sk-ant-", "an Anthropic key", 32, "-_"),
        ("sk-", "an OpenAI-style secret key", 20, "-_"),
        ("xoxb-", "a Slack token", 10, "-"),
        ("xoxp-", "a Slack token", 10, "-"),
        ("xoxa-", "a Slack token", 10, "-"),
        ("xoxr-", "a Slack token", 10, "-"),
        ("xoxs-", "a Slack token", 10, "-"),
        ("npm_", "an npm token", 36, ""),
        ("AIza", "a Google API key", 35, "-_"),
        ("sk_live_", "a Stripe key", 20, ""),
        ("AKIA", "an AWS access key id", 16, ""),
        ("ASIA", "an AWS access key id", 16, ""),
    ];
    if text.contains("-----BEGIN") && text.contains("PRIVATE KEY") {
        return Some("a private key");
    }
    for (prefix, kind, min, extra) in PREFIXED {
        for (i, _) in text.match_indices(prefix) {
            // A token starts a word: `task-sk-…` or `risk-…` hold no `sk-` key.
            let starts_word = text[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
            let body = &text[i + prefix.len()..];
            let len = body
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || extra.contains(*c))
                .count();
            if starts_word && len >= *min {
                return Some(kind);
            }
        }
    }
    None
}

/// Whether the literal `env` value `value` of `key` may be a secret, by the same tests
/// as the finding above (`install` keeps such a server out of a committed file).
#[must_use]
pub fn may_be_secret(key: &str, value: &str) -> bool {
    known_token(value).is_some() || is_secret_name(key)
}

/// Whether an `env` key names a secret.
fn is_secret_name(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    ["TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"]
        .iter()
        .any(|w| key.contains(w))
}

/// A long value without spaces and with the character spread of a random string: at
/// least 16 characters, more than 3 bits of Shannon entropy per character, and not
/// shaped like a path or URL (those are settings, not secrets).
fn looks_random(value: &str) -> bool {
    let len = value.chars().count();
    if len < 16
        || value.chars().any(char::is_whitespace)
        || value.starts_with('/')
        || value.contains("://")
    {
        return false;
    }
    let mut counts: HashMap<char, u32> = HashMap::new();
    for c in value.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let len = f64::from(u32::try_from(len).unwrap_or(u32::MAX));
    let entropy: f64 = counts
        .values()
        .map(|&n| {
            let p = f64::from(n) / len;
            -p * p.log2()
        })
        .sum();
    entropy > 3.0
}

/// The first package spec of a package-runner command that does not pin a version.
fn unversioned_package(server: &ServerDef) -> Option<(&Value, String)> {
    let args: Vec<&str> = server.args.iter().map(|a| a.raw.as_str()).collect();
    let (index, spec) = unversioned_arg(&server.command.raw, &args)?;
    Some((&server.args[index], spec))
}

/// The unversioned package spec of a command and its arguments as written (`npx -y
/// pkg`, `uvx pkg`), for `scan`: it can change under a pin.
#[must_use]
pub fn unversioned_spec(command: &str, args: &[String]) -> Option<String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    unversioned_arg(command, &args).map(|(_, spec)| spec)
}

/// The index of the argument holding an unversioned package spec, and the spec.
fn unversioned_arg(command: &str, args: &[&str]) -> Option<(usize, String)> {
    let program = command.rsplit(['/', '\\']).next().unwrap_or_default();
    let program = program
        .strip_suffix(".cmd")
        .or_else(|| program.strip_suffix(".exe"))
        .unwrap_or(program);
    let first_is = |word: &str| args.first() == Some(&word);
    let shifted = |skip: usize, found: Option<(usize, String)>| found.map(|(i, s)| (i + skip, s));
    match program {
        "npx" | "bunx" => npm_package(args),
        "pnpm" | "yarn" if first_is("dlx") => shifted(1, npm_package(&args[1..])),
        "npm" if first_is("exec") => shifted(1, npm_package(&args[1..])),
        "uvx" => python_package(args),
        "uv" if args.len() > 1 && args[0] == "tool" && args[1] == "run" => {
            shifted(2, python_package(&args[2..]))
        }
        "pipx" if first_is("run") => shifted(1, python_package(&args[1..])),
        _ => None,
    }
    .filter(|(_, spec)| !spec.is_empty())
}

/// The package of an `npx`-style argument list, when it lacks an exact version.
fn npm_package(args: &[&str]) -> Option<(usize, String)> {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        if arg == "-p" || arg == "--package" {
            let value = args.get(i + 1)?;
            return (!npm_versioned(value)).then(|| (i + 1, (*value).to_owned()));
        }
        if let Some(spec) = arg.strip_prefix("--package=") {
            return (!npm_versioned(spec)).then(|| (i, spec.to_owned()));
        }
        if arg.starts_with('-') {
            i += 1;
            continue;
        }
        return (!npm_versioned(arg)).then(|| (i, arg.to_owned()));
    }
    None
}

/// Whether an npm package spec pins an exact version (`pkg@1.2.3`, `@scope/pkg@1.2.3`).
/// Local paths, URLs and git specs are not registry packages and pass here.
fn npm_versioned(spec: &str) -> bool {
    if spec.starts_with(['.', '/', '~']) || spec.contains(':') || spec.contains("${") {
        return true;
    }
    let at = if let Some(scoped) = spec.strip_prefix('@') {
        scoped.find('@').map(|i| i + 1)
    } else {
        spec.find('@')
    };
    at.is_some_and(|i| is_exact_version(&spec[i + 1..]))
}

/// The package of a `uvx`-style argument list, when it lacks an exact version.
fn python_package(args: &[&str]) -> Option<(usize, String)> {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        if arg == "--from" || arg == "--spec" {
            let value = args.get(i + 1)?;
            return (!python_versioned(value)).then(|| (i + 1, (*value).to_owned()));
        }
        if let Some(spec) = arg.strip_prefix("--from=") {
            return (!python_versioned(spec)).then(|| (i, spec.to_owned()));
        }
        // Options that take a value: skip the value too.
        if matches!(
            arg,
            "--with" | "--python" | "-p" | "--index" | "--index-url"
        ) {
            i += 2;
            continue;
        }
        if arg.starts_with('-') {
            i += 1;
            continue;
        }
        return (!python_versioned(arg)).then(|| (i, arg.to_owned()));
    }
    None
}

/// Whether a Python requirement pins an exact version (`pkg==1.2.3`, `pkg@1.2.3`).
fn python_versioned(spec: &str) -> bool {
    if spec.starts_with(['.', '/', '~']) || spec.contains("://") || spec.contains("${") {
        return true;
    }
    if let Some((_, version)) = spec.split_once("==") {
        return is_exact_version(version);
    }
    spec.split_once('@')
        .is_some_and(|(_, v)| is_exact_version(v.trim()))
}

/// `1.2.3`, `2026.8.31`, `1.0.0-beta.1`: starts with a digit and has no range
/// operators. Tags (`latest`) and ranges (`^1.2`, `1.x`) can move.
fn is_exact_version(version: &str) -> bool {
    version.starts_with(|c: char| c.is_ascii_digit())
        && !version.contains(['^', '~', '*', '>', '<', ' ', '|', ','])
        && !version.split('.').any(|p| p.eq_ignore_ascii_case("x"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{raw, validate};

    fn findings_of(layer: Layer, text: &str) -> Vec<String> {
        let source = Source::new(Path::new("f.toml"), text);
        let (file, diags) = validate::validate(layer, &source, raw::parse(&source));
        let defs = file.servers;
        assert!(diags.is_empty(), "{diags:?}");
        findings(&source, &defs)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn server(command: &str, args: &str) -> String {
        format!("[servers.a]\ncommand = \"{command}\"\nargs = {args}\n")
    }

    #[test]
    fn a_sandbox_path_of_everything_is_a_finding() {
        let text = "[servers.a]\ncommand = \"x\"\n[servers.a.sandbox]\n\
                    fs_read = [\"${home}/data\", \"/\"]\nfs_write = [\"${home}/\"]\n";
        let f = findings_of(Layer::User, text);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].starts_with("f.toml:4:28: warning: `servers.a.sandbox.fs_read` grants the whole file system (`/`)"),
            "{f:?}"
        );
        assert!(
            f[1].starts_with(
                "f.toml:5:13: warning: `servers.a.sandbox.fs_write` grants the whole home directory"
            ),
            "{f:?}"
        );
    }

    #[test]
    fn known_tokens_are_recognised() {
        let gh = format!("ghp_{}", "a1B2".repeat(9));
        assert_eq!(known_token(&gh), Some("a GitHub token"));
        assert_eq!(known_token(&format!("Bearer {gh}")), Some("a GitHub token"));
        assert_eq!(
            known_token("AKIAIOSFODNN7EXAMPLE"),
            Some("an AWS access key id")
        );
        assert_eq!(
            known_token("sk-proj-abcdefghijklmnopqrstuvwxyz012345"),
            Some("an OpenAI-style secret key")
        );
        assert_eq!(
            known_token("xoxb-123456789012-abcdefgh"),
            Some("a Slack token")
        );
        assert_eq!(
            known_token("-----BEGIN RSA PRIVATE KEY-----"),
            Some("a private key")
        );
        for harmless in [
            "ghp_",
            "task-sk-abcdefghijklmnopqrstuvwxyz",
            "risk-assessment",
            "info",
            "AKIA",
        ] {
            assert_eq!(known_token(harmless), None, "{harmless}");
        }
    }

    #[test]
    fn literal_token_in_workspace_env_is_a_finding_without_the_value() {
        let token = format!("ghp_{}", "x9Y8".repeat(9));
        let text =
            format!("[servers.gh]\ncommand = \"gh-mcp\"\nenv = {{ GITHUB_TOKEN = \"{token}\" }}\n");
        let f = findings_of(Layer::Workspace, &text);
        assert_eq!(f.len(), 1, "{f:?}");
        let start = "f.toml:3:24: warning: literal secret in `servers.gh.env.GITHUB_TOKEN` (a GitHub token)";
        assert!(f[0].starts_with(start), "{f:?}");
        assert!(!f[0].contains(&token));
    }

    #[test]
    fn random_value_for_a_secret_named_key_is_a_finding() {
        let text = "[servers.a]\ncommand = \"x\"\n\
                    env = { API_KEY = \"Zq3vT9pL2mXw8rKc4nHb\", LOG_LEVEL = \"Zq3vT9pL2mXw8rKc4nHb\" }\n";
        let f = findings_of(Layer::Workspace, text);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("`servers.a.env.API_KEY` (a long random value)"),
            "{f:?}"
        );
    }

    #[test]
    fn references_and_plain_values_are_not_secrets() {
        let text = "[servers.a]\ncommand = \"x\"\nenv = { GITHUB_TOKEN = \"${env:GITHUB_TOKEN}\", \
                    KEY_FILE = \"/home/u/.config/app/key.pem\", PASSWORD = \"changeme\" }\n";
        assert!(findings_of(Layer::Workspace, text).is_empty());
    }

    #[test]
    fn secrets_in_the_user_config_are_not_findings() {
        let token = format!("ghp_{}", "x9Y8".repeat(9));
        let text =
            format!("[servers.gh]\ncommand = \"gh-mcp\"\nenv = {{ GITHUB_TOKEN = \"{token}\" }}\n");
        assert!(findings_of(Layer::User, &text).is_empty());
    }

    #[test]
    fn token_in_args_is_a_finding() {
        let text = server("srv", "[\"--token\", \"xoxb-123456789012-abcdefghij\"]");
        let f = findings_of(Layer::Workspace, &text);
        assert!(
            f[0].contains("literal secret in `servers.a.args[1]` (a Slack token)"),
            "{f:?}"
        );
    }

    #[test]
    fn unversioned_spec_reads_commands_as_written() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            unversioned_spec("npx", &args(&["-y", "@modelcontextprotocol/server-memory"])),
            Some("@modelcontextprotocol/server-memory".to_owned())
        );
        assert_eq!(
            unversioned_spec(
                "npx",
                &args(&["-y", "@modelcontextprotocol/server-memory@2026.1.26"])
            ),
            None
        );
        assert_eq!(
            unversioned_spec("/usr/bin/uvx", &args(&["mcp-server-time"])),
            Some("mcp-server-time".to_owned())
        );
        assert_eq!(
            unversioned_spec("uvx", &args(&["mcp-server-time==2026.1.26"])),
            None
        );
        assert_eq!(
            unversioned_spec(
                "uv",
                &args(&["tool", "run", "--from", "mcp-server-git", "x"])
            ),
            Some("mcp-server-git".to_owned())
        );
        assert_eq!(unversioned_spec("/opt/server", &args(&["pkg"])), None);
    }

    #[test]
    fn unversioned_npx_packages_are_findings() {
        for args in [
            "[\"-y\", \"@modelcontextprotocol/server-filesystem\"]",
            "[\"-y\", \"server-memory@latest\"]",
            "[\"--yes\", \"pkg@^1.2.0\"]",
            "[\"-p\", \"pkg\", \"bin\"]",
            "[\"pkg@1.x\"]",
        ] {
            let f = findings_of(Layer::User, &server("npx", args));
            assert_eq!(f.len(), 1, "{args}: {f:?}");
            assert!(f[0].contains("warning: unversioned package `"), "{f:?}");
        }
        let f = findings_of(Layer::User, &server("npx", "[\"-y\", \"@scope/pkg\"]"));
        assert!(
            f[0].starts_with(
                "f.toml:3:15: warning: unversioned package `@scope/pkg` in server `a`"
            ),
            "{f:?}"
        );
    }

    #[test]
    fn versioned_and_local_npx_packages_are_fine() {
        for args in [
            "[\"-y\", \"@modelcontextprotocol/server-filesystem@2026.8.31\", \"${workspace}\"]",
            "[\"pkg@1.2.3\"]",
            "[\"-y\", \"pkg@1.0.0-beta.1\"]",
            "[\"./local-server\"]",
            "[\"github:user/repo\"]",
        ] {
            assert!(
                findings_of(Layer::User, &server("npx", args)).is_empty(),
                "{args}"
            );
        }
        assert!(findings_of(Layer::User, &server("/usr/bin/node", "[\"server.js\"]")).is_empty());
    }

    #[test]
    fn unversioned_uvx_packages_are_findings() {
        for (command, args) in [
            ("uvx", "[\"mcp-server-time\"]"),
            (
                "uvx",
                "[\"--from\", \"mcp-server-git>=1\", \"mcp-server-git\"]",
            ),
            ("uv", "[\"tool\", \"run\", \"mcp-server-fetch\"]"),
            ("pipx", "[\"run\", \"mcp-server-fetch\"]"),
        ] {
            assert_eq!(
                findings_of(Layer::User, &server(command, args)).len(),
                1,
                "{command} {args}"
            );
        }
        for args in [
            "[\"mcp-server-time==2026.1.0\"]",
            "[\"mcp-server-time@2026.1.0\"]",
            "[\"--python\", \"3.12\", \"mcp-server-time==1.0\"]",
            "[\"--from\", \"mcp-server-git==1.2\", \"mcp-server-git\"]",
        ] {
            assert!(
                findings_of(Layer::User, &server("uvx", args)).is_empty(),
                "{args}"
            );
        }
    }
}
