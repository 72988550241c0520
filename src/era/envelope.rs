//! The era of a client request: modern iff its `params._meta` carries
//! `io.modelcontextprotocol/protocolVersion` (S/basic/index.mdx "Per-request protocol
//! fields"); then the version must be one we speak (else -32022 listing every version
//! we speak, legacy ones included, so a dual client falls back to `initialize`) and
//! `clientCapabilities` must be there (else -32602).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::{KEY_CAPABILITIES, KEY_CLIENT_INFO, KEY_LOG_LEVEL, KEY_VERSION};
use crate::jsonrpc::{ErrorCode, Message};

/// What a modern request says about its client.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The revision of this request.
    pub version: &'static str,
    /// The client's capabilities for this request.
    pub capabilities: Value,
    /// Who the client says it is (for the audit).
    pub info: Option<Value>,
    /// The lowest level of `notifications/message` it wants for this request.
    pub log_level: Option<String>,
}

/// Why a request that looks modern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// -32022: a version we do not speak.
    #[error("unsupported protocol version `{requested}`")]
    UnsupportedVersion { requested: String },
    /// -32602: a required key is missing or of the wrong type.
    #[error("invalid `_meta`: {0}")]
    Invalid(&'static str),
}

impl EnvelopeError {
    /// The JSON-RPC error code of the refusal.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::Invalid(_) => ErrorCode::InvalidParams,
        }
    }

    /// The error's `data`: for -32022, every version we speak and the one asked for.
    #[must_use]
    pub fn data(&self) -> Option<Value> {
        match self {
            Self::UnsupportedVersion { requested } => {
                Some(super::errors::unsupported_version_data(Some(requested)))
            }
            Self::Invalid(_) => None,
        }
    }
}

/// The envelope of a request: `Ok(None)` for a legacy request (no
/// `protocolVersion` in `params._meta`).
pub fn classify(msg: &Message) -> Result<Option<Envelope>, EnvelopeError> {
    let Some((meta, _)) = msg.param(&["_meta"]) else {
        return Ok(None);
    };
    let Ok(meta) = serde_json::from_str::<HashMap<Cow<'_, str>, &RawValue>>(meta) else {
        return Ok(None);
    };
    let Some(version) = meta.get(KEY_VERSION) else {
        // The other per-request keys without a version: a broken modern request.
        if meta.contains_key(KEY_CAPABILITIES) || meta.contains_key(KEY_CLIENT_INFO) {
            return Err(EnvelopeError::Invalid(
                "`io.modelcontextprotocol/protocolVersion` is required",
            ));
        }
        return Ok(None);
    };
    let Ok(requested) = serde_json::from_str::<String>(version.get()) else {
        return Err(EnvelopeError::Invalid(
            "`io.modelcontextprotocol/protocolVersion` must be a string",
        ));
    };
    let Some(version) = super::negotiate_modern(&requested) else {
        return Err(EnvelopeError::UnsupportedVersion { requested });
    };
    let capabilities = match meta
        .get(KEY_CAPABILITIES)
        .map(|c| serde_json::from_str(c.get()))
    {
        Some(Ok(caps @ Value::Object(_))) => caps,
        Some(_) => {
            return Err(EnvelopeError::Invalid(
                "`io.modelcontextprotocol/clientCapabilities` must be an object",
            ));
        }
        None => {
            return Err(EnvelopeError::Invalid(
                "`io.modelcontextprotocol/clientCapabilities` is required",
            ));
        }
    };
    let info = meta
        .get(KEY_CLIENT_INFO)
        .and_then(|i| serde_json::from_str::<Value>(i.get()).ok())
        .filter(Value::is_object);
    let log_level = meta
        .get(KEY_LOG_LEVEL)
        .and_then(|l| serde_json::from_str::<String>(l.get()).ok());
    Ok(Some(Envelope {
        version,
        capabilities,
        info,
        log_level,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::message::reparse;

    fn classify_line(params: &str) -> Result<Option<Envelope>, EnvelopeError> {
        let line = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{params}}}"#);
        classify(&reparse(&bytes::Bytes::from(line + "\n")).expect("valid"))
    }

    #[test]
    fn a_request_without_the_version_is_legacy() {
        assert_eq!(classify_line("{}"), Ok(None));
        assert_eq!(classify_line(r#"{"_meta":{"progressToken":1}}"#), Ok(None));
        assert_eq!(
            classify_line(r#"{"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t"}}}"#),
            Ok(None)
        );
        assert_eq!(classify_line(r#"{"_meta":7}"#), Ok(None));
    }

    #[test]
    fn a_modern_request_is_read() {
        let env = classify_line(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/logLevel":"debug"}}"#,
        )
        .expect("valid")
        .expect("modern");
        assert_eq!(env.version, "2026-07-28");
        assert_eq!(env.capabilities, serde_json::json!({"elicitation": {}}));
        assert_eq!(
            env.info,
            Some(serde_json::json!({"name": "c", "version": "1"}))
        );
        assert_eq!(env.log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn an_unknown_version_lists_every_version_we_speak() {
        let e = classify_line(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}"#,
        )
        .expect_err("unknown version");
        assert_eq!(e.code().code(), -32022);
        let data = e.data().expect("data");
        let supported: Vec<&str> = data["supported"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(supported, super::super::all_versions().collect::<Vec<_>>());
        assert_eq!(data["requested"], "2099-01-01");
    }

    #[test]
    fn missing_or_mistyped_required_keys_are_invalid_params() {
        for params in [
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#,
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}}"#,
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":7,"io.modelcontextprotocol/clientCapabilities":{}}}"#,
            r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}"#,
        ] {
            let e = classify_line(params).expect_err(params);
            assert_eq!(e.code(), ErrorCode::InvalidParams, "{params}");
        }
    }
}
