//! The values of `[policy]`, `[flows]`, `[output]` and `[limits]` that are settings
//! rather than rules, and their strictness order (SPEC "Merging").
//!
//! Each enum here is also what the configuration file's mirror ([`crate::config::raw`])
//! deserializes into, so a value is named the same way everywhere. How the layers'
//! values are merged is [`crate::config::layers::merge_policy_settings`]'s business;
//! this module only says which value of two is the stricter.

use serde::Deserialize;

/// A value with a strictness order: merging layers keeps the stricter one, except that
/// a trusted workspace may loosen the user's (never the managed layer's).
pub trait Strictness: Copy {
    /// Higher is stricter.
    fn strictness(self) -> u8;

    /// The stricter of two values (`self` on a tie).
    #[must_use]
    fn stricter(self, other: Self) -> Self {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }
}

/// What a rule (or a layer's default) does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
    /// Ask the user through elicitation where the client supports it; deny otherwise.
    Ask,
}

impl Action {
    /// The name as written in a configuration file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Ask => "ask",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `policy.mode`: whether denials block (`enforce`) or are only recorded (`monitor`).
/// `enforce` is the stricter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Denials block (the default).
    #[default]
    Enforce,
    /// Decide and audit, block nothing: a call that would be denied goes through with
    /// the decision `monitor`.
    Monitor,
}

impl PolicyMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Monitor => "monitor",
        }
    }
}

impl Strictness for PolicyMode {
    fn strictness(self) -> u8 {
        match self {
            Self::Enforce => 1,
            Self::Monitor => 0,
        }
    }
}

/// `flows.trifecta`: what happens to an egress call once the session has used private
/// data and untrusted content. `deny` is the stricter, and the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trifecta {
    #[default]
    Deny,
    Off,
}

impl Trifecta {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Off => "off",
        }
    }
}

impl Strictness for Trifecta {
    fn strictness(self) -> u8 {
        match self {
            Self::Deny => 1,
            Self::Off => 0,
        }
    }
}

/// `output.secrets`: `block` > `redact` > `off`. Default `redact`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretsAction {
    #[default]
    Redact,
    Block,
    Off,
}

impl SecretsAction {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redact => "redact",
            Self::Block => "block",
            Self::Off => "off",
        }
    }
}

impl Strictness for SecretsAction {
    fn strictness(self) -> u8 {
        match self {
            Self::Block => 2,
            Self::Redact => 1,
            Self::Off => 0,
        }
    }
}

/// `output.injection`: `block` > `flag` > `off`. Default `flag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InjectionAction {
    #[default]
    Flag,
    Block,
    Off,
}

impl InjectionAction {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::Block => "block",
            Self::Off => "off",
        }
    }
}

impl Strictness for InjectionAction {
    fn strictness(self) -> u8 {
        match self {
            Self::Block => 2,
            Self::Flag => 1,
            Self::Off => 0,
        }
    }
}

/// A boolean protection (`strip_invisible`, `scan_arguments`): `true` is the stricter.
impl Strictness for bool {
    fn strictness(self) -> u8 {
        u8::from(self)
    }
}

/// A limit: a smaller number is stricter, and `None` (no limit set) is the loosest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Limit(pub Option<u64>);

impl Limit {
    /// The stricter (smaller) of two limits.
    #[must_use]
    pub fn stricter(self, other: Self) -> Self {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Self(Some(a.min(b))),
            (a, b) => Self(a.or(b)),
        }
    }
}

/// `[output]`, merged: applied to every result before the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutputSettings {
    /// Default `redact`.
    pub secrets: SecretsAction,
    /// Default `flag`.
    pub injection: InjectionAction,
    /// Remove invisible and bidirectional Unicode from results. Default `true`.
    pub strip_invisible: bool,
}

impl Default for OutputSettings {
    fn default() -> Self {
        Self {
            secrets: SecretsAction::Redact,
            injection: InjectionAction::Flag,
            strip_invisible: true,
        }
    }
}

/// `[limits]`, merged. `None`: not limited by the configuration (the built-in bounds,
/// such as the 8 MiB line limit, still apply; a configured value above a built-in
/// bound does not raise it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Limits {
    /// Tool calls per minute in one session.
    pub calls_per_minute: Option<u64>,
    /// Calls per minute of one tool in one session.
    pub tool_calls_per_minute: Option<u64>,
    /// One JSON-RPC message, either direction.
    pub max_message_bytes: Option<u64>,
    /// One result towards the client.
    pub max_result_bytes: Option<u64>,
}

/// The merged settings of every layer (see the module docs of [`crate::policy`] for
/// who may change what).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    /// The mode of the user's and the workspace's rules, of flow rules other than the
    /// managed layer's, and of every block outside the rules (output filters, limits). The managed layer's own rules follow the managed file's own
    /// `mode` (see [`super::LayerPolicy::mode`]). Default `enforce`.
    pub mode: PolicyMode,
    /// Check tool inputs for secrets, not only outputs. Default `true`.
    pub scan_arguments: bool,
    /// Default `deny`.
    pub trifecta: Trifecta,
    /// The mode of the trifecta: that of the layers that set `trifecta = "deny"`, the
    /// strictest of them (a managed file's own `mode`, default `enforce`, for the
    /// managed layer), else `mode`. Mode belongs to its layer: a user's `monitor`
    /// never turns off the managed layer's trifecta.
    pub trifecta_mode: PolicyMode,
    pub output: OutputSettings,
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: PolicyMode::Enforce,
            scan_arguments: true,
            trifecta: Trifecta::Deny,
            trifecta_mode: PolicyMode::Enforce,
            output: OutputSettings::default(),
            limits: Limits::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stricter_values() {
        assert_eq!(
            PolicyMode::Monitor.stricter(PolicyMode::Enforce),
            PolicyMode::Enforce
        );
        assert_eq!(
            SecretsAction::Redact.stricter(SecretsAction::Block),
            SecretsAction::Block
        );
        assert_eq!(
            SecretsAction::Redact.stricter(SecretsAction::Off),
            SecretsAction::Redact
        );
        assert_eq!(
            InjectionAction::Off.stricter(InjectionAction::Flag),
            InjectionAction::Flag
        );
        assert_eq!(Trifecta::Off.stricter(Trifecta::Deny), Trifecta::Deny);
        assert!(false.stricter(true));
        assert_eq!(Limit(Some(5)).stricter(Limit(Some(3))), Limit(Some(3)));
        assert_eq!(Limit(None).stricter(Limit(Some(3))), Limit(Some(3)));
        assert_eq!(Limit(Some(5)).stricter(Limit(None)), Limit(Some(5)));
        assert_eq!(Limit(None).stricter(Limit(None)), Limit(None));
    }
}
