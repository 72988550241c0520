//! Reading one member out of JSON text that was already parsed, without parsing it
//! again.
//!
//! Every stage asks the same request for a field or two (`name`, `arguments`, `uri`,
//! `_meta.progressToken`, ...). Deserializing `params` into a map for each question
//! cost more than the whole envelope parse (a hash map, an owned key per member, once
//! per question). The text these functions get is a slice of a line that
//! [`super::message::parse`] accepted: well-formed JSON with no key repeated in any
//! object (compared after unescaping). So a member is found by walking the bytes: skip
//! strings (honouring escapes) and nested values by depth, and compare keys, unescaping
//! only the rare key that has a `\`. With no repeated key, the first match is the only
//! one, so the proxy reads exactly the value the server behind it will read.

use super::message::string_end;

/// The JSON text of the member `key` of the object `object` (its value with no
/// surrounding whitespace), or `None` when `object` is not an object or has no such
/// member. `object` must be well-formed JSON with no repeated keys (a part of a parsed
/// message); malformed text gives `None` or a meaningless slice, never a panic.
#[must_use]
pub fn member<'a>(object: &'a str, key: &str) -> Option<&'a str> {
    members(object)?
        .find(|(raw_key, _)| key_is(raw_key.as_bytes(), key))
        .map(|(_, value)| value)
}

/// The members of the object `object` in order, each as its key's JSON text (quotes
/// included, escapes kept) and its value's JSON text; `None` when `object` is not an
/// object. Same terms as [`member`].
#[must_use]
pub fn members(object: &str) -> Option<Members<'_>> {
    let at = skip_space(object.as_bytes(), 0);
    (object.as_bytes().get(at) == Some(&b'{')).then_some(Members { object, at: at + 1 })
}

/// The iterator of [`members`].
pub struct Members<'a> {
    object: &'a str,
    /// Where the next member (or the closing `}`) starts, after a `{` or `,`.
    at: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.object.as_bytes();
        let at = skip_space(bytes, self.at);
        if bytes.get(at) != Some(&b'"') {
            // `}` of an empty object, or not JSON we can read.
            self.at = bytes.len();
            return None;
        }
        let key_end = string_end(bytes, at)?;
        let raw_key = self.object.get(at..key_end)?;
        let colon = skip_space(bytes, key_end);
        if bytes.get(colon) != Some(&b':') {
            self.at = bytes.len();
            return None;
        }
        let start = skip_space(bytes, colon + 1);
        let end = value_end(bytes, start)?;
        let after = skip_space(bytes, end);
        // After the last member (`}`) the next call finds no key and ends.
        self.at = if bytes.get(after) == Some(&b',') {
            after + 1
        } else {
            bytes.len()
        };
        Some((raw_key, self.object.get(start..end)?))
    }
}

/// The JSON text of the value at `path` (object keys, outermost first) inside
/// `value`, on the same terms as [`member`].
#[must_use]
pub fn at_path<'a>(value: &'a str, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |inside, key| member(inside, key))
}

/// Whether the JSON string `raw` (quotes included) decodes to `key`. A key without
/// escapes is compared as bytes (no UTF-8 check, no decoding).
#[must_use]
pub fn key_is(raw: &[u8], key: &str) -> bool {
    let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
    // An escape is longer than what it decodes to, so a key of the same length
    // matches only byte for byte and without escapes, and a shorter one never: most
    // questions (a dozen a `tools/call`) are answered by the lengths alone.
    match inner.len().cmp(&key.len()) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => inner == key.as_bytes() && !inner.contains(&b'\\'),
        // Escaped keys (`"n\u0061me"`) are rare: decode them properly.
        std::cmp::Ordering::Greater => {
            inner.contains(&b'\\')
                && serde_json::from_slice::<String>(raw).is_ok_and(|decoded| decoded == key)
        }
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r' | b'\n') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The index just past the JSON value starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            while let Some(&byte) = bytes.get(at) {
                match byte {
                    b'"' => {
                        at = string_end(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
            None
        }
        // A number, `true`, `false` or `null`: up to the next delimiter.
        _ => {
            let len = bytes[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(bytes.len() - start);
            Some(start + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;
    use std::collections::HashMap;

    /// What serde reads: the reference the scanner must agree with.
    fn by_serde<'a>(object: &'a str, key: &str) -> Option<&'a str> {
        let map: HashMap<String, &RawValue> = serde_json::from_str(object).ok()?;
        map.get(key).map(|raw| raw.get())
    }

    #[test]
    fn finds_members_of_every_kind() {
        let text = r#" { "a" : 1 , "b":"x\"}y", "c": {"a":[1,{"b":2}]} ,"d":[ "]" ],
            "e":true,"f":null,"g":-1.5e3 } "#;
        for (key, want) in [
            ("a", Some("1")),
            ("b", Some(r#""x\"}y""#)),
            ("c", Some(r#"{"a":[1,{"b":2}]}"#)),
            ("d", Some(r#"[ "]" ]"#)),
            ("e", Some("true")),
            ("f", Some("null")),
            ("g", Some("-1.5e3")),
            ("h", None),
        ] {
            assert_eq!(member(text, key), want, "{key}");
            assert_eq!(member(text, key), by_serde(text, key), "{key}");
        }
    }

    #[test]
    fn escaped_keys_are_compared_decoded() {
        let text = r#"{"n\u0061me":"x","\"q\"":1,"a\\b":2}"#;
        assert_eq!(member(text, "name"), Some(r#""x""#));
        assert_eq!(member(text, "\"q\""), Some("1"));
        assert_eq!(member(text, "a\\b"), Some("2"));
        assert_eq!(member(text, "nme"), None);
    }

    #[test]
    fn only_objects_have_members() {
        for text in ["[1,2]", r#""a""#, "1", "{}", " { } ", "null", ""] {
            assert_eq!(member(text, "a"), None, "{text}");
        }
        // A key inside a nested value is not a member of the outer object.
        assert_eq!(member(r#"{"x":{"a":1}}"#, "a"), None);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\ \u{e9}{}\\[\\],:]{0,6}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-c\"\\\\]{0,2}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// On any object, compact or pretty-printed, the scanner reads what serde reads.
        #[test]
        fn agrees_with_serde(value in json_value(), key in "[a-c\"\\\\]{0,2}", pretty: bool) {
            let text = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            }
            .expect("serializes");
            prop_assert_eq!(member(&text, &key), by_serde(&text, &key));
        }
    }
}
