//! The in-filter (SPEC "Policy", `scan_arguments`): what the client sends an upstream
//! must not carry a secret, in every request that carries model data, not only tool
//! calls. Which part of a request is model data depends on its kind (the in-filter
//! column of `shared/PIPELINE.md`):
//!
//! - `tools/call`, `prompts/get`: `arguments`, keys and values;
//! - `resources/read`, `subscribe`, `unsubscribe`: the `uri`, as written and
//!   percent-decoded (`%5F` must not hide a token's `_`);
//! - `completion/complete`: the `argument` being completed and the `context` of
//!   arguments already given.
//!
//! The answer to a client's server request (what the user typed) is the user's
//! choice and is not checked here.

use serde_json::Value;

use super::secrets::find_secrets;
use crate::jsonrpc::Message;
use crate::stages::MessageKind;

/// The parameters of a request of `kind` that carry model data, as their raw JSON
/// text; none for the kinds that carry none. An iterator: this runs on every request,
/// and most carry one such part.
pub fn model_data(kind: MessageKind, msg: &Message) -> impl Iterator<Item = &str> {
    let paths: &'static [&'static [&'static str]] = match kind {
        MessageKind::Call | MessageKind::Get => &[&["arguments"]],
        MessageKind::Read | MessageKind::Subscribe => &[&["uri"]],
        MessageKind::Complete => &[&["argument"], &["context"]],
        _ => &[],
    };
    paths
        .iter()
        .filter_map(move |path| msg.param(path).map(|(raw, _)| raw))
}

/// The secrets rules that fire on the model data of `raw` (one parameter's JSON
/// text): every string in it, object keys included, and for a string that looks
/// percent-encoded, its decoded form too. Sorted, without repeats.
#[must_use]
pub fn secrets_in(raw: &str) -> Vec<&'static str> {
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        // Not JSON (cannot happen: the message parsed): the text as it is.
        return rules_of(raw);
    };
    let mut fired = Vec::new();
    each_string(&value, &mut |s| {
        fired.extend(rules_of(s));
        if s.contains('%')
            && let Some(bytes) = crate::policy::path::percent_decode(s)
        {
            fired.extend(rules_of(&String::from_utf8_lossy(&bytes)));
        }
    });
    fired.sort_unstable();
    fired.dedup();
    fired
}

fn rules_of(text: &str) -> Vec<&'static str> {
    find_secrets(text).into_iter().map(|m| m.rule).collect()
}

/// Calls `f` on every string of `value`: values and object keys.
fn each_string(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| each_string(v, f)),
        Value::Object(map) => {
            for (key, v) in map {
                f(key);
                each_string(v, f);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing::message;

    fn token() -> String {
        format!("{}{}", "ghp_", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8")
    }

    #[test]
    fn keys_values_uris_and_completions_are_model_data() {
        let t = token();
        for (kind, text) in [
            (
                MessageKind::Call,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{{"{t}":1}}}}}}"#
                ),
            ),
            (
                MessageKind::Get,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{{"name":"a","arguments":{{"q":"{t}"}}}}}}"#
                ),
            ),
            (
                MessageKind::Read,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":"https://x/?t={}"}}}}"#,
                    t.replace('_', "%5F")
                ),
            ),
            (
                MessageKind::Complete,
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{{"ref":{{"type":"ref/prompt","name":"a"}},"argument":{{"name":"q","value":"x"}},"context":{{"arguments":{{"k":"{t}"}}}}}}}}"#
                ),
            ),
        ] {
            let msg = message(&text);
            let fired: Vec<_> = model_data(kind, &msg).flat_map(secrets_in).collect();
            assert!(!fired.is_empty(), "{kind:?}: {text}");
        }
    }

    #[test]
    fn the_name_and_the_ref_are_not_model_data() {
        let msg = message(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a"},"argument":{"name":"q","value":"hel"}}}"#,
        );
        let data: Vec<_> = model_data(MessageKind::Complete, &msg).collect();
        assert_eq!(data, [r#"{"name":"q","value":"hel"}"#]);
        assert!(secrets_in(data[0]).is_empty());
        assert!(model_data(MessageKind::List, &msg).next().is_none());
    }
}
