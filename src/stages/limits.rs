//! `[limits]` (SPEC "Policy"): tool calls per minute in one session and per tool, and
//! the largest result sent to the client. Exceeding one gives the blocked result with
//! rule `limit:<name>`; the session goes on. (`max_message_bytes` bounds the client's
//! line length, set where the session starts.)

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::policy::Limits;

/// The window the per-minute limits count in.
const MINUTE: Duration = Duration::from_secs(60);

/// Calls made in the last minute, for the session and per tool.
#[derive(Debug, Default)]
pub struct CallRate {
    session: VecDeque<Instant>,
    tools: HashMap<String, VecDeque<Instant>>,
}

/// Why a call is over a limit: the rule and a reason.
pub type Exceeded = (&'static str, String);

impl CallRate {
    /// Counts a call to `tool` now, unless that would exceed a limit (then nothing is
    /// counted and the limit is named).
    pub fn admit(&mut self, limits: &Limits, tool: &str, now: Instant) -> Result<(), Exceeded> {
        if limits.calls_per_minute.is_none() && limits.tool_calls_per_minute.is_none() {
            return Ok(());
        }
        prune(&mut self.session, now);
        if let Some(max) = limits.calls_per_minute
            && self.session.len() as u64 >= max
        {
            return Err((
                "limit:calls_per_minute",
                format!(
                    "more than {max} tool calls in one minute in this session (`[limits] calls_per_minute`)"
                ),
            ));
        }
        let per_tool = self.tools.entry(tool.to_owned()).or_default();
        prune(per_tool, now);
        if let Some(max) = limits.tool_calls_per_minute
            && per_tool.len() as u64 >= max
        {
            return Err((
                "limit:tool_calls_per_minute",
                format!(
                    "more than {max} calls of `{tool}` in one minute (`[limits] tool_calls_per_minute`)"
                ),
            ));
        }
        per_tool.push_back(now);
        self.session.push_back(now);
        Ok(())
    }
}

fn prune(window: &mut VecDeque<Instant>, now: Instant) {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= MINUTE)
    {
        window.pop_front();
    }
}

/// Whether a result of `bytes` is over `max_result_bytes`.
#[must_use]
pub fn result_too_big(limits: &Limits, bytes: usize) -> Option<Exceeded> {
    let max = limits.max_result_bytes?;
    (bytes as u64 > max).then(|| {
        (
            "limit:max_result_bytes",
            format!("the result is {bytes} bytes, over `[limits] max_result_bytes` = {max}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(session: Option<u64>, tool: Option<u64>) -> Limits {
        Limits {
            calls_per_minute: session,
            tool_calls_per_minute: tool,
            ..Limits::default()
        }
    }

    #[test]
    fn calls_per_minute_count_in_a_sliding_minute() {
        let mut rate = CallRate::default();
        let l = limits(Some(2), None);
        let t0 = Instant::now();
        assert!(rate.admit(&l, "a", t0).is_ok());
        assert!(rate.admit(&l, "b", t0).is_ok());
        let err = rate.admit(&l, "c", t0).expect_err("third call");
        assert_eq!(err.0, "limit:calls_per_minute");
        assert!(rate.admit(&l, "c", t0 + MINUTE).is_ok(), "a minute later");
    }

    #[test]
    fn per_tool_limits_leave_other_tools_alone() {
        let mut rate = CallRate::default();
        let l = limits(None, Some(1));
        let t0 = Instant::now();
        assert!(rate.admit(&l, "a", t0).is_ok());
        assert_eq!(
            rate.admit(&l, "a", t0).expect_err("again").0,
            "limit:tool_calls_per_minute"
        );
        assert!(rate.admit(&l, "b", t0).is_ok());
    }

    #[test]
    fn big_results_are_named() {
        let l = Limits {
            max_result_bytes: Some(10),
            ..Limits::default()
        };
        assert!(result_too_big(&l, 10).is_none());
        assert_eq!(
            result_too_big(&l, 11).expect("over").0,
            "limit:max_result_bytes"
        );
        assert!(result_too_big(&Limits::default(), usize::MAX).is_none());
    }
}
