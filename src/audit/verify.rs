//! `audit verify`: every line of every day file is a record whose hash matches its
//! contents, and every session's records form one unbroken chain, `seq` 1, 2, 3, ...
//! each `prev` the hash before it, ending with a seal unless the session still runs.
//!
//! One pass over the files in date order, keeping per session only what the next
//! record must match (and the gaps not yet explained), so memory grows with the number
//! of sessions, not of records. After a problem the check resynchronizes on the record
//! as found, so one edited line is one problem, not a cascade down the chain.
//!
//! What each tampering looks like:
//! - an **edited** line: its hash no longer matches its contents (or, if the hash was
//!   recomputed too, the next record's `prev` no longer matches it);
//! - a **dropped** line: the next record of its session skips a `seq`; reported at that
//!   next record, as missing (a dropped seal: the chain is unsealed);
//! - a **reordered** pair: a record arrives before one with a lower `seq`; reported at
//!   the first line out of place, naming where the other one is;
//! - a **cut-off** file: a last line without its newline (torn), or a chain that ends
//!   without a seal while its session is not running ("unsealed").

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::AuditError;
use super::key::{AuditKey, PreparedKey};
use super::read::{Location, Reader, Skip};
use super::record::{self, Decision, GENESIS};
use super::session::{self, Liveness};

/// What is wrong with a line or a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The line is not a record at all (torn, not JSON, not UTF-8, ...).
    Unreadable(Skip),
    /// The record's hash does not match its contents.
    Edited {
        /// The hash the line states.
        stated: String,
        /// The hash its contents give.
        computed: String,
    },
    /// `prev` is not the hash of the session's previous record.
    PrevMismatch {
        /// The record's `seq`.
        seq: u64,
    },
    /// Records `from..to` (exclusive) of the session never appear.
    Missing {
        /// The first missing `seq`.
        from: u64,
        /// The `seq` found instead.
        to: u64,
    },
    /// A record came before one with a lower `seq`.
    OutOfOrder {
        /// The `seq` of the record found here.
        found: u64,
        /// The `seq` that should have come first.
        expected: u64,
        /// Where that one is.
        late_at: Location,
    },
    /// A `seq` seen before in this session.
    Repeated {
        /// The `seq`.
        seq: u64,
    },
    /// A record after the session's seal.
    AfterSeal {
        /// Where the seal is.
        seal: Location,
    },
    /// The chain ends without a seal and its session is not running.
    Unsealed {
        /// The last `seq` of the chain.
        last_seq: u64,
    },
    /// An anchor line is not whole (edited, removed before it, reordered, unreadable).
    Anchor(String),
    /// A session the anchor recorded as sealed is not in the log as sealed: removed
    /// with its day file, or its lines removed or rewritten.
    Removed {
        /// The day file the seal was in.
        day: String,
        /// Its records, the seal included.
        records: u64,
    },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(Skip::Torn) => f.write_str(
                "cut off: the last line has no newline (a write was interrupted or the file was truncated)",
            ),
            Self::Unreadable(skip) => write!(f, "not a record: {skip}"),
            Self::Edited { stated, computed } => write!(
                f,
                "edited: the record's hash does not match its contents (stated {stated}, computed {computed})"
            ),
            Self::PrevMismatch { seq } => write!(
                f,
                "broken chain: `prev` of record {seq} is not the hash of record {} (that record was edited or replaced)",
                seq.saturating_sub(1)
            ),
            Self::Missing { from, to } if to - from == 1 => write!(
                f,
                "dropped: record {from} of this session is missing before this line (found record {to})"
            ),
            Self::Missing { from, to } => write!(
                f,
                "dropped: records {from} to {} of this session are missing before this line (found record {to})",
                to - 1
            ),
            Self::OutOfOrder {
                found,
                expected,
                late_at,
            } => write!(
                f,
                "reordered: record {found} comes before record {expected}, which is at {late_at}"
            ),
            Self::Repeated { seq } => write!(
                f,
                "repeated: record {seq} of this session appears a second time (a copied or replayed line)"
            ),
            Self::AfterSeal { seal } => {
                write!(f, "a record after the session's seal (the seal is at {seal})")
            }
            Self::Unsealed { last_seq } => write!(
                f,
                "unsealed (interrupted or cut off): the chain ends at record {last_seq} without a seal and its session is no longer running"
            ),
            Self::Anchor(why) => f.write_str(why),
            Self::Removed { day, records } => write!(
                f,
                "removed: the anchor records this session sealed after {records} records in `{day}.jsonl`, and the log no longer holds that seal (a session or day file was removed or rewritten)"
            ),
        }
    }
}

/// A problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line (for an unsealed chain: its last record).
    pub at: Location,
    /// The session whose chain it breaks, when the line says.
    pub session: Option<String>,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.session {
            Some(session) => write!(f, "{}: session {session}: {}", self.at, self.kind),
            None => write!(f, "{}: {}", self.at, self.kind),
        }
    }
}

/// How a session's chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainState {
    /// With a seal, and no problem.
    Sealed,
    /// Without a seal, but the session is still running.
    Open,
    /// With a problem (see the report's problems).
    Broken,
}

/// One session's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session id.
    pub session: String,
    /// Its records.
    pub records: u64,
    /// Where its last record is.
    pub last: Location,
    /// Its last record's chain hash.
    pub hash: String,
    /// How it ends.
    pub state: ChainState,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Day files read.
    pub files: usize,
    /// Lines read (records or not).
    pub lines: u64,
    /// Every session, in order of first appearance.
    pub sessions: Vec<SessionSummary>,
    /// Every problem, the first bad line first (unsealed chains, found only at the end,
    /// after the problems that have a line of their own).
    pub problems: Vec<Problem>,
    /// Records of format 1, chained without the key: verified as written, but such a
    /// chain could be rewritten by anyone.
    pub unkeyed: u64,
}

impl Report {
    /// Whether every chain is whole.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every chain in `dir` (see the module docs); a session counts as running as
/// [`session::liveness`] says.
///
/// Keyed chains (format 2 on) are checked under `key`, the per-install audit key;
/// without it every keyed record is reported as unverifiable. Records of format 1 are
/// checked as the unkeyed chain they were written as, and counted in
/// [`Report::unkeyed`].
pub fn verify(dir: &Path, key: Option<&AuditKey>) -> Result<Report, AuditError> {
    verify_with(dir, key, session::liveness)
}

/// [`verify`], with the running check given.
pub fn verify_with(
    dir: &Path,
    key: Option<&AuditKey>,
    liveness: impl Fn(&str) -> Liveness,
) -> Result<Report, AuditError> {
    let key = key.map(PreparedKey::new);
    let mut report = Report {
        files: super::read::day_files(dir)?.len(),
        ..Report::default()
    };
    let mut chains: HashMap<String, Chain> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut reader = Reader::new(dir, None);
    while let Some(raw) = reader.next_line(false)? {
        report.lines += 1;
        let at = raw.at;
        let text = match raw.text {
            Ok(text) if text.trim().is_empty() => Err(Skip::Blank),
            other => other,
        };
        let checked =
            text.and_then(|t| record::check_line(&t, key.as_ref()).map_err(Skip::Invalid));
        let checked = match checked {
            Ok(checked) => checked,
            Err(skip) => {
                report.problems.push(Problem {
                    at,
                    session: None,
                    kind: ProblemKind::Unreadable(skip),
                });
                continue;
            }
        };
        let record = checked.record;
        if record.v < record::KEYED_VERSION {
            report.unkeyed += 1;
        }
        let chain = chains.entry(record.session.clone()).or_insert_with(|| {
            order.push(record.session.clone());
            Chain::default()
        });
        let problem = chain.take(
            &at,
            record.seq,
            &record.prev,
            &record.hash,
            &checked.computed,
            record.decision == Decision::Seal,
        );
        if let Some(kind) = problem {
            chain.broken = true;
            report.problems.push(Problem {
                at,
                session: Some(record.session),
                kind,
            });
        }
    }
    let unsealed = finish(&mut report, order, chains, &liveness);
    let anchored = check_anchor(dir, key.as_ref(), &report)?;
    report.problems.sort_by(|a, b| a.at.cmp(&b.at));
    report.problems.dedup_by(|b, a| a.at == b.at);
    report.problems.extend(unsealed);
    // Last: the anchor's findings are mostly the consequence of a line problem above.
    report.problems.extend(anchored);
    Ok(report)
}

/// Checks the anchor (see [`super::anchor`]): its own chain, and that every session it
/// recorded as sealed is in the log (`report`'s sessions), sealed with the same hash.
fn check_anchor(
    dir: &Path,
    key: Option<&PreparedKey>,
    report: &Report,
) -> Result<Vec<Problem>, AuditError> {
    let mut problems = Vec::new();
    let file = super::anchor::path(dir);
    let lines = super::anchor::read(dir).map_err(|e| AuditError::io(&file, e))?;
    let mut prev = (GENESIS.to_owned(), 0);
    for (line, entry) in lines {
        let at = Location {
            file: file.clone(),
            line: line as u64,
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err(why) => {
                problems.push(Problem {
                    at,
                    session: None,
                    kind: ProblemKind::Anchor(format!("not an anchor line: {why}")),
                });
                continue;
            }
        };
        if let Some(why) = super::anchor::check(&entry, (&prev.0, prev.1), key) {
            problems.push(Problem {
                at: at.clone(),
                session: Some(entry.session.clone()),
                kind: ProblemKind::Anchor(why),
            });
        }
        let sealed = report.sessions.iter().any(|s| {
            s.session == entry.session && s.hash == entry.hash && s.records == entry.records
        });
        if !sealed {
            problems.push(Problem {
                at,
                session: Some(entry.session.clone()),
                kind: ProblemKind::Removed {
                    day: entry.day.clone(),
                    records: entry.records,
                },
            });
        }
        prev = (entry.mac, entry.n);
    }
    Ok(problems)
}

/// Ends every chain at the end of the log: gaps never filled are missing records (or,
/// when one turned up later, reorderings); a chain without a seal whose session is not
/// running is unsealed. Adds the sessions to `report` and its gap problems; returns
/// the unsealed ones, which go last.
fn finish(
    report: &mut Report,
    order: Vec<String>,
    mut chains: HashMap<String, Chain>,
    liveness: &impl Fn(&str) -> Liveness,
) -> Vec<Problem> {
    let mut unsealed = Vec::new();
    for session in order {
        let Some(mut chain) = chains.remove(&session) else {
            continue;
        };
        for gap in chain.gaps.drain(..) {
            chain.broken = true;
            let kind = match gap.late {
                Some((expected, late_at)) => ProblemKind::OutOfOrder {
                    found: gap.to,
                    expected,
                    late_at,
                },
                None => ProblemKind::Missing {
                    from: gap.from,
                    to: gap.to,
                },
            };
            report.problems.push(Problem {
                at: gap.at,
                session: Some(session.clone()),
                kind,
            });
        }
        let Some(last) = chain.last.clone() else {
            continue;
        };
        let running = chain.sealed.is_none() && liveness(&session) == Liveness::Running;
        if chain.sealed.is_none() && !running {
            chain.broken = true;
            unsealed.push(Problem {
                at: last.clone(),
                session: Some(session.clone()),
                kind: ProblemKind::Unsealed {
                    last_seq: chain.next_seq.saturating_sub(1),
                },
            });
        }
        report.sessions.push(SessionSummary {
            session,
            records: chain.records,
            hash: chain.last_hash.clone(),
            last,
            state: if chain.broken {
                ChainState::Broken
            } else if running {
                ChainState::Open
            } else {
                ChainState::Sealed
            },
        });
    }
    unsealed
}

/// What the next record of one session must match.
#[derive(Debug)]
struct Chain {
    /// The `seq` expected next.
    next_seq: u64,
    /// The hash the next `prev` must equal.
    last_hash: String,
    records: u64,
    last: Option<Location>,
    sealed: Option<Location>,
    /// Runs of `seq` skipped over, not (all) seen yet.
    gaps: Vec<Gap>,
    broken: bool,
}

impl Default for Chain {
    fn default() -> Self {
        Self {
            next_seq: 1,
            last_hash: GENESIS.to_owned(),
            records: 0,
            last: None,
            sealed: None,
            gaps: Vec::new(),
            broken: false,
        }
    }
}

/// Records `from..to` were skipped at `at` (where record `to` was found).
#[derive(Debug)]
struct Gap {
    from: u64,
    to: u64,
    at: Location,
    /// The first skipped record that turned up later, and where.
    late: Option<(u64, Location)>,
}

impl Chain {
    /// Takes the next record of the session; the problem it shows, if any.
    fn take(
        &mut self,
        at: &Location,
        seq: u64,
        prev: &str,
        stated: &str,
        computed: &str,
        is_seal: bool,
    ) -> Option<ProblemKind> {
        self.records += 1;
        self.last = Some(at.clone());
        let mut problem = None;
        if stated != computed {
            problem = Some(ProblemKind::Edited {
                stated: stated.to_owned(),
                computed: computed.to_owned(),
            });
        }
        if let Some(seal) = &self.sealed {
            problem.get_or_insert(ProblemKind::AfterSeal { seal: seal.clone() });
        }
        if seq < self.next_seq {
            // Earlier than expected: one that was skipped over (reordered), or a copy.
            if let Some(gap) = self.gaps.iter_mut().find(|g| (g.from..g.to).contains(&seq)) {
                if gap.late.is_none() {
                    gap.late = Some((seq, at.clone()));
                }
                return problem;
            }
            return problem.or(Some(ProblemKind::Repeated { seq }));
        }
        if seq > self.next_seq {
            self.gaps.push(Gap {
                from: self.next_seq,
                to: seq,
                at: at.clone(),
                late: None,
            });
        } else if prev != self.last_hash {
            problem.get_or_insert(ProblemKind::PrevMismatch { seq });
        }
        // Resynchronize on the record as found.
        self.next_seq = seq.saturating_add(1);
        stated.clone_into(&mut self.last_hash);
        if is_seal {
            self.sealed = Some(at.clone());
        }
        problem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{Direction, Record, VERSION, seal_line};
    use crate::time::Timestamp;

    /// `n` records of `session` (the last a seal when `sealed`), as lines.
    fn chain(session: &str, n: u64, sealed: bool) -> Vec<String> {
        chain_of(VERSION, session, n, sealed)
    }

    /// [`chain`] in record format `v`.
    fn chain_of(v: u32, session: &str, n: u64, sealed: bool) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let decision = if sealed && seq == n {
                    Decision::Seal
                } else {
                    Decision::Allow
                };
                let mut r = Record {
                    v,
                    ts: Timestamp::from_millis(1_777_636_800_000),
                    session: session.to_owned(),
                    seq,
                    workspace: None,
                    server: None,
                    tool: Some(format!("t{seq}")),
                    method: None,
                    direction: Direction::ToServer,
                    decision,
                    rule: None,
                    args_hmac: None,
                    ms: None,
                    bytes: None,
                    listed: None,
                    held: None,
                    tools: None,
                    detail: None,
                    args: None,
                    prev: std::mem::take(&mut prev),
                    hash: String::new(),
                };
                let line = seal_line(&mut r);
                prev = r.hash;
                line
            })
            .collect()
    }

    fn check(lines: &[String]) -> Report {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("2026-05-01.jsonl"), lines.concat()).expect("write");
        verify_with(dir.path(), Some(&AuditKey::from_bytes([7; 32])), |_| {
            Liveness::Ended
        })
        .expect("verify")
    }

    fn first(report: &Report) -> (u64, ProblemKind) {
        let p = report.problems.first().expect("a problem");
        (p.at.line, p.kind.clone())
    }

    #[test]
    fn whole_chains_pass_even_interleaved() {
        let (a, b) = (chain("a", 4, true), chain("b", 3, true));
        let mixed = vec![
            a[0].clone(),
            b[0].clone(),
            a[1].clone(),
            a[2].clone(),
            b[1].clone(),
            b[2].clone(),
            a[3].clone(),
        ];
        let report = check(&mixed);
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.sessions.len(), 2);
        assert!(
            report
                .sessions
                .iter()
                .all(|s| s.state == ChainState::Sealed)
        );
    }

    #[test]
    fn a_copied_line_is_repeated() {
        let mut lines = chain("a", 5, true);
        lines.insert(3, lines[1].clone());
        assert_eq!(first(&check(&lines)), (4, ProblemKind::Repeated { seq: 2 }));
    }

    #[test]
    fn a_record_after_the_seal_is_refused() {
        let mut lines = chain("a", 3, true);
        lines.extend(chain("a", 4, false).into_iter().skip(3));
        assert_eq!(report_kinds(&check(&lines)).len(), 1);
        assert!(matches!(
            first(&check(&lines)),
            (4, ProblemKind::AfterSeal { .. })
        ));
    }

    #[test]
    fn a_missing_start_and_several_missing_records_are_dropped() {
        let lines = chain("a", 6, true);
        let report = check(&lines[1..]);
        assert_eq!(first(&report), (1, ProblemKind::Missing { from: 1, to: 2 }));
        let mut cut = lines.clone();
        cut.drain(1..4);
        let report = check(&cut);
        assert_eq!(first(&report), (2, ProblemKind::Missing { from: 2, to: 5 }));
        assert!(report.problems[0].to_string().contains("records 2 to 4"));
    }

    #[test]
    fn unsealed_chains_of_foreign_or_ended_sessions_fail_after_line_problems() {
        let mut lines = chain("not-ours", 3, false);
        lines.push("garbage\n".to_owned());
        let report = check(&lines);
        let kinds = report_kinds(&report);
        assert!(matches!(kinds[0], ProblemKind::Unreadable(_)), "{kinds:?}");
        assert_eq!(kinds[1], ProblemKind::Unsealed { last_seq: 3 });
        assert_eq!(report.problems[1].at.line, 3);
    }

    #[test]
    fn format_1_chains_still_verify_as_written_and_are_counted_unkeyed() {
        let mut lines = chain_of(1, "old", 3, true);
        lines.extend(chain("new", 2, true));
        let report = check(&lines);
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.unkeyed, 3);
        // Without the key, keyed records cannot pass.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("2026-05-01.jsonl"), lines.concat()).expect("write");
        let keyless = verify_with(dir.path(), None, |_| Liveness::Ended).expect("verify");
        assert_eq!(keyless.problems[0].at.line, 4, "{:?}", keyless.problems);
    }

    fn report_kinds(report: &Report) -> Vec<ProblemKind> {
        report.problems.iter().map(|p| p.kind.clone()).collect()
    }
}
