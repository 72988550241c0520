//! Rules of one layer (`[[policy.rules]]`) and how a layer decides on a call.
//!
//! Within a layer the first rule that matches decides; no rule matches: the layer's
//! `default`. A rule matches when its selector covers the call (`tools`, `resources`
//! or `prompts` globs) and every condition of its `when` holds.
//!
//! # Three-valued conditions (fail closed)
//! A condition can hold, fail, or be impossible to evaluate (the argument is missing or
//! of the wrong type, a path cannot be resolved, an annotation is unknown because the
//! tool is not pinned, two readings of a path disagree). Conditions combine with
//! Kleene logic ([`Tri`]): one that fails makes the `when` fail, else one that cannot
//! be evaluated makes it unknown. An unknown `when` **matches** a `deny` or `ask` rule
//! and **does not match** an `allow` rule, so doubt always lands on the stricter side.
//!
//! # Arrays
//! On an array argument, the positive conditions (`under`, `matches`, `max_len`) hold
//! when they hold for every element, and the negative ones (`not_under`,
//! `not_matches`) when they hold for any element, so `not_x` is exactly the negation of
//! `x` (the SPEC's rule for `under` / `not_under`, applied to all of them). `equals` and
//! `one_of` compare the whole value.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use globset::{Candidate, Glob, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde_json::Value;

use super::Layer;
use super::path::{self, PathError};
use super::settings::{Action, PolicyMode};
use super::{Call, Kind};

/// Kleene's three truth values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    /// Cannot be evaluated.
    Unknown,
}

impl Tri {
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::No, _) | (_, Self::No) => Self::No,
            (Self::Yes, Self::Yes) => Self::Yes,
            _ => Self::Unknown,
        }
    }

    #[must_use]
    pub fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Yes, _) | (_, Self::Yes) => Self::Yes,
            (Self::No, Self::No) => Self::No,
            _ => Self::Unknown,
        }
    }

    pub(crate) fn from_bool(b: bool) -> Self {
        if b { Self::Yes } else { Self::No }
    }

    /// `Yes` when every reading says yes, `No` when every one says no, else unknown.
    fn agree(mut readings: impl Iterator<Item = Self>) -> Self {
        let Some(first) = readings.next() else {
            return Self::Unknown;
        };
        readings.fold(first, |acc, r| if acc == r { acc } else { Self::Unknown })
    }

    /// Whether a rule with this `when` result applies, for its action (fail closed).
    #[must_use]
    pub fn matches_for(self, action: Action) -> bool {
        match self {
            Self::Yes => true,
            Self::No => false,
            Self::Unknown => action != Action::Allow,
        }
    }
}

impl std::ops::Not for Tri {
    type Output = Self;

    fn not(self) -> Self {
        match self {
            Self::Yes => Self::No,
            Self::No => Self::Yes,
            Self::Unknown => Self::Unknown,
        }
    }
}

/// Which argument (or annotation) a `when` looks at: a top-level name, or a JSON
/// pointer when it starts with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgRef {
    pub written: String,
    /// A pointer's reference tokens, unescaped once here rather than on every call.
    tokens: Option<Vec<String>>,
}

impl ArgRef {
    #[must_use]
    pub fn new(written: &str) -> Self {
        let tokens = written.strip_prefix('/').map(|rest| {
            rest.split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect()
        });
        Self {
            written: written.to_owned(),
            tokens,
        }
    }

    /// The value it names in `root` (an object), when there is one.
    #[must_use]
    pub fn lookup<'v>(&self, root: Option<&'v Value>) -> Option<&'v Value> {
        let root = root?;
        let Some(tokens) = &self.tokens else {
            return root.as_object()?.get(&self.written);
        };
        tokens.iter().try_fold(root, |value, token| match value {
            Value::Object(map) => map.get(token),
            Value::Array(items) => {
                // RFC 6901: a decimal index without leading zeros.
                let ok = token == "0" || (!token.starts_with('0') && !token.is_empty());
                ok.then(|| token.parse::<usize>().ok())
                    .flatten()
                    .and_then(|i| items.get(i))
            }
            _ => None,
        })
    }
}

/// A directory of `under` / `not_under`, as written and as resolved at load. Its
/// variables are configuration's business: config checks them, expands them and hands
/// the text to [`PathPattern::resolve`].
#[derive(Debug, Clone)]
pub struct PathPattern {
    /// As written (`${workspace}/src`).
    pub written: String,
    /// Whether the environment goes into it (`${env:NAME}`): then the expanded text and
    /// the directory are never shown.
    pub(crate) from_env: bool,
    /// The real directory (variables expanded, `~` expanded, symlinks resolved), or
    /// why there is none here (`${workspace}` without a workspace): a condition using
    /// it then cannot be evaluated.
    pub resolved: Result<PathBuf, String>,
}

impl PathPattern {
    /// A pattern whose variables are checked but not expanded yet; `from_env`: one of
    /// them reads the environment.
    #[must_use]
    pub fn new(written: String, from_env: bool) -> Self {
        Self {
            written,
            from_env,
            resolved: Err("not resolved yet".to_owned()),
        }
    }

    /// Resolves the directory on this machine from `expanded`, the pattern with its
    /// variables expanded (or why they could not be), `~` standing for `home`.
    ///
    /// Messages name the pattern as written, never the expanded text: a value read
    /// from the environment must not reach a blocked result, a record or a log line.
    pub fn resolve(
        &mut self,
        expanded: Result<String, String>,
        home: &Path,
    ) -> &Result<PathBuf, String> {
        let written = &self.written;
        let secret = self.from_env;
        self.resolved = expanded.and_then(|text| {
            let p = path::expand_tilde(Path::new(&text), home)
                .ok_or_else(|| format!("`{written}`: `~user` paths are not supported"))?;
            if !p.is_absolute() {
                return Err(format!("`{written}` is not an absolute path"));
            }
            path::resolve(&p).map_err(|e| {
                if secret {
                    format!("`{written}` cannot be resolved")
                } else {
                    e.to_string()
                }
            })
        });
        &self.resolved
    }

    /// The directory to show beside the pattern as written, when it differs and may be
    /// shown (not when the environment went into it).
    fn shown_dir(&self) -> Option<String> {
        match &self.resolved {
            Ok(dir) if dir.as_os_str() != self.written.as_str() && !self.from_env => {
                Some(dir.display().to_string())
            }
            _ => None,
        }
    }
}

/// One condition of a `when`.
#[derive(Debug, Clone)]
pub enum Condition {
    Under(Vec<PathPattern>),
    NotUnder(Vec<PathPattern>),
    Matches(Regex),
    NotMatches(Regex),
    Equals(Value),
    OneOf(Vec<Value>),
    MaxLen(u64),
    /// The tool's annotation equals this value (`true` when `equals` is not given).
    Annotation(Value),
}

impl Condition {
    /// The key as written in a `when` table.
    #[must_use]
    pub fn key(&self) -> &'static str {
        match self {
            Self::Under(_) => "under",
            Self::NotUnder(_) => "not_under",
            Self::Matches(_) => "matches",
            Self::NotMatches(_) => "not_matches",
            Self::Equals(_) => "equals",
            Self::OneOf(_) => "one_of",
            Self::MaxLen(_) => "max_len",
            Self::Annotation(_) => "annotation",
        }
    }

    /// The condition as TOML (`not_under = ["${workspace}"]`).
    #[must_use]
    pub fn show(&self, annotation: Option<&ArgRef>) -> String {
        let list = |ps: &[PathPattern]| {
            let items: Vec<String> = ps.iter().map(|p| toml_str(&p.written)).collect();
            format!("[{}]", items.join(", "))
        };
        match self {
            Self::Under(ps) | Self::NotUnder(ps) => format!("{} = {}", self.key(), list(ps)),
            Self::Matches(r) | Self::NotMatches(r) => {
                format!("{} = {}", self.key(), toml_str(r.as_str()))
            }
            Self::Equals(v) => format!("equals = {v}"),
            Self::OneOf(vs) => format!("one_of = {}", Value::Array(vs.clone())),
            Self::MaxLen(n) => format!("max_len = {n}"),
            Self::Annotation(v) => format!(
                "annotation = {}, equals = {v}",
                toml_str(annotation.map_or("", |a| a.written.as_str()))
            ),
        }
    }
}

fn toml_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A rule's `when`: every condition must hold.
#[derive(Debug, Clone)]
pub struct When {
    /// The argument the conditions other than `annotation` look at.
    pub arg: Option<ArgRef>,
    /// The annotation `Condition::Annotation` looks at.
    pub annotation: Option<ArgRef>,
    pub conditions: Vec<Condition>,
    /// `arg`'s place in its layer's per-call lookup cache (set by [`LayerPolicy::new`]),
    /// so that fifty rules on the same argument look it up once.
    pub(crate) slot: usize,
}

impl When {
    /// A `when` of these conditions.
    #[must_use]
    pub fn new(
        arg: Option<ArgRef>,
        annotation: Option<ArgRef>,
        conditions: Vec<Condition>,
    ) -> Self {
        Self {
            arg,
            annotation,
            conditions,
            slot: 0,
        }
    }
}

/// One argument in [`Lookups`].
#[derive(Clone, Copy)]
enum Slot<'v> {
    NotYet,
    /// Looked up: the value, or `None` when the argument is missing.
    Found(Option<&'v Value>),
}

/// The arguments looked up so far in one evaluation, by slot.
pub(crate) struct Lookups<'v> {
    slots: Vec<Slot<'v>>,
}

impl<'v> Lookups<'v> {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: vec![Slot::NotYet; slots],
        }
    }

    fn get(&mut self, slot: usize, arg: &ArgRef, root: Option<&'v Value>) -> Option<&'v Value> {
        match self.slots.get_mut(slot) {
            Some(Slot::Found(found)) => *found,
            Some(cached) => {
                let found = arg.lookup(root);
                *cached = Slot::Found(found);
                found
            }
            None => arg.lookup(root),
        }
    }
}

/// What one condition said about one call, with the reason when asked for.
#[derive(Debug, Clone)]
pub struct ConditionResult {
    /// The condition as written.
    pub condition: String,
    pub result: Tri,
    /// Why, in words (empty unless details were asked for).
    pub why: String,
}

/// The files and directories a call's conditions are judged against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    pub call: &'a Call<'a>,
    pub home: &'a Path,
}

impl When {
    /// Whether the conditions hold for `call`: the combined result, and each
    /// condition's own when `detail` (else an empty list).
    pub(crate) fn evaluate<'v>(
        &self,
        env: Env<'v>,
        lookups: &mut Lookups<'v>,
        detail: bool,
    ) -> (Tri, Vec<ConditionResult>) {
        let mut all = Tri::Yes;
        let mut results = Vec::new();
        let value = self
            .arg
            .as_ref()
            .and_then(|a| lookups.get(self.slot, a, env.call.arguments));
        for condition in &self.conditions {
            let (result, why) = self.check(condition, value, env, detail);
            all = all.and(result);
            if detail {
                results.push(ConditionResult {
                    condition: condition.show(self.annotation.as_ref()),
                    result,
                    why: why.unwrap_or_default(),
                });
            } else if all == Tri::No {
                break;
            }
        }
        (all, results)
    }

    fn check(
        &self,
        condition: &Condition,
        value: Option<&Value>,
        env: Env<'_>,
        detail: bool,
    ) -> (Tri, Option<String>) {
        if let Condition::Annotation(expected) = condition {
            let name = self.annotation.as_ref().map_or("", |a| a.written.as_str());
            return annotation(
                env.call.annotations,
                name,
                self.annotation.as_ref(),
                expected,
                detail,
            );
        }
        let Some(arg) = &self.arg else {
            return (Tri::Unknown, detail.then(|| "no `arg` is named".to_owned()));
        };
        let Some(value) = value else {
            let why = detail.then(|| format!("argument `{}` is missing", arg.written));
            return (Tri::Unknown, why);
        };
        let name = &arg.written;
        match condition {
            Condition::Under(patterns) => under_all(name, value, patterns, env, detail),
            Condition::NotUnder(patterns) => {
                let (t, why) = under_all(name, value, patterns, env, detail);
                (!t, why)
            }
            Condition::Matches(re) => matches_all(name, value, re, detail),
            Condition::NotMatches(re) => {
                let (t, why) = matches_all(name, value, re, detail);
                (!t, why)
            }
            Condition::Equals(expected) => {
                let options = std::slice::from_ref(expected);
                let t = super::coerce::equals_any(value, options, name, env.call.schema);
                let why = detail.then(|| {
                    let is = match t {
                        Tri::Yes => "equals",
                        Tri::Unknown => "may equal (as a server coerces it)",
                        Tri::No => "does not equal",
                    };
                    format!("`{name}` ({}) {is} {expected}", short(value))
                });
                (t, why)
            }
            Condition::OneOf(options) => {
                let t = super::coerce::equals_any(value, options, name, env.call.schema);
                let why = detail.then(|| {
                    let is = match t {
                        Tri::Yes => "is",
                        Tri::Unknown => "may be (as a server coerces it)",
                        Tri::No => "is not",
                    };
                    format!(
                        "`{name}` ({}) {is} one of {}",
                        short(value),
                        Value::Array(options.clone())
                    )
                });
                (t, why)
            }
            Condition::MaxLen(max) => max_len_all(name, value, *max, detail),
            Condition::Annotation(_) => (Tri::Unknown, None),
        }
    }
}

/// A value for a message: strings and numbers as JSON, cut short when long.
fn short(value: &Value) -> String {
    const MAX: usize = 80;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON equality, except that numbers compare by value (`1` equals `1.0`).
#[must_use]
pub fn json_eq(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => {
            l == r || matches!((l.as_f64(), r.as_f64()), (Some(lf), Some(rf)) if lf == rf)
        }
        (Value::Array(l), Value::Array(r)) => {
            l.len() == r.len() && l.iter().zip(r).all(|(li, ri)| json_eq(li, ri))
        }
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len()
                && l.iter()
                    .all(|(key, lv)| r.get(key).is_some_and(|rv| json_eq(lv, rv)))
        }
        _ => left == right,
    }
}

/// One element of a value: its index in an array (`None` for a lone string) and its
/// text (`None` when it is not a string).
type Element<'v> = (Option<usize>, Option<&'v str>);

/// A string, or the elements of an array, for the element-wise conditions: each with
/// its index in the array and its text (`None` when it is not a string). `Err` names
/// what the value is instead. Allocates nothing.
fn elements(value: &Value) -> Result<(usize, impl Iterator<Item = Element<'_>>), &'static str> {
    let (single, items) = match value {
        Value::String(s) => (Some(s.as_str()), &[][..]),
        Value::Array(items) => (None, items.as_slice()),
        other => return Err(type_name(other)),
    };
    let count = if single.is_some() { 1 } else { items.len() };
    let iter = single
        .map(|s| (None, Some(s)))
        .into_iter()
        .chain(items.iter().enumerate().map(|(i, v)| (Some(i), v.as_str())));
    Ok((count, iter))
}

fn element_name(name: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("`{name}[{i}]`"),
        None => format!("`{name}`"),
    }
}

/// Every element of a string or array value passes `test` (Kleene AND); the reason
/// is the first element that does not, or a summary.
fn for_all(
    name: &str,
    value: &Value,
    detail: bool,
    mut test: impl FnMut(&str, bool) -> (Tri, Option<String>),
    holds: &str,
) -> (Tri, Option<String>) {
    let (count, items) = match elements(value) {
        Ok(items) => items,
        Err(kind) => {
            let why =
                detail.then(|| format!("`{name}` is {kind}, not a string or an array of strings"));
            return (Tri::Unknown, why);
        }
    };
    let mut all = Tri::Yes;
    // With details: the first element that says no, the first that cannot say, and
    // the first that says yes.
    let mut first: [Option<String>; 3] = [None, None, None];
    for (index, item) in items {
        let (t, why) = match item {
            Some(s) => test(s, detail),
            None => (
                Tri::Unknown,
                detail.then(|| "it is not a string".to_owned()),
            ),
        };
        all = all.and(t);
        if detail {
            let slot = &mut first[match t {
                Tri::No => 0,
                Tri::Unknown => 1,
                Tri::Yes => 2,
            }];
            if slot.is_none() {
                *slot = Some(format!(
                    "{}: {}",
                    element_name(name, index),
                    why.unwrap_or_default()
                ));
            }
        } else if all == Tri::No {
            break;
        }
    }
    let [no, unknown, yes] = first;
    let why = detail.then(|| match all {
        Tri::No => no.unwrap_or_default(),
        Tri::Unknown => unknown.unwrap_or_default(),
        Tri::Yes if count == 1 => yes.unwrap_or_default(),
        Tri::Yes if count == 0 => format!("`{name}` is an empty array"),
        Tri::Yes => format!("every element of `{name}` {holds}"),
    });
    (all, why)
}

fn under_all(
    name: &str,
    value: &Value,
    patterns: &[PathPattern],
    env: Env<'_>,
    detail: bool,
) -> (Tri, Option<String>) {
    for_all(
        name,
        value,
        detail,
        |s, detail| under_one(s, patterns, env, detail),
        "is under one of the directories",
    )
}

/// Whether one path is under one of `patterns`, over every reading of the path.
fn under_one(
    text: &str,
    patterns: &[PathPattern],
    env: Env<'_>,
    detail: bool,
) -> (Tri, Option<String>) {
    let readings = match path::readings(text, env.call.cwd, env.home) {
        Ok(r) => r,
        Err(e) => return (Tri::Unknown, detail.then(|| cannot(&e))),
    };
    let per_reading = |p: &PathBuf| {
        patterns.iter().fold(Tri::No, |acc, pattern| {
            acc.or(match &pattern.resolved {
                Ok(dir) => Tri::from_bool(p.starts_with(dir)),
                Err(_) => Tri::Unknown,
            })
        })
    };
    let t = Tri::agree(readings.iter().map(per_reading));
    let why = detail.then(|| {
        let shown: Vec<String> = readings
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect();
        let resolved = if readings.len() == 1 && readings[0] == Path::new(text) {
            format!("`{text}`")
        } else {
            format!("`{text}` (resolves to {})", shown.join(" or "))
        };
        let dirs: Vec<String> = patterns
            .iter()
            .map(|p| match (&p.resolved, p.shown_dir()) {
                (Ok(_), None) => format!("`{}`", p.written),
                (Ok(_), Some(dir)) => format!("`{}` (`{dir}`)", p.written),
                (Err(why), _) => format!("`{}` (unknown here: {why})", p.written),
            })
            .collect();
        let dirs = dirs.join(", ");
        match t {
            Tri::Yes => format!("{resolved} is under {dirs}"),
            Tri::No => format!("{resolved} is not under {dirs}"),
            Tri::Unknown if readings.len() > 1 => {
                format!("{resolved}: its readings disagree on being under {dirs}")
            }
            Tri::Unknown => format!("{resolved}: cannot tell whether it is under {dirs}"),
        }
    });
    (t, why)
}

fn cannot(e: &PathError) -> String {
    e.to_string()
}

fn matches_all(name: &str, value: &Value, re: &Regex, detail: bool) -> (Tri, Option<String>) {
    for_all(
        name,
        value,
        detail,
        |s, detail| {
            let t = Tri::from_bool(re.is_match(s));
            let why = detail.then(|| {
                let does = if t == Tri::Yes {
                    "matches"
                } else {
                    "does not match"
                };
                format!(
                    "{} {does} `{}`",
                    short(&Value::String(s.to_owned())),
                    re.as_str()
                )
            });
            (t, why)
        },
        "matches",
    )
}

fn max_len_all(name: &str, value: &Value, max: u64, detail: bool) -> (Tri, Option<String>) {
    for_all(
        name,
        value,
        detail,
        |s, detail| {
            let len = s.chars().count();
            let t = Tri::from_bool(u64::try_from(len).is_ok_and(|l| l <= max));
            let why = detail.then(|| {
                let is = if t == Tri::Yes {
                    "at most"
                } else {
                    "more than"
                };
                format!("{len} characters, {is} {max}")
            });
            (t, why)
        },
        "is short enough",
    )
}

fn annotation(
    annotations: Option<&Value>,
    name: &str,
    reference: Option<&ArgRef>,
    expected: &Value,
    detail: bool,
) -> (Tri, Option<String>) {
    let Some(all) = annotations else {
        let why = detail.then(|| {
            "annotations are known only for pinned tools, and this one's are not known".to_owned()
        });
        return (Tri::Unknown, why);
    };
    let Some(value) = reference.and_then(|r| r.lookup(Some(all))) else {
        let why = detail.then(|| format!("the tool has no annotation `{name}`"));
        return (Tri::Unknown, why);
    };
    let t = Tri::from_bool(json_eq(value, expected));
    let why = detail.then(|| {
        let is = if t == Tri::Yes {
            "equals"
        } else {
            "does not equal"
        };
        format!("annotation `{name}` ({value}) {is} {expected}")
    });
    (t, why)
}

/// A glob as written and compiled.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub written: String,
    pub glob: Glob,
}

/// Which calls a rule covers: globs over exposed tool names, resource URIs and
/// exposed prompt names.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub tools: Vec<Pattern>,
    pub resources: Vec<Pattern>,
    pub prompts: Vec<Pattern>,
}

impl Selector {
    /// The globs of one kind.
    #[must_use]
    pub fn of(&self, kind: Kind) -> &[Pattern] {
        match kind {
            Kind::Tool => &self.tools,
            Kind::Resource => &self.resources,
            Kind::Prompt => &self.prompts,
        }
    }
}

/// One `[[policy.rules]]` entry, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    /// The line of the rule's `id` in its file (1-based), for people.
    pub line: usize,
    pub selector: Selector,
    pub when: Option<When>,
    pub action: Action,
    pub message: Option<String>,
}

/// One glob set per kind over every rule of a layer, so one pass finds the rules
/// whose selector covers a name. A glob written in several rules is compiled once.
#[derive(Debug, Clone, Default)]
struct Index {
    set: GlobSet,
    /// The rules of each distinct glob in `set`, in order.
    owners: Vec<Vec<usize>>,
    rules: usize,
}

impl Index {
    fn build(rules: &[Rule], kind: Kind) -> Result<Self, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        let mut distinct: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            for pattern in rule.selector.of(kind) {
                let at = *distinct.entry(pattern.glob.glob()).or_insert_with(|| {
                    builder.add(pattern.glob.clone());
                    owners.push(Vec::new());
                    owners.len() - 1
                });
                if owners[at].last() != Some(&i) {
                    owners[at].push(i);
                }
            }
        }
        Ok(Self {
            set: builder.build()?,
            owners,
            rules: rules.len(),
        })
    }

    /// The rules covering `name`, in order.
    fn covering(&self, name: &str) -> Vec<usize> {
        if self.owners.is_empty() {
            return Vec::new();
        }
        let mut globs = Vec::new();
        self.set
            .matches_candidate_into(&Candidate::new(name), &mut globs);
        match globs.as_slice() {
            [] => Vec::new(),
            [one] => self.owners[*one].clone(),
            many => {
                let mut marked = vec![0u64; self.rules.div_ceil(64)];
                for &g in many {
                    for &r in &self.owners[g] {
                        marked[r / 64] |= 1 << (r % 64);
                    }
                }
                (0..self.rules)
                    .filter(|r| marked[r / 64] & (1 << (r % 64)) != 0)
                    .collect()
            }
        }
    }
}

/// One layer's policy: its rules in order, its default, the mode its denials have.
#[derive(Debug, Clone)]
pub struct LayerPolicy {
    pub layer: Layer,
    /// The file the rules come from.
    pub file: PathBuf,
    /// For calls no rule matches. Default `allow`.
    pub default: Action,
    /// Whether this layer's denials block: the managed layer's own `mode`; for the user
    /// and workspace layers the merged mode (see [`super::Settings::mode`]).
    pub mode: PolicyMode,
    pub rules: Vec<Rule>,
    /// An untrusted workspace's layer: none of its free text (a rule's `message`, the
    /// patterns and values of its conditions) is shown to the model or the user, only
    /// its rule ids (SPEC "Policy"). Default `false`.
    pub untrusted: bool,
    index: [Index; 3],
    /// How many distinct arguments the rules look at (see [`When::slot`]).
    arg_slots: usize,
}

/// Why a rule did not decide a call.
#[derive(Debug, Clone)]
pub enum PassedOver {
    /// Its `tools` / `resources` / `prompts` do not cover the call.
    NotCovered,
    /// A condition failed, or could not be evaluated for an `allow` rule.
    Condition {
        result: Tri,
        conditions: Vec<ConditionResult>,
    },
}

/// One rule and what it said.
#[derive(Debug, Clone)]
pub struct RuleTrace {
    pub index: usize,
    pub id: String,
    pub line: usize,
    pub passed: PassedOver,
}

/// What decided in a layer.
#[derive(Debug, Clone)]
pub enum DecidedBy {
    /// The rule at this index.
    Rule {
        index: usize,
        /// `Unknown` when a condition could not be evaluated and the rule, being a
        /// `deny` or `ask`, matched because of that.
        result: Tri,
        conditions: Vec<ConditionResult>,
    },
    /// No rule matched: the layer's default.
    Default,
}

/// One layer's decision on one call.
#[derive(Debug, Clone)]
pub struct LayerDecision {
    pub layer: Layer,
    pub action: Action,
    pub mode: PolicyMode,
    pub decided_by: DecidedBy,
    /// With details: every rule before the deciding one, and why it did not decide.
    pub passed_over: Vec<RuleTrace>,
    /// With details: how many rules come after the deciding one (not evaluated).
    pub not_reached: usize,
}

impl LayerPolicy {
    /// A layer from its rules (compiled into one glob set per kind).
    pub fn new(
        layer: Layer,
        file: PathBuf,
        default: Action,
        mode: PolicyMode,
        mut rules: Vec<Rule>,
    ) -> Result<Self, globset::Error> {
        let mut args: Vec<String> = Vec::new();
        for when in rules.iter_mut().filter_map(|r| r.when.as_mut()) {
            if let Some(arg) = &when.arg {
                when.slot = args
                    .iter()
                    .position(|a| *a == arg.written)
                    .unwrap_or_else(|| {
                        args.push(arg.written.clone());
                        args.len() - 1
                    });
            }
        }
        let index = [
            Index::build(&rules, Kind::Tool)?,
            Index::build(&rules, Kind::Resource)?,
            Index::build(&rules, Kind::Prompt)?,
        ];
        Ok(Self {
            layer,
            file,
            default,
            mode,
            rules,
            untrusted: false,
            index,
            arg_slots: args.len(),
        })
    }

    fn index(&self, kind: Kind) -> &Index {
        &self.index[kind as usize]
    }

    /// The rules whose selector covers the call, each with `Yes`, or `Unknown` when
    /// only some spellings of a resource URI are covered.
    fn covering(&self, call: &Call<'_>) -> Vec<(usize, Tri)> {
        let index = self.index(call.kind);
        let raw = index.covering(call.name);
        let Some(other) = (call.kind == Kind::Resource)
            .then(|| normalized_uri(call.name))
            .flatten()
        else {
            return raw.into_iter().map(|i| (i, Tri::Yes)).collect();
        };
        let norm = index.covering(&other);
        let mut all: Vec<usize> = raw.iter().chain(&norm).copied().collect();
        all.sort_unstable();
        all.dedup();
        all.into_iter()
            .map(|i| {
                let both = raw.binary_search(&i).is_ok() && norm.binary_search(&i).is_ok();
                (i, if both { Tri::Yes } else { Tri::Unknown })
            })
            .collect()
    }

    /// This layer's decision; with `detail`, every rule passed over and why.
    pub(crate) fn decide(&self, env: Env<'_>, detail: bool) -> LayerDecision {
        let covering = self.covering(env.call);
        let mut lookups = Lookups::new(self.arg_slots);
        let mut passed_over = Vec::new();
        let mut next_rule = 0;
        for (index, covered) in covering {
            let rule = &self.rules[index];
            if detail {
                for (i, r) in self.rules.iter().enumerate().take(index).skip(next_rule) {
                    passed_over.push(RuleTrace {
                        index: i,
                        id: r.id.clone(),
                        line: r.line,
                        passed: PassedOver::NotCovered,
                    });
                }
            }
            next_rule = index + 1;
            let (when, conditions) = rule.when.as_ref().map_or((Tri::Yes, Vec::new()), |w| {
                w.evaluate(env, &mut lookups, detail)
            });
            let result = covered.and(when);
            if result.matches_for(rule.action) {
                return LayerDecision {
                    layer: self.layer,
                    action: rule.action,
                    mode: self.mode,
                    decided_by: DecidedBy::Rule {
                        index,
                        result,
                        conditions,
                    },
                    passed_over,
                    not_reached: self.rules.len() - index - 1,
                };
            }
            if detail {
                passed_over.push(RuleTrace {
                    index,
                    id: rule.id.clone(),
                    line: rule.line,
                    passed: PassedOver::Condition { result, conditions },
                });
            }
        }
        if detail {
            for (i, r) in self.rules.iter().enumerate().skip(next_rule) {
                passed_over.push(RuleTrace {
                    index: i,
                    id: r.id.clone(),
                    line: r.line,
                    passed: PassedOver::NotCovered,
                });
            }
        }
        LayerDecision {
            layer: self.layer,
            action: self.default,
            mode: self.mode,
            decided_by: DecidedBy::Default,
            passed_over,
            not_reached: 0,
        }
    }

    /// Whether this layer denies every call to `name` whatever its arguments: an
    /// unconditional `deny` rule covers it before any `allow` or `ask` rule does, or no
    /// such rule covers it and the default is `deny`. A layer in `monitor` mode hides
    /// nothing.
    #[must_use]
    pub fn denies_every_call(&self, kind: Kind, name: &str) -> bool {
        if self.mode == PolicyMode::Monitor {
            return false;
        }
        for index in self.index(kind).covering(name) {
            let rule = &self.rules[index];
            match (rule.action, rule.when.is_some()) {
                (Action::Deny, false) => return true,
                (Action::Deny, true) => {}
                (Action::Allow | Action::Ask, _) => return false,
            }
        }
        self.default == Action::Deny
    }

    /// The reason a rule (or the default) gives for a call it denies or asks about.
    pub(crate) fn reason(&self, decision: &LayerDecision, env: Env<'_>) -> String {
        let call = env.call;
        let layer = layer_name(self.layer);
        match &decision.decided_by {
            DecidedBy::Default => format!(
                "no rule of the {layer} policy matches {} `{}`, and its default is `{}`",
                call.kind.noun(),
                call.name,
                self.default
            ),
            DecidedBy::Rule {
                index,
                result,
                conditions,
            } => {
                let rule = &self.rules[*index];
                let verb = match rule.action {
                    Action::Allow => "allows",
                    Action::Deny => "denies",
                    Action::Ask => "asks before",
                };
                if self.untrusted {
                    return format!(
                        "the {layer} policy (not trusted: its own words are not shown) {verb} {} `{}`",
                        call.kind.noun(),
                        call.name
                    );
                }
                if let Some(message) = &rule.message {
                    return message.clone();
                }
                let mut text = format!(
                    "the {layer} policy {verb} {} `{}`",
                    call.kind.noun(),
                    call.name
                );
                let wanted = if *result == Tri::Unknown {
                    Tri::Unknown
                } else {
                    Tri::Yes
                };
                // The fast path evaluates without details: ask again, with them.
                let detailed;
                let conditions = match &rule.when {
                    Some(when) if conditions.is_empty() => {
                        detailed = when
                            .evaluate(env, &mut Lookups::new(self.arg_slots), true)
                            .1;
                        &detailed
                    }
                    _ => conditions,
                };
                let whys: Vec<&str> = conditions
                    .iter()
                    .filter(|c| c.result == wanted && !c.why.is_empty())
                    .map(|c| c.why.as_str())
                    .collect();
                if !whys.is_empty() {
                    let _ = write!(text, ": {}", whys.join("; "));
                }
                if *result == Tri::Unknown {
                    text.push_str(
                        " (a condition that cannot be evaluated counts against the call)",
                    );
                }
                text
            }
        }
    }
}

/// The name of a layer in messages.
#[must_use]
pub fn layer_name(layer: Layer) -> &'static str {
    match layer {
        Layer::Managed => "managed",
        Layer::User => "user",
        Layer::Workspace => "workspace",
    }
}

/// Another spelling of the same resource, when `uri` is not already in it: the scheme
/// lower-cased; for a `file:` URI, the host `localhost` (any case) dropped and the path
/// percent-decoded with `.`, `..` and repeated slashes removed (what a server will
/// read); for any other URI with an authority, the authority lower-cased. Resource
/// globs and labels match both spellings. Symlinks are not resolved here (use `under`
/// with `arg = "uri"` for that).
#[must_use]
pub fn normalized_uri(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let is_scheme = scheme.len() >= 2
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let text = if scheme == "file" {
        let (host, path) = match rest.strip_prefix("//") {
            Some(after) => after.find('/').map_or((after, ""), |i| after.split_at(i)),
            None => ("", rest),
        };
        // `file://localhost/p` is `file:///p` (RFC 8089).
        let host = if host.eq_ignore_ascii_case("localhost") {
            ""
        } else {
            host
        };
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let raw = path::percent_decode_lossy(path);
        let normal = path::normalize_lexically(Path::new(String::from_utf8_lossy(&raw).as_ref()));
        format!("file://{host}{}", normal.display())
    } else if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, tail) = after.split_at(end);
        format!("{scheme}://{}{tail}", authority.to_ascii_lowercase())
    } else {
        format!("{scheme}:{rest}")
    };
    (text != uri).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kleene_logic() {
        use Tri::{No, Unknown, Yes};
        assert_eq!(Yes.and(Unknown), Unknown);
        assert_eq!(No.and(Unknown), No);
        assert_eq!(Yes.or(Unknown), Yes);
        assert_eq!(No.or(Unknown), Unknown);
        assert_eq!(!Unknown, Unknown);
        assert!(Unknown.matches_for(Action::Deny));
        assert!(Unknown.matches_for(Action::Ask));
        assert!(!Unknown.matches_for(Action::Allow));
        assert_eq!(Tri::agree([Yes, Yes].into_iter()), Yes);
        assert_eq!(Tri::agree([Yes, No].into_iter()), Unknown);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&serde_json::json!(1), &serde_json::json!(1.0)));
        assert!(!json_eq(&serde_json::json!("1"), &serde_json::json!(1)));
        assert!(json_eq(
            &serde_json::json!({"a": [1, 2.0]}),
            &serde_json::json!({"a": [1.0, 2]})
        ));
    }

    #[test]
    fn file_uris_are_normalized_for_matching() {
        assert_eq!(
            normalized_uri("file:///home/u/%2Eenv").as_deref(),
            Some("file:///home/u/.env")
        );
        assert_eq!(
            normalized_uri("file:///a//b/../.env").as_deref(),
            Some("file:///a/.env")
        );
        assert_eq!(normalized_uri("file:///a/.env"), None);
        assert_eq!(normalized_uri("https://x/../y"), None);
        for spelling in [
            "file://localhost/a/.env",
            "file://LOCALHOST/a/.env",
            "FILE:///a/.env",
            "file:/a/.env",
        ] {
            assert_eq!(
                normalized_uri(spelling).as_deref(),
                Some("file:///a/.env"),
                "{spelling}"
            );
        }
        assert_eq!(
            normalized_uri("HTTPS://Evil.Example/A?B").as_deref(),
            Some("https://evil.example/A?B")
        );
        assert_eq!(normalized_uri("file://server/a"), None);
    }

    #[test]
    fn arg_refs_are_names_or_pointers() {
        let v = serde_json::json!({"path": "/x", "a": {"b": [1, 2]}, "/odd": 3});
        assert_eq!(
            ArgRef::new("path").lookup(Some(&v)),
            Some(&serde_json::json!("/x"))
        );
        assert_eq!(
            ArgRef::new("/a/b/1").lookup(Some(&v)),
            Some(&serde_json::json!(2))
        );
        assert_eq!(ArgRef::new("/a/c").lookup(Some(&v)), None);
        assert_eq!(ArgRef::new("path").lookup(None), None);
        assert_eq!(
            ArgRef::new("/~1odd").lookup(Some(&v)),
            Some(&serde_json::json!(3))
        );
        assert_eq!(ArgRef::new("/a/b/01").lookup(Some(&v)), None);
        assert_eq!(ArgRef::new("/a/b/x").lookup(Some(&v)), None);
    }
}
