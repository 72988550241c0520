//! The id and progress-token maps: how an answer finds the request it answers.
//!
//! Upstreams all number their requests from 0 or 1, and so does the client, so ids are
//! remapped both ways:
//! - [`OurIds`]: ids mcp-warden mints for what it sends, each mapped to what its answer
//!   is for. One per upstream slot (`our id → pending request`), one for the requests
//!   sent to the client (server requests, reviews, asks, `roots/list`), one for batches.
//! - [`ClientIds`]: the client's requests in flight, by the exact JSON text of the
//!   client's id, to the slot and our id they went out under (cancellation, reuse).
//! - Progress tokens follow the ids: an upstream is given our id for the request as its
//!   token ([`progress_token`] finds the client's; [`our_id`] reads one back).
//!
//! Nothing is ever split out of an id, so no name can smuggle a delimiter into routing;
//! an id we did not mint, or minted for an instance since restarted (its table was
//! cleared, and numbers are never issued twice), finds nothing. Pure: no I/O, no
//! processes; the session holds the tables and wires them.

use std::collections::HashMap;
use std::collections::hash_map;
use std::ops::Range;

use crate::jsonrpc::{Id, Message};

/// The largest id we mint. JavaScript servers read JSON numbers as doubles, and past
/// 2^53 − 1 two of our ids could read as the same one; the count then starts at 1
/// again, skipping ids still in use.
pub const MAX_ID: u64 = (1 << 53) - 1;

/// The hasher of tables keyed by numbers we mint ourselves: nobody else chooses those
/// keys, so the standard hasher's resistance to chosen keys buys nothing there, and it cost a
/// few hundred instructions per forwarded call (callgrind). Tables keyed by what a
/// client or server chooses keep the standard hasher.
pub type OursHash = foldhash::fast::FixedState;

/// Ids we mint for what we send, each mapped to what its answer is for.
///
/// Ids are increasing integers from 1; an id leaves the table when its answer arrives
/// (or its request is abandoned), and is not issued again while the count lasts, so a
/// late or replayed answer finds nothing.
#[derive(Debug)]
pub struct OurIds<T> {
    entries: HashMap<u64, T, OursHash>,
    /// The last id issued (0: none yet).
    last: u64,
}

impl<T> Default for OurIds<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::default(),
            last: 0,
        }
    }
}

impl<T> OurIds<T> {
    /// A fresh id for `entry`.
    pub fn mint(&mut self, entry: T) -> u64 {
        let id = self.reserve();
        self.entries.insert(id, entry);
        id
    }

    /// A fresh id whose entry comes later ([`Self::insert`]): for a request whose
    /// line names its id before we know it was sent. An id reserved and never filled
    /// is simply never answered.
    pub fn reserve(&mut self) -> u64 {
        // Ends: the table is bounded far below `MAX_ID` entries.
        loop {
            self.last = if self.last >= MAX_ID {
                1
            } else {
                self.last + 1
            };
            if !self.entries.contains_key(&self.last) {
                return self.last;
            }
        }
    }

    /// Puts `entry` under `id`, one this table issued (reserved, or taken out to look
    /// at and put back); returns what was there.
    pub fn insert(&mut self, id: u64, entry: T) -> Option<T> {
        debug_assert!(
            (1..=MAX_ID).contains(&id),
            "only ids this table issued are filled"
        );
        self.entries.insert(id, entry)
    }

    /// Takes out the entry of `id`: its answer arrived, or it was abandoned. `None`
    /// for an id never issued, already answered, or cleared with its instance.
    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "the shape of `HashMap::remove`, which the session's call sites were written against"
    )]
    pub fn remove(&mut self, id: &u64) -> Option<T> {
        self.entries.remove(id)
    }

    #[must_use]
    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "the shape of `HashMap::get`, which the session's call sites were written against"
    )]
    pub fn get(&self, id: &u64) -> Option<&T> {
        self.entries.get(id)
    }

    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "the shape of `HashMap::get_mut`, which the session's call sites were written against"
    )]
    pub fn get_mut(&mut self, id: &u64) -> Option<&mut T> {
        self.entries.get_mut(id)
    }

    /// Takes out the first entry `which` picks (its id with it).
    pub fn take_where(&mut self, mut which: impl FnMut(&T) -> bool) -> Option<(u64, T)> {
        let id = self
            .entries
            .iter()
            .find_map(|(id, entry)| which(entry).then_some(*id))?;
        self.entries.remove(&id).map(|entry| (id, entry))
    }

    /// How many answers are awaited.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[must_use]
    pub fn values(&self) -> hash_map::Values<'_, u64, T> {
        self.entries.values()
    }

    /// Each id awaited with its entry.
    #[must_use]
    pub fn iter(&self) -> hash_map::Iter<'_, u64, T> {
        self.entries.iter()
    }

    /// Takes out every entry (the instance they were sent to is gone); the count goes
    /// on, so the old instance's ids are never issued again.
    pub fn drain(&mut self) -> hash_map::Drain<'_, u64, T> {
        self.entries.drain()
    }

    /// Forgets every entry; the count goes on (see [`Self::drain`]).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn retain(&mut self, keep: impl FnMut(&u64, &mut T) -> bool) {
        self.entries.retain(keep);
    }

    /// A table whose count is at `last` (tests of the wrap-around).
    #[cfg(test)]
    fn counted_to(last: u64) -> Self {
        Self {
            entries: HashMap::default(),
            last,
        }
    }
}

impl<'a, T> IntoIterator for &'a OurIds<T> {
    type Item = (&'a u64, &'a T);
    type IntoIter = hash_map::Iter<'a, u64, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// Where a client request went: the slot and our id there. Our id 0 (never minted)
/// stands for a request held in mcp-warden, with nothing upstream yet.
pub type Route = (usize, u64);

/// The client's requests in flight, by the exact JSON text of its id (`"1"` and `1`
/// are two ids; `1e3` stays `1e3`): a reused id is refused, and a cancellation finds
/// the request it names.
#[derive(Debug, Default)]
pub struct ClientIds {
    routes: HashMap<Id, Route>,
}

impl ClientIds {
    /// Whether `id` is in flight: a request reusing it is refused.
    #[must_use]
    pub fn contains_key(&self, id: &Id) -> bool {
        self.routes.contains_key(id)
    }

    /// Records that the request `id` went out (or is held) at `route`.
    pub fn insert(&mut self, id: Id, route: Route) -> Option<Route> {
        self.routes.insert(id, route)
    }

    #[must_use]
    pub fn get(&self, id: &Id) -> Option<&Route> {
        self.routes.get(id)
    }

    /// The request `id` is answered or cancelled: where it went, if it was in flight.
    pub fn remove(&mut self, id: &Id) -> Option<Route> {
        self.routes.remove(id)
    }
}

/// Our id in the text of an id or progress token a server sent back: a JSON integer
/// as we write them (no sign, no leading zero, no fraction or exponent), in the range
/// we mint. Anything else (a string, `1.0`, `1e3`) was not written by us.
#[must_use]
pub fn our_id(raw: &str) -> Option<u64> {
    let canonical = raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    let id: u64 = raw.parse().ok().filter(|_| canonical)?;
    (id <= MAX_ID).then_some(id)
}

/// The span and text of `params._meta.progressToken`, when the request has one: the
/// client's own token, kept with the request while the upstream gets our id.
#[must_use]
pub fn progress_token(msg: &Message) -> Option<(Range<usize>, Box<str>)> {
    // The params index is there already (the stages asked for the tool's name), so
    // this is a lookup of `_meta`, and a walk of `_meta` alone when there is one; a
    // search of the whole line for the word cost more than that.
    let (token, span) = msg.param(&["_meta", "progressToken"])?;
    Some((span, token.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_minted_resolved_and_removed_once() {
        let mut ids = OurIds::default();
        let a = ids.mint("init");
        let b = ids.mint("list");
        assert_eq!((a, b), (1, 2));
        assert_eq!(ids.get(&b), Some(&"list"));
        assert_eq!(ids.len(), 2);
        // The answer arrives: the entry goes; a second answer to it finds nothing.
        assert_eq!(ids.remove(&a), Some("init"));
        assert_eq!(ids.remove(&a), None);
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn forged_and_unknown_ids_find_nothing() {
        let mut ids = OurIds::default();
        let a = ids.mint("call");
        for forged in [0, a + 1, a + 1000, MAX_ID, u64::MAX] {
            assert_eq!(ids.remove(&forged), None, "{forged}");
            assert!(ids.get(&forged).is_none(), "{forged}");
        }
        assert_eq!(ids.get(&a), Some(&"call"));
    }

    #[test]
    fn a_restarted_instances_stale_ids_are_refused() {
        let mut ids = OurIds::default();
        let old = [ids.mint("a"), ids.mint("b")];
        // The instance died: its requests are taken out and failed.
        assert_eq!(ids.drain().count(), 2);
        let fresh = ids.mint("c");
        for stale in old {
            assert!(fresh > stale, "no id of the old instance is issued again");
            assert_eq!(ids.remove(&stale), None);
        }
        ids.clear();
        assert!(ids.mint("d") > fresh);
    }

    #[test]
    fn a_reserved_id_is_filled_later_and_never_issued_twice() {
        let mut ids = OurIds::default();
        let reserved = ids.reserve();
        let next = ids.mint("other");
        assert_ne!(reserved, next);
        assert_eq!(ids.get(&reserved), None, "nothing until it is filled");
        assert_eq!(ids.insert(reserved, "call"), None);
        // Taken out to look at, then put back as something else (a cancelled call).
        assert_eq!(ids.remove(&reserved), Some("call"));
        assert_eq!(ids.insert(reserved, "cancelled"), None);
        assert_eq!(ids.get(&reserved), Some(&"cancelled"));
    }

    #[test]
    fn the_count_wraps_below_two_to_the_53_and_skips_ids_in_use() {
        let mut ids = OurIds::counted_to(MAX_ID - 2);
        let near = [ids.mint("x"), ids.mint("y")];
        assert_eq!(near, [MAX_ID - 1, MAX_ID]);
        let mut wrapped = OurIds::counted_to(0);
        wrapped.mint("one");
        wrapped.mint("two");
        wrapped.last = MAX_ID;
        // 1 and 2 are still awaited: the next id is 3.
        assert_eq!(wrapped.mint("three"), 3);
        assert_eq!(wrapped.remove(&1), Some("one"));
        wrapped.last = MAX_ID;
        assert_eq!(wrapped.reserve(), 1);
    }

    #[test]
    fn take_where_finds_by_entry() {
        let mut ids = OurIds::default();
        ids.mint(("slot", 1));
        let b = ids.mint(("slot", 2));
        assert_eq!(ids.take_where(|e| e.1 == 2), Some((b, ("slot", 2))));
        assert_eq!(ids.take_where(|e| e.1 == 2), None);
        assert_eq!(ids.len(), 1);
        ids.retain(|_, e| e.1 != 1);
        assert!(ids.is_empty());
    }

    /// One client request's life through both tables, as the session wires them.
    #[test]
    fn a_cancelled_requests_late_answer_is_dropped_and_its_id_freed() {
        #[derive(Debug, PartialEq)]
        enum Entry {
            Client,
            Cancelled,
        }
        let mut pending = OurIds::default();
        let mut inflight = ClientIds::default();
        let client = Id::from_json("\"req-1\"").expect("id");
        let ours = pending.reserve();
        pending.insert(ours, Entry::Client);
        inflight.insert(client.clone(), (3, ours));
        // notifications/cancelled names the client's id: it finds the slot and our id.
        let (slot, found) = inflight.remove(&client).expect("in flight");
        assert_eq!((slot, found), (3, ours));
        assert_eq!(pending.remove(&found), Some(Entry::Client));
        pending.insert(found, Entry::Cancelled);
        // The client may reuse its id at once; the server's late answer is dropped once.
        assert!(!inflight.contains_key(&client));
        assert_eq!(pending.remove(&ours), Some(Entry::Cancelled));
        assert_eq!(pending.remove(&ours), None);
        assert!(pending.is_empty());
    }

    #[test]
    fn client_ids_are_their_exact_text() {
        let mut inflight = ClientIds::default();
        let one = Id::from_json("1").expect("id");
        let text = Id::from_json("\"1\"").expect("id");
        let exp = Id::from_json("1e3").expect("id");
        assert_eq!(inflight.insert(one.clone(), (0, 7)), None);
        // Reuse is seen; the string "1" and 1e3 are other ids.
        assert!(inflight.contains_key(&one));
        assert!(!inflight.contains_key(&text));
        assert!(!inflight.contains_key(&Id::from_json("1000").expect("id")));
        inflight.insert(exp.clone(), (1, 8));
        inflight.insert(text.clone(), (2, 9));
        // A cancellation finds where the request went; answered, it is gone.
        assert_eq!(inflight.get(&exp), Some(&(1, 8)));
        assert_eq!(inflight.remove(&text), Some((2, 9)));
        assert_eq!(inflight.remove(&text), None);
        assert_eq!(inflight.remove(&one), Some((0, 7)));
    }

    #[test]
    fn only_ids_as_we_write_them_are_ours() {
        let cases: &[(&str, Option<u64>)] = &[
            ("1", Some(1)),
            ("42", Some(42)),
            ("9007199254740991", Some(MAX_ID)),
            ("9007199254740992", None),
            ("18446744073709551616", None),
            ("0", None),
            ("07", None),
            ("+7", None),
            ("-7", None),
            ("7.0", None),
            ("7e0", None),
            ("\"7\"", None),
            ("", None),
            (" 7", None),
        ];
        for (raw, want) in cases {
            assert_eq!(our_id(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn the_clients_progress_token_is_found_with_its_span() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"p-1"}}}"#,
                Some("\"p-1\""),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":5}}}"#,
                Some("5"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progressToken"}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
                None,
            ),
        ];
        for (line, want) in cases {
            let msg = crate::jsonrpc::message::reparse(&bytes::Bytes::from(format!("{line}\n")))
                .expect("message");
            let found = progress_token(&msg);
            assert_eq!(found.as_ref().map(|(_, t)| &**t), *want, "{line}");
            if let Some((span, token)) = found {
                assert_eq!(&line[span], &*token);
            }
        }
    }
}
