//! Validation of one file's raw mirror into server definitions and the settings the
//! file sets.
//!
//! Checks what can be checked from the file alone (names, namespaces, durations,
//! environment names, variable syntax) and rejects every key of a feature that is not
//! built yet (see [`UNBUILT_SECTIONS`]), so that a user who writes `[audit]` is told it
//! does nothing instead of believing it protects them. Supported so far: `[servers]`
//! (with its `sandbox` table), `[pinning]` (`mode`, `ask`), and `[policy]`,
//! `[labels]`, `[flows]`, `[output]`, `[limits]` (validated in [`super::policy`]), in
//! every layer; the layers' values are merged in [`super::layers`]. Variables are
//! expanded later, in [`ServerDef::resolve`] and when the layers are merged, once the
//! workspace is known: a variable without a value skips one server (or makes one
//! policy condition impossible to evaluate), it does not break the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::DeTable;

use super::error::{Diagnostic, Source};
use super::model::{Layer, Namespace, PinningMode, ServerConfig, ServerName};
use super::policy::PolicyKeys;
use super::raw::{self, Parsed, Permission, Preset, RawPinning, RawSandbox, RawServer};
use super::vars::{Template, Vars, is_env_name};
use crate::sandbox::{self, SandboxSettings, UserChoice, parse_size};

/// The top-level tables whose keys are rejected as "not supported yet". An empty table
/// is accepted: it sets nothing.
pub const UNBUILT_SECTIONS: &[&str] = &["audit"];
/// The keys of an unbuilt section that are built already.
const BUILT_KEYS: &[&str] = &["audit.syslog"];

/// `request_timeout` when a server does not set one.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The hint given with an invalid namespace.
const NAMESPACE_HINT: &str = "a namespace is words of letters, digits and `-` joined by single `_`, \
                              at most 48 characters; `\"\"` means no prefix";

/// The hint given with an invalid environment variable name.
const ENV_NAME_HINT: &str = "a name is letters, digits and `_`, not starting with a digit";

/// A string value as written, with its position and checked variables.
#[derive(Debug, Clone)]
pub struct Value {
    /// The value as written (variables not expanded).
    pub raw: String,
    /// Where the value is written in its file.
    pub span: Range<usize>,
    template: Template,
}

impl Value {
    /// The file offset of byte `offset` inside the value.
    #[must_use]
    pub fn file_offset(&self, source: &Source<'_>, offset: usize) -> usize {
        source.offset_in_string(&self.span, &self.raw, offset)
    }

    fn expand(&self, source: &Source<'_>, vars: &Vars<'_>) -> Result<String, Diagnostic> {
        self.template.expand(vars).map_err(|e| {
            let at = self.file_offset(source, e.offset());
            source.error(&(at..at), e.to_string()).with_hint(e.hint())
        })
    }
}

/// One server as its file defines it: checked, variables not yet expanded.
#[derive(Debug, Clone)]
pub struct ServerDef {
    pub name: ServerName,
    pub layer: Layer,
    /// Where the server's table name is written.
    pub name_span: Range<usize>,
    pub enabled: bool,
    pub command: Value,
    pub args: Vec<Value>,
    pub env: BTreeMap<String, Value>,
    pub env_passthrough: Vec<String>,
    pub cwd: Option<Value>,
    pub namespace: Namespace,
    pub request_timeout: Duration,
    /// `elicitation`: may the server ask the user questions (default yes).
    pub elicitation: bool,
    /// `sampling`: may the server ask the client's model (default no).
    pub sampling: bool,
    pub sandbox: SandboxDef,
}

/// `[servers.NAME.sandbox]` as written: checked, paths not yet expanded.
#[derive(Debug, Clone, Default)]
pub struct SandboxDef {
    pub fs_read: Vec<Value>,
    /// `None`: the default, the workspace.
    pub fs_write: Option<Vec<Value>>,
    /// Everything but the paths (which stay empty here).
    pub settings: SandboxSettings,
}

impl SandboxDef {
    fn resolve(
        &self,
        layer: Layer,
        source: &Source<'_>,
        vars: &Vars<'_>,
    ) -> Result<SandboxSettings, Diagnostic> {
        let expand = |value: &Value| -> Result<PathBuf, Diagnostic> {
            let path = PathBuf::from(value.expand(source, vars)?);
            match (layer, vars.workspace) {
                (Layer::Workspace, Some(root)) if path.is_relative() => Ok(root.join(path)),
                _ => Ok(path),
            }
        };
        let fs_write = match &self.fs_write {
            Some(paths) => paths.iter().map(expand).collect::<Result<_, _>>()?,
            None => vars.workspace.map(Path::to_path_buf).into_iter().collect(),
        };
        Ok(SandboxSettings {
            fs_read: self.fs_read.iter().map(expand).collect::<Result<_, _>>()?,
            fs_write,
            ..self.settings.clone()
        })
    }
}

impl ServerDef {
    /// Expands the variables. `Err` says which variable has no value here (or why the
    /// working directory is unusable), at its position: the server cannot start.
    pub fn resolve(
        &self,
        source: &Source<'_>,
        vars: &Vars<'_>,
    ) -> Result<ServerConfig, Diagnostic> {
        let command = self.command.expand(source, vars)?;
        let args = self
            .args
            .iter()
            .map(|a| a.expand(source, vars))
            .collect::<Result<_, _>>()?;
        let mut env = BTreeMap::new();
        for (key, value) in &self.env {
            env.insert(key.clone(), value.expand(source, vars)?);
        }
        let cwd = match &self.cwd {
            Some(value) => {
                let dir = PathBuf::from(value.expand(source, vars)?);
                if dir.is_absolute() {
                    Some(dir)
                } else if let (Layer::Workspace, Some(root)) = (self.layer, vars.workspace) {
                    // A relative `cwd` in a workspace file means inside the workspace.
                    Some(root.join(dir))
                } else {
                    return Err(source
                        .error(
                            &value.span,
                            // As written: the expansion may hold an environment value.
                            format!("`cwd` `{}` is not an absolute path", value.raw),
                        )
                        .with_hint("start it with `${workspace}`, `${home}` or `/`"));
                }
            }
            // Not the workspace: the server's private directory, chosen at spawn
            // (SPEC "Servers"), so a repository's code is never resolved from its cwd.
            None => None,
        };
        Ok(ServerConfig {
            name: self.name.clone(),
            layer: self.layer,
            command,
            args,
            raw_command: self.command.raw.clone(),
            raw_args: self.args.iter().map(|a| a.raw.clone()).collect(),
            env,
            env_passthrough: self.env_passthrough.clone(),
            cwd,
            namespace: self.namespace.clone(),
            request_timeout: self.request_timeout,
            elicitation: self.elicitation,
            sampling: self.sampling,
            sandbox: self.sandbox.resolve(self.layer, source, vars)?,
        })
    }
}

/// The `[pinning]` keys one file sets (unset keys are `None`), before the layers are
/// merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinningKeys {
    pub mode: Option<PinningMode>,
    pub ask: Option<bool>,
}

/// What one file defines, validated.
#[derive(Debug, Clone, Default)]
pub struct FileConfig {
    /// The server definitions that are valid.
    pub servers: Vec<ServerDef>,
    /// `[pinning]` as this file sets it (nothing, when the section is broken: the file
    /// then has an error).
    pub pinning: PinningKeys,
    /// `[policy]`, `[labels]`, `[flows]`, `[output]` and `[limits]` as this file sets
    /// them (what is valid of them).
    pub policy: PolicyKeys,
    /// `[audit.syslog]`, when this file sets it validly (never a workspace's).
    pub audit_syslog: Option<crate::audit::syslog::SyslogTarget>,
}

/// Validates a parsed file of `layer`: what it defines that is valid, and every problem
/// of the file (the parser's and validation's), sorted by position.
#[must_use]
pub fn validate(
    layer: Layer,
    source: &Source<'_>,
    parsed: Parsed<'_>,
) -> (FileConfig, Vec<Diagnostic>) {
    let Parsed {
        mut raw,
        table,
        mut diagnostics,
    } = parsed;
    let policy = super::policy::validate(source, &table, &mut raw, &mut diagnostics);
    let mut servers = Vec::new();
    {
        let mut check = Checker {
            source,
            table: &table,
            diagnostics: &mut diagnostics,
        };
        check.unsupported_sections();
        if layer == Layer::Managed {
            if let Some(span) = raw::key_span(&table, &["servers"]) {
                check.error(
                    &span,
                    "servers are not read from the managed policy file",
                    Some("define servers in the user's `config.toml` or a workspace's `mcp-warden.toml`"),
                );
            }
        } else {
            for (name, server) in raw.servers {
                if let Some(def) = check.server(layer, &name, &server) {
                    servers.push(def);
                }
            }
        }
    }
    let pinning = raw
        .pinning
        .map_or_else(PinningKeys::default, |RawPinning { mode, ask }| {
            PinningKeys { mode, ask }
        });
    let audit_syslog = raw
        .audit
        .and_then(|a| a.syslog)
        .and_then(|syslog| audit_syslog(layer, source, &syslog, &mut diagnostics));
    diagnostics.sort_by_key(|d| d.position);
    (
        FileConfig {
            servers,
            pinning,
            policy,
            audit_syslog,
        },
        diagnostics,
    )
}

/// Validates `[audit.syslog]`. Only the managed policy and the user's config may set
/// it: a repository's file must not send the user's audit trail anywhere.
fn audit_syslog(
    layer: Layer,
    source: &Source<'_>,
    raw: &toml::Spanned<raw::RawSyslog>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<crate::audit::syslog::SyslogTarget> {
    use crate::audit::syslog::{self, MAX_BUFFER, SyslogTarget};
    if layer == Layer::Workspace {
        diagnostics.push(
            source
                .error(&raw.span(), "`audit.syslog` is not read from a workspace's `mcp-warden.toml`")
                .with_hint("set it in your `config.toml` (or the managed `policy.toml`): a repository must not choose where your audit trail goes"),
        );
        return None;
    }
    let raw = raw.get_ref();
    let mut ok = true;
    let address = raw
        .address
        .get_ref()
        .parse()
        .map_err(|e: syslog::SyslogConfigError| {
            diagnostics.push(source.error(&raw.address.span(), e.to_string()));
            ok = false;
        });
    let facility = match &raw.facility {
        None => Ok(syslog::facility("authpriv").unwrap_or(10)),
        Some(name) => syslog::facility(name.get_ref()).map_err(|e| {
            let names: Vec<&str> = syslog::FACILITIES.iter().map(|(n, _)| *n).collect();
            let hint = super::error::suggestion(name.get_ref(), &names)
                .unwrap_or_else(|| format!("one of {}", names.join(", ")));
            diagnostics.push(source.error(&name.span(), e.to_string()).with_hint(hint));
        }),
    };
    let buffer = match &raw.buffer {
        None => Ok(syslog::DEFAULT_BUFFER),
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(b) if (1..=MAX_BUFFER).contains(&b) => Ok(b),
            _ => {
                diagnostics.push(source.error(
                    &n.span(),
                    format!("`audit.syslog.buffer` must be between 1 and {MAX_BUFFER}"),
                ));
                Err(())
            }
        },
    };
    match (address, facility, buffer) {
        (Ok(address), Ok(facility), Ok(buffer)) if ok => Some(SyslogTarget {
            address,
            facility,
            buffer,
        }),
        _ => None,
    }
}

/// What a section will do once built, for the "not supported yet" message.
fn planned(section: &str) -> &'static str {
    match section {
        "policy" => "per-workspace policy",
        "labels" | "flows" => "session flow rules",
        "output" => "output scanning and redaction",
        "limits" => "rate and size limits",
        "audit" => "audit log settings",
        "sandbox" => "per-server sandboxing",
        _ => "a later release",
    }
}

struct Checker<'s, 't> {
    source: &'s Source<'s>,
    table: &'t DeTable<'t>,
    diagnostics: &'s mut Vec<Diagnostic>,
}

impl Checker<'_, '_> {
    fn error(&mut self, span: &Range<usize>, message: impl Into<String>, hint: Option<&str>) {
        let mut d = self.source.error(span, message);
        d.hint = hint.map(str::to_owned);
        self.diagnostics.push(d);
    }

    /// Every key under a table whose feature is not built yet.
    fn unsupported_sections(&mut self) {
        for &section in UNBUILT_SECTIONS {
            for (key, span) in raw::keys_at(self.table, &[section]) {
                if BUILT_KEYS.contains(&format!("{section}.{key}").as_str()) {
                    continue;
                }
                self.not_supported(&span, &format!("{section}.{key}"), planned(section), None);
            }
        }
    }

    fn not_supported(
        &mut self,
        span: &Range<usize>,
        what: &str,
        planned: &str,
        hint: Option<&str>,
    ) {
        let message =
            format!("`{what}` is not supported yet (planned: {planned}); remove it for now");
        self.error(span, message, hint);
    }

    fn key(&self, path: &[&str], fallback: &Range<usize>) -> Range<usize> {
        raw::key_span(self.table, path).unwrap_or_else(|| fallback.clone())
    }

    fn server(&mut self, layer: Layer, name: &str, raw: &RawServer) -> Option<ServerDef> {
        let name_span = self.key(&["servers", name], &raw.command.span());
        let before = self.diagnostics.len();
        let server_name = ServerName::new(name);
        if server_name.is_none() {
            self.error(
                &name_span,
                format!("invalid server name `{name}`"),
                Some("a server name is 1 to 64 letters, digits, `_` or `-`"),
            );
        }
        let namespace = self
            .namespace(name, &name_span, raw.namespace.as_ref())
            .and_then(|ns| self.max_name_len(ns, raw.max_name_len.as_ref()));
        let command = self.value(&raw.command);
        if raw.command.get_ref().trim().is_empty() {
            self.error(&raw.command.span(), "`command` is empty", None);
        }
        let args: Vec<_> = raw.args.iter().filter_map(|a| self.value(a)).collect();
        let mut env = BTreeMap::new();
        for (key, value) in &raw.env {
            if !is_env_name(key.get_ref()) {
                self.error(
                    &key.span(),
                    format!("invalid environment variable name `{}`", key.get_ref()),
                    Some(ENV_NAME_HINT),
                );
            }
            if let Some(v) = self.value(value) {
                env.insert(key.get_ref().clone(), v);
            }
        }
        let mut env_passthrough = Vec::new();
        for passed in &raw.env_passthrough {
            let passed_name = passed.get_ref();
            if !is_env_name(passed_name) {
                self.error(
                    &passed.span(),
                    format!("invalid environment variable name `{passed_name}`"),
                    Some(ENV_NAME_HINT),
                );
            } else if env.contains_key(passed_name) {
                self.error(
                    &passed.span(),
                    format!("`{passed_name}` is both set in `env` and passed through"),
                    Some("keep one of the two"),
                );
            }
            env_passthrough.push(passed_name.clone());
        }
        let cwd = raw.cwd.as_ref().and_then(|c| self.value(c));
        // In a workspace file a relative `cwd` means inside the workspace; elsewhere
        // there is nothing it could be relative to.
        if let (Some(cwd), Layer::User | Layer::Managed) = (&cwd, layer)
            && cwd.template.is_literal()
            && !Path::new(&cwd.raw).is_absolute()
        {
            self.error(
                &cwd.span,
                format!("`cwd` `{}` is not an absolute path", cwd.raw),
                Some("start it with `${workspace}`, `${home}` or `/`"),
            );
        }
        let request_timeout = match &raw.request_timeout {
            None => Some(DEFAULT_REQUEST_TIMEOUT),
            Some(t) => match parse_duration(t.get_ref()) {
                Ok(d) => Some(d),
                Err(why) => {
                    self.error(
                        &t.span(),
                        format!("invalid `request_timeout` `{}`: {why}", t.get_ref()),
                        Some("write a whole number with a unit: `500ms`, `60s`, `2m` or `1h`"),
                    );
                    None
                }
            },
        };
        let sandbox = self.sandbox(layer, raw.sandbox.as_ref());
        if self.diagnostics.len() > before {
            return None;
        }
        Some(ServerDef {
            name: server_name?,
            layer,
            name_span,
            enabled: raw.enabled.unwrap_or(true),
            command: command?,
            args,
            env,
            env_passthrough,
            cwd,
            namespace: namespace?,
            request_timeout: request_timeout?,
            elicitation: raw
                .elicitation
                .as_ref()
                .is_none_or(|p| *p.get_ref() == Permission::Allow),
            sampling: raw
                .sampling
                .as_ref()
                .is_some_and(|p| *p.get_ref() == Permission::Allow),
            sandbox,
        })
    }

    /// The namespace with the server's `max_name_len`, when set and in range.
    fn max_name_len(&mut self, ns: Namespace, max: Option<&Spanned<u64>>) -> Option<Namespace> {
        let Some(max) = max else {
            return Some(ns);
        };
        let range = crate::names::MIN_EXPOSED_LEN..=crate::names::MAX_EXPOSED_LEN;
        match usize::try_from(*max.get_ref()) {
            Ok(n) if range.contains(&n) => Some(ns.with_max_len(n)),
            _ => {
                self.error(
                    &max.span(),
                    format!("invalid `max_name_len` `{}`", max.get_ref()),
                    Some("a whole number from 16 to 64 (the longest exposed name)"),
                );
                None
            }
        }
    }

    /// The explicit namespace, else the table name, which must then be one too.
    fn namespace(
        &mut self,
        name: &str,
        name_span: &Range<usize>,
        explicit: Option<&Spanned<String>>,
    ) -> Option<Namespace> {
        if let Some(ns) = explicit {
            let found = Namespace::new(ns.get_ref());
            if found.is_none() {
                self.error(
                    &ns.span(),
                    format!("invalid namespace `{}`", ns.get_ref()),
                    Some(NAMESPACE_HINT),
                );
            }
            return found;
        }
        let found = Namespace::new(name);
        // An invalid server name is already reported; one error per mistake.
        if found.is_none() && ServerName::new(name).is_some() {
            let hint = format!("set `namespace` for this server: {NAMESPACE_HINT}");
            self.error(
                name_span,
                format!("server name `{name}` cannot be used as its namespace"),
                Some(&hint),
            );
        }
        found
    }

    /// Checks a string's variables; `None` (with a diagnostic) when they are wrong.
    fn value(&mut self, value: &Spanned<String>) -> Option<Value> {
        let raw = value.get_ref();
        match Template::parse(raw) {
            Ok(template) => Some(Value {
                raw: raw.clone(),
                span: value.span(),
                template,
            }),
            Err(e) => {
                let at = self.source.offset_in_string(&value.span(), raw, e.offset());
                self.error(&(at..at), e.to_string(), Some(&e.hint()));
                None
            }
        }
    }

    /// `memory` and `cpu_time`.
    fn sandbox_limits(&mut self, raw: &RawSandbox) -> (Option<u64>, Option<Duration>) {
        let memory = raw
            .memory
            .as_ref()
            .and_then(|m| match parse_size(m.get_ref()) {
                Ok(bytes) => Some(bytes),
                Err(why) => {
                    self.error(
                        &m.span(),
                        format!("invalid `memory` `{}`: {why}", m.get_ref()),
                        Some("write a whole number with a unit: `512M` or `2G`"),
                    );
                    None
                }
            });
        let cpu_time = raw
            .cpu_time
            .as_ref()
            .and_then(|t| match parse_duration(t.get_ref()) {
                Ok(d) if d >= Duration::from_secs(1) => Some(d),
                Ok(_) => {
                    self.error(&t.span(), "`cpu_time` is under one second", None);
                    None
                }
                Err(why) => {
                    self.error(
                        &t.span(),
                        format!("invalid `cpu_time` `{}`: {why}", t.get_ref()),
                        Some("write a whole number with a unit: `60s`, `10m` or `1h`"),
                    );
                    None
                }
            });
        (memory, cpu_time)
    }

    /// Checks `[servers.NAME.sandbox]`; paths keep their variables until the workspace
    /// is known.
    fn sandbox(&mut self, layer: Layer, raw: Option<&RawSandbox>) -> SandboxDef {
        let Some(raw) = raw else {
            return SandboxDef::default();
        };
        let paths = |list: Option<&Vec<Spanned<String>>>, this: &mut Self| {
            list.map(|l| {
                l.iter()
                    .filter_map(|p| {
                        let value = this.value(p)?;
                        // In a workspace file a relative path means inside the workspace.
                        if layer != Layer::Workspace
                            && value.template.is_literal()
                            && !Path::new(&value.raw).is_absolute()
                        {
                            this.error(
                                &value.span,
                                format!("sandbox path `{}` is not absolute", value.raw),
                                Some("start it with `${workspace}`, `${home}` or `/`"),
                            );
                        }
                        Some(value)
                    })
                    .collect::<Vec<_>>()
            })
        };
        let fs_read = paths(raw.fs_read.as_ref(), self).unwrap_or_default();
        let fs_write = paths(raw.fs_write.as_ref(), self);
        let network = raw.network.unwrap_or(true);
        let network_ports = raw.network_ports.as_ref().map_or_else(Vec::new, |ports| {
            if network && !ports.get_ref().is_empty() {
                self.error(
                    &ports.span(),
                    "`network_ports` only applies with `network = false`",
                    Some("set `network = false` to allow just these ports, or remove `network_ports`"),
                );
            }
            if ports.get_ref().contains(&0) {
                self.error(&ports.span(), "port 0 is not a port one can connect to", None);
            }
            ports.get_ref().clone()
        });
        let user = match &raw.user {
            None => UserChoice::Auto,
            Some(u) if u.get_ref() == "auto" => UserChoice::Auto,
            Some(u) => {
                let name = u.get_ref();
                let valid = !name.is_empty()
                    && name.len() <= 32
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
                if !valid {
                    self.error(
                        &u.span(),
                        format!("invalid user `{name}`"),
                        Some("write `\"auto\"` (a uid of its own per server) or a user name of this machine"),
                    );
                }
                UserChoice::Named(name.clone())
            }
        };
        let (memory, cpu_time) = self.sandbox_limits(raw);
        SandboxDef {
            fs_read,
            fs_write,
            settings: SandboxSettings {
                preset: match raw.preset {
                    None | Some(Preset::Auto) => sandbox::Preset::Auto,
                    Some(Preset::Node) => sandbox::Preset::Node,
                    Some(Preset::Python) => sandbox::Preset::Python,
                    Some(Preset::Bare) => sandbox::Preset::None,
                },
                fs_read: Vec::new(),
                fs_write: Vec::new(),
                network,
                network_ports,
                user,
                required: raw.required.unwrap_or(false),
                memory,
                cpu_time,
            },
        }
    }
}

/// Parses a duration written as a whole number and a unit: `500ms`, `60s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err("it does not start with a number".to_owned());
    }
    let n: u64 = number
        .parse()
        .map_err(|_| "the number is too large".to_owned())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err("it has no unit".to_owned()),
        other => return Err(format!("unknown unit `{other}`")),
    };
    let millis = n
        .checked_mul(millis_per_unit)
        .ok_or_else(|| "it is too large".to_owned())?;
    if millis == 0 {
        return Err("it must be more than zero".to_owned());
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn check(layer: Layer, text: &str) -> (Vec<ServerDef>, Vec<String>) {
        let source = Source::new(Path::new("f.toml"), text);
        let (file, diags) = validate(layer, &source, raw::parse(&source));
        (
            file.servers,
            diags.iter().map(ToString::to_string).collect(),
        )
    }

    fn one_error(text: &str) -> String {
        let (_, diags) = check(Layer::Workspace, text);
        assert_eq!(diags.len(), 1, "{diags:?}");
        diags.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn a_plain_server_validates_with_defaults() {
        let (defs, diags) = check(
            Layer::User,
            "[servers.fs]\ncommand = \"npx\"\nargs = [\"a\"]\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let fs = &defs[0];
        assert_eq!(fs.name.as_str(), "fs");
        assert_eq!(fs.namespace.as_str(), "fs");
        assert!(fs.enabled);
        assert_eq!(fs.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    }

    #[test]
    fn invalid_server_name_is_an_error_at_the_name() {
        let e = one_error("[servers.\"my server\"]\ncommand = \"x\"\n");
        assert!(
            e.starts_with("f.toml:1:10: error: invalid server name `my server`"),
            "{e}"
        );
    }

    #[test]
    fn server_name_that_is_no_namespace_asks_for_one() {
        let e = one_error("[servers.a__b]\ncommand = \"x\"\n");
        assert!(
            e.contains("server name `a__b` cannot be used as its namespace"),
            "{e}"
        );
        assert!(e.contains("hint: set `namespace`"), "{e}");
        let (defs, diags) = check(
            Layer::User,
            "[servers.a__b]\ncommand = \"x\"\nnamespace = \"ab\"\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(defs[0].namespace.as_str(), "ab");
    }

    #[test]
    fn invalid_and_empty_namespaces() {
        let e = one_error("[servers.a]\ncommand = \"x\"\nnamespace = \"a_\"\n");
        assert!(
            e.starts_with("f.toml:3:13: error: invalid namespace `a_`"),
            "{e}"
        );
        let (defs, diags) = check(
            Layer::User,
            "[servers.a]\ncommand = \"x\"\nnamespace = \"\"\n",
        );
        assert!(diags.is_empty());
        assert_eq!(defs[0].namespace.as_str(), "");
    }

    #[test]
    fn request_timeouts_parse() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "60",
            "s",
            "0s",
            "1.5s",
            "60 s",
            "10d",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let e = one_error("[servers.a]\ncommand = \"x\"\nrequest_timeout = \"60\"\n");
        assert!(
            e.contains("invalid `request_timeout` `60`: it has no unit"),
            "{e}"
        );
    }

    #[test]
    fn disabled_servers_are_kept_as_disabled() {
        let (defs, _) = check(
            Layer::User,
            "[servers.a]\ncommand = \"x\"\nenabled = false\n",
        );
        assert!(!defs[0].enabled);
    }

    #[test]
    fn env_names_are_checked() {
        let e = one_error("[servers.a]\ncommand = \"x\"\nenv = { \"A-B\" = \"1\" }\n");
        assert!(e.contains("invalid environment variable name `A-B`"), "{e}");
        let e = one_error("[servers.a]\ncommand = \"x\"\nenv_passthrough = [\"1X\"]\n");
        assert!(e.contains("invalid environment variable name `1X`"), "{e}");
        let e = one_error(
            "[servers.a]\ncommand = \"x\"\nenv = { T = \"1\" }\nenv_passthrough = [\"T\"]\n",
        );
        assert!(
            e.contains("`T` is both set in `env` and passed through"),
            "{e}"
        );
    }

    #[test]
    fn unknown_variable_points_inside_the_string() {
        let e = one_error("[servers.a]\ncommand = \"x\"\nargs = [\"--root=${workspce}\"]\n");
        assert!(
            e.starts_with("f.toml:3:17: error: unknown variable `${workspce}`"),
            "{e}"
        );
        assert!(e.contains("did you mean `${workspace}`?"), "{e}");
    }

    #[test]
    fn empty_command_is_an_error() {
        let e = one_error("[servers.a]\ncommand = \" \"\n");
        assert!(e.contains("`command` is empty"), "{e}");
    }

    #[test]
    fn relative_cwd_in_the_user_config_is_an_error() {
        let (_, diags) = check(Layer::User, "[servers.a]\ncommand = \"x\"\ncwd = \"sub\"\n");
        assert!(
            diags[0].contains("`cwd` `sub` is not an absolute path"),
            "{diags:?}"
        );
        let (_, diags) = check(
            Layer::Workspace,
            "[servers.a]\ncommand = \"x\"\ncwd = \"sub\"\n",
        );
        assert!(diags.is_empty());
    }

    /// `[audit]` is still rejected key by key; the policy sections and `[pinning]`
    /// around it are supported, in every layer.
    #[test]
    fn every_unbuilt_section_key_is_not_supported() {
        let text = "[policy]\ndefault = \"allow\"\n[[policy.rules]]\nid = \"r\"\ntools = [\"*\"]\naction = \"deny\"\n\
                    [labels]\nprivate = []\n[flows]\ntrifecta = \"deny\"\n[output]\nsecrets = \"redact\"\n\
                    [limits]\ncalls_per_minute = 1\n[pinning]\nmode = \"strict\"\nask = true\n\
                    [audit]\narguments = true\n";
        for layer in [Layer::Managed, Layer::User, Layer::Workspace] {
            let (_, diags) = check(layer, text);
            assert_eq!(diags.len(), 1, "{diags:#?}");
            assert_eq!(
                diags[0],
                "f.toml:19:1: error: `audit.arguments` is not supported yet (planned: audit log \
                 settings); remove it for now"
            );
        }
    }

    #[test]
    fn policy_sections_are_validated_with_positions() {
        let text = "[[policy.rules]]\nid = \"r\"\ntools = [\"fs__[\"]\naction = \"deny\"\n";
        let e = one_error(text);
        assert!(
            e.starts_with("f.toml:3:10: error: invalid glob `fs__[`"),
            "{e}"
        );
    }

    fn pinning_of(layer: Layer, text: &str) -> (PinningKeys, Vec<String>) {
        let source = Source::new(Path::new("f.toml"), text);
        let (file, diags) = validate(layer, &source, raw::parse(&source));
        (
            file.pinning,
            diags.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn pinning_is_supported_in_every_layer() {
        for layer in [Layer::Managed, Layer::User, Layer::Workspace] {
            for mode in PinningMode::ALL {
                let text = format!("[pinning]\nmode = \"{mode}\"\nask = true\n");
                let (pinning, diags) = pinning_of(layer, &text);
                assert!(diags.is_empty(), "{layer:?}: {diags:?}");
                assert_eq!(
                    pinning,
                    PinningKeys {
                        mode: Some(mode),
                        ask: Some(true)
                    }
                );
            }
            let (pinning, diags) = pinning_of(layer, "[pinning]\n");
            assert!(diags.is_empty(), "{diags:?}");
            assert_eq!(pinning, PinningKeys::default());
        }
        // Dotted and inline forms are the same keys.
        let (pinning, diags) = pinning_of(Layer::User, "pinning.mode = \"tofu\"\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(pinning.mode, Some(PinningMode::Tofu));
        let (pinning, _) = pinning_of(Layer::User, "pinning = { ask = false }\n");
        assert_eq!(pinning.ask, Some(false));
    }

    #[test]
    fn unknown_pinning_key_is_an_error_with_a_suggestion() {
        let e = one_error("[pinning]\nmdoe = \"strict\"\n");
        assert!(
            e.starts_with("f.toml:2:1: error: unknown key `mdoe` in `pinning`"),
            "{e}"
        );
        assert!(e.contains("hint: did you mean `mode`?"), "{e}");
        let e = one_error("[pinning]\nmode = \"strict\"\naks = true\n");
        assert!(e.starts_with("f.toml:3:1: error: unknown key `aks`"), "{e}");
        assert!(e.contains("hint: did you mean `ask`?"), "{e}");
    }

    #[test]
    fn bad_pinning_values_point_at_the_value_and_list_the_allowed_ones() {
        let e = one_error("[pinning]\nmode = \"loose\"\n");
        assert!(
            e.starts_with("f.toml:2:8: error: unknown value `loose` in `pinning`"),
            "{e}"
        );
        assert!(
            e.contains("hint: expected one of `strict`, `tofu`, `off`"),
            "{e}"
        );
        let e = one_error("[pinning]\nmode = \"strikt\"\n");
        assert!(e.contains("hint: did you mean `strict`?"), "{e}");
        let e = one_error("[pinning]\nmode = \"Strict\"\n");
        assert!(e.contains("hint: did you mean `strict`?"), "{e}");
        let e = one_error("[pinning]\nask = \"yes\"\n");
        assert!(e.starts_with("f.toml:2:7: error: invalid type"), "{e}");
        // A broken section sets nothing.
        let (pinning, _) = pinning_of(Layer::User, "[pinning]\nmode = \"loose\"\n");
        assert_eq!(pinning, PinningKeys::default());
    }

    #[test]
    fn empty_unbuilt_sections_are_accepted() {
        let (_, diags) = check(Layer::User, "[policy]\n[pinning]\n");
        assert!(diags.is_empty(), "{diags:?}");
    }

    #[test]
    fn sampling_is_denied_and_elicitation_allowed_by_default() {
        let (defs, diags) = check(Layer::User, "[servers.a]\ncommand = \"x\"\n");
        assert!(
            diags.is_empty() && defs[0].elicitation && !defs[0].sampling,
            "{diags:?}"
        );
        let text = "[servers.a]\ncommand = \"x\"\nsampling = \"allow\"\nelicitation = \"deny\"\n";
        let (defs, diags) = check(Layer::User, text);
        assert!(
            diags.is_empty() && !defs[0].elicitation && defs[0].sampling,
            "{diags:?}"
        );
    }

    #[test]
    fn sandbox_settings_are_read_and_bad_values_are_errors_at_their_position() {
        let text = "[servers.a]\ncommand = \"x\"\n[servers.a.sandbox]\npreset = \"node\"\n\
                    fs_read = [\"/data\"]\nfs_write = []\nnetwork = false\nnetwork_ports = [443]\n\
                    user = \"nobody\"\nrequired = true\nmemory = \"1G\"\ncpu_time = \"10m\"\n";
        let (defs, diags) = check(Layer::User, text);
        assert!(diags.is_empty(), "{diags:?}");
        let sandbox = &defs[0].sandbox.settings;
        assert_eq!(sandbox.preset, sandbox::Preset::Node);
        assert_eq!(sandbox.network_ports, vec![443]);
        assert!(!sandbox.network && sandbox.required);
        assert_eq!(sandbox.user, UserChoice::Named("nobody".into()));
        assert_eq!(sandbox.memory, Some(1 << 30));
        assert_eq!(sandbox.cpu_time, Some(Duration::from_secs(600)));
        assert!(defs[0].sandbox.fs_write.as_ref().is_some_and(Vec::is_empty));
        for (line, expected) in [
            (
                "network_ports = [443]",
                "f.toml:4:17: error: `network_ports` only applies with `network = false`",
            ),
            ("user = \"a b\"", "f.toml:4:8: error: invalid user `a b`"),
            (
                "memory = \"lots\"",
                "f.toml:4:10: error: invalid `memory` `lots`",
            ),
            (
                "cpu_time = \"1ms\"",
                "f.toml:4:12: error: `cpu_time` is under one second",
            ),
            (
                "fs_write = [\"${nope}\"]",
                "f.toml:4:14: error: unknown variable",
            ),
        ] {
            let text = format!("[servers.a]\ncommand = \"x\"\n[servers.a.sandbox]\n{line}\n");
            let e = one_error(&text);
            assert!(e.starts_with(expected), "{line}: {e}");
        }
        // Relative paths mean inside the workspace, in a workspace file only.
        let text = "[servers.a]\ncommand = \"x\"\n[servers.a.sandbox]\nfs_read = [\"data\"]\n";
        let (_, diags) = check(Layer::User, text);
        assert!(
            diags[0].starts_with("f.toml:4:12: error: sandbox path `data` is not absolute"),
            "{diags:?}"
        );
        assert!(check(Layer::Workspace, text).1.is_empty());
    }

    #[test]
    fn servers_in_the_managed_file_are_an_error() {
        let (defs, diags) = check(Layer::Managed, "[servers.a]\ncommand = \"x\"\n");
        assert!(defs.is_empty());
        assert!(
            diags[0].contains("servers are not read from the managed policy file"),
            "{diags:?}"
        );
    }

    #[test]
    fn all_problems_of_a_file_are_reported_in_order() {
        let text = "[servers.a]\ncommand = \"x\"\nrequest_timeout = \"x\"\n[servers.b]\ncommand = \"y\"\n\
                    namespace = \"b__\"\n[policy]\nmode = \"monitr\"\n";
        let (_, diags) = check(Layer::User, text);
        assert_eq!(diags.len(), 3, "{diags:?}");
        assert!(diags[0].starts_with("f.toml:3:"));
        assert!(diags[1].starts_with("f.toml:6:"));
        assert!(diags[2].starts_with("f.toml:8:"));
    }

    #[test]
    fn resolve_expands_and_keeps_the_raw_identity() {
        let text = "[servers.a]\ncommand = \"${home}/bin/srv\"\nargs = [\"${workspace}\"]\n\
                    env = { T = \"${env:T}\" }\ncwd = \"sub\"\n";
        let source = Source::new(Path::new("f.toml"), text);
        let (file, diags) = validate(Layer::Workspace, &source, raw::parse(&source));
        let defs = file.servers;
        assert!(diags.is_empty(), "{diags:?}");
        let env = |n: &str| (n == "T").then(|| OsString::from("v"));
        let vars = Vars {
            workspace: Some(Path::new("/w")),
            home: Path::new("/h"),
            env: &env,
        };
        let cfg = defs[0]
            .resolve(&source, &vars)
            .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(cfg.command, "/h/bin/srv");
        assert_eq!(cfg.raw_command, "${home}/bin/srv");
        assert_eq!(cfg.args, ["/w"]);
        assert_eq!(cfg.raw_args, ["${workspace}"]);
        assert_eq!(cfg.env["T"], "v");
        assert_eq!(cfg.cwd.as_deref(), Some(Path::new("/w/sub")));
    }

    #[test]
    fn resolve_fails_at_the_variable_without_a_value() {
        let text = "[servers.a]\ncommand = \"x\"\nenv = { T = \"${env:UNSET_FOR_TEST}\" }\n";
        let source = Source::new(Path::new("f.toml"), text);
        let defs = validate(Layer::User, &source, raw::parse(&source))
            .0
            .servers;
        let env = |_: &str| None;
        let vars = Vars {
            workspace: None,
            home: Path::new("/h"),
            env: &env,
        };
        let e = defs[0]
            .resolve(&source, &vars)
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert_eq!(
            e.lines().next(),
            Some(
                "f.toml:3:14: error: `${env:UNSET_FOR_TEST}` is used but `UNSET_FOR_TEST` is not set"
            )
        );
        assert!(
            e.contains("hint: set `UNSET_FOR_TEST` in the environment"),
            "{e}"
        );
    }
}
