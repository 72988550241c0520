//! Multi round-trip requests (2026-07-28 basic/patterns/mrtr.mdx) as data: reading an
//! `input_required` result, exploding its `inputRequests` into the server requests
//! they stand for (each judged by the stages as that request), and building a retry's
//! params. Everything is done on the raw text: what mcp-warden does not own (the
//! entries' params, the server's `requestState`, the original params) passes byte for
//! byte. Pure: no I/O, no session.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The `resultType` of a result that asks for input.
pub const INPUT_REQUIRED: &str = "input_required";
/// Rounds of `input_required` one client request may go through before mcp-warden
/// gives up: the Python SDK client's `DEFAULT_INPUT_REQUIRED_MAX_ROUNDS`, so a server
/// that asks forever costs the user ten questions, not an endless loop.
pub const MAX_ROUNDS: u32 = 10;
/// The requests a server may answer with `input_required` (mrtr.mdx "Supported
/// Requests"); to any other, such a result is an ordinary (odd) result.
pub const SUPPORTED_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// Whether `method` may be answered with `input_required`.
#[must_use]
pub fn supports_input_required(method: &str) -> bool {
    SUPPORTED_METHODS.contains(&method)
}

/// Why an `input_required` result or a retry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrtrError {
    #[error("the {what} is not a JSON object")]
    NotObject { what: &'static str },
    #[error("`inputRequests` entry `{key}` is not a request (`method` and object `params`)")]
    BadEntry { key: String },
    #[error("`requestState` is not a string")]
    BadState,
    #[error("`input_required` without `inputRequests` or `requestState`")]
    NothingAsked,
}

/// One member of a JSON object as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key, unescaped.
    pub key: Cow<'a, str>,
    /// `"key": value` exactly as written.
    pub text: &'a str,
    /// The value's raw JSON text.
    pub value: &'a str,
}

/// The members of the JSON object `object`, in the order written, each as its own text;
/// `None` when `object` is not an object.
#[must_use]
pub fn members(object: &str) -> Option<Vec<Member<'_>>> {
    let map: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(object).ok()?;
    let base = object.as_ptr() as usize;
    let mut spans: Vec<(usize, usize, Cow<'_, str>)> = map
        .into_iter()
        .map(|(key, raw)| {
            // The raw value borrows from `object`, so its address lies within it.
            let start = raw.get().as_ptr() as usize - base;
            (start, start + raw.get().len(), key)
        })
        .collect();
    spans.sort_by_key(|(start, ..)| *start);
    let mut out = Vec::with_capacity(spans.len());
    let mut at = object.find('{')? + 1;
    for (start, end, key) in spans {
        // Between the previous value and this one: `,` and `"key":` with whitespace.
        let before = &object[at..start];
        let skipped = before.len()
            - before
                .trim_start_matches([',', ' ', '\t', '\n', '\r'])
                .len();
        out.push(Member {
            key,
            text: &object[at + skipped..end],
            value: &object[start..end],
        });
        at = end;
    }
    Some(out)
}

/// An object from member texts, in order.
#[must_use]
pub fn object_of<'a>(members: impl IntoIterator<Item = Cow<'a, str>>) -> String {
    let mut out = String::from("{");
    for (i, member) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&member);
    }
    out.push('}');
    out
}

/// `"key":value` with `key` written as a JSON string.
#[must_use]
pub fn member(key: &str, value: &str) -> String {
    // A &str always serializes.
    let key = serde_json::to_string(key).unwrap_or_default();
    format!("{key}:{value}")
}

/// One `inputRequests` entry: the server request it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub key: String,
    pub method: String,
    /// The request's params as the server wrote them.
    pub params: Option<&'a str>,
}

impl Entry<'_> {
    /// The entry as the JSON-RPC request it stands for, under `id` (JSON text): what
    /// the stages judge, and what a legacy client is sent.
    #[must_use]
    pub fn as_request(&self, id: &str) -> String {
        let method = serde_json::to_string(&self.method).unwrap_or_default();
        match self.params {
            Some(params) => {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method},"params":{params}}}"#)
            }
            None => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method}}}"#),
        }
    }

    /// The entry as an `inputRequests` value from a request's method and params.
    #[must_use]
    pub fn value_of(method: &str, params: Option<&str>) -> String {
        let method = serde_json::to_string(method).unwrap_or_default();
        match params {
            Some(params) => format!(r#"{{"method":{method},"params":{params}}}"#),
            None => format!(r#"{{"method":{method}}}"#),
        }
    }
}

/// A result of `resultType` `input_required`, exploded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRequired<'a> {
    /// The entries, in the order written.
    pub entries: Vec<Entry<'a>>,
    /// The server's `requestState`: its raw JSON text (quotes and escapes as sent).
    pub request_state: Option<&'a str>,
    /// Every other member of the result, as written (`resultType`, `_meta`, …).
    pub rest: Vec<Member<'a>>,
}

/// Whether `result` (a result's JSON text) has `resultType` `input_required`. Takes
/// the text's bytes as well (a slice of a parsed line): a result that never mentions
/// it is then not checked for UTF-8 at all.
#[must_use]
pub fn is_input_required(result: impl AsRef<[u8]>) -> bool {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "resultType", borrow)]
        result_type: Option<Cow<'a, str>>,
    }
    // Most results never mention it: no parse for them, one SIMD search (a prepared
    // finder) instead. The value can also be spelled with `\u` escapes, which a
    // client decodes all the same: a result holding any `\u` is parsed too.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(INPUT_REQUIRED));
    let result = result.as_ref();
    (FINDER.find(result).is_some() || crate::era::tasks::may_be_escaped(result))
        && serde_json::from_slice::<Head<'_>>(result)
            .is_ok_and(|h| h.result_type.as_deref() == Some(INPUT_REQUIRED))
}

/// Reads an `input_required` result (the caller checked [`is_input_required`]).
pub fn parse(result: &str) -> Result<InputRequired<'_>, MrtrError> {
    #[derive(Deserialize)]
    struct Request<'a> {
        method: String,
        #[serde(borrow)]
        params: Option<&'a RawValue>,
    }
    let all = members(result).ok_or(MrtrError::NotObject { what: "result" })?;
    let mut out = InputRequired {
        entries: Vec::new(),
        request_state: None,
        rest: Vec::new(),
    };
    let mut asked = false;
    for m in all {
        match m.key.as_ref() {
            "inputRequests" => {
                asked = true;
                let entries = members(m.value).ok_or(MrtrError::NotObject {
                    what: "`inputRequests`",
                })?;
                for e in entries {
                    let bad = || MrtrError::BadEntry {
                        key: e.key.clone().into_owned(),
                    };
                    let request: Request<'_> = serde_json::from_str(e.value).map_err(|_| bad())?;
                    let params = request.params.map(RawValue::get);
                    if params.is_some_and(|p| !p.starts_with('{')) {
                        return Err(bad());
                    }
                    out.entries.push(Entry {
                        key: e.key.into_owned(),
                        method: request.method,
                        params,
                    });
                }
            }
            "requestState" => {
                if !m.value.starts_with('"') {
                    return Err(MrtrError::BadState);
                }
                asked = true;
                out.request_state = Some(m.value);
            }
            _ => out.rest.push(m),
        }
    }
    if !asked {
        return Err(MrtrError::NothingAsked);
    }
    Ok(out)
}

/// The params of a retry: `params` (the original request's, as written) without any
/// `inputResponses` or `requestState` it carries, then `inputResponses` from
/// `responses` (key, result JSON text), then the server's `requestState` raw text byte
/// for byte when there was one (a client MUST NOT send one the server did not give).
pub fn retry_params(
    params: Option<&str>,
    responses: &[(String, String)],
    server_state: Option<&str>,
) -> Result<String, MrtrError> {
    let kept = first_try_members(params)?
        .into_iter()
        .map(|m| Cow::Borrowed(m.text));
    let answers = object_of(responses.iter().map(|(k, v)| Cow::Owned(member(k, v))));
    let added = std::iter::once(Cow::Owned(member("inputResponses", &answers)))
        .chain(server_state.map(|s| Cow::Owned(member("requestState", s))));
    Ok(object_of(kept.chain(added)))
}

/// `params` as the first try of the request: without `inputResponses` and
/// `requestState` (after an `ask` of mcp-warden's own, whose answer is not the
/// server's business), every other member as written.
pub fn first_try_params(params: Option<&str>) -> Result<String, MrtrError> {
    let kept = first_try_members(params)?;
    Ok(object_of(kept.into_iter().map(|m| Cow::Borrowed(m.text))))
}

fn first_try_members(params: Option<&str>) -> Result<Vec<Member<'_>>, MrtrError> {
    let mut all = members(params.unwrap_or("{}")).ok_or(MrtrError::NotObject { what: "params" })?;
    all.retain(|m| !matches!(m.key.as_ref(), "inputResponses" | "requestState"));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULT: &str = r#"{ "resultType" : "input_required", "inputRequests": {
        "ask": {"method":"elicitation/create","params":{"message":"N\u00e9?","requestedSchema":{"type":"object"}}},
        "llm": {"method": "sampling/createMessage", "params": {"messages":[],"maxTokens":1.50}},
        "where": {"method":"roots/list"}
      }, "requestState": "a\u0022b\/c", "_meta": {"x": 1} }"#;

    #[test]
    fn explodes_entries_as_written() {
        assert!(is_input_required(RESULT));
        assert!(is_input_required(RESULT.as_bytes()));
        assert!(!is_input_required(
            r#"{"content":[{"type":"text","text":"input_required"}]}"#
        ));
        let ir = parse(RESULT).expect("valid");
        let keys: Vec<_> = ir.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["ask", "llm", "where"]);
        assert_eq!(
            ir.entries[0].params,
            Some(r#"{"message":"N\u00e9?","requestedSchema":{"type":"object"}}"#)
        );
        assert_eq!(
            ir.entries[1].params,
            Some(r#"{"messages":[],"maxTokens":1.50}"#)
        );
        assert_eq!(ir.entries[2].method, "roots/list");
        assert_eq!(ir.entries[2].params, None);
        assert_eq!(ir.request_state, Some(r#""a\u0022b\/c""#));
        let rest: Vec<_> = ir.rest.iter().map(|m| m.text).collect();
        assert_eq!(
            rest,
            [r#""resultType" : "input_required""#, r#""_meta": {"x": 1}"#]
        );
        assert_eq!(
            ir.entries[2].as_request("7"),
            r#"{"jsonrpc":"2.0","id":7,"method":"roots/list"}"#
        );
    }

    #[test]
    fn malformed_results_are_refused() {
        let r = |t: &str| parse(t).map(|_| ());
        assert_eq!(
            r(r#"{"resultType":"input_required"}"#),
            Err(MrtrError::NothingAsked)
        );
        assert_eq!(
            r(r#"{"resultType":"input_required","requestState":1}"#),
            Err(MrtrError::BadState)
        );
        assert_eq!(
            r(r#"{"resultType":"input_required","inputRequests":{"k":{"params":{}}}}"#),
            Err(MrtrError::BadEntry { key: "k".into() })
        );
        assert_eq!(
            r(
                r#"{"resultType":"input_required","inputRequests":{"k":{"method":"x","params":[]}}}"#
            ),
            Err(MrtrError::BadEntry { key: "k".into() })
        );
        // Only state (load shedding) is a valid ask.
        assert!(r(r#"{"resultType":"input_required","requestState":"s"}"#).is_ok());
    }

    #[test]
    fn retry_keeps_the_params_and_the_state_byte_for_byte() {
        let params =
            r#"{"name":"t", "arguments":{"n":1e2,"s":"\u00e9"},"_meta":{"progressToken":5}}"#;
        let responses = vec![("ask".to_owned(), r#"{"action":"accept"}"#.to_owned())];
        let retry =
            retry_params(Some(params), &responses, Some(r#""a\u0022b\/c""#)).expect("object");
        assert_eq!(
            retry,
            r#"{"name":"t","arguments":{"n":1e2,"s":"\u00e9"},"_meta":{"progressToken":5},"inputResponses":{"ask":{"action":"accept"}},"requestState":"a\u0022b\/c"}"#
        );
        // A second round replaces the first round's members; no state, no member.
        let again = retry_params(Some(&retry), &[], None).expect("object");
        assert_eq!(
            again,
            r#"{"name":"t","arguments":{"n":1e2,"s":"\u00e9"},"_meta":{"progressToken":5},"inputResponses":{}}"#
        );
        assert_eq!(
            retry_params(None, &[], Some("\"s\"")).expect("object"),
            r#"{"inputResponses":{},"requestState":"s"}"#
        );
        assert!(retry_params(Some("[]"), &[], None).is_err());
        assert_eq!(
            first_try_params(Some(&retry)).expect("object"),
            r#"{"name":"t","arguments":{"n":1e2,"s":"\u00e9"},"_meta":{"progressToken":5}}"#
        );
    }
}
