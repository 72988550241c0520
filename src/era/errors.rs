//! Error codes per era (S/basic/index.mdx "Error Codes"): the modern era gives
//! -32020…-32099 to the spec (-32022 unsupported version, -32021 missing client
//! capability) and forbids -32002, which the legacy era uses for "resource not found".
//! The mapping is applied once, where an answer leaves for the client.

use std::ops::Range;

use serde_json::Value;

use super::meta::{Edit, members};
use crate::jsonrpc::{ErrorCode, Message};

/// The legacy era's "resource not found".
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// The modern era's "missing client capability" (undefined for legacy peers).
pub const MISSING_CAPABILITY: i64 = -32021;

/// The `data` of a -32022: every version we speak, newest first, legacy ones included
/// (a dual client then falls back to `initialize` rather than failing), and the one
/// asked for.
#[must_use]
pub fn unsupported_version_data(requested: Option<&str>) -> Value {
    let supported: Vec<&str> = super::all_versions().collect();
    let mut data = serde_json::json!({ "supported": supported });
    if let Some(requested) = requested {
        data["requested"] = Value::String(requested.to_owned());
    }
    data
}

/// The code for "no such resource" toward a client of this era.
#[must_use]
pub fn resource_not_found(modern: bool) -> ErrorCode {
    if modern {
        ErrorCode::InvalidParams
    } else {
        ErrorCode::ResourceNotFound
    }
}

/// The code that replaces `code` in an error answer to a client of this era, if any:
/// -32002 becomes -32602 toward a modern client (it may not see -32002), -32021
/// becomes -32601 toward a legacy one (the code means nothing in its era).
#[must_use]
pub fn for_client(code: i64, modern: bool) -> Option<ErrorCode> {
    match (code, modern) {
        (RESOURCE_NOT_FOUND, true) => Some(ErrorCode::InvalidParams),
        (MISSING_CAPABILITY, false) => Some(ErrorCode::MethodNotFound),
        _ => None,
    }
}

/// The edit that maps an error answer's code for a client of this era (see
/// [`for_client`]); none for a result or a code that passes.
#[must_use]
pub fn map_code(msg: &Message, modern: bool) -> Vec<Edit> {
    let (Ok(line), Some(error)) = (std::str::from_utf8(msg.raw()), msg.error_span()) else {
        return Vec::new();
    };
    let code: Option<Range<usize>> = members(line, error)
        .and_then(|all| all.into_iter().find(|m| m.key == "code"))
        .map(|m| m.value);
    let Some(span) = code else {
        return Vec::new();
    };
    let Ok(value) = line[span.clone()].parse::<i64>() else {
        return Vec::new();
    };
    for_client(value, modern)
        .map(|to| vec![(span, to.code().to_string())])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::message::reparse;

    fn mapped(line: &str, modern: bool) -> String {
        let m = reparse(&bytes::Bytes::from(format!("{line}\n"))).expect("valid");
        let edits = map_code(&m, modern);
        let edits: Vec<(Range<usize>, &str)> =
            edits.iter().map(|(r, t)| (r.clone(), t.as_str())).collect();
        String::from_utf8(m.rewrite(None, &edits).to_vec())
            .expect("utf8")
            .trim_end()
            .to_owned()
    }

    #[test]
    fn resource_not_found_is_minus_32602_for_modern_clients_only() {
        let line = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"no","data":{"uri":"x:/"}}}"#;
        assert_eq!(mapped(line, false), line);
        assert_eq!(mapped(line, true), line.replace("-32002", "-32602"));
        assert_eq!(resource_not_found(true).code(), -32602);
        assert_eq!(resource_not_found(false).code(), -32002);
    }

    #[test]
    fn missing_capability_is_method_not_found_for_legacy_clients() {
        let line = r#"{"jsonrpc":"2.0","id":1,"error":{"message":"m", "code" : -32021}}"#;
        assert_eq!(mapped(line, true), line);
        assert_eq!(mapped(line, false), line.replace("-32021", "-32601"));
        let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"code":-32002}}"#;
        assert_eq!(mapped(ok, true), ok);
    }
}
