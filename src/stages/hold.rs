//! The hold stage (SPEC "Pinning"): a call to a tool or a get of a prompt that
//! pinning holds (new in `strict`, changed, or flagged by the scan), a read of (or
//! subscription to) a resource the scan flagged or a URI of a held resource template,
//! and a completion for a held prompt or template, is stopped with decision `hold`. Held items are left out of the
//! catalogs, so the session asks this stage about a name it could not route (and
//! about every URI before routing it); the stage decides which kinds it applies to
//! and what the stop says.

use super::{MessageKind, Stop, Verdict, View};
use crate::filter::Block;
use crate::pinning::judge::Hold;

/// The verdict on `view`; `held` looks an exposed name (or URI) of a kind up in the
/// pins and returns the hold with the name a person resolves it by (for a URI of a
/// held template: the template).
pub fn hold<'h>(
    view: &View<'_>,
    held: impl FnOnce(MessageKind, &str) -> Option<(&'h str, &'h Hold)>,
) -> Verdict {
    if !applies(view) {
        return Verdict::Pass;
    }
    let Some(name) = view.name else {
        return Verdict::Pass;
    };
    held(view.kind, name).map_or(Verdict::Pass, |(exposed, h)| {
        Verdict::Stop(stop(h, exposed, None))
    })
}

/// Whether the hold stage looks at `view`: calls, gets, reads, subscriptions and
/// completions (of a held prompt or template) from the client.
#[must_use]
pub fn applies(view: &View<'_>) -> bool {
    view.direction == super::Direction::ToUpstream && view.kind.is_routed_by_name()
}

/// The stop for a call to `exposed` that `hold` holds; `reason` replaces the hold's
/// own explanation (e.g. the user declined to pin it).
#[must_use]
pub fn stop(hold: &Hold, exposed: &str, reason: Option<String>) -> Stop {
    Stop::hold(Block {
        rule: hold.rule.clone(),
        reason: reason.unwrap_or_else(|| hold.explain(exposed)),
    })
}
