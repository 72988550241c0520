//! The spellings SDKs coerce (SPEC "Policy": `equals` and `one_of` hold for them): a
//! Python server (pydantic) reads `"true"`, `"1"` or `"yes"` as `True` and `" 1000 "`
//! as `1000`; a TypeScript one may read `13` as `"13"`. A rule compares the argument
//! as sent and as the server will take it: as the type its pinned `inputSchema` gives
//! the argument, or, without a schema, as the type of the value the rule names (then
//! a match only by coercion is `Unknown`: it counts for a deny, never for an allow).

use serde_json::Value;

use super::rules::Tri;
use super::rules::json_eq;

/// The JSON type an argument is coerced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Boolean,
    Number,
    String,
}

impl Type {
    fn of_schema(name: &str) -> Option<Self> {
        match name {
            "boolean" => Some(Self::Boolean),
            "integer" | "number" => Some(Self::Number),
            "string" => Some(Self::String),
            _ => None,
        }
    }

    fn of_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(_) => Some(Self::Boolean),
            Value::Number(_) => Some(Self::Number),
            Value::String(_) => Some(Self::String),
            _ => None,
        }
    }
}

/// The type the pinned `schema` gives the argument `arg` (a top-level name, or a JSON
/// pointer through `properties`); the first type of a list that is not `null`.
fn declared(schema: &Value, arg: &str) -> Option<Type> {
    let mut node = schema;
    let path: Vec<&str> = match arg.strip_prefix('/') {
        Some(pointer) => pointer.split('/').collect(),
        None => vec![arg],
    };
    for segment in path {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = node.get("properties")?.get(segment.as_str())?;
    }
    match node.get("type")? {
        Value::String(t) => Type::of_schema(t),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .and_then(Type::of_schema),
        _ => None,
    }
}

/// `value` as a server that coerces would take it for `to`; `None` when it would not.
fn coerce(value: &Value, to: Type) -> Option<Value> {
    match (value, to) {
        (Value::String(s), Type::Boolean) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "on" | "t" => Some(Value::Bool(true)),
            "false" | "0" | "no" | "n" | "off" | "f" => Some(Value::Bool(false)),
            _ => None,
        },
        (Value::Number(n), Type::Boolean) => match n.as_f64() {
            Some(1.0) => Some(Value::Bool(true)),
            Some(0.0) => Some(Value::Bool(false)),
            _ => None,
        },
        (Value::String(s), Type::Number) => {
            let t = s.trim();
            t.parse::<i64>().map(Value::from).ok().or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Value::from)
            })
        }
        (Value::Number(n), Type::String) => Some(Value::String(n.to_string())),
        (Value::Bool(b), Type::String) => Some(Value::String(b.to_string())),
        _ => None,
    }
}

/// Whether `value` (argument `arg`) equals one of `options`: `Yes` as sent or as the
/// pinned `schema`'s type coerces it; `Unknown` when only a coercion without a schema
/// makes it equal; else `No`.
#[must_use]
pub fn equals_any(value: &Value, options: &[Value], arg: &str, schema: Option<&Value>) -> Tri {
    if options.iter().any(|o| json_eq(value, o)) {
        return Tri::Yes;
    }
    if let Some(to) = schema.and_then(|s| declared(s, arg)) {
        let coerced = coerce(value, to);
        return Tri::from_bool(coerced.is_some_and(|c| options.iter().any(|o| json_eq(&c, o))));
    }
    let by_coercion = options.iter().any(|o| {
        Type::of_value(o)
            .and_then(|to| coerce(value, to))
            .is_some_and(|c| json_eq(&c, o))
    });
    if by_coercion { Tri::Unknown } else { Tri::No }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schema_type_decides_the_coercion() {
        let schema = json!({"properties": {
            "force": {"type": "boolean"},
            "n": {"type": ["integer", "null"]},
            "name": {"type": "string"},
            "o": {"properties": {"a/b": {"type": "boolean"}}}
        }});
        let yes = |v: Value, o: Value, arg: &str| equals_any(&v, &[o], arg, Some(&schema));
        assert_eq!(yes(json!("true"), json!(true), "force"), Tri::Yes);
        assert_eq!(yes(json!(" YES "), json!(true), "force"), Tri::Yes);
        assert_eq!(yes(json!("1"), json!(true), "force"), Tri::Yes);
        assert_eq!(yes(json!(" 1000 "), json!(1000), "n"), Tri::Yes);
        assert_eq!(yes(json!("13.0"), json!(13), "n"), Tri::Yes);
        assert_eq!(yes(json!("on"), json!(true), "/o/a~1b"), Tri::Yes);
        // A string argument stays a string: "1" is not the number 1.
        assert_eq!(yes(json!("1"), json!(1), "name"), Tri::No);
        assert_eq!(yes(json!("maybe"), json!(true), "force"), Tri::No);
    }

    #[test]
    fn without_a_schema_a_coerced_match_is_unknown() {
        assert_eq!(
            equals_any(&json!("13"), &[json!(13)], "n", None),
            Tri::Unknown
        );
        assert_eq!(equals_any(&json!(13), &[json!(13)], "n", None), Tri::Yes);
        assert_eq!(equals_any(&json!("12"), &[json!(13)], "n", None), Tri::No);
    }
}
