//! The session's deadlines: request timeouts, start-up waits, restarts, task timers.
//!
//! Nearly every deadline is "now + this slot's fixed timeout", so the deadlines of one
//! duration arrive in increasing order: each duration gets a FIFO lane, and the
//! earliest deadline is the smallest of a few lane fronts (a heap takes the rare
//! duration beyond [`LANES`]). A removal only bumps the entry's generation; its queued
//! copy is skipped when it reaches either end of its lane, and the lanes are swept when
//! the dead outnumber the live ([`SLACK`]). A forwarded call inserts at a lane's back
//! and is usually answered before anything else, so its removal pops it from that back
//! at once.
//!
//! One [`Sleep`] stands for the whole store. It is armed at the earliest live deadline
//! and moved only when a new deadline is earlier than the armed one: removing the
//! earliest leaves it armed, and when it fires early nothing is due yet and it is
//! re-armed at the earliest then. It never fires late: the armed instant is never after
//! the earliest live deadline. With nothing live the store does not even poll it.
//!
//! `tokio_util`'s `DelayQueue` did the same job with a timer wheel, a slab and a `Sleep`
//! reset whenever its earliest deadline changed (every call, since a lone call's
//! deadline is always the earliest): ~2.5k instructions per sequential call with the
//! runtime's share (docs/benchmark.md). Its keys were also reused after an expiry, and
//! removing an expired key panicked or cancelled whichever timer had its slot since;
//! a [`Key`] here names one insertion only.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Distinct durations with a lane of their own. A session uses a handful: the request
/// timeout of each server (often all the default), [`super::STARTUP_WAIT`], start-up
/// waits, task polls; restart backoffs vary and land wherever there is room.
const LANES: usize = 8;

/// Dead queued copies tolerated beyond the live ones before a sweep: the sweep costs
/// one pass over what is queued, so it runs at most once per this many removals.
const SLACK: usize = 64;

/// Where an entry is queued: a lane's index, or the heap.
const IN_HEAP: usize = LANES;

/// Names one insertion. A key whose deadline fired or that was removed names nothing:
/// removing it again is a no-op, even once its slot holds another deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    index: usize,
    generation: u32,
}

#[derive(Debug)]
struct Entry<T> {
    /// Bumped whenever the entry's value leaves (removed or fired).
    generation: u32,
    value: Option<T>,
    /// A lane's index, or [`IN_HEAP`].
    queue: usize,
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    at: Instant,
    key: Key,
}

#[derive(Debug)]
struct Lane {
    after: Duration,
    /// Non-decreasing deadlines, front first.
    queue: VecDeque<Queued>,
}

/// Deadlines holding a `T` each; [`Deadlines::expired`] yields them in order.
pub(super) struct Deadlines<T> {
    entries: Vec<Entry<T>>,
    /// Indices of `entries` whose value left.
    free: Vec<usize>,
    lanes: Vec<Lane>,
    heap: BinaryHeap<Reverse<(Instant, Key)>>,
    /// Entries holding a value.
    live: usize,
    /// Copies in the lanes and the heap, live or dead.
    queued: usize,
    /// Made at the first deadline, so that a store can be built outside a runtime.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Where `sleep` is armed; never after the earliest live deadline.
    armed: Option<Instant>,
    /// The waker `sleep` holds since its last poll (cleared when it is moved): polling
    /// it again for the same task would only register that waker again, ~120
    /// instructions, twice per call.
    registered: Option<Waker>,
}

impl<T> std::fmt::Debug for Deadlines<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadlines")
            .field("live", &self.live)
            .field("queued", &self.queued)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            lanes: Vec::new(),
            heap: BinaryHeap::new(),
            live: 0,
            queued: 0,
            sleep: None,
            armed: None,
            registered: None,
        }
    }
}

fn is_live<T>(entries: &[Entry<T>], key: Key) -> bool {
    entries
        .get(key.index)
        .is_some_and(|e| e.generation == key.generation && e.value.is_some())
}

impl<T> Deadlines<T> {
    /// `value` comes out of [`Self::expired`] once `after` has passed from now.
    pub(super) fn insert(&mut self, value: T, after: Duration) -> Key {
        self.insert_from(Instant::now(), value, after)
    }

    /// Like [`Self::insert`] from an instant the caller read: the deadline is early by
    /// that read's age, so the read must be of the event being handled, never older.
    pub(super) fn insert_from(&mut self, now: Instant, value: T, after: Duration) -> Key {
        // A timeout too large for the clock is as good as none (tokio's own far future).
        let at = now
            .checked_add(after)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        let index = if let Some(index) = self.free.pop() {
            index
        } else {
            self.entries.push(Entry {
                generation: 0,
                value: None,
                queue: IN_HEAP,
            });
            self.entries.len() - 1
        };
        let lane = self.lane_for(after);
        let entry = &mut self.entries[index];
        entry.value = Some(value);
        entry.queue = lane;
        let key = Key {
            index,
            generation: entry.generation,
        };
        let at = if let Some(lane) = self.lanes.get_mut(lane) {
            // Equal durations from a monotonic clock arrive in order; an instant read
            // by the caller may be a little older than the last insert's, and then the
            // deadline moves later to the lane's back (later is allowed, earlier not).
            let at = lane.queue.back().map_or(at, |back| back.at.max(at));
            lane.queue.push_back(Queued { at, key });
            at
        } else {
            self.heap.push(Reverse((at, key)));
            at
        };
        self.live += 1;
        self.queued += 1;
        if self.armed.is_none_or(|armed| at < armed) {
            self.arm(at);
        }
        key
    }

    /// Takes the deadline back before it fires; `None` when it already fired or was
    /// removed.
    pub(super) fn remove(&mut self, key: &Key) -> Option<T> {
        let entry = self.entries.get_mut(key.index)?;
        if entry.generation != key.generation {
            return None;
        }
        let value = entry.value.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        let queue = entry.queue;
        self.free.push(key.index);
        self.live -= 1;
        if let Some(lane) = self.lanes.get_mut(queue) {
            while lane
                .queue
                .back()
                .is_some_and(|q| !is_live(&self.entries, q.key))
            {
                lane.queue.pop_back();
                self.queued -= 1;
            }
            while lane
                .queue
                .front()
                .is_some_and(|q| !is_live(&self.entries, q.key))
            {
                lane.queue.pop_front();
                self.queued -= 1;
            }
        }
        if self.queued > 2 * self.live + SLACK {
            self.sweep();
        }
        Some(value)
    }

    /// The next value whose deadline passed; cancel-safe (a value is taken only when
    /// returned).
    pub(super) fn expired(&mut self) -> impl Future<Output = T> + '_ {
        std::future::poll_fn(|cx| self.poll_expired(cx))
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        if self.live == 0 {
            // Left armed for the next insert, which is then usually no earlier.
            return Poll::Pending;
        }
        // A second round only follows a re-arm: a sleep ready again at once with
        // nothing due yields rather than spins.
        for _ in 0..2 {
            if let (Some(sleep), Some(_)) = (self.sleep.as_mut(), self.armed) {
                let holds_ours = self
                    .registered
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()));
                if holds_ours && !sleep.is_elapsed() {
                    return Poll::Pending;
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    if !holds_ours {
                        self.registered = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
            let now = Instant::now();
            match self.earliest() {
                Some((at, queue)) if at <= now => {
                    if let Some(value) = self.pop(queue) {
                        return Poll::Ready(value);
                    }
                }
                Some((at, _)) => self.arm(at),
                None => {
                    self.armed = None;
                    return Poll::Pending;
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The lane (or the heap) whose first live deadline is earliest, dropping dead
    /// copies from the fronts on the way.
    fn earliest(&mut self) -> Option<(Instant, usize)> {
        let mut best: Option<(Instant, usize)> = None;
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            while let Some(front) = lane.queue.front() {
                if is_live(&self.entries, front.key) {
                    if best.is_none_or(|(at, _)| front.at < at) {
                        best = Some((front.at, i));
                    }
                    break;
                }
                lane.queue.pop_front();
                self.queued -= 1;
            }
        }
        while let Some(Reverse((at, key))) = self.heap.peek() {
            if is_live(&self.entries, *key) {
                if best.is_none_or(|(b, _)| *at < b) {
                    best = Some((*at, IN_HEAP));
                }
                break;
            }
            self.heap.pop();
            self.queued -= 1;
        }
        best
    }

    /// Takes the live front of `queue` (found by [`Self::earliest`]).
    fn pop(&mut self, queue: usize) -> Option<T> {
        let key = if let Some(lane) = self.lanes.get_mut(queue) {
            lane.queue.pop_front()?.key
        } else {
            let Reverse((_, key)) = self.heap.pop()?;
            key
        };
        self.queued -= 1;
        let entry = self.entries.get_mut(key.index)?;
        let value = entry.value.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(key.index);
        self.live -= 1;
        Some(value)
    }

    fn arm(&mut self, at: Instant) {
        self.registered = None;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        self.armed = Some(at);
    }

    /// The lane for deadlines `after` from now, or [`IN_HEAP`].
    fn lane_for(&mut self, after: Duration) -> usize {
        if let Some(i) = self.lanes.iter().position(|l| l.after == after) {
            return i;
        }
        if let Some(i) = self.lanes.iter().position(|l| l.queue.is_empty()) {
            self.lanes[i].after = after;
            return i;
        }
        if self.lanes.len() < LANES {
            self.lanes.push(Lane {
                after,
                queue: VecDeque::new(),
            });
            return self.lanes.len() - 1;
        }
        IN_HEAP
    }

    /// Drops every dead copy (many calls answered out of order leave them mid-lane).
    fn sweep(&mut self) {
        let entries = &self.entries;
        for lane in &mut self.lanes {
            lane.queue.retain(|q| is_live(entries, q.key));
        }
        self.heap.retain(|Reverse((_, key))| is_live(entries, *key));
        self.queued = self.lanes.iter().map(|l| l.queue.len()).sum::<usize>() + self.heap.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// Every value that expires by `by` from now, in order, with when it came out.
    async fn drain(d: &mut Deadlines<u32>, by: Duration) -> Vec<(u32, Duration)> {
        let start = Instant::now();
        let end = start + by;
        let mut out = Vec::new();
        loop {
            tokio::select! {
                biased;
                v = d.expired() => out.push((v, Instant::now() - start)),
                () = tokio::time::sleep_until(end) => break,
            }
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn expire_in_deadline_order_at_their_time() {
        let mut d = Deadlines::default();
        d.insert(3, 3 * SEC);
        d.insert(1, SEC);
        d.insert(2, 2 * SEC);
        d.insert(4, 3 * SEC + Duration::from_millis(1));
        let out = drain(&mut d, 10 * SEC).await;
        assert_eq!(
            out,
            [
                (1, SEC),
                (2, 2 * SEC),
                (3, 3 * SEC),
                (4, 3 * SEC + Duration::from_millis(1))
            ]
        );
        assert_eq!(d.live, 0);
    }

    /// Counts its wakes.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll_with(d: &mut Deadlines<u32>, counter: &std::sync::Arc<Counter>) -> Poll<u32> {
        let waker = Waker::from(counter.clone());
        d.poll_expired(&mut Context::from_waker(&waker))
    }

    #[tokio::test(start_paused = true)]
    async fn the_waker_of_the_last_poll_is_the_one_woken() {
        let (a, b) = (
            std::sync::Arc::new(Counter(0.into())),
            std::sync::Arc::new(Counter(0.into())),
        );
        let mut d = Deadlines::default();
        d.insert(1, SEC);
        assert!(poll_with(&mut d, &a).is_pending());
        assert!(
            poll_with(&mut d, &a).is_pending(),
            "polled again, same waker"
        );
        assert!(poll_with(&mut d, &b).is_pending(), "another task's waker");
        tokio::time::advance(2 * SEC).await;
        assert_eq!(b.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(a.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(poll_with(&mut d, &b), Poll::Ready(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_deadline_never_fires() {
        let mut d = Deadlines::default();
        let a = d.insert(1, SEC);
        let b = d.insert(2, 2 * SEC);
        d.insert(3, 2 * SEC);
        assert_eq!(d.remove(&a), Some(1));
        assert_eq!(d.remove(&b), Some(2));
        assert_eq!(d.remove(&b), None, "a second removal finds nothing");
        assert_eq!(drain(&mut d, 10 * SEC).await, [(3, 2 * SEC)]);
    }

    #[tokio::test(start_paused = true)]
    async fn many_equal_deadlines_all_fire_together_in_insertion_order() {
        let mut d = Deadlines::default();
        let keys: Vec<Key> = (0..100).map(|i| d.insert(i, SEC)).collect();
        for key in keys.iter().skip(1).step_by(2) {
            d.remove(key);
        }
        let out = drain(&mut d, 5 * SEC).await;
        let want: Vec<(u32, Duration)> = (0..100).step_by(2).map(|i| (i, SEC)).collect();
        assert_eq!(out, want);
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_inserted_after_later_ones_fires_first() {
        let mut d = Deadlines::default();
        d.insert(60, 60 * SEC);
        d.insert(61, 60 * SEC);
        // Waiting half a second arms the sleep at 60 s before the short one comes.
        assert!(drain(&mut d, SEC / 2).await.is_empty());
        d.insert(1, SEC);
        let out = drain(&mut d, 100 * SEC).await;
        assert_eq!(
            out,
            [(1, SEC), (60, 59 * SEC + SEC / 2), (61, 59 * SEC + SEC / 2)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn removing_the_earliest_rearms_at_the_next() {
        let mut d = Deadlines::default();
        let first = d.insert(1, SEC);
        d.insert(5, 5 * SEC);
        assert!(drain(&mut d, SEC / 2).await.is_empty());
        d.remove(&first);
        // The sleep still wakes at 1 s, finds nothing due and waits for 5 s.
        let out = drain(&mut d, 10 * SEC).await;
        assert_eq!(out, [(5, 4 * SEC + SEC / 2)]);
        // Empty, then a deadline later than the stale arming: it still fires on time.
        d.insert(7, 2 * SEC);
        assert_eq!(drain(&mut d, 10 * SEC).await, [(7, 2 * SEC)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_key_never_cancels_the_deadline_now_in_its_slot() {
        let mut d = Deadlines::default();
        let old = d.insert(1, SEC);
        assert_eq!(d.remove(&old), Some(1));
        let new = d.insert(2, SEC);
        assert_eq!(new.index, old.index, "the slot is reused");
        assert_eq!(d.remove(&old), None);
        // And a key whose deadline fired names nothing either.
        assert_eq!(drain(&mut d, 2 * SEC).await, [(2, SEC)]);
        let newer = d.insert(3, SEC);
        assert_eq!(newer.index, new.index);
        assert_eq!(d.remove(&new), None);
        assert_eq!(drain(&mut d, 2 * SEC).await, [(3, SEC)]);
    }

    #[tokio::test(start_paused = true)]
    async fn many_durations_spill_into_the_heap_and_keep_their_order() {
        let mut d = Deadlines::default();
        for i in (1..=20u32).rev() {
            d.insert(i, SEC * i);
        }
        assert!(!d.heap.is_empty());
        let out = drain(&mut d, 30 * SEC).await;
        let want: Vec<(u32, Duration)> = (1..=20).map(|i| (i, SEC * i)).collect();
        assert_eq!(out, want);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_answered_out_of_order_leave_no_pile_of_dead_copies() {
        let mut d = Deadlines::default();
        let mut keys = std::collections::VecDeque::new();
        for i in 0..10_000 {
            keys.push_back(d.insert(i, 60 * SEC));
            if keys.len() > 8 {
                // The oldest in flight is answered: mid-lane, not at its back.
                if let Some(key) = keys.pop_front() {
                    d.remove(&key);
                }
            }
        }
        assert_eq!(d.live, 8);
        assert!(d.queued <= 2 * d.live + SLACK + 1, "{d:?}");
        assert_eq!(drain(&mut d, 61 * SEC).await.len(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn an_older_instant_from_the_caller_never_makes_a_lane_fire_out_of_order() {
        let mut d = Deadlines::default();
        let before = Instant::now();
        tokio::time::advance(SEC).await;
        d.insert(1, 10 * SEC);
        // Read before the other insert: moved to that one's deadline, not earlier.
        d.insert_from(before, 2, 10 * SEC);
        assert_eq!(
            drain(&mut d, 20 * SEC).await,
            [(1, 10 * SEC), (2, 10 * SEC)]
        );
    }
}
