//! Messages mcp-warden writes itself: its `initialize` answer and requests, blocked
//! results, logging notifications. Built as JSON text in one place so their shapes are
//! easy to check against the SPEC.

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::filter::Block;

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// A request mcp-warden sends (to an upstream or to the client) with a numeric id.
#[must_use]
pub fn request(id: u64, method: &str, params: Option<&Value>) -> Bytes {
    let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if let Some(params) = params {
        msg["params"] = params.clone();
    }
    line(&msg)
}

/// A notification with the given params (or none).
#[must_use]
pub fn notification(method: &str, params: Option<Value>) -> Bytes {
    let mut msg = json!({"jsonrpc": "2.0", "method": method});
    if let Some(params) = params {
        msg["params"] = params;
    }
    line(&msg)
}

/// A `notifications/message` from mcp-warden itself.
#[must_use]
pub fn log_message(level: &str, text: &str) -> Bytes {
    notification(
        "notifications/message",
        Some(json!({"level": level, "logger": "mcp-warden", "data": text})),
    )
}

/// The `initialize` params sent to an upstream: the client's version, capabilities
/// and identity, so the server offers what it would offer the client itself.
#[must_use]
pub fn upstream_initialize(
    id: u64,
    version: &str,
    client_capabilities: &Value,
    client_info: &Value,
) -> Bytes {
    request(
        id,
        "initialize",
        Some(&json!({
            "protocolVersion": version,
            "capabilities": client_capabilities,
            "clientInfo": client_info,
        })),
    )
}

/// The `result` of mcp-warden's own `initialize` answer.
#[must_use]
pub fn initialize_result(
    version: &str,
    capabilities: &Value,
    instructions: Option<&str>,
) -> String {
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": crate::era::meta::our_info(),
    });
    if let Some(text) = instructions {
        result["instructions"] = Value::String(text.to_owned());
    }
    result.to_string()
}

/// The result of `server/discover` (S/server/discover.mdx): every version we speak,
/// newest first; the merged capabilities; our identity in `_meta`; private caching.
#[must_use]
pub fn discover_result(capabilities: &Value, instructions: Option<&str>, ttl_ms: u64) -> String {
    let versions: Vec<&str> = crate::era::all_versions().collect();
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": versions,
        "capabilities": capabilities,
        "ttlMs": ttl_ms,
        "cacheScope": "private",
        "_meta": {crate::era::KEY_SERVER_INFO: crate::era::meta::our_info()},
    });
    if let Some(text) = instructions {
        result["instructions"] = Value::String(text.to_owned());
    }
    result.to_string()
}

/// The tool result for a blocked call (SPEC "Decisions on the wire").
#[must_use]
pub fn blocked_tool_result(decision: &str, block: &Block) -> String {
    json!({
        "content": [{"type": "text", "text": format!("Blocked by mcp-warden: rule `{}`: {}", block.rule, block.reason)}],
        "isError": true,
        "_meta": {"mcp-warden/decision": decision, "mcp-warden/rule": block.rule},
    })
    .to_string()
}

/// The params of the `elicitation/create` that asks the user to review a held item
/// (`[pinning] ask`): one boolean, "pin it".
#[must_use]
pub fn pin_review_params(message: &str) -> Value {
    json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {
                "pin": {
                    "type": "boolean",
                    "title": "Pin it",
                    "description": "Accept this definition into mcp-warden.lock"
                }
            },
            "required": ["pin"]
        }
    })
}

/// The `data` of a -32003 error for a blocked request.
#[must_use]
pub fn blocked_data(decision: &str, block: &Block) -> Value {
    json!({"mcp-warden/decision": decision, "mcp-warden/rule": block.rule})
}

/// The workspace roots answered to an upstream's `roots/list`.
#[must_use]
pub fn roots_result(root: Option<&std::path::Path>) -> String {
    let roots: Vec<Value> = root
        .map(|r| {
            let name = r
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            json!({"uri": file_uri(r), "name": name})
        })
        .into_iter()
        .collect();
    json!({ "roots": roots }).to_string()
}

/// A `file://` URI for an absolute path, percent-encoding what URIs do not allow.
#[must_use]
pub fn file_uri(path: &std::path::Path) -> String {
    let mut uri = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri
}

use std::os::unix::ffi::OsStringExt;

/// The path of a `file://` URI, decoding percent escapes; `None` for other schemes.
#[must_use]
pub fn uri_path(uri: &str) -> Option<std::path::PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    // `file://host/path`: only an empty host or `localhost` means this machine.
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| char::from(b).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                // Two hex digits make at most 0xFF.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(std::path::PathBuf::from(std::ffi::OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_round_trip() {
        let p = std::path::Path::new("/tmp/a b/ü%");
        assert_eq!(uri_path(&file_uri(p)).as_deref(), Some(p));
        assert_eq!(
            uri_path("file:///x/y").as_deref(),
            Some(std::path::Path::new("/x/y"))
        );
        assert_eq!(uri_path("https://x/y"), None);
    }
}
