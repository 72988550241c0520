//! Variables in configuration values: `${workspace}`, `${home}` and `${env:NAME}`.
//!
//! They are allowed in a server's `command`, `args`, `env` values, `cwd` and sandbox
//! paths. Expansion happens in two steps, because the two kinds of failure have
//! different consequences:
//!
//! 1. [`Template::parse`] checks the syntax when the file is read. An unknown variable
//!    (`${workspce}`) or an unclosed `${` is a configuration error, with a position.
//! 2. [`Template::expand`] fills the values in. A variable that has no value here
//!    (`${workspace}` with no workspace, `${env:NAME}` unset) is [`Unresolved`]: the
//!    server that uses it is skipped with the reason, and `check` reports it, but the
//!    other servers still start.
//!
//! `${env:NAME}` reads mcp-warden's own environment, so it is expanded only in layers
//! that may start processes (managed, user, trusted workspace). In an untrusted
//! workspace file it is a configuration error at its position ([`env_uses`]), and that
//! layer is expanded with [`Vars::without_env`], so a cloned repository can never turn
//! a secret of the environment into a path a blocked result, an audit record or a log
//! line would show.
//!
//! Escaping: `$${` is a literal `${` (so `$${workspace}` is the text `${workspace}`).
//! A `$` not followed by `{` is always literal, so `$HOME` and `a$b` need no escape.
//! Expansion is one pass: text coming from a variable's value is never expanded again,
//! so an environment variable holding `${home}` stays as it is.

use std::ffi::OsString;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::error::{Diagnostic, Source};

/// Why a value's variables cannot be read: a configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    /// `${name}` where `name` is none of the known variables.
    #[error("unknown variable `${{{name}}}`")]
    Unknown { name: String, offset: usize },
    /// `${env:NAME}` where `NAME` is not a valid environment variable name.
    #[error("invalid environment variable name `{name}` in `${{env:{name}}}`")]
    BadEnvName { name: String, offset: usize },
    /// `${` without a closing `}`.
    #[error("unclosed variable: `${{` without a closing `}}`")]
    Unclosed { offset: usize },
}

impl VarError {
    /// The byte offset in the value where the variable starts.
    #[must_use]
    pub fn offset(&self) -> usize {
        match self {
            Self::Unknown { offset, .. }
            | Self::BadEnvName { offset, .. }
            | Self::Unclosed { offset } => *offset,
        }
    }

    /// What to do about it.
    #[must_use]
    pub fn hint(&self) -> String {
        match self {
            Self::Unknown { name, .. } => match super::error::closest(name, &["workspace", "home"])
            {
                Some(k) => format!("did you mean `${{{k}}}`?"),
                None if name.contains(':') => {
                    "environment variables are written `${env:NAME}`".to_owned()
                }
                None => "the variables are `${workspace}`, `${home}` and `${env:NAME}`; \
                         write `$${` for a literal `${`"
                    .to_owned(),
            },
            Self::BadEnvName { .. } => {
                "a name is letters, digits and `_`, not starting with a digit".to_owned()
            }
            Self::Unclosed { .. } => {
                "close it with `}`, or write `$${` for a literal `${`".to_owned()
            }
        }
    }
}

/// Why a variable has no value here: the server that uses it is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("`${{workspace}}` is used but no workspace was found")]
    NoWorkspace { offset: usize },
    #[error("`${{env:{name}}}` is used but `{name}` is not set")]
    EnvUnset { name: String, offset: usize },
    #[error("`${{{var}}}` is not valid UTF-8")]
    NotUnicode { var: String, offset: usize },
}

impl Unresolved {
    /// What to do about it.
    #[must_use]
    pub fn hint(&self) -> String {
        match self {
            Self::NoWorkspace { .. } => "run inside a directory that holds (or lies below) an \
                                         `mcp-warden.toml`, or pass `--workspace DIR`"
                .to_owned(),
            Self::EnvUnset { name, .. } => format!(
                "set `{name}` in the environment mcp-warden runs in (for `serve`, the MCP \
                 client's), or set `enabled = false` on this server"
            ),
            Self::NotUnicode { .. } => "mcp-warden passes only UTF-8 values to servers".to_owned(),
        }
    }

    /// The byte offset in the value where the variable starts.
    #[must_use]
    pub fn offset(&self) -> usize {
        match self {
            Self::NoWorkspace { offset }
            | Self::EnvUnset { offset, .. }
            | Self::NotUnicode { offset, .. } => *offset,
        }
    }
}

/// A known variable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Workspace,
    Home,
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var { var: Var, offset: usize },
}

/// A value whose variables have been checked, ready to expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// What the variables stand for in this invocation.
pub struct Vars<'a> {
    /// The workspace root, when there is one.
    pub workspace: Option<&'a Path>,
    pub home: &'a Path,
    /// Reads mcp-warden's own environment; replaceable for tests.
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
}

impl std::fmt::Debug for Vars<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vars")
            .field("workspace", &self.workspace)
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl<'a> Vars<'a> {
    /// The same variables with an empty environment: every `${env:NAME}` is unset.
    /// What an untrusted layer is expanded with.
    #[must_use]
    pub fn without_env(&self) -> Vars<'a> {
        Vars {
            workspace: self.workspace,
            home: self.home,
            env: &no_env,
        }
    }
}

fn no_env(_: &str) -> Option<OsString> {
    None
}

/// Every `${env:NAME}` written in a string value of `table` (a parsed file of
/// `source`), as an error at its position: for a layer that may not read the
/// environment (an untrusted workspace). Values whose variables do not parse are
/// left to the validator, which reports them.
#[must_use]
pub fn env_uses(source: &Source<'_>, table: &DeTable<'_>) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for value in table.values() {
        env_uses_in(source, value.get_ref(), &value.span(), &mut found);
    }
    found.sort_by_key(|d| d.position);
    found
}

fn env_uses_in(
    source: &Source<'_>,
    value: &DeValue<'_>,
    span: &Range<usize>,
    found: &mut Vec<Diagnostic>,
) {
    match value {
        DeValue::String(text) => {
            let Ok(template) = Template::parse(text) else {
                return;
            };
            for segment in &template.segments {
                if let Segment::Var {
                    var: Var::Env(name),
                    offset,
                } = segment
                {
                    let at = source.offset_in_string(span, text, *offset);
                    found.push(
                        source
                            .error(
                                &(at..at),
                                format!(
                                    "`${{env:{name}}}` in a workspace that is not trusted: \
                                     its environment variables are not read"
                                ),
                            )
                            .with_hint(
                                "review the file and run `mcp-warden trust`, or set the value \
                                 in your own `config.toml`",
                            ),
                    );
                }
            }
        }
        DeValue::Array(items) => {
            for item in items {
                env_uses_in(source, item.get_ref(), &item.span(), found);
            }
        }
        DeValue::Table(table) => {
            for item in table.values() {
                env_uses_in(source, item.get_ref(), &item.span(), found);
            }
        }
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
}

/// Reads a variable of the process environment.
#[must_use]
pub fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Whether `name` is a portable environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[must_use]
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Template {
    /// Checks the variables of `value`.
    pub fn parse(value: &str) -> Result<Self, VarError> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut rest = value;
        // Byte offset of `rest` in `value`.
        let mut offset = 0;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let at = &rest[i..];
            if let Some(after) = at.strip_prefix("$${") {
                text.push_str("${");
                offset += i + 3;
                rest = after;
            } else if let Some(after) = at.strip_prefix("${") {
                let start = offset + i;
                let end = after
                    .find('}')
                    .ok_or(VarError::Unclosed { offset: start })?;
                let name = &after[..end];
                let var = match name {
                    "workspace" => Var::Workspace,
                    "home" => Var::Home,
                    _ => match name.strip_prefix("env:") {
                        Some(env) if is_env_name(env) => Var::Env(env.to_owned()),
                        Some(env) => {
                            return Err(VarError::BadEnvName {
                                name: env.to_owned(),
                                offset: start,
                            });
                        }
                        None => {
                            return Err(VarError::Unknown {
                                name: name.to_owned(),
                                offset: start,
                            });
                        }
                    },
                };
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Var { var, offset: start });
                offset = start + 2 + end + 1;
                rest = &after[end + 1..];
            } else {
                text.push('$');
                offset += i + 1;
                rest = &at[1..];
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Self { segments })
    }

    /// Whether the value uses `${workspace}`.
    #[must_use]
    pub fn uses_workspace(&self) -> bool {
        self.segments.iter().any(|s| {
            matches!(
                s,
                Segment::Var {
                    var: Var::Workspace,
                    ..
                }
            )
        })
    }

    /// Whether the value reads the environment (`${env:NAME}`): its expansion may hold
    /// a secret, never to be shown.
    #[must_use]
    pub fn uses_env(&self) -> bool {
        self.segments.iter().any(|s| {
            matches!(
                s,
                Segment::Var {
                    var: Var::Env(_),
                    ..
                }
            )
        })
    }

    /// Whether the value has no variables at all (it is used as written).
    #[must_use]
    pub fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Text(_)))
    }

    /// The value with every variable filled in.
    pub fn expand(&self, vars: &Vars<'_>) -> Result<String, Unresolved> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Var {
                    var: Var::Workspace,
                    offset,
                } => {
                    let dir = vars
                        .workspace
                        .ok_or(Unresolved::NoWorkspace { offset: *offset })?;
                    out.push_str(path_str(dir, "workspace", *offset)?);
                }
                Segment::Var {
                    var: Var::Home,
                    offset,
                } => out.push_str(path_str(vars.home, "home", *offset)?),
                Segment::Var {
                    var: Var::Env(name),
                    offset,
                } => {
                    let value = (vars.env)(name).ok_or_else(|| Unresolved::EnvUnset {
                        name: name.clone(),
                        offset: *offset,
                    })?;
                    let value = value.into_string().map_err(|_| Unresolved::NotUnicode {
                        var: format!("env:{name}"),
                        offset: *offset,
                    })?;
                    out.push_str(&value);
                }
            }
        }
        Ok(out)
    }
}

fn path_str<'p>(path: &'p Path, var: &str, offset: usize) -> Result<&'p str, Unresolved> {
    path.to_str().ok_or_else(|| Unresolved::NotUnicode {
        var: var.to_owned(),
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<OsString> {
        (name == "TOKEN").then(|| OsString::from("t0k"))
    }

    fn vars(workspace: Option<&Path>) -> Vars<'_> {
        Vars {
            workspace,
            home: Path::new("/home/u"),
            env: &env,
        }
    }

    fn template(value: &str) -> Template {
        Template::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    fn expand(value: &str) -> Result<String, Unresolved> {
        template(value).expand(&vars(Some(Path::new("/w"))))
    }

    #[test]
    fn known_variables_expand() {
        assert_eq!(expand("${workspace}/src").as_deref(), Ok("/w/src"));
        assert_eq!(expand("${home}/.cache").as_deref(), Ok("/home/u/.cache"));
        assert_eq!(expand("Bearer ${env:TOKEN}!").as_deref(), Ok("Bearer t0k!"));
        assert_eq!(expand("${workspace}:${home}").as_deref(), Ok("/w:/home/u"));
    }

    #[test]
    fn dollar_dollar_brace_is_a_literal_dollar_brace() {
        assert_eq!(expand("$${workspace}").as_deref(), Ok("${workspace}"));
        assert_eq!(expand("a$$${home}").as_deref(), Ok("a$${home}"));
    }

    #[test]
    fn a_dollar_without_brace_is_literal() {
        assert_eq!(expand("$HOME a$b $").as_deref(), Ok("$HOME a$b $"));
        assert!(template("plain").is_literal());
        assert!(!template("${home}").is_literal());
    }

    #[test]
    fn unknown_variable_is_an_error_with_its_offset() {
        let e = Template::parse("ab${workspce}").err();
        assert_eq!(
            e,
            Some(VarError::Unknown {
                name: "workspce".into(),
                offset: 2
            })
        );
        let e = e.unwrap_or(VarError::Unclosed { offset: 0 });
        assert_eq!(e.to_string(), "unknown variable `${workspce}`");
        assert_eq!(e.hint(), "did you mean `${workspace}`?");
    }

    #[test]
    fn unclosed_and_bad_env_names_are_errors() {
        assert_eq!(
            Template::parse("x${home").err(),
            Some(VarError::Unclosed { offset: 1 })
        );
        assert!(matches!(
            Template::parse("${env:1X}"),
            Err(VarError::BadEnvName { offset: 0, .. })
        ));
        assert!(matches!(
            Template::parse("${env:}"),
            Err(VarError::BadEnvName { .. })
        ));
    }

    #[test]
    fn missing_workspace_and_unset_env_are_unresolved() {
        let t = template("${workspace}");
        assert!(t.uses_workspace());
        assert_eq!(
            t.expand(&vars(None)),
            Err(Unresolved::NoWorkspace { offset: 0 })
        );
        let t = template("x=${env:NOPE}");
        assert_eq!(
            t.expand(&vars(None)),
            Err(Unresolved::EnvUnset {
                name: "NOPE".into(),
                offset: 2
            })
        );
    }

    #[test]
    fn values_of_variables_are_not_expanded_again() {
        let env = |_: &str| Some(OsString::from("${home}"));
        let v = Vars {
            workspace: None,
            home: Path::new("/h"),
            env: &env,
        };
        assert_eq!(template("${env:X}").expand(&v).as_deref(), Ok("${home}"));
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("GITHUB_TOKEN") && is_env_name("_x1"));
        assert!(
            !is_env_name("") && !is_env_name("1A") && !is_env_name("A-B") && !is_env_name("A B")
        );
    }

    #[test]
    fn an_untrusted_layer_finds_every_env_use_and_reads_none() {
        let text = "[servers.a]\ncommand = \"x\"\nargs = [\"${home}\", \"--t=${env:TOKEN}\"]\n\
                    [policy]\nx = { y = [\"$${env:LITERAL}\", \"/${env:TOKEN}\"] }\n";
        let source = Source::new(Path::new("w.toml"), text);
        let (table, _) = DeTable::parse_recoverable(text);
        let found = env_uses(&source, table.get_ref());
        let at: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 2, "{at:?}");
        assert!(
            at[0].starts_with("w.toml:3:25: error: `${env:TOKEN}`"),
            "{at:?}"
        );
        assert!(at[1].starts_with("w.toml:5:33: error:"), "{at:?}");
        let v = vars(None);
        assert!(matches!(
            template("${env:TOKEN}").expand(&v.without_env()),
            Err(Unresolved::EnvUnset { .. })
        ));
        assert!(template("a${env:TOKEN}").uses_env() && !template("${home}").uses_env());
    }
}
