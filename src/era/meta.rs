//! `_meta` and result surgery on the raw bytes, as edits for
//! [`Message::rewrite`](crate::jsonrpc::Message::rewrite): a member's value replaced,
//! members inserted at the start of an object (an empty range), members removed with
//! their comma. Nothing else of the line changes, so what is not ours passes byte for
//! byte (unknown members, `traceparent`, escapes, number spellings).

use std::ops::Range;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    ENVELOPE_KEYS, KEY_CAPABILITIES, KEY_CLIENT_INFO, KEY_LOG_LEVEL, KEY_SERVER_INFO, KEY_VERSION,
};
use crate::jsonrpc::Message;
use crate::jsonrpc::message::{span_in, string_end};

/// One edit of a line: the bytes in the range become the text (an empty range inserts).
pub type Edit = (Range<usize>, String);

/// One member of a JSON object, as offsets into the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key, unescaped.
    pub key: String,
    /// From the key's opening quote to the end of its value.
    pub whole: Range<usize>,
    /// The value's text.
    pub value: Range<usize>,
}

/// The members of the object whose text is `line[object]`, in order; `None` when it is
/// not an object. The line was parsed already, so it is well-formed JSON.
#[must_use]
pub fn members(line: &str, object: Range<usize>) -> Option<Vec<Member>> {
    let text = line.get(object.clone())?;
    if !text.starts_with('{') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut at = 1;
    let mut out = Vec::new();
    loop {
        while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b',') {
            at += 1;
        }
        if at >= bytes.len() || bytes[at] == b'}' {
            return Some(out);
        }
        let key_start = at;
        let key_end = string_end(bytes, at)?;
        let key: String = serde_json::from_str(&text[at..key_end]).ok()?;
        let colon = text[key_end..].find(':')? + key_end;
        let mut de = serde_json::Deserializer::from_str(&text[colon + 1..]);
        let value = <&RawValue>::deserialize(&mut de).ok()?;
        let value = span_in(text, value.get());
        out.push(Member {
            key,
            whole: object.start + key_start..object.start + value.end,
            value: object.start + value.start..object.start + value.end,
        });
        at = value.end;
    }
}

/// The edits that insert `new` members (key, value JSON text) at the start of the
/// object `line[object]`, whose members are `existing`.
fn insert_first(
    object: &Range<usize>,
    existing: &[Member],
    new: &[(&str, String)],
) -> Option<Edit> {
    if new.is_empty() {
        return None;
    }
    let mut text = new
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String((*k).to_owned())))
        .collect::<Vec<_>>()
        .join(",");
    if !existing.is_empty() {
        text.push(',');
    }
    Some((object.start + 1..object.start + 1, text))
}

/// The edits that remove the members of `all` that `remove` selects, commas included,
/// leaving the others byte for byte.
fn remove(all: &[Member], remove: impl Fn(&Member) -> bool) -> Vec<Edit> {
    let mut edits = Vec::new();
    let mut i = 0;
    while i < all.len() {
        if !remove(&all[i]) {
            i += 1;
            continue;
        }
        let first = i;
        while i + 1 < all.len() && remove(&all[i + 1]) {
            i += 1;
        }
        let last = i;
        let range = if let Some(next) = all.get(last + 1) {
            all[first].whole.start..next.whole.start
        } else if first > 0 {
            all[first - 1].whole.end..all[last].whole.end
        } else {
            all[first].whole.start..all[last].whole.end
        };
        edits.push((range, String::new()));
        i += 1;
    }
    edits
}

/// The top-level members of a message's `params`, and the span of `params`.
fn params_members(msg: &Message) -> Option<(Range<usize>, Vec<Member>)> {
    let line = std::str::from_utf8(msg.raw()).ok()?;
    let span = msg.params_span()?;
    Some((span.clone(), members(line, span)?))
}

/// The members of `params._meta`, and its span, when it is an object.
fn meta_members(msg: &Message) -> Option<(Range<usize>, Vec<Member>)> {
    let line = std::str::from_utf8(msg.raw()).ok()?;
    let (_, params) = params_members(msg)?;
    let meta = params.iter().find(|m| m.key == "_meta")?.value.clone();
    Some((meta.clone(), members(line, meta)?))
}

/// What mcp-warden sets in a request to a modern upstream.
#[derive(Debug, Clone)]
pub struct Owned {
    /// The revision agreed with that upstream at its probe.
    pub version: &'static str,
    /// The capabilities mcp-warden mediates for this request (see [`mediated`]).
    pub capabilities: Value,
    /// A level to ask for when the request names none (a legacy client's
    /// `logging/setLevel`, carried to modern servers per request).
    pub log_level: Option<String>,
}

/// mcp-warden's own client info, sent to modern upstreams.
#[must_use]
pub fn our_info() -> Value {
    serde_json::json!({"name": "mcp-warden", "version": env!("CARGO_PKG_VERSION")})
}

/// [`our_info`] as JSON text, made once: it is spliced into every request to a modern
/// upstream and every result to a modern client.
#[must_use]
pub fn our_info_text() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| our_info().to_string());
    &TEXT
}

/// The `_meta` object of a request mcp-warden makes itself to a modern upstream.
#[must_use]
pub fn envelope(version: &str, capabilities: &Value) -> Value {
    serde_json::json!({
        KEY_VERSION: version,
        KEY_CAPABILITIES: capabilities,
        KEY_CLIENT_INFO: our_info(),
    })
}

/// The client capabilities mcp-warden declares upstream for a request: `roots` always
/// (it answers them itself), `elicitation` and `sampling` as the client declared them,
/// each only when the server's table allows it.
#[must_use]
pub fn mediated(client: &Value, elicitation: bool, sampling: bool) -> Value {
    let mut caps = serde_json::json!({"roots": {}});
    for (name, allowed) in [("elicitation", elicitation), ("sampling", sampling)] {
        if allowed && let Some(cap) = client.get(name) {
            caps[name] = cap.clone();
        }
    }
    caps
}

/// The edits that give a request to a modern upstream our envelope: the client's
/// `protocolVersion`, `clientCapabilities` and `clientInfo` values replaced where they
/// are, added first where they are not (creating `_meta`, and `params`, when absent).
/// Every other byte stays.
#[must_use]
pub fn set_owned(msg: &Message, owned: &Owned) -> Vec<Edit> {
    let mut ours = vec![
        (
            KEY_VERSION,
            Value::String(owned.version.to_owned()).to_string(),
        ),
        (KEY_CAPABILITIES, owned.capabilities.to_string()),
        (KEY_CLIENT_INFO, our_info_text().to_owned()),
    ];
    // A level of ours only where the request names none: the client's own wins.
    let names_level =
        meta_members(msg).is_some_and(|(_, meta)| meta.iter().any(|m| m.key == KEY_LOG_LEVEL));
    if let (Some(level), false) = (&owned.log_level, names_level) {
        ours.push((KEY_LOG_LEVEL, Value::String(level.clone()).to_string()));
    }
    let Some((params_span, params)) = params_members(msg) else {
        if msg.params_span().is_some() {
            // Array params: no place for `_meta`; left as they are.
            return Vec::new();
        }
        // No params at all: added before the message's closing brace.
        let end = msg.raw().len().saturating_sub(1);
        let meta = object_text(&ours);
        return vec![(end..end, format!(",\"params\":{{\"_meta\":{meta}}}"))];
    };
    let Some((meta_span, meta)) = meta_members(msg) else {
        if params.iter().any(|m| m.key == "_meta") {
            // A `_meta` that is not an object is the server's to refuse.
            return Vec::new();
        }
        let meta = format!("\"_meta\":{}", object_text(&ours));
        let comma = if params.is_empty() { "" } else { "," };
        return vec![(
            params_span.start + 1..params_span.start + 1,
            format!("{meta}{comma}"),
        )];
    };
    let mut edits = Vec::new();
    let mut missing = Vec::new();
    for (key, value) in ours {
        match meta.iter().find(|m| m.key == key) {
            Some(m) => edits.push((m.value.clone(), value)),
            None => missing.push((key, value)),
        }
    }
    edits.extend(insert_first(&meta_span, &meta, &missing));
    edits.sort_by_key(|(r, _)| r.start);
    edits
}

fn object_text(members: &[(&str, String)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String((*k).to_owned())))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The edits that remove the modern envelope's keys from a request to a legacy
/// upstream (an `_meta` left empty stays as `{}`).
#[must_use]
pub fn strip_owned(msg: &Message) -> Vec<Edit> {
    meta_members(msg).map_or_else(Vec::new, |(_, meta)| {
        remove(&meta, |m| ENVELOPE_KEYS.contains(&m.key.as_str()))
    })
}

/// The edits that remove the top-level `params` members named in `keys` (commas
/// included), every other byte kept.
#[must_use]
pub fn remove_params(msg: &Message, keys: &[&str]) -> Vec<Edit> {
    params_members(msg).map_or_else(Vec::new, |(_, params)| {
        remove(&params, |m| keys.contains(&m.key.as_str()))
    })
}

/// The edits that add each of `new` (key, value JSON text) that the object
/// `line[object]` lacks, first in it, in the given order.
#[must_use]
pub fn add_missing(line: &str, object: Range<usize>, new: &[(&str, String)]) -> Vec<Edit> {
    let Some(existing) = members(line, object.clone()) else {
        return Vec::new();
    };
    let missing: Vec<(&str, String)> = new
        .iter()
        .filter(|(k, _)| !existing.iter().any(|m| m.key == *k))
        .cloned()
        .collect();
    insert_first(&object, &existing, &missing)
        .into_iter()
        .collect()
}

/// The edits a result to a modern request needs, as one set (two insertions at the
/// same place would need a comma between them): `"resultType": "complete"` first when
/// absent (what an absent one means, but every result to a modern request carries
/// it), and our `serverInfo` in its `_meta`, in place of a server's or added, with
/// `_meta` itself when the result has none: the client talks to us (S/basic/index.mdx
/// "Per-response protocol fields"), and a modern client that never asks
/// `server/discover` learns who answers from here. None for an error.
#[must_use]
pub fn stamp_modern_result(msg: &Message) -> Vec<Edit> {
    let (Ok(line), Some(result)) = (std::str::from_utf8(msg.raw()), msg.result_span()) else {
        return Vec::new();
    };
    let Some(existing) = members(line, result.clone()) else {
        return Vec::new();
    };
    let info = our_info_text().to_owned();
    let mut missing = Vec::new();
    if !existing.iter().any(|m| m.key == "resultType") {
        missing.push(("resultType", "\"complete\"".to_owned()));
    }
    let mut edits = Vec::new();
    match existing.iter().find(|m| m.key == "_meta") {
        None => missing.push(("_meta", object_text(&[(KEY_SERVER_INFO, info)]))),
        Some(meta) => match members(line, meta.value.clone())
            .and_then(|all| all.into_iter().find(|m| m.key == KEY_SERVER_INFO))
        {
            Some(theirs) => edits.push((theirs.value, info)),
            None => edits.extend(add_missing(
                line,
                meta.value.clone(),
                &[(KEY_SERVER_INFO, info)],
            )),
        },
    }
    edits.extend(insert_first(&result, &existing, &missing));
    edits.sort_by_key(|(r, _)| r.start);
    edits
}

/// The caching members of a list result: how long it may be kept and that it is this
/// client's alone (it passed per-workspace filters).
#[must_use]
pub fn cache_hints(ttl_ms: u64) -> [(&'static str, String); 3] {
    [
        ("resultType", "\"complete\"".to_owned()),
        ("ttlMs", ttl_ms.to_string()),
        ("cacheScope", "\"private\"".to_owned()),
    ]
}

/// A list result (JSON text of an object) with [`cache_hints`] first, where absent.
#[must_use]
pub fn with_cache_hints(result: &str, ttl_ms: u64) -> String {
    let edits = add_missing(result, 0..result.len(), &cache_hints(ttl_ms));
    let mut out = result.to_owned();
    for (range, text) in edits.into_iter().rev() {
        out.replace_range(range, &text);
    }
    out
}

/// The edits a `resources/read` result needs on its way to a modern client: it is a
/// cacheable result (S/server/utilities/caching.mdx), so it carries `ttlMs` (a legacy
/// server's none: 0, we cannot know how long it holds) and `cacheScope`, which is
/// always `"private"` here: the contents passed this workspace's filters.
#[must_use]
pub fn read_cache_hints(msg: &Message) -> Vec<Edit> {
    let (Ok(line), Some(result)) = (std::str::from_utf8(msg.raw()), msg.result_span()) else {
        return Vec::new();
    };
    let mut edits = add_missing(
        line,
        result.clone(),
        &[
            ("ttlMs", "0".to_owned()),
            ("cacheScope", "\"private\"".to_owned()),
        ],
    );
    let shared = members(line, result)
        .and_then(|all| all.into_iter().find(|m| m.key == "cacheScope"))
        .filter(|m| &line[m.value.clone()] != "\"private\"");
    if let Some(member) = shared {
        edits.push((member.value, "\"private\"".to_owned()));
    }
    edits
}

/// An answer line (with its `\n`) as a client of this era must see it: a modern
/// request's result gets `resultType` (absent means `"complete"`, but every result
/// to a modern request carries it), and error codes are mapped per era
/// ([`super::errors::map_code`]). A line that needs nothing is returned as it is.
#[must_use]
pub fn for_client(line: bytes::Bytes, modern: bool) -> bytes::Bytes {
    // Cheap tests first: a legacy answer is only touched for a -32021, which only a
    // short error answer carries (a long result is never scanned for it).
    if !modern && (line.len() > MAX_MAPPED_ERROR || !holds_minus_32021(&line)) {
        return line;
    }
    let Some(msg) = crate::jsonrpc::message::reparse(&line) else {
        return line;
    };
    let mut edits = super::errors::map_code(&msg, modern);
    if modern {
        edits.extend(stamp_modern_result(&msg));
        edits.sort_by_key(|(r, _)| r.start);
    }
    if edits.is_empty() {
        return line;
    }
    let edits: Vec<(Range<usize>, &str)> =
        edits.iter().map(|(r, t)| (r.clone(), t.as_str())).collect();
    msg.rewrite(None, &edits)
}

/// The longest answer to a legacy request looked at for a code to map: error answers
/// are short, and every answer passes here.
const MAX_MAPPED_ERROR: usize = 16 * 1024;

/// Whether `line` mentions -32021: every answer to a legacy client is searched, so with
/// a prepared SIMD finder rather than a window at every byte.
fn holds_minus_32021(line: &[u8]) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("-32021"));
    FINDER.find(line).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::message::reparse;

    fn msg(line: &str) -> Message {
        reparse(&bytes::Bytes::from(format!("{line}\n"))).expect("valid message")
    }

    fn apply(m: &Message, edits: &[Edit]) -> String {
        let edits: Vec<(Range<usize>, &str)> =
            edits.iter().map(|(r, t)| (r.clone(), t.as_str())).collect();
        let out = m.rewrite(None, &edits);
        let text = String::from_utf8(out.to_vec()).expect("utf8");
        let text = text.trim_end_matches('\n').to_owned();
        // Whatever the edits, the result is one valid message.
        assert!(
            reparse(&bytes::Bytes::from(format!("{text}\n"))).is_some(),
            "{text}"
        );
        text
    }

    fn owned() -> Owned {
        Owned {
            version: "2026-07-28",
            capabilities: serde_json::json!({"roots": {}}),
            log_level: None,
        }
    }

    #[test]
    fn a_log_level_is_added_only_where_the_request_names_none() {
        let owned = Owned {
            log_level: Some("warning".into()),
            ..owned()
        };
        let m = msg(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#);
        let out = msg(&apply(&m, &set_owned(&m, &owned)));
        assert_eq!(
            out.param(&["_meta", KEY_LOG_LEVEL]).map(|p| p.0),
            Some("\"warning\"")
        );
        let m = msg(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/logLevel":"debug"}}}"#,
        );
        let out = msg(&apply(&m, &set_owned(&m, &owned)));
        assert_eq!(
            out.param(&["_meta", KEY_LOG_LEVEL]).map(|p| p.0),
            Some("\"debug\"")
        );
    }

    #[test]
    fn a_modern_result_gets_its_type_and_our_server_info_once() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"k":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"up"},"k":1}}}"#,
        ] {
            let m = msg(line);
            let out = apply(&m, &stamp_modern_result(&m));
            let value: serde_json::Value = serde_json::from_str(&out).expect("json");
            let was: serde_json::Value = serde_json::from_str(line).expect("json");
            assert_eq!(
                value["result"]["_meta"][KEY_SERVER_INFO],
                our_info(),
                "{out}"
            );
            let kind = was["result"]
                .get("resultType")
                .cloned()
                .unwrap_or("complete".into());
            assert_eq!(value["result"]["resultType"], kind, "{out}");
            // Nothing else changes.
            let (mut value, mut was) = (value, was);
            for v in [&mut value, &mut was] {
                let result = v["result"].as_object_mut().expect("object");
                result.remove("resultType");
                if let Some(meta) = result.get_mut("_meta").and_then(|m| m.as_object_mut()) {
                    meta.remove(KEY_SERVER_INFO);
                }
                if result.get("_meta") == Some(&serde_json::json!({})) {
                    result.remove("_meta");
                }
            }
            assert_eq!(value, was, "{out}");
        }
        let m = msg(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#);
        assert!(
            apply(&m, &stamp_modern_result(&m))
                .starts_with(r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","#)
        );
        let m = msg(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#);
        assert!(stamp_modern_result(&m).is_empty());
    }

    #[test]
    fn a_read_for_a_modern_client_is_cached_privately_for_the_servers_ttl_or_none() {
        let hinted = |line: &str| {
            let m = msg(line);
            let mut edits = read_cache_hints(&m);
            edits.sort_by_key(|(r, _)| r.start);
            let out = apply(&m, &edits);
            serde_json::from_str::<serde_json::Value>(&out).expect("json")
        };
        let legacy = hinted(r#"{"jsonrpc":"2.0","id":1,"result":{"contents":[]}}"#);
        assert_eq!(legacy["result"]["ttlMs"], 0, "{legacy}");
        assert_eq!(legacy["result"]["cacheScope"], "private", "{legacy}");
        let public = hinted(
            r#"{"jsonrpc":"2.0","id":1,"result":{"contents":[],"ttlMs":5000,"cacheScope":"public"}}"#,
        );
        assert_eq!(public["result"]["ttlMs"], 5000, "{public}");
        assert_eq!(public["result"]["cacheScope"], "private", "{public}");
    }

    #[test]
    fn members_are_found_with_escaped_keys_and_odd_spacing() {
        let line = r#"{"a" : 1 , "b\u0063":{"x":[1,{"y":"}"}]},"d":"\"}"}"#;
        let all = members(line, 0..line.len()).expect("object");
        let keys: Vec<&str> = all.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "bc", "d"]);
        assert_eq!(&line[all[1].value.clone()], r#"{"x":[1,{"y":"}"}]}"#);
        assert_eq!(&line[all[0].whole.clone()], r#""a" : 1"#);
        assert_eq!(members("[1]", 0..3), None);
        assert_eq!(members("{ }", 0..3), Some(Vec::new()));
    }

    #[test]
    fn owned_keys_replace_the_clients_and_every_other_byte_stays() {
        let m = msg(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"traceparent":"00-ab","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}},"io.modelcontextprotocol/clientInfo":{"name":"c"},"x":1.50e0}}}"#,
        );
        let out = apply(&m, &set_owned(&m, &owned()));
        let info = our_info().to_string();
        assert_eq!(
            out,
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{"traceparent":"00-ab","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{"roots":{{}}}},"io.modelcontextprotocol/clientInfo":{info},"x":1.50e0}}}}}}"#
            )
        );
    }

    #[test]
    fn owned_keys_are_added_where_meta_or_params_are_missing() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"progressToken":3}}}"#,
        ] {
            let m = msg(line);
            let out = msg(&apply(&m, &set_owned(&m, &owned())));
            let (version, _) = out
                .param(&["_meta", KEY_VERSION])
                .unwrap_or_else(|| panic!("no version in {line}"));
            assert_eq!(version, "\"2026-07-28\"");
            assert!(out.param(&["_meta", KEY_CLIENT_INFO]).is_some());
            if line.contains("progressToken") {
                assert_eq!(
                    out.param(&["_meta", "progressToken"]).map(|p| p.0),
                    Some("3")
                );
            }
        }
    }

    #[test]
    fn envelope_keys_are_stripped_for_legacy_upstreams_and_the_rest_stays() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{}}}"#,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"a":1, "io.modelcontextprotocol/protocolVersion":"2026-07-28" ,"b":2,"io.modelcontextprotocol/logLevel":"info"}}}"#,
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"a":1, "b":2}}}"#,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","progressToken":"p","io.modelcontextprotocol/related-task":{"taskId":"t"}}}}"#,
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":"p","io.modelcontextprotocol/related-task":{"taskId":"t"}}}}"#,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"name":"n"}}"#,
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"name":"n"}}"#,
            ),
        ];
        for (line, want) in cases {
            let m = msg(line);
            assert_eq!(apply(&m, &strip_owned(&m)), want);
        }
    }

    #[test]
    fn mediated_capabilities_follow_the_client_and_the_servers_table() {
        let client =
            serde_json::json!({"elicitation": {"form": {}}, "sampling": {}, "experimental": {}});
        assert_eq!(
            mediated(&client, true, false),
            serde_json::json!({"roots": {}, "elicitation": {"form": {}}})
        );
        assert_eq!(
            mediated(&Value::Null, true, true),
            serde_json::json!({"roots": {}})
        );
    }
}
