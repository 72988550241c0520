//! Paged listing, one way for every caller: the session's catalogs (`serve`) and the
//! inventory of `pin`, `pins`, `scan` and `doctor` ([`super::inventory`]) ask for a
//! page with the same parameters, read it the same way and follow `nextCursor` within
//! the same bounds, so a pin judges what `serve` would serve.
//!
//! Pure: the callers send the requests and wait for the answers; this module builds
//! the parameters, reads an answer into a [`Page`] and keeps the items of the pages
//! so far ([`Paging`]).

use std::collections::HashSet;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::jsonrpc::Message;
use crate::router::catalog::Page;

/// Most list pages fetched from one server in one listing, so a server that pages
/// forever (or repeats its cursor) cannot hold a listing up (FAULTS 33).
pub const MAX_PAGES: u32 = 100;
/// Most items of one kind kept from one server; past this the rest are dropped.
pub const MAX_ITEMS: usize = 10_000;
/// Longest part of a server's error answer quoted in a reason.
const MAX_QUOTED: usize = 300;

/// The params of a list request: the `cursor` to continue at, and for a modern
/// server (`modern`: its version and the capabilities we declare) the `_meta`
/// envelope; `None` when there is nothing to send.
#[must_use]
pub fn list_params(cursor: Option<&str>, modern: Option<(&str, &Value)>) -> Option<Value> {
    let mut params = serde_json::Map::new();
    if let Some(c) = cursor {
        params.insert("cursor".into(), Value::String(c.to_owned()));
    }
    if let Some((version, caps)) = modern {
        params.insert("_meta".into(), crate::era::meta::envelope(version, caps));
    }
    (!params.is_empty()).then_some(Value::Object(params))
}

/// Why an answer to a list request holds no page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// An error answer (`error CODE: MESSAGE`).
    #[error("`{method}` failed: {error}")]
    Refused { method: &'static str, error: String },
    #[error("`{method}` answered a malformed page: {why}")]
    Malformed { method: &'static str, why: String },
    /// A result without the kind's own field.
    #[error("`{method}` answered without `{field}`")]
    Missing {
        method: &'static str,
        field: &'static str,
    },
}

/// The page in `answer` to `method`, whose items are in `field` (a page carrying
/// another kind's field is not taken for this one).
pub fn read_page<'a>(
    answer: &'a Message,
    method: &'static str,
    field: &'static str,
) -> Result<Page<'a>, PageError> {
    let Some(result) = answer.result() else {
        let error = error_text(answer);
        return Err(PageError::Refused { method, error });
    };
    let page = serde_json::from_str::<Page<'_>>(result).map_err(|e| PageError::Malformed {
        method,
        why: e.to_string(),
    })?;
    if page.items(field).is_none() {
        return Err(PageError::Missing { method, field });
    }
    Ok(page)
}

/// `error CODE: MESSAGE` of an error answer, else (a malformed one) its text, cut short.
#[must_use]
pub fn error_text(msg: &Message) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: ErrorObject,
    }
    #[derive(serde::Deserialize)]
    struct ErrorObject {
        code: i64,
        message: String,
    }
    match serde_json::from_slice::<Envelope>(msg.raw()) {
        Ok(Envelope { error }) => clip(&format!("error {}: {}", error.code, error.message)),
        Err(_) => clip(&String::from_utf8_lossy(msg.raw())),
    }
}

/// `text`, at most [`MAX_QUOTED`] bytes of it (on a character boundary).
fn clip(text: &str) -> String {
    if text.len() <= MAX_QUOTED {
        return text.to_owned();
    }
    let mut end = MAX_QUOTED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The items of a listing's pages so far, each kept once (the first definition of a
/// name wins), within [`MAX_PAGES`] and [`MAX_ITEMS`].
#[derive(Debug)]
pub struct Paging<T> {
    items: Vec<T>,
    /// The keys of `items`: a server that lists a name twice keeps the first.
    seen: HashSet<String>,
    pages: u32,
}

impl<T> Default for Paging<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            seen: HashSet::new(),
            pages: 0,
        }
    }
}

/// Whom a listing is of, for the log.
#[derive(Debug, Clone, Copy)]
pub struct Of<'a> {
    pub server: &'a str,
    pub method: &'a str,
}

impl<T> Paging<T> {
    /// Takes one page's `listed` items, each read by `read` into its key and item
    /// (`None`: it lacks its name, and is dropped); returns the cursor of the next
    /// page to ask for, or `None` when the listing is complete or cut short.
    pub fn take_page<'a>(
        &mut self,
        listed: impl IntoIterator<Item = &'a RawValue>,
        next_cursor: Option<String>,
        of: Of<'_>,
        mut read: impl FnMut(&'a RawValue) -> Option<(String, T)>,
    ) -> Option<String> {
        let Of { server, method } = of;
        for raw in listed {
            if self.items.len() >= MAX_ITEMS {
                tracing::warn!(
                    server,
                    method,
                    "more than {MAX_ITEMS} items; the rest are dropped"
                );
                break;
            }
            let Some((key, item)) = read(raw) else {
                tracing::warn!(server, method, "an item without its name was dropped");
                continue;
            };
            if !self.seen.insert(key) {
                tracing::warn!(
                    server,
                    method,
                    "an item listed twice; the first definition is kept"
                );
                continue;
            }
            self.items.push(item);
        }
        self.pages += 1;
        let next = next_cursor?;
        if self.pages >= MAX_PAGES || self.items.len() >= MAX_ITEMS {
            tracing::warn!(
                server,
                method,
                pages = self.pages,
                items = self.items.len(),
                "listing cut short: the server keeps paging (FAULTS 33)"
            );
            return None;
        }
        Some(next)
    }

    /// Pages taken so far.
    #[must_use]
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// The items, in the order listed.
    #[must_use]
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const OF: Of<'static> = Of {
        server: "s",
        method: "tools/list",
    };

    fn message(line: &str) -> Message {
        crate::jsonrpc::message::reparse(&Bytes::from(format!("{line}\n"))).expect("message")
    }

    /// Items named `n0`, `n1`, … as JSON texts.
    fn raws(names: impl IntoIterator<Item = String>) -> Vec<Box<RawValue>> {
        names
            .into_iter()
            .map(|n| RawValue::from_string(format!(r#"{{"name":"{n}"}}"#)).expect("raw"))
            .collect()
    }

    fn named(raw: &RawValue) -> Option<(String, String)> {
        let v: Value = serde_json::from_str(raw.get()).ok()?;
        let name = v.get("name")?.as_str()?.to_owned();
        Some((name.clone(), name))
    }

    #[test]
    fn a_cursor_that_repeats_stops_at_the_page_limit_without_duplicates() {
        let mut paging = Paging::default();
        let page = raws(["a".to_owned(), "b".to_owned()]);
        let mut asked = 0;
        let mut cursor = Some("again".to_owned());
        while let Some(c) = cursor {
            assert_eq!(c, "again");
            asked += 1;
            cursor = paging.take_page(
                page.iter().map(AsRef::as_ref),
                Some("again".into()),
                OF,
                named,
            );
        }
        assert_eq!(asked, MAX_PAGES);
        assert_eq!(paging.pages(), MAX_PAGES);
        assert_eq!(paging.into_items(), ["a", "b"]);
    }

    #[test]
    fn pages_are_followed_until_the_last_one() {
        let mut paging = Paging::default();
        let one = raws(["a".to_owned()]);
        let two = raws(["b".to_owned(), "a".to_owned()]);
        let next = paging.take_page(one.iter().map(AsRef::as_ref), Some("2".into()), OF, named);
        assert_eq!(next.as_deref(), Some("2"));
        let next = paging.take_page(two.iter().map(AsRef::as_ref), None, OF, named);
        assert_eq!(next, None);
        assert_eq!(paging.into_items(), ["a", "b"], "the first `a` is kept");
    }

    #[test]
    fn the_item_limit_cuts_a_page_and_ends_the_listing() {
        let mut paging = Paging::default();
        let many = raws((0..=MAX_ITEMS).map(|i| format!("n{i}")));
        let next = paging.take_page(
            many.iter().map(AsRef::as_ref),
            Some("more".into()),
            OF,
            named,
        );
        assert_eq!(next, None);
        let items = paging.into_items();
        assert_eq!(items.len(), MAX_ITEMS);
        assert_eq!(items.last().map(String::as_str), Some("n9999"));
    }

    #[test]
    fn items_without_their_name_are_dropped() {
        let mut paging = Paging::default();
        let page = [
            RawValue::from_string(r#"{"name":7}"#.into()).expect("raw"),
            RawValue::from_string(r#"{"name":"ok"}"#.into()).expect("raw"),
        ];
        assert_eq!(
            paging.take_page(page.iter().map(AsRef::as_ref), None, OF, named),
            None
        );
        assert_eq!(paging.into_items(), ["ok"]);
    }

    #[test]
    fn pages_are_read_by_their_kinds_field() {
        let cases: &[(&str, Result<usize, &str>)] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"nextCursor":"c"}}"#,
                Ok(1),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no tools"}}"#,
                Err("`tools/list` failed: error -32601: no tools"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"a"}]}}"#,
                Err("`tools/list` answered without `tools`"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"a"}}}"#,
                Err("malformed"),
            ),
        ];
        for (line, want) in cases {
            let msg = message(line);
            let got = read_page(&msg, "tools/list", "tools");
            match (got, want) {
                (Ok(page), Ok(n)) => {
                    assert_eq!(page.next_cursor.as_deref(), Some("c"));
                    assert_eq!(page.items("tools").map(<[_]>::len), Some(*n));
                }
                (Err(e), Err(text)) => {
                    assert!(e.to_string().contains(text), "{e} ∌ {text}");
                }
                (got, _) => panic!("{line}: {got:?}"),
            }
        }
    }

    #[test]
    fn params_carry_the_cursor_and_a_modern_envelope() {
        assert_eq!(list_params(None, None), None);
        assert_eq!(
            list_params(Some("c"), None),
            Some(serde_json::json!({"cursor": "c"}))
        );
        let caps = serde_json::json!({});
        let modern = list_params(None, Some(("2026-07-28", &caps))).expect("params");
        assert!(modern.get("_meta").is_some(), "{modern}");
        assert!(modern.get("cursor").is_none());
    }

    #[test]
    fn long_quotes_are_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_QUOTED);
        let cut = clip(&text);
        assert!(cut.len() <= MAX_QUOTED + "…".len());
        assert!(cut.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
