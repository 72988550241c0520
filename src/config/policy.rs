//! Validation of one file's `[policy]`, `[labels]`, `[flows]`, `[output]` and
//! `[limits]` into the compiled types of [`crate::policy`].
//!
//! Everything that can be wrong in one file is reported here with its position: rule
//! ids (missing, malformed, duplicated within the file), globs and regexes (compiled
//! now, so a bad one is an error at its position rather than a rule that never
//! matches), the shape of a `when`, variables in `under` / `not_under`, label names,
//! limits of zero. What needs every layer (merging, labels no layer defines) is
//! [`super::layers`]'s.
//!
//! # The `when` table
//! One table (`when = { arg = "path", not_under = ["${workspace}"] }`): `arg` names a
//! top-level argument or is a JSON pointer (`/a/b`), and every other key is a condition
//! on it, all of which must hold. `annotation` names a tool annotation instead, and
//! `equals` then belongs to it (`{ annotation = "destructiveHint", equals = true }`;
//! without `equals`, the annotation must be `true`); an `arg` may stand beside it with
//! its own other conditions. Paths in `under` / `not_under` start with `/`, `~` or a
//! variable (`${workspace}`, `${home}`, `${env:NAME}`), and are expanded and resolved
//! once the workspace is known.

use std::collections::HashMap;
use std::ops::Range;

use globset::{Glob, GlobBuilder};
use regex::{Regex, RegexBuilder};
use serde_json::Value;
use toml::Spanned;

use super::error::{Diagnostic, Source};
use super::raw::{
    RawFile, RawFlowRule, RawFlows, RawLimits, RawOutput, RawPolicy, RawRule, RawWhen,
};
use super::vars::Template;
use crate::policy::{
    Action, ArgRef, Condition, FlowRule, InjectionAction, Kind, PathPattern, Pattern, PolicyMode,
    Rule, SecretsAction, Selector, Trifecta, When,
};

/// A compiled regex may take this much memory: far more than any sensible pattern,
/// and a bound on what a hostile workspace file can make mcp-warden allocate.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The hint for a malformed rule or label id.
const ID_HINT: &str =
    "an id is 1 to 64 letters, digits, `_`, `-` or `.`, starting with a letter or digit";

/// The conditions a `when` may have besides `arg` and `annotation`.
const CONDITIONS: &str =
    "`under`, `not_under`, `matches`, `not_matches`, `equals`, `one_of`, `max_len`";

/// One label of `[labels]`, as a file defines it.
#[derive(Debug, Clone)]
pub struct LabelDef {
    pub name: String,
    /// Where the label's name is written.
    pub span: Range<usize>,
    /// Each glob with the kind of item it names.
    pub globs: Vec<(Kind, Glob)>,
}

/// One `[[flows.rules]]` entry, with the positions of its label names (for `check`).
#[derive(Debug, Clone)]
pub struct FlowRuleDef {
    /// The rule; its `mode` is filled in when the layers are merged.
    pub rule: FlowRule,
    /// Every label name in `after` and `deny`, with where it is written.
    pub labels: Vec<(String, Range<usize>)>,
}

/// `[limits]` as one file sets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitKeys {
    pub calls_per_minute: Option<u64>,
    pub tool_calls_per_minute: Option<u64>,
    pub max_message_bytes: Option<u64>,
    pub max_result_bytes: Option<u64>,
}

/// What one file's policy sections set (unset keys are `None`), validated and
/// compiled; the paths of `under` / `not_under` are not resolved yet.
#[derive(Debug, Clone, Default)]
pub struct PolicyKeys {
    pub default: Option<Action>,
    pub mode: Option<PolicyMode>,
    pub scan_arguments: Option<bool>,
    /// The valid rules, in file order.
    pub rules: Vec<Rule>,
    pub labels: Vec<LabelDef>,
    pub trifecta: Option<Trifecta>,
    /// Where `flows.trifecta` is written, when it is.
    pub trifecta_span: Option<Range<usize>>,
    pub flow_rules: Vec<FlowRuleDef>,
    pub secrets: Option<SecretsAction>,
    pub injection: Option<InjectionAction>,
    pub strip_invisible: Option<bool>,
    pub limits: LimitKeys,
}

/// Validates the policy sections of one parsed file. Problems go to `diagnostics`;
/// what is valid is returned.
pub fn validate(
    source: &Source<'_>,
    table: &toml::de::DeTable<'_>,
    raw: &mut RawFile,
    diagnostics: &mut Vec<Diagnostic>,
) -> PolicyKeys {
    let mut check = PolicyChecker {
        source,
        diagnostics,
    };
    let mut keys = PolicyKeys::default();
    if let Some(policy) = raw.policy.take() {
        check.policy(policy, &mut keys);
    }
    if let Some(labels) = raw.labels.take() {
        for (name, label) in labels {
            let span = super::raw::key_span(table, &["labels", &name]).unwrap_or(0..0);
            if !is_id(&name) {
                check.error(&span, format!("invalid label name `{name}`"), Some(ID_HINT));
                continue;
            }
            let kinds = [
                (Kind::Tool, &label.tools),
                (Kind::Resource, &label.resources),
                (Kind::Prompt, &label.prompts),
            ];
            let globs = kinds
                .into_iter()
                .flat_map(|(kind, globs)| globs.iter().map(move |g| (kind, g)))
                .filter_map(|(kind, g)| check.glob(g, kind).map(|p| (kind, p.glob)))
                .collect();
            keys.labels.push(LabelDef { name, span, globs });
        }
    }
    if let Some(flows) = raw.flows.take() {
        keys.trifecta_span = super::raw::key_span(table, &["flows", "trifecta"]);
        check.flows(flows, &mut keys);
    }
    if let Some(RawOutput {
        secrets,
        injection,
        strip_invisible,
    }) = raw.output.take()
    {
        keys.secrets = secrets;
        keys.injection = injection;
        keys.strip_invisible = strip_invisible;
    }
    if let Some(limits) = raw.limits.take() {
        keys.limits = check.limits(&limits);
    }
    keys
}

/// Whether `id` may name a rule or a label: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`. No
/// `:`, so a rule can never pass for a built-in one (`flow:trifecta`, `pin:new`).
#[must_use]
pub fn is_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    id.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

struct PolicyChecker<'s, 'd> {
    source: &'s Source<'s>,
    diagnostics: &'d mut Vec<Diagnostic>,
}

impl PolicyChecker<'_, '_> {
    fn error(&mut self, span: &Range<usize>, message: impl Into<String>, hint: Option<&str>) {
        let mut d = self.source.error(span, message);
        d.hint = hint.map(str::to_owned);
        self.diagnostics.push(d);
    }

    fn line(&self, span: &Range<usize>) -> usize {
        self.source.position(span.start).line
    }

    fn policy(&mut self, policy: RawPolicy, keys: &mut PolicyKeys) {
        keys.default = policy.default;
        keys.mode = policy.mode;
        keys.scan_arguments = policy.scan_arguments;
        let mut ids: HashMap<String, usize> = HashMap::new();
        for raw in policy.rules.unwrap_or_default() {
            let before = self.diagnostics.len();
            let id_ok = self.id(&raw.id, &mut ids, "rule");
            let rule = self.rule(raw);
            if id_ok && self.diagnostics.len() == before {
                keys.rules.extend(rule);
            }
        }
    }

    /// Checks a rule id and that it is the first of its name in this file.
    fn id(&mut self, id: &Spanned<String>, seen: &mut HashMap<String, usize>, what: &str) -> bool {
        let name = id.get_ref();
        if !is_id(name) {
            self.error(
                &id.span(),
                format!("invalid {what} id `{name}`"),
                Some(ID_HINT),
            );
            return false;
        }
        let line = self.line(&id.span());
        if let Some(first) = seen.get(name) {
            let hint = format!(
                "the first `{name}` is on line {first}; an id names its rule in decisions and the \
                 audit, so each must be unique within its file"
            );
            self.error(
                &id.span(),
                format!("duplicate {what} id `{name}`"),
                Some(&hint),
            );
            return false;
        }
        seen.insert(name.clone(), line);
        true
    }

    fn rule(&mut self, raw: RawRule) -> Option<Rule> {
        let id = raw.id.get_ref().clone();
        let mut selector = Selector::default();
        let mut any = false;
        for (key, list, kind) in [
            ("tools", &raw.tools, Kind::Tool),
            ("resources", &raw.resources, Kind::Resource),
            ("prompts", &raw.prompts, Kind::Prompt),
        ] {
            let Some(list) = list else { continue };
            any = true;
            if list.get_ref().is_empty() {
                self.error(
                    &list.span(),
                    format!("`{key}` of rule `{id}` is empty: the rule covers nothing"),
                    Some("list globs over exposed names, or remove the key"),
                );
            }
            let patterns: Vec<Pattern> = list
                .get_ref()
                .iter()
                .filter_map(|g| self.glob(g, kind))
                .collect();
            match kind {
                Kind::Tool => selector.tools = patterns,
                Kind::Resource => selector.resources = patterns,
                Kind::Prompt => selector.prompts = patterns,
            }
        }
        if !any {
            self.error(
                &raw.id.span(),
                format!("rule `{id}` covers nothing"),
                Some("give it `tools`, `resources` or `prompts` (globs); `tools = [\"*\"]` covers every tool"),
            );
        }
        let when = match raw.when {
            Some(w) => Some(self.when(&id, &w)?),
            None => None,
        };
        Some(Rule {
            line: self.line(&raw.id.span()),
            id,
            selector,
            when,
            action: raw.action,
            message: raw.message,
        })
    }

    /// A glob over exposed names (`tools`, `prompts`, labels) or over URIs
    /// (`resources`: `*` stays within one path segment, `**` crosses them).
    fn glob(&mut self, glob: &Spanned<String>, kind: Kind) -> Option<Pattern> {
        let written = glob.get_ref();
        if written.is_empty() {
            self.error(&glob.span(), "empty glob", Some("`*` matches every name"));
            return None;
        }
        match GlobBuilder::new(written)
            .literal_separator(kind == Kind::Resource)
            .build()
        {
            Ok(compiled) => Some(Pattern {
                written: written.clone(),
                glob: compiled,
            }),
            Err(e) => {
                self.error(
                    &glob.span(),
                    format!("invalid glob `{written}`: {}", e.kind()),
                    Some("`*` matches any run of characters, `?` one character, `[abc]` one of a set, `{a,b}` either"),
                );
                None
            }
        }
    }

    fn regex(&mut self, key: &str, pattern: &Spanned<String>) -> Option<Regex> {
        let text = pattern.get_ref();
        match RegexBuilder::new(text).size_limit(REGEX_SIZE_LIMIT).build() {
            Ok(re) => Some(re),
            Err(e) => {
                // The regex crate's error is a multi-line picture; the parser's own
                // error has the offset and a one-line message.
                let (offset, why) = match regex_syntax::Parser::new().parse(text) {
                    Err(regex_syntax::Error::Parse(e)) => {
                        (e.span().start.offset, e.kind().to_string())
                    }
                    Err(regex_syntax::Error::Translate(e)) => {
                        (e.span().start.offset, e.kind().to_string())
                    }
                    _ => (0, one_line(&e.to_string())),
                };
                let at = self.source.offset_in_string(&pattern.span(), text, offset);
                self.error(
                    &(at..at),
                    format!("invalid regex in `{key}`: {why}"),
                    Some("the syntax is Rust's `regex` crate's; it finds the pattern anywhere in the value unless anchored with `^` and `$`"),
                );
                None
            }
        }
    }

    fn arg_ref(&mut self, key: &str, value: &Spanned<String>) -> Option<ArgRef> {
        let text = value.get_ref();
        if text.is_empty() {
            self.error(
                &value.span(),
                format!("`{key}` is empty"),
                Some(
                    "name a top-level argument (`path`) or write a JSON pointer (`/options/path`)",
                ),
            );
            return None;
        }
        if text.starts_with('/') {
            // A JSON pointer: `~` only as `~0` or `~1`.
            let bytes = text.as_bytes();
            let bad = bytes
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'~' && !matches!(bytes.get(i + 1), Some(b'0' | b'1')));
            if bad {
                self.error(
                    &value.span(),
                    format!("invalid JSON pointer `{text}` in `{key}`"),
                    Some("in a JSON pointer `~` is written `~0` and `/` inside a name `~1`"),
                );
                return None;
            }
        }
        Some(ArgRef::new(text))
    }

    fn paths(
        &mut self,
        key: &str,
        list: &Spanned<Vec<Spanned<String>>>,
    ) -> Option<Vec<PathPattern>> {
        if list.get_ref().is_empty() {
            self.error(
                &list.span(),
                format!("`{key}` is empty"),
                Some("list directories, such as `\"${workspace}\"`"),
            );
            return None;
        }
        let before = self.diagnostics.len();
        let mut out = Vec::new();
        for path in list.get_ref() {
            let text = path.get_ref();
            match Template::parse(text) {
                Ok(template) => {
                    if !(text.starts_with('/') || text.starts_with('~') || text.starts_with("${")) {
                        self.error(
                            &path.span(),
                            format!("`{text}` in `{key}` is not an absolute path"),
                            Some("start it with `${workspace}`, `${home}`, `~` or `/`"),
                        );
                    }
                    out.push(PathPattern::new(text.clone(), template.uses_env()));
                }
                Err(e) => {
                    let at = self.source.offset_in_string(&path.span(), text, e.offset());
                    self.error(&(at..at), e.to_string(), Some(&e.hint()));
                }
            }
        }
        (self.diagnostics.len() == before).then_some(out)
    }

    fn json(&mut self, key: &str, value: &Spanned<toml::Value>) -> Option<Value> {
        let converted = toml_to_json(value.get_ref());
        if converted.is_none() {
            self.error(
                &value.span(),
                format!(
                    "`{key}` has a value that JSON cannot hold (a date or a non-finite number)"
                ),
                Some("arguments are JSON: compare with a string, number, boolean, array or table"),
            );
        }
        converted
    }

    fn when(&mut self, id: &str, raw: &Spanned<RawWhen>) -> Option<When> {
        let span = raw.span();
        let w = raw.get_ref();
        let before = self.diagnostics.len();
        let arg = w.arg.as_ref().and_then(|a| self.arg_ref("arg", a));
        let annotation = w
            .annotation
            .as_ref()
            .and_then(|a| self.arg_ref("annotation", a));
        let mut conditions = Vec::new();
        let mut on_arg = Vec::new();
        if let Some(list) = &w.under {
            on_arg.push("under");
            conditions.extend(self.paths("under", list).map(Condition::Under));
        }
        if let Some(list) = &w.not_under {
            on_arg.push("not_under");
            conditions.extend(self.paths("not_under", list).map(Condition::NotUnder));
        }
        if let Some(re) = &w.matches {
            on_arg.push("matches");
            conditions.extend(self.regex("matches", re).map(Condition::Matches));
        }
        if let Some(re) = &w.not_matches {
            on_arg.push("not_matches");
            conditions.extend(self.regex("not_matches", re).map(Condition::NotMatches));
        }
        let equals = w.equals.as_ref().and_then(|v| self.json("equals", v));
        if let Some(list) = &w.one_of {
            on_arg.push("one_of");
            if list.get_ref().is_empty() {
                self.error(
                    &list.span(),
                    "`one_of` is empty",
                    Some("list the values allowed"),
                );
            }
            let values: Vec<Value> = list
                .get_ref()
                .iter()
                .filter_map(|v| self.json("one_of", v))
                .collect();
            conditions.push(Condition::OneOf(values));
        }
        if let Some(max) = w.max_len {
            on_arg.push("max_len");
            conditions.push(Condition::MaxLen(max));
        }
        if w.annotation.is_some() {
            conditions.push(Condition::Annotation(equals.unwrap_or(Value::Bool(true))));
        } else if w.equals.is_some() {
            on_arg.insert(0, "equals");
            conditions.extend(equals.map(Condition::Equals));
        }
        match (&w.arg, on_arg.first()) {
            (None, Some(first)) => self.error(
                &span,
                format!("`{first}` in the `when` of rule `{id}` needs `arg`"),
                Some("name the argument it tests: `arg = \"path\"`, or a JSON pointer `arg = \"/options/path\"`"),
            ),
            (Some(a), None) => {
                let hint = format!("add a condition on it: {CONDITIONS}");
                self.error(
                    &a.span(),
                    format!("`arg` `{}` in the `when` of rule `{id}` has no condition", a.get_ref()),
                    Some(&hint),
                );
            }
            (None, None) if w.annotation.is_none() => self.error(
                &span,
                format!("the `when` of rule `{id}` has no condition"),
                Some("remove `when` for a rule that always applies"),
            ),
            _ => {}
        }
        (self.diagnostics.len() == before).then(|| When::new(arg, annotation, conditions))
    }

    fn flows(&mut self, flows: RawFlows, keys: &mut PolicyKeys) {
        keys.trifecta = flows.trifecta;
        let mut ids = HashMap::new();
        for raw in flows.rules.unwrap_or_default() {
            let before = self.diagnostics.len();
            self.id(&raw.id, &mut ids, "flow rule");
            let def = self.flow_rule(&raw);
            if self.diagnostics.len() == before {
                keys.flow_rules.push(def);
            }
        }
    }

    fn flow_rule(&mut self, raw: &RawFlowRule) -> FlowRuleDef {
        let id = raw.id.get_ref().clone();
        let mut labels = Vec::new();
        let mut lists = [Vec::new(), Vec::new()];
        for (slot, (key, list)) in [("after", &raw.after), ("deny", &raw.deny)]
            .into_iter()
            .enumerate()
        {
            if list.get_ref().is_empty() {
                let hint = if key == "after" {
                    "a rule without `after` would deny always: write a `[[policy.rules]]` rule instead"
                } else {
                    "list the labels of the calls to deny, such as `\"egress\"`"
                };
                self.error(
                    &list.span(),
                    format!("`{key}` of flow rule `{id}` is empty"),
                    Some(hint),
                );
            }
            for label in list.get_ref() {
                let name = label.get_ref();
                if is_id(name) {
                    labels.push((name.clone(), label.span()));
                    lists[slot].push(name.clone());
                } else {
                    self.error(
                        &label.span(),
                        format!("invalid label name `{name}`"),
                        Some(ID_HINT),
                    );
                }
            }
        }
        let [after, deny] = lists;
        FlowRuleDef {
            rule: FlowRule {
                line: self.line(&raw.id.span()),
                id,
                layer: crate::config::Layer::User,
                after,
                deny,
                mode: PolicyMode::Enforce,
            },
            labels,
        }
    }

    fn limits(&mut self, raw: &RawLimits) -> LimitKeys {
        let mut read = |key: &str, value: &Option<Spanned<u64>>| {
            let value = value.as_ref()?;
            if *value.get_ref() == 0 {
                self.error(
                    &value.span(),
                    format!("`limits.{key}` must be more than zero"),
                    Some("remove the key for no limit"),
                );
                return None;
            }
            Some(*value.get_ref())
        };
        LimitKeys {
            calls_per_minute: read("calls_per_minute", &raw.calls_per_minute),
            tool_calls_per_minute: read("tool_calls_per_minute", &raw.tool_calls_per_minute),
            max_message_bytes: read("max_message_bytes", &raw.max_message_bytes),
            max_result_bytes: read("max_result_bytes", &raw.max_result_bytes),
        }
    }
}

/// The last line of a multi-line error, without its `error: ` prefix.
fn one_line(text: &str) -> String {
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text);
    last.trim().trim_start_matches("error: ").to_owned()
}

/// A TOML value as JSON; `None` for dates and non-finite floats.
#[must_use]
pub fn toml_to_json(value: &toml::Value) -> Option<Value> {
    Some(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::Number(serde_json::Number::from_f64(*f)?),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(_) => return None,
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(toml_to_json).collect::<Option<_>>()?)
        }
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Some((k.clone(), toml_to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::raw;

    fn keys(text: &str) -> (PolicyKeys, Vec<String>) {
        let source = Source::new(Path::new("f.toml"), text);
        let mut parsed = raw::parse(&source);
        let mut diags = std::mem::take(&mut parsed.diagnostics);
        let keys = validate(&source, &parsed.table, &mut parsed.raw, &mut diags);
        (keys, diags.iter().map(ToString::to_string).collect())
    }

    fn one_error(text: &str) -> String {
        let (_, diags) = keys(text);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        diags.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn the_specs_example_validates() {
        let text = r#"
[policy]
default = "allow"
mode = "enforce"
scan_arguments = true

[[policy.rules]]
id = "writes-stay-in-workspace"
tools = ["fs__write_file", "fs__edit_file"]
when = { arg = "path", not_under = ["${workspace}"] }
action = "deny"
message = "writes outside the workspace are not allowed"

[[policy.rules]]
id = "no-secret-resources"
resources = ["file:///**/.env"]
action = "deny"

[labels]
private = ["fs__read_*", "github__get_*"]
untrusted = ["fetch__*", "github__get_issue"]
egress = ["fetch__*", "slack__post_*", "github__create_*"]

[flows]
trifecta = "deny"
[[flows.rules]]
id = "no-upload-after-secrets"
after = ["secrets"]
deny = ["egress"]

[output]
secrets = "redact"
injection = "flag"
strip_invisible = true

[limits]
calls_per_minute = 120
tool_calls_per_minute = 60
max_message_bytes = 8388608
max_result_bytes = 4194304
"#;
        let (k, diags) = keys(text);
        assert!(diags.is_empty(), "{diags:#?}");
        assert_eq!(k.rules.len(), 2);
        assert_eq!(k.rules[0].line, 8);
        assert_eq!(k.rules[0].selector.tools.len(), 2);
        assert_eq!(k.labels.len(), 3);
        assert_eq!(k.flow_rules[0].rule.after, ["secrets"]);
        assert_eq!(k.trifecta, Some(Trifecta::Deny));
        assert_eq!(k.secrets, Some(SecretsAction::Redact));
        assert_eq!(k.limits.calls_per_minute, Some(120));
        assert_eq!(k.mode, Some(PolicyMode::Enforce));
    }

    const RULE: &str = "[[policy.rules]]\nid = \"r\"\ntools = [\"*\"]\naction = \"deny\"\n";

    #[test]
    fn a_label_takes_tools_resources_and_prompts_and_an_unknown_kind_is_an_error() {
        let (k, diags) = keys(
            "[labels]\nprivate = { resources = [\"file:///secret/**\"], prompts = [\"b__*\"] }\n\
             egress = [\"fetch__*\"]\n",
        );
        assert!(diags.is_empty(), "{diags:#?}");
        let kinds: Vec<(String, Vec<Kind>)> = k
            .labels
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    l.globs.iter().map(|(kind, _)| *kind).collect(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("egress".to_owned(), vec![Kind::Tool]),
                ("private".to_owned(), vec![Kind::Resource, Kind::Prompt])
            ]
        );
        let e = one_error("[labels]\nprivate = { files = [\"x\"] }\n");
        assert!(e.contains("files"), "{e}");
        // A resource glob keeps `*` within one path segment, as in rules.
        let (k, _) = keys("[labels]\nprivate = { resources = [\"file:///*\"] }\n");
        let glob = k.labels[0].globs[0].1.compile_matcher();
        assert!(glob.is_match("file:///a") && !glob.is_match("file:///a/b"));
    }

    #[test]
    fn a_rule_without_id_is_an_error_and_the_next_rule_is_still_read() {
        let text = format!("[[policy.rules]]\ntools = [\"a\"]\naction = \"deny\"\n{RULE}");
        let (k, diags) = keys(&text);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert!(
            diags[0].contains("missing key `id` in `policy.rules[0]`"),
            "{diags:?}"
        );
        assert_eq!(k.rules.len(), 1);
    }

    #[test]
    fn duplicate_and_malformed_ids() {
        let e = one_error(&format!("{RULE}{RULE}"));
        assert!(
            e.starts_with("f.toml:6:6: error: duplicate rule id `r`"),
            "{e}"
        );
        assert!(e.contains("the first `r` is on line 2"), "{e}");
        let e =
            one_error("[[policy.rules]]\nid = \"flow:x\"\ntools = [\"*\"]\naction = \"deny\"\n");
        assert!(
            e.starts_with("f.toml:2:6: error: invalid rule id `flow:x`"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_glob_is_an_error_at_the_glob() {
        let e = one_error(
            "[[policy.rules]]\nid = \"r\"\ntools = [\"ok\", \"fs__[a\"]\naction = \"deny\"\n",
        );
        assert!(
            e.starts_with("f.toml:3:16: error: invalid glob `fs__[a`"),
            "{e}"
        );
        let e = one_error("[labels]\nprivate = [\"a{b\"]\n");
        assert!(
            e.starts_with("f.toml:2:12: error: invalid glob `a{b`"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_regex_is_an_error_inside_the_string() {
        let e = one_error(
            "[[policy.rules]]\nid = \"r\"\ntools = [\"*\"]\nwhen = { arg = \"q\", matches = \"ab(c\" }\naction = \"deny\"\n",
        );
        assert!(
            e.starts_with("f.toml:4:34: error: invalid regex in `matches`: unclosed group"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_suggest() {
        let e = one_error("[[policy.rules]]\nid = \"r\"\ntols = [\"*\"]\naction = \"deny\"\n");
        assert!(e.contains("unknown key `tols` in `policy.rules[0]`"), "{e}");
        assert!(e.contains("did you mean `tools`?"), "{e}");
        let e = one_error("[policy]\ndefualt = \"deny\"\n");
        assert!(
            e.starts_with("f.toml:2:1: error: unknown key `defualt` in `policy`"),
            "{e}"
        );
        assert!(e.contains("did you mean `default`?"), "{e}");
        let e = one_error("[flows]\ntrifceta = \"deny\"\n");
        assert!(e.contains("did you mean `trifecta`?"), "{e}");
        let e = one_error("[output]\nsecret = \"redact\"\n");
        assert!(e.contains("did you mean `secrets`?"), "{e}");
        let e = one_error("[limits]\ncalls_per_minut = 3\n");
        assert!(e.contains("did you mean `calls_per_minute`?"), "{e}");
        let e = one_error("[[flows.rules]]\nid = \"f\"\nafter = [\"a\"]\ndenny = [\"b\"]\n");
        assert!(e.contains("unknown key `denny` in `flows.rules[0]`"), "{e}");
        let e = one_error("[output]\nsecrets = \"redakt\"\n");
        assert!(e.contains("did you mean `redact`?"), "{e}");
        let e = one_error("[flows]\ntrifecta = \"ask\"\n");
        assert!(e.contains("unknown value `ask`"), "{e}");
    }

    #[test]
    fn when_shapes() {
        let rule = |when: &str| {
            format!(
                "[[policy.rules]]\nid = \"r\"\ntools = [\"*\"]\nwhen = {when}\naction = \"deny\"\n"
            )
        };
        let e = one_error(&rule("{ under = [\"/x\"] }"));
        assert!(
            e.contains("`under` in the `when` of rule `r` needs `arg`"),
            "{e}"
        );
        let e = one_error(&rule("{ arg = \"p\" }"));
        assert!(
            e.contains("`arg` `p` in the `when` of rule `r` has no condition"),
            "{e}"
        );
        let e = one_error(&rule("{}"));
        assert!(e.contains("has no condition"), "{e}");
        let e = one_error(&rule("{ arg = \"p\", under = [\"rel/x\"] }"));
        assert!(
            e.contains("`rel/x` in `under` is not an absolute path"),
            "{e}"
        );
        let e = one_error(&rule("{ arg = \"p\", under = [\"${workspce}\"] }"));
        assert!(e.contains("unknown variable `${workspce}`"), "{e}");
        let e = one_error(&rule("{ arg = \"/a/~2\", max_len = 3 }"));
        assert!(e.contains("invalid JSON pointer"), "{e}");
        let e = one_error(&rule("{ arg = \"p\", equals = 1979-05-27 }"));
        assert!(e.contains("a value that JSON cannot hold"), "{e}");
        let e = one_error(&rule("{ arg = \"p\", undr = [] }"));
        assert!(e.contains("did you mean `under`?"), "{e}");
        // Annotation with equals; an arg beside it with its own condition.
        let (k, diags) = keys(&rule("{ annotation = \"destructiveHint\", equals = true }"));
        assert!(diags.is_empty(), "{diags:?}");
        let when = k.rules[0].when.as_ref().map(|w| w.conditions.len());
        assert_eq!(when, Some(1));
        let (k, diags) = keys(&rule(
            "{ arg = \"path\", not_under = [\"~\", \"${home}/x\"], annotation = \"readOnlyHint\", equals = false }",
        ));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            k.rules[0].when.as_ref().map(|w| w.conditions.len()),
            Some(2)
        );
    }

    #[test]
    fn rules_must_cover_something() {
        let e = one_error("[[policy.rules]]\nid = \"r\"\naction = \"deny\"\n");
        assert!(e.contains("rule `r` covers nothing"), "{e}");
        let e = one_error("[[policy.rules]]\nid = \"r\"\ntools = []\naction = \"deny\"\n");
        assert!(e.contains("`tools` of rule `r` is empty"), "{e}");
    }

    #[test]
    fn flow_rules_and_labels_are_checked() {
        let e = one_error("[[flows.rules]]\nid = \"f\"\nafter = []\ndeny = [\"egress\"]\n");
        assert!(e.contains("`after` of flow rule `f` is empty"), "{e}");
        let e = one_error("[labels]\n\"bad label\" = [\"x\"]\n");
        assert!(
            e.starts_with("f.toml:2:1: error: invalid label name `bad label`"),
            "{e}"
        );
        let text = "[[flows.rules]]\nid = \"f\"\nafter = [\"a\"]\ndeny = [\"b\"]\n[[flows.rules]]\nid = \"f\"\nafter = [\"a\"]\ndeny = [\"b\"]\n";
        let e = one_error(text);
        assert!(e.contains("duplicate flow rule id `f`"), "{e}");
    }

    #[test]
    fn zero_limits_are_errors() {
        let e = one_error("[limits]\ncalls_per_minute = 0\n");
        assert!(
            e.starts_with("f.toml:2:20: error: `limits.calls_per_minute` must be more than zero"),
            "{e}"
        );
        let e = one_error("[limits]\nmax_result_bytes = -1\n");
        assert!(e.contains("f.toml:2:20"), "{e}");
    }

    #[test]
    fn toml_values_become_json() {
        let v: toml::Value =
            toml::from_str("x = [1, 2.5, \"a\", { b = true }]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v.get("x").and_then(toml_to_json),
            Some(serde_json::json!([1, 2.5, "a", {"b": true}]))
        );
    }
}
