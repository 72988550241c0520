//! What pinning decides about a server's contract (SPEC "Pinning"): for each item,
//! whether it matches its pin, is new, changed or flagged, and whether it is held.
//!
//! Pure: it reads a [`LockFile`] and scan findings and returns decisions; the session
//! and the CLI do the I/O. Both use the same functions, so `mcp-warden pins` shows
//! exactly what `serve` holds.
//!
//! # The rules
//! - `strict`: new, changed and flagged items are held; so is everything of a server
//!   whose identity (command and arguments as written) or `instructions` differ from
//!   the pin, or that has no pin at all.
//! - `tofu`: what is new and not flagged is pinned on first sight (the caller writes
//!   it); changed and flagged items are held and never written.
//! - `off`: nothing is held.
//!
//! A finding holds only from [`HOLD_SEVERITY`] up: low findings (a long description)
//! are shown by `scan` but are not signs of attack. A pin lists the finding ids the
//! user accepted; only a finding outside that list holds the item again.

use crate::canonical::CanonicalError;
use crate::config::PinningMode;
use crate::pinning::lock::{ItemPin, LockFile, PinKey, ServerPin, identity_digest};
use crate::scan::{Finding, Severity};

/// Findings at or above this severity hold an item.
pub const HOLD_SEVERITY: Severity = Severity::Medium;

/// Why an item is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    New,
    Changed,
    Flagged,
    /// A listed resource the scan flagged: resources are scanned, not pinned, so no
    /// pin resolves it.
    FlaggedResource,
}

impl HoldKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Changed => "changed",
            Self::Flagged | Self::FlaggedResource => "flagged",
        }
    }
}

/// A held item: the rule blocked calls name, and why, for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub kind: HoldKind,
    /// `pin:new`, `pin:changed` or `scan:<finding-id>`.
    pub rule: String,
    pub reason: String,
}

impl Hold {
    /// The command that resolves the hold of the item exposed as `exposed`.
    #[must_use]
    pub fn resolve(&self, exposed: &str) -> String {
        match self.kind {
            HoldKind::Changed => format!(
                "review it with `mcp-warden pins --diff {exposed}`, then run `mcp-warden pin {exposed}`"
            ),
            HoldKind::New | HoldKind::Flagged => {
                format!("review it with `mcp-warden pin {exposed}`, which shows it before pinning")
            }
            HoldKind::FlaggedResource => format!(
                "resources are scanned, not pinned: `{exposed}` is served once its server lists it without the finding (or with `[pinning] mode = \"off\"`)"
            ),
        }
    }

    /// The reason with the resolving command, as a blocked call says it.
    #[must_use]
    pub fn explain(&self, exposed: &str) -> String {
        format!("{}; {}", self.reason, self.resolve(exposed))
    }
}

/// What is known of a server when its items are judged.
#[derive(Debug, Clone, Copy)]
pub struct ServerFacts<'a> {
    /// The server's table name.
    pub server: &'a str,
    /// Command and arguments as written in the configuration.
    pub command: &'a str,
    pub args: &'a [String],
    /// `instructions` from `initialize`.
    pub instructions: Option<&'a str>,
    /// Scan findings of the instructions.
    pub instruction_findings: &'a [Finding],
    /// The executable it runs, when it was replaced since this machine first saw it
    /// (see [`super::machine`]).
    pub replaced_executable: Option<&'a str>,
}

/// How a server's own facts compare with its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStatus {
    Pinned,
    /// No pin for the server at all.
    New,
    /// The command or arguments changed.
    IdentityChanged,
    /// The instructions appeared, changed or disappeared.
    InstructionsChanged,
    /// The executable it runs was replaced on this machine.
    ExecutableChanged,
}

/// The verdict on a server's own facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVerdict {
    pub status: ServerStatus,
    /// Holds every item of the server (and keeps its instructions from the client).
    pub hold: Option<Hold>,
    /// `tofu`: the server pin to write on first sight.
    pub pin: Option<ServerPin>,
}

impl ServerVerdict {
    /// Whether the server's instructions may reach the client.
    #[must_use]
    pub fn shows_instructions(&self) -> bool {
        self.hold.is_none()
    }
}

/// The pin of a server's current facts.
#[must_use]
pub fn server_pin(facts: &ServerFacts<'_>) -> ServerPin {
    ServerPin {
        identity: identity_digest(facts.command, facts.args),
        instructions: facts.instructions.map(instructions_digest),
    }
}

/// `sha256:<hex>` of a server's instructions (the digest of their JSON string).
#[must_use]
pub fn instructions_digest(text: &str) -> String {
    // A JSON string is always valid canonical input.
    let json = serde_json::Value::String(text.to_owned()).to_string();
    crate::canonical::digest(&json).unwrap_or_default()
}

/// Judges a server's identity and instructions.
#[must_use]
pub fn judge_server(mode: PinningMode, lock: &LockFile, facts: &ServerFacts<'_>) -> ServerVerdict {
    let current = server_pin(facts);
    let server = facts.server;
    let status = match lock.servers.get(server) {
        None => ServerStatus::New,
        Some(pin) if pin.identity != current.identity => ServerStatus::IdentityChanged,
        Some(pin) if pin.instructions != current.instructions => ServerStatus::InstructionsChanged,
        Some(_) if facts.replaced_executable.is_some() => ServerStatus::ExecutableChanged,
        Some(_) => ServerStatus::Pinned,
    };
    let flagged = strong(facts.instruction_findings).next();
    let mut verdict = ServerVerdict {
        status: status.clone(),
        hold: None,
        pin: None,
    };
    if mode == PinningMode::Off {
        return verdict;
    }
    verdict.hold = match status {
        ServerStatus::Pinned => None,
        ServerStatus::New if mode == PinningMode::Tofu => {
            if let Some(f) = flagged {
                Some(flagged_hold(
                    f,
                    &format!("the instructions of server `{server}`"),
                ))
            } else {
                verdict.pin = Some(current);
                None
            }
        }
        ServerStatus::New => Some(Hold {
            kind: HoldKind::New,
            rule: "pin:new".into(),
            reason: format!("server `{server}` is not pinned yet"),
        }),
        ServerStatus::IdentityChanged => Some(Hold {
            kind: HoldKind::Changed,
            rule: "pin:changed".into(),
            reason: format!(
                "the command or arguments of server `{server}` changed since it was pinned, so all its tools are held"
            ),
        }),
        ServerStatus::ExecutableChanged => Some(Hold {
            kind: HoldKind::Changed,
            rule: "pin:changed".into(),
            reason: format!(
                "the executable `{}` of server `{server}` was replaced since this machine first ran it, so all its tools are held",
                facts.replaced_executable.unwrap_or_default()
            ),
        }),
        ServerStatus::InstructionsChanged => Some(Hold {
            kind: HoldKind::Changed,
            rule: "pin:changed".into(),
            reason: format!(
                "the instructions of server `{server}` changed since they were pinned, so all its tools are held"
            ),
        }),
    };
    verdict
}

/// How one item compares with its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemStatus {
    Pinned,
    New,
    Changed,
    /// The definition cannot be canonicalized (duplicate keys, too deep): never pinned.
    Invalid(String),
}

/// The verdict on one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemVerdict {
    pub status: ItemStatus,
    /// Finding ids at [`HOLD_SEVERITY`] or above that its pin does not accept.
    pub unaccepted: Vec<&'static str>,
    pub hold: Option<Hold>,
    /// `tofu`: the pin to write on first sight.
    pub pin: Option<ItemPin>,
}

impl ItemVerdict {
    /// Whether the item is held.
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.hold.is_some()
    }
}

/// Judges one item (`source`: the definition as the upstream sent it) of a server
/// whose own verdict is `server`.
#[must_use]
pub fn judge_item(
    mode: PinningMode,
    lock: &LockFile,
    key: &PinKey,
    exposed: &str,
    source: &str,
    findings: &[Finding],
    server: &ServerVerdict,
) -> ItemVerdict {
    let candidate = candidate_pin(exposed, source, findings);
    let pinned = lock.items.get(key);
    let status = match (&candidate, pinned) {
        (Err(e), _) => ItemStatus::Invalid(e.to_string()),
        (Ok(_), None) => ItemStatus::New,
        (Ok(c), Some(p)) if c.digest() != p.digest() => ItemStatus::Changed,
        (Ok(_), Some(_)) => ItemStatus::Pinned,
    };
    let accepted = match (&status, pinned) {
        (ItemStatus::Pinned, Some(p)) => Some(&p.accepted),
        _ => None,
    };
    let unaccepted: Vec<&'static str> = strong(findings)
        .map(|f| f.id)
        .filter(|id| accepted.is_none_or(|a| !a.contains(*id)))
        .collect();
    let mut verdict = ItemVerdict {
        status: status.clone(),
        unaccepted,
        hold: None,
        pin: None,
    };
    if mode == PinningMode::Off {
        return verdict;
    }
    let item = format!("{} `{exposed}`", noun(key));
    let first_flag = verdict
        .unaccepted
        .first()
        .and_then(|id| strong(findings).find(|f| f.id == *id));
    verdict.hold = match status {
        ItemStatus::Invalid(why) => Some(Hold {
            kind: HoldKind::New,
            rule: "pin:new".into(),
            reason: format!("{item} cannot be pinned: {why}"),
        }),
        // A new server's new items say so themselves.
        ItemStatus::New if server.status == ServerStatus::New && server.hold.is_some() => {
            first_flag
                .map_or_else(
                    || Hold {
                        kind: HoldKind::New,
                        rule: "pin:new".into(),
                        reason: format!("{item} is new and not pinned yet"),
                    },
                    |f| flagged_hold(f, &item),
                )
                .into()
        }
        _ if server.hold.is_some() => server.hold.clone(),
        ItemStatus::Changed => Some(Hold {
            kind: HoldKind::Changed,
            rule: "pin:changed".into(),
            reason: if lock.legacy_meta && pinned.is_some_and(|p| only_meta_is_new(p, source)) {
                format!(
                    "{item} has a `_meta` its pin does not cover (pinned by an mcp-warden that left `_meta` out)"
                )
            } else {
                format!("{item} changed since it was pinned")
            },
        }),
        _ if first_flag.is_some() => first_flag.map(|f| flagged_hold(f, &item)),
        ItemStatus::New if mode == PinningMode::Tofu => {
            verdict.pin = candidate.ok();
            None
        }
        ItemStatus::New => Some(Hold {
            kind: HoldKind::New,
            rule: "pin:new".into(),
            reason: format!("{item} is new and not pinned yet"),
        }),
        ItemStatus::Pinned => None,
    };
    verdict
}

/// Whether `source` is what `pin` (a version 1 pin, made without `_meta`) pinned,
/// but for its `_meta`: the migration case, not a change of the rest.
fn only_meta_is_new(pin: &ItemPin, source: &str) -> bool {
    crate::canonical::canonicalize_without_meta(source)
        .is_ok_and(|without| without == pin.definition())
}

/// The pin that accepting the current definition would write: its findings at
/// [`HOLD_SEVERITY`] and above are accepted with it.
pub fn candidate_pin(
    exposed: &str,
    source: &str,
    findings: &[Finding],
) -> Result<ItemPin, CanonicalError> {
    let mut pin = ItemPin::new(exposed, source)?;
    pin.accepted = strong(findings).map(|f| f.id.to_owned()).collect();
    Ok(pin)
}

/// Findings strong enough to hold an item.
fn strong(findings: &[Finding]) -> impl Iterator<Item = &Finding> {
    findings.iter().filter(|f| f.severity >= HOLD_SEVERITY)
}

/// The hold of a listed resource (`uri`) whose scan found `findings`, if any is
/// strong enough to hold it (SPEC "Pinning": flagged resources are not listed, and
/// reads of them are held).
#[must_use]
pub fn resource_hold(uri: &str, findings: &[Finding]) -> Option<Hold> {
    let first = strong(findings).next()?;
    let mut hold = flagged_hold(first, &format!("resource `{uri}`"));
    hold.kind = HoldKind::FlaggedResource;
    Some(hold)
}

fn flagged_hold(f: &Finding, item: &str) -> Hold {
    Hold {
        kind: HoldKind::Flagged,
        rule: format!("scan:{}", f.id),
        reason: format!(
            "{item} is flagged by the scan: {} (\"{}\")",
            f.message, f.excerpt
        ),
    }
}

fn noun(key: &PinKey) -> &'static str {
    match key.kind {
        crate::pinning::lock::Kind::Tool => "tool",
        crate::pinning::lock::Kind::Prompt => "prompt",
        crate::pinning::lock::Kind::ResourceTemplate => "resource template",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinning::lock::Kind;

    /// Issue 13, item 4: a listed resource is held by a strong finding only, and its
    /// hold says that no pin resolves it.
    #[test]
    fn a_resource_is_held_by_a_strong_finding_and_not_resolved_by_a_pin() {
        let finding = |severity| crate::scan::Finding {
            id: "hidden-instructions",
            severity,
            item: "resource `memo://x`".into(),
            location: "/description".into(),
            excerpt: "<IMPORTANT>".into(),
            message: "instructions hidden in a description".into(),
        };
        assert_eq!(resource_hold("memo://x", &[]), None);
        assert_eq!(
            resource_hold("memo://x", &[finding(crate::scan::Severity::Low)]),
            None
        );
        let hold =
            resource_hold("memo://x", &[finding(crate::scan::Severity::High)]).expect("held");
        assert_eq!(hold.kind, HoldKind::FlaggedResource);
        assert_eq!(hold.rule, "scan:hidden-instructions");
        let explained = hold.explain("memo://x");
        assert!(
            explained.contains("resource `memo://x` is flagged"),
            "{explained}"
        );
        assert!(!explained.contains("mcp-warden pin"), "{explained}");
    }

    const TOOL: &str =
        r#"{"name":"read","description":"Reads a file.","inputSchema":{"type":"object"}}"#;
    const CHANGED: &str = r#"{"name":"read","description":"Reads a file, and more.","inputSchema":{"type":"object"}}"#;

    fn facts(instructions: Option<&str>) -> ServerFacts<'_> {
        ServerFacts {
            server: "fs",
            command: "npx",
            args: &[],
            instructions,
            instruction_findings: &[],
            replaced_executable: None,
        }
    }

    fn key() -> PinKey {
        PinKey::new("fs", Kind::Tool, "read")
    }

    fn finding(id: &'static str, severity: Severity) -> Finding {
        Finding {
            id,
            severity,
            item: "tool `read`".into(),
            location: "/description".into(),
            excerpt: "x".into(),
            message: "m".into(),
        }
    }

    /// A lock with the server and `TOOL` pinned (accepting `accepted`).
    fn pinned(accepted: &[&str]) -> LockFile {
        let mut lock = LockFile::default();
        lock.servers.insert("fs".into(), server_pin(&facts(None)));
        let mut pin = ItemPin::new("fs__read", TOOL).expect("pin");
        pin.accepted = accepted.iter().map(|s| (*s).to_owned()).collect();
        lock.items.insert(key(), pin);
        lock
    }

    fn judge(
        mode: PinningMode,
        lock: &LockFile,
        source: &str,
        findings: &[Finding],
    ) -> ItemVerdict {
        let server = judge_server(mode, lock, &facts(None));
        judge_item(mode, lock, &key(), "fs__read", source, findings, &server)
    }

    #[test]
    fn a_pinned_definition_is_served_in_every_mode() {
        for mode in [PinningMode::Strict, PinningMode::Tofu, PinningMode::Off] {
            let v = judge(mode, &pinned(&[]), TOOL, &[]);
            assert_eq!((v.status, v.hold, v.pin), (ItemStatus::Pinned, None, None));
        }
    }

    #[test]
    fn key_order_and_whitespace_are_not_a_change() {
        let same = r#"{ "inputSchema": {"type": "object"}, "description": "Reads a file.", "name": "read" }"#;
        let v = judge(PinningMode::Strict, &pinned(&[]), same, &[]);
        assert_eq!(v.status, ItemStatus::Pinned);
    }

    /// Issue 13, item 17: a tool's `_meta` is part of its digest. A `_meta` added or
    /// changed after approval holds the tool; a version 1 pin (made without `_meta`)
    /// does not silently approve an item that has one, and says why it holds it.
    #[test]
    fn meta_is_pinned_and_a_legacy_pin_does_not_approve_it() {
        let with_meta = r#"{"name":"read","description":"Reads a file.","inputSchema":{"type":"object"},"_meta":{"ui/resourceUri":"ui://evil"}}"#;
        let v = judge(PinningMode::Strict, &pinned(&[]), with_meta, &[]);
        assert_eq!(v.status, ItemStatus::Changed);
        let hold = v.hold.expect("held");
        assert!(
            hold.reason.ends_with("changed since it was pinned"),
            "{hold:?}"
        );

        let mut legacy = pinned(&[]);
        legacy.legacy_meta = true;
        let v = judge(PinningMode::Tofu, &legacy, with_meta, &[]);
        assert_eq!(v.status, ItemStatus::Changed);
        assert_eq!(v.pin, None, "never re-approved");
        let hold = v.hold.expect("held");
        assert_eq!(hold.rule, "pin:changed");
        assert!(
            hold.reason.contains("`_meta` its pin does not cover"),
            "{hold:?}"
        );
        // An item without `_meta` is still pinned by its version 1 pin.
        let v = judge(PinningMode::Strict, &legacy, TOOL, &[]);
        assert_eq!(v.status, ItemStatus::Pinned);
    }

    #[test]
    fn strict_holds_new_and_changed_items() {
        let v = judge(PinningMode::Strict, &LockFile::default(), TOOL, &[]);
        let hold = v.hold.expect("held");
        assert_eq!((hold.kind, hold.rule.as_str()), (HoldKind::New, "pin:new"));
        let v = judge(PinningMode::Strict, &pinned(&[]), CHANGED, &[]);
        assert_eq!(v.status, ItemStatus::Changed);
        let hold = v.hold.expect("held");
        assert_eq!(hold.rule, "pin:changed");
        assert!(
            hold.explain("fs__read")
                .contains("mcp-warden pins --diff fs__read")
        );
    }

    #[test]
    fn tofu_pins_what_is_new_and_holds_what_changed() {
        let v = judge(PinningMode::Tofu, &LockFile::default(), TOOL, &[]);
        assert!(v.hold.is_none());
        assert_eq!(v.pin.map(|p| p.exposed), Some("fs__read".to_owned()));
        let server = judge_server(PinningMode::Tofu, &LockFile::default(), &facts(None));
        assert!(server.pin.is_some() && server.hold.is_none());
        let v = judge(PinningMode::Tofu, &pinned(&[]), CHANGED, &[]);
        assert_eq!(v.hold.map(|h| h.kind), Some(HoldKind::Changed));
        assert!(v.pin.is_none());
    }

    #[test]
    fn flagged_items_are_held_in_strict_and_tofu_and_never_pinned() {
        let findings = [finding("hidden-instructions", Severity::High)];
        for mode in [PinningMode::Strict, PinningMode::Tofu] {
            let v = judge(mode, &pinned(&[]), TOOL, &findings);
            let hold = v.hold.expect("held");
            assert_eq!(hold.rule, "scan:hidden-instructions");
            assert_eq!(hold.kind, HoldKind::Flagged);
            let v = judge(mode, &LockFile::default(), TOOL, &findings);
            assert!(v.pin.is_none() && v.hold.is_some(), "{mode:?}");
        }
        let v = judge(PinningMode::Off, &LockFile::default(), TOOL, &findings);
        assert!(v.hold.is_none());
        assert_eq!(v.unaccepted, vec!["hidden-instructions"]);
    }

    #[test]
    fn accepted_findings_hold_no_more_but_a_new_one_does() {
        let one = [finding("hidden-instructions", Severity::High)];
        let v = judge(
            PinningMode::Strict,
            &pinned(&["hidden-instructions"]),
            TOOL,
            &one,
        );
        assert!(v.hold.is_none());
        let two = [
            finding("hidden-instructions", Severity::High),
            finding("conceal-from-user", Severity::High),
        ];
        let v = judge(
            PinningMode::Strict,
            &pinned(&["hidden-instructions"]),
            TOOL,
            &two,
        );
        assert_eq!(
            v.hold.map(|h| h.rule),
            Some("scan:conceal-from-user".into())
        );
    }

    #[test]
    fn low_findings_hold_nothing() {
        let low = [finding("long-text", Severity::Low)];
        let v = judge(PinningMode::Strict, &pinned(&[]), TOOL, &low);
        assert!(v.hold.is_none() && v.unaccepted.is_empty());
    }

    #[test]
    fn candidate_pins_accept_their_findings() {
        let f = [
            finding("long-text", Severity::Low),
            finding("hidden-markup", Severity::Medium),
        ];
        let pin = candidate_pin("fs__read", TOOL, &f).expect("pin");
        assert_eq!(pin.accepted.iter().collect::<Vec<_>>(), ["hidden-markup"]);
    }

    #[test]
    fn an_identity_or_instructions_change_holds_every_item() {
        let lock = pinned(&[]);
        let moved = ServerFacts {
            command: "uvx",
            ..facts(None)
        };
        let server = judge_server(PinningMode::Strict, &lock, &moved);
        assert_eq!(server.status, ServerStatus::IdentityChanged);
        let v = judge_item(
            PinningMode::Tofu,
            &lock,
            &key(),
            "fs__read",
            TOOL,
            &[],
            &server,
        );
        assert_eq!(v.hold.map(|h| h.rule), Some("pin:changed".into()));

        let replaced = ServerFacts {
            replaced_executable: Some("/usr/bin/node"),
            ..facts(None)
        };
        let server = judge_server(PinningMode::Strict, &lock, &replaced);
        assert_eq!(server.status, ServerStatus::ExecutableChanged);
        assert!(
            server
                .hold
                .is_some_and(|h| h.reason.contains("/usr/bin/node"))
        );

        let chatty = facts(Some("Always call read first."));
        let server = judge_server(PinningMode::Tofu, &lock, &chatty);
        assert_eq!(server.status, ServerStatus::InstructionsChanged);
        assert!(!server.shows_instructions());
        let v = judge_item(
            PinningMode::Tofu,
            &lock,
            &key(),
            "fs__read",
            TOOL,
            &[],
            &server,
        );
        assert!(v.is_held());
    }

    #[test]
    fn a_new_server_is_held_in_strict() {
        let server = judge_server(PinningMode::Strict, &LockFile::default(), &facts(None));
        assert_eq!(server.hold.map(|h| h.rule), Some("pin:new".into()));
    }

    #[test]
    fn flagged_instructions_hold_a_new_server_in_tofu() {
        let f = [finding("hidden-instructions", Severity::High)];
        let facts = ServerFacts {
            instruction_findings: &f,
            ..facts(Some("<IMPORTANT>x</IMPORTANT>"))
        };
        let server = judge_server(PinningMode::Tofu, &LockFile::default(), &facts);
        assert!(server.pin.is_none());
        assert_eq!(server.hold.map(|h| h.kind), Some(HoldKind::Flagged));
    }

    #[test]
    fn an_invalid_definition_is_held_even_in_tofu() {
        let v = judge(
            PinningMode::Tofu,
            &LockFile::default(),
            r#"{"name":"a","name":"b"}"#,
            &[],
        );
        assert!(matches!(v.status, ItemStatus::Invalid(_)));
        assert!(v.hold.is_some() && v.pin.is_none());
    }
}
