//! JSON-RPC error codes mcp-warden answers with, and how an error answer is built.

use bytes::Bytes;
use serde_json::Value;

use super::message::Id;

/// The error codes of JSON-RPC and of SPEC "Decisions on the wire".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// -32700: the line is not JSON (or not UTF-8, or nested too deep).
    Parse,
    /// -32600: JSON, but not a valid JSON-RPC message.
    InvalidRequest,
    /// -32601: no such method here.
    MethodNotFound,
    /// -32602: the method exists but its params are wrong (e.g. an unknown tool).
    InvalidParams,
    /// -32603: mcp-warden failed internally.
    Internal,
    /// -32002: resource not found (legacy clients only: the modern era forbids it;
    /// see [`crate::era::errors`]).
    ResourceNotFound,
    /// -32003: blocked by policy.
    Blocked,
    /// -32004: the upstream is unavailable (not started, crashed).
    Unavailable,
    /// -32005: the request timed out.
    Timeout,
    /// -32006: too many requests in flight.
    Busy,
    /// -32022: a protocol version mcp-warden does not speak (the spec's code).
    UnsupportedVersion,
    /// -32021: the request needs a client capability it did not declare (modern era
    /// only; see [`crate::era::errors`]).
    MissingCapability,
}

impl ErrorCode {
    /// The numeric code on the wire.
    #[must_use]
    pub fn code(self) -> i32 {
        match self {
            Self::Parse => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams => -32602,
            Self::Internal => -32603,
            Self::ResourceNotFound => -32002,
            Self::Blocked => -32003,
            Self::Unavailable => -32004,
            Self::Timeout => -32005,
            Self::Busy => -32006,
            Self::UnsupportedVersion => -32022,
            Self::MissingCapability => -32021,
        }
    }
}

/// Builds a complete error answer line (with its `\n`). `id` is written exactly as it
/// arrived; `None` writes `null`, as JSON-RPC asks when the id could not be read.
#[must_use]
pub fn error_response(
    id: Option<&Id>,
    code: ErrorCode,
    message: &str,
    data: Option<Value>,
) -> Bytes {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), code.code().into());
    error.insert("message".into(), message.into());
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    let error = Value::Object(error).to_string();
    let id = id.map_or("null", Id::as_str);
    Bytes::from(format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{error}}}\n"
    ))
}

/// Builds a complete success answer line (with its `\n`) from a result's JSON text.
#[must_use]
pub fn result_response(id: &Id, result_json: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{result_json}}}\n",
        id.as_str()
    ))
}
