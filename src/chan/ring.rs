//! The buffer of a buffered channel: a bounded ring that a send or receive
//! uses without the channel's lock while nothing is parked on the channel.
//!
//! The ring is crossbeam-channel's array flavour (`flavors/array.rs`, after
//! Dmitry Vyukov's bounded MPMC queue): `head` and `tail` each hold a lap
//! and an index, and every slot a *stamp* that says whose turn it is:
//!
//! - a slot is free for the push at position `tail` when its stamp equals
//!   `tail`, and holds a value for the pop at position `head` when its stamp
//!   equals `head + 1`;
//! - a push claims its position by a compare-and-swap on `tail`, then writes
//!   the value and publishes it (stamp `tail + 1`, Release); a pop claims by
//!   a compare-and-swap on `head`, reads the value and frees the slot for the
//!   next lap (stamp `head + one_lap`, Release).
//!
//! ## The slow bit
//!
//! Go's semantics need more than a queue: a send must hand its value to a
//! parked receiver rather than buffer it, a receive that frees a slot must
//! move the first parked sender's value in, and nothing may enter a closed
//! channel. Those need the channel's lock (`chan::core`). So `head` and
//! `tail` carry a [`SLOW`] bit, set (under the lock) while anything is
//! parked on the channel, while it is closed, and while values put back by a
//! cancelled receive wait in front of the ring:
//!
//! - a push or pop *without* the lock ([`Ring::push`], [`Ring::pop`] with
//!   `holder == false`) fails with [`Slow`] when it finds the bit, and its
//!   compare-and-swap fails if the bit was set after it read the word; the
//!   caller then takes the lock;
//! - the lock holder sets the bit in `tail` and then in `head` (SeqCst)
//!   *before* it decides to park an operation, so a push or pop without the
//!   lock either completed its claim before (and the holder sees its effect
//!   on `head`/`tail`) or fails and comes to the lock (the Dekker pairing of
//!   the bit's read-modify-write with the claim's compare-and-swap on the same
//!   word);
//! - with the bit set only lock holders claim positions (their
//!   compare-and-swap keeps the bit), so under the lock the ring behaves as a
//!   single-threaded queue, except that a claim made just before the bit was
//!   set may still be writing or reading its slot: the holder waits for that
//!   slot's stamp (a few instructions away);
//! - the holder clears the bit when nothing is parked any more, the channel
//!   is open and nothing waits in front of the ring.

use std::mem::MaybeUninit;

use crate::park::handoff::HandOff;
use crate::shim::{fence, AtomicUsize, Ordering};

/// The bit of `head` and `tail` that sends every operation through the
/// channel's lock (module docs). It sits between the index and the lap:
/// `mark_bit` in crossbeam's terms.
type Word = usize;

/// A slot of the ring.
struct Slot<T> {
    /// Whose turn it is (module docs).
    stamp: AtomicUsize,
    /// The value, present between a push's publish and a pop's claim.
    value: HandOff<MaybeUninit<T>>,
}

/// Why a push or pop without the lock did not complete.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// Full (push) or empty (pop).
    Now,
    /// The slow bit is set: the operation belongs under the lock.
    Slow,
}

/// A bounded multi-producer multi-consumer ring (module docs).
pub(crate) struct Ring<T> {
    head: crossbeam_utils::CachePadded<AtomicUsize>,
    tail: crossbeam_utils::CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    /// The slow bit: `(cap + 1).next_power_of_two()`, above every index.
    slow: Word,
    /// Adding it to a position moves it to the same index of the next lap.
    one_lap: Word,
    /// `slow - 1`: a position's index (always below the slot count).
    index_mask: Word,
}

// SAFETY: values move between threads through the slots, each slot touched
// by one party at a time as its stamp orders them (module docs), which is
// what `HandOff` needs: `T: Send` suffices.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: as above; the ring owns the values it holds.
unsafe impl<T: Send> Send for Ring<T> {}

/// Waits a little for another thread that holds a claim on a slot.
fn wait(backoff: &crossbeam_utils::Backoff) {
    #[cfg(loom)]
    {
        let _ = backoff;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    backoff.snooze();
}

impl<T> Ring<T> {
    /// An empty ring of `cap` (> 0) slots, in fast mode.
    pub(crate) fn new(cap: usize) -> Ring<T> {
        assert!(cap > 0, "a ring has at least one slot");
        let slow = (cap + 1).next_power_of_two();
        let slots = (0..cap).map(|i| Slot { stamp: AtomicUsize::new(i), value: HandOff::new(MaybeUninit::uninit()) });
        Ring {
            head: crossbeam_utils::CachePadded::new(AtomicUsize::new(0)),
            tail: crossbeam_utils::CachePadded::new(AtomicUsize::new(0)),
            slots: slots.collect(),
            slow,
            one_lap: slow * 2,
            index_mask: slow - 1,
        }
    }

    fn cap(&self) -> usize {
        self.slots.len()
    }

    /// The slot of position `pos`.
    #[inline]
    fn slot(&self, pos: Word) -> &Slot<T> {
        let index = pos & self.index_mask;
        debug_assert!(index < self.slots.len(), "positions only take the indices of slots");
        // SAFETY: a position's index is below the slot count: positions
        // start at 0 and `next` wraps to the next lap's index 0 after the
        // last slot, and the slow bit is above every index (masked off).
        unsafe { self.slots.get_unchecked(index) }
    }

    /// The position after `pos` (same lap, or the next lap's first index).
    fn next(&self, pos: Word) -> Word {
        let index = pos & self.index_mask;
        let lap = pos & !(self.one_lap - 1);
        if index + 1 < self.cap() {
            pos + 1
        } else {
            lap.wrapping_add(self.one_lap)
        }
    }

    /// Pushes `v` at the tail. Without the lock (`holder == false`) it fails
    /// with `Slow` when the slow bit is set; the lock holder pushes in
    /// either mode, keeping the bit.
    #[inline]
    pub(crate) fn push(&self, v: T, holder: bool) -> Result<(), (T, Blocked)> {
        let backoff = crossbeam_utils::Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let bit = tail & self.slow;
            if bit != 0 && !holder {
                return Err((v, Blocked::Slow));
            }
            let pos = tail & !self.slow;
            let slot = self.slot(pos);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == pos {
                let new_tail = self.next(pos) | bit;
                match self.tail.compare_exchange_weak(tail, new_tail, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: the claim on position `pos` makes this
                        // thread the slot's one party until it publishes
                        // the stamp below (module docs).
                        unsafe { slot.value.with(|s| *s = MaybeUninit::new(v)) };
                        slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(t) => tail = t,
                }
            } else if stamp.wrapping_add(self.one_lap) == pos.wrapping_add(1) {
                // The slot still holds last lap's value: full, unless a pop
                // claimed it and is reading it right now.
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed) & !self.slow;
                if head.wrapping_add(self.one_lap) == pos {
                    return Err((v, self.blocked(&self.tail, holder)));
                }
                wait(&backoff);
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another push claimed the position and has not published.
                wait(&backoff);
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops the value at the head (see [`Ring::push`] for `holder`).
    #[inline]
    pub(crate) fn pop(&self, holder: bool) -> Result<T, Blocked> {
        let backoff = crossbeam_utils::Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let bit = head & self.slow;
            if bit != 0 && !holder {
                return Err(Blocked::Slow);
            }
            let pos = head & !self.slow;
            let slot = self.slot(pos);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == pos.wrapping_add(1) {
                let new_head = self.next(pos) | bit;
                match self.head.compare_exchange_weak(head, new_head, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: the stamp said a value was published here,
                        // and the claim on position `pos` makes this thread
                        // the slot's one party until it frees it below.
                        let v = unsafe { slot.value.with(|s| s.assume_init_read()) };
                        slot.stamp.store(pos.wrapping_add(self.one_lap), Ordering::Release);
                        return Ok(v);
                    }
                    Err(h) => head = h,
                }
            } else if stamp == pos {
                // Nothing published here: empty, unless a push claimed the
                // position and is writing it right now.
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed) & !self.slow;
                if tail == pos {
                    return Err(self.blocked(&self.head, holder));
                }
                wait(&backoff);
                head = self.head.load(Ordering::Relaxed);
            } else {
                // Another pop claimed the position and has not freed it.
                wait(&backoff);
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Why an operation found the ring full (or empty) at the moment it read
    /// the other end: for an operation without the lock, `Now` only if the
    /// slow bit of `word` (its own end) is still clear after that read, so
    /// that the channel was open then (closing sets the bit first); else
    /// `Slow`, and the lock decides.
    fn blocked(&self, word: &AtomicUsize, holder: bool) -> Blocked {
        if !holder && word.load(Ordering::SeqCst) & self.slow != 0 {
            Blocked::Slow
        } else {
            Blocked::Now
        }
    }

    /// Sets the slow bit (lock held): from here on only lock holders claim
    /// positions. `tail` first, then `head` (module docs).
    pub(crate) fn set_slow(&self) {
        self.tail.fetch_or(self.slow, Ordering::SeqCst);
        self.head.fetch_or(self.slow, Ordering::SeqCst);
    }

    /// Clears the slow bit (lock held): pushes and pops without the lock
    /// may resume.
    pub(crate) fn clear_slow(&self) {
        self.tail.fetch_and(!self.slow, Ordering::SeqCst);
        self.head.fetch_and(!self.slow, Ordering::SeqCst);
    }

    /// Whether the slow bit is set (exact for the lock holder, which alone
    /// sets and clears it).
    pub(crate) fn is_slow(&self) -> bool {
        self.tail.load(Ordering::Relaxed) & self.slow != 0
    }

    /// The number of values in the ring (a snapshot: exact for the lock
    /// holder in slow mode, up to claims still in flight).
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                let (head, tail) = (head & !self.slow, tail & !self.slow);
                let (hix, tix) = (head & self.index_mask, tail & self.index_mask);
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.cap() - hix + tix
                } else if tail == head {
                    0
                } else {
                    self.cap()
                };
            }
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop(true).is_ok() {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Blocked, Ring};

    #[test]
    fn fifo_full_empty_and_wraparound() {
        let r = Ring::new(3);
        for lap in 0..5u32 {
            for i in 0..3 {
                r.push(lap * 10 + i, false).unwrap();
            }
            assert_eq!(r.push(99, false), Err((99, Blocked::Now)), "full at lap {lap}");
            assert_eq!(r.len(), 3);
            for i in 0..3 {
                assert_eq!(r.pop(false), Ok(lap * 10 + i));
            }
            assert_eq!(r.pop(false), Err(Blocked::Now), "empty at lap {lap}");
            assert_eq!(r.len(), 0);
        }
    }

    #[test]
    fn slow_bit_sends_others_to_the_lock_and_holders_keep_it() {
        let r = Ring::new(2);
        r.push(1, false).unwrap();
        r.set_slow();
        assert!(r.is_slow());
        assert_eq!(r.push(2, false), Err((2, Blocked::Slow)));
        assert_eq!(r.pop(false), Err(Blocked::Slow));
        r.push(2, true).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.pop(true), Ok(1));
        assert!(r.is_slow(), "a holder's claim keeps the bit");
        r.clear_slow();
        assert_eq!(r.pop(false), Ok(2));
        assert_eq!(r.pop(false), Err(Blocked::Now));
    }

    #[test]
    fn values_left_in_the_ring_are_dropped_with_it() {
        let v = std::sync::Arc::new(());
        let r = Ring::new(4);
        r.push(v.clone(), false).unwrap();
        r.push(v.clone(), false).unwrap();
        drop(r);
        assert_eq!(std::sync::Arc::strong_count(&v), 1);
    }

    #[test]
    fn many_threads_lose_and_duplicate_nothing() {
        let r = std::sync::Arc::new(Ring::new(8));
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let mut v = p * 1_000_000 + i;
                        while let Err((back, _)) = r.push(v, false) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut seen = vec![Vec::new(), Vec::new()];
        let mut got = 0;
        while got < 40_000 {
            match r.pop(false) {
                Ok(v) => {
                    seen[(v / 1_000_000) as usize].push(v % 1_000_000);
                    got += 1;
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        producers.into_iter().for_each(|p| p.join().unwrap());
        for s in &seen {
            assert!(s.windows(2).all(|w| w[0] + 1 == w[1]), "per-producer FIFO, no loss, no duplicate");
            assert_eq!(s.len(), 20_000);
        }
    }
}
