//! The hold stage (SPEC "Pinning"): a call to a tool or a get of a prompt that
//! pinning holds (new in `strict`, changed, or flagged by the scan) is stopped with
//! decision `hold`. Held items are left out of the catalogs, so the session asks this
//! stage about a name it could not route; the stage decides which kinds it applies to
//! and what the stop says.

use super::{MessageKind, Stop, Verdict, View};
use crate::filter::Block;
use crate::pinning::judge::Hold;

/// The verdict on `view`; `held` looks an exposed name of a kind up in the pins.
pub fn hold<'h>(
    view: &View<'_>,
    held: impl FnOnce(MessageKind, &str) -> Option<&'h Hold>,
) -> Verdict {
    if !applies(view) {
        return Verdict::Pass;
    }
    let Some(name) = view.name else {
        return Verdict::Pass;
    };
    held(view.kind, name).map_or(Verdict::Pass, |h| Verdict::Stop(stop(h, name, None)))
}

/// Whether the hold stage looks at `view`: calls and gets from the client. Reads,
/// subscriptions and completions of held items are issue 13's (see `docs/design.md`).
#[must_use]
pub fn applies(view: &View<'_>) -> bool {
    view.direction == super::Direction::ToUpstream
        && matches!(view.kind, MessageKind::Call | MessageKind::Get)
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
