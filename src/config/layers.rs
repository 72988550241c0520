//! The layers (managed → user → workspace), workspace discovery and merging.
//!
//! [`load`] is what `serve` and the other commands use: every file read, validated and
//! merged into one [`Effective`], or the first reason it cannot be. [`check`] reads the
//! same files the same way but keeps going, and returns every problem and finding for
//! `mcp-warden check` to print.
//!
//! Merging servers (SPEC "Merging"): the user's servers, plus the workspace's only when
//! the workspace is trusted at its current digests; a name defined in both is taken
//! from the workspace only when trusted. Whatever is configured but not started is in
//! [`Effective::skipped`] with the reason, so nothing disappears silently.
//!
//! Merging settings: `[pinning]` by [`merge_pinning`] (the stricter mode wins; a
//! trusted workspace may loosen the user's, never the managed layer's), and the policy's
//! settings the same way by [`merge_policy_settings`]. Policy rules are not merged:
//! every layer keeps its own rules and default, and a call must pass each layer
//! ([`build_policy`]).
//!
//! An invalid file in the managed or user layer, or in a trusted workspace, fails the
//! whole load. An untrusted workspace's broken file is left out instead (SPEC "Reading
//! the files"): its policy could only have tightened the user's, and a cloned
//! repository must not be able to take every server down; the client is told.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Diagnostic, Severity, Source, closest};
use super::model::{
    Effective, Layer, PinningMode, PinningSettings, Skipped, TrustState, Workspace, WorkspaceChoice,
};
use super::policy::PolicyKeys;
use super::validate::{PinningKeys, ServerDef, validate};
use super::vars::{Template, Vars, process_env};
use super::{findings, raw};
use crate::file_error::FileError;
use crate::paths::{self, Paths};
use crate::policy::{
    Action, Condition, FlowRule, LayerPolicy, Limit, Limits, OutputSettings, PolicyMode, PolicySet,
    Settings, Strictness, Trifecta, flows,
};

/// Finds the workspace root, first rule that applies (SPEC "Workspace discovery"):
///
/// - `Flag(dir)`: `dir` as it is, whether or not it holds an `mcp-warden.toml`.
/// - `Roots`: the first root that holds an `mcp-warden.toml` or lies below a directory
///   that does (walking up as for the current directory); none: the `Cwd` rule.
/// - `Cwd(dir)`: `dir` or the nearest parent that holds an `mcp-warden.toml`, walking up
///   to (not including) `home` or, outside `home`, to `/`. The home directory is never
///   a workspace: a stray `~/mcp-warden.toml` would otherwise become the workspace of
///   every project without its own, and `fs_write` the whole home.
///
/// `None`: no workspace; user-level servers and policy only.
#[must_use]
pub fn discover_workspace(choice: &WorkspaceChoice, home: &Path) -> Option<PathBuf> {
    match choice {
        WorkspaceChoice::Flag(dir) if is_home(dir, home) => None,
        WorkspaceChoice::Flag(dir) => Some(dir.clone()),
        WorkspaceChoice::Roots { roots, cwd } => roots
            .iter()
            .find_map(|root| find_upwards(root, home))
            .or_else(|| find_upwards(cwd, home)),
        WorkspaceChoice::Cwd(dir) => find_upwards(dir, home),
    }
}

/// The nearest of `start` and its parents that holds a workspace file, stopping at
/// `home` (never itself a workspace) so that neither `~/mcp-warden.toml` nor
/// `~/../mcp-warden.toml` ever applies to the user's projects.
fn find_upwards(start: &Path, home: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    let home = home.canonicalize().unwrap_or_else(|_| home.to_path_buf());
    for dir in start.ancestors() {
        if dir == home {
            break;
        }
        if paths::workspace_file(dir).is_file() {
            return Some(dir.to_path_buf());
        }
    }
    None
}

/// A `mcp-warden.toml` in the home directory, which is ignored (the home directory is
/// never a workspace): a finding for `check` and `doctor`.
#[must_use]
pub fn stray_home_file(paths: &Paths) -> Option<Diagnostic> {
    let stray = paths::workspace_file(&paths.home);
    stray.is_file().then(|| {
        Diagnostic::file(
            &stray,
            Severity::Warning,
            "ignored: the home directory is never a workspace".to_owned(),
        )
        .with_hint(
            "move it into a project directory, or put settings for every workspace in the \
             user config",
        )
    })
}

/// Whether `dir` is the home directory, which is never a workspace.
#[must_use]
pub fn is_home(dir: &Path, home: &Path) -> bool {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canonical(dir) == canonical(home)
}

/// Reads, validates and merges every layer. Variables that have no value here skip
/// their server (see [`Effective::skipped`]); anything else wrong is an error.
pub fn load(paths: &Paths, choice: &WorkspaceChoice) -> Result<Effective, ConfigError> {
    load_with(paths, choice, false)
}

/// [`load`] for `serve`: a workspace file that is not trusted and does not read or
/// validate never stops it (SPEC "Reading the files"): the workspace layer is left
/// out, the managed and user layers stand, and [`Effective::notes`] says why, for the
/// client. Anything else broken, in any layer, is an error. The other commands use
/// [`load`], which reports the broken file instead.
pub fn load_serving(paths: &Paths, choice: &WorkspaceChoice) -> Result<Effective, ConfigError> {
    load_with(paths, choice, true)
}

fn load_with(
    paths: &Paths,
    choice: &WorkspaceChoice,
    leave_out_broken: bool,
) -> Result<Effective, ConfigError> {
    let mut layers = gather(paths, choice);
    let untrusted_file = layers
        .workspace
        .as_ref()
        .filter(|w| !w.trust.is_trusted())
        .and_then(|w| w.file.clone());
    let mut analysis = analyse(paths, layers.workspace.clone(), &layers.files, false);
    if leave_out_broken
        && let Some(file) = untrusted_file
        && (!layers.problems.is_empty() || !analysis.errors.is_empty())
        && layers.problems.iter().all(|p| is_about(p, &file))
        && analysis.errors.iter().all(|d| d.path == file)
    {
        layers.files.retain(|f| f.layer != Layer::Workspace);
        layers.problems.clear();
        analysis = analyse(paths, layers.workspace, &layers.files, false);
        analysis.effective.notes.push(format!(
            "the untrusted workspace file `{}` is not valid, so it is left out (its policy \
             and servers do not apply); run `mcp-warden check` to see why",
            file.display()
        ));
    }
    if let Some(problem) = layers.problems.into_iter().next() {
        return Err(problem);
    }
    if analysis.errors.is_empty() {
        Ok(analysis.effective)
    } else {
        Err(ConfigError::Invalid {
            diagnostics: analysis.errors,
        })
    }
}

/// Whether `problem` is about `file` alone.
fn is_about(problem: &ConfigError, file: &Path) -> bool {
    match problem {
        ConfigError::Invalid { diagnostics } => diagnostics.iter().all(|d| d.path == file),
        ConfigError::File(FileError::Read { path, .. }) => path == file,
        _ => false,
    }
}

/// Everything `mcp-warden check` reports.
#[derive(Debug)]
pub struct Report {
    /// Every configuration file read, in layer order.
    pub files: Vec<(Layer, PathBuf)>,
    /// The workspace found, with its trust state.
    pub workspace: Option<Workspace>,
    /// Errors (exit 2), in layer order and, within a file, by position. Servers that
    /// cannot start because a variable has no value are errors here.
    pub errors: Vec<Diagnostic>,
    /// Risks in a valid configuration (exit 1): literal secrets, unversioned packages.
    pub findings: Vec<Diagnostic>,
    /// What [`load`] would give, as far as the files could be read: servers of a
    /// broken file are missing.
    pub effective: Effective,
}

impl Report {
    /// Whether the configuration has no errors and no findings.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.findings.is_empty()
    }
}

/// Validates every layer and collects every problem and finding, without stopping at
/// the first.
#[must_use]
pub fn check(paths: &Paths, choice: &WorkspaceChoice) -> Report {
    let layers = gather(paths, choice);
    let mut errors: Vec<Diagnostic> = layers
        .problems
        .into_iter()
        .flat_map(ConfigError::into_diagnostics)
        .collect();
    let analysis = analyse(paths, layers.workspace.clone(), &layers.files, true);
    errors.extend(analysis.errors);
    errors.extend(analysis.unresolved);
    let mut findings = analysis.findings;
    findings.extend(stray_home_file(paths));
    Report {
        files: layers
            .files
            .iter()
            .map(|f| (f.layer, f.path.clone()))
            .collect(),
        workspace: layers.workspace,
        errors,
        findings,
        effective: analysis.effective,
    }
}

/// One configuration file that exists and was read.
struct LayerFile {
    layer: Layer,
    path: PathBuf,
    text: String,
}

/// The files of every layer and what went wrong finding or reading them.
struct Layers {
    workspace: Option<Workspace>,
    files: Vec<LayerFile>,
    problems: Vec<ConfigError>,
}

fn gather(paths: &Paths, choice: &WorkspaceChoice) -> Layers {
    let mut layers = Layers {
        workspace: None,
        files: Vec::new(),
        problems: Vec::new(),
    };
    layers.read(Layer::Managed, paths.managed_policy());
    layers.read(Layer::User, paths.user_config());
    let Some(found) = discover_workspace(choice, &paths.home) else {
        return layers;
    };
    let root = match found.canonicalize().and_then(|root| {
        if root.is_dir() {
            Ok(root)
        } else {
            Err(io::Error::from(io::ErrorKind::NotADirectory))
        }
    }) {
        Ok(root) => root,
        Err(cause) => {
            layers
                .problems
                .push(ConfigError::File(FileError::Workspace {
                    path: found,
                    cause,
                }));
            return layers;
        }
    };
    // Each covered file is read once; the bytes judged for trust are the bytes parsed
    // (SPEC "Reading the files"). The lock is read here only for its digest: whoever
    // parses it later judges the bytes it reads itself (`pinning::files::read_lock`).
    let path = paths::workspace_file(&root);
    let mut trust = TrustState::NotTrusted;
    let mut file = None;
    let mut config_digest = None;
    match crate::config::trust::snapshot(&path) {
        Ok(None) => {}
        Ok(Some(snapshot)) => {
            let lock = crate::config::trust::snapshot(&root.join(paths::LOCK_FILE));
            let now = crate::config::trust::Digests {
                config: Some(snapshot.digest.clone()),
                lock: crate::config::trust::digest_of(&lock),
            };
            match crate::config::trust::judge(paths, &root, &now) {
                Ok(state) => trust = state,
                Err(e) => layers.problems.push(e.into()),
            }
            config_digest = Some(snapshot.digest);
            layers.push(Layer::Workspace, path.clone(), snapshot.bytes);
            file = Some(path);
        }
        Err(cause) => {
            layers.problems.push(ConfigError::File(FileError::Read {
                path: path.clone(),
                cause,
            }));
            file = Some(path);
        }
    }
    layers.workspace = Some(Workspace {
        root,
        file,
        trust,
        config_digest,
    });
    layers
}

impl Layers {
    /// Reads a layer's file above the workspace; a missing one is simply not there.
    /// These are the user's and the organisation's own files: a symlink is followed
    /// (dotfile managers link them), but the target must be a regular file.
    fn read(&mut self, layer: Layer, path: PathBuf) {
        match crate::durable::read_file(&path, crate::durable::Links::Follow) {
            Ok(Some(bytes)) => self.push(layer, path, bytes),
            Ok(None) => {}
            Err(cause) => self
                .problems
                .push(ConfigError::File(FileError::Read { path, cause })),
        }
    }

    /// Adds a file read once, as text.
    fn push(&mut self, layer: Layer, path: PathBuf, bytes: Vec<u8>) {
        match super::error::utf8_text(&path, bytes) {
            Ok(text) => self.files.push(LayerFile { layer, path, text }),
            Err(d) => {
                self.problems.push(ConfigError::Invalid {
                    diagnostics: vec![d],
                });
            }
        }
    }
}

struct Analysis {
    effective: Effective,
    /// Invalid configuration.
    errors: Vec<Diagnostic>,
    /// Servers skipped because a variable has no value here.
    unresolved: Vec<Diagnostic>,
    findings: Vec<Diagnostic>,
}

fn analyse(
    paths: &Paths,
    workspace: Option<Workspace>,
    files: &[LayerFile],
    with_findings: bool,
) -> Analysis {
    let mut errors = Vec::new();
    let mut findings = Vec::new();
    let sources: Vec<Source<'_>> = files
        .iter()
        .map(|f| Source::new(&f.path, &f.text))
        .collect();
    let mut defs: Vec<(usize, ServerDef)> = Vec::new();
    let mut pinning: Vec<(Layer, PinningKeys)> = Vec::new();
    let mut policies: Vec<PolicyFile<'_>> = Vec::new();
    let trust = workspace
        .as_ref()
        .map_or(&TrustState::NotTrusted, |w| &w.trust);
    // Files come managed first: the first `[audit.syslog]` is the one that counts.
    let mut audit_syslog = None;
    for (i, (file, source)) in files.iter().zip(&sources).enumerate() {
        let parsed = raw::parse(source);
        if file.layer == Layer::Workspace && !trust.is_trusted() {
            // SPEC: an untrusted layer reads no environment variable.
            errors.extend(super::vars::env_uses(source, &parsed.table));
        }
        let (config, diagnostics) = validate(file.layer, source, parsed);
        errors.extend(diagnostics);
        if with_findings {
            findings.extend(findings::findings(source, &config.servers));
        }
        defs.extend(config.servers.into_iter().map(|d| (i, d)));
        pinning.push((file.layer, config.pinning));
        audit_syslog = audit_syslog.or(config.audit_syslog);
        policies.push(PolicyFile {
            layer: file.layer,
            source: *source,
            keys: config.policy,
        });
    }

    let root = workspace.as_ref().map(|w| w.root.as_path());
    let vars = Vars {
        workspace: root,
        home: &paths.home,
        env: &process_env,
    };
    let pinning = merge_pinning(&pinning, trust.is_trusted());
    let built = build_policy(policies, trust.is_trusted(), &vars);
    errors.extend(built.errors);
    if with_findings {
        findings.extend(built.findings);
    }
    let (chosen, mut skipped) = choose_servers(&defs, files, trust);
    let mut servers = Vec::new();
    let mut unresolved = Vec::new();
    for (name, (i, def)) in chosen {
        if !def.enabled {
            skipped.push(Skipped {
                server: name,
                layer: def.layer,
                reason: "disabled (`enabled = false`)".to_owned(),
            });
            continue;
        }
        match def.resolve(&sources[*i], &vars) {
            Ok(server) => servers.push(server),
            Err(d) => {
                skipped.push(Skipped {
                    server: name.clone(),
                    layer: def.layer,
                    reason: d.message.clone(),
                });
                unresolved.push(Diagnostic {
                    message: format!("server `{name}` cannot start: {}", d.message),
                    ..d
                });
            }
        }
    }
    skipped.sort_by(|a, b| (&a.server, a.layer).cmp(&(&b.server, b.layer)));
    Analysis {
        effective: Effective {
            workspace,
            servers,
            skipped,
            files: files.iter().map(|f| f.path.clone()).collect(),
            pinning,
            policy: built.policy,
            audit_syslog,
            notes: Vec::new(),
        },
        errors,
        unresolved,
        findings,
    }
}

/// The server definition each name is taken from (SPEC "Merging": the user's, the
/// workspace's only when trusted), and the definitions passed over, with why.
fn choose_servers<'d>(
    defs: &'d [(usize, ServerDef)],
    files: &[LayerFile],
    trust: &TrustState,
) -> (BTreeMap<String, &'d (usize, ServerDef)>, Vec<Skipped>) {
    let mut chosen: BTreeMap<String, &(usize, ServerDef)> = BTreeMap::new();
    let mut skipped = Vec::new();
    for entry in defs.iter().filter(|(_, d)| d.layer == Layer::User) {
        chosen.insert(entry.1.name.as_str().to_owned(), entry);
    }
    for entry in defs.iter().filter(|(_, d)| d.layer == Layer::Workspace) {
        let name = entry.1.name.as_str().to_owned();
        let workspace_file = &files[entry.0].path;
        if trust.is_trusted() {
            if chosen.insert(name.clone(), entry).is_some() {
                skipped.push(Skipped {
                    server: name,
                    layer: Layer::User,
                    reason: format!(
                        "replaced by the definition in the trusted workspace file `{}`",
                        workspace_file.display()
                    ),
                });
            }
        } else {
            let mut reason = untrusted_reason(trust, workspace_file);
            if chosen.contains_key(&name) {
                reason.push_str("; the user config's definition is used instead");
            }
            skipped.push(Skipped {
                server: name,
                layer: Layer::Workspace,
                reason,
            });
        }
    }
    (chosen, skipped)
}

/// Merges `[pinning]` over the layers (SPEC "Merging"), given what each file sets.
///
/// - `mode` has a strictness order (`strict` > `tofu` > `off`). Above the workspace,
///   the strictest value the managed and user layers set wins (neither sets it:
///   `strict`). An untrusted workspace can only make that stricter: its value counts
///   only when it is stricter, so a cloned repository cannot loosen even the default.
///   A **trusted** workspace's value replaces the user's (and the default), so a
///   reviewed project may loosen them, but never below the managed layer's value.
/// - `ask` is a preference, not a protection: the most specific layer that sets it
///   wins, except that an untrusted workspace's is ignored. Nothing set: `false`.
///
/// `trusted` is whether the workspace is trusted at its current digests.
#[must_use]
pub fn merge_pinning(layers: &[(Layer, PinningKeys)], trusted: bool) -> PinningSettings {
    let modes: Vec<(Layer, Option<PinningMode>)> =
        layers.iter().map(|(l, keys)| (*l, keys.mode)).collect();
    let mode = merge_strictest(&modes, trusted, PinningMode::Strict, PinningMode::stricter);
    let ask = layers
        .iter()
        .rev()
        .filter(|(l, _)| trusted || *l != Layer::Workspace)
        .find_map(|(_, keys)| keys.ask);
    PinningSettings {
        mode,
        ask: ask.unwrap_or(false),
    }
}

/// Merges one setting with a strictness order over the layers (SPEC "Merging"), given
/// what each file sets: the strictest value of the managed and user layers (neither
/// sets it: `default`), made stricter by an untrusted workspace's value but never
/// looser; a **trusted** workspace's value replaces the user's and the default, bounded
/// only by the managed layer's value.
pub fn merge_strictest<T: Copy>(
    values: &[(Layer, Option<T>)],
    trusted: bool,
    default: T,
    stricter: impl Fn(T, T) -> T,
) -> T {
    let strictest = |keep: &dyn Fn(Layer) -> bool| {
        values
            .iter()
            .filter(|(l, _)| keep(*l))
            .filter_map(|(_, v)| *v)
            .reduce(&stricter)
    };
    match strictest(&|l| l == Layer::Workspace) {
        Some(ws) if trusted => strictest(&|l| l == Layer::Managed).map_or(ws, |m| stricter(m, ws)),
        ws => {
            let above = strictest(&|l| l != Layer::Workspace).unwrap_or(default);
            ws.map_or(above, |ws| stricter(above, ws))
        }
    }
}

/// Merges the policy's settings over the layers, each by [`merge_strictest`] with its
/// own strictness order: `policy.mode` (enforce > monitor), `scan_arguments` and
/// `output.strip_invisible` (true > false), `flows.trifecta` (deny > off),
/// `output.secrets` (block > redact > off), `output.injection` (block > flag > off),
/// and each limit (smaller > larger > none).
#[must_use]
pub fn merge_policy_settings(layers: &[(Layer, &PolicyKeys)], trusted: bool) -> Settings {
    fn merge<T: Strictness>(
        layers: &[(Layer, &PolicyKeys)],
        trusted: bool,
        default: T,
        get: impl Fn(&PolicyKeys) -> Option<T>,
    ) -> T {
        let values: Vec<_> = layers.iter().map(|(l, k)| (*l, get(k))).collect();
        merge_strictest(&values, trusted, default, T::stricter)
    }
    fn limit(
        layers: &[(Layer, &PolicyKeys)],
        trusted: bool,
        get: impl Fn(&PolicyKeys) -> Option<u64>,
    ) -> Option<u64> {
        let values: Vec<_> = layers
            .iter()
            .map(|(l, k)| (*l, get(k).map(|v| Limit(Some(v)))))
            .collect();
        merge_strictest(&values, trusted, Limit(None), Limit::stricter).0
    }
    let defaults = Settings::default();
    let output = OutputSettings::default();
    let mode = merge(layers, trusted, defaults.mode, |k| k.mode);
    // Mode belongs to its layer: the managed layer's `trifecta = "deny"` follows the
    // managed file's own mode, whatever the merged one.
    let trifecta_mode = layers
        .iter()
        .filter(|(_, k)| k.trifecta == Some(Trifecta::Deny))
        .map(|(l, k)| match l {
            Layer::Managed => k.mode.unwrap_or(PolicyMode::Enforce),
            _ => mode,
        })
        .reduce(PolicyMode::stricter)
        .unwrap_or(mode);
    Settings {
        mode,
        trifecta_mode,
        scan_arguments: merge(layers, trusted, defaults.scan_arguments, |k| {
            k.scan_arguments
        }),
        trifecta: merge(layers, trusted, defaults.trifecta, |k| k.trifecta),
        output: OutputSettings {
            secrets: merge(layers, trusted, output.secrets, |k| k.secrets),
            injection: merge(layers, trusted, output.injection, |k| k.injection),
            strip_invisible: merge(layers, trusted, output.strip_invisible, |k| {
                k.strip_invisible
            }),
        },
        limits: Limits {
            calls_per_minute: limit(layers, trusted, |k| k.limits.calls_per_minute),
            tool_calls_per_minute: limit(layers, trusted, |k| k.limits.tool_calls_per_minute),
            max_message_bytes: limit(layers, trusted, |k| k.limits.max_message_bytes),
            max_result_bytes: limit(layers, trusted, |k| k.limits.max_result_bytes),
        },
    }
}

/// One file's policy sections, with the file they come from.
#[derive(Debug)]
pub struct PolicyFile<'a> {
    pub layer: Layer,
    pub source: Source<'a>,
    pub keys: PolicyKeys,
}

/// The merged policy, and what merging found wrong.
#[derive(Debug)]
pub struct BuiltPolicy {
    pub policy: PolicySet,
    /// Errors: more labels than a label set holds, rules that cannot be compiled.
    pub errors: Vec<Diagnostic>,
    /// For `check`: flow rules naming labels no layer defines, a trifecta that cannot
    /// fire for want of its labels.
    pub findings: Vec<Diagnostic>,
}

/// Builds the [`PolicySet`] of every layer's policy sections (SPEC "Merging"):
///
/// - **Rules are not merged**: each file is a layer of its own, with its own rules in
///   order and its own `default` (`allow` when unset), untrusted workspace included
///   (its rules can only deny more, since a call must pass every layer).
/// - **Settings** by [`merge_policy_settings`]. The merged `mode` governs the user's
///   and the workspace's rules and flow rules; the managed layer's rules and flow
///   rules follow the managed file's own `mode` (default `enforce`), so nothing below
///   switches them to `monitor`.
/// - **Labels** are the union of every layer's, an untrusted workspace's included: a
///   label only ever makes a flow rule fire, so adding one can deny more, never less.
/// - **Flow rules** of every layer apply, in layer order (they only deny).
/// - Paths in `under` / `not_under` are expanded (`vars`) and resolved on this machine
///   now; one that cannot be (`${workspace}` without a workspace) makes its condition
///   impossible to evaluate, which fails closed.
#[must_use]
pub fn build_policy(files: Vec<PolicyFile<'_>>, trusted: bool, vars: &Vars<'_>) -> BuiltPolicy {
    let mut errors = Vec::new();
    let mut findings = Vec::new();
    let settings = {
        let keyed: Vec<(Layer, &PolicyKeys)> = files.iter().map(|f| (f.layer, &f.keys)).collect();
        merge_policy_settings(&keyed, trusted)
    };
    let managed_mode = files
        .iter()
        .find(|f| f.layer == Layer::Managed)
        .and_then(|f| f.keys.mode)
        .unwrap_or(PolicyMode::Enforce);
    let mode_of = |layer: Layer| {
        if layer == Layer::Managed {
            managed_mode
        } else {
            settings.mode
        }
    };
    let labels = merge_labels(&files, &mut errors);
    // An untrusted workspace's `${env:NAME}` is an error already; and its paths are
    // expanded without the environment all the same, so no value of it is ever read.
    let untrusted_vars = vars.without_env();
    let mut layers = Vec::new();
    let mut flow_rules: Vec<FlowRule> = Vec::new();
    for file in files {
        let PolicyFile {
            layer,
            source,
            mut keys,
        } = file;
        label_findings(&source, &keys, &labels, &mut findings);
        let vars = if layer == Layer::Workspace && !trusted {
            &untrusted_vars
        } else {
            vars
        };
        let mut rules = std::mem::take(&mut keys.rules);
        let untrusted = layer == Layer::Workspace && !trusted;
        for rule in &mut rules {
            // Free text of a repository nobody trusted is never shown (SPEC "Policy").
            if untrusted {
                rule.message = None;
            }
            let Some(when) = &mut rule.when else { continue };
            for condition in &mut when.conditions {
                if let Condition::Under(patterns) | Condition::NotUnder(patterns) = condition {
                    for pattern in patterns {
                        // Checked when the file was read: parsed again to expand it.
                        let expanded = Template::parse(&pattern.written)
                            .map_err(|e| e.to_string())
                            .and_then(|t| t.expand(vars).map_err(|e| e.to_string()));
                        let _ = pattern.resolve(expanded, vars.home);
                    }
                }
            }
        }
        let default = keys.default.unwrap_or(Action::Allow);
        match LayerPolicy::new(
            layer,
            source.path.to_path_buf(),
            default,
            mode_of(layer),
            rules,
        ) {
            Ok(mut policy) => {
                policy.untrusted = untrusted;
                layers.push(policy);
            }
            Err(e) => errors.push(Diagnostic::file(
                source.path,
                Severity::Error,
                format!("the rules' globs cannot be compiled together: {e}"),
            )),
        }
        for def in keys.flow_rules {
            flow_rules.push(FlowRule {
                layer,
                mode: mode_of(layer),
                ..def.rule
            });
        }
    }
    BuiltPolicy {
        policy: PolicySet {
            layers,
            settings,
            labels,
            flow_rules,
            home: vars.home.to_path_buf(),
        },
        errors,
        findings,
    }
}

/// The union of every layer's labels; more than a label set holds is an error at the
/// label that is one too many.
fn merge_labels(files: &[PolicyFile<'_>], errors: &mut Vec<Diagnostic>) -> flows::Labels {
    let mut entries = Vec::new();
    for file in files {
        for label in &file.keys.labels {
            for (kind, glob) in &label.globs {
                entries.push((file.layer, label.name.clone(), *kind, glob.clone()));
            }
        }
    }
    flows::Labels::new(entries).unwrap_or_else(|too_many| {
        let at = files.iter().rev().find_map(|f| {
            f.keys
                .labels
                .iter()
                .find(|l| l.name == too_many.name)
                .map(|l| f.source.error(&l.span, too_many.to_string()))
        });
        errors.push(
            at.unwrap_or_else(|| {
                Diagnostic::file(Path::new(""), Severity::Error, too_many.to_string())
            })
            .with_hint("merge labels that mean the same capability"),
        );
        flows::Labels::default()
    })
}

/// `check`'s findings on one file's use of labels: flow rules naming labels no layer
/// defines (they never fire), an explicit `trifecta = "deny"` missing its labels.
fn label_findings(
    source: &Source<'_>,
    keys: &PolicyKeys,
    labels: &flows::Labels,
    findings: &mut Vec<Diagnostic>,
) {
    let known: Vec<&str> = labels.names().iter().map(String::as_str).collect();
    for def in &keys.flow_rules {
        for (name, span) in &def.labels {
            if labels.id(name).is_some() {
                continue;
            }
            let hint = closest(name, &known).map_or_else(
                || "give tools this label in a `[labels]` table".to_owned(),
                |k| format!("did you mean `{k}`?"),
            );
            let message = format!(
                "label `{name}` of flow rule `{}` is not defined in any layer's `[labels]`: the rule never fires",
                def.rule.id
            );
            findings.push(
                source
                    .diagnostic(Severity::Warning, span, message)
                    .with_hint(hint),
            );
        }
    }
    if keys.trifecta == Some(Trifecta::Deny)
        && let Some(span) = &keys.trifecta_span
    {
        let missing: Vec<String> = [flows::PRIVATE, flows::UNTRUSTED, flows::EGRESS]
            .iter()
            .filter(|l| labels.id(l).is_none())
            .map(|l| format!("`{l}`"))
            .collect();
        if !missing.is_empty() {
            let message = format!(
                "`flows.trifecta` is `deny` but no layer's `[labels]` defines {}: it never fires",
                missing.join(", ")
            );
            findings.push(
                source
                    .diagnostic(Severity::Warning, span, message)
                    .with_hint("label the tools that read private data, take in untrusted content and send data out"),
            );
        }
    }
}

/// Why a workspace server does not start; names the command that changes it.
fn untrusted_reason(trust: &TrustState, file: &Path) -> String {
    match trust {
        TrustState::Changed { changed } => format!(
            "the workspace changed since it was trusted ({}); review it and run `mcp-warden trust` again",
            changed
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!(
            "the workspace is not trusted; review `{}` and run `mcp-warden trust` to let its servers start",
            file.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use std::fs;

    struct Env {
        _dir: tempfile::TempDir,
        base: PathBuf,
        paths: Paths,
    }

    impl Env {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
            let base = dir.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
            let home = base.join("home");
            let paths = Paths {
                managed_dir: base.join("etc"),
                config_dir: base.join("config"),
                data_dir: base.join("data"),
                home: home.clone(),
            };
            fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
            Self {
                _dir: dir,
                base,
                paths,
            }
        }

        fn write(path: &Path, text: &str) {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            }
            fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
        }

        fn dir(&self, rel: &str) -> PathBuf {
            let dir = self.base.join(rel);
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            dir
        }

        fn workspace(&self, rel: &str, text: &str) -> PathBuf {
            let dir = self.dir(rel);
            Self::write(&dir.join("mcp-warden.toml"), text);
            dir
        }

        fn load(&self, root: &Path) -> Result<Effective, ConfigError> {
            load(&self.paths, &WorkspaceChoice::Flag(root.to_path_buf()))
        }
    }

    fn names(servers: &[ServerConfig]) -> Vec<(&str, Layer)> {
        servers.iter().map(|s| (s.name.as_str(), s.layer)).collect()
    }

    #[test]
    fn flag_is_taken_as_it_is() {
        let env = Env::new();
        let dir = env.dir("home/empty");
        assert_eq!(
            discover_workspace(&WorkspaceChoice::Flag(dir.clone()), &env.paths.home),
            Some(dir)
        );
    }

    #[test]
    fn cwd_walks_up_to_the_workspace_file() {
        let env = Env::new();
        let root = env.workspace("home/proj", "");
        let deep = env.dir("home/proj/src/deep");
        assert_eq!(
            discover_workspace(&WorkspaceChoice::Cwd(deep), &env.paths.home),
            Some(root)
        );
    }

    #[test]
    fn cwd_walk_stops_at_home_which_is_never_a_workspace() {
        let env = Env::new();
        // A file above home never applies to directories below it.
        Env::write(&env.base.join("mcp-warden.toml"), "");
        let deep = env.dir("home/proj/src");
        assert_eq!(
            discover_workspace(&WorkspaceChoice::Cwd(deep.clone()), &env.paths.home),
            None
        );
        // Nor does a stray one in home itself, found by walking or named by the flag.
        Env::write(&env.paths.home.join("mcp-warden.toml"), "");
        assert_eq!(
            discover_workspace(&WorkspaceChoice::Cwd(deep), &env.paths.home),
            None
        );
        let home = env.paths.home.clone();
        assert_eq!(
            discover_workspace(&WorkspaceChoice::Cwd(home.clone()), &env.paths.home),
            None
        );
        assert_eq!(
            discover_workspace(&WorkspaceChoice::Flag(home), &env.paths.home),
            None
        );
        let report = check(&env.paths, &WorkspaceChoice::Cwd(env.dir("home/proj")));
        assert!(
            report
                .findings
                .iter()
                .any(|d| d.message.contains("home directory is never a workspace")),
            "{:?}",
            report.findings
        );
    }

    #[test]
    fn cwd_outside_home_walks_to_the_root() {
        let env = Env::new();
        let root = env.workspace("srv", "");
        let deep = env.dir("srv/a/b");
        assert_eq!(
            discover_workspace(&WorkspaceChoice::Cwd(deep), &env.paths.home),
            Some(root)
        );
    }

    #[test]
    fn roots_take_the_first_that_holds_or_lies_below_a_workspace() {
        let env = Env::new();
        let plain = env.dir("home/plain");
        let root = env.workspace("home/proj", "");
        let below = env.dir("home/proj/pkg");
        let other = env.workspace("home/other", "");
        let choice = WorkspaceChoice::Roots {
            roots: vec![plain.clone(), below, other],
            cwd: plain.clone(),
        };
        assert_eq!(discover_workspace(&choice, &env.paths.home), Some(root));
        let cwd_ws = env.workspace("home/cwd", "");
        let choice = WorkspaceChoice::Roots {
            roots: vec![plain],
            cwd: cwd_ws.clone(),
        };
        assert_eq!(discover_workspace(&choice, &env.paths.home), Some(cwd_ws));
    }

    #[test]
    fn no_files_at_all_is_an_empty_configuration() {
        let env = Env::new();
        let eff = load(&env.paths, &WorkspaceChoice::Cwd(env.paths.home.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(eff.workspace.is_none() && eff.servers.is_empty() && eff.files.is_empty());
    }

    #[test]
    fn untrusted_workspace_servers_are_skipped_naming_trust() {
        let env = Env::new();
        Env::write(&env.paths.user_config(), "[servers.u]\ncommand = \"u\"\n");
        let root = env.workspace("home/p", "[servers.w]\ncommand = \"w\"\n");
        let eff = env.load(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&eff.servers), [("u", Layer::User)]);
        assert_eq!(eff.skipped.len(), 1);
        assert_eq!(eff.skipped[0].server, "w");
        assert!(
            eff.skipped[0].reason.contains("mcp-warden trust"),
            "{}",
            eff.skipped[0].reason
        );
        assert_eq!(
            eff.files,
            [env.paths.user_config(), root.join("mcp-warden.toml")]
        );
        assert_eq!(eff.workspace.map(|w| w.trust), Some(TrustState::NotTrusted));
    }

    #[test]
    fn trusted_workspace_servers_start_and_win_same_names() {
        let env = Env::new();
        Env::write(
            &env.paths.user_config(),
            "[servers.b]\ncommand = \"user-b\"\n[servers.a]\ncommand = \"a\"\n",
        );
        let root = env.workspace(
            "home/p",
            "[servers.b]\ncommand = \"ws-b\"\n[servers.c]\ncommand = \"c\"\n",
        );
        crate::config::trust::trust(&env.paths, &root).unwrap_or_else(|e| panic!("{e}"));
        let eff = env.load(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            names(&eff.servers),
            [
                ("a", Layer::User),
                ("b", Layer::Workspace),
                ("c", Layer::Workspace)
            ]
        );
        assert_eq!(eff.servers[1].command, "ws-b");
        assert_eq!(eff.skipped.len(), 1);
        assert!(
            eff.skipped[0]
                .reason
                .starts_with("replaced by the definition in the trusted workspace")
        );
    }

    #[test]
    fn same_name_in_an_untrusted_workspace_keeps_the_users() {
        let env = Env::new();
        Env::write(
            &env.paths.user_config(),
            "[servers.b]\ncommand = \"user-b\"\n",
        );
        let root = env.workspace("home/p", "[servers.b]\ncommand = \"ws-b\"\n");
        let eff = env.load(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(eff.servers[0].command, "user-b");
        assert!(
            eff.skipped[0]
                .reason
                .contains("the user config's definition is used instead")
        );
    }

    #[test]
    fn an_edited_workspace_is_untrusted_again() {
        let env = Env::new();
        let root = env.workspace("home/p", "[servers.w]\ncommand = \"w\"\n");
        crate::config::trust::trust(&env.paths, &root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env.load(&root).map(|e| e.servers.len()).ok(), Some(1));
        Env::write(
            &root.join("mcp-warden.toml"),
            "[servers.w]\ncommand = \"evil\"\n",
        );
        let eff = env.load(&root).unwrap_or_else(|e| panic!("{e}"));
        assert!(eff.servers.is_empty());
        assert!(
            eff.skipped[0]
                .reason
                .contains("changed since it was trusted")
        );
        assert!(matches!(
            eff.workspace.map(|w| w.trust),
            Some(TrustState::Changed { .. })
        ));
    }

    #[test]
    fn disabled_servers_are_skipped_and_the_rest_sorted() {
        let env = Env::new();
        Env::write(
            &env.paths.user_config(),
            "[servers.z]\ncommand = \"z\"\n[servers.off]\ncommand = \"o\"\nenabled = false\n[servers.a]\ncommand = \"a\"\n",
        );
        let eff = env
            .load(&env.dir("home/none"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            names(&eff.servers),
            [("a", Layer::User), ("z", Layer::User)]
        );
        assert_eq!(eff.skipped[0].server, "off");
        assert!(eff.skipped[0].reason.contains("disabled"));
    }

    #[test]
    fn missing_workspace_variable_skips_only_that_server() {
        let env = Env::new();
        Env::write(
            &env.paths.user_config(),
            "[servers.fs]\ncommand = \"srv\"\nargs = [\"${workspace}\"]\n[servers.ok]\ncommand = \"ok\"\n",
        );
        let eff = load(&env.paths, &WorkspaceChoice::Cwd(env.paths.home.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&eff.servers), [("ok", Layer::User)]);
        assert_eq!(
            eff.skipped[0].reason,
            "`${workspace}` is used but no workspace was found"
        );
        let report = check(&env.paths, &WorkspaceChoice::Cwd(env.paths.home.clone()));
        assert_eq!(report.errors.len(), 1);
        assert!(
            report.errors[0]
                .to_string()
                .contains("config.toml:3:10: error: server `fs` cannot start")
        );
    }

    #[test]
    fn workspace_variable_expands_and_the_default_cwd_is_not_the_workspace() {
        let env = Env::new();
        Env::write(
            &env.paths.user_config(),
            "[servers.fs]\ncommand = \"srv\"\nargs = [\"${workspace}\"]\n",
        );
        let root = env.dir("home/p");
        let eff = env.load(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(eff.servers[0].args, [root.to_string_lossy().into_owned()]);
        assert_eq!(eff.servers[0].cwd, None);
        assert!(eff.workspace.is_some_and(|w| w.file.is_none()));
    }

    #[test]
    fn an_invalid_layer_fails_the_load_with_every_diagnostic() {
        let env = Env::new();
        Env::write(
            &env.paths.user_config(),
            "[servers.a]\ncomand = \"x\"\n[servers.b]\ncommand = 1\n",
        );
        let err = env
            .load(&env.dir("home/p"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let lines: Vec<_> = err.lines().filter(|l| l.contains(": error: ")).collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(
            lines[0].ends_with("config.toml:2:1: error: unknown key `comand` in `servers.a`"),
            "{err}"
        );
        assert!(err.contains("  hint: did you mean `command`?"));
    }

    #[test]
    fn an_invalid_untrusted_workspace_is_left_out_and_the_rest_loads() {
        let env = Env::new();
        Env::write(
            &env.paths.user_config(),
            "[servers.mine]\ncommand = \"mine\"\n",
        );
        let root = env.workspace(
            "home/p",
            "[[policy.rules]]\nid = \"r\"\ntools = [\"*\"]\nwhen = { arg = \"q\", matches = \"(\" }\naction = \"deny\"\n",
        );
        // Other commands report it.
        assert!(env.load(&root).is_err());
        let choice = WorkspaceChoice::Flag(root.clone());
        let effective = load_serving(&env.paths, &choice).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = effective.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["mine"]);
        assert!(
            effective
                .notes
                .iter()
                .any(|n| n.contains("is not valid, so it is left out")),
            "{:?}",
            effective.notes
        );
        // `check` still reports the error with its position.
        let report = check(&env.paths, &WorkspaceChoice::Flag(root.clone()));
        let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("mcp-warden.toml:4:32: error: invalid regex")),
            "{errors:?}"
        );
        // Trusted, the same file is an error: a trusted workspace never loses its
        // layer silently (a reload keeps the previous state instead).
        crate::config::trust::trust(&env.paths, &root).unwrap_or_else(|e| panic!("{e}"));
        assert!(load_serving(&env.paths, &choice).is_err());
    }

    #[test]
    fn servers_in_the_managed_layer_are_refused() {
        let env = Env::new();
        Env::write(
            &env.paths.managed_policy(),
            "[servers.a]\ncommand = \"x\"\n",
        );
        let err = env
            .load(&env.dir("home/p"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(
                "policy.toml:1:2: error: servers are not read from the managed policy file"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_flag_directory_is_an_error() {
        let env = Env::new();
        let err = env.load(&env.base.join("nope")).err();
        assert!(
            matches!(err, Some(ConfigError::File(FileError::Workspace { .. }))),
            "{err:?}"
        );
    }

    #[test]
    fn check_collects_errors_of_every_layer_and_findings() {
        let env = Env::new();
        Env::write(&env.paths.user_config(), "[servers.a]\ncomand = \"x\"\n");
        let root = env.workspace(
            "home/p",
            "[servers.n]\ncommand = \"npx\"\nargs = [\"-y\", \"pkg\"]\n[audit]\narguments = true\n",
        );
        let report = check(&env.paths, &WorkspaceChoice::Flag(root));
        assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert_eq!(report.files.len(), 2);
        assert!(!report.is_clean());
    }

    #[test]
    fn a_corrupt_trust_store_is_reported() {
        let env = Env::new();
        let root = env.workspace("home/p", "");
        Env::write(&env.paths.trust_file(), "workspaces = 3\n");
        let err = env
            .load(&root)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("trust.toml:1:14: error:"), "{err}");
    }

    fn keys(mode: Option<PinningMode>, ask: Option<bool>) -> PinningKeys {
        PinningKeys { mode, ask }
    }

    fn mode(mode: PinningMode) -> PinningKeys {
        keys(Some(mode), None)
    }

    fn merged_mode(layers: &[(Layer, PinningKeys)], trusted: bool) -> PinningMode {
        merge_pinning(layers, trusted).mode
    }

    use PinningMode::{Off, Strict, Tofu};

    #[test]
    fn pinning_defaults_to_strict_without_ask() {
        let default = PinningSettings {
            mode: Strict,
            ask: false,
        };
        assert_eq!(merge_pinning(&[], false), default);
        assert_eq!(merge_pinning(&[], true), default);
        let empty = [
            (Layer::Managed, PinningKeys::default()),
            (Layer::User, PinningKeys::default()),
            (Layer::Workspace, PinningKeys::default()),
        ];
        assert_eq!(merge_pinning(&empty, true), default);
        assert_eq!(PinningSettings::default(), default);
    }

    #[test]
    fn the_user_may_turn_pinning_off() {
        assert_eq!(merged_mode(&[(Layer::User, mode(Off))], false), Off);
        assert_eq!(merged_mode(&[(Layer::User, mode(Tofu))], true), Tofu);
        // A workspace file that does not set the mode changes nothing.
        let layers = [
            (Layer::User, mode(Off)),
            (Layer::Workspace, keys(None, Some(true))),
        ];
        assert_eq!(merged_mode(&layers, true), Off);
    }

    #[test]
    fn an_untrusted_workspace_can_tighten_but_not_loosen() {
        let loosen = [(Layer::User, mode(Strict)), (Layer::Workspace, mode(Off))];
        assert_eq!(merged_mode(&loosen, false), Strict);
        let loosen = [(Layer::User, mode(Tofu)), (Layer::Workspace, mode(Off))];
        assert_eq!(merged_mode(&loosen, false), Tofu);
        let tighten = [(Layer::User, mode(Off)), (Layer::Workspace, mode(Strict))];
        assert_eq!(merged_mode(&tighten, false), Strict);
        let tighten = [(Layer::User, mode(Off)), (Layer::Workspace, mode(Tofu))];
        assert_eq!(merged_mode(&tighten, false), Tofu);
        // Without a user value, the default is not loosened either.
        assert_eq!(merged_mode(&[(Layer::Workspace, mode(Off))], false), Strict);
        assert_eq!(
            merged_mode(&[(Layer::Workspace, mode(Tofu))], false),
            Strict
        );
        let layers = [(Layer::Managed, mode(Off)), (Layer::Workspace, mode(Tofu))];
        assert_eq!(merged_mode(&layers, false), Tofu);
    }

    #[test]
    fn a_trusted_workspace_replaces_the_users_mode() {
        let layers = [(Layer::User, mode(Strict)), (Layer::Workspace, mode(Tofu))];
        assert_eq!(merged_mode(&layers, true), Tofu);
        let layers = [(Layer::User, mode(Off)), (Layer::Workspace, mode(Strict))];
        assert_eq!(merged_mode(&layers, true), Strict);
        assert_eq!(merged_mode(&[(Layer::Workspace, mode(Off))], true), Off);
    }

    #[test]
    fn nothing_loosens_the_managed_mode() {
        let layers = [
            (Layer::Managed, mode(Strict)),
            (Layer::Workspace, mode(Off)),
        ];
        assert_eq!(merged_mode(&layers, true), Strict);
        let layers = [
            (Layer::Managed, mode(Tofu)),
            (Layer::User, mode(Off)),
            (Layer::Workspace, mode(Off)),
        ];
        assert_eq!(merged_mode(&layers, true), Tofu);
        assert_eq!(merged_mode(&layers, false), Tofu);
        let layers = [(Layer::Managed, mode(Strict)), (Layer::User, mode(Off))];
        assert_eq!(merged_mode(&layers, false), Strict);
        // Looser managed values are a floor, not a ceiling.
        let layers = [
            (Layer::Managed, mode(Off)),
            (Layer::User, mode(Tofu)),
            (Layer::Workspace, mode(Strict)),
        ];
        assert_eq!(merged_mode(&layers, true), Strict);
        assert_eq!(merged_mode(&layers[..2], false), Tofu);
    }

    #[test]
    fn ask_comes_from_the_most_specific_layer_but_not_an_untrusted_workspace() {
        let layers = [
            (Layer::Managed, keys(None, Some(true))),
            (Layer::User, keys(None, Some(false))),
        ];
        assert!(!merge_pinning(&layers, false).ask);
        assert!(merge_pinning(&layers[..1], false).ask);
        let layers = [
            (Layer::User, keys(None, Some(false))),
            (Layer::Workspace, keys(None, Some(true))),
        ];
        assert!(merge_pinning(&layers, true).ask);
        assert!(!merge_pinning(&layers, false).ask);
        let layers = [
            (Layer::User, keys(None, Some(true))),
            (Layer::Workspace, keys(None, Some(false))),
        ];
        assert!(!merge_pinning(&layers, true).ask);
        assert!(merge_pinning(&layers, false).ask);
        // An untrusted workspace alone: the default.
        assert!(!merge_pinning(&[(Layer::Workspace, keys(None, Some(true)))], false).ask);
    }

    #[test]
    fn load_merges_pinning_by_the_workspaces_trust() {
        let env = Env::new();
        Env::write(&env.paths.managed_policy(), "[pinning]\nmode = \"tofu\"\n");
        Env::write(
            &env.paths.user_config(),
            "[pinning]\nmode = \"strict\"\nask = false\n",
        );
        let root = env.workspace("home/p", "[pinning]\nmode = \"off\"\nask = true\n");
        let strict = PinningSettings {
            mode: Strict,
            ask: false,
        };
        let eff = env.load(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            eff.pinning, strict,
            "an untrusted workspace changes nothing"
        );
        crate::config::trust::trust(&env.paths, &root).unwrap_or_else(|e| panic!("{e}"));
        let eff = env.load(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            eff.pinning,
            PinningSettings {
                mode: Tofu,
                ask: true
            },
            "trusted: replaces the user's, bounded by the managed layer"
        );
        let report = check(&env.paths, &WorkspaceChoice::Flag(root.clone()));
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.effective.pinning.mode, Tofu);
        // No workspace at all: managed and user only.
        let eff = env
            .load(&env.dir("home/none"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(eff.pinning, strict);
    }

    #[test]
    fn a_bad_pinning_value_fails_the_load_at_its_position() {
        let env = Env::new();
        Env::write(&env.paths.user_config(), "[pinning]\nmode = \"loose\"\n");
        let err = env
            .load(&env.dir("home/p"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("config.toml:2:8: error: unknown value `loose` in `pinning`"),
            "{err}"
        );
        assert!(
            err.contains("expected one of `strict`, `tofu`, `off`"),
            "{err}"
        );
    }

    fn policy_keys(text: &str) -> PolicyKeys {
        let source = Source::new(Path::new("f.toml"), text);
        let mut parsed = raw::parse(&source);
        let mut diags = std::mem::take(&mut parsed.diagnostics);
        let keys =
            super::super::policy::validate(&source, &parsed.table, &mut parsed.raw, &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        keys
    }

    fn settings(layers: &[(Layer, &str)], trusted: bool) -> Settings {
        let keys: Vec<(Layer, PolicyKeys)> =
            layers.iter().map(|(l, t)| (*l, policy_keys(t))).collect();
        let refs: Vec<(Layer, &PolicyKeys)> = keys.iter().map(|(l, k)| (*l, k)).collect();
        merge_policy_settings(&refs, trusted)
    }

    #[test]
    fn policy_settings_default_to_the_strict_side() {
        let s = settings(&[], false);
        assert_eq!(s, Settings::default());
        assert_eq!(s.mode, PolicyMode::Enforce);
        assert!(s.scan_arguments && s.output.strip_invisible);
        assert_eq!(s.trifecta, Trifecta::Deny);
        assert_eq!(s.output.secrets, crate::policy::SecretsAction::Redact);
        assert_eq!(s.limits, Limits::default());
    }

    #[test]
    fn the_managed_trifecta_keeps_its_own_mode_under_a_users_monitor() {
        let managed = "[flows]\ntrifecta = \"deny\"\n";
        let user = "[policy]\nmode = \"monitor\"\n";
        let s = settings(&[(Layer::Managed, managed), (Layer::User, user)], false);
        assert_eq!(s.mode, PolicyMode::Monitor);
        assert_eq!(s.trifecta_mode, PolicyMode::Enforce);
        // The user's own trifecta follows the user's mode.
        let own = "[policy]\nmode = \"monitor\"\n[flows]\ntrifecta = \"deny\"\n";
        let s = settings(&[(Layer::User, own)], false);
        assert_eq!(s.trifecta_mode, PolicyMode::Monitor);
        // A managed file in monitor mode: its trifecta too.
        let watching = "[policy]\nmode = \"monitor\"\n[flows]\ntrifecta = \"deny\"\n";
        let s = settings(&[(Layer::Managed, watching)], false);
        assert_eq!(s.trifecta_mode, PolicyMode::Monitor);
    }

    #[test]
    fn an_untrusted_workspace_only_tightens_policy_settings() {
        use crate::policy::{InjectionAction, SecretsAction};
        let user = "[policy]\nmode = \"monitor\"\nscan_arguments = false\n[output]\nsecrets = \"off\"\n\
                    injection = \"flag\"\nstrip_invisible = false\n[limits]\ncalls_per_minute = 100\n\
                    [flows]\ntrifecta = \"off\"\n";
        let tighter = "[policy]\nmode = \"enforce\"\nscan_arguments = true\n[output]\nsecrets = \"block\"\n\
                       injection = \"block\"\nstrip_invisible = true\n[limits]\ncalls_per_minute = 10\n\
                       max_result_bytes = 1000\n[flows]\ntrifecta = \"deny\"\n";
        let looser =
            "[output]\nsecrets = \"off\"\ninjection = \"off\"\n[limits]\ncalls_per_minute = 1000\n";
        let s = settings(&[(Layer::User, user), (Layer::Workspace, tighter)], false);
        assert_eq!(s.mode, PolicyMode::Enforce);
        assert!(s.scan_arguments && s.output.strip_invisible);
        assert_eq!(s.output.secrets, SecretsAction::Block);
        assert_eq!(s.output.injection, InjectionAction::Block);
        assert_eq!(s.limits.calls_per_minute, Some(10));
        assert_eq!(s.limits.max_result_bytes, Some(1000));
        assert_eq!(s.trifecta, Trifecta::Deny);
        // Looser values of an untrusted workspace are ignored, defaults included.
        let s = settings(&[(Layer::User, user), (Layer::Workspace, looser)], false);
        assert_eq!(s.output.injection, InjectionAction::Flag);
        assert_eq!(s.limits.calls_per_minute, Some(100));
        let s = settings(&[(Layer::Workspace, looser)], false);
        assert_eq!(s.output.secrets, SecretsAction::Redact);
        assert_eq!(
            s.limits.calls_per_minute,
            Some(1000),
            "a limit is tighter than none"
        );
    }

    #[test]
    fn a_trusted_workspace_replaces_the_users_policy_settings_within_the_managed_ones() {
        use crate::policy::SecretsAction;
        let user = "[output]\nsecrets = \"block\"\n[limits]\ncalls_per_minute = 10\n[policy]\nmode = \"enforce\"\n";
        let ws = "[output]\nsecrets = \"off\"\n[limits]\ncalls_per_minute = 500\n[policy]\nmode = \"monitor\"\n";
        let s = settings(&[(Layer::User, user), (Layer::Workspace, ws)], true);
        assert_eq!(s.output.secrets, SecretsAction::Off);
        assert_eq!(s.limits.calls_per_minute, Some(500));
        assert_eq!(s.mode, PolicyMode::Monitor);
        let managed = "[output]\nsecrets = \"redact\"\n[limits]\ncalls_per_minute = 100\n[policy]\nmode = \"enforce\"\n";
        let s = settings(
            &[
                (Layer::Managed, managed),
                (Layer::User, user),
                (Layer::Workspace, ws),
            ],
            true,
        );
        assert_eq!(
            s.output.secrets,
            SecretsAction::Redact,
            "never below the managed value"
        );
        assert_eq!(s.limits.calls_per_minute, Some(100));
        assert_eq!(s.mode, PolicyMode::Enforce);
        // Without a workspace value, the user's stands.
        let s = settings(&[(Layer::User, user), (Layer::Workspace, "")], true);
        assert_eq!(s.limits.calls_per_minute, Some(10));
    }

    #[test]
    fn load_builds_one_policy_layer_per_file() {
        let env = Env::new();
        Env::write(
            &env.paths.managed_policy(),
            "[[policy.rules]]\nid = \"org\"\ntools = [\"*__delete\"]\naction = \"deny\"\n",
        );
        Env::write(
            &env.paths.user_config(),
            "[policy]\nmode = \"monitor\"\n[labels]\nprivate = [\"fs__*\"]\n",
        );
        let root = env.workspace(
            "home/p",
            "[policy]\ndefault = \"deny\"\n[labels]\nprivate = [\"db__*\"]\n",
        );
        let eff = env.load(&root).unwrap_or_else(|e| panic!("{e}"));
        let layers: Vec<_> = eff
            .policy
            .layers
            .iter()
            .map(|l| (l.layer, l.default, l.mode, l.rules.len()))
            .collect();
        assert_eq!(
            layers,
            [
                (Layer::Managed, Action::Allow, PolicyMode::Enforce, 1),
                (Layer::User, Action::Allow, PolicyMode::Monitor, 0),
                (Layer::Workspace, Action::Deny, PolicyMode::Monitor, 0),
            ]
        );
        assert_eq!(eff.policy.labels_of("db__query"), ["private"]);
        assert_eq!(eff.policy.labels_of("fs__read"), ["private"]);
        assert_eq!(eff.policy.home, env.paths.home);
    }

    #[test]
    fn check_reports_flow_labels_no_layer_defines() {
        let env = Env::new();
        Env::write(
            &env.paths.user_config(),
            "[labels]\negress = [\"fetch__*\"]\nsecrets = [\"vault__*\"]\n[flows]\ntrifecta = \"deny\"\n",
        );
        let root = env.workspace(
            "home/p",
            "[[flows.rules]]\nid = \"f\"\nafter = [\"secret\"]\ndeny = [\"egress\"]\n",
        );
        let report = check(&env.paths, &WorkspaceChoice::Flag(root));
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        assert_eq!(findings.len(), 2, "{findings:#?}");
        assert!(findings[0].contains("config.toml:5:1: warning: `flows.trifecta` is `deny` but no layer's `[labels]` defines `private`, `untrusted`"), "{findings:#?}");
        assert!(
            findings[1].contains(
                "mcp-warden.toml:3:10: warning: label `secret` of flow rule `f` is not defined"
            ),
            "{findings:#?}"
        );
        assert!(
            findings[1].contains("did you mean `secrets`?"),
            "{findings:#?}"
        );
    }
}
