//! mcp-warden's own cursors for `resources/list`, which pages across upstreams.
//!
//! A cursor names the upstream instance it continues and that upstream's own cursor:
//! `mw1.<instance>.-` (start that upstream's list) or `mw1.<instance>.+<cursor>`. Only
//! the two leading fields are split off; the upstream's cursor is the rest, whatever it
//! holds. A restarted upstream has a new instance, so its old cursors are refused rather
//! than sent to the wrong process. Clients treat cursors as opaque, as the spec asks.

use crate::upstream::InstanceId;

const PREFIX: &str = "mw1.";

/// Our cursor for `instance`, at its start (`None`) or at its own `cursor`.
#[must_use]
pub fn encode(instance: InstanceId, cursor: Option<&str>) -> String {
    match cursor {
        None => format!("{PREFIX}{instance}.-"),
        Some(c) => format!("{PREFIX}{instance}.+{c}"),
    }
}

/// The instance and upstream cursor of one of our cursors; `None` when it is not ours.
#[must_use]
pub fn decode(cursor: &str) -> Option<(InstanceId, Option<&str>)> {
    let rest = cursor.strip_prefix(PREFIX)?;
    let (instance, state) = rest.split_once('.')?;
    let instance = instance.parse().ok()?;
    match state.split_at_checked(1)? {
        ("-", "") => Some((instance, None)),
        ("+", upstream) => Some((instance, Some(upstream))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn foreign_cursors_are_refused() {
        for c in [
            "", "abc", "mw1.", "mw1.x.-", "mw1.3", "mw1.3.*", "mw1.3.-x", "mw2.3.-",
        ] {
            assert_eq!(decode(c), None, "{c}");
        }
    }

    proptest! {
        #[test]
        fn cursors_round_trip(instance in any::<u64>(), upstream in proptest::option::of(".{0,40}")) {
            let c = encode(instance, upstream.as_deref());
            prop_assert_eq!(decode(&c), Some((instance, upstream.as_deref())));
        }
    }
}
