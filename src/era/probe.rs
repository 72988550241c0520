//! The `server/discover` probe that finds an upstream's era (S/basic/transports/
//! stdio.mdx "Backward Compatibility"; `docs/dual-era.md` §1.3). The fallback to legacy
//! never keys on one error code: any answer that is not a usable discover result, and
//! silence, mean legacy (the session times the silence out).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::KEY_SERVER_INFO;
use crate::jsonrpc::Message;

/// How long an upstream may take to answer the probe before it is taken for legacy
/// (bounded by its `request_timeout`). A server that answers `initialize` quickly
/// answers this as quickly; two seconds leave room for a slow interpreter start
/// without holding the client's first request much longer.
pub const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The probe request (one line with its `\n`), at `version`, declaring `capabilities`.
#[must_use]
pub fn discover_request(id: u64, version: &str, capabilities: &Value) -> Bytes {
    let meta = super::meta::envelope(version, capabilities);
    crate::session::wire::request(
        id,
        "server/discover",
        Some(&serde_json::json!({ "_meta": meta })),
    )
}

/// What an upstream said about itself in its discover result.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// The newest modern revision both sides speak.
    pub version: &'static str,
    pub capabilities: Value,
    pub instructions: Option<String>,
    /// How long its discover result may be cached, when it said.
    pub ttl_ms: Option<u64>,
    /// Its `serverInfo` (for `doctor`).
    pub server_info: Option<Value>,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutcome {
    /// Modern: no `initialize`, ready at once.
    Modern(Discovered),
    /// Legacy (or unknown): `initialize` it.
    Legacy,
    /// It named a modern version we speak other than the one asked: ask again at it.
    RetryAt(&'static str),
    /// Modern-only at versions we do not speak: it refuses us.
    Refuses { supported: Vec<String> },
}

#[derive(Deserialize)]
struct DiscoverResult {
    #[serde(rename = "supportedVersions", default)]
    versions: Vec<String>,
    #[serde(default)]
    capabilities: Value,
    instructions: Option<String>,
    #[serde(rename = "ttlMs")]
    ttl_ms: Option<u64>,
    #[serde(rename = "_meta", default)]
    meta: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: i64,
    #[serde(default)]
    data: Value,
}

/// The versions a -32022 error names in `data.supported`, when `msg` is one.
#[must_use]
pub fn unsupported_versions(msg: &Message) -> Option<Vec<String>> {
    let error: ErrorBody = serde_json::from_str(msg.error()?).ok()?;
    if error.code != i64::from(crate::jsonrpc::ErrorCode::UnsupportedVersion.code()) {
        return None;
    }
    let supported = error.data.get("supported")?.as_array()?;
    Some(
        supported
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// Reads the answer to a probe sent at `asked`.
#[must_use]
pub fn classify(msg: &Message, asked: &str) -> ProbeOutcome {
    if let Some(result) = msg.result() {
        let Ok(result) = serde_json::from_str::<DiscoverResult>(result) else {
            return ProbeOutcome::Legacy;
        };
        let Some(version) = super::newest_common_modern(result.versions.iter().map(String::as_str))
        else {
            // No modern version in common: legacy, as the SDKs' own clients decide.
            return ProbeOutcome::Legacy;
        };
        let capabilities = if result.capabilities.is_object() {
            result.capabilities
        } else {
            Value::Object(serde_json::Map::new())
        };
        return ProbeOutcome::Modern(Discovered {
            version,
            capabilities,
            instructions: result.instructions,
            ttl_ms: result.ttl_ms,
            server_info: result.meta.get(KEY_SERVER_INFO).cloned(),
        });
    }
    match unsupported_versions(msg) {
        Some(supported) => refusal(&supported, asked),
        None => ProbeOutcome::Legacy,
    }
}

/// What a -32022 naming `supported` means for a request sent at `asked` (a probe, or
/// an `initialize` a slow server was locked out of by a probe that timed out).
#[must_use]
pub fn refusal(supported: &[String], asked: &str) -> ProbeOutcome {
    if let Some(version) = super::newest_common_modern(supported.iter().map(String::as_str)) {
        if version != asked {
            return ProbeOutcome::RetryAt(version);
        }
        return ProbeOutcome::Legacy;
    }
    if supported.iter().any(|v| super::is_legacy_version(v)) {
        return ProbeOutcome::Legacy;
    }
    ProbeOutcome::Refuses {
        supported: supported.to_vec(),
    }
}

/// Why a server that refuses us cannot be used, naming both sides' versions.
#[must_use]
pub fn refusal_reason(supported: &[String]) -> String {
    let ours: Vec<&str> = super::all_versions().collect();
    format!(
        "speaks only {}; mcp-warden speaks {}",
        if supported.is_empty() {
            "versions it did not name".to_owned()
        } else {
            supported.join(", ")
        },
        ours.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::message::reparse;

    fn answer(line: &str) -> ProbeOutcome {
        let m = reparse(&Bytes::from(format!("{line}\n"))).expect("valid");
        classify(&m, "2026-07-28")
    }

    #[test]
    fn the_probe_declares_our_envelope() {
        let line = discover_request(3, "2026-07-28", &serde_json::json!({"roots": {}}));
        let m = reparse(&line).expect("valid");
        assert_eq!(m.method(), Some("server/discover"));
        let env = super::super::envelope::classify(&m)
            .expect("valid")
            .expect("modern");
        assert_eq!(env.version, "2026-07-28");
        assert_eq!(env.info, Some(super::super::meta::our_info()));
    }

    #[test]
    fn a_discover_result_with_a_common_version_is_modern() {
        let got = answer(
            r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"instructions":"hi","ttlMs":5000,"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s"}}}}"#,
        );
        assert_eq!(
            got,
            ProbeOutcome::Modern(Discovered {
                version: "2026-07-28",
                capabilities: serde_json::json!({"tools": {}}),
                instructions: Some("hi".into()),
                ttl_ms: Some(5000),
                server_info: Some(serde_json::json!({"name": "s"})),
            })
        );
    }

    #[test]
    fn anything_else_falls_back_to_legacy_whatever_the_code() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"not initialized"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"v","data":{"supported":["2025-06-18"]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"v","data":{"supported":["2026-07-28"]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2025-11-25"]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":[1,2]}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":"2026-07-28"}}"#,
        ] {
            assert_eq!(answer(line), ProbeOutcome::Legacy, "{line}");
        }
    }

    #[test]
    fn only_versions_we_do_not_speak_is_a_refusal() {
        let got = answer(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"v","data":{"supported":["2027-03-01"]}}}"#,
        );
        assert_eq!(
            got,
            ProbeOutcome::Refuses {
                supported: vec!["2027-03-01".into()]
            }
        );
        assert!(refusal_reason(&["2027-03-01".into()]).contains("speaks only 2027-03-01"));
        assert_eq!(
            refusal(&["2026-07-28".into()], "2025-11-25"),
            ProbeOutcome::RetryAt("2026-07-28")
        );
    }
}
