//! JSON-RPC 2.0 over newline-delimited stdio: the bounded line [`codec`], the message
//! model ([`message`]), the error answers ([`error`]) and the answers to a batch
//! ([`batch`]).
//!
//! The forwarding path never re-serializes a message it does not have to change: a
//! [`message::Message`] keeps the line as it arrived and the byte spans of the parts a
//! stage may rewrite (the id, `params.name`), so an allowed message reaches the other
//! side byte for byte, unknown fields, `_meta` and number formatting included.

pub mod batch;
pub mod codec;
pub mod error;
pub mod message;
pub mod scan;
mod strict;
pub mod writer;

pub use codec::{Line, LineCodec};
pub use error::{ErrorCode, error_response};
pub use message::{
    Id, Kind, Message, ParseError, Parsed, method_text, parse, parse_in_two_passes, recover_id,
};
pub(crate) use strict::next_special;

use std::borrow::Cow;

/// The value of the JSON string whose text (quotes included) is `raw`, as a message
/// the strict parser accepted holds it; `None` when `raw` is not a string.
///
/// Without a backslash, the text between the quotes is the value (the parser refused
/// raw control characters), so most names cost no decoder and no copy; escapes go to
/// `serde_json`.
#[must_use]
pub fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'))
        // A name is a few bytes: a plain loop beats a vector search's set-up.
        && !inner.bytes().any(|b| b == b'\\' || b == b'"')
    {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_value_is_borrowed_without_escapes_and_decoded_with_them() {
        assert!(matches!(
            string_value(r#""echo""#),
            Some(Cow::Borrowed("echo"))
        ));
        assert!(matches!(string_value(r#""""#), Some(Cow::Borrowed(""))));
        assert_eq!(string_value(r#""n\u0061me""#).as_deref(), Some("name"));
        assert_eq!(string_value(r#""a\"b""#).as_deref(), Some("a\"b"));
        for not_a_string in ["42", "null", "\"", r#""a","b""#, "{}"] {
            assert_eq!(string_value(not_a_string), None, "{not_a_string}");
        }
    }
}
